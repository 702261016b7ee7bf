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
//! device, in `f32` or `f64`; everything is computed in `f64` and handed back in the
//! caller's type and device. Where it is computed is the [`Normalizer`]'s choice: the
//! stable dynamic programme on the host (the default for CPU logits), or the parallel
//! tensor programme on the logits' own device (the default for CUDA logits), which never
//! copies to the host.
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
mod parallel;
mod stable;

use std::cell::OnceCell;

use rand::Rng;
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::SeedableRng;
use rayon::prelude::*;
use tch::{Device, Kind, TchError, Tensor};

use parallel::ProductTree;
pub(crate) use parallel::seed_generator;
use stable::{NeumaierSum, SamplingTable};

/// How the log normaliser `log e_k(w)`, the marginals `π` and everything derived from
/// them are computed, and where.
///
/// | backend | where | exact samples and `Cov(z) v` |
/// |---|---|---|
/// | [`Stable`](Self::Stable) | host (rayon over rows) | stable DP, host |
/// | [`Parallel`](Self::Parallel) | the logits' device | product tree, same device |
/// | [`Dft`](Self::Dft), [`PaperComplex64`](Self::PaperComplex64) | the logits' device (libtorch's FFT) for CUDA logits, else the host (`rustfft`) | the device's default backend |
///
/// [`Auto`](Self::Auto) is no backend of its own but the choice of the logits' device
/// ([`Normalizer::default_for`]), made where the distribution is built
/// ([`ConditionalPoisson::with_normalizer`]): the numerics only ever see one of the four
/// backends, and [`ConditionalPoisson::normalizer`] names it.
///
/// With the crate's `serde` and `clap` features, a `Normalizer` is (de)serialised and parsed
/// by its [`name`](Self::name): `auto`, `stable`, `parallel`, `dft`, `paper-complex64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(rename_all = "kebab-case"))]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[non_exhaustive]
pub enum Normalizer {
    /// The backend of the logits' device: [`Parallel`](Self::Parallel) on CUDA,
    /// [`Stable`](Self::Stable) elsewhere. The default.
    #[default]
    #[cfg_attr(feature = "clap", value(help = "The device's default: stable on the CPU, parallel on CUDA"))]
    Auto,
    /// Tilted dynamic programme in `f64` on the host, `O(n k)` time and `O(k √n)` memory,
    /// exact to rounding for any finite logits and every `k`. The default for CPU logits.
    #[cfg_attr(feature = "clap", value(help = "Stable tilted dynamic programme on the host (exact to rounding)"))]
    Stable,
    /// The same tilt, then the generating polynomial as a binary tree of truncated products
    /// in `f64` tensor operations on the logits' device (`O(log n)` depth, no host copy, no
    /// host synchronisation); exact to rounding like the stable backend. The default for
    /// CUDA logits.
    #[cfg_attr(
        feature = "clap",
        value(help = "Product tree as tensor operations on the logits' device (exact to rounding)")
    )]
    Parallel,
    /// The paper's DFT (Fernandez & Williams 2010) in `f64`, `O(n²)`: accurate only while
    /// `P(Σ b = k)` is well above `1e-16 n`; [`Error::NormalizerFailed`] below
    /// `64 (n + 1) ε` (checked on the host: one synchronisation on a device). For comparison.
    #[cfg_attr(feature = "clap", value(help = "The paper's f64 DFT (fails when P(sum b = k) is tiny; for comparison)"))]
    Dft,
    /// The paper code's complex64 DFT with `P(Σ b = k)` clamped at `f32::EPSILON` (zero
    /// gradient below it). Reproduces the published code's numbers; never train with it.
    #[cfg_attr(
        feature = "clap",
        value(help = "The paper code's complex64 DFT (for reproducing published numbers only)")
    )]
    PaperComplex64,
}

impl Normalizer {
    /// Every backend, in the order of the docs ([`Auto`](Self::Auto), a choice among them,
    /// aside).
    pub const ALL: [Normalizer; 4] =
        [Normalizer::Stable, Normalizer::Parallel, Normalizer::Dft, Normalizer::PaperComplex64];

    /// The name on the command line and in a configuration.
    pub fn name(self) -> &'static str {
        match self {
            Normalizer::Auto => "auto",
            Normalizer::Stable => "stable",
            Normalizer::Parallel => "parallel",
            Normalizer::Dft => "dft",
            Normalizer::PaperComplex64 => "paper-complex64",
        }
    }

    /// The default backend for logits on `device`: [`Parallel`](Self::Parallel) on CUDA,
    /// [`Stable`](Self::Stable) elsewhere.
    pub fn default_for(device: Device) -> Normalizer {
        match device {
            Device::Cuda(_) => Normalizer::Parallel,
            _ => Normalizer::Stable,
        }
    }

    /// The backend that computes logits on `device`: this one, or for
    /// [`Auto`](Self::Auto) the device's default.
    pub fn resolve(self, device: Device) -> Normalizer {
        match self {
            Normalizer::Auto => Normalizer::default_for(device),
            backend => backend,
        }
    }
}

/// How k-subsets are drawn.
///
/// With the crate's `serde` and `clap` features, a `Sampler` is (de)serialised and parsed by
/// its [`name`](Self::name): `exact`, `gumbel-topk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[non_exhaustive]
pub enum Sampler {
    /// Exact conditional Poisson samples (backward walk through the DP table, or top-down
    /// through the product tree).
    #[default]
    #[cfg_attr(feature = "serde", serde(rename = "exact"))]
    #[cfg_attr(feature = "clap", value(name = "exact", help = "Exact conditional Poisson samples: unbiased"))]
    Exact,
    /// Gumbel top-k (paper Algorithm 1): the top k of `η + Gumbel noise`. This is the
    /// first k items of a Plackett–Luce order, **not** the conditional Poisson law; the
    /// paper's code samples this way. For comparison.
    #[cfg_attr(feature = "serde", serde(rename = "gumbel-topk"))]
    #[cfg_attr(feature = "clap", value(name = "gumbel-topk", help = "Gumbel top-k, as the paper's code (biased)"))]
    GumbelTopK,
}

impl Sampler {
    /// The sampler's name on the command line and in a configuration.
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
///
/// # Devices
/// With the [parallel](Normalizer::Parallel) backend nothing leaves the logits' device and
/// nothing waits for it: on CUDA, non-finite logits are therefore not detected at
/// construction (they give NaN statistics, and samples that are in range but meaningless);
/// [`check_finite`](Self::check_finite) checks them at the cost of one synchronisation. On
/// the CPU they are always an [`Error::NonFiniteLogit`]. The `*_values` methods copy to the
/// host.
#[derive(Debug)]
pub struct ConditionalPoisson {
    logits: Tensor,
    k: usize,
    batch: usize,
    n: usize,
    normalizer: Normalizer,
    law: Law,
}

/// Where the statistics live.
#[derive(Debug)]
enum Law {
    /// On the host, row-major (stable DP; the DFT on the host). Samples and `Cov(z) v`
    /// come from the stable DP, samples through each row's forward table where the stable
    /// normaliser kept it (`tables` is empty otherwise).
    Host { eta: Vec<f64>, log_normalizer: Vec<f64>, marginals: Vec<f64>, tables: Vec<Option<SamplingTable>> },
    /// `f64` tensors on the logits' device (parallel backend; the DFT on a device).
    /// Samples and `Cov(z) v` come from the product tree, built on first use for the DFT.
    Device { eta: Tensor, log_normalizer: Tensor, marginals: Tensor, tree: OnceCell<ProductTree> },
}

impl ConditionalPoisson {
    /// The distribution of k-subsets for every row of `logits` (`[B, n]`, `f32` or
    /// `f64`, any device), with the device's default backend ([`Normalizer::Auto`]).
    ///
    /// # Errors
    /// [`Error::LogitsShape`], [`Error::LogitsKind`], [`Error::KOutOfRange`],
    /// [`Error::NonFiniteLogit`] (see [Devices](Self#devices)).
    pub fn new(logits: &Tensor, k: i64) -> Result<Self> {
        Self::with_normalizer(logits, k, Normalizer::Auto)
    }

    /// As [`new`](Self::new), with the backend chosen ([`Normalizer::Auto`]: the device's).
    ///
    /// # Errors
    /// As [`new`](Self::new), and [`Error::NormalizerFailed`] when a DFT backend cannot
    /// resolve a row.
    pub fn with_normalizer(logits: &Tensor, k: i64, normalizer: Normalizer) -> Result<Self> {
        let (batch, n, k) = check_shape(logits, k)?;
        let on_device = logits.device() != Device::Cpu;
        let law = match normalizer {
            // The device's backend (`k` is checked, in `0..=n`): what follows only ever sees
            // a concrete one.
            Normalizer::Auto => return Self::with_normalizer(logits, k as i64, normalizer.resolve(logits.device())),
            Normalizer::Stable => {
                let eta = host_logits(logits)?;
                let mut marginals = vec![0.0; batch * n];
                let (log_normalizer, tables) = eta
                    .par_chunks(n)
                    .zip(marginals.par_chunks_mut(n))
                    .map(|(row, out)| stable::log_normalizer_and_marginals(row, k, out))
                    .unzip();
                Law::Host { eta, log_normalizer, marginals, tables }
            }
            Normalizer::Parallel => {
                let eta = device_logits(logits)?;
                let tree = OnceCell::new();
                let (log_normalizer, marginals) = if k == 0 || k == n {
                    trivial_statistics(&eta, k)?
                } else {
                    let built = ProductTree::new(&eta, k)?;
                    let statistics = (built.log_normalizer.shallow_clone(), built.marginals.shallow_clone());
                    let _ = tree.set(built);
                    statistics
                };
                Law::Device { eta, log_normalizer, marginals, tree }
            }
            Normalizer::Dft | Normalizer::PaperComplex64 => {
                let precision =
                    if normalizer == Normalizer::Dft { dft::Precision::F64 } else { dft::Precision::PaperF32 };
                if on_device {
                    let eta = device_logits(logits)?;
                    let outcome = dft::on_device(&eta, k, precision)?;
                    // One copy to the host for the check: [log e_k; P(Σ b = k)].
                    let both = to_host(&Tensor::f_stack(&[&outcome.log_normalizer, &outcome.probability], 0)?);
                    let (log_normalizer_host, probability) = both.split_at(batch);
                    check_dft(normalizer, log_normalizer_host, probability)?;
                    let (log_normalizer, marginals) = (outcome.log_normalizer, outcome.marginals);
                    Law::Device { eta, log_normalizer, marginals, tree: OnceCell::new() }
                } else {
                    let eta = host_logits(logits)?;
                    let mut marginals = vec![0.0; batch * n];
                    let outcomes = dft::on_host(&eta, n, k, precision, &mut marginals);
                    let log_normalizer: Vec<f64> = outcomes.iter().map(|o| o.log_normalizer).collect();
                    let probability: Vec<f64> = outcomes.iter().map(|o| o.probability).collect();
                    check_dft(normalizer, &log_normalizer, &probability)?;
                    Law::Host { eta, log_normalizer, marginals, tables: Vec::new() }
                }
            }
        };
        Ok(Self { logits: logits.shallow_clone(), k, batch, n, normalizer, law })
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

    /// The backend in use (one of [`Normalizer::ALL`], never [`Normalizer::Auto`]).
    pub fn normalizer(&self) -> Normalizer {
        self.normalizer
    }

    /// Checks that every logit is finite (one host synchronisation on a device).
    ///
    /// # Errors
    /// [`Error::NonFiniteLogit`] at the first position that is not.
    pub fn check_finite(&self) -> Result<()> {
        first_non_finite(&self.logits)
    }

    /// `log e_k(exp η)` per row, in `f64`, on the host.
    pub fn log_normalizer_values(&self) -> Vec<f64> {
        match &self.law {
            Law::Host { log_normalizer, .. } => log_normalizer.clone(),
            Law::Device { log_normalizer, .. } => to_host(log_normalizer),
        }
    }

    /// Inclusion probabilities `π`, row-major `[B, n]`, in `f64`, on the host.
    pub fn marginal_values(&self) -> Vec<f64> {
        match &self.law {
            Law::Host { marginals, .. } => marginals.clone(),
            Law::Device { marginals, .. } => to_host(marginals),
        }
    }

    /// The paper's `log P(Σ b = k) = log e_k(w) − Σ_i softplus(η_i)` per row, in `f64`.
    pub fn log_prob_sum_eq_k_values(&self) -> Vec<f64> {
        match &self.law {
            Law::Host { eta, log_normalizer, .. } => eta
                .chunks(self.n)
                .zip(log_normalizer)
                .map(|(row, log_z)| {
                    let mut sum = NeumaierSum::default();
                    for &x in row {
                        sum.add(x.max(0.0) + (-x.abs()).exp().ln_1p());
                    }
                    log_z - sum.sum()
                })
                .collect(),
            Law::Device { eta, log_normalizer, .. } => {
                let softplus = parallel::softplus(eta).and_then(|s| s.f_sum_dim_intlist(-1, false, Kind::Double));
                to_host(&softplus.and_then(|s| log_normalizer.f_sub(&s)).expect("device statistics give log P(Σb = k)"))
            }
        }
    }

    /// Entropy `H = log e_k(w) − η · π` per row, in `f64`.
    pub fn entropy_values(&self) -> Vec<f64> {
        match &self.law {
            Law::Host { eta, log_normalizer, marginals, .. } => eta
                .chunks(self.n)
                .zip(log_normalizer)
                .zip(marginals.chunks(self.n))
                .map(|((row, log_z), pi)| {
                    let mut dot = NeumaierSum::default();
                    for (x, p) in row.iter().zip(pi) {
                        dot.add(x * p);
                    }
                    log_z - dot.sum()
                })
                .collect(),
            Law::Device { .. } => to_host(&self.entropy_f64().expect("device statistics give an entropy")),
        }
    }

    /// `KL(p ‖ uniform over k-subsets) = log C(n, k) − H` per row, in `f64` (clamped at
    /// zero against rounding).
    pub fn kl_to_uniform_values(&self) -> Vec<f64> {
        let log_binomial = log_binomial(self.n, self.k);
        self.entropy_values().into_iter().map(|h| (log_binomial - h).max(0.0)).collect()
    }

    /// A tensor of the given shape from host `f64` values, in `f64` on the logits' device.
    fn on_device(&self, values: &[f64], shape: &[i64]) -> Result<Tensor> {
        Ok(Tensor::from_slice(values).f_view(shape)?.f_to_device(self.logits.device())?)
    }

    /// `log e_k`, `[B]`, `f64` on the logits' device.
    fn log_normalizer_f64(&self) -> Result<Tensor> {
        match &self.law {
            Law::Host { log_normalizer, .. } => self.on_device(log_normalizer, &[self.batch as i64]),
            Law::Device { log_normalizer, .. } => Ok(log_normalizer.shallow_clone()),
        }
    }

    /// `π`, `[B, n]`, `f64` on the logits' device.
    fn marginals_f64(&self) -> Result<Tensor> {
        match &self.law {
            Law::Host { marginals, .. } => self.on_device(marginals, &[self.batch as i64, self.n as i64]),
            Law::Device { marginals, .. } => Ok(marginals.shallow_clone()),
        }
    }

    /// `H`, `[B]`, `f64` on the logits' device (compensated sums on the host for host
    /// statistics).
    fn entropy_f64(&self) -> Result<Tensor> {
        match &self.law {
            Law::Host { .. } => self.on_device(&self.entropy_values(), &[self.batch as i64]),
            Law::Device { eta, log_normalizer, marginals, .. } => {
                Ok(log_normalizer.f_sub(&eta.f_mul(marginals)?.f_sum_dim_intlist(-1, false, Kind::Double)?)?)
            }
        }
    }

    /// Inclusion probabilities `π = ∂ log e_k / ∂η`, `[B, n]`, not differentiable.
    pub fn marginals(&self) -> Tensor {
        self.marginals_f64()
            .and_then(|pi| Ok(pi.f_to_kind(self.logits.kind())?))
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
        let constant = self
            .log_normalizer_f64()
            .and_then(|z| Ok(z.f_to_kind(self.logits.kind())?))
            .expect("checked at construction");
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
        let values = self.entropy_f64()?.f_to_kind(self.logits.kind())?;
        Ok(values.f_sub(&self.covariance_term()?)?)
    }

    /// `KL(p ‖ uniform) = log C(n, k) − H` per row, `[B]`, differentiable with respect to
    /// the logits with the exact gradient `Cov(z) η`.
    ///
    /// # Errors
    /// libtorch errors.
    pub fn kl_to_uniform(&self) -> Result<Tensor> {
        let kl = self.entropy_f64()?.f_neg()?.f_add_scalar(log_binomial(self.n, self.k))?.f_clamp_min(0.0)?;
        Ok(kl.f_to_kind(self.logits.kind())?.f_add(&self.covariance_term()?)?)
    }

    /// `Σ_i (η − stopgrad η)_i (Cov(z) η)_i` per row: zero in value, gradient `Cov(z) η`.
    fn covariance_term(&self) -> Result<Tensor> {
        let gradient = self.covariance_vector_product(&self.logits.f_detach()?)?;
        let offset = self.logits.f_sub(&self.logits.f_detach()?)?;
        Ok(offset.f_mul(&gradient)?.f_sum_dim_intlist(-1, false, None::<Kind>)?)
    }

    /// `Cov(z) v = (∂π/∂η) v` per row for `v` of shape `[B, n]`, computed exactly (forward
    /// mode through the stable DP or the product tree, `O(n k)` per row), in the logits'
    /// type and device, not differentiable. This is SIMPLE's backward pass `J_π(η)ᵀ v` (the
    /// Jacobian of the marginals is the symmetric covariance of `z`), and `−Cov(z) η` is the
    /// gradient of the entropy.
    ///
    /// # Errors
    /// [`Error::ActionsShape`] when `v` is not `[B, n]`, [`Error::NonFiniteLogit`] when it
    /// is not finite (reported at its position; not checked on CUDA, see
    /// [Devices](Self#devices)), libtorch errors.
    pub fn covariance_vector_product(&self, v: &Tensor) -> Result<Tensor> {
        let (batch, n, k) = (self.batch, self.n, self.k);
        if v.size() != [batch as i64, n as i64] {
            return Err(Error::ActionsShape { batch, n, shape: v.size() });
        }
        match &self.law {
            Law::Host { eta, .. } => {
                let v = host_logits(v)?;
                let mut out = vec![0.0; batch * n];
                out.par_chunks_mut(n)
                    .zip(eta.par_chunks(n))
                    .zip(v.par_chunks(n))
                    .for_each(|((out, row), v)| stable::covariance_vector_product(row, k, v, out));
                Ok(self.on_device(&out, &[batch as i64, n as i64])?.f_to_kind(self.logits.kind())?)
            }
            Law::Device { .. } => {
                let v = device_logits(v)?;
                let product = match self.tree()? {
                    Some(tree) => tree.covariance_vector_product(&v)?,
                    None => v.f_zeros_like()?,
                };
                Ok(product.f_to_kind(self.logits.kind())?)
            }
        }
    }

    /// The product tree of device statistics, built on first use (`None` for `k = 0` or
    /// `k = n`, which need none).
    fn tree(&self) -> Result<Option<&ProductTree>> {
        let Law::Device { eta, tree, .. } = &self.law else { unreachable!("called for device statistics only") };
        if self.k == 0 || self.k == self.n {
            return Ok(None);
        }
        if tree.get().is_none() {
            let _ = tree.set(ProductTree::new(eta, self.k)?);
        }
        Ok(tree.get())
    }

    /// `log p(z)` for k-hot actions `z` of shape `[S, B, n]` (or `[B, n]`), giving `[S, B]`
    /// (or `[B]`). Differentiable with respect to the logits, with gradient `z − π`.
    ///
    /// # Errors
    /// [`Error::ActionsShape`], [`Error::DeviceMismatch`], [`Error::NotKHot`] (checking
    /// takes one host synchronisation on a device; the estimators skip it for their own
    /// samples).
    pub fn log_prob(&self, actions: &Tensor) -> Result<Tensor> {
        self.check_actions(actions)?;
        self.log_prob_of_samples(actions)
    }

    /// [`log_prob`](Self::log_prob) for actions known to be k-hot of the right shape and
    /// device: this distribution's own samples.
    pub(crate) fn log_prob_of_samples(&self, actions: &Tensor) -> Result<Tensor> {
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
    /// device, not differentiable.
    ///
    /// # Randomness
    /// The draws are a function of `rng` alone. With host statistics each row gets its own
    /// generator seeded from `rng`, so the result does not depend on the number of
    /// threads. With device statistics the uniforms come from libtorch's generator of the
    /// logits' device, reseeded from `rng` for the call (this resets that global
    /// generator: the CPU's for CPU logits, every CUDA device's for CUDA logits);
    /// [`sample_from_torch_generator`](Self::sample_from_torch_generator) draws from it
    /// as it stands instead.
    ///
    /// # Errors
    /// [`Error::TooManySamples`] when `S B n` entries exceed `isize::MAX` bytes; libtorch
    /// errors while building the tensor.
    pub fn sample<R: Rng + ?Sized>(&self, n_samples: usize, sampler: Sampler, rng: &mut R) -> Result<Tensor> {
        self.check_sample_count(n_samples)?;
        match &self.law {
            Law::Host { .. } => {
                let seeds: Vec<u64> = (0..self.batch).map(|_| rng.next_u64()).collect();
                self.sample_host(n_samples, sampler, &seeds)
            }
            Law::Device { .. } => {
                parallel::seed_generator(self.logits.device(), rng.next_u64());
                self.sample_device(n_samples, sampler)
            }
        }
    }

    /// As [`sample`](Self::sample), with the randomness taken from libtorch's default
    /// generator of the logits' device, which it advances and never reseeds: after
    /// `tch::manual_seed` (or Python's `torch.manual_seed`) the draws repeat. This is how a
    /// PyTorch program samples. With host statistics each row's generator
    /// (xoshiro256++) is seeded by one 63-bit draw from libtorch's CPU generator, so the
    /// result does not depend on the number of threads; with device statistics the uniforms
    /// are drawn on the device by its generator.
    ///
    /// # Errors
    /// As [`sample`](Self::sample).
    pub fn sample_from_torch_generator(&self, n_samples: usize, sampler: Sampler) -> Result<Tensor> {
        self.check_sample_count(n_samples)?;
        match &self.law {
            Law::Host { .. } => {
                let seeds = Tensor::f_randint_low(0, i64::MAX, [self.batch as i64], (Kind::Int64, Device::Cpu))?;
                let seeds: Vec<i64> = Vec::try_from(&seeds)?;
                self.sample_host(n_samples, sampler, &seeds.into_iter().map(|s| s as u64).collect::<Vec<_>>())
            }
            Law::Device { .. } => self.sample_device(n_samples, sampler),
        }
    }

    /// [`Error::TooManySamples`] when `S B n` entries exceed `isize::MAX` bytes.
    fn check_sample_count(&self, n_samples: usize) -> Result<()> {
        let (batch, n) = (self.batch, self.n);
        n_samples
            .checked_mul(batch)
            .and_then(|x| x.checked_mul(n))
            .filter(|&x| x <= isize::MAX as usize / std::mem::size_of::<f64>())
            .map(|_| ())
            .ok_or(Error::TooManySamples { samples: n_samples, batch, n })
    }

    /// Samples of host statistics, `[S, B, n]`, row `b` drawn from xoshiro256++ seeded with
    /// `seeds[b]`.
    fn sample_host(&self, n_samples: usize, sampler: Sampler, seeds: &[u64]) -> Result<Tensor> {
        let (batch, n, k) = (self.batch, self.n, self.k);
        let Law::Host { eta, tables, .. } = &self.law else { unreachable!("called for host statistics only") };
        // Each row draws its samples as k-hot bytes, [B, S, n], in parallel; they become the
        // [S, B, n] tensor on the logits' device.
        // Reserved fallibly: a count that fits in the address space but not in memory is an
        // error, not an abort.
        let len = batch * n_samples * n;
        let mut dense = Vec::new();
        dense.try_reserve_exact(len).map_err(|_| Error::TooManySamples { samples: n_samples, batch, n })?;
        dense.resize(len, 0u8);
        if n_samples > 0 && k > 0 {
            dense.par_chunks_mut(n_samples * n).zip(eta.par_chunks(n)).zip(seeds).enumerate().for_each(
                |(row, ((out, eta), &seed))| {
                    let mut row_rng = Xoshiro256PlusPlus::seed_from_u64(seed);
                    match sampler {
                        Sampler::Exact => {
                            let table = tables.get(row).and_then(Option::as_ref);
                            stable::sample_exact(eta, k, n_samples, &mut row_rng, out, table)
                        }
                        Sampler::GumbelTopK => sample_gumbel_top_k(eta, k, n_samples, &mut row_rng, out),
                    }
                },
            );
        }
        let (kind, device) = (self.logits.kind(), self.logits.device());
        Ok(Tensor::from_slice(&dense)
            .f_view([batch as i64, n_samples as i64, n as i64])?
            .f_to_device(device)?
            .f_permute([1, 0, 2])?
            .f_contiguous()?
            .f_to_kind(kind)?)
    }

    /// Samples of device statistics, `[S, B, n]`, from the uniforms of libtorch's generator
    /// of the logits' device as it stands.
    fn sample_device(&self, n_samples: usize, sampler: Sampler) -> Result<Tensor> {
        let (batch, n, k) = (self.batch, self.n, self.k);
        let Law::Device { eta, .. } = &self.law else { unreachable!("called for device statistics only") };
        let shape = [n_samples as i64, batch as i64, n as i64];
        let (kind, device) = (self.logits.kind(), self.logits.device());
        if n_samples == 0 || k == 0 {
            return Ok(Tensor::f_zeros(shape, (kind, device))?);
        }
        if k == n {
            return Ok(Tensor::f_ones(shape, (kind, device))?);
        }
        let samples = match sampler {
            Sampler::Exact => {
                let tree = self.tree()?.expect("0 < k < n");
                let uniforms = Tensor::f_rand([shape[0], shape[1], tree.leaves() - 1], (Kind::Double, device))?;
                tree.sample(&uniforms)?
            }
            Sampler::GumbelTopK => {
                let uniforms = Tensor::f_rand(shape, (Kind::Double, device))?.f_clamp_min(f64::MIN_POSITIVE)?;
                let gumbel = uniforms.f_log()?.f_neg()?.f_log()?.f_neg()?;
                let keys = eta.f_unsqueeze(0)?.f_add(&gumbel)?;
                let (_, indices) = keys.f_topk(k as i64, -1, true, false)?;
                keys.f_zeros_like()?.f_scatter_value(-1, &indices, 1.0)?
            }
        };
        Ok(samples.f_to_kind(kind)?)
    }
}

/// Checks logits `[B, n]` as [`ConditionalPoisson`] does, for estimators that do not build
/// the distribution: the shape, type and `k` ([`check_shape`]), and finiteness on the CPU
/// (on a device that would take a host synchronisation).
pub(crate) fn check_logits(logits: &Tensor, k: i64) -> Result<()> {
    check_shape(logits, k)?;
    if logits.device() == Device::Cpu {
        first_non_finite(logits)?;
    }
    Ok(())
}

/// Checks logits `[B, n]` (f32 or f64, `1 ≤ n < 2³²`) and `0 ≤ k ≤ n` from their metadata;
/// returns `(B, n, k)`. Finiteness is checked by whatever reads the values
/// ([`host_logits`], [`device_logits`]).
fn check_shape(logits: &Tensor, k: i64) -> Result<(usize, usize, usize)> {
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
    Ok((batch, n, k as usize))
}

/// [`Error::NonFiniteLogit`] at the first entry of `values` (`[B, n]`) that is not finite.
fn first_non_finite(values: &Tensor) -> Result<()> {
    let finite = values.f_isfinite()?;
    if bool::try_from(finite.f_all()?)? {
        return Ok(());
    }
    let n = values.size()[1];
    let position = finite.f_logical_not()?.f_flatten(0, -1)?.f_to_kind(Kind::Int64)?.f_argmax(None, false)?;
    let position = position.int64_value(&[]);
    let value = values.f_flatten(0, -1)?.double_value(&[position]);
    Err(Error::NonFiniteLogit { row: (position / n) as usize, index: (position % n) as usize, value })
}

/// `values` (`[B, n]`, checked) as `f64` on the host, row-major.
fn host_logits(values: &Tensor) -> Result<Vec<f64>> {
    let host = values.f_detach()?.f_to_device(Device::Cpu)?.f_to_kind(Kind::Double)?.f_contiguous()?;
    let values = Vec::<f64>::try_from(host.f_view([-1])?)?;
    if let Some(position) = values.iter().position(|x| !x.is_finite()) {
        let n = values.len() / host.size()[0] as usize;
        return Err(Error::NonFiniteLogit { row: position / n, index: position % n, value: values[position] });
    }
    Ok(values)
}

/// `values` (`[B, n]`, checked) detached, as contiguous `f64` on their own device.
fn device_logits(values: &Tensor) -> Result<Tensor> {
    if values.device() == Device::Cpu {
        first_non_finite(values)?;
    }
    Ok(values.f_detach()?.f_to_kind(Kind::Double)?.f_contiguous()?)
}

/// An `f64` tensor's values on the host.
fn to_host(values: &Tensor) -> Vec<f64> {
    values
        .f_to_device(Device::Cpu)
        .and_then(|t| t.f_flatten(0, -1))
        .and_then(|t| Vec::<f64>::try_from(&t))
        .expect("an f64 statistic copies to the host")
}

/// `log e_k` and `π` for `k = 0` (`0`, all zeros) and `k = n` (`Σ η`, all ones).
fn trivial_statistics(eta: &Tensor, k: usize) -> Result<(Tensor, Tensor)> {
    if k == 0 {
        Ok((Tensor::f_zeros([eta.size()[0]], (Kind::Double, eta.device()))?, eta.f_zeros_like()?))
    } else {
        Ok((eta.f_sum_dim_intlist(-1, false, Kind::Double)?, eta.f_ones_like()?))
    }
}

/// [`Error::NormalizerFailed`] at the first row whose DFT normaliser is not finite.
fn check_dft(normalizer: Normalizer, log_normalizer: &[f64], probability: &[f64]) -> Result<()> {
    match log_normalizer.iter().position(|z| !z.is_finite()) {
        Some(row) => Err(Error::NormalizerFailed { normalizer: normalizer.name(), row, probability: probability[row] }),
        None => Ok(()),
    }
}

/// Gumbel top-k (paper Algorithm 1): for each sample, the k largest `η_i + G_i` with
/// `G_i = −log(−log U_i)`, `U_i` uniform on (0, 1).
/// Writes each sample as k-hot bytes, `out[s n + i]`.
fn sample_gumbel_top_k(eta: &[f64], k: usize, n_samples: usize, rng: &mut impl Rng, out: &mut [u8]) {
    let n = eta.len();
    let mut keys: Vec<(f64, u32)> = Vec::with_capacity(n);
    for sample in out.chunks_mut(n).take(n_samples) {
        keys.clear();
        keys.extend(eta.iter().zip(0u32..).map(|(&x, i)| {
            // Uniform on the open interval (0, 1), away from both ends.
            let u = ((rng.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
            (x - (-u.ln()).ln(), i)
        }));
        if k < n {
            keys.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        }
        for &(_, i) in &keys[..k] {
            sample[i as usize] = 1;
        }
    }
}

/// `log C(n, k)` via `lgamma`.
pub fn log_binomial(n: usize, k: usize) -> f64 {
    let lgamma = |x: usize| libm::lgamma(x as f64 + 1.0);
    lgamma(n) - lgamma(k) - lgamma(n - k)
}
