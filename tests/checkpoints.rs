//! Damaged and hostile checkpoints: real `checkpoint.ot` files cut, bit-flipped, with
//! patched records and a deflated storage. Each load is refused in one line or loads exactly
//! what was saved (its checksum verified); never a crash, a panic, or memory beyond the
//! file's bound. The loads run in this process: the reader (`sfess_agent::run::archive`)
//! hands libtorch nothing but byte counts it has checked, so none can crash it; the commands
//! (`eval`, `show`, `train --resume`) run the binary on the hostile files libtorch's own
//! loader crashed on.

use std::io::{Cursor, Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;

use rand::{RngExt, SeedableRng};
use sfess_agent::run::checkpoint::{self, Progress};
use sfess_agent::train::trainer::Adam;
use sfess_agent::train::window::WindowSums;
use tch::Tensor;
use zip::CompressionMethod;

use crate::common::{fails_with, run};

/// The saved variable.
const VALUES: [f32; 8] = [0.75, -1.5, 2.0, 0.125, -3.0, 4.5, 0.0, 1.0];

fn variables(values: &[f32]) -> Vec<(String, Tensor)> {
    vec![("policy.logits".to_owned(), Tensor::from_slice(values).set_requires_grad(true))]
}

fn adam(variables: &[(String, Tensor)]) -> Adam {
    Adam::new(variables.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect(), 0.1, 0.9, 0.999).unwrap()
}

/// A checkpoint of [`VALUES`] inside a loss window, and where it stands.
fn saved(dir: &Path) -> (PathBuf, Progress) {
    let info = [("info.hit_rate".to_owned(), 2.5), ("return".to_owned(), -1.0)].into_iter().collect();
    let progress = Progress {
        step: 1234,
        training_seconds: 1.5,
        elapsed_seconds: 2.5,
        validation_due: false,
        window: WindowSums { first: 1200, steps: 34, loss: Some(-0.125), info },
    };
    let path = dir.join("checkpoint.ot");
    let variables = variables(&VALUES);
    checkpoint::save(&path, &progress, &variables, &adam(&variables)).unwrap();
    (path, progress)
}

/// Loads `path` into fresh variables: where it stands and the variable's values.
fn load(path: &Path) -> anyhow::Result<(Progress, Vec<f32>)> {
    let variables = variables(&[0.0; 8]);
    let progress = checkpoint::load(path, &variables, &mut adam(&variables))?;
    Ok((progress, Vec::<f32>::try_from(&variables[0].1)?))
}

/// The entries of the zip `archive`: name, bytes, compression.
fn entries(archive: &[u8]) -> Vec<(String, Vec<u8>, CompressionMethod)> {
    let mut zip = zip::ZipArchive::new(Cursor::new(archive)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut file = zip.by_index(i).unwrap();
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).unwrap();
            (file.name().to_owned(), bytes, file.compression())
        })
        .collect()
}

/// A zip of `entries`, in order.
fn zipped(entries: &[(String, Vec<u8>, CompressionMethod)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes, method) in entries {
        let options = zip::write::FileOptions::default().compression_method(*method).large_file(bytes.len() >> 32 > 0);
        zip.start_file(name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// `archive` with its `data.pkl` replaced by `edit` of it.
fn with_pickle(archive: &[u8], edit: impl FnOnce(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut entries = entries(archive);
    let pickle = entries.iter_mut().find(|(name, ..)| name.ends_with("/data.pkl")).unwrap();
    pickle.1 = edit(&pickle.1);
    zipped(&entries)
}

/// `archive` with the entry `name` holding `bytes`, compressed with `method`.
fn with_entry(archive: &[u8], name: &str, bytes: Vec<u8>, method: CompressionMethod) -> Vec<u8> {
    let mut entries = entries(archive);
    let entry = entries.iter_mut().find(|(n, ..)| n == name).unwrap();
    (entry.1, entry.2) = (bytes, method);
    zipped(&entries)
}

/// `pickle` with the first `from` replaced by `to`.
fn replaced(pickle: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = pickle.windows(from.len()).position(|w| w == from).expect("the pattern is in the pickle");
    [&pickle[..at], to, &pickle[at + from.len()..]].concat()
}

/// Damaged copies of the archive `good`, each with what was done to it.
fn mutations(good: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut mutated = Vec::new();
    for length in (0..good.len()).step_by(7).chain(good.len().saturating_sub(64)..good.len()) {
        mutated.push((format!("cut to {length} bytes"), good[..length].to_vec()));
    }
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(22);
    for _ in 0..2000 {
        let (at, bit) = (rng.random_range(0..good.len()), rng.random_range(0..8));
        let mut bad = good.to_vec();
        bad[at] ^= 1 << bit;
        mutated.push((format!("bit {bit} of byte {at} flipped"), bad));
    }
    // Every one-byte integer of the pickle (sizes, strides, offsets, element counts; and
    // whatever else the byte `K` starts) patched, small and large.
    let pickle = entries(good).into_iter().find(|(n, ..)| n.ends_with("/data.pkl")).unwrap().1;
    for at in (0..pickle.len() - 1).filter(|&i| pickle[i] == b'K') {
        for to in [&[b'K', 0][..], &[b'K', 255], &[b'J', 0xff, 0xff, 0xff, 0x7f], &[b'J', 0xff, 0xff, 0xff, 0xff]] {
            let patched = [&pickle[..at], to, &pickle[at + 2..]].concat();
            mutated.push((format!("pickle integer at {at} patched to {to:?}"), with_pickle(good, |_| patched)));
        }
    }
    // Every entry's sizes in the central directory patched.
    let central = good.windows(4).enumerate().filter(|(_, w)| *w == b"PK\x01\x02").map(|(i, _)| i);
    for at in central.collect::<Vec<_>>() {
        for size in [0u32, 0x7fff_ffff, 0xffff_ffff] {
            let mut bad = good.to_vec();
            for field in [at + 20, at + 24] {
                bad[field..field + 4].copy_from_slice(&size.to_le_bytes());
            }
            mutated.push((format!("central entry at {at} sized {size}"), bad));
        }
    }
    mutated
}

#[test]
fn mutated_checkpoints_are_refused_in_one_line_or_load_what_was_saved() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, progress) = saved(tmp.path());
    let good = std::fs::read(&path).unwrap();
    assert_eq!(load(&path).unwrap(), (progress.clone(), VALUES.to_vec()));
    let mutated = mutations(&good);
    let (mut refused, mut loaded) = (0, 0);
    for (what, bytes) in &mutated {
        std::fs::write(&path, bytes).unwrap();
        match catch_unwind(AssertUnwindSafe(|| load(&path))) {
            Err(_) => panic!("loading the checkpoint with {what} panicked"),
            Ok(Ok(got)) => {
                assert_eq!(got, (progress.clone(), VALUES.to_vec()), "{what} loaded something else");
                loaded += 1;
            }
            Ok(Err(error)) => {
                let message = format!("{error:#}");
                assert!(message.contains("checkpoint") && !message.contains('\n'), "{what}: {message:?}");
                refused += 1;
            }
        }
    }
    // Flips in what is never read (the TorchScript code, timestamps, CRCs) change nothing.
    assert!(refused > mutated.len() / 2 && loaded > 10, "{refused} refused, {loaded} loaded");
}

/// A storage record deflated (1 KiB of it inflating to 64 MiB) is refused without being
/// inflated; so is one that is declared stored but whose sizes disagree.
#[test]
fn a_deflated_storage_is_refused_without_being_inflated() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, _) = saved(tmp.path());
    let good = std::fs::read(&path).unwrap();
    let bomb = with_entry(&good, "archive/data/0", vec![0; 64 << 20], CompressionMethod::Deflated);
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    std::fs::write(&path, bomb).unwrap();
    let error = format!("{:#}", load(&path).unwrap_err());
    assert!(error.contains("its entry archive/data/0 is compressed"), "{error}");
}

/// `sfess-agent ARGS` run by a Python parent: the child's peak memory (KiB), its exit
/// status (negative: the signal that killed it) and its stderr.
fn peak_kib(args: &[&str]) -> (u64, i32, String) {
    let script = "import resource, subprocess, sys\n\
                  done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n\
                  sys.stderr.buffer.write(done.stderr)\n\
                  print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, done.returncode)\n";
    let output = Command::new("python3")
        .args(["-c", script, env!("CARGO_BIN_EXE_sfess-agent")])
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let numbers: Vec<i64> = text.split_whitespace().filter_map(|n| n.parse().ok()).collect();
    let [kib, status] = numbers[..] else { panic!("{text}") };
    (kib as u64, status as i32, String::from_utf8_lossy(&output.stderr).into_owned())
}

/// `eval --run`, `show` and `train --resume` on a run whose checkpoint declares a tensor of
/// size (1, 2³¹ − 1) over its 200-byte storage (libtorch's loader crashed on it with
/// SIGSEGV), and on one whose storage is 1 MiB deflating to 256 MiB (libtorch inflated it
/// all before refusing it): one line each, exit status 1, and no more memory than the run's
/// good checkpoint takes.
#[test]
fn hostile_checkpoints_stop_eval_show_and_resume_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let dir_text = dir.to_str().unwrap();
    let train = ["train", "--env", "max-coverage", "--steps", "20", "--eval-every", "10", "--quiet", "--no-figures"];
    let output = run(&[&train[..], &["--out", dir_text]].concat());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let path = dir.join("checkpoint.ot");
    let good = std::fs::read(&path).unwrap();
    let (good_kib, status, stderr) = peak_kib(&["eval", "--run", dir_text]);
    assert_eq!(status, 0, "{stderr}");

    // max-coverage's free logits are (1, 50): `(K\x01K2t` in the pickle.
    let huge = with_pickle(&good, |pickle| replaced(pickle, b"(K\x01K\x32t", b"(K\x01J\xff\xff\xff\x7ft"));
    std::fs::write(&path, huge).unwrap();
    let refused = "its tensor var|policy|logits has size [1, 2147483647], not the 50 elements of its storage";
    fails_with(&run(&["eval", "--run", dir_text]), refused);
    fails_with(&run(&["show", dir_text]), refused);
    fails_with(&run(&["train", "--resume", dir_text, "--steps", "30", "--quiet"]), refused);

    let bomb = with_entry(&good, "archive/data/0", vec![0; 256 << 20], CompressionMethod::Deflated);
    std::fs::write(&path, bomb).unwrap();
    let (kib, status, stderr) = peak_kib(&["eval", "--run", dir_text]);
    assert!(status == 1 && stderr.contains("its entry archive/data/0 is compressed"), "{status}: {stderr}");
    assert!(kib < good_kib + (64 << 10), "{kib} KiB against {good_kib} KiB for the good checkpoint");
}
