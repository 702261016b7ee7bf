//! The registry's errors, and the rule every environment's and option's name follows.

/// Errors of the registry: unknown names, duplicates, options that do not fit.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RegistryError {
    /// No environment of this name.
    #[error("unknown environment {name:?}; the environments are: {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// Every registered name, comma-separated.
        known: String,
    },
    /// An environment of this name is registered already.
    #[error("an environment named {0:?} is registered already")]
    Duplicate(String),
    /// A name that cannot be used on a command line or as a folder name.
    #[error("{what} {name:?} must be made of lowercase letters, digits, '-' and '_', starting with a letter")]
    BadName {
        /// "environment name" or "option name".
        what: &'static str,
        /// The name.
        name: String,
    },
    /// An option the environment does not have.
    #[error("{env} has no option {option:?}; its options are: {known} (see sfess-agent envs {env})")]
    UnknownOption {
        /// Environment.
        env: String,
        /// The option given.
        option: String,
        /// The environment's options, comma-separated (or "none").
        known: String,
    },
    /// An option's value does not fit its type or range.
    #[error("{env} option {option}: {problem} (see sfess-agent envs {env})")]
    BadValue {
        /// Environment.
        env: String,
        /// The option.
        option: String,
        /// What is wrong, with the value.
        problem: String,
    },
}

/// Checks that `name` (`what`: "environment name", "option name") is usable on a command
/// line and as a folder name: lowercase letters, digits, `-` and `_`, starting with a letter.
///
/// # Errors
/// [`RegistryError::BadName`].
pub fn check_name(what: &'static str, name: &str) -> Result<(), RegistryError> {
    let mut chars = name.chars();
    let good = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if good { Ok(()) } else { Err(RegistryError::BadName { what, name: name.to_owned() }) }
}
