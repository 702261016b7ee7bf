//! `sfess-agent sweep-task DIR NAME` (hidden): one task of a sweep, what a sweep's local
//! pool and its Slurm array job run ([`crate::sweep::run_task`]).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use sfess_envs::registry::Registry;

use crate::run::{RunOptions, Verbosity};
use crate::system::messages::{program_name, say};
use crate::system::names::PathName;
use crate::system::signals::Interrupt;

/// Arguments of `sweep-task`.
#[derive(Debug, Clone, Args)]
pub struct SweepTaskArgs {
    /// The sweep's folder.
    pub dir: PathBuf,
    /// The task's name (its run folder inside DIR).
    pub name: PathName,
}

/// `sfess-agent sweep-task`: runs the task quietly, its threads named on stderr for its log.
///
/// # Errors
/// As [`crate::sweep::run_task`].
pub fn run(args: &SweepTaskArgs, registry: &Arc<Registry>) -> anyhow::Result<()> {
    let options = RunOptions {
        verbosity: Verbosity::Quiet,
        interrupt: Interrupt::of_process(),
        holder: std::env::args().collect::<Vec<_>>().join(" "),
        registry: Arc::clone(registry),
        figures: true,
    };
    // For the task's log: the CPUs it uses (its share, or SLURM_CPUS_PER_TASK).
    say(format_args!("{}: task {} with {} threads", program_name(), args.name, rayon::current_num_threads()));
    crate::sweep::run_task(&args.dir, &args.name, &options).map(drop)
}
