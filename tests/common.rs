//! Helpers shared by the integration tests: run the binary as a user would.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// The binary, started without a loader path: it must find libtorch through its rpath.
pub fn sfess() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sfess-agent"));
    command.env_remove("LD_LIBRARY_PATH");
    command
}

pub fn run(args: &[&str]) -> Output {
    sfess().args(args).stdin(Stdio::null()).output().expect("the binary starts")
}

/// [`run`] with owned arguments.
pub fn run_owned(args: &[String]) -> Output {
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

pub fn run_with_stdin(args: &[&str], input: &str) -> Output {
    with_stdin(sfess().args(args), input)
}

/// Runs `command` with `input` on its standard input, and its outputs captured.
fn with_stdin(command: &mut Command, input: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Succeeds and prints exactly one line of JSON: the object.
pub fn json(output: &Output) -> Value {
    assert!(output.status.success(), "status {:?}, stderr: {}", output.status, stderr(output));
    let text = stdout(output);
    assert!(text.ends_with('\n') && text.lines().count() == 1, "not one line: {text:?}");
    serde_json::from_str(&text).unwrap()
}

/// Fails with one of our own errors: exit code 1, one line `error: ...` on stderr that
/// contains `phrase`, nothing on stdout, no panic.
pub fn fails_with(output: &Output, phrase: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(1), "stderr: {err}");
    assert!(output.stdout.is_empty(), "stdout: {}", stdout(output));
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.starts_with("error: ") && err.ends_with('\n') && err.lines().count() == 1, "not one line: {err:?}");
    assert!(err.contains(phrase), "{phrase:?} not in {err:?}");
}

/// A usage error reported by clap: exit code 2, no panic.
pub fn usage_error(output: &Output, phrase: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(phrase), "{phrase:?} not in {err:?}");
}

/// Runs the Python `script` with `args` (the python3 on the PATH: scripts/env.sh puts
/// PyTorch's first).
pub fn run_python(script: &str, args: &[&str]) -> Output {
    with_stdin(Command::new("python3").arg("-").args(args), script)
}

/// Runs `args` with every file it writes limited to `bytes`, and SIGXFSZ at its default
/// (killing), as a shell's `ulimit -f` leaves it: the binary itself must turn the signal
/// into a write error.
pub fn run_with_file_limit(args: &[String], bytes: u64) -> Output {
    let script = "import os, resource, signal, sys\n\
                  signal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n\
                  limit = int(sys.argv[1])\n\
                  resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n\
                  os.execv(sys.argv[2], sys.argv[2:])\n";
    Command::new("python3")
        .args(["-c", script, &bytes.to_string(), env!("CARGO_BIN_EXE_sfess-agent")])
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}
