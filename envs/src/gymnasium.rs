//! An adapter to `gymnasium_rs::core::Env` (cargo feature `gymnasium`), so that a
//! Gymnasium-style driver can step any [`Environment`] one action at a time.
//!
//! - Observation: every input of the environment's observation, flattened and concatenated
//!   (`f32`; empty for one global subset).
//! - Action: the k-hot vectors of all `rows` rows, concatenated (`rows · n` entries of 0 or
//!   1); the action space is a `Box` in `[0, 1]^(rows·n)`, as `gymnasium_rs` has no
//!   `MultiBinary` space.
//! - Reward: the mean of the rows' rewards; `info["rewards"]` holds each row's, and the
//!   environment's own info entries follow.
//! - A one-step environment's episode is one step: `terminated` is true after it.
//! - A sequential environment ([`crate::Episodic`]) runs one episode from `reset` to its
//!   end: the observation is its state (`d` entries), the action one k-hot vector, and the
//!   episode ends at `terminated`, `truncated`, or the horizon (`truncated`). `reset(seed)`
//!   starts the episode of that seed; without a seed, the next one of the adapter's
//!   generator.
//!
//! `gymnasium_rs`'s `step` cannot return an error: a bad action or a failing environment
//! gives a NaN reward, `truncated = true` and the message in `info["error"]`.
//! [`GymnasiumEnv::try_step`] returns the error instead.

use std::collections::HashMap;

use gymnasium_rs::core::{Env, Info, Options, Reward, Space};
use ndarray::{Array1, Array3};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde_json::Value;
use tch::{Kind, Tensor};

use crate::env::{EnvError, Environment, Observation};

/// One Gymnasium step: `(observation, reward, terminated, truncated, info)`.
pub type StepTuple = (Array1<f32>, Reward, bool, bool, Info);

/// A k-hot [`Environment`] behind `gymnasium_rs::core::Env<Array1<f32>, Array1<f32>>`.
pub struct GymnasiumEnv<E: Environment> {
    env: E,
    rng: Xoshiro256PlusPlus,
    observation: Array1<f32>,
    reset_done: bool,
    /// Steps taken in the episode under way (sequential environments).
    steps: usize,
}

impl<E: Environment> GymnasiumEnv<E> {
    /// Wraps `env`; its draws come from a generator seeded 0 until a `reset` gives a seed.
    pub fn new(env: E) -> Self {
        let width = env.spec().rows * env.spec().observation_dim;
        let rng = Xoshiro256PlusPlus::seed_from_u64(0);
        Self { env, rng, observation: Array1::zeros(width), reset_done: false, steps: 0 }
    }

    /// The wrapped environment.
    pub fn inner(&mut self) -> &mut E {
        &mut self.env
    }

    /// `reset`, with the environment's error.
    ///
    /// # Errors
    /// Whatever the environment's `reset` fails with.
    pub fn try_reset(&mut self, seed: Option<i32>) -> Result<(Array1<f32>, Info), EnvError> {
        if let Some(seed) = seed {
            self.rng = Xoshiro256PlusPlus::seed_from_u64(u64::from(seed as u32));
        }
        self.observation = match self.env.sequential() {
            Some(env) => {
                let seed = seed.map_or_else(|| rand::Rng::next_u64(&mut self.rng), |s| u64::from(s as u32));
                flatten(&Observation { inputs: vec![env.reset(&[seed])?] })?
            }
            None => flatten(&self.env.reset(&mut self.rng)?)?,
        };
        self.reset_done = true;
        self.steps = 0;
        let spec = self.env.spec();
        let info = HashMap::from([
            ("rows".to_owned(), Value::from(spec.rows)),
            ("n".to_owned(), Value::from(spec.space.n())),
            ("k".to_owned(), Value::from(spec.space.k())),
        ]);
        Ok((self.observation.clone(), info))
    }

    /// `step`, with the environment's error: `action` holds `rows · n` entries, each row
    /// a k-hot vector.
    ///
    /// # Errors
    /// [`EnvError::NotReset`]; [`EnvError::ActionShape`] for a wrong length;
    /// [`EnvError::Config`] for a row that is not k-hot; whatever the environment fails with.
    pub fn try_step(&mut self, action: &Array1<f32>) -> Result<StepTuple, EnvError> {
        let spec = self.env.spec().clone();
        if !self.reset_done {
            return Err(EnvError::NotReset { env: spec.name });
        }
        let (rows, n) = (spec.rows, spec.space.n());
        let values = action.to_vec();
        if values.len() != rows * n {
            return Err(EnvError::ActionShape { env: spec.name, rows, n, shape: vec![values.len() as i64] });
        }
        if let Some(row) = values.chunks(n).position(|row| !spec.space.contains(row)) {
            return Err(EnvError::Config {
                env: spec.name,
                problem: format!("row {row} of the action is not a k-hot vector with k = {}", spec.space.k()),
            });
        }
        if let Some(env) = self.env.sequential() {
            let step = env.step(&Tensor::from_slice(&values).f_view([1, n as i64])?)?;
            self.steps += 1;
            let flag =
                |t: &Tensor| -> Result<bool, EnvError> { Ok(t.f_reshape([-1])?.f_get(0)?.int64_value(&[]) != 0) };
            let terminated = flag(&step.terminated)?;
            let truncated = flag(&step.truncated)? || self.steps >= env.horizon();
            let reward = step.rewards.f_to_kind(Kind::Double)?.f_reshape([-1])?.f_get(0)?.double_value(&[]);
            self.observation = flatten(&Observation { inputs: vec![step.observations] })?;
            self.reset_done = !(terminated || truncated);
            let info: Info = step.info.iter().map(|(name, value)| (name.clone(), Value::from(*value))).collect();
            return Ok((self.observation.clone(), reward as Reward, terminated, truncated, info));
        }
        let actions = Tensor::from_slice(&values).f_view([1, rows as i64, n as i64])?;
        let transition = self.env.step(&actions)?;
        let rewards: Vec<f64> =
            Vec::try_from(transition.rewards.f_detach()?.f_to_kind(Kind::Double)?.f_flatten(0, -1)?)?;
        let mean = rewards.iter().sum::<f64>() / rewards.len().max(1) as f64;
        let mut info: Info = transition.info.iter().map(|(name, value)| (name.clone(), Value::from(*value))).collect();
        info.insert("rewards".to_owned(), Value::from(rewards));
        self.reset_done = false;
        Ok((self.observation.clone(), mean as Reward, transition.terminated, transition.truncated, info))
    }
}

/// Every input of `observation`, flattened and concatenated, as `f32` on the CPU.
fn flatten(observation: &Observation) -> Result<Array1<f32>, EnvError> {
    let mut values = Vec::new();
    for input in &observation.inputs {
        let flat = input.f_detach()?.f_to_kind(Kind::Float)?.f_to_device(tch::Device::Cpu)?.f_flatten(0, -1)?;
        values.extend(Vec::<f32>::try_from(flat)?);
    }
    Ok(Array1::from(values))
}

impl<E: Environment> Env<Array1<f32>, Array1<f32>> for GymnasiumEnv<E> {
    fn observation_space(&self) -> Space {
        let width = self.observation.len();
        Space::Box { low: Array1::from_elem(width, f32::NEG_INFINITY), high: Array1::from_elem(width, f32::INFINITY) }
    }

    fn action_space(&self) -> Space {
        let width = self.env.spec().rows * self.env.spec().space.n();
        Space::Box { low: Array1::zeros(width), high: Array1::ones(width) }
    }

    /// Seeds the environment's draws when `seed` is given; `options` are not used.
    fn reset(&mut self, seed: Option<i32>, _options: Options) -> (Array1<f32>, Info) {
        match self.try_reset(seed) {
            Ok(result) => result,
            Err(error) => {
                (self.observation.clone(), HashMap::from([("error".to_owned(), Value::from(error.to_string()))]))
            }
        }
    }

    fn step(&mut self, action: Array1<f32>) -> StepTuple {
        match self.try_step(&action) {
            Ok(result) => result,
            Err(error) => (
                self.observation.clone(),
                Reward::NAN,
                false,
                true,
                HashMap::from([("error".to_owned(), Value::from(error.to_string()))]),
            ),
        }
    }

    fn render(&self) -> Option<Array3<u8>> {
        None
    }

    fn close(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custom::RewardEnv;
    use crate::space::KHotSpace;

    fn env() -> GymnasiumEnv<RewardEnv> {
        let values = Tensor::from_slice(&[1.0f32, 2.0, 4.0, 8.0]);
        GymnasiumEnv::new(RewardEnv::new("sum", KHotSpace::new(4, 2).unwrap(), move |a: &Tensor| a.mv(&values)))
    }

    #[test]
    fn a_gymnasium_driver_steps_one_action_at_a_time() {
        let mut gym = env();
        assert_eq!(gym.action_space(), Space::Box { low: Array1::zeros(4), high: Array1::ones(4) });
        let (observation, info) = gym.reset_seed(7);
        assert_eq!(observation.len(), 0);
        assert_eq!(info["k"], Value::from(2));
        let (_, reward, terminated, truncated, info) = gym.step(Array1::from(vec![0.0, 1.0, 0.0, 1.0]));
        assert_eq!((reward, terminated, truncated), (10.0, true, false));
        assert_eq!(info["rewards"], Value::from(vec![10.0]));
    }

    /// A sequential environment runs its episode to the horizon, one action at a time, and
    /// the same seed gives the same episode.
    #[test]
    fn a_sequential_environment_runs_its_episodes() {
        let settings = crate::slate::SlateSettings {
            items: 6,
            k: 2,
            horizon: 3,
            sharpness: 4.0,
            premium: 3.0,
            drift: 0.5,
            taste_noise: 0.05,
        };
        let mut gym = GymnasiumEnv::new(crate::Episodic::new(crate::slate::Slate::new("slate", settings).unwrap()));
        let mut episode = |seed| {
            let (observation, _) = gym.reset_seed(seed);
            assert_eq!(observation.len(), 13);
            let mut rewards = Vec::new();
            for t in 0..3 {
                let (next, reward, terminated, truncated, info) =
                    gym.step(Array1::from(vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0]));
                assert!(!info.contains_key("error"), "{info:?}");
                assert_eq!((terminated, truncated, next.len()), (false, t == 2, 13));
                rewards.push(reward);
            }
            rewards
        };
        let first = episode(5);
        assert_eq!(episode(5), first);
        assert_ne!(episode(6), first);
        let (_, reward, _, _, info) = gym.step(Array1::from(vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0]));
        assert!(reward.is_nan() && info["error"].as_str().unwrap().contains("before reset"), "{info:?}");
    }

    #[test]
    fn bad_actions_give_a_nan_reward_and_the_error() {
        let mut gym = env();
        let (_, reward, _, truncated, info) = gym.step(Array1::from(vec![1.0, 1.0, 0.0, 0.0]));
        assert!(reward.is_nan() && truncated);
        assert!(info["error"].as_str().unwrap().contains("before reset"), "{info:?}");
        gym.reset_default();
        let (_, reward, _, _, info) = gym.step(Array1::from(vec![1.0, 1.0, 1.0, 0.0]));
        assert!(reward.is_nan());
        assert!(info["error"].as_str().unwrap().contains("not a k-hot vector"), "{info:?}");
        gym.reset_default();
        assert!(matches!(gym.try_step(&Array1::from(vec![1.0, 1.0])), Err(EnvError::ActionShape { .. })));
    }
}
