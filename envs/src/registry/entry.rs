//! One environment's registration: its [`EnvEntry`] (name, description, data set,
//! defaults, options, constructor and what it declares before it is built: [`Shape`],
//! [`Network`], [`Metric`], the paper's results), and [`Make`], what its constructor gets.

use std::collections::BTreeMap;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde_json::Value;
use tch::{Device, Tensor};

use super::error::RegistryError;
use super::options::{EnvOptions, OptionSpec};
use crate::data::{DataSet, Mnist};
use crate::env::{EnvError, Environment};

/// Pixels of an MNIST image: the items of the image tasks.
pub const IMAGE_PIXELS: usize = 784;

/// The name of an environment on a data set: `knn-mnist`, `knn-fashion`.
pub fn on_data_set(prefix: &str, set: DataSet) -> String {
    match set {
        DataSet::Mnist => format!("{prefix}-mnist"),
        DataSet::FashionMnist => format!("{prefix}-fashion"),
    }
}

/// The exact `KL(p_η ‖ uniform)` of the k-subset distribution for each row of logits
/// `[R, n]` and subset size `k`: `[R]`, differentiable with respect to the logits
/// ([`Make::subset_kl`]; the subset VAE's prior term).
pub type SubsetKl = Box<dyn Fn(&Tensor, i64) -> Result<Tensor, EnvError>>;

/// The network that trains on an environment: the user's choice (`--policy`), or the
/// network of one of the paper's tasks (built by `sfess_agent` from this description).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// `--policy`: free logits (one global subset, repeated for every row) or an MLP of the
    /// observation; built after the environment, from its spec.
    Choice,
    /// Free logits over the environment's items, only, drawn from N(0, 1) at the start as
    /// the paper's code draws them (the paper's feature selection).
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

/// A run's settings without data (no data set, no KL, a stop flag never set): what the
/// shape, network and paper hooks read, as a [`Make`] (`&settings` is a `&Make`).
///
/// It holds nothing to free, so it is never dropped as a `Make` would be: a program that
/// only reads settings (the `sfess-agent` binary's fast commands) then never links the
/// code that frees a data set's tensors, nor libtorch. [`into_make`](Self::into_make) gives
/// the `Make` to build an environment with.
pub struct Settings<'a>(ManuallyDrop<Make<'a>>);

impl<'a> Settings<'a> {
    /// The settings as a [`Make`], to build an environment with (or to give it data).
    pub fn into_make(self) -> Make<'a> {
        ManuallyDrop::into_inner(self.0)
    }
}

impl<'a> std::ops::Deref for Settings<'a> {
    type Target = Make<'a>;

    fn deref(&self) -> &Make<'a> {
        &self.0
    }
}

/// The stop flag of [`Settings`]: one for the process, never set, so that a `Settings` that
/// is not dropped frees nothing (its clone only counts one more holder).
fn never_interrupted() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false))).clone()
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

/// One registered environment; see the [registry's docs](crate::registry).
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
    /// `None`: a description only ([`described`](Self::described)).
    make: Option<Constructor>,
    shape: Option<ShapeOf>,
    /// `None`: the user's choice ([`Network::Choice`]).
    network: Option<NetworkOf>,
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
        Self::described(name, description).constructor(make)
    }

    /// An entry that only describes its environment (for `sfess-agent envs`, checks and
    /// help): as [`new`](Self::new), but building it is an error until a
    /// [`constructor`](Self::constructor) is given. [`Registry::catalog`](super::Registry::catalog)
    /// is made of these, so that a program that lists the environments never links the
    /// code that builds them (nor libtorch).
    pub fn described(name: &str, description: &str) -> Self {
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
            make: None,
            shape: None,
            network: None,
            paper: None,
        }
    }

    /// Builds the environment with `make`.
    pub fn constructor(
        mut self,
        make: impl Fn(Make<'_>) -> Result<Box<dyn Environment>, EnvError> + Send + Sync + 'static,
    ) -> Self {
        self.make = Some(Box::new(make));
        self
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

    /// The network that trains on it (one of the paper's), instead of the user's choice.
    pub fn network(mut self, network: impl Fn(&Make<'_>) -> Result<Network, EnvError> + Send + Sync + 'static) -> Self {
        self.network = Some(Box::new(network));
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

    /// Whether the user may choose the policy (`--policy`): the entry declares no
    /// [`network`](Self::network) of its own.
    pub fn policy_is_chosen(&self) -> bool {
        self.network.is_none()
    }

    /// Settings without data, for the shape, network and paper hooks.
    pub fn settings<'a>(
        &'a self,
        k: usize,
        batch_size: usize,
        seed: u64,
        device: Device,
        options: &'a EnvOptions,
    ) -> Settings<'a> {
        // Before the fields that hold tensors: nothing after it can unwind through them.
        let interrupt = never_interrupted();
        Settings(ManuallyDrop::new(Make {
            name: &self.name,
            k,
            batch_size,
            seed,
            device,
            options,
            data: None,
            interrupt,
            subset_kl: None,
        }))
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
        match &self.make {
            Some(constructor) => constructor(make),
            None => Err(make.error("this entry only describes the environment (no constructor was registered)")),
        }
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
        self.network.as_ref().map_or(Ok(Network::Choice), |network| network(settings))
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
