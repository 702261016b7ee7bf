//! The environment interface's values: what an environment is ([`EnvSpec`]), what the policy
//! sees ([`Observation`]) and what a step gives ([`Transition`]), the phases (and the
//! held-out split each evaluates on) and step seeds that tell an environment where it is,
//! its errors, and the policy it evaluates ([`EvalPolicy`]). The trait itself
//! (`environment.rs`) also names the episodes' and the figures' types; these values need
//! neither, so that those can use them.

use std::collections::BTreeMap;

use tch::{TchError, Tensor};

use crate::space::KHotSpace;

/// Which held-out split to evaluate on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// The validation split (10,000 images held out of the training set).
    Validation,
    /// The test split.
    Test,
}

impl Phase {
    /// `validation` or `test`, as in the metrics files.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Validation => "validation",
            Phase::Test => "test",
        }
    }
}

/// Which training step an environment starts ([`Environment::reset_step`]), with the seed
/// of its own noise for that step.
///
/// [`Environment::reset_step`]: crate::Environment::reset_step
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StepSeed {
    /// The training step, from 0.
    pub step: u64,
    /// A seed for the environment's noise at this step: a function of the run's seed and
    /// the step alone.
    pub seed: u64,
}

/// What an environment is: its name, action space and metric.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvSpec {
    /// Name on the command line.
    pub name: String,
    /// Each row of an action is a k-hot vector of this space.
    pub space: KHotSpace,
    /// Rows per observation: the batch `B` of the actions `[S, B, n]` (1 for one global subset).
    pub rows: usize,
    /// Whether the loss is differentiable in the actions (pathwise estimators need it).
    pub differentiable: bool,
    /// The main evaluation metric (a key of [`Environment::evaluate`]'s result).
    ///
    /// [`Environment::evaluate`]: crate::Environment::evaluate
    pub metric: String,
    /// Whether a larger metric is better.
    pub higher_is_better: bool,
    /// Features per row of the first observation input (what a policy network reads: 784
    /// for an image), or 0 when the observation has no inputs (one global subset).
    pub observation_dim: usize,
    /// One line for `sfess-agent envs`.
    pub description: String,
}

/// The context the policy sees at a step; each environment documents its inputs.
#[derive(Debug)]
pub struct Observation {
    /// The policy's inputs (k-NN: `[queries, candidates]`; a global subset: none).
    pub inputs: Vec<Tensor>,
}

/// The prefix of an environment's diagnostics among a run's metrics (see [`info_metric`]).
pub const INFO_PREFIX: &str = "info.";

/// The metric under which a run records the environment's diagnostic `name` (an entry of
/// [`Transition::info`], of an episode step's info, or of a reward command's `info`):
/// `info.NAME`, in training and in evaluation. No metric of the trainer's own (`loss`,
/// `seconds_per_step`, `return`, `length`, ...) begins with it, so a diagnostic never
/// shadows one.
pub fn info_metric(name: &str) -> String {
    format!("{INFO_PREFIX}{name}")
}

/// What [`Environment::step`] gives: Gymnasium's `(reward, terminated, truncated, info)`,
/// batched over the `S` sampled actions of each row. Every task here is a one-step
/// episode (a contextual bandit): each `reset` starts an episode and its `step` ends it.
///
/// [`Environment::step`]: crate::Environment::step
#[derive(Debug)]
pub struct Transition {
    /// One reward per action, `[S, rows]`. For the paper's tasks the reward is minus the
    /// loss, and it carries the graph into the actions (when differentiable) and into the
    /// environment's own parameters.
    pub rewards: Tensor,
    /// Whether the episode ended (always, for one-step episodes).
    pub terminated: bool,
    /// Whether the episode was cut short by a time limit.
    pub truncated: bool,
    /// Diagnostics of this step (means over the batch), logged with the training loss as
    /// `info.NAME` ([`info_metric`]).
    pub info: BTreeMap<String, f64>,
}

impl Transition {
    /// A terminated one-step episode with these rewards and no info.
    pub fn rewards(rewards: Tensor) -> Self {
        Self { rewards, terminated: true, truncated: false, info: BTreeMap::new() }
    }

    /// A terminated one-step episode whose rewards are minus `losses`.
    ///
    /// # Errors
    /// libtorch errors.
    pub fn losses(losses: &Tensor) -> Result<Self, EnvError> {
        Ok(Self::rewards(losses.f_neg()?))
    }
}

/// What a fallible reward closure ([`crate::custom::RewardEnv::fallible`]) fails with: any
/// error, kept as the source of [`EnvError::Reward`] so that its caller can take it back
/// (`downcast`).
pub type RewardError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of environments.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// Actions of the wrong shape for the last observation.
    #[error("{env}: actions must have shape [S, {rows}, {n}], got {shape:?}")]
    ActionShape {
        /// The environment.
        env: String,
        /// Rows expected.
        rows: usize,
        /// Items expected.
        n: usize,
        /// Shape given.
        shape: Vec<i64>,
    },
    /// `step` before `reset`.
    #[error("{env}: step() called before reset()")]
    NotReset {
        /// The environment.
        env: String,
    },
    /// A parameter out of range.
    #[error("{env}: {problem}")]
    Config {
        /// The environment.
        env: String,
        /// What is wrong.
        problem: String,
    },
    /// The policy failed while evaluating.
    #[error("evaluating the policy: {0}")]
    Policy(String),
    /// The k-subset distribution rejected the logits (supplied from outside this crate).
    #[error("the k-subset distribution: {0}")]
    Distribution(String),
    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] TchError),
    /// A fallible reward closure ([`crate::custom::RewardEnv::fallible`]) failed; `source`
    /// is its error.
    #[error("{env}: the reward failed: {source}")]
    Reward {
        /// The environment.
        env: String,
        /// The closure's error.
        source: RewardError,
    },
    /// The caller's stop flag ([`crate::external::ExternalReward::set_interrupt`]) was set
    /// while the environment waited for the external reward command's answer. The command's
    /// process group has been killed: the environment is unusable afterwards.
    #[error("interrupted while waiting for the reward command's answer to line {line}")]
    Interrupted {
        /// The request line whose answer was awaited (counted from 1).
        line: u64,
    },
    /// The external reward command ([`crate::external`]) failed: it could not be started,
    /// exited or closed its stdout before answering, gave no answer in time, wrote an answer
    /// line longer than [`crate::external::MAX_ANSWER_BYTES`], or answered something that is
    /// not one reward per action, finite in f32. The environment is unusable
    /// afterwards (its process group has been killed).
    #[error("reward command '{command}'{}: {problem}", batch_line(.line))]
    RewardProcess {
        /// The command, as given to `sh -c`.
        command: String,
        /// The request line that failed (counted from 1; 0 before the first request).
        line: u64,
        /// What went wrong.
        problem: String,
    },
}

/// `, batch line N` for request line `N`, nothing for 0 (before the first request).
fn batch_line(line: &u64) -> String {
    if *line == 0 { String::new() } else { format!(", batch line {line}") }
}

/// What an environment needs of a policy to evaluate it.
pub trait EvalPolicy {
    /// The logits of the policy for an observation, `[rows, n]`, without gradient.
    ///
    /// # Errors
    /// Whatever the policy's network fails with.
    fn logits(&self, observation: &Observation) -> Result<Tensor, EnvError>;

    /// Deterministic k-hot actions for an observation: the top-k of the logits, `[rows, n]`.
    ///
    /// # Errors
    /// Whatever the policy's network fails with.
    fn act(&self, observation: &Observation) -> Result<Tensor, EnvError>;

    /// The policy's embedding of raw inputs `[N, …]`, for environments evaluated in
    /// embedding space (k-NN); `None` for policies without one.
    ///
    /// # Errors
    /// Whatever the policy's network fails with.
    fn embed(&self, inputs: &Tensor) -> Result<Option<Tensor>, EnvError>;

    /// The inclusion probabilities `P(z_i = 1)` of the policy's k-subset law for each row
    /// of an observation, `[rows, n]` `f64` on the CPU; `None` (the default) for policies
    /// that are not a law (a fixed action).
    ///
    /// # Errors
    /// Whatever the policy's network or the law fails with.
    fn marginals(&self, _observation: &Observation) -> Result<Option<Tensor>, EnvError> {
        Ok(None)
    }
}

/// A policy that always plays the same action: to evaluate a hand-picked subset (or a
/// classical method's) with [`Environment::evaluate`]. An action of one row `[1, n]` is
/// repeated for every row of the observation's first input.
///
/// [`Environment::evaluate`]: crate::Environment::evaluate
#[derive(Debug)]
pub struct FixedAction(pub Tensor);

impl EvalPolicy for FixedAction {
    fn logits(&self, observation: &Observation) -> Result<Tensor, EnvError> {
        self.act(observation)
    }

    fn act(&self, observation: &Observation) -> Result<Tensor, EnvError> {
        match observation.inputs.first() {
            Some(input) if self.0.size()[0] == 1 => {
                Ok(self.0.f_expand([input.size()[0], -1], false)?.f_contiguous()?)
            }
            _ => Ok(self.0.shallow_clone()),
        }
    }

    fn embed(&self, _inputs: &Tensor) -> Result<Option<Tensor>, EnvError> {
        Ok(None)
    }
}

/// The held-out split of `data` that `phase` evaluates on.
pub(crate) fn held_out(data: &crate::data::Mnist, phase: Phase) -> &crate::data::Split {
    match phase {
        Phase::Validation => &data.validation,
        Phase::Test => &data.test,
    }
}
