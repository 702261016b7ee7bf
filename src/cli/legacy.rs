//! The flags of `train` and `compare` that became environments' options
//! (`--sensor-modes 10`), still accepted: [`with_env_options`] rewrites them before clap
//! parses the command line.

use sfess_envs::registry::Registry;

/// The command line with the flags of `train` and `compare` that became environments'
/// options (`--sensor-modes 10`, `--reward-cmd=python3 score.py`) written as
/// `--env-option modes=10`; the entries declare them
/// ([`sfess_envs::registry::OptionSpec::legacy_flag`]).
pub fn with_env_options(registry: &Registry, args: impl IntoIterator<Item = String>) -> Vec<String> {
    let legacy = registry.legacy_flags();
    let mut out = Vec::new();
    let mut args = args.into_iter();
    // Only `train` and `compare` had these flags (`toy` has its own --n).
    let mut in_a_run = false;
    while let Some(arg) = args.next() {
        if !in_a_run {
            in_a_run = arg == "train" || arg == "compare";
            out.push(arg);
            continue;
        }
        if arg == "--" {
            out.push(arg);
            out.extend(args);
            break;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        match legacy.iter().find(|(old, _)| old == flag) {
            Some((_, option)) => match inline.or_else(|| args.next()) {
                Some(value) => {
                    out.push("--env-option".to_owned());
                    out.push(format!("{option}={value}"));
                }
                // No value: let clap say so, under the new name.
                None => out.push("--env-option".to_owned()),
            },
            None => out.push(arg),
        }
    }
    out
}
