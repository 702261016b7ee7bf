//! Runs the `sfess-agent` binary as a user would.

use std::io::Write;

use crate::common::{fails_with, json, run, run_with_stdin, stderr, stdout, usage_error};

use serde_json::Value;

const EXAMPLE: &str = "[0.1, -2, 1.5, 0.3]";
const ETA: [f64; 4] = [0.1, -2.0, 1.5, 0.3];

fn floats(value: &Value) -> Vec<f64> {
    value.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn log_sum_exp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + values.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// Every k-subset of `0..n` as a sorted index list.
fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    (0u32..1 << n)
        .filter(|mask| mask.count_ones() as usize == k)
        .map(|mask| (0..n).filter(|i| mask >> i & 1 == 1).collect())
        .collect()
}

#[test]
fn version_starts_without_a_loader_path() {
    let output = run(&["--version"]);
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    assert_eq!(stdout(&output).trim(), format!("sfess-agent {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn inspect_matches_brute_force() {
    let value = json(&run(&["inspect", "--k", "3", "--logits", EXAMPLE, "--device", "cpu"]));
    let object = value.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "device",
            "entropy",
            "k",
            "kl_to_uniform",
            "log_normalizer",
            "log_prob_sum_eq_k",
            "marginals",
            "n",
            "normalizer"
        ]
    );
    assert_eq!((value["n"].as_u64(), value["k"].as_u64()), (Some(4), Some(3)));
    assert_eq!((value["normalizer"].as_str(), value["device"].as_str()), (Some("stable"), Some("cpu")));

    let marginals = floats(&value["marginals"]);
    assert_eq!(marginals.len(), 4);
    assert!((marginals.iter().sum::<f64>() - 3.0).abs() < 1e-12, "{marginals:?}");

    // Brute force over the 4 choose 3 subsets.
    let subsets = subsets(4, 3);
    assert_eq!(subsets.len(), 4);
    let energies: Vec<f64> = subsets.iter().map(|s| s.iter().map(|&i| ETA[i]).sum()).collect();
    let log_z = log_sum_exp(&energies);
    assert!((value["log_normalizer"].as_f64().unwrap() - log_z).abs() < 1e-12, "{value} vs {log_z}");
    let probabilities: Vec<f64> = energies.iter().map(|e| (e - log_z).exp()).collect();
    for (i, &m) in marginals.iter().enumerate() {
        let expected: f64 = subsets.iter().zip(&probabilities).filter(|(s, _)| s.contains(&i)).map(|(_, p)| p).sum();
        assert!((m - expected).abs() < 1e-12, "marginal {i}: {m} vs {expected}");
    }
    let entropy: f64 = -probabilities.iter().map(|p| p * p.ln()).sum::<f64>();
    assert!((value["entropy"].as_f64().unwrap() - entropy).abs() < 1e-12);
    let kl = 4f64.ln() - entropy;
    assert!((value["kl_to_uniform"].as_f64().unwrap() - kl).abs() < 1e-12);
    let softplus: f64 = ETA.iter().map(|x| x.exp().ln_1p()).sum();
    assert!((value["log_prob_sum_eq_k"].as_f64().unwrap() - (log_z - softplus)).abs() < 1e-12);
}

#[test]
fn every_normalizer_agrees_on_the_example() {
    let stable = json(&run(&["inspect", "--k", "3", "--logits", EXAMPLE, "--device", "cpu"]));
    for (normalizer, tolerance) in [("dft", 1e-12), ("paper-complex64", 1e-5)] {
        let value = json(&run(&["inspect", "--k", "3", "--logits", EXAMPLE, "--normalizer", normalizer]));
        assert_eq!(value["normalizer"].as_str(), Some(normalizer));
        let difference = value["log_normalizer"].as_f64().unwrap() - stable["log_normalizer"].as_f64().unwrap();
        assert!(difference.abs() < tolerance, "{normalizer}: {value}");
    }
}

#[test]
fn samples_are_valid_and_reproducible() {
    let args = ["inspect", "--k", "3", "--logits", EXAMPLE, "--samples", "2000", "--seed", "1", "--device", "cpu"];
    let first = run(&args);
    let value = json(&first);
    assert_eq!(value["samples"].as_u64(), Some(2000));
    assert_eq!(value["sampler"].as_str(), Some("exact"));
    assert_eq!(value["seed"].as_u64(), Some(1));

    let valid: Vec<String> =
        subsets(4, 3).iter().map(|s| s.iter().map(usize::to_string).collect::<Vec<_>>().join(",")).collect();
    let counts = value["sample_counts"].as_object().unwrap();
    assert!(!counts.is_empty());
    let mut total = 0;
    for (key, count) in counts {
        assert!(valid.contains(key), "{key:?} is not a sorted 3-subset of 0..4");
        total += count.as_u64().unwrap();
    }
    assert_eq!(total, 2000);

    let frequencies = floats(&value["inclusion_frequencies"]);
    assert_eq!(frequencies.len(), 4);
    assert!((frequencies.iter().sum::<f64>() - 3.0).abs() < 1e-12);
    // Frequencies of 2000 exact samples are within a few standard errors (<= 0.0112) of π.
    for (f, m) in frequencies.iter().zip(floats(&value["marginals"])) {
        assert!((f - m).abs() < 0.06, "{f} vs {m}");
    }

    let second = run(&args);
    assert_eq!(first.stdout, second.stdout);
    let other_seed = run(&["inspect", "--k", "3", "--logits", EXAMPLE, "--samples", "2000", "--seed", "2"]);
    assert_ne!(json(&other_seed)["sample_counts"], value["sample_counts"]);
}

#[test]
fn gumbel_top_k_sampler_and_edge_cases() {
    let value =
        json(&run(&["inspect", "-k", "2", "--logits", EXAMPLE, "--samples", "300", "--sampler", "gumbel-topk"]));
    assert_eq!(value["sampler"].as_str(), Some("gumbel-topk"));
    let total: u64 = value["sample_counts"].as_object().unwrap().values().map(|c| c.as_u64().unwrap()).sum();
    assert_eq!(total, 300);

    // k = 0: the empty subset, keyed "".
    let value = json(&run(&["inspect", "--k", "0", "--logits", EXAMPLE, "--samples", "5"]));
    assert_eq!(value["sample_counts"], serde_json::json!({"": 5}));
    assert_eq!(floats(&value["marginals"]), [0.0; 4]);

    // --samples 0 draws nothing and adds no sample fields.
    let value = json(&run(&["inspect", "--k", "3", "--logits", EXAMPLE, "--samples", "0"]));
    assert!(value.get("sample_counts").is_none() && value.get("inclusion_frequencies").is_none(), "{value}");

    // Negative-looking logits and whitespace separators.
    let value = json(&run(&["inspect", "--k", "1", "--logits", "-1 -2"]));
    assert_eq!(value["n"].as_u64(), Some(2));
}

#[test]
fn logits_from_a_file_and_from_stdin() {
    let expected = json(&run(&["inspect", "--k", "3", "--logits", EXAMPLE]));

    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "0.1 -2\n1.5, 0.3").unwrap();
    let path = file.path().to_str().unwrap();
    assert_eq!(json(&run(&["inspect", "--k", "3", "--logits-file", path])), expected);

    let from_stdin = run_with_stdin(&["inspect", "--k", "3", "--logits-file", "-"], "[0.1, -2, 1.5, 0.3]\n");
    assert_eq!(json(&from_stdin), expected);
}

#[test]
fn k_out_of_range() {
    fails_with(&run(&["inspect", "--k", "5", "--logits", EXAMPLE]), "k = 5 is out of range");
    fails_with(&run(&["inspect", "--k", "-1", "--logits", EXAMPLE]), "k = -1 is out of range");
}

#[test]
fn dft_normalizer_failure_points_to_the_stable_one() {
    let output = run(&["inspect", "--k", "1", "--logits", "30 30 30 30 30 30 30 30 30 30", "--normalizer", "dft"]);
    fails_with(&output, "use the stable normaliser");
}

#[test]
fn non_finite_logits() {
    fails_with(
        &run(&["inspect", "--k", "3", "--logits", "[0.1, NaN, 1.5, 0.3]"]),
        "logit 1 of row 0 (counting from 0) is NaN; logits must be finite",
    );
    fails_with(&run(&["inspect", "--k", "3", "--logits", "0 0 inf 0"]), "logits must be finite");
}

#[test]
fn malformed_logits() {
    fails_with(
        &run(&["inspect", "--k", "3", "--logits", "[0.1, -2, abc, 0.3]"]),
        "--logits: token 3 (\"abc\") is not a number",
    );
    fails_with(&run(&["inspect", "--k", "0", "--logits", "[]"]), "no logits given");
    fails_with(&run(&["inspect", "--k", "0", "--logits", "[[1, 2], [3, 4]]"]), "brackets");

    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(file, "1 2 x").unwrap();
    let path = file.path().to_str().unwrap();
    fails_with(
        &run(&["inspect", "--k", "1", "--logits-file", path]),
        &format!("--logits-file {path}: token 3 (\"x\") is not a number"),
    );
    fails_with(&run_with_stdin(&["inspect", "--k", "1", "--logits-file", "-"], ""), "no logits given");
}

#[test]
fn missing_logits_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.txt");
    let path = path.to_str().unwrap();
    let output = run(&["inspect", "--k", "1", "--logits-file", path]);
    fails_with(&output, path);
    fails_with(&output, "No such file or directory");
}

#[test]
fn devices() {
    let output = run(&["inspect", "--k", "3", "--logits", EXAMPLE, "--device", "cuda"]);
    if tch::Cuda::is_available() {
        assert_eq!(json(&output)["device"].as_str(), Some("cuda:0"));
    } else {
        fails_with(&output, "CUDA was requested (--device cuda) but no CUDA device is available");
    }
    fails_with(
        &run(&["--device", "cuda:99", "inspect", "--k", "3", "--logits", EXAMPLE]),
        "CUDA device 99 was requested",
    );
    usage_error(
        &run(&["inspect", "--k", "3", "--logits", EXAMPLE, "--device", "gpu"]),
        "expected auto, cpu, cuda or cuda:N",
    );
    let auto = json(&run(&["inspect", "--k", "3", "--logits", EXAMPLE]));
    assert_eq!(auto["device"].as_str(), Some(if tch::Cuda::is_available() { "cuda:0" } else { "cpu" }));
}

#[test]
fn usage_errors() {
    usage_error(&run(&["inspect", "--k", "3", "--logits", EXAMPLE, "--sampler", "foo"]), "gumbel-topk");
    usage_error(&run(&["inspect", "--k", "3", "--logits", EXAMPLE, "--normalizer", "fast"]), "paper-complex64");
    usage_error(&run(&["inspect", "--k", "3"]), "--logits");
    usage_error(&run(&["inspect", "--k", "3", "--logits", "0", "--logits-file", "-"]), "cannot be used with");
    usage_error(&run(&["inspect", "--logits", EXAMPLE]), "--k");
    usage_error(&run(&["inspect", "--k", "x", "--logits", EXAMPLE]), "invalid value");
    usage_error(
        &run(&["inspect", "--k", "3", "--logits", EXAMPLE, "--samples=-3"]),
        "invalid value '-3' for '--samples <N>'",
    );
}

/// The library (not just the binary) is usable from tests and other tools.
#[test]
fn inspect_as_a_library() {
    use sfess_agent::commands::inspect::{InspectOptions, SampleOptions, inspect};
    use sfess_agents::{Normalizer, Sampler};
    let options = InspectOptions {
        logits: ETA.to_vec(),
        k: 3,
        normalizer: Normalizer::Stable,
        device: tch::Device::Cpu,
        sampling: Some(SampleOptions { samples: 2000, sampler: Sampler::Exact, seed: 1 }),
    };
    let report = inspect(&options).unwrap();
    let binary =
        run(&["inspect", "--k", "3", "--logits", EXAMPLE, "--samples", "2000", "--seed", "1", "--device", "cpu"]);
    assert!(binary.status.success(), "{}", stderr(&binary));
    // Compared as text: serde_json's default float parsing is not always correctly rounded.
    assert_eq!(format!("{}\n", serde_json::to_string(&report).unwrap()), stdout(&binary));
}

/// The binary keeps `libtorch_cuda` as a needed library (so the same build uses CUDA on a
/// GPU machine) whenever the libtorch it was linked against ships one.
#[test]
fn libtorch_cuda_stays_linked() {
    // The engine: the `sfess-agent` binary itself computes nothing (src/cli/front.rs).
    let Ok(output) = std::process::Command::new("ldd").arg(env!("CARGO_BIN_EXE_sfess-agent-engine")).output() else {
        eprintln!("ldd is not available; skipped");
        return;
    };
    let listing = String::from_utf8_lossy(&output.stdout);
    let torch_cpu = listing.lines().find(|line| line.contains("libtorch_cpu.so")).expect("libtorch_cpu is linked");
    let lib_dir =
        torch_cpu.split("=>").nth(1).and_then(|rest| rest.split_whitespace().next()).map(std::path::Path::new);
    let ships_cuda = lib_dir.and_then(|path| path.parent()).is_some_and(|dir| dir.join("libtorch_cuda.so").exists());
    if ships_cuda {
        assert!(listing.contains("libtorch_cuda.so"), "libtorch_cuda.so was dropped by --as-needed:\n{listing}");
    }
    assert!(!listing.contains("not found"), "{listing}");
}

#[test]
fn estimators_table_lists_all_six_with_their_properties() {
    let output = run(&["estimators"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for name in ["sfess-vr", "sfess", "simple", "gs", "stgs", "imle"] {
        assert!(text.contains(&format!("| {name} |")), "{name} missing:\n{text}");
    }
    assert!(text.contains("| sfess-vr | ✓ | ✓ | ✓ | ✓ |"), "{text}");
    let gumbel = stdout(&run(&["estimators", "--sampler", "gumbel-topk"]));
    assert!(gumbel.contains("| sfess-vr | ✗ | ✗ | ✓ | ✓ |"), "{gumbel}");
}

#[test]
fn toy_json_has_every_estimator_and_writes_figures() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("figures");
    let output =
        run(&["toy", "--draws", "300", "--seeds", "2", "--json", "--device", "cpu", "--out", out.to_str().unwrap()]);
    let value = json(&output);
    for key in ["n", "k", "draws", "seeds", "samples", "sampler"] {
        assert!(value.get(key).is_some(), "{key} missing: {value}");
    }
    assert_eq!((value["n"].as_u64(), value["k"].as_u64(), value["seeds"].as_u64()), (Some(10), Some(5), Some(2)));
    let estimators = value["estimators"].as_object().unwrap();
    assert_eq!(estimators.len(), 6);
    for (name, metrics) in estimators {
        for metric in ["bias", "variance", "error"] {
            for field in ["mean", "std"] {
                let x = metrics[metric][field].as_f64();
                assert!(x.is_some_and(|x| x.is_finite() && x >= 0.0), "{name}.{metric}.{field} = {x:?}");
            }
        }
    }
    // SFESS + VR has the smallest error of all.
    let error = |name: &str| estimators[name]["error"]["mean"].as_f64().unwrap();
    assert!(estimators.keys().all(|name| error("sfess-vr") <= error(name)), "{value}");
    for file in ["toy.json", "toy.svg", "toy.png"] {
        assert!(std::fs::metadata(out.join(file)).is_ok_and(|m| m.len() > 0), "{file} not written");
    }
    let leftovers = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("partial"));
    assert_eq!(leftovers.count(), 0);
}

#[test]
fn toy_vr_sweep_error_falls_with_samples() {
    let value = json(&run(&["toy", "--vr-sweep", "--draws", "300", "--seeds", "2", "--json", "--device", "cpu"]));
    let points = value["vr"].as_array().unwrap();
    let samples: Vec<u64> = points.iter().map(|p| p["samples"].as_u64().unwrap()).collect();
    assert_eq!(samples, [2, 4, 8, 16, 32, 64, 128]);
    let errors: Vec<f64> = points.iter().map(|p| p["error"]["mean"].as_f64().unwrap()).collect();
    assert!(errors.windows(2).all(|w| w[1] < w[0]), "{errors:?}");
    assert!(value["no_vr"]["mean"].as_f64().unwrap() > errors[0]);
}

#[test]
fn toy_rejects_bad_options() {
    fails_with(&run(&["toy", "--samples", "1", "--device", "cpu"]), "at least 2");
    fails_with(&run(&["toy", "--n", "30", "--device", "cpu"]), "between 1 and 20");
    fails_with(&run(&["toy", "--k", "11", "--device", "cpu"]), "out of range");
    fails_with(&run(&["toy", "--temperature", "0", "--device", "cpu"]), "temperature must be positive");
    usage_error(&run(&["toy", "--estimators", "sfess,nope"]), "nope");
}

#[test]
fn envs_lists_every_environment_and_shows_one_with_its_options() {
    let output = run(&["envs"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for (name, k, data, differentiable, options) in [
        ("knn-mnist", 10, "MNIST", "yes", "candidates, embedding-dim"),
        ("knn-fashion", 10, "Fashion-MNIST", "yes", "candidates, embedding-dim"),
        ("feature-selection-mnist", 50, "MNIST", "yes", "none"),
        ("vae-fashion", 5, "Fashion-MNIST", "yes", "groups, items"),
        ("cmd", 10, "none", "no (black box)", "command, n, context-dim, timeout, dir, name"),
        (
            "cmd-episodes",
            10,
            "none",
            "no (black box)",
            "command, n, state-dim, horizon, eval-episodes, baselines, timeout, dir, name",
        ),
        ("sensor-placement-synthetic", 20, "none", "no (black box)", "modes"),
        ("feature-selection-knn-mnist", 50, "MNIST", "no (black box)", "neighbours, references"),
        ("max-coverage", 5, "none", "no (black box)", "n, elements, seed"),
        (
            "sensor-schedule",
            4,
            "none",
            "no (black box)",
            "n, horizon, slow-persistence, fast-persistence, fast-variance, noise",
        ),
        ("slate", 4, "none", "no (black box)", "n, horizon, sharpness, premium, drift, taste-noise"),
    ] {
        let line =
            text.lines().find(|l| l.starts_with(&format!("| {name} |"))).unwrap_or_else(|| panic!("{name}:\n{text}"));
        let cells: Vec<&str> = line.split(" | ").collect();
        assert_eq!(
            (cells[1], cells[2], cells[4], cells[5]),
            (k.to_string().as_str(), data, differentiable, options),
            "{line}"
        );
    }
    assert_eq!(text.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| env |")).count(), 16, "{text}");
    let page = run(&["envs", "max-coverage"]);
    assert!(page.status.success(), "{}", stderr(&page));
    let page = stdout(&page);
    for phrase in [
        "- default k: 5",
        "- baselines: greedy, optimum, random",
        "| elements | integer 1..=1000000 | 500 | elements of the universe (also --coverage-elements) |",
        "| seed | seed (integer) | 0 |",
    ] {
        assert!(page.contains(phrase), "{phrase:?} not in\n{page}");
    }
    let cmd = stdout(&run(&["envs", "cmd"]));
    assert!(
        cmd.contains("| command | text | (required) |") && cmd.contains("| context-dim | integer 1..=65536 | (none) |"),
        "{cmd}"
    );
    fails_with(
        &run(&["envs", "knn-cifar"]),
        "unknown environment \"knn-cifar\"; the environments are: knn-mnist, knn-fashion,",
    );
}
