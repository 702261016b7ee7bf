//! `sfess-agent sweep FILE --out DIR`: a grid of runs from a sweep file, here or on Slurm
//! ([`crate::sweep`]); `sweep status DIR` and `sweep cancel DIR` follow and stop it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use sfess_envs::registry::Registry;

use super::scheduler::SchedulerArgs;
use super::write_out;
use crate::system::device::DeviceSpec;

/// Arguments of `sweep`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SweepArgs {
    /// `status` or `cancel` of a sweep folder.
    #[command(subcommand)]
    pub action: Option<SweepAction>,
    /// The sweep file: TOML or JSON (see docs/book/src/sweeps.md, and sweeps/*.toml).
    #[arg(required = true)]
    pub file: Option<PathBuf>,
    /// The sweep's folder: one run folder per combination, and the report.
    #[arg(long, value_name = "DIR", required = true)]
    pub out: Option<PathBuf>,
    /// Where and how the runs go.
    #[command(flatten)]
    pub scheduler: SchedulerArgs,
    /// No progress bar while following.
    #[arg(long)]
    pub quiet: bool,
}

/// `sweep status` and `sweep cancel`.
#[derive(Debug, Clone, Subcommand)]
pub enum SweepAction {
    /// Where each task of a sweep stands: done, running, pending, stopped, failed (with why).
    Status(SweepStatusArgs),
    /// Cancel a sweep's Slurm jobs (its runs keep their checkpoints; submit again to resume).
    Cancel(SweepDirArgs),
}

/// Arguments of `sweep status`.
#[derive(Debug, Clone, Args)]
pub struct SweepStatusArgs {
    /// The sweep's folder.
    pub dir: PathBuf,
    /// Follow with a progress bar until the report is written, then print the tables.
    #[arg(long)]
    pub wait: bool,
    /// The status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A sweep's folder.
#[derive(Debug, Clone, Args)]
pub struct SweepDirArgs {
    /// The sweep's folder.
    pub dir: PathBuf,
}

/// `sfess-agent sweep`: runs the sweep with `--device` `device` (overriding the file's, when
/// given) and `--threads` `threads`, then writes its tables to `stdout`; or the status, or
/// the cancellation, of a sweep folder.
///
/// # Errors
/// A sweep file or folder that cannot be read; the sweep's errors (a failed task among
/// them, after the tables); Slurm's.
pub fn run(
    args: &SweepArgs,
    device: Option<DeviceSpec>,
    threads: Option<usize>,
    registry: &Registry,
    stdout: &mut dyn Write,
) -> anyhow::Result<()> {
    match (&args.action, &args.file, &args.out) {
        (Some(action), _, _) => follow(action, stdout),
        (None, Some(file), Some(out)) => {
            let scheduler = args.scheduler.scheduler("sweep", threads, args.quiet)?;
            let mut spec = crate::sweep::spec::SweepSpec::read(file)?;
            // As for `train --config`, the flag overrides the file's device.
            if let Some(device) = device {
                spec.fixed.insert("device".to_owned(), serde_json::Value::from(device.to_string()));
            }
            let request = crate::sweep::Request {
                out: out.clone(),
                description: spec.description.clone(),
                tasks: spec.combinations(registry).with_context(|| format!("the sweep file {}", file.display()))?,
                command: "sweep",
            };
            finish(&crate::sweep::execute(&request, &scheduler, registry)?, out, stdout)
        }
        // clap requires FILE and --out without a subcommand.
        (None, _, _) => anyhow::bail!("sweep needs a sweep file and --out DIR"),
    }
}

/// `sweep status DIR` and `sweep cancel DIR`: they read (or cancel) a sweep folder and
/// nothing else, so that the `sfess-agent` binary answers them without libtorch
/// ([`crate::cli::front`]).
///
/// # Errors
/// The folder is not a sweep's; Slurm's; `stdout` cannot be written.
pub fn follow(action: &SweepAction, stdout: &mut dyn Write) -> anyhow::Result<()> {
    match action {
        SweepAction::Status(status) => {
            let text = if status.wait {
                crate::sweep::status::wait(&status.dir, false)?;
                let table = status.dir.join(crate::sweep::report::TABLE_MD);
                crate::system::files::read_text(&table).with_context(|| format!("reading {}", table.display()))?
            } else {
                let current = crate::sweep::status::status(&status.dir)?;
                if status.json { serde_json::to_string(&current)? + "\n" } else { current.text() }
            };
            write_out(stdout, &text, "the status")
        }
        SweepAction::Cancel(cancel) => {
            let ids = crate::sweep::slurm::cancel(&cancel.dir)?;
            let text = if ids.is_empty() {
                format!("no job of {} is queued or running\n", cancel.dir.display())
            } else {
                format!(
                    "cancelled Slurm jobs {}; the runs keep their checkpoints: submit the sweep again to resume them\n",
                    ids.join(", ")
                )
            };
            write_out(stdout, &text, "the result")
        }
    }
}

/// The tables of a sweep (or a comparison) that ended, on `stdout` (nothing for one that
/// goes on in Slurm), then an error if any of its tasks failed.
///
/// # Errors
/// `stdout` cannot be written; a task failed ([`crate::sweep::Outcome::check`]).
pub fn finish(outcome: &crate::sweep::Outcome, out: &Path, stdout: &mut dyn Write) -> anyhow::Result<()> {
    if let Some(tables) = &outcome.tables {
        write_out(stdout, tables, "the table")?;
    }
    outcome.check(out)
}
