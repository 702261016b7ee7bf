//! What a run records as it goes, in three files appended together:
//! - `metrics.jsonl`: one [`Record`] per line (see [`crate::run`]);
//! - `marginals.jsonl`: one [`MarginalsRecord`] per validation, the policy's inclusion
//!   probabilities on held-out data (what `show`'s heat map draws);
//! - `events.out.tfevents.sfess-agent`: the same as TensorBoard events (`tensorboard --logdir
//!   runs`): every record as the scalar `SPLIT/METRIC`, the step rate as
//!   `train/steps_per_second`, and the marginals as the histogram `validation/marginals`.
//!
//! The event file is a function of the two others and of the time the run started (its
//! first record's wall time): an event's wall time is that start plus the record's
//! `elapsed_seconds`. When a run resumes, the JSON lines are cut back to the checkpoint
//! ([`kept_on_resume`]) and the event file is rebuilt from what is kept: cut to that length
//! when it begins with the same bytes (so a TensorBoard reading it sees no change), else
//! rewritten whole. No step is ever recorded twice.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sfess_tensorboard::{Event, Histogram, Value};

use crate::config::TrainConfig;
use crate::run::checkpoint::Progress;
pub use crate::run::folder::{EVENTS, MARGINALS};
use crate::run::folder::{LOSS_EVERY, METRICS, Record, SECONDS_PER_STEP};
use crate::system::files::{open_for_writing, read_or_empty, write_atomically};

/// The right edges of the marginals histogram's buckets: 50 of width 0.02 over `[0, 1]`
/// (a bucket holds `[left, right)`; the last edge is just above 1, so that 1 falls in it).
fn marginal_buckets() -> Vec<f64> {
    (1..=50).map(|i| if i == 50 { 1.0 + 1e-9 } else { f64::from(i) / 50.0 }).collect()
}

/// One line of `marginals.jsonl`: the policy's inclusion probabilities `P(z_i = 1)` at a
/// validation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MarginalsRecord {
    /// Training step after which they were measured.
    pub step: u64,
    /// `false`: one value per item `i` (free logits: the same law for every observation).
    /// `true` (a contextual policy): the `r`-th value is the mean over held-out rows of
    /// each row's `r`-th largest marginal, so that it shows how concentrated the law is.
    pub ranked: bool,
    /// The values, `n` of them.
    pub marginals: Vec<f32>,
    /// Seconds since the run started, as in the metrics.
    pub elapsed_seconds: f64,
}

/// Whether a record of step `step` and split `split` written before a stop is one that an
/// uninterrupted run had written by the checkpoint `progress` of a run of `config`: every
/// record of an earlier step, and of the checkpoint's own step those on the schedule
/// (a cut-short loss window, a validation off the schedule and the test are written only
/// at the end of a run, which an extended run no longer is).
pub fn kept_on_resume(step: u64, split: &str, config: &TrainConfig, progress: &Progress) -> bool {
    let at = progress.step;
    let last = at == config.steps;
    let on_schedule = |every: u64| last || at.is_multiple_of(every);
    step < at
        || (step == at
            && ((split == "train" && on_schedule(LOSS_EVERY.min(config.eval_every)))
                || (split == "validation" && !progress.validation_due && on_schedule(config.eval_every))))
}

/// The three record files of a run, open for appending.
pub struct RunLog {
    metrics: JsonLines,
    marginals: JsonLines,
    events: EventFile,
}

impl RunLog {
    /// Opens the records of `dir` for a run of `config` standing at `progress`: the
    /// records an uninterrupted run had written by then are kept, the later ones dropped
    /// (as is a last line cut short by a crash), and the event file made to match.
    ///
    /// # Errors
    /// A line before the last that is not a record (the file was edited or damaged); I/O
    /// errors.
    pub fn open(dir: &Path, config: &TrainConfig, progress: &Progress) -> anyhow::Result<Self> {
        let (metrics, kept_metrics) = JsonLines::open(&dir.join(METRICS), "metrics", |r: &Record| {
            kept_on_resume(r.step, &r.split, config, progress)
        })?;
        let (marginals, kept_marginals) = JsonLines::open(&dir.join(MARGINALS), "marginals", |r: &MarginalsRecord| {
            kept_on_resume(r.step, "validation", config, progress)
        })?;
        let events = EventFile::open(&dir.join(EVENTS), &kept_metrics, &kept_marginals, progress.elapsed_seconds)?;
        Ok(Self { metrics, marginals, events })
    }

    /// Records one batch of metrics of `split` at `step` (one line per metric).
    ///
    /// # Errors
    /// A value that is not finite; a write that fails (a full disk): the files are cut
    /// back to their last whole batch and the error names the file and the step.
    pub fn append(
        &mut self,
        step: u64,
        split: &str,
        metrics: &BTreeMap<String, f64>,
        elapsed: f64,
    ) -> anyhow::Result<()> {
        let mut batch = Vec::new();
        for (metric, value) in metrics {
            anyhow::ensure!(value.is_finite(), "the {split} {metric} at step {step} is {value}");
            batch.push(Record {
                step,
                split: split.into(),
                metric: metric.clone(),
                value: *value,
                elapsed_seconds: elapsed,
            });
        }
        self.metrics.append(&batch, step)?;
        self.events.append(&metrics_event(self.events.started, &batch), step)
    }

    /// Records the marginals of a validation (after its metrics).
    ///
    /// # Errors
    /// As [`RunLog::append`].
    pub fn append_marginals(&mut self, record: &MarginalsRecord) -> anyhow::Result<()> {
        self.marginals.append(std::slice::from_ref(record), record.step)?;
        self.events.append(&marginals_event(self.events.started, record), record.step)
    }
}

/// A file of JSON lines, appended a batch at a time; a failed append is cut back to the
/// last whole batch.
struct JsonLines {
    file: std::fs::File,
    path: PathBuf,
    /// The length of the file up to its last whole batch.
    length: u64,
}

impl JsonLines {
    /// Opens `path` (created if missing), keeping the lines that parse as `T` and pass
    /// `keep`; a last line cut short is dropped. Returns the kept lines too.
    fn open<T: DeserializeOwned>(path: &Path, what: &str, keep: impl Fn(&T) -> bool) -> anyhow::Result<(Self, Vec<T>)> {
        let text = read_or_empty(path)?;
        let (mut kept_text, mut kept) = (String::new(), Vec::new());
        for (index, line) in text.split_inclusive('\n').enumerate() {
            if !line.ends_with('\n') {
                break; // The last line, cut short: it belongs to the records after the checkpoint.
            }
            let record: T = serde_json::from_str(line).with_context(|| {
                format!("{} line {} is not a {what} record; fix or remove that line", path.display(), index + 1)
            })?;
            if keep(&record) {
                kept_text += line;
                kept.push(record);
            }
        }
        if kept_text.len() != text.len() {
            write_atomically(path, kept_text.as_bytes())?;
        }
        let file = open_append(path)?;
        Ok((Self { file, path: path.to_owned(), length: kept_text.len() as u64 }, kept))
    }

    fn append<T: Serialize>(&mut self, batch: &[T], step: u64) -> anyhow::Result<()> {
        append_whole(&mut self.file, &mut self.length, &self.path, json_lines(batch)?.as_bytes(), step)
    }
}

/// `records` as JSON lines, each ended by `\n`.
///
/// # Errors
/// A record that does not serialise.
pub(crate) fn json_lines<T: Serialize>(records: &[T]) -> anyhow::Result<String> {
    let mut text = String::new();
    for record in records {
        text += &(serde_json::to_string(record)? + "\n");
    }
    Ok(text)
}

/// The run's TensorBoard event file.
struct EventFile {
    file: std::fs::File,
    path: PathBuf,
    length: u64,
    /// The wall time (Unix seconds) the run started.
    started: f64,
}

impl EventFile {
    /// Makes `path` hold exactly the events of the kept records, `elapsed` seconds into the
    /// run, and opens it for appending.
    fn open(path: &Path, metrics: &[Record], marginals: &[MarginalsRecord], elapsed: f64) -> anyhow::Result<Self> {
        let existing = match crate::system::files::read_bytes(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let started = sfess_tensorboard::header_wall_time(&existing).unwrap_or_else(|| unix_now() - elapsed);
        let expected = events_of(started, metrics, marginals);
        if existing.starts_with(&expected) {
            if existing.len() != expected.len() {
                let file = open_for_writing(path, std::fs::OpenOptions::new().write(true))?;
                file.set_len(expected.len() as u64).with_context(|| format!("cutting back {}", path.display()))?;
            }
        } else {
            write_atomically(path, &expected)?;
        }
        let file = open_append(path)?;
        Ok(Self { file, path: path.to_owned(), length: expected.len() as u64, started })
    }

    fn append(&mut self, bytes: &[u8], step: u64) -> anyhow::Result<()> {
        append_whole(&mut self.file, &mut self.length, &self.path, bytes, step)
    }
}

/// The whole event file of a run started at `started` with these records: the header, then
/// one event per batch of metrics, each validation's followed by its marginals.
pub(crate) fn events_of(started: f64, metrics: &[Record], marginals: &[MarginalsRecord]) -> Vec<u8> {
    let mut bytes = sfess_tensorboard::file_header(started);
    let mut pending = marginals.iter().peekable();
    for batch in metrics.chunk_by(|a, b| a.step == b.step && a.split == b.split) {
        bytes.extend(metrics_event(started, batch));
        if batch[0].split == "validation" {
            while let Some(record) = pending.next_if(|m| m.step == batch[0].step) {
                bytes.extend(marginals_event(started, record));
            }
        }
    }
    for record in pending {
        bytes.extend(marginals_event(started, record));
    }
    bytes
}

/// One event of a batch of records of one step and split: `SPLIT/METRIC` scalars, and the
/// step rate beside the seconds per step.
fn metrics_event(started: f64, batch: &[Record]) -> Vec<u8> {
    let Some(first) = batch.first() else { return Vec::new() };
    let mut values = Vec::new();
    for record in batch {
        values.push((format!("{}/{}", record.split, record.metric), Value::Scalar(record.value as f32)));
        if record.metric == SECONDS_PER_STEP && record.value > 0.0 {
            values.push((format!("{}/steps_per_second", record.split), Value::Scalar((1.0 / record.value) as f32)));
        }
    }
    sfess_tensorboard::encode(&Event { wall_time: started + first.elapsed_seconds, step: first.step as i64, values })
}

/// The histogram event of a validation's marginals.
fn marginals_event(started: f64, record: &MarginalsRecord) -> Vec<u8> {
    let values: Vec<f64> = record.marginals.iter().map(|&m| f64::from(m).clamp(0.0, 1.0)).collect();
    let histogram = Histogram::of(&values, &marginal_buckets());
    sfess_tensorboard::encode(&Event {
        wall_time: started + record.elapsed_seconds,
        step: record.step as i64,
        values: vec![("validation/marginals".to_owned(), Value::Histogram(histogram))],
    })
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn open_append(path: &Path) -> anyhow::Result<std::fs::File> {
    Ok(open_for_writing(path, std::fs::OpenOptions::new().create(true).append(true))?)
}

/// Appends `bytes` in one write; on failure (a full disk) cuts the file back to `length`.
fn append_whole(
    file: &mut std::fs::File,
    length: &mut u64,
    path: &Path,
    bytes: &[u8],
    step: u64,
) -> anyhow::Result<()> {
    match file.write_all(bytes).and_then(|()| file.flush()) {
        Ok(()) => {
            *length += bytes.len() as u64;
            Ok(())
        }
        Err(error) => {
            let _ = file.set_len(*length);
            Err(error).with_context(|| format!("writing {} at step {step}", path.display()))
        }
    }
}

/// The records of the JSON-lines file `path` (none when there is no such file), `what`
/// records (`metrics`, `marginals`) for the error; a last line cut short by a crash is left
/// out.
///
/// # Errors
/// A whole line that is not a record; I/O errors.
pub fn read_records<T: DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<Vec<T>> {
    read_or_empty(path)?
        .split_inclusive('\n')
        .filter(|line| line.ends_with('\n'))
        .enumerate()
        .map(|(index, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{} line {} is not a {what} record", path.display(), index + 1))
        })
        .collect()
}

/// The marginals records of the run in `dir` (see [`read_records`]).
///
/// # Errors
/// As [`read_records`].
pub fn read_marginals(dir: &Path) -> anyhow::Result<Vec<MarginalsRecord>> {
    read_records(&dir.join(MARGINALS), "marginals")
}
