//! Environments registered by name, in the spirit of Gymnasium's `register` and `make`.
//!
//! Each environment is one [`EnvEntry`] made in its own module: its name, a one-line
//! description, the data set it reads, its defaults, its own options ([`OptionSpec`]) and a
//! constructor. [`Registry::shipped`] lists the environments of this crate; a user's binary
//! starts from it and [`Registry::register`]s its own, then hands the registry to
//! `sfess_agent::cli`, which gives every registered environment `train`, `--resume`,
//! `eval` and `compare`.
//!
//! ```
//! use sfess_envs::custom::RewardEnv;
//! use sfess_envs::registry::{EnvEntry, OptionSpec, Registry};
//! use sfess_envs::KHotSpace;
//!
//! let mut registry = Registry::shipped();
//! registry.register(
//!     EnvEntry::new("ones", "reward: how many of the first 5 items are chosen", |make| {
//!         let n = make.options.count("n")?;
//!         let space = KHotSpace::new(n, make.k).map_err(|e| make.error(e.to_string()))?;
//!         let first = tch::Tensor::ones([5], tch::kind::FLOAT_CPU);
//!         Ok(Box::new(RewardEnv::new(make.name, space, move |a: &tch::Tensor| a.narrow(1, 0, 5).mv(&first))))
//!     })
//!     .default_k(5)
//!     .option(OptionSpec::count("n", 20, 5, 1000, "items to choose from")),
//! )?;
//! assert!(registry.get("ones").is_ok() && registry.get("knn-mnist").is_ok());
//! # Ok::<(), sfess_envs::registry::RegistryError>(())
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde_json::Value;
use tch::Device;

use crate::data::{DataSet, Mnist};
use crate::env::{EnvError, Environment};
use crate::vae::SubsetKl;

/// Most rows of a step or a split's draw (`--batch-size`, candidates, references).
pub const MAX_ROWS: usize = 1_000_000;
/// Most items or elements an environment chooses from.
pub const MAX_ITEMS: usize = 1_000_000;
/// Most entries of the VAE's code, groups × items.
pub const MAX_LATENT: usize = 100_000;
/// Most units of a layer (hidden units, context and embedding dimensions).
pub const MAX_WIDTH: usize = 65_536;
/// Pixels of an MNIST image: the items of the image tasks.
pub const IMAGE_PIXELS: usize = 784;

/// The name of an environment on a data set: `knn-mnist`, `knn-fashion`.
pub fn on_data_set(prefix: &str, set: DataSet) -> String {
    match set {
        DataSet::Mnist => format!("{prefix}-mnist"),
        DataSet::FashionMnist => format!("{prefix}-fashion"),
    }
}

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
    fn accept(&self, value: &Value) -> Result<Value, String> {
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
    env: String,
    values: BTreeMap<String, Value>,
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

    /// An optional count: `None` when the option holds no value (declared as a count with
    /// a default of `null`, see [`EnvEntry::option`]).
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

/// The network that trains on an environment: the user's choice (`--policy`), or the
/// network of one of the paper's tasks (built by `sfess_agent` from this description).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// `--policy`: free logits (one global subset, repeated for every row) or an MLP of the
    /// observation; built after the environment, from its spec.
    Choice,
    /// Free logits over the environment's items, only (the paper's feature selection).
    Logits {
        /// Items.
        n: usize,
    },
    /// The paper's k-NN embedding network, from 784 pixels to `embedding` dimensions.
    KnnEmbedding {
        /// Embedding dimension.
        embedding: usize,
    },
    /// The paper's VAE encoder: `groups` subsets of k of `items` per image.
    VaeEncoder {
        /// Subsets per image d.
        groups: usize,
        /// Items per subset n.
        items: usize,
    },
}

/// The size of an environment's actions, known from its settings before it is built (so
/// that every configuration is checked before anything starts).
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// Items n to choose k of.
    pub items: usize,
    /// What the items are, with the option that sets them: "candidates (option candidates)".
    pub items_are: String,
    /// Rows of one step's actions.
    pub rows: usize,
}

/// The metric that tables compare an environment on.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// A key of [`Environment::evaluate`]'s result (`accuracy`).
    pub key: String,
    /// Whether larger is better.
    pub higher_is_better: bool,
    /// Decimals in tables.
    pub digits: usize,
}

/// What a constructor gets: the run's settings, the environment's options, and what the
/// toolkit provides (the data set, the stop flag, the exact KL of the k-subset law).
pub struct Make<'a> {
    /// The environment's name (as registered).
    pub name: &'a str,
    /// Subset size k.
    pub k: usize,
    /// Rows per step (`--batch-size`).
    pub batch_size: usize,
    /// The run's seed.
    pub seed: u64,
    /// Where tensors live.
    pub device: Device,
    /// The environment's options, checked, defaults filled in.
    pub options: &'a EnvOptions,
    /// The data set the entry declared ([`EnvEntry::data`]), loaded; `None` when it
    /// declares none, and always `None` when only checking shapes.
    pub data: Option<Mnist>,
    /// Set when the run is asked to stop (SIGINT, SIGTERM): an environment that waits on
    /// another process gives up its wait.
    pub interrupt: Arc<AtomicBool>,
    /// The exact KL divergence of the k-subset law to uniform (from the policy side; the
    /// subset VAE's prior term).
    pub subset_kl: Option<SubsetKl>,
}

impl Make<'_> {
    /// A configuration error of this environment.
    pub fn error(&self, problem: impl Into<String>) -> EnvError {
        EnvError::Config { env: self.name.to_owned(), problem: problem.into() }
    }

    /// The loaded data set.
    ///
    /// # Errors
    /// The entry declared no data set.
    pub fn take_data(&mut self) -> Result<Mnist, EnvError> {
        self.data.take().ok_or_else(|| self.error("the environment needs a data set; declare it with EnvEntry::data"))
    }
}

/// Builds an environment.
type Constructor = Box<dyn Fn(Make<'_>) -> Result<Box<dyn Environment>, EnvError> + Send + Sync>;
/// The shape of an environment's actions from its settings (`Make::data` is `None`).
type ShapeOf = Box<dyn Fn(&Make<'_>) -> Result<Shape, EnvError> + Send + Sync>;
/// The network of an environment from its settings.
type NetworkOf = Box<dyn Fn(&Make<'_>) -> Result<Network, EnvError> + Send + Sync>;
/// The paper's results for a configuration: `(estimator, mean, std)`.
type PaperResults = Box<dyn Fn(&Make<'_>) -> Option<Vec<PaperRow>> + Send + Sync>;

/// One row of the paper's results: estimator, mean, standard deviation.
pub type PaperRow = (&'static str, f64, f64);

/// One registered environment; see the [module docs](self).
pub struct EnvEntry {
    /// Name on the command line and in run folders (`knn-mnist`).
    pub name: String,
    /// One line for `sfess-agent envs`.
    pub description: String,
    /// The data set it reads, if any.
    pub data: Option<DataSet>,
    /// Default subset size k.
    pub default_k: usize,
    /// Default learning rate; `None`: the policy's (0.05 for free logits, 1e-3 for an MLP).
    pub default_learning_rate: Option<f64>,
    /// Whether its loss is differentiable in the actions (the pathwise estimators need it).
    pub differentiable: bool,
    /// The metric tables compare.
    pub metric: Metric,
    /// Its own options.
    pub options: Vec<OptionSpec>,
    /// The classical methods it reports beside the policy (`greedy`, `qr`), for `envs`.
    pub baselines: Vec<String>,
    make: Constructor,
    shape: Option<ShapeOf>,
    network: NetworkOf,
    paper: Option<PaperResults>,
}

impl std::fmt::Debug for EnvEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvEntry")
            .field("name", &self.name)
            .field("data", &self.data)
            .field("default_k", &self.default_k)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl EnvEntry {
    /// An entry named `name`: a black box (not differentiable) whose metric is `reward`
    /// (higher is better), k = 10, no data set, no options, trained by the user's choice of
    /// policy. The builder methods change each of these.
    pub fn new(
        name: &str,
        description: &str,
        make: impl Fn(Make<'_>) -> Result<Box<dyn Environment>, EnvError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.to_owned(),
            description: description.to_owned(),
            data: None,
            default_k: 10,
            default_learning_rate: None,
            differentiable: false,
            metric: Metric { key: "reward".to_owned(), higher_is_better: true, digits: 4 },
            options: Vec::new(),
            baselines: Vec::new(),
            make: Box::new(make),
            shape: None,
            network: Box::new(|_| Ok(Network::Choice)),
            paper: None,
        }
    }

    /// Reads `set` (loaded by the toolkit into [`Make::data`]).
    pub fn data(mut self, set: DataSet) -> Self {
        self.data = Some(set);
        self
    }

    /// Default subset size.
    pub fn default_k(mut self, k: usize) -> Self {
        self.default_k = k;
        self
    }

    /// Default learning rate (else the policy's).
    pub fn default_learning_rate(mut self, learning_rate: f64) -> Self {
        self.default_learning_rate = Some(learning_rate);
        self
    }

    /// Declares the loss differentiable in the actions.
    pub fn differentiable(mut self) -> Self {
        self.differentiable = true;
        self
    }

    /// The metric that tables compare (a key of `evaluate`'s result).
    pub fn metric(mut self, key: &str, higher_is_better: bool) -> Self {
        self.metric.key = key.to_owned();
        self.metric.higher_is_better = higher_is_better;
        self
    }

    /// Decimals of the metric in tables (4).
    pub fn digits(mut self, digits: usize) -> Self {
        self.metric.digits = digits;
        self
    }

    /// Adds an option.
    pub fn option(mut self, option: OptionSpec) -> Self {
        self.options.push(option);
        self
    }

    /// Names a classical method the environment reports (for `envs`).
    pub fn baseline(mut self, name: &str) -> Self {
        self.baselines.push(name.to_owned());
        self
    }

    /// How to know the action's shape from the settings, so that `k` and the size of a
    /// step are checked before anything is built.
    pub fn shape(mut self, shape: impl Fn(&Make<'_>) -> Result<Shape, EnvError> + Send + Sync + 'static) -> Self {
        self.shape = Some(Box::new(shape));
        self
    }

    /// The network that trains on it, if not the user's choice.
    pub fn network(mut self, network: impl Fn(&Make<'_>) -> Result<Network, EnvError> + Send + Sync + 'static) -> Self {
        self.network = Box::new(network);
        self
    }

    /// The paper's published results for a configuration, shown beside ours in tables.
    pub fn paper_results(
        mut self,
        results: impl Fn(&Make<'_>) -> Option<Vec<PaperRow>> + Send + Sync + 'static,
    ) -> Self {
        self.paper = Some(Box::new(results));
        self
    }

    /// Whether the user may choose the policy (`--policy`).
    pub fn policy_is_chosen(&self) -> bool {
        // The network of a paper task does not depend on whether it is chosen: ask with
        // the default options.
        self.network_of_defaults().is_ok_and(|n| n == Network::Choice)
    }

    fn network_of_defaults(&self) -> Result<Network, EnvError> {
        let options = self.options_from(&BTreeMap::new()).unwrap_or_default();
        (self.network)(&self.settings(self.default_k, 1, 0, Device::Cpu, &options))
    }

    /// Settings without data, for the shape, network and paper hooks.
    pub fn settings<'a>(
        &'a self,
        k: usize,
        batch_size: usize,
        seed: u64,
        device: Device,
        options: &'a EnvOptions,
    ) -> Make<'a> {
        Make {
            name: &self.name,
            k,
            batch_size,
            seed,
            device,
            options,
            data: None,
            interrupt: Arc::new(AtomicBool::new(false)),
            subset_kl: None,
        }
    }

    /// The environment's options from `given` (by name, JSON values or strings from the
    /// command line): each checked against its kind, defaults filled in.
    ///
    /// # Errors
    /// An option it does not have, a value that does not fit, a required option missing.
    pub fn options_from(&self, given: &BTreeMap<String, Value>) -> Result<EnvOptions, RegistryError> {
        self.check_option_names(given)?;
        let bad = |option: &OptionSpec, problem: String| RegistryError::BadValue {
            env: self.name.clone(),
            option: option.name.clone(),
            problem,
        };
        let mut values = BTreeMap::new();
        for option in &self.options {
            let value = match (given.get(&option.name), &option.default) {
                // An optional option left unset (its default is null).
                (None | Some(Value::Null), Some(Value::Null)) => Value::Null,
                (Some(value), _) => option.kind.accept(value).map_err(|p| bad(option, p))?,
                (None, Some(default)) => default.clone(),
                (None, None) => {
                    let how = match &option.legacy_flag {
                        Some(flag) => format!("--env-option {}=... (or {flag} ...)", option.name),
                        None => format!("--env-option {}=...", option.name),
                    };
                    return Err(bad(option, format!("must be given: {how}; {}", option.help)));
                }
            };
            values.insert(option.name.clone(), value);
        }
        Ok(EnvOptions { env: self.name.clone(), values })
    }

    /// Checks that every key of `given` is one of its options.
    ///
    /// # Errors
    /// [`RegistryError::UnknownOption`], listing its options.
    pub fn check_option_names(&self, given: &BTreeMap<String, Value>) -> Result<(), RegistryError> {
        match given.keys().find(|name| !self.options.iter().any(|o| &&o.name == name)) {
            Some(name) => Err(RegistryError::UnknownOption {
                env: self.name.clone(),
                option: name.clone(),
                known: self.option_names(),
            }),
            None => Ok(()),
        }
    }

    /// The option names, comma-separated, or "none".
    pub fn option_names(&self) -> String {
        if self.options.is_empty() {
            return "none".to_owned();
        }
        self.options.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// Builds the environment.
    ///
    /// # Errors
    /// Whatever the constructor fails with.
    pub fn make(&self, make: Make<'_>) -> Result<Box<dyn Environment>, EnvError> {
        (self.make)(make)
    }

    /// The shape of its actions under `settings`, when the entry knows it without being
    /// built.
    ///
    /// # Errors
    /// Settings that do not fit together (the entry's own checks).
    pub fn shape_of(&self, settings: &Make<'_>) -> Result<Option<Shape>, EnvError> {
        self.shape.as_ref().map(|shape| shape(settings)).transpose()
    }

    /// The network that trains on it under `settings`.
    ///
    /// # Errors
    /// Settings that do not fit.
    pub fn network_of(&self, settings: &Make<'_>) -> Result<Network, EnvError> {
        (self.network)(settings)
    }

    /// The paper's results for `settings`, if it reports any.
    pub fn paper_results_of(&self, settings: &Make<'_>) -> Option<Vec<PaperRow>> {
        self.paper.as_ref().and_then(|paper| paper(settings))
    }

    /// Its options as a Markdown table, for `sfess-agent envs NAME`.
    pub fn options_table(&self) -> String {
        let mut out = String::from("| option | type | default | help |\n|---|---|---|---|\n");
        for option in &self.options {
            let default = match &option.default {
                None => "(required)".to_owned(),
                Some(Value::Null) => "(none)".to_owned(),
                Some(Value::String(s)) => s.clone(),
                Some(value) => value.to_string(),
            };
            let legacy = option.legacy_flag.as_ref().map(|f| format!(" (also {f})")).unwrap_or_default();
            out += &format!("| {} | {} | {default} | {}{legacy} |\n", option.name, option.kind.describe(), option.help);
        }
        out
    }
}

/// The paper's six rows of a table, `(mean, std)` in the order sfess-vr, sfess, simple,
/// gs, stgs, imle, named.
pub fn paper_rows(rows: [(f64, f64); 6]) -> Vec<PaperRow> {
    ["sfess-vr", "sfess", "simple", "gs", "stgs", "imle"]
        .into_iter()
        .zip(rows)
        .map(|(name, (m, s))| (name, m, s))
        .collect()
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

/// The registered environments, in registration order.
#[derive(Debug, Default)]
pub struct Registry {
    entries: Vec<EnvEntry>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every environment this crate ships.
    pub fn shipped() -> Self {
        let mut registry = Self::new();
        for entry in [
            crate::knn::entry(crate::data::DataSet::Mnist),
            crate::knn::entry(crate::data::DataSet::FashionMnist),
            crate::feature_selection::entry(crate::data::DataSet::Mnist),
            crate::feature_selection::entry(crate::data::DataSet::FashionMnist),
            crate::vae::entry(crate::data::DataSet::Mnist),
            crate::vae::entry(crate::data::DataSet::FashionMnist),
            crate::external::entry(),
            crate::external_episodes::entry(),
            crate::sensor::entry(None),
            crate::sensor::entry(Some(crate::data::DataSet::Mnist)),
            crate::sensor::entry(Some(crate::data::DataSet::FashionMnist)),
            crate::knn_selection::entry(crate::data::DataSet::Mnist),
            crate::knn_selection::entry(crate::data::DataSet::FashionMnist),
            crate::coverage::entry(),
            crate::scheduling::entry(),
            crate::slate::entry(),
        ] {
            // The shipped names are distinct and well formed (a test checks it).
            let _ = registry.register(entry);
        }
        registry
    }

    /// Adds `entry`.
    ///
    /// # Errors
    /// A name taken already, or one that is not usable on a command line (lowercase
    /// letters, digits, `-`, `_`); the same for its options' names.
    pub fn register(&mut self, entry: EnvEntry) -> Result<&mut Self, RegistryError> {
        check_name("environment name", &entry.name)?;
        for option in &entry.options {
            check_name("option name", &option.name)?;
        }
        if self.entries.iter().any(|e| e.name == entry.name) {
            return Err(RegistryError::Duplicate(entry.name));
        }
        self.entries.push(entry);
        Ok(self)
    }

    /// The entry named `name`.
    ///
    /// # Errors
    /// [`RegistryError::Unknown`], listing the names.
    pub fn get(&self, name: &str) -> Result<&EnvEntry, RegistryError> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| RegistryError::Unknown { name: name.to_owned(), known: self.names().join(", ") })
    }

    /// Every entry, in registration order.
    pub fn entries(&self) -> &[EnvEntry] {
        &self.entries
    }

    /// Every name, in registration order.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }

    /// The old global flags of every environment's options, with the option each now is:
    /// `("--sensor-modes", "modes")`.
    pub fn legacy_flags(&self) -> Vec<(String, String)> {
        let mut flags: Vec<(String, String)> = Vec::new();
        for option in self.entries.iter().flat_map(|e| &e.options) {
            if let Some(flag) = &option.legacy_flag
                && !flags.iter().any(|(f, _)| f == flag)
            {
                flags.push((flag.clone(), option.name.clone()));
            }
        }
        flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_environments_are_all_registered_with_distinct_names() {
        let registry = Registry::shipped();
        assert_eq!(registry.entries().len(), 16);
        let mut names = registry.names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 16);
        for entry in registry.entries() {
            check_name("environment name", &entry.name).unwrap();
            // Every option's default fits its own kind.
            let options = entry.options_from(&BTreeMap::new());
            let required = entry.options.iter().any(|o| o.default.is_none());
            assert_eq!(options.is_err(), required, "{}", entry.name);
        }
        // One option per old flag, whichever environments share it.
        let flags = registry.legacy_flags();
        for (flag, option) in &flags {
            for entry in registry.entries() {
                for o in entry.options.iter().filter(|o| o.legacy_flag.as_deref() == Some(flag.as_str())) {
                    assert_eq!(&o.name, option, "{flag} of {}", entry.name);
                }
            }
        }
    }

    fn entry() -> EnvEntry {
        EnvEntry::new("t", "test", |make| Err(make.error("not built in this test")))
            .option(OptionSpec::count("n", 5, 1, 10, "items"))
            .option(OptionSpec::seed("seed", 0, "instance"))
            .option(OptionSpec::text("command", None, "what to run").legacy_flag("--reward-cmd"))
    }

    #[test]
    fn options_are_checked_and_defaults_filled_in() {
        let entry = entry();
        let given = |pairs: &[(&str, Value)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        let options = entry.options_from(&given(&[("command", Value::from("cat")), ("n", "7".into())])).unwrap();
        assert_eq!((options.count("n").unwrap(), options.seed("seed").unwrap()), (7, 0));
        assert_eq!(options.text("command").unwrap(), "cat");
        assert!(options.number("n").is_ok() && options.count("command").is_err());
        for (pairs, phrase) in [
            (
                vec![("command", Value::from("cat")), ("m", Value::from(1))],
                "t has no option \"m\"; its options are: n, seed, command",
            ),
            (
                vec![("command", Value::from("cat")), ("n", Value::from(11))],
                "t option n: must be between 1 and 10, got 11",
            ),
            (vec![("command", Value::from("cat")), ("n", Value::from("x"))], "expected a whole number, got \"x\""),
            (vec![("command", Value::from("cat")), ("seed", Value::from(-1))], "expected a seed"),
            (vec![("command", Value::from(" "))], "expected a non-empty string"),
            (vec![], "t option command: must be given: --env-option command=... (or --reward-cmd ...)"),
        ] {
            let message = entry.options_from(&given(&pairs)).unwrap_err().to_string();
            assert!(message.contains(phrase), "{phrase:?} not in {message:?}");
        }
    }

    #[test]
    fn names_are_checked_and_unique() {
        let mut registry = Registry::new();
        registry.register(entry()).unwrap();
        assert_eq!(registry.register(entry()).unwrap_err(), RegistryError::Duplicate("t".to_owned()));
        let bad = EnvEntry::new("Bad Name", "", |make| Err(make.error("")));
        assert!(matches!(registry.register(bad), Err(RegistryError::BadName { .. })));
        let message = registry.get("u").unwrap_err().to_string();
        assert_eq!(message, "unknown environment \"u\"; the environments are: t");
    }
}
