//! The `sfess-agent` binary, which starts in milliseconds: the commands that compute
//! nothing (`--help`, `--version`, `envs`, `estimators`, `sweep status`, `sweep cancel`, and
//! the wrapper's `data-sets`) are answered here, in a process that never loads libtorch;
//! every other command line runs in [`ENGINE`](crate::system::binaries::ENGINE) (the whole
//! tool, [`super::main`]), which replaces this process (`exec`), beside it in the same folder.
//!
//! libtorch takes 0.4–0.8 s to load (its CUDA libraries included), and libgomp reads its
//! spin count only when it loads: the engine is started with
//! [`threads::SPIN_COUNT_VARIABLE`] set (see [`threads`]), so that it never starts twice.
//!
//! What this file links decides how fast it starts: it reaches the environments through
//! [`Registry::catalog`] (their descriptions, not their constructors) and the estimators
//! through [`crate::train::estimators::properties`], so that the release build (with
//! link-time optimisation, which drops the code nothing here calls) needs no libtorch
//! library. `scripts/test.sh` checks the release binary's needed libraries. When it fails,
//! the linker names the path that keeps tensor code alive:
//! `cargo rustc --release --bin sfess-agent -- -C link-arg=-Wl,--why-live=at_free -W linker-messages`
//! (`at_free` is libtorch's C shim; a data set dropped in a panic's clean-up was one such path).

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use sfess_envs::registry::Registry;

use super::{Cli, Command};
use crate::commands::{data_sets, envs, estimators, sweep};
use crate::system::binaries::engine_path;
use crate::system::threads;

/// The `sfess-agent` binary's `main`.
pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    match Cli::try_parse_from(&args) {
        // clap prints the help or the version (exit code 0).
        Err(error) if shows_help_or_version(error.kind()) => error.exit(),
        Ok(cli) => match answer_here(&cli) {
            Some(result) => super::exit_code(result),
            None => exec_engine(&args),
        },
        // A usage error, or the old flags of `train` (`--sensor-modes`) that the engine
        // rewrites first: the engine parses again and says the same.
        Err(_) => exec_engine(&args),
    }
}

fn shows_help_or_version(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    )
}

/// Runs `cli` here when it computes nothing; `None` for the engine's commands.
fn answer_here(cli: &Cli) -> Option<anyhow::Result<()>> {
    let stdout = &mut std::io::stdout().lock();
    if let Err(error) = threads::check(cli.threads) {
        return Some(Err(error));
    }
    match &cli.command {
        Command::Envs(args) => Some(envs::run(args, &Registry::catalog(), stdout)),
        Command::Estimators(args) => Some(estimators::run(args, stdout)),
        Command::Sweep(args) => args.action.as_ref().map(|action| sweep::follow(action, stdout)),
        Command::DataSets(args) => Some(data_sets::run(args, &Registry::catalog(), super::data_sets_needed, stdout)),
        _ => None,
    }
}

/// Replaces this process with [`ENGINE`](crate::system::binaries::ENGINE) on the same arguments (its own name kept, for
/// messages), with libgomp's spin count bounded unless the user set it; returns only when
/// the engine cannot be started.
fn exec_engine(args: &[OsString]) -> ExitCode {
    let engine = engine_path();
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let mut command = std::process::Command::new(&engine);
        if let Some(name) = args.first() {
            command.arg0(name);
        }
        command.args(args.iter().skip(1));
        if let Some((variable, value)) = threads::spin_count_to_set() {
            command.env(variable, value);
        }
        let error = command.exec();
        eprintln!(
            "error: cannot start {} ({error}); it is built beside sfess-agent (cargo build --release --bins)",
            engine.display()
        );
    }
    #[cfg(not(unix))]
    {
        let _ = args;
        eprintln!("error: this platform cannot start {}", engine.display());
    }
    ExitCode::FAILURE
}
