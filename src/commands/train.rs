//! `sfess-agent train`: a new run into a run folder, or `--resume DIR` of one, and its
//! summary on standard output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use sfess_envs::registry::Registry;

use super::task_options::TaskOptions;
use crate::config::TrainConfig;
use crate::config::estimators::EstimatorName;
use crate::run::folder::Summary;
use crate::run::{RunOptions, Verbosity};
use crate::system::device::DeviceSpec;
use crate::system::signals::Interrupt;

/// Arguments of `train`. Every option left out takes its value from `--config FILE` if
/// given, else the paper's default (see `TrainConfig`).
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Environment (see `sfess-agent envs`) [default: knn-mnist].
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// Gradient estimator.
    #[arg(long, value_enum)]
    pub estimator: Option<EstimatorName>,
    /// Seed [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// The task's options.
    #[command(flatten)]
    pub task: TaskOptions,
    /// A JSON configuration (the run folder's config.json format); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The run folder [default: runs/ENV-ESTIMATOR-seedSEED].
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in DIR from its checkpoint (its config.json; --steps may extend it).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// If the run folder already holds a run, train into the first free DIR-2, DIR-3, ...
    /// instead (named on stderr and in the summary), rather than refuse.
    #[arg(long, conflicts_with = "resume")]
    pub fresh: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Do not draw the run's figures at its end (sfess-agent show draws them later).
    #[arg(long)]
    pub no_figures: bool,
}

impl TrainArgs {
    /// The configuration of a new run: `--config` or the defaults, with every given flag
    /// on top (`device` is `--device` when given).
    ///
    /// # Errors
    /// A configuration file that cannot be read or parsed.
    pub fn resolve(&self, device: Option<DeviceSpec>, registry: &Registry) -> anyhow::Result<TrainConfig> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("--config {}: cannot read it", path.display()))?;
                TrainConfig::from_json(&text, registry)
                    .with_context(|| format!("--config {}: not a valid configuration", path.display()))?
            }
            None => TrainConfig::default(),
        };
        self.apply(&mut config, device)?;
        Ok(config)
    }

    /// Sets every flag given (and `device`, the `--device` flag if given) in `config`.
    fn apply(&self, config: &mut TrainConfig, device: Option<DeviceSpec>) -> anyhow::Result<()> {
        if let Some(env) = &self.env {
            config.env.clone_from(env);
        }
        if let Some(estimator) = self.estimator {
            config.estimator = estimator;
        }
        if let Some(seed) = self.seed {
            config.seed = seed;
        }
        self.task.apply(config)?;
        if let Some(device) = device {
            config.device = device.to_string();
        }
        Ok(())
    }

    /// Refuses, by name, every flag that would change the configuration of the run in
    /// `dir`: a resumed run keeps its own; only a longer `--steps` (and options that cannot
    /// change results: `--quiet`, `--json`, `--threads`) may be given.
    ///
    /// # Errors
    /// `dir` holds no run; a flag differs from the run's configuration.
    pub fn refuse_changes_to(&self, dir: &Path, device: Option<DeviceSpec>, registry: &Registry) -> anyhow::Result<()> {
        let recorded = crate::run::read_config(dir, registry)?.check(registry)?.into_config();
        anyhow::ensure!(
            self.config.is_none(),
            "--resume {} takes its configuration from {}; --config cannot be given with it",
            dir.display(),
            dir.join(crate::run::CONFIG).display()
        );
        let mut asked = recorded.clone();
        self.apply(&mut asked, device)?;
        asked.steps = recorded.steps;
        let absolute = |config: TrainConfig| config.with_absolute_paths(registry);
        let asked = absolute(asked)?.check(registry)?.into_config();
        let Some(changed) = crate::config::changed_flags(&absolute(recorded)?, &asked, "the run") else {
            return Ok(());
        };
        anyhow::bail!(
            "--resume {} continues the run with its own configuration, and {} would change it; only a longer \
             --steps may be given (and --quiet, --json, --threads). To train with other settings, start a new \
             run: --config {} --out NEW_DIR",
            dir.display(),
            changed,
            dir.join(crate::run::CONFIG).display()
        )
    }
}

/// `sfess-agent train`: trains (or resumes) the run, then writes its summary to `stdout`,
/// as one line of text or, with `--json`, as JSON. `device` is `--device` when given.
///
/// # Errors
/// A configuration that does not check, a resumed run's flags that would change it, and
/// whatever the run fails with.
pub fn run(
    args: &TrainArgs,
    device: Option<DeviceSpec>,
    registry: &Arc<Registry>,
    stdout: &mut dyn Write,
) -> anyhow::Result<()> {
    let (dir, summary) = train_or_resume(args, device, registry, Interrupt::of_process())?;
    let text = if args.json {
        serde_json::to_string(&summary)? + "\n"
    } else {
        let metrics: Vec<String> = summary.test.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
        format!(
            "{} with {}, seed {}: test {} after {} steps ({:.4} s/step on {}); run folder {}\n",
            summary.env,
            summary.estimator,
            summary.seed,
            metrics.join(", "),
            summary.steps,
            summary.seconds_per_step,
            summary.device,
            dir.display()
        )
    };
    super::write_out(stdout, &text, "the summary")
}

/// What `train` does before it prints: trains the new run (or resumes `--resume DIR`),
/// stopping cleanly when `interrupt` is set, and returns its folder and summary. The
/// Python package's `sfess.train` calls it with an `Interrupt` of its own.
///
/// # Errors
/// As [`run`].
pub fn train_or_resume(
    args: &TrainArgs,
    device: Option<DeviceSpec>,
    registry: &Arc<Registry>,
    interrupt: Interrupt,
) -> anyhow::Result<(PathBuf, Summary)> {
    let verbosity = if args.quiet { Verbosity::Quiet } else { Verbosity::Normal };
    let holder = std::env::args().collect::<Vec<_>>().join(" ");
    let options =
        RunOptions { verbosity, interrupt, holder, registry: Arc::clone(registry), figures: !args.no_figures };
    match &args.resume {
        Some(dir) => {
            args.refuse_changes_to(dir, device, registry)?;
            Ok((dir.clone(), crate::run::resume(dir, args.task.steps, &options)?))
        }
        None => {
            let config = args.resolve(device, registry)?;
            let mut dir = args.out.clone().unwrap_or_else(|| crate::run::default_run_dir(&config));
            if args.fresh {
                let free = crate::run::first_free_folder(&dir)?;
                if free != dir {
                    crate::system::messages::say(format_args!(
                        "{}: {} holds a run; --fresh trains this one into {}",
                        crate::system::messages::program_name(),
                        dir.display(),
                        free.display()
                    ));
                }
                dir = free;
            }
            let summary = crate::run::train(&config, &dir, &options)?;
            Ok((dir, summary))
        }
    }
}
