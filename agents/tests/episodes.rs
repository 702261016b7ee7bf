//! The score-function estimators over episodes against the exact policy gradient of a tiny
//! MDP, computed by enumeration in f64: n = 5 items, k = 2, horizon T = 3, three states,
//! a random start, random early termination. SFESS and SFESS + VR (whole returns and
//! reward-to-go, with and without a discount) agree with it within a tolerance derived from
//! the estimates' spread; the check rejects a baseline that includes the episode's own
//! return and an estimator that drops one step's score.

use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use sfess_agents::estimator::episodes::{advantages, surrogate_loss};
use sfess_agents::{ConditionalPoisson, EpisodeOptions, Sampler};
use tch::{Kind, Tensor};

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

/// The next state after action `b` (its first item) in state `s`.
fn next_state(s: usize, first_item: usize) -> usize {
    (s + first_item) % STATES
}

/// Every k-subset of the n items as k-hot rows, `[C(n, k), n]`.
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
    let probs = theta.matmul(&actions.transpose(0, 1)).softmax(-1, Kind::Double); // [states, subsets]
    let mut value: Vec<Tensor> = (0..STATES).map(|_| Tensor::from(0.0f64)).collect();
    for _ in 0..T {
        let mut next = Vec::new();
        for (s, weights) in W.iter().enumerate() {
            let mut v = Tensor::from(0.0f64);
            for (a, b) in all.iter().enumerate() {
                let reward: f64 = weights.iter().zip(b).map(|(w, x)| w * x).sum();
                let s2 = next_state(s, b.iter().position(|&x| x == 1.0).unwrap());
                let go_on = if s2 == TERMINAL { 1.0 - END } else { 1.0 };
                // Out of place: the sum stays in the graph that reaches θ.
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

/// One batch of episodes: `starts` start states, `samples` episodes from each.
struct Batch {
    log_probs: Tensor,
    rewards: Tensor,
    alive: Tensor,
    theta: Tensor,
}

fn roll_out(samples: usize, starts: usize, rng: &mut Xoshiro256PlusPlus) -> Batch {
    let theta = Tensor::from_slice(&THETA.concat()).view([STATES as i64, N as i64]).set_requires_grad(true);
    let episodes = samples * starts;
    // Every episode of a start begins in its state.
    let start: Vec<usize> = (0..starts).map(|_| rng.random_range(0..2)).collect();
    let mut state: Vec<usize> = (0..episodes).map(|e| start[e % starts]).collect();
    let mut running = vec![true; episodes];
    let (mut log_probs, mut rewards, mut alive) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..T {
        let index = Tensor::from_slice(&state.iter().map(|&s| s as i64).collect::<Vec<_>>());
        let logits = theta.index_select(0, &index); // [episodes, n], with graph
        let law = ConditionalPoisson::new(&logits, K).unwrap();
        let action = law.sample(1, Sampler::Exact, rng).unwrap().get(0); // [episodes, n]
        log_probs.push(law.log_prob(&action).unwrap());
        let chosen = Vec::<f64>::try_from(action.reshape(-1)).unwrap();
        let mut step_rewards = Vec::with_capacity(episodes);
        alive.push(Tensor::from_slice(&running.iter().map(|&r| if r { 1.0 } else { 0.0 }).collect::<Vec<f64>>()));
        for e in 0..episodes {
            let b = &chosen[e * N..(e + 1) * N];
            step_rewards.push((0..N).map(|i| W[state[e]][i] * b[i]).sum::<f64>());
            let first = b.iter().position(|&x| x == 1.0).unwrap();
            state[e] = next_state(state[e], first);
            if state[e] == TERMINAL && rng.random_bool(END) {
                running[e] = false;
            }
        }
        rewards.push(Tensor::from_slice(&step_rewards));
    }
    // [T, S·R] → [S, R, T]: episode e is sample e / starts of start e % starts.
    let shape = |steps: Vec<Tensor>| {
        Tensor::stack(&steps, 0).view([T as i64, samples as i64, starts as i64]).permute([1, 2, 0])
    };
    Batch { log_probs: shape(log_probs), rewards: shape(rewards), alive: shape(alive), theta }
}

/// How an estimate is made from a batch: the gradient of J it estimates, [STATES · N].
type Estimator = fn(&Batch, &EpisodeOptions) -> Vec<f64>;

fn library(batch: &Batch, options: &EpisodeOptions) -> Vec<f64> {
    surrogate_loss(&batch.log_probs, &batch.rewards, &batch.alive, options).unwrap().backward();
    Vec::<f64>::try_from(batch.theta.grad().view(-1).neg()).unwrap()
}

/// The bug of the authors' code: the baseline is the mean of all S episodes, the
/// episode's own return included.
fn baseline_with_itself(batch: &Batch, options: &EpisodeOptions) -> Vec<f64> {
    let plain = EpisodeOptions { leave_one_out: false, ..*options };
    let weights = advantages(&batch.rewards, &batch.alive, &plain).unwrap();
    let advantage = &weights - weights.mean_dim(0, true, Kind::Double);
    let score = (&batch.log_probs * &batch.alive * advantage).sum(Kind::Double)
        / batch.rewards.size()[..2].iter().product::<i64>() as f64;
    score.backward();
    Vec::<f64>::try_from(batch.theta.grad().view(-1)).unwrap()
}

/// A bug that drops the score of the middle step.
fn middle_step_dropped(batch: &Batch, options: &EpisodeOptions) -> Vec<f64> {
    let mask = Tensor::from_slice(&[1.0, 0.0, 1.0]).view([1, 1, T as i64]);
    let kept: Tensor = &batch.log_probs * &mask;
    let other: Tensor = mask.ones_like() - &mask;
    let dropped = (&batch.log_probs * other).detach();
    let log_probs = kept + dropped;
    surrogate_loss(&log_probs, &batch.rewards, &batch.alive, options).unwrap().backward();
    Vec::<f64>::try_from(batch.theta.grad().view(-1).neg()).unwrap()
}

/// Means and standard errors of `batches` independent estimates, per coordinate.
fn estimates(estimator: Estimator, options: &EpisodeOptions, samples: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    const BATCHES: usize = 200;
    const STARTS: usize = 64;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let all: Vec<Vec<f64>> = (0..BATCHES).map(|_| estimator(&roll_out(samples, STARTS, &mut rng), options)).collect();
    let dim = STATES * N;
    let mean: Vec<f64> = (0..dim).map(|i| all.iter().map(|g| g[i]).sum::<f64>() / BATCHES as f64).collect();
    let se = (0..dim)
        .map(|i| {
            let var = all.iter().map(|g| (g[i] - mean[i]).powi(2)).sum::<f64>() / (BATCHES - 1) as f64;
            (var / BATCHES as f64).sqrt()
        })
        .collect();
    (mean, se)
}

/// The largest deviation from the exact gradient in standard errors.
fn worst_z(estimator: Estimator, options: &EpisodeOptions, samples: usize, seed: u64) -> f64 {
    let exact = exact_gradient(options.discount);
    let (mean, se) = estimates(estimator, options, samples, seed);
    exact.iter().zip(&mean).zip(&se).map(|((e, m), s)| (m - e).abs() / s.max(1e-12)).fold(0.0, f64::max)
}

/// Five standard errors: over 15 coordinates a correct estimator exceeds it with
/// probability about 1e-5.
const TOLERANCE: f64 = 5.0;

#[test]
fn sfess_and_sfess_vr_over_episodes_are_the_exact_policy_gradient() {
    let cases = [
        (EpisodeOptions::plain(), 1),
        (EpisodeOptions::plain(), 4),
        (EpisodeOptions::leave_one_out(), 4),
        (EpisodeOptions { reward_to_go: true, ..EpisodeOptions::leave_one_out() }, 4),
        (EpisodeOptions { reward_to_go: true, discount: 0.8, ..EpisodeOptions::leave_one_out() }, 2),
        (EpisodeOptions { discount: 0.8, ..EpisodeOptions::plain() }, 3),
    ];
    for (i, (options, samples)) in cases.iter().enumerate() {
        let z = worst_z(library, options, *samples, 10 + i as u64);
        assert!(z < TOLERANCE, "{options:?} with S = {samples}: {z:.1} standard errors from the exact gradient");
    }
}

#[test]
fn the_check_rejects_a_baseline_with_the_episodes_own_return_and_a_dropped_step() {
    let options = EpisodeOptions::leave_one_out();
    let z = worst_z(baseline_with_itself, &options, 2, 3);
    assert!(z > TOLERANCE, "the biased baseline passed: {z:.1} standard errors");
    let z = worst_z(middle_step_dropped, &options, 4, 4);
    assert!(z > TOLERANCE, "dropping a step's score passed: {z:.1} standard errors");
}

#[test]
fn bad_episode_tensors_are_refused() {
    let ones = Tensor::ones([2, 3, 4], (Kind::Double, tch::Device::Cpu));
    let error = |r: Result<Tensor, sfess_agents::EstimatorError>| r.unwrap_err().to_string();
    assert!(error(surrogate_loss(&ones, &ones.view([2, 12]), &ones, &EpisodeOptions::plain())).contains("log_probs"));
    assert!(error(surrogate_loss(&ones, &ones, &ones.get(0), &EpisodeOptions::plain())).contains("alive"));
    let one = Tensor::ones([1, 3, 4], (Kind::Double, tch::Device::Cpu));
    assert!(error(surrogate_loss(&one, &one, &one, &EpisodeOptions::leave_one_out())).contains("at least 2"));
    let far = EpisodeOptions { discount: 1.5, ..EpisodeOptions::plain() };
    assert!(error(surrogate_loss(&ones, &ones, &ones, &far)).contains("discount"));
}
