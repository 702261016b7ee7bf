//! Learning: an [`Experiment`] (environment, policy, estimator) built from a configuration
//! and the registry, the policy-gradient [`trainer`] (over [`episodes`] for sequential environments), the policies and the estimators, and
//! [`Agent`], the training loop as a library.

pub mod agent;
pub mod episodes;
pub mod estimators;
pub mod experiment;
pub mod policy;
pub mod trainer;
pub mod window;

pub use agent::{Agent, AgentOptions};
pub use experiment::Experiment;
