//! `sfess-agent toy`: the toy problem with known gradients (paper Section 4.1, Figures 2
//! and 3c).
//!
//! Logits `θ ~ N(0, 1)ⁿ`, a target `b = |N(0, 1)|ⁿ` and `f(z) = ‖z − b‖²`. Since `z` is
//! binary, `f(z) = Σ_i z_i (1 − 2 b_i) + ‖b‖²` is linear in `z` and the exact gradient is
//! `∇_θ E[f] = Cov(z) (1 − 2b)`, computed here by enumerating all `C(n, k)` subsets
//! (independently of the library's dynamic programme). For every estimator, `draws`
//! gradient estimates `g_t` at the same `θ` give, per seed,
//!
//! ```text
//! bias     = 1 − cos(g*, ḡ),          ḡ = mean_t g_t
//! variance = Var_t cos(g_t, ḡ)
//! error    = mean_t (1 − cos(g*, g_t))
//! ```
//!
//! and the table reports their mean and standard deviation over seeds. As in the paper,
//! every estimator uses one sample per estimate except SFESS + VR, which uses `samples`.
//! A zero vector has cosine 0 with anything.

use anyhow::{Context, ensure};
use clap::Args;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

use crate::config::estimators::{EstimatorName, EstimatorOptions};
use crate::system::device::DeviceSpec;
use crate::train::estimators;

/// Largest `n` the toy enumerates.
pub const MAX_N: usize = 20;
/// Most gradient estimates per seed, `--draws`.
pub const MAX_DRAWS: usize = 100_000;
/// Most seeds, `--seeds`.
pub const MAX_SEEDS: u64 = 10_000;
/// Most samples per estimate of sfess-vr, `--samples`.
pub const MAX_SAMPLES: usize = 1_024;

/// Refuses a number of seeds outside `1..=MAX_SEEDS`.
fn check_seeds(seeds: u64) -> anyhow::Result<()> {
    ensure!((1..=MAX_SEEDS).contains(&seeds), "--seeds must be between 1 and {MAX_SEEDS}, got {seeds}");
    Ok(())
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ToyConfig {
    /// Items (10 in the paper).
    pub n: usize,
    /// Subset size (5).
    pub k: usize,
    /// Gradient estimates per seed (10,000).
    pub draws: usize,
    /// Seeds (10 of them: 0..10).
    pub seeds: Vec<u64>,
    /// Samples per estimate of SFESS + VR (32).
    pub samples: usize,
    /// Estimators to compare.
    pub estimators: Vec<EstimatorName>,
    /// Their options.
    pub options: EstimatorOptions,
    /// Where tensors live.
    pub device: Device,
}

impl ToyConfig {
    fn check(&self) -> anyhow::Result<()> {
        ensure!(
            self.n >= 1 && self.n <= MAX_N,
            "--n must be between 1 and {MAX_N} (the toy enumerates all subsets), got {}",
            self.n
        );
        ensure!(self.k <= self.n, "--k = {} is out of range for n = {} (0 <= k <= n)", self.k, self.n);
        ensure!(
            (2..=MAX_DRAWS).contains(&self.draws),
            "--draws must be at least 2 and at most {MAX_DRAWS}, got {}",
            self.draws
        );
        check_seeds(self.seeds.len() as u64)?;
        ensure!(
            (2..=MAX_SAMPLES).contains(&self.samples),
            "--samples must be at least 2 (sfess-vr's leave-one-out baseline) and at most {MAX_SAMPLES}, got {}",
            self.samples
        );
        Ok(())
    }
}

/// Mean and standard deviation (over seeds, `n − 1` in the denominator; 0 for one seed).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Spread {
    /// Mean over seeds.
    pub mean: f64,
    /// Standard deviation over seeds.
    pub std: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Self {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var =
            if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
        Spread { mean, std: var.sqrt() }
    }
}

/// The three metrics for one estimator, over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct EstimatorMetrics {
    /// `1 − cos(g*, ḡ)`.
    pub bias: Spread,
    /// `Var_t cos(g_t, ḡ)`.
    pub variance: Spread,
    /// `mean_t (1 − cos(g*, g_t))`.
    pub error: Spread,
}

/// The whole comparison, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct ToyReport {
    /// Items.
    pub n: usize,
    /// Subset size.
    pub k: usize,
    /// Estimates per seed.
    pub draws: usize,
    /// Number of seeds.
    pub seeds: usize,
    /// Samples per estimate of sfess-vr.
    pub samples: usize,
    /// Sampler of the score-function estimators.
    pub sampler: &'static str,
    /// Metrics per estimator name.
    pub estimators: BTreeMap<String, EstimatorMetrics>,
}

/// One seed's problem: logits, target and the exact gradient.
struct Problem {
    theta: Vec<f64>,
    target: Vec<f64>,
    exact: Vec<f64>,
}

impl Problem {
    fn new(n: usize, k: usize, seed: u64) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
        let theta: Vec<f64> = (0..n).map(|_| normal()).collect();
        let target: Vec<f64> = (0..n).map(|_| normal().abs()).collect();
        let exact = exact_gradient(&theta, &target, k);
        Problem { theta, target, exact }
    }
}

/// `Σ_z p(z) f(z) (z − π)` over all k-subsets, in f64.
fn exact_gradient(theta: &[f64], target: &[f64], k: usize) -> Vec<f64> {
    let n = theta.len();
    let subsets: Vec<u32> = (0u32..1 << n).filter(|m| m.count_ones() as usize == k).collect();
    let energy = |m: u32| (0..n).filter(|i| m >> i & 1 == 1).map(|i| theta[i]).sum::<f64>();
    let max = subsets.iter().map(|&m| energy(m)).fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = subsets.iter().map(|&m| (energy(m) - max).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut marginals = vec![0.0; n];
    let mut expected_f = 0.0;
    let loss = |m: u32| (0..n).map(|i| (f64::from(m >> i & 1) - target[i]).powi(2)).sum::<f64>();
    for (&m, w) in subsets.iter().zip(&weights) {
        let p = w / total;
        expected_f += p * loss(m);
        for (i, pi) in marginals.iter_mut().enumerate() {
            *pi += p * f64::from(m >> i & 1);
        }
    }
    // Σ p f (z − π) = Σ p (f − E f)(z − π): the centred form loses less to rounding.
    let mut gradient = vec![0.0; n];
    for (&m, w) in subsets.iter().zip(&weights) {
        let p = w / total;
        let f = loss(m) - expected_f;
        for (i, g) in gradient.iter_mut().enumerate() {
            *g += p * f * (f64::from(m >> i & 1) - marginals[i]);
        }
    }
    gradient
}

/// `cos(u, v)`, 0 when either is zero.
fn cosine(u: &[f64], v: &[f64]) -> f64 {
    let dot: f64 = u.iter().zip(v).map(|(a, b)| a * b).sum();
    let norms = u.iter().map(|a| a * a).sum::<f64>().sqrt() * v.iter().map(|b| b * b).sum::<f64>().sqrt();
    if norms > 0.0 { dot / norms } else { 0.0 }
}

/// `draws` gradient estimates of `estimator` with `samples` samples each, `[draws][n]`.
fn estimates(
    problem: &Problem,
    config: &ToyConfig,
    name: EstimatorName,
    samples: usize,
    seed: u64,
) -> anyhow::Result<Vec<Vec<f64>>> {
    let estimator = estimators::build(name, &config.options)?;
    let (n, draws) = (config.n as i64, config.draws as i64);
    let logits = Tensor::from_slice(&problem.theta)
        .to_device(config.device)
        .view([1, n])
        .repeat([draws, 1])
        .set_requires_grad(true);
    let target = Tensor::from_slice(&problem.target).to_device(config.device);
    // A stream per (seed, estimator), so that adding an estimator changes no other's numbers.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(name as u64 + 1)));
    let draw = estimator
        .draw(&logits, config.k as i64, samples, &mut rng)
        .with_context(|| format!("{}: drawing", name.as_str()))?;
    let losses = (draw.actions() - &target).square().sum_dim_intlist(-1, false, None::<Kind>);
    let surrogate =
        estimator.surrogate_loss(&draw, &losses).with_context(|| format!("{}: surrogate", name.as_str()))?;
    surrogate.backward();
    let gradient = logits.grad().to_device(Device::Cpu).to_kind(Kind::Double).contiguous();
    let flat = Vec::<f64>::try_from(gradient.view([-1]))?;
    Ok(flat.chunks(config.n).map(<[f64]>::to_vec).collect())
}

/// Bias, variance and error of one seed's estimates.
fn metrics(exact: &[f64], estimates: &[Vec<f64>]) -> (f64, f64, f64) {
    let n = exact.len();
    let count = estimates.len() as f64;
    let mean: Vec<f64> = (0..n).map(|i| estimates.iter().map(|g| g[i]).sum::<f64>() / count).collect();
    let bias = 1.0 - cosine(exact, &mean);
    let to_mean: Vec<f64> = estimates.iter().map(|g| cosine(g, &mean)).collect();
    let mean_cos = to_mean.iter().sum::<f64>() / count;
    let variance = to_mean.iter().map(|c| (c - mean_cos).powi(2)).sum::<f64>() / count;
    let error = estimates.iter().map(|g| 1.0 - cosine(exact, g)).sum::<f64>() / count;
    (bias, variance, error)
}

/// Samples per estimate of `name`: `samples` for sfess-vr, one for every other estimator.
fn samples_for(name: EstimatorName, samples: usize) -> usize {
    if name == EstimatorName::SfessVr { samples } else { 1 }
}

/// Runs the comparison (Figure 2).
///
/// # Errors
/// Bad configuration; estimator errors.
pub fn compare(config: &ToyConfig) -> anyhow::Result<ToyReport> {
    config.check()?;
    let mut per_estimator: BTreeMap<EstimatorName, Vec<(f64, f64, f64)>> = BTreeMap::new();
    for &seed in &config.seeds {
        let problem = Problem::new(config.n, config.k, seed);
        for &name in &config.estimators {
            let g = estimates(&problem, config, name, samples_for(name, config.samples), seed)?;
            per_estimator.entry(name).or_default().push(metrics(&problem.exact, &g));
        }
    }
    let estimators = per_estimator
        .into_iter()
        .map(|(name, rows)| {
            let column = |pick: fn(&(f64, f64, f64)) -> f64| Spread::of(&rows.iter().map(pick).collect::<Vec<_>>());
            let metrics = EstimatorMetrics { bias: column(|r| r.0), variance: column(|r| r.1), error: column(|r| r.2) };
            (name.as_str().to_owned(), metrics)
        })
        .collect();
    Ok(ToyReport {
        n: config.n,
        k: config.k,
        draws: config.draws,
        seeds: config.seeds.len(),
        samples: config.samples,
        sampler: sampler_name(config),
        estimators,
    })
}

fn sampler_name(config: &ToyConfig) -> &'static str {
    config.options.sampler.name()
}

/// The sweep over the number of samples of SFESS + VR (Figure 3c).
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    /// Items.
    pub n: usize,
    /// Subset size.
    pub k: usize,
    /// Estimates per seed.
    pub draws: usize,
    /// Number of seeds.
    pub seeds: usize,
    /// Sampler of the score-function estimators.
    pub sampler: &'static str,
    /// Error of SFESS without variance reduction (one sample).
    pub no_vr: Spread,
    /// Error of SFESS + VR per number of samples.
    pub vr: Vec<SweepPoint>,
}

/// One point of the sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepPoint {
    /// Samples per estimate.
    pub samples: usize,
    /// `mean_t (1 − cos(g*, g_t))`, over seeds.
    pub error: Spread,
}

/// The sample counts of Figure 3c.
pub const SWEEP: [usize; 7] = [2, 4, 8, 16, 32, 64, 128];

/// Runs the sweep (Figure 3c).
///
/// # Errors
/// Bad configuration; estimator errors.
pub fn sweep(config: &ToyConfig) -> anyhow::Result<SweepReport> {
    config.check()?;
    let mut no_vr = Vec::new();
    let mut vr = vec![Vec::new(); SWEEP.len()];
    for &seed in &config.seeds {
        let problem = Problem::new(config.n, config.k, seed);
        no_vr.push(metrics(&problem.exact, &estimates(&problem, config, EstimatorName::Sfess, 1, seed)?).2);
        for (errors, &samples) in vr.iter_mut().zip(&SWEEP) {
            let g = estimates(&problem, config, EstimatorName::SfessVr, samples, seed)?;
            errors.push(metrics(&problem.exact, &g).2);
        }
    }
    Ok(SweepReport {
        n: config.n,
        k: config.k,
        draws: config.draws,
        seeds: config.seeds.len(),
        sampler: sampler_name(config),
        no_vr: Spread::of(&no_vr),
        vr: SWEEP.iter().zip(vr).map(|(&samples, errors)| SweepPoint { samples, error: Spread::of(&errors) }).collect(),
    })
}

/// The comparison as a Markdown table.
pub fn table(report: &ToyReport, order: &[EstimatorName]) -> String {
    let mut out = format!(
        "toy problem: n = {}, k = {}, {} estimates per seed, {} seeds (mean ± std over seeds); \
         sfess-vr uses {} samples per estimate, the others 1; sampler {}\n\n\
         | estimator | bias | variance | error |\n|---|---:|---:|---:|\n",
        report.n, report.k, report.draws, report.seeds, report.samples, report.sampler
    );
    for name in order {
        if let Some(m) = report.estimators.get(name.as_str()) {
            let cell = |s: Spread| format!("{:.4} ± {:.4}", s.mean, s.std);
            out += &format!("| {} | {} | {} | {} |\n", name.as_str(), cell(m.bias), cell(m.variance), cell(m.error));
        }
    }
    out
}

/// The sweep as a Markdown table.
pub fn sweep_table(report: &SweepReport) -> String {
    let mut out = format!(
        "SFESS + VR error against samples: n = {}, k = {}, {} estimates per seed, {} seeds, sampler {}\n\n\
         | samples | error |\n|---|---:|\n| no VR (sfess, 1 sample) | {:.4} ± {:.4} |\n",
        report.n, report.k, report.draws, report.seeds, report.sampler, report.no_vr.mean, report.no_vr.std
    );
    for point in &report.vr {
        out += &format!("| {} | {:.4} ± {:.4} |\n", point.samples, point.error.mean, point.error.std);
    }
    out
}

/// Arguments of `toy`.
#[derive(Debug, Clone, Args)]
pub struct ToyArgs {
    /// Items.
    #[arg(long, default_value_t = 10)]
    pub n: usize,
    /// Subset size.
    #[arg(short, long, default_value_t = 5)]
    pub k: usize,
    /// Gradient estimates per seed (2 to 100,000).
    #[arg(long, default_value_t = 10_000)]
    pub draws: usize,
    /// Number of seeds (0, 1, …, N − 1; N at most 10,000); each draws its own logits and target.
    #[arg(long, default_value_t = 10)]
    pub seeds: u64,
    /// Samples per estimate of sfess-vr, 2 to 1,024 (the others use one, as in the paper).
    #[arg(long, default_value_t = 32)]
    pub samples: usize,
    /// Estimators to compare, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = EstimatorName::ALL)]
    pub estimators: Vec<EstimatorName>,
    /// Estimator options.
    #[command(flatten)]
    pub options: EstimatorOptions,
    /// Run the sweep of Figure 3c instead: SFESS + VR with 2, 4, …, 128 samples, and SFESS.
    #[arg(long)]
    pub vr_sweep: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write the figure (SVG and PNG) and the JSON into this folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `sfess-agent toy`: runs what `args` asks for on `device` and writes the table (or with
/// `--json` one line of JSON) to `stdout`; with `--out`, also writes the JSON and the figure.
///
/// # Errors
/// Bad options, estimator errors, files that cannot be written.
pub fn run(args: &ToyArgs, device: DeviceSpec, stdout: &mut dyn Write) -> anyhow::Result<()> {
    let device = device.resolve()?;
    check_seeds(args.seeds)?;
    let config = ToyConfig {
        n: args.n,
        k: args.k,
        draws: args.draws,
        seeds: (0..args.seeds).collect(),
        samples: args.samples,
        estimators: args.estimators.clone(),
        options: args.options.clone(),
        device,
    };
    let (json, text, name, figure) = if args.vr_sweep {
        let report = sweep(&config)?;
        (serde_json::to_value(&report)?, sweep_table(&report), "vr-sweep", Figure::Sweep(report))
    } else {
        let report = compare(&config)?;
        (serde_json::to_value(&report)?, table(&report, &config.estimators), "toy", Figure::Comparison(report))
    };
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let pretty = serde_json::to_string_pretty(&json)? + "\n";
        crate::system::files::write_atomically(&dir.join(format!("{name}.json")), pretty.as_bytes())?;
        figure.draw(&dir.join(name), &config.estimators)?;
    }
    // One line of JSON on stdout, like `inspect`.
    super::write_out(stdout, &if args.json { json.to_string() + "\n" } else { text }, "the result")
}

/// What to draw.
enum Figure {
    Comparison(ToyReport),
    Sweep(SweepReport),
}

impl Figure {
    fn draw(&self, stem: &std::path::Path, order: &[EstimatorName]) -> anyhow::Result<()> {
        use crate::plot::{Bar, BarPanel, LinePanel};
        match self {
            Figure::Comparison(report) => {
                let present: Vec<EstimatorName> =
                    order.iter().copied().filter(|n| report.estimators.contains_key(n.as_str())).collect();
                let group = |name: &EstimatorName, pick: &dyn Fn(&EstimatorMetrics) -> Vec<Spread>| Bar {
                    label: name.as_str().to_owned(),
                    values: pick(&report.estimators[name.as_str()]).into_iter().map(|s| (s.mean, s.std)).collect(),
                };
                let title =
                    format!("n = {}, k = {}, {} draws × {} seeds", report.n, report.k, report.draws, report.seeds);
                let left = BarPanel {
                    title: format!("bias and variance ({title})"),
                    y_label: "1 − cos (bias), Var cos (variance)".into(),
                    series: vec!["bias".into(), "variance".into()],
                    groups: present.iter().map(|n| group(n, &|m| vec![m.bias, m.variance])).collect(),
                };
                let right = BarPanel {
                    title: "error".into(),
                    y_label: "mean 1 − cos(true, estimate)".into(),
                    series: vec!["error".into()],
                    groups: present.iter().map(|n| group(n, &|m| vec![m.error])).collect(),
                };
                crate::plot::bars(stem, &[left, right])?;
            }
            Figure::Sweep(report) => {
                let panel = LinePanel {
                    title: format!("SFESS + VR, n = {}, k = {}, {} seeds", report.n, report.k, report.seeds),
                    x_label: "samples per estimate (log scale)".into(),
                    y_label: "mean 1 − cos(true, estimate)".into(),
                    name: "SFESS + VR".into(),
                    points: report.vr.iter().map(|p| (p.samples as f64, p.error.mean, p.error.std)).collect(),
                    references: vec![("no VR".into(), report.no_vr.mean, report.no_vr.std)],
                };
                crate::plot::line(stem, &panel)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_gradient_is_the_covariance_times_one_minus_two_b() {
        // Cov(z)(1 − 2b) computed from pairwise inclusion probabilities by enumeration.
        let (theta, target, k) = ([0.3, -1.2, 0.8, 0.1, 2.0], [0.5, 1.5, 0.2, 0.9, 0.05], 2);
        let n = theta.len();
        let subsets: Vec<u32> = (0u32..1 << n).filter(|m| m.count_ones() == k as u32).collect();
        let w: Vec<f64> =
            subsets.iter().map(|&m| (0..n).filter(|i| m >> i & 1 == 1).map(|i| theta[i]).sum::<f64>().exp()).collect();
        let total: f64 = w.iter().sum();
        let pair = |i: usize, j: usize| -> f64 {
            subsets.iter().zip(&w).filter(|(m, _)| *m >> i & 1 == 1 && *m >> j & 1 == 1).map(|(_, w)| w / total).sum()
        };
        let expected: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| (pair(i, j) - pair(i, i) * pair(j, j)) * (1.0 - 2.0 * target[j])).sum())
            .collect();
        let got = exact_gradient(&theta, &target, k);
        for (a, b) in got.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-12, "{got:?} vs {expected:?}");
        }
    }

    #[test]
    fn metrics_of_perfect_and_of_scaled_estimates() {
        let exact = [1.0, -2.0, 0.5];
        let perfect = vec![exact.to_vec(); 4];
        assert_eq!(metrics(&exact, &perfect), (0.0, 0.0, 0.0));
        // Opposite estimates: cos = −1 each, mean zero.
        let opposite = vec![vec![-1.0, 2.0, -0.5]; 3];
        let (bias, variance, error) = metrics(&exact, &opposite);
        assert!((bias - 2.0).abs() < 1e-12 && variance.abs() < 1e-12 && (error - 2.0).abs() < 1e-12);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }

    #[test]
    fn spread_uses_the_sample_standard_deviation() {
        let s = Spread::of(&[1.0, 3.0]);
        assert_eq!(s.mean, 2.0);
        assert!((s.std - 2f64.sqrt()).abs() < 1e-15);
        assert_eq!(Spread::of(&[5.0]).std, 0.0);
    }
}
