//! Running an experiment: building the environment, the policy and the estimator from a
//! [`TrainConfig`], the run folder, and `eval`.
//!
//! A run folder holds
//! - `config.json`: the resolved configuration;
//! - `metrics.jsonl`: one JSON object per line, `{"step", "split", "metric", "value",
//!   "elapsed_seconds"}` (the mean training loss every `min(100, eval_every)` steps,
//!   validation every `eval_every` and before the first step, test at the end);
//! - `checkpoint.ot`: the variables, Adam's moments and the step, rewritten atomically at
//!   every validation;
//! - `summary.json` once the run is complete:
//!   `{"env", "estimator", "seed", "steps", "device", "seconds_per_step", "test": {METRIC: VALUE}}`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sfess_agents::GradientEstimator;
use sfess_agents::{ConditionalPoisson, Normalizer};
use sfess_envs::EnvError;
use sfess_envs::coverage::{CoverageInstance, MaxCoverage};
use sfess_envs::data::{Mnist, default_data_dir};
use sfess_envs::external::ExternalReward;
use sfess_envs::feature_selection::FeatureSelection;
use sfess_envs::knn::StochasticKnn;
use sfess_envs::knn_selection::{KnnFeatureSelection, KnnSelectionConfig};
use sfess_envs::sensor::{Fields, SensorConfig, SensorPlacement};
use sfess_envs::vae::{Latent, SubsetKl, SubsetVae};
use sfess_envs::{EnvSpec, Environment, KHotSpace, Phase};
use tch::{Device, Tensor};

use crate::config::{EnvName, PolicyName, TrainConfig};
use crate::device::{DeviceSpec, device_name};
use crate::estimators::{self, EstimatorOptions};
use crate::files::write_atomically;
use crate::policy::{GlobalLogits, KnnEmbedding, MlpPolicy, Policy, VaeEncoder};
use crate::trainer::{Adam, StepReport, load_checkpoint, save_checkpoint, train_step};

/// File names inside a run folder.
pub const CONFIG: &str = "config.json";
/// Metrics, one JSON object per line.
pub const METRICS: &str = "metrics.jsonl";
/// The checkpoint.
pub const CHECKPOINT: &str = "checkpoint.ot";
/// The summary of a complete run.
pub const SUMMARY: &str = "summary.json";

/// Steps between training-loss records.
const LOSS_EVERY: u64 = 100;

/// `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Environment.
    pub env: String,
    /// Estimator.
    pub estimator: String,
    /// Seed.
    pub seed: u64,
    /// Steps trained.
    pub steps: u64,
    /// Device the run trained on.
    pub device: String,
    /// Mean wall-clock seconds per training step (validation excluded).
    pub seconds_per_step: f64,
    /// Test metrics.
    pub test: BTreeMap<String, f64>,
    /// The main test metric of untrained selections (random subsets, the task's classical
    /// method), for the black-box tasks.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub baselines: BTreeMap<String, f64>,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Training step after which it was measured.
    pub step: u64,
    /// `train`, `validation` or `test`.
    pub split: String,
    /// Metric name.
    pub metric: String,
    /// Value.
    pub value: f64,
    /// Seconds since the run started (training and evaluation, across resumptions).
    pub elapsed_seconds: f64,
}

/// How much the runner prints on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// A progress bar (when stderr is a terminal) and a closing line.
    Normal,
    /// Nothing but errors.
    Quiet,
}

/// Everything a run trains: the environment, the policy, the estimator.
pub struct Experiment {
    /// The environment.
    pub env: Box<dyn Environment>,
    /// The policy.
    pub policy: Box<dyn Policy>,
    /// The estimator.
    pub estimator: Box<dyn GradientEstimator>,
    /// Where tensors live.
    pub device: Device,
}

impl Experiment {
    /// Builds the experiment of `config`: loads the data, initialises the networks from
    /// `config.seed`, and refuses an estimator that needs gradients on a black-box
    /// environment (before starting anything).
    ///
    /// # Errors
    /// Unknown device, missing or corrupt data, bad sizes, refused estimator, a reward
    /// command that cannot start.
    pub fn build(config: &TrainConfig) -> anyhow::Result<Self> {
        config.check()?;
        let device: DeviceSpec = config.device.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
        let device = device.resolve()?;
        let estimator = estimators::build(config.estimator, &EstimatorOptions::from(&config.estimator_options))?;
        if !config.env.is_paper_task() {
            refuse_on_black_box(estimator.as_ref(), config.env.as_str())?;
        }
        tch::manual_seed(config.seed as i64);
        let data = match config.env.data_set() {
            Some(set) => {
                let data_dir = config.data_dir.clone().unwrap_or_else(default_data_dir);
                let data = Mnist::load(&data_dir, set)
                    .with_context(|| format!("loading {} for {}", set.name(), config.env.as_str()))?;
                Some(data)
            }
            None => None,
        };
        let (name, k) = (config.env.as_str(), config.subset_size());
        // Each arm creates the policy's network before the environment's: both draw from
        // libtorch's generator, in this order.
        let (env, policy): (Box<dyn Environment>, Box<dyn Policy>) = match (config.env, data) {
            (EnvName::KnnMnist | EnvName::KnnFashion, Some(data)) => {
                let policy = Box::new(KnnEmbedding::new(device, 784, config.embedding_dim as i64, k as i64));
                (Box::new(StochasticKnn::new(name, data, config.batch_size, config.candidates, k, device)?), policy)
            }
            (EnvName::FeatureSelectionMnist | EnvName::FeatureSelectionFashion, Some(data)) => {
                let policy = Box::new(GlobalLogits::new(device, 784, k as i64));
                (Box::new(FeatureSelection::new(name, data, config.batch_size, k, device)?), policy)
            }
            (EnvName::VaeMnist | EnvName::VaeFashion, Some(data)) => {
                let latent = Latent { groups: config.vae_groups, items: config.vae_items, k };
                let policy = Box::new(VaeEncoder::new(device, latent.groups as i64, latent.items as i64, k as i64));
                let kl = exact_kl(config.estimator_options.normalizer.resolve(device));
                (Box::new(SubsetVae::new(name, data, config.batch_size, latent, kl, device)?), policy)
            }
            (env, data) => {
                let env = black_box_env(config, env, data, device)?;
                let policy = policy_for(env.spec(), config.policy, config.hidden, device)?;
                (env, policy)
            }
        };
        Self::assemble(env, policy, estimator, config.samples, device)
    }

    /// An experiment on your own environment (a [`sfess_envs::custom::RewardEnv`] or any
    /// [`Environment`]), with a policy of kind `policy` (`hidden` units for an MLP).
    ///
    /// # Errors
    /// The estimator needs gradients the environment cannot give; too few samples; an MLP
    /// policy for an environment without observations.
    pub fn custom(
        env: Box<dyn Environment>,
        policy: PolicyName,
        hidden: usize,
        estimator: Box<dyn GradientEstimator>,
        samples: usize,
        device: Device,
    ) -> anyhow::Result<Self> {
        let policy = policy_for(env.spec(), policy, hidden, device)?;
        Self::assemble(env, policy, estimator, samples, device)
    }

    fn assemble(
        env: Box<dyn Environment>,
        policy: Box<dyn Policy>,
        estimator: Box<dyn GradientEstimator>,
        samples: usize,
        device: Device,
    ) -> anyhow::Result<Self> {
        let spec = env.spec();
        if !spec.differentiable {
            refuse_on_black_box(estimator.as_ref(), &spec.name)?;
        }
        if samples < estimator.minimum_samples() {
            bail!(
                "{} needs at least {} samples per row (--samples), got {samples}",
                estimator.name(),
                estimator.minimum_samples(),
            );
        }
        Ok(Self { env, policy, estimator, device })
    }

    /// Every trainable variable (policy, then environment), named and sorted.
    pub fn variables(&self) -> Vec<(String, Tensor)> {
        let mut named: Vec<(String, Tensor)> =
            self.policy.var_store().variables().into_iter().map(|(n, t)| (format!("policy.{n}"), t)).collect();
        if let Some(vs) = self.env.var_store() {
            named.extend(vs.variables().into_iter().map(|(n, t)| (format!("env.{n}"), t)));
        }
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }

    /// Training step `step` of a run seeded `seed`, with `samples` samples per row (see
    /// [`train_step`]).
    ///
    /// # Errors
    /// As [`train_step`].
    pub fn train_step(
        &mut self,
        step: u64,
        seed: u64,
        samples: usize,
        optimizer: &mut Adam,
    ) -> anyhow::Result<StepReport> {
        train_step(step, seed, self.env.as_mut(), self.policy.as_ref(), self.estimator.as_ref(), samples, optimizer)
    }

    /// Adam over every variable of the experiment.
    ///
    /// # Errors
    /// libtorch errors.
    pub fn optimizer(&self, learning_rate: f64, beta1: f64, beta2: f64) -> anyhow::Result<Adam> {
        Adam::new(self.variables(), learning_rate, beta1, beta2)
    }

    /// Evaluates the policy on `phase`.
    ///
    /// # Errors
    /// Environment errors.
    pub fn evaluate(&mut self, phase: Phase) -> anyhow::Result<BTreeMap<String, f64>> {
        Ok(self.env.evaluate(phase, self.policy.as_ref())?)
    }
}

/// Refuses an estimator that needs `∂f/∂z` on the black-box environment `env`, naming
/// the estimators that work.
fn refuse_on_black_box(estimator: &dyn GradientEstimator, env: &str) -> anyhow::Result<()> {
    if estimator.properties().non_differentiable_f {
        return Ok(());
    }
    bail!(
        "{} needs a loss differentiable in the actions, but {env} is a black box; use {}",
        estimator.name(),
        estimators::EstimatorName::black_box_names()
    )
}

/// The policy of a black-box or custom environment: free logits for all rows, or an MLP
/// of the observation.
fn policy_for(spec: &EnvSpec, policy: PolicyName, hidden: usize, device: Device) -> anyhow::Result<Box<dyn Policy>> {
    let (n, k, rows) = (spec.space.n() as i64, spec.space.k() as i64, spec.rows as i64);
    Ok(match policy {
        PolicyName::Logits => Box::new(GlobalLogits::with_rows(device, n, k, rows)),
        PolicyName::Mlp => {
            anyhow::ensure!(
                spec.observation_dim > 0,
                "--policy mlp reads the observation, but {} has none (one global subset); use --policy logits",
                spec.name
            );
            Box::new(MlpPolicy::new(device, spec.observation_dim as i64, hidden as i64, n, k))
        }
    })
}

/// The black-box environments that ship with the tool.
fn black_box_env(
    config: &TrainConfig,
    env: EnvName,
    data: Option<Mnist>,
    device: Device,
) -> anyhow::Result<Box<dyn Environment>> {
    let (name, k) = (env.as_str(), config.subset_size());
    let missing_data = || anyhow::anyhow!("{name} needs its data set");
    Ok(match env {
        EnvName::Cmd => {
            let command = config.reward_cmd.as_deref().context("--env cmd needs --reward-cmd")?;
            let n = config.n.context("--env cmd needs --n")?;
            let space = KHotSpace::new(n, k).with_context(|| format!("--env cmd with --n {n} --k {k}"))?;
            let timeout = std::time::Duration::from_secs_f64(config.reward_timeout);
            Box::new(match config.context_dim {
                Some(d) => ExternalReward::contextual(command, space, config.batch_size, d, timeout)?,
                None => ExternalReward::new(command, space, timeout)?,
            })
        }
        EnvName::SensorPlacementSynthetic | EnvName::SensorPlacementMnist | EnvName::SensorPlacementFashion => {
            let fields = match data {
                Some(data) => Fields::Images(data),
                None => Fields::Synthetic { side: SYNTHETIC_SIDE, seed: 0 },
            };
            let sensors = SensorConfig { sensors: k, modes: config.sensor_modes, batch: config.batch_size };
            Box::new(SensorPlacement::new(name, fields, sensors, device)?)
        }
        EnvName::FeatureSelectionKnnMnist | EnvName::FeatureSelectionKnnFashion => {
            let settings = KnnSelectionConfig {
                k,
                neighbours: config.neighbours,
                references: config.references,
                queries: config.batch_size,
            };
            Box::new(KnnFeatureSelection::new(name, data.ok_or_else(missing_data)?, settings, device)?)
        }
        EnvName::MaxCoverage => {
            let sets = config.n.unwrap_or(DEFAULT_COVERAGE_SETS);
            let instance = CoverageInstance::random(sets, config.coverage_elements, config.coverage_seed)?;
            Box::new(MaxCoverage::new(name, instance, k)?)
        }
        paper => bail!("{} is one of the paper's tasks, not a black box", paper.as_str()),
    })
}

/// Side of the synthetic fields' grid (n = 256 locations).
pub const SYNTHETIC_SIDE: usize = 16;
/// Sets of the default maximum-coverage instance.
pub const DEFAULT_COVERAGE_SETS: usize = 50;

/// The exact KL of the k-subset distribution to uniform, differentiable, for the VAE,
/// computed by `normalizer`.
fn exact_kl(normalizer: Normalizer) -> SubsetKl {
    Box::new(move |logits: &Tensor, k: i64| {
        let policy = ConditionalPoisson::with_normalizer(logits, k, normalizer)
            .map_err(|e| EnvError::Distribution(e.to_string()))?;
        policy.kl_to_uniform().map_err(|e| EnvError::Distribution(e.to_string()))
    })
}

/// Appends records to `metrics.jsonl`, flushing each line.
struct MetricsLog {
    file: std::fs::File,
}

impl MetricsLog {
    /// Opens the log of `dir`, keeping only records up to `step` (a resumed run drops
    /// what came after its checkpoint).
    fn open(dir: &Path, keep_until: Option<u64>) -> anyhow::Result<Self> {
        let path = dir.join(METRICS);
        if let Some(step) = keep_until {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let kept: String = text
                .lines()
                .filter(|line| serde_json::from_str::<Record>(line).is_ok_and(|r| r.step <= step && r.split != "test"))
                .map(|line| format!("{line}\n"))
                .collect();
            write_atomically(&path, kept.as_bytes())?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self { file })
    }

    fn write(&mut self, record: &Record) -> anyhow::Result<()> {
        let line = serde_json::to_string(record)? + "\n";
        self.file.write_all(line.as_bytes()).and_then(|()| self.file.flush()).context("writing metrics.jsonl")
    }
}

/// Trains `config` into the run folder `dir` (created; it must not hold a run yet), or
/// resumes the run in `dir` when `resume` is set. Returns the summary.
///
/// # Errors
/// Everything [`Experiment::build`] refuses; a non-finite loss (the last good checkpoint
/// stays); I/O errors.
pub fn train(config: &TrainConfig, dir: &Path, resume: bool, verbosity: Verbosity) -> anyhow::Result<Summary> {
    config.check()?;
    if !resume && dir.join(CONFIG).exists() {
        bail!(
            "{} already holds a run; continue it with --resume {}, or choose another --out",
            dir.display(),
            dir.display()
        );
    }
    // Build first, so that a refused configuration leaves no folder behind.
    let mut experiment = Experiment::build(config)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating the run folder {}", dir.display()))?;
    let variables = experiment.variables();
    let mut optimizer = Adam::new(shallow(&variables), config.lr(), config.beta1, config.beta2)?;
    let checkpoint = dir.join(CHECKPOINT);
    let (start, mut elapsed_before) = if resume && checkpoint.exists() {
        let step = load_checkpoint(&checkpoint, &variables, &mut optimizer)?;
        (step, last_elapsed(dir, step))
    } else {
        (0, 0.0)
    };
    write_atomically(&dir.join(CONFIG), (serde_json::to_string_pretty(config)? + "\n").as_bytes())?;
    let mut log = MetricsLog::open(dir, Some(start))?;
    if start == 0 {
        // The untrained policy's validation metric: the baseline every curve starts from.
        let metrics = experiment.evaluate(Phase::Validation)?;
        record_all(&mut log, 0, "validation", &metrics, 0.0)?;
        elapsed_before = 0.0;
    }

    let spec = experiment.env.spec().clone();
    let progress = progress_bar(config.steps, start, verbosity);
    let started = Instant::now();
    let mut training_seconds = 0.0;
    let mut window = TrainWindow::default();
    let loss_every = LOSS_EVERY.min(config.eval_every);
    let mut last_checkpoint = (start > 0).then_some(start);
    // Training time is counted per segment between validations, up to a point where the
    // device has finished the segment's work (reading the loss waits for it).
    let mut segment = Instant::now();
    for step in start..config.steps {
        let stopped = || stopped_at(step, config.steps, dir, last_checkpoint);
        let report = experiment
            .train_step(step, config.seed, config.samples, &mut optimizer)
            .with_context(stopped)
            .inspect_err(|_| progress.abandon())?;
        window.add(step, &report)?;
        let done = step + 1;
        if done % loss_every == 0 || done == config.steps {
            let means = window.take().with_context(stopped).inspect_err(|_| progress.abandon())?;
            record_all(&mut log, done, "train", &means, elapsed_before + started.elapsed().as_secs_f64())?;
        }
        if done % config.eval_every == 0 || done == config.steps {
            window.checked_loss().with_context(stopped).inspect_err(|_| progress.abandon())?;
            training_seconds += segment.elapsed().as_secs_f64();
            let metrics =
                experiment.evaluate(Phase::Validation).with_context(stopped).inspect_err(|_| progress.abandon())?;
            record_all(&mut log, done, "validation", &metrics, elapsed_before + started.elapsed().as_secs_f64())?;
            save_checkpoint(&checkpoint, done, &variables, &optimizer)?;
            last_checkpoint = Some(done);
            if let Some(value) = metrics.get(&spec.metric) {
                progress.set_message(format!("validation {} {value:.4}", spec.metric));
            }
            segment = Instant::now();
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    let test = experiment.evaluate(Phase::Test)?;
    record_all(&mut log, config.steps, "test", &test, elapsed_before + started.elapsed().as_secs_f64())?;
    let baselines = experiment.env.baselines(Phase::Test)?;
    let as_records: BTreeMap<String, f64> =
        baselines.iter().map(|(name, value)| (format!("baseline.{name}"), *value)).collect();
    record_all(&mut log, config.steps, "test", &as_records, elapsed_before + started.elapsed().as_secs_f64())?;
    let trained = config.steps - start;
    let summary = Summary {
        env: config.env.as_str().to_owned(),
        estimator: config.estimator.as_str().to_owned(),
        seed: config.seed,
        steps: config.steps,
        device: device_name(experiment.device),
        seconds_per_step: if trained > 0 { training_seconds / trained as f64 } else { 0.0 },
        test,
        baselines,
    };
    write_atomically(&dir.join(SUMMARY), (serde_json::to_string_pretty(&summary)? + "\n").as_bytes())?;
    Ok(summary)
}

/// `sfess-agent eval --run DIR`: recomputes the test metrics of the run's checkpoint.
///
/// # Errors
/// The folder holds no run or no checkpoint; the data cannot be loaded.
pub fn evaluate_run(dir: &Path) -> anyhow::Result<BTreeMap<String, f64>> {
    let config = read_config(dir)?;
    let mut experiment = Experiment::build(&config)?;
    let variables = experiment.variables();
    let mut optimizer = Adam::new(shallow(&variables), config.lr(), config.beta1, config.beta2)?;
    let checkpoint = dir.join(CHECKPOINT);
    anyhow::ensure!(checkpoint.exists(), "{} has no checkpoint yet ({CHECKPOINT})", dir.display());
    load_checkpoint(&checkpoint, &variables, &mut optimizer)?;
    experiment.evaluate(Phase::Test)
}

/// The configuration of the run in `dir`.
///
/// # Errors
/// No `config.json`, or one that does not parse.
pub fn read_config(dir: &Path) -> anyhow::Result<TrainConfig> {
    let path = dir.join(CONFIG);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("{} holds no run (no {CONFIG})", dir.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a valid run configuration", path.display()))
}

/// The default run folder: `runs/ENV-ESTIMATOR-seedSEED`.
pub fn default_run_dir(config: &TrainConfig) -> PathBuf {
    PathBuf::from("runs").join(format!("{}-{}-seed{}", config.env.as_str(), config.estimator.as_str(), config.seed))
}

/// The context of an error that stopped a run: where, and what is kept.
fn stopped_at(step: u64, steps: u64, dir: &Path, checkpoint: Option<u64>) -> String {
    let kept = match checkpoint {
        Some(at) => format!(
            "the checkpoint of step {at} is kept in {}; continue with --resume {}",
            dir.display(),
            dir.display()
        ),
        None => "no checkpoint was written yet".to_owned(),
    };
    format!("training step {step} of {steps} ({kept})")
}

/// The training records between two log lines: the mean loss and the mean of each info
/// entry. The losses add up on their device; they are read (and checked) only when the
/// window is taken.
#[derive(Debug, Default)]
struct TrainWindow {
    loss: Option<Tensor>,
    sums: BTreeMap<String, f64>,
    /// Steps of the window: `first` and the count.
    first: u64,
    steps: u64,
}

impl TrainWindow {
    fn add(&mut self, step: u64, report: &StepReport) -> anyhow::Result<()> {
        if self.steps == 0 {
            self.first = step;
        }
        self.loss = Some(match self.loss.take() {
            Some(sum) => sum.f_add(&report.loss)?,
            None => report.loss.shallow_clone(),
        });
        for (name, value) in &report.info {
            *self.sums.entry(format!("info.{name}")).or_default() += value;
        }
        self.steps += 1;
        Ok(())
    }

    /// The means since the last call, and a fresh window.
    ///
    /// # Errors
    /// A loss of the window was not finite (NaN or infinite).
    fn take(&mut self) -> anyhow::Result<BTreeMap<String, f64>> {
        let steps = self.steps.max(1) as f64;
        let total = self.checked_loss()?;
        let mut means: BTreeMap<String, f64> =
            std::mem::take(&mut self.sums).into_iter().map(|(name, sum)| (name, sum / steps)).collect();
        if let Some(total) = total {
            means.insert("loss".to_owned(), total / steps);
        }
        self.loss = None;
        self.steps = 0;
        Ok(means)
    }

    /// The window's summed loss, read from its device (`None` for an empty window).
    ///
    /// # Errors
    /// It is not finite: a loss of the window was NaN or infinite.
    fn checked_loss(&self) -> anyhow::Result<Option<f64>> {
        let Some(sum) = &self.loss else { return Ok(None) };
        let total = f64::try_from(sum)?;
        anyhow::ensure!(
            total.is_finite(),
            "the loss became {total} between steps {} and {}; nothing after the last checkpoint is kept",
            self.first,
            self.first + self.steps - 1
        );
        Ok(Some(total))
    }
}

fn record_all(
    log: &mut MetricsLog,
    step: u64,
    split: &str,
    metrics: &BTreeMap<String, f64>,
    elapsed: f64,
) -> anyhow::Result<()> {
    for (metric, value) in metrics {
        log.write(&Record {
            step,
            split: split.into(),
            metric: metric.clone(),
            value: *value,
            elapsed_seconds: elapsed,
        })?;
    }
    Ok(())
}

/// Elapsed seconds recorded at `step` (to continue the clock of a resumed run).
fn last_elapsed(dir: &Path, step: u64) -> f64 {
    std::fs::read_to_string(dir.join(METRICS))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Record>(line).ok())
        .filter(|r| r.step <= step)
        .map(|r| r.elapsed_seconds)
        .fold(0.0, f64::max)
}

fn progress_bar(steps: u64, start: u64, verbosity: Verbosity) -> ProgressBar {
    if verbosity == Verbosity::Quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps).with_position(start);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {per_sec}  ETA {eta}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// `sfess-agent envs`: one line per environment, with the default configuration's action
/// space (without loading any data or starting any process).
pub fn environments_table() -> String {
    let defaults = TrainConfig::default();
    let mut out = String::from(
        "| env | action space (n, k) | rows per step | metric | differentiable loss | task |\n|---|---|---|---|---|---|\n",
    );
    for env in EnvName::ALL {
        let data = env.data_set().map_or("", |set| set.name());
        let k = env.default_k();
        let one = "1 (one global subset)".to_owned();
        let (space, rows, metric, task) = match env {
            EnvName::KnnMnist | EnvName::KnnFashion => (
                format!("({}, {k})", defaults.candidates),
                defaults.batch_size.to_string(),
                "accuracy (higher is better)",
                format!(
                    "stochastic k-NN on {data}: pick k of n candidates per query; test = k-NN vote in the learned 2-D embedding"
                ),
            ),
            EnvName::FeatureSelectionMnist | EnvName::FeatureSelectionFashion => (
                format!("(784, {k})"),
                one,
                "bce (lower is better)",
                format!(
                    "feature selection on {data}: one subset of k pixels; loss = BCE of the 784-200-784 reconstruction"
                ),
            ),
            EnvName::VaeMnist | EnvName::VaeFashion => (
                format!("({}, {k}) x {} per image", defaults.vae_items, defaults.vae_groups),
                format!("{} x {}", defaults.batch_size, defaults.vae_groups),
                "loss = BCE + exact KL (lower is better)",
                format!(
                    "subset VAE on {data}: d = 10 subsets of k of n = 10 per image; also logs the paper's categorical-KL loss"
                ),
            ),
            EnvName::Cmd => (
                format!("(--n, {k})"),
                one,
                "reward (higher is better)",
                "your reward command (--reward-cmd) scores the subsets over JSON lines; baseline: random".to_owned(),
            ),
            EnvName::SensorPlacementSynthetic => (
                format!("({}, {k})", SYNTHETIC_SIDE * SYNTHETIC_SIDE),
                one,
                "mse (lower is better)",
                format!(
                    "k sensors on a {SYNTHETIC_SIDE}x{SYNTHETIC_SIDE} grid reconstruct synthetic smooth fields in {} PCA modes; baselines: QR pivoting, random",
                    defaults.sensor_modes
                ),
            ),
            EnvName::SensorPlacementMnist | EnvName::SensorPlacementFashion => (
                format!("(784, {k})"),
                one,
                "mse (lower is better)",
                format!(
                    "k sensor pixels reconstruct {data} images in {} PCA modes; baselines: QR pivoting, random",
                    defaults.sensor_modes
                ),
            ),
            EnvName::FeatureSelectionKnnMnist | EnvName::FeatureSelectionKnnFashion => (
                format!("(784, {k})"),
                one,
                "accuracy (higher is better)",
                format!(
                    "k pixels of {data} scored by a {}-NN classifier's accuracy; baselines: Fisher score, random",
                    defaults.neighbours
                ),
            ),
            EnvName::MaxCoverage => (
                format!("({DEFAULT_COVERAGE_SETS}, {k})"),
                one,
                "coverage (higher is better)",
                format!(
                    "k of {DEFAULT_COVERAGE_SETS} sets covering {} elements; baselines: greedy (1 - 1/e), the optimum, random",
                    defaults.coverage_elements
                ),
            ),
        };
        let differentiable = if env.is_paper_task() { "yes" } else { "no (black box)" };
        out += &format!("| {} | {space} | {rows} | {metric} | {differentiable} | {task} |\n", env.as_str());
    }
    out
}

/// Shallow copies of named tensors (they share storage with the originals).
fn shallow(variables: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    variables.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect()
}
