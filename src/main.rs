//! The `sfess-agent` command-line tool; see `sfess-agent --help`.

fn main() -> std::process::ExitCode {
    sfess_agent::cli::main()
}
