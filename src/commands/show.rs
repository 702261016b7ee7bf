//! `sfess-agent show RUN`: draws what a run learned into `RUN/figures/` ([`crate::run::figures`]).

use std::path::{Path, PathBuf};

use sfess_envs::registry::Registry;

use crate::run::figures::{RunName, write_figures};
use crate::run::{CHECKPOINT, at_checkpoint, read_config};

/// Arguments of `show`.
#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    /// The run folder.
    #[arg(value_name = "RUN")]
    pub run: PathBuf,
}

/// `sfess-agent show RUN`: [`show`], then the files written on `stdout`, one per line.
///
/// # Errors
/// As [`show`]; `stdout` cannot be written.
pub fn run(args: &ShowArgs, registry: &Registry, stdout: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let files = show(&args.run, registry)?;
    let text: String = files.iter().map(|file| format!("{}\n", file.display())).collect();
    super::write_out(stdout, &text, "the files' names")
}

/// `sfess-agent show RUN`: builds the run's experiment, loads its checkpoint and writes
/// its figures; returns the files written. An Agent's run folder (from a program of yours,
/// or Python's `sfess.Agent`) gets the figures of its records
/// ([`crate::agent::redraw_record_figures`]): its environment is the program's, which the
/// command line cannot rebuild.
///
/// # Errors
/// No run or no checkpoint in `dir`; a corrupt checkpoint; the data cannot be loaded; a
/// figure cannot be written.
pub fn show(dir: &Path, registry: &Registry) -> anyhow::Result<Vec<PathBuf>> {
    if crate::agent::is_agent_run(dir) {
        return crate::agent::redraw_record_figures(dir);
    }
    let config = read_config(dir, registry)?;
    let path = dir.join(CHECKPOINT);
    anyhow::ensure!(
        path.exists(),
        "{} has no checkpoint yet ({CHECKPOINT}): nothing was learned to show; train it first (sfess-agent train --resume {})",
        dir.display(),
        dir.display()
    );
    let spec = config.check(registry)?;
    let (mut experiment, progress) = at_checkpoint(dir, &spec)?;
    write_figures(dir, &mut experiment, &RunName::of(spec.config()), progress.step)
}
