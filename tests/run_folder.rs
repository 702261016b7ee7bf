//! Run folders that nothing corrupts: signals, locks, strict resumption, full disks,
//! damaged files. Each test runs the binary as a user would, on max-coverage (no data,
//! about 0.2 ms a step).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{fails_with, json, run, run_owned, run_with_file_limit, sfess, stderr};
use crate::tensorboard::events;

/// A max-coverage run of `steps` into `out`, validated every 1,500 steps (not a multiple of
/// the 100-step loss window, so that a checkpoint falls inside a window).
fn args(out: &Path, steps: &str) -> Vec<String> {
    let out = out.to_str().unwrap();
    ["train", "--env", "max-coverage", "--steps", steps, "--eval-every", "1500", "--device", "cpu", "--quiet"]
        .iter()
        .map(|s| s.to_string())
        .chain(["--out".to_owned(), out.to_owned()])
        .collect()
}

fn start(args: &[String]) -> Child {
    sfess().args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// The records of a run folder without their clocks (`elapsed_seconds` and the
/// `seconds_per_step` records): what must not depend on stops.
pub(crate) fn records(dir: &Path) -> Vec<(u64, String, String, f64)> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter(|line| !line.contains("\"seconds_per_step\""))
        .map(|line| {
            let r: Value = serde_json::from_str(line).unwrap();
            (
                r["step"].as_u64().unwrap(),
                r["split"].as_str().unwrap().into(),
                r["metric"].as_str().unwrap().into(),
                r["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Waits until the run in `dir` has recorded a training loss at step `step` or later.
fn wait_for_step(child: &mut Child, dir: &Path, step: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reached = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap_or_default().lines().any(|l| {
            serde_json::from_str::<Value>(l).is_ok_and(|r| r["split"] == "train" && r["step"].as_u64() >= Some(step))
        });
        if reached {
            return;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before step {step}");
        assert!(Instant::now() < deadline, "no step {step} within a minute");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, signal: &str) {
    assert!(Command::new("kill").args(["-s", signal, &child.id().to_string()]).status().unwrap().success());
}

fn straight(tmp: &Path, steps: &str) -> PathBuf {
    let dir = tmp.join(format!("straight-{steps}"));
    json(&run_owned(&[args(&dir, steps), vec!["--json".into()]].concat()));
    dir
}

/// SIGINT and SIGTERM stop the run with a checkpoint at the step reached and exit 130 and
/// 143; while it runs, the folder is locked against a second run and a resumption; the
/// resumed run ends with exactly the straight run's records (all of them, training losses
/// included) and a positive speed.
#[test]
fn a_signal_stops_at_a_checkpoint_and_the_resumed_run_has_the_straight_runs_records() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = straight(tmp.path(), "20000");
    for (name, code) in [("INT", 130), ("TERM", 143)] {
        let dir = tmp.path().join(name);
        let mut child = start(&args(&dir, "20000"));
        wait_for_step(&mut child, &dir, 200);
        // A second run is refused; so is a resumption, by the lock, naming its holder.
        fails_with(&run_owned(&args(&dir, "20000")), "already holds a run");
        let resume = ["train", "--resume", dir.to_str().unwrap(), "--quiet"];
        fails_with(&run(&resume), &format!("pid {}", child.id()));
        signal(&child, name);
        let output = child.wait_with_output().unwrap();
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(code), "{message}");
        assert!(
            message.contains(&format!("stopped by SIG{name} at step")) && message.contains("--resume"),
            "{message}"
        );
        assert!(!message.contains("panicked"), "{message}");
        let summary = json(&run(&[&resume[..], &["--json"]].concat()));
        assert_eq!(records(&dir), records(&reference), "SIG{name}");
        assert_eq!(events(&dir), events(&reference), "SIG{name}");
        assert!(summary["seconds_per_step"].as_f64().unwrap() > 0.0, "{summary}");
    }
}

/// Two runs started 0.3 s apart into one folder, while the first still builds its
/// experiment (sensor placement's PCA basis of a synthetic MNIST): one trains, the other is
/// refused (by the lock, or by the run the first has started), and the folder holds one
/// run's records. Which one wins is a race: under load the second may finish building
/// first.
#[test]
fn two_runs_started_together_into_one_folder_do_not_mix() {
    let tmp = tempfile::tempdir().unwrap();
    crate::train::synthetic_mnist(tmp.path(), 6000, 60);
    let data = tmp.path().to_str().unwrap();
    let run_args = |out: &Path| -> Vec<String> {
        ["train", "--env", "sensor-placement-mnist", "--data-dir", data, "--steps", "300", "--eval-every", "100"]
            .iter()
            .chain(&["--device", "cpu", "--quiet", "--out", out.to_str().unwrap()])
            .map(|s| s.to_string())
            .collect()
    };
    let reference = tmp.path().join("alone");
    json(&run_owned(&[run_args(&reference), vec!["--json".into()]].concat()));
    let dir = tmp.path().join("both");
    let first = start(&run_args(&dir));
    std::thread::sleep(Duration::from_millis(300));
    let second = start(&run_args(&dir));
    let outputs = [first.wait_with_output().unwrap(), second.wait_with_output().unwrap()];
    let mut codes: Vec<Option<i32>> = outputs.iter().map(|o| o.status.code()).collect();
    codes.sort();
    assert_eq!(codes, [Some(0), Some(1)], "{} | {}", stderr(&outputs[0]), stderr(&outputs[1]));
    let refused = outputs.iter().find(|o| !o.status.success()).unwrap();
    let message = stderr(refused);
    assert!(message.contains("in use by another process") || message.contains("already holds a run"), "{message}");
    assert_eq!(records(&dir), records(&reference));
}

/// Killed outright before its first checkpoint, a run resumes from the start without
/// recording the untrained validation twice.
#[test]
fn a_run_killed_before_its_first_checkpoint_resumes_with_the_straight_records() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = straight(tmp.path(), "3000");
    let dir = tmp.path().join("killed");
    let mut child = start(&args(&dir, "3000"));
    wait_for_step(&mut child, &dir, 100);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!dir.join("checkpoint.ot").exists(), "the run got to its first checkpoint: kill it sooner");
    json(&run(&["train", "--resume", dir.to_str().unwrap(), "--quiet", "--json"]));
    assert_eq!(records(&dir), records(&reference));
    assert_eq!(events(&dir), events(&reference));
}

/// `--resume` keeps the run's configuration: a changed flag is refused by name and nothing
/// is written; fewer steps are refused; a complete run is left as it is; a longer run
/// extends it to exactly the straight longer run.
#[test]
fn resume_takes_the_runs_configuration_and_only_extends_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = straight(tmp.path(), "3000");
    let d = dir.to_str().unwrap();
    let before = std::fs::read(dir.join("config.json")).unwrap();
    let config: Value = serde_json::from_slice(&before).unwrap();
    assert_eq!((config["learning_rate"].as_f64(), config["k"].as_u64()), (Some(0.05), Some(5)), "{config}");
    let changed = run(&["train", "--resume", d, "--seed", "7", "--lr", "0.5", "--quiet"]);
    fails_with(&changed, "--lr (the run has 0.05, asked 0.5), --seed (the run has 0, asked 7)");
    fails_with(&run(&["train", "--resume", d, "--env", "cmd", "--n", "50", "--reward-cmd", "true"]), "--env");
    fails_with(&run(&["train", "--resume", d, "--steps", "100"]), "--steps 100 is fewer than the 3000 steps");
    // The same value as the run's is not a change.
    let summary = std::fs::read(dir.join("summary.json")).unwrap();
    let again = json(&run(&["train", "--resume", d, "--seed", "0", "--quiet", "--json"]));
    assert_eq!(again["steps"], 3000);
    assert_eq!(std::fs::read(dir.join("summary.json")).unwrap(), summary);
    assert_eq!(std::fs::read(dir.join("config.json")).unwrap(), before, "config.json was rewritten");
    let longer = straight(tmp.path(), "6000");
    let extended = json(&run(&["train", "--resume", d, "--steps", "6000", "--quiet", "--json"]));
    assert_eq!(extended["steps"], 6000);
    assert_eq!(records(&dir), records(&longer));
    assert_eq!(events(&dir), events(&longer));
    let config: Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["steps"], 6000);
}

/// A complete run whose last step falls inside a loss window and off the validation
/// schedule (1,550 steps: windows of 100, validations every 1,500), extended to 3,000
/// steps, has exactly the records of the straight 3,000-step run: its cut-short window
/// continues, and the records only its end wrote (that window's loss, the validation and
/// the test at step 1,550) are gone.
#[test]
fn a_complete_run_extended_from_inside_a_window_is_the_straight_longer_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = straight(tmp.path(), "1550");
    let short = records(&dir);
    assert!(short.iter().any(|r| r.0 == 1550 && r.1 == "test"), "the short run tests at its end");
    let longer = straight(tmp.path(), "3000");
    json(&run(&["train", "--resume", dir.to_str().unwrap(), "--steps", "3000", "--quiet", "--json"]));
    assert_eq!(records(&dir), records(&longer));
    assert_eq!(events(&dir), events(&longer));
}

/// A checkpoint cut short is refused in one line (libtorch's C++ stack dropped), by
/// `--resume` and by `eval`; the run's summary is untouched. (A changed byte is the
/// checksum's: see the unit tests of `checkpoint`.)
#[test]
fn a_truncated_checkpoint_is_refused_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = straight(tmp.path(), "2000");
    let path = dir.join("checkpoint.ot");
    let good = std::fs::read(&path).unwrap();
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let output = run(&["train", "--resume", dir.to_str().unwrap(), "--steps", "3000", "--quiet"]);
    fails_with(&output, "cannot be read (truncated or not a checkpoint)");
    assert!(!stderr(&output).contains("frame #") && stderr(&output).len() < 500, "{}", stderr(&output));
    fails_with(&run(&["eval", "--run", dir.to_str().unwrap()]), "cannot be read");
    assert!(dir.join("summary.json").exists());
}

/// A folder's files: whole records only in the log, no temporary file left.
fn assert_whole(dir: &Path) {
    if let Ok(text) = std::fs::read_to_string(dir.join("metrics.jsonl")) {
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "a record was cut: {:?}",
            &text[text.len().saturating_sub(80)..]
        );
        assert!(text.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()));
    }
    let names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|name| name.contains("partial")), "{names:?}");
}

/// A write that fails (over the file-size limit, as on a full disk) stops the run with an
/// error naming the file, the folder and the step, leaving whole files. A failed append
/// keeps the last checkpoint, and the run resumes to the straight run's records; a failed
/// first checkpoint leaves nothing to resume, and frees the folder for the same command.
#[test]
fn a_failed_write_stops_the_run_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = straight(tmp.path(), "20000");
    let checkpoint_bytes = std::fs::metadata(reference.join("checkpoint.ot")).unwrap().len();
    let metrics_bytes = std::fs::metadata(reference.join("metrics.jsonl")).unwrap().len();
    assert!(2 * checkpoint_bytes < metrics_bytes, "the log must outgrow the checkpoint: {metrics_bytes} bytes");

    let dir = tmp.path().join("log-fails");
    let output = run_with_file_limit(&args(&dir, "20000"), 2 * checkpoint_bytes);
    fails_with(&output, &format!("writing {} at step", dir.join("metrics.jsonl").display()));
    assert!(stderr(&output).contains("the checkpoint of step"), "{}", stderr(&output));
    assert_whole(&dir);
    json(&run(&["train", "--resume", dir.to_str().unwrap(), "--quiet", "--json"]));
    assert_eq!(records(&dir), records(&reference));

    let dir = tmp.path().join("checkpoint-fails");
    let output = run_with_file_limit(&args(&dir, "20000"), checkpoint_bytes - 1);
    fails_with(&output, "writing the checkpoint of step 1500");
    assert!(stderr(&output).contains("is free again"), "{}", stderr(&output));
    assert_whole(&dir);
    assert!(!dir.join("checkpoint.ot").exists());
    json(&run_owned(&[args(&dir, "20000"), vec!["--json".into()]].concat()));
    assert_eq!(records(&dir), records(&reference));
}

/// A new run that fails before its first checkpoint leaves its folder free for the
/// corrected command; a folder with any run file left is never overwritten.
#[test]
fn a_failed_start_frees_the_folder_and_run_files_are_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cmd");
    let d = dir.to_str().unwrap();
    let failing = run(&["train", "--env", "cmd", "--n", "10", "--reward-cmd", "exit 3", "--out", d, "--quiet"]);
    fails_with(&failing, "is free again");
    assert!(!dir.join("config.json").exists() && !dir.join("metrics.jsonl").exists());
    let script = tmp.path().join("score.py");
    std::fs::write(
        &script,
        "import json, sys\nfor line in sys.stdin:\n    print(json.dumps([sum(a) for a in json.loads(line)['actions']]), flush=True)\n",
    )
    .unwrap();
    let command = format!("python3 {}", script.display());
    let fixed = ["train", "--env", "cmd", "--n", "10", "--steps", "5", "--reward-cmd", &command, "--out", d];
    json(&run(&[&fixed[..], &["--quiet", "--json"]].concat()));
    let complete = straight(tmp.path(), "2000");
    std::fs::remove_file(complete.join("config.json")).unwrap();
    let checkpoint = std::fs::read(complete.join("checkpoint.ot")).unwrap();
    fails_with(&run_owned(&args(&complete, "2000")), "already holds a run");
    assert_eq!(std::fs::read(complete.join("checkpoint.ot")).unwrap(), checkpoint);
}

/// `--fresh`: the same command again trains into the first free `DIR-N`, named on stderr,
/// and leaves the first run as it was.
#[test]
fn fresh_trains_the_same_command_again_into_the_first_free_numbered_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cov");
    let fresh = [args(&dir, "30"), vec!["--fresh".to_owned(), "--json".to_owned()]].concat();
    let first = json(&run_owned(&fresh));
    let checkpoint = std::fs::read(dir.join("checkpoint.ot")).unwrap();
    let again = run_owned(&fresh);
    let second = json(&again);
    let message = stderr(&again);
    let numbered = tmp.path().join("cov-2");
    assert!(message.contains(&format!("--fresh trains this one into {}", numbered.display())), "{message}");
    assert!(numbered.join("summary.json").exists());
    assert_eq!(std::fs::read(dir.join("checkpoint.ot")).unwrap(), checkpoint, "the first run is left as it was");
    // The same configuration and seed: the same results.
    assert_eq!(first["test"], second["test"]);
    // A numbered name that is a symbolic link is skipped, never followed.
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, tmp.path().join("cov-3")).unwrap();
    json(&run_owned(&fresh));
    assert!(tmp.path().join("cov-4").join("summary.json").exists());
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0, "nothing written through the link");
    fails_with(&run_owned(&args(&dir, "30")), "--fresh");
}

/// A metrics line damaged in the middle of the log is named, not dropped silently.
#[test]
fn a_damaged_metrics_line_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = straight(tmp.path(), "2000");
    let path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = "{\"step\": 2";
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    fails_with(&run(&["train", "--resume", dir.to_str().unwrap(), "--steps", "3000"]), "metrics.jsonl line 3");
}

/// Rewards too large for f32 stop the run at the step whose loss overflowed, with the
/// cause (not the NaN logits of the step after) and one account of what is kept.
#[test]
fn rewards_that_overflow_f32_are_named_as_the_cause() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("big.py");
    std::fs::write(
        &script,
        "import json, sys\nfor line in sys.stdin:\n    print(json.dumps([1e38 for a in json.loads(line)['actions']]), flush=True)\n",
    )
    .unwrap();
    let command = format!("python3 {}", script.display());
    let out = tmp.path().join("big");
    let output = run(&[
        "train",
        "--env",
        "cmd",
        "--n",
        "10",
        "--reward-cmd",
        &command,
        "--steps",
        "300",
        "--eval-every",
        "100",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    fails_with(&output, "the loss became");
    let message = stderr(&output);
    assert!(message.contains("3.4e38") && !message.contains("logit"), "{message}");
    assert_eq!(message.matches("checkpoint").count(), 1, "{message}");
}

/// Relative paths are recorded absolute (the data) or with the folder they are relative to
/// (the reward command), so a run resumes from any folder.
#[test]
fn a_run_with_relative_paths_resumes_from_another_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let (here, elsewhere) = (tmp.path().join("here"), tmp.path().join("elsewhere"));
    std::fs::create_dir_all(&elsewhere).unwrap();
    crate::train::synthetic_mnist(&here, 240, 60);
    std::fs::write(
        here.join("score.py"),
        "import json, sys\nfor line in sys.stdin:\n    print(json.dumps([sum(a) for a in json.loads(line)['actions']]), flush=True)\n",
    )
    .unwrap();
    let cmd = sfess()
        .current_dir(&here)
        .args(["train", "--env", "cmd", "--n", "10", "--reward-cmd", "python3 score.py", "--steps", "200"])
        .args(["--eval-every", "100", "--quiet", "--out", "cmd-run"])
        .output()
        .unwrap();
    assert!(cmd.status.success(), "{}", stderr(&cmd));
    let knn = sfess()
        .current_dir(&here)
        .args(["train", "--env", "knn-mnist", "--data-dir", ".", "--steps", "20", "--eval-every", "10"])
        .args(["--batch-size", "16", "--candidates", "24", "-k", "3", "--samples", "4", "--device", "cpu"])
        .args(["--quiet", "--out", "knn-run"])
        .output()
        .unwrap();
    assert!(knn.status.success(), "{}", stderr(&knn));
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(here.join("knn-run/config.json")).unwrap()).unwrap();
    assert_eq!(config["data_dir"].as_str(), Some(here.to_str().unwrap()), "{config}");
    for (run, steps) in [("cmd-run", "300"), ("knn-run", "30")] {
        let resumed = sfess()
            .current_dir(&elsewhere)
            .args(["train", "--resume", here.join(run).to_str().unwrap(), "--steps", steps, "--quiet", "--json"])
            .output()
            .unwrap();
        assert!(resumed.status.success(), "{run}: {}", stderr(&resumed));
    }
}
