//! The configuration of a training run: a plain serde struct whose defaults are the
//! paper's settings.

use std::path::PathBuf;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::estimators::{EstimatorName, EstimatorOptions, ImleNoiseName, SamplerName};

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
}

impl EnvName {
    /// Every environment.
    pub const ALL: [EnvName; 6] = [
        EnvName::KnnMnist,
        EnvName::KnnFashion,
        EnvName::FeatureSelectionMnist,
        EnvName::FeatureSelectionFashion,
        EnvName::VaeMnist,
        EnvName::VaeFashion,
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
        }
    }

    /// The data set it trains on.
    pub fn data_set(self) -> sfess_envs::data::DataSet {
        use sfess_envs::data::DataSet;
        match self {
            EnvName::KnnMnist | EnvName::FeatureSelectionMnist | EnvName::VaeMnist => DataSet::Mnist,
            EnvName::KnnFashion | EnvName::FeatureSelectionFashion | EnvName::VaeFashion => DataSet::FashionMnist,
        }
    }

    /// The paper's subset size for this task: 10 for k-NN, 50 for feature selection, 5
    /// for the VAE's (10, 10, 5).
    pub fn default_k(self) -> usize {
        match self {
            EnvName::KnnMnist | EnvName::KnnFashion => 10,
            EnvName::FeatureSelectionMnist | EnvName::FeatureSelectionFashion => 50,
            EnvName::VaeMnist | EnvName::VaeFashion => 5,
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
    /// Adam's learning rate (1e-4).
    pub learning_rate: f64,
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
            learning_rate: 1e-4,
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
        }
    }
}

impl TrainConfig {
    /// The subset size: `k`, else the task's default.
    pub fn subset_size(&self) -> usize {
        self.k.unwrap_or_else(|| self.env.default_k())
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
        anyhow::ensure!(
            self.learning_rate.is_finite() && self.learning_rate > 0.0,
            "learning_rate must be positive, got {}",
            self.learning_rate
        );
        for (name, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            anyhow::ensure!((0.0..1.0).contains(&beta), "{name} must be in [0, 1), got {beta}");
        }
        Ok(())
    }
}
