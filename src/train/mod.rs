//! Learning, one step at a time: an [`Experiment`] (environment, policy, estimator) built
//! from a checked configuration or around your own environment, the policy-gradient step
//! and Adam ([`trainer`]; over [`episodes`] for sequential environments), the policies, the
//! estimators and the training-loss [`window`]. The loop that repeats the step is
//! [`crate::run::training`].

pub mod episodes;
pub mod estimators;
pub mod experiment;
pub mod policy;
pub mod trainer;
pub mod window;

pub use experiment::Experiment;
