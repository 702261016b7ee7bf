//! The user example `examples/own_env.rs` from its own binary: a user's `main.rs` that
//! registers two environments (a closure, an `Environment` implementation) gets `train`,
//! `--resume`, `eval`, `compare` and `report` for them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::{fails_with, json, stderr, stdout};

/// The example's binary (`cargo test` builds the examples beside the tests).
fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(Path::parent).unwrap();
    let path = profile.join("examples").join("own_env");
    assert!(path.exists(), "{} is not built (cargo test builds the examples)", path.display());
    path
}

fn own(args: &[&str]) -> Output {
    Command::new(binary()).args(args).env_remove("LD_LIBRARY_PATH").stdin(Stdio::null()).output().unwrap()
}

fn lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap().lines().map(str::to_owned).collect()
}

/// Records without their clocks (`elapsed_seconds`, the `seconds_per_step` records), which
/// differ between runs.
fn records(dir: &Path) -> Vec<Value> {
    lines(dir)
        .iter()
        .filter(|line| !line.contains("\"seconds_per_step\""))
        .map(|line| {
            let mut record: Value = serde_json::from_str(line).unwrap();
            record.as_object_mut().unwrap().remove("elapsed_seconds");
            record
        })
        .collect()
}

fn train(env: &str, steps: &str, out: &Path, extra: &[&str]) -> Value {
    let out = out.to_str().unwrap();
    let base = ["train", "--env", env, "--steps", steps, "--eval-every", "20", "--device", "cpu", "--quiet", "--json"];
    json(&own(&[&base[..], extra, &["--out", out]].concat()))
}

#[test]
fn a_users_binary_trains_resumes_and_evaluates_its_own_environments() {
    let tmp = tempfile::tempdir().unwrap();
    for env in ["line-cover", "hidden-values"] {
        let straight = tmp.path().join(format!("{env}-straight"));
        let summary = train(env, "60", &straight, &[]);
        assert_eq!(summary["env"], env);
        assert_eq!(summary["steps"], 60);
        let cut = tmp.path().join(format!("{env}-cut"));
        train(env, "20", &cut, &[]);
        let resumed = json(&own(&["train", "--resume", cut.to_str().unwrap(), "--steps", "60", "--quiet", "--json"]));
        assert_eq!(resumed["test"], summary["test"], "{env}");
        assert_eq!(records(&cut), records(&straight), "{env}");
        let evaluated = json(&own(&["eval", "--run", straight.to_str().unwrap()]));
        assert_eq!(&evaluated, &summary["test"], "{env}");
    }
    // line-cover's baselines reach the summary; the policy beats random sites.
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("line-cover-straight/summary.json")).unwrap())
            .unwrap();
    assert!(
        summary["test"]["distance"].as_f64().unwrap() < summary["baselines"]["random"].as_f64().unwrap(),
        "{summary}"
    );
    // Its options are checked like the shipped ones'.
    fails_with(
        &own(&[
            "train",
            "--env",
            "hidden-values",
            "--env-option",
            "noise=-1",
            "--out",
            tmp.path().join("x").to_str().unwrap(),
        ]),
        "hidden-values option noise: must be positive and at most 100, got -1",
    );
    let page = own(&["envs", "line-cover"]);
    assert!(
        stdout(&page).contains("| targets | integer 1..=100000 | 64 | targets drawn per step |"),
        "{}",
        stderr(&page)
    );
    // The shipped environments are there too.
    assert!(stdout(&own(&["envs"])).lines().any(|l| l.starts_with("| knn-mnist |")));
}

#[test]
fn a_users_binary_compares_two_estimators_over_two_seeds_on_its_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cmp");
    let args = [
        "compare",
        "--env",
        "line-cover",
        "--estimators",
        "sfess,sfess-vr",
        "--seeds",
        "0,1",
        "--steps",
        "40",
        "--eval-every",
        "20",
        "--jobs",
        "2",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ];
    let output = own(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    assert!(table.starts_with("line-cover — test distance (lower is better)"), "{table}");
    for estimator in ["sfess", "sfess-vr"] {
        let row =
            table.lines().find(|l| l.starts_with(&format!("| {estimator} |"))).unwrap_or_else(|| panic!("{table}"));
        assert_eq!(row.split(" | ").nth(2), Some("2 (0, 1)"), "two seeds: {row}");
        for seed in [0, 1] {
            assert!(out.join(format!("{estimator}-seed{seed}/summary.json")).exists());
        }
    }
    assert!(table.contains("evenly-spaced"), "the baseline is in the table: {table}");
    // report rebuilds the same table from the folders, from the same binary.
    let report = own(&["report", out.to_str().unwrap()]);
    assert_eq!(stdout(&report), table, "{}", stderr(&report));
}
