//! `--scheduler slurm`: the sweep's tasks as one Slurm array job, and its report as a job
//! that runs after every task (`afterany`).
//!
//! What it writes into `DIR/slurm/`:
//! - `tasks.txt`: line `i + 1` is the name of the task with array index `i` (the task's
//!   position in `sweep.json`, so indices stay the same across submissions);
//! - `task.sh`: the array job's script. It runs `sfess-agent sweep-task DIR NAME` in the
//!   background and passes on the signal Slurm sends before the time limit
//!   (`--signal=B:USR1@SECONDS`, to the script only). The run writes its checkpoint and
//!   exits 138 (128 + SIGUSR1), which the script turns into `scontrol requeue` of its own
//!   task: the requeued task resumes from the checkpoint. SIGTERM (a cancel, a
//!   preemption) reaches the run directly; it checkpoints and exits 143, and Slurm
//!   requeues a preempted task itself (`--requeue`);
//! - `report.sh`: `sfess-agent report DIR`, then its exit status in `report-JOBID.exit`;
//! - `submissions.jsonl`: one line per submission (array job, report job, task indices);
//! - `logs/`: each task's output across its attempts (`task-INDEX.out`) and the report's.
//!
//! The scripts hold the folder and the binary quoted, never in a comment ([`super::script`]);
//! `--output` and `--chdir` go on sbatch's command line, the folder's `%` escaped as `%%`
//! in the `--output` pattern. A folder that no script can hold (a control character, and
//! for the pattern a backslash) is refused before anything is written.
//!
//! It needs the Slurm client commands (`sbatch`, `squeue`, `scontrol`, `scancel`) on the
//! PATH and a folder that the compute nodes share. `sacct` is never used: many clusters
//! have no accounting; what a task did is in its run folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::folder::{Prepared, SweepRecord, is_complete};
use super::script::{self, ScriptError, shell_quote};
use crate::system::files::{read_or_empty, write_atomically};

pub use crate::system::names::sweep_folder::SLURM_DIR;
const TASKS: &str = "tasks.txt";
const TASK_SCRIPT: &str = "task.sh";
const REPORT_SCRIPT: &str = "report.sh";
const SUBMISSIONS: &str = "submissions.jsonl";
const LOGS: &str = "logs";

/// The exit status of a run stopped by SIGUSR1 (128 + 10), which the task script requeues.
pub const REQUEUE_STATUS: i32 = 138;

/// Seconds before its time limit at which a task is told to checkpoint, unless asked
/// otherwise: enough for a checkpoint of the paper's networks on a slow shared disk.
pub const DEFAULT_SIGNAL_BEFORE: u64 = 120;

/// The most seconds `--signal` takes before a time limit (sbatch's `sig_time`: 0 to 65535).
pub const MAX_SIGNAL_BEFORE: u64 = 65_535;

/// `--time` in seconds (sbatch's forms: `MINUTES`, `MINUTES:SECONDS`, `HOURS:MINUTES:SECONDS`,
/// `DAYS-HOURS`, `DAYS-HOURS:MINUTES`, `DAYS-HOURS:MINUTES:SECONDS`); `None` for no limit
/// (`0`, `UNLIMITED`, `INFINITE`) and for text of another form, which sbatch judges.
pub fn time_limit_seconds(time: &str) -> Option<u64> {
    let time = time.trim();
    let (days, rest) = match time.split_once('-') {
        Some((days, rest)) => (u64::from(days.parse::<u32>().ok()?), rest),
        None => (0, time),
    };
    // u32 parts: no sum of them in seconds overflows.
    let parts: Vec<u64> = rest.split(':').map(|p| p.parse::<u32>().ok().map(u64::from)).collect::<Option<_>>()?;
    let (hours, minutes, seconds) = match (time.contains('-'), parts.as_slice()) {
        (false, [m]) => (0, *m, 0),
        (false, [m, s]) => (0, *m, *s),
        (false, [h, m, s]) | (true, [h, m, s]) => (*h, *m, *s),
        (true, [h]) => (*h, 0, 0),
        (true, [h, m]) => (*h, *m, 0),
        _ => return None,
    };
    let total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds;
    (total > 0).then_some(total)
}

/// What the user asks of Slurm.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlurmOptions {
    /// Tasks running at a time (`%J` of `--array`); none: as many as Slurm allows.
    pub jobs: Option<usize>,
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time` of each task (and of the report job).
    pub time: Option<String>,
    /// `--cpus-per-task`.
    pub cpus_per_task: Option<usize>,
    /// `--mem` of each task.
    pub mem: Option<String>,
    /// `--gpus` of each task.
    pub gpus: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--qos`.
    pub qos: Option<String>,
    /// Any other sbatch arguments, verbatim, for the tasks and the report job.
    pub sbatch_args: Vec<String>,
    /// Seconds before the time limit at which a task is told to checkpoint and requeue.
    pub signal_before: u64,
}

/// One submission: the array job, the report job, the task indices it covers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Submission {
    /// The array job's id.
    pub array: String,
    /// The report job's id.
    pub report: String,
    /// The array indices submitted.
    pub tasks: Vec<usize>,
    /// Unix time of the submission.
    pub submitted: u64,
}

/// What Slurm says of one job or array task.
#[derive(Debug, Clone, PartialEq)]
pub struct JobState {
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`, `TIMEOUT`, ...
    pub state: String,
    /// Slurm's reason (`JobArrayTaskLimit`, `NonZeroExitCode`, `None`).
    pub reason: String,
}

impl JobState {
    /// Whether the job may still run (waiting, running, being requeued).
    pub fn is_active(&self) -> bool {
        matches!(
            self.state.as_str(),
            "PENDING"
                | "RUNNING"
                | "REQUEUED"
                | "REQUEUE_HOLD"
                | "REQUEUE_FED"
                | "CONFIGURING"
                | "COMPLETING"
                | "SUSPENDED"
                | "RESIZING"
                | "SIGNALING"
                | "STAGE_OUT"
                | "STOPPED"
                | "RESV_DEL_HOLD"
        )
    }
}

/// A Slurm client command, found on the PATH.
///
/// # Errors
/// It is not on the PATH.
fn client(program: &str) -> anyhow::Result<Command> {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file()))
        .unwrap_or_default();
    let Some(path) = found else {
        anyhow::bail!(
            "--scheduler slurm needs Slurm's client commands on the PATH, and {program} is not there (install \
             slurm-client, or load the cluster's Slurm module)"
        );
    };
    Ok(Command::new(path))
}

/// Runs a Slurm client command; its standard output.
///
/// # Errors
/// It cannot start, or fails (its message on one line).
fn output(mut command: Command, what: &str) -> anyhow::Result<String> {
    let output = command.output().with_context(|| format!("starting {what}"))?;
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stderr);
        let message = crate::system::messages::one_line(message.trim());
        anyhow::bail!("{what} failed ({}): {message}", output.status);
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Checks that a controller answers: `scontrol ping`, which answers in milliseconds
/// (`sbatch` takes 9 s to give up on a controller that is down, and a `SLURM_CONF` naming
/// a missing file makes the clients retry for a minute, so that is checked first).
///
/// # Errors
/// No `scontrol` on the PATH, a `SLURM_CONF` that names no file, or no controller answers.
pub fn check_controller() -> anyhow::Result<()> {
    if let Some(conf) = std::env::var_os("SLURM_CONF")
        && !Path::new(&conf).is_file()
    {
        anyhow::bail!(
            "SLURM_CONF names {}, which is not a file: no Slurm configuration to use",
            Path::new(&conf).display()
        );
    }
    let mut ping = client("scontrol")?;
    ping.arg("ping");
    let answer = ping.output().context("starting scontrol ping")?;
    // It prints `Slurmctld(primary) at HOST is UP` (or `is DOWN`, with exit status 1).
    let said = String::from_utf8_lossy(&answer.stdout);
    let first = said.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned();
    if answer.status.success() && !first.contains("DOWN") {
        return Ok(());
    }
    let error = crate::system::messages::one_line(String::from_utf8_lossy(&answer.stderr).trim());
    let why = [first, error].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join("; ");
    anyhow::bail!("no Slurm controller answers (scontrol ping: {why})")
}

/// The cluster's `MaxArraySize` (array indices go from 0 to one less), if it says.
///
/// # Errors
/// `scontrol` is missing or fails.
fn max_array_size() -> anyhow::Result<Option<usize>> {
    let mut show = client("scontrol")?;
    show.args(["show", "config"]);
    Ok(parse_max_array_size(&output(show, "scontrol show config")?))
}

/// `MaxArraySize = 1001` in `scontrol show config`'s text.
fn parse_max_array_size(config: &str) -> Option<usize> {
    config.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "MaxArraySize").then(|| value.trim().parse().ok()).flatten()
    })
}

fn slurm_dir(out: &Path) -> PathBuf {
    out.join(SLURM_DIR)
}

/// The submissions recorded in the sweep folder.
///
/// # Errors
/// The file cannot be read, or a line is not a submission.
pub fn submissions(out: &Path) -> anyhow::Result<Vec<Submission>> {
    let path = slurm_dir(out).join(SUBMISSIONS);
    let text = read_or_empty(&path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).with_context(|| format!("{} holds a line that is not a submission", path.display()))
        })
        .collect()
}

/// What Slurm knows of the jobs of `submissions`: array tasks by `(array id, index)`,
/// and whole jobs (the report) by id. Jobs the controller forgot are absent.
///
/// # Errors
/// `squeue` is missing or fails.
pub fn job_states(submissions: &[Submission]) -> anyhow::Result<BTreeMap<String, JobState>> {
    if submissions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut squeue = client("squeue")?;
    // Every state the controller still remembers, array tasks one per line.
    squeue.args(["--noheader", "--array", "--states=all", "--me", "--format=%i|%T|%r"]);
    let text = output(squeue, "squeue")?;
    let wanted: Vec<&str> = submissions.iter().flat_map(|s| [s.array.as_str(), s.report.as_str()]).collect();
    let mut states = BTreeMap::new();
    for line in text.lines() {
        let mut fields = line.trim().splitn(3, '|');
        let (Some(id), Some(state), Some(reason)) = (fields.next(), fields.next(), fields.next()) else { continue };
        let (job, indices) = match id.split_once('_') {
            Some((job, indices)) => (job, Some(indices)),
            None => (id, None),
        };
        if !wanted.contains(&job) {
            continue;
        }
        let value = JobState { state: state.trim_end_matches('+').to_owned(), reason: reason.to_owned() };
        match indices {
            None => {
                states.insert(job.to_owned(), value);
            }
            // A pending array prints its waiting indices together: `12_[3-5,7%2]`.
            Some(indices) => {
                for index in expand_indices(indices) {
                    states.insert(format!("{job}_{index}"), value.clone());
                }
            }
        }
    }
    Ok(states)
}

/// `3`, `[3-5,7%2]` as indices.
fn expand_indices(text: &str) -> Vec<usize> {
    let text = text.trim_start_matches('[').trim_end_matches(']');
    let text = text.split('%').next().unwrap_or("");
    let mut indices = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((from, to)) => {
                if let (Ok(from), Ok(to)) = (from.parse::<usize>(), to.parse::<usize>()) {
                    indices.extend(from..=to);
                }
            }
            None => indices.extend(part.parse::<usize>().ok()),
        }
    }
    indices
}

/// `0-3,5,7-8`: indices as sbatch's `--array` list.
fn index_list(indices: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        while i + 1 < indices.len() && indices[i + 1] == indices[i] + 1 {
            i += 1;
        }
        parts.push(if indices[i] == start { start.to_string() } else { format!("{start}-{}", indices[i]) });
        i += 1;
    }
    parts.join(",")
}

/// The latest Slurm state of each task index: the last submission that covered it.
pub fn task_states(
    submissions: &[Submission],
    states: &BTreeMap<String, JobState>,
) -> BTreeMap<usize, (String, JobState)> {
    let mut latest = BTreeMap::new();
    for submission in submissions {
        for &index in &submission.tasks {
            let id = format!("{}_{index}", submission.array);
            if let Some(state) = states.get(&id) {
                latest.insert(index, (id, state.clone()));
            } else {
                latest.remove(&index);
            }
        }
    }
    latest
}

/// The array job's script, for this binary `exe` and the sweep folder `dir` (absolute).
/// Every value it holds is quoted ([`script::shell_quote`]) and none is in a comment.
fn task_script(exe: &str, dir: &str, signal_before: u64) -> Result<String, ScriptError> {
    let (exe, dir) = (shell_quote("the sfess-agent binary", exe)?, shell_quote("the sweep folder", dir)?);
    Ok(format!(
        r#"#!/bin/bash
# One task of an sfess-agent sweep (its folder: dir below); written by sfess-agent, rewritten at each submission.
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:USR1@{signal_before}
set -u
dir={dir}
name=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$dir/slurm/tasks.txt")
if [ -z "$name" ]; then
    echo "sfess-agent: no task $SLURM_ARRAY_TASK_ID in $dir/slurm/tasks.txt" >&2
    exit 2
fi
echo "sfess-agent: task $SLURM_ARRAY_TASK_ID ($name), job ${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}, attempt $(( ${{SLURM_RESTART_COUNT:-0}} + 1 )), on $(hostname) at $(date -Iseconds)"
{exe} sweep-task "$dir" "$name" &
run=$!
# Slurm's signal before the time limit comes to this script alone (--signal=B:): pass it on,
# and the run writes its checkpoint and exits {REQUEUE_STATUS}.
trap 'kill -USR1 "$run" 2>/dev/null' USR1
# SIGTERM (scancel, preemption) reaches the run itself, which checkpoints; only wait for it.
trap ':' TERM
status=
while [ -z "$status" ]; do
    wait "$run"
    code=$?
    kill -0 "$run" 2>/dev/null || status=$code
done
if [ "$status" -eq {REQUEUE_STATUS} ]; then
    echo "sfess-agent: $name stopped before the time limit with its checkpoint; requeued at $(date -Iseconds)"
    scontrol requeue "${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
    exit 0
fi
# Killed outright (SIGKILL, out of memory): the run could not say so itself.
if [ "$status" -gt 128 ] && [ "$status" -ne 130 ] && [ "$status" -ne 143 ] && [ ! -e "$dir/$name/failed.txt" ]; then
    echo "killed by signal $((status - 128))" > "$dir/$name/failed.txt.partial" && mv "$dir/$name/failed.txt.partial" "$dir/$name/failed.txt"
fi
exit "$status"
"#
    ))
}

/// The report job's script (as [`task_script`]).
fn report_script(exe: &str, dir: &str) -> Result<String, ScriptError> {
    let (exe, dir) = (shell_quote("the sfess-agent binary", exe)?, shell_quote("the sweep folder", dir)?);
    Ok(format!(
        r#"#!/bin/bash
# The report of an sfess-agent sweep (its folder: dir below), after every task; written by sfess-agent.
#SBATCH --open-mode=append
set -u
dir={dir}
{exe} report "$dir" > /dev/null
status=$?
echo "$status" > "$dir/slurm/report-$SLURM_JOB_ID.exit.partial" && mv "$dir/slurm/report-$SLURM_JOB_ID.exit.partial" "$dir/slurm/report-$SLURM_JOB_ID.exit"
exit "$status"
"#
    ))
}

/// What the scripts and sbatch's options hold of the sweep folder and this binary, checked.
struct ScriptPaths {
    /// The sweep folder, absolute.
    out: PathBuf,
    /// Its text.
    dir: String,
    /// The folder of the logs as the start of a Slurm file name pattern.
    logs_pattern: String,
    /// This binary.
    exe: String,
}

impl ScriptPaths {
    /// The paths of a Slurm sweep in `out`.
    ///
    /// # Errors
    /// The current folder or this binary cannot be found; a path that a script cannot
    /// hold ([`ScriptError`]).
    fn of(out: &Path) -> anyhow::Result<Self> {
        let out = std::path::absolute(out).context("reading the current folder")?;
        let exe = crate::system::binaries::command_binary().context("locating the sfess-agent binary")?;
        let what = "the sweep folder";
        let dir = script::checked_path(what, &out)?.to_owned();
        let logs_pattern = format!("{}/{SLURM_DIR}/{LOGS}", script::slurm_filename_pattern(what, &out)?);
        let exe = script::checked_path("the sfess-agent binary", &exe)?.to_owned();
        Ok(Self { out, dir, logs_pattern, exe })
    }
}

/// Checks that a Slurm sweep can be written in `out` (before its folder is made): the
/// scripts must hold its path, and sbatch's file name patterns too.
///
/// # Errors
/// As [`ScriptPaths::of`].
pub fn check_folder(out: &Path) -> anyhow::Result<()> {
    ScriptPaths::of(out).map(drop)
}

/// Where the report job `id` writes its exit status.
pub fn report_exit_file(out: &Path, id: &str) -> PathBuf {
    slurm_dir(out).join(format!("report-{id}.exit"))
}

/// Submits every task of the prepared sweep that is neither complete nor queued or
/// running already, as one array job, and the report after it; `None` when there is
/// nothing to submit. The folder's lock is held throughout, so that two submissions
/// cannot race.
///
/// # Errors
/// No Slurm client commands on the PATH, no controller answering, a submission refused
/// (with sbatch's message), files that cannot be written.
pub fn submit(out: &Path, prepared: &Prepared, options: &SlurmOptions) -> anyhow::Result<Option<Submission>> {
    client("sbatch")?;
    check_controller()?;
    let count = prepared.record.tasks.len();
    if let Some(max) = max_array_size()? {
        anyhow::ensure!(
            count <= max,
            "the sweep has {count} tasks and this cluster's arrays hold at most {max} (MaxArraySize): split the \
             grid into several sweep files"
        );
    }
    let ScriptPaths { out, dir: folder, logs_pattern, exe } = ScriptPaths::of(out)?;
    let dir = slurm_dir(&out);
    std::fs::create_dir_all(dir.join(LOGS)).with_context(|| format!("creating {}", dir.join(LOGS).display()))?;
    let earlier = submissions(&out)?;
    let active = task_states(&earlier, &job_states(&earlier)?);
    let tasks: Vec<usize> = prepared
        .record
        .tasks
        .iter()
        .enumerate()
        .filter(|(index, task)| {
            !is_complete(&out, task) && !active.get(index).is_some_and(|(_, state)| state.is_active())
        })
        .map(|(index, _)| index)
        .collect();
    if tasks.is_empty() {
        return Ok(None);
    }
    // One name a line, read back by the task script: a name must not hold a newline.
    let mut names = String::new();
    for task in &prepared.record.tasks {
        names += script::checked("the task name", &task.name)?;
        names.push('\n');
    }
    write_atomically(&dir.join(TASKS), names.as_bytes())?;
    write_atomically(&dir.join(TASK_SCRIPT), task_script(&exe, &folder, options.signal_before)?.as_bytes())?;
    write_atomically(&dir.join(REPORT_SCRIPT), report_script(&exe, &folder)?.as_bytes())?;
    let name = format!("sfess-{}", out.file_name().map_or("sweep".into(), |n| n.to_string_lossy()));
    let throttle = options.jobs.map_or(String::new(), |jobs| format!("%{jobs}"));
    let mut shared = Vec::new();
    for (flag, value) in [
        ("--partition", &options.partition),
        ("--account", &options.account),
        ("--qos", &options.qos),
        ("--time", &options.time),
    ] {
        if let Some(value) = value {
            shared.push(format!("{flag}={value}"));
        }
    }
    let mut array = client("sbatch")?;
    array
        .arg("--parsable")
        .arg(format!("--array={}{throttle}", index_list(&tasks)))
        .arg(format!("--job-name={name}"))
        .arg(format!("--output={logs_pattern}/task-%a.out"))
        .arg(format!("--chdir={folder}"))
        .args(&shared);
    for (flag, value) in [
        ("--cpus-per-task", options.cpus_per_task.map(|c| c.to_string())),
        ("--mem", options.mem.clone()),
        ("--gpus", options.gpus.clone()),
    ] {
        if let Some(value) = value {
            array.arg(format!("{flag}={value}"));
        }
    }
    array.args(&options.sbatch_args).arg(dir.join(TASK_SCRIPT));
    let array_id = job_id(&output(array, "sbatch (the array job)")?)?;
    let mut report = client("sbatch")?;
    report
        .arg("--parsable")
        .arg(format!("--dependency=afterany:{array_id}"))
        .arg(format!("--job-name={name}-report"))
        .arg(format!("--output={logs_pattern}/report-%j.out"))
        .arg(format!("--chdir={folder}"))
        .args(&shared)
        .args(&options.sbatch_args)
        .arg(dir.join(REPORT_SCRIPT));
    let report_id = match output(report, "sbatch (the report job)").and_then(|text| job_id(&text)) {
        Ok(id) => id,
        Err(error) => {
            // Without its report the array would still run; say so rather than leave it unrecorded.
            let submission =
                Submission { array: array_id.clone(), report: String::new(), tasks: tasks.clone(), submitted: now() };
            record(&out, &submission)?;
            return Err(error.context(format!(
                "the array job {array_id} was submitted; build the report with sfess-agent report {} once it ends",
                out.display()
            )));
        }
    };
    let submission = Submission { array: array_id, report: report_id, tasks, submitted: now() };
    record(&out, &submission)?;
    Ok(Some(submission))
}

/// Appends the submission to `submissions.jsonl` (one whole line, rewritten atomically).
fn record(out: &Path, submission: &Submission) -> anyhow::Result<()> {
    let path = slurm_dir(out).join(SUBMISSIONS);
    let mut text = read_or_empty(&path)?;
    text += &(serde_json::to_string(submission)? + "\n");
    write_atomically(&path, text.as_bytes())
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The job id `sbatch --parsable` prints (`123` or `123;cluster`).
fn job_id(text: &str) -> anyhow::Result<String> {
    let id = text.trim().split(';').next().unwrap_or("").to_owned();
    anyhow::ensure!(!id.is_empty() && id.chars().all(|c| c.is_ascii_digit()), "sbatch printed no job id: {text:?}");
    Ok(id)
}

/// Cancels every job of the sweep's submissions that Slurm still runs or queues; the
/// ids cancelled.
///
/// # Errors
/// `out` holds no sweep (or does not exist); no Slurm client commands, or `scancel` fails.
pub fn cancel(out: &Path) -> anyhow::Result<Vec<String>> {
    SweepRecord::read(out)?;
    let submissions = submissions(out)?;
    let states = job_states(&submissions)?;
    let mut ids = Vec::new();
    for submission in &submissions {
        let array_active =
            states.iter().any(|(id, s)| id.starts_with(&format!("{}_", submission.array)) && s.is_active());
        if array_active {
            ids.push(submission.array.clone());
        }
        if states.get(&submission.report).is_some_and(JobState::is_active) {
            ids.push(submission.report.clone());
        }
    }
    if !ids.is_empty() {
        let mut scancel = client("scancel")?;
        scancel.args(&ids);
        output(scancel, "scancel")?;
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_lists_round_trip() {
        assert_eq!(index_list(&[0, 1, 2, 3, 5, 7, 8]), "0-3,5,7-8");
        assert_eq!(index_list(&[4]), "4");
        assert_eq!(expand_indices("[0-3,5,7-8%2]"), [0, 1, 2, 3, 5, 7, 8]);
        assert_eq!(expand_indices("12"), [12]);
    }

    #[test]
    fn the_array_limit_is_read_from_the_configuration() {
        let config = "JobRequeue              = 1\nMaxArraySize            = 1001\nMaxJobCount = 10000\n";
        assert_eq!(parse_max_array_size(config), Some(1001));
        assert_eq!(parse_max_array_size("MaxJobCount = 10000\n"), None);
    }

    #[test]
    fn parsable_job_ids() {
        assert_eq!(job_id("123\n").unwrap(), "123");
        assert_eq!(job_id("123;cluster\n").unwrap(), "123");
        assert!(job_id("Submitted batch job 1").is_err());
    }

    #[test]
    fn time_limits_in_sbatch_forms() {
        for (time, seconds) in [
            ("90", Some(5400)),
            ("2:30", Some(150)),
            ("1:00:00", Some(3600)),
            ("1-2", Some(93_600)),
            ("1-0:1", Some(86_460)),
            ("0-0:0:30", Some(30)),
            ("0", None),
            ("UNLIMITED", None),
            ("1:2:3:4", None),
            ("99999999999", None),
        ] {
            assert_eq!(time_limit_seconds(time), seconds, "{time}");
        }
    }

    #[test]
    fn a_missing_client_is_named() {
        let error = format!("{:#}", client("sbatch-that-is-not-there").unwrap_err());
        assert!(error.contains("sbatch-that-is-not-there is not there"), "{error}");
    }
}
