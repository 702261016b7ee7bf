//! # sfess-agent: score-function estimators for k-subset sampling
//!
//! The library behind the `sfess-agent` binary. A run's data flows one way:
//!
//! 1. [`cli`]: the command line (and [`cli::main_with`], for a user's own binary with its
//!    own environments);
//! 2. [`config`]: the run's configuration ([`config::TrainConfig`], `config.json`);
//! 3. the registry of environments, in `sfess-envs` ([`sfess_envs::registry`]);
//! 4. [`train`]: the experiment built from both (environment, policy, estimator) and the
//!    policy-gradient trainer;
//! 5. [`run`]: the run folder around it (checkpoints, metrics, locks, signals).
//!
//! Beside them: [`sweep`] (grids of runs, on this machine or as Slurm array jobs),
//! [`commands`] (`compare`, `report`, `bench`, `inspect`, `toy`), [`plot`]
//! (every figure), [`system`] (devices, threads, messages). The numerics live in
//! `sfess-agents` (the policy side) and `sfess-envs` (the reward side).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod plot;
pub mod run;
pub mod sweep;
pub mod system;
pub mod train;

pub use train::{Agent, AgentOptions};
