//! Where and how `compare` and `sweep` run their tasks ([`SchedulerArgs`]): processes on
//! this machine or a Slurm array job.

use clap::{Args, ValueEnum};

use crate::system::signals::Interrupt;

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
