//! `compare` and `report` on the synthetic MNIST: the table's numbers come from the run
//! folders, a second call runs nothing, and a failed run is reported without losing the rest.

use serde_json::Value;

use crate::common::{run, stderr, stdout};
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
    for row in summary["estimators"].as_array().unwrap() {
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
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    let line = table.lines().find(|l| l.starts_with("| sfess-vr |")).unwrap();
    assert!(line.contains("seed 0 failed") && line.contains("at least 2 samples"), "{line}");
    let summary = read_json(&out.join("summary.json"));
    let rows = summary["estimators"].as_array().unwrap();
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
