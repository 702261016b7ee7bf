//! `sfess-agent report DIR`: a sweep's or a comparison's tables and figures, rebuilt from
//! its run folders alone ([`crate::sweep::report`]).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use sfess_envs::registry::Registry;

/// Arguments of `report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The sweep's or comparison's folder.
    pub dir: PathBuf,
}

/// `sfess-agent report`: writes the report into DIR and its Markdown tables to `stdout`.
///
/// # Errors
/// As [`crate::sweep::report::report`].
pub fn run(args: &ReportArgs, registry: &Registry, stdout: &mut dyn Write) -> anyhow::Result<()> {
    let tables = crate::sweep::report::report(&args.dir, registry)?;
    super::write_out(stdout, &tables, "the table")
}
