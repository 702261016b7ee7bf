//! Sweeps: a grid of ordinary run folders in one folder, run by a scheduler, reported
//! together.
//!
//! - [`spec`]: the sweep file and its expansion into checked configurations.
//! - [`folder`]: the sweep folder `DIR` holds `sweep.json` (every task: its folder name, grid
//!   values and configuration; a later request on the folder may add tasks, never change
//!   one), one run folder per task (`DIR/NAME`, as `train` writes it, plus `failed.txt` when
//!   the task failed), and the report ([`report`]: tables and figures). A task's name is a
//!   [`PathName`](crate::system::names::PathName), checked again whenever `sweep.json` is
//!   read; a folder that holds a run is not a sweep folder.
//! - A task is run by `sfess-agent sweep-task DIR NAME` (a hidden subcommand, [`run_task`]):
//!   it starts the run or resumes it from its checkpoint, and records a failure in the
//!   run folder. [`local`] runs tasks as child processes, a pool of `--jobs`; [`slurm`]
//!   submits them as one array job, with scripts that hold every value by [`script`]'s rule.
//! - [`status`] reads the run folders first and the scheduler second.
//! - Here: [`execute`] runs a request with a [`Scheduler`] and ends in an [`Outcome`].

pub mod folder;
pub mod local;
pub mod report;
pub mod script;
pub mod slurm;
pub mod spec;
pub mod status;

use std::path::Path;

use anyhow::Context;
use sfess_envs::registry::Registry;

pub use folder::{FAILED, Prepared, RECORD, Request, SweepRecord, is_complete, prepare, refuse_a_run_folder, run_task};

/// Where a sweep's tasks run.
#[derive(Debug, Clone)]
pub enum Scheduler {
    /// Child processes on this machine.
    Local(local::Pool),
    /// One Slurm array job.
    Slurm {
        /// What to ask of Slurm.
        options: slurm::SlurmOptions,
        /// Follow the jobs until the report is written.
        wait: bool,
        /// No progress bar while following.
        quiet: bool,
    },
}

/// How a request on a sweep ended.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The report's tables, once the sweep has ended here (`None`: it goes on in Slurm).
    pub tables: Option<String>,
    /// The tasks that failed, with their reasons (in the tables too).
    pub failed: Vec<(String, String)>,
    /// Every task of the sweep.
    pub tasks: usize,
}

impl Outcome {
    /// An error when a task failed: a sweep with failed tasks does not exit 0, though its
    /// report is written and its tables printed.
    ///
    /// # Errors
    /// Some task failed: how many, the first one and its reason, and what to do.
    pub fn check(&self, out: &Path) -> anyhow::Result<()> {
        let Some((name, reason)) = self.failed.first() else { return Ok(()) };
        anyhow::bail!(
            "{} of the {} tasks of {} failed ({name}: {reason}{}); the report shows them, and the same request runs \
             them again",
            self.failed.len(),
            self.tasks,
            out.display(),
            if self.failed.len() > 1 { "; see sweep status for the others" } else { "" }
        )
    }
}

/// Runs `request` with `scheduler`: prepares the folder, then runs the tasks here or
/// submits them; the report's tables once the sweep has ended here (always locally;
/// on Slurm with `wait`, or when nothing was left to submit), with the tasks that failed.
///
/// # Errors
/// As [`prepare`], [`local::run`], [`slurm::submit`], [`status::wait`] and the report.
pub fn execute(request: &Request, scheduler: &Scheduler, registry: &Registry) -> anyhow::Result<Outcome> {
    let out = &request.out;
    if let Scheduler::Slurm { .. } = scheduler {
        // Before the folder is made: its path must fit the scripts and sbatch's options.
        slurm::check_folder(out)?;
    }
    let prepared = prepare(request, registry)?;
    let tasks = prepared.record.tasks.len();
    let (options, wait, quiet) = match scheduler {
        Scheduler::Local(pool) => {
            local::run(out, &prepared, pool)?;
            let tables = report::report(out, registry)?;
            let failed = prepared
                .record
                .tasks
                .iter()
                .filter(|task| !is_complete(out, task))
                .map(|task| {
                    let reason = crate::system::files::read_text(&out.join(&task.name).join(FAILED));
                    (task.name.to_string(), reason.map_or_else(|_| "incomplete".to_owned(), |r| r.trim().to_owned()))
                })
                .collect();
            return Ok(Outcome { tables: Some(tables), failed, tasks });
        }
        Scheduler::Slurm { options, wait, quiet } => (options, *wait, *quiet),
    };
    let submitted = slurm::submit(out, &prepared, options)?;
    // The tasks lock their own folders; the sweep's is free for the next request.
    drop(prepared);
    let command = request.command;
    let follow = format!("sfess-agent sweep status {}", out.display());
    match &submitted {
        Some(submission) => crate::system::messages::say(format_args!(
            "{command}: submitted array job {} ({} task{}{}) and report job {} (after every task); follow with: \
             {follow} --wait",
            submission.array,
            submission.tasks.len(),
            if submission.tasks.len() == 1 { "" } else { "s" },
            options.jobs.map_or(String::new(), |j| format!(", at most {j} at a time")),
            submission.report
        )),
        None => crate::system::messages::say(format_args!(
            "{command}: every task is complete, queued or running already; nothing submitted"
        )),
    }
    // Nothing left to submit and no report job to wait for: the report is built here.
    if submitted.is_none() && !status::status(out)?.report.is_some_and(|r| r.active) {
        let tables = report::report(out, registry)?;
        return Ok(Outcome { tables: Some(tables), failed: Vec::new(), tasks });
    }
    if !wait {
        return Ok(Outcome { tables: None, failed: Vec::new(), tasks });
    }
    let ended = status::wait(out, quiet)?;
    let table = out.join(report::TABLE_MD);
    let tables = crate::system::files::read_text(&table).with_context(|| format!("reading {}", table.display()))?;
    let failed = ended
        .tasks
        .into_iter()
        .filter_map(|task| match task.state {
            status::TaskState::Failed { reason } => Some((task.name, reason)),
            _ => None,
        })
        .collect();
    Ok(Outcome { tables: Some(tables), failed, tasks })
}
