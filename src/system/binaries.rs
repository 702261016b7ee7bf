//! The tool's two binaries and how each finds the other: `sfess-agent`, which answers the
//! commands that compute nothing and starts the engine for the others
//! ([`crate::cli::front`]), and `sfess-agent-engine`, the whole tool, built beside it.

use std::path::PathBuf;

/// The binary users run.
pub const FRONT: &str = "sfess-agent";
/// The binary that runs every command that computes: the whole tool.
pub const ENGINE: &str = "sfess-agent-engine";

/// [`ENGINE`] in this binary's folder.
pub fn engine_path() -> PathBuf {
    std::env::current_exe().map_or_else(|_| PathBuf::from(ENGINE), |exe| exe.with_file_name(ENGINE))
}

/// The binary that runs the tool's commands from a script or a child process: the
/// [`FRONT`] beside this engine when there is one (it starts the engine with libgomp's spin
/// count bounded), else this program itself (a user's own binary, `cli::main_with`).
///
/// # Errors
/// This program's path cannot be read.
pub fn command_binary() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let front = exe.with_file_name(FRONT);
    let is_engine = exe.file_name().is_some_and(|name| name == ENGINE);
    Ok(if is_engine && front.is_file() { front } else { exe })
}
