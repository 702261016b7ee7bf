//! The configuration of a training run: a plain serde struct whose defaults are the
//! paper's settings. What belongs to one environment (its k, learning rate, options) comes
//! from its entry in the [`Registry`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sfess_envs::registry::{EnvEntry, EnvOptions, MAX_ROWS, MAX_WIDTH, OptionKind, Registry};

use crate::system::device::DeviceSpec;
use estimators::{EstimatorName, EstimatorOptions};

pub mod estimators;

/// Most samples per row, `--samples`.
pub const MAX_SAMPLES: usize = 10_000;
/// Most entries of one step's k-hot actions, samples × rows × n (8 GiB as `f32`).
pub const MAX_ACTION_ENTRIES: u128 = 1 << 31;

/// The policy of a black-box or custom environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyName {
    /// Free logits: one global subset (repeated for every row).
    #[default]
    Logits,
    /// An MLP from each row of the observation to its logits (needs an observation).
    Mlp,
    /// Over episodes: an MLP of the observation and the episode's previous action.
    MlpAction,
}

impl PolicyName {
    /// Adam's default learning rate for this policy on a black-box or custom task: 0.05 for
    /// free logits, 1e-3 for an MLP.
    pub fn default_learning_rate(self) -> f64 {
        match self {
            PolicyName::Logits => 0.05,
            PolicyName::Mlp | PolicyName::MlpAction => 1e-3,
        }
    }
}

/// Everything a run needs; written to the run folder as `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Environment (`knn-mnist`), by its name in the registry.
    pub env: String,
    /// Gradient estimator (`sfess-vr`).
    pub estimator: EstimatorName,
    /// Samples per row `S` (32, the paper's for SFESS + VR).
    pub samples: usize,
    /// Training steps (50,000).
    pub steps: u64,
    /// Rows per step (128): queries for k-NN.
    pub batch_size: usize,
    /// Adam's learning rate (`None`: the paper's 1e-4 for its tasks, 0.05 for free logits
    /// on a black-box task, 1e-3 for an MLP policy).
    pub learning_rate: Option<f64>,
    /// Adam's β₁ (0.9).
    pub beta1: f64,
    /// Adam's β₂ (0.999).
    pub beta2: f64,
    /// Steps between validations and checkpoints (1,000).
    pub eval_every: u64,
    /// Seed of the initialisation and of every random draw (0).
    pub seed: u64,
    /// Subset size (`None`: the task's default: 10 for k-NN, 50 for feature selection, 5
    /// for the VAE).
    pub k: Option<usize>,
    /// Where the MNIST and Fashion-MNIST IDX files are (`None`: `$SFESS_DATA_DIR`, else
    /// the per-user cache).
    pub data_dir: Option<PathBuf>,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Estimator options (sampler, temperatures, I-MLE's λ and noise, the normaliser).
    pub estimator_options: EstimatorOptions,
    /// Policy of the black-box tasks: free logits or an MLP of the observation.
    pub policy: PolicyName,
    /// Hidden units of the MLP policy (64).
    pub hidden: usize,
    /// The environments' own options, under each one's name:
    /// `{"max-coverage": {"n": 50, "elements": 500}}` (see `sfess-agent envs NAME`). A run's
    /// `config.json` holds its environment's, every default filled in.
    pub env_options: BTreeMap<String, BTreeMap<String, Value>>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            env: "knn-mnist".to_owned(),
            estimator: EstimatorName::SfessVr,
            samples: 32,
            steps: 50_000,
            batch_size: 128,
            learning_rate: None,
            beta1: 0.9,
            beta2: 0.999,
            eval_every: 1_000,
            seed: 0,
            k: None,
            data_dir: None,
            device: "auto".to_owned(),
            estimator_options: EstimatorOptions::default(),
            policy: PolicyName::Logits,
            hidden: 64,
            env_options: BTreeMap::new(),
        }
    }
}

impl TrainConfig {
    /// The default configuration of the environment `env`.
    pub fn of_env(env: &str) -> Self {
        Self { env: env.to_owned(), ..Self::default() }
    }

    /// Reads a configuration from JSON. Files of earlier versions, with an environment's
    /// options as top-level keys (`"sensor_modes": 10`), are read too: each such key moves
    /// to its environment's section; those of other environments (which the run never
    /// read) are dropped.
    ///
    /// # Errors
    /// Not JSON, or not a configuration (unknown keys, wrong types).
    pub fn from_json(text: &str, registry: &Registry) -> anyhow::Result<Self> {
        let is_legacy = |key: &str| {
            registry.entries().iter().flat_map(|e| &e.options).any(|o| o.legacy_key().as_deref() == Some(key))
        };
        // A key given twice is an error, as in TOML, not a silent choice of the last.
        let mut value: Value = crate::system::json::parse(text)?;
        let mut moved = Vec::new();
        if let Value::Object(map) = &mut value {
            let known = serde_json::to_value(TrainConfig::default())?;
            let keys: Vec<String> =
                map.keys().filter(|k| known.get(k.as_str()).is_none() && is_legacy(k)).cloned().collect();
            moved.extend(keys.into_iter().filter_map(|key| map.remove(&key).map(|old| (key, old))));
        }
        // The path of a value of the wrong type (`steps: invalid type: string "many", ...`).
        let mut config: TrainConfig = serde_path_to_error::deserialize(value)?;
        let Ok(entry) = registry.get(&config.env) else { return Ok(config) };
        for (key, old) in moved {
            // Other environments' keys were never read by this run, and an unset optional
            // value (`"n": null`) keeps the option's default.
            if let Some(option) = entry.options.iter().find(|o| o.legacy_key().as_deref() == Some(key.as_str()))
                && !old.is_null()
            {
                config.env_options.entry(config.env.clone()).or_default().entry(option.name.clone()).or_insert(old);
            }
        }
        Ok(config)
    }

    /// The environment's name in run folders and tables: its option `name` when it has one
    /// (a `cmd` named after what it scores), else its registered name.
    pub fn label(&self) -> &str {
        self.env_options.get(&self.env).and_then(|o| o.get("name")).and_then(Value::as_str).unwrap_or(&self.env)
    }

    /// The options given for the environment (its section of `env_options`).
    pub fn given_options(&self) -> BTreeMap<String, Value> {
        self.env_options.get(&self.env).cloned().unwrap_or_default()
    }

    /// Sets the option `name` of the environment to `value` (checked when resolved).
    pub fn set_option(&mut self, name: &str, value: Value) {
        self.env_options.entry(self.env.clone()).or_default().insert(name.to_owned(), value);
    }

    /// The configuration with its paths absolute: `data_dir`, and the environment's folder
    /// options (a `cmd`'s `dir`, the current folder unless given).
    ///
    /// # Errors
    /// The current folder cannot be read; unknown environment.
    pub fn with_absolute_paths(mut self, registry: &Registry) -> anyhow::Result<Self> {
        if let Some(dir) = &self.data_dir {
            self.data_dir = Some(std::path::absolute(dir).context("reading the current folder")?);
        }
        let entry = registry.get(&self.env)?;
        for option in entry.options.iter().filter(|o| o.kind == OptionKind::Folder) {
            let value = self.given_options().get(&option.name).cloned().or_else(|| option.default.clone());
            if let Some(Value::String(path)) = value {
                let absolute = std::path::absolute(&path).context("reading the current folder")?;
                self.set_option(&option.name, Value::from(absolute.display().to_string()));
            }
        }
        Ok(self)
    }

    /// Checks every value before anything starts, and resolves the configuration once
    /// against its environment's entry: a registered environment and its options, sizes
    /// within the `MAX_*` bounds, finite positive rates and temperatures, `k` within the
    /// items the environment selects from, a device that parses. A resolved configuration
    /// checks to itself.
    ///
    /// # Errors
    /// The first value out of range, naming its flag or option.
    pub fn check<'r>(&self, registry: &'r Registry) -> anyhow::Result<RunSpec<'r>> {
        let entry = registry.get(&self.env)?;
        for (name, section) in &self.env_options {
            // Sections of other environments may be there (one file for several); they must
            // name registered environments and options of theirs.
            let other = registry.get(name).with_context(|| format!("env_options.{name} in the configuration"))?;
            other.check_option_names(section)?;
        }
        let options = entry.options_from(&self.given_options())?;
        // It names the run's default folder (`runs/NAME-ESTIMATOR-seedSEED`).
        crate::system::names::PathName::parse(self.label())
            .map_err(|e| anyhow::anyhow!("the environment's name in the configuration: {e}"))?;
        anyhow::ensure!(self.steps >= 1, "--steps must be at least 1");
        anyhow::ensure!(self.eval_every >= 1, "--eval-every must be at least 1");
        for (flag, value, max) in [
            ("--samples", self.samples, MAX_SAMPLES),
            ("--batch-size", self.batch_size, MAX_ROWS),
            ("--hidden", self.hidden, MAX_WIDTH),
        ] {
            anyhow::ensure!((1..=max).contains(&value), "{flag} must be between 1 and {max}, got {value}");
        }
        // Adam's learning rate: `learning_rate`, else the environment's default, else the
        // policy's (0.05 for free logits, 1e-3 for an MLP).
        let learning_rate = self
            .learning_rate
            .unwrap_or_else(|| entry.default_learning_rate.unwrap_or_else(|| self.policy.default_learning_rate()));
        anyhow::ensure!(
            learning_rate.is_finite() && learning_rate > 0.0,
            "--lr must be positive and finite, got {learning_rate}"
        );
        self.estimator_options.check()?;
        for (name, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            anyhow::ensure!((0.0..1.0).contains(&beta), "{name} must be in [0, 1), got {beta}");
        }
        let device = self
            .device
            .parse::<DeviceSpec>()
            .map_err(|e| anyhow::anyhow!("device {:?} in the configuration: {e}", self.device))?;
        if !entry.policy_is_chosen() && self.policy != PolicyName::Logits {
            anyhow::bail!(
                "--policy applies to the black-box and custom environments; {} uses the paper's network",
                self.env
            );
        }
        let k = self.k.unwrap_or(entry.default_k);
        let mut config = self.clone();
        config.learning_rate = Some(learning_rate);
        config.k = Some(k);
        config.env_options = BTreeMap::from([(self.env.clone(), options.values().clone())]);
        let spec = RunSpec { config, entry, options, k, learning_rate, device };
        if let Some(shape) = spec.shape()? {
            let n = shape.items;
            anyhow::ensure!(
                (1..=n).contains(&k),
                "k = {k} is out of range for n = {n} {}: -k must be between 1 and {n}",
                shape.items_are
            );
            let entries = self.samples as u128 * shape.rows as u128 * n as u128;
            anyhow::ensure!(
                entries <= MAX_ACTION_ENTRIES,
                "a step's actions would hold --samples × rows × n = {} × {} × {n} = {entries} entries, more than \
                 {MAX_ACTION_ENTRIES}; use fewer samples or a smaller --batch-size",
                self.samples,
                shape.rows
            );
        }
        Ok(spec)
    }
}

/// A configuration checked and resolved against its environment's entry, once
/// ([`TrainConfig::check`]: parse, then check, then use): what building the experiment,
/// training, sweeping and reporting take, so that nothing downstream looks anything up again.
#[derive(Clone)]
pub struct RunSpec<'r> {
    /// The resolved configuration (`config.json`): `learning_rate` and `k` filled in, and only
    /// the environment's own section of `env_options`, every default in it.
    config: TrainConfig,
    entry: &'r EnvEntry,
    options: EnvOptions,
    k: usize,
    learning_rate: f64,
    device: DeviceSpec,
}

impl std::fmt::Debug for RunSpec<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunSpec").field("config", &self.config).finish_non_exhaustive()
    }
}

impl<'r> RunSpec<'r> {
    /// The resolved configuration, as a run folder's `config.json` holds it.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The resolved configuration, taken.
    pub fn into_config(self) -> TrainConfig {
        self.config
    }

    /// The environment's entry in the registry.
    pub fn entry(&self) -> &'r EnvEntry {
        self.entry
    }

    /// The environment's options, checked, defaults filled in.
    pub fn options(&self) -> &EnvOptions {
        &self.options
    }

    /// The subset size.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Adam's learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.learning_rate
    }

    /// The device asked for (resolved to a machine's device when the experiment is built).
    pub fn device(&self) -> DeviceSpec {
        self.device
    }

    /// The environment's name in run folders and tables ([`TrainConfig::label`]).
    pub fn label(&self) -> &str {
        self.config.label()
    }

    /// The same run with `steps` steps (a resumed run extended by `--steps`).
    pub fn with_steps(mut self, steps: u64) -> Self {
        self.config.steps = steps;
        self
    }

    /// What the environment's entry computes from (its `Make`), on the CPU and without data.
    fn settings(&self) -> sfess_envs::registry::Settings<'_> {
        self.entry.settings(self.k, self.config.batch_size, self.config.seed, tch::Device::Cpu, &self.options)
    }

    /// The items and rows of a step, as the environment's entry computes them before it is
    /// built (`None` when it cannot say).
    ///
    /// # Errors
    /// The entry's own refusal.
    pub fn shape(&self) -> anyhow::Result<Option<sfess_envs::registry::Shape>> {
        Ok(self.entry.shape_of(&self.settings())?)
    }

    /// The paper's results (estimator, mean, std) for this task and configuration, if the
    /// paper has them.
    pub fn paper_results(&self) -> Option<Vec<sfess_envs::registry::PaperRow>> {
        self.entry.paper_results_of(&self.settings())
    }
}

/// The flags whose settings differ between the configuration `recorded` (of a run, of a
/// comparison) and `asked`, each with both values: `--lr (the run has 0.05, asked 0.5)`
/// for `holder` "the run"; `None` when they agree. Keys of `estimator_options` are compared
/// one by one.
pub fn changed_flags(recorded: &TrainConfig, asked: &TrainConfig, holder: &str) -> Option<String> {
    fn flatten(prefix: &str, value: serde_json::Value, out: &mut BTreeMap<String, serde_json::Value>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    let key = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
                    flatten(&key, value, out);
                }
            }
            other => {
                out.insert(prefix.to_owned(), other);
            }
        }
    }
    let (mut left, mut right) = (BTreeMap::new(), BTreeMap::new());
    flatten("", serde_json::to_value(recorded).unwrap_or_default(), &mut left);
    flatten("", serde_json::to_value(asked).unwrap_or_default(), &mut right);
    if recorded.env != asked.env {
        // Another environment: its options are another environment's, not changed values.
        left.retain(|key, _| !key.starts_with("env_options."));
        right.retain(|key, _| !key.starts_with("env_options."));
    }
    let changed: Vec<String> = left
        .into_iter()
        .filter_map(|(key, was)| {
            let now = right.remove(&key).unwrap_or_default();
            (was != now).then(|| format!("{} ({holder} has {was}, asked {now})", flag_of(&key)))
        })
        .collect();
    (!changed.is_empty()).then(|| changed.join(", "))
}

/// The command-line flag of a configuration key (`learning_rate` is `--lr`,
/// `estimator_options.sampler` is `--sampler`).
fn flag_of(key: &str) -> String {
    if let Some(option) = key.strip_prefix("env_options.") {
        let name = option.split_once('.').map_or(option, |(_, name)| name);
        return format!("--env-option {name}");
    }
    let key = key.strip_prefix("estimator_options.").unwrap_or(key);
    match key {
        "learning_rate" => "--lr".to_owned(),
        "k" => "-k".to_owned(),
        other => format!("--{}", other.replace('_', "-")),
    }
}

#[cfg(test)]
mod tests;
