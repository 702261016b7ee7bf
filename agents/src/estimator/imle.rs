//! I-MLE (Niepert et al. 2021): perturb-and-MAP with implicit differentiation.

use rand::Rng;
use tch::Tensor;

use super::{
    Draw, Error, GradientEstimator, Memory, Noise, Properties, Result, check_logits, check_samples, noise_like,
    top_k_hot,
};

/// The perturbation of I-MLE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImleNoise {
    /// Standard Gumbel noise per item.
    Gumbel,
    /// Sum-of-Gamma noise (Niepert et al. 2021, for top-k):
    /// `ε = 1/k (Σ_{i=1}^{steps} Gamma(1/k, k/i) − log steps)`.
    SumOfGamma {
        /// Terms of the sum (10 in the I-MLE paper).
        steps: u32,
    },
}

/// `imle`: forward `z = topk(η + τ ε)`; the logits' gradient is
/// `z − topk(η − λ ∂f/∂z + τ ε)` with the same noise `ε` (the paper's input and target
/// noise temperatures `τ` are both 1.0). `∂f/∂z` is each sample's own loss gradient, so
/// `λ` does not depend on the batch size. Needs a differentiable `f`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Imle {
    lambda: f64,
    temperature: f64,
    noise: ImleNoise,
}

impl Imle {
    /// I-MLE with step `λ > 0`, noise temperature `τ ≥ 0` and the given noise.
    ///
    /// # Errors
    /// [`Error::Parameter`] for a non-positive `λ`, a negative `τ`, or zero Sum-of-Gamma steps.
    pub fn new(lambda: f64, temperature: f64, noise: ImleNoise) -> Result<Self> {
        let bad = |parameter, requirement, value| Error::Parameter { estimator: "imle", parameter, requirement, value };
        if !(lambda.is_finite() && lambda > 0.0) {
            return Err(bad("lambda", "positive and finite", lambda));
        }
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(bad("noise temperature", "non-negative and finite", temperature));
        }
        if let ImleNoise::SumOfGamma { steps: 0 } = noise {
            return Err(bad("sum-of-gamma steps", "at least 1", 0.0));
        }
        Ok(Self { lambda, temperature, noise })
    }

    fn perturbation(&self, logits: &Tensor, k: i64, samples: usize, rng: &mut dyn Rng) -> Result<Tensor> {
        let noise = match self.noise {
            ImleNoise::Gumbel => noise_like(logits, samples, rng, Noise::Gumbel)?,
            ImleNoise::SumOfGamma { steps } => {
                noise_like(logits, samples, rng, Noise::SumOfGamma { kappa: k.max(1) as f64, steps })?
            }
        };
        Ok(noise.f_mul_scalar(self.temperature)?)
    }
}

impl GradientEstimator for Imle {
    fn name(&self) -> &'static str {
        "imle"
    }

    fn properties(&self) -> Properties {
        Properties { exact_samples: false, unbiased: false, non_differentiable_f: false, tuning_free: false }
    }

    fn draw(&self, logits: &Tensor, k: i64, samples: usize, rng: &mut dyn Rng) -> Result<Draw> {
        check_samples(self, samples)?;
        check_logits(logits, k)?;
        let noise = self.perturbation(logits, k, samples, rng)?;
        let hard = top_k_hot(&logits.f_detach()?.f_unsqueeze(0)?.f_add(&noise)?, k)?;
        // A leaf of its own, so that ∂f/∂z can be taken without reaching the logits.
        let actions = hard.f_detach()?.set_requires_grad(true);
        let batch = logits.size()[0] as usize;
        Ok(Draw {
            actions,
            logits: logits.shallow_clone(),
            k,
            samples,
            batch,
            memory: Memory::Perturbation { noise, hard },
        })
    }

    fn surrogate_loss(&self, draw: &Draw, losses: &Tensor) -> Result<Tensor> {
        draw.groups(losses)?;
        let Memory::Perturbation { noise, hard } = &draw.memory else {
            return Err(Error::ForeignDraw { estimator: self.name() });
        };
        let loss_gradient = draw.loss_gradient(self.name(), losses)?;
        let target_keys =
            draw.logits.f_detach()?.f_unsqueeze(0)?.f_sub(&loss_gradient.f_mul_scalar(self.lambda)?)?.f_add(noise)?;
        let target = top_k_hot(&target_keys, draw.k)?;
        // Per row: mean over samples of z_s − z'_s.
        let gradient = hard.f_sub(&target)?.f_mean_dim(0, false, None::<tch::Kind>)?;
        draw.surrogate_with_logit_gradient(losses, &gradient)
    }
}
