//! # sfess-agent: score-function estimators for k-subset sampling
//!
//! The library behind the `sfess-agent` binary: its command line ([`cli`]), the
//! `--device` option ([`device`]) and the `inspect` command ([`inspect`]). The numerics
//! live in `sfess-agents` (the policy side) and `sfess-envs` (the reward side).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod agent;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod compare;
pub mod config;
pub mod device;
pub mod estimators;
pub mod files;
pub mod inspect;
pub mod lock;
pub mod messages;
pub mod plot;
pub mod policy;
pub mod run_folder;
pub mod runner;
pub mod signals;
pub mod threads;
pub mod toy;
pub mod trainer;
