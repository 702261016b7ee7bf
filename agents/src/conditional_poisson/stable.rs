//! The stable backend: log normaliser, marginals and exact samples of the
//! conditional Poisson law in `O(n k)` time and `O(k √n)` memory, exact to rounding.
//!
//! # Method
//! `e_k(w)` is invariant, up to a known factor, under tilting all logits by one scalar
//! `t`: `log e_k(w) = log e_k(w e^t) − k t`. We pick `t` so that the tilted Bernoullis
//! `p_i = σ(η_i + t)` have `Σ p_i ≈ k`, which makes `P_t(Σ b = k)` of order `1/√n` instead
//! of, say, `1e-183` (n = 784, k = 50, η ~ N(0, 1)). Then
//!
//! ```text
//! log e_k(w) = log P_t(Σ b = k) + Σ_i softplus(η_i + t) − k t
//! ```
//!
//! and `P_t(Σ b = k)` comes from the dynamic programme over prefixes, in probability
//! space (each step is a convex combination, so nothing overflows):
//!
//! ```text
//! F_i[j] = q_i F_{i−1}[j] + p_i F_{i−1}[j−1],     F_0 = δ_0,   P_t(Σ b = k) = F_n[k]
//! ```
//!
//! The suffix table `G_i[m]` (items `i..n`) is the same recursion run backwards, and the
//! inclusion probabilities are
//!
//! ```text
//! π_i = p_i Σ_j F_{i−1}[j] G_{i+1}[k−1−j] / F_n[k].
//! ```
//!
//! Exact samples walk `i = n..1` with `j` items still to choose and include item `i`
//! with probability `p_i F_{i−1}[j−1] / F_i[j]`.
//!
//! # Numerics
//! Only cells `j` from which `k` is still reachable are computed (`max(0, k − left) ≤ j ≤
//! min(done, k)`). The forward table is kept in blocks of about `√n` rows with a
//! checkpoint row per block, recomputed once for the backward sweep, so memory is
//! `O(k √n)` (n = 100,000, k = 1,000: about 5 MB) and time is at most three `O(n k)`
//! sweeps. Cells of `F` that underflow are below `1e-308` in probability and cannot
//! change a marginal by more than `n · 1e-308`.

use rand::Rng;

/// Largest forward table kept whole (cells of `f64`); larger ones are checkpointed.
const WHOLE_TABLE_CELLS: usize = 1 << 22;

/// How far the tilted mean `Σ p_i` may sit from `k`, in units of its standard
/// deviation, before we stop refining the tilt. Any tilt is exact; a good one only
/// keeps `P_t(Σ b = k)` of order `1/√n` (within a factor `e^{-1/2}` of its best here).
const TILT_TOLERANCE_SD: f64 = 1.0;

/// The logits tilted by `t` so that `Σ σ(η_i + t) ≈ k`, as Bernoulli probabilities.
#[derive(Debug, Clone)]
pub(crate) struct Tilted {
    /// `p_i = σ(η_i + t)`.
    pub p: Vec<f64>,
    /// `q_i = 1 − p_i = σ(−η_i − t)`, computed without cancellation.
    pub q: Vec<f64>,
    /// `t`.
    pub t: f64,
    /// `exp(−|η_i + t|)`, from which `p` and `q` were computed (and `log q_i` is).
    exp_neg_abs: Vec<f64>,
}

impl Tilted {
    /// Tilts `eta` for subsets of size `k`, `0 < k < n`. The logits must be finite.
    pub fn new(eta: &[f64], k: usize) -> Self {
        let n = eta.len();
        debug_assert!(k > 0 && k < n);
        let (min, max) = eta.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        let mean = eta.iter().sum::<f64>() / n as f64;
        let target = k as f64;
        // At `lo` every p_i ≤ e^{-40}/n, so Σ p < 1 ≤ k; at `hi` every q_i ≤ e^{-40}/n.
        let slack = 40.0 + (n as f64).ln();
        let (mut lo, mut hi) = (-max - slack, -min + slack);
        let mut t = ((target / (n - k) as f64).ln() - mean).clamp(lo, hi);
        let mut tilted = Self::at(eta, t);
        for _ in 0..200 {
            let (sum_p, var) = tilted.p.iter().zip(&tilted.q).fold((0.0, 0.0), |(s, v), (&p, &q)| (s + p, v + p * q));
            let gap = sum_p - target;
            if gap.abs() <= TILT_TOLERANCE_SD * var.sqrt().max(1.0) {
                break;
            }
            if gap > 0.0 {
                hi = t;
            } else {
                lo = t;
            }
            // Newton on the increasing function t ↦ Σ σ(η_i + t), bisection when it leaves the bracket.
            let newton = t - gap / var;
            t = if var > 0.0 && newton > lo && newton < hi { newton } else { 0.5 * (lo + hi) };
            tilted = Self::at(eta, t);
        }
        tilted
    }

    /// `p` and `q` at tilt `t`.
    fn at(eta: &[f64], t: f64) -> Self {
        let n = eta.len();
        let (mut p, mut q, mut exp_neg_abs) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for &x in eta {
            let x = x + t;
            // e = exp(−|x|) ∈ (0, 1]: σ(x) and σ(−x) from it without overflow or cancellation.
            let e = (-x.abs()).exp();
            let (big, small) = (1.0 / (1.0 + e), e / (1.0 + e));
            let (pi, qi) = if x >= 0.0 { (big, small) } else { (small, big) };
            p.push(pi);
            q.push(qi);
            exp_neg_abs.push(e);
        }
        Self { p, q, t, exp_neg_abs }
    }

    /// `Σ_i softplus(η_i + t) = −Σ_i log q_i = Σ_i max(η_i + t, 0) + log1p(exp(−|η_i + t|))`,
    /// compensated.
    fn log_scale(&self, eta: &[f64]) -> f64 {
        let mut sum = NeumaierSum::default();
        for (&x, &e) in eta.iter().zip(&self.exp_neg_abs) {
            sum.add((x + self.t).max(0.0) + e.ln_1p());
        }
        sum.sum()
    }
}

/// Compensated (Neumaier) summation: error independent of the number of terms.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct NeumaierSum {
    sum: f64,
    compensation: f64,
}

impl NeumaierSum {
    pub fn add(&mut self, x: f64) {
        let t = self.sum + x;
        self.compensation += if self.sum.abs() >= x.abs() { (self.sum - t) + x } else { (x - t) + self.sum };
        self.sum = t;
    }

    pub fn sum(self) -> f64 {
        self.sum + self.compensation
    }
}

/// The cells `j` of a DP row from which `k` is still reachable, after `done` items
/// with `left` items to come: `max(0, k − left) ..= min(done, k)`.
#[inline]
fn window(k: usize, done: usize, left: usize) -> (usize, usize) {
    (k.saturating_sub(left), done.min(k))
}

/// One step of the recursion `next[j] = q prev[j] + p prev[j−1]` over `next`'s window,
/// reading `prev` only inside its own window.
#[inline]
fn step<T: Real>(prev: &[T], prev_window: (usize, usize), next: &mut [T], next_window: (usize, usize), p: T, q: T) {
    let (prev_lo, prev_hi) = prev_window;
    let (next_lo, next_hi) = next_window;
    debug_assert!(next_lo == prev_lo + 1 || next_lo == 0 && prev_lo == 0);
    // Windows move by at most one cell: next_lo ∈ {prev_lo, prev_lo + 1}, next_hi ∈ {prev_hi, prev_hi + 1},
    // and next_lo == prev_lo only when both are 0.
    let start = if next_lo == 0 {
        next[0] = q * prev[0];
        1
    } else {
        next_lo
    };
    let end = next_hi.min(prev_hi);
    if start <= end {
        let (prev_cur, prev_lag) = (&prev[start..=end], &prev[start - 1..end]);
        for ((out, &a), &b) in next[start..=end].iter_mut().zip(prev_cur).zip(prev_lag) {
            *out = q * a + p * b;
        }
    }
    if next_hi > prev_hi {
        next[next_hi] = p * prev[prev_hi];
    }
}

/// The numbers the dynamic programme runs on: `f64`, and [`Dual`] numbers for its
/// directional derivative.
pub(crate) trait Real:
    Copy + Default + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self> + std::ops::Div<Output = Self>
{
    /// The multiplicative identity.
    fn one() -> Self;
}

impl Real for f64 {
    fn one() -> Self {
        1.0
    }
}

/// A dual number `value + tangent ε` with `ε² = 0`: running the DP on duals gives the
/// derivative of its result along the direction the tangents encode (forward mode).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Dual {
    pub value: f64,
    pub tangent: f64,
}

impl std::ops::Add for Dual {
    type Output = Dual;
    fn add(self, o: Dual) -> Dual {
        Dual { value: self.value + o.value, tangent: self.tangent + o.tangent }
    }
}

impl std::ops::Mul for Dual {
    type Output = Dual;
    fn mul(self, o: Dual) -> Dual {
        Dual { value: self.value * o.value, tangent: self.tangent * o.value + self.value * o.tangent }
    }
}

impl std::ops::Div for Dual {
    type Output = Dual;
    fn div(self, o: Dual) -> Dual {
        let value = self.value / o.value;
        Dual { value, tangent: (self.tangent - value * o.tangent) / o.value }
    }
}

impl Real for Dual {
    fn one() -> Self {
        Dual { value: 1.0, tangent: 0.0 }
    }
}

/// The forward table `F_r`, `r = 0..=n`, of one row, kept as checkpoints every `block`
/// rows plus the rows of one block at a time.
struct ForwardTable<'a, T> {
    p: &'a [T],
    q: &'a [T],
    k: usize,
    n: usize,
    width: usize,
    block: usize,
    /// Row `b · block` for every block `b`.
    checkpoints: Vec<T>,
    /// Rows `b · block .. b · block + block` of the block `b` now held.
    rows: Vec<T>,
    held: usize,
    /// `F_n`.
    last: Vec<T>,
}

impl<'a, T: Real> ForwardTable<'a, T> {
    /// Runs the forward recursion with blocks of `block ≥ 1` rows; afterwards the last
    /// block's rows are held.
    fn new(p: &'a [T], q: &'a [T], k: usize, block: usize) -> Self {
        let n = p.len();
        let width = k + 1;
        let block = block.clamp(1, n);
        let blocks = n.div_ceil(block);
        let mut table = Self {
            p,
            q,
            k,
            n,
            width,
            block,
            checkpoints: vec![T::default(); blocks * width],
            rows: vec![T::default(); block * width],
            held: 0,
            last: vec![T::default(); width],
        };
        table.checkpoints[0] = T::one();
        for b in 0..blocks {
            table.fill_block(b);
            let end = ((b + 1) * block).min(n);
            let (from, to) = (end - 1, end);
            let prev = table.rows[(from - b * block) * width..][..width].to_vec();
            let dest =
                if b + 1 < blocks { &mut table.checkpoints[(b + 1) * width..][..width] } else { &mut table.last[..] };
            step(&prev, window(k, from, n - from), dest, window(k, to, n - to), p[from], q[from]);
        }
        table
    }

    /// Recomputes the rows of block `b` from its checkpoint.
    fn fill_block(&mut self, b: usize) {
        let (k, n, width) = (self.k, self.n, self.width);
        let first = b * self.block;
        let count = self.block.min(n - first);
        self.rows[..width].copy_from_slice(&self.checkpoints[b * width..][..width]);
        for r in first + 1..first + count {
            let (before, after) = self.rows.split_at_mut((r - first) * width);
            let prev = &before[(r - 1 - first) * width..];
            step(
                prev,
                window(k, r - 1, n - r + 1),
                &mut after[..width],
                window(k, r, n - r),
                self.p[r - 1],
                self.q[r - 1],
            );
        }
        self.held = b;
    }

    fn blocks(&self) -> usize {
        self.checkpoints.len() / self.width
    }

    /// Row `F_r` for `r` in the held block.
    fn row(&self, r: usize) -> &[T] {
        let first = self.held * self.block;
        debug_assert!(r >= first && r < first + self.block);
        &self.rows[(r - first) * self.width..][..self.width]
    }

    /// `P_t(Σ b = k) = F_n[k]`.
    fn total(&self) -> T {
        self.last[self.k]
    }

    /// Visits rows `r = n−1, …, 0` as `(r, F_r, F_{r+1})`, block by block from the end.
    fn for_each_row_backwards(&mut self, mut visit: impl FnMut(usize, &[T], &[T])) {
        let width = self.width;
        for b in (0..self.blocks()).rev() {
            if self.held != b {
                self.fill_block(b);
            }
            let first = b * self.block;
            let end = (first + self.block).min(self.n);
            // F_end: the next block's checkpoint, or F_n after the last block.
            let boundary =
                if b + 1 < self.blocks() { &self.checkpoints[(b + 1) * width..][..width] } else { &self.last[..] };
            for r in (first..end).rev() {
                let after = if r + 1 < end { self.row(r + 1) } else { boundary };
                visit(r, self.row(r), after);
            }
        }
    }
}

/// The inclusion probabilities `π_i = p_i Σ_j F_{i−1}[j] G_{i+1}[k−1−j] / F_n[k]` of
/// independent Bernoullis `(p, q)` conditioned on `Σ b = k`, `0 < k < n`, written into
/// `out`; returns `F_n[k] = P(Σ b = k)` and the forward table.
fn inclusion<'a, T: Real>(p: &'a [T], q: &'a [T], k: usize, block: usize, out: &mut [T]) -> (T, ForwardTable<'a, T>) {
    let n = p.len();
    let mut table = ForwardTable::new(p, q, k, block);
    let total = table.total();
    let mut suffix = vec![T::default(); k + 1];
    let mut suffix_next = vec![T::default(); k + 1];
    // G_{n+1} = δ_0: the empty suffix.
    suffix[0] = T::one();
    table.for_each_row_backwards(|r, prefix, _| {
        // Item i = r + 1 (1-based).
        let i = r + 1;
        let (f_lo, f_hi) = window(k, r, n - r);
        let (g_lo, g_hi) = window(k, n - i, i);
        let lo = f_lo.max((k - 1).saturating_sub(g_hi));
        let hi = f_hi.min((k - 1).saturating_sub(g_lo));
        let mut dot = T::default();
        if lo <= hi && k > g_lo {
            let (m_lo, m_hi) = (k - 1 - hi, k - 1 - lo);
            for (&a, &b) in prefix[lo..=hi].iter().zip(suffix[m_lo..=m_hi].iter().rev()) {
                dot = dot + a * b;
            }
        }
        out[r] = p[r] * dot / total;
        // G_i from G_{i+1}: add item i to the suffix.
        step(&suffix, (g_lo, g_hi), &mut suffix_next, window(k, n - i + 1, i - 1), p[r], q[r]);
        std::mem::swap(&mut suffix, &mut suffix_next);
    });
    (total, table)
}

/// `Cov(z) v = (∂π/∂η) v` for one row, exactly: the directional derivative of the
/// marginals along `v`, by forward mode through the same DP (the tilt `t` is held fixed,
/// which is exact since `π` does not depend on it). `∂p_i/∂η_i = p_i q_i`.
pub(crate) fn covariance_vector_product(eta: &[f64], k: usize, v: &[f64], out: &mut [f64]) {
    let n = eta.len();
    debug_assert!(v.len() == n && out.len() == n && k <= n);
    if k == 0 || k == n {
        out.fill(0.0);
        return;
    }
    let tilted = Tilted::new(eta, k);
    let slope = |i: usize| tilted.p[i] * tilted.q[i] * v[i];
    let p: Vec<Dual> = (0..n).map(|i| Dual { value: tilted.p[i], tangent: slope(i) }).collect();
    let q: Vec<Dual> = (0..n).map(|i| Dual { value: tilted.q[i], tangent: -slope(i) }).collect();
    let mut pi = vec![Dual::default(); n];
    // A dual is two f64s: size the blocks as for a table twice as wide.
    let _ = inclusion(&p, &q, k, block_size(n, 2 * k + 1), &mut pi);
    for (o, d) in out.iter_mut().zip(&pi) {
        *o = d.tangent;
    }
}

/// Rows per block of the forward table: the whole table when it is small, else `⌈√n⌉`.
fn block_size(n: usize, k: usize) -> usize {
    if n * (k + 1) <= WHOLE_TABLE_CELLS { n } else { (n as f64).sqrt().ceil() as usize }
}

/// The tilted `p` and every row `F_0 … F_n` of one row's forward table, kept from the
/// normaliser for the exact sampler when the table is small enough to be held whole.
#[derive(Debug, Clone)]
pub(crate) struct SamplingTable {
    p: Vec<f64>,
    width: usize,
    /// `F_r` at `rows[r · width ..][.. width]`, `r = 0 … n`.
    rows: Vec<f64>,
}

impl SamplingTable {
    /// The rows `F_0 … F_n` of `forward` and its width, when it is held whole (one block);
    /// the table becomes a [`SamplingTable`] with the tilted `p` ([`SamplingTable::with_p`]).
    fn whole_rows(forward: ForwardTable<'_, f64>) -> Option<(usize, Vec<f64>)> {
        (forward.blocks() == 1).then(|| {
            let mut rows = forward.rows;
            rows.truncate(forward.n * forward.width);
            rows.extend_from_slice(&forward.last);
            (forward.width, rows)
        })
    }

    fn with_p(p: Vec<f64>, (width, rows): (usize, Vec<f64>)) -> Self {
        Self { p, width, rows }
    }

    /// Visits rows `r = n−1, …, 0` as `(r, F_r, F_{r+1})`.
    fn for_each_row_backwards(&self, mut visit: impl FnMut(usize, &[f64], &[f64]) -> bool) {
        for r in (0..self.p.len()).rev() {
            let (before, after) = self.rows[r * self.width..][..2 * self.width].split_at(self.width);
            if !visit(r, before, after) {
                break;
            }
        }
    }
}

/// `log e_k(exp η)` and the inclusion probabilities `π` of one row, written into
/// `marginals`, with the forward table for the sampler when it is held whole. The logits
/// must be finite and `k ≤ n = eta.len()`.
pub(crate) fn log_normalizer_and_marginals(
    eta: &[f64],
    k: usize,
    marginals: &mut [f64],
) -> (f64, Option<SamplingTable>) {
    log_normalizer_and_marginals_in_blocks(eta, k, marginals, block_size(eta.len(), k))
}

fn log_normalizer_and_marginals_in_blocks(
    eta: &[f64],
    k: usize,
    marginals: &mut [f64],
    block: usize,
) -> (f64, Option<SamplingTable>) {
    let n = eta.len();
    debug_assert!(k <= n && marginals.len() == n);
    if k == 0 {
        marginals.fill(0.0);
        return (0.0, None);
    }
    if k == n {
        marginals.fill(1.0);
        let sum = eta.iter().fold(NeumaierSum::default(), |mut s, &x| {
            s.add(x);
            s
        });
        return (sum.sum(), None);
    }
    let tilted = Tilted::new(eta, k);
    let (total, forward) = inclusion(&tilted.p, &tilted.q, k, block, marginals);
    let rows = SamplingTable::whole_rows(forward);
    for m in marginals.iter_mut() {
        *m = m.clamp(0.0, 1.0);
    }
    let log_normalizer = total.ln() + tilted.log_scale(eta) - k as f64 * tilted.t;
    (log_normalizer, rows.map(|rows| SamplingTable::with_p(tilted.p, rows)))
}

/// Draws `n_samples` exact k-subsets of one row as k-hot bytes: sample `s` includes item
/// `i` when `out[s n + i] = 1` (`out` is zero on entry); `table` is the row's forward table
/// kept by [`log_normalizer_and_marginals`], if any (the samples are the same with or
/// without it).
pub(crate) fn sample_exact(
    eta: &[f64],
    k: usize,
    n_samples: usize,
    rng: &mut impl Rng,
    out: &mut [u8],
    table: Option<&SamplingTable>,
) {
    match table {
        Some(table) => {
            let mut walk = Walk::new(eta.len(), k, n_samples, out);
            table.for_each_row_backwards(|r, before, after| walk.row(r, table.p[r], before, after, rng));
        }
        None => sample_exact_in_blocks(eta, k, n_samples, rng, out, block_size(eta.len(), k)),
    }
}

fn sample_exact_in_blocks(eta: &[f64], k: usize, n_samples: usize, rng: &mut impl Rng, out: &mut [u8], block: usize) {
    let n = eta.len();
    debug_assert!(k <= n && out.len() == n_samples * n);
    if k == 0 {
        return;
    }
    if k == n {
        out.fill(1);
        return;
    }
    let tilted = Tilted::new(eta, k);
    let mut table = ForwardTable::new(&tilted.p, &tilted.q, k, block);
    let mut walk = Walk::new(n, k, n_samples, out);
    table.for_each_row_backwards(|r, before, after| {
        walk.row(r, tilted.p[r], before, after, rng);
    });
}

/// The backward walk of `S` samples through one row's forward table: at item `i = r + 1`
/// with `j` items still to choose among items `1 … i`, include it with probability
/// `p_i F_{i−1}[j−1] / F_i[j]` (certainly when `j > r`).
///
/// # Numerics
/// The inclusion ratios are computed once per item and `j`, not once per sample; each draw
/// is the uniform `U = m 2⁻⁵³` of the generator's top 53 bits `m`, compared with `ρ` in `f64`.
struct Walk<'a> {
    n: usize,
    k: usize,
    /// Items still to choose, per sample.
    left: Vec<usize>,
    /// Samples with items still to choose.
    active: usize,
    /// `ρ_j` for the item at hand.
    ratios: Vec<f64>,
    out: &'a mut [u8],
}

impl<'a> Walk<'a> {
    fn new(n: usize, k: usize, samples: usize, out: &'a mut [u8]) -> Self {
        Self { n, k, left: vec![k; samples], active: samples, ratios: vec![0.0; k + 1], out }
    }

    /// Decides item `r` for every sample; returns whether any sample still has items to choose.
    fn row(&mut self, r: usize, p: f64, before: &[f64], after: &[f64], rng: &mut impl Rng) -> bool {
        if self.active == 0 {
            return false;
        }
        let k = self.k;
        // A sample still choosing here has max(1, k − (n − r − 1)) ≤ j ≤ min(k, r + 1), where
        // F_{r+1}[j] > 0; j = r + 1 includes the item without a draw.
        for j in k.saturating_sub(self.n - r - 1).max(1)..=k.min(r) {
            self.ratios[j] = p * before[j - 1] / after[j];
        }
        let unit = 1.0 / (1u64 << 53) as f64;
        for (s, j) in self.left.iter_mut().enumerate() {
            if *j == 0 {
                continue;
            }
            if *j > r || ((rng.next_u64() >> 11) as f64) * unit < self.ratios[*j] {
                *j -= 1;
                self.out[s * self.n + r] = 1;
                if *j == 0 {
                    self.active -= 1;
                }
            }
        }
        self.active > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    /// A uniform draw from `[0, 1)` with 53 random bits.
    fn uniform<R: Rng + ?Sized>(rng: &mut R) -> f64 {
        (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn logits(n: usize, seed: u64, scale: f64) -> Vec<f64> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        (0..n).map(|_| scale * (2.0 * uniform(&mut rng) - 1.0)).collect()
    }

    /// Checkpointed blocks redo the same arithmetic, so every block size gives
    /// bit-identical normalisers, marginals and samples.
    #[test]
    fn block_size_does_not_change_any_bit() {
        for (n, k) in [(1, 1), (2, 1), (7, 3), (40, 1), (40, 39), (57, 20)] {
            let eta = logits(n, n as u64, 6.0);
            let mut whole = vec![0.0; n];
            let (z_whole, table) = log_normalizer_and_marginals_in_blocks(&eta, k, &mut whole, n);
            let mut samples_whole = vec![0u8; 5 * n];
            sample_exact_in_blocks(&eta, k, 5, &mut Xoshiro256PlusPlus::seed_from_u64(1), &mut samples_whole, n);
            // The table kept by the normaliser gives the same samples (and draws).
            let mut samples_kept = vec![0u8; 5 * n];
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
            sample_exact(&eta, k, 5, &mut rng, &mut samples_kept, table.as_ref());
            assert_eq!(samples_kept, samples_whole, "n={n} k={k} kept table");
            assert_eq!(table.is_some(), k > 0 && k < n, "n={n} k={k}");
            for block in [1, 2, 3, 7, n.div_ceil(2)] {
                let mut blocked = vec![0.0; n];
                let (z, _) = log_normalizer_and_marginals_in_blocks(&eta, k, &mut blocked, block);
                assert_eq!(z.to_bits(), z_whole.to_bits(), "n={n} k={k} block={block}");
                assert_eq!(blocked, whole, "n={n} k={k} block={block}");
                let mut samples = vec![0u8; 5 * n];
                sample_exact_in_blocks(&eta, k, 5, &mut Xoshiro256PlusPlus::seed_from_u64(1), &mut samples, block);
                assert_eq!(samples, samples_whole, "n={n} k={k} block={block}");
            }
        }
    }

    #[test]
    fn tilt_centres_the_bernoulli_sum_on_k() {
        for (n, k, scale) in [(100, 3, 50.0), (100, 97, 50.0), (1000, 500, 1.0), (5, 1, 700.0)] {
            let eta = logits(n, 3, scale);
            let tilted = Tilted::new(&eta, k);
            let (sum, var) = tilted.p.iter().zip(&tilted.q).fold((0.0, 0.0), |(s, v), (&p, &q)| (s + p, v + p * q));
            assert!((sum - k as f64).abs() <= TILT_TOLERANCE_SD * var.sqrt().max(1.0), "n={n} k={k}: Σp = {sum}");
            for (p, q) in tilted.p.iter().zip(&tilted.q) {
                assert!((p + q - 1.0).abs() < 1e-15);
            }
        }
    }

    #[test]
    fn windows_are_the_reachable_cells() {
        // After 2 of 5 items with k = 4: at least 1 chosen (3 left can add at most 3), at most 2.
        assert_eq!(window(4, 2, 3), (1, 2));
        assert_eq!(window(4, 0, 5), (0, 0));
        assert_eq!(window(4, 5, 0), (4, 4));
    }
}
