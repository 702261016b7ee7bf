//! Gradient estimators for `∇_η E_{z ~ p(·|η)}[f(z)]`, where `p` is the k-subset
//! distribution and `f` a loss per sample.
//!
//! Every estimator works in two steps, so that the trainer has no special cases:
//! 1. [`GradientEstimator::draw`] turns logits `[B, n]` (carrying the graph of whatever
//!    produced them) into actions `[S, B, n]`: k-hot, or relaxed for `gs`.
//! 2. The caller evaluates its losses `f` `[S, B]` on those actions — plain values from a
//!    black box, or a tensor whose graph reaches the actions and the environment's own
//!    parameters — and [`GradientEstimator::surrogate_loss`] turns them into one scalar.
//!    Its value is `mean f`; one backward pass gives the estimator's gradient for the
//!    logits and the pathwise gradient for the environment's parameters.
//!
//! Gradients estimate `∇_η (1/B) Σ_b E[f_b]`: each row's gradient is its estimate over the
//! `S` samples, divided by `B`.
//!
//! Losses may also come one per group of `G` consecutive rows (`[S, B/G]`): a subset VAE
//! draws `d` independent subsets per image and has one loss per image. The rows of a group
//! then share that loss, their log-probabilities add up, and gradients are divided by `B/G`.
//!
//! | name | estimator | definition of the logits' gradient for one row |
//! |---|---|---|
//! | `sfess` | [`ScoreFunction`] (paper Eq. 4) | `1/S Σ_s f_s (z_s − π)` |
//! | `sfess-vr` | [`ScoreFunction`] with leave-one-out baseline (Eq. 7) | `1/S Σ_s (f_s − b_s)(z_s − π)`, `b_s = 1/(S−1) Σ_{j≠s} f_j` |
//! | `gs` | [`RelaxedTopK`] (Xie & Ermon 2019) | pathwise, through relaxed samples |
//! | `stgs` | [`RelaxedTopK`], straight-through | pathwise through the relaxation, k-hot forward |
//! | `imle` | [`Imle`] (Niepert et al. 2021) | `1/S Σ_s (z_s − topk(η − λ ∂f_s/∂z_s + ε_s))`, `z_s = topk(η + ε_s)` |
//! | `simple` | [`Simple`] (Ahmed et al. 2023) | `Cov(z) · 1/S Σ_s ∂f_s/∂z_s` with exact samples `z_s` |

pub mod episodes;
mod imle;
mod relaxed;
mod score_function;
mod simple;

pub use episodes::{EpisodeEstimator, EpisodeOptions};
pub use imle::{Imle, ImleNoise};
pub use relaxed::RelaxedTopK;
pub use score_function::ScoreFunction;
pub use simple::Simple;

use rand::Rng;
use rand_distr::{Distribution, Gamma};
use tch::{Kind, TchError, Tensor};

use crate::conditional_poisson::{self, ConditionalPoisson, Normalizer};

/// The four properties of the paper's Table 1, as this crate implements each estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Properties {
    /// Its actions are exact samples of the conditional Poisson law (k-hot).
    pub exact_samples: bool,
    /// Its gradient is an unbiased estimate of `∇_η E[f(z)]` for the k-subset law.
    pub unbiased: bool,
    /// It works when `f` has no gradient (a black box).
    pub non_differentiable_f: bool,
    /// It has no parameter that needs tuning (the number of samples is not counted).
    pub tuning_free: bool,
}

/// Everything that can go wrong in an estimator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Too few samples per row for this estimator.
    #[error("{estimator} needs at least {minimum} samples per row, got {samples}")]
    TooFewSamples {
        /// The estimator's name.
        estimator: &'static str,
        /// Samples asked for.
        samples: usize,
        /// Its minimum.
        minimum: usize,
    },
    /// A parameter is out of its range.
    #[error("{estimator}: {parameter} must be {requirement}, got {value}")]
    Parameter {
        /// The estimator's name.
        estimator: &'static str,
        /// The parameter.
        parameter: &'static str,
        /// What it must be.
        requirement: &'static str,
        /// The value given.
        value: f64,
    },
    /// The losses do not have the shape `[S, B]` of the draw.
    #[error("losses must have shape [{samples}, {batch}] (samples, batch), got {shape:?}")]
    LossShape {
        /// Samples per row of the draw.
        samples: usize,
        /// Rows of the draw.
        batch: usize,
        /// The shape given.
        shape: Vec<i64>,
    },
    /// The estimator needs `∂f/∂z` but the losses carry no gradient to the actions.
    #[error(
        "{estimator} needs a loss that is differentiable in the actions, but these losses carry no gradient \
         to them (a black-box reward?); sfess and sfess-vr work with non-differentiable losses"
    )]
    NotDifferentiable {
        /// The estimator's name.
        estimator: &'static str,
    },
    /// Episode tensors that are not of one shape `[S, R, T]`.
    #[error(
        "episode tensors must share one shape [S, R, T] (episodes per start, starts, steps): {what} has shape \
         {shape:?}, expected {expected:?}"
    )]
    EpisodeShape {
        /// Which tensor.
        what: &'static str,
        /// Its shape.
        shape: Vec<i64>,
        /// The shape expected (the rewards').
        expected: Vec<i64>,
    },
    /// The draw was made by another estimator.
    #[error("{estimator} was given a draw made by another estimator; build the surrogate with the estimator that drew")]
    ForeignDraw {
        /// The estimator asked for the surrogate.
        estimator: &'static str,
    },
    /// Actions that do not fit the logits they were drawn for ([`Draw::new`]).
    #[error(
        "a draw's actions must have shape [S, B, n] with S >= 1 for logits of shape [B, n] = {logits:?}, got {actions:?}"
    )]
    DrawShape {
        /// The logits' shape.
        logits: Vec<i64>,
        /// The actions' shape.
        actions: Vec<i64>,
    },
    /// An error of the k-subset distribution (bad logits or k).
    #[error(transparent)]
    Distribution(#[from] conditional_poisson::Error),
    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] TchError),
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The actions an estimator drew, with what its surrogate needs to remember.
#[derive(Debug)]
pub struct Draw {
    actions: Tensor,
    logits: Tensor,
    k: i64,
    samples: usize,
    batch: usize,
    memory: Memory,
}

/// What each estimator keeps between drawing and building the surrogate.
#[derive(Debug)]
enum Memory {
    /// The distribution (score function, SIMPLE).
    Policy(ConditionalPoisson),
    /// Nothing beyond the actions' own graph (relaxed samples).
    Nothing,
    /// The perturbation and the hard sample `topk(η + ε)` (I-MLE).
    Perturbation { noise: Tensor, hard: Tensor },
}

impl Draw {
    /// The draw of an estimator of your own (outside this crate): the `actions` `[S, B, n]`
    /// it drew for `logits` `[B, n]`, subsets of size `k`; `S` and `B` are read from the
    /// shapes. `logits` is the tensor [`GradientEstimator::draw`] was given, graph and all:
    /// the surrogate's gradient reaches the network through it.
    ///
    /// The draw keeps nothing else, so its estimator's
    /// [`surrogate_loss`](GradientEstimator::surrogate_loss) computes what it needs from
    /// [`actions`](Self::actions), [`logits`](Self::logits) and [`k`](Self::k), and checks
    /// the losses' shape with [`groups`](Self::groups). The estimators of this crate that
    /// keep something between drawing and the surrogate (`sfess`, `sfess-vr`, `simple`,
    /// `imle`) refuse such a draw ([`Error::ForeignDraw`]).
    ///
    /// # Errors
    /// Logits or `k` that the k-subset distribution refuses ([`Error::Distribution`]: not
    /// `[B, n]` f32 or f64, `k` outside `0..=n`, values not finite on the CPU);
    /// actions not of shape `[S, B, n]` with `S ≥ 1` ([`Error::DrawShape`]).
    pub fn new(actions: Tensor, logits: &Tensor, k: i64) -> Result<Self> {
        check_logits(logits, k)?;
        let (logits_shape, shape) = (logits.size(), actions.size());
        let samples = match shape[..] {
            [s, b, n] if s >= 1 && [b, n] == logits_shape[..] => s as usize,
            _ => return Err(Error::DrawShape { logits: logits_shape, actions: shape }),
        };
        let batch = logits_shape[0] as usize;
        Ok(Self { actions, logits: logits.shallow_clone(), k, samples, batch, memory: Memory::Nothing })
    }

    /// The actions `[S, B, n]` to give the environment.
    pub fn actions(&self) -> &Tensor {
        &self.actions
    }

    /// The logits `[B, n]` the actions were drawn for, with their graph.
    pub fn logits(&self) -> &Tensor {
        &self.logits
    }

    /// The subset size `k`.
    pub fn k(&self) -> i64 {
        self.k
    }

    /// Samples per row `S`.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Checks that `losses` is `[S, R]` with `R` dividing the rows `B`, and returns the
    /// number of rows per loss, `G = B / R` (1 when each row has its own loss; see the
    /// [module docs](self)).
    ///
    /// # Errors
    /// [`Error::LossShape`] for any other shape.
    pub fn groups(&self, losses: &Tensor) -> Result<usize> {
        let shape = losses.size();
        match shape[..] {
            [s, r] if s == self.samples as i64 && r >= 1 && self.batch.is_multiple_of(r as usize) => {
                Ok(self.batch / r as usize)
            }
            _ => Err(Error::LossShape { samples: self.samples, batch: self.batch, shape }),
        }
    }

    /// `∂f_s/∂z_s` for every sample, `[S, B, n]`, without touching any `.grad`.
    fn loss_gradient(&self, estimator: &'static str, losses: &Tensor) -> Result<Tensor> {
        if !losses.requires_grad() {
            return Err(Error::NotDifferentiable { estimator });
        }
        let summed = losses.f_sum(Kind::Double)?;
        match Tensor::f_run_backward(&[summed], &[&self.actions], true, false) {
            Ok(mut grads) if grads.len() == 1 && grads[0].defined() => Ok(grads.remove(0)),
            _ => Err(Error::NotDifferentiable { estimator }),
        }
    }

    /// `mean f + 1/R Σ_{b,i} (η − stopgrad η)_{b,i} g_{b,i}` for losses `[S, R]`: value
    /// `mean f`, pathwise gradient for whatever `f` depends on, and `g_b / R` for the logits
    /// of row `b`.
    fn surrogate_with_logit_gradient(&self, losses: &Tensor, gradient: &Tensor) -> Result<Tensor> {
        let groups = self.groups(losses)?;
        let offset = self.logits.f_sub(&self.logits.f_detach()?)?;
        let per_loss = (self.batch / groups) as f64;
        let linear = offset.f_mul(&gradient.f_detach()?)?.f_sum(Kind::Double)?.f_div_scalar(per_loss)?;
        Ok(losses.f_mean(None)?.f_add(&linear.f_to_kind(losses.kind())?)?)
    }
}

/// A gradient estimator for k-subset sampling; see the [module docs](self). An estimator
/// outside this crate makes its draws with [`Draw::new`].
pub trait GradientEstimator: std::fmt::Debug + Send + Sync {
    /// Its name on the command line (`sfess`, `sfess-vr`, `gs`, `stgs`, `imle`, `simple`).
    fn name(&self) -> &'static str;

    /// What it guarantees (the paper's Table 1, for this implementation).
    fn properties(&self) -> Properties;

    /// Fewest samples per row it accepts.
    fn minimum_samples(&self) -> usize {
        1
    }

    /// Draws `samples` actions per row of `logits` (`[B, n]`, f32 or f64), subsets of size
    /// `k`; returns them, `[S, B, n]`, with what the surrogate needs.
    ///
    /// # Errors
    /// Bad logits or `k` ([`Error::Distribution`]), too few samples.
    fn draw(&self, logits: &Tensor, k: i64, samples: usize, rng: &mut dyn Rng) -> Result<Draw>;

    /// The scalar whose value is `mean f` and whose gradient is the estimate (for the
    /// logits) and the pathwise gradient (for whatever else `losses` depends on).
    ///
    /// `losses` is `[S, B]`, or `[S, B/G]` for one loss per group of `G` consecutive rows.
    ///
    /// # Errors
    /// [`Error::LossShape`], and [`Error::NotDifferentiable`] for estimators that need
    /// `∂f/∂z` when `losses` carries none.
    fn surrogate_loss(&self, draw: &Draw, losses: &Tensor) -> Result<Tensor>;

    /// The same estimator over episodes ([`episodes`]), with `reward_to_go` and
    /// `discount`; `None` for the pathwise estimators, which need a loss differentiable
    /// in the actions.
    fn over_episodes(&self, reward_to_go: bool, discount: f64) -> Option<EpisodeEstimator> {
        let _ = (reward_to_go, discount);
        None
    }
}

/// Checks the sample count against the estimator's minimum.
fn check_samples(estimator: &dyn GradientEstimator, samples: usize) -> Result<()> {
    let minimum = estimator.minimum_samples();
    if samples < minimum {
        return Err(Error::TooFewSamples { estimator: estimator.name(), samples, minimum });
    }
    Ok(())
}

/// The distribution of `logits` computed by `normalizer`.
fn distribution(logits: &Tensor, k: i64, normalizer: Normalizer) -> Result<ConditionalPoisson> {
    Ok(ConditionalPoisson::with_normalizer(logits, k, normalizer)?)
}

/// Checks the logits the same way [`ConditionalPoisson`] does (shape, type, k, finite
/// values on the CPU) for estimators that do not build the distribution.
fn check_logits(logits: &Tensor, k: i64) -> Result<()> {
    Ok(conditional_poisson::check_logits(logits, k)?)
}

/// The k-hot vectors of the top `k` entries along the last dimension of `keys`.
fn top_k_hot(keys: &Tensor, k: i64) -> Result<Tensor> {
    let zeros = keys.f_zeros_like()?;
    if k == 0 {
        return Ok(zeros);
    }
    let (_, indices) = keys.f_topk(k, -1, true, false)?;
    Ok(zeros.f_scatter_value(-1, &indices, 1.0)?)
}

/// The perturbations of the Gumbel-based estimators.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Noise {
    /// Standard Gumbel `−log(−log U)`.
    Gumbel,
    /// `(Σ_{i=1}^{steps} Gamma(1/κ, κ/i) − log steps) / κ` (I-MLE's Sum-of-Gamma for top-k).
    SumOfGamma { kappa: f64, steps: u32 },
}

/// `S × B × n` draws of `noise` as a tensor in the logits' type and device: from `rng` on
/// the host for CPU logits, from libtorch's generator of the logits' device (reseeded from
/// `rng`, so still a function of `rng` alone) on a device, where a host draw would copy
/// `S B n` numbers per step.
fn noise_like(logits: &Tensor, samples: usize, rng: &mut dyn Rng, noise: Noise) -> Result<Tensor> {
    match logits.device() {
        tch::Device::Cpu => noise_on_host(logits, samples, rng, noise),
        device => {
            conditional_poisson::seed_generator(device, rng.next_u64());
            noise_on_device(logits, samples, noise)
        }
    }
}

fn noise_on_host(logits: &Tensor, samples: usize, rng: &mut dyn Rng, noise: Noise) -> Result<Tensor> {
    let size = logits.size();
    let count = samples * size.iter().product::<i64>() as usize;
    let values: Vec<f64> = match noise {
        Noise::Gumbel => (0..count).map(|_| gumbel(rng)).collect(),
        Noise::SumOfGamma { kappa, steps } => {
            let gammas: Vec<Gamma<f64>> = (1..=steps)
                .map(|i| Gamma::new(1.0 / kappa, kappa / f64::from(i)).expect("shape and scale are positive"))
                .collect();
            let offset = f64::from(steps).ln();
            (0..count).map(|_| (gammas.iter().map(|g| g.sample(rng)).sum::<f64>() - offset) / kappa).collect()
        }
    };
    let shape = [samples as i64, size[0], size[1]];
    Ok(Tensor::from_slice(&values).f_view(shape)?.f_to_kind(logits.kind())?.f_to_device(logits.device())?)
}

/// The same laws from libtorch's generator of the logits' device (seeded by the caller).
fn noise_on_device(logits: &Tensor, samples: usize, noise: Noise) -> Result<Tensor> {
    let size = logits.size();
    let (shape, options) = ([samples as i64, size[0], size[1]], (tch::Kind::Double, logits.device()));
    let values = match noise {
        Noise::Gumbel => {
            let uniform = Tensor::f_rand(shape, options)?.f_clamp_min(f64::MIN_POSITIVE)?;
            uniform.f_log()?.f_neg()?.f_log()?.f_neg()?
        }
        Noise::SumOfGamma { kappa, steps } => {
            // Gamma(a, θ) = θ · Gamma(a, 1).
            let shape_parameter = Tensor::f_full(shape, 1.0 / kappa, options)?;
            let mut sum = Tensor::f_zeros(shape, options)?;
            for i in 1..=steps {
                let draw = shape_parameter.f_internal_standard_gamma()?.f_mul_scalar(kappa / f64::from(i))?;
                sum = sum.f_add(&draw)?;
            }
            sum.f_sub_scalar(f64::from(steps).ln())?.f_div_scalar(kappa)?
        }
    };
    Ok(values.f_to_kind(logits.kind())?)
}

/// A uniform draw from the open interval `(0, 1)`.
fn open_uniform(rng: &mut dyn Rng) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// A standard Gumbel draw `−log(−log U)`.
fn gumbel(rng: &mut dyn Rng) -> f64 {
    -(-open_uniform(rng).ln()).ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    /// The device path's noise (run on CPU tensors) has the law of the host path: the mean
    /// and variance of 200,000 draws within 5 standard errors (Gumbel: γ and π²/6;
    /// Sum-of-Gamma with κ = 5, 10 steps: compared with the host draws' own moments).
    #[test]
    fn device_noise_has_the_host_noise_law() {
        let logits = Tensor::zeros([100, 100], (Kind::Float, tch::Device::Cpu));
        let samples = 20;
        let draws = (samples * 100 * 100) as f64;
        let moments = |t: &Tensor| {
            let t = t.to_kind(Kind::Double);
            (t.mean(Kind::Double).double_value(&[]), t.var(true).double_value(&[]))
        };
        conditional_poisson::seed_generator(tch::Device::Cpu, 7);
        let (mean, variance) = moments(&noise_on_device(&logits, samples, Noise::Gumbel).unwrap());
        let (gamma, pi2_6) = (0.577_215_664_901_532_9, std::f64::consts::PI.powi(2) / 6.0);
        assert!((mean - gamma).abs() < 5.0 * (pi2_6 / draws).sqrt(), "Gumbel mean {mean}");
        assert!((variance - pi2_6).abs() < 5.0 * 2.4 / draws.sqrt(), "Gumbel variance {variance}");
        let sog = Noise::SumOfGamma { kappa: 5.0, steps: 10 };
        let (mean_d, var_d) = moments(&noise_on_device(&logits, samples, sog).unwrap());
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let (mean_h, var_h) = moments(&noise_on_host(&logits, samples, &mut rng, sog).unwrap());
        let se = (var_h / draws).sqrt();
        assert!((mean_d - mean_h).abs() < 5.0 * se * 2f64.sqrt(), "Sum-of-Gamma means {mean_d} vs {mean_h}");
        assert!((var_d / var_h - 1.0).abs() < 0.05, "Sum-of-Gamma variances {var_d} vs {var_h}");
    }
}
