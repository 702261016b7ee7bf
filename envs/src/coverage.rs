//! Maximum coverage: choose `k` of `n` sets to cover as much of a universe of `m` elements
//! as possible (optionally weighted), a black-box, NP-hard k-subset problem.
//!
//! With sets `S_1, …, S_n ⊆ {0, …, m−1}` and element weights `w_e ≥ 0`, the reward of a
//! choice `A` (|A| = k) is the covered weight fraction
//!
//! ```text
//! f(A) = Σ_{e ∈ ∪_{i∈A} S_i} w_e / Σ_e w_e   ∈ [0, 1]
//! ```
//!
//! `f` is monotone submodular, so the classic greedy algorithm (add the set of largest
//! marginal gain, `k` times) achieves `f(greedy) ≥ (1 − 1/e)·OPT` (Nemhauser, Wolsey and
//! Fisher 1978), and no polynomial algorithm does better in general unless P = NP (Feige
//! 1998). The exact optimum is computed by enumeration when `C(n, k)` is small enough.
//!
//! [`MaxCoverage`] is one global subset (`rows = 1`, no observation inputs), not
//! differentiable; the command line's defaults are `n = 50` sets, `m = 500` elements,
//! `k = 5` and instance seed 0 ([`CoverageInstance::random`]). On that instance random
//! 5-subsets cover 0.147 of the universe on average, greedy 0.266 and the optimum 0.288, so
//! learning has room to beat greedy. The optimum's `C(50, 5) ≈ 2.1 M` subsets take about
//! 0.04 s to enumerate exhaustively in release mode, and about 2 ms with the branch and
//! bound of [`CoverageInstance::optimum`].

use std::collections::BTreeMap;

use rand::{Rng, RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tch::Tensor;

use crate::env::{
    EnvError, EnvSpec, Environment, EvalPolicy, Observation, Phase, Transition, check_actions, chosen_lists,
    distinct_indices, random_subsets,
};
use crate::space::KHotSpace;

/// Random k-subsets averaged by the `"random"` baseline.
const RANDOM_SUBSETS: usize = 32;
/// Seed of the `"random"` baseline's subsets.
const RANDOM_SEED: u64 = 0x5EED_C0FE;
/// The most subsets the `"optimum"` baseline enumerates.
const OPTIMUM_LIMIT: u64 = 5_000_000;
/// Name used in the errors of [`CoverageInstance`]'s constructors.
const INSTANCE: &str = "coverage instance";

/// A weighted maximum-coverage instance: `n` sets over `m` elements, each set a bitset
/// (`⌈m / 64⌉` words), with a non-negative weight per element and a positive total weight.
#[derive(Debug, Clone, PartialEq)]
pub struct CoverageInstance {
    elements: usize,
    words: usize,
    /// Set `i`'s bitset is `bits[i * words .. (i + 1) * words]`.
    bits: Vec<u64>,
    weights: Vec<f64>,
    /// `Some(w)` when every element weighs `w` (covered weight = popcount · w).
    uniform: Option<f64>,
    total: f64,
}

/// The [`EnvError::Config`] of an invalid instance.
fn invalid(problem: String) -> EnvError {
    EnvError::Config { env: INSTANCE.to_owned(), problem }
}

impl CoverageInstance {
    /// A random instance from `seed` with `sets` sets over `elements` unit-weight elements,
    /// built so that greedy is in general *not* optimal: a planted "tiles and decoys" trap
    /// hidden among random filler sets.
    ///
    /// With `n = sets`, `m = elements` (both after a random relabelling of elements and
    /// sets, drawn from `Xoshiro256PlusPlus` seeded with `seed`):
    /// * **tiles**: `t = ⌈n/5⌉` disjoint sets that partition a core of `⌈m/2⌉` elements,
    ///   each of size about `c = ⌈m/2⌉ / t` (the sizes vary by a uniform factor in `[0.7, 1.3]`);
    /// * **decoys**: `d = ⌈n/10⌉` sets, each holding every core element independently with
    ///   probability `1.25 / t`, i.e. about `1.25·c` elements spread over all tiles: each
    ///   decoy is larger than a tile, so greedy takes decoys first, but decoys overlap each
    ///   other while tiles do not, so a few tiles together cover more;
    /// * **fillers**: the other `n − t − d` sets, each of a size log-uniform in
    ///   `[c/4, c]` drawn uniformly from all `m` elements.
    ///
    /// Every set has at least one element. Defaults `(50, 500)`: 10 tiles of ~25, 5 decoys of
    /// ~31 and 35 fillers of 6 to 25 elements.
    ///
    /// # Errors
    /// [`EnvError::Config`] when `sets` or `elements` is 0.
    pub fn random(sets: usize, elements: usize, seed: u64) -> Result<Self, EnvError> {
        if sets == 0 || elements == 0 {
            return Err(invalid(format!(
                "a random instance needs sets ≥ 1 and elements ≥ 1, got {sets} and {elements}"
            )));
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let tiles = sets.div_ceil(5).min(sets);
        let decoys = sets.div_ceil(10).min(sets - tiles);
        let core = elements.div_ceil(2);
        let tile_size = core as f64 / tiles as f64;
        // Elements and sets are relabelled at random so that index order carries no hint.
        let element_order: Vec<usize> =
            distinct_indices(&mut rng, elements, elements).iter().map(|&e| e as usize).collect();
        let mut lists: Vec<Vec<usize>> = Vec::with_capacity(sets);
        // Tiles: cut the core into `tiles` consecutive runs of random relative sizes.
        let shares: Vec<f64> = (0..tiles).map(|_| rng.random_range(0.7..1.3)).collect();
        let share_total: f64 = shares.iter().sum();
        let mut start = 0usize;
        let mut cumulative = 0.0;
        for (t, share) in shares.iter().enumerate() {
            cumulative += share;
            let end = if t + 1 == tiles { core } else { ((cumulative / share_total) * core as f64).round() as usize };
            let end = end.clamp(start, core);
            lists.push(element_order[start..end].to_vec());
            start = end;
        }
        // Decoys: each core element with probability 1.25 / tiles.
        let keep = (1.25 / tiles as f64).min(1.0);
        for _ in 0..decoys {
            lists.push(element_order[..core].iter().copied().filter(|_| rng.random_bool(keep)).collect());
        }
        // Fillers: log-uniform sizes in [c/4, c], uniform elements of the whole universe.
        let (low, high) = ((tile_size / 4.0).max(1.0), tile_size.max(1.0));
        for _ in tiles + decoys..sets {
            let size = (low * (high / low).powf(rng.random::<f64>())).round() as usize;
            let picks = distinct_indices(&mut rng, elements, size.clamp(1, elements));
            lists.push(picks.iter().map(|&e| e as usize).collect());
        }
        for list in &mut lists {
            if list.is_empty() {
                list.push(rng.random_range(0..elements));
            }
        }
        let order = distinct_indices(&mut rng, sets, sets);
        let lists = order.iter().map(|&i| std::mem::take(&mut lists[i as usize])).collect();
        Self::from_sets(elements, lists, None)
    }

    /// An instance over `elements` elements `0..elements` with the given sets (lists of
    /// element indices; repeats are harmless) and element weights (`None`: all 1).
    ///
    /// # Errors
    /// [`EnvError::Config`] when there are no elements or no sets, an element index is
    /// `≥ elements`, `weights` has a length other than `elements`, a weight is negative or
    /// not finite, or the weights sum to 0.
    pub fn from_sets(elements: usize, sets: Vec<Vec<usize>>, weights: Option<Vec<f64>>) -> Result<Self, EnvError> {
        if elements == 0 {
            return Err(invalid("the universe needs at least one element".to_owned()));
        }
        if sets.is_empty() {
            return Err(invalid("the instance needs at least one set".to_owned()));
        }
        let weights = weights.unwrap_or_else(|| vec![1.0; elements]);
        if weights.len() != elements {
            return Err(invalid(format!("{} weights given for {elements} elements", weights.len())));
        }
        if let Some((e, w)) = weights.iter().enumerate().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
            return Err(invalid(format!("the weight of element {e} is {w}; weights must be finite and ≥ 0")));
        }
        let total: f64 = weights.iter().sum();
        if !(total > 0.0 && total.is_finite()) {
            return Err(invalid(format!("the weights must have a positive finite total, got {total}")));
        }
        let words = elements.div_ceil(64);
        let mut bits = vec![0u64; sets.len() * words];
        for (i, set) in sets.iter().enumerate() {
            for &e in set {
                if e >= elements {
                    return Err(invalid(format!("set {i} holds element {e}, but there are only {elements} elements")));
                }
                bits[i * words + e / 64] |= 1 << (e % 64);
            }
        }
        let uniform = weights.iter().all(|&w| w == weights[0]).then_some(weights[0]);
        Ok(Self { elements, words, bits, weights, uniform, total })
    }

    /// Number of sets `n`.
    #[must_use]
    pub fn sets(&self) -> usize {
        self.bits.len() / self.words
    }

    /// Number of elements `m`.
    #[must_use]
    pub fn elements(&self) -> usize {
        self.elements
    }

    /// The elements of set `i` in increasing order (empty for `i ≥ n`).
    #[must_use]
    pub fn set(&self, i: usize) -> Vec<usize> {
        if i >= self.sets() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (w, &word) in self.bitset(i).iter().enumerate() {
            let mut word = word;
            while word != 0 {
                out.push(w * 64 + word.trailing_zeros() as usize);
                word &= word - 1;
            }
        }
        out
    }

    /// The bitset of set `i`.
    fn bitset(&self, i: usize) -> &[u64] {
        &self.bits[i * self.words..(i + 1) * self.words]
    }

    /// The weight of the elements in `bits`, unnormalised.
    fn weight_of(&self, bits: &[u64]) -> f64 {
        match self.uniform {
            Some(w) => f64::from(bits.iter().map(|b| b.count_ones()).sum::<u32>()) * w,
            None => {
                let mut sum = 0.0;
                for (w, &word) in bits.iter().enumerate() {
                    let mut word = word;
                    while word != 0 {
                        sum += self.weights[w * 64 + word.trailing_zeros() as usize];
                        word &= word - 1;
                    }
                }
                sum
            }
        }
    }

    /// The weight of `set`'s elements outside `covered`: the marginal gain of adding it.
    fn gain(&self, covered: &[u64], set: usize) -> f64 {
        let fresh: Vec<u64> = self.bitset(set).iter().zip(covered).map(|(s, c)| s & !c).collect();
        self.weight_of(&fresh)
    }

    /// The union of the chosen sets as a bitset (indices `≥ n` are ignored).
    fn union(&self, chosen: &[usize]) -> Vec<u64> {
        let mut covered = vec![0u64; self.words];
        for &i in chosen.iter().filter(|&&i| i < self.sets()) {
            or_into(&mut covered, self.bitset(i));
        }
        covered
    }

    /// The covered weight fraction `f(A)` of the sets `chosen` (see the
    /// [module docs](self)), in `[0, 1]`. Repeated indices count once; indices `≥ n` cover
    /// nothing.
    #[must_use]
    pub fn coverage(&self, chosen: &[usize]) -> f64 {
        self.weight_of(&self.union(chosen)) / self.total
    }

    /// The classic greedy algorithm: `k` times, add the set of largest marginal gain
    /// `w(S_i \ covered)` (ties → the lowest index), in the order chosen. `k` is capped at `n`.
    #[must_use]
    pub fn greedy(&self, k: usize) -> Vec<usize> {
        let n = self.sets();
        let mut covered = vec![0u64; self.words];
        let mut taken = vec![false; n];
        let mut chosen = Vec::with_capacity(k.min(n));
        for _ in 0..k.min(n) {
            let mut best: Option<(usize, f64)> = None;
            for i in (0..n).filter(|&i| !taken[i]) {
                let gain = self.gain(&covered, i);
                if best.is_none_or(|(_, g)| gain > g) {
                    best = Some((i, gain));
                }
            }
            let Some((i, _)) = best else { break };
            taken[i] = true;
            or_into(&mut covered, self.bitset(i));
            chosen.push(i);
        }
        chosen
    }

    /// The exact optimum `(sets in increasing order, coverage)` over all `k`-subsets, the
    /// lexicographically first among ties (up to rounding, for non-uniform weights), or `None` when `C(n, k) > limit` or `k > n`.
    ///
    /// Depth-first enumeration of the combinations in lexicographic order with the union
    /// of the prefix kept per depth (one bitset OR per node). Branch and bound: a prefix
    /// `P` with `r` sets still to choose from the sets after it is skipped when
    /// `w(P) + (sum of the r largest gains w(S_j \ P) among those sets)` is below the best
    /// value found (a valid bound since coverage is submodular); with `r = 1` the bound is
    /// exact and the leaves are scored as gains.
    #[must_use]
    pub fn optimum(&self, k: usize, limit: u64) -> Option<(Vec<usize>, f64)> {
        let n = self.sets();
        if k > n || binomial(n as u64, k as u64).is_none_or(|c| c > limit) {
            return None;
        }
        let mut search = Search {
            instance: self,
            k,
            prefix: vec![vec![0u64; self.words]; k + 1],
            prefix_weight: vec![0.0; k + 1],
            path: Vec::with_capacity(k),
            best: Vec::new(),
            best_value: f64::NEG_INFINITY,
            slack: 1e-9 * self.total,
            gains: Vec::with_capacity(n),
        };
        search.descend(0, 0);
        // Rescored with `coverage`, so that the value is exactly what the environment gives.
        let value = self.coverage(&search.best);
        Some((search.best, value))
    }
}

/// `target |= source`, word by word.
fn or_into(target: &mut [u64], source: &[u64]) {
    for (t, s) in target.iter_mut().zip(source) {
        *t |= s;
    }
}

/// `C(n, k)`, or `None` on overflow of `u64`.
fn binomial(n: u64, k: u64) -> Option<u64> {
    if k > n {
        return Some(0);
    }
    let k = k.min(n - k);
    let mut c: u128 = 1;
    for i in 0..k {
        // c = C(n, i) here, and C(n, i + 1) = C(n, i) · (n − i) / (i + 1) exactly.
        c = c * u128::from(n - i) / u128::from(i + 1);
        if c > u128::from(u64::MAX) {
            return None;
        }
    }
    u64::try_from(c).ok()
}

/// The state of [`CoverageInstance::optimum`]'s branch and bound.
struct Search<'a> {
    instance: &'a CoverageInstance,
    k: usize,
    /// `prefix[d]`: the union of the first `d` chosen sets.
    prefix: Vec<Vec<u64>>,
    /// `prefix_weight[d] = w(prefix[d])`.
    prefix_weight: Vec<f64>,
    path: Vec<usize>,
    best: Vec<usize>,
    best_value: f64,
    /// Rounding allowance of the bound (bounds are compared with `best − slack`).
    slack: f64,
    /// Scratch space for the gains of the remaining sets.
    gains: Vec<f64>,
}

impl Search<'_> {
    /// Extends `path` (of length `depth`) with sets `start..n`.
    fn descend(&mut self, depth: usize, start: usize) {
        let n = self.instance.sets();
        let remaining = self.k - depth;
        if remaining == 0 {
            // Only reached for k = 0: the empty choice.
            if self.prefix_weight[0] > self.best_value {
                self.best_value = self.prefix_weight[0];
                self.best.clear();
            }
            return;
        }
        let last_start = n - remaining;
        if remaining == 1 {
            // Leaves: the value of path + {i} is w(prefix) + gain(i).
            for i in start..=last_start {
                let value = self.prefix_weight[depth] + self.instance.gain(&self.prefix[depth], i);
                if value > self.best_value {
                    self.best_value = value;
                    self.best.clone_from(&self.path);
                    self.best.push(i);
                }
            }
            return;
        }
        // Bound: w(prefix) + the `remaining` largest gains among sets start..n.
        self.gains.clear();
        for i in start..n {
            let gain = self.instance.gain(&self.prefix[depth], i);
            self.gains.push(gain);
        }
        self.gains.sort_unstable_by(|a, b| b.total_cmp(a));
        let bound = self.prefix_weight[depth] + self.gains[..remaining].iter().sum::<f64>();
        if bound < self.best_value - self.slack {
            return;
        }
        for i in start..=last_start {
            let (head, tail) = self.prefix.split_at_mut(depth + 1);
            tail[0].copy_from_slice(&head[depth]);
            or_into(&mut tail[0], self.instance.bitset(i));
            self.prefix_weight[depth + 1] = self.instance.weight_of(&self.prefix[depth + 1]);
            self.path.push(i);
            self.descend(depth + 1, i + 1);
            self.path.pop();
        }
    }
}

/// Maximum coverage as a black-box environment; see the [module docs](self).
///
/// Spec: `rows = 1`, not differentiable, metric `"coverage"` (higher is better),
/// `observation_dim = 0`. Actions `[S, 1, n]` must be exact k-hot vectors; the reward of
/// each is its coverage `f(A)`. Validation and test are the same (the instance is fixed).
#[derive(Debug)]
pub struct MaxCoverage {
    spec: EnvSpec,
    instance: CoverageInstance,
    ready: bool,
    baselines: Option<BTreeMap<String, f64>>,
}

impl MaxCoverage {
    /// The environment named `name`: choose `k` of the instance's sets.
    ///
    /// # Errors
    /// [`EnvError::Config`] when `k > n`.
    pub fn new(name: &str, instance: CoverageInstance, k: usize) -> Result<Self, EnvError> {
        let (n, m) = (instance.sets(), instance.elements());
        let space =
            KHotSpace::new(n, k).map_err(|e| EnvError::Config { env: name.to_owned(), problem: e.to_string() })?;
        let spec = EnvSpec {
            name: name.to_owned(),
            space,
            rows: 1,
            differentiable: false,
            metric: "coverage".to_owned(),
            higher_is_better: true,
            observation_dim: 0,
            description: format!(
                "maximum coverage: choose {k} of {n} sets over {m} elements; reward = covered weight fraction (black box)"
            ),
        };
        Ok(Self { spec, instance, ready: false, baselines: None })
    }

    /// The instance.
    #[must_use]
    pub fn instance(&self) -> &CoverageInstance {
        &self.instance
    }
}

impl Environment for MaxCoverage {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    /// No inputs: the instance is fixed, so `rng` is not used.
    fn reset(&mut self, _rng: &mut dyn Rng) -> Result<Observation, EnvError> {
        self.ready = true;
        Ok(Observation { inputs: Vec::new() })
    }

    /// Rewards `[S, 1]` (`f32`, on the actions' device): the coverage of each action.
    fn step(&mut self, actions: &Tensor) -> Result<Transition, EnvError> {
        let samples = check_actions(&self.spec, actions)?;
        if !self.ready {
            return Err(EnvError::NotReset { env: self.spec.name.clone() });
        }
        let rewards: Vec<f32> =
            chosen_lists(&self.spec, actions)?.iter().map(|chosen| self.instance.coverage(chosen) as f32).collect();
        let rewards = Tensor::from_slice(&rewards).f_view([samples, 1])?.f_to_device(actions.device())?;
        Ok(Transition::rewards(rewards))
    }

    /// `{"coverage": f(top-k action)}`; both phases give the same value.
    fn evaluate(&mut self, _phase: Phase, policy: &dyn EvalPolicy) -> Result<BTreeMap<String, f64>, EnvError> {
        let action = policy.act(&Observation { inputs: Vec::new() })?;
        let n = self.spec.space.n() as i64;
        if action.size() != [1, n] {
            return Err(EnvError::Policy(format!("act gave shape {:?}, expected [1, {n}]", action.size())));
        }
        let chosen = chosen_lists(&self.spec, &action).map_err(|e| EnvError::Policy(e.to_string()))?;
        Ok(BTreeMap::from([("coverage".to_owned(), self.instance.coverage(&chosen[0]))]))
    }

    /// `"random"`: mean coverage of 32 uniformly random k-subsets (fixed seed); `"greedy"`;
    /// `"optimum"` when `C(n, k) ≤ 5,000,000`. Computed once; both phases are the same.
    fn baselines(&mut self, _phase: Phase) -> Result<BTreeMap<String, f64>, EnvError> {
        if let Some(cached) = &self.baselines {
            return Ok(cached.clone());
        }
        let (n, k) = (self.spec.space.n(), self.spec.space.k());
        let random: f64 = random_subsets(RANDOM_SEED, RANDOM_SUBSETS, n, k)
            .iter()
            .map(|picks| self.instance.coverage(picks))
            .sum::<f64>()
            / RANDOM_SUBSETS as f64;
        let mut out = BTreeMap::from([
            ("random".to_owned(), random),
            ("greedy".to_owned(), self.instance.coverage(&self.instance.greedy(k))),
        ]);
        if let Some((_, value)) = self.instance.optimum(k, OPTIMUM_LIMIT) {
            out.insert("optimum".to_owned(), value);
        }
        self.baselines = Some(out.clone());
        Ok(out)
    }
}

/// The registry's entry of maximum coverage (`max-coverage`): k = 5 of 50 random sets over
/// 500 elements; baselines greedy (1 - 1/e), the optimum and random.
pub fn entry() -> crate::registry::EnvEntry {
    description().constructor(|make| {
        let options = make.options;
        let instance =
            CoverageInstance::random(options.count("n")?, options.count("elements")?, options.seed("seed")?)?;
        Ok(Box::new(MaxCoverage::new(make.name, instance, make.k)?))
    })
}

/// [`entry`] without its constructor: what [`Registry::catalog`](crate::registry::Registry::catalog) lists.
pub(crate) fn description() -> crate::registry::EnvEntry {
    use crate::registry::{EnvEntry, MAX_ITEMS, OptionSpec, Shape};
    EnvEntry::described(
        "max-coverage",
        "k of n random sets covering a universe of elements; baselines: greedy (1 - 1/e), the optimum, random",
    )
    .default_k(5)
    .metric("coverage", true)
    .option(OptionSpec::count("n", 50, 1, MAX_ITEMS, "sets to choose from").legacy_flag("--n"))
    .option(
        OptionSpec::count("elements", 500, 1, MAX_ITEMS, "elements of the universe").legacy_flag("--coverage-elements"),
    )
    .option(
        OptionSpec::seed("seed", 0, "seed of the random instance (fixed across training seeds)")
            .legacy_flag("--coverage-seed"),
    )
    .baseline("greedy")
    .baseline("optimum")
    .baseline("random")
    .shape(|make| Ok(Shape { items: make.options.count("n")?, items_are: "sets (option n)".to_owned(), rows: 1 }))
}
