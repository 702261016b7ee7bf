//! Training over episodes: the step of a sequential environment
//! ([`sfess_envs::SequentialEnvironment`]).
//!
//! Step `t` of a run seeded `seed` draws `B` start seeds (`--batch-size`) from
//! [`env_seed`]`(seed, t)` and rolls out `S` episodes (`--samples`) from each: the same
//! environment seed, so the same start state and noise, and independent actions of the
//! policy. The episodes are ordered `[S, B]` (copy-major). At the first step the `S` copies
//! of a start share its observation: the policy runs once per start and the `S` actions are
//! drawn from its law, as a one-step task draws its `S` samples; later each episode has its
//! own state and draws one action. The exact log-probability of every action is kept, and
//! [`sfess_agents::EpisodeEstimator::surrogate_loss`] turns them, with the rewards, into one
//! scalar whose gradient is the estimate of `∇ E[return]` (leave-one-out over the `S`
//! returns of a start for `sfess-vr`).
//!
//! Every draw of step `t` comes from [`step_rng`]`(seed, t)` and the environment's from the
//! start seeds, so a resumed run repeats the uninterrupted one exactly.

use std::collections::BTreeMap;

use sfess_agents::EpisodeEstimator;
use sfess_envs::episodes::{Rollout, roll_out};
use sfess_envs::{EnvError, Observation, SequentialEnvironment};
use tch::{Kind, Tensor};

use crate::train::policy::Policy;
use crate::train::trainer::{Adam, StepReport, env_seed, step_rng};

/// How a run trains over episodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpisodeTraining {
    /// The estimator over episodes.
    pub estimator: EpisodeEstimator,
    /// Start states per step `B`.
    pub starts: usize,
}

/// The `B` start seeds of training step `step` of a run seeded `seed`.
pub fn start_seeds(seed: u64, step: u64, starts: usize) -> Vec<u64> {
    use rand::Rng;
    let mut rng = step_rng(env_seed(seed, step), 0x7374_6172_7473);
    (0..starts).map(|_| rng.next_u64()).collect()
}

/// What one step over episodes rolled out, and its surrogate.
#[derive(Debug)]
pub struct EpisodeSurrogate {
    /// The scalar to differentiate: minus the mean discounted return, whose gradient is
    /// the estimate.
    pub surrogate: Tensor,
    /// The exact log-probabilities `[S, B, T']` (with the policy's graph), rewards and
    /// steps taken (`alive`), `[S, B, T']`.
    pub log_probs: Tensor,
    /// The rewards `[S, B, T']`, 0 after an episode ended.
    pub rewards: Tensor,
    /// 1 for the steps an episode took, `[S, B, T']`.
    pub alive: Tensor,
    /// The environment's info (means over the steps).
    pub info: BTreeMap<String, f64>,
    /// Mean `return` and `length` of the episodes.
    pub measures: BTreeMap<String, f64>,
}

/// Rolls out the episodes of training step `step` and builds the surrogate (see the
/// [module docs](self)).
///
/// # Errors
/// The environment's and the policy's errors; logits of the wrong shape.
pub fn episode_surrogate(
    step: u64,
    seed: u64,
    env: &mut dyn SequentialEnvironment,
    policy: &dyn Policy,
    training: &EpisodeTraining,
    samples: usize,
) -> anyhow::Result<EpisodeSurrogate> {
    let mut rng = step_rng(seed, step);
    let starts = training.starts;
    let start = start_seeds(seed, step, starts);
    let seeds: Vec<u64> = (0..samples).flat_map(|_| start.iter().copied()).collect();
    let spec = env.spec().clone();
    let (n, k, episodes) = (spec.space.n() as i64, spec.space.k() as i64, (samples * starts) as i64);
    let mut log_probs = Vec::new();
    let logits_of = |observation: &Observation, rows: i64| -> Result<Tensor, EnvError> {
        let logits = policy.forward(observation).map_err(|e| EnvError::Policy(format!("{e:#}")))?;
        if logits.size() != [rows, n] {
            return Err(EnvError::Policy(format!(
                "the policy gave logits of shape {:?} but {} takes one action of {n} items per episode ({rows} here)",
                logits.size(),
                spec.name
            )));
        }
        Ok(logits)
    };
    let rollout: Rollout = roll_out(env, &seeds, &mut |t, _, observation| {
        let distribution = |e: sfess_agents::EstimatorError| EnvError::Distribution(e.to_string());
        let (actions, log_prob) = if t == 0 {
            // The S copies of a start share its first observation.
            let first = Observation {
                inputs: observation.inputs.iter().map(|x| x.f_narrow(0, 0, starts as i64)).collect::<Result<_, _>>()?,
            };
            let logits = logits_of(&first, starts as i64)?;
            training.estimator.act(&logits, k, samples, &mut rng).map_err(distribution)?
        } else {
            let logits = logits_of(observation, episodes)?;
            training.estimator.act(&logits, k, 1, &mut rng).map_err(distribution)?
        };
        log_probs.push(log_prob.f_reshape([episodes])?);
        Ok(actions.f_reshape([episodes, n])?)
    })?;
    let taken = rollout.rewards.size()[1];
    let shape = [samples as i64, starts as i64, taken];
    let device = log_probs[0].device();
    let log_probs = Tensor::f_stack(&log_probs, 1)?.f_view(shape)?;
    let rewards = rollout.rewards.f_view(shape)?.f_to_device(device)?;
    let alive = rollout.alive.f_view(shape)?.f_to_device(device)?;
    let surrogate = training.estimator.surrogate_loss(&log_probs, &rewards, &alive)?;
    let (mean_return, mean_length) =
        (rollout.returns()?.f_mean(Kind::Double)?, rollout.lengths()?.f_mean(Kind::Double)?);
    let measures = BTreeMap::from([
        ("return".to_owned(), mean_return.double_value(&[])),
        ("length".to_owned(), mean_length.double_value(&[])),
    ]);
    Ok(EpisodeSurrogate { surrogate, log_probs, rewards, alive, info: rollout.info, measures })
}

/// One training step over episodes: roll out, build the surrogate, update.
///
/// # Errors
/// As [`episode_surrogate`]; libtorch errors.
pub fn episode_step(
    step: u64,
    seed: u64,
    env: &mut dyn SequentialEnvironment,
    policy: &dyn Policy,
    training: &EpisodeTraining,
    samples: usize,
    optimizer: &mut Adam,
) -> anyhow::Result<StepReport> {
    let rolled = episode_surrogate(step, seed, env, policy, training, samples)?;
    let loss = rolled.surrogate.f_detach()?.f_to_kind(Kind::Double)?;
    optimizer.backward_step(&rolled.surrogate)?;
    Ok(StepReport { loss, info: rolled.info, measures: rolled.measures })
}

#[cfg(test)]
mod tests {
    use sfess_envs::KHotSpace;
    use sfess_envs::custom::{EpisodeOutcome, RewardEnv, SequentialRewardEnv};

    use super::*;
    use crate::config::estimators::{EstimatorName, EstimatorOptions};
    use crate::train::estimators::build;
    use crate::train::policy::GlobalLogits;
    use crate::train::trainer::step_surrogate;

    /// The gradient of `surrogate` for the policy's logits.
    fn gradient(surrogate: &Tensor, policy: &GlobalLogits) -> Vec<f64> {
        let logits: Vec<Tensor> = policy.var_store().trainable_variables();
        let grads = Tensor::run_backward(&[surrogate], &logits.iter().collect::<Vec<_>>(), false, false);
        Vec::<f64>::try_from(grads[0].to_kind(Kind::Double).view(-1)).unwrap()
    }

    /// Episodes of one step are the one-step task: from the same seed and step, the trainer
    /// over episodes draws the same actions as the one-step trainer and its gradient is the
    /// same (to f32 rounding: the one-step rewards are f32, the returns f64).
    #[test]
    fn episodes_of_one_step_are_the_one_step_task() {
        let values = Tensor::from_slice(&[0.3f32, -1.0, 2.0, 0.5, 1.1, -0.2]);
        let space = KHotSpace::new(6, 2).unwrap();
        let scores = values.shallow_clone();
        let mut bandit = RewardEnv::new("values", space, move |a: &Tensor| a.mv(&scores));
        let mut one_step = SequentialRewardEnv::new(
            "values",
            space,
            1,
            1,
            |noise| Tensor::zeros([noise.episodes() as i64, 1], (Kind::Float, tch::Device::Cpu)),
            move |states, actions, _| EpisodeOutcome {
                states: states.copy(),
                rewards: actions.mv(&values),
                terminated: Tensor::ones([actions.size()[0]], (Kind::Bool, tch::Device::Cpu)),
            },
        )
        .unwrap();
        for name in [EstimatorName::SfessVr, EstimatorName::Sfess] {
            let estimator = build(name, &EstimatorOptions::default()).unwrap();
            let training = EpisodeTraining { estimator: estimator.over_episodes(false, 1.0).unwrap(), starts: 1 };
            for step in 0..5 {
                let policy = GlobalLogits::new(tch::Device::Cpu, 6, 2).unwrap();
                tch::no_grad(|| {
                    policy.var_store().trainable_variables()[0]
                        .copy_(&Tensor::from_slice(&[0.1f32, 0.5, -0.3, 0.0, 0.2, 0.4]).view([1, 6]))
                });
                let (surrogate, _) = step_surrogate(step, 7, &mut bandit, &policy, estimator.as_ref(), 8).unwrap();
                let expected = gradient(&surrogate, &policy);
                let rolled = episode_surrogate(step, 7, &mut one_step, &policy, &training, 8).unwrap();
                assert_eq!(rolled.log_probs.size(), [8, 1, 1]);
                let got = gradient(&rolled.surrogate, &policy);
                for (a, b) in got.iter().zip(&expected) {
                    assert!((a - b).abs() < 1e-6, "{name:?} step {step}: {got:?} against {expected:?}");
                }
                assert!(expected.iter().any(|g| g.abs() > 1e-3), "{expected:?}");
            }
        }
    }
}
