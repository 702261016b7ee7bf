//! `sfess-agent eval --run DIR`: the test metrics of a run folder's checkpoint, recomputed.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use sfess_envs::registry::Registry;

/// Arguments of `eval`.
#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// The run folder.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
}

/// `sfess-agent eval`: the metrics as one line of JSON on `stdout`.
///
/// # Errors
/// As [`crate::run::evaluate_run`].
pub fn run(args: &EvalArgs, registry: &Registry, stdout: &mut dyn Write) -> anyhow::Result<()> {
    let metrics = crate::run::evaluate_run(&args.run, registry)?;
    super::write_out(stdout, &(serde_json::to_string(&metrics)? + "\n"), "the metrics")
}
