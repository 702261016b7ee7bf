//! Choosing a gradient estimator by name, with its options, and the paper's Table 1.

use std::fmt::Write as _;

use clap::{Args, ValueEnum};
use serde::Serialize;
use sfess_agents::{
    GradientEstimator, Imle, ImleNoise, Normalizer, Properties, RelaxedTopK, Sampler, ScoreFunction, Simple,
};

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

    /// Whether it trains on a black box: it needs no `∂f/∂z` (the score-function
    /// estimators), by the estimator's own properties.
    pub fn works_on_black_box(self) -> bool {
        build(self, &EstimatorOptions::default()).is_ok_and(|e| e.properties().non_differentiable_f)
    }

    /// The estimators that train on a black box, as `a or b` for messages.
    pub fn black_box_names() -> String {
        let names: Vec<&str> = Self::ALL.iter().filter(|n| n.works_on_black_box()).map(|n| n.as_str()).collect();
        names.join(" or ")
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

/// The estimator `name` with `options`.
///
/// # Errors
/// An out-of-range option (a non-positive temperature or λ).
pub fn build(name: EstimatorName, options: &EstimatorOptions) -> anyhow::Result<Box<dyn GradientEstimator>> {
    let sampler = options.sampler.into();
    let normalizer = options.normalizer.fixed();
    let score_function = |estimator: ScoreFunction| match normalizer {
        Some(normalizer) => estimator.with_normalizer(normalizer),
        None => estimator,
    };
    Ok(match name {
        EstimatorName::SfessVr => Box::new(score_function(ScoreFunction::leave_one_out(sampler))),
        EstimatorName::Sfess => Box::new(score_function(ScoreFunction::plain(sampler))),
        EstimatorName::Simple => Box::new(match normalizer {
            Some(normalizer) => Simple::new().with_normalizer(normalizer),
            None => Simple::new(),
        }),
        EstimatorName::Gs => Box::new(RelaxedTopK::new(options.temperature, false)?),
        EstimatorName::Stgs => Box::new(RelaxedTopK::new(options.temperature, true)?),
        EstimatorName::Imle => {
            let noise = match options.imle_noise {
                ImleNoiseName::Gumbel => ImleNoise::Gumbel,
                ImleNoiseName::SumOfGamma => ImleNoise::SumOfGamma { steps: 10 },
            };
            Box::new(Imle::new(options.imle_lambda, options.imle_temperature, noise)?)
        }
    })
}

/// The paper's Table 1 as it reads there, for comparison: (name, properties).
fn paper_table() -> [(EstimatorName, Properties); 5] {
    let row = |exact_samples, unbiased, non_differentiable_f, tuning_free| Properties {
        exact_samples,
        unbiased,
        non_differentiable_f,
        tuning_free,
    };
    [
        (EstimatorName::Gs, row(false, true, false, false)),
        (EstimatorName::Stgs, row(true, false, false, false)),
        (EstimatorName::Imle, row(false, false, true, false)),
        (EstimatorName::Simple, row(true, false, false, true)),
        (EstimatorName::SfessVr, row(true, true, true, true)),
    ]
}

/// Table 1 for our estimators, as Markdown, with where it differs from the paper's.
pub fn properties_table(options: &EstimatorOptions) -> anyhow::Result<String> {
    let mark = |b: bool| if b { "✓" } else { "✗" };
    let mut out = String::from(
        "| estimator | exact samples | unbiased | allows non-differentiable f | tuning-free |\n|---|:-:|:-:|:-:|:-:|\n",
    );
    let mut notes = Vec::new();
    for name in EstimatorName::ALL {
        let p = build(name, options)?.properties();
        writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            name.as_str(),
            mark(p.exact_samples),
            mark(p.unbiased),
            mark(p.non_differentiable_f),
            mark(p.tuning_free)
        )?;
        if let Some((_, paper)) = paper_table().into_iter().find(|(n, _)| *n == name)
            && paper != p
        {
            notes.push(name);
        }
    }
    let sampler = match options.sampler {
        SamplerName::Exact => "exact conditional Poisson samples",
        SamplerName::GumbelTopK => "Gumbel top-k samples (--sampler gumbel-topk), as the paper's code",
    };
    writeln!(
        out,
        "\n'exact samples' means k-hot samples of the conditional Poisson law itself; sfess and sfess-vr here use {sampler}."
    )?;
    for name in notes {
        let why = match name {
            EstimatorName::Gs => {
                "the paper marks GS unbiased; its gradient is unbiased for the relaxed objective, not for E[f(z)] over k-subsets"
            }
            EstimatorName::Imle => {
                "the paper marks I-MLE as allowing a non-differentiable f; its backward needs ∂f/∂z, so here it refuses black-box losses"
            }
            EstimatorName::SfessVr => {
                "the paper's SFESS + VR samples Gumbel top-k: not exact samples, and biased in practice (its conclusion says so)"
            }
            EstimatorName::Stgs => {
                "its forward is k-hot (the paper's ✓), but those are Gumbel top-k draws, not samples of the conditional Poisson law"
            }
            _ => "differs from the paper's table",
        };
        writeln!(out, "- {}: {why}.", name.as_str())?;
    }
    Ok(out)
}
