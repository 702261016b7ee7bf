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

// This module is the `cmd` environment; the process layer that runs the command and the
// protocol's JSON (requests written, answers parsed and checked) are modules of their own,
// which `cmd-episodes` (`crate::external_episodes`) shares.
pub(crate) mod process;
pub(crate) mod protocol;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use rand::Rng;
use serde_json::Value;
use tch::Tensor;

use crate::env::{
    EnvError, EnvSpec, Environment, EvalPolicy, Observation, Phase, StepSeed, Transition, check_actions, chosen_lists,
    info_metric, random_subsets,
};
use crate::space::KHotSpace;
use process::CommandLink;
use protocol::{Answer, RANDOM_BASELINE, RequestSeed, json_seed, parse_answer, parse_contexts};

pub use process::{MAX_ANSWER_BYTES, RewardCommand};

/// The environment's name on the command line.
const NAME: &str = "cmd";
/// Random subsets in the `random` baseline.
const RANDOM_SUBSETS: usize = 32;
/// Seed of the random subsets of the `random` baseline.
const RANDOM_SEED: u64 = 0x5FE5_5EED;

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
        let rows = self.context_dim.map(|_| self.spec.rows);
        let fields = protocol::rewards_fields(phase, seed, baseline, self.spec.space, rows, actions)
            .map_err(|e| self.link.error(self.link.next_line(), format!("writing the request: {e}")))?;
        let expected = actions.len();
        self.link.request(&fields, |text| parse_answer(text, expected, baseline))
    }

    /// Asks the command for `rows` contexts for `phase` with `seed`: the tensor `[rows, d]`
    /// (f32, on the CPU). Contextual mode only.
    fn request_contexts(&mut self, phase: &str, seed: RequestSeed) -> Result<Tensor, EnvError> {
        let (rows, dim) = (self.spec.rows, self.spec.observation_dim);
        let fields = protocol::contexts_fields(phase, seed, rows);
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

/// The registry's entry of the reward command (`cmd`): a black box scored by the user's
/// program over JSON lines (see the [module docs](self)).
pub fn entry() -> crate::registry::EnvEntry {
    description().constructor(|make| {
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
    })
}

/// [`entry`] without its constructor: what [`Registry::catalog`](crate::registry::Registry::catalog) lists.
pub(crate) fn description() -> crate::registry::EnvEntry {
    use crate::registry::{EnvEntry, MAX_ITEMS, MAX_WIDTH, OptionSpec, Shape};
    EnvEntry::described("cmd", "your reward command (option command) scores the subsets over JSON lines; baselines: random and the command's own")
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
