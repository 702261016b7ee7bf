//! Error messages as the binary prints them: one line, on a standard error that may be
//! gone ([`say`]), under the binary's own name ([`program_name`]).

use std::io::Write;

/// Writes `message` and a newline to standard error, ignoring a failure: a standard error
/// on a full disk or a closed pipe has nowhere to report it, and `eprintln!` would panic
/// (exit 101). Every message of the library goes through here.
pub fn say(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{message}");
}

/// The name this binary was started as (`sfess-agent`, or a user's binary).
pub fn program_name() -> String {
    std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "sfess-agent".to_owned())
}

/// `message` on one line: its lines trimmed and joined by spaces, without the C++ stack
/// that libtorch appends to its errors (`Exception raised from …` and the `frame #N:` lines
/// after it), and with any other control character escaped ([`sfess_envs::printable`]):
/// a message may quote what a command or a file held.
pub fn one_line(message: &str) -> String {
    let mut kept = Vec::new();
    let mut in_stack = false;
    for line in message.lines().map(str::trim) {
        if line.starts_with("Exception raised from") {
            in_stack = true;
        } else if in_stack && !line.starts_with("frame #") {
            in_stack = false;
        }
        if !in_stack && !line.is_empty() {
            kept.push(sfess_envs::printable(line));
        }
    }
    kept.join(" ")
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn libtorch_stacks_are_dropped() {
        let message = "reading x: PytorchStreamReader failed reading zip archive: failed finding central directory\n\
                       Exception raised from valid at /pytorch/caffe2/serialize/inline_container.cc:233 (most recent call first):\n\
                       frame #0: c10::Error::Error(c10::SourceLocation, std::string) + 0x98 (0x7f in libc10.so)\n\
                       frame #1: <unknown function> + 0x1 (0x7f in libtorch_cpu.so)\n";
        assert_eq!(
            one_line(message),
            "reading x: PytorchStreamReader failed reading zip archive: failed finding central directory"
        );
        assert_eq!(one_line("a\n  b\n\nc"), "a b c");
        assert_eq!(one_line("sbatch: \x1b]0;title\x07error\r\n"), "sbatch: \\u{1b}]0;title\\u{7}error");
    }
}
