//! `compare` and `report` on the synthetic MNIST: the table's numbers come from the run
//! folders, a second call runs nothing, and a failed run is reported without losing the rest.

use serde_json::Value;

use crate::common::{fails_with, run, run_owned, stderr, stdout};
use crate::train::synthetic_mnist;

fn compare_args<'a>(data: &'a str, out: &'a str, estimators: &'a str, samples: &'a str) -> Vec<&'a str> {
    vec![
        "compare",
        "--env",
        "knn-mnist",
        "--estimators",
        estimators,
        "--seeds",
        "0,1",
        "--steps",
        "20",
        "--eval-every",
        "10",
        "--batch-size",
        "16",
        "--candidates",
        "24",
        "-k",
        "3",
        "--samples",
        samples,
        "--lr",
        "0.003",
        "--jobs",
        "2",
        "--data-dir",
        data,
        "--out",
        out,
        "--device",
        "cpu",
    ]
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn compare_tabulates_the_run_folders_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_mnist(tmp.path(), 240, 60);
    let (data, out) = (tmp.path().to_str().unwrap(), tmp.path().join("cmp"));
    let mut args = compare_args(data, out.to_str().unwrap(), "sfess,sfess-vr", "4");
    args.extend(["--threads", "4"]);
    let output = run(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("| sfess-vr |"), "{}", stdout(&output));
    // Two jobs share the four threads.
    assert!(stderr(&output).contains("2 at a time with 2 threads each"), "{}", stderr(&output));
    for file in ["table.md", "table.csv", "summary.json", "curves.svg", "curves.png", "speed.svg", "speed.png"] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let summary = read_json(&out.join("summary.json"));
    // As in the paper, sfess-vr draws --samples per row and the others one.
    let samples = |name: &str| read_json(&out.join(format!("{name}-seed0/config.json")))["samples"].as_u64();
    assert_eq!((samples("sfess-vr"), samples("sfess")), (Some(4), Some(1)));
    for row in summary["groups"][0]["estimators"].as_array().unwrap() {
        let name = row["estimator"].as_str().unwrap();
        let values: Vec<f64> = [0, 1]
            .iter()
            .map(|seed| {
                read_json(&out.join(format!("{name}-seed{seed}/summary.json")))["test"]["accuracy"].as_f64().unwrap()
            })
            .collect();
        let mean = (values[0] + values[1]) / 2.0;
        let std = ((values[0] - mean).powi(2) + (values[1] - mean).powi(2)).sqrt();
        assert!((row["mean"].as_f64().unwrap() - mean).abs() < 1e-12, "{row}");
        assert!((row["std"].as_f64().unwrap() - std).abs() < 1e-12, "{row}");
        assert_eq!(row["seeds"], serde_json::json!([0, 1]));
        assert_eq!(row["paper"][0].as_f64(), None, "k = 3 is not a configuration of the paper");
    }
    // A second call finds every run complete and runs nothing.
    let again = run(&compare_args(data, out.to_str().unwrap(), "sfess,sfess-vr", "4"));
    assert!(again.status.success());
    assert!(stderr(&again).contains("4 runs complete already, 0 to run"), "{}", stderr(&again));
    // report rebuilds the same table from the folders alone.
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    std::fs::remove_file(out.join("table.md")).unwrap();
    let rebuilt = run(&["report", out.to_str().unwrap()]);
    assert!(rebuilt.status.success(), "{}", stderr(&rebuilt));
    assert_eq!(std::fs::read_to_string(out.join("table.md")).unwrap(), table);
}

#[test]
fn a_failed_run_is_reported_and_the_others_complete() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_mnist(tmp.path(), 240, 60);
    let (data, out) = (tmp.path().to_str().unwrap(), tmp.path().join("cmp"));
    // sfess-vr needs two samples per row (sfess always draws one).
    let output = run(&compare_args(data, out.to_str().unwrap(), "sfess,sfess-vr", "1"));
    // The report is written and printed; the comparison does not exit 0.
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("error: 2 of the 4 tasks of"), "{}", stderr(&output));
    let table = stdout(&output);
    let line = table.lines().find(|l| l.starts_with("| sfess-vr |")).unwrap();
    assert!(line.contains("seed 0 failed") && line.contains("at least 2 samples"), "{line}");
    let summary = read_json(&out.join("summary.json"));
    let rows = summary["groups"][0]["estimators"].as_array().unwrap();
    let sfess = rows.iter().find(|r| r["estimator"] == "sfess").unwrap();
    assert_eq!(sfess["seeds"], serde_json::json!([0, 1]));
    let vr = rows.iter().find(|r| r["estimator"] == "sfess-vr").unwrap();
    assert!(vr["mean"].is_null() && vr["failed"].as_object().unwrap().len() == 2, "{vr}");
}

#[test]
fn report_on_a_folder_without_runs_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let output = run(&["report", tmp.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("holds no comparison runs"), "{}", stderr(&output));
}

/// `compare` on max-coverage (no data): `steps` steps, validated every 500.
fn coverage_args(out: &std::path::Path, seeds: &str, steps: &str) -> Vec<String> {
    let out = out.to_str().unwrap();
    ["compare", "--env", "max-coverage", "--estimators", "sfess,sfess-vr", "--seeds", seeds, "--steps", steps]
        .iter()
        .chain(&["--eval-every", "500", "--jobs", "2", "--device", "cpu", "--out", out])
        .map(|s| s.to_string())
        .collect()
}

/// A comparison folder keeps its request: another setting is refused by name (the pairs
/// it holds were trained with the first), and so is a pair asked twice.
#[test]
fn a_comparison_refuses_a_request_that_does_not_match_its_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cmp");
    let first = run_owned(&coverage_args(&out, "0", "600"));
    assert!(first.status.success(), "{}", stderr(&first));
    fails_with(&run_owned(&coverage_args(&out, "0", "900")), "--steps (it has 600, asked 900)");
    let mut other_k = coverage_args(&out, "0", "600");
    other_k.extend(["-k".to_owned(), "7".to_owned()]);
    fails_with(&run_owned(&other_k), "-k (it has 5, asked 7)");
    // A pair folder trained by hand with another learning rate is named.
    let pair = out.join("sfess-seed1");
    std::fs::create_dir_all(&pair).unwrap();
    let by_hand = run(&[
        "train",
        "--env",
        "max-coverage",
        "--estimator",
        "sfess",
        "--seed",
        "1",
        "--steps",
        "600",
        "--eval-every",
        "500",
        "--samples",
        "1",
        "--lr",
        "0.2",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        pair.to_str().unwrap(),
    ]);
    assert!(by_hand.status.success(), "{}", stderr(&by_hand));
    fails_with(&run_owned(&coverage_args(&out, "0,1", "600")), "sfess-seed1 (--lr (it has 0.2, asked 0.05))");
    fails_with(&run_owned(&coverage_args(&tmp.path().join("twice"), "0,0", "600")), "--seeds gives seed 0 twice");
}

/// SIGTERM to compare reaches its running children, which checkpoint and stop; compare
/// waits for them and exits 143, leaving no process behind; the same command then
/// finishes the comparison. A second compare on the folder meanwhile is refused.
#[test]
fn a_signal_to_compare_stops_its_children_and_a_rerun_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cmp");
    let args = coverage_args(&out, "0", "40000");
    let mut child = crate::common::sfess()
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !["sfess-seed0", "sfess-vr-seed0"].iter().all(|p| out.join(p).join("metrics.jsonl").exists()) {
        assert!(std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the runs did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // One compare at a time in a folder.
    fails_with(&run_owned(&args), "in use by another process");
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143), "{}", stderr(&output));
    assert!(stderr(&output).contains("compare stopped by SIGTERM"), "{}", stderr(&output));
    let children = std::process::Command::new("pgrep").args(["-f", out.to_str().unwrap()]).output().unwrap();
    assert!(children.stdout.is_empty(), "runs left behind: {}", String::from_utf8_lossy(&children.stdout));
    for pair in ["sfess-seed0", "sfess-vr-seed0"] {
        assert!(!out.join(pair).join("failed.txt").exists() && !out.join(pair).join("summary.json").exists());
    }
    let rerun = run_owned(&args);
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    assert!(out.join("sfess-seed0").join("summary.json").exists() && out.join("sfess-vr-seed0/summary.json").exists());
}

/// A run killed by a signal is reported with the signal, not as a run with no message.
#[test]
fn a_run_killed_by_a_signal_is_reported_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cmp");
    // The reward command kills the train that runs it (the parent of its `sh`).
    let output = run(&[
        "compare",
        "--env",
        "cmd",
        "--n",
        "10",
        "--reward-cmd",
        "kill -9 $PPID",
        "--estimators",
        "sfess",
        "--seeds",
        "0",
        "--steps",
        "10",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("(sfess-seed0: killed by SIGKILL (signal 9))"), "{}", stderr(&output));
    let failed = std::fs::read_to_string(out.join("sfess-seed0").join("failed.txt")).unwrap();
    assert_eq!(failed.trim(), "killed by SIGKILL (signal 9)");
}

/// `--jobs` of any size runs the pairs (no more workers than runs); 0 is refused.
#[test]
fn any_number_of_jobs_is_safe() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = coverage_args(&tmp.path().join("many"), "0", "20");
    let jobs = args.iter().position(|a| a == "--jobs").unwrap() + 1;
    args[jobs] = u64::MAX.to_string();
    let output = run_owned(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    args[jobs] = "0".to_owned();
    fails_with(&run_owned(&args), "--jobs must be at least 1");
}

/// Ctrl-C at a terminal signals compare's whole process group: compare stops with 130 and
/// every running child with its checkpoint. (The children have groups of their own, so
/// they get the signal once, from compare; with these fast steps a child in compare's
/// group would usually have checkpointed before the second signal, so this checks the
/// outcome, not the grouping.)
#[test]
fn ctrl_c_at_the_terminal_reaches_each_run_once() {
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cmp");
    let mut child = crate::common::sfess()
        .args(coverage_args(&out, "0", "40000"))
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pairs = ["sfess-seed0", "sfess-vr-seed0"];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let trained = |pair: &str| {
        std::fs::read_to_string(out.join(pair).join("metrics.jsonl"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("\"train\""))
    };
    while !pairs.iter().all(|p| trained(p)) {
        assert!(std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the runs did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let group = format!("-{}", child.id());
    assert!(std::process::Command::new("kill").args(["-INT", "--", &group]).status().unwrap().success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    for pair in pairs {
        assert!(out.join(pair).join("checkpoint.ot").exists(), "{pair} stopped without its checkpoint");
    }
}
