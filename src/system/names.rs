//! The one rule for names that become file or folder names: a sweep's task names (from its
//! grid values and labels, or read back from `sweep.json`), the run folders of a comparison,
//! the environment's name in a run's `config.json`, and `sweep-task`'s NAME.
//!
//! A [`PathName`] is 1 to [`MAX_LEN`] ASCII letters, digits, `.`, `_` and `-`, starting
//! with a letter, a digit or `_` (so never `.`, `..`, a hidden file, an absolute path, a
//! path of several components, or something a command line reads as a flag). It is none of
//! the names the sweep folder's own files take ([`sweep_folder::ALL`], in any case), and it
//! does not end in `.svg` or `.png`, the report's figures.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The longest name, in bytes: room under the 255 bytes most file systems allow.
pub const MAX_LEN: usize = 200;

/// The extensions of the figures that `report` writes into a sweep's folder.
pub const FIGURE_EXTENSIONS: [&str; 2] = ["svg", "png"];

/// The names of a sweep folder's own files and folders ([`crate::sweep`] and its report
/// use them from here), which no task may take.
pub mod sweep_folder {
    /// The sweep's record: its tasks.
    pub const RECORD: &str = "sweep.json";
    /// The report's tables, in Markdown.
    pub const TABLE_MD: &str = "table.md";
    /// The report's rows, one CSV line each.
    pub const TABLE_CSV: &str = "table.csv";
    /// The report's numbers, as JSON (a run's summary has the same name).
    pub const SUMMARY: &str = "summary.json";
    /// The Slurm scripts and logs.
    pub const SLURM_DIR: &str = "slurm";
    /// Every one of them.
    pub const ALL: [&str; 5] = [RECORD, TABLE_MD, TABLE_CSV, SUMMARY, SLURM_DIR];
}

/// A name that is safe as one path component inside a run's or a sweep's folder.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PathName(String);

/// Why a name is not a [`PathName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, too long, or a character outside the set.
    #[error(
        "the name {0:?} is not allowed: a name is 1 to {MAX_LEN} ASCII letters, digits, '.', '_' and '-', \
         starting with a letter, a digit or '_'"
    )]
    Characters(String),
    /// One of the sweep folder's own files, or a figure's.
    #[error(
        "the name {0:?} is taken by the sweep folder's own files ({files}, and figures ending in .svg or .png)",
        files = sweep_folder::ALL.join(", ")
    )]
    Reserved(String),
}

impl PathName {
    /// `name`, checked.
    ///
    /// # Errors
    /// [`NameError`]: a name that breaks the rule (the message says what is allowed).
    pub fn parse(name: &str) -> Result<Self, NameError> {
        let mut chars = name.chars();
        let first = chars.next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let rest = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !first || !rest || name.len() > MAX_LEN {
            return Err(NameError::Characters(name.to_owned()));
        }
        let lower = name.to_ascii_lowercase();
        let figure = FIGURE_EXTENSIONS.iter().any(|ext| lower.strip_suffix(ext).is_some_and(|s| s.ends_with('.')));
        if figure || sweep_folder::ALL.contains(&lower.as_str()) {
            return Err(NameError::Reserved(name.to_owned()));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a file system compares it at worst (case-insensitively): two names with
    /// one key are one folder on some file systems.
    pub fn folder_key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl std::str::FromStr for PathName {
    type Err = NameError;
    fn from_str(name: &str) -> Result<Self, NameError> {
        Self::parse(name)
    }
}

impl TryFrom<String> for PathName {
    type Error = NameError;
    fn try_from(name: String) -> Result<Self, NameError> {
        Self::parse(&name)
    }
}

impl From<PathName> for String {
    fn from(name: PathName) -> String {
        name.0
    }
}

impl std::ops::Deref for PathName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<Path> for PathName {
    fn as_ref(&self) -> &Path {
        Path::new(&self.0)
    }
}

impl AsRef<std::ffi::OsStr> for PathName {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_ref()
    }
}

impl PartialEq<str> for PathName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for PathName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for PathName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_sweeps_make_are_valid() {
        for name in [
            "n30-sfess-vr-seed0",
            "vae-fashion-d20-n20-k10-simple-seed4",
            "learning-rate0.001-sfess-seed0",
            "lr1e-5-gs-seed3",
            "temperature-0.5",
            "_private",
            "10-10-5",
            &"a".repeat(MAX_LEN),
        ] {
            assert_eq!(PathName::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn paths_dots_flags_and_the_sweep_folders_own_files_are_refused() {
        for name in ["", ".", "..", ".hidden", "../x", "../../x", "/tmp/x", "a/b", "a b", "-h", "é", "a\nb"] {
            let error = PathName::parse(name).unwrap_err();
            assert!(matches!(error, NameError::Characters(_)), "{name:?}");
            assert!(error.to_string().contains("letters, digits"), "{error}");
        }
        assert!(PathName::parse(&"a".repeat(MAX_LEN + 1)).is_err());
        for name in ["table.md", "TABLE.MD", "table.csv", "sweep.json", "summary.json", "slurm", "curves.png", "x.SVG"]
        {
            let error = PathName::parse(name).unwrap_err();
            assert!(matches!(error, NameError::Reserved(_)), "{name:?}");
            assert!(error.to_string().contains("table.md"), "{error}");
        }
    }

    #[test]
    fn a_name_read_from_a_file_is_checked() {
        let name: Result<PathName, _> = serde_json::from_str("\"../../x\"");
        assert!(name.unwrap_err().to_string().contains("is not allowed"));
        let name: PathName = serde_json::from_str("\"sfess-seed0\"").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"sfess-seed0\"");
    }
}
