//! `sfess-agent data-sets -- ARGS` (hidden): the data sets (`mnist`, `fashion-mnist`) that a
//! command line reads, one per line: how the `sfess-agent` wrapper knows what to fetch
//! first.

use std::io::Write;

use clap::Args;
use sfess_envs::registry::Registry;

/// Arguments of `data-sets`.
#[derive(Debug, Clone, Args)]
pub struct DataSetsArgs {
    /// The command line, after `--`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `sfess-agent data-sets`: the data sets that `needed` finds the command line reads
/// (`needed` parses it: [`crate::cli::data_sets_needed`]), on `stdout`.
///
/// # Errors
/// `stdout` cannot be written.
pub fn run(
    args: &DataSetsArgs,
    registry: &Registry,
    needed: impl FnOnce(&Registry, &[String]) -> Vec<&'static str>,
    stdout: &mut dyn Write,
) -> anyhow::Result<()> {
    let text: String = needed(registry, &args.args).iter().map(|set| format!("{set}\n")).collect();
    super::write_out(stdout, &text, "the data sets")
}
