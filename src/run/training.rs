//! The training loop: the one every run goes through, `sfess-agent train` and `--resume`,
//! each task of a sweep, and the library's [`crate::agent::Agent`].
//!
//! A [`Training`] owns the experiment, Adam, where the run stands ([`Progress`]) and the
//! training-loss window; it records into a [`RecordSink`] (a run folder's [`RunLog`], or
//! [`MemoryRecords`] for an `Agent`). Training step `t` (counted from 0) brings the run to
//! `t + 1`; there
//! - every `min(LOSS_EVERY, eval_every)` steps, and at the last step of a segment, the
//!   window's means are recorded (split `train`: `loss`, the trainer's measures, each
//!   `info.NAME`, and [`SECONDS_PER_STEP`], the window's clock);
//! - every `eval_every` steps and at the last step of a segment, the validation metrics and
//!   marginals, then the checkpoint (when the loop has a checkpoint file; none at step 0);
//!   before the first step of a run, the untrained policy's validation;
//! - a signal stops the loop between steps, after the checkpoint of the step reached
//!   ([`Stop::Signal`]).
//!
//! A segment is what one [`Training::run_until`] trains: a whole run, what a resumption adds
//! to it, or one `Agent::train`. Every random draw of step `t` is seeded by `(seed, t)`
//! ([`crate::train::trainer::step_rng`]), so a run resumed from a checkpoint continues exactly
//! as the uninterrupted run would have.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use sfess_envs::{EnvError, Phase};
use tch::Tensor;

use crate::run::checkpoint::{self, Progress};
use crate::run::folder::{LOSS_EVERY, Record, SECONDS_PER_STEP, Summary};
use crate::run::log::{MarginalsRecord, RunLog};
use crate::system::device::device_name;
use crate::system::signals::Interrupt;
use crate::system::threads::StepThreads;
use crate::train::experiment::Experiment;
use crate::train::trainer::{Adam, StepReport};
use crate::train::window::TrainWindow;

/// Where the records of a training go.
pub trait RecordSink {
    /// Records one batch of metrics of `split` at `step`.
    ///
    /// # Errors
    /// A value that is not finite; a write that fails.
    fn append(&mut self, step: u64, split: &str, metrics: &BTreeMap<String, f64>, elapsed: f64) -> anyhow::Result<()>;

    /// Records the marginals of a validation (after its metrics).
    ///
    /// # Errors
    /// A write that fails.
    fn append_marginals(&mut self, record: &MarginalsRecord) -> anyhow::Result<()>;
}

impl RecordSink for RunLog {
    fn append(&mut self, step: u64, split: &str, metrics: &BTreeMap<String, f64>, elapsed: f64) -> anyhow::Result<()> {
        RunLog::append(self, step, split, metrics, elapsed)
    }

    fn append_marginals(&mut self, record: &MarginalsRecord) -> anyhow::Result<()> {
        RunLog::append_marginals(self, record)
    }
}

/// The records of a training kept in memory, as a run folder's `metrics.jsonl` and
/// `marginals.jsonl` would hold them: by step, and within a step the training records, then
/// the validation, then the test, as a run writes them. A record of a step, split and metric
/// recorded again (an `Agent` evaluating twice at one step) replaces the earlier one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryRecords {
    /// The lines of `metrics.jsonl`.
    pub metrics: Vec<Record>,
    /// The lines of `marginals.jsonl`.
    pub marginals: Vec<MarginalsRecord>,
}

/// Where records of `split` go among those of one step.
fn split_rank(split: &str) -> u8 {
    match split {
        "train" => 0,
        "validation" => 1,
        "test" => 2,
        _ => 3,
    }
}

impl RecordSink for MemoryRecords {
    fn append(&mut self, step: u64, split: &str, metrics: &BTreeMap<String, f64>, elapsed: f64) -> anyhow::Result<()> {
        if let Some((metric, value)) = metrics.iter().find(|(_, value)| !value.is_finite()) {
            anyhow::bail!("the {split} {metric} at step {step} is {value}");
        }
        self.metrics.retain(|r| !(r.step == step && r.split == split && metrics.contains_key(&r.metric)));
        let key = (step, split_rank(split));
        let at = self.metrics.partition_point(|r| (r.step, split_rank(&r.split)) <= key);
        let batch = metrics.iter().map(|(metric, value)| Record {
            step,
            split: split.into(),
            metric: metric.clone(),
            value: *value,
            elapsed_seconds: elapsed,
        });
        self.metrics.splice(at..at, batch);
        Ok(())
    }

    fn append_marginals(&mut self, record: &MarginalsRecord) -> anyhow::Result<()> {
        self.marginals.retain(|r| r.step != record.step);
        let at = self.marginals.partition_point(|r| r.step <= record.step);
        self.marginals.insert(at, record.clone());
        Ok(())
    }
}

/// Why the loop stopped before its end.
#[derive(Debug)]
pub enum Stop {
    /// The signal it received (the checkpoint of the step reached is written, if the loop
    /// has a checkpoint file and the step is not 0).
    Signal(i32),
    /// A failure.
    Error(anyhow::Error),
}

impl From<anyhow::Error> for Stop {
    fn from(error: anyhow::Error) -> Self {
        Stop::Error(error)
    }
}

/// How a [`Training`] learns and when it validates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Seed of every draw.
    pub seed: u64,
    /// Samples per row and step.
    pub samples: usize,
    /// Adam's learning rate, β₁ and β₂.
    pub learning_rate: f64,
    /// Adam's β₁.
    pub beta1: f64,
    /// Adam's β₂.
    pub beta2: f64,
    /// Steps between validations (`None`: none but those asked for, as an `Agent` without
    /// one does).
    pub eval_every: Option<u64>,
}

/// The training loop's state: see the [module docs](self).
pub struct Training {
    experiment: Experiment,
    optimizer: Adam,
    settings: Settings,
    variables: Vec<(String, Tensor)>,
    progress: Progress,
    window: TrainWindow,
    /// Where checkpoints go, if anywhere.
    checkpoint: Option<PathBuf>,
    /// The step of the last checkpoint on disk.
    checkpointed: Option<u64>,
    interrupt: Interrupt,
    /// Since when this process's time is not in `progress.elapsed_seconds` yet, and when the
    /// current training segment (between validations) began.
    started: Instant,
    segment: Instant,
    /// Seconds and steps of the current loss window trained by this process.
    window_clock: (f64, u64),
    bar: ProgressBar,
    /// libtorch's threads for each step (chosen by timing unless `--threads` was given).
    threads: StepThreads,
}

impl Training {
    /// A training of `experiment` at its start (the untrained policy's validation due when
    /// it validates at all).
    ///
    /// # Errors
    /// libtorch errors.
    pub fn new(experiment: Experiment, settings: Settings) -> anyhow::Result<Self> {
        let variables = experiment.variables();
        let optimizer = Adam::new(shallow(&variables), settings.learning_rate, settings.beta1, settings.beta2)?;
        let progress = Progress { validation_due: settings.eval_every.is_some(), ..Progress::default() };
        let now = Instant::now();
        Ok(Self {
            experiment,
            optimizer,
            settings,
            variables,
            progress,
            window: TrainWindow::default(),
            checkpoint: None,
            checkpointed: None,
            interrupt: Interrupt::new(),
            started: now,
            segment: now,
            window_clock: (0.0, 0),
            bar: ProgressBar::hidden(),
            threads: StepThreads::for_this_process(),
        })
    }

    /// Checkpoints go to `path` (at every validation after step 0, and when a signal stops
    /// the loop).
    pub fn checkpoint_to(&mut self, path: PathBuf) {
        self.checkpoint = Some(path);
    }

    /// The loop stops when `interrupt` is set.
    pub fn stop_on(&mut self, interrupt: Interrupt) {
        self.interrupt = interrupt;
    }

    /// A progress bar of `steps` steps on stderr (when it is a terminal).
    pub fn show_progress(&mut self, steps: u64) {
        let bar = ProgressBar::new(steps).with_position(self.progress.step);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {per_sec}  ETA {eta}  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        self.bar = bar;
    }

    /// The progress bar.
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }

    /// Restores the checkpoint at `path` (its `shape` values must be those given, see
    /// [`checkpoint::save_with_shape`]): variables, Adam, where the run stands and its loss
    /// window. Nothing changes unless it loads.
    ///
    /// # Errors
    /// As [`checkpoint::load_with_shape`].
    pub fn load(&mut self, path: &Path, shape: &[(&str, i64)]) -> anyhow::Result<&Progress> {
        let progress = checkpoint::load_with_shape(path, &self.variables, &mut self.optimizer, shape)?;
        self.window = TrainWindow::restore(&progress.window, self.experiment.device)?;
        self.checkpointed = Some(progress.step);
        self.progress = progress;
        Ok(&self.progress)
    }

    /// Writes a checkpoint of now at `path` (see [`checkpoint::save_with_shape`]).
    ///
    /// # Errors
    /// A loss of the window was not finite; the file cannot be written.
    pub fn save(&mut self, path: &Path, shape: &[(&str, i64)]) -> anyhow::Result<()> {
        self.fold_clock();
        self.progress.window = self.window.sums()?;
        checkpoint::save_with_shape(path, &self.progress, &self.variables, &self.optimizer, shape)
    }

    /// The experiment: environment, policy and estimator.
    pub fn experiment(&mut self) -> &mut Experiment {
        &mut self.experiment
    }

    /// The experiment, taken.
    pub fn into_experiment(self) -> Experiment {
        self.experiment
    }

    /// Where the run stands.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// The training step reached.
    pub fn step(&self) -> u64 {
        self.progress.step
    }

    /// The step of the last checkpoint written or loaded.
    pub fn checkpointed(&self) -> Option<u64> {
        self.checkpointed
    }

    /// Seconds since the run started, across resumptions.
    fn elapsed(&self) -> f64 {
        self.progress.elapsed_seconds + self.started.elapsed().as_secs_f64()
    }

    /// Adds `seconds` spent on the run outside the loop (an `Agent`'s evaluations) to its
    /// elapsed time.
    pub fn add_elapsed(&mut self, seconds: f64) {
        self.progress.elapsed_seconds += seconds;
    }

    /// Moves this process's time so far into `progress.elapsed_seconds`.
    fn fold_clock(&mut self) {
        self.progress.elapsed_seconds = self.elapsed();
        self.started = Instant::now();
    }

    /// Adds the training time since the segment began to the run's.
    fn close_segment(&mut self) {
        self.progress.training_seconds += self.segment.elapsed().as_secs_f64();
        self.segment = Instant::now();
    }

    fn loss_every(&self) -> u64 {
        self.settings.eval_every.map_or(LOSS_EVERY, |every| LOSS_EVERY.min(every))
    }

    /// Trains to step `last`: the validation due first, then each step with its records,
    /// validations and checkpoints; `observe` sees each step's report. When the run `ends`
    /// there, its last step records the loss window it cuts short and validates (as
    /// [`Training::end`] does after the fact).
    ///
    /// # Errors
    /// [`Stop::Signal`] when `interrupt` is set; [`Stop::Error`] for any failure (a
    /// non-finite loss, the environment's errors, a write that fails).
    pub fn run_until(
        &mut self,
        last: u64,
        ends: bool,
        records: &mut dyn RecordSink,
        observe: &mut dyn FnMut(&StepReport) -> anyhow::Result<()>,
    ) -> Result<(), Stop> {
        let now = Instant::now();
        (self.started, self.segment) = (now, now);
        let result = self.train_segment(last, ends, records, observe);
        self.close_segment();
        self.fold_clock();
        result
    }

    fn train_segment(
        &mut self,
        last: u64,
        ends: bool,
        records: &mut dyn RecordSink,
        observe: &mut dyn FnMut(&StepReport) -> anyhow::Result<()>,
    ) -> Result<(), Stop> {
        if self.progress.validation_due {
            self.validate(records)?;
        }
        while self.progress.step < last {
            if self.interrupt.received().is_some() {
                return Err(self.stop_for_signal());
            }
            let report = self.step_once(ends.then_some(last), records)?;
            observe(&report)?;
            self.bar.inc(1);
        }
        Ok(())
    }

    /// One training step and what is due after it; `last` is the segment's last step, if
    /// this step may be it.
    ///
    /// # Errors
    /// As [`Training::run_until`].
    pub fn step_once(&mut self, last: Option<u64>, records: &mut dyn RecordSink) -> Result<StepReport, Stop> {
        let step = self.progress.step;
        let step_started = Instant::now();
        let (experiment, optimizer, settings) = (&mut self.experiment, &mut self.optimizer, &self.settings);
        let report = self.threads.run(|| experiment.train_step(step, settings.seed, settings.samples, optimizer));
        self.window_clock.0 += step_started.elapsed().as_secs_f64();
        self.window_clock.1 += 1;
        let report = match report {
            Ok(report) => report,
            // The step was abandoned before its update: the run stands at `step`.
            Err(error) if is_interruption(&error) => return Err(self.stop_for_signal()),
            // A loss that overflowed at an earlier step (not read yet) is the cause of
            // whatever failed now (NaN logits, most often).
            Err(error) => return Err(Stop::Error(self.window.checked_loss().err().unwrap_or(error))),
        };
        self.window.add(step, &report)?;
        let done = step + 1;
        self.progress.step = done;
        let end = last == Some(done);
        let loss_every = self.loss_every();
        if done.is_multiple_of(loss_every) || end {
            self.record_window(!done.is_multiple_of(loss_every), records)?;
        }
        if let Some(eval_every) = self.settings.eval_every
            && (done.is_multiple_of(eval_every) || end)
        {
            self.window.checked_loss()?;
            self.progress.validation_due = true;
            self.validate(records)?;
        }
        Ok(report)
    }

    /// Ends the run at the step it reached, as a run's last step does: the loss window in
    /// progress is recorded (it goes on, should training continue) and, when the loop
    /// validates, the validation of the step (again, if it had one: the same records).
    ///
    /// # Errors
    /// As [`Training::run_until`].
    pub fn end(&mut self, records: &mut dyn RecordSink) -> Result<(), Stop> {
        self.started = Instant::now();
        if self.window.steps() > 0 {
            self.record_window(true, records)?;
        }
        if self.settings.eval_every.is_some() {
            self.window.checked_loss()?;
            self.validate(records)?;
        }
        self.fold_clock();
        Ok(())
    }

    /// Records the loss window's means at the current step. A window cut `short` (by the
    /// run's end) goes on, so that training that continues it (a resumption, from the
    /// checkpoint's sums, or more `Agent` steps) records what the straight longer run does.
    fn record_window(&mut self, short: bool, records: &mut dyn RecordSink) -> anyhow::Result<()> {
        let unfinished = short.then(|| self.window.sums()).transpose()?;
        let mut means = self.window.take()?;
        if let Some(sums) = unfinished {
            self.window = TrainWindow::restore(&sums, self.experiment.device)?;
        }
        // The clock of the window's steps in this process (a clock: it is the one record a
        // resumed run does not repeat exactly).
        let (seconds, steps) = std::mem::take(&mut self.window_clock);
        if steps > 0 {
            means.insert(SECONDS_PER_STEP.to_owned(), seconds / steps as f64);
        }
        records.append(self.progress.step, "train", &means, self.elapsed())
    }

    /// The environment's metrics of the policy's top-k action on `phase`, recorded under the
    /// phase's name at the current step, with (validation) the marginals.
    ///
    /// # Errors
    /// Environment and policy errors; a record that cannot be written.
    pub fn evaluate(&mut self, phase: Phase, records: &mut dyn RecordSink) -> anyhow::Result<BTreeMap<String, f64>> {
        let metrics = self.experiment.evaluate(phase)?;
        let marginals = if phase == Phase::Validation { self.experiment.recorded_marginals(phase)? } else { None };
        let elapsed = self.elapsed();
        records.append(self.progress.step, phase.name(), &metrics, elapsed)?;
        if let Some((ranked, marginals)) = marginals {
            let record = MarginalsRecord { step: self.progress.step, ranked, marginals, elapsed_seconds: elapsed };
            records.append_marginals(&record)?;
        }
        Ok(metrics)
    }

    /// Records the validation metrics of the current step, then writes the checkpoint
    /// (none at step 0: a resumption without one starts the same way). The time it takes
    /// is not training time.
    fn validate(&mut self, records: &mut dyn RecordSink) -> Result<(), Stop> {
        self.close_segment();
        let metrics = match self.evaluate(Phase::Validation, records) {
            Ok(metrics) => metrics,
            Err(error) if is_interruption(&error) => return Err(self.stop_for_signal()),
            Err(error) => return Err(Stop::Error(error)),
        };
        self.progress.validation_due = false;
        if self.progress.step > 0 {
            self.write_checkpoint()?;
        }
        let metric = &self.experiment.env.spec().metric;
        if let Some(value) = metrics.get(metric) {
            self.bar.set_message(format!("validation {metric} {value:.4}"));
        }
        self.segment = Instant::now();
        Ok(())
    }

    /// After a signal: the checkpoint of the step reached (unless it is step 0).
    fn stop_for_signal(&mut self) -> Stop {
        self.close_segment();
        if self.progress.step > 0
            && let Err(error) = self.write_checkpoint()
        {
            return Stop::Error(error);
        }
        Stop::Signal(self.signal())
    }

    /// Writes the checkpoint of the current step to the loop's checkpoint file, if it has one.
    fn write_checkpoint(&mut self) -> anyhow::Result<()> {
        let Some(path) = self.checkpoint.clone() else { return Ok(()) };
        self.save(&path, &[])
            .map_err(|error| error.context(format!("writing the checkpoint of step {}", self.progress.step)))?;
        self.checkpointed = Some(self.progress.step);
        Ok(())
    }

    /// The signal that stopped the loop (SIGINT if none is recorded).
    fn signal(&self) -> i32 {
        self.interrupt.received().unwrap_or(signal_hook::consts::SIGINT)
    }

    /// The test metrics and the environment's untrained baselines, recorded at the current
    /// step (split `test`, the baselines as `baseline.NAME`), as a run ends.
    ///
    /// # Errors
    /// [`Stop::Signal`] when a signal stopped the environment's wait; environment errors; a
    /// record that cannot be written.
    pub fn test(&mut self, records: &mut dyn RecordSink) -> Result<Tested, Stop> {
        self.started = Instant::now();
        let measured = self
            .experiment
            .evaluate(Phase::Test)
            .and_then(|test| Ok((test, self.experiment.env.baselines(Phase::Test)?)));
        let (test, baselines) = match measured {
            Ok(both) => both,
            Err(error) if is_interruption(&error) => {
                return Err(Stop::Signal(self.signal()));
            }
            Err(error) => return Err(Stop::Error(error)),
        };
        let mut together = test.clone();
        together.extend(baselines.iter().map(|(name, value)| (format!("baseline.{name}"), *value)));
        let elapsed = self.elapsed();
        records.append(self.progress.step, "test", &together, elapsed)?;
        self.fold_clock();
        Ok(Tested { test, baselines })
    }

    /// The summary of the run as it stands, named `env` (its name in tables).
    pub fn summary(&self, env: &str, estimator: &str, tested: Tested) -> Summary {
        let steps = self.progress.step;
        let rows = match &self.experiment.episodes {
            Some(episodes) => episodes.starts,
            None => self.experiment.env.spec().rows,
        };
        let samples = self.settings.samples;
        Summary {
            env: env.to_owned(),
            estimator: estimator.to_owned(),
            seed: self.settings.seed,
            steps,
            device: device_name(self.experiment.device),
            seconds_per_step: if steps == 0 { 0.0 } else { self.progress.training_seconds / steps as f64 },
            rows_per_step: Some(rows),
            samples_per_row: Some(samples),
            evaluations_per_step: Some(rows.saturating_mul(samples)),
            test: tested.test,
            baselines: tested.baselines,
        }
    }
}

/// What [`Training::test`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Tested {
    /// The test metrics.
    pub test: BTreeMap<String, f64>,
    /// The untrained selections' main test metric.
    pub baselines: BTreeMap<String, f64>,
}

/// Whether `error` is an environment's report that a signal stopped its wait.
fn is_interruption(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| matches!(cause.downcast_ref::<EnvError>(), Some(EnvError::Interrupted { .. })))
}

/// Shallow copies of named tensors (they share storage with the originals).
fn shallow(variables: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    variables.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect()
}
