//! `sfess._sfess`: the native half of the Python package `sfess`.
//!
//! The Python half (`python/sfess/`) is the interface users see: `KSubset` (a
//! `torch.distributions.Distribution`), `surrogate_loss`, `Agent`, `train` and `envs`. This
//! module gives it the toolkit's Rust, on PyTorch's own tensors (`pyo3-tch` passes them
//! without copies: the extension links the libtorch that `import torch` loaded):
//! - [`Law`]: `sfess_agents::ConditionalPoisson` over a batch of logits `[B, n]`: its
//!   normaliser, marginals, exact samples from PyTorch's generator and `Cov(z) v`, from
//!   which the Python side builds the autograd functions;
//! - [`Agent`]: `sfess_agent::Agent` with a Python callable as its reward;
//! - [`train`] and [`envs`]: `sfess-agent train` and the registry, in process.
//!
//! Errors become Python exceptions: `ValueError` for input the law or an option refuses,
//! `RuntimeError` for a run that fails, and a reward's own exception as itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_tch::PyTensor;
use rand::SeedableRng;
use sfess_agent::cli::{Cli, Command, with_env_options};
use sfess_agent::commands::train::train_or_resume;
use sfess_agent::config::estimators::{EstimatorName, EstimatorOptions};
use sfess_agent::system::device::DeviceSpec;
use sfess_agent::system::signals::{Interrupt, Interrupted};
use sfess_agent::{AgentOptions, config::PolicyName};
use sfess_agents::{ConditionalPoisson, Normalizer, Sampler};
use sfess_envs::custom::{Call, RewardEnv, RewardError};
use sfess_envs::registry::Registry;
use sfess_envs::{KHotSpace, Phase};
use tch::Tensor;

/// Runs `work` on this thread with the GIL released, as libtorch's autograd engine demands
/// of a caller of `backward` in a Python process (training steps call it). A reward that
/// calls back into Python takes the GIL again (`Python::with_gil`).
fn without_gil<T>(py: Python<'_>, work: impl FnOnce() -> T) -> T {
    /// `work` and its result, which never leave this thread.
    struct OnThisThread<W>(W);
    // SAFETY: `allow_threads` runs its closure on the calling thread and returns before this
    // function does, so nothing moves to another thread. The `Send` bound it asks for guards
    // against touching Python objects without the GIL; everything here that does (the reward)
    // takes the GIL first.
    unsafe impl<W> Send for OnThisThread<W> {}
    impl<W> OnThisThread<W> {
        fn into_inner(self) -> W {
            self.0
        }
    }
    let work = OnThisThread(work);
    py.allow_threads(move || OnThisThread(work.into_inner()())).into_inner()
}

/// `ValueError` with the error's message (and, for an `anyhow` error, its causes).
fn value_error(error: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{error:#}"))
}

/// `ValueError` with clap's message on options it refused, without its `error: ` prefix.
fn usage_error(error: &clap::Error) -> PyErr {
    let text = error.render().to_string();
    value_error(text.trim_end().strip_prefix("error: ").unwrap_or(text.trim_end()))
}

/// The k-subset law of each row of logits `[B, n]` (`f32` or `f64`, any device), computed
/// once: `log e_k`, `π`, and what exact samples and `Cov(z) v` need.
#[pyclass(unsendable, module = "sfess._sfess")]
struct Law {
    inner: ConditionalPoisson,
}

#[pymethods]
impl Law {
    /// The law of `logits` (detached by the caller) with `k` items per subset, computed by
    /// the backend `normalizer` (`auto`, `stable`, `parallel`, `dft`, `paper-complex64`).
    #[new]
    #[pyo3(signature = (logits, k, normalizer = "auto"))]
    fn new(logits: PyTensor, k: i64, normalizer: &str) -> PyResult<Self> {
        let normalizer = Normalizer::from_str(normalizer, true).map_err(|_| {
            value_error(format!(
                "unknown normalizer {normalizer:?}: expected auto, stable, parallel, dft or paper-complex64"
            ))
        })?;
        let inner = ConditionalPoisson::with_normalizer(&logits.0, k, normalizer).map_err(value_error)?;
        Ok(Self { inner })
    }

    /// `log e_k(exp η)` per row, `[B]`, in the logits' type and device.
    fn log_normalizer(&self) -> PyTensor {
        PyTensor(self.inner.log_normalizer())
    }

    /// The inclusion probabilities `π`, `[B, n]`, in the logits' type and device.
    fn marginals(&self) -> PyTensor {
        PyTensor(self.inner.marginals())
    }

    /// `n_samples` k-hot samples per row, `[S, B, n]`, from libtorch's generator of the
    /// logits' device (`torch.manual_seed` repeats them); `sampler` is `exact` or
    /// `gumbel-topk`.
    #[pyo3(signature = (n_samples, sampler = "exact"))]
    fn sample(&self, n_samples: usize, sampler: &str) -> PyResult<PyTensor> {
        let sampler = Sampler::from_str(sampler, true)
            .map_err(|_| value_error(format!("unknown sampler {sampler:?}: expected exact or gumbel-topk")))?;
        Ok(PyTensor(self.inner.sample_from_torch_generator(n_samples, sampler).map_err(value_error)?))
    }

    /// `Cov(z) v` per row for `v` `[B, n]`: the marginals' Jacobian times `v`.
    fn covariance_vector_product(&self, v: PyTensor) -> PyResult<PyTensor> {
        Ok(PyTensor(self.inner.covariance_vector_product(&v.0).map_err(value_error)?))
    }

    /// The backend that computed the law (never `auto`).
    #[getter]
    fn normalizer(&self) -> &'static str {
        self.inner.normalizer().name()
    }
}

/// Seconds of each of `repeats` runs of the same work as the benchmark's Python side, in
/// Rust alone: the law of `logits` (normaliser and marginals as tensors) and `samples` exact
/// samples per row. For `python/bench/ksubset.py`, which reports Python's time against it.
#[pyfunction]
fn rust_law_seconds(logits: PyTensor, k: i64, samples: usize, repeats: usize) -> PyResult<Vec<f64>> {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(0);
    (0..repeats)
        .map(|_| {
            let started = Instant::now();
            let law = ConditionalPoisson::new(&logits.0, k).map_err(value_error)?;
            let (log_normalizer, marginals) = (law.log_normalizer(), law.marginals());
            let drawn = law.sample(samples, Sampler::Exact, &mut rng).map_err(value_error)?;
            drop(std::hint::black_box((log_normalizer, marginals, drawn)));
            Ok(started.elapsed().as_secs_f64())
        })
        .collect()
}

/// The options of `sfess.Agent`, named as `sfess-agent train` names them (the Python side
/// passes `learning_rate=0.1` as `--learning-rate 0.1`).
#[derive(Debug, Parser)]
#[command(name = "sfess.Agent", no_binary_name = true, disable_help_flag = true)]
struct AgentArgs {
    /// Gradient estimator.
    #[arg(long, value_enum, default_value_t = EstimatorName::SfessVr)]
    estimator: EstimatorName,
    /// Samples per step (S).
    #[arg(long, default_value_t = AgentOptions::default().samples)]
    samples: usize,
    /// Adam's learning rate [default: 0.05, the free logits' default].
    #[arg(long)]
    learning_rate: Option<f64>,
    /// Seed of the policy and of every draw (it also seeds PyTorch's generator, as
    /// `torch.manual_seed` does).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Device of the policy: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// Validation every N steps (recorded in the run folder).
    #[arg(long)]
    eval_every: Option<u64>,
    /// A run folder to write after each `train` call, for `sfess-agent show` and `report`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The environment's name in the run's records (and `report`'s tables): lowercase
    /// letters, digits, `-` and `_`, starting with a letter, as `cmd`'s `name`.
    #[arg(long, default_value = "python-reward", value_parser = environment_name)]
    name: String,
    /// The estimators' own options.
    #[command(flatten)]
    estimator_options: EstimatorOptions,
}

/// A name the registry would accept for an environment ([`sfess_envs::registry::check_name`]).
fn environment_name(name: &str) -> Result<String, String> {
    sfess_envs::registry::check_name("environment name", name).map(|()| name.to_owned()).map_err(|e| e.to_string())
}

/// `sfess_agent::Agent` learning which `k` of `n` items to choose from a Python reward.
#[pyclass(unsendable, module = "sfess._sfess")]
struct Agent {
    agent: sfess_agent::Agent,
    out: Option<PathBuf>,
}

/// The reward's own exception, if `error` came from it: the exception, with a note saying
/// where it was raised. Otherwise a `RuntimeError` with the whole chain.
fn python_error(py: Python<'_>, error: &anyhow::Error, during: &str) -> PyErr {
    let own = error.chain().find_map(|cause| cause.downcast_ref::<PyErr>());
    match own {
        Some(raised) => {
            let raised = raised.clone_ref(py);
            let value = raised.value(py);
            if value.hasattr("add_note").unwrap_or(false) {
                let _ = value.call_method1("add_note", (format!("raised by the reward {during}"),));
            }
            raised
        }
        None => PyRuntimeError::new_err(format!("{during}: {error:#}")),
    }
}

#[pymethods]
impl Agent {
    /// An agent choosing `k` of `n` items, rewarded by `reward` (a callable from a k-hot
    /// `[R, n]` float tensor to a `[R]` tensor of rewards; the Python side converts what the
    /// user's function returns), with the options of `args` (flags, as `train` takes them).
    #[new]
    fn new(reward: PyObject, n: usize, k: usize, args: Vec<String>) -> PyResult<Self> {
        let args = AgentArgs::try_parse_from(args).map_err(|e| usage_error(&e))?;
        args.estimator_options.check().map_err(value_error)?;
        let space = KHotSpace::new(n, k).map_err(value_error)?;
        let device = args.device.resolve().map_err(value_error)?;
        let env = RewardEnv::fallible(&args.name, space, move |actions: &Tensor, _: &mut Call<'_>| {
            Python::with_gil(|py| -> Result<Tensor, RewardError> {
                // A copy: the user's function may write into what it is given.
                let given = PyTensor(actions.f_detach_copy()?);
                let rewards = reward.call1(py, (given,))?;
                Ok(rewards.extract::<PyTensor>(py)?.0)
            })
        });
        let options = AgentOptions {
            estimator: args.estimator,
            estimator_options: args.estimator_options,
            samples: args.samples,
            learning_rate: args.learning_rate,
            policy: PolicyName::Logits,
            seed: args.seed,
            device,
            eval_every: args.eval_every,
            ..AgentOptions::default()
        };
        let agent = sfess_agent::Agent::new(env, options).map_err(value_error)?;
        Ok(Self { agent, out: args.out })
    }

    /// `steps` more training steps; the mean sampled reward of each. With `out`, the run
    /// folder is written after them.
    fn train(&mut self, py: Python<'_>, steps: u64) -> PyResult<Vec<f64>> {
        let agent = &mut self.agent;
        let rewards = without_gil(py, || agent.train(steps)).map_err(|error| {
            python_error(py, &error, &format!("at training step {} (counting from 0)", self.agent.steps()))
        })?;
        if let Some(out) = self.out.clone() {
            self.write_run_folder(py, out)?;
        }
        Ok(rewards)
    }

    /// Steps trained so far.
    #[getter]
    fn steps(&self) -> u64 {
        self.agent.steps()
    }

    /// The policy's top-k subset scored by the reward in `phase` (`test` or `validation`).
    #[pyo3(signature = (phase = "test"))]
    fn evaluate(&mut self, py: Python<'_>, phase: &str) -> PyResult<BTreeMap<String, f64>> {
        let phase = parse_phase(phase)?;
        let agent = &mut self.agent;
        without_gil(py, || agent.evaluate(phase)).map_err(|e| python_error(py, &e, "while evaluating"))
    }

    /// The policy's top-k subset, as sorted item indices.
    fn best_subset(&mut self) -> PyResult<Vec<usize>> {
        self.agent.best_subset().map_err(|e| PyRuntimeError::new_err(format!("{e:#}")))
    }

    /// The reward of random subsets in `phase` (their mean over a fixed set).
    #[pyo3(signature = (phase = "test"))]
    fn baselines(&mut self, py: Python<'_>, phase: &str) -> PyResult<BTreeMap<String, f64>> {
        let phase = parse_phase(phase)?;
        let agent = &mut self.agent;
        without_gil(py, || agent.baselines(phase)).map_err(|e| python_error(py, &e, "while scoring baselines"))
    }

    /// Every record so far (training losses, validations), as JSON lines.
    fn records_json(&self) -> PyResult<String> {
        let lines: Result<Vec<String>, _> = self.agent.records().iter().map(serde_json::to_string).collect();
        Ok(lines.map_err(|e| PyRuntimeError::new_err(e.to_string()))?.join("\n"))
    }

    /// Writes the run folder `out` (config, metrics, checkpoint, figures, summary): what
    /// `sfess-agent show` and `report` read. Returns the summary as JSON.
    fn write_run_folder(&mut self, py: Python<'_>, out: PathBuf) -> PyResult<String> {
        let agent = &mut self.agent;
        let summary = without_gil(py, || agent.write_run_folder(&out))
            .map_err(|e| python_error(py, &e, &format!("while writing the run folder {}", out.display())))?;
        serde_json::to_string(&summary).map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    /// Saves the policy and optimiser (a checkpoint `load` reads back).
    fn save(&mut self, path: PathBuf) -> PyResult<()> {
        self.agent.save(path).map_err(|e| PyRuntimeError::new_err(format!("{e:#}")))
    }

    /// Loads a checkpoint written by `save` (of an agent with the same n and k).
    fn load(&mut self, path: PathBuf) -> PyResult<()> {
        self.agent.load(path).map_err(|e| PyRuntimeError::new_err(format!("{e:#}")))
    }
}

fn parse_phase(phase: &str) -> PyResult<Phase> {
    match phase {
        "test" => Ok(Phase::Test),
        "validation" => Ok(Phase::Validation),
        other => Err(value_error(format!("unknown phase {other:?}: expected test or validation"))),
    }
}

/// SIGINT sets `interrupt` (and still reaches Python's own handler, which raises
/// `KeyboardInterrupt` once the call returns) for as long as this lives.
struct StopOnSigint(signal_hook::SigId);

impl StopOnSigint {
    fn install(interrupt: &Interrupt) -> PyResult<Self> {
        let interrupt = interrupt.clone();
        let sigint = signal_hook::consts::SIGINT;
        // SAFETY: the action only stores two atomics (`Interrupt::trigger`), which is
        // async-signal-safe.
        let id = unsafe { signal_hook::low_level::register(sigint, move || interrupt.trigger(sigint)) };
        id.map(Self).map_err(|e| PyRuntimeError::new_err(format!("installing a SIGINT handler: {e}")))
    }
}

impl Drop for StopOnSigint {
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.0);
    }
}

/// `sfess-agent train ARGS`, in this process: the run folder and the summary (JSON).
/// SIGINT (Ctrl-C) stops the run at the next step, with its checkpoint, as it stops the
/// command; the caller then gets `KeyboardInterrupt`.
#[pyfunction]
fn train(py: Python<'_>, args: Vec<String>) -> PyResult<(String, String)> {
    let registry = Arc::new(Registry::shipped());
    let argv = ["sfess-agent".to_owned(), "train".to_owned()].into_iter().chain(args);
    let cli = Cli::try_parse_from(with_env_options(&registry, argv)).map_err(|e| usage_error(&e))?;
    let Command::Train(train_args) = &cli.command else { unreachable!("the command line starts with train") };
    if cli.threads.is_some() {
        sfess_agent::system::threads::configure(cli.threads).map_err(value_error)?;
    }
    let interrupt = Interrupt::new();
    let result = {
        let _stop = StopOnSigint::install(&interrupt)?;
        without_gil(py, || train_or_resume(train_args, cli.device, &registry, interrupt))
    };
    match result {
        Ok((dir, summary)) => {
            let summary = serde_json::to_string(&summary).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
            Ok((dir.display().to_string(), summary))
        }
        Err(error) => {
            if error.downcast_ref::<Interrupted>().is_some() {
                py.check_signals()?;
            }
            Err(PyRuntimeError::new_err(format!("{error:#}")))
        }
    }
}

/// The registered environments: name, description, default k, metric, whether higher is
/// better, whether the loss is differentiable, the data set.
#[pyfunction]
fn envs(py: Python<'_>) -> PyResult<Vec<Bound<'_, PyDict>>> {
    let registry = Registry::shipped();
    registry
        .entries()
        .iter()
        .map(|entry| {
            let dict = PyDict::new(py);
            dict.set_item("name", &entry.name)?;
            dict.set_item("description", &entry.description)?;
            dict.set_item("k", entry.default_k)?;
            dict.set_item("metric", &entry.metric.key)?;
            dict.set_item("higher_is_better", entry.metric.higher_is_better)?;
            dict.set_item("differentiable", entry.differentiable)?;
            dict.set_item("data", entry.data.map(|set| set.name()))?;
            Ok(dict)
        })
        .collect()
}

/// The module `sfess._sfess`.
#[pymodule]
fn _sfess(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Law>()?;
    m.add_class::<Agent>()?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(envs, m)?)?;
    m.add_function(wrap_pyfunction!(rust_law_seconds, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
