//! Your own reward as an environment, from a closure.
//!
//! The simplest form scores a batch of k-hot actions:
//!
//! ```no_run
//! use sfess_envs::{KHotSpace, custom::RewardEnv};
//! use tch::Tensor;
//!
//! let values = Tensor::from_slice(&[0.3f32, -1.0, 2.0, 0.5, 1.1]);
//! // Reward of a subset: the sum of its hidden values. `actions` is `[batch, n]`.
//! let env = RewardEnv::new("hidden-values", KHotSpace::new(5, 2)?, move |actions: &Tensor| actions.mv(&values));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A contextual reward also sees one context row per action (an observation the policy
//! reads, for example through an MLP): [`RewardEnv::contextual`]. By default the closure is
//! a black box: it receives exact k-hot actions without gradient, and only the score
//! function estimators (`sfess`, `sfess-vr`) train on it. [`RewardEnv::differentiable`]
//! declares a closure made of differentiable tensor operations, which the pathwise
//! estimators may then call with relaxed actions. [`RewardEnv::losses`] declares that the
//! closure returns losses (lower is better) instead of rewards.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tch::{Kind, Tensor};

use crate::env::{
    EnvError, EnvSpec, Environment, EvalPolicy, Observation, Phase, Transition, check_actions, random_subsets,
};
use crate::space::KHotSpace;

/// A reward closure without context: actions `[batch, n]` → rewards `[batch]`.
type Score = Box<dyn FnMut(&Tensor) -> Tensor>;
/// A contextual reward closure: actions `[batch, n]`, contexts `[batch, d]` → rewards `[batch]`.
type ContextualScore = Box<dyn FnMut(&Tensor, &Tensor) -> Tensor>;
/// Draws `rows` contexts `[rows, d]`.
type ContextSampler = Box<dyn FnMut(&mut dyn Rng, usize) -> Tensor>;

/// Random subsets behind the `random` baseline.
const RANDOM_SUBSETS: usize = 32;
/// Contexts scored per evaluation of a contextual environment.
const EVAL_CONTEXTS: usize = 1024;
/// Seeds of the fixed evaluation draws (contexts and random subsets), per phase.
fn phase_seed(phase: Phase) -> u64 {
    match phase {
        Phase::Validation => 0x5eed_0001,
        Phase::Test => 0x5eed_0002,
    }
}

enum Reward {
    Plain(Score),
    Contextual { sample: ContextSampler, score: ContextualScore, context: Option<Tensor> },
}

/// An environment around a user's reward closure; see the [module docs](self).
pub struct RewardEnv {
    spec: EnvSpec,
    reward: Reward,
    /// Whether the closure returns losses (the reward is their negation).
    losses: bool,
}

impl std::fmt::Debug for RewardEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RewardEnv").field("spec", &self.spec).field("losses", &self.losses).finish_non_exhaustive()
    }
}

impl RewardEnv {
    /// One global subset scored by `reward`: a closure from k-hot actions `[batch, n]` (f32)
    /// to one reward per action (`[batch]`, or any shape with `batch` elements).
    pub fn new(name: &str, space: KHotSpace, reward: impl FnMut(&Tensor) -> Tensor + 'static) -> Self {
        let spec = Self::spec(name, space, 1, 0);
        Self { spec, reward: Reward::Plain(Box::new(reward)), losses: false }
    }

    /// A contextual reward: each step draws `rows` contexts `[rows, context_dim]` with
    /// `sample(rng, rows)`; the policy sees them and picks one subset per row; `reward`
    /// scores actions `[batch, n]` against their contexts `[batch, context_dim]` (each
    /// context repeated for the samples of its row). Evaluation scores the deterministic
    /// top-k action on 1,024 contexts drawn from a fixed seed per phase.
    ///
    /// # Errors
    /// [`EnvError::Config`] when `rows` or `context_dim` is 0.
    pub fn contextual(
        name: &str,
        space: KHotSpace,
        rows: usize,
        context_dim: usize,
        sample: impl FnMut(&mut dyn Rng, usize) -> Tensor + 'static,
        reward: impl FnMut(&Tensor, &Tensor) -> Tensor + 'static,
    ) -> Result<Self, EnvError> {
        if rows == 0 || context_dim == 0 {
            return Err(EnvError::Config {
                env: name.to_owned(),
                problem: format!(
                    "a contextual reward needs rows >= 1 and context_dim >= 1, got {rows} and {context_dim}"
                ),
            });
        }
        let spec = Self::spec(name, space, rows, context_dim);
        let reward = Reward::Contextual { sample: Box::new(sample), score: Box::new(reward), context: None };
        Ok(Self { spec, reward, losses: false })
    }

    /// Declares that the closure returns losses (lower is better): the reward is minus it,
    /// and the metric is `loss`.
    pub fn losses(mut self) -> Self {
        self.losses = true;
        self.spec.metric = "loss".to_owned();
        self.spec.higher_is_better = false;
        self
    }

    /// Declares the closure differentiable in the actions (made of tensor operations that
    /// keep the graph), so that `gs`, `stgs`, `simple` and `imle` may train on it too.
    pub fn differentiable(mut self) -> Self {
        self.spec.differentiable = true;
        self.spec.description = self.spec.description.replace("black-box", "differentiable");
        self
    }

    /// Replaces the one-line description shown by `sfess-agent envs`.
    pub fn describe(mut self, description: &str) -> Self {
        description.clone_into(&mut self.spec.description);
        self
    }

    fn spec(name: &str, space: KHotSpace, rows: usize, observation_dim: usize) -> EnvSpec {
        EnvSpec {
            name: name.to_owned(),
            space,
            rows,
            differentiable: false,
            metric: "reward".to_owned(),
            higher_is_better: true,
            observation_dim,
            description: format!("custom black-box reward: k = {} of n = {} items", space.k(), space.n()),
        }
    }

    /// Calls the closure on actions `[S, rows, n]` and checks what it returns: `[S, rows]`
    /// finite rewards.
    fn score(&mut self, actions: &Tensor, contexts: Option<&Tensor>) -> Result<Tensor, EnvError> {
        let shape = actions.size();
        let (samples, rows, n) = (shape[0], shape[1], shape[2]);
        let flat = actions.f_reshape([samples * rows, n])?;
        let raw = match (&mut self.reward, contexts) {
            (Reward::Plain(score), _) => score(&flat),
            (Reward::Contextual { score, .. }, Some(contexts)) => {
                let repeated = contexts.f_unsqueeze(0)?.f_expand([samples, rows, -1], false)?;
                score(&flat, &repeated.f_reshape([samples * rows, -1])?)
            }
            (Reward::Contextual { .. }, None) => return Err(EnvError::NotReset { env: self.spec.name.clone() }),
        };
        let problem = |problem: String| EnvError::Config { env: self.spec.name.clone(), problem };
        if raw.numel() != (samples * rows) as usize {
            return Err(problem(format!(
                "the reward closure returned shape {:?} for {} actions; it must return one value per action",
                raw.size(),
                samples * rows
            )));
        }
        let values = raw.f_to_kind(Kind::Float)?.f_to_device(actions.device())?.f_reshape([samples, rows])?;
        let finite = values.f_isfinite()?.f_all()?.int64_value(&[]) != 0;
        if !finite {
            return Err(problem("the reward closure returned NaN or an infinite value".to_owned()));
        }
        if self.losses { Ok(values.f_neg()?) } else { Ok(values) }
    }

    /// The evaluation contexts of `phase` (fixed), or `None` without context.
    fn eval_contexts(&mut self, phase: Phase) -> Option<Tensor> {
        match &mut self.reward {
            Reward::Plain(_) => None,
            Reward::Contextual { sample, .. } => {
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(phase_seed(phase));
                Some(sample(&mut rng, EVAL_CONTEXTS))
            }
        }
    }

    /// Mean reward of `actions [S, rows, n]` (on `contexts`), reported as the metric's value.
    fn metric_of(&mut self, actions: &Tensor, contexts: Option<&Tensor>) -> Result<f64, EnvError> {
        let rewards = self.score(actions, contexts)?;
        let mean = rewards.f_mean(Kind::Double)?.double_value(&[]);
        Ok(if self.losses { -mean } else { mean })
    }
}

impl Environment for RewardEnv {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    /// Inputs: none, or `[contexts [rows, context_dim]]`.
    fn reset(&mut self, rng: &mut dyn Rng) -> Result<Observation, EnvError> {
        let rows = self.spec.rows;
        match &mut self.reward {
            Reward::Plain(_) => Ok(Observation { inputs: Vec::new() }),
            Reward::Contextual { sample, context, .. } => {
                let drawn = sample(rng, rows).f_to_kind(Kind::Float)?;
                if drawn.size() != [rows as i64, self.spec.observation_dim as i64] {
                    return Err(EnvError::Config {
                        env: self.spec.name.clone(),
                        problem: format!(
                            "the context sampler returned shape {:?}, expected [{rows}, {}]",
                            drawn.size(),
                            self.spec.observation_dim
                        ),
                    });
                }
                *context = Some(drawn.shallow_clone());
                Ok(Observation { inputs: vec![drawn] })
            }
        }
    }

    fn step(&mut self, actions: &Tensor) -> Result<Transition, EnvError> {
        check_actions(&self.spec, actions)?;
        let context = match &self.reward {
            Reward::Contextual { context, .. } => Some(
                context.as_ref().ok_or_else(|| EnvError::NotReset { env: self.spec.name.clone() })?.shallow_clone(),
            ),
            Reward::Plain(_) => None,
        };
        let actions = if self.spec.differentiable { actions.shallow_clone() } else { actions.f_detach()? };
        Ok(Transition::rewards(self.score(&actions, context.as_ref())?))
    }

    fn evaluate(&mut self, phase: Phase, policy: &dyn EvalPolicy) -> Result<BTreeMap<String, f64>, EnvError> {
        let _guard = tch::no_grad_guard();
        let contexts = self.eval_contexts(phase);
        let observation = Observation { inputs: contexts.iter().map(Tensor::shallow_clone).collect() };
        let actions = policy.act(&observation)?.f_unsqueeze(0)?;
        let value = self.metric_of(&actions, contexts.as_ref())?;
        Ok(BTreeMap::from([(self.spec.metric.clone(), value)]))
    }

    /// `random`: the mean over 32 uniformly random k-subsets (per context row, on the
    /// evaluation contexts), from a fixed seed.
    fn baselines(&mut self, phase: Phase) -> Result<BTreeMap<String, f64>, EnvError> {
        let _guard = tch::no_grad_guard();
        let contexts = self.eval_contexts(phase);
        let rows = contexts.as_ref().map_or(1, |c| c.size()[0] as usize);
        let (n, k) = (self.spec.space.n(), self.spec.space.k());
        let subsets = random_subsets(phase_seed(phase) ^ 0xba5e, RANDOM_SUBSETS * rows, n, k);
        let picks: Vec<i64> = subsets
            .iter()
            .enumerate()
            .flat_map(|(slot, subset)| subset.iter().map(move |&i| (slot * n + i) as i64))
            .collect();
        let flat = Tensor::f_zeros([(RANDOM_SUBSETS * rows * n) as i64], (Kind::Float, tch::Device::Cpu))?;
        let actions = flat.f_index_fill(0, &Tensor::from_slice(&picks), 1.0)?.f_view([
            RANDOM_SUBSETS as i64,
            rows as i64,
            n as i64,
        ])?;
        let actions = match &contexts {
            Some(c) => actions.f_to_device(c.device())?,
            None => actions,
        };
        Ok(BTreeMap::from([("random".to_owned(), self.metric_of(&actions, contexts.as_ref())?)]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Tensor {
        Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.25])
    }

    #[test]
    fn scores_each_action_with_the_closure() {
        let v = values();
        let mut env = RewardEnv::new("t", KHotSpace::new(4, 2).unwrap(), move |a: &Tensor| a.mv(&v));
        env.reset(&mut Xoshiro256PlusPlus::seed_from_u64(0)).unwrap();
        let actions = Tensor::from_slice(&[1.0f32, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0]).view([2, 1, 4]);
        let t = env.step(&actions).unwrap();
        assert_eq!(Vec::<f32>::try_from(t.rewards.flatten(0, -1)).unwrap(), vec![2.5, -0.75]);
        assert!(t.terminated && !t.truncated);
        let policy = crate::env::FixedAction(Tensor::from_slice(&[0.0f32, 0.0, 1.0, 1.0]).view([1, 4]));
        assert_eq!(env.evaluate(Phase::Test, &policy).unwrap()["reward"], 2.25);
        // A uniform pair has E = (k/n)·Σv = 0.5 · 1.75 = 0.875 and sd ≈ 1.2; the mean of 32
        // draws has sd ≈ 0.21.
        let random = env.baselines(Phase::Test).unwrap()["random"];
        assert!((random - 0.875).abs() < 0.5, "{random}");
    }

    #[test]
    fn losses_are_negated_and_bad_outputs_are_errors() {
        let v = values();
        let mut env = RewardEnv::new("t", KHotSpace::new(4, 1).unwrap(), move |a: &Tensor| a.mv(&v)).losses();
        let action = Tensor::from_slice(&[0.0f32, 0.0, 1.0, 0.0]).view([1, 1, 4]);
        assert_eq!(env.step(&action).unwrap().rewards.double_value(&[0, 0]), -2.0);
        assert_eq!(env.spec().metric, "loss");

        let mut wrong =
            RewardEnv::new("t", KHotSpace::new(4, 1).unwrap(), |_: &Tensor| Tensor::zeros([3], tch::kind::FLOAT_CPU));
        let message = wrong.step(&action).unwrap_err().to_string();
        assert!(message.contains("one value per action"), "{message}");
        let mut nan = RewardEnv::new("t", KHotSpace::new(4, 1).unwrap(), |a: &Tensor| {
            a.sum_dim_intlist(-1, false, None::<Kind>) / 0.0 * 0.0
        });
        assert!(nan.step(&action).unwrap_err().to_string().contains("NaN"));
        let bad_shape = Tensor::zeros([1, 1, 5], tch::kind::FLOAT_CPU);
        assert!(matches!(env.step(&bad_shape), Err(EnvError::ActionShape { .. })));
    }

    #[test]
    fn contextual_rewards_see_their_own_context() {
        // Reward: the context's value at the chosen item (k = 1).
        let mut env = RewardEnv::contextual(
            "c",
            KHotSpace::new(3, 1).unwrap(),
            2,
            3,
            |_rng, rows| Tensor::arange(rows as i64 * 3, tch::kind::FLOAT_CPU).view([rows as i64, 3]),
            |a: &Tensor, c: &Tensor| (a * c).sum_dim_intlist(-1, false, None::<Kind>),
        )
        .unwrap();
        assert!(matches!(env.step(&Tensor::zeros([1, 2, 3], tch::kind::FLOAT_CPU)), Err(EnvError::NotReset { .. })));
        let observation = env.reset(&mut Xoshiro256PlusPlus::seed_from_u64(0)).unwrap();
        assert_eq!(observation.inputs[0].size(), [2, 3]);
        // Two samples; row 0 picks item 2 (value 2), row 1 picks item 0 (value 3), then 1 and 5.
        let actions =
            Tensor::from_slice(&[0.0f32, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]).view([2, 2, 3]);
        let rewards = env.step(&actions).unwrap().rewards;
        assert_eq!(Vec::<f32>::try_from(rewards.flatten(0, -1)).unwrap(), vec![2.0, 3.0, 1.0, 5.0]);
        assert!(
            RewardEnv::contextual(
                "c",
                KHotSpace::new(3, 1).unwrap(),
                0,
                3,
                |_, _| Tensor::zeros([0], tch::kind::FLOAT_CPU),
                |a: &Tensor, _: &Tensor| a.sum(Kind::Float)
            )
            .is_err()
        );
    }
}
