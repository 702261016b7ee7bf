//! `cmd-episodes` against real child processes: small `python3` scripts and `sh` one-liners.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sfess_envs::episodes::{Episodic, roll_out};
use sfess_envs::external::RewardCommand;
use sfess_envs::external_episodes::ExternalEpisodes;
use sfess_envs::registry::Registry;
use sfess_envs::{EnvError, Environment, FixedAction, KHotSpace, Phase, SequentialEnvironment};
use tch::{Device, Kind, Tensor};

/// Timeout for children that do answer: generous, as tests run in parallel on 2 cores.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Episodes of a counter per row: the state is `[start, count]`, `start` drawn from the
/// row's seed (`random.Random(seed)`), `count` the sum of the items chosen so far; the
/// reward is the sum of the chosen items plus a noise drawn from the row's generator. An
/// episode terminates at step `t = seed % 3` (so after 1 to 3 steps). Requests go to
/// `requests.jsonl`.
const COUNTER_PY: &str = r#"
import json, random, sys
log = open(sys.argv[1], "a")
for line in sys.stdin:
    log.write(line); log.flush()
    r = json.loads(line)
    if r["request"] == "reset":
        seeds = r["seeds"]
        rngs = [random.Random(s) for s in seeds]
        state = [[rng.random(), 0.0] for rng in rngs]
        print(json.dumps({"states": state}), flush=True)
        continue
    rewards = [sum(a) + rng.random() for a, rng in zip(r["actions"], rngs)]
    for s, a in zip(state, r["actions"]):
        s[1] += sum(a)
    ended = [r["t"] >= s % 3 for s in seeds]
    print(json.dumps({"rewards": rewards, "terminated": ended, "states": state, "info": {"t": r["t"]}}), flush=True)
"#;

/// A temporary folder holding `script` as `script.py`, and the command that runs it.
struct Script {
    dir: tempfile::TempDir,
}

impl Script {
    fn new(script: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("script.py"), script).unwrap();
        Self { dir }
    }

    fn command(&self) -> RewardCommand {
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        RewardCommand::new(format!("python3 '{}' '{}'", path("script.py"), path("requests.jsonl")), TIMEOUT)
    }

    /// The requests the script received, parsed.
    fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.path().join("requests.jsonl")).unwrap();
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }
}

fn space(n: usize, k: usize) -> KHotSpace {
    KHotSpace::new(n, k).unwrap()
}

/// k-hot actions `[R, n]` with the given items set.
fn actions(n: i64, subsets: &[&[i64]]) -> Tensor {
    let rows: Vec<Tensor> = subsets
        .iter()
        .map(|items| Tensor::zeros([n], (Kind::Float, Device::Cpu)).index_fill(0, &Tensor::from_slice(items), 1.0))
        .collect();
    Tensor::stack(&rows, 0)
}

fn values(tensor: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(tensor.to_kind(Kind::Double).reshape([-1])).unwrap()
}

fn flags(tensor: &Tensor) -> Vec<bool> {
    Vec::<bool>::try_from(tensor.reshape([-1])).unwrap()
}

/// The error message of a failed call, which must be a `RewardProcess` error.
fn message<T: std::fmt::Debug>(result: Result<T, EnvError>) -> String {
    let err = result.unwrap_err();
    assert!(matches!(err, EnvError::RewardProcess { .. }), "{err:?}");
    err.to_string()
}

/// Polls for up to 2 s until our reaped child `pid` has left `/proc`.
fn assert_reaped(pid: u32) {
    let path = PathBuf::from(format!("/proc/{pid}"));
    let deadline = Instant::now() + Duration::from_secs(2);
    while path.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!path.exists(), "child {pid} was not reaped");
}

/// Whether process `pid` is running (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits until the file at `path` holds a pid.
fn read_pid(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(pid) = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok()) {
            return pid;
        }
        assert!(Instant::now() < deadline, "no pid in {}", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn reset_and_step_round_trip_with_equal_seeds_giving_equal_episodes() {
    let script = Script::new(COUNTER_PY);
    let mut env = ExternalEpisodes::new(script.command(), space(5, 2), 2, 4).unwrap();
    let spec = env.spec().clone();
    assert_eq!(
        (spec.name.as_str(), spec.rows, spec.observation_dim, spec.metric.as_str()),
        ("cmd-episodes", 1, 2, "return")
    );
    assert_eq!(env.horizon(), 4);
    // Seeds whose high 53 bits are 5, 7 and 5.
    let seeds = [5 << 11, (7 << 11) | 0x7ff, (5 << 11) | 3];
    let states = env.reset(&seeds).unwrap();
    assert_eq!(states.size(), [3, 2]);
    let first = values(&states);
    assert_eq!(first[0..2], first[4..6], "equal seeds start equal");
    assert_ne!(first[0], first[2]);
    assert_eq!((first[1], first[3]), (0.0, 0.0));

    let step = env.step(&actions(5, &[&[0, 4], &[1, 2], &[4, 0]])).unwrap();
    assert_eq!((step.rewards.size(), step.rewards.kind()), (vec![3], Kind::Double));
    let rewards = values(&step.rewards);
    assert_eq!(rewards[0], rewards[2], "equal seeds and actions draw equal noise");
    assert!(rewards[0] >= 4.0 && rewards[0] < 5.0 && rewards[1] >= 3.0 && rewards[1] < 4.0, "{rewards:?}");
    assert_eq!(flags(&step.terminated), [false, false, false], "5 % 3 = 2, 7 % 3 = 1");
    assert_eq!(flags(&step.truncated), [false, false, false]);
    assert_eq!(values(&step.observations), [first[0], 4.0, first[2], 3.0, first[4], 4.0]);
    assert_eq!(step.info, BTreeMap::from([("t".to_owned(), 0.0)]));
    let step = env.step(&actions(5, &[&[0, 1], &[1, 2], &[3, 4]])).unwrap();
    assert_eq!(flags(&step.terminated), [false, true, false]);

    let requests = script.requests();
    assert_eq!(
        requests[0],
        json!({"line": 1, "request": "reset", "phase": "train", "n": 5, "k": 2, "seeds": [5, 7, 5]})
    );
    assert_eq!(
        requests[1],
        json!({"line": 2, "request": "step", "phase": "train", "t": 0, "actions": [[0, 4], [1, 2], [0, 4]]})
    );
    assert_eq!((requests[2]["t"].as_u64(), requests.len()), (Some(1), 3));
    let child = env.child_id();
    drop(env);
    assert_reaped(child);
}

#[test]
fn seeds_are_cut_to_53_bits() {
    let script = Script::new(COUNTER_PY);
    let mut env = ExternalEpisodes::new(script.command(), space(3, 1), 2, 4).unwrap();
    assert_eq!(env.reset(&[u64::MAX, 0, 1 << 11]).unwrap().size(), [3, 2]);
    assert_eq!(script.requests()[0]["seeds"], json!([(1u64 << 53) - 1, 0, 1]));
}

#[test]
fn episodes_end_when_terminated_and_evaluation_sends_its_phase() {
    let script = Script::new(COUNTER_PY);
    let command = script.command();
    let mut env = ExternalEpisodes::new(command, space(4, 1), 2, 5).unwrap();
    // Episodes of 1, 2 and 3 steps (seed % 3 = 0, 1, 2): the roll-out stops after 3 steps.
    let seeds = [3 << 11, 4 << 11, 5 << 11];
    let mut act =
        |_: usize, _: &mut dyn SequentialEnvironment, _: &sfess_envs::Observation| Ok(actions(4, &[&[2], &[2], &[2]]));
    let rollout = roll_out(&mut env, &seeds, &mut act).unwrap();
    assert_eq!(values(&rollout.lengths().unwrap()), [1.0, 2.0, 3.0]);
    let returns = values(&rollout.returns().unwrap());
    assert!(returns.iter().zip([1.0, 2.0, 3.0]).all(|(r, steps)| *r >= 2.0 * steps && *r < 3.0 * steps), "{returns:?}");
    assert_eq!(script.requests().len(), 4, "a reset and 3 steps, not the horizon's 5");

    // Evaluation and baselines tell the command their phase; training after them is `train` again.
    let mut env = Episodic::new(env.with_evaluation_episodes(6).unwrap());
    let policy = FixedAction(actions(4, &[&[3]]));
    let metrics = env.evaluate(Phase::Validation, &policy).unwrap();
    assert!(metrics["return"] > 0.0 && metrics["length"] >= 1.0 && metrics["length"] <= 3.0, "{metrics:?}");
    assert_eq!(env.evaluate(Phase::Validation, &policy).unwrap(), metrics, "the same held-out episodes");
    let random = env.baselines(Phase::Test).unwrap()["random"];
    assert!(random > 0.0, "{random}");
    assert_eq!(env.inner().reset(&[1]).unwrap().size(), [1, 2]);
    let requests = script.requests();
    let resets: Vec<(&str, usize)> = requests
        .iter()
        .filter(|r| r["request"] == "reset")
        .map(|r| (r["phase"].as_str().unwrap(), r["seeds"].as_array().unwrap().len()))
        .collect();
    assert_eq!(resets, [("train", 3), ("validation", 6), ("validation", 6), ("test", 6), ("train", 1)]);
    let phases: std::collections::BTreeSet<_> = requests.iter().map(|r| r["phase"].as_str().unwrap()).collect();
    assert_eq!(phases.len(), 3);
    assert!(
        requests.iter().all(|r| r["seeds"].as_array().is_none_or(|s| s.iter().all(|x| x.as_u64().unwrap() < 1 << 53)))
    );
}

#[test]
fn a_step_before_reset_and_bad_actions_leave_the_command_running() {
    let script = Script::new(COUNTER_PY);
    let mut env = ExternalEpisodes::new(script.command(), space(4, 2), 2, 5).unwrap();
    assert!(matches!(env.step(&actions(4, &[&[0, 1]])), Err(EnvError::NotReset { .. })));
    assert_eq!(env.reset(&[0, 1]).unwrap().size(), [2, 2]);
    assert!(matches!(env.step(&actions(4, &[&[0, 1]])), Err(EnvError::ActionShape { .. })));
    assert!(matches!(env.step(&actions(4, &[&[0, 1, 2], &[0, 1]])), Err(EnvError::Config { .. })));
    assert_eq!(values(&env.step(&actions(4, &[&[0, 1], &[2, 3]])).unwrap().observations)[1], 1.0);
}

/// The error of the first step of a command that answers the reset `{"states": [[0], [0]]}`
/// and each step `answer`.
fn step_error(answer: &str) -> String {
    let command = format!("read l; echo '{{\"states\": [[0], [0]]}}'; while read l; do echo '{answer}'; done");
    let mut env = ExternalEpisodes::new(RewardCommand::new(command, TIMEOUT), space(3, 1), 1, 4).unwrap();
    assert_eq!(env.reset(&[1, 2]).unwrap().size(), [2, 1]);
    let child = env.child_id();
    let err = message(env.step(&actions(3, &[&[0], &[1]])));
    assert_reaped(child);
    let again = message(env.step(&actions(3, &[&[0], &[1]])));
    assert!(again.contains("has failed earlier"), "{again}");
    err
}

#[test]
fn malformed_answers_are_errors_naming_the_line() {
    let rest = r#""terminated": [false, false], "states": [[0], [0]]"#;
    for (answer, phrase) in [
        (format!(r#"{{"rewards": [1], {rest}}}"#), "batch line 2: the answer has 1 rewards for 2 episodes"),
        (format!(r#"{{"rewards": [1, null], {rest}}}"#), "batch line 2: reward 1 is null, not a finite number"),
        (format!(r#"{{"rewards": [1, 1e39], {rest}}}"#), "reward 1 is 1e39, outside the range of f32"),
        (format!(r#"{{"rewards": [NaN, 1], {rest}}}"#), "batch line 2: the answer is not JSON"),
        (
            r#"{"rewards": [1, 2], "terminated": [false, "no"], "states": [[0], [0]]}"#.to_owned(),
            r#"terminated 1 is "no", not true or false"#,
        ),
        (
            r#"{"rewards": [1, 2], "terminated": [false, false], "states": [[0]]}"#.to_owned(),
            "got 1 state rows, expected 2",
        ),
        (
            r#"{"rewards": [1, 2], "terminated": [false, false], "states": [[0], [0, 1]]}"#.to_owned(),
            "state row 1 has 2 numbers, expected 1",
        ),
    ] {
        let err = step_error(&answer);
        assert!(err.contains(phrase), "{phrase:?} not in {err:?}");
        assert!(err.starts_with("reward command 'read l;"), "{err}");
    }
}

#[test]
fn a_reset_with_the_wrong_number_of_rows_is_an_error() {
    let command = RewardCommand::new("while read l; do echo '{\"states\": [[0, 1]]}'; done", TIMEOUT);
    let mut env = ExternalEpisodes::new(command, space(3, 1), 2, 4).unwrap();
    let err = message(env.reset(&[1, 2, 3]));
    assert!(err.contains("batch line 1: got 1 state rows, expected 3"), "{err}");
}

#[test]
fn a_dying_command_is_reported_with_the_line_its_status_and_stderr() {
    let command = "read l; echo '{\"states\": [[1]]}'; read l; echo 'the machine broke' >&2; exit 3";
    let mut env = ExternalEpisodes::new(RewardCommand::new(command, TIMEOUT), space(2, 1), 1, 4).unwrap();
    assert_eq!(values(&env.reset(&[9]).unwrap()), [1.0]);
    let child = env.child_id();
    let err = message(env.step(&actions(2, &[&[1]])));
    assert!(err.contains("batch line 2: the reward process exited before answering (exit status: 3)"), "{err}");
    assert!(err.contains("the machine broke"), "{err}");
    assert_reaped(child);
}

#[test]
fn a_command_that_never_answers_times_out() {
    let command = RewardCommand::new("read l; sleep 30", Duration::from_millis(200));
    let mut env = ExternalEpisodes::new(command, space(2, 1), 1, 4).unwrap();
    let err = message(env.reset(&[1]));
    assert!(err.contains("batch line 1: no answer within 0.2s"), "{err}");
}

#[test]
fn dropping_the_environment_kills_its_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let command =
        format!("sleep 30 & echo $! > '{}'; while read l; do echo '{{\"states\": [[1]]}}'; done", pid_file.display());
    let mut env = ExternalEpisodes::new(RewardCommand::new(command, TIMEOUT), space(2, 1), 1, 4).unwrap();
    assert_eq!(values(&env.reset(&[1]).unwrap()), [1.0]);
    let (child, sleeper) = (env.child_id(), read_pid(&pid_file));
    assert!(alive(sleeper));
    drop(env);
    assert_reaped(child);
    let deadline = Instant::now() + Duration::from_secs(2);
    while alive(sleeper) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!alive(sleeper), "the background sleep outlived the environment");
}

#[test]
fn configuration_errors() {
    let config = |result: Result<ExternalEpisodes, EnvError>| matches!(result, Err(EnvError::Config { .. }));
    assert!(config(ExternalEpisodes::new(RewardCommand::new("cat", TIMEOUT), space(2, 1), 0, 4)));
    assert!(config(ExternalEpisodes::new(RewardCommand::new("cat", TIMEOUT), space(2, 1), 1, 0)));
    assert!(config(ExternalEpisodes::new(RewardCommand::new(" ", TIMEOUT), space(2, 1), 1, 4)));
    let missing = RewardCommand { working_dir: Some("/no/such/folder".into()), ..RewardCommand::new("cat", TIMEOUT) };
    assert!(config(ExternalEpisodes::new(missing, space(2, 1), 1, 4)));
    let env = ExternalEpisodes::new(RewardCommand::new("cat", TIMEOUT), space(2, 1), 1, 4).unwrap();
    assert!(config(env.with_name("Not A Name")));
}

/// The registered `cmd-episodes` runs `examples/episodes.py` from its folder (a relative
/// path in the command), evaluates a fixed policy and the random baseline.
#[test]
fn the_registered_environment_runs_the_example() {
    let registry = Registry::shipped();
    let entry = registry.get("cmd-episodes").unwrap();
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let given: BTreeMap<String, Value> = [
        ("command", json!("python3 episodes.py")),
        ("dir", json!(examples)),
        ("n", json!(8)),
        ("state-dim", json!(8)),
        ("horizon", json!(20)),
        ("eval-episodes", json!(64)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let options = entry.options_from(&given).unwrap();
    let mut env = entry.make(entry.settings(2, 8, 0, Device::Cpu, &options).into_make()).unwrap();
    assert_eq!(env.spec().name, "cmd-episodes");
    assert!(env.sequential().is_some());
    // Servicing the same two machines every step lets the others break: worse than random
    // subsets (about 2.5 against 8 over 20 steps).
    let fastest = env.evaluate(Phase::Validation, &FixedAction(actions(8, &[&[6, 7]]))).unwrap();
    let random = env.baselines(Phase::Test).unwrap()["random"];
    assert!(fastest["return"] < random && random < 20.0, "{fastest:?} vs random {random}");
    assert!(fastest["return"] > 0.0 && fastest["length"] < 20.0 && fastest["info.broken"] > 0.0, "{fastest:?}");
    assert_eq!(env.evaluate(Phase::Validation, &FixedAction(actions(8, &[&[6, 7]]))).unwrap(), fastest);
    // Its own baseline, servicing the most worn machines, beats random subsets.
    let with_baseline: BTreeMap<String, Value> =
        given.clone().into_iter().chain([("baselines".to_owned(), json!("most-worn"))]).collect();
    let options = entry.options_from(&with_baseline).unwrap();
    let mut env = entry.make(entry.settings(2, 8, 0, Device::Cpu, &options).into_make()).unwrap();
    let baselines = env.baselines(Phase::Test).unwrap();
    assert_eq!(baselines["random"], random, "the same held-out episodes");
    assert!(baselines["most-worn"] > random + 2.0 && baselines["most-worn"] <= 20.0, "{baselines:?}");
    // The example checks its n.
    let wrong: BTreeMap<String, Value> =
        given.into_iter().map(|(k, v)| if k == "n" { (k, json!(9)) } else { (k, v) }).collect();
    let options = entry.options_from(&wrong).unwrap();
    let mut env = entry.make(entry.settings(2, 8, 0, Device::Cpu, &options).into_make()).unwrap();
    let err = env.evaluate(Phase::Validation, &FixedAction(actions(9, &[&[6, 7]]))).unwrap_err().to_string();
    assert!(err.contains("batch line 1") && err.contains("episodes.py has n = 8 machines, got n = 9"), "{err}");
}

/// Episodes whose reward is the sum of the items chosen, never ending, with two baselines
/// of the command's own: `top` chooses the k highest items, `low` the k lowest. Requests
/// go to `requests.jsonl`.
const BASELINES_PY: &str = r#"
import json, sys
log = open(sys.argv[1], "a")
for line in sys.stdin:
    log.write(line); log.flush()
    r = json.loads(line)
    if r["request"] == "reset":
        rows = len(r["seeds"])
        print(json.dumps({"states": [[0.0]] * rows}), flush=True)
    elif r["request"] == "baseline":
        n, k = r["n"], r["k"]
        items = list(range(n - k, n))[::-1] if r["baseline"] == "top" else list(range(k))
        print(json.dumps({"actions": [items] * rows}), flush=True)
    else:
        print(json.dumps({"rewards": [sum(a) for a in r["actions"]], "terminated": [False] * rows,
                          "states": [[r["t"] + 1.0]] * rows}), flush=True)
"#;

#[test]
fn the_commands_own_baselines_are_played_on_the_held_out_episodes() {
    let script = Script::new(BASELINES_PY);
    let env = ExternalEpisodes::new(script.command(), space(5, 2), 1, 3).unwrap();
    let env = env.with_evaluation_episodes(4).unwrap().with_baselines(" top,low ").unwrap();
    assert_eq!(env.baseline_names(), ["top", "low"]);
    let mut env = Episodic::new(env);
    let baselines = env.baselines(Phase::Test).unwrap();
    // 3 steps of items 3 + 4, and of items 0 + 1; random subsets average 2 + 2 per step.
    assert_eq!((baselines["top"], baselines["low"]), (21.0, 3.0), "{baselines:?}");
    assert!(baselines["random"] > 3.0 && baselines["random"] < 21.0, "{baselines:?}");
    assert_eq!(baselines.len(), 3);

    // Each step of a baseline's episodes: its request, then the step with its actions, sorted.
    let requests = script.requests();
    let top_start = requests.iter().position(|r| r["request"] == "baseline").unwrap();
    assert_eq!(requests[top_start - 1]["request"], "reset");
    assert_eq!(requests[top_start - 1]["phase"], "test");
    assert_eq!(
        requests[top_start],
        json!({"line": top_start + 1, "request": "baseline", "phase": "test", "baseline": "top", "t": 0, "n": 5, "k": 2})
    );
    assert_eq!(requests[top_start + 1]["actions"], json!([[3, 4], [3, 4], [3, 4], [3, 4]]));
    let asked: Vec<(&str, u64)> = requests
        .iter()
        .filter(|r| r["request"] == "baseline")
        .map(|r| (r["baseline"].as_str().unwrap(), r["t"].as_u64().unwrap()))
        .collect();
    assert_eq!(asked, [("top", 0), ("top", 1), ("top", 2), ("low", 0), ("low", 1), ("low", 2)]);
    // Without the option the command is never asked.
    let script = Script::new(BASELINES_PY);
    let mut env = Episodic::new(ExternalEpisodes::new(script.command(), space(5, 2), 1, 3).unwrap());
    assert_eq!(env.baselines(Phase::Test).unwrap().keys().collect::<Vec<_>>(), ["random"]);
    assert!(script.requests().iter().all(|r| r["request"] != "baseline"));
}

#[test]
fn baseline_names_must_be_keys_other_than_random_and_given_once() {
    let env = || ExternalEpisodes::new(RewardCommand::new("cat", TIMEOUT), space(2, 1), 1, 4).unwrap();
    for (names, phrase) in [
        ("random", "\"random\" is taken"),
        ("greedy,greedy", "\"greedy\" is given twice"),
        ("greedy,,lookahead", "the baseline name \"\" is empty"),
        ("top 5", "has the character ' '"),
    ] {
        let err = env().with_baselines(names).unwrap_err();
        assert!(matches!(err, EnvError::Config { .. }) && err.to_string().contains(phrase), "{phrase:?}: {err}");
    }
    let mut env = env().with_baselines("greedy").unwrap();
    assert!(matches!(env.baseline_action("greedy"), Err(EnvError::NotReset { .. })));
    let err = env.baseline_action("lookahead").unwrap_err();
    assert!(matches!(err, EnvError::Config { .. }) && err.to_string().contains("no baseline named"), "{err}");
}

#[test]
fn malformed_baseline_answers_are_errors_naming_the_line() {
    for (answer, phrase) in [
        (r#"{"actions": [[0, 1]]}"#, "batch line 2: got 1 actions, expected 2 (one per episode)"),
        (r#"{"actions": [[0, 1], [2]]}"#, "action 1 has 1 items, expected 2"),
        (r#"{"actions": [[0, 3], [1, 2]]}"#, "action 0 has the item 3, outside 0..3"),
        (r#"{"actions": [[0, -1], [1, 2]]}"#, "action 0 has the item -1, outside 0..3"),
        (r#"{"actions": [[1, 1], [1, 2]]}"#, "action 0 repeats the item 1"),
        (r#"{"actions": [[1.0, 0], [1, 2]]}"#, "action 0 has the item 1.0, not an integer in 0..3"),
        (r#"{"actions": [[1e30, 0], [1, 2]]}"#, "action 0 has the item 1e+30, not an integer in 0..3"),
        (r#"{"actions": [[0, 1], 2]}"#, "action 1 is 2, not an array of 2 items"),
        (r#"{"rewards": [1, 2]}"#, "the answer has no \"actions\""),
    ] {
        let command = format!("read l; echo '{{\"states\": [[0], [0]]}}'; while read l; do echo '{answer}'; done");
        let env = ExternalEpisodes::new(RewardCommand::new(command, TIMEOUT), space(3, 2), 1, 4).unwrap();
        let mut env = env.with_baselines("greedy").unwrap();
        assert_eq!(env.reset(&[1, 2]).unwrap().size(), [2, 1]);
        let err = message(env.baseline_action("greedy"));
        assert!(err.contains(phrase), "{phrase:?} not in {err:?}");
    }
}
