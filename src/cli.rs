//! The command line: argument definitions ([`Cli`]) and dispatch ([`run`], [`execute`]).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use sfess_agents::Sampler;

use std::sync::Arc;

use sfess_envs::registry::Registry;

use crate::commands::bench;
use crate::commands::inspect::{InspectOptions, SampleOptions, inspect, parse_logits};
use crate::config::TrainConfig;
use crate::config::estimators::{EstimatorName, EstimatorOptions, NormalizerName};
use crate::run::{RunOptions, Verbosity};
use crate::system::device::DeviceSpec;
use crate::system::signals::Interrupt;

/// Score-function estimators for k-subset sampling (SFESS).
#[derive(Debug, Clone, Parser)]
#[command(name = "sfess-agent", version, about, propagate_version = true)]
pub struct Cli {
    /// Device for tensors: auto (CUDA if available, else CPU), cpu, cuda or cuda:N [default:
    /// auto; for train, the --config file's device].
    #[arg(long, global = true, value_name = "DEVICE")]
    pub device: Option<DeviceSpec>,
    /// CPU threads for libtorch's operations and for the distribution's rows [default: every
    /// CPU this process may use (its affinity); compare gives each run its share].
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// `--device`, or `auto` when it was not given.
    pub fn device(&self) -> DeviceSpec {
        self.device.unwrap_or_default()
    }
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print the exact statistics of a k-subset distribution as one line of JSON.
    ///
    /// For one row of logits: n, k, the log normaliser, log P(sum b = k), the inclusion
    /// probabilities (marginals), the entropy and the KL divergence to the uniform
    /// distribution over k-subsets. With --samples, also the inclusion frequencies and the
    /// count of each sampled subset (keyed by its sorted indices joined by commas).
    Inspect(InspectArgs),
    /// Measure speed on this machine (the figures: docs/book/src/results.md and distribution.md).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Print the estimators and their properties (the paper's Table 1, for this
    /// implementation).
    Estimators(EstimatorsArgs),
    /// Train a k-subset policy on an environment, into a run folder.
    Train(Box<TrainArgs>),
    /// Recompute the test metrics of a run folder's checkpoint.
    Eval(EvalArgs),
    /// Draw what a run learned into RUN/figures/ (SVG and PNG, from its checkpoint and the
    /// held-out data), with subset.json (the top-k items and the marginals); prints the
    /// files.
    Show(ShowArgs),
    /// List the environments (metric, whether the loss is differentiable, options), or with
    /// a NAME one environment's defaults and options.
    Envs(EnvsArgs),
    /// Run several estimators over several seeds on one environment and tabulate them (a
    /// sweep over estimator × seed).
    Compare(Box<CompareArgs>),
    /// Run a grid of runs from a sweep file (TOML or JSON), here or on Slurm; `sweep status
    /// DIR` and `sweep cancel DIR` follow and stop it.
    Sweep(Box<SweepArgs>),
    /// Rebuild a sweep's or a comparison's tables and figures from its run folders alone.
    Report(ReportArgs),
    /// The toy problem with known gradients (paper Section 4.1): bias, variance and error
    /// of every estimator (Figure 2), or with --vr-sweep the error of SFESS + VR against
    /// its number of samples (Figure 3c).
    Toy(crate::commands::toy::ToyArgs),
    /// The data sets (mnist, fashion-mnist) that a command line reads, one per line: how
    /// the `sfess-agent` wrapper knows what to fetch first.
    #[command(hide = true)]
    DataSets(DataSetsArgs),
    /// One task of a sweep: what a sweep's local pool and its Slurm array job run.
    #[command(hide = true)]
    SweepTask(SweepTaskArgs),
}

/// Arguments of `sweep-task`.
#[derive(Debug, Clone, Args)]
pub struct SweepTaskArgs {
    /// The sweep's folder.
    pub dir: PathBuf,
    /// The task's name (its run folder inside DIR).
    pub name: crate::system::names::PathName,
}

/// Where the runs of `compare` and `sweep` go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum SchedulerName {
    /// Processes on this machine, `--jobs` at a time.
    #[default]
    Local,
    /// One Slurm array job (`sbatch --array`), and the report after it.
    Slurm,
}

/// How `compare` and `sweep` run their tasks.
#[derive(Debug, Clone, Default, Args)]
pub struct SchedulerArgs {
    /// Where the runs go.
    #[arg(long, value_enum, default_value_t = SchedulerName::Local)]
    pub scheduler: SchedulerName,
    /// Runs at a time: local processes (each gets its share of the CPUs), or the Slurm
    /// array's limit (`%J`) [default: 1 locally; Slurm's own limit].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// On Slurm: follow the jobs with a progress bar until the report is written, then
    /// print the tables (locally the command always waits).
    #[arg(long)]
    pub wait: bool,
    /// Slurm: the partition.
    #[arg(long, help_heading = "Slurm")]
    pub partition: Option<String>,
    /// Slurm: each task's time limit (sbatch's format: `MINUTES`, `HH:MM:SS`, `D-HH`).
    #[arg(long, help_heading = "Slurm")]
    pub time: Option<String>,
    /// Slurm: CPUs per task (the run sizes its threads to them).
    #[arg(long, help_heading = "Slurm")]
    pub cpus_per_task: Option<usize>,
    /// Slurm: memory per task (`8G`).
    #[arg(long, help_heading = "Slurm")]
    pub mem: Option<String>,
    /// Slurm: GPUs per task (`1`, `a100:1`).
    #[arg(long, help_heading = "Slurm")]
    pub gpus: Option<String>,
    /// Slurm: the account charged.
    #[arg(long, help_heading = "Slurm")]
    pub account: Option<String>,
    /// Slurm: the quality of service.
    #[arg(long, help_heading = "Slurm")]
    pub qos: Option<String>,
    /// Slurm: any other sbatch argument, verbatim, for the tasks and the report job
    /// (repeatable): `--sbatch-arg=--constraint=v100`.
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true, help_heading = "Slurm")]
    pub sbatch_args: Vec<String>,
    /// Slurm: seconds before its time limit at which a task checkpoints and requeues
    /// itself, 1 to 65535 and less than --time (Slurm may signal up to a minute earlier).
    #[arg(
        long,
        default_value_t = crate::sweep::slurm::DEFAULT_SIGNAL_BEFORE,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=crate::sweep::slurm::MAX_SIGNAL_BEFORE),
        help_heading = "Slurm"
    )]
    pub signal_before: u64,
}

impl SchedulerArgs {
    /// The scheduler these arguments ask for; `threads` is `--threads` (else every CPU),
    /// shared among the local jobs.
    ///
    /// # Errors
    /// `--jobs 0`; Slurm's options without `--scheduler slurm`; `--signal-before` not less than `--time`.
    pub fn scheduler(
        &self,
        command: &'static str,
        threads: Option<usize>,
        quiet: bool,
    ) -> anyhow::Result<crate::sweep::Scheduler> {
        use crate::sweep::slurm::{DEFAULT_SIGNAL_BEFORE, SlurmOptions};
        use crate::sweep::{Scheduler, local::Pool};
        anyhow::ensure!(self.jobs.is_none_or(|jobs| jobs >= 1), "--jobs must be at least 1");
        let options = SlurmOptions {
            jobs: self.jobs,
            partition: self.partition.clone(),
            time: self.time.clone(),
            cpus_per_task: self.cpus_per_task,
            mem: self.mem.clone(),
            gpus: self.gpus.clone(),
            account: self.account.clone(),
            qos: self.qos.clone(),
            sbatch_args: self.sbatch_args.clone(),
            signal_before: self.signal_before,
        };
        match self.scheduler {
            SchedulerName::Slurm => {
                anyhow::ensure!(self.cpus_per_task.is_none_or(|c| c >= 1), "--cpus-per-task must be at least 1");
                if let Some(limit) = self.time.as_deref().and_then(crate::sweep::slurm::time_limit_seconds) {
                    anyhow::ensure!(
                        self.signal_before <= limit,
                        "--signal-before {} is more than --time {} ({limit} seconds): a task would be told to stop \
                         before it started",
                        self.signal_before,
                        self.time.as_deref().unwrap_or_default()
                    );
                }
                Ok(Scheduler::Slurm { options, wait: self.wait, quiet })
            }
            SchedulerName::Local => {
                // Everything but --jobs must be Slurm's defaults.
                let defaults = SlurmOptions { signal_before: DEFAULT_SIGNAL_BEFORE, ..SlurmOptions::default() };
                if (SlurmOptions { jobs: None, ..options }) != defaults || self.wait {
                    anyhow::bail!(
                        "--partition, --time, --cpus-per-task, --mem, --gpus, --account, --qos, --sbatch-arg, \
                         --signal-before and --wait apply to --scheduler slurm"
                    );
                }
                let jobs = self.jobs.unwrap_or(1);
                let threads = threads.unwrap_or_else(crate::system::threads::available_cpus);
                Ok(Scheduler::Local(Pool {
                    jobs,
                    threads_per_run: crate::system::threads::share(threads, jobs),
                    interrupt: Interrupt::of_process(),
                    command,
                }))
            }
        }
    }
}

/// Arguments of `sweep`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SweepArgs {
    /// `status` or `cancel` of a sweep folder.
    #[command(subcommand)]
    pub action: Option<SweepAction>,
    /// The sweep file: TOML or JSON (see docs/book/src/sweeps.md, and sweeps/*.toml).
    #[arg(required = true)]
    pub file: Option<PathBuf>,
    /// The sweep's folder: one run folder per combination, and the report.
    #[arg(long, value_name = "DIR", required = true)]
    pub out: Option<PathBuf>,
    /// Where and how the runs go.
    #[command(flatten)]
    pub scheduler: SchedulerArgs,
    /// No progress bar while following.
    #[arg(long)]
    pub quiet: bool,
}

/// `sweep status` and `sweep cancel`.
#[derive(Debug, Clone, Subcommand)]
pub enum SweepAction {
    /// Where each task of a sweep stands: done, running, pending, stopped, failed (with why).
    Status(SweepStatusArgs),
    /// Cancel a sweep's Slurm jobs (its runs keep their checkpoints; submit again to resume).
    Cancel(SweepDirArgs),
}

/// Arguments of `sweep status`.
#[derive(Debug, Clone, Args)]
pub struct SweepStatusArgs {
    /// The sweep's folder.
    pub dir: PathBuf,
    /// Follow with a progress bar until the report is written, then print the tables.
    #[arg(long)]
    pub wait: bool,
    /// The status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A sweep's folder.
#[derive(Debug, Clone, Args)]
pub struct SweepDirArgs {
    /// The sweep's folder.
    pub dir: PathBuf,
}

/// Arguments of `envs`.
#[derive(Debug, Clone, Args)]
pub struct EnvsArgs {
    /// One environment, with its options.
    pub name: Option<String>,
}

/// Arguments of `data-sets`.
#[derive(Debug, Clone, Args)]
pub struct DataSetsArgs {
    /// The command line, after `--`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// The per-task options shared by `train` and `compare`; each one left out keeps its
/// default (or the `--config` file's value).
#[derive(Debug, Clone, Default, Args)]
pub struct TaskOptions {
    /// Samples per row S [default: 32]; in `compare` only sfess-vr's, every other
    /// estimator draws one, as in the paper.
    #[arg(long)]
    pub samples: Option<usize>,
    /// Training steps [default: 50000].
    #[arg(long)]
    pub steps: Option<u64>,
    /// Rows per step [default: 128].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam's learning rate [default: 1e-4 for the paper's tasks; 0.05 for free logits on
    /// a black-box task, 1e-3 for an MLP policy].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Steps between validations and checkpoints [default: 1000].
    #[arg(long)]
    pub eval_every: Option<u64>,
    /// Subset size [default: 10 for k-NN and cmd, 50 for feature selection, 5 for the VAE and
    /// max-coverage, 20 for sensor placement].
    #[arg(short, long)]
    pub k: Option<usize>,
    /// Folder with the mnist/ and fashion-mnist/ IDX files [default: $SFESS_DATA_DIR, else
    /// ~/.cache/sfess-agent/data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Sampler of sfess and sfess-vr.
    #[arg(long, value_enum)]
    pub sampler: Option<crate::config::estimators::SamplerName>,
    /// Relaxation temperature of gs and stgs [default: 0.5].
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Step λ of I-MLE's target distribution θ' = θ − λ ∂f/∂z [default: 10].
    #[arg(long)]
    pub imle_lambda: Option<f64>,
    /// Noise temperature of I-MLE, for the input and the target [default: 1].
    #[arg(long)]
    pub imle_temperature: Option<f64>,
    /// Perturbation of I-MLE [default: sum-of-gamma].
    #[arg(long, value_enum)]
    pub imle_noise: Option<crate::config::estimators::ImleNoiseName>,
    /// Backend of the k-subset law for sfess, sfess-vr and simple [default: auto, which is
    /// stable on the CPU and parallel on CUDA].
    #[arg(long, value_enum)]
    pub normalizer: Option<crate::config::estimators::NormalizerName>,
    /// Over episodes: weight each step's score by the rewards from that step on (reward-to-go)
    /// [default: false, the whole return].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub reward_to_go: Option<bool>,
    /// Over episodes: the discount γ in (0, 1] [default: 1].
    #[arg(long)]
    pub discount: Option<f64>,
    /// Policy of a black-box task: free logits, an MLP of the observation, or (over
    /// episodes) an MLP of the observation and the previous action [default: logits].
    #[arg(long, value_enum)]
    pub policy: Option<crate::config::PolicyName>,
    /// Hidden units of the MLP policy [default: 64].
    #[arg(long)]
    pub hidden: Option<usize>,
    /// An option of the environment, NAME=VALUE (repeatable): `--env-option n=50`; see
    /// `sfess-agent envs ENV` for each environment's options. The flags these replaced
    /// (`--reward-cmd`, `--n`, `--sensor-modes`, ...) still work.
    #[arg(long = "env-option", value_name = "NAME=VALUE", value_parser = parse_env_option)]
    pub env_options: Vec<(String, String)>,
}

impl TaskOptions {
    /// Sets every given option in `config`.
    pub fn apply(&self, config: &mut TrainConfig) {
        macro_rules! set {
            ($($flag:ident => $field:expr),* $(,)?) => { $(if let Some(value) = self.$flag.clone() { $field = value; })* };
        }
        set!(samples => config.samples, steps => config.steps, batch_size => config.batch_size,
             eval_every => config.eval_every,
             sampler => config.estimator_options.sampler, temperature => config.estimator_options.temperature,
             imle_lambda => config.estimator_options.imle_lambda,
             imle_temperature => config.estimator_options.imle_temperature,
             imle_noise => config.estimator_options.imle_noise,
             normalizer => config.estimator_options.normalizer,
             reward_to_go => config.estimator_options.reward_to_go,
             discount => config.estimator_options.discount,
             policy => config.policy, hidden => config.hidden);
        // Options whose configuration field is itself optional.
        macro_rules! set_some {
            ($($flag:ident => $field:expr),* $(,)?) => { $(if self.$flag.is_some() { $field = self.$flag.clone(); })* };
        }
        set_some!(lr => config.learning_rate, data_dir => config.data_dir, k => config.k);
        // Values as given; the environment's entry parses and checks them.
        for (name, value) in &self.env_options {
            config.set_option(name, serde_json::Value::from(value.as_str()));
        }
    }

    /// The given options as `train` flags.
    pub fn to_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        let mut push = |flag: &str, value: Option<String>| {
            if let Some(value) = value {
                flags.push(flag.to_owned());
                flags.push(value);
            }
        };
        push("--steps", self.steps.map(|v| v.to_string()));
        push("--samples", self.samples.map(|v| v.to_string()));
        push("--batch-size", self.batch_size.map(|v| v.to_string()));
        push("--lr", self.lr.map(|v| v.to_string()));
        push("--eval-every", self.eval_every.map(|v| v.to_string()));
        push("-k", self.k.map(|v| v.to_string()));
        push("--data-dir", self.data_dir.as_ref().map(|d| d.display().to_string()));
        push("--sampler", self.sampler.map(|s| sfess_agents::Sampler::from(s).name().to_owned()));
        push("--temperature", self.temperature.map(|v| v.to_string()));
        push("--imle-lambda", self.imle_lambda.map(|v| v.to_string()));
        push("--imle-temperature", self.imle_temperature.map(|v| v.to_string()));
        push("--imle-noise", self.imle_noise.and_then(|v| v.to_possible_value()).map(|v| v.get_name().to_owned()));
        push("--normalizer", self.normalizer.and_then(|v| v.to_possible_value()).map(|v| v.get_name().to_owned()));
        push("--reward-to-go", self.reward_to_go.map(|v| v.to_string()));
        push("--discount", self.discount.map(|v| v.to_string()));
        push("--policy", self.policy.and_then(|p| p.to_possible_value()).map(|v| v.get_name().to_owned()));
        push("--hidden", self.hidden.map(|v| v.to_string()));
        for (name, value) in &self.env_options {
            flags.push("--env-option".to_owned());
            flags.push(format!("{name}={value}"));
        }
        flags
    }
}

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
        self.apply(&mut config, device);
        Ok(config)
    }

    /// Sets every flag given (and `device`, the `--device` flag if given) in `config`.
    fn apply(&self, config: &mut TrainConfig, device: Option<DeviceSpec>) {
        if let Some(env) = &self.env {
            config.env.clone_from(env);
        }
        if let Some(estimator) = self.estimator {
            config.estimator = estimator;
        }
        if let Some(seed) = self.seed {
            config.seed = seed;
        }
        self.task.apply(config);
        if let Some(device) = device {
            config.device = device.to_string();
        }
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
        self.apply(&mut asked, device);
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

/// Arguments of `compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Environment (see `sfess-agent envs`).
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// Estimators, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = EstimatorName::ALL)]
    pub estimators: Vec<EstimatorName>,
    /// Seeds, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [0u64, 1, 2, 3, 4])]
    pub seeds: Vec<u64>,
    /// Output folder: one run folder per (estimator, seed), and the tables and figures.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The task's options, passed to every run.
    #[command(flatten)]
    pub task: TaskOptions,
    /// Where and how the runs go.
    #[command(flatten)]
    pub scheduler: SchedulerArgs,
}

/// Arguments of `report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The sweep's or comparison's folder.
    pub dir: PathBuf,
}

/// Arguments of `eval`.
#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// The run folder.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
}

/// Arguments of `show`.
#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// The run folder.
    #[arg(value_name = "RUN")]
    pub run: PathBuf,
}

/// Arguments of `estimators`.
#[derive(Debug, Clone, Args)]
pub struct EstimatorsArgs {
    /// Estimator options (the sampler changes SFESS's properties).
    #[command(flatten)]
    pub options: EstimatorOptions,
}

/// What `bench` measures.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    /// The k-subset distribution at the paper's sizes: normaliser + marginals, exact and
    /// Gumbel top-k sampling, n = 100,000 with its peak memory, and the paper's DFT.
    Distribution(BenchArgs),
    /// Seconds per training step of each task with SFESS + VR (S = 32) on the real data,
    /// beside what the step's matrix products alone cost (the floor).
    Train(BenchTrainArgs),
}

/// Arguments of `bench train`.
#[derive(Debug, Clone, Args)]
pub struct BenchTrainArgs {
    /// Timing options.
    #[command(flatten)]
    pub timing: BenchArgs,
    /// Folder with the mnist/ IDX files [default: $SFESS_DATA_DIR, else ~/.cache/sfess-agent/data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Backend of the k-subset law (auto: stable on the CPU, parallel on CUDA).
    #[arg(long, value_enum, default_value_t = NormalizerName::Auto)]
    pub normalizer: NormalizerName,
    /// Only this task, in this process (what each task's child process runs).
    #[arg(long, hide = true, value_name = "INDEX")]
    pub task: Option<usize>,
}

/// Arguments of the benchmarks.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Seconds spent timing each case (after one warm-up call), at most 3600.
    #[arg(long, default_value_t = 2.0, value_parser = positive_seconds)]
    pub seconds: f64,
    /// Print the measurements as JSON instead of a Markdown table.
    #[arg(long)]
    pub json: bool,
}

/// Longest `--seconds` of the benchmarks, per case.
pub const MAX_BENCH_SECONDS: f64 = 3600.0;

fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= MAX_BENCH_SECONDS => Ok(s),
        _ => Err(format!("{text:?} is not a positive number of seconds up to {MAX_BENCH_SECONDS}")),
    }
}

/// Arguments of `inspect`.
#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// Subset size k (0 <= k <= n).
    #[arg(short, long, allow_negative_numbers = true)]
    pub k: i64,
    /// Where the logits come from.
    #[command(flatten)]
    pub source: LogitsSource,
    /// How the normaliser and the marginals are computed (auto: stable on the CPU,
    /// parallel on CUDA).
    #[arg(long, value_enum, default_value_t = NormalizerName::Auto)]
    pub normalizer: NormalizerName,
    /// Number of subsets to sample. Adds `samples`, `sampler`, `seed`,
    /// `inclusion_frequencies` and `sample_counts` to the output; 0 draws nothing and adds
    /// none of them. At most 10^9.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(..=MAX_INSPECT_SAMPLES))]
    pub samples: Option<u64>,
    /// How subsets are sampled.
    #[arg(long, value_enum, default_value_t = SamplerArg::Exact)]
    pub sampler: SamplerArg,
    /// Seed of the random generator used for sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Most samples `inspect --samples` draws.
pub const MAX_INSPECT_SAMPLES: u64 = 1_000_000_000;

/// Exactly one of `--logits` and `--logits-file`.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct LogitsSource {
    /// One row of logits: numbers separated by commas and/or whitespace, optionally
    /// inside [ ], e.g. '[0.1, -2, 1.5, 0.3]'.
    #[arg(long, allow_hyphen_values = true, value_name = "LIST")]
    pub logits: Option<String>,
    /// A file holding the logits in the same format; '-' reads standard input.
    #[arg(long, value_name = "FILE")]
    pub logits_file: Option<PathBuf>,
}

/// `--sampler`: the library's [`Sampler`], as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SamplerArg {
    /// Exact conditional Poisson samples.
    #[value(name = "exact")]
    Exact,
    /// Gumbel top-k (Plackett-Luce prefix; not the conditional Poisson law).
    #[value(name = "gumbel-topk")]
    GumbelTopK,
}

impl From<SamplerArg> for Sampler {
    fn from(value: SamplerArg) -> Self {
        match value {
            SamplerArg::Exact => Sampler::Exact,
            SamplerArg::GumbelTopK => Sampler::GumbelTopK,
        }
    }
}

/// The `sfess-agent` binary's `main`: [`main_with`] the shipped environments.
pub fn main() -> std::process::ExitCode {
    main_with(Registry::shipped())
}

/// A binary's `main` with the environments of `registry`: the whole command line
/// (`train`, `--resume`, `eval`, `compare`, `report`, `envs`, ...) for them, with the same
/// messages and exit codes as `sfess-agent` (1 on an error, 128 + the signal when stopped
/// by SIGINT or SIGTERM, 2 on a usage error). A user's own binary registers its
/// environments and calls this:
///
/// ```no_run
/// use sfess_envs::registry::Registry;
/// fn main() -> std::process::ExitCode {
///     let registry = Registry::shipped();
///     // registry.register(my_env::entry()).expect("a new name");
///     sfess_agent::cli::main_with(registry)
/// }
/// ```
pub fn main_with(registry: Registry) -> std::process::ExitCode {
    use std::process::ExitCode;
    // Before anything else: libgomp reads its spin count only when it loads.
    crate::system::threads::bound_openmp_spinning();
    match run_with(registry) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`sfess-agent inspect ... | head -c 10`) is not worth a message.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        // Ignore a failure to write to stderr: there is nowhere left to report it.
        Err(error) => match error.downcast_ref::<crate::system::signals::Interrupted>() {
            // Stopped by a signal, cleanly: where it stands, and 128 + the signal.
            Some(interrupted) => {
                let _ = writeln!(std::io::stderr(), "{}: {interrupted}", program_name());
                ExitCode::from(interrupted.exit_code())
            }
            None => {
                // One line, with the whole cause chain, without libtorch's C++ stack.
                let _ =
                    writeln!(std::io::stderr(), "error: {}", crate::system::messages::one_line(&format!("{error:#}")));
                ExitCode::FAILURE
            }
        },
    }
}

/// The name this binary was started as (`sfess-agent`, or a user's binary).
fn program_name() -> String {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "sfess-agent".to_owned())
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Parses the process's arguments (clap exits by itself, with code 2, on usage errors and
/// prints `--help`/`--version`) and executes the command with the environments of
/// `registry`, writing to standard output.
///
/// # Errors
/// Whatever the command fails with; the caller prints it.
pub fn run_with(registry: Registry) -> anyhow::Result<()> {
    let cli =
        Cli::parse_from(with_env_options(&registry, std::env::args_os().map(|a| a.to_string_lossy().into_owned())));
    crate::system::threads::configure(cli.threads)?;
    let interrupt = Interrupt::install().context("installing the handlers of SIGINT and SIGTERM")?;
    crate::system::signals::fail_writes_past_the_file_size_limit().context("installing the handler of SIGXFSZ")?;
    stop_with_the_parent_compare(&interrupt);
    execute(&cli, &Arc::new(registry), &mut std::io::stdin().lock(), &mut std::io::stdout().lock())
}

/// The command line with the flags of `train` and `compare` that became environments'
/// options (`--sensor-modes 10`, `--reward-cmd=python3 score.py`) written as
/// `--env-option modes=10`; the entries declare them
/// ([`sfess_envs::registry::OptionSpec::legacy_flag`]).
pub fn with_env_options(registry: &Registry, args: impl IntoIterator<Item = String>) -> Vec<String> {
    let legacy = registry.legacy_flags();
    let mut out = Vec::new();
    let mut args = args.into_iter();
    // Only `train` and `compare` had these flags (`toy` has its own --n).
    let mut in_a_run = false;
    while let Some(arg) = args.next() {
        if !in_a_run {
            in_a_run = arg == "train" || arg == "compare";
            out.push(arg);
            continue;
        }
        if arg == "--" {
            out.push(arg);
            out.extend(args);
            break;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        match legacy.iter().find(|(old, _)| old == flag) {
            Some((_, option)) => match inline.or_else(|| args.next()) {
                Some(value) => {
                    out.push("--env-option".to_owned());
                    out.push(format!("{option}={value}"));
                }
                // No value: let clap say so, under the new name.
                None => out.push("--env-option".to_owned()),
            },
            None => out.push(arg),
        }
    }
    out
}

/// `NAME=VALUE` of `--env-option`.
fn parse_env_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE (for example n=50), got {text:?}")),
    }
}

/// The data sets (their folder names: `mnist`, `fashion-mnist`) that the command line
/// `args` (without the program's name) reads, for the `sfess-agent` wrapper to fetch them
/// first: those of the environment of `train`, `eval` and `compare`. Nothing for a command
/// line that does not parse: running it reports why.
pub fn data_sets_needed(registry: &Registry, args: &[String]) -> Vec<&'static str> {
    let args = with_env_options(registry, std::iter::once("sfess-agent".to_owned()).chain(args.iter().cloned()));
    let Ok(cli) = Cli::try_parse_from(args) else { return Vec::new() };
    let envs: Vec<String> = match &cli.command {
        Command::Train(train) => match &train.resume {
            Some(dir) => crate::run::read_config(dir, registry).map(|c| c.env).into_iter().collect(),
            None => train.resolve(None, registry).map(|c| c.env).into_iter().collect(),
        },
        Command::Eval(EvalArgs { run }) | Command::Show(ShowArgs { run }) => {
            crate::run::read_config(run, registry).map(|c| c.env).into_iter().collect()
        }
        Command::Compare(compare) => vec![compare.env.clone()],
        Command::Sweep(sweep) => match (&sweep.action, &sweep.file) {
            (None, Some(file)) => crate::sweep::spec::SweepSpec::read(file)
                .and_then(|spec| spec.combinations(registry))
                .map(|tasks| tasks.into_iter().map(|t| t.config.env).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    let mut sets = Vec::new();
    for set in envs.iter().filter_map(|env| registry.get(env).ok().and_then(|entry| entry.data)) {
        if !sets.contains(&set.dir_name()) {
            sets.push(set.dir_name());
        }
    }
    sets
}

/// A `train` started by `compare` gets SIGTERM when its compare dies, so that no run goes
/// on as an orphan that a rerun of the comparison would race with (if compare is gone
/// already, the run stops before it starts).
fn stop_with_the_parent_compare(interrupt: &Interrupt) {
    let Some(parent) = std::env::var(crate::sweep::local::PARENT_ENV).ok().and_then(|pid| pid.parse::<i32>().ok())
    else {
        return;
    };
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
    if nix::unistd::getppid().as_raw() != parent {
        interrupt.trigger(nix::sys::signal::Signal::SIGTERM as i32);
    }
}

/// Executes a parsed command line, reading `--logits-file -` from `stdin` and writing
/// the result to `stdout`.
///
/// # Errors
/// Unusable input (logits, device, k), library errors and I/O errors, each with context.
pub fn execute(
    cli: &Cli,
    registry: &Arc<Registry>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
) -> anyhow::Result<()> {
    match &cli.command {
        Command::Inspect(args) => {
            let logits = read_logits(&args.source, stdin)?;
            let device = cli.device().resolve()?;
            let options = InspectOptions {
                logits,
                k: args.k,
                normalizer: args.normalizer.resolve(device),
                device,
                sampling: args.samples.map(|samples| SampleOptions {
                    samples,
                    sampler: args.sampler.into(),
                    seed: args.seed,
                }),
            };
            let report = inspect(&options)?;
            let json = serde_json::to_string(&report).context("serialising the result")?;
            writeln!(stdout, "{json}").and_then(|()| stdout.flush()).context("writing the result")?;
            Ok(())
        }
        Command::Bench(BenchCommand::Distribution(args)) => {
            let device = cli.device().resolve()?;
            crate::system::messages::say(format_args!(
                "sfess-agent bench distribution on {}",
                bench::Machine::describe(device).line()
            ));
            let results = bench::distribution(device, args.seconds)?;
            let text = if args.json {
                serde_json::to_string_pretty(&results).context("serialising the measurements")? + "\n"
            } else {
                bench::table(&results)
            };
            stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).context("writing the measurements")?;
            Ok(())
        }
        Command::Bench(BenchCommand::Train(args)) => {
            let device = cli.device().resolve()?;
            let plan = bench::TrainBench {
                device,
                seconds: args.timing.seconds,
                data_dir: args.data_dir.clone(),
                normalizer: args.normalizer,
            };
            let results = match args.task {
                Some(index) => bench::train_step_of_task(&plan, index)?,
                None => {
                    crate::system::messages::say(format_args!(
                        "sfess-agent bench train on {}",
                        bench::Machine::describe(device).line()
                    ));
                    bench::train_steps(&plan)?
                }
            };
            let text = if args.timing.json {
                serde_json::to_string_pretty(&results).context("serialising the measurements")? + "\n"
            } else {
                bench::step_table(&results)
            };
            stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).context("writing the measurements")?;
            Ok(())
        }
        Command::Train(args) => {
            let verbosity = if args.quiet { Verbosity::Quiet } else { Verbosity::Normal };
            let holder = std::env::args().collect::<Vec<_>>().join(" ");
            let options = RunOptions {
                verbosity,
                interrupt: Interrupt::of_process(),
                holder,
                registry: Arc::clone(registry),
                figures: !args.no_figures,
            };
            let (dir, summary) = match &args.resume {
                Some(dir) => {
                    args.refuse_changes_to(dir, cli.device, registry)?;
                    (dir.clone(), crate::run::resume(dir, args.task.steps, &options)?)
                }
                None => {
                    let config = args.resolve(cli.device, registry)?;
                    let dir = args.out.clone().unwrap_or_else(|| crate::run::default_run_dir(&config));
                    let summary = crate::run::train(&config, &dir, &options)?;
                    (dir, summary)
                }
            };
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
            stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).context("writing the summary")?;
            Ok(())
        }
        Command::Eval(args) => {
            let metrics = crate::run::evaluate_run(&args.run, registry)?;
            let text = serde_json::to_string(&metrics)? + "\n";
            stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).context("writing the metrics")?;
            Ok(())
        }
        Command::Show(args) => {
            let files = crate::commands::show::show(&args.run, registry)?;
            let text: String = files.iter().map(|file| format!("{}\n", file.display())).collect();
            stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).context("writing the files' names")?;
            Ok(())
        }
        Command::Compare(args) => {
            let scheduler = args.scheduler.scheduler("compare", cli.threads, false)?;
            anyhow::ensure!(
                !args.seeds.is_empty() && !args.estimators.is_empty(),
                "--seeds and --estimators must not be empty"
            );
            let estimators = crate::commands::compare::estimators_for(registry.get(&args.env)?, &args.estimators)?;
            let spec =
                crate::commands::compare::sweep_of(&args.env, &estimators, &args.seeds, &args.task, &cli.device())?;
            let request = crate::sweep::Request {
                out: args.out.clone(),
                description: spec.description.clone(),
                tasks: spec.combinations(registry)?,
                command: "compare",
            };
            finish(&crate::sweep::execute(&request, &scheduler, registry)?, &args.out, stdout)
        }
        Command::Sweep(args) => match (&args.action, &args.file, &args.out) {
            (Some(SweepAction::Status(status)), _, _) => {
                let text = if status.wait {
                    crate::sweep::status::wait(&status.dir, false)?;
                    crate::system::files::read_text(&status.dir.join("table.md"))
                        .with_context(|| format!("reading {}", status.dir.join("table.md").display()))?
                } else {
                    let current = crate::sweep::status::status(&status.dir)?;
                    if status.json { serde_json::to_string(&current)? + "\n" } else { current.text() }
                };
                stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).context("writing the status")
            }
            (Some(SweepAction::Cancel(cancel)), _, _) => {
                let ids = crate::sweep::slurm::cancel(&cancel.dir)?;
                let text = if ids.is_empty() {
                    format!("no job of {} is queued or running\n", cancel.dir.display())
                } else {
                    format!(
                        "cancelled Slurm jobs {}; the runs keep their checkpoints: submit the sweep again to resume them\n",
                        ids.join(", ")
                    )
                };
                stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).context("writing the result")
            }
            (None, Some(file), Some(out)) => {
                let scheduler = args.scheduler.scheduler("sweep", cli.threads, args.quiet)?;
                let mut spec = crate::sweep::spec::SweepSpec::read(file)?;
                // As for `train --config`, the flag overrides the file's device.
                if let Some(device) = cli.device {
                    spec.fixed.insert("device".to_owned(), serde_json::Value::from(device.to_string()));
                }
                let request = crate::sweep::Request {
                    out: out.clone(),
                    description: spec.description.clone(),
                    tasks: spec.combinations(registry).with_context(|| format!("the sweep file {}", file.display()))?,
                    command: "sweep",
                };
                finish(&crate::sweep::execute(&request, &scheduler, registry)?, out, stdout)
            }
            // clap requires FILE and --out without a subcommand.
            (None, _, _) => anyhow::bail!("sweep needs a sweep file and --out DIR"),
        },
        Command::SweepTask(args) => {
            let options = RunOptions {
                verbosity: Verbosity::Quiet,
                interrupt: Interrupt::of_process(),
                holder: std::env::args().collect::<Vec<_>>().join(" "),
                registry: Arc::clone(registry),
                figures: true,
            };
            // For the task's log: the CPUs it uses (its share, or SLURM_CPUS_PER_TASK).
            crate::system::messages::say(format_args!(
                "{}: task {} with {} threads",
                program_name(),
                args.name,
                rayon::current_num_threads()
            ));
            crate::sweep::run_task(&args.dir, &args.name, &options).map(drop)
        }
        Command::Report(args) => {
            let table = crate::commands::report::report(&args.dir, registry)?;
            stdout.write_all(table.as_bytes()).and_then(|()| stdout.flush()).context("writing the table")?;
            Ok(())
        }
        Command::Envs(args) => {
            let text = match &args.name {
                Some(name) => crate::train::experiment::environment_page(registry, name)?,
                None => crate::train::experiment::environments_table(registry),
            };
            stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).context("writing the table")?;
            Ok(())
        }
        Command::Estimators(args) => {
            let table = crate::train::estimators::properties_table(&args.options)?;
            stdout.write_all(table.as_bytes()).and_then(|()| stdout.flush()).context("writing the table")?;
            Ok(())
        }
        Command::DataSets(args) => {
            let text: String = data_sets_needed(registry, &args.args).iter().map(|set| format!("{set}\n")).collect();
            stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).context("writing the data sets")?;
            Ok(())
        }
        Command::Toy(args) => {
            let text = crate::commands::toy::command(args, cli.device().resolve()?)?;
            stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).context("writing the result")?;
            Ok(())
        }
    }
}

/// The tables of a sweep that ended, on `stdout` (nothing for one that goes on in Slurm),
/// then an error if any of its tasks failed.
fn finish(outcome: &crate::sweep::Outcome, out: &Path, stdout: &mut dyn Write) -> anyhow::Result<()> {
    if let Some(tables) = &outcome.tables {
        stdout.write_all(tables.as_bytes()).and_then(|()| stdout.flush()).context("writing the table")?;
    }
    outcome.check(out)
}

/// The logits from `--logits` or `--logits-file` (`-` being `stdin`).
fn read_logits(source: &LogitsSource, stdin: &mut dyn Read) -> anyhow::Result<Vec<f64>> {
    match (&source.logits, &source.logits_file) {
        (Some(text), _) => parse_logits(text).context("--logits"),
        (None, Some(path)) if path == Path::new("-") => {
            let mut text = String::new();
            stdin.read_to_string(&mut text).context("--logits-file -: cannot read standard input")?;
            parse_logits(&text).context("--logits-file - (standard input)")
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--logits-file {}: cannot read the file", path.display()))?;
            parse_logits(&text).with_context(|| format!("--logits-file {}", path.display()))
        }
        // clap's group makes exactly one of them present.
        (None, None) => anyhow::bail!("one of --logits and --logits-file is required"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use sfess_agents::Normalizer;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn value_names_match_the_library() {
        for value in NormalizerName::value_variants() {
            let name = value.to_possible_value().unwrap().get_name().to_owned();
            match value.fixed() {
                Some(normalizer) => assert_eq!(name, normalizer.name()),
                None => assert_eq!(name, "auto"),
            }
        }
        for value in SamplerArg::value_variants() {
            let name = value.to_possible_value().unwrap().get_name().to_owned();
            assert_eq!(name, Sampler::from(*value).name());
        }
        assert_eq!(NormalizerName::value_variants().len(), Normalizer::ALL.len() + 1);
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("sfess-agent").chain(args.iter().copied()))
    }

    #[test]
    fn parses_inspect() {
        let cli = parse(&["inspect", "--k", "-1", "--logits", "-1 2", "--device", "cpu", "--sampler", "gumbel-topk"])
            .unwrap();
        assert_eq!(cli.device(), DeviceSpec::Cpu);
        let Command::Inspect(args) = cli.command else { panic!("not inspect") };
        assert_eq!(args.k, -1);
        assert_eq!(args.source.logits.as_deref(), Some("-1 2"));
        assert_eq!(args.sampler, SamplerArg::GumbelTopK);
        assert_eq!(args.normalizer, NormalizerName::Auto);
        assert_eq!((args.samples, args.seed), (None, 0));
        // --device also works before the subcommand, and defaults to auto.
        assert_eq!(
            parse(&["--device", "cuda:1", "inspect", "-k", "1", "--logits", "0"]).unwrap().device(),
            DeviceSpec::CudaIndex(1)
        );
        let absent = parse(&["inspect", "-k", "1", "--logits", "0"]).unwrap();
        assert_eq!((absent.device, absent.device()), (None, DeviceSpec::Auto));
    }

    #[test]
    fn exactly_one_logits_source() {
        assert!(parse(&["inspect", "--k", "1"]).is_err());
        assert!(parse(&["inspect", "--k", "1", "--logits", "0", "--logits-file", "x"]).is_err());
        assert!(parse(&["inspect", "--k", "1", "--logits", "0", "--device", "gpu"]).is_err());
    }

    #[test]
    fn execute_writes_one_json_line() {
        let cli = parse(&["inspect", "--k", "1", "--logits-file", "-", "--device", "cpu"]).unwrap();
        let mut out = Vec::new();
        execute(&cli, &Arc::new(Registry::shipped()), &mut "[0, 0]".as_bytes(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("}\n") && text.lines().count() == 1, "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["marginals"], serde_json::json!([0.5, 0.5]));
    }

    /// The `train` arguments of `args`.
    fn train_args(args: &[&str]) -> TrainArgs {
        let cli = parse(args).unwrap();
        match cli.command {
            Command::Train(train) => *train,
            _ => panic!("not train"),
        }
    }

    #[test]
    fn the_device_flag_overrides_a_config_files_device_only_when_given() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(&file, r#"{"env": "max-coverage", "device": "cpu"}"#).unwrap();
        let file = file.to_str().unwrap();
        for (args, device) in [
            (vec!["train", "--config", file], "cpu"),
            (vec!["train", "--config", file, "--device", "cuda:2"], "cuda:2"),
            (vec!["--device", "auto", "train", "--config", file], "auto"),
            (vec!["train"], "auto"),
        ] {
            let cli = parse(&args).unwrap();
            let Command::Train(train) = &cli.command else { panic!("not train") };
            assert_eq!(train.resolve(cli.device, &Registry::shipped()).unwrap().device, device, "{args:?}");
        }
    }

    #[test]
    fn imle_options_reach_the_configuration_and_the_flags_of_compare_runs() {
        let given = ["--imle-lambda", "5", "--imle-temperature", "0.5", "--imle-noise", "gumbel"];
        let train = train_args(&[&["train"][..], &given].concat());
        let options = train.resolve(None, &Registry::shipped()).unwrap().estimator_options;
        assert_eq!((options.imle_lambda, options.imle_temperature), (5.0, 0.5));
        assert_eq!(options.imle_noise, crate::config::estimators::ImleNoiseName::Gumbel);
        assert_eq!(train.task.to_flags(), given);
        let cli = parse(&[&["compare", "--env", "vae-mnist", "--out", "x"][..], &given].concat()).unwrap();
        let Command::Compare(compare) = cli.command else { panic!("not compare") };
        assert_eq!(compare.task.to_flags(), given);
    }

    #[test]
    fn the_flags_that_became_environment_options_still_work() {
        let registry = Registry::shipped();
        let args = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
        let rewritten = with_env_options(
            &registry,
            args(&[
                "sfess-agent",
                "train",
                "--env",
                "cmd",
                "--reward-cmd",
                "python3 s.py",
                "--n=20",
                "--sensor-modes",
                "4",
                "--",
                "--n",
            ]),
        );
        assert_eq!(
            rewritten,
            args(&[
                "sfess-agent",
                "train",
                "--env",
                "cmd",
                "--env-option",
                "command=python3 s.py",
                "--env-option",
                "n=20",
                "--env-option",
                "modes=4",
                "--",
                "--n"
            ])
        );
        let cli = Cli::try_parse_from(with_env_options(
            &registry,
            args(&[
                "sfess-agent",
                "train",
                "--env",
                "max-coverage",
                "--coverage-elements",
                "40",
                "--env-option",
                "n=9",
            ]),
        ))
        .unwrap();
        let Command::Train(train) = cli.command else { panic!("not train") };
        let config = train.resolve(None, &registry).unwrap().check(&registry).unwrap().into_config();
        let section = &config.env_options["max-coverage"];
        assert_eq!((section["elements"].clone(), section["n"].clone()), (40.into(), 9.into()));
        // An old flag on an environment without that option names the environment's options.
        let cli =
            Cli::try_parse_from(with_env_options(&registry, args(&["sfess-agent", "train", "--neighbours", "3"])))
                .unwrap();
        let Command::Train(train) = cli.command else { panic!("not train") };
        let message = train.resolve(None, &registry).unwrap().check(&registry).unwrap_err().to_string();
        assert!(
            message.contains("knn-mnist has no option \"neighbours\"; its options are: candidates, embedding-dim"),
            "{message}"
        );
        assert!(parse(&["train", "--env-option", "novalue"]).is_err());
    }

    #[test]
    fn the_wrapper_learns_which_data_sets_a_command_reads() {
        let registry = Registry::shipped();
        let needed =
            |list: &[&str]| data_sets_needed(&registry, &list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(needed(&["train"]), ["mnist"]);
        assert_eq!(needed(&["train", "--env", "vae-fashion", "--steps", "3"]), ["fashion-mnist"]);
        assert_eq!(needed(&["compare", "--env", "sensor-placement-mnist", "--out", "x"]), ["mnist"]);
        assert!(needed(&["train", "--env", "max-coverage"]).is_empty());
        assert!(needed(&["train", "--env", "cmd", "--reward-cmd", "cat", "--n", "3"]).is_empty());
        assert!(needed(&["inspect", "-k", "1", "--logits", "0"]).is_empty());
        assert!(needed(&["train", "--no-such-flag"]).is_empty());
    }
}
