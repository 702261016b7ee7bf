//! Episodes kept by an external command, in any language, that talks JSON lines on its
//! stdin and stdout (`sfess-agent train --env cmd-episodes --env-option command='python3
//! examples/episodes.py' ...`): the sequential counterpart of [`crate::external`]'s `cmd`.
//!
//! The command holds the state of `R` episodes at once. It starts them, one per seed, when
//! asked to `reset`, and moves each one step with the `k` items chosen for it when asked to
//! `step`, answering the rewards, whether each episode has ended and the next states. The
//! environment is a [`SequentialEnvironment`] (the registry wraps it in
//! [`crate::episodes::Episodic`]): the trainer rolls out `S` episodes from each of `B`
//! start seeds per training step (SFESS, SFESS + VR over their returns), and evaluation is
//! the mean return of the policy's top-k actions over held-out episodes. Its metric is
//! `return` (higher is better); the policy reads each episode's state (`--policy mlp`, or
//! `mlp-action`, which also reads the previous action).
//!
//! # Protocol
//!
//! The command is run once, by `sh -c '<command>'` in its own process group, with the same
//! machinery as `cmd` (see [`crate::external`]): it lives for the whole run, runs in the
//! folder of the option `dir` (so that a relative path means the same wherever the run is
//! started or resumed), answers each request line with one line within the timeout, and
//! exits when its stdin closes. Two kinds of request alternate, told apart by `request`:
//!
//! 1. **Reset.** A new batch of episodes, one per seed:
//!
//!    ```text
//!    {"line":1,"request":"reset","phase":"train","n":6,"k":2,"seeds":[1733256483124861,17179869184,1733256483124861]}
//!    ```
//!
//!    The command forgets the episodes it had and answers the first state of each, exactly
//!    `R` rows (one per seed, in order) of exactly `d` numbers (option `state-dim`), finite
//!    in f32:
//!
//!    ```text
//!    {"states": [[0.5, 1.0], [0.25, 0.0], [0.5, 1.0]]}
//!    ```
//!
//! 2. **Step.** One action per episode, the sorted 0-based indices of its `k` items:
//!
//!    ```text
//!    {"line":2,"request":"step","phase":"train","t":0,"actions":[[0,3],[1,2],[0,3]]}
//!    ```
//!
//!    and the command answers, for each episode in order, its reward, whether it reached
//!    a terminal state (`true` or `false`), and its next state (`R` rows of `d` numbers):
//!
//!    ```text
//!    {"rewards": [1.5, 0.0, 1.5], "terminated": [false, true, false], "states": [[0.4, 1.0], [0.0, 0.0], [0.4, 1.0]]}
//!    ```
//!
//!    optionally with `"truncated": [bools]` (an episode cut short by a time limit of the
//!    command's own) and `"info": {"name": number, ...}`, diagnostics logged with the
//!    training step (means over the steps) and in evaluation, as `info.NAME` metrics
//!    ([`crate::info_metric`]; names as `cmd`'s, see [its rule](crate::external#protocol)).
//!    Fields the environment does not know are ignored, in requests and answers.
//!
//! 3. **Baseline** (only with the option `baselines`, such as `greedy,lookahead`). The
//!    command's own policies are played as baselines on the held-out episodes, after
//!    `random`, and reported beside it (`summary.json`'s `baselines`, `compare`'s table).
//!    At each step of their episodes the environment asks the command what one of them
//!    does in every episode's current state:
//!
//!    ```text
//!    {"line":7,"request":"baseline","phase":"test","baseline":"greedy","t":0,"n":6,"k":2}
//!    ```
//!
//!    and the command answers one action per episode, `k` distinct items in `0..n` each,
//!    in any order:
//!
//!    ```text
//!    {"actions": [[0, 3], [1, 2], [0, 3]]}
//!    ```
//!
//!    The environment then sends those actions as the step request of `t`, as for any
//!    policy, so the baseline's return is counted exactly as the policy's and `random`'s.
//!
//! The fields of the requests:
//!
//! - `line` counts the requests from 1;
//! - `phase` is `train` for the episodes of a training step, `validation` or `test` for the
//!   held-out episodes of an evaluation (the policy's top-k actions) and of the `random`
//!   baseline (random subsets, on the test phase at the end of a run);
//! - `n` and `k`: the number of items and the number chosen per step;
//! - `seeds`: one integer per episode, in `[0, 2^53)` (exact in every JSON parser): the
//!   environment's 64-bit episode seed shifted right by 11 bits (`seed >> 11`, its high 53
//!   bits), so that equal seeds stay equal. A training step's seeds depend on the run's
//!   seed and the step alone (a resumed run sends the same ones); the held-out seeds of a
//!   phase are fixed, the same at every evaluation;
//! - `t`: the step of the episodes, from 0 after each reset;
//! - `actions`: one entry per episode, in the order of the reset's seeds.
//!
//! **Equal seeds, equal episodes.** Episodes with equal seeds must start in the same state
//! and, for equal actions, go the same way: draw each episode's noise from a generator of
//! its own, seeded by its seed (in Python, `random.Random(seed)` per row), never from one
//! shared by the rows. A training reset holds `S·B` rows (`--samples` copies of the
//! `--batch-size` start seeds, copy-major: row `i` has the seed of start `i % B`), and
//! SFESS + VR compares the returns of the `S` copies of a start, which differ only by
//! their actions. Drawing the same numbers at every step whatever the actions (common
//! random numbers) makes that comparison sharper.
//!
//! **Ends of episodes.** An episode ends at the first step whose answer has `terminated`
//! or `truncated` true for it, or after `horizon` steps (option `horizon`, `T`). Until
//! every episode of the batch has ended (or the horizon), every step request carries an
//! action for every row, those of ended episodes included: the command answers anything
//! well formed for them (a reward of 0 and the last state, say), which is ignored. After
//! the last step the next request is a reset.
//!
//! A minimal Python command, whose state is one number `x` per episode that the items
//! chosen push up (those above the middle) or down (those below), with noise, and whose
//! reward is `-|x|`:
//!
//! ```text
//! import json, random, sys
//! for line in sys.stdin:
//!     r = json.loads(line)
//!     if r["request"] == "reset":
//!         centre = (r["n"] - 1) * r["k"] / 2  # the mean sum of k items
//!         rngs = [random.Random(seed) for seed in r["seeds"]]  # one generator per episode
//!         x = [rng.uniform(-1, 1) for rng in rngs]
//!         print(json.dumps({"states": [[v] for v in x]}), flush=True)
//!     else:  # high items push x up, low ones down, with noise; the goal is x = 0
//!         x = [v + 0.1 * (sum(a) - centre) + 0.05 * rng.gauss(0, 1) for v, a, rng in zip(x, r["actions"], rngs)]
//!         print(json.dumps({"rewards": [-abs(v) for v in x], "terminated": [abs(v) > 2 for v in x],
//!                           "states": [[v] for v in x]}), flush=True)
//! ```
//!
//! `examples/episodes.py` is a fuller one (machines to maintain).
//!
//! # Failures
//!
//! A working folder that does not exist, a `name` or a baseline's name that is not a key
//! (or a baseline named `random`, or twice), a state width or a horizon of 0 are
//! [`EnvError::Config`] when the environment is made; a step or a baseline request before
//! any reset is [`EnvError::NotReset`], and actions of the wrong shape or not k-hot are errors
//! that leave the command running. Each other failure is an [`EnvError::RewardProcess`]
//! naming the command and the request line, and leaves no process behind, as with `cmd`
//! (see [its failures](crate::external#failures): the command exiting before it answers,
//! with its exit status and the end of its stderr; no answer within the timeout; an
//! answer line over [`crate::external::MAX_ANSWER_BYTES`]; a line printed after an
//! answer), and:
//!
//! - an answer that is not JSON, or not an object with the fields above: the message
//!   quotes the start of the answer;
//! - a baseline's actions of the wrong count or shape (`got 3 actions, expected 4`,
//!   `action 1 has 3 items, expected 2`, `action 0 has the item 9, outside 0..8`, `action
//!   2 repeats the item 4`);
//! - the wrong number of rows (`got 3 state rows, expected 4`, `the answer has 3 rewards
//!   for 4 episodes`, `the answer has 2 terminated flags for 4 episodes`) or a state of the
//!   wrong width (`state row 2 has 5 numbers, expected 3`);
//! - a reward or a state entry that is not a number finite in f32 (`reward 1 is null, not
//!   a finite number`, `state row 0, entry 1 is 1e39, outside the range of f32
//!   (±3.4e38)`);
//! - a `terminated` or `truncated` entry that is not `true` or `false` (`terminated 2 is
//!   1, not true or false`).
//!
//! A caller's stop flag ([`ExternalEpisodes::set_interrupt`]) stops a wait as with `cmd`.
//! After a failure or an interruption the environment is dead: every later request fails.
//! On drop the command's stdin is closed, it has up to 1 s to exit, and then its whole
//! process group is killed and reaped.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tch::{Device, Kind, Tensor};

use crate::env::{EnvError, EnvSpec, Phase, chosen_lists, k_hot_rows};
use crate::episodes::{EVALUATION_EPISODES, EpisodeStep, SequentialEnvironment};
use crate::external::MAX_REWARD_TIMEOUT;
use crate::external::process::{CommandLink, RewardCommand};
use crate::external::protocol::{
    baseline_fields, parse_actions, parse_baseline_names, parse_reset, parse_step, reset_fields, step_fields,
};
use crate::space::KHotSpace;

/// The environment's name on the command line.
pub const NAME: &str = "cmd-episodes";

/// The episodes under way.
#[derive(Debug, Clone, Copy)]
struct UnderWay {
    /// How many (`R`, the seeds of the last reset).
    episodes: usize,
    /// The index of the next step, from 0.
    t: usize,
}

/// The environment of episodes kept by an external command; see the [module docs](self)
/// for the protocol.
#[derive(Debug)]
pub struct ExternalEpisodes {
    spec: EnvSpec,
    horizon: usize,
    evaluation_episodes: usize,
    /// The running command and its request lines.
    link: CommandLink,
    /// The phase of the next resets (`None`: training).
    phase: Option<Phase>,
    /// `None` before the first reset (and while one is answered).
    under_way: Option<UnderWay>,
    /// The command's own baselines (option `baselines`), played on the held-out episodes.
    baselines: Vec<String>,
}

impl ExternalEpisodes {
    /// Starts `command.command` (run by `sh -c`, in its own process group, in
    /// `command.working_dir` if given) for episodes of up to `horizon` steps, with actions of
    /// `space` and states of `state_dim` numbers; every answer must come within
    /// `command.timeout`.
    ///
    /// # Errors
    /// [`EnvError::Config`] for a `state_dim` or `horizon` of 0, an empty command, a zero
    /// timeout or a working folder that is not a folder; [`EnvError::RewardProcess`] when
    /// `sh` cannot be started. A command that `sh` cannot find fails at the first request.
    pub fn new(command: RewardCommand, space: KHotSpace, state_dim: usize, horizon: usize) -> Result<Self, EnvError> {
        let config = |problem: &str| EnvError::Config { env: NAME.to_owned(), problem: problem.to_owned() };
        if state_dim == 0 {
            return Err(config("the states need at least one number (state-dim >= 1)"));
        }
        if horizon == 0 {
            return Err(config("the horizon must be at least 1 step"));
        }
        let (n, k) = (space.n(), space.k());
        let description = format!(
            "choose {k} of {n} items per step of episodes of up to {horizon} steps kept by the command '{}' \
             (states of {state_dim} numbers)",
            command.command
        );
        let link = CommandLink::start(command, NAME)?;
        let spec = EnvSpec {
            name: NAME.to_owned(),
            space,
            rows: 1,
            differentiable: false,
            metric: "return".to_owned(),
            higher_is_better: true,
            observation_dim: state_dim,
            description,
        };
        Ok(Self {
            spec,
            horizon,
            evaluation_episodes: EVALUATION_EPISODES,
            link,
            phase: None,
            under_way: None,
            baselines: Vec::new(),
        })
    }

    /// Renames the environment (its [`EnvSpec::name`]), as the option `name` does.
    ///
    /// # Errors
    /// [`EnvError::Config`] for a name that breaks [`crate::registry::check_name`]'s rule.
    pub fn with_name(mut self, name: &str) -> Result<Self, EnvError> {
        crate::external::rename(&mut self.spec, name)?;
        Ok(self)
    }

    /// Evaluates over `count` held-out episodes per phase instead of
    /// [`EVALUATION_EPISODES`] (512), for a slow command.
    ///
    /// # Errors
    /// [`EnvError::Config`] for 0.
    pub fn with_evaluation_episodes(mut self, count: usize) -> Result<Self, EnvError> {
        if count == 0 {
            return Err(EnvError::Config {
                env: self.spec.name.clone(),
                problem: "evaluation needs at least one held-out episode".to_owned(),
            });
        }
        self.evaluation_episodes = count;
        Ok(self)
    }

    /// Plays the command's own policies `names` (comma-separated, as the option `baselines`)
    /// as baselines on the held-out test episodes, beside `random`: at each of their steps a
    /// `baseline` request asks the command for the actions of one of them.
    ///
    /// # Errors
    /// [`EnvError::Config`] for a name that is not a key (1 to 64 ASCII letters, digits, `_`
    /// or `-`), `random`, or a name given twice.
    pub fn with_baselines(mut self, names: &str) -> Result<Self, EnvError> {
        self.baselines =
            parse_baseline_names(names).map_err(|problem| EnvError::Config { env: self.spec.name.clone(), problem })?;
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

    /// The `phase` of the requests.
    fn phase_name(&self) -> &'static str {
        self.phase.map_or("train", Phase::name)
    }
}

impl SequentialEnvironment for ExternalEpisodes {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn horizon(&self) -> usize {
        self.horizon
    }

    /// Sends a reset request with the seeds cut to 53 bits (`seed >> 11`); the states
    /// `[R, d]` (f32) the command answers.
    fn reset(&mut self, seeds: &[u64]) -> Result<Tensor, EnvError> {
        self.under_way = None;
        let dim = self.spec.observation_dim;
        let fields = reset_fields(self.phase_name(), self.spec.space, seeds);
        let rows = seeds.len();
        let states = self.link.request(&fields, |text| parse_reset(text, rows, dim))?;
        self.under_way = Some(UnderWay { episodes: rows, t: 0 });
        Ok(Tensor::from_slice(&states).f_view([rows as i64, dim as i64])?)
    }

    /// Sends the actions `[R, n]` as a step request; the command's rewards (f64),
    /// `terminated` and `truncated` (bool, `[R]`), next states `[R, d]` (f32) and info.
    fn step(&mut self, actions: &Tensor) -> Result<EpisodeStep, EnvError> {
        let Some(under_way) = self.under_way else {
            return Err(EnvError::NotReset { env: self.spec.name.clone() });
        };
        let (rows, n, dim) = (under_way.episodes, self.spec.space.n(), self.spec.observation_dim);
        if actions.size() != [rows as i64, n as i64] {
            return Err(EnvError::ActionShape { env: self.spec.name.clone(), rows, n, shape: actions.size() });
        }
        let subsets = chosen_lists(&self.spec, actions)?;
        let fields = step_fields(self.phase_name(), under_way.t, &subsets)
            .map_err(|e| self.link.error(self.link.next_line(), format!("writing the request: {e}")))?;
        let answer = self.link.request(&fields, |text| parse_step(text, rows, dim))?;
        self.under_way = Some(UnderWay { t: under_way.t + 1, ..under_way });
        let bools = |values: &[bool]| Tensor::from_slice(values).f_to_device(Device::Cpu);
        Ok(EpisodeStep {
            rewards: Tensor::from_slice(&answer.rewards).f_to_kind(Kind::Double)?,
            terminated: bools(&answer.terminated)?,
            truncated: bools(&answer.truncated)?,
            observations: Tensor::from_slice(&answer.states).f_view([rows as i64, dim as i64])?,
            info: answer.info,
        })
    }

    fn baseline_names(&self) -> Vec<String> {
        self.baselines.clone()
    }

    /// Sends a baseline request for step `t` of the episodes under way; the actions the
    /// command answers, `[R, n]`.
    fn baseline_action(&mut self, name: &str) -> Result<Tensor, EnvError> {
        if !self.baselines.iter().any(|known| known == name) {
            return Err(EnvError::Config {
                env: self.spec.name.clone(),
                problem: format!("no baseline named {name:?} (option baselines: {:?})", self.baselines.join(",")),
            });
        }
        let Some(under_way) = self.under_way else {
            return Err(EnvError::NotReset { env: self.spec.name.clone() });
        };
        let (rows, space) = (under_way.episodes, self.spec.space);
        let fields = baseline_fields(self.phase_name(), space, name, under_way.t);
        let actions = self.link.request(&fields, |text| parse_actions(text, rows, space))?;
        k_hot_rows(&actions, space.n())
    }

    fn evaluation_episodes(&self) -> usize {
        self.evaluation_episodes
    }

    /// Keeps the phase for the `phase` field of the next requests.
    fn begin_phase(&mut self, phase: Option<Phase>) {
        self.phase = phase;
    }
}

/// The registry's entry `cmd-episodes`: episodes kept by the user's program over JSON
/// lines (see the [module docs](self)).
pub fn entry() -> crate::registry::EnvEntry {
    description().constructor(|make| {
        let options = make.options;
        let n = options.count("n")?;
        let space = KHotSpace::new(n, make.k).map_err(|e| make.error(format!("n = {n}, k = {}: {e}", make.k)))?;
        let command = RewardCommand::from_options(&make)?;
        let mut env = ExternalEpisodes::new(command, space, options.count("state-dim")?, options.count("horizon")?)?
            .with_evaluation_episodes(options.count("eval-episodes")?)?;
        if let Some(names) = options.optional_text("baselines")? {
            env = env.with_baselines(names)?;
        }
        env.set_interrupt(make.interrupt.clone());
        Ok(Box::new(crate::episodes::Episodic::new(env.with_name(options.text("name")?)?)))
    })
}

/// [`entry`] without its constructor: what [`Registry::catalog`](crate::registry::Registry::catalog) lists.
pub(crate) fn description() -> crate::registry::EnvEntry {
    use crate::registry::{EnvEntry, MAX_ITEMS, MAX_ROWS, MAX_WIDTH, OptionSpec, Shape};
    EnvEntry::described(
        NAME,
        "episodes kept by your command (option command) over JSON lines: reset one episode per seed, then step \
         with the k items chosen per episode; baselines random and the command's own (option baselines)",
    )
    .default_k(10)
    .metric("return", true)
    .option(OptionSpec::text(
        "command",
        None,
        "the command that keeps the episodes, run by sh -c (for example 'python3 episodes.py')",
    ))
    .option(OptionSpec::required_count("n", 1, MAX_ITEMS, "items to choose k of at each step"))
    .option(OptionSpec::required_count("state-dim", 1, MAX_WIDTH, "numbers d in each episode's state"))
    .option(OptionSpec::count("horizon", 10, 1, 10_000, "steps per episode T (at most)"))
    .option(OptionSpec::count(
        "eval-episodes",
        EVALUATION_EPISODES,
        1,
        MAX_ROWS,
        "held-out episodes per evaluation (and per baseline)",
    ))
    .option(OptionSpec::optional_text(
        "baselines",
        "the command's own policies to play as baselines on the test episodes, comma-separated (greedy,lookahead): \
         the command answers each \"baseline\" request with their actions",
    ))
    .option(OptionSpec::positive("timeout", 60.0, MAX_REWARD_TIMEOUT, "seconds to wait for each answer of the command"))
    .option(OptionSpec::folder("dir", ".", "the folder the command runs in (a new run records it absolute)"))
    .option(OptionSpec::text(
        "name",
        Some(NAME),
        "the environment's name in messages, the run's folder and summary, and compare's table (lowercase letters, \
         digits, - and _, starting with a letter)",
    ))
    .baseline("random")
    .shape(|make| Ok(Shape { items: make.options.count("n")?, items_are: "items (option n)".to_owned(), rows: 1 }))
}
