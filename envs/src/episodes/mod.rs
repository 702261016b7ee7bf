//! Sequential environments: episodes of up to `T` steps, batched, with Gymnasium's
//! semantics (`reset(seed)`, then `step(action)` until `terminated` or `truncated`).
//!
//! A [`SequentialEnvironment`] runs `R` episodes at once, one per seed given to
//! [`reset`](SequentialEnvironment::reset): episodes with equal seeds start in the same state
//! and draw the same noise for the same actions, so that the trainer can roll out `S`
//! episodes from one start state with independent actions (the leave-one-out baseline over
//! their returns). Each step takes one k-hot action per episode, `[R, n]`, and gives a reward,
//! `terminated`, `truncated` and the next observation of each; an episode ends at the first
//! of `terminated`, `truncated` and the horizon `T`. After an episode has ended, the actions
//! given for it are whatever the policy picked and what the environment answers for it is
//! ignored.
//!
//! [`Episodic`] makes a sequential environment an [`Environment`], so that everything built
//! on environments (the registry, run folders, `eval`, `compare`, sweeps, reports) takes it:
//! its evaluation is the mean return of the deterministic (top-k) policy over held-out
//! episodes (seeds of their own per phase, never drawn in training), with its classical
//! baselines and random subsets over the same episodes. The trainer finds the sequential
//! environment behind it with [`Environment::sequential`] and trains over episodes.
//!
//! The policy's observation at a step has two inputs: the state `[R, d]` the environment
//! gives, and the episode's previous action `[R, n]` (zeros at the first step), for policies
//! that read it.
//!
//! [`Episodic`] and the registry's entry of a shipped sequential task are in a file of
//! their own (they use [`Environment`], whose [`sequential`](crate::Environment::sequential) uses
//! this module), re-exported here.
//!
//! [`Environment`]: crate::Environment
//! [`Environment::sequential`]: crate::Environment::sequential

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use tch::{Device, Kind, Tensor};

use crate::env::{EnvError, EnvSpec, Observation, Phase};

mod episodic;

pub use episodic::Episodic;
pub(crate) use episodic::description;

/// Held-out episodes evaluated per phase, unless an environment says otherwise.
pub const EVALUATION_EPISODES: usize = 512;

/// What [`SequentialEnvironment::step`] gives for each of the `R` episodes.
#[derive(Debug)]
pub struct EpisodeStep {
    /// One reward per episode, `[R]`.
    pub rewards: Tensor,
    /// Whether the episode reached a terminal state, `[R]` (bool).
    pub terminated: Tensor,
    /// Whether it was cut short (a time limit of its own), `[R]` (bool).
    pub truncated: Tensor,
    /// The next observation of each episode, `[R, d]`.
    pub observations: Tensor,
    /// Diagnostics of this step (means over the episodes), logged with the training loss as
    /// `info.NAME` ([`crate::info_metric`]).
    pub info: BTreeMap<String, f64>,
}

impl EpisodeStep {
    /// A step that ends no episode.
    pub fn going_on(rewards: Tensor, observations: Tensor) -> Result<Self, EnvError> {
        Self::timed(rewards, observations, false)
    }

    /// A step that terminates no episode and truncates every one when `at_horizon` (the
    /// environment's own time limit, which Gymnasium reports as `truncated`).
    pub fn timed(rewards: Tensor, observations: Tensor, at_horizon: bool) -> Result<Self, EnvError> {
        let episodes = rewards.size1()?;
        let never = Tensor::f_zeros([episodes], (Kind::Bool, rewards.device()))?;
        let truncated = Tensor::f_full([episodes], at_horizon as i64, (Kind::Bool, rewards.device()))?;
        Ok(Self { rewards, terminated: never, truncated, observations, info: BTreeMap::new() })
    }
}

/// The actions `[R, n]` of `R` episodes checked (shape, k-hot rows), as f64 on the CPU.
///
/// # Errors
/// [`EnvError::ActionShape`]; [`EnvError::Config`] for a row that is not k-hot.
pub fn checked_actions(spec: &EnvSpec, actions: &Tensor, episodes: i64) -> Result<Tensor, EnvError> {
    let n = spec.space.n();
    if actions.size() != [episodes, n as i64] {
        return Err(EnvError::ActionShape {
            env: spec.name.clone(),
            rows: episodes as usize,
            n,
            shape: actions.size(),
        });
    }
    crate::env::chosen_items(spec, actions).map(drop)?;
    Ok(actions.f_detach()?.f_to_device(Device::Cpu)?.f_to_kind(Kind::Double)?)
}

/// A state of `features` `[R, ·]` (f64) and the fraction of the episode gone, `step / horizon`,
/// as the last column: `[R, Σ + 1]` f32.
///
/// # Errors
/// libtorch errors.
pub fn state_with_time(features: &[Tensor], step: usize, horizon: usize) -> Result<Tensor, EnvError> {
    let rows = features.first().map_or(0, |f| f.size()[0]);
    let time = Tensor::f_full([rows, 1], step as f64 / horizon as f64, (Kind::Double, Device::Cpu))?;
    let columns: Vec<Tensor> = features.iter().map(Tensor::shallow_clone).chain([time]).collect();
    Ok(Tensor::f_cat(&columns, 1)?.f_to_kind(Kind::Float)?)
}

/// An environment of episodes; see the [module docs](self).
pub trait SequentialEnvironment {
    /// Name, action space (`rows` is 1: one action per episode), metric (`return`) and the
    /// features `d` of a state.
    fn spec(&self) -> &EnvSpec;

    /// The horizon `T`: the most steps of an episode.
    fn horizon(&self) -> usize;

    /// Starts one episode per seed and returns their first states, `[R, d]`. Equal seeds
    /// give equal start states and equal noise for equal actions.
    ///
    /// # Errors
    /// libtorch errors; whatever computes the states fails with.
    fn reset(&mut self, seeds: &[u64]) -> Result<Tensor, EnvError>;

    /// One step of every episode with its k-hot action, `[R, n]`.
    ///
    /// # Errors
    /// [`EnvError::ActionShape`], [`EnvError::NotReset`], actions that are not k-hot,
    /// libtorch errors.
    fn step(&mut self, actions: &Tensor) -> Result<EpisodeStep, EnvError>;

    /// The classical policies it is compared with (`greedy`), besides random subsets.
    fn baseline_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// The action of the classical policy `name` for every episode in its current state,
    /// `[R, n]`.
    ///
    /// # Errors
    /// An unknown name; libtorch errors.
    fn baseline_action(&mut self, name: &str) -> Result<Tensor, EnvError> {
        Err(EnvError::Config { env: self.spec().name.clone(), problem: format!("no baseline named {name}") })
    }

    /// Held-out episodes evaluated per phase.
    fn evaluation_episodes(&self) -> usize {
        EVALUATION_EPISODES
    }

    /// Which episodes the next [`reset`](Self::reset)s start: `Some(phase)` for the held-out
    /// episodes of an evaluation of `phase` (or its baselines), `None` (as before any call)
    /// for training. [`Episodic`] calls it with `Some(phase)` before it rolls out held-out
    /// episodes and with `None` after; an environment that needs to know (one that tells
    /// an external process) keeps it, the others ignore it.
    fn begin_phase(&mut self, _phase: Option<Phase>) {}
}

/// The seeds of the held-out episodes of `phase`: a stream of their own per phase (64-bit
/// values that training's seeds, drawn from the run's seed and step, meet with probability
/// about `2⁻⁶⁴` per pair).
pub fn held_out_seeds(phase: Phase, count: usize) -> Vec<u64> {
    let stream = match phase {
        Phase::Validation => 0x7661_6c69_6461_7465,
        Phase::Test => 0x7465_7374_5f65_7073,
    };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(stream);
    (0..count).map(|_| rand::Rng::next_u64(&mut rng)).collect()
}

/// What [`roll_out`] gives: per episode and step, `[R, T']` with `T' ≤ T` the steps taken
/// by the longest episode.
#[derive(Debug)]
pub struct Rollout {
    /// The rewards (0 after an episode ended), f64.
    pub rewards: Tensor,
    /// 1 for the steps an episode took, 0 after it ended (f64).
    pub alive: Tensor,
    /// The mean over steps of each step's info.
    pub info: BTreeMap<String, f64>,
}

impl Rollout {
    /// The undiscounted return of each episode, `[R]`.
    ///
    /// # Errors
    /// libtorch errors.
    pub fn returns(&self) -> Result<Tensor, EnvError> {
        Ok(self.rewards.f_sum_dim_intlist(1, false, Kind::Double)?)
    }

    /// The length of each episode, `[R]`.
    ///
    /// # Errors
    /// libtorch errors.
    pub fn lengths(&self) -> Result<Tensor, EnvError> {
        Ok(self.alive.f_sum_dim_intlist(1, false, Kind::Double)?)
    }
}

/// What picks the actions of a roll-out: `act(t, env, observation)` gives the actions
/// `[R, n]` of step `t`.
pub type Actor<'a> = dyn FnMut(usize, &mut dyn SequentialEnvironment, &Observation) -> Result<Tensor, EnvError> + 'a;

/// Runs one episode per seed to its end: `act(t, env, observation)` gives the actions
/// `[R, n]` of step `t` (the observation holds the states and the previous actions). Stops
/// when every episode has ended or at the horizon.
///
/// # Errors
/// Whatever `act` and the environment fail with; actions or answers of the wrong shape.
pub fn roll_out(env: &mut dyn SequentialEnvironment, seeds: &[u64], act: &mut Actor<'_>) -> Result<Rollout, EnvError> {
    let spec = env.spec().clone();
    let (episodes, n) = (seeds.len() as i64, spec.space.n() as i64);
    let mut states = env.reset(seeds)?;
    check_states(&spec, &states, episodes)?;
    let mut previous = Tensor::f_zeros([episodes, n], (Kind::Float, Device::Cpu))?;
    let mut running = Tensor::f_ones([episodes], (Kind::Bool, Device::Cpu))?;
    let (mut rewards, mut alive) = (Vec::new(), Vec::new());
    let mut info: BTreeMap<String, f64> = BTreeMap::new();
    for t in 0..env.horizon() {
        let observation = Observation { inputs: vec![states.shallow_clone(), previous.shallow_clone()] };
        let actions = act(t, env, &observation)?;
        let shape = actions.size();
        if shape != [episodes, n] {
            return Err(EnvError::ActionShape {
                env: spec.name.clone(),
                rows: episodes as usize,
                n: n as usize,
                shape,
            });
        }
        let step = env.step(&actions)?;
        for (what, tensor) in
            [("rewards", &step.rewards), ("terminated", &step.terminated), ("truncated", &step.truncated)]
        {
            if tensor.size() != [episodes] {
                return Err(spec_error(
                    &spec,
                    format!("step gave {what} of shape {:?}, expected [{episodes}]", tensor.size()),
                ));
            }
        }
        check_states(&spec, &step.observations, episodes)?;
        let mask = running.f_to_kind(Kind::Double)?;
        rewards.push(step.rewards.f_to_device(Device::Cpu)?.f_to_kind(Kind::Double)?.f_mul(&mask)?);
        alive.push(mask);
        for (key, value) in step.info {
            *info.entry(key).or_default() += value;
        }
        let ended = step.terminated.f_logical_or(&step.truncated)?.f_to_device(Device::Cpu)?;
        running = running.f_logical_and(&ended.f_logical_not()?)?;
        if !bool::try_from(running.f_any()?)? {
            break;
        }
        states = step.observations;
        previous = actions.f_detach()?.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?;
    }
    let steps = rewards.len() as f64;
    info.values_mut().for_each(|v| *v /= steps);
    let rewards = Tensor::f_stack(&rewards, 1)?;
    if !bool::try_from(rewards.f_isfinite()?.f_all()?)? {
        return Err(spec_error(&spec, "step gave a reward that is not finite".to_owned()));
    }
    Ok(Rollout { rewards, alive: Tensor::f_stack(&alive, 1)?, info })
}

fn spec_error(spec: &EnvSpec, problem: String) -> EnvError {
    EnvError::Config { env: spec.name.clone(), problem }
}

/// Checks that states are `[R, d]` with the spec's `d`.
fn check_states(spec: &EnvSpec, states: &Tensor, episodes: i64) -> Result<(), EnvError> {
    let d = spec.observation_dim.max(1) as i64;
    if states.size() != [episodes, d] {
        return Err(spec_error(spec, format!("gave states of shape {:?}, expected [{episodes}, {d}]", states.size())));
    }
    Ok(())
}

/// The noise of `R` episodes: a generator per episode, seeded by its seed, so that episodes
/// with equal seeds draw equal noise. Environments draw the same numbers every step
/// whatever the actions (common random numbers), which keeps the `S` episodes of one start
/// comparable.
#[derive(Debug, Clone)]
pub struct EpisodeNoise {
    generators: Vec<Xoshiro256PlusPlus>,
}

impl EpisodeNoise {
    /// One generator per seed.
    pub fn new(seeds: &[u64]) -> Self {
        Self { generators: seeds.iter().map(|&seed| Xoshiro256PlusPlus::seed_from_u64(seed)).collect() }
    }

    /// The episodes `R`.
    pub fn episodes(&self) -> usize {
        self.generators.len()
    }

    /// Standard normal draws, `[R, count]` f64.
    ///
    /// # Errors
    /// libtorch errors.
    pub fn normals(&mut self, count: usize) -> Result<Tensor, EnvError> {
        self.draw(count, rand_distr::StandardNormal)
    }

    /// Uniform draws in `[0, 1)`, `[R, count]` f64.
    ///
    /// # Errors
    /// libtorch errors.
    pub fn uniforms(&mut self, count: usize) -> Result<Tensor, EnvError> {
        self.draw(count, rand_distr::StandardUniform)
    }

    fn draw(&mut self, count: usize, law: impl rand_distr::Distribution<f64> + Copy) -> Result<Tensor, EnvError> {
        let values: Vec<f64> = self
            .generators
            .iter_mut()
            .flat_map(|rng| (0..count).map(move |_| law.sample(rng)).collect::<Vec<_>>())
            .collect();
        Ok(Tensor::from_slice(&values).f_view([self.generators.len() as i64, count as i64])?)
    }
}
