//! The subcommands, one file each: its arguments (a clap `Args` struct) and its entry
//! (`run`), which [`crate::cli::execute`] calls. The options that several share are in
//! [`task_options`] (`train`, `compare`) and [`scheduler`] (`compare`, `sweep`).

pub mod bench;
pub mod compare;
pub mod data_sets;
pub mod envs;
pub mod estimators;
pub mod eval;
pub mod inspect;
pub mod report;
pub mod scheduler;
pub mod show;
pub mod sweep;
pub mod sweep_task;
pub mod task_options;
pub mod toy;
pub mod train;

use std::io::Write;

use anyhow::Context;

/// Writes a command's output `text` to `stdout` and flushes it; an error says it was
/// `writing WHAT` (`what`: "the table").
///
/// # Errors
/// `stdout` cannot be written (a closed pipe, a full disk).
pub fn write_out(stdout: &mut dyn Write, text: &str, what: &str) -> anyhow::Result<()> {
    stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).with_context(|| format!("writing {what}"))
}
