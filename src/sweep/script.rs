//! The one rule for strings placed in a generated script or in Slurm's options: a value
//! is text without control characters ([`checked`]; a newline would end a comment or a
//! command and start another), quoted for the shell where a script holds it
//! ([`shell_quote`]), never placed in a comment, and escaped for Slurm's file name
//! patterns where sbatch expands `%` ([`slurm_filename_pattern`]).

use std::path::Path;

/// A value that cannot be placed in a generated script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// It holds a control character (a newline, a tab, an escape).
    #[error("{what} {value:?} holds a control character, which a generated script cannot hold; choose another")]
    ControlCharacter {
        /// What the value is (`the sweep folder`).
        what: String,
        /// The value.
        value: String,
    },
    /// A path that is not UTF-8 text.
    #[error("{what} {value:?} is not UTF-8 text, which a generated script cannot hold; choose another")]
    NotText {
        /// What the value is.
        what: String,
        /// The value, with its bytes that are not text replaced.
        value: String,
    },
    /// A backslash in a Slurm file name pattern: it turns every `%` replacement off (so
    /// `%a` would name one log for every task).
    #[error(
        "{what} {value:?} holds a backslash, which turns off the %a and %j of Slurm's file name patterns; choose \
         another"
    )]
    Backslash {
        /// What the value is.
        what: String,
        /// The value.
        value: String,
    },
}

/// `value`, if it holds no control character.
///
/// # Errors
/// [`ScriptError::ControlCharacter`], naming it as `what`.
pub fn checked<'a>(what: &str, value: &'a str) -> Result<&'a str, ScriptError> {
    if value.chars().any(char::is_control) {
        return Err(ScriptError::ControlCharacter { what: what.to_owned(), value: value.to_owned() });
    }
    Ok(value)
}

/// The text of `path`, if it is UTF-8 without control characters.
///
/// # Errors
/// [`ScriptError::NotText`] or [`ScriptError::ControlCharacter`].
pub fn checked_path<'a>(what: &str, path: &'a Path) -> Result<&'a str, ScriptError> {
    let text = path
        .to_str()
        .ok_or_else(|| ScriptError::NotText { what: what.to_owned(), value: path.to_string_lossy().into_owned() })?;
    checked(what, text)
}

/// `value` as one word of a POSIX shell: in single quotes, each `'` written `'\''`.
///
/// # Errors
/// As [`checked`].
pub fn shell_quote(what: &str, value: &str) -> Result<String, ScriptError> {
    Ok(format!("'{}'", checked(what, value)?.replace('\'', r"'\''")))
}

/// `path` as the literal start of a Slurm file name pattern (`--output`): each `%`
/// written `%%`, so that Slurm puts back the `%` the path holds (sbatch's "filename
/// pattern"). A backslash anywhere in a pattern turns off every replacement, `%a` too, so
/// a path holding one is refused.
///
/// # Errors
/// As [`checked_path`]; [`ScriptError::Backslash`].
pub fn slurm_filename_pattern(what: &str, path: &Path) -> Result<String, ScriptError> {
    let text = checked_path(what, path)?;
    if text.contains('\\') {
        return Err(ScriptError::Backslash { what: what.to_owned(), value: text.to_owned() });
    }
    Ok(text.replace('%', "%%"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_and_control_characters_refused() {
        assert_eq!(shell_quote("x", "a b").unwrap(), "'a b'");
        assert_eq!(shell_quote("x", "it's $(id) `id`").unwrap(), r"'it'\''s $(id) `id`'");
        for bad in ["a\nb", "a\rb", "tab\there", "esc\u{1b}[2J", "nul\0"] {
            let error = shell_quote("the sweep folder", bad).unwrap_err();
            assert!(matches!(error, ScriptError::ControlCharacter { .. }), "{bad:?}");
            // The message shows the value escaped, on one line.
            assert!(!error.to_string().contains(['\n', '\r', '\u{1b}']), "{error}");
        }
        use std::os::unix::ffi::OsStrExt;
        let not_text = Path::new(std::ffi::OsStr::from_bytes(b"a\xffb"));
        assert!(matches!(checked_path("x", not_text), Err(ScriptError::NotText { .. })));
    }

    #[test]
    fn slurm_patterns_keep_the_percent_signs_of_a_path() {
        assert_eq!(slurm_filename_pattern("x", Path::new("/a/100%j b/logs")).unwrap(), "/a/100%%j b/logs");
        assert_eq!(slurm_filename_pattern("x", Path::new("/a/%%")).unwrap(), "/a/%%%%");
        assert!(matches!(slurm_filename_pattern("x", Path::new(r"/a\b")), Err(ScriptError::Backslash { .. })));
        assert!(matches!(slurm_filename_pattern("x", Path::new("/a\nb")), Err(ScriptError::ControlCharacter { .. })));
    }
}
