//! The reward command's process: how `cmd` and `cmd-episodes` start it (`sh -c`, in its
//! own process group), send it request lines and wait for each answer line (with a timeout,
//! a bound on the line's length and the caller's stop flag), and stop it (see
//! [Shutdown](crate::external#shutdown)). What the lines say is [`super::protocol`]'s.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;

use crate::env::EnvError;
use crate::text::{printable, quote, truncate};

/// The longest answer line, in bytes (without its end of line): 16 MiB. A command that
/// writes more to stdout without ending the line fails, and the rest is never read.
pub const MAX_ANSWER_BYTES: usize = 16 << 20;
/// Bytes read from the command's stdout or stderr at a time.
const CHUNK: usize = 64 << 10;
/// Lines of the command's stderr kept for error messages.
const STDERR_LINES: usize = 20;
/// Characters kept of each stderr line (the rest of the line is read and dropped).
const STDERR_LINE_CHARS: usize = 300;
/// How often a wait for an answer checks the interrupt flag.
const INTERRUPT_POLL: Duration = Duration::from_millis(20);
/// How long a command may take to exit after its stdin closes, before it is killed.
const GRACE: Duration = Duration::from_secs(1);
/// How long to wait, after the kill, for the stderr reader to reach the end of the pipe.
const STDERR_DRAIN: Duration = Duration::from_millis(500);
/// Pause between two polls of the child's state.
const POLL: Duration = Duration::from_millis(5);

/// How to run the reward command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewardCommand {
    /// The command line, run by `sh -c`.
    pub command: String,
    /// The folder the command runs in (a relative one is relative to the caller's current
    /// folder); `None` for the caller's current folder.
    pub working_dir: Option<PathBuf>,
    /// How long the command may take to answer each request; one too long to be added to
    /// the current time (such as [`Duration::MAX`]) means no limit.
    pub timeout: Duration,
}

impl RewardCommand {
    /// The command of a registry entry's options `command`, `dir` and `timeout` (seconds).
    ///
    /// # Errors
    /// A missing option; a timeout that is not a duration.
    pub(crate) fn from_options(make: &crate::registry::Make<'_>) -> Result<Self, EnvError> {
        let options = make.options;
        let seconds = options.number("timeout")?;
        let timeout =
            Duration::try_from_secs_f64(seconds).map_err(|e| make.error(format!("timeout {seconds}: {e}")))?;
        Ok(Self {
            command: options.text("command")?.to_owned(),
            working_dir: Some(PathBuf::from(options.text("dir")?)),
            timeout,
        })
    }

    /// `command` with `timeout`, run in the caller's current folder.
    pub fn new(command: impl Into<String>, timeout: Duration) -> Self {
        Self { command: command.into(), working_dir: None, timeout }
    }
}

/// A running command and the request lines sent to it: the process machinery that `cmd`
/// and `cmd-episodes` ([`crate::external_episodes`]) share. Each request is one line of JSON
/// (`{"line":N,` and the caller's fields), each answer one line, parsed by the caller; any
/// failure kills the command's process group, and every later request fails. Dropping it
/// shuts the command down (see [Shutdown](crate::external#shutdown)).
#[derive(Debug)]
pub(crate) struct CommandLink {
    command: String,
    timeout: Duration,
    /// The caller's stop flag, checked while waiting for an answer.
    interrupt: Option<Arc<AtomicBool>>,
    child_id: u32,
    /// The running command; `None` once it has been shut down.
    process: Option<Process>,
    /// Request lines sent so far.
    line: u64,
    /// Why the link is dead, once it is.
    failure: Option<String>,
}

impl CommandLink {
    /// Checks the command, its folder and its timeout, and starts it (run by `sh -c`, in
    /// its own process group, in its working folder if given).
    ///
    /// # Errors
    /// [`EnvError::Config`] of the environment `env` for an empty command, a zero timeout
    /// or a working folder that is not a folder; [`EnvError::RewardProcess`] when `sh`
    /// cannot be started.
    pub(crate) fn start(
        RewardCommand { command, working_dir, timeout }: RewardCommand,
        env: &str,
    ) -> Result<Self, EnvError> {
        let config = |problem: String| EnvError::Config { env: env.to_owned(), problem };
        if command.trim().is_empty() {
            return Err(config("the reward command is empty".to_owned()));
        }
        if timeout.is_zero() {
            return Err(config("the reward command's timeout must be positive".to_owned()));
        }
        if let Some(dir) = &working_dir {
            match std::fs::metadata(dir) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => return Err(config(format!("the reward command's folder {} is not a folder", dir.display()))),
                Err(e) => {
                    return Err(config(format!("cannot use {} as the reward command's folder: {e}", dir.display())));
                }
            }
        }
        let process = Process::start(&command, working_dir.as_deref()).map_err(|problem| EnvError::RewardProcess {
            command: command.clone(),
            line: 0,
            problem,
        })?;
        Ok(Self {
            command,
            timeout,
            interrupt: None,
            child_id: process.child.id(),
            process: Some(process),
            line: 0,
            failure: None,
        })
    }

    /// The child's process id (the `sh` that runs the command; also its process group id).
    pub(crate) fn child_id(&self) -> u32 {
        self.child_id
    }

    /// Makes every later wait for an answer check `flag`; replaces any earlier flag.
    pub(crate) fn set_interrupt(&mut self, flag: Arc<AtomicBool>) {
        self.interrupt = Some(flag);
    }

    /// The line the next request will have.
    pub(crate) fn next_line(&self) -> u64 {
        self.line + 1
    }

    /// Sends one request line (`fields` follow its `line`) and parses the answer with
    /// `parse`; any failure kills the command and marks the link dead.
    pub(crate) fn request<T>(
        &mut self,
        fields: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, EnvError> {
        if let Some(first) = &self.failure {
            return Err(self
                .error(self.line + 1, format!("the reward process has failed earlier and is not running ({first})")));
        }
        let Some(process) = self.process.as_mut() else {
            return Err(self.error(self.line + 1, "the reward process is not running".to_owned()));
        };
        self.line += 1;
        let line = self.line;
        let interrupt = self.interrupt.as_deref();
        let outcome = process
            .exchange(line, fields, self.timeout, interrupt)
            .and_then(|text| parse(&text).map_err(Failure::Answer));
        outcome.map_err(|failure| self.fail(line, failure))
    }

    /// Shuts the process down after `failure` at request `line`, marks the link dead and
    /// returns the error.
    fn fail(&mut self, line: u64, failure: Failure) -> EnvError {
        // A command that did not answer in time, floods stdout or is interrupted is killed
        // at once; one that has stopped answering may still exit cleanly at end of stdin.
        let kill_now = matches!(failure, Failure::Timeout | Failure::TooLong | Failure::Interrupted);
        let shutdown =
            self.process.take().map(|process| process.shut_down(if kill_now { Duration::ZERO } else { GRACE }));
        let stderr = shutdown.as_ref().map(|end| end.stderr.clone()).unwrap_or_default();
        let (summary, tail) = match failure {
            Failure::Exited => {
                let summary = match shutdown.and_then(|end| end.status.map(|status| (end.exited_alone, status))) {
                    Some((true, status)) => format!("the reward process exited before answering ({status})"),
                    Some((false, status)) => {
                        format!("the reward process closed its stdout before answering (then killed: {status})")
                    }
                    None => "the reward process exited before answering".to_owned(),
                };
                (summary, StderrTail(&stderr).to_string())
            }
            Failure::Timeout => (
                format!(
                    "no answer within {}s; the reward process was killed. An answer must end its line and be \
                     flushed: stdout is a pipe, which most languages buffer (Python: print(..., flush=True) or \
                     python3 -u)",
                    self.timeout.as_secs_f64()
                ),
                StderrTail(&stderr).to_string(),
            ),
            Failure::TooLong => (
                format!(
                    "the reward process wrote more than {} MiB without ending its answer line; the limit is {} MiB \
                     ({MAX_ANSWER_BYTES} bytes) per line, and the process was killed",
                    MAX_ANSWER_BYTES >> 20,
                    MAX_ANSWER_BYTES >> 20
                ),
                String::new(),
            ),
            Failure::Interrupted => {
                self.failure = Some(format!("batch line {line}: interrupted"));
                return EnvError::Interrupted { line };
            }
            Failure::Answer(problem) | Failure::Io(problem) => (problem, String::new()),
        };
        let problem = format!("{summary}{tail}");
        self.failure = Some(format!("batch line {line}: {summary}"));
        self.error(line, problem)
    }

    /// An [`EnvError::RewardProcess`] for this command.
    pub(crate) fn error(&self, line: u64, problem: String) -> EnvError {
        EnvError::RewardProcess { command: self.command.clone(), line, problem }
    }
}

impl Drop for CommandLink {
    /// Closes the command's stdin, waits up to 1 s for it to exit, then kills its process
    /// group and reaps it.
    fn drop(&mut self) {
        if let Some(process) = self.process.take() {
            process.shut_down(GRACE);
        }
    }
}

/// How an exchange with the command failed.
#[derive(Debug)]
enum Failure {
    /// The command exited or closed a pipe before answering.
    Exited,
    /// No answer within the timeout.
    Timeout,
    /// More than [`MAX_ANSWER_BYTES`] on stdout without an end of line.
    TooLong,
    /// The caller's stop flag was set.
    Interrupted,
    /// The answer is malformed (the message says how).
    Answer(String),
    /// Another I/O error.
    Io(String),
}

/// What the reader and writer threads report.
#[derive(Debug)]
enum Event {
    /// A line of the command's stdout that is not blank, without its end of line.
    Line(String),
    /// A line of stdout grew past [`MAX_ANSWER_BYTES`] (nothing more is read).
    TooLong,
    /// The command closed its stdout.
    Eof,
    /// Writing a request failed.
    WriteFailed(io::Error),
}

/// The running command and the threads that feed it and read it.
#[derive(Debug)]
struct Process {
    child: Child,
    /// Requests for the writer thread; dropping it closes the command's stdin.
    requests: Option<Sender<String>>,
    /// Lines of stdout, end of stdout and write failures (at most one waits, so that a
    /// command printing lines between requests holds up at most one line here).
    events: Receiver<Event>,
    /// The last lines of stderr.
    stderr: Arc<Mutex<VecDeque<String>>>,
    stderr_reader: JoinHandle<()>,
}

/// The request sender, the event receiver, the stderr tail and the stderr reader.
type Attached = (Sender<String>, Receiver<Event>, Arc<Mutex<VecDeque<String>>>, JoinHandle<()>);

/// How a process ended.
#[derive(Debug)]
struct Ending {
    /// Its exit status (`None` if it could not be reaped).
    status: Option<ExitStatus>,
    /// Whether it had exited before the kill.
    exited_alone: bool,
    /// The last lines of its stderr.
    stderr: Vec<String>,
}

impl Process {
    /// Spawns `sh -c command` in a new process group (in `dir` if given), with threads
    /// writing its stdin and reading its stdout and stderr.
    fn start(command: &str, dir: Option<&Path>) -> Result<Self, String> {
        let mut sh = Command::new("sh");
        sh.arg("-c").arg(command).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        if let Some(dir) = dir {
            sh.current_dir(dir);
        }
        let mut child = sh.spawn().map_err(|e| format!("cannot start it with `sh -c`: {e}"))?;
        match Self::attach(&mut child) {
            Ok((requests, events, stderr, stderr_reader)) => {
                Ok(Self { child, requests: Some(requests), events, stderr, stderr_reader })
            }
            Err(problem) => {
                kill_group(&child);
                let _ = child.wait();
                Err(problem)
            }
        }
    }

    /// Starts the writer, stdout and stderr threads on the child's pipes.
    fn attach(child: &mut Child) -> Result<Attached, String> {
        let missing = || "the child's pipes are missing".to_owned();
        let stdin = child.stdin.take().ok_or_else(missing)?;
        let stdout = child.stdout.take().ok_or_else(missing)?;
        let stderr = child.stderr.take().ok_or_else(missing)?;
        let spawn_failed = |e: io::Error| format!("cannot start a thread: {e}");
        let (event_tx, events) = mpsc::sync_channel(1);
        let (requests, request_rx) = mpsc::channel::<String>();
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_LINES)));
        let stderr_tail = Arc::clone(&tail);
        let stderr_reader = thread::Builder::new()
            .name("reward-stderr".to_owned())
            .spawn(move || {
                // A character is at most 4 bytes of UTF-8.
                read_lines(stderr, 4 * STDERR_LINE_CHARS, |line, whole| {
                    let text = String::from_utf8_lossy(line);
                    let text = text.trim_end_matches('\r');
                    let mut kept = truncate(text, STDERR_LINE_CHARS);
                    if !whole && !kept.ends_with('…') {
                        kept.push('…');
                    }
                    let mut tail = stderr_tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    if tail.len() == STDERR_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(kept);
                    true
                });
            })
            .map_err(spawn_failed)?;
        let stdout_tx = event_tx.clone();
        thread::Builder::new()
            .name("reward-stdout".to_owned())
            .spawn(move || {
                let mut too_long = false;
                read_lines(stdout, MAX_ANSWER_BYTES, |line, whole| {
                    if !whole {
                        too_long = true;
                        return false;
                    }
                    let text = String::from_utf8_lossy(line);
                    let text = text.trim_end_matches('\r');
                    text.trim().is_empty() || stdout_tx.send(Event::Line(text.to_owned())).is_ok()
                });
                let _ = stdout_tx.send(if too_long { Event::TooLong } else { Event::Eof });
            })
            .map_err(spawn_failed)?;
        thread::Builder::new()
            .name("reward-stdin".to_owned())
            .spawn(move || write_requests(stdin, &request_rx, &event_tx))
            .map_err(spawn_failed)?;
        Ok((requests, events, tail, stderr_reader))
    }

    /// Sends request `line` (`{"line":L,` then `fields}`) and waits up to `timeout` for the
    /// answer line, or until `interrupt` is set.
    fn exchange(
        &mut self,
        line: u64,
        fields: &str,
        timeout: Duration,
        interrupt: Option<&AtomicBool>,
    ) -> Result<String, Failure> {
        // Anything already on stdout (blank lines are dropped) came after the previous answer.
        match self.events.try_recv() {
            Ok(Event::Line(extra)) => {
                return Err(Failure::Answer(format!(
                    "the reward process printed a line after its answer to line {}: {} (exactly one line per \
                     request; logs go to stderr)",
                    line - 1,
                    quote(&extra)
                )));
            }
            Ok(event) => return Err(event_failure(event)),
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => return Err(Failure::Exited),
        }
        let request = format!("{{\"line\":{line},{fields}}}\n");
        let sent = self.requests.as_ref().is_some_and(|requests| requests.send(request).is_ok());
        if !sent {
            return Err(Failure::Exited);
        }
        // No deadline for a timeout too long to add to the current time.
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if interrupt.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
                return Err(Failure::Interrupted);
            }
            let wait = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(INTERRUPT_POLL),
                    _ => return Err(Failure::Timeout),
                },
                None => INTERRUPT_POLL,
            };
            match self.events.recv_timeout(wait) {
                Ok(Event::Line(answer)) => return Ok(answer),
                Ok(event) => return Err(event_failure(event)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err(Failure::Exited),
            }
        }
    }

    /// Closes the command's stdin, waits up to `grace` for it to exit, kills its process
    /// group, reaps it and collects the end of its stderr.
    fn shut_down(mut self, grace: Duration) -> Ending {
        drop(self.requests.take());
        let pid = Pid::from_raw(self.child.id() as i32);
        let exited_alone = wait_for_exit(pid, grace);
        // The child is not reaped yet (a zombie at worst), so its pid still names its group.
        kill_group(&self.child);
        let status = self.child.wait().ok();
        let deadline = Instant::now() + STDERR_DRAIN;
        while !self.stderr_reader.is_finished() && Instant::now() < deadline {
            thread::sleep(POLL);
        }
        let stderr = self.stderr.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter().cloned().collect();
        Ending { status, exited_alone, stderr }
    }
}

/// The failure an end-of-stdout or write-failure event means.
fn event_failure(event: Event) -> Failure {
    match event {
        Event::Line(line) => Failure::Answer(format!("unexpected line {}", quote(&line))),
        Event::TooLong => Failure::TooLong,
        Event::Eof => Failure::Exited,
        Event::WriteFailed(e) if e.kind() == io::ErrorKind::BrokenPipe => Failure::Exited,
        Event::WriteFailed(e) => Failure::Io(format!("writing the request: {e}")),
    }
}

/// Writes each request to `stdin` and flushes it, until the requests end (then `stdin`
/// closes) or a write fails (reported on `events`).
fn write_requests(mut stdin: ChildStdin, requests: &Receiver<String>, events: &SyncSender<Event>) {
    for request in requests {
        if let Err(e) = stdin.write_all(request.as_bytes()).and_then(|()| stdin.flush()) {
            let _ = events.send(Event::WriteFailed(e));
            return;
        }
    }
}

/// Reads `stream` [`CHUNK`] bytes at a time, holding at most `keep` bytes of a line, and
/// calls `each(line, whole)` once per line until the end of the stream, a read error, or
/// `each` returns false: at the end of the line (or of the stream), with the line without
/// its `\n` (`whole` true), or as soon as the line grows past `keep` bytes, with its first
/// `keep` (`whole` false; the rest of the line is then read and dropped).
fn read_lines(mut stream: impl Read, keep: usize, mut each: impl FnMut(&[u8], bool) -> bool) {
    let mut chunk = vec![0; CHUNK];
    let mut line = Vec::new();
    // Whether the current line has grown past `keep` (and been passed on).
    let mut cut = false;
    loop {
        let read = match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        for piece in chunk[..read].split_inclusive(|&b| b == b'\n') {
            let (text, ends) = match piece.split_last() {
                Some((b'\n', text)) => (text, true),
                _ => (piece, false),
            };
            if !cut && line.len() + text.len() > keep {
                line.extend_from_slice(&text[..keep - line.len()]);
                cut = true;
                if !each(&line, false) {
                    return;
                }
            } else if !cut {
                line.extend_from_slice(text);
            }
            if ends {
                if !cut && !each(&line, true) {
                    return;
                }
                line.clear();
                cut = false;
            }
        }
    }
    if !cut && !line.is_empty() {
        each(&line, true);
    }
}

/// Polls (without reaping) until the process `pid` exits or `grace` passes; whether it exited.
fn wait_for_exit(pid: Pid, grace: Duration) -> bool {
    let deadline = Instant::now() + grace;
    loop {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::Pid(pid), flags) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
            Ok(_) => return true,
            Err(_) => return false,
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}

/// Sends `SIGKILL` to the process group of `child` (its own: it was spawned as leader).
fn kill_group(child: &Child) {
    let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
}

/// `; its stderr ended with:` and the lines (their control characters escaped), or a note
/// that it wrote none.
struct StderrTail<'a>(&'a [String]);

impl fmt::Display for StderrTail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "; it wrote nothing to stderr");
        }
        write!(f, "; its stderr ended with:")?;
        for line in self.0 {
            write!(f, "\n    {}", printable(line))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines `read_lines` passes on for `input` read with `keep`, as (text, whole).
    fn lines(input: &[u8], keep: usize) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        read_lines(input, keep, |line, whole| {
            out.push((String::from_utf8_lossy(line).into_owned(), whole));
            true
        });
        out
    }

    #[test]
    fn lines_longer_than_the_limit_are_cut_and_the_rest_dropped() {
        let line = |text: &str, whole| (text.to_owned(), whole);
        assert_eq!(lines(b"ab\n\ncd", 4), [line("ab", true), line("", true), line("cd", true)]);
        assert_eq!(lines(b"abcd\nabcde\nxy\n", 4), [line("abcd", true), line("abcd", false), line("xy", true)]);
        // Across reads: a line longer than a chunk, cut once, and the next line after it.
        let mut long = vec![b'z'; 3 * CHUNK];
        long.extend_from_slice(b"\nok");
        assert_eq!(lines(&long, CHUNK + 1), [line(&"z".repeat(CHUNK + 1), false), line("ok", true)]);
        assert_eq!(lines(&long, 4 * CHUNK), [line(&"z".repeat(3 * CHUNK), true), line("ok", true)]);
        // `each` returning false stops the reading.
        let mut seen = 0;
        read_lines(&b"a\nb\nc\n"[..], 4, |_, _| {
            seen += 1;
            seen < 2
        });
        assert_eq!(seen, 2);
    }
}
