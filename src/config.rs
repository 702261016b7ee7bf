//! The configuration of a training run: a plain serde struct whose defaults are the
//! paper's settings.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::device::DeviceSpec;
use crate::estimators::{EstimatorName, EstimatorOptions, ImleNoiseName, NormalizerName, SamplerName};

/// Most samples per row, `--samples`.
pub const MAX_SAMPLES: usize = 10_000;
/// Most rows of a step or a split's draw: `--batch-size`, `--candidates`, `--references`.
pub const MAX_ROWS: usize = 1_000_000;
/// Most items or elements: `--n`, `--coverage-elements`.
pub const MAX_ITEMS: usize = 1_000_000;
/// Most entries of the VAE's code, `--vae-groups × --vae-items`.
pub const MAX_LATENT: usize = 100_000;
/// Most units of a layer: `--hidden`, `--context-dim`, `embedding_dim`.
pub const MAX_WIDTH: usize = 65_536;
/// Most entries of one step's k-hot actions, samples × rows × n (8 GiB as `f32`).
pub const MAX_ACTION_ENTRIES: u128 = 1 << 31;
/// Longest `--reward-timeout`, in seconds (about 11.6 days).
pub const MAX_REWARD_TIMEOUT: f64 = 1e6;
/// Pixels of an MNIST image: the items of the image tasks, and the most `--sensor-modes`.
const IMAGE_PIXELS: usize = 784;

/// The environments, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvName {
    /// Stochastic k-NN on MNIST (paper Table 4).
    KnnMnist,
    /// Stochastic k-NN on Fashion-MNIST.
    KnnFashion,
    /// Feature selection on MNIST (paper Table 2).
    FeatureSelectionMnist,
    /// Feature selection on Fashion-MNIST.
    FeatureSelectionFashion,
    /// Subset VAE on MNIST (paper Table 3).
    VaeMnist,
    /// Subset VAE on Fashion-MNIST.
    VaeFashion,
    /// Black box: rewards from your own command (--reward-cmd), over JSON lines.
    Cmd,
    /// Black box: k sensors reconstruct synthetic smooth fields (no data needed).
    SensorPlacementSynthetic,
    /// Black box: k sensor pixels reconstruct MNIST images in a PCA basis.
    SensorPlacementMnist,
    /// Black box: k sensor pixels reconstruct Fashion-MNIST images in a PCA basis.
    SensorPlacementFashion,
    /// Black box: k pixels scored by a k-NN classifier's accuracy on MNIST.
    FeatureSelectionKnnMnist,
    /// Black box: k pixels scored by a k-NN classifier's accuracy on Fashion-MNIST.
    FeatureSelectionKnnFashion,
    /// Black box: maximum coverage, k of n sets (compared with greedy and the optimum).
    MaxCoverage,
}

impl EnvName {
    /// Every environment.
    pub const ALL: [EnvName; 13] = [
        EnvName::KnnMnist,
        EnvName::KnnFashion,
        EnvName::FeatureSelectionMnist,
        EnvName::FeatureSelectionFashion,
        EnvName::VaeMnist,
        EnvName::VaeFashion,
        EnvName::Cmd,
        EnvName::SensorPlacementSynthetic,
        EnvName::SensorPlacementMnist,
        EnvName::SensorPlacementFashion,
        EnvName::FeatureSelectionKnnMnist,
        EnvName::FeatureSelectionKnnFashion,
        EnvName::MaxCoverage,
    ];

    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            EnvName::KnnMnist => "knn-mnist",
            EnvName::KnnFashion => "knn-fashion",
            EnvName::FeatureSelectionMnist => "feature-selection-mnist",
            EnvName::FeatureSelectionFashion => "feature-selection-fashion",
            EnvName::VaeMnist => "vae-mnist",
            EnvName::VaeFashion => "vae-fashion",
            EnvName::Cmd => "cmd",
            EnvName::SensorPlacementSynthetic => "sensor-placement-synthetic",
            EnvName::SensorPlacementMnist => "sensor-placement-mnist",
            EnvName::SensorPlacementFashion => "sensor-placement-fashion",
            EnvName::FeatureSelectionKnnMnist => "feature-selection-knn-mnist",
            EnvName::FeatureSelectionKnnFashion => "feature-selection-knn-fashion",
            EnvName::MaxCoverage => "max-coverage",
        }
    }

    /// The data set it reads, if any.
    pub fn data_set(self) -> Option<sfess_envs::data::DataSet> {
        use sfess_envs::data::DataSet;
        match self {
            EnvName::KnnMnist
            | EnvName::FeatureSelectionMnist
            | EnvName::VaeMnist
            | EnvName::SensorPlacementMnist
            | EnvName::FeatureSelectionKnnMnist => Some(DataSet::Mnist),
            EnvName::KnnFashion
            | EnvName::FeatureSelectionFashion
            | EnvName::VaeFashion
            | EnvName::SensorPlacementFashion
            | EnvName::FeatureSelectionKnnFashion => Some(DataSet::FashionMnist),
            EnvName::Cmd | EnvName::SensorPlacementSynthetic | EnvName::MaxCoverage => None,
        }
    }

    /// Whether it is one of the paper's three tasks (with their own networks and settings).
    pub fn is_paper_task(self) -> bool {
        matches!(
            self,
            EnvName::KnnMnist
                | EnvName::KnnFashion
                | EnvName::FeatureSelectionMnist
                | EnvName::FeatureSelectionFashion
                | EnvName::VaeMnist
                | EnvName::VaeFashion
        )
    }

    /// The default subset size: the paper's for its tasks (10 for k-NN, 50 for feature
    /// selection, 5 for the VAE's (10, 10, 5)); 20 sensors, 50 pixels for k-NN feature
    /// selection, 5 sets for maximum coverage, 10 for `cmd`.
    pub fn default_k(self) -> usize {
        match self {
            EnvName::KnnMnist | EnvName::KnnFashion | EnvName::Cmd => 10,
            EnvName::FeatureSelectionMnist
            | EnvName::FeatureSelectionFashion
            | EnvName::FeatureSelectionKnnMnist
            | EnvName::FeatureSelectionKnnFashion => 50,
            EnvName::VaeMnist | EnvName::VaeFashion | EnvName::MaxCoverage => 5,
            EnvName::SensorPlacementSynthetic | EnvName::SensorPlacementMnist | EnvName::SensorPlacementFashion => 20,
        }
    }

    /// The default learning rate: the paper's 1e-4 for its tasks; 0.05 for the free logits
    /// of the black-box tasks (1e-3 with an MLP policy), which otherwise barely move in a
    /// few thousand steps.
    pub fn default_learning_rate(self, policy: PolicyName) -> f64 {
        if self.is_paper_task() { 1e-4 } else { policy.default_learning_rate() }
    }
}

/// The policy of a black-box or custom environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyName {
    /// Free logits: one global subset (repeated for every row).
    #[default]
    Logits,
    /// An MLP from each row of the observation to its logits (needs an observation).
    Mlp,
}

impl PolicyName {
    /// Adam's default learning rate for this policy on a black-box or custom task: 0.05 for
    /// free logits, 1e-3 for an MLP.
    pub fn default_learning_rate(self) -> f64 {
        match self {
            PolicyName::Logits => 0.05,
            PolicyName::Mlp => 1e-3,
        }
    }
}

/// Everything a run needs; written to the run folder as `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Environment (`knn-mnist`).
    pub env: EnvName,
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
    /// Candidates per step for k-NN (128).
    pub candidates: usize,
    /// Embedding dimension for k-NN (2).
    pub embedding_dim: usize,
    /// Subsets per image `d` of the VAE (10; the paper's other setting is 20).
    pub vae_groups: usize,
    /// Items per subset `n` of the VAE (10; the paper's other setting is 20, with k = 10).
    pub vae_items: usize,
    /// Where the MNIST and Fashion-MNIST IDX files are (`None`: `$SFESS_DATA_DIR`, else
    /// the per-user cache).
    pub data_dir: Option<PathBuf>,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Estimator options (sampler, temperatures, I-MLE's λ and noise).
    pub estimator_options: EstimatorOptionsConfig,
    /// Policy of the black-box tasks: free logits or an MLP of the observation.
    pub policy: PolicyName,
    /// Hidden units of the MLP policy (64).
    pub hidden: usize,
    /// `cmd`: the reward command, run by `sh -c` (for example `python3 score.py`).
    pub reward_cmd: Option<String>,
    /// `cmd`: the folder the reward command runs in (`None`: the current one; a new run
    /// records where it was started, so that a resumption from elsewhere runs the same
    /// command).
    pub reward_dir: Option<PathBuf>,
    /// `cmd`: seconds to wait for each answer of the reward command (60).
    pub reward_timeout: f64,
    /// `cmd`: items n; `max-coverage`: sets n (50).
    pub n: Option<usize>,
    /// `cmd`: numbers per context when the command supplies contexts (`batch_size` contexts
    /// per step, one subset each); `None`: one global subset.
    pub context_dim: Option<usize>,
    /// Sensor placement: principal components r of the reconstruction basis (10).
    pub sensor_modes: usize,
    /// Maximum coverage: elements of the universe (500).
    pub coverage_elements: usize,
    /// Maximum coverage: seed of the random instance (0; fixed across training seeds).
    pub coverage_seed: u64,
    /// k-NN feature selection: neighbours of the classifier (5).
    pub neighbours: usize,
    /// k-NN feature selection: labelled reference images per training step (1,000).
    pub references: usize,
}

/// [`EstimatorOptions`] as stored in a config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EstimatorOptionsConfig {
    /// `exact` or `gumbel-topk`.
    pub sampler: SamplerName,
    /// τ of gs and stgs.
    pub temperature: f64,
    /// λ of I-MLE.
    pub imle_lambda: f64,
    /// Noise temperature of I-MLE.
    pub imle_temperature: f64,
    /// `gumbel` or `sum-of-gamma`.
    pub imle_noise: ImleNoiseName,
    /// Backend of the k-subset law: `auto` (stable on the CPU, parallel on CUDA),
    /// `stable`, `parallel`, `dft` or `paper-complex64`.
    pub normalizer: NormalizerName,
}

impl Default for EstimatorOptionsConfig {
    fn default() -> Self {
        let o = EstimatorOptions::default();
        Self {
            sampler: o.sampler,
            temperature: o.temperature,
            imle_lambda: o.imle_lambda,
            imle_temperature: o.imle_temperature,
            imle_noise: o.imle_noise,
            normalizer: o.normalizer,
        }
    }
}

impl From<&EstimatorOptionsConfig> for EstimatorOptions {
    fn from(c: &EstimatorOptionsConfig) -> Self {
        EstimatorOptions {
            sampler: c.sampler,
            temperature: c.temperature,
            imle_lambda: c.imle_lambda,
            imle_temperature: c.imle_temperature,
            imle_noise: c.imle_noise,
            normalizer: c.normalizer,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            env: EnvName::KnnMnist,
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
            candidates: 128,
            embedding_dim: 2,
            vae_groups: 10,
            vae_items: 10,
            data_dir: None,
            device: "auto".to_owned(),
            estimator_options: EstimatorOptionsConfig::default(),
            policy: PolicyName::Logits,
            hidden: 64,
            reward_cmd: None,
            reward_dir: None,
            reward_timeout: 60.0,
            n: None,
            context_dim: None,
            sensor_modes: 10,
            coverage_elements: 500,
            coverage_seed: 0,
            neighbours: 5,
            references: 1000,
        }
    }
}

impl TrainConfig {
    /// The subset size: `k`, else the task's default.
    pub fn subset_size(&self) -> usize {
        self.k.unwrap_or_else(|| self.env.default_k())
    }

    /// Adam's learning rate: `learning_rate`, else the task's default.
    pub fn lr(&self) -> f64 {
        self.learning_rate.unwrap_or_else(|| self.env.default_learning_rate(self.policy))
    }

    /// The configuration with the task's defaults filled in: `learning_rate` ([`lr`](Self::lr)),
    /// `k` ([`subset_size`](Self::subset_size)) and, for `max-coverage`, `n`
    /// ([`DEFAULT_COVERAGE_SETS`](crate::runner::DEFAULT_COVERAGE_SETS)).
    pub fn resolved(&self) -> TrainConfig {
        let mut config = self.clone();
        config.learning_rate = Some(self.lr());
        config.k = Some(self.subset_size());
        if self.env == EnvName::MaxCoverage {
            config.n = Some(self.n.unwrap_or(crate::runner::DEFAULT_COVERAGE_SETS));
        }
        config
    }

    /// The configuration with its paths absolute: `data_dir`, and `reward_dir` (the current
    /// folder unless given) for `cmd`.
    ///
    /// # Errors
    /// The current folder cannot be read.
    pub fn with_absolute_paths(mut self) -> std::io::Result<Self> {
        if let Some(dir) = &self.data_dir {
            self.data_dir = Some(std::path::absolute(dir)?);
        }
        if self.env == EnvName::Cmd {
            let dir = self.reward_dir.clone().unwrap_or_else(|| PathBuf::from("."));
            self.reward_dir = Some(std::path::absolute(dir)?);
        }
        Ok(self)
    }

    /// The items `n` the environment selects `k` of, and what they are (for messages);
    /// `None` for `cmd` without `n`.
    fn items(&self) -> Option<(usize, &'static str)> {
        Some(match self.env {
            EnvName::KnnMnist | EnvName::KnnFashion => (self.candidates, "candidates (--candidates)"),
            EnvName::VaeMnist | EnvName::VaeFashion => (self.vae_items, "items per subset (--vae-items)"),
            EnvName::Cmd => (self.n?, "items (--n)"),
            EnvName::SensorPlacementSynthetic => {
                (crate::runner::SYNTHETIC_SIDE * crate::runner::SYNTHETIC_SIDE, "locations")
            }
            EnvName::MaxCoverage => (self.n.unwrap_or(crate::runner::DEFAULT_COVERAGE_SETS), "sets (--n)"),
            EnvName::FeatureSelectionMnist
            | EnvName::FeatureSelectionFashion
            | EnvName::SensorPlacementMnist
            | EnvName::SensorPlacementFashion
            | EnvName::FeatureSelectionKnnMnist
            | EnvName::FeatureSelectionKnnFashion => (IMAGE_PIXELS, "pixels"),
        })
    }

    /// Rows of one step's actions: queries for k-NN, images × subsets for the VAE, contexts
    /// for a contextual `cmd`, else one global subset.
    fn rows(&self) -> usize {
        match self.env {
            EnvName::KnnMnist | EnvName::KnnFashion => self.batch_size,
            EnvName::VaeMnist | EnvName::VaeFashion => self.batch_size.saturating_mul(self.vae_groups),
            EnvName::Cmd if self.context_dim.is_some() => self.batch_size,
            _ => 1,
        }
    }

    /// Checks every value before anything starts, in a configuration resolved by
    /// [`resolved`](Self::resolved) or not: sizes within the `MAX_*` bounds, finite positive
    /// rates and temperatures, `k` within the items the environment selects from, a device
    /// that parses.
    ///
    /// # Errors
    /// The first value out of range, naming its flag.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.steps >= 1, "--steps must be at least 1");
        anyhow::ensure!(self.eval_every >= 1, "--eval-every must be at least 1");
        for (flag, value, max) in [
            ("--samples", self.samples, MAX_SAMPLES),
            ("--batch-size", self.batch_size, MAX_ROWS),
            ("--candidates", self.candidates, MAX_ROWS),
            ("--references", self.references, MAX_ROWS),
            ("--coverage-elements", self.coverage_elements, MAX_ITEMS),
            ("--n", self.n.unwrap_or(1), MAX_ITEMS),
            ("--vae-groups", self.vae_groups, MAX_LATENT),
            ("--vae-items", self.vae_items, MAX_LATENT),
            ("--hidden", self.hidden, MAX_WIDTH),
            ("--context-dim", self.context_dim.unwrap_or(1), MAX_WIDTH),
            ("embedding_dim", self.embedding_dim, MAX_WIDTH),
            ("--sensor-modes", self.sensor_modes, IMAGE_PIXELS),
        ] {
            anyhow::ensure!((1..=max).contains(&value), "{flag} must be between 1 and {max}, got {value}");
        }
        anyhow::ensure!(
            self.vae_groups.saturating_mul(self.vae_items) <= MAX_LATENT,
            "--vae-groups × --vae-items must be at most {MAX_LATENT} (the VAE's code), got {} × {}",
            self.vae_groups,
            self.vae_items
        );
        anyhow::ensure!(
            (1..=self.references).contains(&self.neighbours),
            "--neighbours must be between 1 and the {} references (--references), got {}",
            self.references,
            self.neighbours
        );
        let lr = self.lr();
        anyhow::ensure!(lr.is_finite() && lr > 0.0, "--lr must be positive and finite, got {lr}");
        let options = &self.estimator_options;
        for (flag, value) in [("--temperature", options.temperature), ("--imle-lambda", options.imle_lambda)] {
            anyhow::ensure!(value.is_finite() && value > 0.0, "{flag} must be positive and finite, got {value}");
        }
        anyhow::ensure!(
            options.imle_temperature.is_finite() && options.imle_temperature >= 0.0,
            "--imle-temperature must be non-negative and finite, got {}",
            options.imle_temperature
        );
        anyhow::ensure!(
            self.reward_timeout > 0.0 && self.reward_timeout <= MAX_REWARD_TIMEOUT,
            "--reward-timeout must be a positive number of seconds, at most {MAX_REWARD_TIMEOUT} (11.6 days), got {}",
            self.reward_timeout
        );
        for (name, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            anyhow::ensure!((0.0..1.0).contains(&beta), "{name} must be in [0, 1), got {beta}");
        }
        self.device
            .parse::<DeviceSpec>()
            .map_err(|e| anyhow::anyhow!("device {:?} in the configuration: {e}", self.device))?;
        if self.env.is_paper_task() && self.policy != PolicyName::Logits {
            anyhow::bail!(
                "--policy applies to the black-box and custom environments; {} uses the paper's network",
                self.env.as_str()
            );
        }
        if self.env == EnvName::Cmd {
            anyhow::ensure!(
                self.reward_cmd.as_deref().is_some_and(|c| !c.trim().is_empty()),
                "--env cmd needs the reward command: --reward-cmd 'python3 score.py' (see the README's protocol)"
            );
            anyhow::ensure!(self.n.is_some(), "--env cmd needs the number of items: --n N");
        } else if self.reward_cmd.is_some() || self.context_dim.is_some() || self.reward_dir.is_some() {
            anyhow::bail!("--reward-cmd and --context-dim are only for --env cmd, not {}", self.env.as_str());
        } else if self.n.is_some() && self.env != EnvName::MaxCoverage {
            anyhow::bail!("--n is only for --env cmd and max-coverage, not {}", self.env.as_str());
        }
        if let Some((n, what)) = self.items() {
            let k = self.subset_size();
            anyhow::ensure!(
                (1..=n).contains(&k),
                "k = {k} is out of range for n = {n} {what}: -k must be between 1 and {n}"
            );
            let entries = self.samples as u128 * self.rows() as u128 * n as u128;
            anyhow::ensure!(
                entries <= MAX_ACTION_ENTRIES,
                "a step's actions would hold --samples × rows × n = {} × {} × {n} = {entries} entries, more than \
                 {MAX_ACTION_ENTRIES}; use fewer samples or a smaller --batch-size",
                self.samples,
                self.rows()
            );
        }
        Ok(())
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
    let key = key.strip_prefix("estimator_options.").unwrap_or(key);
    match key {
        "learning_rate" => "--lr".to_owned(),
        "k" => "-k".to_owned(),
        other => format!("--{}", other.replace('_', "-")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default configuration of `env`, with the command and items `cmd` needs.
    fn default_for(env: EnvName) -> TrainConfig {
        let mut config = TrainConfig { env, ..TrainConfig::default() };
        if env == EnvName::Cmd {
            config.reward_cmd = Some("cat".to_owned());
            config.n = Some(20);
        }
        config
    }

    #[test]
    fn resolved_fills_the_task_defaults_and_both_forms_check() {
        for env in EnvName::ALL {
            let config = default_for(env);
            let resolved = config.resolved();
            assert_eq!((resolved.learning_rate, resolved.k), (Some(config.lr()), Some(env.default_k())), "{env:?}");
            let n = match env {
                EnvName::MaxCoverage => Some(crate::runner::DEFAULT_COVERAGE_SETS),
                EnvName::Cmd => Some(20),
                _ => None,
            };
            assert_eq!(resolved.n, n, "{env:?}");
            assert_eq!((resolved.lr(), resolved.subset_size()), (config.lr(), config.subset_size()));
            assert_eq!(resolved.resolved(), resolved);
            config.check().unwrap();
            resolved.check().unwrap();
        }
        let given = TrainConfig {
            env: EnvName::MaxCoverage,
            k: Some(3),
            n: Some(10),
            learning_rate: Some(0.1),
            ..TrainConfig::default()
        };
        let resolved = given.resolved();
        assert_eq!((resolved.k, resolved.n, resolved.learning_rate), (Some(3), Some(10), Some(0.1)));
    }

    #[test]
    fn check_refuses_each_value_out_of_range_naming_its_flag() {
        let knn = TrainConfig::default();
        let on = |env: EnvName| default_for(env);
        let cases: Vec<(TrainConfig, &str)> = vec![
            (TrainConfig { steps: 0, ..knn.clone() }, "--steps must be at least 1"),
            (TrainConfig { eval_every: 0, ..knn.clone() }, "--eval-every must be at least 1"),
            (TrainConfig { samples: 0, ..knn.clone() }, "--samples must be between 1 and 10000, got 0"),
            (TrainConfig { samples: usize::MAX, ..knn.clone() }, "--samples must be between 1 and 10000"),
            (TrainConfig { batch_size: 0, ..knn.clone() }, "--batch-size must be between 1 and 1000000, got 0"),
            (TrainConfig { batch_size: usize::MAX, ..knn.clone() }, "--batch-size must be between 1 and 1000000"),
            (TrainConfig { candidates: 1 << 40, ..knn.clone() }, "--candidates must be between 1 and 1000000"),
            (TrainConfig { references: 0, ..knn.clone() }, "--references must be between 1 and 1000000"),
            (TrainConfig { coverage_elements: 0, ..knn.clone() }, "--coverage-elements must be between 1"),
            (TrainConfig { n: Some(0), ..on(EnvName::MaxCoverage) }, "--n must be between 1 and 1000000, got 0"),
            (TrainConfig { n: Some(usize::MAX), ..on(EnvName::Cmd) }, "--n must be between 1 and 1000000"),
            (TrainConfig { vae_groups: 0, ..knn.clone() }, "--vae-groups must be between 1 and 100000"),
            (TrainConfig { vae_items: usize::MAX, ..knn.clone() }, "--vae-items must be between 1 and 100000"),
            (
                TrainConfig { vae_groups: 1000, vae_items: 1000, ..knn.clone() },
                "--vae-groups × --vae-items must be at most 100000 (the VAE's code), got 1000 × 1000",
            ),
            (TrainConfig { hidden: 0, ..knn.clone() }, "--hidden must be between 1 and 65536, got 0"),
            (TrainConfig { context_dim: Some(1 << 20), ..on(EnvName::Cmd) }, "--context-dim must be between 1"),
            (TrainConfig { embedding_dim: 0, ..knn.clone() }, "embedding_dim must be between 1 and 65536"),
            (TrainConfig { sensor_modes: 785, ..knn.clone() }, "--sensor-modes must be between 1 and 784, got 785"),
            (TrainConfig { neighbours: 0, ..knn.clone() }, "--neighbours must be between 1 and the 1000 references"),
            (TrainConfig { neighbours: 1001, ..knn.clone() }, "(--references), got 1001"),
            (TrainConfig { learning_rate: Some(f64::NAN), ..knn.clone() }, "--lr must be positive and finite, got NaN"),
            (TrainConfig { learning_rate: Some(0.0), ..knn.clone() }, "--lr must be positive and finite, got 0"),
            (TrainConfig { beta1: 1.0, ..knn.clone() }, "beta1 must be in [0, 1), got 1"),
            (TrainConfig { beta2: f64::NAN, ..knn.clone() }, "beta2 must be in [0, 1), got NaN"),
            (
                TrainConfig { reward_timeout: 1e20, ..on(EnvName::Cmd) },
                "--reward-timeout must be a positive number of seconds, at most 1000000 (11.6 days), got 100000000000000000000",
            ),
            (TrainConfig { reward_timeout: f64::NAN, ..on(EnvName::Cmd) }, "--reward-timeout must be a positive"),
            (TrainConfig { reward_timeout: 0.0, ..on(EnvName::Cmd) }, "--reward-timeout must be a positive"),
            (TrainConfig { device: "tpu".to_owned(), ..knn.clone() }, r#"device "tpu" in the configuration: unknown"#),
            (TrainConfig { n: Some(20), ..knn.clone() }, "--n is only for --env cmd and max-coverage, not knn-mnist"),
            (
                TrainConfig { k: Some(0), ..knn.clone() },
                "k = 0 is out of range for n = 128 candidates (--candidates): -k must be between 1 and 128",
            ),
            (TrainConfig { k: Some(129), ..knn.clone() }, "k = 129 is out of range for n = 128 candidates"),
            (TrainConfig { k: Some(785), ..on(EnvName::FeatureSelectionMnist) }, "n = 784 pixels"),
            (TrainConfig { k: Some(0), ..on(EnvName::FeatureSelectionKnnMnist) }, "k = 0 is out of range for n = 784"),
            (TrainConfig { k: Some(785), ..on(EnvName::SensorPlacementMnist) }, "n = 784 pixels"),
            (TrainConfig { k: Some(11), ..on(EnvName::VaeMnist) }, "n = 10 items per subset (--vae-items)"),
            (TrainConfig { k: Some(21), ..on(EnvName::Cmd) }, "k = 21 is out of range for n = 20 items (--n)"),
            (TrainConfig { k: Some(257), ..on(EnvName::SensorPlacementSynthetic) }, "n = 256 locations"),
            (TrainConfig { k: Some(51), ..on(EnvName::MaxCoverage) }, "n = 50 sets (--n): -k must be between 1 and 50"),
            (
                TrainConfig { samples: 10_000, batch_size: 1_000_000, ..knn.clone() },
                "a step's actions would hold --samples × rows × n = 10000 × 1000000 × 128 = 1280000000000 entries",
            ),
        ];
        let mut temperatures = knn.clone();
        temperatures.estimator_options.temperature = f64::INFINITY;
        let mut lambda = knn.clone();
        lambda.estimator_options.imle_lambda = 0.0;
        let mut noise = knn.clone();
        noise.estimator_options.imle_temperature = -1.0;
        let options = [
            (temperatures, "--temperature must be positive and finite, got inf"),
            (lambda, "--imle-lambda must be positive and finite, got 0"),
            (noise, "--imle-temperature must be non-negative and finite, got -1"),
        ];
        for (config, phrase) in cases.into_iter().chain(options) {
            let message = config.check().unwrap_err().to_string();
            assert!(message.contains(phrase), "{phrase:?} not in {message:?}");
            assert_eq!(message.lines().count(), 1, "{message}");
        }
    }

    #[test]
    fn check_accepts_the_edges() {
        let mut no_noise = TrainConfig::default();
        no_noise.estimator_options.imle_temperature = 0.0;
        for config in [
            no_noise,
            TrainConfig { k: Some(128), samples: MAX_SAMPLES, ..TrainConfig::default() },
            TrainConfig { reward_timeout: MAX_REWARD_TIMEOUT, ..default_for(EnvName::Cmd) },
            TrainConfig { k: Some(1), n: Some(1), ..default_for(EnvName::MaxCoverage) },
            TrainConfig { device: "cuda:3".to_owned(), ..TrainConfig::default() },
        ] {
            config.check().unwrap();
        }
    }
}
