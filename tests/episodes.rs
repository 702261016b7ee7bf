//! The trainer over episodes against the exact policy gradient of a tiny MDP, computed by
//! enumeration in f64: n = 5 items, k = 2, horizon T = 3, three states, a random start,
//! random early termination. The episodes are rolled out by the trainer itself
//! ([`episode_surrogate`]) on a [`SequentialRewardEnv`]; SFESS and SFESS + VR (whole returns
//! and reward-to-go, with and without a discount) agree with the exact gradient within a
//! tolerance derived from the estimates' spread, and the same check rejects a baseline that
//! includes the episode's own return and an estimator that drops one step's score.

use sfess_agent::train::episodes::{EpisodeSurrogate, EpisodeTraining, episode_surrogate};
use sfess_agent::train::policy::Policy;
use sfess_agents::estimator::episodes::advantages;
use sfess_agents::{EpisodeEstimator, EpisodeOptions, Sampler};
use sfess_envs::custom::{EpisodeOutcome, SequentialRewardEnv};
use sfess_envs::{EnvError, EvalPolicy, KHotSpace, Observation};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

const N: usize = 5;
const K: i64 = 2;
const STATES: usize = 3;
const T: usize = 3;
/// The state whose arrival may end the episode, with probability [`END`].
const TERMINAL: usize = 2;
const END: f64 = 0.5;
/// The logits of each state (the policy's parameters).
const THETA: [[f64; N]; STATES] =
    [[0.5, -0.2, 0.1, 0.8, -0.6], [-0.3, 0.4, 0.9, -0.1, 0.2], [0.2, 0.2, -0.5, 0.3, 0.6]];
/// The reward of item i in state s: r(s, b) = Σ_i W[s][i] b_i.
const W: [[f64; N]; STATES] = [[1.0, -0.5, 0.3, 0.2, 0.9], [-0.4, 0.8, 0.1, 1.2, -0.3], [0.6, 0.0, -0.7, 0.5, 0.4]];

/// The next state after an action whose first item is `first_item`, in state `s`.
fn next_state(s: usize, first_item: usize) -> usize {
    (s + first_item) % STATES
}

/// The MDP as a sequential environment: the state is one-hot `[R, 3]` (f64); a start is
/// state 0 or 1 with probability 1/2 each; arriving in [`TERMINAL`] ends the episode with
/// probability [`END`].
fn mdp() -> SequentialRewardEnv {
    let weights = Tensor::from_slice(&W.concat()).view([STATES as i64, N as i64]);
    let one_hot = |states: &Tensor| states.one_hot(STATES as i64).to_kind(Kind::Double);
    SequentialRewardEnv::new(
        "tiny-mdp",
        KHotSpace::new(N, K as usize).unwrap(),
        T,
        STATES,
        move |noise| one_hot(&noise.uniforms(1).unwrap().squeeze_dim(1).ge(0.5).to_kind(Kind::Int64)),
        move |states, actions, noise| {
            let s = states.argmax(1, false);
            let rewards =
                (weights.index_select(0, &s) * actions.to_kind(Kind::Double)).sum_dim_intlist(1, false, Kind::Double);
            // The first chosen item (argmax gives the first of the ones).
            let first = actions.argmax(1, false);
            let next = (&s + first).remainder(STATES as i64);
            let end = noise.uniforms(1).unwrap().squeeze_dim(1).lt(END);
            let terminated = next.eq(TERMINAL as i64).logical_and(&end);
            EpisodeOutcome { states: one_hot(&next), rewards, terminated }
        },
    )
    .unwrap()
}

/// The policy of the MDP: logits `θ_s` of the state, `onehot(s) θ`, with the graph to θ.
struct Tabular {
    theta: Tensor,
    vs: VarStore,
}

impl Tabular {
    fn new() -> Self {
        let theta = Tensor::from_slice(&THETA.concat()).view([STATES as i64, N as i64]).set_requires_grad(true);
        Self { theta, vs: VarStore::new(Device::Cpu) }
    }
}

impl EvalPolicy for Tabular {
    fn logits(&self, observation: &Observation) -> Result<Tensor, EnvError> {
        Ok(observation.inputs[0].to_kind(Kind::Double).matmul(&self.theta.detach()))
    }

    fn act(&self, observation: &Observation) -> Result<Tensor, EnvError> {
        Ok(sfess_agent::train::policy::top_k_hot(&self.logits(observation)?, K)?)
    }

    fn embed(&self, _inputs: &Tensor) -> Result<Option<Tensor>, EnvError> {
        Ok(None)
    }
}

impl Policy for Tabular {
    fn forward(&self, observation: &Observation) -> anyhow::Result<Tensor> {
        Ok(observation.inputs[0].to_kind(Kind::Double).matmul(&self.theta))
    }

    fn var_store(&self) -> &VarStore {
        &self.vs
    }
}

/// Every k-subset of the n items as k-hot rows.
fn subsets() -> Vec<[f64; N]> {
    let mut out = Vec::new();
    for i in 0..N {
        for j in i + 1..N {
            let mut row = [0.0; N];
            row[i] = 1.0;
            row[j] = 1.0;
            out.push(row);
        }
    }
    out
}

/// The exact gradient of J(θ) = E[Σ_t γ^t r_t] (start uniform over states 0 and 1), by
/// enumeration: p(b | s) ∝ exp(θ_s · b) over the k-subsets (the conditional Poisson law),
/// and V_t(s) = Σ_b p(b | s) (r(s, b) + γ c(s') V_{t+1}(s')) with c the chance to go on.
fn exact_gradient(discount: f64) -> Vec<f64> {
    let theta = Tensor::from_slice(&THETA.concat()).view([STATES as i64, N as i64]).set_requires_grad(true);
    let all = subsets();
    let actions = Tensor::from_slice(&all.concat()).view([all.len() as i64, N as i64]);
    let probs = theta.matmul(&actions.transpose(0, 1)).softmax(-1, Kind::Double);
    let mut value: Vec<Tensor> = (0..STATES).map(|_| Tensor::from(0.0f64)).collect();
    for _ in 0..T {
        let mut next = Vec::new();
        for (s, weights) in W.iter().enumerate() {
            let mut v = Tensor::from(0.0f64);
            for (a, b) in all.iter().enumerate() {
                let reward: f64 = weights.iter().zip(b).map(|(w, x)| w * x).sum();
                let s2 = next_state(s, b.iter().position(|&x| x == 1.0).unwrap());
                let go_on = if s2 == TERMINAL { 1.0 - END } else { 1.0 };
                let term =
                    probs.get(s as i64).get(a as i64) * (value[s2].shallow_clone() * (discount * go_on) + reward);
                v = term + &v;
            }
            next.push(v);
        }
        value = next;
    }
    let j = (&value[0] + &value[1]) * 0.5;
    j.backward();
    Vec::<f64>::try_from(theta.grad().view(-1)).unwrap()
}

/// How an estimate of ∇J is made from the trainer's episodes of one step.
type Estimate = fn(&EpisodeSurrogate, &EpisodeOptions, &Tabular) -> Vec<f64>;

/// The trainer's own: minus the gradient of its surrogate.
fn trainer(rolled: &EpisodeSurrogate, _: &EpisodeOptions, policy: &Tabular) -> Vec<f64> {
    rolled.surrogate.backward();
    Vec::<f64>::try_from(policy.theta.grad().view(-1).neg()).unwrap()
}

/// The bug of the authors' code: the baseline is the mean of all S episodes, the
/// episode's own return included.
fn baseline_with_itself(rolled: &EpisodeSurrogate, options: &EpisodeOptions, policy: &Tabular) -> Vec<f64> {
    let plain = EpisodeOptions { leave_one_out: false, ..*options };
    let weights = advantages(&rolled.rewards, &rolled.alive, &plain).unwrap();
    let advantage = &weights - weights.mean_dim(0, true, Kind::Double);
    let episodes = rolled.rewards.size()[..2].iter().product::<i64>() as f64;
    ((&rolled.log_probs * &rolled.alive * advantage).sum(Kind::Double) / episodes).backward();
    Vec::<f64>::try_from(policy.theta.grad().view(-1)).unwrap()
}

/// A bug that drops the score of the second step.
fn second_step_dropped(rolled: &EpisodeSurrogate, options: &EpisodeOptions, policy: &Tabular) -> Vec<f64> {
    let steps = rolled.log_probs.size()[2];
    let mask = Tensor::ones([steps], (Kind::Double, Device::Cpu)).index_fill(0, &Tensor::from_slice(&[1i64]), 0.0);
    let other: Tensor = 1.0 - &mask;
    let log_probs: Tensor = &rolled.log_probs * &mask + (&rolled.log_probs * other).detach();
    sfess_agents::estimator::episodes::surrogate_loss(&log_probs, &rolled.rewards, &rolled.alive, options)
        .unwrap()
        .backward();
    Vec::<f64>::try_from(policy.theta.grad().view(-1).neg()).unwrap()
}

/// Means and standard errors of independent estimates (one per training step), per
/// coordinate.
fn estimates(estimate: Estimate, options: &EpisodeOptions, samples: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    const STEPS: u64 = 200;
    const STARTS: usize = 64;
    let training = EpisodeTraining {
        estimator: EpisodeEstimator {
            options: *options,
            sampler: Sampler::Exact,
            normalizer: sfess_agents::Normalizer::Auto,
        },
        starts: STARTS,
    };
    let mut env = mdp();
    let all: Vec<Vec<f64>> = (0..STEPS)
        .map(|step| {
            let policy = Tabular::new();
            let rolled = episode_surrogate(step, seed, &mut env, &policy, &training, samples).unwrap();
            estimate(&rolled, options, &policy)
        })
        .collect();
    let (dim, count) = (STATES * N, STEPS as f64);
    let mean: Vec<f64> = (0..dim).map(|i| all.iter().map(|g| g[i]).sum::<f64>() / count).collect();
    let se = (0..dim)
        .map(|i| (all.iter().map(|g| (g[i] - mean[i]).powi(2)).sum::<f64>() / (count - 1.0) / count).sqrt())
        .collect();
    (mean, se)
}

/// The largest deviation from the exact gradient, in standard errors.
fn worst_z(estimate: Estimate, options: &EpisodeOptions, samples: usize, seed: u64) -> f64 {
    let exact = exact_gradient(options.discount);
    let (mean, se) = estimates(estimate, options, samples, seed);
    exact.iter().zip(&mean).zip(&se).map(|((e, m), s)| (m - e).abs() / s.max(1e-12)).fold(0.0, f64::max)
}

/// Five standard errors: over 15 coordinates a correct estimator exceeds it with
/// probability about 1e-5.
const TOLERANCE: f64 = 5.0;

#[test]
fn the_trainer_over_episodes_follows_the_exact_policy_gradient() {
    let cases = [
        (EpisodeOptions::plain(), 1),
        (EpisodeOptions::plain(), 4),
        (EpisodeOptions::leave_one_out(), 4),
        (EpisodeOptions { reward_to_go: true, ..EpisodeOptions::leave_one_out() }, 4),
        (EpisodeOptions { reward_to_go: true, discount: 0.8, ..EpisodeOptions::leave_one_out() }, 2),
        (EpisodeOptions { discount: 0.8, ..EpisodeOptions::plain() }, 3),
    ];
    for (i, (options, samples)) in cases.iter().enumerate() {
        let z = worst_z(trainer, options, *samples, 10 + i as u64);
        eprintln!("{options:?}, S = {samples}: worst coordinate {z:.2} standard errors from the exact gradient");
        assert!(z < TOLERANCE, "{options:?} with S = {samples}: {z:.1} standard errors from the exact gradient");
    }
}

#[test]
fn the_check_rejects_a_baseline_with_the_episodes_own_return_and_a_dropped_step() {
    let options = EpisodeOptions::leave_one_out();
    let z = worst_z(baseline_with_itself, &options, 2, 3);
    eprintln!("the baseline with the episode's own return: {z:.1} standard errors");
    assert!(z > TOLERANCE, "the biased baseline passed: {z:.1} standard errors");
    let z = worst_z(second_step_dropped, &options, 4, 4);
    eprintln!("the second step's score dropped: {z:.1} standard errors");
    assert!(z > TOLERANCE, "dropping a step's score passed: {z:.1} standard errors");
}

// From the command line: the shipped sequential environments train, resume exactly,
// evaluate, compare, and refuse what does not apply.

use crate::common::{fails_with, json, run, run_owned, stderr, stdout};

/// A small slate task for `--steps STEPS` into `out`.
fn slate_args(out: &std::path::Path, steps: &str) -> Vec<String> {
    let options = ["n=8", "horizon=5"].iter().flat_map(|o| ["--env-option", o]);
    ["train", "--env", "slate", "-k", "2", "--policy", "mlp", "--hidden", "16", "--batch-size", "4", "--samples", "4"]
        .into_iter()
        .chain(options)
        .chain(["--steps", steps, "--eval-every", "100", "--quiet", "--json", "--out", out.to_str().unwrap()])
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_sequential_task_trains_resumes_exactly_and_evaluates() {
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight");
    let summary = json(&run_owned(&slate_args(&straight, "250")));
    // Episodes of 5 steps; the metric is the mean return over held-out episodes, beside
    // the classical baselines over the same episodes.
    assert_eq!(summary["test"]["length"].as_f64(), Some(5.0), "{summary}");
    let learned = summary["test"]["return"].as_f64().unwrap();
    let baselines = &summary["baselines"];
    assert!(baselines["greedy"].as_f64().is_some() && baselines["random"].as_f64().is_some(), "{summary}");
    assert!(learned > baselines["random"].as_f64().unwrap(), "{summary}");
    let records = crate::run_folder::records(&straight);
    for metric in ["return", "length", "info.click_rate", "loss"] {
        assert!(records.iter().any(|r| r.1 == "train" && r.2 == metric), "no training {metric}: {records:?}");
    }
    // Stopped at step 150 (inside a loss window) and continued to 250: the same records.
    let resumed = tmp.path().join("resumed");
    json(&run_owned(&slate_args(&resumed, "150")));
    let output = run(&["train", "--resume", resumed.to_str().unwrap(), "--steps", "250", "--quiet", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(crate::run_folder::records(&resumed), records);
    // eval recomputes the test return from the checkpoint.
    let evaluated = json(&run(&["eval", "--run", straight.to_str().unwrap()]));
    assert_eq!(evaluated["return"].as_f64(), Some(learned), "{evaluated}");
}

#[test]
fn sequential_options_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let out = |name: &str| tmp.path().join(name).to_str().unwrap().to_owned();
    let base = ["train", "--env", "sensor-schedule", "--env-option", "n=6", "--env-option", "horizon=4", "-k", "2"];
    let small = ["--batch-size", "2", "--samples", "3", "--steps", "20", "--eval-every", "10", "--quiet", "--json"];
    // The policy that also sees the previous action, reward-to-go and a discount.
    let extra = ["--policy", "mlp-action", "--reward-to-go", "--discount", "0.9", "--out"];
    let output = run(&[&base[..], &small[..], &extra[..], &[out("action").as_str()]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("action/config.json")).unwrap()).unwrap();
    assert_eq!(config["estimator_options"]["discount"].as_f64(), Some(0.9));
    assert_eq!(config["estimator_options"]["reward_to_go"].as_bool(), Some(true));
    assert_eq!(config["policy"].as_str(), Some("mlp-action"));
    // A discount out of range, a pathwise estimator on a black box, the previous action on
    // a one-step task.
    fails_with(
        &run(&[&base[..], &small[..], &["--discount", "1.5", "--out", &out("d")]].concat()),
        "--discount must be in (0, 1]",
    );
    let gs = run(&[&base[..], &small[..], &["--estimator", "gs", "--out", &out("gs")]].concat());
    fails_with(
        &gs,
        "gs needs a loss differentiable in the actions, but sensor-schedule is a black box; use sfess-vr or sfess",
    );
    let one_step = ["train", "--env", "max-coverage", "--policy", "mlp-action", "--steps", "5", "--out", &out("m")];
    fails_with(&run(&one_step), "--policy mlp-action reads the previous action of an episode");
}

#[test]
fn compare_tabulates_returns_against_the_baselines() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cmp");
    let output = run(&[
        "compare",
        "--env",
        "slate",
        "--env-option",
        "n=8",
        "--env-option",
        "horizon=4",
        "-k",
        "2",
        "--estimators",
        "sfess-vr,sfess",
        "--seeds",
        "0,1",
        "--steps",
        "40",
        "--eval-every",
        "20",
        "--policy",
        "mlp",
        "--batch-size",
        "2",
        "--samples",
        "3",
        "--jobs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    for row in ["| sfess-vr |", "| sfess |", "greedy", "random", "return"] {
        assert!(table.contains(row), "{row} missing: {table}");
    }
    assert!(out.join("curves.png").exists());
}

/// A command's info named as the trainer's own measures of episodes (`return`, `length`)
/// is recorded as `info.return` and `info.length`, beside the trainer's `return` and
/// `length`, in training as in evaluation.
#[test]
fn a_commands_info_never_shadows_the_trainers_return_and_length() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("episodes.py");
    // Every episode ends after two steps with a reward of 1 at each: a return and a length of 2.
    std::fs::write(
        &script,
        "import json, sys\n\
         for line in sys.stdin:\n    \
             r = json.loads(line)\n    \
             if r['request'] == 'reset':\n        \
                 print(json.dumps({'states': [[0.0] for _ in r['seeds']]}), flush=True)\n    \
             else:\n        \
                 rows = len(r['actions'])\n        \
                 print(json.dumps({'rewards': [1.0] * rows, 'terminated': [r['t'] >= 1] * rows,\n                 \
                     'states': [[0.0]] * rows, 'info': {'return': 9, 'length': 7}}), flush=True)\n",
    )
    .unwrap();
    let out = tmp.path().join("run");
    let command = format!("command=python3 {}", script.display());
    let options = [command.as_str(), "n=4", "state-dim=1", "eval-episodes=8"];
    let mut args = vec!["train", "--env", "cmd-episodes", "-k", "2", "--steps", "10", "--eval-every", "10"];
    args.extend(options.iter().flat_map(|o| ["--env-option", o]));
    args.extend(["--quiet", "--json", "--no-figures", "--out", out.to_str().unwrap()]);
    let summary = json(&run(&args));
    assert_eq!((summary["test"]["return"].as_f64(), summary["test"]["info.return"].as_f64()), (Some(2.0), Some(9.0)));
    let records = crate::run_folder::records(&out);
    let value = |split: &str, metric: &str| records.iter().find(|r| r.1 == split && r.2 == metric).map(|r| r.3);
    for split in ["train", "validation"] {
        let measured = ["return", "length", "info.return", "info.length"].map(|metric| value(split, metric));
        assert_eq!(measured, [Some(2.0), Some(2.0), Some(9.0), Some(7.0)], "{split}: {records:?}");
    }
}
