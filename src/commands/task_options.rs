//! The options of one run that `train` gives it and `compare` gives each of its runs
//! ([`TaskOptions`]): each one left out keeps its default, or the `--config` file's value;
//! the estimators' options through [`Given`], which knows which flags were given.

use std::path::PathBuf;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::TrainConfig;
use crate::config::estimators::EstimatorOptions;

/// The per-task options shared by `train` and `compare`; each one left out keeps its
/// default (or the `--config` file's value).
#[derive(Debug, Clone, Default, Args)]
pub struct TaskOptions {
    /// Samples per row S [default: 32]; in `compare` only sfess-vr's, every other
    /// estimator draws one, as in the paper.
    #[arg(long)]
    pub samples: Option<usize>,
    /// Training steps [default: 50000].
    #[arg(long)]
    pub steps: Option<u64>,
    /// Rows per step [default: 128].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam's learning rate [default: 1e-4 for the paper's tasks; 0.05 for free logits on
    /// a black-box task, 1e-3 for an MLP policy].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Steps between validations and checkpoints [default: 1000].
    #[arg(long)]
    pub eval_every: Option<u64>,
    /// Subset size [default: 10 for k-NN and cmd, 50 for feature selection, 5 for the VAE and
    /// max-coverage, 20 for sensor placement].
    #[arg(short, long)]
    pub k: Option<usize>,
    /// Folder with the mnist/ and fashion-mnist/ IDX files [default: $SFESS_DATA_DIR, else
    /// ~/.cache/sfess-agent/data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The estimators' options: only those given override the `--config` file's.
    #[command(flatten)]
    pub estimator: Given<EstimatorOptions>,
    /// Policy of a black-box task: free logits, an MLP of the observation, or (over
    /// episodes) an MLP of the observation and the previous action [default: logits].
    #[arg(long, value_enum)]
    pub policy: Option<crate::config::PolicyName>,
    /// Hidden units of the MLP policy [default: 64].
    #[arg(long)]
    pub hidden: Option<usize>,
    /// An option of the environment, NAME=VALUE (repeatable): `--env-option n=50`; see
    /// `sfess-agent envs ENV` for each environment's options. The flags these replaced
    /// (`--reward-cmd`, `--n`, `--sensor-modes`, ...) still work.
    #[arg(long = "env-option", value_name = "NAME=VALUE", value_parser = parse_env_option)]
    pub env_options: Vec<(String, String)>,
}

impl TaskOptions {
    /// Sets every given option in `config`.
    ///
    /// # Errors
    /// Only if [`Given::apply_to`] does (a bug).
    pub fn apply(&self, config: &mut TrainConfig) -> anyhow::Result<()> {
        macro_rules! set {
            ($($flag:ident => $field:expr),* $(,)?) => { $(if let Some(value) = self.$flag.clone() { $field = value; })* };
        }
        set!(samples => config.samples, steps => config.steps, batch_size => config.batch_size,
             eval_every => config.eval_every, policy => config.policy, hidden => config.hidden);
        // Options whose configuration field is itself optional.
        macro_rules! set_some {
            ($($flag:ident => $field:expr),* $(,)?) => { $(if self.$flag.is_some() { $field = self.$flag.clone(); })* };
        }
        set_some!(lr => config.learning_rate, data_dir => config.data_dir, k => config.k);
        self.estimator.apply_to(&mut config.estimator_options)?;
        // Values as given; the environment's entry parses and checks them.
        for (name, value) in &self.env_options {
            config.set_option(name, serde_json::Value::from(value.as_str()));
        }
        Ok(())
    }
}

/// Options of type `T` (a clap [`Args`] struct with serde on it) as the command line gave
/// them: every value ([`values`](Self::values), its default where not given) and which
/// ones were given, so that only those override a configuration's ([`apply_to`](Self::apply_to)).
/// A command flattens it as it would flatten `T`; `T`'s fields are named alike for clap and
/// serde (no renames), which its tests check.
#[derive(Debug, Clone, Default)]
pub struct Given<T> {
    /// Every option: as given, else its default.
    pub values: T,
    /// The options given on the command line, by their field names.
    given: Vec<String>,
}

impl<T: Serialize + DeserializeOwned> Given<T> {
    /// Sets each given option in `target`, leaving the others as they are: through their
    /// serde form, the same for every field (a TOML value, which holds any `f64`, `inf` and
    /// NaN too, for `check` to refuse by name).
    ///
    /// # Errors
    /// `T`'s serde form is not a table with a key for each given option (a bug).
    pub fn apply_to(&self, target: &mut T) -> anyhow::Result<()> {
        if self.given.is_empty() {
            return Ok(());
        }
        let (toml::Value::Table(values), toml::Value::Table(mut merged)) =
            (toml::Value::try_from(&self.values)?, toml::Value::try_from(&*target)?)
        else {
            anyhow::bail!("options that do not serialise as a table")
        };
        for name in &self.given {
            let value =
                values.get(name).with_context(|| format!("the option {name} has no key in the configuration"))?;
            merged.insert(name.clone(), value.clone());
        }
        *target = toml::Value::Table(merged).try_into()?;
        Ok(())
    }
}

impl<T: Args> Args for Given<T> {
    fn augment_args(command: clap::Command) -> clap::Command {
        T::augment_args(command)
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        T::augment_args_for_update(command)
    }
}

impl<T: Args + FromArgMatches> FromArgMatches for Given<T> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let values = T::from_arg_matches(matches)?;
        let given = T::augment_args(clap::Command::new("given"))
            .get_arguments()
            .map(|arg| arg.get_id().as_str())
            .filter(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
            .map(str::to_owned)
            .collect();
        Ok(Self { values, given })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// `NAME=VALUE` of `--env-option`.
fn parse_env_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE (for example n=50), got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`Given`] finds an option's configuration key by its clap id: each of
    /// [`EstimatorOptions`]'s is a key of its serde form.
    #[test]
    fn every_estimator_option_is_a_key_of_its_configuration() {
        let toml::Value::Table(keys) = toml::Value::try_from(EstimatorOptions::default()).unwrap() else {
            panic!("a table")
        };
        let command = EstimatorOptions::augment_args(clap::Command::new("options"));
        let ids: std::collections::BTreeSet<&str> = command.get_arguments().map(|arg| arg.get_id().as_str()).collect();
        assert_eq!(ids, keys.keys().map(String::as_str).collect());
    }
}
