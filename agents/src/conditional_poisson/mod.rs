//! The k-subset, or conditional Poisson, distribution: the policy whose action is a
//! k-hot vector.
//!
//! For logits `η ∈ ℝⁿ`, `w_i = e^{η_i}` and a subset size `0 ≤ k ≤ n`,
//!
//! ```text
//! p(z) = exp(η · z) / e_k(w)          for z ∈ {0, 1}ⁿ with Σ z = k,
//! ```
//!
//! where `e_k` is the k-th elementary symmetric polynomial. Equivalently, independent
//! `b_i ~ Bernoulli(σ(η_i))` conditioned on `Σ b = k` (paper Eq. 2 and 3), so
//! `log P(Σ b = k) = log e_k(w) − Σ_i softplus(η_i)`. It is an exponential family: the
//! inclusion probabilities are `π = ∂ log e_k / ∂η` and the score is
//! `∂ log p(z) / ∂η = z − π`.
//!
//! [`ConditionalPoisson`] works on a batch of rows `[B, n]` of a `tch` tensor on any
//! device, in `f32` or `f64`. The normaliser and the marginals are computed on the CPU in
//! `f64` whatever the input type (see [`Normalizer`]), and handed back in the caller's
//! type and device.
//!
//! # Example
//! ```
//! # fn main() -> Result<(), sfess_agents::ConditionalPoissonError> {
//! use rand::SeedableRng;
//! use sfess_agents::{ConditionalPoisson, Sampler};
//! use tch::{Kind, Tensor};
//!
//! let logits = Tensor::from_slice(&[0.1f64, -2.0, 1.5, 0.3]).view([1, 4]).set_requires_grad(true);
//! let policy = ConditionalPoisson::new(&logits, 2)?;
//! // Σ π = k.
//! let sum = policy.marginals().sum(Kind::Double).double_value(&[]);
//! assert!((sum - 2.0).abs() < 1e-12);
//! // Four exact samples, [S, B, n], each k-hot; their log-probabilities carry the gradient z − π.
//! let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
//! let actions = policy.sample(4, Sampler::Exact, &mut rng)?;
//! assert_eq!(actions.size(), [4, 1, 4]);
//! let log_prob = policy.log_prob(&actions)?;
//! log_prob.sum(Kind::Double).backward();
//! # Ok(())
//! # }
//! ```

mod dft;
mod stable;

use rand::Rng;
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::SeedableRng;
use rayon::prelude::*;
use tch::{Device, Kind, TchError, Tensor};

use stable::NeumaierSum;

/// How the log normaliser `log e_k(w)` and the marginals `π` are computed.
///
/// Exact sampling always uses the stable tables; this choice affects the normaliser,
/// the marginals and everything derived from them (log-probabilities, scores, entropy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Normalizer {
    /// Tilted dynamic programme in `f64`, `O(n k)` time and `O(k √n)` memory, exact to
    /// rounding for any finite logits and every `k`. Use it: it is the default.
    #[default]
    Stable,
    /// The paper's DFT (Fernandez & Williams 2010) in `f64`, `O(n²)`: accurate only while
    /// `P(Σ b = k)` is well above `1e-16 n`; [`Error::NormalizerFailed`] below
    /// `64 (n + 1) ε`. For comparison.
    Dft,
    /// The paper code's complex64 DFT with `P(Σ b = k)` clamped at `f32::EPSILON` (zero
    /// gradient below it). Reproduces the published code's numbers; never train with it.
    PaperComplex64,
}

impl Normalizer {
    /// Every backend, in the order of the docs.
    pub const ALL: [Normalizer; 3] = [Normalizer::Stable, Normalizer::Dft, Normalizer::PaperComplex64];

    /// The backend's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Normalizer::Stable => "stable",
            Normalizer::Dft => "dft",
            Normalizer::PaperComplex64 => "paper-complex64",
        }
    }
}

/// How k-subsets are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Sampler {
    /// Exact conditional Poisson samples (backward walk through the DP table).
    #[default]
    Exact,
    /// Gumbel top-k (paper Algorithm 1): the top k of `η + Gumbel noise`. This is the
    /// first k items of a Plackett–Luce order, **not** the conditional Poisson law; the
    /// paper's code samples this way. For comparison.
    GumbelTopK,
}

impl Sampler {
    /// The sampler's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Sampler::Exact => "exact",
            Sampler::GumbelTopK => "gumbel-topk",
        }
    }
}

/// Everything that can be wrong with the input of [`ConditionalPoisson`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The logits are not a 2-D tensor `[batch, n]` with at least one row and one item.
    #[error("logits must be a 2-D tensor [batch, n] with batch >= 1 and 1 <= n < 2^32, got shape {shape:?}")]
    LogitsShape {
        /// The shape that was given.
        shape: Vec<i64>,
    },
    /// The logits are neither `f32` nor `f64`.
    #[error("logits must be f32 or f64, got {kind:?}")]
    LogitsKind {
        /// The type that was given.
        kind: Kind,
    },
    /// `k` is not in `0..=n`.
    #[error("k = {k} is out of range: a subset of n = {n} items has 0 <= k <= {n}")]
    KOutOfRange {
        /// The subset size asked for.
        k: i64,
        /// The number of items.
        n: usize,
    },
    /// A logit is NaN or infinite.
    #[error("logit {index} of row {row} (counting from 0) is {value}; logits must be finite")]
    NonFiniteLogit {
        /// Row of the batch.
        row: usize,
        /// Item within the row.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// A DFT normaliser computed `P(Σ b = k)` within its own rounding error (about
    /// `64 (n + 1) ε`): it cannot resolve this row.
    #[error(
        "the {normalizer} normaliser cannot resolve row {row}: it computed P(sum b = k) = {probability:e}, \
         within its rounding error (about 64 * (n + 1) * 2.2e-16); use the stable normaliser"
    )]
    NormalizerFailed {
        /// The backend's name.
        normalizer: &'static str,
        /// Row of the batch.
        row: usize,
        /// The value it computed.
        probability: f64,
    },
    /// Actions do not have the shape `[S, batch, n]` or `[batch, n]`.
    #[error("actions must have shape [S, {batch}, {n}] or [{batch}, {n}], got {shape:?}")]
    ActionsShape {
        /// Rows of the logits.
        batch: usize,
        /// Items of the logits.
        n: usize,
        /// The shape that was given.
        shape: Vec<i64>,
    },
    /// Actions are not k-hot.
    #[error("actions must be k-hot (entries 0 or 1, k = {k} ones per row): {problem}")]
    NotKHot {
        /// The subset size.
        k: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// The samples asked for do not fit in memory.
    #[error("{samples} samples of {batch} rows of {n} items are too many to hold in memory at once")]
    TooManySamples {
        /// Samples per row.
        samples: usize,
        /// Rows.
        batch: usize,
        /// Items per row.
        n: usize,
    },
    /// Actions and logits are on different devices.
    #[error("actions are on {actions:?} but the logits are on {logits:?}")]
    DeviceMismatch {
        /// Device of the actions.
        actions: Device,
        /// Device of the logits.
        logits: Device,
    },
    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] TchError),
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The k-subset distribution over each row of a batch of logits `[B, n]`.
///
/// Construction computes, per row and in `f64`, the log normaliser `log e_k(w)` and
/// the inclusion probabilities `π`; everything else derives from them. The logits
/// tensor is kept (with its autograd graph) so that [`log_prob`](Self::log_prob) and
/// [`log_normalizer`](Self::log_normalizer) back-propagate into whatever produced it.
#[derive(Debug)]
pub struct ConditionalPoisson {
    logits: Tensor,
    k: usize,
    batch: usize,
    n: usize,
    normalizer: Normalizer,
    /// Logits as `f64`, row-major `[B, n]`.
    eta: Vec<f64>,
    log_normalizer: Vec<f64>,
    marginals: Vec<f64>,
}

impl ConditionalPoisson {
    /// The distribution of k-subsets for every row of `logits` (`[B, n]`, `f32` or
    /// `f64`, any device), with the [stable](Normalizer::Stable) normaliser.
    ///
    /// # Errors
    /// [`Error::LogitsShape`], [`Error::LogitsKind`], [`Error::KOutOfRange`],
    /// [`Error::NonFiniteLogit`].
    pub fn new(logits: &Tensor, k: i64) -> Result<Self> {
        Self::with_normalizer(logits, k, Normalizer::Stable)
    }

    /// As [`new`](Self::new), with the normaliser chosen.
    ///
    /// # Errors
    /// As [`new`](Self::new), and [`Error::NormalizerFailed`] when a DFT backend cannot
    /// resolve a row.
    pub fn with_normalizer(logits: &Tensor, k: i64, normalizer: Normalizer) -> Result<Self> {
        let (batch, n, k, eta) = read_logits(logits, k)?;
        let mut marginals = vec![0.0; batch * n];
        let outcomes: Vec<(f64, f64)> = eta
            .par_chunks(n)
            .zip(marginals.par_chunks_mut(n))
            .map(|(row, out)| match normalizer {
                Normalizer::Stable => (stable::log_normalizer_and_marginals(row, k, out), 1.0),
                Normalizer::Dft => {
                    let o = dft::log_normalizer_and_marginals::<f64>(row, k, false, out);
                    (o.log_normalizer, o.probability)
                }
                Normalizer::PaperComplex64 => {
                    let o = dft::log_normalizer_and_marginals::<f32>(row, k, true, out);
                    (o.log_normalizer, o.probability)
                }
            })
            .collect();
        if let Some(row) = outcomes.iter().position(|(z, _)| !z.is_finite()) {
            return Err(Error::NormalizerFailed { normalizer: normalizer.name(), row, probability: outcomes[row].1 });
        }
        Ok(Self {
            logits: logits.shallow_clone(),
            k,
            batch,
            n,
            normalizer,
            eta,
            log_normalizer: outcomes.into_iter().map(|(z, _)| z).collect(),
            marginals,
        })
    }

    /// Subset size `k`.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of items `n`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of rows `B`.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// The normaliser backend in use.
    pub fn normalizer(&self) -> Normalizer {
        self.normalizer
    }

    /// `log e_k(exp η)` per row, in `f64`.
    pub fn log_normalizer_values(&self) -> &[f64] {
        &self.log_normalizer
    }

    /// Inclusion probabilities `π`, row-major `[B, n]`, in `f64`.
    pub fn marginal_values(&self) -> &[f64] {
        &self.marginals
    }

    /// The paper's `log P(Σ b = k) = log e_k(w) − Σ_i softplus(η_i)` per row, in `f64`.
    pub fn log_prob_sum_eq_k_values(&self) -> Vec<f64> {
        self.rows()
            .map(|(row, log_z, _)| {
                let mut sum = NeumaierSum::default();
                for &x in row {
                    sum.add(x.max(0.0) + (-x.abs()).exp().ln_1p());
                }
                log_z - sum.sum()
            })
            .collect()
    }

    /// Entropy `H = log e_k(w) − η · π` per row, in `f64`.
    pub fn entropy_values(&self) -> Vec<f64> {
        self.rows()
            .map(|(row, log_z, pi)| {
                let mut dot = NeumaierSum::default();
                for (x, p) in row.iter().zip(pi) {
                    dot.add(x * p);
                }
                log_z - dot.sum()
            })
            .collect()
    }

    /// `KL(p ‖ uniform over k-subsets) = log C(n, k) − H` per row, in `f64` (clamped at
    /// zero against rounding).
    pub fn kl_to_uniform_values(&self) -> Vec<f64> {
        let log_binomial = log_binomial(self.n, self.k);
        self.entropy_values().into_iter().map(|h| (log_binomial - h).max(0.0)).collect()
    }

    fn rows(&self) -> impl Iterator<Item = (&[f64], f64, &[f64])> {
        self.eta
            .chunks(self.n)
            .zip(&self.log_normalizer)
            .zip(self.marginals.chunks(self.n))
            .map(|((row, &log_z), pi)| (row, log_z, pi))
    }

    /// A tensor `[rows..., cols]` from `f64` values, in the logits' type and device.
    fn tensor(&self, values: &[f64], shape: &[i64]) -> Result<Tensor> {
        Ok(Tensor::from_slice(values)
            .f_view(shape)?
            .f_to_kind(self.logits.kind())?
            .f_to_device(self.logits.device())?)
    }

    /// Inclusion probabilities `π = ∂ log e_k / ∂η`, `[B, n]`, not differentiable.
    pub fn marginals(&self) -> Tensor {
        self.tensor(&self.marginals, &[self.batch as i64, self.n as i64])
            .expect("shape and kind were checked at construction")
    }

    /// `log e_k(exp η)` per row, `[B]`, differentiable with respect to the logits with
    /// the exact gradient `π` (its value is the `f64` normaliser, rounded to the logits'
    /// type).
    ///
    /// # Numerics
    /// Built as `c + Σ_i π_i (η_i − stopgrad η_i)` with the constant `c = log e_k`, so its
    /// first derivatives are exact; its second derivatives are not available through
    /// autograd (they come out zero).
    pub fn log_normalizer(&self) -> Tensor {
        let constant = self.tensor(&self.log_normalizer, &[self.batch as i64]).expect("checked at construction");
        let pi = self.marginals();
        let offset = &self.logits - self.logits.detach();
        constant + (pi * offset).sum_dim_intlist(-1, false, None::<Kind>)
    }

    /// The paper's `log P(Σ b = k)` per row, `[B]`, differentiable like
    /// [`log_normalizer`](Self::log_normalizer).
    pub fn log_prob_sum_eq_k(&self) -> Tensor {
        // softplus(x) = max(x, 0) + log1p(exp(−|x|)); libtorch's softplus returns x itself
        // above x = 20, an absolute error of up to 2e-9 per item.
        let softplus = self.logits.relu() + self.logits.abs().neg().exp().log1p();
        self.log_normalizer() - softplus.sum_dim_intlist(-1, false, None::<Kind>)
    }

    /// Entropy per row, `[B]`, differentiable with respect to the logits with the exact
    /// gradient `∇H = −Cov(z) η` (one more `O(n k)` pass per row).
    ///
    /// # Errors
    /// libtorch errors.
    pub fn entropy(&self) -> Result<Tensor> {
        let values = self.tensor(&self.entropy_values(), &[self.batch as i64])?;
        Ok(values.f_sub(&self.covariance_term()?)?)
    }

    /// `KL(p ‖ uniform) = log C(n, k) − H` per row, `[B]`, differentiable with respect to
    /// the logits with the exact gradient `Cov(z) η`.
    ///
    /// # Errors
    /// libtorch errors.
    pub fn kl_to_uniform(&self) -> Result<Tensor> {
        let values = self.tensor(&self.kl_to_uniform_values(), &[self.batch as i64])?;
        Ok(values.f_add(&self.covariance_term()?)?)
    }

    /// `Σ_i (η − stopgrad η)_i (Cov(z) η)_i` per row: zero in value, gradient `Cov(z) η`.
    fn covariance_term(&self) -> Result<Tensor> {
        let gradient = self.covariance_vector_product(&self.logits.f_detach()?)?;
        let offset = self.logits.f_sub(&self.logits.f_detach()?)?;
        Ok(offset.f_mul(&gradient)?.f_sum_dim_intlist(-1, false, None::<Kind>)?)
    }

    /// `Cov(z) v = (∂π/∂η) v` per row for `v` of shape `[B, n]`, computed exactly (forward
    /// mode through the stable DP, `O(n k)` per row), in the logits' type and device, not
    /// differentiable. This is SIMPLE's backward pass `J_π(η)ᵀ v` (the Jacobian of the
    /// marginals is the symmetric covariance of `z`), and `−Cov(z) η` is the gradient of the
    /// entropy.
    ///
    /// # Errors
    /// [`Error::ActionsShape`] when `v` is not `[B, n]`, [`Error::NonFiniteLogit`] when it
    /// is not finite (reported at its position), libtorch errors.
    pub fn covariance_vector_product(&self, v: &Tensor) -> Result<Tensor> {
        let (batch, n, k) = (self.batch, self.n, self.k);
        if v.size() != [batch as i64, n as i64] {
            return Err(Error::ActionsShape { batch, n, shape: v.size() });
        }
        let v = Vec::<f64>::try_from(
            v.f_detach()?.f_to_device(Device::Cpu)?.f_to_kind(Kind::Double)?.f_contiguous()?.f_view([-1])?,
        )?;
        if let Some(position) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFiniteLogit { row: position / n, index: position % n, value: v[position] });
        }
        let mut out = vec![0.0; batch * n];
        out.par_chunks_mut(n)
            .zip(self.eta.par_chunks(n))
            .zip(v.par_chunks(n))
            .for_each(|((out, row), v)| stable::covariance_vector_product(row, k, v, out));
        self.tensor(&out, &[batch as i64, n as i64])
    }

    /// `log p(z)` for k-hot actions `z` of shape `[S, B, n]` (or `[B, n]`), giving `[S, B]`
    /// (or `[B]`). Differentiable with respect to the logits, with gradient `z − π`.
    ///
    /// # Errors
    /// [`Error::ActionsShape`], [`Error::DeviceMismatch`], [`Error::NotKHot`].
    pub fn log_prob(&self, actions: &Tensor) -> Result<Tensor> {
        self.check_actions(actions)?;
        let actions = actions.f_to_kind(self.logits.kind())?;
        let energy = (actions * &self.logits).f_sum_dim_intlist(-1, false, None::<Kind>)?;
        Ok(energy.f_sub(&self.log_normalizer())?)
    }

    /// The score `∂ log p(z) / ∂η = z − π` for k-hot actions, same shape as `actions`,
    /// not differentiable.
    ///
    /// # Errors
    /// As [`log_prob`](Self::log_prob).
    pub fn score(&self, actions: &Tensor) -> Result<Tensor> {
        self.check_actions(actions)?;
        Ok(actions.f_to_kind(self.logits.kind())?.f_sub(&self.marginals())?)
    }

    fn check_actions(&self, actions: &Tensor) -> Result<()> {
        let shape = actions.size();
        let (batch, n) = (self.batch as i64, self.n as i64);
        let fits = matches!(shape[..], [s, b, m] if s >= 1 && b == batch && m == n) || shape[..] == [batch, n];
        if !fits {
            return Err(Error::ActionsShape { batch: self.batch, n: self.n, shape });
        }
        if actions.device() != self.logits.device() {
            return Err(Error::DeviceMismatch { actions: actions.device(), logits: self.logits.device() });
        }
        let values = actions.f_to_kind(Kind::Double)?;
        let binary = values.f_eq(0.0)?.f_logical_or(&values.f_eq(1.0)?)?.f_all()?;
        if !bool::try_from(binary)? {
            return Err(Error::NotKHot { k: self.k, problem: "an entry is neither 0 nor 1" });
        }
        let sizes = values.f_sum_dim_intlist(-1, false, None::<Kind>)?.f_eq(self.k as f64)?.f_all()?;
        if !bool::try_from(sizes)? {
            return Err(Error::NotKHot { k: self.k, problem: "a row does not have exactly k ones" });
        }
        Ok(())
    }

    /// Draws `n_samples` k-hot actions per row, `[S, B, n]`, in the logits' type and
    /// device, not differentiable. Each row gets its own generator seeded from `rng`, so
    /// the result does not depend on the number of threads.
    ///
    /// # Errors
    /// [`Error::TooManySamples`] when `S B n` entries exceed `isize::MAX` bytes; libtorch
    /// errors while building the tensor.
    pub fn sample<R: Rng + ?Sized>(&self, n_samples: usize, sampler: Sampler, rng: &mut R) -> Result<Tensor> {
        let (batch, n, k) = (self.batch, self.n, self.k);
        let entries = n_samples
            .checked_mul(batch)
            .and_then(|x| x.checked_mul(n))
            .filter(|&x| x <= isize::MAX as usize / std::mem::size_of::<f64>())
            .ok_or(Error::TooManySamples { samples: n_samples, batch, n })?;
        let seeds: Vec<u64> = (0..batch).map(|_| rng.next_u64()).collect();
        // Each row draws its samples as item indices, [B, S, k], in parallel; scattering
        // them into the dense [S, B, n] tensor is a cheap serial pass (S B k writes).
        let mut chosen = vec![0u32; batch * n_samples * k];
        if n_samples > 0 && k > 0 {
            chosen.par_chunks_mut(n_samples * k).zip(self.eta.par_chunks(n)).zip(seeds).for_each(
                |((out, row), seed)| {
                    let mut row_rng = Xoshiro256PlusPlus::seed_from_u64(seed);
                    match sampler {
                        Sampler::Exact => stable::sample_exact(row, k, n_samples, &mut row_rng, out),
                        Sampler::GumbelTopK => sample_gumbel_top_k(row, k, n_samples, &mut row_rng, out),
                    }
                },
            );
        }
        let shape = [n_samples as i64, batch as i64, n as i64];
        let dense = match self.logits.kind() {
            Kind::Float => Tensor::from_slice(&scatter::<f32>(&chosen, n_samples, batch, n, k, entries)),
            _ => Tensor::from_slice(&scatter::<f64>(&chosen, n_samples, batch, n, k, entries)),
        };
        Ok(dense.f_view(shape)?.f_to_device(self.logits.device())?)
    }
}

/// The k-hot `[S, B, n]` buffer of the items `chosen[b][s][..k]`.
fn scatter<T: Copy + From<u8>>(
    chosen: &[u32],
    samples: usize,
    batch: usize,
    n: usize,
    k: usize,
    entries: usize,
) -> Vec<T> {
    let mut dense = vec![T::from(0); entries];
    if k > 0 {
        for (b, row) in chosen.chunks(samples * k).enumerate() {
            for (s, items) in row.chunks(k).enumerate() {
                let offset = (s * batch + b) * n;
                for &i in items {
                    dense[offset + i as usize] = T::from(1);
                }
            }
        }
    }
    dense
}

/// Checks logits `[B, n]` (f32 or f64, `1 ≤ n < 2³²`, finite) and `0 ≤ k ≤ n`, and
/// returns `(B, n, k)` with the logits as `f64`, row-major.
pub(crate) fn read_logits(logits: &Tensor, k: i64) -> Result<(usize, usize, usize, Vec<f64>)> {
    let shape = logits.size();
    let [batch, n] = shape[..] else {
        return Err(Error::LogitsShape { shape });
    };
    if batch < 1 || n < 1 || n > i64::from(u32::MAX) {
        return Err(Error::LogitsShape { shape });
    }
    let (batch, n) = (batch as usize, n as usize);
    let kind = logits.kind();
    if !matches!(kind, Kind::Float | Kind::Double) {
        return Err(Error::LogitsKind { kind });
    }
    if k < 0 || k as usize > n {
        return Err(Error::KOutOfRange { k, n });
    }
    let k = k as usize;
    let host = logits.f_detach()?.f_to_device(Device::Cpu)?.f_to_kind(Kind::Double)?.f_contiguous()?;
    let eta = Vec::<f64>::try_from(host.f_view([-1])?)?;
    if let Some(position) = eta.iter().position(|x| !x.is_finite()) {
        return Err(Error::NonFiniteLogit { row: position / n, index: position % n, value: eta[position] });
    }
    Ok((batch, n, k, eta))
}

/// Gumbel top-k (paper Algorithm 1): for each sample, the k largest `η_i + G_i` with
/// `G_i = −log(−log U_i)`, `U_i` uniform on (0, 1).
fn sample_gumbel_top_k(eta: &[f64], k: usize, n_samples: usize, rng: &mut impl Rng, out: &mut [u32]) {
    let n = eta.len();
    let mut keys: Vec<(f64, u32)> = Vec::with_capacity(n);
    for sample in out.chunks_mut(k).take(n_samples) {
        keys.clear();
        keys.extend(eta.iter().zip(0u32..).map(|(&x, i)| {
            // Uniform on the open interval (0, 1), away from both ends.
            let u = ((rng.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
            (x - (-u.ln()).ln(), i)
        }));
        if k < n {
            keys.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        }
        for (slot, &(_, i)) in sample.iter_mut().zip(&keys[..k]) {
            *slot = i;
        }
    }
}

/// `log C(n, k)` via `lgamma`.
pub fn log_binomial(n: usize, k: usize) -> f64 {
    let lgamma = |x: usize| libm::lgamma(x as f64 + 1.0);
    lgamma(n) - lgamma(k) - lgamma(n - k)
}
