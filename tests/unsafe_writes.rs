//! Writes that must not go astray or kill the process: symbolic links planted in a run
//! folder are never written through, a write past the file-size limit is a one-line error
//! (not SIGXFSZ), a full standard error or output never makes the binary panic, and a FIFO
//! or a device in a run folder is refused rather than read.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Output, Stdio};

use serde_json::Value;

use crate::common::{fails_with, json, run, run_owned, run_with_file_limit, sfess, stderr};

/// A short max-coverage run into `out`, with a checkpoint every `eval_every` steps.
fn train_args(out: &Path, steps: &str, eval_every: &str) -> Vec<String> {
    ["train", "--env", "max-coverage", "--steps", steps, "--eval-every", eval_every, "--device", "cpu", "--quiet"]
        .iter()
        .map(|s| (*s).to_owned())
        .chain(["--out".to_owned(), out.to_str().unwrap().to_owned()])
        .collect()
}

/// A file outside the run folder, with text that must stay.
fn outside(tmp: &Path, name: &str) -> std::path::PathBuf {
    let path = tmp.join("outside").join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, format!("{name} must stay\n")).unwrap();
    path
}

fn unchanged(path: &Path) {
    let name = path.file_name().unwrap().to_string_lossy();
    assert_eq!(std::fs::read_to_string(path).unwrap(), format!("{name} must stay\n"), "{}", path.display());
}

/// A `.lock`, a record file or a temporary file that is a symbolic link (to a file outside
/// the folder, or dangling): the command refuses to write through it, or replaces the
/// temporary link; the file it points to is neither changed nor created.
#[test]
fn symbolic_links_in_a_run_folder_are_never_written_through() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();

    // The lock of a new run, and of a sweep folder.
    let dir = tmp.join("locked");
    std::fs::create_dir(&dir).unwrap();
    let target = outside(tmp, "lock");
    symlink(&target, dir.join(".lock")).unwrap();
    fails_with(
        &run_owned(&train_args(&dir, "200", "100")),
        &format!("{} is a symbolic link", dir.join(".lock").display()),
    );
    unchanged(&target);
    let sweep = tmp.join("sweep");
    std::fs::create_dir(&sweep).unwrap();
    symlink(&target, sweep.join(".lock")).unwrap();
    std::fs::write(tmp.join("grid.toml"), "[fixed]\nenv = \"max-coverage\"\nsteps = 10\n[grid]\nseed = [0]\n").unwrap();
    let file = tmp.join("grid.toml");
    fails_with(
        &run(&["sweep", file.to_str().unwrap(), "--out", sweep.to_str().unwrap()]),
        &format!("{} is a symbolic link", sweep.join(".lock").display()),
    );
    unchanged(&target);

    // A dangling record file: refused, nothing created where it points.
    let dir = tmp.join("dangling");
    std::fs::create_dir(&dir).unwrap();
    let nowhere = tmp.join("outside").join("created.jsonl");
    symlink(&nowhere, dir.join("metrics.jsonl")).unwrap();
    fails_with(
        &run_owned(&train_args(&dir, "200", "100")),
        &format!("{} is a symbolic link; refusing to write through it", dir.join("metrics.jsonl").display()),
    );
    assert!(!nowhere.exists());

    // Temporary files planted as links: removed, and the run writes its own.
    let dir = tmp.join("partial");
    std::fs::create_dir(&dir).unwrap();
    let target = outside(tmp, "checkpoint");
    symlink(&target, dir.join(".checkpoint.ot.partial")).unwrap();
    let nowhere = tmp.join("outside").join("config-created.json");
    symlink(&nowhere, dir.join(".config.json.partial")).unwrap();
    json(&run_owned(&[train_args(&dir, "200", "100"), vec!["--json".into()]].concat()));
    unchanged(&target);
    assert!(!nowhere.exists());
    for file in ["checkpoint.ot", "config.json"] {
        assert!(std::fs::symlink_metadata(dir.join(file)).unwrap().is_file(), "{file}");
    }

    // A record file of a run replaced by a link to a copy outside: the resumption that
    // appends to it refuses, and the copy stays as it was.
    let target = tmp.join("outside").join("marginals.jsonl");
    std::fs::copy(dir.join("marginals.jsonl"), &target).unwrap();
    let copy = std::fs::read(&target).unwrap();
    std::fs::remove_file(dir.join("marginals.jsonl")).unwrap();
    symlink(&target, dir.join("marginals.jsonl")).unwrap();
    fails_with(
        &run(&["train", "--resume", dir.to_str().unwrap(), "--steps", "300", "--quiet"]),
        &format!("{} is a symbolic link", dir.join("marginals.jsonl").display()),
    );
    assert_eq!(std::fs::read(&target).unwrap(), copy);
}

/// Under a file-size limit the run is not killed by SIGXFSZ: it ends with a one-line error
/// that names the file and the step, exit status 1, and record files of whole lines.
#[test]
fn a_file_size_limit_is_a_one_line_error_not_a_signal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("limited");
    // A checkpoint at step 2000 (5 kB) fits; the log (2.5 kB a thousand steps) and the event
    // file outgrow 8 kB before step 4000.
    let output = run_with_file_limit(&train_args(&dir, "6000", "2000"), 8192);
    assert_eq!(output.status.code(), Some(1), "killed? {:?}: {}", output.status, stderr(&output));
    fails_with(&output, "File too large");
    assert!(stderr(&output).contains("the checkpoint of step 2000 is kept"), "{}", stderr(&output));
    assert!(stderr(&output).contains(&format!("writing {}", dir.display())), "{}", stderr(&output));
    for file in ["metrics.jsonl", "marginals.jsonl"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert!(!text.is_empty() && text.ends_with('\n'), "{file} was cut mid-line");
        assert!(text.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()), "{file}");
    }
}

/// `sfess-agent args` with stdout and stderr sent to /dev/full or captured.
fn run_full(args: &[&str], stdout_full: bool, stderr_full: bool) -> Output {
    let full = || Stdio::from(std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap());
    let mut command = sfess();
    command.args(args).stdin(Stdio::null());
    command.stdout(if stdout_full { full() } else { Stdio::piped() });
    command.stderr(if stderr_full { full() } else { Stdio::piped() });
    command.output().unwrap()
}

/// A full standard error (or output) never makes the binary panic (exit 101): a command
/// that succeeds still exits 0, one that fails exits 1, one that cannot print its result
/// exits 1 with an error.
#[test]
fn a_full_standard_error_or_output_is_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("complete");
    json(&run_owned(&[train_args(&dir, "100", "100"), vec!["--json".into()]].concat()));
    let d = dir.to_str().unwrap();
    // A message on stderr ("is complete already"), and an error.
    assert_eq!(run_full(&["train", "--resume", d], false, true).status.code(), Some(0));
    assert_eq!(run_full(&["train", "--resume", d, "--steps", "10"], false, true).status.code(), Some(1));
    assert_eq!(run_full(&["sweep", "cancel", "/nonexistent"], false, true).status.code(), Some(1));
    // A result that cannot be written.
    let output = run_full(&["envs"], true, false);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("No space left on device") && !stderr(&output).contains("panicked"));
    assert_eq!(run_full(&["envs"], true, true).status.code(), Some(1));
    assert_eq!(run_full(&["inspect", "-k", "1", "--logits", "0 1"], true, true).status.code(), Some(1));
}

/// Runs `args` and waits at most a minute: a command that blocks (on a FIFO) fails the test
/// instead of hanging the suite.
fn run_within_a_minute(args: &[&str]) -> Output {
    let mut child =
        sfess().args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("sfess-agent {} still runs after a minute", args.join(" "));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A FIFO or a device where a run's checkpoint or configuration should be is refused in one
/// line: opening a FIFO would block for ever (and SIGTERM alone would not end it), a device
/// could be read without end.
#[test]
fn a_fifo_or_a_device_in_a_run_folder_is_refused_not_waited_for() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let output = run_owned(&train_args(&dir, "20", "10"));
    assert!(output.status.success(), "{}", stderr(&output));
    let run_dir = dir.to_str().unwrap();
    let checkpoint = dir.join("checkpoint.ot");
    std::fs::remove_file(&checkpoint).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&checkpoint).status().unwrap().success());
    for args in [vec!["eval", "--run", run_dir], vec!["train", "--resume", run_dir, "--steps", "40", "--quiet"]] {
        fails_with(&run_within_a_minute(&args), "not a regular file");
    }
    std::fs::remove_file(&checkpoint).unwrap();
    symlink("/dev/zero", &checkpoint).unwrap();
    fails_with(&run_within_a_minute(&["eval", "--run", run_dir]), "not a regular file");
    let config = dir.join("config.json");
    std::fs::remove_file(&config).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&config).status().unwrap().success());
    fails_with(&run_within_a_minute(&["eval", "--run", run_dir]), "not a regular file");
}
