//! Sensor scheduling on a drifting field (`sensor-schedule`): read `k` of `n` sensors at
//! each step, track the field with a Kalman filter, and be rewarded with minus the
//! estimation error.
//!
//! # The field
//! `n` sites each carry a value that drifts as an AR(1) process,
//!
//! `x_{t+1,i} = a_i x_{t,i} + √(1 − a_i²) σ_i w_{t,i}`,  `w ~ N(0, 1)`,  `x_{0,i} ~ N(0, σ_i²)`,
//!
//! stationary with variance `σ_i²`. The even sites are slow (`a_i` the option
//! `slow-persistence`, `σ_i² = 1`: a reservoir's level, a deep-water temperature) and the
//! odd ones fast (`fast-persistence`, `σ_i²` the option `fast-variance`: gusts at the
//! surface). Reading sensor `i` gives `x_{t,i} + v`, `v ~ N(0, r)` (`noise`).
//!
//! # The episode
//! The Kalman filter starts from the prior `N(0, diag σ²)`. At each of `T` steps (`horizon`)
//! the policy picks `k` sensors, the filter updates on their readings, and the reward is
//! `−(1/n) ‖x_t − μ_t‖²`, minus the mean squared error of the posterior mean. Then the
//! field and the filter move on one step. The policy sees each site's posterior variance
//! before the step's readings and the fraction of the episode gone (`n + 1` features).
//!
//! # Baselines
//! `greedy`: greedy information gain, the classical scheduler. It reads the `k` sensors
//! whose readings most reduce the trace of the posterior covariance now, `P_ii² / (P_ii + r)`
//! per site (the sites are independent, so adding them one at a time gives the top k). It
//! is myopic: a fast site's variance is back above 1 one step after it is read (with the
//! defaults), so it is always the larger gain now, while a reading of a slow site keeps its
//! error low for many steps. Greedy never reads the slow sites, and does worse than random
//! sensors, which read them now and then: the starvation of myopic schedulers.
//! `lookahead`: an index policy that knows the dynamics and values a reading by what it
//! saves over the rest of the episode, `P_ii² / (P_ii + r) · Σ_{j < T − t} a_i^{2j}`, as if
//! the site were not read again; the top k. `random`: k sensors uniformly at random.

use std::collections::BTreeMap;

use tch::{Kind, Tensor};

use crate::env::{EnvError, EnvSpec, top_k_hot};
use crate::episodes::{EpisodeNoise, EpisodeStep, SequentialEnvironment, checked_actions, state_with_time};
use crate::space::KHotSpace;

/// The settings of a sensor-scheduling task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduleSettings {
    /// Sites (and sensors) n.
    pub sites: usize,
    /// Sensors read per step k.
    pub k: usize,
    /// Steps per episode T.
    pub horizon: usize,
    /// AR(1) coefficient of the slow (even) sites, in (0, 1).
    pub slow_persistence: f64,
    /// AR(1) coefficient of the fast (odd) sites, in (0, 1).
    pub fast_persistence: f64,
    /// Stationary variance of the fast sites (the slow ones' is 1).
    pub fast_variance: f64,
    /// Noise variance of a reading.
    pub noise: f64,
}

/// The episodes under way.
#[derive(Debug)]
struct Episodes {
    noise: EpisodeNoise,
    /// The field, the filter's mean and its variances, `[R, n]`.
    field: Tensor,
    mean: Tensor,
    variance: Tensor,
    step: usize,
}

/// The environment; see the [module docs](self).
#[derive(Debug)]
pub struct SensorSchedule {
    spec: EnvSpec,
    settings: ScheduleSettings,
    /// Per site, `[n]`: `a_i` and `σ_i²`.
    persistence: Tensor,
    stationary: Tensor,
    episodes: Option<Episodes>,
}

impl SensorSchedule {
    /// The task of `settings`, named `name`.
    ///
    /// # Errors
    /// [`EnvError::Config`] for a persistence outside (0, 1), sizes out of range.
    pub fn new(name: &str, settings: ScheduleSettings) -> Result<Self, EnvError> {
        let problem = |p: String| EnvError::Config { env: name.to_owned(), problem: p };
        for (what, a) in
            [("slow-persistence", settings.slow_persistence), ("fast-persistence", settings.fast_persistence)]
        {
            if !(a > 0.0 && a < 1.0) {
                return Err(problem(format!("{what} must be in (0, 1), got {a}")));
            }
        }
        if settings.horizon == 0 {
            return Err(problem("the horizon must be at least 1 step".into()));
        }
        let space = KHotSpace::new(settings.sites, settings.k).map_err(|e| problem(e.to_string()))?;
        let n = settings.sites;
        let slow = |i: usize| i.is_multiple_of(2);
        let persistence: Vec<f64> =
            (0..n).map(|i| if slow(i) { settings.slow_persistence } else { settings.fast_persistence }).collect();
        let stationary: Vec<f64> = (0..n).map(|i| if slow(i) { 1.0 } else { settings.fast_variance }).collect();
        let spec = EnvSpec {
            name: name.to_owned(),
            space,
            rows: 1,
            differentiable: false,
            metric: "return".to_owned(),
            higher_is_better: true,
            observation_dim: n + 1,
            description: format!(
                "read {} of {n} sensors per step of a drifting field over {} steps; reward minus the Kalman \
                 filter's error",
                settings.k, settings.horizon
            ),
        };
        Ok(Self {
            spec,
            settings,
            persistence: Tensor::from_slice(&persistence),
            stationary: Tensor::from_slice(&stationary),
            episodes: None,
        })
    }

    fn under_way(&mut self) -> Result<&mut Episodes, EnvError> {
        let env = self.spec.name.clone();
        self.episodes.as_mut().ok_or(EnvError::NotReset { env })
    }

    fn observation(&self, episodes: &Episodes) -> Result<Tensor, EnvError> {
        state_with_time(&[episodes.variance.shallow_clone()], episodes.step, self.settings.horizon)
    }
}

impl SequentialEnvironment for SensorSchedule {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn horizon(&self) -> usize {
        self.settings.horizon
    }

    fn reset(&mut self, seeds: &[u64]) -> Result<Tensor, EnvError> {
        let rows = seeds.len() as i64;
        let mut noise = EpisodeNoise::new(seeds);
        let field = noise.normals(self.settings.sites)?.f_mul(&self.stationary.f_sqrt()?)?;
        let episodes = Episodes {
            noise,
            field,
            mean: Tensor::f_zeros([rows, self.settings.sites as i64], (Kind::Double, tch::Device::Cpu))?,
            variance: self.stationary.f_expand([rows, -1], false)?.f_contiguous()?,
            step: 0,
        };
        let observation = self.observation(&episodes)?;
        self.episodes = Some(episodes);
        Ok(observation)
    }

    fn step(&mut self, actions: &Tensor) -> Result<EpisodeStep, EnvError> {
        let spec = self.spec.clone();
        let settings = self.settings;
        let n = settings.sites as i64;
        let rows = self.under_way()?.field.size()[0];
        let read = checked_actions(&spec, actions, rows)?;
        let (persistence, stationary) = (self.persistence.shallow_clone(), self.stationary.shallow_clone());
        let episodes = self.under_way()?;
        // The same draws every step, whatever the actions: the readings' noise, then the drift.
        let reading_noise = episodes.noise.normals(settings.sites)?;
        let drift = episodes.noise.normals(settings.sites)?;
        // Kalman update of each read site: gain P / (P + r).
        let readings = episodes.field.f_add(&reading_noise.f_mul_scalar(settings.noise.sqrt())?)?;
        let gain = episodes.variance.f_div(&episodes.variance.f_add_scalar(settings.noise)?)?.f_mul(&read)?;
        let mean = episodes.mean.f_add(&gain.f_mul(&readings.f_sub(&episodes.mean)?)?)?;
        let variance = episodes.variance.f_mul(&gain.f_rsub_scalar(1.0)?)?;
        let squared_error = episodes.field.f_sub(&mean)?.f_square()?.f_mean_dim(-1, false, Kind::Double)?;
        // The field and the filter move on.
        let spread = persistence.f_square()?.f_rsub_scalar(1.0)?.f_mul(&stationary)?;
        episodes.field = episodes.field.f_mul(&persistence)?.f_add(&drift.f_mul(&spread.f_sqrt()?)?)?;
        episodes.mean = mean.f_mul(&persistence)?;
        episodes.variance = variance.f_mul(&persistence.f_square()?)?.f_add(&spread)?;
        episodes.step += 1;
        let at_horizon = episodes.step >= settings.horizon;
        let slow = Tensor::from_slice(&(0..n).map(|i| if i % 2 == 0 { 1.0 } else { 0.0 }).collect::<Vec<f64>>());
        let slow_reads = read.f_matmul(&slow)?.f_mean(Kind::Double)?.double_value(&[]);
        let mse = squared_error.f_mean(Kind::Double)?.double_value(&[]);
        let episodes = self.episodes.as_ref().expect("under way");
        let mut step = EpisodeStep::timed(squared_error.f_neg()?, self.observation(episodes)?, at_horizon)?;
        step.info = BTreeMap::from([("squared_error".to_owned(), mse), ("slow_reads".to_owned(), slow_reads)]);
        Ok(step)
    }

    fn baseline_names(&self) -> Vec<String> {
        vec!["greedy".to_owned(), "lookahead".to_owned()]
    }

    fn baseline_action(&mut self, name: &str) -> Result<Tensor, EnvError> {
        let (noise, k, horizon) = (self.settings.noise, self.settings.k, self.settings.horizon);
        let persistence = self.persistence.shallow_clone();
        let episodes = self.under_way()?;
        let (variance, remaining) = (episodes.variance.shallow_clone(), (horizon - episodes.step) as f64);
        // The trace reduction of reading each site now.
        let gain = variance.f_square()?.f_div(&variance.f_add_scalar(noise)?)?;
        match name {
            "greedy" => Ok(top_k_hot(&gain, k as i64)?),
            "lookahead" => {
                // Σ_{j < T − t} a^{2j} = (1 − a^{2(T − t)}) / (1 − a²).
                let squared = persistence.f_square()?;
                let lasting =
                    squared.f_pow_tensor_scalar(remaining)?.f_rsub_scalar(1.0)?.f_div(&squared.f_rsub_scalar(1.0)?)?;
                Ok(top_k_hot(&gain.f_mul(&lasting)?, k as i64)?)
            }
            _ => Err(EnvError::Config { env: self.spec.name.clone(), problem: format!("no baseline named {name}") }),
        }
    }
}

/// The registry's entry `sensor-schedule`.
pub fn entry() -> crate::registry::EnvEntry {
    description().constructor(|make| {
        let options = make.options;
        let settings = ScheduleSettings {
            sites: options.count("n")?,
            k: make.k,
            horizon: options.count("horizon")?,
            slow_persistence: options.number("slow-persistence")?,
            fast_persistence: options.number("fast-persistence")?,
            fast_variance: options.number("fast-variance")?,
            noise: options.number("noise")?,
        };
        Ok(Box::new(crate::episodes::Episodic::new(SensorSchedule::new(make.name, settings)?)))
    })
}

/// [`entry`] without its constructor: what [`Registry::catalog`](crate::registry::Registry::catalog) lists.
pub(crate) fn description() -> crate::registry::EnvEntry {
    use crate::registry::OptionSpec;
    crate::episodes::description(
        "sensor-schedule",
        "episodes: read k of n sensors per step of a drifting field (slow and fast sites), tracked by a Kalman \
         filter; reward minus its error; baselines greedy information gain, lookahead, random",
        (16, "sensors"),
        24,
        &["greedy", "lookahead"],
    )
    .default_k(4)
    .digits(3)
    .option(OptionSpec::positive(
        "slow-persistence",
        0.98,
        1.0,
        "AR(1) coefficient of the slow (even) sites, in (0, 1)",
    ))
    .option(OptionSpec::positive("fast-persistence", 0.5, 1.0, "AR(1) coefficient of the fast (odd) sites, in (0, 1)"))
    .option(OptionSpec::positive(
        "fast-variance",
        1.5,
        1e6,
        "stationary variance of the fast sites (the slow ones': 1)",
    ))
    .option(OptionSpec::positive("noise", 0.05, 1e6, "noise variance of a reading"))
}
