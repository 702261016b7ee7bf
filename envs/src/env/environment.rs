//! The [`Environment`] trait. It names the episodes' and the figures' types
//! ([`Environment::sequential`], [`Environment::pictures`]), which themselves use the
//! interface's values: those are in `types.rs`, apart, so that no file imports one that
//! imports it.

use std::collections::BTreeMap;

use rand::Rng;
use tch::Tensor;
use tch::nn::VarStore;

use super::types::{EnvError, EnvSpec, EvalPolicy, Observation, Phase, StepSeed, Transition};

/// An environment whose actions are k-hot vectors, with Gymnasium's semantics batched:
/// `reset` draws a training observation, `step` scores `S` actions for each of its rows.
pub trait Environment {
    /// Name, action space, metric.
    fn spec(&self) -> &EnvSpec;

    /// Starts a step: draws a training batch with `rng` and returns what the policy sees.
    ///
    /// # Errors
    /// libtorch errors.
    fn reset(&mut self, rng: &mut dyn Rng) -> Result<Observation, EnvError>;

    /// Starts training step `step.step`: [`reset`](Self::reset), told which step it is and
    /// given `step.seed` for the environment's own noise. The trainer calls this; the
    /// default ignores both. `step.seed` depends on the run's seed and the step alone (not on
    /// `rng`'s draws), so a noisy reward seeded from it repeats exactly when a run resumes.
    ///
    /// # Errors
    /// As [`reset`](Self::reset).
    fn reset_step(&mut self, step: StepSeed, rng: &mut dyn Rng) -> Result<Observation, EnvError> {
        let _ = step;
        self.reset(rng)
    }

    /// Scores actions `[S, rows, n]` (k-hot, or relaxed for differentiable environments)
    /// for the last observation: one reward per action, `[S, rows]`, in a [`Transition`].
    ///
    /// # Errors
    /// [`EnvError::ActionShape`], [`EnvError::NotReset`], libtorch errors, and whatever
    /// computes the reward (a child process, a user's closure) fails with.
    fn step(&mut self, actions: &Tensor) -> Result<Transition, EnvError>;

    /// Terms of the loss that depend on the logits directly rather than through the
    /// actions (a VAE's KL to the prior), as a scalar to add to the surrogate; `None` when
    /// there are none.
    ///
    /// # Errors
    /// libtorch errors.
    fn logit_loss(&mut self, _logits: &Tensor) -> Result<Option<Tensor>, EnvError> {
        Ok(None)
    }

    /// The environment's own trainable parameters, if any.
    fn var_store(&self) -> Option<&VarStore> {
        None
    }

    /// The environment of episodes behind this one ([`crate::episodes::Episodic`]), which
    /// the trainer trains over episodes; `None` (the default) for one-step environments,
    /// trained with [`reset_step`](Self::reset_step) and [`step`](Self::step).
    fn sequential(&mut self) -> Option<&mut dyn crate::episodes::SequentialEnvironment> {
        None
    }

    /// Evaluates a policy on a held-out split; the map holds at least `spec().metric`.
    ///
    /// # Errors
    /// Policy and libtorch errors.
    fn evaluate(&mut self, phase: Phase, policy: &dyn EvalPolicy) -> Result<BTreeMap<String, f64>, EnvError>;

    /// An observation of held-out data (the first `rows` rows of `phase`'s split, always
    /// the same), for what a contextual policy does on data it did not train on: the
    /// marginals a run records at each validation and `subset.json`. `None` (the default)
    /// for environments without one; a policy that reads no observation needs none.
    ///
    /// # Errors
    /// libtorch errors.
    fn held_out_observation(&mut self, _phase: Phase, _rows: usize) -> Result<Option<Observation>, EnvError> {
        Ok(None)
    }

    /// The figures of what `policy` learned, from held-out data only (`sfess-agent show`
    /// draws them): the k-NN embedding, the selected pixels and reconstructions, ...
    /// Empty (the default) for environments without figures of their own; every run also
    /// gets its learning curve and the marginals over training.
    ///
    /// # Errors
    /// Policy and libtorch errors.
    fn pictures(&mut self, _policy: &dyn EvalPolicy) -> Result<Vec<crate::pictures::Picture>, EnvError> {
        Ok(Vec::new())
    }

    /// The main metric of the selections that need no training, on `phase`: random
    /// subsets and the task's classical method (QR pivoting, greedy, ...), by name. Empty
    /// for tasks without any.
    ///
    /// # Errors
    /// libtorch errors.
    fn baselines(&mut self, _phase: Phase) -> Result<BTreeMap<String, f64>, EnvError> {
        Ok(BTreeMap::new())
    }
}
