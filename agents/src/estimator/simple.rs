//! SIMPLE (Ahmed et al. 2023): exact samples forward, exact marginals backward.

use rand::Rng;
use tch::Kind;

use super::{Draw, Error, GradientEstimator, Memory, Properties, Result, check_samples, distribution};
use crate::conditional_poisson::{Normalizer, Sampler};
use tch::Tensor;

/// `simple`: forward exact k-subset samples `z_s`; backward straight through the exact
/// marginals, `∂L/∂η = J_π(η)ᵀ ∂L/∂z = Cov(z) · 1/S Σ_s ∂f_s/∂z_s`, with `Cov(z) v`
/// computed exactly ([`ConditionalPoisson::covariance_vector_product`]). Needs a
/// differentiable `f`; no parameter to tune. The distribution uses the logits' device's
/// default backend unless [`with_normalizer`](Self::with_normalizer) says otherwise.
///
/// [`ConditionalPoisson::covariance_vector_product`]: crate::ConditionalPoisson::covariance_vector_product
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Simple {
    normalizer: Normalizer,
}

impl Simple {
    /// SIMPLE with the device's default backend.
    pub fn new() -> Self {
        Self::default()
    }

    /// SIMPLE with the distribution computed by `normalizer`.
    pub fn with_normalizer(self, normalizer: Normalizer) -> Self {
        Self { normalizer }
    }
}

impl GradientEstimator for Simple {
    fn name(&self) -> &'static str {
        "simple"
    }

    fn properties(&self) -> Properties {
        Properties { exact_samples: true, unbiased: false, non_differentiable_f: false, tuning_free: true }
    }

    fn draw(&self, logits: &Tensor, k: i64, samples: usize, rng: &mut dyn Rng) -> Result<Draw> {
        check_samples(self, samples)?;
        let policy = distribution(logits, k, self.normalizer)?;
        // A leaf of its own, so that ∂f/∂z can be taken without reaching the logits.
        let actions = policy.sample(samples, Sampler::Exact, rng)?.set_requires_grad(true);
        let batch = policy.batch_size();
        Ok(Draw { actions, logits: logits.shallow_clone(), k, samples, batch, memory: Memory::Policy(policy) })
    }

    fn surrogate_loss(&self, draw: &Draw, losses: &Tensor) -> Result<Tensor> {
        draw.groups(losses)?;
        let Memory::Policy(policy) = &draw.memory else { return Err(Error::ForeignDraw { estimator: self.name() }) };
        let mean_gradient = draw.loss_gradient(self.name(), losses)?.f_mean_dim(0, false, None::<Kind>)?;
        let gradient = policy.covariance_vector_product(&mean_gradient)?;
        draw.surrogate_with_logit_gradient(losses, &gradient)
    }
}
