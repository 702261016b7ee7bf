//! The command line: its definition ([`Cli`], in `args.rs`), the old flags it still
//! accepts ([`with_env_options`], in `legacy.rs`), the fast front binary that answers the
//! commands that compute nothing and starts the engine for the others ([`front`]), the
//! engine's setup ([`main_with`], [`run_with`]) and the dispatch of each subcommand to its
//! file in [`crate::commands`] ([`execute`]).

mod args;
pub mod front;
mod legacy;

pub use args::{Cli, Command};
pub use legacy::with_env_options;

use std::io::{Read, Write};
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use sfess_envs::registry::Registry;

use crate::commands::{
    bench, compare, data_sets, envs, estimators, eval, inspect, report, show, sweep, sweep_task, toy, train,
};
use crate::system::messages::program_name;
use crate::system::signals::Interrupt;

/// The engine's `main` (`sfess-agent-engine`, which the `sfess-agent` binary starts for
/// every command that computes: [`front`]): [`main_with`] the shipped environments.
pub fn main() -> std::process::ExitCode {
    main_with(Registry::shipped())
}

/// A binary's `main` with the environments of `registry`: the whole command line
/// (`train`, `--resume`, `eval`, `compare`, `report`, `envs`, ...) for them, with the same
/// messages and exit codes as `sfess-agent` (1 on an error, 128 + the signal when stopped
/// by SIGINT or SIGTERM, 2 on a usage error). A user's own binary registers its
/// environments and calls this:
///
/// ```no_run
/// use sfess_envs::registry::Registry;
/// fn main() -> std::process::ExitCode {
///     let registry = Registry::shipped();
///     // registry.register(my_env::entry()).expect("a new name");
///     sfess_agent::cli::main_with(registry)
/// }
/// ```
pub fn main_with(registry: Registry) -> std::process::ExitCode {
    exit_code(run_with(registry))
}

/// The exit code of a command's `result`, its error printed on stderr: 0, 1 on an error,
/// 128 + the signal when stopped by SIGINT or SIGTERM.
fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    use std::process::ExitCode;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`sfess-agent inspect ... | head -c 10`) is not worth a message.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        // Ignore a failure to write to stderr: there is nowhere left to report it.
        Err(error) => match error.downcast_ref::<crate::system::signals::Interrupted>() {
            // Stopped by a signal, cleanly: where it stands, and 128 + the signal.
            Some(interrupted) => {
                let _ = writeln!(std::io::stderr(), "{}: {interrupted}", program_name());
                ExitCode::from(interrupted.exit_code())
            }
            None => {
                // One line, with the whole cause chain, without libtorch's C++ stack.
                let _ =
                    writeln!(std::io::stderr(), "error: {}", crate::system::messages::one_line(&format!("{error:#}")));
                ExitCode::FAILURE
            }
        },
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Parses the process's arguments (clap exits by itself, with code 2, on usage errors and
/// prints `--help`/`--version`) and executes the command with the environments of
/// `registry`, writing to standard output.
///
/// # Errors
/// Whatever the command fails with; the caller prints it.
pub fn run_with(registry: Registry) -> anyhow::Result<()> {
    let cli =
        Cli::parse_from(with_env_options(&registry, std::env::args_os().map(|a| a.to_string_lossy().into_owned())));
    crate::system::threads::configure(cli.threads)?;
    let interrupt = Interrupt::install().context("installing the handlers of SIGINT and SIGTERM")?;
    crate::system::signals::fail_writes_past_the_file_size_limit().context("installing the handler of SIGXFSZ")?;
    stop_with_the_parent_compare(&interrupt);
    execute(&cli, &Arc::new(registry), &mut std::io::stdin().lock(), &mut std::io::stdout().lock())
}

/// The data sets (their folder names: `mnist`, `fashion-mnist`) that the command line
/// `args` (without the program's name) reads, for the `sfess-agent` wrapper to fetch them
/// first: those of the environment of `train`, `eval`, `show`, `compare` and `sweep`.
/// Nothing for a command line that does not parse: running it reports why.
pub fn data_sets_needed(registry: &Registry, args: &[String]) -> Vec<&'static str> {
    let args = with_env_options(registry, std::iter::once("sfess-agent".to_owned()).chain(args.iter().cloned()));
    let Ok(cli) = Cli::try_parse_from(args) else { return Vec::new() };
    let envs: Vec<String> = match &cli.command {
        Command::Train(train) => match &train.resume {
            Some(dir) => crate::run::read_config(dir, registry).map(|c| c.env).into_iter().collect(),
            None => train.resolve(None, registry).map(|c| c.env).into_iter().collect(),
        },
        Command::Eval(eval::EvalArgs { run }) | Command::Show(show::ShowArgs { run }) => {
            crate::run::read_config(run, registry).map(|c| c.env).into_iter().collect()
        }
        Command::Compare(compare) => vec![compare.env.clone()],
        Command::Sweep(sweep) => match (&sweep.action, &sweep.file) {
            (None, Some(file)) => crate::sweep::spec::SweepSpec::read(file)
                .and_then(|spec| spec.combinations(registry))
                .map(|tasks| tasks.into_iter().map(|t| t.config.env).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    let mut sets = Vec::new();
    for set in envs.iter().filter_map(|env| registry.get(env).ok().and_then(|entry| entry.data)) {
        if !sets.contains(&set.dir_name()) {
            sets.push(set.dir_name());
        }
    }
    sets
}

/// A `train` started by `compare` gets SIGTERM when its compare dies, so that no run goes
/// on as an orphan that a rerun of the comparison would race with (if compare is gone
/// already, the run stops before it starts).
fn stop_with_the_parent_compare(interrupt: &Interrupt) {
    let Some(parent) = std::env::var(crate::sweep::local::PARENT_ENV).ok().and_then(|pid| pid.parse::<i32>().ok())
    else {
        return;
    };
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
    if nix::unistd::getppid().as_raw() != parent {
        interrupt.trigger(nix::sys::signal::Signal::SIGTERM as i32);
    }
}

/// Executes a parsed command line, reading `--logits-file -` from `stdin` and writing
/// the result to `stdout`: one call to the subcommand's entry, with the global options it
/// uses.
///
/// # Errors
/// Unusable input (logits, device, k), library errors and I/O errors, each with context.
pub fn execute(
    cli: &Cli,
    registry: &Arc<Registry>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
) -> anyhow::Result<()> {
    match &cli.command {
        Command::Inspect(args) => inspect::run(args, cli.device(), stdin, stdout),
        Command::Bench(command) => bench::run(command, cli.device(), stdout),
        Command::Estimators(args) => estimators::run(args, stdout),
        Command::Train(args) => train::run(args, cli.device, registry, stdout),
        Command::Eval(args) => eval::run(args, registry, stdout),
        Command::Show(args) => show::run(args, registry, stdout),
        Command::Envs(args) => envs::run(args, registry, stdout),
        Command::Compare(args) => compare::run(args, &cli.device(), cli.threads, registry, stdout),
        Command::Sweep(args) => sweep::run(args, cli.device, cli.threads, registry, stdout),
        Command::Report(args) => report::run(args, registry, stdout),
        Command::Toy(args) => toy::run(args, cli.device(), stdout),
        Command::DataSets(args) => data_sets::run(args, registry, data_sets_needed, stdout),
        Command::SweepTask(args) => sweep_task::run(args, registry),
    }
}

#[cfg(test)]
mod tests;
