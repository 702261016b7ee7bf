//! `sfess-agent bench distribution`: how fast the k-subset distribution is on this
//! machine, at the sizes of the paper's tasks, beside the paper's DFT.
//!
//! Each case is timed by repeating it until about `--seconds` have passed (after one
//! warm-up call) and reporting the median and the fastest call. The largest case also
//! runs first and reports its peak memory: the process's high-water mark (`VmHWM`, reset through
//! `/proc/self/clear_refs` just before), which includes libtorch's own resident memory,
//! given beside the resident size before the call.

use std::time::{Duration, Instant};

use anyhow::Context;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;
use sfess_agents::{ConditionalPoisson, Normalizer, Sampler};
use tch::{Device, Kind, Tensor};

/// One benchmark case and what it measured.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// What was timed.
    pub case: String,
    /// Rows, items and subset size.
    pub batch: i64,
    /// Items per row.
    pub n: i64,
    /// Subset size.
    pub k: i64,
    /// Median seconds per call.
    pub median_seconds: f64,
    /// Fastest call, in seconds.
    pub min_seconds: f64,
    /// Calls timed.
    pub calls: usize,
    /// Peak resident memory of the whole process during the call, in MiB, where measured.
    pub peak_mib: Option<f64>,
    /// Resident memory of the process just before the call, in MiB, where measured.
    pub before_mib: Option<f64>,
}

/// Times `call` for about `budget` (at least 3 calls, after one warm-up).
fn time(budget: Duration, mut call: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<(f64, f64, usize)> {
    call()?;
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 3 || (start.elapsed() < budget && times.len() < 10_000) {
        let t = Instant::now();
        call()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], times[0], times.len()))
}

/// N(0, 1) logits `[batch, n]` on `device`, from a fixed seed.
fn normal_logits(batch: i64, n: i64, device: Device) -> Tensor {
    tch::manual_seed(0);
    Tensor::randn([batch, n], (Kind::Double, device))
}

/// A kilobyte figure from `/proc/self/status`.
fn proc_status_kib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The process's resident memory before `call` and its peak during it, in MiB (Linux
/// only; `None` elsewhere).
fn peak_memory_mib(call: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<Option<(f64, f64)>> {
    // Writing 5 resets the high-water mark to the current resident size.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = proc_status_kib("VmRSS:");
    call()?;
    let peak = proc_status_kib("VmHWM:");
    Ok(match (reset, before, peak) {
        (true, Some(before), Some(peak)) => Some((before / 1024.0, peak / 1024.0)),
        _ => None,
    })
}

/// Runs every case of the distribution benchmark on `device`, spending about `seconds`
/// on each, and reports progress on stderr.
///
/// # Errors
/// Library errors (none are expected on valid sizes).
pub fn distribution(device: Device, seconds: f64) -> anyhow::Result<Vec<Measurement>> {
    let budget = Duration::from_secs_f64(seconds);
    let mut results = Vec::new();
    let mut record =
        |case: &str, (batch, n, k): (i64, i64, i64), timing: (f64, f64, usize), memory: Option<(f64, f64)>| {
            let (median_seconds, min_seconds, calls) = timing;
            eprintln!("  {case:<44} B={batch:<4} n={n:<6} k={k:<5} median {:>10.3} ms", median_seconds * 1e3);
            results.push(Measurement {
                case: case.to_owned(),
                batch,
                n,
                k,
                median_seconds,
                min_seconds,
                calls,
                peak_mib: memory.map(|(_, peak)| peak),
                before_mib: memory.map(|(before, _)| before),
            });
        };
    let normaliser = |logits: &Tensor, k: i64, normalizer: Normalizer| -> anyhow::Result<()> {
        ConditionalPoisson::with_normalizer(logits, k, normalizer).map(drop).context("computing the normaliser")
    };

    // First, so that its peak memory is measured on a process that has done nothing else.
    {
        let (batch, n, k) = (1, 100_000, 1_000);
        let logits = normal_logits(batch, n, device);
        let peak = peak_memory_mib(|| normaliser(&logits, k, Normalizer::Stable))?;
        let timing = time(budget, || normaliser(&logits, k, Normalizer::Stable))?;
        record("stable normaliser + marginals", (batch, n, k), timing, peak);
    }
    for (batch, n, k) in [(128, 128, 10), (1, 784, 50), (1, 4096, 256)] {
        let logits = normal_logits(batch, n, device);
        let timing = time(budget, || normaliser(&logits, k, Normalizer::Stable))?;
        record("stable normaliser + marginals", (batch, n, k), timing, None);
    }
    {
        let (batch, n, k) = (128, 128, 10);
        let logits = normal_logits(batch, n, device);
        let policy = ConditionalPoisson::new(&logits, k)?;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
        for (sampler, case) in
            [(Sampler::Exact, "32 exact samples per row"), (Sampler::GumbelTopK, "32 Gumbel top-k samples per row")]
        {
            let timing = time(budget, || policy.sample(32, sampler, &mut rng).map(drop).context("sampling"))?;
            record(case, (batch, n, k), timing, None);
        }
    }
    // The paper's DFT (our f64 and complex64 implementations of it) where it can run.
    for (batch, n, k) in [(1, 784, 50), (128, 128, 10)] {
        // N(0, 1) logits make P(sum b = k) far below the f64 DFT's resolution: time it
        // on logits tilted so that it succeeds (the arithmetic is the same).
        let tilt = ((k as f64) / ((n - k) as f64)).ln();
        let logits = normal_logits(batch, n, device) * 0.1 + tilt;
        let timing = time(budget, || normaliser(&logits, k, Normalizer::Dft))?;
        record("paper's DFT (f64) + marginals", (batch, n, k), timing, None);
        let timing = time(budget, || normaliser(&logits, k, Normalizer::PaperComplex64))?;
        record("paper code's DFT (complex64) + marginals", (batch, n, k), timing, None);
    }
    Ok(results)
}

/// The benchmark as a Markdown table, with the DFT-to-stable ratios.
pub fn table(results: &[Measurement]) -> String {
    let mut out = String::from(
        "| case | B | n | k | median | fastest | calls | process peak RSS (before the call) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for m in results {
        let peak = match (m.peak_mib, m.before_mib) {
            (Some(peak), Some(before)) => format!("{peak:.0} MiB ({before:.0} MiB)"),
            _ => String::new(),
        };
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            m.case,
            m.batch,
            m.n,
            m.k,
            duration(m.median_seconds),
            duration(m.min_seconds),
            m.calls,
            peak
        );
    }
    let find = |case: &str, n: i64| results.iter().find(|m| m.case == case && m.n == n).map(|m| m.median_seconds);
    for n in [784, 128] {
        if let Some(stable) = find("stable normaliser + marginals", n) {
            for case in ["paper's DFT (f64) + marginals", "paper code's DFT (complex64) + marginals"] {
                if let Some(dft) = find(case, n) {
                    out += &format!("\n{case} at n = {n}: {:.1}x the stable backend's time", dft / stable);
                }
            }
        }
    }
    out.push('\n');
    out
}

fn duration(seconds: f64) -> String {
    if seconds >= 1.0 {
        format!("{seconds:.3} s")
    } else if seconds >= 1e-3 {
        format!("{:.3} ms", seconds * 1e3)
    } else {
        format!("{:.1} µs", seconds * 1e6)
    }
}

/// One task of `bench train`: seconds per training step beside the floor.
#[derive(Debug, Clone, Serialize)]
pub struct StepMeasurement {
    /// The task.
    pub task: String,
    /// Median seconds per training step (SFESS + VR, S = 32).
    pub seconds_per_step: f64,
    /// Median seconds of the step's matrix products alone (forward and backward).
    pub floor_seconds: f64,
    /// The paper's PyTorch code per step on a machine of this kind (from the project's issue).
    pub paper_seconds: f64,
}

/// `(rows, inputs, outputs)` of every matrix product of one training step.
fn step_products(config: &crate::config::TrainConfig) -> Vec<(i64, i64, i64)> {
    use crate::config::EnvName;
    let (batch, samples) = (config.batch_size as i64, config.samples as i64);
    match config.env {
        EnvName::KnnMnist | EnvName::KnnFashion => {
            let rows = batch + config.candidates as i64;
            vec![(rows, 784, 512), (rows, 512, 256), (rows, 256, config.embedding_dim as i64)]
        }
        EnvName::FeatureSelectionMnist | EnvName::FeatureSelectionFashion => {
            vec![(samples * batch, 784, 200), (samples * batch, 200, 784)]
        }
        EnvName::VaeMnist | EnvName::VaeFashion => {
            let code = (config.vae_groups * config.vae_items) as i64;
            let rows = samples * batch;
            vec![
                (batch, 784, 512),
                (batch, 512, 256),
                (batch, 256, code),
                (rows, code, 256),
                (rows, 256, 512),
                (rows, 512, 784),
            ]
        }
        // The black-box tasks are not benchmarked against the paper.
        _ => Vec::new(),
    }
}

/// Seconds of the products `(rows, in, out)`, forward and backward, on `device`.
fn products_once(products: &[(i64, i64, i64)], device: Device) -> anyhow::Result<()> {
    for &(rows, inputs, outputs) in products {
        let x = Tensor::randn([rows, inputs], (Kind::Float, device)).set_requires_grad(true);
        let w = Tensor::randn([inputs, outputs], (Kind::Float, device)).set_requires_grad(true);
        x.f_mm(&w)?.f_sum(Kind::Float)?.f_backward()?;
    }
    if let Device::Cuda(_) = device {
        tch::Cuda::synchronize(0);
    }
    Ok(())
}

/// `bench train`: seconds per step of each task with SFESS + VR (S = 32) on real data,
/// and the floor, spending about `seconds` on each.
///
/// # Errors
/// Missing data; training errors.
pub fn train_steps(
    device: Device,
    seconds: f64,
    data_dir: Option<std::path::PathBuf>,
) -> anyhow::Result<Vec<StepMeasurement>> {
    use crate::config::{EnvName, TrainConfig};
    let budget = Duration::from_secs_f64(seconds);
    let tasks = [
        ("k-NN (MNIST)", EnvName::KnnMnist, None, 0.043),
        ("VAE (20, 20, 10)", EnvName::VaeMnist, Some((20, 20, 10)), 0.139),
        ("VAE (10, 10, 5)", EnvName::VaeMnist, Some((10, 10, 5)), 0.107),
        ("feature selection k = 50", EnvName::FeatureSelectionMnist, None, 0.080),
    ];
    let mut results = Vec::new();
    for (task, env, vae, paper_seconds) in tasks {
        let mut config = TrainConfig {
            env,
            data_dir: data_dir.clone(),
            device: crate::device::device_name(device),
            ..TrainConfig::default()
        };
        if let Some((d, n, k)) = vae {
            (config.vae_groups, config.vae_items, config.k) = (d, n, Some(k));
        }
        let mut experiment = crate::runner::Experiment::build(&config)?;
        let variables = experiment.variables();
        let mut optimizer = crate::trainer::Adam::new(variables, config.lr(), config.beta1, config.beta2);
        let mut step = 0u64;
        let (median, _, _) = time(budget, || {
            step += 1;
            experiment.train_step(step, config.seed, config.samples, &mut optimizer)?;
            if let Device::Cuda(_) = device {
                tch::Cuda::synchronize(0);
            }
            Ok(())
        })?;
        let products = step_products(&config);
        let (floor, _, _) = time(budget, || products_once(&products, device))?;
        eprintln!("  {task:<26} {:>8.4} s/step   floor {:>8.4} s   paper's code {paper_seconds} s", median, floor);
        results.push(StepMeasurement {
            task: task.to_owned(),
            seconds_per_step: median,
            floor_seconds: floor,
            paper_seconds,
        });
    }
    Ok(results)
}

/// `bench train` as a Markdown table.
pub fn step_table(results: &[StepMeasurement]) -> String {
    let mut out = String::from(
        "| task (SFESS + VR, S = 32, batch 128) | s/step | matrix products alone (floor) | paper's code | speed-up |\n|---|---:|---:|---:|---:|\n",
    );
    for m in results {
        out += &format!(
            "| {} | {:.4} | {:.4} | {:.3} | {:.1}x |\n",
            m.task,
            m.seconds_per_step,
            m.floor_seconds,
            m.paper_seconds,
            m.paper_seconds / m.seconds_per_step
        );
    }
    out
}
