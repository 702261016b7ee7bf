//! Integration tests of the `sfess-agent` binary (one test binary; modules below).

mod blackbox;
mod book;
mod cli;
mod common;
mod compare;
mod custom;
mod episodes;
mod fuzz;
mod own_env;
mod run_folder;
mod settings;
mod slurm;
mod sweep;
mod train;
