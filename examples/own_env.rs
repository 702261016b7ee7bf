//! Your own environments with the whole toolkit: this binary registers two environments
//! and hands the registry to `sfess_agent::cli`, so that it has `train`, `--resume`,
//! `eval`, `compare`, `report` and `envs` for them, with run folders and checkpoints.
//!
//!     cargo run --release --example own_env -- envs hidden-values
//!     cargo run --release --example own_env -- train --env hidden-values --steps 2000 --out runs/hv
//!     cargo run --release --example own_env -- compare --env line-cover --estimators sfess,sfess-vr \
//!         --seeds 0,1 --steps 1000 --out runs/line-cover
//!
//! - `hidden-values` is a closure: the reward of a subset is the sum of its items' hidden
//!   values plus noise from the generator it is given; evaluation scores without noise.
//! - `line-cover` implements [`Environment`]: choose k of n sites on a line so that the
//!   targets drawn each step are near a chosen site.
use std::collections::BTreeMap;
use std::process::ExitCode;

use rand::{Rng, RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use sfess_envs::custom::{Call, RewardEnv};
use sfess_envs::env::random_subsets;
use sfess_envs::registry::{EnvEntry, Make, OptionSpec, Registry, Shape};
use sfess_envs::{EnvError, EnvSpec, Environment, EvalPolicy, KHotSpace, Observation, Phase, Transition};
use tch::{Kind, Tensor};

fn main() -> ExitCode {
    let mut registry = Registry::shipped();
    for entry in [hidden_values(), line_cover()] {
        if let Err(error) = registry.register(entry) {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    }
    sfess_agent::cli::main_with(registry)
}

/// The space of `k` of the option `n` items, or a clear error.
fn space(make: &Make<'_>) -> Result<KHotSpace, EnvError> {
    KHotSpace::new(make.options.count("n")?, make.k).map_err(|e| make.error(e.to_string()))
}

/// A closure reward: hidden values drawn from the option `values-seed`, the reward of a
/// subset their sum plus Gaussian noise of the option `noise`.
fn hidden_values() -> EnvEntry {
    EnvEntry::new("hidden-values", "k of n items with hidden values, scored by their noisy sum", |make| {
        let space = space(&make)?;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(make.options.seed("values-seed")?);
        let values: Vec<f32> = (0..space.n()).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
        let values = Tensor::from_slice(&values);
        let noise = make.options.number("noise")?;
        // The noise comes from the generator the closure is given (seeded by the run's seed
        // and the step), so a resumed run repeats it exactly; evaluation is noise-free.
        let exact = values.shallow_clone();
        let reward = move |actions: &Tensor, call: &mut Call<'_>| {
            let sum = actions.mv(&values);
            &sum + call.normal_like(&sum) * noise
        };
        let env = RewardEnv::with_call(make.name, space, reward).evaluate_with(move |actions, _| actions.mv(&exact));
        Ok(Box::new(env))
    })
    .default_k(5)
    .option(OptionSpec::count("n", 40, 1, 100_000, "items"))
    .option(OptionSpec::seed("values-seed", 0, "seed of the hidden values"))
    .option(OptionSpec::positive("noise", 0.1, 100.0, "standard deviation of the reward's noise"))
    .shape(|make| Ok(Shape { items: make.options.count("n")?, items_are: "items (option n)".to_owned(), rows: 1 }))
}

/// An [`Environment`] of your own: `line-cover`.
fn line_cover() -> EnvEntry {
    EnvEntry::new(
        "line-cover",
        "k of n sites on [0, 1] near targets drawn each step; baseline: evenly spaced",
        |make| Ok(Box::new(LineCover::new(make.name, space(&make)?, make.options.count("targets")?))),
    )
    .default_k(4)
    .metric("distance", false)
    .option(OptionSpec::count("n", 30, 1, 10_000, "sites, evenly spaced on [0, 1]"))
    .option(OptionSpec::count("targets", 64, 1, 100_000, "targets drawn per step"))
    .baseline("evenly-spaced")
    .baseline("random")
    .shape(|make| Ok(Shape { items: make.options.count("n")?, items_are: "sites (option n)".to_owned(), rows: 1 }))
}

/// Targets are drawn from a mixture around 0.2 and 0.7; the loss of a subset of sites is the
/// mean distance from each target to its nearest chosen site.
struct LineCover {
    spec: EnvSpec,
    sites: Vec<f64>,
    targets: usize,
    drawn: Option<Vec<f64>>,
}

impl LineCover {
    fn new(name: &str, space: KHotSpace, targets: usize) -> Self {
        let n = space.n();
        let sites = (0..n).map(|i| if n == 1 { 0.5 } else { i as f64 / (n - 1) as f64 }).collect();
        let spec = EnvSpec {
            name: name.to_owned(),
            space,
            rows: 1,
            differentiable: false,
            metric: "distance".to_owned(),
            higher_is_better: false,
            observation_dim: 0,
            description: "k sites near the targets".to_owned(),
        };
        Self { spec, sites, targets, drawn: None }
    }

    fn draw(rng: &mut dyn Rng, count: usize) -> Vec<f64> {
        (0..count)
            .map(|_| {
                let centre = if rng.random::<f64>() < 0.5 { 0.2 } else { 0.7 };
                (centre + (rng.random::<f64>() - 0.5) * 0.2).clamp(0.0, 1.0)
            })
            .collect()
    }

    /// Mean distance of `targets` to the nearest of `chosen` sites.
    fn distance(&self, chosen: &[usize], targets: &[f64]) -> f64 {
        let nearest = |t: f64| chosen.iter().map(|&i| (self.sites[i] - t).abs()).fold(f64::INFINITY, f64::min);
        targets.iter().map(|&t| nearest(t)).sum::<f64>() / targets.len() as f64
    }

    /// The chosen sites of each action of `actions [S, 1, n]`.
    fn chosen(actions: &Tensor) -> Result<Vec<Vec<usize>>, EnvError> {
        let flat = actions.f_reshape([-1, actions.size()[2]])?.f_to_kind(Kind::Float)?;
        let rows: Vec<Vec<f32>> = Vec::try_from(flat)?;
        Ok(rows.iter().map(|row| row.iter().enumerate().filter(|(_, x)| **x > 0.5).map(|(i, _)| i).collect()).collect())
    }

    fn held_out(phase: Phase) -> Vec<f64> {
        let seed = match phase {
            Phase::Validation => 1,
            Phase::Test => 2,
        };
        Self::draw(&mut Xoshiro256PlusPlus::seed_from_u64(seed), 4096)
    }
}

impl Environment for LineCover {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, rng: &mut dyn Rng) -> Result<Observation, EnvError> {
        self.drawn = Some(Self::draw(rng, self.targets));
        Ok(Observation { inputs: Vec::new() })
    }

    fn step(&mut self, actions: &Tensor) -> Result<Transition, EnvError> {
        let targets = self.drawn.as_ref().ok_or_else(|| EnvError::NotReset { env: self.spec.name.clone() })?;
        let losses: Vec<f32> = Self::chosen(actions)?.iter().map(|c| self.distance(c, targets) as f32).collect();
        let samples = actions.size()[0];
        Ok(Transition::rewards(Tensor::from_slice(&losses).f_view([samples, 1])?.f_neg()?))
    }

    fn evaluate(&mut self, phase: Phase, policy: &dyn EvalPolicy) -> Result<BTreeMap<String, f64>, EnvError> {
        let action = policy.act(&Observation { inputs: Vec::new() })?.f_unsqueeze(0)?;
        let chosen = &Self::chosen(&action)?[0];
        Ok(BTreeMap::from([("distance".to_owned(), self.distance(chosen, &Self::held_out(phase)))]))
    }

    fn baselines(&mut self, phase: Phase) -> Result<BTreeMap<String, f64>, EnvError> {
        let (n, k) = (self.spec.space.n(), self.spec.space.k());
        let targets = Self::held_out(phase);
        let even: Vec<usize> = (0..k).map(|j| ((2 * j + 1) * n) / (2 * k)).collect();
        let random = random_subsets(7, 32, n, k);
        let random = random.iter().map(|c| self.distance(c, &targets)).sum::<f64>() / random.len() as f64;
        Ok(BTreeMap::from([
            ("evenly-spaced".to_owned(), self.distance(&even, &targets)),
            ("random".to_owned(), random),
        ]))
    }
}
