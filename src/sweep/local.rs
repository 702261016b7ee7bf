//! `--scheduler local`: the tasks as child processes on this machine, `--jobs` at a time,
//! each with its share of the CPUs.
//!
//! A child is `sfess-agent --threads T sweep-task DIR NAME` in a process group of its
//! own, so that a Ctrl-C at the terminal reaches the pool alone; the pool forwards a
//! SIGINT or SIGTERM once to every running child (a second signal would stop a child at
//! once, without its checkpoint) and waits for them. A child whose parent dies gets
//! SIGTERM (see [`crate::cli`]).

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::folder::{FAILED, Prepared, is_complete};
use super::spec::Combination;
use crate::system::files::write_atomically;
use crate::system::signals::{Interrupt, Interrupted};

/// The environment variable that tells a child task the pid of the pool that started it.
pub const PARENT_ENV: &str = "SFESS_AGENT_COMPARE_PID";

/// The pause between two looks at a running child.
const POLL: Duration = Duration::from_millis(20);

/// How the pool runs.
#[derive(Debug, Clone)]
pub struct Pool {
    /// Runs at a time.
    pub jobs: usize,
    /// `--threads` of each run: its share of the CPUs.
    pub threads_per_run: usize,
    /// Set by SIGINT or SIGTERM: forwarded to the running children.
    pub interrupt: Interrupt,
    /// `compare` or `sweep`, for messages.
    pub command: &'static str,
}

/// How a task's child ended, short of a failure.
enum Outcome {
    /// Complete.
    Done,
    /// Stopped by the signal the pool forwarded (it wrote its checkpoint).
    Stopped,
}

/// Runs every task of the prepared sweep in `out` that is not complete.
///
/// # Errors
/// The binary cannot be found; a signal ([`Interrupted`], once the running children have
/// checkpointed and stopped). Failed tasks are not errors: they are in their folders.
pub fn run(out: &Path, prepared: &Prepared, pool: &Pool) -> anyhow::Result<()> {
    let exe = crate::system::binaries::command_binary().context("locating the sfess-agent binary")?;
    let queue: Vec<&Combination> = prepared.record.tasks.iter().filter(|t| !is_complete(out, t)).collect();
    let total = queue.len();
    crate::system::messages::say(format_args!(
        "{}: {} runs complete already, {total} to run, {} at a time with {} threads each",
        pool.command,
        prepared.record.tasks.len() - total,
        pool.jobs,
        pool.threads_per_run
    ));
    let queue = Arc::new(Mutex::new(queue.into_iter().rev().collect::<Vec<_>>()));
    let counts = Arc::new(Mutex::new((0usize, 0usize))); // (launched, finished)
    let started = Instant::now();
    std::thread::scope(|scope| {
        // No more workers than runs (`--jobs` may say anything).
        for _ in 0..pool.jobs.clamp(1, total.max(1)) {
            let (queue, counts, exe) = (Arc::clone(&queue), Arc::clone(&counts), exe.clone());
            scope.spawn(move || {
                loop {
                    if pool.interrupt.received().is_some() {
                        return;
                    }
                    let Some(task) = queue.lock().map(|mut q| q.pop()).ok().flatten() else { return };
                    counts.lock().unwrap_or_else(|e| e.into_inner()).0 += 1;
                    let outcome = run_child(&exe, out, task, pool);
                    let mut counts = counts.lock().unwrap_or_else(|e| e.into_inner());
                    counts.1 += 1;
                    let (launched, done) = *counts;
                    let (left, running) = (total - done, launched - done);
                    // With every worker busy, the remaining runs take about as long per run as the finished ones.
                    let eta = started.elapsed().as_secs_f64() / done as f64 * left as f64;
                    let status = match outcome {
                        Ok(Outcome::Done) => "done".to_owned(),
                        Ok(Outcome::Stopped) => "stopped by the signal (its checkpoint is kept)".to_owned(),
                        Err(e) => format!("failed: {e:#}"),
                    };
                    crate::system::messages::say(format_args!(
                        "{}: {} {status} | {done} finished, {running} running, {} waiting, ETA {eta:.0} s",
                        pool.command,
                        task.name,
                        left - running
                    ));
                }
            });
        }
    });
    if let Some(signal) = pool.interrupt.received() {
        let where_ = format!(
            "after its running runs checkpointed and stopped; rerun the same command to continue (complete runs \
             are kept, stopped ones resume): {}",
            out.display()
        );
        return Err(Interrupted { signal, what: pool.command.into(), where_ }.into());
    }
    Ok(())
}

/// Runs one task as a child process; its failure is in its folder's `failed.txt` (written
/// by the child, or here when the child was killed by a signal). A signal to the pool is
/// forwarded to the child, which checkpoints and stops.
fn run_child(exe: &Path, out: &Path, task: &Combination, pool: &Pool) -> anyhow::Result<Outcome> {
    let dir = out.join(&task.name);
    let mut command = Command::new(exe);
    command.arg("--threads").arg(pool.threads_per_run.to_string()).arg("sweep-task").arg(out).arg(&task.name);
    command.process_group(0).env(PARENT_ENV, std::process::id().to_string());
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting a child sfess-agent sweep-task")?;
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = std::io::Read::read_to_end(&mut pipe, &mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    });
    let mut forwarded = false;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for a child sfess-agent sweep-task")? {
            break status;
        }
        if let (false, Some(signal)) = (forwarded, pool.interrupt.received()) {
            // Not reaped yet, so the pid is still the child's.
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::try_from(signal).ok());
            forwarded = true;
        }
        std::thread::sleep(POLL);
    };
    let stderr = stderr.and_then(|reader| reader.join().ok()).unwrap_or_default();
    if status.success() {
        return Ok(Outcome::Done);
    }
    if forwarded && status.code().is_some_and(|code| code > 128) {
        return Ok(Outcome::Stopped);
    }
    let recorded = crate::system::files::read_text(&dir.join(FAILED)).ok().map(|t| t.trim().to_owned());
    let reason = match (recorded, status.signal()) {
        (_, Some(signal)) => {
            let reason = format!("killed by {} (signal {signal})", crate::system::signals::signal_name(signal));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            write_atomically(&dir.join(FAILED), format!("{reason}\n").as_bytes())?;
            reason
        }
        (Some(line), None) => line,
        (None, None) => match stderr.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(line) => line.trim_start_matches("error: ").to_owned(),
            None => format!("it exited with {status} and no message"),
        },
    };
    anyhow::bail!("{reason}")
}
