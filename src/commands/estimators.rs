//! `sfess-agent estimators`: the estimators and their properties (the paper's Table 1, for
//! this implementation: [`crate::train::estimators::properties_table`]).

use std::io::Write;

use clap::Args;

use crate::config::estimators::EstimatorOptions;

/// Arguments of `estimators`.
#[derive(Debug, Clone, Args)]
pub struct EstimatorsArgs {
    /// Estimator options (the sampler changes SFESS's properties).
    #[command(flatten)]
    pub options: EstimatorOptions,
}

/// `sfess-agent estimators`: the table, in Markdown, on `stdout`.
///
/// # Errors
/// An estimator option out of range; `stdout` cannot be written.
pub fn run(args: &EstimatorsArgs, stdout: &mut dyn Write) -> anyhow::Result<()> {
    let table = crate::train::estimators::properties_table(&args.options)?;
    super::write_out(stdout, &table, "the table")
}
