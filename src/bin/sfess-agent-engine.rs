//! The `sfess-agent` tool's engine: every command, with libtorch. The `sfess-agent` binary
//! starts it for each command that computes (`sfess_agent::cli::front`).

fn main() -> std::process::ExitCode {
    sfess_agent::cli::main()
}
