//! `checkpoint.ot`: everything a run needs to continue exactly as if it had not stopped.
//!
//! A libtorch archive (readable with `torch.jit.load` / tch's `Tensor::load_multi`) of
//! named tensors:
//! - `var.NAME`: the policy's and the environment's variables;
//! - `adam.m.NAME`, `adam.v.NAME`: Adam's moments;
//! - `meta.step`, `meta.training_seconds`, `meta.elapsed_seconds`, `meta.validation_due`:
//!   where the run stands ([`Progress`]);
//! - `window.*`: the training-loss window in progress (its sums, first step and length), so
//!   that the loss record after a resumption averages the same steps as without it;
//! - `shape.NAME` (optional): integers a loader must match, such as an
//!   [`Agent`](crate::train::agent::Agent)'s `n` and `k` (see [`save_with_shape`]);
//! - `meta.format` (2) and `meta.checksum`: SHA-256 over every other tensor's name, type,
//!   shape and bytes, verified on load (a flipped byte or an edited step is refused).
//!
//! The archive is made in memory and written through [`write_atomically`], so a full disk
//! gives an error and leaves the previous checkpoint whole.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};

use crate::run::files::write_atomically;
use crate::system::messages::one_line;
use crate::train::trainer::Adam;

/// The checkpoint layout written by this version.
const FORMAT: i64 = 2;
const CHECKSUM: &str = "meta.checksum";

/// Where a run stands, beside its variables and moments.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Training steps done.
    pub step: u64,
    /// Seconds spent training (validation excluded), over every segment of the run.
    pub training_seconds: f64,
    /// Seconds since the run started (training and evaluation), over every segment.
    pub elapsed_seconds: f64,
    /// Whether the validation of `step` is still to be recorded (a run not started yet, or
    /// one stopped while validating).
    pub validation_due: bool,
    /// The training-loss window in progress.
    pub window: WindowSums,
}

impl Default for Progress {
    /// A run before its first step: the untrained policy's validation is due.
    fn default() -> Self {
        Self {
            step: 0,
            training_seconds: 0.0,
            elapsed_seconds: 0.0,
            validation_due: true,
            window: WindowSums::default(),
        }
    }
}

/// The sums of a training-loss window: the steps from `first`, `steps` of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowSums {
    /// First step of the window.
    pub first: u64,
    /// Steps in it.
    pub steps: u64,
    /// The summed loss (`None` for an empty window).
    pub loss: Option<f64>,
    /// The summed diagnostics, by record name.
    pub info: BTreeMap<String, f64>,
}

/// Writes a checkpoint atomically.
///
/// # Errors
/// libtorch errors; the file cannot be written (a full disk), the previous one intact.
pub fn save(path: &Path, progress: &Progress, variables: &[(String, Tensor)], optimizer: &Adam) -> anyhow::Result<()> {
    save_with_shape(path, progress, variables, optimizer, &[])
}

/// As [`save`], with `shape`: named integers that [`load_with_shape`] requires to be equal
/// (what the variables' shapes alone do not tell, such as the `k` of a k-subset policy).
///
/// # Errors
/// As [`save`].
pub fn save_with_shape(
    path: &Path,
    progress: &Progress,
    variables: &[(String, Tensor)],
    optimizer: &Adam,
    shape: &[(&str, i64)],
) -> anyhow::Result<()> {
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (name, value) in shape {
        tensors.push((format!("shape.{name}"), Tensor::from_slice(&[*value])));
    }
    // Copies: each variable is a view into the optimiser's flat buffer.
    for (name, variable) in variables {
        tensors.push((format!("var.{name}"), variable.f_detach_copy()?));
    }
    tensors.extend(optimizer.state()?);
    let int = |value: u64| Tensor::from_slice(&[value as i64]);
    let float = |value: f64| Tensor::from_slice(&[value]);
    tensors.push(("meta.format".into(), Tensor::from_slice(&[FORMAT])));
    tensors.push(("meta.step".into(), int(progress.step)));
    tensors.push(("meta.training_seconds".into(), float(progress.training_seconds)));
    tensors.push(("meta.elapsed_seconds".into(), float(progress.elapsed_seconds)));
    tensors.push(("meta.validation_due".into(), int(u64::from(progress.validation_due))));
    let window = &progress.window;
    tensors.push(("window.first".into(), int(window.first)));
    tensors.push(("window.steps".into(), int(window.steps)));
    if let Some(loss) = window.loss {
        tensors.push(("window.loss".into(), float(loss)));
    }
    for (name, sum) in &window.info {
        tensors.push((format!("window.info.{name}"), float(*sum)));
    }
    let digest = checksum(tensors.iter().map(|(n, t)| (n.as_str(), t)))?;
    tensors.push((CHECKSUM.into(), Tensor::from_slice(&digest)));
    let mut bytes = Vec::new();
    Tensor::save_multi_to_stream(&tensors, &mut bytes)
        .map_err(|e| anyhow::anyhow!("{}", one_line(&e.to_string())))
        .with_context(|| format!("serialising the checkpoint {}", path.display()))?;
    write_atomically(path, &bytes)
}

/// Loads a checkpoint into `variables` and `optimizer`, after checking its checksum and
/// that every floating-point value in it is finite; returns where the run stands.
///
/// # Errors
/// The file is missing, truncated, corrupt (checksum), holds NaN or infinite values, or
/// does not match the run's variables; each in one line.
pub fn load(path: &Path, variables: &[(String, Tensor)], optimizer: &mut Adam) -> anyhow::Result<Progress> {
    load_with_shape(path, variables, optimizer, &[])
}

/// As [`load`], after checking that the checkpoint's `shape` values (see
/// [`save_with_shape`]) are those given. Nothing is changed unless every check passes:
/// the shape values, and each variable and moment present with the variable's shape.
///
/// # Errors
/// As [`load`]; a checkpoint without the shape values, or with others, in one line naming
/// both.
pub fn load_with_shape(
    path: &Path,
    variables: &[(String, Tensor)],
    optimizer: &mut Adam,
    shape: &[(&str, i64)],
) -> anyhow::Result<Progress> {
    let tensors = read(path, variables.first().map_or(Device::Cpu, |(_, t)| t.device()))?;
    let corrupt = |problem: String| anyhow::anyhow!("the checkpoint {} {problem}", path.display());
    if !shape.is_empty() {
        let list = |values: &[(&str, Option<i64>)]| {
            let shown = |v: &Option<i64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
            values.iter().map(|(name, v)| format!("{name} = {}", shown(v))).collect::<Vec<_>>().join(", ")
        };
        let mut saved = Vec::new();
        for (name, _) in shape {
            let value = tensors.get(&format!("shape.{name}")).map(|t| t.f_int64_value(&[0])).transpose()?;
            saved.push((*name, value));
        }
        let wanted: Vec<(&str, Option<i64>)> = shape.iter().map(|(n, v)| (*n, Some(*v))).collect();
        if saved != wanted {
            return Err(corrupt(format!("is of another shape: it has {}, this one {}", list(&saved), list(&wanted))));
        }
    }
    for (name, variable) in variables {
        for key in [format!("var.{name}"), format!("adam.m.{name}"), format!("adam.v.{name}")] {
            let saved = tensors.get(&key).ok_or_else(|| corrupt(format!("has no {key}")))?;
            if saved.size() != variable.size() {
                return Err(corrupt(format!(
                    "has {key} of shape {:?}, the run's is {:?}",
                    saved.size(),
                    variable.size()
                )));
            }
        }
    }
    for (name, variable) in variables {
        let mut variable = variable.shallow_clone();
        tch::no_grad(|| variable.f_copy_(&tensors[&format!("var.{name}")]))?;
    }
    let int = |name: &str| -> anyhow::Result<u64> {
        let value = tensors.get(name).ok_or_else(|| corrupt(format!("has no {name}")))?.f_int64_value(&[0])?;
        u64::try_from(value).map_err(|_| corrupt(format!("has {name} = {value}")))
    };
    let float = |name: &str| -> anyhow::Result<Option<f64>> {
        tensors.get(name).map(|t| t.f_double_value(&[0])).transpose().map_err(Into::into)
    };
    let step = int("meta.step")?;
    optimizer.restore(&tensors, i64::try_from(step).map_err(|_| corrupt(format!("has step {step}")))?)?;
    let mut progress = Progress { step, validation_due: false, ..Progress::default() };
    // A checkpoint of the first format has the variables, the moments and the step only.
    if tensors.contains_key("meta.format") {
        progress.training_seconds = float("meta.training_seconds")?.unwrap_or(0.0);
        progress.elapsed_seconds = float("meta.elapsed_seconds")?.unwrap_or(0.0);
        progress.validation_due = int("meta.validation_due")? != 0;
        progress.window = WindowSums {
            first: int("window.first")?,
            steps: int("window.steps")?,
            loss: float("window.loss")?,
            info: tensors
                .iter()
                .filter_map(|(name, t)| Some((name.strip_prefix("window.info.")?.to_owned(), t.f_double_value(&[0]))))
                .map(|(name, value)| value.map(|v| (name, v)))
                .collect::<Result<_, _>>()?,
        };
    }
    Ok(progress)
}

/// The checkpoint's tensors on `device`, verified: the checksum (when the format has one)
/// and the finiteness of every floating-point tensor.
fn read(path: &Path, device: Device) -> anyhow::Result<HashMap<String, Tensor>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading the checkpoint {}", path.display()))?;
    let loaded = Tensor::load_multi_from_stream_with_device(std::io::Cursor::new(bytes), device).map_err(|e| {
        anyhow::anyhow!(
            "the checkpoint {} cannot be read (truncated or not a checkpoint): {}",
            path.display(),
            one_line(&e.to_string())
        )
    })?;
    let mut tensors: HashMap<String, Tensor> = loaded.into_iter().collect();
    if let Some(stored) = tensors.remove(CHECKSUM) {
        let stored = Vec::<u8>::try_from(&stored.f_to_device(Device::Cpu)?)?;
        let computed = checksum(tensors.iter().map(|(n, t)| (n.as_str(), t)))?;
        anyhow::ensure!(
            stored == computed,
            "the checkpoint {} is corrupt: its contents do not match its checksum (a changed byte or an edited \
             value); resume from a copy, or start the run again",
            path.display()
        );
    } else if tensors.contains_key("meta.format") {
        anyhow::bail!("the checkpoint {} is corrupt: it has no checksum", path.display());
    }
    for (name, tensor) in &tensors {
        if tensor.is_floating_point() {
            let finite = tensor.f_isfinite()?.f_all()?.f_int64_value(&[])? != 0;
            anyhow::ensure!(finite, "the checkpoint {} holds NaN or infinite values in {name}", path.display());
        }
    }
    Ok(tensors)
}

/// SHA-256 of the tensors' names, types, shapes and bytes, in the order of their names.
fn checksum<'a>(tensors: impl Iterator<Item = (&'a str, &'a Tensor)>) -> anyhow::Result<Vec<u8>> {
    let mut sorted: Vec<(&str, &Tensor)> = tensors.collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut hash = Sha256::new();
    for (name, tensor) in sorted {
        let shape = tensor.size();
        hash.update((name.len() as u64).to_le_bytes());
        hash.update(name.as_bytes());
        hash.update(format!("{:?}", tensor.kind()).as_bytes());
        hash.update((shape.len() as u64).to_le_bytes());
        for dim in shape {
            hash.update(dim.to_le_bytes());
        }
        let bytes = tensor.f_to_device(Device::Cpu)?.f_contiguous()?.f_reshape([-1])?.f_view_dtype(Kind::Uint8)?;
        hash.update(Vec::<u8>::try_from(&bytes)?);
    }
    Ok(hash.finalize().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A variable with a recognisable value, its optimiser, and a checkpoint of them.
    fn saved(dir: &Path, value: f32) -> (std::path::PathBuf, Vec<(String, Tensor)>, Progress) {
        let variable = Tensor::from_slice(&[value; 8]).set_requires_grad(true);
        let variables = vec![("policy.logits".to_owned(), variable)];
        let adam = Adam::new(variables.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect(), 0.1, 0.9, 0.999)
            .unwrap();
        let mut info = BTreeMap::new();
        info.insert("info.hits".to_owned(), 2.5);
        let progress = Progress {
            step: 1234,
            training_seconds: 1.5,
            elapsed_seconds: 2.5,
            validation_due: true,
            window: WindowSums { first: 1200, steps: 34, loss: Some(-0.125), info },
        };
        let path = dir.join("checkpoint.ot");
        save(&path, &progress, &variables, &adam).unwrap();
        (path, variables, progress)
    }

    fn load_into_fresh(path: &Path) -> anyhow::Result<Progress> {
        let variables = vec![("policy.logits".to_owned(), Tensor::zeros([8], (Kind::Float, Device::Cpu)))];
        let mut adam =
            Adam::new(variables.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect(), 0.1, 0.9, 0.999)?;
        let progress = load(path, &variables, &mut adam)?;
        assert!(variables[0].1.equal(&Tensor::from_slice(&[0.75f32; 8])));
        Ok(progress)
    }

    #[test]
    fn a_checkpoint_round_trips_where_the_run_stands() {
        let tmp = tempfile::tempdir().unwrap();
        let (path, _, progress) = saved(tmp.path(), 0.75);
        assert_eq!(load_into_fresh(&path).unwrap(), progress);
    }

    /// Any changed byte of the variable's data is refused (the bytes of 0.75f32 are
    /// found in the archive and each of them flipped in turn).
    #[test]
    fn a_changed_byte_of_a_tensor_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (path, _, _) = saved(tmp.path(), 0.75);
        let good = std::fs::read(&path).unwrap();
        let pattern: Vec<u8> = std::iter::repeat_n(0.75f32.to_le_bytes(), 8).flatten().collect();
        let at = good.windows(pattern.len()).position(|w| w == pattern).expect("the variable's bytes");
        for offset in [0, 13, 31] {
            let mut bad = good.clone();
            bad[at + offset] ^= 0x01;
            std::fs::write(&path, &bad).unwrap();
            let error = load_into_fresh(&path).unwrap_err().to_string();
            assert!(error.contains("is corrupt") && error.contains("checksum"), "{error}");
        }
    }

    #[test]
    fn nan_values_and_a_cut_file_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (path, _, _) = saved(tmp.path(), f32::NAN);
        let error = load_into_fresh(&path).unwrap_err().to_string();
        assert!(error.contains("NaN or infinite values in var.policy.logits"), "{error}");
        let (path, _, _) = saved(tmp.path(), 0.75);
        let good = std::fs::read(&path).unwrap();
        std::fs::write(&path, &good[..good.len() - 100]).unwrap();
        let error = load_into_fresh(&path).unwrap_err().to_string();
        assert!(error.contains("cannot be read") && !error.contains("frame #"), "{error}");
    }
}
