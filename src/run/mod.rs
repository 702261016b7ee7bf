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
//! - `figures/`: what `sfess-agent show` draws (see [`crate::run::figures`]), written at
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
pub mod figures;
pub mod folder;
pub mod lock;
pub mod log;
pub mod training;

pub use folder::{
    CHECKPOINT, CONFIG, FIGURES, LOSS_EVERY, METRICS, Record, SECONDS_PER_STEP, SUMMARY, Summary, run_file_in,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use sfess_envs::Phase;
use sfess_envs::registry::Registry;

use crate::config::{RunSpec, TrainConfig};
use crate::run::checkpoint::Progress;
use crate::run::figures::{RunName, write_figures};
use crate::run::lock::FolderLock;
use crate::run::log::{EVENTS, MARGINALS, RunLog};
use crate::run::training::{Settings, Stop, Training};
use crate::system::files::{self, write_atomically};
use crate::system::signals::{Interrupt, Interrupted};
use crate::train::experiment::{Experiment, stateless_policy_warning};

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
    /// Draw the run's figures when it completes ([`crate::run::figures`]).
    pub figures: bool,
}

fn refuse_a_folder_with_a_run(dir: &Path) -> anyhow::Result<()> {
    if let Some(file) = run_file_in(dir) {
        bail!(
            "{} already holds a run (its {file}); continue it with --resume {}, choose another --out, or add \
             --fresh to train into the first free {}-N",
            dir.display(),
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
/// Everything [`TrainConfig::check`] and [`Experiment::build`] refuse; a folder that holds a
/// run or is locked; a non-finite loss (the last checkpoint stays); a signal
/// ([`Interrupted`]); I/O errors.
pub fn train(config: &TrainConfig, dir: &Path, options: &RunOptions) -> anyhow::Result<Summary> {
    let registry = &options.registry;
    let spec = config.clone().with_absolute_paths(registry)?.check(registry)?;
    refuse_a_folder_with_a_run(dir)?;
    let mut experiment = Experiment::build(&spec, &options.interrupt)?;
    if let Some(signal) = options.interrupt.received() {
        return Err(Interrupted::before_start(signal, dir).into());
    }
    if spec.entry().policy_is_chosen()
        && let Some(warning) = stateless_policy_warning(experiment.env.as_mut(), spec.config().policy)
    {
        crate::system::messages::say(format_args!("{}: {warning}", crate::system::messages::program_name()));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating the run folder {}", dir.display()))?;
    let _lock = FolderLock::acquire(dir, &options.holder)?;
    // Again under the lock: another process may have started a run here meanwhile.
    refuse_a_folder_with_a_run(dir)?;
    write_atomically(&dir.join(CONFIG), (serde_json::to_string_pretty(spec.config())? + "\n").as_bytes())?;
    let result = Run::start(experiment, &spec, dir, options, true).and_then(Run::finish);
    match result {
        Ok((summary, mut training)) => {
            draw_figures(dir, training.experiment(), &spec, &summary, options);
            Ok(summary)
        }
        Err(error) => {
            let interrupted = error.downcast_ref::<Interrupted>().is_some();
            if !interrupted && !dir.join(CHECKPOINT).exists() {
                // Nothing to continue from: free the folder for the corrected command.
                for file in [METRICS, MARGINALS, EVENTS, CONFIG] {
                    let _ = std::fs::remove_file(dir.join(file));
                }
            }
            Err(error)
        }
    }
}

/// Continues the run in `dir` from its checkpoint, with its own configuration; `steps`
/// extends it. A complete run that is not extended returns its summary untouched.
///
/// # Errors
/// No run in `dir`; the folder is locked; `steps` below the run's; a checkpoint that is
/// corrupt or of another run; then as [`train`].
pub fn resume(dir: &Path, steps: Option<u64>, options: &RunOptions) -> anyhow::Result<Summary> {
    let registry = &options.registry;
    read_config(dir, registry)?;
    let _lock = FolderLock::acquire(dir, &options.holder)?;
    let spec = read_config(dir, registry)?.check(registry)?;
    let recorded_steps = spec.config().steps;
    let steps = steps.unwrap_or(recorded_steps);
    anyhow::ensure!(
        steps >= recorded_steps,
        "--steps {steps} is fewer than the {recorded_steps} steps of the run in {}; a resumed run can only be extended",
        dir.display()
    );
    if steps == recorded_steps
        && let Ok(text) = files::read_text(&dir.join(SUMMARY))
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
    let experiment = Experiment::build(&spec, &options.interrupt)?;
    if let Some(signal) = options.interrupt.received() {
        return Err(Interrupted::before_start(signal, dir).into());
    }
    let extended = steps > recorded_steps;
    let spec = spec.with_steps(steps);
    let run = Run::start(experiment, &spec, dir, options, false)?;
    if extended {
        // No longer complete: the summary goes before the configuration changes.
        files::remove_if_there(&dir.join(SUMMARY))?;
        write_atomically(&dir.join(CONFIG), (serde_json::to_string_pretty(spec.config())? + "\n").as_bytes())?;
    }
    let (summary, mut training) = run.finish()?;
    draw_figures(dir, training.experiment(), &spec, &summary, options);
    Ok(summary)
}

/// The figures of a run just completed, unless told not to. A failure is reported on
/// stderr, not as the run's: the run is complete, and `sfess-agent show` draws them again.
fn draw_figures(dir: &Path, experiment: &mut Experiment, spec: &RunSpec<'_>, summary: &Summary, options: &RunOptions) {
    if !options.figures {
        return;
    }
    if let Err(error) = write_figures(dir, experiment, &RunName::of(spec.config()), summary.steps) {
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
    let spec = read_config(dir, registry)?.check(registry)?;
    let (mut experiment, _) = at_checkpoint(dir, &spec)?;
    experiment.evaluate(Phase::Test)
}

/// The experiment of the run in `dir` (of `spec`, its configuration) at its checkpoint, and
/// where the run stands.
///
/// # Errors
/// No checkpoint; a corrupt one; the experiment's own errors.
pub fn at_checkpoint(dir: &Path, spec: &RunSpec<'_>) -> anyhow::Result<(Experiment, Progress)> {
    let mut training = Training::new(Experiment::build(spec, &Interrupt::new())?, settings(spec))?;
    let path = dir.join(CHECKPOINT);
    anyhow::ensure!(path.exists(), "{} has no checkpoint yet ({CHECKPOINT})", dir.display());
    let progress = training.load(&path, &[])?.clone();
    Ok((training.into_experiment(), progress))
}

/// The configuration of the run in `dir`.
///
/// # Errors
/// No `config.json`, or one that does not parse.
pub fn read_config(dir: &Path, registry: &Registry) -> anyhow::Result<TrainConfig> {
    let path = dir.join(CONFIG);
    let text = files::read_text(&path).with_context(|| format!("{} holds no run (no {CONFIG})", dir.display()))?;
    TrainConfig::from_json(&text, registry)
        .with_context(|| format!("{} is not a valid run configuration", path.display()))
}

/// The default run folder: `runs/ENV-ESTIMATOR-seedSEED`.
pub fn default_run_dir(config: &TrainConfig) -> PathBuf {
    PathBuf::from("runs").join(format!("{}-{}-seed{}", config.label(), config.estimator.as_str(), config.seed))
}

/// `dir` if it holds no run, else the first of `DIR-2`, `DIR-3`, ... that holds none (`train
/// --fresh`: the same command again, into a new folder). A numbered name that is a symbolic
/// link, or anything but a folder, is skipped: a name the tool makes up is never followed
/// elsewhere.
///
/// # Errors
/// `dir` has no last component to number (`/`, `..`), or a million numbers are taken.
pub fn first_free_folder(dir: &Path) -> anyhow::Result<PathBuf> {
    if run_file_in(dir).is_none() {
        return Ok(dir.to_path_buf());
    }
    let name = dir
        .file_name()
        .with_context(|| format!("{} has no folder name to number for --fresh", dir.display()))?
        .to_string_lossy()
        .into_owned();
    (2..1_000_000u32)
        .map(|number| dir.with_file_name(format!("{name}-{number}")))
        .find(|candidate| match std::fs::symlink_metadata(candidate) {
            Ok(metadata) => metadata.is_dir() && run_file_in(candidate).is_none(),
            Err(_) => true,
        })
        .with_context(|| format!("no free folder {}-N for --fresh", dir.display()))
}

/// How the loop trains a run of `spec`.
fn settings(spec: &RunSpec<'_>) -> Settings {
    let config = spec.config();
    Settings {
        seed: config.seed,
        samples: config.samples,
        learning_rate: spec.learning_rate(),
        beta1: config.beta1,
        beta2: config.beta2,
        eval_every: Some(config.eval_every),
    }
}

/// A run in its folder: the training loop with the folder's checkpoint and log, and the
/// messages that say where a run stopped and what it keeps.
struct Run<'a> {
    training: Training,
    log: RunLog,
    spec: &'a RunSpec<'a>,
    dir: &'a Path,
    /// A new run (not a resumption): what the error messages advise.
    fresh: bool,
}

impl<'a> Run<'a> {
    /// Loads the checkpoint (if any) and opens the log, kept up to the checkpoint.
    fn start(
        experiment: Experiment,
        spec: &'a RunSpec<'a>,
        dir: &'a Path,
        options: &RunOptions,
        fresh: bool,
    ) -> anyhow::Result<Self> {
        let mut training = Training::new(experiment, settings(spec))?;
        let steps = spec.config().steps;
        let path = dir.join(CHECKPOINT);
        if path.exists() {
            let progress = training.load(&path, &[])?;
            anyhow::ensure!(
                progress.step <= steps,
                "the checkpoint {} is of step {}, beyond the run's {steps} steps",
                path.display(),
                progress.step,
            );
        }
        let log = RunLog::open(dir, spec.config(), training.progress())?;
        training.checkpoint_to(path);
        training.stop_on(options.interrupt.clone());
        if options.verbosity == Verbosity::Normal {
            training.show_progress(steps);
        }
        Ok(Self { training, log, spec, dir, fresh })
    }

    /// Trains to the last step, then tests; a failure gets where the run stopped and what
    /// is kept. Returns the summary and the training, for the figures.
    fn finish(mut self) -> anyhow::Result<(Summary, Training)> {
        let steps = self.spec.config().steps;
        let result = self
            .training
            .run_until(steps, true, &mut self.log, &mut |_| Ok(()))
            .and_then(|()| self.training.test(&mut self.log))
            .and_then(|tested| {
                let summary = self.training.summary(self.spec.label(), self.spec.config().estimator.as_str(), tested);
                let text = serde_json::to_string_pretty(&summary).map_err(anyhow::Error::from)? + "\n";
                write_atomically(&self.dir.join(SUMMARY), text.as_bytes())?;
                Ok(summary)
            });
        match result {
            Ok(summary) => {
                self.training.bar().finish_and_clear();
                Ok((summary, self.training))
            }
            Err(stop) => {
                self.training.bar().abandon();
                Err(match stop {
                    Stop::Signal(signal) => self.interrupted(signal),
                    Stop::Error(error) => self.explain(error),
                })
            }
        }
    }

    /// The error of a signal, once the checkpoint of the current step is written.
    fn interrupted(&self, signal: i32) -> anyhow::Error {
        let dir = self.dir.display();
        let at = self.training.step();
        let steps = self.spec.config().steps;
        let where_ = match self.training.checkpointed() {
            Some(step) => format!(
                "at step {at} of {steps}; the checkpoint of step {step} is in {dir}; continue with: sfess-agent train --resume {dir}"
            ),
            None => format!(
                "at step {at} of {steps}, with nothing to checkpoint yet; continue with: sfess-agent train --resume {dir} \
                 (it starts again from step 0)"
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
        let kept = match self.training.checkpointed() {
            Some(at) => format!("the checkpoint of step {at} is kept in {dir}; continue with --resume {dir}"),
            None if self.fresh => format!("nothing was kept: no checkpoint was written yet, so {dir} is free again"),
            None => format!("no checkpoint was written yet; continue with --resume {dir}"),
        };
        error.context(format!("at training step {} of {} ({kept})", self.training.step(), self.spec.config().steps))
    }
}
