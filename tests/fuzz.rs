//! Extreme values for every numeric flag, one flag at a time on top of a cheap command: a
//! usage error or an error is a fine answer, a panic never is. The commands run in this
//! process (`Cli::try_parse_from`, then `execute` inside `catch_unwind`), except `--threads`,
//! which sizes process-wide thread pools and so runs the binary.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use clap::Parser;
use sfess_agent::cli::{Cli, execute, with_env_options};
use sfess_envs::registry::Registry;

use crate::common::{run, usage_error};

/// The values tried for every flag.
const VALUES: [&str; 12] = [
    "0",
    "-1",
    "1",
    "1e20",
    "1e400",
    "nan",
    "inf",
    "-inf",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "0.5",
];

/// Values that make a legitimately long run (many steps, a long benchmark), left out.
const LONG: [&str; 2] = ["18446744073709551615", "9223372036854775807"];

/// How one command line ended.
enum Outcome {
    Usage,
    Error,
    Done,
    Panic(String),
}

/// Parses and executes `args` (without the program name) in this process.
fn outcome(args: &[String]) -> Outcome {
    let registry = std::sync::Arc::new(Registry::shipped());
    let args = with_env_options(&registry, std::iter::once("sfess-agent".to_owned()).chain(args.iter().cloned()));
    let Ok(cli) = Cli::try_parse_from(args) else {
        return Outcome::Usage;
    };
    let result = catch_unwind(AssertUnwindSafe(|| execute(&cli, &registry, &mut std::io::empty(), &mut Vec::new())));
    match result {
        Ok(Ok(())) => Outcome::Done,
        Ok(Err(_)) => Outcome::Error,
        Err(payload) => Outcome::Panic(
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default(),
        ),
    }
}

/// One base command and the flags tried on top of it.
struct Case<'a> {
    base: Vec<String>,
    flags: &'a [&'a str],
    /// Whether the command writes a run folder (each try then gets its own `--out`).
    trains: bool,
}

impl Case<'_> {
    /// Checks that the base command runs, then tries every value of [`VALUES`] for every
    /// flag (in place of the base's value, if it has one); returns one line per panic, and
    /// counts the tries that ran to the end.
    fn try_all(&self, tmp: &Path, tries: &mut usize, done: &mut usize) -> Vec<String> {
        let mut base = self.base.clone();
        if self.trains {
            base.extend(["--out".to_owned(), tmp.join(format!("base-{tries}")).display().to_string()]);
        }
        assert!(matches!(outcome(&base), Outcome::Done), "the base command {base:?} does not run");
        let mut panics = Vec::new();
        for flag in self.flags {
            for value in VALUES {
                if *flag == "--steps" && LONG.contains(&value) {
                    continue;
                }
                let mut args = self.base.clone();
                match args.iter().position(|a| a == flag) {
                    Some(i) => args[i + 1] = value.to_owned(),
                    None => args.extend([(*flag).to_owned(), value.to_owned()]),
                }
                if self.trains {
                    *tries += 1;
                    args.extend(["--out".to_owned(), tmp.join(format!("case-{tries}")).display().to_string()]);
                }
                match outcome(&args) {
                    Outcome::Panic(message) => panics.push(format!("{flag} {value} ({args:?}): {message}")),
                    Outcome::Done => *done += 1,
                    Outcome::Usage | Outcome::Error => {}
                }
            }
        }
        panics
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// A `train` command on `env` with `extra` flags, two steps, validated after each.
fn train(env: &str, extra: &[&str]) -> Vec<String> {
    let mut args = strings(&["train", "--env", env, "--steps", "2", "--eval-every", "1", "--device", "cpu"]);
    args.extend(strings(&["--quiet", "--json"]));
    args.extend(strings(extra));
    args
}

/// Every numeric flag of `train` but `--threads` (see [`threads_are_bounded`]). Each applies
/// to every environment's configuration, so the max-coverage case tries them all.
const TRAIN_FLAGS: [&str; 22] = [
    "--seed",
    "--samples",
    "--steps",
    "--batch-size",
    "--lr",
    "--eval-every",
    "-k",
    "--candidates",
    "--vae-groups",
    "--vae-items",
    "--temperature",
    "--imle-lambda",
    "--imle-temperature",
    "--hidden",
    "--reward-timeout",
    "--n",
    "--context-dim",
    "--sensor-modes",
    "--coverage-elements",
    "--coverage-seed",
    "--neighbours",
    "--references",
];

#[test]
fn no_numeric_flag_makes_a_command_panic() {
    let tmp = tempfile::tempdir().unwrap();
    crate::train::synthetic_mnist(tmp.path(), 240, 60);
    let data = tmp.path().to_str().unwrap();
    let score = tmp.path().join("score.py");
    std::fs::write(&score, "import json, sys\nfor line in sys.stdin:\n    actions = json.loads(line)['actions']\n    print(json.dumps([sum(a) / 100 for a in actions]), flush=True)\n").unwrap();
    let score = format!("python3 {}", score.display());
    let contextual = format!("python3 {}", concat!(env!("CARGO_MANIFEST_DIR"), "/examples/contextual_score.py"));
    let data_flags = ["--data-dir", data, "--batch-size", "16", "--samples", "4"];
    let with_data = |env: &str, extra: &[&str]| train(env, &[&data_flags[..], extra].concat());
    let cases = [
        Case { base: train("max-coverage", &[]), flags: &TRAIN_FLAGS, trains: true },
        Case {
            base: train("sensor-placement-synthetic", &[]),
            flags: &["-k", "--sensor-modes", "--batch-size"],
            trains: true,
        },
        Case {
            base: train("cmd", &["--reward-cmd", &score, "--n", "20", "-k", "3", "--samples", "4"]),
            flags: &["-k", "--n", "--reward-timeout", "--samples"],
            trains: true,
        },
        Case {
            base: train(
                "cmd",
                &["--reward-cmd", &contextual, "--n", "20", "-k", "3", "--context-dim", "4", "--policy", "mlp"],
            ),
            flags: &["--context-dim", "--hidden", "--batch-size"],
            trains: true,
        },
        Case {
            base: with_data("knn-mnist", &["--candidates", "24", "-k", "3"]),
            flags: &["-k", "--candidates", "--batch-size", "--samples"],
            trains: true,
        },
        Case {
            base: with_data("feature-selection-mnist", &["--estimator", "gs", "-k", "5"]),
            flags: &["-k", "--temperature", "--batch-size"],
            trains: true,
        },
        Case {
            base: with_data("vae-mnist", &["--estimator", "imle", "--vae-groups", "2", "--vae-items", "4", "-k", "2"]),
            flags: &["-k", "--vae-groups", "--vae-items", "--imle-lambda", "--imle-temperature"],
            trains: true,
        },
        Case {
            base: with_data("feature-selection-knn-mnist", &["--references", "50", "--neighbours", "3", "-k", "5"]),
            flags: &["-k", "--neighbours", "--references"],
            trains: true,
        },
        Case {
            base: strings(&[
                "toy",
                "--n",
                "4",
                "-k",
                "2",
                "--draws",
                "2",
                "--seeds",
                "1",
                "--samples",
                "2",
                "--estimators",
                "sfess-vr,gs,imle",
                "--json",
                "--device",
                "cpu",
            ]),
            flags: &[
                "--n",
                "-k",
                "--draws",
                "--seeds",
                "--samples",
                "--temperature",
                "--imle-lambda",
                "--imle-temperature",
            ],
            trains: false,
        },
        Case {
            base: strings(&["inspect", "-k", "1", "--logits", "0 0.5 -1", "--samples", "10", "--device", "cpu"]),
            flags: &["-k", "--samples", "--seed"],
            trains: false,
        },
        Case {
            base: strings(&["estimators"]),
            flags: &["--temperature", "--imle-lambda", "--imle-temperature"],
            trains: false,
        },
    ];
    let (mut tries, mut done) = (0, 0);
    let panics: Vec<String> = cases.iter().flat_map(|case| case.try_all(tmp.path(), &mut tries, &mut done)).collect();
    assert!(panics.is_empty(), "{} panics:\n{}", panics.len(), panics.join("\n"));
    // The harness really runs commands: the valid values of the base commands train.
    assert!(done > 50, "only {done} commands ran to the end");
    eprintln!("{done} of the commands ran to the end");
}

/// `--seconds` of the benchmarks: every value but the (long) valid ones is a usage error,
/// before any timing starts.
#[test]
fn bench_seconds_out_of_range_are_usage_errors() {
    for bench in ["distribution", "train"] {
        for value in VALUES.iter().filter(|v| !["1", "0.5"].contains(v)) {
            let args = strings(&["--device", "cpu", "bench", bench, "--seconds", value]);
            assert!(matches!(outcome(&args), Outcome::Usage), "bench {bench} --seconds {value} was accepted");
        }
    }
    let error = Cli::try_parse_from(["sfess-agent", "bench", "distribution", "--seconds", "1e20"]).unwrap_err();
    assert!(error.to_string().contains("up to 3600"), "{error}");
}

/// `--threads` sizes the process's thread pools: out of range, it is a clean error.
#[test]
fn threads_are_bounded() {
    for value in VALUES {
        let output = run(&[&format!("--threads={value}"), "envs"]);
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(!err.contains("panicked") && !err.contains("fatal"), "--threads {value}: {err}");
        match value {
            "1" => assert!(output.status.success(), "--threads 1: {err}"),
            "0" | "18446744073709551615" | "9223372036854775807" => {
                crate::common::fails_with(&output, "--threads must be between 1 and 4096");
            }
            _ => usage_error(&output, "--threads"),
        }
    }
}
