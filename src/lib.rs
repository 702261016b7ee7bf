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
//! Beside them: [`sweep`] (grids of runs, on this machine or as Slurm array jobs, and
//! their report), [`commands`] (every subcommand, one file each), [`plot`] (every figure),
//! [`system`] (devices, threads, messages). The numerics live in
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

/// The README's and the book's Rust samples as doctests (`cargo test --doc`): each file with
/// Rust blocks is included here, so that its samples compile and run (`no_run` ones only
/// compile). The Gymnasium chapter's are in `sfess-envs` (its feature), the build script's in
/// `sfess-link`; `tests/book.rs` checks that every file with Rust blocks is included somewhere.
#[cfg(doctest)]
mod book {
    #[doc = include_str!("../README.md")]
    struct Readme;
    #[doc = include_str!("../docs/book/src/closure.md")]
    struct Closure;
    #[doc = include_str!("../docs/book/src/own-environment.md")]
    struct OwnEnvironment;
    #[doc = include_str!("../docs/book/src/episodes.md")]
    struct Episodes;
    #[doc = include_str!("../docs/book/src/library.md")]
    struct Library;
    #[doc = include_str!("../docs/book/src/estimators.md")]
    struct Estimators;
}
