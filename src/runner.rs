//! An experiment: the environment, the policy and the estimator built from a
//! [`TrainConfig`] (the run folder around it is [`crate::run_folder`]'s).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use sfess_agents::GradientEstimator;
use sfess_agents::{ConditionalPoisson, Normalizer};
use sfess_envs::EnvError;
use sfess_envs::coverage::{CoverageInstance, MaxCoverage};
use sfess_envs::data::{Mnist, default_data_dir};
use sfess_envs::external::{ExternalReward, RewardCommand};
use sfess_envs::feature_selection::FeatureSelection;
use sfess_envs::knn::StochasticKnn;
use sfess_envs::knn_selection::{KnnFeatureSelection, KnnSelectionConfig};
use sfess_envs::sensor::{Fields, SensorConfig, SensorPlacement};
use sfess_envs::vae::{Latent, SubsetKl, SubsetVae};
use sfess_envs::{EnvSpec, Environment, KHotSpace, Phase};
use tch::{Device, Tensor};

use crate::config::{EnvName, PolicyName, TrainConfig};
use crate::device::DeviceSpec;
use crate::estimators::{self, EstimatorOptions};
use crate::policy::{GlobalLogits, KnnEmbedding, MlpPolicy, Policy, VaeEncoder};
use crate::signals::Interrupt;
use crate::trainer::{Adam, StepReport, train_step};

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
        Self::build_interruptible(config, &Interrupt::new())
    }

    /// [`Experiment::build`], with environments that wait on other processes (the reward
    /// command) giving up their wait when `interrupt` is set.
    ///
    /// # Errors
    /// As [`Experiment::build`].
    pub fn build_interruptible(config: &TrainConfig, interrupt: &Interrupt) -> anyhow::Result<Self> {
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
                let env = black_box_env(config, env, data, device, interrupt)?;
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
        let metrics = self.env.evaluate(phase, self.policy.as_ref())?;
        if let Some((name, value)) = metrics.iter().find(|(_, value)| !value.is_finite()) {
            bail!("the {} {name} of {} is {value}", phase.name(), self.env.spec().name);
        }
        Ok(metrics)
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
    interrupt: &Interrupt,
) -> anyhow::Result<Box<dyn Environment>> {
    let (name, k) = (env.as_str(), config.subset_size());
    let missing_data = || anyhow::anyhow!("{name} needs its data set");
    Ok(match env {
        EnvName::Cmd => {
            let command = config.reward_cmd.as_deref().context("--env cmd needs --reward-cmd")?;
            let n = config.n.context("--env cmd needs --n")?;
            let space = KHotSpace::new(n, k).with_context(|| format!("--env cmd with --n {n} --k {k}"))?;
            let timeout = std::time::Duration::try_from_secs_f64(config.reward_timeout)
                .with_context(|| format!("--reward-timeout {}", config.reward_timeout))?;
            let command =
                RewardCommand { command: command.to_owned(), working_dir: config.reward_dir.clone(), timeout };
            let mut env = match config.context_dim {
                Some(d) => ExternalReward::contextual_with_command(command, space, config.batch_size, d)?,
                None => ExternalReward::with_command(command, space)?,
            };
            env.set_interrupt(interrupt.flag());
            Box::new(env)
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
