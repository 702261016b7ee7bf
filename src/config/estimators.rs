//! The gradient estimators by name ([`EstimatorName`]) and their options
//! ([`EstimatorOptions`]: one type for the command line's flags and `config.json`'s
//! `estimator_options`), each option handed to its estimator here;
//! [`crate::train::estimators::build`] chooses the estimator.
//!
//! A new option is a field of [`EstimatorOptions`] (its flag, its default in [`DEFAULTS`],
//! its range in [`EstimatorOptions::check`]) given to its estimator by the method below that
//! builds it: this file and the estimator's own.

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use sfess_agents::{Imle, ImleNoise, Normalizer, RelaxedTopK, Sampler, ScoreFunction, Simple};

/// The estimators, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EstimatorName {
    /// SFESS + VR: score function with the leave-one-out baseline (paper Eq. 7).
    SfessVr,
    /// SFESS: score function without a baseline (paper Eq. 4).
    Sfess,
    /// SIMPLE: exact samples, backward through the exact marginals.
    Simple,
    /// GS: relaxed top-k with Gumbel noise.
    Gs,
    /// STGS: straight-through relaxed top-k.
    Stgs,
    /// I-MLE: perturb-and-MAP with implicit differentiation.
    Imle,
}

impl EstimatorName {
    /// All of them, in the order the paper's tables list them.
    pub const ALL: [EstimatorName; 6] = [
        EstimatorName::SfessVr,
        EstimatorName::Sfess,
        EstimatorName::Simple,
        EstimatorName::Gs,
        EstimatorName::Stgs,
        EstimatorName::Imle,
    ];

    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            EstimatorName::SfessVr => "sfess-vr",
            EstimatorName::Sfess => "sfess",
            EstimatorName::Simple => "simple",
            EstimatorName::Gs => "gs",
            EstimatorName::Stgs => "stgs",
            EstimatorName::Imle => "imle",
        }
    }
}

/// `--imle-noise`: I-MLE's perturbation ([`ImleNoise`]), by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImleNoiseName {
    /// Standard Gumbel noise.
    Gumbel,
    /// Sum-of-Gamma noise with 10 terms (Niepert et al. 2021).
    SumOfGamma,
}

impl ImleNoiseName {
    /// The perturbation it names.
    pub fn noise(self) -> ImleNoise {
        match self {
            ImleNoiseName::Gumbel => ImleNoise::Gumbel,
            ImleNoiseName::SumOfGamma => ImleNoise::SumOfGamma { steps: 10 },
        }
    }
}

/// The estimators' options, shared by every command that builds estimators and stored in a
/// run's `config.json` (`estimator_options`, each key optional: a key left out takes its
/// default). `train` and `compare` apply only the flags given on top of a `--config` file
/// (see [`crate::commands::task_options`]).
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EstimatorOptions {
    /// Sampler of sfess and sfess-vr: exact (unbiased) or gumbel-topk (the paper's code).
    #[arg(long, value_enum, default_value_t = DEFAULTS.sampler)]
    pub sampler: Sampler,
    /// Relaxation temperature τ of gs and stgs (the paper's choice).
    #[arg(long, default_value_t = DEFAULTS.temperature)]
    pub temperature: f64,
    /// Step λ of I-MLE's target distribution θ' = θ − λ ∂f/∂z.
    #[arg(long, default_value_t = DEFAULTS.imle_lambda)]
    pub imle_lambda: f64,
    /// Noise temperature of I-MLE, for the input and the target (the paper's 1.0).
    #[arg(long, default_value_t = DEFAULTS.imle_temperature)]
    pub imle_temperature: f64,
    /// Perturbation of I-MLE.
    #[arg(long, value_enum, default_value_t = DEFAULTS.imle_noise)]
    pub imle_noise: ImleNoiseName,
    /// Backend of the k-subset law for sfess, sfess-vr and simple (auto: stable on the CPU,
    /// parallel on CUDA).
    #[arg(long, value_enum, default_value_t = DEFAULTS.normalizer)]
    pub normalizer: Normalizer,
    /// Over episodes: weight each step's score by the rewards from that step on (reward-to-go)
    /// instead of the whole return.
    #[arg(
        long,
        num_args = 0..=1,
        default_value_t = DEFAULTS.reward_to_go,
        default_missing_value = "true",
        value_name = "BOOL",
        action = clap::ArgAction::Set
    )]
    pub reward_to_go: bool,
    /// Over episodes: the discount γ in (0, 1] of the return the policy maximises.
    #[arg(long, default_value_t = DEFAULTS.discount)]
    pub discount: f64,
}

/// Every option's default: the paper's settings.
pub const DEFAULTS: EstimatorOptions = EstimatorOptions {
    sampler: Sampler::Exact,
    temperature: 0.5,
    imle_lambda: 10.0,
    imle_temperature: 1.0,
    imle_noise: ImleNoiseName::SumOfGamma,
    normalizer: Normalizer::Auto,
    reward_to_go: false,
    discount: 1.0,
};

impl Default for EstimatorOptions {
    fn default() -> Self {
        DEFAULTS
    }
}

impl EstimatorOptions {
    /// Checks each option's range before anything starts.
    ///
    /// # Errors
    /// The first option out of range, naming its flag.
    pub fn check(&self) -> anyhow::Result<()> {
        for (flag, value) in [("--temperature", self.temperature), ("--imle-lambda", self.imle_lambda)] {
            anyhow::ensure!(value.is_finite() && value > 0.0, "{flag} must be positive and finite, got {value}");
        }
        anyhow::ensure!(
            self.discount > 0.0 && self.discount <= 1.0,
            "--discount must be in (0, 1], got {}",
            self.discount
        );
        anyhow::ensure!(
            self.imle_temperature.is_finite() && self.imle_temperature >= 0.0,
            "--imle-temperature must be non-negative and finite, got {}",
            self.imle_temperature
        );
        Ok(())
    }

    /// SFESS, or with the leave-one-out baseline SFESS + VR, with `--sampler` and
    /// `--normalizer`.
    pub fn score_function(&self, leave_one_out: bool) -> ScoreFunction {
        let estimator =
            if leave_one_out { ScoreFunction::leave_one_out(self.sampler) } else { ScoreFunction::plain(self.sampler) };
        estimator.with_normalizer(self.normalizer)
    }

    /// SIMPLE with `--normalizer`.
    pub fn simple(&self) -> Simple {
        Simple::new().with_normalizer(self.normalizer)
    }

    /// GS, or straight-through STGS, at `--temperature`.
    ///
    /// # Errors
    /// A temperature that is not positive and finite.
    pub fn relaxed_top_k(&self, straight_through: bool) -> anyhow::Result<RelaxedTopK> {
        Ok(RelaxedTopK::new(self.temperature, straight_through)?)
    }

    /// I-MLE with `--imle-lambda`, `--imle-temperature` and `--imle-noise`.
    ///
    /// # Errors
    /// A λ or a temperature out of range.
    pub fn imle(&self) -> anyhow::Result<Imle> {
        Ok(Imle::new(self.imle_lambda, self.imle_temperature, self.imle_noise.noise())?)
    }
}
