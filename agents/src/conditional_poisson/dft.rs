//! The paper's normaliser (Appendix B, after Fernandez & Williams 2010), kept for
//! comparison with the stable backend.
//!
//! With untilted `p_j = σ(η_j)`, `q_j = 1 − p_j` and `ω = e^{2πi/(n+1)}`,
//!
//! ```text
//! P(Σ b = k) = 1/(n+1) Σ_{l=0}^{n} ω^{−lk} X_l,      X_l = Π_j (q_j + p_j ω^l),
//! log e_k(w) = log P(Σ b = k) + Σ_j softplus(η_j),
//! π_i        = p_i + (∂P/∂η_i) / P,   ∂P/∂η_i = 1/(n+1) Σ_l ω^{−lk} (ω^l − 1) p_i q_i Π_{j≠i} (q_j + p_j ω^l).
//! ```
//!
//! # Numerics
//! The sum has absolute error of about machine epsilon times `n`, so the result is noise
//! once `P(Σ b = k)` is that small: for n = 784, k = 50 and η ~ N(0, 1) the true value is
//! about `4e-183`. Time is `O(n²)` per row (memory `O(n)` here; the paper's code holds the
//! `(n+1) × n` product). The `f32` variant reproduces the paper code's complex64
//! arithmetic and its clamp of `P` at `f32::EPSILON`, below which its gradient is zero.

use num_complex::Complex;
use num_traits::{Float, FloatConst};

/// What the DFT gives for one row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DftOutcome {
    /// `log e_k(exp η)`, or NaN when `P(Σ b = k)` is below what the DFT resolves.
    pub log_normalizer: f64,
    /// The real part of the DFT's `P(Σ b = k)`, before any clamp.
    pub probability: f64,
}

/// Log normaliser and marginals of one row by the DFT in the float type `T`
/// (`f64`: the paper's method; `f32`: the paper code's complex64 arithmetic). With
/// `clamp`, `P` is clamped below at `T::epsilon()` and its gradient is zero there.
pub(crate) fn log_normalizer_and_marginals<T>(eta: &[f64], k: usize, clamp: bool, marginals: &mut [f64]) -> DftOutcome
where
    T: Float + FloatConst + std::iter::Sum,
{
    let n = eta.len();
    let cast = |x: f64| T::from(x).unwrap_or_else(T::nan);
    let (mut p, mut q) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut log_scale = T::zero();
    for &x in eta {
        let x = cast(x);
        let e = (-x.abs()).exp();
        let (big, small) = (T::one() / (T::one() + e), e / (T::one() + e));
        let (pi, qi) = if x >= T::zero() { (big, small) } else { (small, big) };
        p.push(pi);
        q.push(qi);
        log_scale = log_scale + x.max(T::zero()) + e.ln_1p();
    }
    let points = n + 1;
    let scale = T::one() / cast(points as f64);
    let angle = T::TAU() * scale;
    let mut probability = Complex::new(T::zero(), T::zero());
    let mut gradient = vec![Complex::new(T::zero(), T::zero()); n];
    let mut prefix = vec![Complex::new(T::one(), T::zero()); n + 1];
    for l in 0..points {
        let omega = Complex::from_polar(T::one(), angle * cast(l as f64));
        let weight = Complex::from_polar(scale, -angle * cast(((l * k) % points) as f64));
        for j in 0..n {
            prefix[j + 1] = prefix[j] * (omega * p[j] + q[j]);
        }
        probability = probability + weight * prefix[n];
        // ∂X_l/∂η_i = p_i q_i (ω − 1) Π_{j<i} (…) Π_{j>i} (…), suffix products on the way back.
        let mut suffix = Complex::new(T::one(), T::zero());
        let shared = weight * (omega - T::one());
        for i in (0..n).rev() {
            gradient[i] = gradient[i] + shared * prefix[i] * suffix * (p[i] * q[i]);
            suffix = suffix * (omega * p[i] + q[i]);
        }
    }
    let raw = probability.re;
    let (value, gradient_flows) = if clamp && raw < T::epsilon() { (T::epsilon(), false) } else { (raw, true) };
    for (i, m) in marginals.iter_mut().enumerate() {
        let slope = if gradient_flows { gradient[i].re / value } else { T::zero() };
        *m = (p[i] + slope).to_f64().unwrap_or(f64::NAN);
    }
    // Without the clamp, a value within the DFT's rounding error (about ε (n + 1)) is noise:
    // report it as unresolved rather than return its logarithm.
    let resolution = cast(64.0 * points as f64) * T::epsilon();
    let resolved = clamp || value > resolution;
    let log_normalizer = if resolved { (value.ln() + log_scale).to_f64().unwrap_or(f64::NAN) } else { f64::NAN };
    DftOutcome { log_normalizer, probability: raw.to_f64().unwrap_or(f64::NAN) }
}
