//! Building a gradient estimator from its name and options ([`crate::config::estimators`]),
//! which of them train on a black box, and the paper's Table 1.

use std::fmt::Write as _;

use sfess_agents::{GradientEstimator, Properties, Sampler};

use crate::config::estimators::{EstimatorName, EstimatorOptions};

/// Whether `name` trains on a black box: it needs no `∂f/∂z` (the score-function
/// estimators), by the estimator's own properties.
pub fn works_on_black_box(name: EstimatorName) -> bool {
    properties(name, &EstimatorOptions::default()).is_ok_and(|p| p.non_differentiable_f)
}

/// The estimators that train on a black box, as `a or b` for messages.
pub fn black_box_names() -> String {
    let names: Vec<&str> = EstimatorName::ALL.iter().filter(|n| works_on_black_box(**n)).map(|n| n.as_str()).collect();
    names.join(" or ")
}

/// The estimator `name` with `options` (each estimator takes its own options:
/// [`EstimatorOptions`]'s methods).
///
/// # Errors
/// An out-of-range option (a non-positive temperature or λ).
pub fn build(name: EstimatorName, options: &EstimatorOptions) -> anyhow::Result<Box<dyn GradientEstimator>> {
    Ok(match name {
        EstimatorName::SfessVr => Box::new(options.score_function(true)),
        EstimatorName::Sfess => Box::new(options.score_function(false)),
        EstimatorName::Simple => Box::new(options.simple()),
        EstimatorName::Gs => Box::new(options.relaxed_top_k(false)?),
        EstimatorName::Stgs => Box::new(options.relaxed_top_k(true)?),
        EstimatorName::Imle => Box::new(options.imle()?),
    })
}

/// The properties of the estimator `name` with `options` (Table 1's columns), from the
/// estimator's own [`GradientEstimator::properties`] but without boxing it: a program that
/// prints the table (the `sfess-agent` binary's `estimators`) links none of the gradients'
/// code, nor libtorch.
///
/// # Errors
/// As [`build`].
pub fn properties(name: EstimatorName, options: &EstimatorOptions) -> anyhow::Result<Properties> {
    Ok(match name {
        EstimatorName::SfessVr => options.score_function(true).properties(),
        EstimatorName::Sfess => options.score_function(false).properties(),
        EstimatorName::Simple => options.simple().properties(),
        EstimatorName::Gs => options.relaxed_top_k(false)?.properties(),
        EstimatorName::Stgs => options.relaxed_top_k(true)?.properties(),
        EstimatorName::Imle => options.imle()?.properties(),
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
        let p = properties(name, options)?;
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
        Sampler::Exact => "exact conditional Poisson samples",
        Sampler::GumbelTopK => "Gumbel top-k samples (--sampler gumbel-topk), as the paper's code",
        other => other.name(),
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
