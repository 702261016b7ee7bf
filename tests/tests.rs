//! Integration tests of the `sfess-agent` binary (one test binary; modules below).

mod blackbox;
mod book;
mod checkpoints;
mod cli;
mod common;
mod compare;
mod custom;
/// The event-file reader of `sfess-tensorboard`'s tests, independent of its encoder.
#[path = "../tensorboard/tests/decoder/mod.rs"]
mod decoder;
mod episodes;
mod figures;
mod fuzz;
mod own_env;
mod run_folder;
mod settings;
mod slurm;
mod slurm_scripts;
mod sweep;
mod tensorboard;
mod train;
mod unsafe_writes;
