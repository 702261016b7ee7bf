//! What a run folder holds (see [`crate::run`]): its files' names, the lines of
//! `metrics.jsonl` ([`Record`]) and `summary.json` ([`Summary`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The resolved configuration.
pub const CONFIG: &str = "config.json";
/// Metrics, one JSON object per line.
pub const METRICS: &str = "metrics.jsonl";
/// The checkpoint.
pub const CHECKPOINT: &str = "checkpoint.ot";
/// The summary of a complete run.
pub const SUMMARY: &str = "summary.json";
/// The marginals recorded at each validation (see [`crate::run::log`]).
pub const MARGINALS: &str = "marginals.jsonl";
/// The TensorBoard event file (TensorBoard reads any file whose name holds `tfevents`).
pub const EVENTS: &str = "events.out.tfevents.sfess-agent";
/// The figures `show` writes, in this folder of a run folder.
pub const FIGURES: &str = "figures";
/// Every file a run writes: a folder holding any of them holds a run.
const RUN_FILES: [&str; 6] = [CONFIG, METRICS, MARGINALS, EVENTS, CHECKPOINT, SUMMARY];

/// The first run file in `dir`, if it holds any.
pub fn run_file_in(dir: &Path) -> Option<&'static str> {
    RUN_FILES.into_iter().find(|name| dir.join(name).exists())
}

/// Steps between training-loss records (or `eval_every`, when it is fewer).
pub const LOSS_EVERY: u64 = 100;

/// The training record of the mean wall-clock seconds of a loss window's steps (what
/// `report` takes the median of).
pub const SECONDS_PER_STEP: &str = "seconds_per_step";

/// `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Environment.
    pub env: String,
    /// Estimator.
    pub estimator: String,
    /// Seed.
    pub seed: u64,
    /// Steps trained.
    pub steps: u64,
    /// Device the run trained on.
    pub device: String,
    /// Mean wall-clock seconds per training step (validation excluded), over every segment
    /// of the run.
    pub seconds_per_step: f64,
    /// Rows of one step's actions: the environment's own count, which is not `batch_size`
    /// where it differs (a `cmd` run without context scores one row per step; over
    /// episodes, the episodes started per step). Absent from older summaries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_per_step: Option<usize>,
    /// Samples drawn per row and step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples_per_row: Option<usize>,
    /// Reward evaluations per step: rows × samples, the subsets the environment scores (an
    /// episode counts once), as the reports' `curves-evaluations` count them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluations_per_step: Option<usize>,
    /// Test metrics.
    pub test: BTreeMap<String, f64>,
    /// The main test metric of untrained selections (random subsets, the task's classical
    /// method), for the black-box tasks.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub baselines: BTreeMap<String, f64>,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Training step after which it was measured.
    pub step: u64,
    /// `train`, `validation` or `test`.
    pub split: String,
    /// Metric name.
    pub metric: String,
    /// Value.
    pub value: f64,
    /// Seconds since the run started (training and evaluation, across resumptions).
    pub elapsed_seconds: f64,
}
