//! A black-box reward computed by an external command, in any language, that talks JSON
//! lines on its stdin and stdout (`sfess-agent train --env cmd --reward-cmd 'python3 score.py'`).
//!
//! By default ([`ExternalReward::new`]) the environment has one global subset (`rows = 1`,
//! no observation inputs). In contextual mode ([`ExternalReward::contextual`]) the command
//! also supplies the contexts: `rows` rows of `d` numbers per step, which a policy network
//! reads to choose one subset per context (see [Contextual mode](#contextual-mode)). Either
//! way the environment is not differentiable, and its metric `reward` is the command's
//! answer (higher is better).
//!
//! # Protocol
//!
//! The command is run once, by `sh -c '<command>'` in its own process group, and lives
//! for the whole run. For every batch of actions the environment writes **one line** of
//! JSON to the command's stdin (and flushes it):
//!
//! ```text
//! {"line":12,"phase":"train","request":"rewards","n":100,"k":10,"actions":[[3,17,42,...],[...],...]}
//! ```
//!
//! - `line` counts the requests from 1;
//! - `phase` is `train` (a training step), `validation` or `test` (evaluation of the
//!   policy's top-k subset, and the random-subset baseline);
//! - `request` is `rewards` (in contextual mode it can also be `contexts`, below); a
//!   command that only scores subsets can ignore it, as any field it does not know;
//! - `n` and `k`: the number of items and the subset size;
//! - `actions`: one entry per sampled action, the sorted 0-based indices of its `k` items.
//!
//! The command answers **one line** on its stdout, either a JSON array of numbers, one
//! reward per action in order,
//!
//! ```text
//! [0.5, 0.25, 1.0]
//! ```
//!
//! or an object with the rewards and optional diagnostics, which are logged with the step
//! (`Transition::info`; in evaluation they are added to the metrics):
//!
//! ```text
//! {"rewards": [0.5, 0.25, 1.0], "info": {"accuracy": 0.9}}
//! ```
//!
//! Rewards are "higher is better" and must be finite numbers (a string such as `"NaN"`
//! or `null` is an error). Blank lines on stdout are skipped; anything else the command
//! prints to stdout is taken as an answer, so logs belong on stderr (which is captured,
//! never echoed, and quoted when the command fails). The command should exit when its
//! stdin closes (end of file), which is how the environment asks it to stop.
//!
//! A minimal Python reward:
//!
//! ```text
//! import json, sys
//! for request in sys.stdin:
//!     actions = json.loads(request)["actions"]
//!     print(json.dumps([float(sum(a)) for a in actions]), flush=True)
//! ```
//!
//! # Contextual mode
//!
//! With `rows = R` contexts of `d` numbers, the command chooses the contexts as well as
//! scoring the subsets, and a policy (an MLP from each context row to that row's logits)
//! learns one subset per context. Two kinds of request alternate, told apart by `request`:
//!
//! 1. **Contexts.** Each training step starts (`reset`) with
//!
//!    ```text
//!    {"line":7,"phase":"train","request":"contexts","rows":4,"seed":2718281828459045}
//!    ```
//!
//!    and the command answers exactly `R` rows of exactly `d` finite numbers:
//!
//!    ```text
//!    {"contexts": [[0.1, -0.5, 0.3], [0.9, 0.0, 0.2], [0.4, 0.4, -0.1], [0.0, 1.0, 0.0]]}
//!    ```
//!
//!    `seed` is an integer in `[0, 2^53)` (exact in every JSON parser) drawn from the run's
//!    generator: a command that draws its contexts from it makes the run reproducible.
//!    The command must remember the contexts it sent last: the next rewards request
//!    scores actions for them. The policy sees them as one observation input `[R, d]`.
//! 2. **Rewards.** The training step's `S` sampled actions for each context come in one
//!    request with the number of rows,
//!
//!    ```text
//!    {"line":8,"phase":"train","request":"rewards","n":20,"k":3,"rows":4,"actions":[[...],...]}
//!    ```
//!
//!    holding `S·R` actions in sample-major order: entry `i` is an action for context row
//!    `i % R` of the last contexts. The answer is `S·R` rewards in the same order, as
//!    above (an array, or an object with `rewards` and `info`).
//!
//! Evaluation and the baseline use held-out contexts: a contexts request with `phase`
//! `validation` or `test` and a fixed `seed` (1 for validation, 2 for test, so a command
//! that draws from the seed gives the same held-out contexts at every evaluation), then
//! one rewards request with that phase: the policy's top-k subset for each row (the
//! metric `reward` is the mean over the rows), or 32 random subsets per row, sample-major,
//! from a fixed seed (the baseline `random` is their mean reward).
//!
//! An evaluation replaces the command's last contexts, so a training `step` needs a new
//! `reset` after one (`step` before any `reset` is [`EnvError::NotReset`]).
//!
//! # Failures
//!
//! Each failure is an [`EnvError::RewardProcess`] naming the command and the request
//! line, and leaves no process behind:
//!
//! - the command exits (or closes its stdout) before answering — for example `sh`'s exit
//!   status 127 for a command that is not found: the message gives the exit status and
//!   the last lines (up to 20) it wrote to stderr;
//! - no answer within the timeout: the command is killed;
//! - an answer that is not JSON, not of the forms above, with the wrong number of
//!   rewards, or with an entry that is not a finite number: the message quotes the start
//!   of the answer;
//! - in contextual mode, an answer to a contexts request that is not an object with
//!   `contexts`, with the wrong number of rows (`got 3 context rows, expected 4`), a row
//!   of the wrong length (`context row 2 has 5 numbers, expected 3`), or an entry that is
//!   not a finite number;
//! - a line the command printed after its answer, before the next request (the answers
//!   would be out of step with the requests).
//!
//! After a failure the environment is dead: every later request fails too.
//!
//! # Shutdown
//!
//! On drop, and after any failure, the environment closes the command's stdin, waits up
//! to 1 s for it to exit, then kills its whole process group with `SIGKILL` (so that
//! grandchildren, such as the `python3` of `sh -c 'python3 score.py; echo done'`, go too)
//! and reaps it. A command that put itself in another process group (`setsid`) escapes
//! this; if sfess-agent itself is killed, the command sees its stdin close.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use rand::Rng;
use serde_json::Value;
use tch::Tensor;

use crate::env::{
    EnvError, EnvSpec, Environment, EvalPolicy, Observation, Phase, Transition, check_actions, chosen_lists,
    random_subsets,
};
use crate::space::KHotSpace;

/// The environment's name on the command line.
const NAME: &str = "cmd";
/// Lines of the command's stderr kept for error messages.
const STDERR_LINES: usize = 20;
/// Characters kept of each stderr line.
const STDERR_LINE_CHARS: usize = 300;
/// Characters of an offending answer quoted in an error.
const QUOTE_CHARS: usize = 200;
/// How long a command may take to exit after its stdin closes, before it is killed.
const GRACE: Duration = Duration::from_secs(1);
/// How long to wait, after the kill, for the stderr reader to reach the end of the pipe.
const STDERR_DRAIN: Duration = Duration::from_millis(500);
/// Pause between two polls of the child's state.
const POLL: Duration = Duration::from_millis(5);
/// Random subsets in the `random` baseline.
const RANDOM_SUBSETS: usize = 32;
/// Seed of the random subsets of the `random` baseline.
const RANDOM_SEED: u64 = 0x5FE5_5EED;

/// The `seed` of the held-out contexts of `phase` (contextual mode).
fn held_out_seed(phase: Phase) -> u64 {
    match phase {
        Phase::Validation => 1,
        Phase::Test => 2,
    }
}

/// The external-command reward environment; see the [module docs](self) for the protocol.
#[derive(Debug)]
pub struct ExternalReward {
    spec: EnvSpec,
    command: String,
    timeout: Duration,
    child_id: u32,
    /// The running command; `None` once it has been shut down.
    process: Option<Process>,
    /// Request lines sent so far.
    line: u64,
    /// Why the environment is dead, once it is.
    failure: Option<String>,
    /// Numbers per context in contextual mode; `None` for one global subset.
    context_dim: Option<usize>,
    /// Whether the command's last contexts are training contexts from a `reset` (contextual
    /// mode): `step` scores actions for them.
    training_contexts: bool,
}

impl ExternalReward {
    /// Starts `command` (run by `sh -c`, in its own process group) and returns the
    /// environment for actions of `space`; every answer must come within `timeout`.
    ///
    /// # Errors
    /// [`EnvError::Config`] for an empty command or a zero timeout,
    /// [`EnvError::RewardProcess`] when `sh` cannot be started. A command that `sh` cannot
    /// find fails at the first request (with `sh`'s exit status 127 and its message).
    pub fn new(command: &str, space: KHotSpace, timeout: Duration) -> Result<Self, EnvError> {
        let (n, k) = (space.n(), space.k());
        let description = format!("select {k} of {n} items (one global subset); reward from the command '{command}'");
        Self::start(command, space, timeout, 1, None, description)
    }

    /// Starts `command` as [`new`](Self::new) does, in contextual mode: each step, the
    /// command supplies `rows` contexts of `context_dim` numbers (the observation, one
    /// input `[rows, context_dim]`), then scores `S` actions for each (see the module docs).
    ///
    /// # Errors
    /// [`EnvError::Config`] for zero `rows` or `context_dim`, and as [`new`](Self::new).
    pub fn contextual(
        command: &str,
        space: KHotSpace,
        rows: usize,
        context_dim: usize,
        timeout: Duration,
    ) -> Result<Self, EnvError> {
        let config = |problem: &str| EnvError::Config { env: NAME.to_owned(), problem: problem.to_owned() };
        if rows == 0 {
            return Err(config("contextual mode needs at least one context row per step (rows >= 1)"));
        }
        if context_dim == 0 {
            return Err(config("contextual mode needs contexts of at least one number (context_dim >= 1)"));
        }
        let (n, k) = (space.n(), space.k());
        let description = format!(
            "select {k} of {n} items for each of {rows} contexts of {context_dim} numbers from the command; reward \
             from the command '{command}'"
        );
        Self::start(command, space, timeout, rows, Some(context_dim), description)
    }

    /// Checks the command and the timeout, starts the command and builds the environment.
    fn start(
        command: &str,
        space: KHotSpace,
        timeout: Duration,
        rows: usize,
        context_dim: Option<usize>,
        description: String,
    ) -> Result<Self, EnvError> {
        let config = |problem: &str| EnvError::Config { env: NAME.to_owned(), problem: problem.to_owned() };
        if command.trim().is_empty() {
            return Err(config("the reward command is empty"));
        }
        if timeout.is_zero() {
            return Err(config("the reward command's timeout must be positive"));
        }
        let process = Process::start(command).map_err(|problem| EnvError::RewardProcess {
            command: command.to_owned(),
            line: 0,
            problem,
        })?;
        let spec = EnvSpec {
            name: NAME.to_owned(),
            space,
            rows,
            differentiable: false,
            metric: "reward".to_owned(),
            higher_is_better: true,
            observation_dim: context_dim.unwrap_or(0),
            description,
        };
        Ok(Self {
            spec,
            command: command.to_owned(),
            timeout,
            child_id: process.child.id(),
            process: Some(process),
            line: 0,
            failure: None,
            context_dim,
            training_contexts: false,
        })
    }

    /// The child's process id (the `sh` that runs the command; also its process group id).
    pub fn child_id(&self) -> u32 {
        self.child_id
    }

    /// Sends `actions` with `phase` as one rewards request and returns the command's answer.
    fn request_rewards(&mut self, phase: &str, actions: &[Vec<usize>]) -> Result<Answer, EnvError> {
        let (n, k) = (self.spec.space.n(), self.spec.space.k());
        let actions_json = serde_json::to_string(actions)
            .map_err(|e| self.error(self.line + 1, format!("writing the request: {e}")))?;
        let rows = match self.context_dim {
            Some(_) => format!(",\"rows\":{}", self.spec.rows),
            None => String::new(),
        };
        let fields = format!(
            "\"phase\":{},\"request\":\"rewards\",\"n\":{n},\"k\":{k}{rows},\"actions\":{actions_json}",
            Value::from(phase)
        );
        let expected = actions.len();
        self.request(&fields, |text| parse_answer(text, expected))
    }

    /// Asks the command for `rows` contexts for `phase` with `seed`: the tensor `[rows, d]`
    /// (f32, on the CPU). Contextual mode only.
    fn request_contexts(&mut self, phase: &str, seed: u64) -> Result<Tensor, EnvError> {
        let (rows, dim) = (self.spec.rows, self.spec.observation_dim);
        let fields =
            format!("\"phase\":{},\"request\":\"contexts\",\"rows\":{rows},\"seed\":{seed}", Value::from(phase));
        let values = self.request(&fields, |text| parse_contexts(text, rows, dim))?;
        Ok(Tensor::from_slice(&values).f_view([rows as i64, dim as i64])?)
    }

    /// Sends one request line (`fields` follow its `line`) and parses the answer with
    /// `parse`; any failure kills the command and marks the environment dead.
    fn request<T>(&mut self, fields: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<T, EnvError> {
        if let Some(first) = &self.failure {
            return Err(self
                .error(self.line + 1, format!("the reward process has failed earlier and is not running ({first})")));
        }
        let Some(process) = self.process.as_mut() else {
            return Err(self.error(self.line + 1, "the reward process is not running".to_owned()));
        };
        self.line += 1;
        let line = self.line;
        let outcome =
            process.exchange(line, fields, self.timeout).and_then(|text| parse(&text).map_err(Failure::Answer));
        outcome.map_err(|failure| self.fail(line, failure))
    }

    /// The held-out contexts of `phase` as an observation (contextual mode), or no inputs.
    fn held_out_observation(&mut self, phase: Phase) -> Result<Observation, EnvError> {
        if self.context_dim.is_none() {
            return Ok(Observation { inputs: Vec::new() });
        }
        // The command's last contexts are about to be the held-out ones.
        self.training_contexts = false;
        let contexts = self.request_contexts(phase.name(), held_out_seed(phase))?;
        Ok(Observation { inputs: vec![contexts] })
    }

    /// Shuts the process down after `failure` at request `line`, marks the environment
    /// dead and returns the error.
    fn fail(&mut self, line: u64, failure: Failure) -> EnvError {
        let grace = if matches!(failure, Failure::Timeout) { Duration::ZERO } else { GRACE };
        let shutdown = self.process.take().map(|process| process.shut_down(grace));
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
                format!("no answer within {}s; the reward process was killed", self.timeout.as_secs_f64()),
                StderrTail(&stderr).to_string(),
            ),
            Failure::Answer(problem) | Failure::Io(problem) => (problem, String::new()),
        };
        let problem = format!("{summary}{tail}");
        self.failure = Some(format!("batch line {line}: {summary}"));
        self.error(line, problem)
    }

    /// An [`EnvError::RewardProcess`] for this command.
    fn error(&self, line: u64, problem: String) -> EnvError {
        EnvError::RewardProcess { command: self.command.clone(), line, problem }
    }
}

impl Environment for ExternalReward {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    /// Inputs: none for one global subset (nothing is sent to the command); in contextual
    /// mode, the `[rows, d]` contexts the command answers to a `train` contexts request
    /// with a seed drawn from `rng`.
    fn reset(&mut self, rng: &mut dyn Rng) -> Result<Observation, EnvError> {
        if self.context_dim.is_none() {
            return Ok(Observation { inputs: Vec::new() });
        }
        self.training_contexts = false;
        // 53 bits: exact as a JSON number in every language.
        let seed = rng.next_u64() >> 11;
        let contexts = self.request_contexts("train", seed)?;
        self.training_contexts = true;
        Ok(Observation { inputs: vec![contexts] })
    }

    /// Sends the `S·rows` actions `[S, rows, n]` (sample-major) as one `train` rewards
    /// request; rewards `[S, rows]` (f32, on the actions' device) and the answer's `info`.
    fn step(&mut self, actions: &Tensor) -> Result<Transition, EnvError> {
        let samples = check_actions(&self.spec, actions)?;
        if self.context_dim.is_some() && !self.training_contexts {
            return Err(EnvError::NotReset { env: NAME.to_owned() });
        }
        let rows = self.spec.rows;
        let subsets = chosen_lists(&self.spec, actions)?;
        let answer = self.request_rewards("train", &subsets)?;
        let rewards: Vec<f32> = answer.rewards.iter().map(|&r| r as f32).collect();
        let rewards = Tensor::from_slice(&rewards).f_view([samples, rows as i64])?.f_to_device(actions.device())?;
        Ok(Transition { rewards, terminated: true, truncated: false, info: answer.info })
    }

    /// `reward`: the command's reward for the policy's top-k subset, sent with `phase` (in
    /// contextual mode, the mean over the rows of the held-out contexts of `phase`); the
    /// answer's `info` entries are added (except one named `reward`).
    fn evaluate(&mut self, phase: Phase, policy: &dyn EvalPolicy) -> Result<BTreeMap<String, f64>, EnvError> {
        let observation = self.held_out_observation(phase)?;
        let action = policy.act(&observation)?;
        let (rows, n) = (self.spec.rows, self.spec.space.n() as i64);
        if action.size() != [rows as i64, n] {
            return Err(EnvError::Policy(format!("the action has shape {:?}, expected [{rows}, {n}]", action.size())));
        }
        let subsets = chosen_lists(&self.spec, &action)?;
        let answer = self.request_rewards(phase.name(), &subsets)?;
        let mean = answer.rewards.iter().sum::<f64>() / rows as f64;
        let mut metrics = answer.info;
        metrics.insert("reward".to_owned(), mean);
        Ok(metrics)
    }

    /// `random`: the mean reward of 32 uniformly random k-subsets (from a fixed seed), sent
    /// as one request with `phase`; in contextual mode, 32 per row of the held-out contexts
    /// of `phase`, sample-major.
    fn baselines(&mut self, phase: Phase) -> Result<BTreeMap<String, f64>, EnvError> {
        self.held_out_observation(phase)?;
        let (n, k, rows) = (self.spec.space.n(), self.spec.space.k(), self.spec.rows);
        let mut subsets = random_subsets(RANDOM_SEED, RANDOM_SUBSETS * rows, n, k);
        subsets.iter_mut().for_each(|subset| subset.sort_unstable());
        let answer = self.request_rewards(phase.name(), &subsets)?;
        let mean = answer.rewards.iter().sum::<f64>() / subsets.len() as f64;
        Ok(BTreeMap::from([("random".to_owned(), mean)]))
    }
}

impl Drop for ExternalReward {
    /// Closes the command's stdin, waits up to 1 s for it to exit, then kills its process
    /// group and reaps it.
    fn drop(&mut self) {
        if let Some(process) = self.process.take() {
            process.shut_down(GRACE);
        }
    }
}

/// A parsed answer: one reward per action, and the diagnostics.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    rewards: Vec<f64>,
    info: BTreeMap<String, f64>,
}

/// Parses an answer line: a JSON array of `expected` finite numbers, or an object
/// `{"rewards": [...], "info": {"name": number, ...}}` (`info` optional). The error
/// says what is wrong and quotes the start of the line.
fn parse_answer(text: &str, expected: usize) -> Result<Answer, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| not_json(&e, text))?;
    let (items, info) = match &value {
        Value::Array(items) => (items, BTreeMap::new()),
        Value::Object(map) => {
            let Some(Value::Array(items)) = map.get("rewards") else {
                return Err(format!("the answer is an object without a \"rewards\" array: {}", quote(text)));
            };
            let info = match map.get("info") {
                None | Some(Value::Null) => BTreeMap::new(),
                Some(Value::Object(info)) => info
                    .iter()
                    .map(|(name, v)| match v.as_f64() {
                        Some(x) if x.is_finite() => Ok((name.clone(), x)),
                        _ => Err(format!("info \"{name}\" is {}, not a number: {}", short(v), quote(text))),
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(format!("the answer's \"info\" is not an object of numbers: {}", quote(text))),
            };
            (items, info)
        }
        _ => {
            return Err(format!(
                "the answer must be a JSON array of rewards or an object {{\"rewards\": [...], \"info\": {{...}}}}: {}",
                quote(text)
            ));
        }
    };
    if items.len() != expected {
        return Err(format!("the answer has {} rewards for {expected} actions: {}", items.len(), quote(text)));
    }
    let rewards = items
        .iter()
        .enumerate()
        .map(|(i, v)| match v.as_f64() {
            Some(x) if x.is_finite() && (x as f32).is_finite() => Ok(x),
            _ => Err(format!("reward {i} is {}, not a finite number: {}", short(v), quote(text))),
        })
        .collect::<Result<_, _>>()?;
    Ok(Answer { rewards, info })
}

/// Parses the answer to a contexts request: an object `{"contexts": [[x, ...], ...]}`
/// with exactly `rows` rows of exactly `dim` finite numbers (finite in f32 too); the values
/// row by row. The error says what is wrong and quotes the start of the line.
fn parse_contexts(text: &str, rows: usize, dim: usize) -> Result<Vec<f32>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| not_json(&e, text))?;
    let Some(Value::Array(items)) = value.as_object().and_then(|map| map.get("contexts")) else {
        return Err(format!(
            "the answer to a contexts request must be an object {{\"contexts\": [[number, ...], ...]}}: {}",
            quote(text)
        ));
    };
    if items.len() != rows {
        return Err(format!("got {} context rows, expected {rows}: {}", items.len(), quote(text)));
    }
    let mut values = Vec::with_capacity(rows * dim);
    for (r, row) in items.iter().enumerate() {
        let Value::Array(row) = row else {
            return Err(format!("context row {r} is {}, not an array of {dim} numbers: {}", short(row), quote(text)));
        };
        if row.len() != dim {
            return Err(format!("context row {r} has {} numbers, expected {dim}: {}", row.len(), quote(text)));
        }
        for (j, v) in row.iter().enumerate() {
            match v.as_f64() {
                Some(x) if x.is_finite() && (x as f32).is_finite() => values.push(x as f32),
                _ => {
                    return Err(format!(
                        "context row {r}, entry {j} is {}, not a finite number: {}",
                        short(v),
                        quote(text)
                    ));
                }
            }
        }
    }
    Ok(values)
}

/// The error for an answer that is not JSON.
fn not_json(error: &serde_json::Error, text: &str) -> String {
    format!(
        "the answer is not JSON ({error}): {} (the command must print exactly one JSON line per request on stdout; \
         logs go to stderr)",
        quote(text)
    )
}

/// `text` in single quotes, cut after [`QUOTE_CHARS`] characters.
fn quote(text: &str) -> String {
    format!("'{}'", truncate(text, QUOTE_CHARS))
}

/// A JSON value as written, cut short.
fn short(value: &Value) -> String {
    truncate(&value.to_string(), 40)
}

/// The first `max` characters of `text`, with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// How an exchange with the command failed.
#[derive(Debug)]
enum Failure {
    /// The command exited or closed a pipe before answering.
    Exited,
    /// No answer within the timeout.
    Timeout,
    /// The answer is malformed (the message says how).
    Answer(String),
    /// Another I/O error.
    Io(String),
}

/// What the reader and writer threads report.
#[derive(Debug)]
enum Event {
    /// A line of the command's stdout, without its end of line.
    Line(String),
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
    /// Lines of stdout, end of stdout and write failures.
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
    /// Spawns `sh -c command` in a new process group, with threads writing its stdin and
    /// reading its stdout and stderr.
    fn start(command: &str) -> Result<Self, String> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start it with `sh -c`: {e}"))?;
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
        let (event_tx, events) = mpsc::channel();
        let (requests, request_rx) = mpsc::channel::<String>();
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_LINES)));
        let stderr_tail = Arc::clone(&tail);
        let stderr_reader = thread::Builder::new()
            .name("reward-stderr".to_owned())
            .spawn(move || {
                read_lines(stderr, |line| {
                    let mut tail = stderr_tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    if tail.len() == STDERR_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(truncate(&line, STDERR_LINE_CHARS));
                    true
                });
            })
            .map_err(spawn_failed)?;
        let stdout_tx = event_tx.clone();
        thread::Builder::new()
            .name("reward-stdout".to_owned())
            .spawn(move || {
                read_lines(stdout, |line| stdout_tx.send(Event::Line(line)).is_ok());
                let _ = stdout_tx.send(Event::Eof);
            })
            .map_err(spawn_failed)?;
        thread::Builder::new()
            .name("reward-stdin".to_owned())
            .spawn(move || write_requests(stdin, &request_rx, &event_tx))
            .map_err(spawn_failed)?;
        Ok((requests, events, tail, stderr_reader))
    }

    /// Sends request `line` (`{"line":L,` then `fields}`) and waits up to `timeout` for the
    /// answer line.
    fn exchange(&mut self, line: u64, fields: &str, timeout: Duration) -> Result<String, Failure> {
        // Anything already on stdout came after the previous answer.
        loop {
            match self.events.try_recv() {
                Ok(Event::Line(extra)) if extra.trim().is_empty() => {}
                Ok(Event::Line(extra)) => {
                    return Err(Failure::Answer(format!(
                        "the reward process printed a line after its answer to line {}: {} (exactly one line \
                         per request; logs go to stderr)",
                        line - 1,
                        quote(&extra)
                    )));
                }
                Ok(event) => return Err(event_failure(event)),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Err(Failure::Exited),
            }
        }
        let request = format!("{{\"line\":{line},{fields}}}\n");
        let sent = self.requests.as_ref().is_some_and(|requests| requests.send(request).is_ok());
        if !sent {
            return Err(Failure::Exited);
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Event::Line(answer)) if answer.trim().is_empty() => {}
                Ok(Event::Line(answer)) => return Ok(answer),
                Ok(event) => return Err(event_failure(event)),
                Err(RecvTimeoutError::Timeout) => return Err(Failure::Timeout),
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
        Event::Eof => Failure::Exited,
        Event::WriteFailed(e) if e.kind() == io::ErrorKind::BrokenPipe => Failure::Exited,
        Event::WriteFailed(e) => Failure::Io(format!("writing the request: {e}")),
    }
}

/// Writes each request to `stdin` and flushes it, until the requests end (then `stdin`
/// closes) or a write fails (reported on `events`).
fn write_requests(mut stdin: ChildStdin, requests: &Receiver<String>, events: &Sender<Event>) {
    for request in requests {
        if let Err(e) = stdin.write_all(request.as_bytes()).and_then(|()| stdin.flush()) {
            let _ = events.send(Event::WriteFailed(e));
            return;
        }
    }
}

/// Calls `each` on every line of `stream` (lossy UTF-8, without the end of line) until
/// the end of the stream, a read error, or `each` returns false.
fn read_lines(stream: impl Read, mut each: impl FnMut(String) -> bool) {
    let mut reader = BufReader::new(stream);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buffer).trim_end_matches(['\n', '\r']).to_owned();
                if !each(line) {
                    return;
                }
            }
        }
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

/// `; its stderr ended with:` and the lines, or a note that it wrote none.
struct StderrTail<'a>(&'a [String]);

impl fmt::Display for StderrTail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "; it wrote nothing to stderr");
        }
        write!(f, "; its stderr ended with:")?;
        for line in self.0 {
            write!(f, "\n    {line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_arrays_and_objects_with_info() {
        let answer = parse_answer("[0.5, -2, 1e3]", 3).unwrap();
        assert_eq!(answer.rewards, vec![0.5, -2.0, 1000.0]);
        assert!(answer.info.is_empty());
        let answer = parse_answer(r#"{"rewards": [1], "info": {"acc": 0.25, "n": 3}}"#, 1).unwrap();
        assert_eq!(answer.rewards, vec![1.0]);
        assert_eq!(answer.info, BTreeMap::from([("acc".to_owned(), 0.25), ("n".to_owned(), 3.0)]));
        assert_eq!(parse_answer(r#"{"rewards": [], "info": null}"#, 0).unwrap().rewards, Vec::<f64>::new());
    }

    #[test]
    fn rejects_malformed_answers_saying_why() {
        let err = |text: &str, expected| parse_answer(text, expected).unwrap_err();
        assert!(err("not json", 1).contains("not JSON") && err("not json", 1).contains("'not json'"));
        assert!(err(r#"[1, "a"]"#, 2).contains(r#"reward 1 is "a""#));
        assert!(err("[null]", 1).contains("reward 0 is null"));
        assert!(err(r#"["NaN"]"#, 1).contains("not a finite number"));
        assert!(err("[1e39]", 1).contains("not a finite number"), "overflows f32");
        assert!(err("[1, 2]", 3).contains("2 rewards for 3 actions"));
        assert!(err("3", 1).contains("must be a JSON array"));
        assert!(err(r#"{"reward": [1]}"#, 1).contains("without a \"rewards\" array"));
        assert!(err(r#"{"rewards": [1], "info": {"a": "b"}}"#, 1).contains("info \"a\""));
        assert!(err(r#"{"rewards": [1], "info": [1]}"#, 1).contains("\"info\" is not an object"));
    }

    #[test]
    fn parses_contexts_row_by_row() {
        let text = r#"{"contexts": [[0.5, -2], [1e3, 0]], "note": "ignored"}"#;
        assert_eq!(parse_contexts(text, 2, 2).unwrap(), vec![0.5, -2.0, 1000.0, 0.0]);
    }

    #[test]
    fn rejects_malformed_contexts_saying_why() {
        let err = |text: &str| parse_contexts(text, 2, 3).unwrap_err();
        assert!(err("nope").contains("not JSON") && err("nope").contains("'nope'"));
        assert!(err("[[1, 2, 3], [4, 5, 6]]").contains("must be an object {\"contexts\""));
        assert!(err(r#"{"context": []}"#).contains("must be an object"));
        assert!(err(r#"{"contexts": [[1, 2, 3]]}"#).contains("got 1 context rows, expected 2"));
        assert!(
            err(r#"{"contexts": [[1, 2, 3], [4, 5, 6, 7, 8]]}"#).contains("context row 1 has 5 numbers, expected 3")
        );
        assert!(err(r#"{"contexts": [[1, 2, 3], 4]}"#).contains("context row 1 is 4, not an array of 3 numbers"));
        assert!(err(r#"{"contexts": [[1, "a", 3], [4, 5, 6]]}"#).contains(r#"context row 0, entry 1 is "a", not"#));
        assert!(err(r#"{"contexts": [[1, 2, 3], [4, 5, null]]}"#).contains("entry 2 is null, not a finite number"));
        assert!(err(r#"{"contexts": [[1, 2, 3], [4, 5, 1e39]]}"#).contains("not a finite number"), "overflows f32");
    }

    #[test]
    fn quotes_are_cut_at_200_characters() {
        let long = "x".repeat(1000);
        let quoted = quote(&long);
        assert_eq!(quoted.chars().count(), QUOTE_CHARS + 3);
        assert!(quoted.ends_with("…'"));
        assert_eq!(quote("é"), "'é'");
    }
}
