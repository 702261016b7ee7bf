//! The parallel backend: the whole law as a tensor programme on the logits' device, with a
//! depth that grows as `log₂ n`, not `n`.
//!
//! # Method
//! After the same tilt as the stable backend (`p_i = σ(η_i + t)`, `q_i = 1 − p_i` with
//! `Σ p ≈ k`), the Poisson binomial law of `Σ b` is the generating polynomial
//!
//! ```text
//! Π_i (q_i + p_i x),    coefficient j = P_t(Σ b = j),
//! ```
//!
//! built as a binary tree of products truncated to degree `k` over `m = 2^L ≥ n` leaves
//! (padded with the polynomial `1`): node `v` of level `ℓ` holds `C_v[j]`, `j ≤ min(2^ℓ, k)`,
//! and `C_v = C_left * C_right` (a batched truncated convolution, one matrix product per
//! level). The root's `C[k] = P_t(Σ b = k)`.
//!
//! - **Marginals** by the outside pass: `O_root = δ_k`, and for children `L`, `R` of a node
//!   with outside `O`, `O_L[j] = Σ_m R[m] O[j + m]` and `O_R[m] = Σ_j L[j] O[j + m]`; then
//!   `C[k] = q_i O_i[0] + p_i O_i[1]` at every leaf and `π_i = p_i O_i[1] / C[k]`.
//! - **Exact samples** top-down: the root's count is `k`; a node with count `c` gives `j`
//!   to its left child with probability `L[j] R[c − j] / C[c]`, one categorical draw per
//!   node, batched over samples, rows and nodes. The leaves' counts are the k-hot sample.
//! - **`Cov(z) v = (∂π/∂η) v`** by forward mode through both passes: the leaves' tangents
//!   are `∂p_i = p_i q_i v_i = −∂q_i`, products and outside steps follow the product rule.
//!
//! # Numerics
//! Every coefficient, outside value and split weight is a sum of products of non-negative
//! numbers, so each has a relative error of a few `ε` per level whatever its size; the
//! tilt keeps the coefficients that matter of order `1/√n` (as in the stable backend), so
//! none of them underflows. The tilt is found without leaving the device: three rounds of
//! a 16-point grid search on the bracket `[−max η − s, −min η + s]`, `s = 40 + ln n`, then
//! two Newton steps clamped to the last grid cell (any tilt is exact; a good one only
//! keeps `P_t(Σ b = k)` away from underflow).
//!
//! Everything runs in `f64` in about `12 log₂ n` tensor operations, with no host
//! synchronisation; memory is `O(B n k)` at most (the widest levels).

use tch::{Device, Kind, Tensor};

/// Points of each round of the tilt's grid search (the bracket shrinks by this factor).
const TILT_GRID: i64 = 16;
/// Rounds of the grid search.
const TILT_ROUNDS: usize = 3;
/// Newton steps after the grid search.
const TILT_NEWTON_STEPS: usize = 2;

/// The product tree of one batch of logits, `0 < k < n`, with its marginals.
#[derive(Debug)]
pub(crate) struct ProductTree {
    n: i64,
    k: i64,
    /// `p_i` and `q_i`, padded to `m` leaves with `p = 0`, `q = 1`: `[B, m]`.
    p: Tensor,
    q: Tensor,
    /// `levels[ℓ]`: the coefficients of the nodes of level `ℓ`, `[B, m / 2^ℓ, min(2^ℓ, k) + 1]`.
    levels: Vec<Tensor>,
    /// `outside[ℓ]`: their outside values, same shapes.
    outside: Vec<Tensor>,
    /// `P_t(Σ b = k)`: `[B]`.
    total: Tensor,
    /// `log e_k(exp η)`: `[B]`.
    pub log_normalizer: Tensor,
    /// `π`: `[B, n]`.
    pub marginals: Tensor,
}

impl ProductTree {
    /// The tree of `eta` (`[B, n]`, `f64`, finite, on any device) for subsets of size
    /// `0 < k < n`.
    pub fn new(eta: &Tensor, k: usize) -> Result<Self, tch::TchError> {
        let (batch, n) = dims(eta);
        let k = k as i64;
        debug_assert!(k > 0 && k < n);
        let t = tilt(eta, k)?;
        let x = eta.f_add(&t.f_unsqueeze(1)?)?;
        let m = (n as u64).next_power_of_two() as i64;
        let (device, kind) = (eta.device(), Kind::Double);
        let pad = |values: Tensor, fill: f64| -> Result<Tensor, tch::TchError> {
            if m == n {
                return Ok(values);
            }
            Tensor::f_cat(&[values, Tensor::f_full([batch, m - n], fill, (kind, device))?], 1)
        };
        let p = pad(x.f_sigmoid()?, 0.0)?;
        let q = pad(x.f_neg()?.f_sigmoid()?, 1.0)?;

        // Upward: leaves (q_i, p_i), then truncated products level by level.
        let mut levels = vec![Tensor::f_stack(&[&q, &p], -1)?];
        let mut size = 1i64;
        while size < m {
            let (left, right) = children(levels.last().expect("the leaves are a level"))?;
            size *= 2;
            levels.push(truncated_product(&left, &right, size.min(k) + 1)?);
        }
        let root = levels.last().expect("the root is a level");
        let total = root.f_select(1, 0)?.f_select(1, k)?;

        // Downward: outside values from the root's δ_k (made on the device: a copy from the
        // host would wait for it).
        let root_outside = Tensor::f_zeros([batch, 1, k + 1], (kind, device))?;
        let _ = root_outside.f_narrow(2, k, 1)?.f_fill_(1.0)?;
        let mut outside = vec![root_outside];
        for level in levels.iter().rev().skip(1) {
            let (left, right) = children(level)?;
            let parent = outside.last().expect("the root's outside is a level");
            outside.push(outside_step(parent, &left, &right)?);
        }
        outside.reverse();

        let marginals = p
            .f_mul(&outside[0].f_select(2, 1)?)?
            .f_div(&total.f_unsqueeze(1)?)?
            .f_narrow(1, 0, n)?
            .f_clamp(0.0, 1.0)?;
        // log e_k = log P_t(Σ b = k) + Σ softplus(η + t) − k t.
        let log_scale = softplus(&x)?.f_sum_dim_intlist(-1, false, Kind::Double)?;
        let log_normalizer = total.f_log()?.f_add(&log_scale)?.f_sub(&t.f_mul_scalar(k as f64)?)?;
        Ok(Self { n, k, p, q, levels, outside, total, log_normalizer, marginals })
    }

    /// `samples` exact k-subsets per row as 0/1 `f64` values, `[S, B, n]`, from `uniforms`
    /// on `[0, 1)` of shape `[S, B, m − 1]` (one per sample, row and inner node).
    pub fn sample(&self, uniforms: &Tensor) -> Result<Tensor, tch::TchError> {
        let size = uniforms.size();
        let (samples, batch) = (size[0], size[1]);
        let device = self.p.device();
        let mut counts = Tensor::f_full([samples, batch, 1], self.k, (Kind::Int64, device))?;
        let mut offset = 0;
        for level in self.levels.iter().rev().skip(1) {
            let (left, right) = children(level)?;
            let (parents, width) = (left.size()[1], left.size()[2]);
            let u = uniforms.f_narrow(2, offset, parents)?.f_unsqueeze(-1)?;
            offset += parents;
            // Split weights L[j] R[c − j], zero where c − j is not a coefficient of R.
            let j = Tensor::f_arange(width, (Kind::Int64, device))?;
            let index = counts.f_unsqueeze(-1)?.f_sub(&j)?;
            let clamped = index.f_clamp(0, width - 1)?;
            let inside = clamped.f_eq_tensor(&index)?;
            let shape = [samples, batch, parents, width];
            let right_at = right.f_unsqueeze(0)?.f_expand(shape, false)?.f_gather(-1, &clamped, false)?;
            let weights = right_at.f_mul(&left.f_unsqueeze(0)?)?.f_mul(&inside)?;
            // Inverse CDF: j = #{cumulative < total, cumulative ≤ u · total}, which never
            // lands on a zero weight, not even when u · total rounds up to total.
            let cumulative = weights.f_cumsum(-1, Kind::Double)?;
            let total = cumulative.f_narrow(-1, width - 1, 1)?;
            let below = cumulative.f_le_tensor(&u.f_mul(&total)?)?.f_logical_and(&cumulative.f_lt_tensor(&total)?)?;
            let to_left = below.f_sum_dim_intlist(-1, false, Kind::Int64)?;
            let to_right = counts.f_sub(&to_left)?;
            counts = Tensor::f_stack(&[to_left, to_right], -1)?.f_view([samples, batch, 2 * parents])?;
        }
        counts.f_narrow(2, 0, self.n)?.f_to_kind(Kind::Double)
    }

    /// Leaves (`m`) of the tree: the uniforms [`sample`](Self::sample) needs are `m − 1`
    /// per sample and row.
    pub fn leaves(&self) -> i64 {
        self.p.size()[1]
    }

    /// `Cov(z) v` for `v` `[B, n]` (`f64`, same device), `[B, n]`.
    pub fn covariance_vector_product(&self, v: &Tensor) -> Result<Tensor, tch::TchError> {
        let (batch, m) = (self.p.size()[0], self.p.size()[1]);
        let v = if m > self.n { v.f_constant_pad_nd([0, m - self.n])? } else { v.shallow_clone() };
        let slope = self.p.f_mul(&self.q)?.f_mul(&v)?;
        // Upward tangents ∂C = ∂L * R + L * ∂R.
        let mut tangents = vec![Tensor::f_stack(&[&slope.f_neg()?, &slope], -1)?];
        for (level, next) in self.levels.iter().zip(&self.levels[1..]) {
            let (left, right) = children(level)?;
            let (left_t, right_t) = children(tangents.last().expect("the leaves' tangents"))?;
            let width = next.size()[2];
            tangents
                .push(truncated_product(&left_t, &right, width)?.f_add(&truncated_product(&left, &right_t, width)?)?);
        }
        let total_t = tangents.last().expect("the root's tangent").f_select(1, 0)?.f_select(1, self.k)?;
        // Downward tangents ∂O_child = step(∂O, …) + step(O, ∂…).
        let mut outside_t = self.outside.last().expect("the root's outside").f_zeros_like()?;
        for level in (0..self.levels.len() - 1).rev() {
            let (left, right) = children(&self.levels[level])?;
            let (left_t, right_t) = children(&tangents[level])?;
            let parent = &self.outside[level + 1];
            outside_t = outside_step(&outside_t, &left, &right)?.f_add(&outside_step(parent, &left_t, &right_t)?)?;
        }
        debug_assert_eq!(outside_t.size(), [batch, m, 2]);
        // π_i = p_i O_i[1] / C[k]: ∂π_i = (∂p_i O_i[1] + p_i ∂O_i[1]) / C[k] − π_i ∂C[k] / C[k].
        let inclusion = self.outside[0].f_select(2, 1)?;
        let numerator_t = slope.f_mul(&inclusion)?.f_add(&self.p.f_mul(&outside_t.f_select(2, 1)?)?)?;
        let total = self.total.f_unsqueeze(1)?;
        let pi = self.p.f_mul(&inclusion)?.f_div(&total)?;
        numerator_t.f_div(&total)?.f_sub(&pi.f_mul(&total_t.f_unsqueeze(1)?.f_div(&total)?)?)?.f_narrow(1, 0, self.n)
    }
}

/// `(B, n)` of a 2-D tensor.
fn dims(tensor: &Tensor) -> (i64, i64) {
    let size = tensor.size();
    (size[0], size[1])
}

/// The left and right children `[B, N/2, w]` of the nodes `[B, N, w]` of a level.
fn children(level: &Tensor) -> Result<(Tensor, Tensor), tch::TchError> {
    let size = level.size();
    let pairs = level.f_view([size[0], size[1] / 2, 2, size[2]])?;
    Ok((pairs.f_select(2, 0)?, pairs.f_select(2, 1)?))
}

/// `(L * R)[c] = Σ_j L[j] R[c − j]` for `c < width`, batched over the leading dimensions
/// of `L`, `R` (`[…, w]`): the windows of `R` padded by `w − 1` zeros on the left, times
/// `L` reversed.
fn truncated_product(left: &Tensor, right: &Tensor, width: i64) -> Result<Tensor, tch::TchError> {
    let w = *left.size().last().expect("coefficients have a last dimension");
    let padded = right.f_constant_pad_nd([w - 1, width - w])?;
    let windows = padded.f_unfold(-1, w, 1)?;
    windows.f_matmul(&left.f_flip([-1])?.f_unsqueeze(-1)?)?.f_squeeze_dim(-1)
}

/// The children's outside values `[B, 2 N', w]` from their parents' `[B, N', w']` and the
/// children `L`, `R` `[B, N', w]`: `O_L[j] = Σ_m R[m] O[j + m]`, `O_R[m] = Σ_j L[j] O[j + m]`.
fn outside_step(parent: &Tensor, left: &Tensor, right: &Tensor) -> Result<Tensor, tch::TchError> {
    let size = left.size();
    let (batch, parents, w) = (size[0], size[1], size[2]);
    let parent_width = *parent.size().last().expect("coefficients have a last dimension");
    let windows = parent.f_constant_pad_nd([0, 2 * w - 1 - parent_width])?.f_unfold(-1, w, 1)?;
    let both = windows.f_matmul(&Tensor::f_stack(&[right, left], -1)?)?;
    both.f_transpose(-1, -2)?.f_reshape([batch, 2 * parents, w])
}

/// `softplus(x) = −log σ(−x)`, accurate for every `x`, with the gradient `σ(x)` everywhere
/// (libtorch's `softplus` returns `x` itself above 20; `relu(x) + log1p(exp(−|x|))` has
/// gradient 0 at `x = 0` under autograd).
pub(crate) fn softplus(x: &Tensor) -> Result<Tensor, tch::TchError> {
    x.f_neg()?.f_log_sigmoid()?.f_neg()
}

/// The tilt `t` per row of `eta` (`[B, n]`, `f64`) with `Σ_i σ(η_i + t) ≈ k`, `0 < k < n`:
/// a grid search on a bracket that surely holds it, then clamped Newton steps. `[B]`.
pub(crate) fn tilt(eta: &Tensor, k: i64) -> Result<Tensor, tch::TchError> {
    let (_, n) = dims(eta);
    let device = eta.device();
    let target = k as f64;
    // At lo every p_i ≤ e^{-40}/n (Σp < 1 ≤ k), at hi every q_i ≤ e^{-40}/n (Σp > n − 1 ≥ k).
    let slack = 40.0 + (n as f64).ln();
    let mut lo = eta.f_amax([1i64], false)?.f_neg()?.f_sub_scalar(slack)?;
    let mut width = eta.f_amin([1i64], false)?.f_neg()?.f_add_scalar(slack)?.f_sub(&lo)?;
    let fractions = Tensor::f_arange_start(1, TILT_GRID, (Kind::Double, device))?.f_div_scalar(TILT_GRID as f64)?;
    let rows = eta.f_unsqueeze(1)?;
    for _ in 0..TILT_ROUNDS {
        // Σ p at the inner grid points lo + width · g / G, g = 1 … G − 1 (increasing in g).
        let points = lo.f_unsqueeze(1)?.f_add(&width.f_unsqueeze(1)?.f_mul(&fractions)?)?;
        let sums = rows.f_add(&points.f_unsqueeze(2)?)?.f_sigmoid()?.f_sum_dim_intlist(-1, false, Kind::Double)?;
        let below = sums.f_lt(target)?.f_sum_dim_intlist(-1, false, Kind::Double)?;
        width = width.f_div_scalar(TILT_GRID as f64)?;
        lo = lo.f_add(&width.f_mul(&below)?)?;
    }
    let hi = lo.f_add(&width)?;
    let mut t = lo.f_add(&width.f_mul_scalar(0.5)?)?;
    for _ in 0..TILT_NEWTON_STEPS {
        let p = eta.f_add(&t.f_unsqueeze(1)?)?.f_sigmoid()?;
        let sum = p.f_sum_dim_intlist(-1, false, Kind::Double)?;
        let variance = p.f_mul(&p.f_neg()?.f_add_scalar(1.0)?)?.f_sum_dim_intlist(-1, false, Kind::Double)?;
        // Where the variance underflows the step is ±inf and the clamp keeps t in the cell.
        let step = sum.f_sub_scalar(target)?.f_div(&variance)?;
        t = t.f_sub(&step.f_nan_to_num(0.0, None, None)?)?.f_clamp_tensor(Some(&lo), Some(&hi))?;
    }
    Ok(t)
}

/// Seeds libtorch's generator of `device` (all CUDA devices' for a CUDA device, the CPU's
/// otherwise), so that the draws that follow are a function of `seed` alone.
pub(crate) fn seed_generator(device: Device, seed: u64) {
    match device {
        Device::Cuda(_) => tch::Cuda::manual_seed_all(seed),
        _ => tch::manual_seed(seed as i64),
    }
}
