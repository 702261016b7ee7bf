//! Settings that reach the run as given: a `--config` file's device, I-MLE's options on the
//! command line.

use std::path::Path;

use serde_json::Value;

use crate::common::{fails_with, json, run};

fn config_json(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

/// `train --config FILE` on max-coverage for two steps, with `extra` flags, into `out`.
fn train_with_config(config: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["train", "--config", config.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"];
    args.extend(["--json"]);
    args.extend(extra);
    run(&args)
}

#[test]
fn the_config_files_device_is_used_unless_the_flag_is_given() {
    let tmp = tempfile::tempdir().unwrap();
    let file = |name: &str, device: &str| {
        let path = tmp.path().join(name);
        let text = format!(r#"{{"env": "max-coverage", "steps": 2, "eval_every": 1, "device": "{device}"}}"#);
        std::fs::write(&path, text).unwrap();
        path
    };
    let cpu = file("cpu.json", "cpu");
    json(&train_with_config(&cpu, &tmp.path().join("a"), &[]));
    assert_eq!(config_json(&tmp.path().join("a"))["device"], "cpu");
    // A device this machine lacks: the file's choice is what fails, unless --device overrides it.
    let missing = file("missing.json", "cuda:99");
    fails_with(&train_with_config(&missing, &tmp.path().join("b"), &[]), "CUDA device 99 was requested");
    json(&train_with_config(&missing, &tmp.path().join("c"), &["--device", "cpu"]));
    assert_eq!(config_json(&tmp.path().join("c"))["device"], "cpu");
    let tpu = file("tpu.json", "tpu");
    fails_with(
        &train_with_config(&tpu, &tmp.path().join("d"), &[]),
        r#"device "tpu" in the configuration: unknown device"#,
    );
    assert!(!tmp.path().join("d").exists());
}

#[test]
fn imle_options_from_the_command_line_reach_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    crate::train::synthetic_mnist(tmp.path(), 240, 60);
    let out = tmp.path().join("run");
    #[rustfmt::skip]
    let summary = json(&run(&[
        "train", "--env", "feature-selection-mnist", "--estimator", "imle", "--imle-lambda", "5",
        "--imle-temperature", "0.5", "--imle-noise", "gumbel", "--data-dir", tmp.path().to_str().unwrap(),
        "--steps", "2", "--eval-every", "1", "--batch-size", "16", "--device", "cpu",
        "--out", out.to_str().unwrap(), "--quiet", "--json",
    ]));
    assert_eq!(summary["estimator"], "imle");
    let options = &config_json(&out)["estimator_options"];
    assert_eq!((options["imle_lambda"].as_f64(), options["imle_temperature"].as_f64()), (Some(5.0), Some(0.5)));
    assert_eq!(options["imle_noise"], "gumbel");
    fails_with(
        &run(&["train", "--env", "max-coverage", "--imle-lambda", "0", "--out", out.to_str().unwrap()]),
        "--imle-lambda must be positive and finite, got 0",
    );
}
