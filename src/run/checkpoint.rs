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
//!   [`Agent`](crate::agent::Agent)'s `n` and `k` (see [`save_with_shape`]);
//! - `meta.format` (3) and `meta.checksum`: SHA-256 over every other tensor's name, type,
//!   shape and bytes, verified on load (a flipped byte or an edited step is refused).
//!
//! Names are any text: in the archive, every byte of a name other than an ASCII letter,
//! digit, `_`, `.` or `-` is written `%XX` (format 3; tch then writes `.` as `|`), so that a
//! name holding `|` (which tch would read back as `.`) or `%` comes back as it was. Format 2
//! (the same without `%XX`) is read too.
//!
//! The archive is made in memory and written through [`write_atomically`], so a full disk
//! gives an error and leaves the previous checkpoint whole. It is read by
//! [`crate::run::archive`], which checks every record against its storage before any
//! tensor is made, from a file of at most [`max_bytes`] of the run's variables; then the
//! checksum is verified, which every checkpoint must have (the first format, which had
//! none, is refused).

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};

use sfess_envs::printable;

use crate::run::archive;
use crate::system::files::write_atomically;
use crate::system::messages::one_line;
use crate::train::trainer::Adam;
use crate::train::window::WindowSums;

/// The checkpoint layout written by this version (see the [module docs](self)).
const FORMAT: i64 = 3;
/// The checkpoint layouts this version reads: 2, whose names are not `%XX`-encoded, and 3.
const FORMATS: [i64; 2] = [2, FORMAT];
const CHECKSUM: &str = "meta.checksum";
/// The format's name in the archive (the same in every format).
const FORMAT_IN_ARCHIVE: &str = "meta|format";

/// Bytes a checkpoint may have beyond its variables and their two moments: the metadata,
/// the archive's own records and the loss window, a few hundred bytes per tensor.
pub const METADATA_BYTES: u64 = 16 << 20;

/// The largest checkpoint of `variables` [`load`] reads: three times their bytes (the
/// variables and Adam's two moments) and [`METADATA_BYTES`]. A larger file is refused before
/// it is read, so that reading one never takes more than twice this much memory.
pub fn max_bytes(variables: &[(String, Tensor)]) -> u64 {
    let bytes: u64 = variables.iter().map(|(_, t)| (t.numel() * t.kind().elt_size_in_bytes()) as u64).sum();
    bytes.saturating_mul(3).saturating_add(METADATA_BYTES)
}

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
    let tensors: Vec<(String, Tensor)> = tensors.into_iter().map(|(name, t)| (encode_name(&name), t)).collect();
    let mut bytes = Vec::new();
    Tensor::save_multi_to_stream(&tensors, &mut bytes)
        .map_err(|e| anyhow::anyhow!("{}", one_line(&e.to_string())))
        .with_context(|| format!("serialising the checkpoint {}", path.display()))?;
    write_atomically(path, &bytes)
}

/// Loads a checkpoint into `variables` and `optimizer`, after checking its archive, its
/// checksum and that every floating-point value in it is finite; returns where the run
/// stands.
///
/// # Errors
/// The file is missing, larger than [`max_bytes`], truncated, damaged or hostile (a record
/// that does not fit its storage), corrupt (checksum), without a checksum (the first
/// format), holds NaN or infinite values, or does not match the run's variables; each in
/// one line.
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
    let tensors = read(path, variables)?;
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
    Ok(Progress {
        step,
        training_seconds: float("meta.training_seconds")?.unwrap_or(0.0),
        elapsed_seconds: float("meta.elapsed_seconds")?.unwrap_or(0.0),
        validation_due: int("meta.validation_due")? != 0,
        window: WindowSums {
            first: int("window.first")?,
            steps: int("window.steps")?,
            loss: float("window.loss")?,
            info: tensors
                .iter()
                .filter_map(|(name, t)| Some((name.strip_prefix("window.info.")?.to_owned(), t.f_double_value(&[0]))))
                .map(|(name, value)| value.map(|v| (name, v)))
                .collect::<Result<_, _>>()?,
        },
    })
}

/// The checkpoint's tensors, by name, on the device of `variables` (into which it is to be
/// loaded), verified: its size against [`max_bytes`], its archive ([`archive::read`]), its
/// format and checksum, and the finiteness of every floating-point tensor.
fn read(path: &Path, variables: &[(String, Tensor)]) -> anyhow::Result<HashMap<String, Tensor>> {
    let device = variables.first().map_or(Device::Cpu, |(_, t)| t.device());
    let limit = max_bytes(variables);
    let bytes = read_at_most(path, limit)?;
    let unreadable = |problem: String| {
        anyhow::anyhow!("the checkpoint {} cannot be read (truncated or not a checkpoint): {problem}", path.display())
    };
    let archived = archive::read(&bytes).map_err(|e| unreadable(e.to_string()))?;
    let format = match archived.iter().find(|t| t.name == FORMAT_IN_ARCHIVE) {
        Some(format) if format.kind == Kind::Int64 && format.size == [1] => {
            format.to_tensor(&bytes).map_err(|e| unreadable(e.to_string()))?.f_int64_value(&[0])?
        }
        Some(_) => return Err(unreadable("its meta.format is not one integer".to_owned())),
        None => anyhow::bail!(
            "the checkpoint {} has no format and no checksum: it is damaged or edited, or was written by a \
             development version of sfess-agent before checkpoints were checksummed, whose checkpoints are not \
             read (nothing would tell an edited one); start the run again in a new folder",
            path.display()
        ),
    };
    anyhow::ensure!(
        FORMATS.contains(&format),
        "the checkpoint {} is of format {format}, which this version of sfess-agent does not read (it reads {FORMATS:?})",
        path.display()
    );
    let mut tensors = HashMap::new();
    for record in &archived {
        let name = decode_name(&record.name, format)
            .ok_or_else(|| unreadable(format!("the name {} is not one it writes", printable(&record.name))))?;
        let tensor = record.to_tensor(&bytes).map_err(|e| unreadable(e.to_string()))?;
        if tensors.insert(name, tensor).is_some() {
            return Err(unreadable(format!("two tensors are named {}", printable(&record.name))));
        }
    }
    drop(bytes);
    let stored = tensors
        .remove(CHECKSUM)
        .ok_or_else(|| anyhow::anyhow!("the checkpoint {} is corrupt: it has no checksum", path.display()))?;
    let computed = checksum(tensors.iter().map(|(n, t)| (n.as_str(), t)))?;
    anyhow::ensure!(
        stored.kind() == Kind::Uint8 && Vec::<u8>::try_from(&stored)? == computed,
        "the checkpoint {} is corrupt: its contents do not match its checksum (a changed byte or an edited \
         value); resume from a copy, or start the run again",
        path.display()
    );
    for (name, tensor) in &tensors {
        if tensor.is_floating_point() {
            let finite = tensor.f_isfinite()?.f_all()?.f_int64_value(&[])? != 0;
            anyhow::ensure!(finite, "the checkpoint {} holds NaN or infinite values in {name}", path.display());
        }
    }
    tensors.into_iter().map(|(name, t)| Ok((name, t.f_to_device(device)?))).collect()
}

/// The bytes of `path`, refused (before they are read) when there are more than `limit`.
fn read_at_most(path: &Path, limit: u64) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let reading = || format!("reading the checkpoint {}", path.display());
    let file = crate::system::files::open_regular(path).with_context(reading)?;
    let too_large = |length: u64| {
        anyhow::anyhow!(
            "the checkpoint {} has {length} bytes, more than a checkpoint of this run's variables can have \
             ({limit}): it is not this run's",
            path.display()
        )
    };
    let length = file.metadata().with_context(reading)?.len();
    if length > limit {
        return Err(too_large(length));
    }
    let mut bytes = Vec::with_capacity(length as usize);
    // A file that grows while it is read is cut at the limit (and then refused).
    file.take(limit + 1).read_to_end(&mut bytes).with_context(reading)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Whether `byte` stands for itself in a name in the archive (format 3).
fn plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-')
}

/// `name` as the checkpoint stores it (format 3): every byte that is not [`plain`] as `%XX`
/// (upper-case hexadecimal), so that tch's `.`-to-`|` mapping can be undone.
fn encode_name(name: &str) -> String {
    name.bytes().map(|b| if plain(b) { char::from(b).to_string() } else { format!("%{b:02X}") }).collect()
}

/// The name of the tensor named `stored` in an archive of checkpoint format `format`:
/// tch's `|` back to `.`, and in format 3 the `%XX` decoded. `None` for a name this format
/// never holds (a byte that should have been encoded, a malformed `%XX`, one that did not
/// need it, or text that is not UTF-8), so that no two stored names give the same name.
fn decode_name(stored: &str, format: i64) -> Option<String> {
    let stored = stored.replace('|', ".");
    if format < 3 {
        return Some(stored);
    }
    let mut bytes = Vec::with_capacity(stored.len());
    let mut rest = stored.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let hex = tail.get(..2)?;
            if !hex.iter().all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c)) {
                return None;
            }
            let byte = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            if plain(byte) {
                return None;
            }
            bytes.push(byte);
            rest = &tail[2..];
        } else if plain(first) {
            bytes.push(first);
            rest = tail;
        } else {
            return None;
        }
    }
    String::from_utf8(bytes).ok()
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
    use std::collections::BTreeMap;

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

    /// Record names are any text: a `|` (which tch reads back as `.`), a `%`, what looks
    /// like an escape, spaces, control characters and other scripts all round-trip.
    #[test]
    fn any_record_name_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let (path, variables, mut progress) = saved(tmp.path(), 0.75);
        let names = ["info.hit|rate", "info.hit.rate", "info.a%7Cb", "info.100%", "info.x y\t\u{1b}", "info.é✓", "|."];
        for (i, name) in names.iter().enumerate() {
            progress.window.info.insert((*name).to_owned(), i as f64);
        }
        let adam = Adam::new(variables.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect(), 0.1, 0.9, 0.999)
            .unwrap();
        save(&path, &progress, &variables, &adam).unwrap();
        assert_eq!(load_into_fresh(&path).unwrap(), progress);
    }

    /// Writes a checkpoint as format 2 did: the same tensors, names as they are.
    fn save_format_2(path: &Path, progress: &Progress, variables: &[(String, Tensor)], adam: &Adam) {
        save(path, progress, variables, adam).unwrap();
        let mut tensors = Tensor::load_multi_from_stream(std::io::Cursor::new(std::fs::read(path).unwrap())).unwrap();
        tensors.retain(|(name, _)| name != CHECKSUM);
        for (name, tensor) in &mut tensors {
            *name = decode_name(&name.replace('.', "|"), FORMAT).unwrap();
            if name == "meta.format" {
                *tensor = Tensor::from_slice(&[2i64]);
            }
        }
        let digest = checksum(tensors.iter().map(|(n, t)| (n.as_str(), t))).unwrap();
        tensors.push((CHECKSUM.to_owned(), Tensor::from_slice(&digest)));
        let mut bytes = Vec::new();
        Tensor::save_multi_to_stream(&tensors, &mut bytes).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn format_2_checkpoints_still_load() {
        let tmp = tempfile::tempdir().unwrap();
        let (path, variables, mut progress) = saved(tmp.path(), 0.75);
        progress.window.info.insert("info.100%".to_owned(), 3.0);
        let adam = Adam::new(variables.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect(), 0.1, 0.9, 0.999)
            .unwrap();
        save_format_2(&path, &progress, &variables, &adam);
        let archive = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        assert!(archive.contains("window|info|info|100%"), "written as format 2 wrote it");
        assert_eq!(load_into_fresh(&path).unwrap(), progress);
    }

    /// The first format had no checksum: a checkpoint without `meta.format` and
    /// `meta.checksum` (the rest edited at will) is refused, not loaded unchecked.
    #[test]
    fn a_checkpoint_without_format_and_checksum_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (path, _, _) = saved(tmp.path(), 0.75);
        let good = std::fs::read(&path).unwrap();
        for dropped in [&["meta.format", "meta.checksum"][..], &["meta.checksum"]] {
            let mut tensors = Tensor::load_multi_from_stream(std::io::Cursor::new(good.clone())).unwrap();
            tensors.retain(|(name, _)| !dropped.contains(&name.as_str()));
            for (name, tensor) in &mut tensors {
                if name == "var.policy.logits" {
                    *tensor = Tensor::from_slice(&[9.5f32; 8]);
                }
            }
            let mut bytes = Vec::new();
            Tensor::save_multi_to_stream(&tensors, &mut bytes).unwrap();
            std::fs::write(&path, bytes).unwrap();
            let error = load_into_fresh(&path).unwrap_err().to_string();
            let expected = if dropped.len() == 2 { "has no format and no checksum" } else { "it has no checksum" };
            assert!(error.contains(expected), "{error}");
        }
    }

    /// A file larger than a checkpoint of the run's variables can be is refused before it
    /// is read (a sparse file: nothing of it is on the disk).
    #[test]
    fn a_file_larger_than_the_bound_is_refused_unread() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("checkpoint.ot");
        let variables = vec![("policy.logits".to_owned(), Tensor::zeros([8], (Kind::Float, Device::Cpu)))];
        assert_eq!(max_bytes(&variables), 3 * 32 + METADATA_BYTES);
        std::fs::File::create(&path).unwrap().set_len(max_bytes(&variables) + 1).unwrap();
        let error = load_into_fresh(&path).unwrap_err().to_string();
        assert!(error.contains(&format!("has {} bytes, more than", max_bytes(&variables) + 1)), "{error}");
    }

    #[test]
    fn names_are_encoded_reversibly_and_only_one_way() {
        for name in ["var.policy.logits", "a|b", "%", "%7C", "x y", "é", ""] {
            let stored = encode_name(name).replace('.', "|");
            assert_eq!(decode_name(&stored, FORMAT).as_deref(), Some(name), "{stored}");
        }
        assert_eq!(encode_name("info.hit|rate"), "info.hit%7Crate");
        for not_written in ["%41", "%7c", "%7", "a b", "%FF"] {
            assert_eq!(decode_name(not_written, FORMAT), None, "{not_written}");
        }
        assert_eq!(decode_name("window|info|a%7Cb", 2).as_deref(), Some("window.info.a%7Cb"));
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
