//! The gradient estimators by name, with their options, as a configuration gives them
//! (the estimators themselves are built by [`crate::train::estimators::build`]).

use clap::{Args, ValueEnum};
use serde::Serialize;
use sfess_agents::{Normalizer, Sampler};

/// The estimators, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, Serialize, serde::Deserialize)]
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

/// `--sampler` for the score-function estimators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerName {
    /// Exact conditional Poisson samples: unbiased.
    Exact,
    /// Gumbel top-k, as the paper's code (biased).
    #[value(name = "gumbel-topk")]
    #[serde(rename = "gumbel-topk")]
    GumbelTopK,
}

impl From<SamplerName> for Sampler {
    fn from(value: SamplerName) -> Self {
        match value {
            SamplerName::Exact => Sampler::Exact,
            SamplerName::GumbelTopK => Sampler::GumbelTopK,
        }
    }
}

/// `--normalizer`: the backend of the k-subset law (see [`Normalizer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NormalizerName {
    /// The device's default: stable on the CPU, parallel on CUDA.
    #[default]
    Auto,
    /// Stable tilted dynamic programme on the host (exact to rounding).
    Stable,
    /// Product tree as tensor operations on the logits' device (exact to rounding).
    Parallel,
    /// The paper's f64 DFT (fails when P(sum b = k) is tiny; for comparison).
    Dft,
    /// The paper code's complex64 DFT (for reproducing published numbers only).
    #[value(name = "paper-complex64")]
    #[serde(rename = "paper-complex64")]
    PaperComplex64,
}

impl NormalizerName {
    /// The backend it names, or `None` for `auto` (each device's default).
    pub fn fixed(self) -> Option<Normalizer> {
        match self {
            NormalizerName::Auto => None,
            NormalizerName::Stable => Some(Normalizer::Stable),
            NormalizerName::Parallel => Some(Normalizer::Parallel),
            NormalizerName::Dft => Some(Normalizer::Dft),
            NormalizerName::PaperComplex64 => Some(Normalizer::PaperComplex64),
        }
    }

    /// The backend for logits on `device`.
    pub fn resolve(self, device: tch::Device) -> Normalizer {
        self.fixed().unwrap_or_else(|| Normalizer::default_for(device))
    }
}

/// `--imle-noise`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImleNoiseName {
    /// Standard Gumbel noise.
    Gumbel,
    /// Sum-of-Gamma noise with 10 terms (Niepert et al. 2021).
    SumOfGamma,
}

/// The estimators' options, shared by every command that builds estimators.
#[derive(Debug, Clone, Args, Serialize)]
pub struct EstimatorOptions {
    /// Sampler of sfess and sfess-vr: exact (unbiased) or gumbel-topk (the paper's code).
    #[arg(long, value_enum, default_value_t = SamplerName::Exact)]
    pub sampler: SamplerName,
    /// Relaxation temperature τ of gs and stgs (the paper's choice).
    #[arg(long, default_value_t = 0.5)]
    pub temperature: f64,
    /// Step λ of I-MLE's target distribution θ' = θ − λ ∂f/∂z.
    #[arg(long, default_value_t = 10.0)]
    pub imle_lambda: f64,
    /// Noise temperature of I-MLE, for the input and the target (the paper's 1.0).
    #[arg(long, default_value_t = 1.0)]
    pub imle_temperature: f64,
    /// Perturbation of I-MLE.
    #[arg(long, value_enum, default_value_t = ImleNoiseName::SumOfGamma)]
    pub imle_noise: ImleNoiseName,
    /// Backend of the k-subset law for sfess, sfess-vr and simple (auto: stable on the CPU,
    /// parallel on CUDA).
    #[arg(long, value_enum, default_value_t = NormalizerName::Auto)]
    pub normalizer: NormalizerName,
    /// Over episodes: weight each step's score by the rewards from that step on (reward-to-go)
    /// instead of the whole return.
    #[arg(long)]
    pub reward_to_go: bool,
    /// Over episodes: the discount γ in (0, 1] of the return the policy maximises.
    #[arg(long, default_value_t = 1.0)]
    pub discount: f64,
}

impl Default for EstimatorOptions {
    fn default() -> Self {
        Self {
            sampler: SamplerName::Exact,
            temperature: 0.5,
            imle_lambda: 10.0,
            imle_temperature: 1.0,
            imle_noise: ImleNoiseName::SumOfGamma,
            normalizer: NormalizerName::Auto,
            reward_to_go: false,
            discount: 1.0,
        }
    }
}
