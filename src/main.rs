//! The `sfess-agent` command-line tool; see `sfess-agent --help`. It answers the commands
//! that compute nothing itself and starts `sfess-agent-engine` for the others
//! (`sfess_agent::cli::front`).

fn main() -> std::process::ExitCode {
    sfess_agent::cli::front::main()
}
