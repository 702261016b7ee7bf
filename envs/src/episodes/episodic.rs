//! [`Episodic`]: a [`SequentialEnvironment`] as an [`Environment`] (see the
//! [episodes' docs](crate::episodes)), and the registry's entry of a shipped sequential task.

use std::collections::BTreeMap;

use tch::{Device, Kind, Tensor};

use super::{Actor, SequentialEnvironment, check_states, held_out_seeds, roll_out, spec_error};
use crate::env::{
    EnvError, EnvSpec, Environment, EvalPolicy, Observation, Phase, Transition, info_metric, k_hot_rows, random_subsets,
};

/// The registry's entry of a shipped sequential task: metric `return` (higher is better),
/// learning rate 3e-3, the options `n` (items, default `items`) and `horizon` (default
/// `horizon`), and baselines `baselines` and `random`; without its constructor.
pub(crate) fn description(
    name: &str,
    description: &str,
    (items, items_are): (usize, &'static str),
    horizon: usize,
    baselines: &[&str],
) -> crate::registry::EnvEntry {
    use crate::registry::{EnvEntry, OptionSpec, Shape};
    let mut entry = EnvEntry::described(name, description)
        .default_learning_rate(3e-3)
        .metric("return", true)
        .option(OptionSpec::count("n", items, 2, 10_000, items_are))
        .option(OptionSpec::count("horizon", horizon, 1, 10_000, "steps per episode T"));
    for baseline in baselines.iter().chain(&["random"]) {
        entry = entry.baseline(baseline);
    }
    entry.shape(move |make| {
        Ok(Shape { items: make.options.count("n")?, items_are: format!("{items_are} (option n)"), rows: 1 })
    })
}

/// A [`SequentialEnvironment`] as an [`Environment`]; see the [episodes' docs](crate::episodes).
pub struct Episodic<E> {
    env: E,
}

impl<E: SequentialEnvironment> Episodic<E> {
    /// Wraps `env`.
    pub fn new(env: E) -> Self {
        Self { env }
    }

    /// The sequential environment.
    pub fn inner(&mut self) -> &mut E {
        &mut self.env
    }

    /// Mean return and length over the held-out episodes of `phase` with `act`.
    fn mean_over_held_out(&mut self, phase: Phase, act: &mut Actor<'_>) -> Result<BTreeMap<String, f64>, EnvError> {
        let seeds = held_out_seeds(phase, self.env.evaluation_episodes());
        self.env.begin_phase(Some(phase));
        let rollout = roll_out(&mut self.env, &seeds, act);
        self.env.begin_phase(None);
        let rollout = rollout?;
        let mut metrics = BTreeMap::from([
            ("return".to_owned(), rollout.returns()?.f_mean(Kind::Double)?.double_value(&[])),
            ("length".to_owned(), rollout.lengths()?.f_mean(Kind::Double)?.double_value(&[])),
        ]);
        metrics.extend(rollout.info.iter().map(|(key, value)| (info_metric(key), *value)));
        Ok(metrics)
    }
}

impl<E: SequentialEnvironment> Environment for Episodic<E> {
    fn spec(&self) -> &EnvSpec {
        self.env.spec()
    }

    fn reset(&mut self, _rng: &mut dyn rand::Rng) -> Result<Observation, EnvError> {
        Err(spec_error(self.env.spec(), "is sequential: it is trained over episodes (Environment::sequential)".into()))
    }

    fn step(&mut self, _actions: &Tensor) -> Result<Transition, EnvError> {
        Err(spec_error(self.env.spec(), "is sequential: it is trained over episodes (Environment::sequential)".into()))
    }

    fn sequential(&mut self) -> Option<&mut dyn SequentialEnvironment> {
        Some(&mut self.env)
    }

    fn evaluate(&mut self, phase: Phase, policy: &dyn EvalPolicy) -> Result<BTreeMap<String, f64>, EnvError> {
        self.mean_over_held_out(phase, &mut |_, _, observation| policy.act(observation))
    }

    /// What the policy sees at the start of the first `rows` held-out episodes of `phase`:
    /// their states and a previous action of zeros.
    fn held_out_observation(&mut self, phase: Phase, rows: usize) -> Result<Option<Observation>, EnvError> {
        let seeds = held_out_seeds(phase, rows);
        self.env.begin_phase(Some(phase));
        let states = self.env.reset(&seeds);
        self.env.begin_phase(None);
        let states = states?;
        check_states(self.env.spec(), &states, rows as i64)?;
        let previous = Tensor::f_zeros([rows as i64, self.env.spec().space.n() as i64], (Kind::Float, Device::Cpu))?;
        Ok(Some(Observation { inputs: vec![states, previous] }))
    }

    fn baselines(&mut self, phase: Phase) -> Result<BTreeMap<String, f64>, EnvError> {
        let space = self.env.spec().space;
        let mut out = BTreeMap::new();
        let mut step_seed = 0u64;
        let random = self.mean_over_held_out(phase, &mut |_, _, observation| {
            let rows = observation.inputs[0].size()[0] as usize;
            step_seed += 1;
            k_hot_rows(&random_subsets(step_seed ^ 0x7261_6e64_6f6d, rows, space.n(), space.k()), space.n())
        })?;
        out.insert("random".to_owned(), random["return"]);
        for name in self.env.baseline_names() {
            let metrics = self.mean_over_held_out(phase, &mut |_, env, _| env.baseline_action(&name))?;
            out.insert(name, metrics["return"]);
        }
        Ok(out)
    }
}
