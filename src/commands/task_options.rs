//! The options of one run that `train` gives it and `compare` gives each of its runs
//! ([`TaskOptions`]): each one left out keeps its default, or the `--config` file's value.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::config::TrainConfig;

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
    /// Sampler of sfess and sfess-vr.
    #[arg(long, value_enum)]
    pub sampler: Option<crate::config::estimators::SamplerName>,
    /// Relaxation temperature of gs and stgs [default: 0.5].
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Step λ of I-MLE's target distribution θ' = θ − λ ∂f/∂z [default: 10].
    #[arg(long)]
    pub imle_lambda: Option<f64>,
    /// Noise temperature of I-MLE, for the input and the target [default: 1].
    #[arg(long)]
    pub imle_temperature: Option<f64>,
    /// Perturbation of I-MLE [default: sum-of-gamma].
    #[arg(long, value_enum)]
    pub imle_noise: Option<crate::config::estimators::ImleNoiseName>,
    /// Backend of the k-subset law for sfess, sfess-vr and simple [default: auto, which is
    /// stable on the CPU and parallel on CUDA].
    #[arg(long, value_enum)]
    pub normalizer: Option<crate::config::estimators::NormalizerName>,
    /// Over episodes: weight each step's score by the rewards from that step on (reward-to-go)
    /// [default: false, the whole return].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub reward_to_go: Option<bool>,
    /// Over episodes: the discount γ in (0, 1] [default: 1].
    #[arg(long)]
    pub discount: Option<f64>,
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
    pub fn apply(&self, config: &mut TrainConfig) {
        macro_rules! set {
            ($($flag:ident => $field:expr),* $(,)?) => { $(if let Some(value) = self.$flag.clone() { $field = value; })* };
        }
        set!(samples => config.samples, steps => config.steps, batch_size => config.batch_size,
             eval_every => config.eval_every,
             sampler => config.estimator_options.sampler, temperature => config.estimator_options.temperature,
             imle_lambda => config.estimator_options.imle_lambda,
             imle_temperature => config.estimator_options.imle_temperature,
             imle_noise => config.estimator_options.imle_noise,
             normalizer => config.estimator_options.normalizer,
             reward_to_go => config.estimator_options.reward_to_go,
             discount => config.estimator_options.discount,
             policy => config.policy, hidden => config.hidden);
        // Options whose configuration field is itself optional.
        macro_rules! set_some {
            ($($flag:ident => $field:expr),* $(,)?) => { $(if self.$flag.is_some() { $field = self.$flag.clone(); })* };
        }
        set_some!(lr => config.learning_rate, data_dir => config.data_dir, k => config.k);
        // Values as given; the environment's entry parses and checks them.
        for (name, value) in &self.env_options {
            config.set_option(name, serde_json::Value::from(value.as_str()));
        }
    }

    /// The given options as `train` flags.
    pub fn to_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        let mut push = |flag: &str, value: Option<String>| {
            if let Some(value) = value {
                flags.push(flag.to_owned());
                flags.push(value);
            }
        };
        push("--steps", self.steps.map(|v| v.to_string()));
        push("--samples", self.samples.map(|v| v.to_string()));
        push("--batch-size", self.batch_size.map(|v| v.to_string()));
        push("--lr", self.lr.map(|v| v.to_string()));
        push("--eval-every", self.eval_every.map(|v| v.to_string()));
        push("-k", self.k.map(|v| v.to_string()));
        push("--data-dir", self.data_dir.as_ref().map(|d| d.display().to_string()));
        push("--sampler", self.sampler.map(|s| sfess_agents::Sampler::from(s).name().to_owned()));
        push("--temperature", self.temperature.map(|v| v.to_string()));
        push("--imle-lambda", self.imle_lambda.map(|v| v.to_string()));
        push("--imle-temperature", self.imle_temperature.map(|v| v.to_string()));
        push("--imle-noise", self.imle_noise.and_then(|v| v.to_possible_value()).map(|v| v.get_name().to_owned()));
        push("--normalizer", self.normalizer.and_then(|v| v.to_possible_value()).map(|v| v.get_name().to_owned()));
        push("--reward-to-go", self.reward_to_go.map(|v| v.to_string()));
        push("--discount", self.discount.map(|v| v.to_string()));
        push("--policy", self.policy.and_then(|p| p.to_possible_value()).map(|v| v.get_name().to_owned()));
        push("--hidden", self.hidden.map(|v| v.to_string()));
        for (name, value) in &self.env_options {
            flags.push("--env-option".to_owned());
            flags.push(format!("{name}={value}"));
        }
        flags
    }
}

/// `NAME=VALUE` of `--env-option`.
fn parse_env_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE (for example n=50), got {text:?}")),
    }
}
