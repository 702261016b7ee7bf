//! An environment's options: their kinds and ranges ([`OptionSpec`]), the bounds of those
//! ranges, and the checked values a constructor reads ([`EnvOptions`]).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::env::EnvError;

/// Most rows of a step or a split's draw (`--batch-size`, candidates, references).
pub const MAX_ROWS: usize = 1_000_000;
/// Most items or elements an environment chooses from.
pub const MAX_ITEMS: usize = 1_000_000;
/// Most entries of the VAE's code, groups × items.
pub const MAX_LATENT: usize = 100_000;
/// Most units of a layer (hidden units, context and embedding dimensions).
pub const MAX_WIDTH: usize = 65_536;

/// The type and range of an environment's option.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionKind {
    /// A whole number in `min..=max` (a size: items, neighbours, modes).
    Count {
        /// Smallest value.
        min: usize,
        /// Largest value.
        max: usize,
    },
    /// A 64-bit unsigned integer (a seed).
    Seed,
    /// A finite number in `(0, max]`.
    Positive {
        /// Largest value.
        max: f64,
    },
    /// A non-empty string (a command).
    Text,
    /// A path; a new run records it absolute, so that a resumption from another folder
    /// reads the same place.
    Folder,
}

impl OptionKind {
    /// The type as `sfess-agent envs NAME` shows it.
    pub fn describe(&self) -> String {
        match self {
            OptionKind::Count { min, max } => format!("integer {min}..={max}"),
            OptionKind::Seed => "seed (integer)".to_owned(),
            OptionKind::Positive { max } => format!("number in (0, {max}]"),
            OptionKind::Text => "text".to_owned(),
            OptionKind::Folder => "folder".to_owned(),
        }
    }

    /// Checks `value` (JSON) against the kind; also parses a command-line string.
    pub(super) fn accept(&self, value: &Value) -> Result<Value, String> {
        let text = value.as_str();
        match self {
            OptionKind::Count { min, max } => {
                let number = match (value.as_u64(), text) {
                    (Some(n), _) => Some(n),
                    (None, Some(t)) => t.trim().parse::<u64>().ok(),
                    _ => None,
                };
                let number = number.ok_or_else(|| format!("expected a whole number, got {value}"))?;
                let fits = usize::try_from(number).is_ok_and(|n| (*min..=*max).contains(&n));
                if !fits {
                    return Err(format!("must be between {min} and {max}, got {number}"));
                }
                Ok(Value::from(number))
            }
            OptionKind::Seed => match (value.as_u64(), text.map(|t| t.trim().parse::<u64>())) {
                (Some(n), _) | (None, Some(Ok(n))) => Ok(Value::from(n)),
                _ => Err(format!("expected a seed (a whole number from 0 to {}), got {value}", u64::MAX)),
            },
            OptionKind::Positive { max } => {
                let number = match (value.as_f64(), text) {
                    (Some(x), _) => Some(x),
                    (None, Some(t)) => t.trim().parse::<f64>().ok(),
                    _ => None,
                };
                let number = number.ok_or_else(|| format!("expected a number, got {value}"))?;
                if !(number > 0.0 && number <= *max) {
                    return Err(format!("must be positive and at most {max}, got {number}"));
                }
                Ok(Value::from(number))
            }
            OptionKind::Text | OptionKind::Folder => match text {
                Some(t) if !t.trim().is_empty() => Ok(Value::from(t)),
                _ => Err(format!("expected a non-empty string, got {value}")),
            },
        }
    }
}

/// One option of an environment: `--env-option NAME=VALUE` on the command line, a key of
/// the environment's section in a configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionSpec {
    /// Name (`modes`).
    pub name: String,
    /// Type and range.
    pub kind: OptionKind,
    /// Default; `None` for an option that must be given.
    pub default: Option<Value>,
    /// One line of help.
    pub help: String,
    /// The global flag this option had before it moved to its environment
    /// (`--sensor-modes`), still accepted on the command line; also its old configuration
    /// key, with `_` for `-` (`sensor_modes`).
    pub legacy_flag: Option<String>,
}

impl OptionSpec {
    fn new(name: &str, kind: OptionKind, default: Option<Value>, help: &str) -> Self {
        Self { name: name.to_owned(), kind, default, help: help.to_owned(), legacy_flag: None }
    }

    /// A size in `min..=max`, `default` when not given.
    pub fn count(name: &str, default: usize, min: usize, max: usize, help: &str) -> Self {
        Self::new(name, OptionKind::Count { min, max }, Some(Value::from(default)), help)
    }

    /// A size in `min..=max` that must be given.
    pub fn required_count(name: &str, min: usize, max: usize, help: &str) -> Self {
        Self::new(name, OptionKind::Count { min, max }, None, help)
    }

    /// A size in `min..=max` that may be left unset ([`EnvOptions::optional_count`]).
    pub fn optional_count(name: &str, min: usize, max: usize, help: &str) -> Self {
        Self::new(name, OptionKind::Count { min, max }, Some(Value::Null), help)
    }

    /// A seed, `default` when not given.
    pub fn seed(name: &str, default: u64, help: &str) -> Self {
        Self::new(name, OptionKind::Seed, Some(Value::from(default)), help)
    }

    /// A positive number at most `max`, `default` when not given.
    pub fn positive(name: &str, default: f64, max: f64, help: &str) -> Self {
        Self::new(name, OptionKind::Positive { max }, Some(Value::from(default)), help)
    }

    /// A string, `default` when not given (`None`: it must be given).
    pub fn text(name: &str, default: Option<&str>, help: &str) -> Self {
        Self::new(name, OptionKind::Text, default.map(Value::from), help)
    }

    /// A string that may be left unset ([`EnvOptions::optional_text`]).
    pub fn optional_text(name: &str, help: &str) -> Self {
        Self::new(name, OptionKind::Text, Some(Value::Null), help)
    }

    /// A folder, `default` when not given; recorded absolute by a new run.
    pub fn folder(name: &str, default: &str, help: &str) -> Self {
        Self::new(name, OptionKind::Folder, Some(Value::from(default)), help)
    }

    /// Also accepted as the global flag `flag` (`--sensor-modes`) it used to be.
    pub fn legacy_flag(mut self, flag: &str) -> Self {
        self.legacy_flag = Some(flag.to_owned());
        self
    }

    /// The option's old configuration key (`sensor_modes` for `--sensor-modes`).
    pub fn legacy_key(&self) -> Option<String> {
        self.legacy_flag.as_ref().map(|f| f.trim_start_matches('-').replace('-', "_"))
    }
}

/// An environment's options with every value checked and every default filled in.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EnvOptions {
    pub(super) env: String,
    pub(super) values: BTreeMap<String, Value>,
}

impl EnvOptions {
    /// The values, by name (as written to `config.json`).
    pub fn values(&self) -> &BTreeMap<String, Value> {
        &self.values
    }

    fn get(&self, name: &str) -> Result<&Value, EnvError> {
        self.values.get(name).ok_or_else(|| EnvError::Config {
            env: self.env.clone(),
            problem: format!("the environment reads an option {name:?} it does not declare"),
        })
    }

    fn wrong(&self, name: &str, what: &str) -> EnvError {
        EnvError::Config { env: self.env.clone(), problem: format!("option {name:?} is not {what}") }
    }

    /// A [`OptionKind::Count`] option.
    ///
    /// # Errors
    /// The environment did not declare it as a count.
    pub fn count(&self, name: &str) -> Result<usize, EnvError> {
        let value = self.get(name)?.as_u64().and_then(|n| usize::try_from(n).ok());
        value.ok_or_else(|| self.wrong(name, "a count"))
    }

    /// A [`OptionKind::Seed`] option.
    ///
    /// # Errors
    /// The environment did not declare it as a seed.
    pub fn seed(&self, name: &str) -> Result<u64, EnvError> {
        self.get(name)?.as_u64().ok_or_else(|| self.wrong(name, "a seed"))
    }

    /// A [`OptionKind::Positive`] option.
    ///
    /// # Errors
    /// The environment did not declare it as a number.
    pub fn number(&self, name: &str) -> Result<f64, EnvError> {
        self.get(name)?.as_f64().ok_or_else(|| self.wrong(name, "a number"))
    }

    /// A [`OptionKind::Text`] or [`OptionKind::Folder`] option.
    ///
    /// # Errors
    /// The environment did not declare it as text.
    pub fn text(&self, name: &str) -> Result<&str, EnvError> {
        self.get(name)?.as_str().ok_or_else(|| self.wrong(name, "text"))
    }

    /// An optional string: `None` when the option holds no value (declared with
    /// [`OptionSpec::optional_text`]).
    ///
    /// # Errors
    /// The environment did not declare it.
    pub fn optional_text(&self, name: &str) -> Result<Option<&str>, EnvError> {
        match self.get(name)? {
            Value::Null => Ok(None),
            _ => self.text(name).map(Some),
        }
    }

    /// An optional count: `None` when the option holds no value (declared as a count with
    /// a default of `null`, see [`EnvEntry::option`](super::EnvEntry::option)).
    ///
    /// # Errors
    /// The environment did not declare it.
    pub fn optional_count(&self, name: &str) -> Result<Option<usize>, EnvError> {
        match self.get(name)? {
            Value::Null => Ok(None),
            _ => self.count(name).map(Some),
        }
    }
}
