//! The run folder: training into it, resuming it, evaluating it.
//!
//! A run folder holds
//! - `config.json`: the resolved configuration, written once when the run starts (a resumed
//!   run that is extended rewrites only its `steps`);
//! - `metrics.jsonl`: one JSON object per line, `{"step", "split", "metric", "value",
//!   "elapsed_seconds"}` (the mean training loss and `seconds_per_step`, the mean seconds
//!   of the window's steps, every `min(100, eval_every)` steps; validation every
//!   `eval_every` and before the first step; test at the end), appended a whole batch of
//!   lines at a time;
//! - `marginals.jsonl` and `events.out.tfevents.sfess-agent` (TensorBoard's): see
//!   [`crate::run::log`], appended with the metrics;
//! - `checkpoint.ot`: see [`crate::run::checkpoint`]; rewritten atomically at every validation
//!   and when a signal stops the run;
//! - `summary.json` once the run is complete:
//!   `{"env", "estimator", "seed", "steps", "device", "seconds_per_step", "test": {METRIC: VALUE}}`;
//! - `figures/`: what `sfess-agent show` draws (see [`crate::commands::show`]), written at
//!   the end of `train` unless `--no-figures`;
//! - `.lock`: see [`crate::run::lock`]; one process at a time writes to the folder.
//!
//! # Guarantees
//! - A run stopped by SIGINT, SIGTERM or SIGUSR1 writes its checkpoint at the step it
//!   reached, and its resumption writes exactly the records the uninterrupted run would have
//!   (only the clocks differ: `elapsed_seconds` and the `seconds_per_step` records). A run
//!   killed outright resumes from its last checkpoint, with the same records too; so does a
//!   complete run extended by a longer `--steps`, which ends as the straight longer run.
//! - A write that fails (a full disk) is an error naming the file and the step; a failed
//!   append of metrics is cut back to the last whole line, and the previous checkpoint
//!   stays whole.
//! - A new run that fails before its first checkpoint removes what it wrote, so that the
//!   corrected command can use the same folder.

pub mod archive;
pub mod checkpoint;
pub mod lock;
pub mod log;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sfess_envs::registry::Registry;
use sfess_envs::{EnvError, Phase};
use tch::Tensor;

use crate::config::TrainConfig;
use crate::system::device::device_name;
use crate::system::files::{self, write_atomically};
use crate::system::signals::{Interrupt, Interrupted};
use crate::train::experiment::Experiment;
use crate::train::trainer::Adam;
use crate::train::window::TrainWindow;
use checkpoint::Progress;
use lock::FolderLock;
use log::{EVENTS, MARGINALS, MarginalsRecord, RunLog};

/// File names inside a run folder.
pub const CONFIG: &str = "config.json";
/// Metrics, one JSON object per line.
pub const METRICS: &str = "metrics.jsonl";
/// The checkpoint.
pub const CHECKPOINT: &str = "checkpoint.ot";
/// The summary of a complete run.
pub const SUMMARY: &str = "summary.json";
/// The figures `show` writes, in this folder of a run folder.
pub const FIGURES: &str = "figures";
/// Every file a run writes: a folder holding any of them holds a run.
const RUN_FILES: [&str; 6] = [CONFIG, METRICS, MARGINALS, EVENTS, CHECKPOINT, SUMMARY];

/// Steps between training-loss records.
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

/// How much the run prints on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// A progress bar (when stderr is a terminal) and a closing line.
    Normal,
    /// Nothing but errors.
    Quiet,
}

/// What every run gets besides its configuration.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Progress output.
    pub verbosity: Verbosity,
    /// Set by SIGINT or SIGTERM (see [`Interrupt::install`]).
    pub interrupt: Interrupt,
    /// What the lock file says this process does (its command line).
    pub holder: String,
    /// The environments a configuration may name.
    pub registry: Arc<Registry>,
    /// Draw the run's figures when it completes ([`crate::commands::show`]).
    pub figures: bool,
}

/// The first run file in `dir`, if it holds any.
pub fn run_file_in(dir: &Path) -> Option<&'static str> {
    RUN_FILES.into_iter().find(|name| dir.join(name).exists())
}

fn refuse_a_folder_with_a_run(dir: &Path) -> anyhow::Result<()> {
    if let Some(file) = run_file_in(dir) {
        bail!(
            "{} already holds a run (its {file}); continue it with --resume {}, or choose another --out",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Trains `config` into the new run folder `dir` (created; it must not hold a run).
/// Everything in the configuration is checked, and the experiment built, before the folder
/// is created.
///
/// # Errors
/// Everything [`Experiment::build`] refuses; a folder that holds a run or is locked; a
/// non-finite loss (the last checkpoint stays); a signal ([`Interrupted`]); I/O errors.
pub fn train(config: &TrainConfig, dir: &Path, options: &RunOptions) -> anyhow::Result<Summary> {
    let registry = &options.registry;
    let config = config.clone().with_absolute_paths(registry)?.resolved(registry)?;
    refuse_a_folder_with_a_run(dir)?;
    let mut experiment = Experiment::build_interruptible(&config, &options.registry, &options.interrupt)?;
    if let Some(signal) = options.interrupt.received() {
        return Err(Interrupted::before_start(signal, dir).into());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating the run folder {}", dir.display()))?;
    let _lock = FolderLock::acquire(dir, &options.holder)?;
    // Again under the lock: another process may have started a run here meanwhile.
    refuse_a_folder_with_a_run(dir)?;
    write_atomically(&dir.join(CONFIG), (serde_json::to_string_pretty(&config)? + "\n").as_bytes())?;
    let result = Run::start(&mut experiment, &config, dir, options, true).and_then(Run::finish);
    if let Ok(summary) = &result {
        draw_figures(dir, &mut experiment, &config, summary, options);
    }
    if let Err(error) = &result {
        let interrupted = error.downcast_ref::<Interrupted>().is_some();
        if !interrupted && !dir.join(CHECKPOINT).exists() {
            // Nothing to continue from: free the folder for the corrected command.
            for file in [METRICS, MARGINALS, EVENTS, CONFIG] {
                let _ = std::fs::remove_file(dir.join(file));
            }
        }
    }
    result
}

/// Continues the run in `dir` from its checkpoint, with its own configuration; `steps`
/// extends it. A complete run that is not extended returns its summary untouched.
///
/// # Errors
/// No run in `dir`; the folder is locked; `steps` below the run's; a checkpoint that is
/// corrupt or of another run; then as [`train`].
pub fn resume(dir: &Path, steps: Option<u64>, options: &RunOptions) -> anyhow::Result<Summary> {
    read_config(dir, &options.registry)?;
    let _lock = FolderLock::acquire(dir, &options.holder)?;
    let mut config = read_config(dir, &options.registry)?.resolved(&options.registry)?;
    let steps = steps.unwrap_or(config.steps);
    anyhow::ensure!(
        steps >= config.steps,
        "--steps {steps} is fewer than the {} steps of the run in {}; a resumed run can only be extended",
        config.steps,
        dir.display()
    );
    if steps == config.steps
        && let Ok(text) = crate::system::files::read_text(&dir.join(SUMMARY))
    {
        let summary: Summary = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid summary", dir.join(SUMMARY).display()))?;
        if options.verbosity == Verbosity::Normal {
            crate::system::messages::say(format_args!(
                "{} is complete already ({steps} steps); nothing to do",
                dir.display()
            ));
        }
        return Ok(summary);
    }
    let mut experiment = Experiment::build_interruptible(&config, &options.registry, &options.interrupt)?;
    if let Some(signal) = options.interrupt.received() {
        return Err(Interrupted::before_start(signal, dir).into());
    }
    let extended = steps > config.steps;
    config.steps = steps;
    let run = Run::start(&mut experiment, &config, dir, options, false)?;
    if extended {
        // No longer complete: the summary goes before the configuration changes.
        files::remove_if_there(&dir.join(SUMMARY))?;
        write_atomically(&dir.join(CONFIG), (serde_json::to_string_pretty(&config)? + "\n").as_bytes())?;
    }
    let summary = run.finish()?;
    draw_figures(dir, &mut experiment, &config, &summary, options);
    Ok(summary)
}

/// The figures of a run just completed, unless told not to. A failure is reported on
/// stderr, not as the run's: the run is complete, and `sfess-agent show` draws them again.
fn draw_figures(
    dir: &Path,
    experiment: &mut Experiment,
    config: &TrainConfig,
    summary: &Summary,
    options: &RunOptions,
) {
    if !options.figures {
        return;
    }
    let name = crate::commands::show::RunName::of(config);
    if let Err(error) = crate::commands::show::write_figures(dir, experiment, &name, summary.steps) {
        crate::system::messages::say(format_args!(
            "{}: the run is complete, but its figures could not be drawn: {error:#}; try again with: sfess-agent show {}",
            dir.display(),
            dir.display()
        ));
    }
}

/// `sfess-agent eval --run DIR`: recomputes the test metrics of the run's checkpoint.
///
/// # Errors
/// The folder holds no run or no checkpoint; the checkpoint is corrupt; the data cannot be
/// loaded.
pub fn evaluate_run(dir: &Path, registry: &Registry) -> anyhow::Result<BTreeMap<String, f64>> {
    let config = read_config(dir, registry)?;
    let mut experiment = Experiment::build(&config, registry)?;
    let variables = experiment.variables();
    let mut optimizer = Adam::new(shallow(&variables), config.lr(registry)?, config.beta1, config.beta2)?;
    let path = dir.join(CHECKPOINT);
    anyhow::ensure!(path.exists(), "{} has no checkpoint yet ({CHECKPOINT})", dir.display());
    checkpoint::load(&path, &variables, &mut optimizer)?;
    experiment.evaluate(Phase::Test)
}

/// The configuration of the run in `dir`.
///
/// # Errors
/// No `config.json`, or one that does not parse.
pub fn read_config(dir: &Path, registry: &Registry) -> anyhow::Result<TrainConfig> {
    let path = dir.join(CONFIG);
    let text = crate::system::files::read_text(&path)
        .with_context(|| format!("{} holds no run (no {CONFIG})", dir.display()))?;
    TrainConfig::from_json(&text, registry)
        .with_context(|| format!("{} is not a valid run configuration", path.display()))
}

/// The default run folder: `runs/ENV-ESTIMATOR-seedSEED`.
pub fn default_run_dir(config: &TrainConfig) -> PathBuf {
    PathBuf::from("runs").join(format!("{}-{}-seed{}", config.label(), config.estimator.as_str(), config.seed))
}

/// A run in progress: the experiment, its optimiser, its log and where it stands.
struct Run<'a> {
    experiment: &'a mut Experiment,
    config: &'a TrainConfig,
    dir: &'a Path,
    options: &'a RunOptions,
    variables: Vec<(String, Tensor)>,
    optimizer: Adam,
    log: RunLog,
    window: TrainWindow,
    progress: Progress,
    /// The step of the last checkpoint on disk.
    checkpointed: Option<u64>,
    /// A new run (not a resumption): what the error messages advise.
    fresh: bool,
    /// When this process started training, and the current segment between validations.
    started: Instant,
    segment: Instant,
    /// Seconds and steps of the current loss window trained by this process.
    window_clock: (f64, u64),
    /// The sums of the loss window the last step cut short, for the final checkpoint.
    unfinished_window: Option<crate::train::window::WindowSums>,
    bar: ProgressBar,
}

impl<'a> Run<'a> {
    /// Loads the checkpoint (if any) and opens the log, kept up to the checkpoint.
    fn start(
        experiment: &'a mut Experiment,
        config: &'a TrainConfig,
        dir: &'a Path,
        options: &'a RunOptions,
        fresh: bool,
    ) -> anyhow::Result<Self> {
        let variables = experiment.variables();
        let mut optimizer = Adam::new(shallow(&variables), config.lr(&options.registry)?, config.beta1, config.beta2)?;
        let path = dir.join(CHECKPOINT);
        let (progress, checkpointed) = if path.exists() {
            let progress = checkpoint::load(&path, &variables, &mut optimizer)?;
            anyhow::ensure!(
                progress.step <= config.steps,
                "the checkpoint {} is of step {}, beyond the run's {} steps",
                path.display(),
                progress.step,
                config.steps
            );
            let step = progress.step;
            (progress, Some(step))
        } else {
            (Progress::default(), None)
        };
        let log = RunLog::open(dir, config, &progress)?;
        let window = TrainWindow::restore(&progress.window, experiment.device)?;
        let bar = progress_bar(config.steps, progress.step, options.verbosity);
        let now = Instant::now();
        Ok(Self {
            experiment,
            config,
            dir,
            options,
            variables,
            optimizer,
            log,
            window,
            progress,
            checkpointed,
            fresh,
            started: now,
            segment: now,
            window_clock: (0.0, 0),
            unfinished_window: None,
            bar,
        })
    }

    /// Trains to the last step, then tests; a failure gets where the run stopped and what
    /// is kept.
    fn finish(mut self) -> anyhow::Result<Summary> {
        let result = self.train().and_then(|()| self.test());
        match result {
            Ok(summary) => {
                self.bar.finish_and_clear();
                Ok(summary)
            }
            Err(error) => {
                self.bar.abandon();
                Err(self.explain(error))
            }
        }
    }

    fn elapsed(&self) -> f64 {
        self.progress.elapsed_seconds + self.started.elapsed().as_secs_f64()
    }

    fn train(&mut self) -> anyhow::Result<()> {
        if self.progress.validation_due {
            self.validate()?;
        }
        let loss_every = LOSS_EVERY.min(self.config.eval_every);
        while self.progress.step < self.config.steps {
            if self.options.interrupt.received().is_some() {
                return Err(self.stop_for_signal());
            }
            let step = self.progress.step;
            let step_started = Instant::now();
            let report = self.experiment.train_step(step, self.config.seed, self.config.samples, &mut self.optimizer);
            self.window_clock.0 += step_started.elapsed().as_secs_f64();
            self.window_clock.1 += 1;
            let report = match report {
                Ok(report) => report,
                // The step was abandoned before its update: the run stands at `step`.
                Err(error) if is_interruption(&error) => return Err(self.stop_for_signal()),
                // A loss that overflowed at an earlier step (not read yet) is the cause of
                // whatever failed now (NaN logits, most often).
                Err(error) => return Err(self.window.checked_loss().err().unwrap_or(error)),
            };
            self.window.add(step, &report)?;
            let done = step + 1;
            self.progress.step = done;
            if done.is_multiple_of(loss_every) || done == self.config.steps {
                if !done.is_multiple_of(loss_every) {
                    // The last step ends a window early: the checkpoint keeps the window's
                    // sums, so that a longer run extending this one continues the window
                    // as the straight longer run does.
                    self.unfinished_window = Some(self.window.sums()?);
                }
                let mut means = self.window.take()?;
                // The clock of the window's steps in this process (a clock: it is the one
                // record a resumed run does not repeat exactly).
                let (seconds, steps) = std::mem::take(&mut self.window_clock);
                if steps > 0 {
                    means.insert(SECONDS_PER_STEP.to_owned(), seconds / steps as f64);
                }
                self.log.append(done, "train", &means, self.elapsed())?;
            }
            if done.is_multiple_of(self.config.eval_every) || done == self.config.steps {
                self.window.checked_loss()?;
                self.progress.validation_due = true;
                self.validate()?;
            }
            self.bar.inc(1);
        }
        Ok(())
    }

    /// Records the validation metrics of the current step, then writes the checkpoint
    /// (none at step 0: a resumption without one starts the same way). The time it takes
    /// is not training time.
    fn validate(&mut self) -> anyhow::Result<()> {
        self.close_segment();
        let measured = self
            .experiment
            .evaluate(Phase::Validation)
            .and_then(|metrics| Ok((metrics, self.experiment.recorded_marginals(Phase::Validation)?)));
        let (metrics, marginals) = match measured {
            Ok(both) => both,
            Err(error) if is_interruption(&error) => return Err(self.stop_for_signal()),
            Err(error) => return Err(error),
        };
        let elapsed = self.elapsed();
        self.log.append(self.progress.step, "validation", &metrics, elapsed)?;
        if let Some((ranked, marginals)) = marginals {
            let record = MarginalsRecord { step: self.progress.step, ranked, marginals, elapsed_seconds: elapsed };
            self.log.append_marginals(&record)?;
        }
        self.progress.validation_due = false;
        if self.progress.step > 0 {
            self.checkpoint()?;
        }
        if let Some(value) = metrics.get(&self.experiment.env.spec().metric) {
            self.bar.set_message(format!("validation {} {value:.4}", self.experiment.env.spec().metric));
        }
        self.segment = Instant::now();
        Ok(())
    }

    /// Adds the training time since the segment began to the run's.
    fn close_segment(&mut self) {
        self.progress.training_seconds += self.segment.elapsed().as_secs_f64();
        self.segment = Instant::now();
    }

    /// After a signal: the checkpoint of the step reached (unless it is step 0), then the
    /// error that says so.
    fn stop_for_signal(&mut self) -> anyhow::Error {
        self.close_segment();
        if self.progress.step > 0
            && let Err(error) = self.checkpoint()
        {
            return error;
        }
        self.interrupted()
    }

    /// Writes the checkpoint of the current step.
    fn checkpoint(&mut self) -> anyhow::Result<()> {
        self.progress.elapsed_seconds = self.elapsed();
        self.started = Instant::now();
        self.progress.window = match self.unfinished_window.take() {
            Some(sums) => sums,
            None => self.window.sums()?,
        };
        let path = self.dir.join(CHECKPOINT);
        checkpoint::save(&path, &self.progress, &self.variables, &self.optimizer)
            .with_context(|| format!("writing the checkpoint of step {}", self.progress.step))?;
        self.checkpointed = Some(self.progress.step);
        Ok(())
    }

    fn test(&mut self) -> anyhow::Result<Summary> {
        let (test, baselines) = match self
            .experiment
            .evaluate(Phase::Test)
            .and_then(|test| Ok((test, self.experiment.env.baselines(Phase::Test)?)))
        {
            Ok(both) => both,
            Err(error) if is_interruption(&error) => return Err(self.interrupted()),
            Err(error) => return Err(error),
        };
        let steps = self.config.steps;
        let as_records: BTreeMap<String, f64> =
            baselines.iter().map(|(name, value)| (format!("baseline.{name}"), *value)).collect();
        let mut records = test.clone();
        records.extend(as_records);
        self.log.append(steps, "test", &records, self.elapsed())?;
        let summary = Summary {
            env: self.config.label().to_owned(),
            estimator: self.config.estimator.as_str().to_owned(),
            seed: self.config.seed,
            steps,
            device: device_name(self.experiment.device),
            seconds_per_step: self.progress.training_seconds / steps as f64,
            test,
            baselines,
        };
        write_atomically(&self.dir.join(SUMMARY), (serde_json::to_string_pretty(&summary)? + "\n").as_bytes())?;
        Ok(summary)
    }

    /// The error of a signal, once the checkpoint of the current step is written.
    fn interrupted(&self) -> anyhow::Error {
        let signal = self.options.interrupt.received().unwrap_or(signal_hook::consts::SIGINT);
        let dir = self.dir.display();
        let at = self.progress.step;
        let where_ = match self.checkpointed {
            Some(step) => format!(
                "at step {at} of {}; the checkpoint of step {step} is in {dir}; continue with: sfess-agent train --resume {dir}",
                self.config.steps
            ),
            None => format!(
                "at step {at} of {}, with nothing to checkpoint yet; continue with: sfess-agent train --resume {dir} \
                 (it starts again from step 0)",
                self.config.steps
            ),
        };
        Interrupted { signal, what: "training".into(), where_ }.into()
    }

    /// `error` with where the run stopped and what is kept.
    fn explain(&self, error: anyhow::Error) -> anyhow::Error {
        if error.downcast_ref::<Interrupted>().is_some() {
            return error;
        }
        let dir = self.dir.display();
        let kept = match self.checkpointed {
            Some(at) => format!("the checkpoint of step {at} is kept in {dir}; continue with --resume {dir}"),
            None if self.fresh => format!("nothing was kept: no checkpoint was written yet, so {dir} is free again"),
            None => format!("no checkpoint was written yet; continue with --resume {dir}"),
        };
        error.context(format!("at training step {} of {} ({kept})", self.progress.step, self.config.steps))
    }
}

/// Whether `error` is an environment's report that a signal stopped its wait.
fn is_interruption(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| matches!(cause.downcast_ref::<EnvError>(), Some(EnvError::Interrupted { .. })))
}

fn progress_bar(steps: u64, start: u64, verbosity: Verbosity) -> ProgressBar {
    if verbosity == Verbosity::Quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps).with_position(start);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {per_sec}  ETA {eta}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Shallow copies of named tensors (they share storage with the originals).
fn shallow(variables: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    variables.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect()
}
