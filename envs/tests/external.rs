//! The external-command reward environment against real child processes: `sh` one-liners
//! and small `python3` scripts written to a temporary folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sfess_envs::external::ExternalReward;
use sfess_envs::{EnvError, Environment, EvalPolicy, KHotSpace, Observation, Phase};
use tch::{Device, Kind, Tensor};

/// Timeout for children that do answer: generous, as tests run in parallel on 2 cores.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The hidden value of item `i` in `score.py`: multiples of 1/4, exact in f32.
fn hidden_value(i: i64) -> f64 {
    0.25 * ((7 * i) % 11) as f64
}

/// A reward script: reward = sum of the hidden values of the chosen items; info holds
/// the request's line, its phase as a number and whether every action was k sorted
/// distinct indices in range. Each request is appended to `requests.jsonl`; a note goes
/// to stderr (which must not disturb anything).
const SCORE_PY: &str = r#"
import json, sys
log = open(sys.argv[1], "a")
for request in sys.stdin:
    log.write(request); log.flush()
    r = json.loads(request)
    n, k = r["n"], r["k"]
    value = lambda i: 0.25 * ((7 * i) % 11)
    ok = all(len(a) == k and a == sorted(set(a)) and all(0 <= i < n for i in a) for a in r["actions"])
    rewards = [sum(value(i) for i in a) for a in r["actions"]]
    phase = {"train": 0, "validation": 1, "test": 2}[r["phase"]]
    print("scored line", r["line"], file=sys.stderr, flush=True)
    print(json.dumps({"rewards": rewards, "info": {"line": r["line"], "phase": phase, "ok": float(ok)}}), flush=True)
"#;

/// A temporary folder with `score.py`, and the command that runs it.
struct Scorer {
    dir: tempfile::TempDir,
}

impl Scorer {
    fn new() -> Scorer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("score.py"), SCORE_PY).unwrap();
        Scorer { dir }
    }

    fn command(&self) -> String {
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        format!("python3 '{}' '{}'", path("score.py"), path("requests.jsonl"))
    }

    /// The requests the script received, parsed.
    fn requests(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join("requests.jsonl")).unwrap();
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }
}

/// Actions `[S, 1, n]` with the given items set.
fn actions(n: i64, subsets: &[&[i64]]) -> Tensor {
    let rows: Vec<Tensor> = subsets
        .iter()
        .map(|items| {
            let index = Tensor::from_slice(items);
            Tensor::zeros([n], (Kind::Float, Device::Cpu)).index_fill(0, &index, 1.0)
        })
        .collect();
    Tensor::stack(&rows, 0).unsqueeze(1)
}

/// A policy whose top-k action is fixed.
struct FixedPolicy {
    action: Tensor,
}

impl EvalPolicy for FixedPolicy {
    fn logits(&self, _observation: &Observation) -> Result<Tensor, EnvError> {
        Ok(self.action.copy())
    }
    fn act(&self, _observation: &Observation) -> Result<Tensor, EnvError> {
        Ok(self.action.copy())
    }
    fn embed(&self, _inputs: &Tensor) -> Result<Option<Tensor>, EnvError> {
        Ok(None)
    }
}

fn space(n: usize, k: usize) -> KHotSpace {
    KHotSpace::new(n, k).unwrap()
}

/// Whether process `pid` is running (a zombie waiting to be reaped counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => !stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Polls for up to 2 s until `pid` is gone.
fn assert_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!alive(pid), "process {pid} is still running");
}

/// Our own child (reaped by the environment) must have left `/proc` altogether.
fn assert_reaped(pid: u32) {
    let path = PathBuf::from(format!("/proc/{pid}"));
    let deadline = Instant::now() + Duration::from_secs(2);
    while path.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!path.exists(), "child {pid} was not reaped");
}

/// The error message of a failed call.
fn message<T: std::fmt::Debug>(result: Result<T, EnvError>) -> String {
    let err = result.unwrap_err();
    assert!(matches!(err, EnvError::RewardProcess { .. }), "{err:?}");
    err.to_string()
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
fn a_working_command_scores_steps_evaluations_and_baselines() {
    let scorer = Scorer::new();
    let (n, k) = (10, 3);
    let mut env = ExternalReward::new(&scorer.command(), space(n, k), TIMEOUT).unwrap();
    let spec = env.spec().clone();
    assert_eq!((spec.name.as_str(), spec.rows, spec.differentiable), ("cmd", 1, false));
    assert_eq!((spec.metric.as_str(), spec.higher_is_better, spec.observation_dim), ("reward", true, 0));
    let mut rng = <rand_xoshiro::Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(1);
    assert!(env.reset(&mut rng).unwrap().inputs.is_empty());

    let subsets: [&[i64]; 4] = [&[0, 1, 2], &[9, 3, 5], &[2, 4, 8], &[1, 6, 7]];
    for step in 1..=2 {
        let transition = env.step(&actions(n as i64, &subsets)).unwrap();
        assert_eq!(transition.rewards.size(), [4, 1]);
        assert_eq!(transition.rewards.kind(), Kind::Float);
        assert!(transition.terminated && !transition.truncated);
        let rewards = Vec::<f32>::try_from(transition.rewards.reshape([-1])).unwrap();
        let expected: Vec<f32> =
            subsets.iter().map(|items| items.iter().map(|&i| hidden_value(i)).sum::<f64>() as f32).collect();
        assert_eq!(rewards, expected);
        let info =
            BTreeMap::from([("line".to_owned(), step as f64), ("ok".to_owned(), 1.0), ("phase".to_owned(), 0.0)]);
        assert_eq!(transition.info, info);
    }

    let best: &[i64] = &[1, 3, 8];
    let policy = FixedPolicy { action: actions(n as i64, &[best]).view([1, n as i64]) };
    let metrics = env.evaluate(Phase::Validation, &policy).unwrap();
    assert_eq!(metrics["reward"], best.iter().map(|&i| hidden_value(i)).sum::<f64>());
    assert_eq!((metrics["line"], metrics["phase"], metrics["ok"]), (3.0, 1.0, 1.0));

    let random = env.baselines(Phase::Test).unwrap();
    assert_eq!(random.keys().collect::<Vec<_>>(), ["random"]);
    assert_eq!(env.baselines(Phase::Test).unwrap(), random, "the random subsets come from a fixed seed");

    let requests = scorer.requests();
    assert_eq!(requests.len(), 5);
    for (i, request) in requests.iter().enumerate() {
        assert_eq!(request["line"], i as u64 + 1);
        assert_eq!((request["n"].as_u64(), request["k"].as_u64()), (Some(10), Some(3)));
    }
    let phases: Vec<_> = requests.iter().map(|r| r["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, ["train", "train", "validation", "test", "test"]);
    assert_eq!(requests[0]["actions"], serde_json::json!([[0, 1, 2], [3, 5, 9], [2, 4, 8], [1, 6, 7]]));
    assert_eq!(requests[2]["actions"], serde_json::json!([[1, 3, 8]]));
    // The baseline is the mean reward of the 32 subsets it sent, all distinct sets of k.
    let sent = requests[3]["actions"].as_array().unwrap();
    assert_eq!(sent.len(), 32);
    let mean = sent
        .iter()
        .map(|a| a.as_array().unwrap().iter().map(|i| hidden_value(i.as_i64().unwrap())).sum::<f64>())
        .sum::<f64>()
        / 32.0;
    assert!((random["random"] - mean).abs() < 1e-12, "{} vs {mean}", random["random"]);
    let distinct: std::collections::HashSet<_> = sent.iter().map(|a| a.to_string()).collect();
    assert!(distinct.len() > 16, "32 random 3-subsets of 10 items should mostly differ");

    let child = env.child_id();
    drop(env);
    assert_reaped(child);
}

#[test]
fn invalid_actions_are_rejected_without_killing_the_command() {
    let scorer = Scorer::new();
    let mut env = ExternalReward::new(&scorer.command(), space(5, 2), TIMEOUT).unwrap();
    let not_k_hot = actions(5, &[&[0, 1, 2]]);
    assert!(matches!(env.step(&not_k_hot), Err(EnvError::Config { .. })));
    let wrong_shape = Tensor::zeros([2, 5], (Kind::Float, Device::Cpu));
    assert!(matches!(env.step(&wrong_shape), Err(EnvError::ActionShape { .. })));
    let transition = env.step(&actions(5, &[&[0, 4]])).unwrap();
    assert_eq!(transition.rewards.double_value(&[0, 0]), hidden_value(0) + hidden_value(4));
    assert_eq!(transition.info["line"], 1.0, "nothing was sent for the invalid actions");
}

#[test]
fn large_batches_pass_through_the_pipes() {
    let scorer = Scorer::new();
    let (n, k) = (2000, 500);
    let mut env = ExternalReward::new(&scorer.command(), space(n, k), TIMEOUT).unwrap();
    // 64 actions of 500 indices: a request line of about 150 kB, larger than a pipe's buffer.
    let subsets: Vec<Vec<i64>> = (0..64).map(|s| (0..k as i64).map(|j| (s + 4 * j) % n as i64).collect()).collect();
    let refs: Vec<&[i64]> = subsets.iter().map(Vec::as_slice).collect();
    let transition = env.step(&actions(n as i64, &refs)).unwrap();
    let rewards = Vec::<f32>::try_from(transition.rewards.reshape([-1])).unwrap();
    for (reward, items) in rewards.iter().zip(&subsets) {
        assert_eq!(*reward as f64, items.iter().map(|&i| hidden_value(i)).sum::<f64>());
    }
    assert_eq!(transition.info["ok"], 1.0);
}

#[test]
fn a_command_that_exits_after_one_answer_is_reported_with_its_status_and_stderr() {
    let command = "read line; echo '[1]'; read line; echo 'boom: out of memory' >&2; exit 3";
    let mut env = ExternalReward::new(command, space(4, 1), TIMEOUT).unwrap();
    let child = env.child_id();
    let action = actions(4, &[&[2]]);
    assert_eq!(env.step(&action).unwrap().rewards.double_value(&[0, 0]), 1.0);
    let err = message(env.step(&action));
    assert!(err.starts_with(&format!("reward command '{command}', batch line 2: ")), "{err}");
    assert!(err.contains("exited before answering"), "{err}");
    assert!(err.contains("exit status: 3"), "{err}");
    assert!(err.contains("boom: out of memory"), "{err}");
    assert_reaped(child);
    // The environment is dead from now on.
    let later = message(env.step(&action));
    assert!(later.contains("has failed"), "{later}");
    let policy = FixedPolicy { action: actions(4, &[&[2]]).view([1, 4]) };
    assert!(message(env.evaluate(Phase::Test, &policy)).contains("has failed"));
    assert!(message(env.baselines(Phase::Test)).contains("has failed"));
}

#[test]
fn a_command_that_exits_at_once_is_reported() {
    let mut env = ExternalReward::new("echo 'cannot load the model' >&2; exit 1", space(3, 1), TIMEOUT).unwrap();
    // Let the command die before the request is written (the broken-pipe path).
    std::thread::sleep(Duration::from_millis(100));
    let err = message(env.step(&actions(3, &[&[0]])));
    assert!(err.contains("batch line 1") && err.contains("exited"), "{err}");
    assert!(err.contains("exit status: 1") && err.contains("cannot load the model"), "{err}");
}

#[test]
fn a_command_that_never_answers_times_out_and_is_killed() {
    // `sleep` reads nothing: the 150 kB request cannot even be written in full.
    let mut env = ExternalReward::new("sleep 30", space(2000, 500), Duration::from_millis(500)).unwrap();
    let child = env.child_id();
    let subsets: Vec<Vec<i64>> = (0..64).map(|s| (0..500).map(|j| (s + 4 * j) % 2000).collect()).collect();
    let refs: Vec<&[i64]> = subsets.iter().map(Vec::as_slice).collect();
    let start = Instant::now();
    let err = message(env.step(&actions(2000, &refs)));
    let elapsed = start.elapsed();
    assert!(err.contains("no answer within 0.5s"), "{err}");
    assert!(elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_reaped(child);
    assert!(message(env.step(&actions(2000, &refs[..1]))).contains("has failed"));
}

#[test]
fn garbage_answers_are_quoted() {
    let mut env = ExternalReward::new("while read l; do echo 'not json'; done", space(3, 1), TIMEOUT).unwrap();
    let child = env.child_id();
    let err = message(env.step(&actions(3, &[&[1]])));
    assert!(err.contains("not JSON") && err.contains("'not json'"), "{err}");
    assert_reaped(child);

    let mut env = ExternalReward::new(r#"while read l; do echo '[1, "a"]'; done"#, space(3, 1), TIMEOUT).unwrap();
    let err = message(env.step(&actions(3, &[&[1], &[2]])));
    assert!(err.contains(r#"reward 1 is "a", not a finite number: '[1, "a"]'"#), "{err}");

    let mut env = ExternalReward::new("while read l; do echo '[null]'; done", space(3, 1), TIMEOUT).unwrap();
    assert!(message(env.step(&actions(3, &[&[1]]))).contains("reward 0 is null"));

    let mut env = ExternalReward::new(r#"while read l; do echo '["NaN"]'; done"#, space(3, 1), TIMEOUT).unwrap();
    assert!(message(env.step(&actions(3, &[&[1]]))).contains("not a finite number"));

    let long = format!("while read l; do echo '{}'; done", "y".repeat(5000));
    let mut env = ExternalReward::new(&long, space(3, 1), TIMEOUT).unwrap();
    let err = message(env.step(&actions(3, &[&[1]])));
    // The message names the command (which holds all the y's), then quotes the answer.
    let (_, quoted) = err.split_once("not JSON").unwrap();
    assert!(quoted.contains(&format!("'{}…'", "y".repeat(200))) && !quoted.contains(&"y".repeat(201)), "{err}");
}

#[test]
fn a_wrong_number_of_rewards_names_both_counts() {
    let mut env = ExternalReward::new("while read l; do echo '[1, 2]'; done", space(3, 1), TIMEOUT).unwrap();
    let err = message(env.step(&actions(3, &[&[0], &[1], &[2]])));
    assert!(err.contains("2 rewards for 3 actions"), "{err}");
}

#[test]
fn a_second_line_after_an_answer_is_an_error() {
    let mut env = ExternalReward::new("while read l; do echo '[1]'; echo '[2]'; done", space(3, 1), TIMEOUT).unwrap();
    assert_eq!(env.step(&actions(3, &[&[0]])).unwrap().rewards.double_value(&[0, 0]), 1.0);
    std::thread::sleep(Duration::from_millis(200));
    let err = message(env.step(&actions(3, &[&[0]])));
    assert!(err.contains("printed a line after its answer to line 1: '[2]'"), "{err}");
}

#[test]
fn a_command_that_is_not_found_shows_the_shells_message_and_status() {
    let mut env = ExternalReward::new("no-such-reward-command-sfess --x", space(3, 1), TIMEOUT).unwrap();
    let err = message(env.step(&actions(3, &[&[0]])));
    assert!(err.contains("not found") && err.contains("no-such-reward-command-sfess"), "{err}");
    assert!(err.contains("exit status: 127"), "{err}");
}

#[test]
fn empty_commands_and_zero_timeouts_are_configuration_errors() {
    assert!(matches!(ExternalReward::new("  ", space(3, 1), TIMEOUT), Err(EnvError::Config { .. })));
    assert!(matches!(ExternalReward::new("cat", space(3, 1), Duration::ZERO), Err(EnvError::Config { .. })));
}

/// A grandchild that ignores the end of its stdin (it sleeps on) is killed with the group.
#[test]
fn dropping_the_environment_kills_grandchildren() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = r#"
import os, sys, time
open(sys.argv[1], "w").write(str(os.getpid()))
for line in sys.stdin:
    print("[0.5]", flush=True)
time.sleep(60)
"#;
    std::fs::write(dir.path().join("stubborn.py"), script).unwrap();
    // `; true` keeps `sh` from exec-ing python: python is a grandchild.
    let command = format!("python3 '{}' '{}'; true", dir.path().join("stubborn.py").display(), pid_file.display());
    let mut env = ExternalReward::new(&command, space(3, 1), TIMEOUT).unwrap();
    let child = env.child_id();
    assert_eq!(env.step(&actions(3, &[&[0]])).unwrap().rewards.double_value(&[0, 0]), 0.5);
    let grandchild = read_pid(&pid_file);
    assert_ne!(grandchild, child);
    assert!(alive(grandchild));
    let start = Instant::now();
    drop(env);
    assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
    assert_reaped(child);
    assert_gone(grandchild);
}

/// A background process the command left behind goes with the group, even though the
/// command itself exits cleanly at the end of its stdin.
#[test]
fn dropping_the_environment_kills_background_processes() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let command = format!("sleep 30 & echo $! > '{}'; while read l; do echo '[2]'; done", pid_file.display());
    let mut env = ExternalReward::new(&command, space(3, 1), TIMEOUT).unwrap();
    let child = env.child_id();
    assert_eq!(env.step(&actions(3, &[&[1]])).unwrap().rewards.double_value(&[0, 0]), 2.0);
    let sleeper = read_pid(&pid_file);
    assert!(alive(sleeper));
    let start = Instant::now();
    drop(env);
    assert!(start.elapsed() < Duration::from_millis(900), "the command exits at EOF: {:?}", start.elapsed());
    assert_reaped(child);
    assert_gone(sleeper);
}

/// A failure (here a garbage answer) also kills the whole group.
#[test]
fn a_failure_kills_background_processes_too() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let command = format!("sleep 30 & echo $! > '{}'; while read l; do echo oops; done", pid_file.display());
    let mut env = ExternalReward::new(&command, space(3, 1), TIMEOUT).unwrap();
    let sleeper = read_pid(&pid_file);
    assert!(message(env.step(&actions(3, &[&[1]]))).contains("'oops'"));
    assert_reaped(env.child_id());
    assert_gone(sleeper);
}
