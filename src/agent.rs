//! The training loop as a library, for your own environment: [`Agent`], a thin owner of the
//! loop every run goes through ([`crate::run::training`]), with its records in memory.
//!
//! ```no_run
//! use sfess_agent::{Agent, AgentOptions};
//! use sfess_envs::{KHotSpace, Phase, custom::RewardEnv};
//! use tch::Tensor;
//!
//! let values = Tensor::from_slice(&[0.3f32, -1.0, 2.0, 0.5, 1.1, -0.2]);
//! let env = RewardEnv::new("hidden-values", KHotSpace::new(6, 2)?, move |actions: &Tensor| actions.mv(&values));
//! let mut agent = Agent::new(env, AgentOptions::default())?;
//! agent.train(300)?;
//! println!("{:?} scores {:?}", agent.best_subset()?, agent.evaluate(Phase::Test)?);
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! # Records
//! [`Agent::train`] and [`Agent::step`] train on the loop's schedule: the mean training loss
//! (and over episodes `return` and `length`, each `info.NAME`, and the clock
//! `seconds_per_step`) every [`LOSS_EVERY`](crate::run::LOSS_EVERY) steps, and with
//! [`AgentOptions::eval_every`] the validation metrics and marginals before the first step
//! and every `eval_every` steps; `train(a)` then `train(b)` is `train(a + b)`.
//! [`Agent::write_run_folder`] ends the run where it stands, as a run's last step does (the
//! loss window it cuts short, a validation), then tests. An agent of a configuration
//! ([`Agent::from_config`]) trained for its steps writes exactly the records of
//! `sfess-agent train` of it, clocks apart.
//!
//! # Saving, loading, run folders
//! [`Agent::save`] writes a checkpoint ([`crate::run::checkpoint`]'s format: the policy's and the
//! environment's variables, Adam's moments and step count, the agent's step, its time and
//! its training-loss window, with `n` and `k`); [`Agent::load`] restores it into an agent
//! built with the same environment and options, which then continues exactly as the agent
//! that saved it: every draw of the policy at step `t` is seeded by `(seed, t)` (an
//! environment's own noise repeats too when it draws it from the seed
//! `Environment::reset_step` gives it; a closure calling `randn_like` does not). [`Agent::write_run_folder`] writes an ordinary run folder
//! ([`crate::run`]), and [`Agent::load_run_folder`] continues from one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use sfess_envs::registry::Registry;
use sfess_envs::{Environment, Observation, Phase};
use tch::Device;

use crate::config::estimators::{EstimatorName, EstimatorOptions};
use crate::config::{PolicyName, TrainConfig};
use crate::run::figures::{RunName, record_figures, write_figures_with};
use crate::run::folder::{CHECKPOINT, CONFIG, EVENTS, MARGINALS, METRICS, Record, SUMMARY, Summary, run_file_in};
use crate::run::log::{events_of, json_lines, read_marginals, unix_now};
use crate::run::training::{MemoryRecords, Settings, Stop, Training};
use crate::system::device::device_name;
use crate::system::files::{read_bytes, read_or_empty, read_text, write_atomically};
use crate::system::signals::Interrupt;
use crate::train::estimators;
use crate::train::experiment::{EpisodeSettings, Experiment, stateless_policy_warning};
use crate::train::trainer::StepReport;

/// What `config.json` of an agent's run folder says it is (see [`Agent::write_run_folder`]).
pub const AGENT_RUN: &str = "agent";

/// Whether `dir` holds an agent's run folder ([`Agent::write_run_folder`]): its
/// `config.json` says `"kind": "agent"`.
pub fn is_agent_run(dir: &Path) -> bool {
    read_text(&dir.join(CONFIG))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|config| config.get("kind").and_then(|k| k.as_str()) == Some(AGENT_RUN))
}

/// What an Agent's run folder's `config.json` keeps for drawing its records' figures again
/// (`"figures"`): the environment's metric and the untrained selections' validation values.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct RecordFigures {
    metric: String,
    higher_is_better: bool,
    validation_baselines: BTreeMap<String, f64>,
}

/// What `sfess-agent show` redraws of an Agent's run folder `dir`: the figures of its
/// records (`curve`, `marginals`), from its `config.json` and `summary.json`; returns the
/// files written. The environment is the program's own, which the command line cannot
/// rebuild, so its pictures and `subset.json` stay as [`Agent::write_run_folder`] drew them.
///
/// # Errors
/// A folder that is not an Agent's, or whose `config.json` or `summary.json` cannot be read;
/// a figure that cannot be written.
pub fn redraw_record_figures(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    anyhow::ensure!(is_agent_run(dir), "{} is not an Agent's run folder", dir.display());
    let config: serde_json::Value = serde_json::from_str(&read_text(&dir.join(CONFIG))?)
        .with_context(|| format!("{}: not JSON", dir.join(CONFIG).display()))?;
    let figures: RecordFigures = config
        .get("figures")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .with_context(|| format!("{}: its \"figures\" are not readable", dir.join(CONFIG).display()))?
        .with_context(|| {
            format!(
                "{} was written before sfess-agent show could draw an Agent's run (its config.json has no \"figures\"); \
                 write it again with Agent::write_run_folder",
                dir.display()
            )
        })?;
    let summary: Summary = serde_json::from_str(&read_text(&dir.join(SUMMARY))?)
        .with_context(|| format!("{}: not a summary", dir.join(SUMMARY).display()))?;
    let name = RunName { env: &summary.env, estimator: &summary.estimator, seed: summary.seed };
    record_figures(dir, &name, &figures.metric, figures.higher_is_better, &figures.validation_baselines)
}

/// How an [`Agent`] learns.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AgentOptions {
    /// Gradient estimator (`sfess-vr`; only `sfess` and `sfess-vr` train on a black box).
    pub estimator: EstimatorName,
    /// The estimator's options.
    pub estimator_options: EstimatorOptions,
    /// Samples per row and step (16); over episodes, the episodes rolled out from each
    /// start state.
    pub samples: usize,
    /// Over episodes (a sequential environment): start states per step (16).
    pub episode_starts: usize,
    /// Adam's learning rate (`None`: 0.05 for free logits, 1e-3 for an MLP).
    pub learning_rate: Option<f64>,
    /// Free logits (one global subset) or an MLP of the observation.
    pub policy: PolicyName,
    /// Hidden units of the MLP policy (64).
    pub hidden: usize,
    /// Seed of the initialisation and of every draw (0).
    pub seed: u64,
    /// Where the policy lives (the CPU).
    #[serde(serialize_with = "serialize_device")]
    pub device: Device,
    /// Steps between validations, as `--eval-every` (`None`: only those you ask for with
    /// [`Agent::evaluate`]).
    pub eval_every: Option<u64>,
}

fn serialize_device<S: serde::Serializer>(device: &Device, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&device_name(*device))
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            estimator: EstimatorName::SfessVr,
            estimator_options: EstimatorOptions::default(),
            samples: 16,
            episode_starts: 16,
            learning_rate: None,
            policy: PolicyName::Logits,
            hidden: 64,
            seed: 0,
            device: Device::Cpu,
            eval_every: None,
        }
    }
}

/// A policy, an estimator and Adam around one environment, stepped by the caller.
pub struct Agent {
    training: Training,
    records: MemoryRecords,
    options: AgentOptions,
    /// The environment's name in tables.
    env: String,
    learning_rate: f64,
}

impl Agent {
    /// An agent for `env`.
    ///
    /// # Errors
    /// The estimator needs gradients the environment cannot give, too few samples, an MLP
    /// policy for an environment without observations, a non-positive learning rate.
    pub fn new(env: impl Environment + 'static, options: AgentOptions) -> anyhow::Result<Self> {
        tch::manual_seed(options.seed as i64);
        let estimator = estimators::build(options.estimator, &options.estimator_options)?;
        let learning_rate = options.learning_rate.unwrap_or_else(|| options.policy.default_learning_rate());
        anyhow::ensure!(
            learning_rate.is_finite() && learning_rate > 0.0,
            "the learning rate must be positive, got {learning_rate}"
        );
        anyhow::ensure!(options.eval_every != Some(0), "eval_every must be at least 1");
        let mut env: Box<dyn Environment> = Box::new(env);
        if let Some(warning) = stateless_policy_warning(env.as_mut(), options.policy) {
            crate::system::messages::say(format_args!("{warning}"));
        }
        let experiment = Experiment::custom(
            env,
            options.policy,
            options.hidden,
            estimator,
            options.samples,
            EpisodeSettings::new(options.episode_starts, &options.estimator_options),
            options.device,
        )?;
        let env = experiment.env.spec().name.clone();
        Self::around(experiment, options, env, learning_rate)
    }

    /// The agent of a `sfess-agent train` configuration (a registered environment, with
    /// its options, data and network), checked as `train` checks it: `train(config.steps)`
    /// then records what that command's run does.
    ///
    /// # Errors
    /// What [`TrainConfig::check`] and the experiment's build refuse.
    pub fn from_config(config: &TrainConfig, registry: &Registry) -> anyhow::Result<Self> {
        let spec = config.check(registry)?;
        let experiment = Experiment::build(&spec, &Interrupt::new())?;
        let config = spec.config();
        let options = AgentOptions {
            estimator: config.estimator,
            estimator_options: config.estimator_options.clone(),
            samples: config.samples,
            episode_starts: config.batch_size,
            learning_rate: Some(spec.learning_rate()),
            policy: config.policy,
            hidden: config.hidden,
            seed: config.seed,
            device: experiment.device,
            eval_every: Some(config.eval_every),
        };
        Self::around(experiment, options, spec.label().to_owned(), spec.learning_rate())
    }

    fn around(experiment: Experiment, options: AgentOptions, env: String, learning_rate: f64) -> anyhow::Result<Self> {
        let settings = Settings {
            seed: options.seed,
            samples: options.samples,
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            eval_every: options.eval_every,
        };
        Ok(Self {
            training: Training::new(experiment, settings)?,
            records: MemoryRecords::default(),
            options,
            env,
            learning_rate,
        })
    }

    /// One training step, on the loop's schedule. Its `loss` is minus the mean reward of the
    /// step's samples.
    ///
    /// # Errors
    /// Whatever the environment, the policy or the estimator fails with; a non-finite loss.
    pub fn step(&mut self) -> anyhow::Result<StepReport> {
        let step = self.training.step();
        let report = self.training.step_once(None, &mut self.records).map_err(|stop| stopped(stop, step))?;
        let loss = report.loss_value()?;
        anyhow::ensure!(loss.is_finite(), "training step {step}: the loss became {loss}");
        Ok(report)
    }

    /// `steps` training steps; returns the mean reward of each step's samples.
    ///
    /// # Errors
    /// As [`Agent::step`].
    pub fn train(&mut self, steps: u64) -> anyhow::Result<Vec<f64>> {
        let first = self.training.step();
        let mut rewards = Vec::with_capacity(steps as usize);
        // The step whose loss is not finite, if one is.
        let mut failed = None;
        let mut observe = |report: &StepReport| -> anyhow::Result<()> {
            let loss = report.loss_value()?;
            if !loss.is_finite() {
                failed = Some(first + rewards.len() as u64);
                anyhow::bail!("the loss became {loss}");
            }
            rewards.push(-loss);
            Ok(())
        };
        let result = self.training.run_until(first + steps, false, &mut self.records, &mut observe);
        result.map_err(|stop| stopped(stop, failed.unwrap_or(self.training.step())))?;
        Ok(rewards)
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.training.step()
    }

    /// The environment's metrics of the policy's deterministic (top-k) action on `phase`,
    /// recorded at the current step (with the marginals, for the validation split).
    ///
    /// # Errors
    /// Whatever the environment fails with.
    pub fn evaluate(&mut self, phase: Phase) -> anyhow::Result<BTreeMap<String, f64>> {
        let started = Instant::now();
        let metrics = self.training.evaluate(phase, &mut self.records);
        self.training.add_elapsed(started.elapsed().as_secs_f64());
        metrics
    }

    /// Every record so far, as a run folder's `metrics.jsonl` holds them (see the
    /// [module docs](self)).
    pub fn records(&self) -> &[Record] {
        &self.records.metrics
    }

    /// The environment's untrained baselines on `phase` (random subsets, classical methods).
    ///
    /// # Errors
    /// Whatever the environment fails with.
    pub fn baselines(&mut self, phase: Phase) -> anyhow::Result<BTreeMap<String, f64>> {
        Ok(self.training.experiment().env.baselines(phase)?)
    }

    /// The subset the policy would pick without context: the sorted indices of its top-k
    /// logits (row 0).
    ///
    /// # Errors
    /// A policy that needs an observation (an MLP).
    pub fn best_subset(&mut self) -> anyhow::Result<Vec<usize>> {
        let action = self.training.experiment().policy.act(&Observation { inputs: Vec::new() })?;
        let row: Vec<f32> = Vec::try_from(action.get(0).to_device(Device::Cpu))?;
        Ok(row.iter().enumerate().filter(|(_, x)| **x > 0.5).map(|(i, _)| i).collect())
    }

    /// The experiment: environment, policy and estimator.
    pub fn experiment(&mut self) -> &mut Experiment {
        self.training.experiment()
    }

    /// What a checkpoint of this agent must match besides its variables' shapes.
    fn shape(&mut self) -> [(&'static str, i64); 2] {
        let space = self.training.experiment().env.spec().space;
        [("n", space.n() as i64), ("k", space.k() as i64)]
    }

    /// Writes a checkpoint of the agent at `path` (atomically: a failed write leaves the
    /// previous file whole): every variable of the policy and the environment, Adam's
    /// moments and step count, the agent's step, its seconds and its training-loss window in
    /// progress, and the environment's `n` and `k`. The records ([`Agent::records`]) are
    /// not in it; [`Agent::write_run_folder`] writes them too.
    ///
    /// # Errors
    /// libtorch errors; the file cannot be written.
    pub fn save(&mut self, path: impl AsRef<Path>) -> anyhow::Result<()> {
        let shape = self.shape();
        let step = self.training.step();
        self.training.save(path.as_ref(), &shape).with_context(|| format!("saving the agent at step {step}"))
    }

    /// Restores a checkpoint of [`Agent::save`] into this agent, which must have been built
    /// with the same kind of environment and policy. With the same options (seed, estimator,
    /// samples, learning rate) it then trains exactly as the agent that saved it would have;
    /// the options themselves are this agent's. The records so far are dropped (they belong
    /// to the run before; [`Agent::load_run_folder`] keeps a run folder's).
    ///
    /// # Errors
    /// The file is missing, corrupt or holds non-finite values; it is of another `n` or `k`
    /// or of other variables (another policy, a differently shaped environment); each in
    /// one line. The agent is then unchanged.
    pub fn load(&mut self, path: impl AsRef<Path>) -> anyhow::Result<()> {
        let path = path.as_ref();
        let shape = self.shape();
        self.training.load(path, &shape).with_context(|| format!("loading {} into the agent", path.display()))?;
        self.records = MemoryRecords::default();
        Ok(())
    }

    /// Writes (or rewrites) `dir` as a run folder of the agent at its current step
    /// (see [`crate::run`]):
    /// - `checkpoint.ot`: as [`Agent::save`];
    /// - `metrics.jsonl`: [`Agent::records`], with the end of the run at this step as
    ///   `sfess-agent train` writes it: the loss window cut short, the validation (with
    ///   [`AgentOptions::eval_every`]), then the test metrics and baselines (split `test`, the
    ///   baselines as `baseline.NAME`);
    /// - `summary.json`: [`Summary`] of now (`env` is the environment's name);
    /// - `marginals.jsonl` and the TensorBoard event file ([`crate::run::log`]): the
    ///   marginals of each validation, and every record;
    /// - `figures/`: what `sfess-agent show` draws ([`crate::run::figures`]);
    /// - `config.json`: what is true of an agent, not a `sfess-agent train` configuration:
    ///   `{"kind": "agent", "env", "n", "k", "steps", "learning_rate", "options"}`. A user's
    ///   environment (a closure) has no name the command line could rebuild it from, so
    ///   `sfess-agent train --resume` and `eval --run` refuse such a folder; `compare`'s
    ///   summaries and the metrics are read as any run's.
    ///
    /// Returns the summary.
    ///
    /// # Errors
    /// `dir` holds a run of `sfess-agent train` (not an agent's); the environment fails to
    /// evaluate; a file cannot be written.
    pub fn write_run_folder(&mut self, dir: impl AsRef<Path>) -> anyhow::Result<Summary> {
        let dir = dir.as_ref();
        if let Some(file) = run_file_in(dir) {
            anyhow::ensure!(
                is_agent_run(dir),
                "{} already holds a run that is not an agent's (its {file}); choose another folder",
                dir.display()
            );
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating the run folder {}", dir.display()))?;
        let step = self.training.step();
        let tested = self
            .training
            .end(&mut self.records)
            .and_then(|()| self.training.test(&mut self.records))
            .map_err(|stop| stopped(stop, step))?;
        let spec = self.training.experiment().env.spec().clone();
        let validation_baselines = self.training.experiment().env.baselines(Phase::Validation)?;
        let config = serde_json::json!({
            "kind": AGENT_RUN,
            "env": self.env,
            "n": spec.space.n(),
            "k": spec.space.k(),
            "steps": step,
            "learning_rate": self.learning_rate,
            "options": self.options,
            "figures": RecordFigures {
                metric: spec.metric.clone(),
                higher_is_better: spec.higher_is_better,
                validation_baselines: validation_baselines.clone(),
            },
        });
        write_atomically(&dir.join(CONFIG), (serde_json::to_string_pretty(&config)? + "\n").as_bytes())?;
        write_atomically(&dir.join(METRICS), json_lines(&self.records.metrics)?.as_bytes())?;
        write_atomically(&dir.join(MARGINALS), json_lines(&self.records.marginals)?.as_bytes())?;
        let started = read_bytes(&dir.join(EVENTS)).ok().and_then(|bytes| sfess_tensorboard::header_wall_time(&bytes));
        let elapsed = self.training.progress().elapsed_seconds;
        let events =
            events_of(started.unwrap_or_else(|| unix_now() - elapsed), &self.records.metrics, &self.records.marginals);
        write_atomically(&dir.join(EVENTS), &events)?;
        self.save(dir.join(CHECKPOINT))?;
        let summary = self.training.summary(&self.env, self.options.estimator.as_str(), tested);
        write_atomically(&dir.join(SUMMARY), (serde_json::to_string_pretty(&summary)? + "\n").as_bytes())?;
        let name = RunName { env: &summary.env, estimator: &summary.estimator, seed: summary.seed };
        write_figures_with(dir, self.training.experiment(), &name, step, &validation_baselines)?;
        Ok(summary)
    }

    /// Continues from the run folder `dir` of [`Agent::write_run_folder`]: loads its
    /// checkpoint (as [`Agent::load`]) and keeps the records of its `metrics.jsonl` up to
    /// the checkpoint's step.
    ///
    /// # Errors
    /// As [`Agent::load`]; a `metrics.jsonl` line that is not a record.
    pub fn load_run_folder(&mut self, dir: impl AsRef<Path>) -> anyhow::Result<()> {
        let dir = dir.as_ref();
        let path = dir.join(METRICS);
        let text = read_or_empty(&path)?;
        let records = text
            .lines()
            .enumerate()
            .map(|(index, line)| {
                serde_json::from_str::<Record>(line)
                    .with_context(|| format!("{} line {} is not a metrics record", path.display(), index + 1))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let marginals = read_marginals(dir)?;
        self.load(dir.join(CHECKPOINT))?;
        let step = self.training.step();
        self.records = MemoryRecords {
            metrics: records.into_iter().filter(|r| r.step <= step).collect(),
            marginals: marginals.into_iter().filter(|r| r.step <= step).collect(),
        };
        Ok(())
    }
}

/// The error of a loop that stopped at training step `step`.
fn stopped(stop: Stop, step: u64) -> anyhow::Error {
    match stop {
        Stop::Signal(signal) => anyhow::anyhow!("training step {step}: stopped by signal {signal}"),
        Stop::Error(error) => error.context(format!("training step {step}")),
    }
}

#[cfg(test)]
mod tests {
    use crate::run::LOSS_EVERY;
    use sfess_envs::KHotSpace;
    use sfess_envs::custom::RewardEnv;
    use tch::Tensor;

    use super::*;

    /// An agent learning which `k` of `n` items have the highest hidden values.
    fn agent(n: usize, k: usize) -> Agent {
        let values: Vec<f32> = (0..n).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let values = Tensor::from_slice(&values);
        let env = RewardEnv::new("hidden-values", KHotSpace::new(n, k).unwrap(), move |a: &Tensor| a.mv(&values));
        Agent::new(env, AgentOptions::default()).unwrap()
    }

    /// Every variable's values, in name order.
    fn variables(agent: &mut Agent) -> Vec<(String, Tensor)> {
        agent.experiment().variables().into_iter().map(|(n, t)| (n, t.detach().copy())).collect()
    }

    fn assert_same(a: &[(String, Tensor)], b: &[(String, Tensor)]) {
        assert_eq!(a.len(), b.len());
        for ((name_a, a), (name_b, b)) in a.iter().zip(b) {
            assert_eq!(name_a, name_b);
            assert!(a.equal(b), "{name_a} differs: {a} against {b}");
        }
    }

    #[test]
    fn a_loaded_agent_trains_exactly_as_the_one_that_saved() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("agent.ot");
        let mut first = agent(12, 3);
        first.train(20).unwrap();
        first.save(&path).unwrap();
        let a = first.train(20).unwrap();
        let a_variables = variables(&mut first);

        let mut second = agent(12, 3);
        second.load(&path).unwrap();
        assert_eq!(second.steps(), 20);
        let b = second.train(20).unwrap();
        let b_variables = variables(&mut second);
        assert_eq!(
            a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert_same(&a_variables, &b_variables);
        assert_eq!(second.steps(), 40);

        // Without the checkpoint the same 20 steps differ (the test can tell).
        let mut fresh = agent(12, 3);
        assert_ne!(fresh.train(20).unwrap(), b);
    }

    #[test]
    fn a_checkpoint_of_another_n_or_k_is_refused_and_leaves_the_agent_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("agent.ot");
        agent(12, 3).save(&path).unwrap();
        for (n, k, expected) in [
            (12, 4, "is of another shape: it has n = 12, k = 3, this one n = 12, k = 4"),
            (10, 3, "is of another shape: it has n = 12, k = 3, this one n = 10, k = 3"),
        ] {
            let mut other = agent(n, k);
            other.train(3).unwrap();
            let before = variables(&mut other);
            let message = format!("{:#}", other.load(&path).unwrap_err());
            assert!(message.contains(expected) && message.contains("agent.ot"), "{message}");
            assert_eq!(other.steps(), 3);
            assert_same(&before, &variables(&mut other));
        }
    }

    #[test]
    fn a_run_folder_is_written_and_continued() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let mut first = agent(12, 3);
        first.train(2 * LOSS_EVERY).unwrap();
        let summary = first.write_run_folder(&dir).unwrap();
        assert_eq!(
            (summary.env.as_str(), summary.steps, summary.estimator.as_str()),
            ("hidden-values", 200, "sfess-vr")
        );
        assert!(summary.test["reward"] > summary.baselines["random"], "{summary:?}");
        let read: Summary =
            serde_json::from_str(&std::fs::read_to_string(dir.join(crate::run::SUMMARY)).unwrap()).unwrap();
        // serde_json's default parser may miss the last bit of a float: compare the clock
        // within an ulp-sized tolerance, everything else exactly.
        assert!((read.seconds_per_step - summary.seconds_per_step).abs() <= 1e-15, "{read:?}");
        assert_eq!(Summary { seconds_per_step: summary.seconds_per_step, ..read }, summary);
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(crate::run::CONFIG)).unwrap()).unwrap();
        assert_eq!(
            (config["kind"].as_str(), config["n"].as_u64(), config["k"].as_u64()),
            (Some("agent"), Some(12), Some(3))
        );
        let metrics = std::fs::read_to_string(dir.join(crate::run::METRICS)).unwrap();
        let records: Vec<Record> = metrics.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        let keys: Vec<(u64, &str, &str)> =
            records.iter().map(|r| (r.step, r.split.as_str(), r.metric.as_str())).collect();
        assert_eq!(
            keys,
            [
                (100, "train", "loss"),
                (100, "train", "seconds_per_step"),
                (200, "train", "loss"),
                (200, "train", "seconds_per_step"),
                (200, "test", "baseline.random"),
                (200, "test", "reward")
            ]
        );
        // Rewriting it later is allowed; a folder of `sfess-agent train` is not.
        first.train(1).unwrap();
        first.write_run_folder(&dir).unwrap();
        let mut second = agent(12, 3);
        second.load_run_folder(&dir).unwrap();
        assert_eq!(second.steps(), 201);
        // Those of step 200, then the loss window the one-step segment ended (loss and
        // seconds_per_step at 201) and the two test records of step 201.
        assert_eq!(second.records().len(), 10);
        let other = tmp.path().join("cli-run");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join(crate::run::CONFIG), "{\"env\": \"knn\"}").unwrap();
        let message = format!("{:#}", second.write_run_folder(&other).unwrap_err());
        assert!(message.contains("not an agent's"), "{message}");
    }

    /// A fallible reward's error stops training with the step named, and its source is the
    /// reward's own error (for a caller that takes it back); the step did not count.
    #[test]
    fn a_fallible_rewards_error_stops_training_with_the_step_named() {
        #[derive(Debug)]
        struct Offline;
        impl std::fmt::Display for Offline {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("sensor 7 is offline")
            }
        }
        impl std::error::Error for Offline {}
        let mut calls = 0;
        let env = RewardEnv::fallible("flaky", KHotSpace::new(6, 2).unwrap(), move |actions: &Tensor, _: &mut _| {
            calls += 1;
            if calls == 4 {
                return Err(Box::new(Offline) as sfess_envs::custom::RewardError);
            }
            Ok(actions.sum_dim_intlist(-1, false, None::<tch::Kind>))
        });
        let mut agent = Agent::new(env, AgentOptions::default()).unwrap();
        let error = agent.train(10).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("training step 3") && message.contains("sensor 7 is offline"), "{message}");
        assert!(error.chain().any(|cause| cause.downcast_ref::<Offline>().is_some()), "{message}");
        assert_eq!(agent.steps(), 3);
        assert_eq!(agent.train(2).unwrap().len(), 2);
    }

    /// An agent's run folder has what a run of the command line has: the marginals of each
    /// validation, the TensorBoard event file and the figures; continuing it keeps them.
    #[test]
    fn an_agents_run_folder_has_its_marginals_events_and_figures() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let mut agent = agent(12, 3);
        agent.evaluate(Phase::Validation).unwrap();
        agent.train(LOSS_EVERY).unwrap();
        agent.evaluate(Phase::Validation).unwrap();
        agent.write_run_folder(&dir).unwrap();
        let marginals = crate::run::log::read_marginals(&dir).unwrap();
        assert_eq!(
            marginals.iter().map(|r| (r.step, r.ranked, r.marginals.len())).collect::<Vec<_>>(),
            [(0, false, 12), (100, false, 12)]
        );
        let total: f32 = marginals[1].marginals.iter().sum();
        assert!((total - 3.0).abs() < 1e-4, "the marginals sum to k: {total}");
        let events = std::fs::read(dir.join(EVENTS)).unwrap();
        assert!(sfess_tensorboard::header_wall_time(&events).is_some());
        let figures = dir.join(crate::run::FIGURES);
        for name in ["curve.png", "marginals.png", "subset.json"] {
            assert!(figures.join(name).exists(), "{name}");
        }
        // What `sfess-agent show` draws again of it: the records' figures, the same bytes.
        let drawn: Vec<Vec<u8>> =
            ["curve.svg", "marginals.svg"].iter().map(|name| std::fs::read(figures.join(name)).unwrap()).collect();
        std::fs::remove_file(figures.join("curve.svg")).unwrap();
        std::fs::remove_file(figures.join("marginals.svg")).unwrap();
        let written = redraw_record_figures(&dir).unwrap();
        assert_eq!(written.len(), 4, "{written:?}");
        for (name, before) in ["curve.svg", "marginals.svg"].iter().zip(drawn) {
            assert_eq!(std::fs::read(figures.join(name)).unwrap(), before, "{name}");
        }
        let mut again = self::agent(12, 3);
        again.load_run_folder(&dir).unwrap();
        assert_eq!(again.records.marginals, marginals);
    }

    /// The records as `metrics.jsonl` lines, without their clocks (`elapsed_seconds`, the
    /// `seconds_per_step` records): text, as JSON writes each value exactly.
    fn without_clocks(records: &[Record]) -> Vec<String> {
        let kept: Vec<&Record> = records.iter().filter(|r| r.metric != crate::run::SECONDS_PER_STEP).collect();
        let text = json_lines(&kept).unwrap();
        text.lines().map(|line| line.split(",\"elapsed_seconds\"").next().unwrap().to_owned()).collect()
    }

    /// One loop: the agent of a configuration records what `sfess-agent train` of it writes,
    /// bit for bit (clocks apart), and ends with the same variables; trained in two calls, it
    /// records what the straight run (and a run extended by `--resume --steps`) writes. On a
    /// one-step task and over episodes; 23 steps with `eval_every` 10 cut a loss window short
    /// at the end, and 15 steps a window and the validation schedule.
    #[test]
    fn an_agent_of_a_configuration_records_what_train_and_resume_write() {
        use std::sync::Arc;

        use crate::run::{RunOptions, Verbosity};
        let registry = Arc::new(Registry::shipped());
        let options = RunOptions {
            verbosity: Verbosity::Quiet,
            interrupt: Interrupt::new(),
            holder: "test".into(),
            registry: Arc::clone(&registry),
            figures: false,
        };
        let tmp = tempfile::tempdir().unwrap();
        for (env, policy, batch_size) in [("max-coverage", PolicyName::Logits, 128), ("slate", PolicyName::Mlp, 4)] {
            let config = TrainConfig {
                steps: 23,
                eval_every: 10,
                samples: 4,
                batch_size,
                policy,
                device: "cpu".into(),
                ..TrainConfig::of_env(env)
            };
            // The file's lines as written (JSON numbers read back may lose their last bit).
            let read = |dir: &Path| -> Vec<String> {
                let text = std::fs::read_to_string(dir.join(METRICS)).unwrap();
                let lines = text.lines().filter(|line| !line.contains(crate::run::SECONDS_PER_STEP));
                lines.map(|line| line.split(",\"elapsed_seconds\"").next().unwrap().to_owned()).collect()
            };
            let straight = tmp.path().join(format!("{env}-straight"));
            crate::run::train(&config, &straight, &options).unwrap();
            let mut agent = Agent::from_config(&config, &registry).unwrap();
            agent.train(23).unwrap();
            let folder = tmp.path().join(format!("{env}-agent"));
            agent.write_run_folder(&folder).unwrap();
            assert_eq!(without_clocks(agent.records()), read(&straight), "{env}");
            assert_eq!(
                agent.records.marginals.iter().map(|r| (r.step, r.marginals.clone())).collect::<Vec<_>>(),
                read_marginals(&straight).unwrap().iter().map(|r| (r.step, r.marginals.clone())).collect::<Vec<_>>()
            );
            let spec = config.check(&registry).unwrap();
            let (trained, _) = crate::run::at_checkpoint(&straight, &spec).unwrap();
            assert_same(&variables(&mut agent), &trained.variables());

            // A run extended by --resume ends as the straight one; so does an agent trained
            // in two calls.
            let resumed = tmp.path().join(format!("{env}-resumed"));
            let shorter = TrainConfig { steps: 15, ..config.clone() };
            crate::run::train(&shorter, &resumed, &options).unwrap();
            let before = read(&resumed);
            crate::run::resume(&resumed, Some(23), &options).unwrap();
            assert_eq!(read(&resumed), read(&straight), "{env}");
            let mut twice = Agent::from_config(&config, &registry).unwrap();
            twice.train(15).unwrap();
            twice.train(8).unwrap();
            twice.write_run_folder(tmp.path().join(format!("{env}-twice"))).unwrap();
            assert_eq!(without_clocks(twice.records()), read(&straight), "{env}");
            // And the agent of the 15-step run writes its records (the test can tell).
            let mut short = Agent::from_config(&shorter, &registry).unwrap();
            short.train(15).unwrap();
            short.write_run_folder(tmp.path().join(format!("{env}-short"))).unwrap();
            assert_eq!(without_clocks(short.records()), before, "{env}");
            assert_ne!(before, read(&straight));
        }
    }

    /// An agent trains over episodes of a closure's sequential environment (the book's
    /// example, docs/book/src/episodes.md): sticking with the same items pays, which the MLP
    /// of the counters learns.
    #[test]
    fn an_agent_trains_over_episodes() {
        use sfess_envs::Episodic;
        use sfess_envs::custom::{EpisodeOutcome, SequentialRewardEnv};
        let env = SequentialRewardEnv::new(
            "streaks",
            KHotSpace::new(6, 2).unwrap(),
            10,
            6,
            |noise| Tensor::zeros([noise.episodes() as i64, 6], (tch::Kind::Float, Device::Cpu)),
            |counters, actions, _| {
                let next = (counters + 1.0) * actions;
                EpisodeOutcome {
                    rewards: (&next * actions).sum_dim_intlist(1, false, tch::Kind::Float),
                    states: next,
                    terminated: Tensor::zeros([actions.size()[0]], (tch::Kind::Bool, Device::Cpu)),
                }
            },
        )
        .unwrap();
        let options = AgentOptions { policy: PolicyName::Mlp, samples: 4, episode_starts: 4, ..Default::default() };
        let mut agent = Agent::new(Episodic::new(env), options).unwrap();
        agent.train(150).unwrap();
        let test = agent.evaluate(Phase::Test).unwrap();
        let random = agent.baselines(Phase::Test).unwrap()["random"];
        // Keeping two items for 10 steps returns 2 (1 + 2 + ... + 10) = 110; random
        // subsets about 2 · 10 · 1.4 (a chosen item was chosen before with probability 1/3).
        assert_eq!(test["length"], 10.0);
        assert!(test["return"] > 2.0 * random && test["return"] <= 110.0, "{test:?} against {random}");
    }
}
