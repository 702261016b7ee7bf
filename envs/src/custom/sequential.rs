//! [`SequentialRewardEnv`]: your own episodes from two closures, the sequential counterpart
//! of [`RewardEnv`](super::RewardEnv).

use tch::{Kind, Tensor};

use crate::env::{EnvError, EnvSpec};
use crate::episodes::{EpisodeNoise, EpisodeStep, SequentialEnvironment};
use crate::space::KHotSpace;

/// What the step closure of a [`SequentialRewardEnv`] returns for `R` episodes.
#[derive(Debug)]
pub struct EpisodeOutcome {
    /// The next states `[R, d]` (what the policy sees next).
    pub states: Tensor,
    /// One reward per episode, `[R]`.
    pub rewards: Tensor,
    /// Whether each episode reached a terminal state, `[R]` (bool).
    pub terminated: Tensor,
}

/// The reset closure of a [`SequentialRewardEnv`].
type ResetFn = Box<dyn FnMut(&mut EpisodeNoise) -> Tensor>;
/// The step closure of a [`SequentialRewardEnv`].
type StepFn = Box<dyn FnMut(&Tensor, &Tensor, &mut EpisodeNoise) -> EpisodeOutcome>;

/// Your own episodes from two closures: the sequential counterpart of
/// [`RewardEnv`](super::RewardEnv).
///
/// - `reset(noise)` gives the start states `[R, d]` of `R` episodes (`noise.episodes()`);
/// - `step(states, actions, noise)` takes the states `[R, d]` and the k-hot actions `[R, n]`
///   (f32) and gives an [`EpisodeOutcome`]: the next states, the rewards `[R]` and
///   `terminated` `[R]`.
///
/// The state is what the policy sees (an MLP reads it; `--policy mlp-action` also reads the
/// previous action). Draw any noise from `noise` ([`EpisodeNoise::normals`],
/// [`EpisodeNoise::uniforms`]): it has a generator per episode, seeded by the episode's
/// seed, so that the episodes of one start draw the same noise and a run repeats and
/// resumes exactly. Episodes end at `terminated` or after `horizon` steps; evaluation is
/// the mean return of the top-k policy over held-out episodes, beside random subsets.
///
/// ```
/// use sfess_envs::{KHotSpace, Episodic, custom::{EpisodeOutcome, SequentialRewardEnv}};
/// use tch::{Kind, Tensor};
///
/// // A counter per item that grows while the item is chosen; the reward is the sum of the
/// // chosen counters, so sticking with the same items pays.
/// let env = SequentialRewardEnv::new("streaks", KHotSpace::new(6, 2)?, 10, 6,
///     |noise| Tensor::zeros([noise.episodes() as i64, 6], (Kind::Float, tch::Device::Cpu)),
///     |counters, actions, _| {
///         let next = (counters + 1.0) * actions;
///         EpisodeOutcome { rewards: (&next * actions).sum_dim_intlist(1, false, Kind::Float),
///                          states: next, terminated: Tensor::zeros([actions.size()[0]], (Kind::Bool, tch::Device::Cpu)) }
///     })?;
/// let env = Episodic::new(env); // an Environment: give it to an Agent or the registry
/// # let _ = env;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SequentialRewardEnv {
    spec: EnvSpec,
    horizon: usize,
    reset: ResetFn,
    step: StepFn,
    /// The episodes under way: their states and noise.
    under_way: Option<(Tensor, EpisodeNoise)>,
}

impl std::fmt::Debug for SequentialRewardEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SequentialRewardEnv")
            .field("spec", &self.spec)
            .field("horizon", &self.horizon)
            .finish_non_exhaustive()
    }
}

impl SequentialRewardEnv {
    /// Episodes of at most `horizon` steps over `space`, with states of `state_dim`
    /// features; see the [type's docs](Self).
    ///
    /// # Errors
    /// [`EnvError::Config`] when `horizon` or `state_dim` is 0.
    pub fn new(
        name: &str,
        space: KHotSpace,
        horizon: usize,
        state_dim: usize,
        reset: impl FnMut(&mut EpisodeNoise) -> Tensor + 'static,
        step: impl FnMut(&Tensor, &Tensor, &mut EpisodeNoise) -> EpisodeOutcome + 'static,
    ) -> Result<Self, EnvError> {
        if horizon == 0 || state_dim == 0 {
            return Err(EnvError::Config {
                env: name.to_owned(),
                problem: format!("episodes need a horizon and a state of at least 1, got {horizon} and {state_dim}"),
            });
        }
        let spec = EnvSpec {
            name: name.to_owned(),
            space,
            rows: 1,
            differentiable: false,
            metric: "return".to_owned(),
            higher_is_better: true,
            observation_dim: state_dim,
            description: format!("your own episodes of at most {horizon} steps"),
        };
        Ok(Self { spec, horizon, reset: Box::new(reset), step: Box::new(step), under_way: None })
    }

    /// The same environment, described by `description` in `sfess-agent envs`.
    pub fn describe(mut self, description: &str) -> Self {
        self.spec.description = description.to_owned();
        self
    }
}

impl SequentialEnvironment for SequentialRewardEnv {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn horizon(&self) -> usize {
        self.horizon
    }

    fn reset(&mut self, seeds: &[u64]) -> Result<Tensor, EnvError> {
        let mut noise = EpisodeNoise::new(seeds);
        let states = (self.reset)(&mut noise);
        self.under_way = Some((states.shallow_clone(), noise));
        Ok(states)
    }

    fn step(&mut self, actions: &Tensor) -> Result<EpisodeStep, EnvError> {
        let env = self.spec.name.clone();
        let Some((states, noise)) = self.under_way.as_mut() else { return Err(EnvError::NotReset { env }) };
        let actions =
            crate::episodes::checked_actions(&self.spec, actions, states.size()[0])?.f_to_kind(Kind::Float)?;
        let outcome = (self.step)(states, &actions, noise);
        let mut step = EpisodeStep::going_on(outcome.rewards, outcome.states.shallow_clone())?;
        step.terminated = outcome.terminated.f_to_kind(tch::Kind::Bool)?;
        *states = outcome.states;
        Ok(step)
    }
}
