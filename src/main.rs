//! The `sfess-agent` command-line tool; see `sfess-agent --help`.

use std::io::Write;
use std::process::ExitCode;

use sfess_agent::signals::Interrupted;

fn main() -> ExitCode {
    // Before anything else: libgomp reads its spin count only when it loads.
    sfess_agent::threads::bound_openmp_spinning();
    match sfess_agent::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`sfess-agent inspect ... | head -c 10`) is not worth a message.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        // Ignore a failure to write to stderr: there is nowhere left to report it.
        Err(error) => match error.downcast_ref::<Interrupted>() {
            // Stopped by a signal, cleanly: where it stands, and 128 + the signal.
            Some(interrupted) => {
                let _ = writeln!(std::io::stderr(), "sfess-agent: {interrupted}");
                ExitCode::from(interrupted.exit_code())
            }
            None => {
                // One line, with the whole cause chain, without libtorch's C++ stack.
                let _ =
                    writeln!(std::io::stderr(), "error: {}", sfess_agent::messages::one_line(&format!("{error:#}")));
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
