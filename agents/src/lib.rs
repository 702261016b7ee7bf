//! # sfess-agents: the policy side of sfess-agent
//!
//! Brief overview: the k-subset (conditional Poisson) distribution over k-hot actions,
//! computed exactly and stably ([`ConditionalPoisson`]), with exact and Gumbel top-k
//! samplers. The gradient estimators of the SFESS paper build on it.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod conditional_poisson;

/// Errors of [`ConditionalPoisson`].
pub use conditional_poisson::Error as ConditionalPoissonError;
#[doc(inline)]
pub use conditional_poisson::{ConditionalPoisson, Normalizer, Sampler, log_binomial};
