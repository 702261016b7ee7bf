//! `sweep FILE --out DIR` on this machine: a grid becomes run folders named by its values,
//! the report has one table per configuration, `sweep status` reads the folders, and a bad
//! file is refused before anything is written.

use std::path::Path;

use serde_json::Value;

use crate::common::{fails_with, run, stderr, stdout};

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

const GRID: &str = r#"
description = "two set counts, two estimators, two seeds"
[fixed]
env = "max-coverage"
steps = 40
eval_every = 20
[grid]
options.n = [30, 40]
estimator = ["sfess-vr", "sfess"]
seed = [0, 1]
[estimators.sfess]
samples = 1
"#;

#[test]
fn a_sweep_runs_its_grid_into_named_run_folders_and_reports_each_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(&tmp.path().join("grid.toml"), GRID);
    let out = tmp.path().join("out");
    let output = run(&["sweep", &file, "--out", out.to_str().unwrap(), "--jobs", "2", "--device", "cpu"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let recorded: Value = serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(recorded["tasks"][0]["config"]["device"], "cpu", "--device overrides the file's");
    let tables = stdout(&output);
    assert!(tables.contains("## max-coverage, n 30") && tables.contains("## max-coverage, n 40"), "{tables}");
    let mut values = Vec::new();
    for n in [30, 40] {
        for (estimator, samples) in [("sfess-vr", 32), ("sfess", 1)] {
            for seed in [0, 1] {
                let dir = out.join(format!("n{n}-{estimator}-seed{seed}"));
                let config: Value =
                    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
                assert_eq!(
                    (
                        config["env_options"]["max-coverage"]["n"].as_u64(),
                        config["samples"].as_u64(),
                        config["seed"].as_u64()
                    ),
                    (Some(n), Some(samples), Some(seed)),
                    "{config}"
                );
                let summary: Value =
                    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
                values.push((n, estimator, summary["test"]["coverage"].as_f64().unwrap()));
            }
        }
    }
    // Each table's mean is the mean of its own runs.
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let groups = summary["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    for group in groups {
        let n: u64 = group["values"]["options.n"].as_str().unwrap().parse().unwrap();
        for row in group["estimators"].as_array().unwrap() {
            let mine: Vec<f64> = values.iter().filter(|v| v.0 == n && v.1 == row["estimator"]).map(|v| v.2).collect();
            assert!((row["mean"].as_f64().unwrap() - (mine[0] + mine[1]) / 2.0).abs() < 1e-12, "{row}");
            assert_eq!(row["steps"], serde_json::json!([40]));
        }
    }
    for figure in ["curves", "curves-evaluations", "curves-seconds", "speed"] {
        assert!(out.join(format!("max-coverage-n-30-{figure}.png")).exists(), "{figure}");
    }
    // The folders say where each task stands.
    let status = run(&["sweep", "status", out.to_str().unwrap()]);
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(stdout(&status).starts_with("8 tasks: 8 done\n"), "{}", stdout(&status));
    let status = run(&["sweep", "status", out.to_str().unwrap(), "--json"]);
    let status: Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(status["tasks"][0], serde_json::json!({"name": "n30-sfess-vr-seed0", "state": "done"}));
    // The same request again runs nothing; one that changes a task is refused by name.
    let again = run(&["sweep", &file, "--out", out.to_str().unwrap(), "--device", "cpu"]);
    assert!(stderr(&again).contains("8 runs complete already, 0 to run"), "{}", stderr(&again));
    let longer = write(&tmp.path().join("longer.toml"), &GRID.replace("steps = 40", "steps = 50"));
    fails_with(
        &run(&["sweep", &longer, "--out", out.to_str().unwrap(), "--device", "cpu"]),
        "n30-sfess-vr-seed0 (--steps (it has 40, asked 50))",
    );
}

#[test]
fn a_bad_sweep_file_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cases = [
        ("unknown.toml", GRID.replace("[fixed]", "[fixed]\nstepz = 3"), "unknown field `stepz`"),
        ("empty.toml", "[grid]\n".to_owned(), "the grid is empty"),
        ("type.toml", GRID.replace("seed = [0, 1]", "seed = [0, \"one\"]"), "seed: invalid type: string \"one\""),
        ("range.toml", GRID.replace("options.n = [30, 40]", "options.n = [30, 0]"), "combination n0-sfess-vr-seed0"),
        ("twice.toml", GRID.replace("seed = [0, 1]", "seed = [0, 0]"), "grid.seed gives 0 twice"),
        ("grid.yaml", GRID.to_owned(), "a sweep file is TOML (.toml) or JSON (.json)"),
    ];
    for (name, text, phrase) in cases {
        let file = write(&tmp.path().join(name), &text);
        fails_with(&run(&["sweep", &file, "--out", out.to_str().unwrap()]), phrase);
        assert!(!out.exists(), "{name} created the sweep folder");
    }
    let file = write(&tmp.path().join("grid.toml"), GRID);
    fails_with(
        &run(&["sweep", &file, "--out", out.to_str().unwrap(), "--partition", "gpu"]),
        "apply to --scheduler slurm",
    );
    fails_with(&run(&["sweep", "status", tmp.path().to_str().unwrap()]), "holds no sweep");
}

/// A cheap grid of `lists` under `[grid]` on max-coverage, 20 steps.
fn cheap(lists: &str) -> String {
    format!("[fixed]\nenv = \"max-coverage\"\nsteps = 20\neval_every = 10\nsamples = 2\n[grid]\n{lists}")
}

/// A label that is not a folder name is refused before anything is written (`..` trained a
/// whole run into the sweep folder's parent, `.` into the sweep folder itself); a folder
/// that holds a run is refused as a sweep's (its summary was overwritten); a sweep whose
/// task failed writes its report and exits 1, naming the task.
#[test]
fn bad_names_run_folders_and_failed_tasks_are_not_a_quiet_success() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    for (label, phrase) in [("..", "the name \"..\" is not allowed"), (".", "the name \".\""), ("table.md", "taken by")]
    {
        let file =
            write(&tmp.path().join("labels.toml"), &cheap(&format!("size = [{{ k = 3, label = \"{label}\" }}]\n")));
        fails_with(&run(&["sweep", &file, "--out", out.to_str().unwrap()]), phrase);
        assert!(!out.exists() && !tmp.path().join("config.json").exists(), "{label}");
    }
    let grid = write(&tmp.path().join("grid.toml"), &cheap("seed = [0]\n"));
    let trained = tmp.path().join("trained");
    let train = run(&["train", "--env", "max-coverage", "--steps", "5", "--device", "cpu", "--quiet", "--out"]
        .into_iter()
        .chain([trained.to_str().unwrap()])
        .collect::<Vec<_>>());
    assert!(train.status.success(), "{}", stderr(&train));
    let summary = std::fs::read_to_string(trained.join("summary.json")).unwrap();
    fails_with(
        &run(&["sweep", &grid, "--out", trained.to_str().unwrap()]),
        "holds a run (its config.json), not a sweep",
    );
    assert_eq!(std::fs::read_to_string(trained.join("summary.json")).unwrap(), summary);
    // sfess-vr needs two samples per row: the task fails, the others and the report go on.
    let failing = write(
        &tmp.path().join("failing.toml"),
        &cheap("estimator = [\"sfess\", \"sfess-vr\"]\nseed = [0]\n").replace("samples = 2", "samples = 1"),
    );
    let output = run(&["sweep", &failing, "--out", out.to_str().unwrap(), "--device", "cpu"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stdout(&output).contains("seed 0 failed"), "{}", stdout(&output));
    let error = stderr(&output);
    assert!(error.contains("error: 1 of the 2 tasks of") && error.contains("(sfess-vr-seed0: "), "{error}");
    assert!(out.join("table.md").exists() && out.join("sfess-seed0/summary.json").exists());
}

/// The report writes its tables before any figure and names a file it cannot write; its
/// groups' figures never overwrite each other (titles that differ only in punctuation);
/// a run it cannot read is named and skipped, not the end of the report.
#[test]
fn the_report_keeps_its_tables_its_figures_apart_and_skips_what_it_cannot_read() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let file = write(
        &tmp.path().join("grid.toml"),
        &cheap("size = [{ k = 3, label = \"a b\" }, { k = 4, label = \"a-b\" }]\nseed = [0]\n"),
    );
    let output = run(&["sweep", &file, "--out", out.to_str().unwrap(), "--device", "cpu"]);
    assert!(output.status.success(), "{}", stderr(&output));
    // Both groups' titles make the file name `max-coverage-size-a-b`.
    let first = std::fs::read(out.join("max-coverage-size-a-b-curves.svg")).unwrap();
    let second = std::fs::read(out.join("max-coverage-size-a-b-2-curves.svg")).unwrap();
    assert_ne!(first, second);
    assert!(String::from_utf8_lossy(&second).contains("size a-b"));
    // A figure that cannot be written (here a folder in its place) is named; the tables are there.
    for table in ["table.md", "table.csv", "summary.json"] {
        std::fs::remove_file(out.join(table)).unwrap();
    }
    std::fs::remove_file(out.join("max-coverage-size-a-b-speed.png")).unwrap();
    std::fs::create_dir(out.join("max-coverage-size-a-b-speed.png")).unwrap();
    let report = run(&["report", out.to_str().unwrap()]);
    fails_with(&report, "max-coverage-size-a-b-speed");
    assert!(stderr(&report).contains("table.md and "), "{}", stderr(&report));
    for table in ["table.md", "table.csv", "summary.json"] {
        assert!(out.join(table).exists(), "{table}");
    }
    std::fs::remove_dir(out.join("max-coverage-size-a-b-speed.png")).unwrap();
    // A comparison without sweep.json is reported from its run folders' config.json: a
    // broken one is named and skipped.
    std::fs::remove_file(out.join("sweep.json")).unwrap();
    std::fs::write(out.join("a-b-seed0/config.json"), "{").unwrap();
    let report = run(&["report", out.to_str().unwrap()]);
    assert!(report.status.success(), "{}", stderr(&report));
    assert!(
        stderr(&report).contains("report: skipping") && stderr(&report).contains("a-b-seed0"),
        "{}",
        stderr(&report)
    );
    let table = stdout(&report);
    assert!(table.contains("Skipped runs") && table.contains("- a-b-seed0: "), "{table}");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["skipped"][0]["name"], "a-b-seed0");
    // So is a summary.json that does not parse.
    std::fs::write(out.join("a_b-seed0/summary.json"), "{").unwrap();
    let report = run(&["report", out.to_str().unwrap()]);
    assert!(report.status.success(), "{}", stderr(&report));
    assert!(
        stdout(&report).contains("- a_b-seed0: ") && stdout(&report).contains("is not a run's summary"),
        "{}",
        stdout(&report)
    );
}
