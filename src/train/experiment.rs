//! An experiment: the environment, the policy and the estimator built from a checked
//! configuration ([`RunSpec`]) or around your own environment (the loop that trains it is
//! [`crate::run::training`]'s).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use sfess_agents::GradientEstimator;
use sfess_agents::{ConditionalPoisson, Normalizer};
use sfess_envs::EnvError;
use sfess_envs::data::{Mnist, default_data_dir};
use sfess_envs::registry::{Make, Network};
use sfess_envs::vae::SubsetKl;
use sfess_envs::{EnvSpec, Environment, Observation, Phase};
use tch::{Device, Tensor};

use crate::config::estimators::EstimatorOptions;
use crate::config::{PolicyName, RunSpec};
use crate::system::signals::Interrupt;
use crate::train::episodes::{EpisodeTraining, episode_step};
use crate::train::estimators;
use crate::train::policy::{GlobalLogits, KnnEmbedding, MlpPolicy, Policy, VaeEncoder};
use crate::train::trainer::{Adam, StepReport, train_step};

/// How a sequential environment trains ([`crate::train::episodes`]); one-step
/// environments ignore it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpisodeSettings {
    /// Start states per step `B` (`--batch-size`).
    pub starts: usize,
    /// Weight each step's score by the rewards from it on (`--reward-to-go`).
    pub reward_to_go: bool,
    /// The discount γ (`--discount`).
    pub discount: f64,
}

impl EpisodeSettings {
    /// `starts` start states per step, with `options`' reward-to-go and discount.
    pub fn new(starts: usize, options: &EstimatorOptions) -> Self {
        Self { starts, reward_to_go: options.reward_to_go, discount: options.discount }
    }
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
    /// How it trains over episodes, for a sequential environment.
    pub episodes: Option<EpisodeTraining>,
}

impl Experiment {
    /// Builds the experiment of a checked configuration from its environment's entry: loads
    /// the data, initialises the networks from the seed, and refuses an estimator that needs
    /// gradients on a black-box environment (before starting anything). Environments that
    /// wait on other processes (the reward command) give up their wait when `interrupt` is
    /// set.
    ///
    /// # Errors
    /// No such device, missing or corrupt data, refused estimator, the environment's own
    /// refusal (a reward command that cannot start).
    pub fn build(spec: &RunSpec<'_>, interrupt: &Interrupt) -> anyhow::Result<Self> {
        let (config, entry, k) = (spec.config(), spec.entry(), spec.k());
        let device = spec.device().resolve()?;
        let estimator_options = config.estimator_options.clone();
        let estimator = estimators::build(config.estimator, &estimator_options)?;
        if !entry.differentiable {
            refuse_on_black_box(estimator.as_ref(), &entry.name)?;
        }
        tch::manual_seed(config.seed as i64);
        let data = match entry.data {
            Some(set) => {
                let data_dir = config.data_dir.clone().unwrap_or_else(default_data_dir);
                let data = Mnist::load(&data_dir, set)
                    .with_context(|| format!("loading {} for {}", set.name(), entry.name))?;
                Some(data)
            }
            None => None,
        };
        let make = Make {
            name: &entry.name,
            k,
            batch_size: config.batch_size,
            seed: config.seed,
            device,
            options: spec.options(),
            data,
            interrupt: interrupt.flag(),
            subset_kl: Some(exact_kl(config.estimator_options.normalizer.resolve(device))),
        };
        // The paper's networks are created before the environment's (both draw from
        // libtorch's generator, in this order); a chosen policy needs the built
        // environment's spec.
        let (env, policy) = match paper_network(entry.network_of(&make)?, k, device)? {
            Some(policy) => (entry.make(make)?, policy),
            None => {
                let mut env = entry.make(make)?;
                let policy = policy_for(env.as_mut(), config.policy, config.hidden, device)?;
                (env, policy)
            }
        };
        let episodes = EpisodeSettings::new(config.batch_size, &estimator_options);
        Self::assemble(env, policy, estimator, config.samples, episodes, device)
    }

    /// An experiment on your own environment (a [`sfess_envs::custom::RewardEnv`] or any
    /// [`Environment`]), with a policy of kind `policy` (`hidden` units for an MLP);
    /// `episodes` says how a sequential environment trains.
    ///
    /// # Errors
    /// The estimator needs gradients the environment cannot give; too few samples; an MLP
    /// policy for an environment without observations.
    pub fn custom(
        mut env: Box<dyn Environment>,
        policy: PolicyName,
        hidden: usize,
        estimator: Box<dyn GradientEstimator>,
        samples: usize,
        episodes: EpisodeSettings,
        device: Device,
    ) -> anyhow::Result<Self> {
        let policy = policy_for(env.as_mut(), policy, hidden, device)?;
        Self::assemble(env, policy, estimator, samples, episodes, device)
    }

    fn assemble(
        mut env: Box<dyn Environment>,
        policy: Box<dyn Policy>,
        estimator: Box<dyn GradientEstimator>,
        samples: usize,
        episodes: EpisodeSettings,
        device: Device,
    ) -> anyhow::Result<Self> {
        let spec = env.spec().clone();
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
        let episodes = match env.sequential() {
            None => None,
            Some(_) => {
                let Some(over_episodes) = estimator.over_episodes(episodes.reward_to_go, episodes.discount) else {
                    bail!(
                        "{} needs a loss differentiable in the actions, which episodes of {} do not give; use {}",
                        estimator.name(),
                        spec.name,
                        estimators::black_box_names()
                    );
                };
                over_episodes.options.check()?;
                Some(EpisodeTraining { estimator: over_episodes, starts: episodes.starts })
            }
        };
        Ok(Self { env, policy, estimator, device, episodes })
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
        match (&self.episodes, self.env.sequential()) {
            (Some(training), Some(env)) => {
                episode_step(step, seed, env, self.policy.as_ref(), training, samples, optimizer)
            }
            _ => train_step(
                step,
                seed,
                self.env.as_mut(),
                self.policy.as_ref(),
                self.estimator.as_ref(),
                samples,
                optimizer,
            ),
        }
    }

    /// Adam over every variable of the experiment.
    ///
    /// # Errors
    /// libtorch errors.
    pub fn optimizer(&self, learning_rate: f64, beta1: f64, beta2: f64) -> anyhow::Result<Adam> {
        Adam::new(self.variables(), learning_rate, beta1, beta2)
    }

    /// What the policy does on `phase`'s held-out data ([`HeldOutChoice`]): free logits'
    /// one row, or a contextual policy's rows of the environment's held-out observation
    /// ([`Environment::held_out_observation`], [`HELD_OUT_ROWS`] rows); `None` for a
    /// contextual policy whose environment has no held-out observation.
    ///
    /// # Errors
    /// Environment and policy errors.
    pub fn held_out_choice(&mut self, phase: Phase) -> anyhow::Result<Option<HeldOutChoice>> {
        let contextual = self.policy.contextual();
        let observation = if contextual {
            match self.env.held_out_observation(phase, HELD_OUT_ROWS)? {
                Some(observation) => observation,
                None => return Ok(None),
            }
        } else {
            Observation { inputs: Vec::new() }
        };
        let Some(marginals) = self.policy.marginals(&observation)? else { return Ok(None) };
        let actions = self.policy.act(&observation)?;
        let (marginals, actions) =
            if contextual { (marginals, actions) } else { (marginals.f_narrow(0, 0, 1)?, actions.f_narrow(0, 0, 1)?) };
        let spec = self.env.spec();
        let top_k = sfess_envs::env::chosen_lists(spec, &actions)?;
        let n = spec.space.n();
        let flat = Vec::<f64>::try_from(marginals.f_contiguous()?.f_flatten(0, -1)?)?;
        let marginals = flat.chunks(n.max(1)).map(<[f64]>::to_vec).collect();
        Ok(Some(HeldOutChoice { contextual, top_k, marginals }))
    }

    /// What a run records of the policy's marginals at a validation on `phase` (see
    /// [`HeldOutChoice::recorded`]); `None` when there is no held-out choice.
    ///
    /// # Errors
    /// As [`Experiment::held_out_choice`].
    pub fn recorded_marginals(&mut self, phase: Phase) -> anyhow::Result<Option<(bool, Vec<f32>)>> {
        Ok(self.held_out_choice(phase)?.map(|choice| choice.recorded()))
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

/// Rows of held-out data whose marginals a run records and `subset.json` lists, for a
/// contextual policy.
pub const HELD_OUT_ROWS: usize = 64;

/// What the policy does on held-out data: per row, its top-k items and its inclusion
/// probabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldOutChoice {
    /// Whether the policy reads the observation: `false` for free logits, whose one row
    /// stands for every observation.
    pub contextual: bool,
    /// The top-k items of each row, ascending.
    pub top_k: Vec<Vec<usize>>,
    /// `P(z_i = 1)` of each row, `n` values each.
    pub marginals: Vec<Vec<f64>>,
}

impl HeldOutChoice {
    /// What a run records at a validation ([`crate::run::log::MarginalsRecord`]): free
    /// logits' marginals per item (`ranked` false); for a contextual policy, the mean over
    /// rows of each row's marginals sorted in decreasing order (`ranked` true).
    pub fn recorded(&self) -> (bool, Vec<f32>) {
        if !self.contextual {
            return (
                false,
                self.marginals.first().map_or_else(Vec::new, |row| row.iter().map(|&m| m as f32).collect()),
            );
        }
        let n = self.marginals.first().map_or(0, Vec::len);
        let mut sums = vec![0.0; n];
        for row in &self.marginals {
            let mut sorted = row.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            sums.iter_mut().zip(sorted).for_each(|(sum, m)| *sum += m);
        }
        let rows = self.marginals.len().max(1) as f64;
        (true, sums.into_iter().map(|sum| (sum / rows) as f32).collect())
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
        estimators::black_box_names()
    )
}

/// The warning for free logits (`policy`, chosen by the user or left at its default) on an
/// environment that gives the policy an observation: they ignore it and learn one subset for
/// every state, which is rarely what was meant. `None` when there is nothing to warn of.
pub fn stateless_policy_warning(env: &mut dyn Environment, policy: PolicyName) -> Option<String> {
    let sequential = env.sequential().is_some();
    let spec = env.spec();
    if policy != PolicyName::Logits || spec.observation_dim == 0 {
        return None;
    }
    let each = if sequential { "each step of an episode" } else { "each row" };
    Some(format!(
        "warning: {} gives the policy an observation ({} numbers at {each}), which --policy logits ignores: it \
         learns one subset for every state. --policy mlp reads the observation{}",
        spec.name,
        spec.observation_dim,
        if sequential { " (--policy mlp-action, also the previous action)" } else { "" }
    ))
}

/// The policy of a black-box or custom environment: free logits for all rows, an MLP of
/// the observation, or (over episodes) an MLP of the observation and the previous action.
fn policy_for(
    env: &mut dyn Environment,
    policy: PolicyName,
    hidden: usize,
    device: Device,
) -> anyhow::Result<Box<dyn Policy>> {
    let sequential = env.sequential().is_some();
    let spec: &EnvSpec = env.spec();
    let (n, k, rows) = (spec.space.n() as i64, spec.space.k() as i64, spec.rows as i64);
    let (input, hidden) = (spec.observation_dim as i64, hidden as i64);
    let needs_observation = || {
        anyhow::ensure!(
            spec.observation_dim > 0,
            "--policy mlp reads the observation, but {} has none (one global subset); use --policy logits",
            spec.name
        );
        Ok(())
    };
    Ok(match policy {
        PolicyName::Logits => Box::new(
            GlobalLogits::with_rows(device, n, k, rows)
                .with_context(|| format!("allocating the policy's {n} logits"))?,
        ),
        PolicyName::Mlp => {
            needs_observation()?;
            Box::new(MlpPolicy::new(device, input, hidden, n, k))
        }
        PolicyName::MlpAction => {
            anyhow::ensure!(
                sequential,
                "--policy mlp-action reads the previous action of an episode, but {} is a one-step task; use --policy mlp",
                spec.name
            );
            needs_observation()?;
            Box::new(MlpPolicy::with_previous_action(device, input, hidden, n, k))
        }
    })
}

/// The network of one of the paper's tasks, or `None` for the user's choice (`--policy`),
/// which needs the built environment's spec.
fn paper_network(network: Network, k: usize, device: Device) -> anyhow::Result<Option<Box<dyn Policy>>> {
    let k = k as i64;
    Ok(Some(match network {
        Network::KnnEmbedding { embedding } => {
            Box::new(KnnEmbedding::new(device, sfess_envs::registry::IMAGE_PIXELS as i64, embedding as i64, k))
        }
        Network::VaeEncoder { groups, items } => Box::new(VaeEncoder::new(device, groups as i64, items as i64, k)),
        Network::Logits { n } => Box::new(GlobalLogits::standard_normal(device, n as i64, k)?),
        Network::Choice => return Ok(None),
    }))
}

/// The exact KL of the k-subset distribution to uniform, differentiable, for the VAE,
/// computed by `normalizer`.
fn exact_kl(normalizer: Normalizer) -> SubsetKl {
    Box::new(move |logits: &Tensor, k: i64| {
        let policy = ConditionalPoisson::with_normalizer(logits, k, normalizer)
            .map_err(|e| EnvError::Distribution(e.to_string()))?;
        policy.kl_to_uniform().map_err(|e| EnvError::Distribution(e.to_string()))
    })
}
