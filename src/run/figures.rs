//! What a run learned, as pictures and as data, in `RUN/figures/` (drawn when a run
//! completes, by `sfess-agent show` and by [`crate::agent::Agent::write_run_folder`]).
//!
//! From the experiment at its checkpoint and the held-out data (never from training batches):
//! - the environment's own figures ([`sfess_envs::Environment::pictures`]): `embedding`
//!   (k-NN), `mask` and `reconstructions` (feature selection), `masked-inputs` (k-NN feature
//!   selection), `reconstructions` and `samples` (subset VAE), `mask` and `sensors` (sensor
//!   placement);
//! - for every run, from its records: `curve` (the training loss and the validation metric
//!   against steps, with the untrained selections' validation metric dashed) and `marginals`
//!   (the policy's inclusion probabilities at each validation, from `marginals.jsonl`);
//! - `subset.json`: the top-k items and the marginals on the test split, one row for free
//!   logits, or per held-out row for a contextual policy:
//!   `{"env", "estimator", "seed", "step", "n", "k", "contextual", "rows": [{"top_k", "marginals"}]}`.
//!
//! Each figure is an `.svg` and a `.png`, each written atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sfess_envs::Phase;

use crate::config::TrainConfig;
use crate::plot::pictures::{MarginalsMap, curve_panels, marginals_map, picture};
use crate::plot::{Curve, CurvePanel};
use crate::run::folder::{FIGURES, METRICS, Record};
use crate::run::log::{MARGINALS, MarginalsRecord, read_records};
use crate::train::experiment::{Experiment, HELD_OUT_ROWS};

/// The name of the data file `show` writes beside the figures.
pub const SUBSET: &str = "subset.json";

/// Items named one by one on the marginals map's axis, at most (more are ordered by their
/// final probability instead).
const NAMED_ITEMS: usize = 40;

/// `subset.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubsetFile {
    /// Environment.
    pub env: String,
    /// Estimator.
    pub estimator: String,
    /// Seed.
    pub seed: u64,
    /// The checkpoint's step.
    pub step: u64,
    /// Items.
    pub n: usize,
    /// Subset size.
    pub k: usize,
    /// Whether the policy reads the observation; if so, `rows` are the first rows of the
    /// test split's held-out observation (at most 64), else one row for every observation.
    pub contextual: bool,
    /// Per row: the top-k items (ascending) and `P(z_i = 1)` of each item.
    pub rows: Vec<SubsetRow>,
}

/// One row of `subset.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubsetRow {
    /// The top-k items, ascending.
    pub top_k: Vec<usize>,
    /// The inclusion probability of each item.
    pub marginals: Vec<f64>,
}

/// What the figures' titles and `subset.json` say a run is.
#[derive(Debug, Clone, Copy)]
pub struct RunName<'a> {
    /// The environment's name in tables.
    pub env: &'a str,
    /// The estimator.
    pub estimator: &'a str,
    /// The seed.
    pub seed: u64,
}

impl<'a> RunName<'a> {
    /// The name of a run of `config`.
    pub fn of(config: &'a TrainConfig) -> Self {
        Self { env: config.label(), estimator: config.estimator.as_str(), seed: config.seed }
    }
}

/// Writes the figures and `subset.json` of the run in `dir` whose `experiment` stands at
/// `step`, into `dir/figures/`; returns the files written.
///
/// # Errors
/// The environment or the policy fails; a figure cannot be written.
pub fn write_figures(
    dir: &Path,
    experiment: &mut Experiment,
    run: &RunName<'_>,
    step: u64,
) -> anyhow::Result<Vec<PathBuf>> {
    let baselines = experiment.env.baselines(Phase::Validation)?;
    write_figures_with(dir, experiment, run, step, &baselines)
}

/// [`write_figures`], with the untrained selections' validation values `baselines` (the
/// environment's `baselines(Phase::Validation)`) already measured by the caller.
///
/// # Errors
/// As [`write_figures`].
pub fn write_figures_with(
    dir: &Path,
    experiment: &mut Experiment,
    run: &RunName<'_>,
    step: u64,
    baselines: &BTreeMap<String, f64>,
) -> anyhow::Result<Vec<PathBuf>> {
    let figures = dir.join(FIGURES);
    std::fs::create_dir_all(&figures).with_context(|| format!("creating {}", figures.display()))?;
    let mut written = Vec::new();
    let _guard = tch::no_grad_guard();
    for one in experiment.env.pictures(experiment.policy.as_ref())? {
        written.extend(picture(&figures, &one).with_context(|| format!("drawing {}", one.name))?);
    }
    let spec = experiment.env.spec().clone();
    written.extend(record_figures(dir, run, &spec.metric, spec.higher_is_better, baselines)?);
    if let Some(choice) = experiment.held_out_choice(Phase::Test)? {
        let subset = SubsetFile {
            env: run.env.to_owned(),
            estimator: run.estimator.to_owned(),
            seed: run.seed,
            step,
            n: spec.space.n(),
            k: spec.space.k(),
            contextual: choice.contextual,
            rows: choice
                .top_k
                .into_iter()
                .zip(choice.marginals)
                .map(|(top_k, marginals)| SubsetRow { top_k, marginals })
                .collect(),
        };
        let path = figures.join(SUBSET);
        crate::system::files::write_atomically(&path, (serde_json::to_string(&subset)? + "\n").as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

/// The figures drawn from a run's records alone, into `dir/figures/`: `curve` (from
/// `metrics.jsonl`, the validation `metric` against steps, with the untrained selections'
/// validation values `baselines` dashed) and `marginals` (from `marginals.jsonl`); returns the
/// files written. What needs no environment: `show` redraws an Agent's run with it.
///
/// # Errors
/// Records that cannot be read; a figure that cannot be written.
pub fn record_figures(
    dir: &Path,
    run: &RunName<'_>,
    metric: &str,
    higher_is_better: bool,
    baselines: &BTreeMap<String, f64>,
) -> anyhow::Result<Vec<PathBuf>> {
    let figures = dir.join(FIGURES);
    std::fs::create_dir_all(&figures).with_context(|| format!("creating {}", figures.display()))?;
    let mut written = Vec::new();
    let label = format!("{} with {}, seed {}", run.env, run.estimator, run.seed);
    let records: Vec<Record> = read_records(&dir.join(METRICS), "metrics")?;
    if let Some(panels) = learning_curve(&records, metric, higher_is_better, baselines) {
        let stem = figures.join("curve");
        let panels: Vec<CurvePanel> = panels
            .into_iter()
            .map(|mut panel| {
                panel.title = format!("{label}: {}", panel.title);
                panel
            })
            .collect();
        written.extend(curve_panels(&stem, &panels)?);
    }
    let marginals: Vec<MarginalsRecord> = read_records(&dir.join(MARGINALS), "marginals")?;
    if let Some(map) = marginals_over_training(&marginals, &format!("{label}: the policy's inclusion probabilities")) {
        written.extend(marginals_map(&figures.join("marginals"), &map)?);
    }
    Ok(written)
}

/// The learning curve's panels: the training loss (when recorded) and the validation
/// `metric` against steps, the latter with the untrained selections' validation values as
/// dashed lines. `None` before any validation.
pub fn learning_curve(
    records: &[Record],
    metric: &str,
    higher_is_better: bool,
    baselines: &BTreeMap<String, f64>,
) -> Option<Vec<CurvePanel>> {
    let series = |split: &str, name: &str| -> Vec<(f64, f64, f64)> {
        records.iter().filter(|r| r.split == split && r.metric == name).map(|r| (r.step as f64, r.value, 0.0)).collect()
    };
    let validation = series("validation", metric);
    if validation.is_empty() {
        return None;
    }
    let mut panels = Vec::new();
    let loss = series("train", "loss");
    if !loss.is_empty() {
        panels.push(CurvePanel {
            title: "training loss".to_owned(),
            x_label: "training step".to_owned(),
            y_label: "mean loss over the window of steps".to_owned(),
            log_y: CurvePanel::spans_decades(loss.iter().map(|p| p.1)),
            curves: vec![Curve { name: "training loss".to_owned(), points: loss }],
            baselines: Vec::new(),
        });
    }
    let better = if higher_is_better { "higher is better" } else { "lower is better" };
    panels.push(CurvePanel {
        title: format!("validation {metric}"),
        x_label: "training step".to_owned(),
        y_label: format!("validation {metric} ({better})"),
        log_y: CurvePanel::spans_decades(validation.iter().map(|p| p.1).chain(baselines.values().copied())),
        curves: vec![Curve { name: "top-k of the policy".to_owned(), points: validation }],
        baselines: baselines.iter().map(|(name, value)| (name.clone(), *value)).collect(),
    });
    Some(panels)
}

/// The heat map of the recorded marginals: items by index for free logits over few items,
/// else in decreasing order of their last value; ranks for a contextual policy. `None`
/// when nothing was recorded.
pub fn marginals_over_training(records: &[MarginalsRecord], title: &str) -> Option<MarginalsMap> {
    let last = records.last()?;
    let n = last.marginals.len();
    let records: Vec<&MarginalsRecord> = records.iter().filter(|r| r.marginals.len() == n).collect();
    if n == 0 {
        return None;
    }
    let (order, y_label, row_labels): (Vec<usize>, String, Vec<(usize, String)>) = if last.ranked {
        let label = format!("items ranked in each row, most probable first (mean of {HELD_OUT_ROWS} held-out rows)");
        let names = if n <= NAMED_ITEMS { (0..n).map(|i| (i, (i + 1).to_string())).collect() } else { Vec::new() };
        ((0..n).collect(), label, names)
    } else if n <= NAMED_ITEMS {
        ((0..n).collect(), "item".to_owned(), (0..n).map(|i| (i, i.to_string())).collect())
    } else {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| last.marginals[b].total_cmp(&last.marginals[a]));
        (order, "items, by their final inclusion probability".to_owned(), Vec::new())
    };
    let rows = order.iter().map(|&i| records.iter().map(|r| f64::from(r.marginals[i])).collect()).collect();
    Some(MarginalsMap {
        title: title.to_owned(),
        y_label,
        steps: records.iter().map(|r| r.step).collect(),
        rows,
        row_labels,
    })
}
