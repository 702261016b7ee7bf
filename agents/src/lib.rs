//! # sfess-agents: the policy side of sfess-agent
//!
//! Brief overview: the k-subset (conditional Poisson) distribution over k-hot actions,
//! computed exactly and stably ([`ConditionalPoisson`]), with exact and Gumbel top-k
//! samplers, and the gradient estimators compared in the SFESS paper ([`estimator`]).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod conditional_poisson;
pub mod estimator;

/// Errors of [`ConditionalPoisson`].
pub use conditional_poisson::Error as ConditionalPoissonError;
#[doc(inline)]
pub use conditional_poisson::{ConditionalPoisson, Normalizer, Sampler, log_binomial};
/// Errors of the gradient estimators.
pub use estimator::Error as EstimatorError;
#[doc(inline)]
pub use estimator::{
    Draw, EpisodeEstimator, EpisodeOptions, GradientEstimator, Imle, ImleNoise, Properties, RelaxedTopK, ScoreFunction,
    Simple,
};
