//! The command line's definition: the global options ([`Cli`]) and the subcommands
//! ([`Command`]), each with its arguments from its file in [`crate::commands`].

use clap::{Parser, Subcommand};

use crate::commands::{
    bench, compare, data_sets, envs, estimators, eval, inspect, report, show, sweep, sweep_task, toy, train,
};
use crate::system::device::DeviceSpec;

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
    Inspect(inspect::InspectArgs),
    /// Measure speed on this machine (the figures: docs/book/src/results.md and distribution.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Print the estimators and their properties (the paper's Table 1, for this
    /// implementation).
    Estimators(estimators::EstimatorsArgs),
    /// Train a k-subset policy on an environment, into a run folder.
    Train(Box<train::TrainArgs>),
    /// Recompute the test metrics of a run folder's checkpoint.
    Eval(eval::EvalArgs),
    /// Draw what a run learned into RUN/figures/ (SVG and PNG, from its checkpoint and the
    /// held-out data), with subset.json (the top-k items and the marginals); prints the
    /// files.
    Show(show::ShowArgs),
    /// List the environments (metric, whether the loss is differentiable, options), or with
    /// a NAME one environment's defaults and options.
    Envs(envs::EnvsArgs),
    /// Run several estimators over several seeds on one environment and tabulate them (a
    /// sweep over estimator × seed).
    Compare(Box<compare::CompareArgs>),
    /// Run a grid of runs from a sweep file (TOML or JSON), here or on Slurm; `sweep status
    /// DIR` and `sweep cancel DIR` follow and stop it.
    Sweep(Box<sweep::SweepArgs>),
    /// Rebuild a sweep's or a comparison's tables and figures from its run folders alone.
    Report(report::ReportArgs),
    /// The toy problem with known gradients (paper Section 4.1): bias, variance and error
    /// of every estimator (Figure 2), or with --vr-sweep the error of SFESS + VR against
    /// its number of samples (Figure 3c).
    Toy(toy::ToyArgs),
    /// The data sets (mnist, fashion-mnist) that a command line reads, one per line: how
    /// the `sfess-agent` wrapper knows what to fetch first.
    #[command(hide = true)]
    DataSets(data_sets::DataSetsArgs),
    /// One task of a sweep: what a sweep's local pool and its Slurm array job run.
    #[command(hide = true)]
    SweepTask(sweep_task::SweepTaskArgs),
}
