//! `sfess-agent sweep status DIR`: where each task stands, from its run folder first (what
//! a task wrote is the truth on every cluster) and from the scheduler second (waiting,
//! running, and why a task ended without writing anything); `--wait` follows it.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::folder::{FAILED, SweepRecord};
use super::slurm::{self, JobState, Submission};
use crate::run::{Record, SUMMARY};

/// Where one task stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum TaskState {
    /// Complete.
    Done,
    /// Failed; the reason is its `failed.txt` (or Slurm's).
    Failed {
        /// Why.
        reason: String,
    },
    /// Running, at this step (0 while it starts).
    Running {
        /// The last step it recorded.
        step: u64,
    },
    /// Waiting in the scheduler's queue.
    Pending {
        /// The scheduler's reason, and the step a requeued run stands at.
        reason: String,
    },
    /// Started and stopped (a signal, a kill, a cancel): a resubmission resumes it.
    Stopped {
        /// The step of its last record.
        step: u64,
        /// What the scheduler says, if anything.
        reason: String,
    },
    /// Never started.
    NotStarted,
}

impl TaskState {
    fn word(&self) -> &'static str {
        match self {
            TaskState::Done => "done",
            TaskState::Failed { .. } => "failed",
            TaskState::Running { .. } => "running",
            TaskState::Pending { .. } => "pending",
            TaskState::Stopped { .. } => "stopped",
            TaskState::NotStarted => "not started",
        }
    }
}

/// The sweep's tasks and their states.
#[derive(Debug, Clone, Serialize)]
pub struct SweepStatus {
    /// Every task, in the sweep's order.
    pub tasks: Vec<TaskStatus>,
    /// The latest report job and whether it has ended (Slurm sweeps).
    pub report: Option<ReportJob>,
}

/// One task's name and state (`{"name": ..., "state": "failed", "reason": ...}` as JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskStatus {
    /// The task's run folder inside the sweep's.
    pub name: String,
    /// Where it stands.
    #[serde(flatten)]
    pub state: TaskState,
}

/// The report job of the latest submission.
#[derive(Debug, Clone, Serialize)]
pub struct ReportJob {
    /// Its id.
    pub id: String,
    /// Its exit status, once it has written it.
    pub exit: Option<i32>,
    /// Whether Slurm still queues or runs it.
    pub active: bool,
}

/// The last step a run folder recorded (0 for none), from the end of its `metrics.jsonl`
/// alone: `--wait` asks every few seconds, and a 50,000-step log is megabytes.
fn last_step(dir: &Path) -> u64 {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 4096;
    let Ok(mut file) = std::fs::File::open(dir.join(crate::run::METRICS)) else { return 0 };
    let start = file.metadata().map_or(0, |m| m.len().saturating_sub(TAIL));
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return 0;
    }
    let tail = String::from_utf8_lossy(&bytes);
    // Whole lines only: the first may be cut by the seek, the last by a write in progress.
    tail.lines().filter_map(|l| serde_json::from_str::<Record>(l).ok()).map(|r| r.step).max().unwrap_or(0)
}

/// Whether a process on this machine holds the folder's lock. Read, not locked: a status
/// must never make a starting run fail.
fn held_here(dir: &Path) -> bool {
    crate::run::lock::holder_pid(dir).is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// The state of every task of the sweep in `out`.
///
/// # Errors
/// No sweep in `out`; the scheduler's commands fail (a Slurm sweep).
pub fn status(out: &Path) -> anyhow::Result<SweepStatus> {
    let record = SweepRecord::read(out)?;
    let submissions = slurm::submissions(out)?;
    let jobs: BTreeMap<String, JobState> =
        if submissions.is_empty() { BTreeMap::new() } else { slurm::job_states(&submissions)? };
    let scheduled = slurm::task_states(&submissions, &jobs);
    let submitted: HashSet<usize> = submissions.iter().flat_map(|s| s.tasks.iter().copied()).collect();
    let mut tasks = Vec::new();
    for (index, task) in record.tasks.iter().enumerate() {
        let dir = out.join(&task.name);
        let started = crate::run::run_file_in(&dir).is_some();
        let slurm = scheduled.get(&index).map(|(_, state)| state);
        // The folder's summary first; then what Slurm runs or queues now (a task submitted
        // again after a failure is pending, not failed); then the folder's failure; then
        // what Slurm remembers of how the task ended.
        let state = if dir.join(SUMMARY).exists() {
            TaskState::Done
        } else if let Some(job) = slurm.filter(|job| job.is_active()) {
            if job.state == "RUNNING" || job.state == "COMPLETING" {
                TaskState::Running { step: last_step(&dir) }
            } else {
                let at = if started { format!(", requeued at step {}", last_step(&dir)) } else { String::new() };
                TaskState::Pending { reason: format!("{} ({}){at}", job.state.to_lowercase(), job.reason) }
            }
        } else if let Ok(reason) = crate::system::files::read_text(&dir.join(FAILED)) {
            TaskState::Failed { reason: reason.trim().to_owned() }
        } else {
            match slurm {
                _ if held_here(&dir) => TaskState::Running { step: last_step(&dir) },
                Some(job) if job.state == "FAILED" || job.state == "OUT_OF_MEMORY" || job.state == "NODE_FAIL" => {
                    TaskState::Failed { reason: format!("Slurm: {} ({})", job.state, job.reason) }
                }
                Some(job) if started => {
                    TaskState::Stopped { step: last_step(&dir), reason: format!("Slurm: {}", job.state) }
                }
                Some(job) if job.state == "CANCELLED" => {
                    TaskState::Stopped { step: 0, reason: "Slurm: CANCELLED before it started".to_owned() }
                }
                Some(job) if job.state != "COMPLETED" => {
                    TaskState::Failed { reason: format!("Slurm: {} ({}) before it started", job.state, job.reason) }
                }
                _ if started => TaskState::Stopped { step: last_step(&dir), reason: String::new() },
                _ if submitted.contains(&index) => {
                    TaskState::Failed { reason: "it ended without starting (see its log in slurm/logs)".to_owned() }
                }
                _ => TaskState::NotStarted,
            }
        };
        tasks.push(TaskStatus { name: task.name.to_string(), state });
    }
    let report = submissions.last().filter(|s| !s.report.is_empty()).map(|s: &Submission| {
        let exit = crate::system::files::read_text(&slurm::report_exit_file(out, &s.report))
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok());
        ReportJob { id: s.report.clone(), exit, active: jobs.get(&s.report).is_some_and(JobState::is_active) }
    });
    Ok(SweepStatus { tasks, report })
}

impl SweepStatus {
    /// How many tasks are in each state: `4 done, 1 running, 1 failed`.
    pub fn counts(&self) -> String {
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for TaskStatus { state, .. } in &self.tasks {
            match counts.iter_mut().find(|(word, _)| *word == state.word()) {
                Some((_, n)) => *n += 1,
                None => counts.push((state.word(), 1)),
            }
        }
        counts.iter().map(|(word, n)| format!("{n} {word}")).collect::<Vec<_>>().join(", ")
    }

    /// Tasks that ended: done or failed.
    pub fn ended(&self) -> usize {
        self.tasks.iter().filter(|t| matches!(t.state, TaskState::Done | TaskState::Failed { .. })).count()
    }

    /// The status as text: the counts, then one line per task.
    pub fn text(&self) -> String {
        let width = self.tasks.iter().map(|t| t.name.len()).max().unwrap_or(0);
        let mut text = format!("{} tasks: {}\n", self.tasks.len(), self.counts());
        for TaskStatus { name, state } in &self.tasks {
            let detail = match state {
                TaskState::Done | TaskState::NotStarted => String::new(),
                TaskState::Failed { reason } => format!(": {reason}"),
                TaskState::Running { step } => format!(" at step {step}"),
                TaskState::Pending { reason } => format!(": {reason}"),
                TaskState::Stopped { step, reason } if reason.is_empty() => {
                    format!(" at step {step}; submit again to resume it")
                }
                TaskState::Stopped { step, reason } => format!(" at step {step} ({reason}); submit again to resume it"),
            };
            text += &format!("  {name:width$}  {}{detail}\n", state.word());
        }
        if let Some(report) = &self.report {
            text += &match (report.exit, report.active) {
                (Some(0), _) => format!("report: written by job {}\n", report.id),
                (Some(code), _) => {
                    format!("report: job {} failed with exit status {code} (see slurm/logs)\n", report.id)
                }
                (None, true) => format!("report: job {} waits for the tasks\n", report.id),
                (None, false) => format!("report: job {} ended without writing the report\n", report.id),
            };
        }
        text
    }
}

/// The pause between two looks at a followed sweep.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);

/// Follows the sweep in `out` with a progress bar until its latest report job has ended.
///
/// # Errors
/// The status cannot be read; the report job ended without writing the report, or failed.
pub fn wait(out: &Path, quiet: bool) -> anyhow::Result<SweepStatus> {
    let first = status(out)?;
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(first.tasks.len() as u64) };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} tasks ended  {elapsed}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut current = first;
    loop {
        bar.set_position(current.ended() as u64);
        bar.set_message(current.counts());
        match &current.report {
            None => break,
            Some(report) if report.exit.is_some() => break,
            Some(report) if !report.active => {
                // It may have written its status just after the look.
                std::thread::sleep(FOLLOW_EVERY);
                let again = status(out)?;
                if again.report.as_ref().is_some_and(|r| r.exit.is_some()) {
                    current = again;
                    break;
                }
                bar.abandon();
                anyhow::bail!(
                    "the report job {} of {} ended without writing the report (cancelled?): {}",
                    report.id,
                    out.display(),
                    again.counts()
                );
            }
            Some(_) => {}
        }
        if let Some(signal) = crate::system::signals::Interrupt::of_process().received() {
            bar.abandon();
            let where_ = format!(
                "while following {}; the jobs go on: follow again with sfess-agent sweep status {} --wait",
                out.display(),
                out.display()
            );
            return Err(crate::system::signals::Interrupted { signal, what: "sweep".into(), where_ }.into());
        }
        std::thread::sleep(FOLLOW_EVERY);
        current = status(out).with_context(|| format!("following {}", out.display()))?;
    }
    bar.finish_and_clear();
    if let Some(report) = &current.report
        && let Some(code) = report.exit
    {
        anyhow::ensure!(
            code == 0,
            "the report job {} failed with exit status {code} (see {}/slurm/logs)",
            report.id,
            out.display()
        );
    }
    Ok(current)
}
