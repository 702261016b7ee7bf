//! The configuration of a training run: a plain serde struct whose defaults are the
//! paper's settings.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::estimators::{EstimatorName, EstimatorOptions, ImleNoiseName, NormalizerName, SamplerName};

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

    /// The configuration with every default that depends on the task filled in (the
    /// learning rate, k), as `config.json` records it.
    pub fn resolved(&self) -> TrainConfig {
        let mut config = self.clone();
        config.learning_rate = Some(self.lr());
        config.k = Some(self.subset_size());
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

    /// Checks the values that no later step checks with a clearer message.
    ///
    /// # Errors
    /// The first value out of range.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.steps >= 1, "steps must be at least 1");
        anyhow::ensure!(self.eval_every >= 1, "eval_every must be at least 1");
        anyhow::ensure!(self.batch_size >= 1, "batch_size must be at least 1");
        anyhow::ensure!(self.samples >= 1, "samples must be at least 1");
        anyhow::ensure!(self.embedding_dim >= 1, "embedding_dim must be at least 1");
        anyhow::ensure!(self.lr().is_finite() && self.lr() > 0.0, "learning_rate must be positive, got {}", self.lr());
        anyhow::ensure!(
            self.reward_timeout.is_finite() && self.reward_timeout > 0.0,
            "reward_timeout must be a positive number of seconds, got {}",
            self.reward_timeout
        );
        anyhow::ensure!(self.hidden >= 1, "hidden must be at least 1");
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
        }
        for (name, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            anyhow::ensure!((0.0..1.0).contains(&beta), "{name} must be in [0, 1), got {beta}");
        }
        Ok(())
    }
}

/// The settings in which two configurations differ: `(key, value in a, value in b)`, with
/// the keys of `estimator_options` as `estimator_options.KEY`.
pub fn differences(a: &TrainConfig, b: &TrainConfig) -> Vec<(String, String, String)> {
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
    flatten("", serde_json::to_value(a).unwrap_or_default(), &mut left);
    flatten("", serde_json::to_value(b).unwrap_or_default(), &mut right);
    left.into_iter()
        .filter_map(|(key, was)| {
            let now = right.remove(&key).unwrap_or_default();
            (was != now).then(|| (key, was.to_string(), now.to_string()))
        })
        .collect()
}

/// The command-line flag of a configuration key (`learning_rate` is `--lr`,
/// `estimator_options.sampler` is `--sampler`).
pub fn flag_of(key: &str) -> String {
    let key = key.strip_prefix("estimator_options.").unwrap_or(key);
    match key {
        "learning_rate" => "--lr".to_owned(),
        "k" => "-k".to_owned(),
        other => format!("--{}", other.replace('_', "-")),
    }
}
