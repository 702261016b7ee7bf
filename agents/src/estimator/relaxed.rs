//! Relaxed top-k subset sampling (Xie & Ermon 2019), and its straight-through form.

use rand::Rng;
use tch::{Kind, Tensor};

use super::{
    Draw, Error, GradientEstimator, Memory, Noise, Properties, Result, check_logits, check_samples, noise_like,
    top_k_hot,
};

/// `gs`: relaxed k-hot samples `a = Σ_{j=1}^{k} a_j`, where with Gumbel-perturbed keys
/// `κ = η + G` and `κ_1 = κ`,
///
/// ```text
/// a_j = softmax(κ_j / τ),     κ_{j+1} = κ_j + log(max(1 − a_j, tiny)),
/// ```
///
/// differentiated pathwise; `stgs` forwards the k-hot top-k of `a` and back-propagates
/// through `a` (`hard + a − stopgrad a`). Both need a differentiable `f`; the temperature
/// `τ` (paper: 0.5) needs tuning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RelaxedTopK {
    temperature: f64,
    straight_through: bool,
}

impl RelaxedTopK {
    /// `gs` at temperature `τ > 0`.
    ///
    /// # Errors
    /// [`Error::Parameter`] when `τ` is not positive and finite.
    pub fn new(temperature: f64, straight_through: bool) -> Result<Self> {
        let estimator = if straight_through { "stgs" } else { "gs" };
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(Error::Parameter {
                estimator,
                parameter: "temperature",
                requirement: "positive and finite",
                value: temperature,
            });
        }
        Ok(Self { temperature, straight_through })
    }

    /// The relaxed k-hot vectors of the keys `[S, B, n]`.
    fn relax(&self, keys: &Tensor, k: i64) -> Result<Tensor> {
        let tiny = match keys.kind() {
            Kind::Float => f64::from(f32::MIN_POSITIVE),
            _ => f64::MIN_POSITIVE,
        };
        let mut keys = keys.shallow_clone();
        let mut total = keys.f_zeros_like()?;
        let mut last: Option<Tensor> = None;
        for _ in 0..k {
            if let Some(a) = &last {
                let keep = a.f_neg()?.f_add_scalar(1.0)?.f_clamp_min(tiny)?.f_log()?;
                keys = keys.f_add(&keep)?;
            }
            let a = keys.f_div_scalar(self.temperature)?.f_softmax(-1, None::<Kind>)?;
            total = total.f_add(&a)?;
            last = Some(a);
        }
        Ok(total)
    }
}

impl GradientEstimator for RelaxedTopK {
    fn name(&self) -> &'static str {
        if self.straight_through { "stgs" } else { "gs" }
    }

    fn properties(&self) -> Properties {
        Properties { exact_samples: false, unbiased: false, non_differentiable_f: false, tuning_free: false }
    }

    fn draw(&self, logits: &Tensor, k: i64, samples: usize, rng: &mut dyn Rng) -> Result<Draw> {
        check_samples(self, samples)?;
        check_logits(logits, k)?;
        let noise = noise_like(logits, samples, rng, Noise::Gumbel)?;
        let relaxed = self.relax(&logits.f_unsqueeze(0)?.f_add(&noise)?, k)?;
        let actions = if self.straight_through {
            let hard = top_k_hot(&relaxed.f_detach()?, k)?;
            hard.f_add(&relaxed.f_sub(&relaxed.f_detach()?)?)?
        } else {
            relaxed
        };
        let batch = logits.size()[0] as usize;
        Ok(Draw { actions, logits: logits.shallow_clone(), k, samples, batch, memory: Memory::Nothing })
    }

    fn surrogate_loss(&self, draw: &Draw, losses: &Tensor) -> Result<Tensor> {
        draw.groups(losses)?;
        if !losses.requires_grad() {
            return Err(Error::NotDifferentiable { estimator: self.name() });
        }
        Ok(losses.f_mean(None)?)
    }
}
