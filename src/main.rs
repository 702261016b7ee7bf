//! The `sfess-agent` command-line tool; see `sfess-agent --help`.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before anything else: libgomp reads its spin count only when it loads.
    sfess_agent::threads::bound_openmp_spinning();
    match sfess_agent::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`sfess-agent inspect ... | head -c 10`) is not worth a message.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, with the whole cause chain; messages from libtorch may span several.
            let message = format!("{error:#}");
            let one_line = message.lines().map(str::trim).filter(|line| !line.is_empty()).collect::<Vec<_>>().join(" ");
            // Ignore a failure to write to stderr: there is nowhere left to report it.
            let _ = writeln!(std::io::stderr(), "error: {one_line}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
