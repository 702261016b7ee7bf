//! `train`, `eval` and the run folder, on a tiny synthetic MNIST made by the test.

use std::path::Path;

use serde_json::Value;
use sfess_envs::data::write_idx;

use crate::common::{fails_with, json, run};

/// Writes a synthetic MNIST under `root/mnist/`: each digit class lights its own band of
/// rows of the 28×28 image, plus deterministic noise; 30% of the images light a random
/// band instead, so accuracy saturates near 0.73 and keeps moving for a while.
pub fn synthetic_mnist(root: &Path, train: usize, test: usize) {
    let dir = root.join("mnist");
    std::fs::create_dir_all(&dir).unwrap();
    let mut state = 12345u64;
    let mut noise = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as u8 % 60
    };
    for (name, count) in [("train", train), ("t10k", test)] {
        let labels: Vec<u8> = (0..count).map(|i| (i % 10) as u8).collect();
        let mut pixels = Vec::with_capacity(count * 784);
        for &label in &labels {
            let band = if noise() % 10 < 3 { (noise() % 10) as usize } else { label as usize };
            for row in 0..28 {
                for _ in 0..28 {
                    let lit = row / 3 == band;
                    pixels.push(if lit { 190 } else { 0 } + noise());
                }
            }
        }
        write_idx(&dir.join(format!("{name}-images-idx3-ubyte.gz")), &[count, 28, 28], &pixels, true).unwrap();
        write_idx(&dir.join(format!("{name}-labels-idx1-ubyte.gz")), &[count], &labels, true).unwrap();
    }
}

/// A short k-NN run's arguments on the synthetic data.
fn knn_args<'a>(data: &'a str, out: &'a str, steps: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--env",
        "knn-mnist",
        "--data-dir",
        data,
        "--out",
        out,
        "--steps",
        steps,
        "--eval-every",
        "10",
        "--batch-size",
        "16",
        "--candidates",
        "24",
        "-k",
        "3",
        "--samples",
        "4",
        "--lr",
        "0.003",
        "--device",
        "cpu",
        "--quiet",
        "--json",
    ]
}

/// `args` with `flag` set to `value` (replacing the value it had, if any).
fn with<'a>(mut args: Vec<&'a str>, flag: &'a str, value: &'a str) -> Vec<&'a str> {
    match args.iter().position(|a| *a == flag) {
        Some(i) => args[i + 1] = value,
        None => args.extend([flag, value]),
    }
    args
}

/// The JSON objects of a JSON-lines file.
pub(crate) fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_run_writes_its_folder_and_eval_recomputes_the_test_metric() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_mnist(tmp.path(), 240, 60);
    let (data, out) = (tmp.path().to_str().unwrap(), tmp.path().join("run"));
    let summary = json(&run(&knn_args(data, out.to_str().unwrap(), "30")));
    for key in ["env", "estimator", "seed", "steps", "device", "seconds_per_step", "test"] {
        assert!(summary.get(key).is_some(), "{key} missing: {summary}");
    }
    assert_eq!((summary["env"].as_str(), summary["estimator"].as_str()), (Some("knn-mnist"), Some("sfess-vr")));
    let accuracy = summary["test"]["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy));
    for file in ["config.json", "metrics.jsonl", "checkpoint.ot", "summary.json"] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let records = lines(&out.join("metrics.jsonl"));
    let validation: Vec<u64> =
        records.iter().filter(|r| r["split"] == "validation").map(|r| r["step"].as_u64().unwrap()).collect();
    assert_eq!(validation, [0, 10, 20, 30]);
    assert!(records.iter().all(|r| r["elapsed_seconds"].as_f64().is_some() && r["metric"].is_string()));
    let evaluated = json(&run(&["eval", "--run", out.to_str().unwrap(), "--device", "cpu"]));
    assert_eq!(evaluated["accuracy"].as_f64(), Some(accuracy));
    // A second run into the same folder is refused.
    fails_with(&run(&knn_args(data, out.to_str().unwrap(), "30")), "already holds a run");
}

/// Two 40-step k-NN runs and one of 20 steps resumed to 40, with `extra` flags on the
/// synthetic data: the reruns and the resumed run have the straight run's test metrics.
/// Returns the folder and the straight and resumed runs' folders.
fn straight_again_and_resumed(extra: &[&str]) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_mnist(tmp.path(), 240, 60);
    let data = tmp.path().to_str().unwrap();
    let (straight, again, resumed) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    let train = |out: &Path, steps: &str| -> Value {
        let mut args = knn_args(data, out.to_str().unwrap(), steps);
        args.extend(extra);
        json(&run(&args))
    };
    let a = train(&straight, "40");
    let b = train(&again, "40");
    assert_eq!(a["test"], b["test"], "same seed, same metrics");
    train(&resumed, "20");
    let c = json(&run(&["train", "--resume", resumed.to_str().unwrap(), "--steps", "40", "--quiet", "--json"]));
    assert_eq!(a["test"], c["test"]);
    (tmp, straight, resumed)
}

/// Resuming from the checkpoint at step 20 ends exactly where the uninterrupted run does,
/// and the same seed gives the same metrics.
#[test]
fn resume_and_rerun_give_identical_results() {
    let (_tmp, straight, resumed) = straight_again_and_resumed(&[]);
    let values = |dir: &Path| -> Vec<(u64, String, f64)> {
        lines(&dir.join("metrics.jsonl"))
            .iter()
            .filter(|r| r["metric"] != "seconds_per_step")
            .map(|r| {
                (r["step"].as_u64().unwrap(), r["split"].as_str().unwrap().to_owned(), r["value"].as_f64().unwrap())
            })
            .collect()
    };
    assert_eq!(values(&straight), values(&resumed));
}

/// The parallel backend (the CUDA default) trains through the same runner on CPU tensors:
/// runs repeat exactly, and a resumed run ends where the straight one does (its sampler's
/// uniforms come from libtorch's generator, reseeded from each step's generator).
#[test]
fn the_parallel_backend_trains_resumes_and_repeats() {
    let (_tmp, straight, resumed) = straight_again_and_resumed(&["--normalizer", "parallel", "--threads", "1"]);
    let config = std::fs::read_to_string(resumed.join("config.json")).unwrap();
    assert!(config.contains("\"normalizer\": \"parallel\""), "{config}");
    let losses = |dir: &Path| -> Vec<f64> {
        lines(&dir.join("metrics.jsonl"))
            .iter()
            .filter(|r| r["split"] == "train" && r["metric"] != "seconds_per_step")
            .map(|r| r["value"].as_f64().unwrap())
            .collect()
    };
    assert_eq!(losses(&straight), losses(&resumed));
}

#[test]
fn learning_beats_the_untrained_embedding() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_mnist(tmp.path(), 400, 100);
    let out = tmp.path().join("run");
    json(&run(&with(knn_args(tmp.path().to_str().unwrap(), out.to_str().unwrap(), "150"), "--eval-every", "50")));
    let accuracy: Vec<f64> = lines(&out.join("metrics.jsonl"))
        .iter()
        .filter(|r| r["split"] == "validation")
        .map(|r| r["value"].as_f64().unwrap())
        .collect();
    let (first, last) = (accuracy[0], *accuracy.last().unwrap());
    assert!(last > first + 0.2 && last > 0.6, "validation accuracy {accuracy:?}");
}

#[test]
fn bad_input_gives_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_str().unwrap();
    let out = tmp.path().join("run");
    fails_with(&run(&knn_args(data, out.to_str().unwrap(), "5")), "fetch-data");
    synthetic_mnist(tmp.path(), 240, 60);
    fails_with(&run(&with(knn_args(data, out.to_str().unwrap(), "5"), "--samples", "1")), "at least 2 samples");
    fails_with(&run(&with(knn_args(data, out.to_str().unwrap(), "5"), "-k", "30")), "out of range");
    fails_with(&run(&["eval", "--run", tmp.path().join("nothing").to_str().unwrap()]), "holds no run");
    let bad_config = tmp.path().join("bad.json");
    std::fs::write(&bad_config, r#"{"steps": 10, "unknown_field": 1}"#).unwrap();
    fails_with(&run(&["train", "--config", bad_config.to_str().unwrap(), "--quiet"]), "not a valid configuration");
}

/// A diverging run stops with a message saying where, and keeps its last good checkpoint.
#[test]
fn a_diverging_run_stops_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_mnist(tmp.path(), 240, 60);
    let out = tmp.path().join("run");
    let output = run(&with(knn_args(tmp.path().to_str().unwrap(), out.to_str().unwrap(), "200"), "--lr", "1e30"));
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("step"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.join("summary.json").exists());
    assert!(!std::fs::read_dir(&out).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains("partial")));
}

/// Feature selection and the subset VAE learn: their validation loss falls clearly below
/// the untrained value within 60 steps on the synthetic data (SIMPLE also exercises the
/// VAE's one-loss-per-image path through ∂f/∂z).
#[test]
fn feature_selection_and_the_vae_learn() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_mnist(tmp.path(), 240, 60);
    let data = tmp.path().to_str().unwrap();
    for (env, estimator, metric, normalizer) in [
        ("feature-selection-mnist", "sfess-vr", "bce", "auto"),
        ("vae-mnist", "sfess-vr", "loss", "auto"),
        ("vae-mnist", "simple", "loss", "auto"),
        // The CUDA default, on CPU tensors: the KL's gradient and SIMPLE's backward through the tree.
        ("vae-mnist", "sfess-vr", "loss", "parallel"),
        ("vae-mnist", "simple", "loss", "parallel"),
    ] {
        let out = tmp.path().join(format!("{env}-{estimator}-{normalizer}"));
        let args = [
            "train",
            "--env",
            env,
            "--estimator",
            estimator,
            "--data-dir",
            data,
            "--out",
            out.to_str().unwrap(),
            "--steps",
            "60",
            "--eval-every",
            "30",
            "--batch-size",
            "16",
            "--samples",
            "4",
            "-k",
            "5",
            "--lr",
            "0.003",
            "--normalizer",
            normalizer,
            "--device",
            "cpu",
            "--quiet",
            "--json",
        ];
        let summary = json(&run(&args));
        assert!(summary["test"][metric].as_f64().is_some(), "{summary}");
        let values: Vec<f64> = lines(&out.join("metrics.jsonl"))
            .iter()
            .filter(|r| r["split"] == "validation" && r["metric"] == metric)
            .map(|r| r["value"].as_f64().unwrap())
            .collect();
        assert_eq!(values.len(), 3, "{env}: {values:?}");
        assert!(values[2] < 0.9 * values[0], "{env} with {estimator}: validation {metric} {values:?}");
    }
}

/// The paper's feature selection starts its logits from N(0, 1) draws, as the paper's code
/// does (from zero its top-k evaluation mask is one the network never trained on: see
/// `GlobalLogits::standard_normal`), seeded by the run's seed; `--policy logits` elsewhere
/// starts from zero, the uniform law.
#[test]
fn feature_selection_starts_from_normal_logits_and_other_logits_from_zero() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_mnist(tmp.path(), 240, 60);
    let data = tmp.path().to_str().unwrap();
    let first_marginals = |name: &str, args: &[&str]| -> Vec<f64> {
        let out = tmp.path().join(name);
        let common = ["train", "--out", out.to_str().unwrap(), "--steps", "1", "--device", "cpu", "--quiet"];
        let all: Vec<&str> = common.iter().chain(args).copied().collect();
        let output = run(&all);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let first = &lines(&out.join("marginals.jsonl"))[0];
        assert_eq!(first["step"], 0);
        first["marginals"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
    };
    let fs = ["--env", "feature-selection-mnist", "--data-dir", data, "--batch-size", "8", "--samples", "2"];
    let (seed0, again) = (first_marginals("fs-a", &fs), first_marginals("fs-b", &fs));
    assert_eq!(seed0, again, "the same seed draws the same logits");
    assert_eq!(seed0.len(), 784);
    assert!((seed0.iter().sum::<f64>() - 50.0).abs() < 1e-3);
    // N(0, 1) logits: the largest of 784 marginals is several times the uniform 50/784.
    let (min, max) = seed0.iter().fold((1.0f64, 0.0f64), |(lo, hi), &m| (lo.min(m), hi.max(m)));
    assert!(max > 3.0 * 50.0 / 784.0 && min < 0.5 * 50.0 / 784.0, "{min} {max}");
    let seed1: Vec<&str> = fs.iter().copied().chain(["--seed", "1"]).collect();
    assert_ne!(first_marginals("fs-seed1", &seed1), seed0);
    let coverage = first_marginals("coverage", &["--env", "max-coverage", "--policy", "logits"]);
    assert!(coverage.iter().all(|&m| (m - coverage[0]).abs() < 1e-6), "uniform: {coverage:?}");
}

/// `bench train` times each task in a child process of its own and merges their reports: one
/// row per task, each with its backend, a positive step time and floor.
#[test]
fn bench_train_reports_every_task_from_its_own_process() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_mnist(tmp.path(), 600, 60);
    let data = tmp.path().to_str().unwrap();
    let output = run(&["--device", "cpu", "bench", "train", "--seconds", "0.01", "--data-dir", data, "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let rows = report["measurements"].as_array().unwrap();
    let tasks: Vec<&str> = rows.iter().map(|r| r["task"].as_str().unwrap()).collect();
    assert_eq!(tasks, ["k-NN (MNIST)", "VAE (20, 20, 10)", "VAE (10, 10, 5)", "feature selection k = 50"]);
    for row in rows {
        assert_eq!(row["normalizer"], "stable", "{row}");
        assert!(row["seconds_per_step"].as_f64().unwrap() > 0.0 && row["floor_seconds"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(report["machine"]["device"], "cpu");
    let unknown = run(&["--device", "cpu", "bench", "train", "--task", "9", "--data-dir", data]);
    fails_with(&unknown, "--task 9: there are 4 tasks");
}

/// Free logits on an environment that gives the policy an observation learn one subset for
/// every state: a new run says so (once, on stderr), and says what reads it; an MLP policy,
/// or an environment without observations, gets no warning.
#[test]
fn free_logits_on_a_stateful_environment_are_warned_of() {
    let tmp = tempfile::tempdir().unwrap();
    let train = |env: &str, extra: &[&str], name: &str| {
        let out = tmp.path().join(name);
        let common = ["train", "--env", env, "--steps", "1", "--samples", "2", "--quiet", "--no-figures"];
        let output = run(&[&common[..], extra, &["--out", out.to_str().unwrap()]].concat());
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stderr).unwrap()
    };
    let warned = train("slate", &["--batch-size", "2"], "slate-logits");
    assert!(warned.contains("warning: slate gives the policy an observation"), "{warned}");
    assert!(warned.contains("--policy logits ignores") && warned.contains("--policy mlp"), "{warned}");
    let mlp = train("slate", &["--batch-size", "2", "--policy", "mlp", "--hidden", "8"], "slate-mlp");
    assert!(!mlp.contains("warning"), "{mlp}");
    let global = train("max-coverage", &[], "coverage");
    assert!(!global.contains("warning"), "{global}");
}
