//! Score-function estimators over episodes: SFESS and SFESS + VR for sequential decisions.
//!
//! An episode takes a k-hot action `b_t ~ p_θ(· | s_t)` at each step `t < T` (the exact
//! conditional Poisson law of the state's logits) and gets rewards `r_t`. The objective is
//! the expected discounted return `J(θ) = E[Σ_t γ^t r_t]`, and the score of a trajectory is
//! the sum of its steps' exact scores, so that
//!
//! `∇J = E[Σ_t Ψ_t ∇ log p_θ(b_t | s_t)]`
//!
//! with `Ψ_t` the whole return `G = Σ_t' γ^t' r_t'`, or with reward-to-go the rewards from
//! `t` on, `G_t = Σ_{t' ≥ t} γ^t' r_t'` (the earlier rewards do not depend on `b_t`; the
//! discount counts from the episode's start, which keeps the estimate unbiased for `J`).
//!
//! SFESS + VR rolls out `S` episodes from the same start state, with independent actions,
//! and subtracts from each the leave-one-out baseline: the mean of the *other* `S − 1`
//! episodes' `Ψ_t`, the paper's multi-sample baseline (Eq. 7) applied to returns. It does not
//! depend on the episode it is subtracted from, so the estimate stays unbiased; the mean
//! of all `S` (the episode's own return included, as in the authors' code) is not.

use rand::Rng;
use tch::{Kind, Tensor};

use super::{Error, Result, distribution};
use crate::conditional_poisson::{Normalizer, Sampler};

/// How the returns weight each step's score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpisodeOptions {
    /// The leave-one-out baseline over the `S` episodes of each start (SFESS + VR); needs
    /// `S ≥ 2`. Without it, SFESS.
    pub leave_one_out: bool,
    /// Weight step `t`'s score by the rewards from `t` on instead of the whole return.
    pub reward_to_go: bool,
    /// The discount `γ` in `(0, 1]`.
    pub discount: f64,
}

impl EpisodeOptions {
    /// SFESS + VR on undiscounted whole returns.
    pub fn leave_one_out() -> Self {
        Self { leave_one_out: true, reward_to_go: false, discount: 1.0 }
    }

    /// SFESS on undiscounted whole returns.
    pub fn plain() -> Self {
        Self { leave_one_out: false, reward_to_go: false, discount: 1.0 }
    }

    fn name(&self) -> &'static str {
        if self.leave_one_out { "sfess-vr" } else { "sfess" }
    }

    /// Checks the discount.
    ///
    /// # Errors
    /// [`Error::Parameter`] for a discount outside `(0, 1]`.
    pub fn check(&self) -> Result<()> {
        if !(self.discount > 0.0 && self.discount <= 1.0) {
            return Err(Error::Parameter {
                estimator: self.name(),
                parameter: "the discount",
                requirement: "in (0, 1]",
                value: self.discount,
            });
        }
        Ok(())
    }
}

/// SFESS or SFESS + VR over episodes: how each step's actions are drawn (the exact law, or
/// the paper code's Gumbel top-k) and how the returns weight their scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpisodeEstimator {
    /// How returns weight the scores.
    pub options: EpisodeOptions,
    /// How actions are drawn.
    pub sampler: Sampler,
    /// How the distribution is computed ([`Normalizer::Auto`]: the logits' device's default).
    pub normalizer: Normalizer,
}

impl EpisodeEstimator {
    /// `sfess` or `sfess-vr`.
    pub fn name(&self) -> &'static str {
        self.options.name()
    }

    /// Draws `samples` actions for each row of `logits` `[R, n]` (carrying the policy's
    /// graph): the k-hot actions `[samples, R, n]` and their exact log-probabilities
    /// `[samples, R]`, with the graph.
    ///
    /// # Errors
    /// Bad logits or `k`; libtorch errors.
    pub fn act(&self, logits: &Tensor, k: i64, samples: usize, rng: &mut dyn Rng) -> Result<(Tensor, Tensor)> {
        let policy = distribution(logits, k, self.normalizer)?;
        let actions = policy.sample(samples, self.sampler, rng)?;
        let log_probs = policy.log_prob_of_samples(&actions)?;
        Ok((actions, log_probs))
    }

    /// [`surrogate_loss`] with these options.
    ///
    /// # Errors
    /// As [`surrogate_loss`].
    pub fn surrogate_loss(&self, log_probs: &Tensor, rewards: &Tensor, alive: &Tensor) -> Result<Tensor> {
        surrogate_loss(log_probs, rewards, alive, &self.options)
    }
}

/// The weights `Ψ_t − b_t` of each step's score, `[S, R, T]`, not differentiable:
/// `rewards` and `alive` as in [`surrogate_loss`].
///
/// # Errors
/// As [`surrogate_loss`].
pub fn advantages(rewards: &Tensor, alive: &Tensor, options: &EpisodeOptions) -> Result<Tensor> {
    let shape = rewards.size();
    let [samples, _, steps] = shape[..] else {
        return Err(Error::EpisodeShape { what: "rewards", shape: shape.clone(), expected: vec![-1, -1, -1] });
    };
    if alive.size() != shape {
        return Err(Error::EpisodeShape { what: "alive", shape: alive.size(), expected: shape });
    }
    options.check()?;
    if options.leave_one_out && samples < 2 {
        return Err(Error::TooFewSamples { estimator: "sfess-vr", samples: samples.max(0) as usize, minimum: 2 });
    }
    let kind = rewards.kind();
    let discounts = Tensor::f_arange(steps, (kind, rewards.device()))?.f_mul_scalar(options.discount.ln())?.f_exp()?;
    // γ^t r_t on the steps the episode took.
    let discounted = rewards.f_detach()?.f_mul(&alive.f_to_kind(kind)?)?.f_mul(&discounts)?;
    let weights = if options.reward_to_go {
        // Σ_{t' ≥ t}: a cumulative sum from the last step back.
        discounted.f_flip([2])?.f_cumsum(2, None::<Kind>)?.f_flip([2])?
    } else {
        discounted.f_sum_dim_intlist(2, true, None::<Kind>)?.f_expand(&shape, false)?
    };
    if !options.leave_one_out {
        return Ok(weights);
    }
    let total = weights.f_sum_dim_intlist(0, true, None::<Kind>)?;
    let baselines = total.f_sub(&weights)?.f_div_scalar((samples - 1) as f64)?;
    Ok(weights.f_sub(&baselines)?)
}

/// The surrogate loss of episodes, whose gradient is minus the estimate of `∇J`
/// averaged over the `R` starts:
///
/// `∇ surrogate = −1/(S R) Σ_{s, r} Σ_t (Ψ_{s,r,t} − b_{s,r,t}) ∇ log p_θ(b_{s,r,t} | s_{s,r,t})`
///
/// and whose value is minus the mean discounted return.
/// - `log_probs` `[S, R, T]`: the exact log-probability of each step's action under the
///   policy, carrying the policy's graph (a step after the episode ended may hold
///   anything finite: it is masked);
/// - `rewards` `[S, R, T]`: each step's reward (no gradient is taken through it);
/// - `alive` `[S, R, T]`: 1 for the steps the episode took, 0 after it ended.
///
/// # Errors
/// Shapes that differ or are not `[S, R, T]`, a discount outside `(0, 1]`, fewer than 2
/// episodes per start for the leave-one-out baseline; libtorch errors.
pub fn surrogate_loss(
    log_probs: &Tensor,
    rewards: &Tensor,
    alive: &Tensor,
    options: &EpisodeOptions,
) -> Result<Tensor> {
    if log_probs.size() != rewards.size() {
        return Err(Error::EpisodeShape { what: "log_probs", shape: log_probs.size(), expected: rewards.size() });
    }
    let advantage = advantages(rewards, alive, options)?;
    let mask = alive.f_to_kind(log_probs.kind())?;
    let (samples, starts) = (rewards.size()[0], rewards.size()[1]);
    let per_episode = (samples * starts) as f64;
    // Σ_t (Ψ − b) (log p − stopgrad log p), masked, averaged over episodes: value 0.
    let centred = log_probs.f_sub(&log_probs.f_detach()?)?.f_mul(&mask)?;
    let score_term =
        advantage.f_to_kind(log_probs.kind())?.f_mul(&centred)?.f_sum(None::<Kind>)?.f_div_scalar(per_episode)?;
    let discounts = Tensor::f_arange(rewards.size()[2], (rewards.kind(), rewards.device()))?
        .f_mul_scalar(options.discount.ln())?
        .f_exp()?;
    let mean_return = rewards
        .f_detach()?
        .f_mul(&alive.f_to_kind(rewards.kind())?)?
        .f_mul(&discounts)?
        .f_sum(None::<Kind>)?
        .f_div_scalar(per_episode)?
        .f_to_kind(log_probs.kind())?;
    Ok(mean_return.f_add(&score_term)?.f_neg()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_episode_tensors_are_refused() {
        let ones = Tensor::ones([2, 3, 4], (Kind::Double, tch::Device::Cpu));
        let error = |r: Result<Tensor, Error>| r.unwrap_err().to_string();
        assert!(
            error(surrogate_loss(&ones, &ones.view([2, 12]), &ones, &EpisodeOptions::plain())).contains("log_probs")
        );
        assert!(error(surrogate_loss(&ones, &ones, &ones.get(0), &EpisodeOptions::plain())).contains("alive"));
        let one = Tensor::ones([1, 3, 4], (Kind::Double, tch::Device::Cpu));
        assert!(error(surrogate_loss(&one, &one, &one, &EpisodeOptions::leave_one_out())).contains("at least 2"));
        let far = EpisodeOptions { discount: 1.5, ..EpisodeOptions::plain() };
        assert!(error(surrogate_loss(&ones, &ones, &ones, &far)).contains("discount"));
    }
}
