//! The black-box environments from the command line: `cmd` (a reward command over JSON
//! lines), the shipped black boxes, and the refusals.

use std::path::Path;
use std::process::Output;

use crate::common::{fails_with, json, run, stderr};

/// `sfess-agent train --env cmd FLAGS --reward-cmd COMMAND --out OUT` (the flags separated
/// by whitespace; the command and the folder may hold spaces).
fn train_cmd(flags: &str, command: &str, out: &Path) -> Output {
    let mut args = vec!["train", "--env", "cmd"];
    args.extend(flags.split_whitespace());
    args.extend(["--reward-cmd", command, "--out", out.to_str().unwrap()]);
    run(&args)
}

/// A reward command: the reward of a subset is the sum of its indices / 100; it stops
/// answering (exits with status 3) after `answers` lines when given.
fn write_script(dir: &Path, answers: Option<usize>) -> String {
    let path = dir.join("score.py");
    let limit = answers.map_or("None".to_owned(), |a| a.to_string());
    let script = format!(
        "import json, sys\n\
         for count, line in enumerate(sys.stdin):\n    \
             if {limit} is not None and count >= {limit}:\n        \
                 print('out of answers', file=sys.stderr); sys.exit(3)\n    \
             actions = json.loads(line)['actions']\n    \
             print(json.dumps([sum(a) / 100 for a in actions]), flush=True)\n"
    );
    std::fs::write(&path, script).unwrap();
    format!("python3 {}", path.display())
}

#[test]
fn envs_lists_the_black_boxes_as_not_differentiable() {
    let output = run(&["envs"]);
    let text = crate::common::stdout(&output);
    for name in [
        "cmd",
        "sensor-placement-synthetic",
        "sensor-placement-mnist",
        "sensor-placement-fashion",
        "feature-selection-knn-mnist",
        "feature-selection-knn-fashion",
        "max-coverage",
    ] {
        let line = text.lines().find(|l| l.starts_with(&format!("| {name} |"))).unwrap_or_else(|| panic!("{text}"));
        assert!(line.contains("| no (black box) |"), "{line}");
    }
    assert!(text.lines().any(|l| l.starts_with("| knn-mnist |") && l.contains("| yes |")), "{text}");
}

#[test]
fn a_reward_command_trains_and_reports_the_random_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let command = write_script(dir.path(), None);
    let out = dir.path().join("run");
    let summary =
        json(&train_cmd("--n 20 --k 3 --steps 60 --eval-every 20 --samples 8 --quiet --json", &command, &out));
    // The best subset {17, 18, 19} scores 0.54; a random one 3 · 9.5/100 = 0.285.
    let learned = summary["test"]["reward"].as_f64().unwrap();
    let random = summary["baselines"]["random"].as_f64().unwrap();
    assert!((random - 0.285).abs() < 0.05, "{random}");
    assert!(learned > 0.45, "after 60 steps the policy's subset scores {learned}");
    assert_eq!(summary["env"], "cmd");
}

#[test]
fn a_reward_command_that_dies_stops_the_run_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    // Lines: 1 validation at step 0, 2–6 steps 0–4, 7 validation at step 5 (checkpoint), 8–9
    // steps 5–6; line 10 (step 7) gets no answer.
    let command = write_script(dir.path(), Some(9));
    let out = dir.path().join("run");
    let output = train_cmd("--n 20 --k 3 --steps 20 --eval-every 5 --samples 4 --quiet", &command, &out);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for phrase in [
        "training step 7 of 20",
        "the checkpoint of step 5 is kept",
        "--resume",
        "batch line 10",
        "exit status: 3",
        "out of answers",
    ] {
        assert!(err.contains(phrase), "{phrase:?} not in {err}");
    }
    assert!(out.join("checkpoint.ot").exists() && !out.join("summary.json").exists());
}

#[test]
fn black_boxes_refuse_pathwise_estimators_before_starting_anything() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    let command = format!("touch {}; cat", marker.display());
    let out = dir.path().join("run");
    for estimator in ["gs", "stgs", "simple", "imle"] {
        fails_with(
            &train_cmd(&format!("--n 20 --estimator {estimator}"), &command, &out),
            "is a black box; use sfess-vr or sfess",
        );
    }
    assert!(!marker.exists() && !out.exists());
    fails_with(&run(&["train", "--env", "cmd", "--n", "20"]), "--reward-cmd");
    fails_with(
        &run(&["train", "--env", "cmd", "--reward-cmd", "cat"]),
        "cmd option n: must be given: --env-option n=... (or --n ...)",
    );
    fails_with(
        &run(&["train", "--env", "cmd", "--reward-cmd", "cat", "--n", "5", "--k", "6"]),
        "k = 6 is out of range for n = 5",
    );
    fails_with(
        &run(&["train", "--env", "max-coverage", "--policy", "mlp", "--out", out.to_str().unwrap()]),
        "--policy mlp reads the observation",
    );
    fails_with(
        &run(&["train", "--env", "knn-mnist", "--policy", "mlp", "--out", out.to_str().unwrap()]),
        "uses the paper's network",
    );
}

#[test]
fn sensor_placement_reports_qr_pivoting_and_random_sensors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let summary = json(&run(&[
        "train",
        "--env",
        "sensor-placement-synthetic",
        "--steps",
        "150",
        "--eval-every",
        "50",
        "--samples",
        "16",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--json",
    ]));
    let (learned, qr, random) = (
        summary["test"]["mse"].as_f64().unwrap(),
        summary["baselines"]["qr-pivoting"].as_f64().unwrap(),
        summary["baselines"]["random"].as_f64().unwrap(),
    );
    assert!(qr < random, "QR pivoting {qr} should beat random sensors {random}");
    assert!(learned < random, "after 150 steps the learned sensors ({learned}) should beat random ones ({random})");
}

#[test]
fn max_coverage_reports_greedy_the_optimum_and_random() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let summary = json(&run(&[
        "train",
        "--env",
        "max-coverage",
        "--n",
        "20",
        "--k",
        "4",
        "--steps",
        "200",
        "--eval-every",
        "100",
        "--samples",
        "16",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--json",
    ]));
    let get = |key: &str| summary["baselines"][key].as_f64().unwrap();
    let learned = summary["test"]["coverage"].as_f64().unwrap();
    assert!(get("greedy") <= get("optimum") + 1e-12 && get("random") < get("greedy"), "{summary}");
    assert!(learned <= get("optimum") + 1e-12 && learned > get("random"), "{summary}");
}

#[test]
fn an_mlp_policy_learns_the_contexts_a_reward_command_supplies() {
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/contextual_score.py");
    let command = format!("python3 {script}");
    let train = |policy: &str| {
        let out = dir.path().join(policy);
        let flags = format!("--n 20 --k 3 --context-dim 4 --policy {policy} --batch-size 32 --samples 16");
        json(&train_cmd(&(flags + " --steps 250 --eval-every 250 --quiet --json"), &command, &out))
    };
    // The best subset depends on the context: the MLP gets close to the optimum, one global
    // subset cannot do better than a random one by much (the contexts are symmetric).
    let mlp = train("mlp");
    let (reward, optimal) = (mlp["test"]["reward"].as_f64().unwrap(), mlp["test"]["info.optimal"].as_f64().unwrap());
    assert!(reward > 0.95 * optimal, "the MLP policy scores {reward} of {optimal}");
    let logits = train("logits");
    assert!(logits["test"]["reward"].as_f64().unwrap() < 0.5 * optimal, "{logits}");
}

/// The records of `dir`'s `metrics.jsonl` after step `after`, without their clocks.
fn records_after(dir: &Path, after: u64) -> Vec<(u64, String, String, f64)> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|r| r["step"].as_u64().unwrap() > after && r["metric"] != "seconds_per_step")
        .map(|r| {
            let text = |key: &str| r[key].as_str().unwrap().to_owned();
            (r["step"].as_u64().unwrap(), text("split"), text("metric"), r["value"].as_f64().unwrap())
        })
        .collect()
}

/// A noisy reward command whose noise comes from each request's `seed` (the sum of the
/// indices / 100 plus Gaussian noise of 0.1), logging the request's step (`info.step`)
/// and answering the baseline request with a baseline of its own (`best`, the best
/// subset's reward): a run resumed from a checkpoint sees exactly the rewards a straight
/// run sees.
#[test]
fn a_noisy_reward_seeded_by_the_request_resumes_to_the_straight_runs_records() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("noisy.py");
    std::fs::write(
        &script,
        "import json, random, sys\n\
         for line in sys.stdin:\n    \
             r = json.loads(line)\n    \
             noise = random.Random(r['seed'])\n    \
             answer = {'rewards': [sum(a) / 100 + noise.gauss(0, 0.1) for a in r['actions']]}\n    \
             if r['phase'] == 'train':\n        \
                 answer['info'] = {'step': r['step']}\n    \
             if r.get('baseline') == 'random':\n        \
                 answer['baselines'] = {'best': sum(range(r['n'] - r['k'], r['n'])) / 100}\n    \
             print(json.dumps(answer), flush=True)\n",
    )
    .unwrap();
    let command = format!("python3 {}", script.display());
    let flags =
        |steps: u64| format!("--n 20 --k 3 --steps {steps} --eval-every 5 --samples 8 --seed 11 --quiet --json");
    let straight = dir.path().join("straight");
    let summary = json(&train_cmd(&flags(40), &command, &straight));
    assert_eq!(summary["baselines"]["best"], 0.54, "the command's own baseline: {summary}");
    assert!(summary["baselines"]["random"].is_f64(), "{summary}");

    let resumed = dir.path().join("resumed");
    json(&train_cmd(&flags(20), &command, &resumed));
    json(&run(&["train", "--resume", resumed.to_str().unwrap(), "--steps", "40", "--quiet", "--json"]));
    let (expected, got) = (records_after(&straight, 20), records_after(&resumed, 20));
    // Steps 21–40: train records every 5 steps (loss, info.step), validations, the test.
    assert!(expected.iter().any(|r| r.2 == "info.step" && r.3 == 22.0), "the mean step of 20..25: {expected:?}");
    assert!(expected.iter().any(|r| r.1 == "test" && r.2 == "baseline.best"), "{expected:?}");
    assert_eq!(got, expected, "the resumed run's records after step 20");
}

/// A reward command's `info` is recorded as `info.NAME` in training, validation and the
/// test, even when named as one of the trainer's metrics (`loss`, `reward`), which keep
/// their meaning; a name that cannot be a key (`hit|rate`) stops the run at the first
/// answer, before anything records it.
#[test]
fn a_commands_info_is_recorded_as_info_and_its_names_are_keys() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("score.py");
    let write = |info: &str| {
        let text = format!(
            "import json, sys\n\
             for line in sys.stdin:\n    \
                 actions = json.loads(line)['actions']\n    \
                 print(json.dumps({{'rewards': [sum(a) / 100 for a in actions], 'info': {info}}}), flush=True)\n"
        );
        std::fs::write(&script, text).unwrap();
    };
    let command = format!("python3 {}", script.display());
    write("{'loss': 5, 'reward': 7}");
    let out = dir.path().join("shadow");
    let summary = json(&train_cmd("--n 20 --k 3 --steps 20 --eval-every 10 --quiet --json", &command, &out));
    assert_eq!(
        (summary["test"]["info.loss"].as_f64(), summary["test"]["info.reward"].as_f64()),
        (Some(5.0), Some(7.0))
    );
    assert!(summary["test"]["reward"].as_f64().unwrap() < 1.0 && summary["test"].get("loss").is_none(), "{summary}");
    let records = records_after(&out, 0);
    let value = |split: &str, metric: &str| records.iter().find(|r| r.1 == split && r.2 == metric).map(|r| r.3);
    assert_eq!((value("train", "info.loss"), value("validation", "info.loss")), (Some(5.0), Some(5.0)));
    assert!(value("train", "loss").is_some_and(|loss| loss != 5.0), "{records:?}");
    assert!(value("validation", "loss").is_none() && value("validation", "reward") != Some(7.0), "{records:?}");

    write("{'hit|rate': 0.5}");
    let output = train_cmd("--n 20 --k 3 --steps 20 --eval-every 10 --quiet", &command, &dir.path().join("bar"));
    fails_with(&output, "the info name \"hit|rate\" has the character '|'; use ASCII letters, digits, '_' and '-'");
}
