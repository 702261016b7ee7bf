//! `sfess-agent bench`: how fast the k-subset distribution (`bench distribution`) and a
//! training step (`bench train`) are on this machine, on the CPU or a CUDA device, and how
//! fast the tool starts (`bench startup`, in [`startup`]).
//!
//! Each case is timed by repeating it until about `--seconds` have passed (after one
//! warm-up call) and reporting the median and the fastest call. On a CUDA device every call
//! ends with a synchronisation, so that the time is the device's work, not only its launch.
//! The largest distribution case also runs first and reports its peak memory on the CPU:
//! the process's high-water mark (`VmHWM`, reset through `/proc/self/clear_refs` just
//! before), which includes libtorch's own resident memory, given beside the resident size
//! before the call.

pub mod startup;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use sfess_agents::{ConditionalPoisson, Normalizer, Sampler};
use tch::{Device, Kind, Tensor};

use crate::config::{RunSpec, TrainConfig};
use crate::system::device::DeviceSpec;
use sfess_envs::registry::{IMAGE_PIXELS, Registry};

/// Where a benchmark ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// The GPU's model (from `nvidia-smi`), for a CUDA device.
    pub gpu: Option<String>,
    /// The CPU's model (from `/proc/cpuinfo`).
    pub cpu: Option<String>,
    /// libtorch's intra-op threads and rayon's threads.
    pub threads: usize,
}

impl Machine {
    /// This machine, benchmarking on `device`.
    pub fn describe(device: Device) -> Self {
        let gpu = match device {
            Device::Cuda(index) => gpu_model(index),
            _ => None,
        };
        let cpu = crate::system::device::cpu_model();
        Self { device: crate::system::device::device_name(device), gpu, cpu, threads: rayon::current_num_threads() }
    }

    /// One line for the top of a report.
    pub fn line(&self) -> String {
        let model = self.gpu.as_deref().or(self.cpu.as_deref()).unwrap_or("unknown model");
        format!("{} ({model}), {} CPU threads", self.device, self.threads)
    }
}

/// The model of CUDA device `index`, as `nvidia-smi` names it.
fn gpu_model(index: usize) -> Option<String> {
    let output = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader", "-i", &index.to_string()])
        .output()
        .ok()?;
    let name = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !name.is_empty()).then_some(name)
}

/// Waits for `device` to finish its queued work (nothing to wait for on the CPU).
pub fn synchronize(device: Device) {
    if let Device::Cuda(index) = device {
        tch::Cuda::synchronize(index as i64);
    }
}

/// One benchmark case and what it measured.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// What was timed.
    pub case: String,
    /// The backend.
    pub normalizer: String,
    /// Rows.
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

/// `bench distribution`'s result.
#[derive(Debug, Clone, Serialize)]
pub struct DistributionReport {
    /// Where it ran.
    pub machine: Machine,
    /// The cases.
    pub measurements: Vec<Measurement>,
}

/// Times `call` on `device` for about `budget` (at least 3 calls, after one warm-up), each
/// call followed by a synchronisation.
fn time(
    budget: Duration,
    device: Device,
    mut call: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(f64, f64, usize)> {
    call()?;
    synchronize(device);
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 3 || (start.elapsed() < budget && times.len() < 10_000) {
        let t = Instant::now();
        call()?;
        synchronize(device);
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

/// The shapes of the targets: `(B, n, k)` for normaliser + marginals + 32 exact samples.
pub const TARGET_SHAPES: [(i64, i64, i64); 4] = [(128, 128, 10), (1, 784, 50), (1, 100_000, 1_000), (1_024, 1_024, 64)];

/// The normaliser and marginals, then `samples` exact samples per row, with `normalizer`.
fn law_and_samples(
    logits: &Tensor,
    k: i64,
    normalizer: Normalizer,
    samples: usize,
    rng: &mut Xoshiro256PlusPlus,
) -> anyhow::Result<()> {
    let policy = ConditionalPoisson::with_normalizer(logits, k, normalizer).context("computing the distribution")?;
    let _marginals = policy.marginals();
    if samples > 0 {
        let _ = policy.sample(samples, Sampler::Exact, rng).context("sampling")?;
    }
    Ok(())
}

/// `seconds` as the time budget of each case.
fn budget(seconds: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|budget| !budget.is_zero())
        .with_context(|| format!("{seconds} is not a positive number of seconds"))
}

/// Runs every case of the distribution benchmark on `device`, spending about `seconds`
/// on each, and reports progress on stderr.
///
/// # Errors
/// `seconds` is not a positive number of seconds; library errors (none are expected on
/// valid sizes).
pub fn distribution(device: Device, seconds: f64) -> anyhow::Result<DistributionReport> {
    let budget = budget(seconds)?;
    let mut results = Vec::new();
    let mut record = |case: &str,
                      normalizer: Normalizer,
                      (batch, n, k): (i64, i64, i64),
                      timing: (f64, f64, usize),
                      memory: Option<(f64, f64)>| {
        let (median_seconds, min_seconds, calls) = timing;
        crate::system::messages::say(format_args!(
            "  {case:<38} {:<15} B={batch:<5} n={n:<6} k={k:<5} median {:>10.3} ms",
            normalizer.name(),
            median_seconds * 1e3
        ));
        results.push(Measurement {
            case: case.to_owned(),
            normalizer: normalizer.name().to_owned(),
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
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let exact = [Normalizer::Stable, Normalizer::Parallel];
    // First, so that its peak memory is measured on a process that has done nothing else.
    {
        let (batch, n, k) = (1, 100_000, 1_000);
        let logits = normal_logits(batch, n, device);
        let peak = match device {
            Device::Cpu => peak_memory_mib(|| law_and_samples(&logits, k, Normalizer::Stable, 0, &mut rng))?,
            _ => None,
        };
        let timing = time(budget, device, || law_and_samples(&logits, k, Normalizer::Stable, 0, &mut rng))?;
        record("normaliser + marginals", Normalizer::Stable, (batch, n, k), timing, peak);
    }
    // The targets: normaliser + marginals + 32 exact samples, both exact backends.
    for (batch, n, k) in TARGET_SHAPES {
        let logits = normal_logits(batch, n, device);
        for normalizer in exact {
            let timing = time(budget, device, || law_and_samples(&logits, k, normalizer, 32, &mut rng))?;
            record("normaliser + marginals + 32 samples", normalizer, (batch, n, k), timing, None);
        }
    }
    for (batch, n, k) in [(128, 128, 10), (1, 784, 50), (1, 4096, 256)] {
        let logits = normal_logits(batch, n, device);
        for normalizer in exact {
            let timing = time(budget, device, || law_and_samples(&logits, k, normalizer, 0, &mut rng))?;
            record("normaliser + marginals", normalizer, (batch, n, k), timing, None);
        }
    }
    {
        let (batch, n, k) = (128, 128, 10);
        let logits = normal_logits(batch, n, device);
        for normalizer in exact {
            let policy = ConditionalPoisson::with_normalizer(&logits, k, normalizer)?;
            for (sampler, case) in
                [(Sampler::Exact, "32 exact samples per row"), (Sampler::GumbelTopK, "32 Gumbel top-k samples per row")]
            {
                let timing =
                    time(budget, device, || policy.sample(32, sampler, &mut rng).map(drop).context("sampling"))?;
                record(case, normalizer, (batch, n, k), timing, None);
            }
        }
    }
    // The paper's DFT (on the host with rustfft for CPU logits, libtorch's FFT on a device).
    for (batch, n, k) in [(1, 784, 50), (128, 128, 10)] {
        // N(0, 1) logits make P(sum b = k) far below the f64 DFT's resolution: time it
        // on logits tilted so that it succeeds (the arithmetic is the same).
        let tilt = ((k as f64) / ((n - k) as f64)).ln();
        let logits = normal_logits(batch, n, device) * 0.1 + tilt;
        for (normalizer, case) in [
            (Normalizer::Dft, "paper's DFT (f64) + marginals"),
            (Normalizer::PaperComplex64, "paper code's DFT (complex64) + marginals"),
        ] {
            let timing = time(budget, device, || law_and_samples(&logits, k, normalizer, 0, &mut rng))?;
            record(case, normalizer, (batch, n, k), timing, None);
        }
    }
    Ok(DistributionReport { machine: Machine::describe(device), measurements: results })
}

/// The benchmark as a Markdown table, with the DFT-to-stable ratios.
pub fn table(report: &DistributionReport) -> String {
    let results = &report.measurements;
    let mut out = format!(
        "{}\n\n| case | backend | B | n | k | median | fastest | calls | process peak RSS (before the call) |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
        report.machine.line()
    );
    for m in results {
        let peak = match (m.peak_mib, m.before_mib) {
            (Some(peak), Some(before)) => format!("{peak:.0} MiB ({before:.0} MiB)"),
            _ => String::new(),
        };
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            m.case,
            m.normalizer,
            m.batch,
            m.n,
            m.k,
            duration(m.median_seconds),
            duration(m.min_seconds),
            m.calls,
            peak
        );
    }
    let find = |case: &str, normalizer: &str, n: i64| {
        results.iter().find(|m| m.case == case && m.normalizer == normalizer && m.n == n).map(|m| m.median_seconds)
    };
    for n in [784, 128] {
        if let Some(stable) = find("normaliser + marginals", "stable", n) {
            for (case, name) in [
                ("paper's DFT (f64) + marginals", "dft"),
                ("paper code's DFT (complex64) + marginals", "paper-complex64"),
            ] {
                if let Some(dft) = find(case, name, n) {
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepMeasurement {
    /// The task.
    pub task: String,
    /// The distribution's backend.
    pub normalizer: String,
    /// Median seconds per training step (SFESS + VR, S = 32).
    pub seconds_per_step: f64,
    /// Median seconds of the step's matrix products alone (forward and backward, inputs
    /// made beforehand).
    pub floor_seconds: f64,
    /// The paper's PyTorch code per step on a 2-core machine of this project's kind (from
    /// the project's issue).
    pub paper_seconds: f64,
}

/// `bench train`'s result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    /// Where it ran.
    pub machine: Machine,
    /// The tasks.
    pub measurements: Vec<StepMeasurement>,
}

/// One matrix product of a step: `[rows, inputs] × [inputs, outputs]`, and whether its
/// input needs a gradient (it does except for a network's first layer, whose input is data
/// or samples).
#[derive(Debug, Clone, Copy)]
struct Product {
    rows: i64,
    inputs: i64,
    outputs: i64,
    input_gradient: bool,
}

/// The matrix products of one training step of `config` on `device`, as the networks run
/// them (on the CPU feature selection's first layer multiplies only the k selected pixels).
fn step_products(spec: &RunSpec<'_>, device: Device) -> anyhow::Result<Vec<Product>> {
    let config = spec.config();
    let (batch, samples) = (config.batch_size as i64, config.samples as i64);
    let layer = |rows, inputs, outputs, input_gradient| Product { rows, inputs, outputs, input_gradient };
    let options = spec.options();
    let pixels = IMAGE_PIXELS as i64;
    let count = |name: &str| options.count(name).map(|v| v as i64);
    Ok(match config.env.as_str() {
        "knn-mnist" | "knn-fashion" => {
            let rows = batch + count("candidates")?;
            vec![
                layer(rows, pixels, 512, false),
                layer(rows, 512, 256, true),
                layer(rows, 256, count("embedding-dim")?, true),
            ]
        }
        "feature-selection-mnist" | "feature-selection-fashion" => {
            let first = if device == Device::Cpu { spec.k() as i64 } else { pixels };
            let rows = samples * batch;
            vec![layer(rows, first, 200, false), layer(rows, 200, 200, true), layer(rows, 200, pixels, true)]
        }
        "vae-mnist" | "vae-fashion" => {
            let code = count("groups")? * count("items")?;
            let rows = samples * batch;
            vec![
                layer(batch, pixels, 512, false),
                layer(batch, 512, 256, true),
                layer(batch, 256, code, true),
                layer(rows, code, 256, false),
                layer(rows, 256, 512, true),
                layer(rows, 512, pixels, true),
            ]
        }
        // The black-box tasks are not benchmarked against the paper.
        _ => Vec::new(),
    })
}

/// The operands of `products` on `device`, made once.
fn product_operands(products: &[Product], device: Device) -> Vec<(Tensor, Tensor)> {
    products
        .iter()
        .map(|p| {
            let x = Tensor::randn([p.rows, p.inputs], (Kind::Float, device)).set_requires_grad(p.input_gradient);
            let w = Tensor::randn([p.inputs, p.outputs], (Kind::Float, device)).set_requires_grad(true);
            (x, w)
        })
        .collect()
}

/// The products forward and backward (each gradient computed, none accumulated).
fn products_once(operands: &[(Tensor, Tensor)]) -> anyhow::Result<()> {
    for (x, w) in operands {
        let y = x.f_mm(w)?.f_sum(Kind::Float)?;
        let inputs: Vec<&Tensor> = if x.requires_grad() { vec![x, w] } else { vec![w] };
        let _ = Tensor::f_run_backward(&[y], &inputs, false, false)?;
    }
    Ok(())
}

/// One task of `bench train`.
#[derive(Debug, Clone, Copy)]
pub struct TrainTask {
    /// Its name in the table.
    pub name: &'static str,
    /// The environment.
    pub env: &'static str,
    /// The VAE's `(d, n, k)`.
    pub vae: Option<(usize, usize, usize)>,
    /// The paper code's seconds per step on a 2-core machine of this project's kind.
    pub paper_seconds: f64,
}

/// The tasks of `bench train`.
pub const TRAIN_TASKS: [TrainTask; 4] = [
    TrainTask { name: "k-NN (MNIST)", env: "knn-mnist", vae: None, paper_seconds: 0.043 },
    TrainTask { name: "VAE (20, 20, 10)", env: "vae-mnist", vae: Some((20, 20, 10)), paper_seconds: 0.139 },
    TrainTask { name: "VAE (10, 10, 5)", env: "vae-mnist", vae: Some((10, 10, 5)), paper_seconds: 0.107 },
    TrainTask { name: "feature selection k = 50", env: "feature-selection-mnist", vae: None, paper_seconds: 0.080 },
];

/// What `bench train` times, as given on its command line.
#[derive(Debug, Clone)]
pub struct TrainBench {
    /// The device.
    pub device: Device,
    /// Seconds spent on each of the step and the floor.
    pub seconds: f64,
    /// Where the data sets are.
    pub data_dir: Option<std::path::PathBuf>,
    /// The distribution's backend.
    pub normalizer: Normalizer,
}

/// `bench train`: seconds per step of each task with SFESS + VR (S = 32) on real data, and
/// the floor, spending about `seconds` on each. Each task runs in a fresh process (this
/// binary, `bench train --task I`): in one process, a task's step time depends on which
/// tasks ran before it (by 10–60% here, through the allocator's state), the floor's does not.
///
/// # Errors
/// Missing data; training errors; a child that fails.
pub fn train_steps(bench: &TrainBench) -> anyhow::Result<TrainReport> {
    let exe = std::env::current_exe().context("locating the sfess-agent binary")?;
    let mut measurements = Vec::new();
    for (index, TrainTask { name: task, .. }) in TRAIN_TASKS.iter().enumerate() {
        let mut command = std::process::Command::new(&exe);
        command.arg("--device").arg(crate::system::device::device_name(bench.device));
        // Each task's process chooses its threads as a run does, unless --threads was given.
        if crate::system::threads::threads_given() {
            command.arg("--threads").arg(rayon::current_num_threads().to_string());
        }
        command.args([
            "bench",
            "train",
            "--json",
            "--task",
            &index.to_string(),
            "--seconds",
            &bench.seconds.to_string(),
        ]);
        if let Some(value) = clap::ValueEnum::to_possible_value(&bench.normalizer) {
            command.arg("--normalizer").arg(value.get_name());
        }
        if let Some(dir) = &bench.data_dir {
            command.arg("--data-dir").arg(dir);
        }
        let output = command
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("starting the {task} benchmark"))?;
        anyhow::ensure!(output.status.success(), "the {task} benchmark failed ({})", output.status);
        let report: TrainReport =
            serde_json::from_slice(&output.stdout).with_context(|| format!("reading the {task} benchmark"))?;
        measurements.extend(report.measurements);
    }
    Ok(TrainReport { machine: Machine::describe(bench.device), measurements })
}

/// One task of [`TRAIN_TASKS`] in this process (`bench train --task I`).
///
/// # Errors
/// `seconds` is not a positive number of seconds; missing data; training errors.
pub fn train_step_of_task(bench: &TrainBench, index: usize) -> anyhow::Result<TrainReport> {
    let &TrainTask { name: task, env, vae, paper_seconds } = TRAIN_TASKS.get(index).with_context(|| {
        format!("--task {index}: there are {} tasks (0 to {})", TRAIN_TASKS.len(), TRAIN_TASKS.len() - 1)
    })?;
    let (device, budget) = (bench.device, budget(bench.seconds)?);
    let registry = Registry::shipped();
    let mut config = TrainConfig {
        env: env.to_owned(),
        data_dir: bench.data_dir.clone(),
        device: crate::system::device::device_name(device),
        ..TrainConfig::default()
    };
    config.estimator_options.normalizer = bench.normalizer;
    if let Some((d, n, k)) = vae {
        config.set_option("groups", d.into());
        config.set_option("items", n.into());
        config.k = Some(k);
    }
    let spec = config.check(&registry)?;
    let mut experiment = crate::train::experiment::Experiment::build(&spec, &crate::system::signals::Interrupt::new())?;
    let mut optimizer = experiment.optimizer(spec.learning_rate(), config.beta1, config.beta2)?;
    let mut step = 0u64;
    // As a run trains: libtorch's threads chosen by timing unless --threads was given.
    let mut threads = crate::system::threads::StepThreads::for_this_process();
    let (median, _, _) = time(budget, device, || {
        step += 1;
        threads.run(|| experiment.train_step(step, config.seed, config.samples, &mut optimizer).map(drop))
    })?;
    let operands = product_operands(&step_products(&spec, device)?, device);
    let (floor, _, _) = time(budget, device, || products_once(&operands))?;
    let used = bench.normalizer.resolve(device).name();
    crate::system::messages::say(format_args!(
        "  {task:<26} {used:<9} {median:>8.4} s/step   floor {floor:>8.4} s ({:.2}x)   paper's code {paper_seconds} s",
        median / floor
    ));
    let measurement = StepMeasurement {
        task: task.to_owned(),
        normalizer: used.to_owned(),
        seconds_per_step: median,
        floor_seconds: floor,
        paper_seconds,
    };
    Ok(TrainReport { machine: Machine::describe(device), measurements: vec![measurement] })
}

/// `bench train` as a Markdown table.
pub fn step_table(report: &TrainReport) -> String {
    let mut out = format!(
        "{}\n\n| task (SFESS + VR, S = 32, batch 128) | backend | s/step | matrix products alone (floor) | step / floor | paper's code | speed-up |\n|---|---|---:|---:|---:|---:|---:|\n",
        report.machine.line()
    );
    for m in &report.measurements {
        out += &format!(
            "| {} | {} | {:.4} | {:.4} | {:.2}x | {:.3} | {:.1}x |\n",
            m.task,
            m.normalizer,
            m.seconds_per_step,
            m.floor_seconds,
            m.seconds_per_step / m.floor_seconds,
            m.paper_seconds,
            m.paper_seconds / m.seconds_per_step
        );
    }
    out
}

/// What `bench` measures.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    /// The k-subset distribution at the paper's sizes: normaliser + marginals, exact and
    /// Gumbel top-k sampling, n = 100,000 with its peak memory, and the paper's DFT.
    Distribution(BenchArgs),
    /// Seconds per training step of each task with SFESS + VR (S = 32) on the real data,
    /// beside what the step's matrix products alone cost (the floor).
    Train(BenchTrainArgs),
    /// Seconds of whole `sfess-agent` processes: the commands that compute nothing, those
    /// that load libtorch, and one that trains.
    Startup(startup::BenchStartupArgs),
}

/// Arguments of `bench train`.
#[derive(Debug, Clone, Args)]
pub struct BenchTrainArgs {
    /// Timing options.
    #[command(flatten)]
    pub timing: BenchArgs,
    /// Folder with the mnist/ IDX files [default: $SFESS_DATA_DIR, else ~/.cache/sfess-agent/data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Backend of the k-subset law (auto: stable on the CPU, parallel on CUDA).
    #[arg(long, value_enum, default_value_t = Normalizer::Auto)]
    pub normalizer: Normalizer,
    /// Only this task, in this process (what each task's child process runs).
    #[arg(long, hide = true, value_name = "INDEX")]
    pub task: Option<usize>,
}

/// Arguments of the benchmarks.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Seconds spent timing each case (after one warm-up call), at most 3600.
    #[arg(long, default_value_t = 2.0, value_parser = positive_seconds)]
    pub seconds: f64,
    /// Print the measurements as JSON instead of a Markdown table.
    #[arg(long)]
    pub json: bool,
}

/// Longest `--seconds` of the benchmarks, per case.
pub const MAX_BENCH_SECONDS: f64 = 3600.0;

fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= MAX_BENCH_SECONDS => Ok(s),
        _ => Err(format!("{text:?} is not a positive number of seconds up to {MAX_BENCH_SECONDS}")),
    }
}

/// `sfess-agent bench`: runs the benchmark `command` asks for on `device` and writes its
/// measurements to `stdout`, as a Markdown table or (`--json`) as JSON.
///
/// # Errors
/// An unusable device; the benchmark's errors; `stdout` cannot be written.
pub fn run(command: &BenchCommand, device: DeviceSpec, stdout: &mut dyn Write) -> anyhow::Result<()> {
    let device = device.resolve()?;
    let text = match command {
        BenchCommand::Distribution(args) => {
            crate::system::messages::say(format_args!(
                "sfess-agent bench distribution on {}",
                Machine::describe(device).line()
            ));
            let results = distribution(device, args.seconds)?;
            if args.json {
                serde_json::to_string_pretty(&results).context("serialising the measurements")? + "\n"
            } else {
                table(&results)
            }
        }
        BenchCommand::Train(args) => {
            let plan = TrainBench {
                device,
                seconds: args.timing.seconds,
                data_dir: args.data_dir.clone(),
                normalizer: args.normalizer,
            };
            let results = match args.task {
                Some(index) => train_step_of_task(&plan, index)?,
                None => {
                    crate::system::messages::say(format_args!(
                        "sfess-agent bench train on {}",
                        Machine::describe(device).line()
                    ));
                    train_steps(&plan)?
                }
            };
            if args.timing.json {
                serde_json::to_string_pretty(&results).context("serialising the measurements")? + "\n"
            } else {
                step_table(&results)
            }
        }
        BenchCommand::Startup(args) => {
            let report = startup::measure(args)?;
            if args.json {
                serde_json::to_string_pretty(&report).context("serialising the measurements")? + "\n"
            } else {
                startup::table(&report)
            }
        }
    };
    super::write_out(stdout, &text, "the measurements")
}
