//! The training loop as a library, for your own environment: [`Agent`].
//!
//! ```no_run
//! use sfess_agent::train::agent::{Agent, AgentOptions};
//! use sfess_envs::{KHotSpace, Phase, custom::RewardEnv};
//! use tch::Tensor;
//!
//! let values = Tensor::from_slice(&[0.3f32, -1.0, 2.0, 0.5, 1.1, -0.2]);
//! let env = RewardEnv::new("hidden-values", KHotSpace::new(6, 2)?, move |actions: &Tensor| actions.mv(&values));
//! let mut agent = Agent::new(env, AgentOptions::default())?;
//! agent.train(300)?;
//! println!("{:?} scores {:?}", agent.best_subset()?, agent.evaluate(Phase::Test)?);
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::collections::BTreeMap;

use anyhow::Context;
use sfess_envs::{Environment, Observation, Phase};
use tch::Device;

use crate::config::PolicyName;
use crate::train::estimators::{self, EstimatorName, EstimatorOptions};
use crate::train::experiment::Experiment;
use crate::train::trainer::{Adam, StepReport};

/// How an [`Agent`] learns.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Gradient estimator (`sfess-vr`; only `sfess` and `sfess-vr` train on a black box).
    pub estimator: EstimatorName,
    /// The estimator's options.
    pub estimator_options: EstimatorOptions,
    /// Samples per row and step (16).
    pub samples: usize,
    /// Adam's learning rate (`None`: 0.05 for free logits, 1e-3 for an MLP).
    pub learning_rate: Option<f64>,
    /// Free logits (one global subset) or an MLP of the observation.
    pub policy: PolicyName,
    /// Hidden units of the MLP policy (64).
    pub hidden: usize,
    /// Seed of the initialisation and of every draw (0).
    pub seed: u64,
    /// Where the policy lives (the CPU).
    pub device: Device,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            estimator: EstimatorName::SfessVr,
            estimator_options: EstimatorOptions::default(),
            samples: 16,
            learning_rate: None,
            policy: PolicyName::Logits,
            hidden: 64,
            seed: 0,
            device: Device::Cpu,
        }
    }
}

/// A policy, an estimator and Adam around one environment, stepped by the caller.
pub struct Agent {
    experiment: Experiment,
    optimizer: Adam,
    seed: u64,
    samples: usize,
    steps: u64,
}

impl Agent {
    /// An agent for `env`.
    ///
    /// # Errors
    /// The estimator needs gradients the environment cannot give, too few samples, an MLP
    /// policy for an environment without observations, a non-positive learning rate.
    pub fn new(env: impl Environment + 'static, options: AgentOptions) -> anyhow::Result<Self> {
        tch::manual_seed(options.seed as i64);
        let estimator = estimators::build(options.estimator, &options.estimator_options)?;
        let learning_rate = options.learning_rate.unwrap_or_else(|| options.policy.default_learning_rate());
        anyhow::ensure!(
            learning_rate.is_finite() && learning_rate > 0.0,
            "the learning rate must be positive, got {learning_rate}"
        );
        let experiment = Experiment::custom(
            Box::new(env),
            options.policy,
            options.hidden,
            estimator,
            options.samples,
            options.device,
        )?;
        let optimizer = experiment.optimizer(learning_rate, 0.9, 0.999)?;
        Ok(Self { experiment, optimizer, seed: options.seed, samples: options.samples, steps: 0 })
    }

    /// One training step. Its `loss` is minus the mean reward of the step's samples.
    ///
    /// # Errors
    /// Whatever the environment, the policy or the estimator fails with; a non-finite loss.
    pub fn step(&mut self) -> anyhow::Result<StepReport> {
        let step = self.steps;
        let report = self
            .experiment
            .train_step(step, self.seed, self.samples, &mut self.optimizer)
            .with_context(|| format!("training step {step}"))?;
        self.steps += 1;
        let loss = report.loss_value()?;
        anyhow::ensure!(loss.is_finite(), "training step {step}: the loss became {loss}");
        Ok(report)
    }

    /// `steps` training steps; returns the mean reward of each step's samples.
    ///
    /// # Errors
    /// As [`Agent::step`].
    pub fn train(&mut self, steps: u64) -> anyhow::Result<Vec<f64>> {
        (0..steps).map(|_| self.step().and_then(|report| Ok(-report.loss_value()?))).collect()
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The environment's metrics of the policy's deterministic (top-k) action on `phase`.
    ///
    /// # Errors
    /// Whatever the environment fails with.
    pub fn evaluate(&mut self, phase: Phase) -> anyhow::Result<BTreeMap<String, f64>> {
        self.experiment.evaluate(phase)
    }

    /// The environment's untrained baselines on `phase` (random subsets, classical methods).
    ///
    /// # Errors
    /// Whatever the environment fails with.
    pub fn baselines(&mut self, phase: Phase) -> anyhow::Result<BTreeMap<String, f64>> {
        Ok(self.experiment.env.baselines(phase)?)
    }

    /// The subset the policy would pick without context: the sorted indices of its top-k
    /// logits (row 0).
    ///
    /// # Errors
    /// A policy that needs an observation (an MLP).
    pub fn best_subset(&self) -> anyhow::Result<Vec<usize>> {
        let action = self.experiment.policy.act(&Observation { inputs: Vec::new() })?;
        let row: Vec<f32> = Vec::try_from(action.get(0).to_device(Device::Cpu))?;
        Ok(row.iter().enumerate().filter(|(_, x)| **x > 0.5).map(|(i, _)| i).collect())
    }

    /// The experiment: environment, policy and estimator.
    pub fn experiment(&mut self) -> &mut Experiment {
        &mut self.experiment
    }
}
