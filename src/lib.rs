//! # sfess-agent: score-function estimators for k-subset sampling
//!
//! The library behind the `sfess-agent` binary, in layers that each use only those below
//! them (`tests/layout.rs` checks it; docs/book/src/layout.md draws it):
//!
//! 1. [`system`]: the machine and shared rules (devices, threads, messages, names that
//!    become paths, safe file writes, signals);
//! 2. [`config`]: a run's configuration ([`config::TrainConfig`], `config.json`), checked
//!    once into a [`config::RunSpec`] against its environment's entry in `sfess-envs`'
//!    [`sfess_envs::registry`];
//! 3. [`train`]: the experiment built from it (environment, policy, estimator) and one
//!    policy-gradient step;
//! 4. [`plot`]: every figure;
//! 5. [`run`]: the training loop ([`run::training`]) and the run folder around it
//!    (checkpoints, metrics, locks, figures);
//! 6. [`agent`] (the loop as a library) and [`sweep`] (grids of runs, here or on Slurm, and
//!    their reports);
//! 7. [`commands`]: one file per subcommand;
//! 8. [`cli`]: the command line (and [`cli::main_with`], for a user's own binary with its
//!    own environments).
//!
//! The numerics live in `sfess-agents` (the policy side) and `sfess-envs` (the reward side).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod agent;
pub mod cli;
pub mod commands;
pub mod config;
pub mod plot;
pub mod run;
pub mod sweep;
pub mod system;
pub mod train;

pub use agent::{Agent, AgentOptions};

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
