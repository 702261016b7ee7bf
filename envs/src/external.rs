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
//! for the whole run. It runs in the caller's current folder, or in the folder given as
//! [`RewardCommand::working_dir`] (so that a relative path, as in `python3 score.py`,
//! means the same wherever the run is started or resumed). For every batch of actions the
//! environment writes **one line** of JSON to the command's stdin (and flushes it):
//!
//! ```text
//! {"line":12,"phase":"train","request":"rewards","step":300,"seed":4503599627370495,"n":100,"k":10,"actions":[[3,17,42,...],[...],...]}
//! ```
//!
//! - `line` counts the requests from 1;
//! - `phase` is `train` (a training step), `validation` or `test` (evaluation of the
//!   policy's top-k subset, and the baselines);
//! - `request` is `rewards` (in contextual mode it can also be `contexts`, below); a
//!   command that only scores subsets can ignore it, as any field it does not know;
//! - `step` (training requests only): the training step, from 0;
//! - `seed`: an integer in `[0, 2^53)` (exact in every JSON parser) for the command's own
//!   noise. In training it depends on the run's seed and the step alone, the same for
//!   every request of the step: a command that draws its noise from it (in Python,
//!   `random.Random(request["seed"])`) gives the same rewards to a run resumed from a
//!   checkpoint as to a straight one. Evaluation requests carry a fixed seed per phase, 1
//!   for `validation` and 2 for `test`, and no `step`. (A library caller that calls
//!   [`Environment::reset`] instead of [`Environment::reset_step`] sends a seed drawn
//!   from its generator and no `step`; a `step` with no `reset` before it sends neither.)
//! - `baseline` (only in the request for the random-subset baseline): `"random"`, see
//!   [Baselines](#baselines);
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
//! Each diagnostic is recorded as `info.NAME` ([`info_metric`]; `info.accuracy` here), in
//! training and in evaluation, so that it never stands for one of the trainer's own metrics
//! (`loss`, `reward`, `seconds_per_step`, ...). Its name must be a key: 1 to 64 ASCII
//! letters, digits, `_` or `-` (as the names of baselines, below), so that it is the same
//! in every file of the run and in every table; any other name is an error.
//!
//! Rewards are "higher is better" and must be numbers that are finite in f32, as the
//! rewards become f32 tensors (a string such as `"NaN"`, `null` or `1e39` is an error).
//! An answer line may hold up to [`MAX_ANSWER_BYTES`] (16 MiB). Blank lines on stdout are
//! skipped; anything else the command prints to stdout is taken as an answer, so logs
//! belong on stderr (which is captured, never echoed, and quoted when the command fails).
//! The command should exit when its stdin closes (end of file), which is how the
//! environment asks it to stop.
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
//! and a noisy one that repeats exactly on resume (its noise comes from `seed`):
//!
//! ```text
//! import json, random, sys
//! for line in sys.stdin:
//!     request = json.loads(line)
//!     noise = random.Random(request["seed"])
//!     print(json.dumps([sum(a) + noise.gauss(0, 1) for a in request["actions"]]), flush=True)
//! ```
//!
//! # Baselines
//!
//! At the end of a run the environment measures its baselines on the test phase (they go
//! to `summary.json` and to `compare`'s table). It always has `random`: the mean reward of
//! 32 random subsets (from a fixed seed), sent as one rewards request marked
//! `"baseline":"random"`:
//!
//! ```text
//! {"line":901,"phase":"test","request":"rewards","baseline":"random","seed":2,"n":100,"k":10,"actions":[...]}
//! ```
//!
//! A command can add its own baselines (the score of a classical method, such as greedy)
//! to its answer to that request, as an object `baselines` of names to numbers:
//!
//! ```text
//! {"rewards": [0.5, 0.25, ...], "baselines": {"greedy": 0.83, "local-search": 0.86}}
//! ```
//!
//! A command that knows nothing of baselines answers as to any rewards request and only
//! `random` is reported. The names must be 1 to 64 ASCII letters, digits, `_` or `-` (they
//! become keys, `baseline.NAME` in `metrics.jsonl`), other than `random`, and the values
//! finite numbers; `baselines` in the answer to any other request is an error (so that
//! baselines sent where they would never be read are not silently lost). In contextual
//! mode the baseline request follows the held-out contexts of the phase, so a command's
//! baseline can be its method's mean over those contexts.
//!
//! # Its name
//!
//! The option `name` (default `cmd`; [`ExternalReward::with_name`] in code) renames the
//! environment: errors, messages and the run's summary call it by that name, such as
//! `--env-option name=facility-location`. It follows the rule of every environment's name:
//! lowercase letters, digits, `-` and `_`, starting with a letter.
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
//!    {"line":7,"phase":"train","request":"contexts","step":3,"seed":2718281828459045,"rows":4}
//!    ```
//!
//!    and the command answers exactly `R` rows of exactly `d` numbers, finite in f32:
//!
//!    ```text
//!    {"contexts": [[0.1, -0.5, 0.3], [0.9, 0.0, 0.2], [0.4, 0.4, -0.1], [0.0, 1.0, 0.0]]}
//!    ```
//!
//!    `step` and `seed` are the training step's, as above (the step's rewards request
//!    carries the same): a command that draws its contexts from `seed` makes the run
//!    reproducible, resumed or not.
//!    The command must remember the contexts it sent last: the next rewards request
//!    scores actions for them. The policy sees them as one observation input `[R, d]`.
//! 2. **Rewards.** The training step's `S` sampled actions for each context come in one
//!    request with the number of rows,
//!
//!    ```text
//!    {"line":8,"phase":"train","request":"rewards","step":3,"seed":2718281828459045,"n":20,"k":3,"rows":4,"actions":[[...],...]}
//!    ```
//!
//!    holding `S·R` actions in sample-major order: entry `i` is an action for context row
//!    `i % R` of the last contexts. The answer is `S·R` rewards in the same order, as
//!    above (an array, or an object with `rewards` and `info`).
//!
//! Evaluation and the baseline use held-out contexts: a contexts request with `phase`
//! `validation` or `test` and a fixed `seed` (1 for validation, 2 for test, so a command
//! that draws from the seed gives the same held-out contexts at every evaluation), then
//! one rewards request with that phase and seed: the policy's top-k subset for each row
//! (the metric `reward` is the mean over the rows), or 32 random subsets per row,
//! sample-major, from a fixed seed (the baseline `random` is their mean reward).
//!
//! An evaluation replaces the command's last contexts, so a training `step` needs a new
//! `reset` after one (`step` before any `reset` is [`EnvError::NotReset`]).
//!
//! # Failures
//!
//! A working folder that does not exist, or a `name` that is not a key, is an
//! [`EnvError::Config`] when the environment is made. Each later failure is an
//! [`EnvError::RewardProcess`] naming the command and the request line, and leaves no
//! process behind:
//!
//! - the command exits (or closes its stdout) before answering — for example `sh`'s exit
//!   status 127 for a command that is not found: the message gives the exit status and
//!   the last lines (up to 20, each cut after 300 characters) it wrote to stderr;
//! - no answer within the timeout: the command is killed (a timeout too long to be a
//!   deadline, such as [`Duration::MAX`], means no limit);
//! - more than [`MAX_ANSWER_BYTES`] (16 MiB) on stdout without an end of line (`the
//!   reward process wrote more than 16 MiB without ending its answer line`): the command
//!   is killed, and no more than that limit (and one 64 KiB read) is ever held;
//! - baselines that are not an object of names to finite numbers (`baseline "greedy" is
//!   null, not a finite number`), a name that cannot be a key (`the baseline name "a.b"
//!   has the character '.'`) or is `random`, or `baselines` in an answer to a request
//!   other than the baseline request: the message quotes the start of the answer;
//! - an answer that is not JSON, not of the forms above, with the wrong number of
//!   rewards, or with an entry that is not a finite number (`reward 1 is null, not a
//!   finite number`) or is outside the range of f32 (`reward 2 is 1e39, outside the range
//!   of f32 (±3.4e38)`): the message quotes the start of the answer;
//! - in contextual mode, an answer to a contexts request that is not an object with
//!   `contexts`, with the wrong number of rows (`got 3 context rows, expected 4`), a row
//!   of the wrong length (`context row 2 has 5 numbers, expected 3`), or an entry that is
//!   not a number finite in f32;
//! - a line the command printed after its answer, before the next request (the answers
//!   would be out of step with the requests).
//!
//! A caller can also stop a wait: once the flag given to [`ExternalReward::set_interrupt`]
//! is set, the request waiting for an answer (which checks the flag every 20 ms) returns
//! [`EnvError::Interrupted`] and the command is killed.
//!
//! After a failure or an interruption the environment is dead: every later request fails.
//!
//! # Shutdown
//!
//! On drop, and after a failure other than those that kill at once (a timeout, an answer
//! line that is too long, an interruption), the environment closes the command's stdin and
//! waits up to 1 s for it to exit. Then it kills the command's whole process group with
//! `SIGKILL` (so that grandchildren, such as the `python3` of `sh -c 'python3 score.py;
//! echo done'`, go too) and reaps it. A command that put itself in another process group
//! (`setsid`) escapes this; if sfess-agent itself is killed, the command sees its stdin
//! close.

use std::collections::{BTreeMap, VecDeque};
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
use rand::Rng;
use serde_json::Value;
use tch::Tensor;

use crate::env::{
    EnvError, EnvSpec, Environment, EvalPolicy, Observation, Phase, StepSeed, Transition, check_actions, chosen_lists,
    info_metric, random_subsets,
};
use crate::space::KHotSpace;
use crate::text::printable;

/// The longest answer line, in bytes (without its end of line): 16 MiB. A command that
/// writes more to stdout without ending the line fails, and the rest is never read.
pub const MAX_ANSWER_BYTES: usize = 16 << 20;

/// The environment's name on the command line.
const NAME: &str = "cmd";
/// Bytes read from the command's stdout or stderr at a time.
const CHUNK: usize = 64 << 10;
/// Lines of the command's stderr kept for error messages.
const STDERR_LINES: usize = 20;
/// Characters kept of each stderr line (the rest of the line is read and dropped).
const STDERR_LINE_CHARS: usize = 300;
/// How often a wait for an answer checks the interrupt flag.
const INTERRUPT_POLL: Duration = Duration::from_millis(20);
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
/// The name of the random-subset baseline, which a command's own baselines cannot take.
const RANDOM_BASELINE: &str = "random";
/// The longest name of an environment or a command's baseline.
const MAX_KEY_CHARS: usize = 64;

/// Checks that `name` can be a key (of `baselines` or `info`, `baseline.NAME` or `info.NAME`
/// in the metrics, a folder or a table column): 1 to [`MAX_KEY_CHARS`] ASCII letters,
/// digits, `_` or `-`. What is wrong, otherwise.
fn check_key(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".to_owned());
    }
    if name.chars().count() > MAX_KEY_CHARS {
        return Err(format!("is longer than {MAX_KEY_CHARS} characters"));
    }
    match name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
        Some(c) => {
            Err(format!("has the character {}; use ASCII letters, digits, '_' and '-'", printable(&format!("{c:?}"))))
        }
        None => Ok(()),
    }
}

/// The `seed` of the held-out contexts of `phase` (contextual mode).
fn held_out_seed(phase: Phase) -> u64 {
    match phase {
        Phase::Validation => 1,
        Phase::Test => 2,
    }
}

/// Renames `spec` to `name`, which must follow every environment name's rule (it names a
/// folder and a command-line value): the option `name` of `cmd` and `cmd-episodes`.
///
/// # Errors
/// [`EnvError::Config`] for a name that breaks [`crate::registry::check_name`]'s rule.
pub(crate) fn rename(spec: &mut EnvSpec, name: &str) -> Result<(), EnvError> {
    crate::registry::check_name("environment name", name).map_err(|problem| EnvError::Config {
        env: spec.name.clone(),
        problem: format!("the name {}: {problem}", Value::from(name)),
    })?;
    spec.name = name.to_owned();
    Ok(())
}

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

/// The external-command reward environment; see the [module docs](self) for the protocol.
#[derive(Debug)]
pub struct ExternalReward {
    spec: EnvSpec,
    /// The running command and its request lines.
    link: CommandLink,
    /// Numbers per context in contextual mode; `None` for one global subset.
    context_dim: Option<usize>,
    /// Whether the command's last contexts are training contexts from a `reset` (contextual
    /// mode): `step` scores actions for them.
    training_contexts: bool,
    /// The step and seed of the current training step, which its requests carry; `None`
    /// before the first `reset`.
    step_seed: Option<RequestSeed>,
}

/// The `step` (training requests after [`Environment::reset_step`] only) and `seed` a
/// request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RequestSeed {
    step: Option<u64>,
    /// In `[0, 2^53)`.
    seed: u64,
}

impl RequestSeed {
    /// The fields `"step":T,"seed":S` (or `"seed":S`), each after a comma.
    fn fields(self) -> String {
        match self.step {
            Some(step) => format!(",\"step\":{step},\"seed\":{}", self.seed),
            None => format!(",\"seed\":{}", self.seed),
        }
    }

    /// The fixed seed of `phase`'s evaluation requests (1 validation, 2 test), no step.
    fn held_out(phase: Phase) -> Self {
        Self { step: None, seed: held_out_seed(phase) }
    }
}

/// `seed` cut to 53 bits (its high bits), exact as a JSON number in every language.
pub(crate) fn json_seed(seed: u64) -> u64 {
    seed >> 11
}

impl ExternalReward {
    /// Starts `command` (run by `sh -c`, in its own process group, in the current folder)
    /// and returns the environment for actions of `space`; every answer must come within
    /// `timeout`. The same as [`with_command`](Self::with_command) with
    /// [`RewardCommand::new`]`(command, timeout)`.
    ///
    /// # Errors
    /// As [`with_command`](Self::with_command).
    pub fn new(command: &str, space: KHotSpace, timeout: Duration) -> Result<Self, EnvError> {
        Self::with_command(RewardCommand::new(command, timeout), space)
    }

    /// Starts `command` in contextual mode as [`contextual_with_command`](Self::contextual_with_command)
    /// does, in the current folder, with `timeout`.
    ///
    /// # Errors
    /// As [`contextual_with_command`](Self::contextual_with_command).
    pub fn contextual(
        command: &str,
        space: KHotSpace,
        rows: usize,
        context_dim: usize,
        timeout: Duration,
    ) -> Result<Self, EnvError> {
        Self::contextual_with_command(RewardCommand::new(command, timeout), space, rows, context_dim)
    }

    /// Starts `command.command` (run by `sh -c`, in its own process group, in
    /// `command.working_dir` if given) and returns the environment for actions of `space`;
    /// every answer must come within `command.timeout`.
    ///
    /// # Errors
    /// [`EnvError::Config`] for an empty command, a zero timeout or a working folder that
    /// is not a folder, [`EnvError::RewardProcess`] when `sh` cannot be started. A command
    /// that `sh` cannot find fails at the first request (with `sh`'s exit status 127 and
    /// its message).
    pub fn with_command(command: RewardCommand, space: KHotSpace) -> Result<Self, EnvError> {
        let (n, k) = (space.n(), space.k());
        let description =
            format!("select {k} of {n} items (one global subset); reward from the command '{}'", command.command);
        Self::start(command, space, 1, None, description)
    }

    /// Starts `command` as [`with_command`](Self::with_command) does, in contextual mode:
    /// each step, the command supplies `rows` contexts of `context_dim` numbers (the
    /// observation, one input `[rows, context_dim]`), then scores `S` actions for each (see
    /// the module docs).
    ///
    /// # Errors
    /// [`EnvError::Config`] for zero `rows` or `context_dim`, and as
    /// [`with_command`](Self::with_command).
    pub fn contextual_with_command(
        command: RewardCommand,
        space: KHotSpace,
        rows: usize,
        context_dim: usize,
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
             from the command '{}'",
            command.command
        );
        Self::start(command, space, rows, Some(context_dim), description)
    }

    /// Checks the command, its folder and its timeout, starts it and builds the environment.
    fn start(
        command: RewardCommand,
        space: KHotSpace,
        rows: usize,
        context_dim: Option<usize>,
        description: String,
    ) -> Result<Self, EnvError> {
        let link = CommandLink::start(command, NAME)?;
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
        Ok(Self { spec, link, context_dim, training_contexts: false, step_seed: None })
    }

    /// Renames the environment: its [`EnvSpec::name`] (which errors, messages and the
    /// run's summary use) becomes `name` instead of `cmd`, as the option `name` does.
    ///
    /// # Errors
    /// [`EnvError::Config`] for a name that breaks [`crate::registry::check_name`]'s rule
    /// (it names folders and table columns).
    pub fn with_name(mut self, name: &str) -> Result<Self, EnvError> {
        rename(&mut self.spec, name)?;
        Ok(self)
    }

    /// The child's process id (the `sh` that runs the command; also its process group id).
    pub fn child_id(&self) -> u32 {
        self.link.child_id()
    }

    /// Makes every later wait for an answer check `flag` (every 20 ms): once it is set, the
    /// request fails with [`EnvError::Interrupted`], the command's process group is killed
    /// and the environment is dead. Replaces any earlier flag.
    pub fn set_interrupt(&mut self, flag: Arc<AtomicBool>) {
        self.link.set_interrupt(flag);
    }

    /// Sends `actions` with `phase` and `seed` as one rewards request (marked `"baseline":
    /// "random"` when `baseline`) and returns the command's answer.
    fn request_rewards(
        &mut self,
        phase: &str,
        seed: Option<RequestSeed>,
        actions: &[Vec<usize>],
        baseline: bool,
    ) -> Result<Answer, EnvError> {
        let (n, k) = (self.spec.space.n(), self.spec.space.k());
        let actions_json = serde_json::to_string(actions)
            .map_err(|e| self.link.error(self.link.next_line(), format!("writing the request: {e}")))?;
        let rows = match self.context_dim {
            Some(_) => format!(",\"rows\":{}", self.spec.rows),
            None => String::new(),
        };
        let seed = seed.map(RequestSeed::fields).unwrap_or_default();
        let marker = if baseline { ",\"baseline\":\"random\"" } else { "" };
        let fields = format!(
            "\"phase\":{},\"request\":\"rewards\"{marker}{seed},\"n\":{n},\"k\":{k}{rows},\"actions\":{actions_json}",
            Value::from(phase)
        );
        let expected = actions.len();
        self.link.request(&fields, |text| parse_answer(text, expected, baseline))
    }

    /// Asks the command for `rows` contexts for `phase` with `seed`: the tensor `[rows, d]`
    /// (f32, on the CPU). Contextual mode only.
    fn request_contexts(&mut self, phase: &str, seed: RequestSeed) -> Result<Tensor, EnvError> {
        let (rows, dim) = (self.spec.rows, self.spec.observation_dim);
        let fields =
            format!("\"phase\":{},\"request\":\"contexts\"{},\"rows\":{rows}", Value::from(phase), seed.fields());
        let values = self.link.request(&fields, |text| parse_contexts(text, rows, dim))?;
        Ok(Tensor::from_slice(&values).f_view([rows as i64, dim as i64])?)
    }

    /// Starts a training step whose requests carry `seed`: in contextual mode, asks for its
    /// contexts.
    fn start_step(&mut self, seed: RequestSeed) -> Result<Observation, EnvError> {
        self.step_seed = Some(seed);
        if self.context_dim.is_none() {
            return Ok(Observation { inputs: Vec::new() });
        }
        self.training_contexts = false;
        let contexts = self.request_contexts("train", seed)?;
        self.training_contexts = true;
        Ok(Observation { inputs: vec![contexts] })
    }

    /// The held-out contexts of `phase` as an observation (contextual mode), or no inputs.
    fn held_out_observation(&mut self, phase: Phase) -> Result<Observation, EnvError> {
        if self.context_dim.is_none() {
            return Ok(Observation { inputs: Vec::new() });
        }
        // The command's last contexts are about to be the held-out ones.
        self.training_contexts = false;
        let contexts = self.request_contexts(phase.name(), RequestSeed::held_out(phase))?;
        Ok(Observation { inputs: vec![contexts] })
    }
}

impl Environment for ExternalReward {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    /// Inputs: none for one global subset (nothing is sent to the command); in contextual
    /// mode, the `[rows, d]` contexts the command answers to a `train` contexts request.
    /// The step's requests carry a `seed` drawn from `rng` (53 bits) and no `step`; the
    /// trainer calls [`reset_step`](Self::reset_step) instead.
    fn reset(&mut self, rng: &mut dyn Rng) -> Result<Observation, EnvError> {
        let seed = json_seed(rng.next_u64());
        self.start_step(RequestSeed { step: None, seed })
    }

    /// As [`reset`](Self::reset), but the step's requests (`contexts` in contextual mode,
    /// then `rewards`) carry `"step": step.step` and `"seed"`: `step.seed` cut to 53 bits,
    /// a function of the run's seed and the step alone. Nothing is drawn from `rng`, so a
    /// command that draws its noise (and its contexts) from `seed` repeats exactly when a run
    /// resumes.
    fn reset_step(&mut self, step: StepSeed, _rng: &mut dyn Rng) -> Result<Observation, EnvError> {
        self.start_step(RequestSeed { step: Some(step.step), seed: json_seed(step.seed) })
    }

    /// Sends the `S·rows` actions `[S, rows, n]` (sample-major) as one `train` rewards
    /// request, with the step and seed of the last `reset`; rewards `[S, rows]` (f32, on the
    /// actions' device) and the answer's `info`.
    fn step(&mut self, actions: &Tensor) -> Result<Transition, EnvError> {
        let samples = check_actions(&self.spec, actions)?;
        if self.context_dim.is_some() && !self.training_contexts {
            return Err(EnvError::NotReset { env: self.spec.name.clone() });
        }
        let rows = self.spec.rows;
        let subsets = chosen_lists(&self.spec, actions)?;
        let answer = self.request_rewards("train", self.step_seed, &subsets, false)?;
        let rewards: Vec<f32> = answer.rewards.iter().map(|&r| r as f32).collect();
        let rewards = Tensor::from_slice(&rewards).f_view([samples, rows as i64])?.f_to_device(actions.device())?;
        Ok(Transition { rewards, terminated: true, truncated: false, info: answer.info })
    }

    /// `reward`: the command's reward for the policy's top-k subset, sent with `phase` (in
    /// contextual mode, the mean over the rows of the held-out contexts of `phase`); and the
    /// answer's `info` entries, as `info.NAME` ([`info_metric`]).
    fn evaluate(&mut self, phase: Phase, policy: &dyn EvalPolicy) -> Result<BTreeMap<String, f64>, EnvError> {
        let observation = self.held_out_observation(phase)?;
        let action = policy.act(&observation)?;
        let (rows, n) = (self.spec.rows, self.spec.space.n() as i64);
        if action.size() != [rows as i64, n] {
            return Err(EnvError::Policy(format!("the action has shape {:?}, expected [{rows}, {n}]", action.size())));
        }
        let subsets = chosen_lists(&self.spec, &action)?;
        let answer = self.request_rewards(phase.name(), Some(RequestSeed::held_out(phase)), &subsets, false)?;
        let mean = answer.rewards.iter().sum::<f64>() / rows as f64;
        let mut metrics: BTreeMap<String, f64> =
            answer.info.iter().map(|(name, value)| (info_metric(name), *value)).collect();
        metrics.insert("reward".to_owned(), mean);
        Ok(metrics)
    }

    /// `random`: the mean reward of 32 uniformly random k-subsets (from a fixed seed), sent
    /// as one request with `phase` and `"baseline": "random"`; in contextual mode, 32 per
    /// row of the held-out contexts of `phase`, sample-major. Then the command's own
    /// baselines, the `baselines` of its answer (see the module docs).
    fn baselines(&mut self, phase: Phase) -> Result<BTreeMap<String, f64>, EnvError> {
        self.held_out_observation(phase)?;
        let (n, k, rows) = (self.spec.space.n(), self.spec.space.k(), self.spec.rows);
        let mut subsets = random_subsets(RANDOM_SEED, RANDOM_SUBSETS * rows, n, k);
        subsets.iter_mut().for_each(|subset| subset.sort_unstable());
        let answer = self.request_rewards(phase.name(), Some(RequestSeed::held_out(phase)), &subsets, true)?;
        let mean = answer.rewards.iter().sum::<f64>() / subsets.len() as f64;
        let mut baselines = answer.baselines;
        baselines.insert(RANDOM_BASELINE.to_owned(), mean);
        Ok(baselines)
    }
}

/// A running command and the request lines sent to it: the process machinery that `cmd`
/// and `cmd-episodes` ([`crate::external_episodes`]) share. Each request is one line of JSON
/// (`{"line":N,` and the caller's fields), each answer one line, parsed by the caller; any
/// failure kills the command's process group, and every later request fails. Dropping it
/// shuts the command down (see [Shutdown](self#shutdown)).
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
                format!("no answer within {}s; the reward process was killed", self.timeout.as_secs_f64()),
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

/// A parsed answer: one reward per action, the diagnostics, and the command's baselines.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    rewards: Vec<f64>,
    info: BTreeMap<String, f64>,
    /// The command's own baselines (only in the answer to the baseline request).
    baselines: BTreeMap<String, f64>,
}

/// Parses an answer line: a JSON array of `expected` numbers finite in f32, or an object
/// `{"rewards": [...], "info": {"name": number, ...}}` (`info` optional); the answer to
/// the baseline request (`baseline` true) may also have `"baselines": {"name": number,
/// ...}`. The error says what is wrong and quotes the start of the line.
fn parse_answer(text: &str, expected: usize, baseline: bool) -> Result<Answer, String> {
    // The usual answer, an array of numbers, without a `Value` (32 bytes) per number; the
    // general path below says what is wrong with any other.
    if let Ok(rewards) = serde_json::from_str::<Vec<f64>>(text)
        && rewards.len() == expected
        && rewards.iter().all(|&x| fits_f32(x))
    {
        return Ok(Answer { rewards, info: BTreeMap::new(), baselines: BTreeMap::new() });
    }
    let value: Value = serde_json::from_str(text).map_err(|e| not_json(&e, text))?;
    let (items, info, baselines) = match &value {
        Value::Array(items) => (items, BTreeMap::new(), BTreeMap::new()),
        Value::Object(map) => {
            let Some(Value::Array(items)) = map.get("rewards") else {
                return Err(format!("the answer is an object without a \"rewards\" array: {}", quote(text)));
            };
            let info = parse_info(map, text)?;
            let baselines = match map.get("baselines") {
                None | Some(Value::Null) => BTreeMap::new(),
                Some(_) if !baseline => {
                    return Err(format!(
                        "\"baselines\" belong in the answer to the baseline request (the one with \"baseline\": \
                         \"random\"), not in this one: {}",
                        quote(text)
                    ));
                }
                Some(value) => parse_baselines(value).map_err(|why| format!("{why}: {}", quote(text)))?,
            };
            (items, info, baselines)
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
        .map(|(i, v)| f32_number(v).map_err(|why| format!("reward {i} is {why}: {}", quote(text))))
        .collect::<Result<_, _>>()?;
    Ok(Answer { rewards, info, baselines })
}

/// Parses a command's `baselines`: an object of names (as [`check_key`] accepts, other than
/// `random`) to finite numbers; what is wrong, otherwise.
fn parse_baselines(value: &Value) -> Result<BTreeMap<String, f64>, String> {
    let Value::Object(map) = value else {
        return Err(format!("the answer's \"baselines\" is {}, not an object of names to numbers", short(value)));
    };
    map.iter()
        .map(|(name, v)| {
            check_key(name).map_err(|why| format!("the baseline name {} {why}", quoted_name(name)))?;
            if name == RANDOM_BASELINE {
                return Err(format!(
                    "the baseline name \"{RANDOM_BASELINE}\" is taken (the mean reward of the random subsets); \
                     choose another"
                ));
            }
            match v.as_f64() {
                Some(x) if x.is_finite() => Ok((name.clone(), x)),
                _ => Err(format!("baseline \"{name}\" is {}, not a finite number", short(v))),
            }
        })
        .collect()
}

/// The `info` of an answer object `map` (of the line `text`): an object of names to finite
/// numbers, or none (absent or `null`). The names must be keys ([`check_key`]): each becomes
/// the metric `info.NAME` ([`info_metric`]) in every file of a run, as written. The error
/// says what is wrong and quotes the line.
pub(crate) fn parse_info(map: &serde_json::Map<String, Value>, text: &str) -> Result<BTreeMap<String, f64>, String> {
    match map.get("info") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(info)) => info
            .iter()
            .map(|(name, v)| {
                check_key(name).map_err(|why| format!("the info name {} {why}: {}", quoted_name(name), quote(text)))?;
                match v.as_f64() {
                    Some(x) if x.is_finite() => Ok((name.clone(), x)),
                    _ => Err(format!("info \"{name}\" is {}, not a number: {}", short(v), quote(text))),
                }
            })
            .collect(),
        Some(_) => Err(format!("the answer's \"info\" is not an object of numbers: {}", quote(text))),
    }
}

/// Parses the answer to a contexts request: an object `{"contexts": [[x, ...], ...]}`
/// with exactly `rows` rows of exactly `dim` numbers finite in f32; the values
/// row by row. The error says what is wrong and quotes the start of the line.
fn parse_contexts(text: &str, rows: usize, dim: usize) -> Result<Vec<f32>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| not_json(&e, text))?;
    let Some(Value::Array(items)) = value.as_object().and_then(|map| map.get("contexts")) else {
        return Err(format!(
            "the answer to a contexts request must be an object {{\"contexts\": [[number, ...], ...]}}: {}",
            quote(text)
        ));
    };
    parse_rows(items, rows, dim, "context", text)
}

/// Reads `items` (from the answer line `text`) as exactly `rows` rows of exactly `dim`
/// numbers finite in f32, each a `what` row (`context`, `state`); the values row by row.
/// The error says what is wrong (`got 3 context rows, expected 4`, `state row 2 has 5
/// numbers, expected 3`, `context row 1, entry 2 is null, not a finite number`) and
/// quotes the start of the line.
pub(crate) fn parse_rows(items: &[Value], rows: usize, dim: usize, what: &str, text: &str) -> Result<Vec<f32>, String> {
    if items.len() != rows {
        return Err(format!("got {} {what} rows, expected {rows}: {}", items.len(), quote(text)));
    }
    let mut values = Vec::with_capacity(rows * dim);
    for (r, row) in items.iter().enumerate() {
        let Value::Array(row) = row else {
            return Err(format!("{what} row {r} is {}, not an array of {dim} numbers: {}", short(row), quote(text)));
        };
        if row.len() != dim {
            return Err(format!("{what} row {r} has {} numbers, expected {dim}: {}", row.len(), quote(text)));
        }
        for (j, v) in row.iter().enumerate() {
            let x = f32_number(v).map_err(|why| format!("{what} row {r}, entry {j} is {why}: {}", quote(text)))?;
            values.push(x as f32);
        }
    }
    Ok(values)
}

/// The number `value` if f32 can hold it (rewards and contexts become f32 tensors), or
/// what it is instead (`null, not a finite number`, `1e39, outside the range of f32
/// (±3.4e38)`).
pub(crate) fn f32_number(value: &Value) -> Result<f64, String> {
    match value.as_f64() {
        Some(x) if fits_f32(x) => Ok(x),
        Some(x) if x.is_finite() => Err(format!("{x:e}, outside the range of f32 (±3.4e38)")),
        _ => Err(format!("{}, not a finite number", short(value))),
    }
}

/// Whether `x` is finite and stays finite as an f32 (at most about 3.4e38 in magnitude).
fn fits_f32(x: f64) -> bool {
    (x as f32).is_finite()
}

/// The error for an answer that is not JSON.
pub(crate) fn not_json(error: &serde_json::Error, text: &str) -> String {
    format!(
        "the answer is not JSON ({error}): {} (the command must print exactly one JSON line per request on stdout; \
         logs go to stderr)",
        quote(text)
    )
}

/// `text` in single quotes, cut after [`QUOTE_CHARS`] characters, its control characters
/// escaped ([`printable`]).
pub(crate) fn quote(text: &str) -> String {
    format!("'{}'", printable(&truncate(text, QUOTE_CHARS)))
}

/// A name from an answer as a JSON string (in double quotes), cut short, its control
/// characters escaped.
fn quoted_name(name: &str) -> String {
    short(&Value::from(name))
}

/// A JSON value as written, cut short, its control characters escaped ([`printable`]).
pub(crate) fn short(value: &Value) -> String {
    printable(&truncate(&value.to_string(), 40))
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

/// The registry's entry of the reward command (`cmd`): a black box scored by the user's
/// program over JSON lines (see the [module docs](self)).
pub fn entry() -> crate::registry::EnvEntry {
    use crate::registry::{EnvEntry, MAX_ITEMS, MAX_WIDTH, OptionSpec, Shape};
    EnvEntry::new(
        "cmd",
        "your reward command (option command) scores the subsets over JSON lines; baselines: random and the command's own",
        |make| {
            let options = make.options;
            let n = options.count("n")?;
            let space = KHotSpace::new(n, make.k).map_err(|e| make.error(format!("n = {n}, k = {}: {e}", make.k)))?;
            let command = RewardCommand::from_options(&make)?;
            let mut env = match options.optional_count("context-dim")? {
                Some(d) => ExternalReward::contextual_with_command(command, space, make.batch_size, d)?,
                None => ExternalReward::with_command(command, space)?,
            };
            env.set_interrupt(make.interrupt.clone());
            Ok(Box::new(env.with_name(options.text("name")?)?))
        },
    )
    .default_k(10)
    .metric("reward", true)
    .option(OptionSpec::text("command", None, "the reward command, run by sh -c (for example 'python3 score.py')").legacy_flag("--reward-cmd"))
    .option(OptionSpec::required_count("n", 1, MAX_ITEMS, "items to choose k of").legacy_flag("--n"))
    .option(OptionSpec::optional_count("context-dim", 1, MAX_WIDTH, "the command also supplies contexts of this many numbers, --batch-size of them per step, one subset each (pair with --policy mlp)").legacy_flag("--context-dim"))
    .option(OptionSpec::positive("timeout", 60.0, MAX_REWARD_TIMEOUT, "seconds to wait for each answer of the command").legacy_flag("--reward-timeout"))
    .option(OptionSpec::folder("dir", ".", "the folder the command runs in (a new run records it absolute)").legacy_flag("--reward-dir"))
    .option(OptionSpec::text("name", Some(NAME), "the environment's name in messages, the run's folder and summary, and compare's table (lowercase letters, digits, - and _, starting with a letter)"))
    .baseline("random")
    .shape(|make| {
        let rows = if make.options.optional_count("context-dim")?.is_some() { make.batch_size } else { 1 };
        Ok(Shape { items: make.options.count("n")?, items_are: "items (option n)".to_owned(), rows })
    })
}

/// Longest wait for one answer of the reward command, in seconds (about 11.6 days).
pub const MAX_REWARD_TIMEOUT: f64 = 1e6;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_arrays_and_objects_with_info() {
        let answer = parse_answer("[0.5, -2, 1e3]", 3, false).unwrap();
        assert_eq!(answer.rewards, vec![0.5, -2.0, 1000.0]);
        assert!(answer.info.is_empty());
        let answer = parse_answer(r#"{"rewards": [1], "info": {"acc": 0.25, "n": 3}}"#, 1, false).unwrap();
        assert_eq!(answer.rewards, vec![1.0]);
        assert_eq!(answer.info, BTreeMap::from([("acc".to_owned(), 0.25), ("n".to_owned(), 3.0)]));
        assert_eq!(parse_answer(r#"{"rewards": [], "info": null}"#, 0, false).unwrap().rewards, Vec::<f64>::new());
    }

    #[test]
    fn rejects_malformed_answers_saying_why() {
        let err = |text: &str, expected| parse_answer(text, expected, false).unwrap_err();
        assert!(err("not json", 1).contains("not JSON") && err("not json", 1).contains("'not json'"));
        assert!(err(r#"[1, "a"]"#, 2).contains(r#"reward 1 is "a""#));
        assert!(err("[null]", 1).contains("reward 0 is null"));
        assert!(err(r#"["NaN"]"#, 1).contains("not a finite number"));
        assert!(err("[1, 2, 1e39]", 3).contains("reward 2 is 1e39, outside the range of f32 (±3.4e38)"));
        assert!(err(r#"{"rewards": [-1e39]}"#, 1).contains("reward 0 is -1e39, outside the range of f32"));
        assert_eq!(parse_answer("[3e38, -3e38]", 2, false).unwrap().rewards, vec![3e38, -3e38]);
        assert!(err("[1, 2]", 3).contains("2 rewards for 3 actions"));
        assert!(err("3", 1).contains("must be a JSON array"));
        assert!(err(r#"{"reward": [1]}"#, 1).contains("without a \"rewards\" array"));
        assert!(err(r#"{"rewards": [1], "info": {"a": "b"}}"#, 1).contains("info \"a\""));
        assert!(err(r#"{"rewards": [1], "info": [1]}"#, 1).contains("\"info\" is not an object"));
    }

    #[test]
    fn the_baseline_answer_may_carry_the_commands_baselines() {
        let text = r#"{"rewards": [1, 2], "baselines": {"greedy": 0.75, "qr_2": -3}}"#;
        let answer = parse_answer(text, 2, true).unwrap();
        assert_eq!(answer.baselines, BTreeMap::from([("greedy".to_owned(), 0.75), ("qr_2".to_owned(), -3.0)]));
        assert!(parse_answer("[1]", 1, true).unwrap().baselines.is_empty());
        assert!(parse_answer(r#"{"rewards": [1], "baselines": null}"#, 1, true).unwrap().baselines.is_empty());
        // Anywhere else they are a mistake, said as such.
        let err = parse_answer(text, 2, false).unwrap_err();
        assert!(err.contains("\"baselines\" belong in the answer to the baseline request"), "{err}");
    }

    #[test]
    fn rejects_bad_baselines_saying_why() {
        let err = |baselines: &str| {
            parse_answer(&format!(r#"{{"rewards": [1], "baselines": {baselines}}}"#), 1, true).unwrap_err()
        };
        assert!(err("[0.5]").contains("\"baselines\" is [0.5], not an object of names to numbers"));
        assert!(err(r#"{"greedy": "0.5"}"#).contains(r#"baseline "greedy" is "0.5", not a finite number"#));
        assert!(err(r#"{"greedy": null}"#).contains(r#"baseline "greedy" is null, not a finite number"#));
        assert!(err(r#"{"": 1}"#).contains(r#"the baseline name "" is empty"#));
        assert!(err(r#"{"a.b": 1}"#).contains(r#"the baseline name "a.b" has the character '.'"#));
        assert!(err(r#"{"a b": 1}"#).contains("has the character ' '"));
        assert!(err(&format!(r#"{{"{}": 1}}"#, "x".repeat(65))).contains("is longer than 64 characters"));
        assert!(err(r#"{"random": 1}"#).contains("\"random\" is taken"));
        assert!(err(r#"{"greedy": 1, "bad/name": 2}"#).contains("'{\"rewards\": [1]"), "the answer is quoted");
    }

    #[test]
    fn keys_are_ascii_words_with_underscores_and_dashes() {
        for good in ["cmd", "facility-location", "greedy_2", "A", &"x".repeat(64)] {
            assert_eq!(check_key(good), Ok(()), "{good}");
        }
        for bad in ["", "a.b", "a/b", "é", "a b", "tab\t", &"x".repeat(65)] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn request_seeds_are_53_bit_fields() {
        assert_eq!(json_seed(u64::MAX), (1 << 53) - 1);
        assert_eq!(json_seed(1 << 11), 1);
        assert_eq!(RequestSeed { step: Some(300), seed: 7 }.fields(), ",\"step\":300,\"seed\":7");
        assert_eq!(RequestSeed { step: None, seed: 7 }.fields(), ",\"seed\":7");
        assert_eq!(RequestSeed::held_out(Phase::Validation).fields(), ",\"seed\":1");
        assert_eq!(RequestSeed::held_out(Phase::Test).fields(), ",\"seed\":2");
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
        assert!(
            err(r#"{"contexts": [[1, 2, 3], [4, 5, 1e39]]}"#)
                .contains("context row 1, entry 2 is 1e39, outside the range of f32 (±3.4e38)")
        );
    }

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

    #[test]
    fn quotes_are_cut_at_200_characters() {
        let long = "x".repeat(1000);
        let quoted = quote(&long);
        assert_eq!(quoted.chars().count(), QUOTE_CHARS + 3);
        assert!(quoted.ends_with("…'"));
        assert_eq!(quote("é"), "'é'");
    }
}
