//! The environment interface: Gymnasium's `reset`/`step`, batched over rows and samples.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tch::nn::VarStore;
use tch::{Device, Kind, TchError, Tensor};

use crate::space::KHotSpace;

/// Which held-out split to evaluate on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// The validation split (10,000 images held out of the training set).
    Validation,
    /// The test split.
    Test,
}

impl Phase {
    /// `validation` or `test`, as in the metrics files.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Validation => "validation",
            Phase::Test => "test",
        }
    }
}

/// Which training step an environment starts ([`Environment::reset_step`]), with the seed
/// of its own noise for that step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StepSeed {
    /// The training step, from 0.
    pub step: u64,
    /// A seed for the environment's noise at this step: a function of the run's seed and
    /// the step alone.
    pub seed: u64,
}

/// What an environment is: its name, action space and metric.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvSpec {
    /// Name on the command line.
    pub name: String,
    /// Each row of an action is a k-hot vector of this space.
    pub space: KHotSpace,
    /// Rows per observation: the batch `B` of the actions `[S, B, n]` (1 for one global subset).
    pub rows: usize,
    /// Whether the loss is differentiable in the actions (pathwise estimators need it).
    pub differentiable: bool,
    /// The main evaluation metric (a key of [`Environment::evaluate`]'s result).
    pub metric: String,
    /// Whether a larger metric is better.
    pub higher_is_better: bool,
    /// Features per row of the first observation input (what a policy network reads: 784
    /// for an image), or 0 when the observation has no inputs (one global subset).
    pub observation_dim: usize,
    /// One line for `sfess-agent envs`.
    pub description: String,
}

/// The context the policy sees at a step; each environment documents its inputs.
#[derive(Debug)]
pub struct Observation {
    /// The policy's inputs (k-NN: `[queries, candidates]`; a global subset: none).
    pub inputs: Vec<Tensor>,
}

/// The prefix of an environment's diagnostics among a run's metrics (see [`info_metric`]).
pub const INFO_PREFIX: &str = "info.";

/// The metric under which a run records the environment's diagnostic `name` (an entry of
/// [`Transition::info`], of an episode step's info, or of a reward command's `info`):
/// `info.NAME`, in training and in evaluation. No metric of the trainer's own (`loss`,
/// `seconds_per_step`, `return`, `length`, ...) begins with it, so a diagnostic never
/// shadows one.
pub fn info_metric(name: &str) -> String {
    format!("{INFO_PREFIX}{name}")
}

/// What [`Environment::step`] gives: Gymnasium's `(reward, terminated, truncated, info)`,
/// batched over the `S` sampled actions of each row. Every task here is a one-step
/// episode (a contextual bandit): each `reset` starts an episode and its `step` ends it.
#[derive(Debug)]
pub struct Transition {
    /// One reward per action, `[S, rows]`. For the paper's tasks the reward is minus the
    /// loss, and it carries the graph into the actions (when differentiable) and into the
    /// environment's own parameters.
    pub rewards: Tensor,
    /// Whether the episode ended (always, for one-step episodes).
    pub terminated: bool,
    /// Whether the episode was cut short by a time limit.
    pub truncated: bool,
    /// Diagnostics of this step (means over the batch), logged with the training loss as
    /// `info.NAME` ([`info_metric`]).
    pub info: BTreeMap<String, f64>,
}

impl Transition {
    /// A terminated one-step episode with these rewards and no info.
    pub fn rewards(rewards: Tensor) -> Self {
        Self { rewards, terminated: true, truncated: false, info: BTreeMap::new() }
    }

    /// A terminated one-step episode whose rewards are minus `losses`.
    ///
    /// # Errors
    /// libtorch errors.
    pub fn losses(losses: &Tensor) -> Result<Self, EnvError> {
        Ok(Self::rewards(losses.f_neg()?))
    }
}

/// Errors of environments.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// Actions of the wrong shape for the last observation.
    #[error("{env}: actions must have shape [S, {rows}, {n}], got {shape:?}")]
    ActionShape {
        /// The environment.
        env: String,
        /// Rows expected.
        rows: usize,
        /// Items expected.
        n: usize,
        /// Shape given.
        shape: Vec<i64>,
    },
    /// `step` before `reset`.
    #[error("{env}: step() called before reset()")]
    NotReset {
        /// The environment.
        env: String,
    },
    /// A parameter out of range.
    #[error("{env}: {problem}")]
    Config {
        /// The environment.
        env: String,
        /// What is wrong.
        problem: String,
    },
    /// The policy failed while evaluating.
    #[error("evaluating the policy: {0}")]
    Policy(String),
    /// The k-subset distribution rejected the logits (supplied from outside this crate).
    #[error("the k-subset distribution: {0}")]
    Distribution(String),
    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] TchError),
    /// The caller's stop flag ([`crate::external::ExternalReward::set_interrupt`]) was set
    /// while the environment waited for the external reward command's answer. The command's
    /// process group has been killed: the environment is unusable afterwards.
    #[error("interrupted while waiting for the reward command's answer to line {line}")]
    Interrupted {
        /// The request line whose answer was awaited (counted from 1).
        line: u64,
    },
    /// The external reward command ([`crate::external`]) failed: it could not be started,
    /// exited or closed its stdout before answering, gave no answer in time, wrote an answer
    /// line longer than [`crate::external::MAX_ANSWER_BYTES`], or answered something that is
    /// not one reward per action, finite in f32. The environment is unusable
    /// afterwards (its process group has been killed).
    #[error("reward command '{command}'{}: {problem}", batch_line(.line))]
    RewardProcess {
        /// The command, as given to `sh -c`.
        command: String,
        /// The request line that failed (counted from 1; 0 before the first request).
        line: u64,
        /// What went wrong.
        problem: String,
    },
}

/// `, batch line N` for request line `N`, nothing for 0 (before the first request).
fn batch_line(line: &u64) -> String {
    if *line == 0 { String::new() } else { format!(", batch line {line}") }
}

/// What an environment needs of a policy to evaluate it.
pub trait EvalPolicy {
    /// The logits of the policy for an observation, `[rows, n]`, without gradient.
    ///
    /// # Errors
    /// Whatever the policy's network fails with.
    fn logits(&self, observation: &Observation) -> Result<Tensor, EnvError>;

    /// Deterministic k-hot actions for an observation: the top-k of the logits, `[rows, n]`.
    ///
    /// # Errors
    /// Whatever the policy's network fails with.
    fn act(&self, observation: &Observation) -> Result<Tensor, EnvError>;

    /// The policy's embedding of raw inputs `[N, …]`, for environments evaluated in
    /// embedding space (k-NN); `None` for policies without one.
    ///
    /// # Errors
    /// Whatever the policy's network fails with.
    fn embed(&self, inputs: &Tensor) -> Result<Option<Tensor>, EnvError>;

    /// The inclusion probabilities `P(z_i = 1)` of the policy's k-subset law for each row
    /// of an observation, `[rows, n]` `f64` on the CPU; `None` (the default) for policies
    /// that are not a law (a fixed action).
    ///
    /// # Errors
    /// Whatever the policy's network or the law fails with.
    fn marginals(&self, _observation: &Observation) -> Result<Option<Tensor>, EnvError> {
        Ok(None)
    }
}

/// A policy that always plays the same action: to evaluate a hand-picked subset (or a
/// classical method's) with [`Environment::evaluate`]. An action of one row `[1, n]` is
/// repeated for every row of the observation's first input.
#[derive(Debug)]
pub struct FixedAction(pub Tensor);

impl EvalPolicy for FixedAction {
    fn logits(&self, observation: &Observation) -> Result<Tensor, EnvError> {
        self.act(observation)
    }

    fn act(&self, observation: &Observation) -> Result<Tensor, EnvError> {
        match observation.inputs.first() {
            Some(input) if self.0.size()[0] == 1 => {
                Ok(self.0.f_expand([input.size()[0], -1], false)?.f_contiguous()?)
            }
            _ => Ok(self.0.shallow_clone()),
        }
    }

    fn embed(&self, _inputs: &Tensor) -> Result<Option<Tensor>, EnvError> {
        Ok(None)
    }
}

/// An environment whose actions are k-hot vectors, with Gymnasium's semantics batched:
/// `reset` draws a training observation, `step` scores `S` actions for each of its rows.
pub trait Environment {
    /// Name, action space, metric.
    fn spec(&self) -> &EnvSpec;

    /// Starts a step: draws a training batch with `rng` and returns what the policy sees.
    ///
    /// # Errors
    /// libtorch errors.
    fn reset(&mut self, rng: &mut dyn Rng) -> Result<Observation, EnvError>;

    /// Starts training step `step.step`: [`reset`](Self::reset), told which step it is and
    /// given `step.seed` for the environment's own noise. The trainer calls this; the
    /// default ignores both. `step.seed` depends on the run's seed and the step alone (not on
    /// `rng`'s draws), so a noisy reward seeded from it repeats exactly when a run resumes.
    ///
    /// # Errors
    /// As [`reset`](Self::reset).
    fn reset_step(&mut self, step: StepSeed, rng: &mut dyn Rng) -> Result<Observation, EnvError> {
        let _ = step;
        self.reset(rng)
    }

    /// Scores actions `[S, rows, n]` (k-hot, or relaxed for differentiable environments)
    /// for the last observation: one reward per action, `[S, rows]`, in a [`Transition`].
    ///
    /// # Errors
    /// [`EnvError::ActionShape`], [`EnvError::NotReset`], libtorch errors, and whatever
    /// computes the reward (a child process, a user's closure) fails with.
    fn step(&mut self, actions: &Tensor) -> Result<Transition, EnvError>;

    /// Terms of the loss that depend on the logits directly rather than through the
    /// actions (a VAE's KL to the prior), as a scalar to add to the surrogate; `None` when
    /// there are none.
    ///
    /// # Errors
    /// libtorch errors.
    fn logit_loss(&mut self, _logits: &Tensor) -> Result<Option<Tensor>, EnvError> {
        Ok(None)
    }

    /// The environment's own trainable parameters, if any.
    fn var_store(&self) -> Option<&VarStore> {
        None
    }

    /// The environment of episodes behind this one ([`crate::episodes::Episodic`]), which
    /// the trainer trains over episodes; `None` (the default) for one-step environments,
    /// trained with [`reset_step`](Self::reset_step) and [`step`](Self::step).
    fn sequential(&mut self) -> Option<&mut dyn crate::episodes::SequentialEnvironment> {
        None
    }

    /// Evaluates a policy on a held-out split; the map holds at least `spec().metric`.
    ///
    /// # Errors
    /// Policy and libtorch errors.
    fn evaluate(&mut self, phase: Phase, policy: &dyn EvalPolicy) -> Result<BTreeMap<String, f64>, EnvError>;

    /// An observation of held-out data (the first `rows` rows of `phase`'s split, always
    /// the same), for what a contextual policy does on data it did not train on: the
    /// marginals a run records at each validation and `subset.json`. `None` (the default)
    /// for environments without one; a policy that reads no observation needs none.
    ///
    /// # Errors
    /// libtorch errors.
    fn held_out_observation(&mut self, _phase: Phase, _rows: usize) -> Result<Option<Observation>, EnvError> {
        Ok(None)
    }

    /// The figures of what `policy` learned, from held-out data only (`sfess-agent show`
    /// draws them): the k-NN embedding, the selected pixels and reconstructions, ...
    /// Empty (the default) for environments without figures of their own; every run also
    /// gets its learning curve and the marginals over training.
    ///
    /// # Errors
    /// Policy and libtorch errors.
    fn pictures(&mut self, _policy: &dyn EvalPolicy) -> Result<Vec<crate::pictures::Picture>, EnvError> {
        Ok(Vec::new())
    }

    /// The main metric of the selections that need no training, on `phase`: random
    /// subsets and the task's classical method (QR pivoting, greedy, ...), by name. Empty
    /// for tasks without any.
    ///
    /// # Errors
    /// libtorch errors.
    fn baselines(&mut self, _phase: Phase) -> Result<BTreeMap<String, f64>, EnvError> {
        Ok(BTreeMap::new())
    }
}

/// The held-out split of `data` that `phase` evaluates on.
pub(crate) fn held_out(data: &crate::data::Mnist, phase: Phase) -> &crate::data::Split {
    match phase {
        Phase::Validation => &data.validation,
        Phase::Test => &data.test,
    }
}

/// Checks that `actions` is `[S, rows, n]` for `spec`.
pub(crate) fn check_actions(spec: &EnvSpec, actions: &Tensor) -> Result<i64, EnvError> {
    let shape = actions.size();
    match shape[..] {
        [s, rows, n] if s >= 1 && rows == spec.rows as i64 && n == spec.space.n() as i64 => Ok(s),
        _ => Err(EnvError::ActionShape { env: spec.name.clone(), rows: spec.rows, n: spec.space.n(), shape }),
    }
}

/// The top-k entries of each row of `scores` (`[…, n]`) as k-hot vectors of the same type
/// and device: the deterministic action of a policy's logits, or of a classical method's
/// scores.
///
/// # Errors
/// libtorch errors.
pub fn top_k_hot(scores: &Tensor, k: i64) -> Result<Tensor, TchError> {
    let zeros = scores.f_zeros_like()?;
    if k == 0 {
        return Ok(zeros);
    }
    let (_, indices) = scores.f_topk(k, -1, true, false)?;
    zeros.f_scatter_value(-1, &indices, 1.0)
}

/// `count` k-hot rows `[count, n]` (f32, on the CPU), row `r` with ones at `subsets[r]`.
///
/// # Errors
/// libtorch errors.
pub fn k_hot_rows(subsets: &[Vec<usize>], n: usize) -> Result<Tensor, EnvError> {
    let mut hot = vec![0f32; subsets.len() * n];
    for (row, subset) in subsets.iter().enumerate() {
        subset.iter().for_each(|&i| hot[row * n + i] = 1.0);
    }
    Ok(Tensor::from_slice(&hot).f_view([subsets.len() as i64, n as i64])?)
}

/// The chosen items of each k-hot row of `actions` (`[…, n]`): `[rows, k]` `i64`, ascending
/// within a row, on the actions' device. Every row is checked at once (entries 0 or 1,
/// exactly k ones), and the error names the first row that fails.
///
/// # Errors
/// [`EnvError::Config`] for a row that is not k-hot; libtorch errors.
pub fn chosen_items(spec: &EnvSpec, actions: &Tensor) -> Result<Tensor, EnvError> {
    let (n, k) = (spec.space.n() as i64, spec.space.k() as i64);
    let rows = actions.f_detach()?.f_reshape([-1, n])?;
    let binary = rows.f_eq(0.0)?.f_logical_or(&rows.f_eq(1.0)?)?.f_all_dim(-1, false)?;
    let valid = binary.f_logical_and(&rows.f_sum_dim_intlist(-1, false, Kind::Int64)?.f_eq(k)?)?;
    if !bool::try_from(valid.f_all()?)? {
        let first = valid.f_logical_not()?.f_to_kind(Kind::Int64)?.f_argmax(None, false)?.int64_value(&[]);
        return Err(EnvError::Config {
            env: spec.name.clone(),
            problem: format!("action {first} is not a k-hot vector (entries 0 or 1, exactly k = {k} ones)"),
        });
    }
    // nonzero lists the (row, column) pairs row by row, k per row, columns ascending.
    Ok(rows.f_nonzero()?.f_select(1, 1)?.f_view([rows.size()[0], k])?)
}

/// [`chosen_items`] on the host: one ascending list per row.
///
/// # Errors
/// As [`chosen_items`].
pub fn chosen_lists(spec: &EnvSpec, actions: &Tensor) -> Result<Vec<Vec<usize>>, EnvError> {
    let items = chosen_items(spec, actions)?;
    let (rows, k) = (items.size()[0] as usize, spec.space.k());
    let flat = Vec::<i64>::try_from(items.f_to_device(Device::Cpu)?.f_flatten(0, -1)?)?;
    Ok((0..rows).map(|r| flat[r * k..(r + 1) * k].iter().map(|&i| i as usize).collect()).collect())
}

/// `count` uniformly random k-subsets of `0..n` (each in the order drawn), from a
/// generator seeded `seed`: the draws behind the `random` baselines.
pub fn random_subsets(seed: u64, count: usize, n: usize, k: usize) -> Vec<Vec<usize>> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..count).map(|_| distinct_indices(&mut rng, n, k).into_iter().map(|i| i as usize).collect()).collect()
}

/// [`distinct_indices`] as an `i64` tensor on `device`. On CUDA the copy is asynchronous,
/// from pinned memory, so that drawing a batch never waits for the device (a plain copy
/// from pageable memory waits for everything queued before it).
///
/// # Errors
/// libtorch errors.
pub(crate) fn random_batch(
    rng: &mut dyn Rng,
    population: usize,
    count: usize,
    device: Device,
) -> Result<Tensor, EnvError> {
    let host = Tensor::from_slice(&distinct_indices(rng, population, count));
    Ok(match device {
        Device::Cuda(_) => host.f_pin_memory(device)?.f_to_device_(device, Kind::Int64, true, false)?,
        _ => host,
    })
}

/// `count` distinct indices of `0..population`, uniformly, in random order (Floyd's
/// algorithm followed by a shuffle), from `rng`.
pub fn distinct_indices(rng: &mut dyn Rng, population: usize, count: usize) -> Vec<i64> {
    assert!(count <= population, "cannot draw {count} distinct indices from {population}");
    let mut chosen = std::collections::HashSet::with_capacity(count);
    let mut order = Vec::with_capacity(count);
    for j in population - count..population {
        let t = uniform_below(rng, j + 1);
        let pick = if chosen.contains(&t) { j } else { t };
        chosen.insert(pick);
        order.push(pick as i64);
    }
    for i in (1..order.len()).rev() {
        order.swap(i, uniform_below(rng, i + 1));
    }
    order
}

/// A uniform integer in `0..bound` (Lemire's multiply-shift with rejection).
fn uniform_below(rng: &mut dyn Rng, bound: usize) -> usize {
    let bound = bound as u64;
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(bound);
        if (product as u64) >= threshold {
            return (product >> 64) as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    fn spec(n: usize, k: usize) -> EnvSpec {
        EnvSpec {
            name: "t".to_owned(),
            space: KHotSpace::new(n, k).unwrap(),
            rows: 1,
            differentiable: false,
            metric: "m".to_owned(),
            higher_is_better: true,
            observation_dim: 0,
            description: String::new(),
        }
    }

    #[test]
    fn k_hot_rows_become_sorted_indices() {
        let lists = |n: usize, k: usize, values: &[f32]| chosen_lists(&spec(n, k), &Tensor::from_slice(values));
        assert_eq!(lists(4, 2, &[0.0, 1.0, 0.0, 1.0]).unwrap(), vec![vec![1, 3]]);
        assert!(lists(4, 1, &[0.0, 1.0, 0.0, 1.0]).is_err());
        assert!(lists(4, 2, &[0.5, 1.0, 0.5, 0.0]).is_err());
        assert_eq!(lists(2, 0, &[0.0, 0.0]).unwrap(), vec![Vec::<usize>::new()]);
        let message = lists(2, 1, &[1.0, 0.0, 1.0, 1.0]).unwrap_err().to_string();
        assert!(message.contains("action 1 is not a k-hot vector"), "{message}");
    }

    #[test]
    fn distinct_indices_are_distinct_in_range_and_cover_evenly() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let mut counts = [0usize; 10];
        for _ in 0..20_000 {
            let picks = distinct_indices(&mut rng, 10, 3);
            let set: std::collections::HashSet<_> = picks.iter().collect();
            assert_eq!(set.len(), 3);
            for &p in &picks {
                counts[p as usize] += 1;
            }
        }
        // Each index is picked with probability 3/10: 6,000 expected, sd ≈ 65.
        assert!(counts.iter().all(|&c| (c as f64 - 6000.0).abs() < 400.0), "{counts:?}");
        assert_eq!(distinct_indices(&mut rng, 5, 5).len(), 5);
    }
}
