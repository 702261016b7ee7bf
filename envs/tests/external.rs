//! The external-command reward environment against real child processes: `sh` one-liners
//! and small `python3` scripts written to a temporary folder.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sfess_envs::external::{ExternalReward, MAX_ANSWER_BYTES, RewardCommand};
use sfess_envs::{EnvError, Environment, EvalPolicy, FixedAction, KHotSpace, Observation, Phase, StepSeed};
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
    assert_eq!((metrics["info.line"], metrics["info.phase"], metrics["info.ok"]), (3.0, 1.0, 1.0));
    assert_eq!(metrics.len(), 4, "the reward and the info, prefixed: {metrics:?}");

    let random = env.baselines(Phase::Test).unwrap();
    assert_eq!(random.keys().collect::<Vec<_>>(), ["random"]);
    assert_eq!(env.baselines(Phase::Test).unwrap(), random, "the random subsets come from a fixed seed");

    let requests = scorer.requests();
    assert_eq!(requests.len(), 5);
    for (i, request) in requests.iter().enumerate() {
        assert_eq!(request["line"], i as u64 + 1);
        assert_eq!(request["request"], "rewards", "every request says what it asks for");
        assert_eq!((request["n"].as_u64(), request["k"].as_u64()), (Some(10), Some(3)));
        assert!(request.get("rows").is_none() && request.get("step").is_none(), "{request}");
    }
    let phases: Vec<_> = requests.iter().map(|r| r["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, ["train", "train", "validation", "test", "test"]);
    // `reset` (not `reset_step`): the steps carry a seed from the generator, evaluations
    // their phase's; only the baseline request is marked.
    let seed = requests[0]["seed"].as_u64().unwrap();
    assert!(seed < 1 << 53 && seed > 1 << 40, "{seed}");
    let seeds: Vec<_> = requests.iter().map(|r| r["seed"].as_u64().unwrap()).collect();
    assert_eq!(seeds, [seed, seed, 1, 2, 2]);
    let marked: Vec<_> = requests.iter().map(|r| r.get("baseline").and_then(|b| b.as_str())).collect();
    assert_eq!(marked, [None, None, None, Some("random"), Some("random")]);
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

/// The usual cause of a timeout: an answer printed but not flushed. Python buffers a pipe's
/// output in blocks, so the line never leaves the process; the error says what to do.
#[test]
fn an_answer_left_in_the_commands_buffer_times_out_with_the_flush_rule() {
    // (Without PYTHONUNBUFFERED, which would unbuffer it, whatever the test's environment.)
    let command = "env -u PYTHONUNBUFFERED python3 -c 'import sys, json\nfor line in sys.stdin:\n    print(json.dumps([0.0] * len(json.loads(line)[\"actions\"])))'";
    let mut env = ExternalReward::new(command, space(6, 2), Duration::from_millis(1500)).unwrap();
    let err = message(env.step(&actions(6, &[&[0, 1]])));
    assert!(err.contains("no answer within 1.5s"), "{err}");
    assert!(err.contains("must end its line and be flushed") && err.contains("flush=True"), "{err}");
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

/// An answer line that never ends is cut off at 16 MiB (not read to the end, nor held),
/// and the command's group is killed at once.
#[test]
fn an_answer_line_longer_than_the_limit_fails_and_kills_the_group() {
    assert_eq!(MAX_ANSWER_BYTES, 16 << 20);
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // 40 MB of `1` without an end of line, then a wait that only the kill ends.
    let command = format!(
        "sleep 30 & echo $! > '{}'; read l; head -c 40000000 /dev/zero | tr '\\0' 1; sleep 30",
        pid_file.display()
    );
    let mut env = ExternalReward::new(&command, space(3, 1), TIMEOUT).unwrap();
    let sleeper = read_pid(&pid_file);
    let start = Instant::now();
    let err = message(env.step(&actions(3, &[&[0]])));
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    assert!(
        err.contains("batch line 1: the reward process wrote more than 16 MiB without ending its answer line"),
        "{err}"
    );
    assert!(err.contains("the limit is 16 MiB (16777216 bytes)") && !err.contains("111"), "{err}");
    assert_reaped(env.child_id());
    assert_gone(sleeper);
    assert!(message(env.step(&actions(3, &[&[0]]))).contains("has failed"));
}

/// An answer just under the limit is an answer.
#[test]
fn an_answer_line_under_the_limit_is_read() {
    let command = "read l; printf '[0.5'; head -c 16000000 /dev/zero | tr '\\0' ' '; echo ']'; read l";
    let mut env = ExternalReward::new(command, space(3, 1), TIMEOUT).unwrap();
    assert_eq!(env.step(&actions(3, &[&[0]])).unwrap().rewards.double_value(&[0, 0]), 0.5);
}

/// A stderr line of megabytes is kept to its first 300 characters (and the lines after it
/// are kept too).
#[test]
fn a_very_long_stderr_line_is_cut_in_the_error() {
    let command = "read l; head -c 5000000 /dev/zero | tr '\\0' e >&2; echo >&2; echo 'last words' >&2; exit 2";
    let mut env = ExternalReward::new(command, space(3, 1), TIMEOUT).unwrap();
    let err = message(env.step(&actions(3, &[&[0]])));
    assert!(err.contains("exit status: 2") && err.contains("\n    last words"), "{err}");
    let (_, tail) = err.split_once("its stderr ended with:").unwrap();
    assert!(tail.contains(&format!("{}…\n", "e".repeat(300))) && !tail.contains(&"e".repeat(301)), "{err}");
}

/// Control characters a command writes (a terminal's escape sequences, a bell, a
/// carriage return that would overwrite the line) are escaped wherever an error quotes
/// its answer or its stderr.
#[test]
fn control_characters_from_the_command_are_escaped_in_errors() {
    let raw = |err: &str| err.chars().any(|c| c.is_control() && c != '\n');
    let answer = r"while read l; do printf '\033]0;pwned\007\033[2J[1, \302\233x]\r\n'; done";
    let err = message(ExternalReward::new(answer, space(3, 1), TIMEOUT).unwrap().step(&actions(3, &[&[0]])));
    assert!(!raw(&err), "{err:?}");
    assert!(err.contains(r"'\u{1b}]0;pwned\u{7}\u{1b}[2J[1, \u{9b}x]'"), "{err}");

    let stderr = r"read l; printf 'fine\n\033[31mred\033[0m\rhidden\n' >&2; exit 4";
    let err = message(ExternalReward::new(stderr, space(3, 1), TIMEOUT).unwrap().step(&actions(3, &[&[0]])));
    assert!(!raw(&err), "{err:?}");
    assert!(err.contains("\n    fine\n    \\u{1b}[31mred\\u{1b}[0m\\rhidden"), "{err}");

    // Escaped in the JSON answer, raw in the name and the value once parsed.
    let answer = |json: &str| format!("while read l; do printf '%s\\n' '{json}'; done");
    let name = answer(r#"{"rewards": [1], "info": {"\u001b[5m": 1}}"#);
    let err = message(ExternalReward::new(&name, space(3, 1), TIMEOUT).unwrap().step(&actions(3, &[&[0]])));
    assert!(!raw(&err) && err.contains(r#"the info name "\u001b[5m" has the character '\u{1b}'"#), "{err}");
    let value = answer(r#"{"rewards": [1], "info": {"ok": "\u009b\u001b"}}"#);
    let err = message(ExternalReward::new(&value, space(3, 1), TIMEOUT).unwrap().step(&actions(3, &[&[0]])));
    assert!(!raw(&err) && err.contains(r#"info "ok" is "\u{9b}\u001b", not a number"#), "{err}");
}

/// An info name becomes `info.NAME` in every file of a run and in a report's tables: one
/// that is not a key (with a `|`, a space, a dot; empty) is refused at the first answer.
#[test]
fn info_names_must_be_keys() {
    for name in ["hit|rate", "top 5", "a.b", ""] {
        let command = format!(r#"while read l; do echo '{{"rewards": [1], "info": {{"{name}": 0.5}}}}'; done"#);
        let err = message(ExternalReward::new(&command, space(3, 1), TIMEOUT).unwrap().step(&actions(3, &[&[0]])));
        assert!(err.contains(&format!("the info name \"{name}\" ")), "{err}");
    }
    let command = r#"while read l; do echo '{"rewards": [1], "info": {"hit_rate-2": 0.5}}'; done"#;
    let transition = ExternalReward::new(command, space(3, 1), TIMEOUT).unwrap().step(&actions(3, &[&[0]])).unwrap();
    assert_eq!(transition.info, BTreeMap::from([("hit_rate-2".to_owned(), 0.5)]));
}

/// An info named as one of the trainer's metrics (`reward`, `loss`, `return`) is recorded
/// as `info.NAME` beside it, never in its place.
#[test]
fn info_never_shadows_the_trainers_metrics() {
    let command = r#"while read l; do echo '{"rewards": [3], "info": {"reward": 7, "loss": 5, "return": 1}}'; done"#;
    let mut env = ExternalReward::new(command, space(3, 1), TIMEOUT).unwrap();
    let policy = FixedPolicy { action: actions(3, &[&[0]]).view([1, 3]) };
    let metrics = env.evaluate(Phase::Validation, &policy).unwrap();
    let expected = [("info.loss", 5.0), ("info.return", 1.0), ("info.reward", 7.0), ("reward", 3.0)];
    assert_eq!(metrics, expected.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect::<BTreeMap<_, _>>());
}

/// Rewards become f32: a finite reward beyond its range is an error naming it.
#[test]
fn a_reward_outside_the_range_of_f32_is_an_error() {
    let mut env = ExternalReward::new("while read l; do echo '[1, 2, 1e39]'; done", space(3, 1), TIMEOUT).unwrap();
    let err = message(env.step(&actions(3, &[&[0], &[1], &[2]])));
    assert!(err.contains("reward 2 is 1e39, outside the range of f32 (±3.4e38): '[1, 2, 1e39]'"), "{err}");
    assert_reaped(env.child_id());
}

/// A timeout too long to be a deadline (`--reward-timeout 1e19`) means no limit.
#[test]
fn a_huge_timeout_waits_without_a_deadline() {
    let mut env = ExternalReward::new("while read l; do echo '[3]'; done", space(3, 1), Duration::MAX).unwrap();
    assert_eq!(env.step(&actions(3, &[&[0]])).unwrap().rewards.double_value(&[0, 0]), 3.0);
    let huge = Duration::from_secs_f64(1e19);
    let mut env =
        ExternalReward::contextual("while read l; do echo '{\"contexts\": [[1]]}'; done", space(3, 1), 1, 1, huge)
            .unwrap();
    assert_eq!(values(&env.reset(&mut seeded(1)).unwrap().inputs[0]), [1.0]);
}

/// The caller's stop flag ends a wait within a poll, with `Interrupted`, and kills the group.
#[test]
fn setting_the_interrupt_flag_stops_the_wait_and_kills_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let command = format!("sleep 30 & echo $! > '{}'; sleep 30", pid_file.display());
    let mut env = ExternalReward::new(&command, space(3, 1), Duration::MAX).unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    env.set_interrupt(Arc::clone(&flag));
    let sleeper = read_pid(&pid_file);
    let setter = {
        let flag = Arc::clone(&flag);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            flag.store(true, Ordering::Relaxed);
            Instant::now()
        })
    };
    let err = env.step(&actions(3, &[&[0]])).unwrap_err();
    let set_at = setter.join().unwrap();
    assert!(set_at.elapsed() < Duration::from_millis(500), "{:?} after the flag was set", set_at.elapsed());
    assert!(matches!(err, EnvError::Interrupted { line: 1 }), "{err:?}");
    assert_eq!(err.to_string(), "interrupted while waiting for the reward command's answer to line 1");
    assert_reaped(env.child_id());
    assert_gone(sleeper);
    let later = message(env.step(&actions(3, &[&[0]])));
    assert!(later.contains("has failed earlier") && later.contains("interrupted"), "{later}");
}

/// A relative path in the command means the same wherever the caller runs.
#[test]
fn the_command_runs_in_its_working_dir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("score.sh"), "while read l; do echo '[4.5]'; done\n").unwrap();
    assert!(!Path::new("score.sh").exists(), "the test's own folder is elsewhere");
    let command =
        RewardCommand { working_dir: Some(dir.path().to_owned()), ..RewardCommand::new("sh ./score.sh", TIMEOUT) };
    let mut env = ExternalReward::with_command(command.clone(), space(3, 1)).unwrap();
    assert_eq!(env.step(&actions(3, &[&[0]])).unwrap().rewards.double_value(&[0, 0]), 4.5);
    let mut env = ExternalReward::contextual_with_command(
        RewardCommand { command: "echo $PWD >&2; exit 1".to_owned(), ..command.clone() },
        space(3, 1),
        1,
        1,
    )
    .unwrap();
    let err = message(env.reset(&mut seeded(1)));
    let canonical = dir.path().canonicalize().unwrap();
    assert!(err.contains(&canonical.display().to_string()) || err.contains(&dir.path().display().to_string()), "{err}");

    // Without it, the command runs in the caller's folder, where there is no score.sh.
    let mut env =
        ExternalReward::with_command(RewardCommand { working_dir: None, ..command.clone() }, space(3, 1)).unwrap();
    assert!(message(env.step(&actions(3, &[&[0]]))).contains("exited before answering"));

    let missing = dir.path().join("no-such-folder");
    let err = ExternalReward::with_command(
        RewardCommand { working_dir: Some(missing.clone()), ..command.clone() },
        space(3, 1),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, EnvError::Config { .. }) && text.contains(&missing.display().to_string()), "{text}");
    let file = dir.path().join("score.sh");
    let err =
        ExternalReward::with_command(RewardCommand { working_dir: Some(file), ..command }, space(3, 1)).unwrap_err();
    assert!(matches!(&err, EnvError::Config { problem, .. } if problem.contains("is not a folder")), "{err:?}");
}

// ---- Contextual mode ----

/// A contextual child with hand-computable answers. Contexts request (`rows` R, `seed` s,
/// `phase` p coded 0/1/2): row r is `[r + 0.5, p, s % 1000]`. Rewards request: action i
/// (for row `i % R` of the last contexts `c`) scores `c[0] · Σ items + c[1]`. Every request
/// is appended to `requests.jsonl`.
const CONTEXT_PY: &str = r#"
import json, sys
log = open(sys.argv[1], "a")
contexts = []
for request in sys.stdin:
    log.write(request); log.flush()
    r = json.loads(request)
    phase = {"train": 0, "validation": 1, "test": 2}[r["phase"]]
    if r["request"] == "contexts":
        contexts = [[row + 0.5, phase, r["seed"] % 1000] for row in range(r["rows"])]
        print(json.dumps({"contexts": contexts}), flush=True)
    else:
        rows = len(contexts)
        rewards = [contexts[i % rows][0] * sum(a) + contexts[i % rows][1] for i, a in enumerate(r["actions"])]
        print(json.dumps({"rewards": rewards, "info": {"line": r["line"], "rows": rows}}), flush=True)
"#;

/// A temporary folder with `context.py`, and the command that runs it.
fn context_scorer() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("context.py"), CONTEXT_PY).unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let command = format!("python3 '{}' '{}'", path("context.py"), path("requests.jsonl"));
    (dir, command)
}

/// The requests `context.py` received, parsed.
fn context_requests(dir: &tempfile::TempDir) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.path().join("requests.jsonl")).unwrap();
    text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// The contexts `context.py` sends for `rows` rows, phase code `phase` and `seed`.
fn expected_contexts(rows: usize, phase: f32, seed: u64) -> Vec<f32> {
    (0..rows).flat_map(|r| [r as f32 + 0.5, phase, (seed % 1000) as f32]).collect()
}

/// `context.py`'s reward of `items` for context row `row` in phase code `phase`.
fn context_reward(row: usize, phase: f64, items: &[i64]) -> f64 {
    (row as f64 + 0.5) * items.iter().sum::<i64>() as f64 + phase
}

/// Actions `[S, R, n]` from `subsets[s][r]`.
fn contextual_actions(n: i64, subsets: &[Vec<&[i64]>]) -> Tensor {
    let samples: Vec<Tensor> = subsets.iter().map(|rows| actions(n, rows).squeeze_dim(1)).collect();
    Tensor::stack(&samples, 0)
}

/// The values of a tensor, flattened.
fn values(tensor: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(tensor.to_kind(Kind::Float).reshape([-1])).unwrap()
}

/// A policy that plays a fixed action `[R, n]` and remembers the contexts it was shown.
struct RecordingPolicy {
    action: Tensor,
    seen: RefCell<Vec<Vec<f32>>>,
}

impl EvalPolicy for RecordingPolicy {
    fn logits(&self, observation: &Observation) -> Result<Tensor, EnvError> {
        self.act(observation)
    }
    fn act(&self, observation: &Observation) -> Result<Tensor, EnvError> {
        assert_eq!(observation.inputs.len(), 1);
        self.seen.borrow_mut().push(values(&observation.inputs[0]));
        Ok(self.action.copy())
    }
    fn embed(&self, _inputs: &Tensor) -> Result<Option<Tensor>, EnvError> {
        Ok(None)
    }
}

fn seeded(seed: u64) -> rand_xoshiro::Xoshiro256PlusPlus {
    <rand_xoshiro::Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(seed)
}

#[test]
fn contextual_round_trip_of_contexts_rewards_evaluation_and_baselines() {
    let (dir, command) = context_scorer();
    let (n, k, rows, dim) = (6, 2, 2, 3);
    let mut env = ExternalReward::contextual(&command, space(n, k), rows, dim, TIMEOUT).unwrap();
    let spec = env.spec().clone();
    assert_eq!((spec.name.as_str(), spec.rows, spec.observation_dim, spec.differentiable), ("cmd", 2, 3, false));
    assert_eq!((spec.metric.as_str(), spec.higher_is_better), ("reward", true));

    // reset: one contexts request; the answer is the observation, exactly.
    let observation = env.reset(&mut seeded(7)).unwrap();
    assert_eq!(observation.inputs.len(), 1);
    let contexts = &observation.inputs[0];
    assert_eq!((contexts.size(), contexts.kind()), (vec![2, 3], Kind::Float));
    let seed = context_requests(&dir)[0]["seed"].as_u64().unwrap();
    assert!(seed < 1 << 53, "the seed is exact in any JSON parser: {seed}");
    assert_eq!(values(contexts), expected_contexts(rows, 0.0, seed));

    // step: S = 3 samples of 2 rows; subsets[s][r] is for row r.
    let subsets: Vec<Vec<&[i64]>> = vec![vec![&[0, 1], &[2, 5]], vec![&[3, 4], &[0, 5]], vec![&[1, 2], &[1, 2]]];
    let transition = env.step(&contextual_actions(n as i64, &subsets)).unwrap();
    assert_eq!((transition.rewards.size(), transition.rewards.kind()), (vec![3, 2], Kind::Float));
    let expected: Vec<f32> =
        subsets.iter().flat_map(|row| (0..rows).map(|r| context_reward(r, 0.0, row[r]) as f32)).collect();
    assert_eq!(values(&transition.rewards), expected);
    assert_eq!(transition.info, BTreeMap::from([("line".to_owned(), 2.0), ("rows".to_owned(), 2.0)]));
    // Steps may repeat on the same contexts.
    assert_eq!(values(&env.step(&contextual_actions(n as i64, &subsets)).unwrap().rewards), expected);

    // The same generator gives the same seed, so a child that draws from it repeats itself.
    env.reset(&mut seeded(7)).unwrap();

    // evaluate: validation contexts (seed 1), the policy's action per row, the mean reward.
    let policy =
        RecordingPolicy { action: actions(n as i64, &[&[0, 3], &[4, 5]]).squeeze_dim(1), seen: RefCell::default() };
    let metrics = env.evaluate(Phase::Validation, &policy).unwrap();
    let mean = (context_reward(0, 1.0, &[0, 3]) + context_reward(1, 1.0, &[4, 5])) / 2.0;
    assert_eq!(metrics["reward"], mean);
    assert_eq!((metrics["info.line"], metrics["info.rows"]), (6.0, 2.0));
    assert_eq!(*policy.seen.borrow(), [expected_contexts(rows, 1.0, 1)], "held-out contexts of seed 1");
    // The same held-out contexts every time; test ones use seed 2.
    assert_eq!(env.evaluate(Phase::Validation, &policy).unwrap()["reward"], mean);
    env.evaluate(Phase::Test, &policy).unwrap();
    assert_eq!(policy.seen.borrow()[2], expected_contexts(rows, 2.0, 2));

    // An evaluation replaced the child's contexts: a training step needs a new reset.
    let err = env.step(&contextual_actions(n as i64, &subsets)).unwrap_err();
    assert!(matches!(err, EnvError::NotReset { .. }), "{err:?}");

    // baselines: test contexts (seed 2), then 32 random subsets per row, sample-major.
    let random = env.baselines(Phase::Test).unwrap();
    assert_eq!(random.keys().collect::<Vec<_>>(), ["random"]);
    assert_eq!(env.baselines(Phase::Test).unwrap(), random, "a fixed seed");

    let requests = context_requests(&dir);
    let kinds: Vec<(&str, &str)> =
        requests.iter().map(|r| (r["request"].as_str().unwrap(), r["phase"].as_str().unwrap())).collect();
    #[rustfmt::skip]
    assert_eq!(kinds, [
        ("contexts", "train"), ("rewards", "train"), ("rewards", "train"), ("contexts", "train"),
        ("contexts", "validation"), ("rewards", "validation"), ("contexts", "validation"), ("rewards", "validation"),
        ("contexts", "test"), ("rewards", "test"),
        ("contexts", "test"), ("rewards", "test"), ("contexts", "test"), ("rewards", "test"),
    ]);
    for (i, request) in requests.iter().enumerate() {
        assert_eq!(request["line"], i as u64 + 1);
        assert_eq!(request["rows"], 2, "{request}");
        match request["request"].as_str() {
            Some("contexts") => assert!(request.get("actions").is_none() && request.get("n").is_none()),
            _ => {
                assert!(request["n"] == 6 && request["k"] == 2, "{request}");
                assert_eq!(request["seed"], requests[i - 1]["seed"], "a rewards request has its contexts' seed");
            }
        }
        assert!(request.get("step").is_none(), "reset, not reset_step: {request}");
    }
    assert_eq!(requests[3]["seed"], seed, "the same generator, the same seed");
    let seeds: Vec<_> = [4, 6, 8, 10, 12].iter().map(|&i| requests[i]["seed"].as_u64().unwrap()).collect();
    assert_eq!(seeds, [1, 1, 2, 2, 2]);
    assert_eq!(requests[1]["actions"], serde_json::json!([[0, 1], [2, 5], [3, 4], [0, 5], [1, 2], [1, 2]]));
    assert_eq!(requests[5]["actions"], serde_json::json!([[0, 3], [4, 5]]));
    // The baseline is the mean reward of the 64 actions it sent, action i for row i % 2.
    let sent = requests[11]["actions"].as_array().unwrap();
    assert_eq!(sent.len(), 64);
    let total: f64 = sent
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let items: Vec<i64> = a.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
            assert!(items.len() == 2 && items[0] < items[1] && items[1] < 6, "{a}");
            context_reward(i % 2, 2.0, &items)
        })
        .sum();
    assert!((random["random"] - total / 64.0).abs() < 1e-12, "{} vs {}", random["random"], total / 64.0);

    let child = env.child_id();
    drop(env);
    assert_reaped(child);
}

#[test]
fn contextual_mode_needs_rows_and_context_numbers() {
    let err = ExternalReward::contextual("cat", space(3, 1), 0, 2, TIMEOUT).unwrap_err();
    assert!(matches!(&err, EnvError::Config { problem, .. } if problem.contains("rows >= 1")), "{err:?}");
    let err = ExternalReward::contextual("cat", space(3, 1), 2, 0, TIMEOUT).unwrap_err();
    assert!(matches!(&err, EnvError::Config { problem, .. } if problem.contains("context_dim >= 1")), "{err:?}");
    assert!(matches!(ExternalReward::contextual(" ", space(3, 1), 2, 2, TIMEOUT), Err(EnvError::Config { .. })));
}

#[test]
fn a_contextual_step_before_reset_is_not_reset() {
    let (dir, command) = context_scorer();
    let mut env = ExternalReward::contextual(&command, space(4, 1), 2, 3, TIMEOUT).unwrap();
    let step = contextual_actions(4, &[vec![&[0], &[3]]]);
    let err = env.step(&step).unwrap_err();
    assert!(matches!(err, EnvError::NotReset { .. }), "{err:?}");
    // A wrong shape is still a shape error (one row where two are expected).
    assert!(matches!(env.step(&actions(4, &[&[0]])), Err(EnvError::ActionShape { .. })));
    // Nothing was sent, and the environment works.
    env.reset(&mut seeded(1)).unwrap();
    let rewards = values(&env.step(&step).unwrap().rewards);
    assert_eq!(rewards, [context_reward(0, 0.0, &[0]) as f32, context_reward(1, 0.0, &[3]) as f32]);
    assert_eq!(context_requests(&dir).len(), 2);
}

/// Starts a contextual environment (2 rows of 2 numbers) on `command`, resets it and
/// returns the error message, after checking the child is gone and the environment dead.
fn contexts_failure(command: &str) -> String {
    let mut env = ExternalReward::contextual(command, space(3, 1), 2, 2, TIMEOUT).unwrap();
    let child = env.child_id();
    let err = message(env.reset(&mut seeded(1)));
    assert!(err.starts_with(&format!("reward command '{command}', batch line 1: ")), "{err}");
    assert_reaped(child);
    assert!(message(env.reset(&mut seeded(1))).contains("has failed"));
    assert!(message(env.baselines(Phase::Test)).contains("has failed"));
    err
}

#[test]
fn malformed_contexts_are_errors_that_say_why() {
    let answer = |text: &str| contexts_failure(&format!("while read l; do echo '{text}'; done"));
    let err = answer(r#"{"contexts": [[1, 2]]}"#);
    assert!(err.contains("got 1 context rows, expected 2"), "{err}");
    let err = answer(r#"{"contexts": [[1, 2], [3, 4, 5]]}"#);
    assert!(err.contains("context row 1 has 3 numbers, expected 2"), "{err}");
    let err = answer(r#"{"contexts": [[1, "x"], [3, 4]]}"#);
    assert!(err.contains(r#"context row 0, entry 1 is "x", not a finite number"#), "{err}");
    let err = answer(r#"{"contexts": [[1, 2], [null, 4]]}"#);
    assert!(err.contains("entry 0 is null, not a finite number"), "{err}");
    let err = answer(r#"{"contexts": [[1, 2], [3, -1e39]]}"#);
    assert!(err.contains("context row 1, entry 1 is -1e39, outside the range of f32 (±3.4e38)"), "{err}");
    let err = answer("not json");
    assert!(err.contains("not JSON") && err.contains("'not json'"), "{err}");
    let err = answer("[0.5, 0.5]");
    assert!(err.contains(r#"must be an object {"contexts""#) && err.contains("'[0.5, 0.5]'"), "{err}");
}

/// A failure at a later contexts request names its line, and kills background processes.
#[test]
fn a_later_contexts_failure_names_its_line_and_kills_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let command = format!(
        "sleep 30 & echo $! > '{}'; read l; echo '{{\"contexts\": [[1], [2]]}}'; read l; echo '[1, 2]'; read l; \
         echo '{{\"contexts\": [[1], [2], [3]]}}'; read l",
        pid_file.display()
    );
    let mut env = ExternalReward::contextual(&command, space(3, 1), 2, 1, TIMEOUT).unwrap();
    let sleeper = read_pid(&pid_file);
    assert_eq!(values(&env.reset(&mut seeded(1)).unwrap().inputs[0]), [1.0, 2.0]);
    let rewards = env.step(&contextual_actions(3, &[vec![&[0], &[2]]])).unwrap().rewards;
    assert_eq!((rewards.size(), values(&rewards)), (vec![1, 2], vec![1.0, 2.0]));
    let err = message(env.evaluate(Phase::Validation, &FixedAction(actions(3, &[&[1]]).squeeze_dim(1))));
    assert!(err.contains("batch line 3: got 3 context rows, expected 2"), "{err}");
    assert_reaped(env.child_id());
    assert_gone(sleeper);
}

#[test]
fn the_contextual_example_script_runs() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/contextual_score.py");
    let (n, k, rows, dim) = (20, 3, 8, 4);
    let mut env = ExternalReward::contextual(&format!("python3 '{script}'"), space(n, k), rows, dim, TIMEOUT).unwrap();
    let mut rng = seeded(3);
    let observation = env.reset(&mut rng).unwrap();
    let contexts = &observation.inputs[0];
    assert_eq!(contexts.size(), [8, 4]);
    let norms = values(&contexts.square().sum_dim_intlist(1, false, Kind::Float).sqrt());
    assert!(norms.iter().all(|x| (x - 1.0).abs() < 1e-5), "contexts on the unit sphere: {norms:?}");

    // Random k-hot actions [S, rows, n].
    let samples = 4;
    let subsets: Vec<Vec<i64>> =
        (0..samples * rows).map(|_| sfess_envs::env::distinct_indices(&mut rng, n, k)).collect();
    let table: Vec<Vec<&[i64]>> = subsets.chunks(rows).map(|c| c.iter().map(Vec::as_slice).collect()).collect();
    let transition = env.step(&contextual_actions(n as i64, &table)).unwrap();
    assert_eq!(transition.rewards.size(), [samples as i64, rows as i64]);
    let rewards = values(&transition.rewards);
    assert!(rewards.iter().all(|r| r.is_finite() && r.abs() <= k as f32 + 1e-4), "{rewards:?}");
    let optimal = transition.info["optimal"];
    assert!(rewards.iter().sum::<f32>() as f64 / rewards.len() as f64 <= optimal + 1e-6);

    let policy = FixedAction(actions(n as i64, &[&[0, 1, 2]]).squeeze_dim(1));
    let metrics = env.evaluate(Phase::Validation, &policy).unwrap();
    assert!(metrics["reward"].is_finite() && metrics["reward"] <= metrics["info.optimal"], "{metrics:?}");
    assert_eq!(env.evaluate(Phase::Validation, &policy).unwrap(), metrics, "the same held-out contexts");
    let random = env.baselines(Phase::Test).unwrap()["random"];
    assert!(random.is_finite() && random.abs() < 1.0, "{random}");
    let child = env.child_id();
    drop(env);
    assert_reaped(child);
}

/// `StepSeed { step, seed }`.
fn step_seed(step: u64, seed: u64) -> StepSeed {
    StepSeed { step, seed }
}

#[test]
fn training_requests_carry_the_step_and_its_seed_not_the_generators() {
    let scorer = Scorer::new();
    let (n, k) = (10, 3);
    let mut env = ExternalReward::new(&scorer.command(), space(n, k), TIMEOUT).unwrap();
    let subsets: [&[i64]; 2] = [&[0, 1, 2], &[3, 5, 9]];
    // The same step with two different generators, twice; then the next step.
    let (first, second) = (u64::MAX - 12345, 0x0123_4567_89AB_CDEF);
    let mut rng = seeded(1);
    assert!(env.reset_step(step_seed(300, first), &mut rng).unwrap().inputs.is_empty());
    env.step(&actions(n as i64, &subsets)).unwrap();
    env.step(&actions(n as i64, &subsets)).unwrap();
    assert_eq!(rand::Rng::next_u64(&mut rng), rand::Rng::next_u64(&mut seeded(1)), "nothing drawn");
    env.reset_step(step_seed(300, first), &mut seeded(99)).unwrap();
    env.step(&actions(n as i64, &subsets)).unwrap();
    env.reset_step(step_seed(301, second), &mut seeded(1)).unwrap();
    env.step(&actions(n as i64, &subsets)).unwrap();
    // Evaluations carry their phase's fixed seed and no step, whatever the step before.
    let policy = FixedPolicy { action: actions(n as i64, &[&[1, 3, 8]]).view([1, n as i64]) };
    env.evaluate(Phase::Validation, &policy).unwrap();
    env.evaluate(Phase::Test, &policy).unwrap();
    env.baselines(Phase::Validation).unwrap();
    env.baselines(Phase::Test).unwrap();

    let requests = scorer.requests();
    let fields: Vec<_> =
        requests.iter().map(|r| (r["phase"].as_str().unwrap(), r["step"].as_u64(), r["seed"].as_u64())).collect();
    let (a, b) = (first >> 11, second >> 11);
    assert!(a < 1 << 53 && a > 1 << 52, "the high 53 bits: {a}");
    #[rustfmt::skip]
    assert_eq!(fields, [
        ("train", Some(300), Some(a)), ("train", Some(300), Some(a)), ("train", Some(300), Some(a)),
        ("train", Some(301), Some(b)),
        ("validation", None, Some(1)), ("test", None, Some(2)), ("validation", None, Some(1)), ("test", None, Some(2)),
    ]);
    for request in &requests {
        assert_eq!(request["request"], "rewards");
        let seed = &request["seed"];
        assert!(seed.is_u64() && !seed.is_f64(), "an integer in JSON: {request}");
    }
}

#[test]
fn contextual_requests_carry_the_step_and_its_seed() {
    let (dir, command) = context_scorer();
    let (n, k, rows, dim) = (6, 2, 2, 3);
    let mut env = ExternalReward::contextual(&command, space(n, k), rows, dim, TIMEOUT).unwrap();
    let seed = 0xDEAD_BEEF_0000_0000_u64 + 4321;
    let subsets: Vec<Vec<&[i64]>> = vec![vec![&[0, 1], &[2, 5]]];
    let mut contexts = Vec::new();
    for rng_seed in [7, 8] {
        let observation = env.reset_step(step_seed(12, seed), &mut seeded(rng_seed)).unwrap();
        contexts.push(values(&observation.inputs[0]));
        env.step(&contextual_actions(n as i64, &subsets)).unwrap();
    }
    assert_eq!(contexts[0], expected_contexts(rows, 0.0, seed >> 11), "the contexts come from the step's seed");
    assert_eq!(contexts[1], contexts[0], "the same step, the same contexts, whatever the generator");
    let requests = context_requests(&dir);
    assert_eq!(requests.len(), 4);
    for request in &requests {
        assert_eq!((request["step"].as_u64(), request["seed"].as_u64()), (Some(12), Some(seed >> 11)), "{request}");
    }
}

/// A command that scores a subset by the sum of its items and answers the baseline
/// request (`"baseline": "random"`) with `baselines` (a JSON object, as Python writes it)
/// in its answer; `always` puts them in every answer.
fn baseline_scorer(baselines: &str, always: bool) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "import json, sys\n\
         for line in sys.stdin:\n    \
             r = json.loads(line)\n    \
             answer = {{'rewards': [float(sum(a)) for a in r['actions']]}}\n    \
             if {always} or r.get('baseline') == 'random':\n        \
                 answer['baselines'] = {baselines}\n    \
             print(json.dumps(answer), flush=True)\n",
        always = if always { "True" } else { "False" },
    );
    std::fs::write(dir.path().join("baselines.py"), script).unwrap();
    let command = format!("python3 '{}'", dir.path().join("baselines.py").display());
    (dir, command)
}

#[test]
fn a_commands_baselines_join_the_random_one() {
    let (_dir, command) = baseline_scorer("{'greedy': 0.83, 'local-search_2': -1e300}", false);
    let mut env = ExternalReward::new(&command, space(5, 2), TIMEOUT).unwrap();
    env.reset_step(step_seed(0, 0), &mut seeded(0)).unwrap();
    env.step(&actions(5, &[&[0, 1]])).unwrap();
    let policy = FixedPolicy { action: actions(5, &[&[3, 4]]).view([1, 5]) };
    assert_eq!(env.evaluate(Phase::Test, &policy).unwrap()["reward"], 7.0);
    let baselines = env.baselines(Phase::Test).unwrap();
    assert_eq!(baselines.keys().collect::<Vec<_>>(), ["greedy", "local-search_2", "random"]);
    assert_eq!((baselines["greedy"], baselines["local-search_2"]), (0.83, -1e300));
    assert!(baselines["random"] > 1.0 && baselines["random"] < 7.0, "{baselines:?}");
}

#[test]
fn bad_baselines_are_errors_that_say_why() {
    let failure = |baselines: &str, always: bool| {
        let (_dir, command) = baseline_scorer(baselines, always);
        let mut env = ExternalReward::new(&command, space(5, 2), TIMEOUT).unwrap();
        let policy = FixedPolicy { action: actions(5, &[&[3, 4]]).view([1, 5]) };
        let err = env.evaluate(Phase::Test, &policy).and_then(|_| env.baselines(Phase::Test)).unwrap_err();
        assert!(matches!(err, EnvError::RewardProcess { .. }), "{err:?}");
        let text = err.to_string();
        // The environment is dead after it.
        assert!(env.baselines(Phase::Test).is_err());
        text
    };
    let text = failure("{'greedy': None}", false);
    assert!(text.contains(r#"baseline "greedy" is null, not a finite number"#), "{text}");
    assert!(text.contains("line 2"), "the baseline request is line 2: {text}");
    let text = failure("{'greedy': 'high'}", false);
    assert!(text.contains(r#"baseline "greedy" is "high", not a finite number"#), "{text}");
    let text = failure("[0.5]", false);
    assert!(text.contains(r#""baselines" is [0.5], not an object of names to numbers"#), "{text}");
    let text = failure("{'my greedy': 1}", false);
    assert!(text.contains(r#"the baseline name "my greedy" has the character ' '"#), "{text}");
    let text = failure("{'random': 1}", false);
    assert!(text.contains(r#"the baseline name "random" is taken"#), "{text}");
    // In the answer to the evaluation (line 1), where they would be lost.
    let text = failure("{'greedy': 1}", true);
    assert!(text.contains("line 1") && text.contains(r#""baselines" belong in the answer to the baseline request"#));
}

#[test]
fn commands_that_know_nothing_of_the_new_fields_keep_working() {
    // The minimal reward of the module docs: reads "actions", ignores the rest.
    let script = "import json, sys\nfor request in sys.stdin:\n    actions = json.loads(request)['actions']\n    \
                  print(json.dumps([float(sum(a)) for a in actions]), flush=True)\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("minimal.py"), script).unwrap();
    let command = format!("python3 '{}'", dir.path().join("minimal.py").display());
    let mut env = ExternalReward::new(&command, space(5, 2), TIMEOUT).unwrap();
    env.reset_step(step_seed(3, 42), &mut seeded(0)).unwrap();
    assert_eq!(values(&env.step(&actions(5, &[&[0, 4]])).unwrap().rewards), [4.0]);
    let baselines = env.baselines(Phase::Test).unwrap();
    assert_eq!(baselines.keys().collect::<Vec<_>>(), ["random"]);
}

#[test]
fn the_name_option_renames_the_spec_and_its_errors() {
    let (_dir, command) = context_scorer();
    let env = ExternalReward::contextual(&command, space(6, 2), 2, 3, TIMEOUT).unwrap();
    let mut env = env.with_name("facility-location").unwrap();
    assert_eq!(env.spec().name, "facility-location");
    let err = env.step(&contextual_actions(6, &[vec![&[0, 1], &[2, 5]]])).unwrap_err();
    assert!(matches!(&err, EnvError::NotReset { env } if env == "facility-location"), "{err:?}");

    for bad in ["", "a b", "a/b", "dots.not.allowed"] {
        let env = ExternalReward::new("cat", space(3, 1), TIMEOUT).unwrap();
        let err = env.with_name(bad).unwrap_err();
        let text = err.to_string();
        assert!(matches!(&err, EnvError::Config { env, .. } if env == "cmd"), "{err:?}");
        assert!(text.contains(&format!("the name \"{bad}\"")), "{text}");
    }

    // Through the registry: the option `name`, default `cmd`.
    let entry = sfess_envs::external::entry();
    let make = |given: serde_json::Value| {
        let given: BTreeMap<String, serde_json::Value> = serde_json::from_value(given).unwrap();
        let options = entry.options_from(&given).unwrap();
        entry.make(entry.settings(2, 1, 0, Device::Cpu, &options).into_make()).map(|env| env.spec().name.clone())
    };
    assert_eq!(make(serde_json::json!({"command": "cat", "n": 5})).unwrap(), "cmd");
    assert_eq!(
        make(serde_json::json!({"command": "cat", "n": 5, "name": "greedy-vs-policy"})).unwrap(),
        "greedy-vs-policy"
    );
    let err = make(serde_json::json!({"command": "cat", "n": 5, "name": "bad name"})).unwrap_err();
    assert!(err.to_string().contains("the name \"bad name\""), "{err}");
}
