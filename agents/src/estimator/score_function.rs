//! SFESS (paper Eq. 4) and SFESS + VR (Eq. 7): score-function estimators.

use rand::Rng;
use tch::{Kind, Tensor};

use super::{
    Draw, EpisodeEstimator, EpisodeOptions, Error, GradientEstimator, Memory, Properties, Result, check_samples,
    distribution,
};
use crate::conditional_poisson::{Normalizer, Sampler};

/// The score-function estimator `1/S Σ_s (f_s − b_s) (z_s − π)`.
///
/// Without a baseline (`sfess`, Eq. 4) `b_s = 0`; with the leave-one-out baseline
/// (`sfess-vr`, Eq. 7) `b_s = 1/(S−1) Σ_{j≠s} f_j`, the mean loss of the *other* samples of
/// the same row, which keeps the estimator unbiased (the paper's code uses the mean of all
/// `S` samples, itself included, which scales the estimate by `(S−1)/S`).
///
/// With [`Sampler::Exact`] the samples follow the law whose score is used, so the
/// estimate is unbiased; [`Sampler::GumbelTopK`] reproduces the paper's code, which
/// samples Gumbel top-k but scores with the conditional Poisson law (biased).
///
/// The surrogate is `mean f + mean_{s,b} stopgrad(f − b) (log p(z) − stopgrad log p(z))`.
///
/// The distribution uses the logits' device's default backend ([`Normalizer::Auto`])
/// unless [`with_normalizer`](Self::with_normalizer) says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreFunction {
    sampler: Sampler,
    leave_one_out: bool,
    normalizer: Normalizer,
}

impl ScoreFunction {
    /// SFESS (Eq. 4), no baseline.
    pub fn plain(sampler: Sampler) -> Self {
        Self { sampler, leave_one_out: false, normalizer: Normalizer::Auto }
    }

    /// SFESS + VR (Eq. 7), the leave-one-out baseline; needs `S ≥ 2`.
    pub fn leave_one_out(sampler: Sampler) -> Self {
        Self { sampler, leave_one_out: true, normalizer: Normalizer::Auto }
    }

    /// The same estimator with the distribution computed by `normalizer`.
    pub fn with_normalizer(self, normalizer: Normalizer) -> Self {
        Self { normalizer, ..self }
    }

    /// The leave-one-out baselines `b_s = (Σ_j f_j − f_s)/(S − 1)` of losses `[S, B]`.
    pub fn baselines(losses: &Tensor) -> Result<Tensor> {
        let samples = losses.size().first().copied().unwrap_or(0);
        if samples < 2 {
            return Err(Error::TooFewSamples { estimator: "sfess-vr", samples: samples.max(0) as usize, minimum: 2 });
        }
        let total = losses.f_sum_dim_intlist(0, true, None::<Kind>)?;
        Ok(total.f_sub(losses)?.f_div_scalar((samples - 1) as f64)?)
    }
}

impl GradientEstimator for ScoreFunction {
    fn name(&self) -> &'static str {
        if self.leave_one_out { "sfess-vr" } else { "sfess" }
    }

    fn properties(&self) -> Properties {
        let exact = self.sampler == Sampler::Exact;
        Properties { exact_samples: exact, unbiased: exact, non_differentiable_f: true, tuning_free: true }
    }

    fn minimum_samples(&self) -> usize {
        if self.leave_one_out { 2 } else { 1 }
    }

    fn draw(&self, logits: &Tensor, k: i64, samples: usize, rng: &mut dyn Rng) -> Result<Draw> {
        check_samples(self, samples)?;
        let policy = distribution(logits, k, self.normalizer)?;
        let actions = policy.sample(samples, self.sampler, rng)?;
        let batch = policy.batch_size();
        Ok(Draw { actions, logits: logits.shallow_clone(), k, samples, batch, memory: Memory::Policy(policy) })
    }

    fn surrogate_loss(&self, draw: &Draw, losses: &Tensor) -> Result<Tensor> {
        let groups = draw.groups(losses)?;
        let Memory::Policy(policy) = &draw.memory else { return Err(Error::ForeignDraw { estimator: self.name() }) };
        let f = losses.f_detach()?;
        let advantage = if self.leave_one_out { f.f_sub(&Self::baselines(&f)?)? } else { f };
        // log p of each loss's actions: the sum over its group of rows, [S, R].
        let log_prob = policy.log_prob_of_samples(&draw.actions)?;
        let shape = losses.size();
        let log_prob =
            log_prob.f_view([shape[0], shape[1], groups as i64])?.f_sum_dim_intlist(-1, false, None::<Kind>)?;
        let score_term = advantage.f_mul(&log_prob.f_sub(&log_prob.f_detach()?)?)?.f_mean(None)?;
        Ok(losses.f_mean(None)?.f_add(&score_term)?)
    }

    fn over_episodes(&self, reward_to_go: bool, discount: f64) -> Option<EpisodeEstimator> {
        let options = EpisodeOptions { leave_one_out: self.leave_one_out, reward_to_go, discount };
        Some(EpisodeEstimator { options, sampler: self.sampler, normalizer: self.normalizer })
    }
}
