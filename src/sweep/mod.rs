//! Sweeps: a grid of ordinary run folders in one folder, run by a scheduler, reported
//! together.
//!
//! - [`spec`]: the sweep file and its expansion into checked configurations.
//! - The sweep folder `DIR` holds `sweep.json` (every task: its folder name, grid values
//!   and configuration; a later request on the folder may add tasks, never change one),
//!   one run folder per task (`DIR/NAME`, as `train` writes it, plus `failed.txt` when the
//!   task failed), and the report (see [`crate::commands::report`]).
//! - A task is run by `sfess-agent sweep-task DIR NAME` (a hidden subcommand, [`run_task`]):
//!   it starts the run or resumes it from its checkpoint, and records a failure in the
//!   run folder. [`local`] runs tasks as child processes, a pool of `--jobs`; [`slurm`]
//!   submits them as one array job, with scripts that hold every value by [`script`]'s rule.
//! - [`status`] reads the run folders first and the scheduler second.

pub mod local;
pub mod script;
pub mod slurm;
pub mod spec;
pub mod status;

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sfess_envs::registry::Registry;

use crate::config::changed_flags;
use crate::run::files::write_atomically;
use crate::run::lock::{FolderLock, LockError};
use crate::run::signals::Interrupted;
use crate::run::{RunOptions, Summary};
use spec::Combination;

/// The sweep's record in its folder.
pub const RECORD: &str = "sweep.json";
/// A task's failure, in its run folder.
pub const FAILED: &str = "failed.txt";

/// `sweep.json`: what the folder's tasks are.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SweepRecord {
    /// The sweep file's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Every task, in the order of its first request.
    pub tasks: Vec<Combination>,
}

impl SweepRecord {
    /// The record of the sweep in `dir`.
    ///
    /// # Errors
    /// No sweep in `dir`, or a record that does not parse.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(RECORD);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{} holds no sweep (no {RECORD})", dir.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a sweep record", path.display()))
    }

    /// The task named `name`.
    ///
    /// # Errors
    /// No such task.
    pub fn task(&self, name: &str) -> anyhow::Result<&Combination> {
        self.tasks.iter().find(|t| t.name == name).with_context(|| format!("the sweep has no task {name:?}"))
    }
}

/// What one request asks of a sweep folder.
#[derive(Debug, Clone)]
pub struct Request {
    /// The sweep folder.
    pub out: PathBuf,
    /// What the sweep is.
    pub description: Option<String>,
    /// Its combinations, checked.
    pub tasks: Vec<Combination>,
    /// Who asks (`compare` or `sweep`), for messages.
    pub command: &'static str,
}

/// A sweep folder, locked by this process, with its record merged with the request.
pub struct Prepared {
    /// Held while this process writes the folder's record or runs its tasks.
    pub lock: FolderLock,
    /// The folder's tasks (the request's and any earlier ones).
    pub record: SweepRecord,
}

/// Creates and locks the sweep folder, refuses a request that changes a task already
/// recorded or a run folder trained with other settings, and writes the merged record.
///
/// # Errors
/// The folder is locked by another process, cannot be written, or holds tasks or runs
/// with other settings (each named, with the settings that differ).
pub fn prepare(request: &Request, registry: &Registry) -> anyhow::Result<Prepared> {
    let out = &request.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let holder = std::env::args().collect::<Vec<_>>().join(" ");
    let lock = FolderLock::acquire(out, &holder)?;
    let mut record = match SweepRecord::read(out) {
        Ok(record) => record,
        Err(_) if !out.join(RECORD).exists() => SweepRecord::default(),
        Err(error) => return Err(error),
    };
    let mut differing = Vec::new();
    for task in &request.tasks {
        if let Some(recorded) = record.tasks.iter().find(|t| t.name == task.name) {
            if let Some(changed) = changed_flags(&recorded.config, &task.config, "it") {
                differing.push(format!("{} ({changed})", task.name));
            }
            continue;
        }
        // A run folder of that name, trained outside this sweep.
        let dir = out.join(&task.name);
        if crate::run::run_file_in(&dir).is_some() {
            let trained = crate::run::read_config(&dir, registry)
                .and_then(|c| c.with_absolute_paths(registry)?.resolved(registry))
                .with_context(|| format!("{} holds a run that cannot be read", dir.display()))?;
            if let Some(changed) = changed_flags(&trained, &task.config, "it") {
                differing.push(format!("{} ({changed})", dir.display()));
            }
        }
    }
    anyhow::ensure!(
        differing.is_empty(),
        "{} holds a {} made with other settings: its runs {}; repeat that request to continue it, or choose \
         another --out",
        out.display(),
        request.command,
        differing.join("; ")
    );
    for task in &request.tasks {
        if !record.tasks.iter().any(|t| t.name == task.name) {
            record.tasks.push(task.clone());
        }
    }
    if record.description.is_none() {
        record.description.clone_from(&request.description);
    }
    write_atomically(&out.join(RECORD), (serde_json::to_string_pretty(&record)? + "\n").as_bytes())?;
    Ok(Prepared { lock, record })
}

/// Whether the task's run is complete: its summary is there.
pub fn is_complete(out: &Path, task: &Combination) -> bool {
    out.join(&task.name).join(crate::run::SUMMARY).exists()
}

/// `sfess-agent sweep-task DIR NAME`: trains the task `name` of the sweep in `out` into
/// `DIR/NAME`, or resumes it from its checkpoint; a complete run is left as it is. A
/// failure (not a signal, not a folder in use by another process) is written to the run
/// folder's `failed.txt` as one line.
///
/// # Errors
/// As [`crate::run::train`] and [`crate::run::resume`].
pub fn run_task(out: &Path, name: &str, options: &RunOptions) -> anyhow::Result<Summary> {
    let record = SweepRecord::read(out)?;
    let task = record.task(name)?;
    let dir = out.join(&task.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    crate::run::files::remove_if_there(&dir.join(FAILED))?;
    let result = if crate::run::run_file_in(&dir).is_some() {
        crate::run::resume(&dir, Some(task.config.steps), options)
    } else {
        crate::run::train(&task.config, &dir, options)
    };
    if let Err(error) = &result {
        let stopped = error.downcast_ref::<Interrupted>().is_some();
        let in_use = error.chain().any(|c| matches!(c.downcast_ref::<LockError>(), Some(LockError::Held { .. })));
        if !stopped && !in_use {
            let line = crate::system::messages::one_line(&format!("{error:#}"));
            write_atomically(&dir.join(FAILED), format!("{line}\n").as_bytes())?;
        }
    }
    result
}

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

/// Runs `request` with `scheduler`: prepares the folder, then runs the tasks here or
/// submits them; the report's tables once the sweep has ended here (always locally;
/// on Slurm with `wait`, or when nothing was left to submit).
///
/// # Errors
/// As [`prepare`], [`local::run`], [`slurm::submit`], [`status::wait`] and the report.
pub fn execute(request: &Request, scheduler: &Scheduler, registry: &Registry) -> anyhow::Result<Option<String>> {
    let out = &request.out;
    if let Scheduler::Slurm { .. } = scheduler {
        // Before the folder is made: its path must fit the scripts and sbatch's options.
        slurm::check_folder(out)?;
    }
    let prepared = prepare(request, registry)?;
    let (options, wait, quiet) = match scheduler {
        Scheduler::Local(pool) => {
            local::run(out, &prepared, pool)?;
            return crate::commands::report::report(out, registry).map(Some);
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
        return crate::commands::report::report(out, registry).map(Some);
    }
    if !wait {
        return Ok(None);
    }
    status::wait(out, quiet)?;
    let table = out.join("table.md");
    std::fs::read_to_string(&table).with_context(|| format!("reading {}", table.display())).map(Some)
}
