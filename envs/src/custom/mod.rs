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
//! A closure that also takes a [`Call`] ([`RewardEnv::with_call`]) is told where it is
//! called from ([`Stage`]: training step `t`, or evaluation on a phase) and is given a
//! generator for its noise. Noise drawn from it ([`Call::normal_like`], [`Call::uniform`],
//! or `call.rng` directly) is a function of the run's seed and the step alone, so a run
//! repeats exactly and resumes exactly; noise from libtorch's global generator
//! (`randn_like`) does neither. [`RewardEnv::evaluate_with`] gives evaluation a scorer of
//! its own (the noise-free reward, say).
//!
//! A contextual reward also sees one context row per action (an observation the policy
//! reads, for example through an MLP): [`RewardEnv::contextual`] and
//! [`RewardEnv::contextual_with_call`]. By default the closure is
//! a black box: it receives exact k-hot actions without gradient, and only the score
//! function estimators (`sfess`, `sfess-vr`) train on it. [`RewardEnv::differentiable`]
//! declares a closure made of differentiable tensor operations, which the pathwise
//! estimators may then call with relaxed actions. [`RewardEnv::losses`] declares that the
//! closure returns losses (lower is better) instead of rewards.
//!
//! # Which generator a call gets
//! - Training step `t` started by [`Environment::reset_step`] with seed `s`: a
//!   `Xoshiro256PlusPlus` seeded `s`, fresh at each step and shared by the step's calls.
//!   It is the environment's own: the trainer's `rng` is not drawn from for it (a
//!   contextual reward's `sample` still draws its contexts from `rng`), so the policy's
//!   draws are those it would have without the noise.
//! - A step started by a plain [`Environment::reset`] (a Gymnasium driver, a hand-written
//!   loop), or a `step` before any reset: the step after the last one started (0 first),
//!   with a generator seeded from that number alone. Such a sequence of resets repeats, but
//!   does not know the run's seed.
//! - [`Environment::evaluate`] and [`Environment::baselines`] on a phase: a generator seeded
//!   from the phase alone, fresh at each call, so evaluations are reproducible and leave
//!   the training noise untouched.

//!
//! [`Environment::reset_step`]: crate::Environment::reset_step
//! [`Environment::reset`]: crate::Environment::reset
//! [`Environment::evaluate`]: crate::Environment::evaluate
//! [`Environment::baselines`]: crate::Environment::baselines

mod call;
mod reward;
mod sequential;

pub use crate::env::RewardError;
pub use call::{Call, Stage};
pub use reward::RewardEnv;
pub use sequential::{EpisodeOutcome, SequentialRewardEnv};
