//! Sensor scheduling on a drifting field (`sensor-schedule`): read `k` of `n` sensors at
//! each step, track the field with a Kalman filter, and be rewarded with minus the
//! estimation error.
//!
//! # The field
//! `n` sites on a ring carry a Gaussian field `x_t ∈ ℝⁿ`, stationary with covariance
//! `Σ_ij = exp(−d(i, j)² / (2 ℓ²))` (`d` the distance around the ring, `ℓ` the option
//! `length`), drifting as the AR(1) process
//!
//! `x_{t+1} = a x_t + w_t`,  `w_t ~ N(0, (1 − a²) Σ)`,  `x_0 ~ N(0, Σ)`
//!
//! (`a` the option `persistence`). Reading sensor `i` at step `t` gives `x_{t,i} + v`,
//! `v ~ N(0, r_i)`, where `r_i` is `noise` for a sensor that was read at the step before
//! and `cold-noise` for one that was off: a sensor warms up during its first reading (a
//! heated gas sensor, a radio waking from sleep), whose noise is large.
//!
//! # The episode
//! The filter starts from the prior `N(0, Σ)`. At each of `T` steps (`horizon`) the policy
//! picks `k` sensors, the filter updates on their readings, and the reward is
//! `−(1/n) ‖x_t − μ_t‖²`, minus the mean squared error of the posterior mean (the field's
//! variance is 1). Then the field and the filter move on one step.
//!
//! The policy sees, per site, the filter's posterior variance (before the step's readings)
//! and whether its sensor is warm, and the fraction of the episode gone: `2n + 1` features.
//!
//! # Baselines
//! `greedy`: greedy information gain, the classical scheduler. It adds, one at a time, the
//! sensor whose reading most reduces the trace of the posterior covariance given the ones
//! already chosen (`‖P e_j‖² / (P_jj + r_j)`, with the sensor's current noise), then reads
//! them. It is myopic: it switches to a cold sensor when that gains most now, without
//! counting what a warm sensor would give at the next steps. `random`: k sensors uniformly
//! at random at each step.

use std::collections::BTreeMap;

use tch::{Kind, Tensor};

use crate::env::{EnvError, EnvSpec, chosen_items};
use crate::episodes::{EpisodeNoise, EpisodeStep, SequentialEnvironment};
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
    /// Correlation length ℓ, in sites.
    pub length: f64,
    /// The AR(1) coefficient a, in (0, 1).
    pub persistence: f64,
    /// Noise variance of a warm sensor's reading.
    pub noise: f64,
    /// Noise variance of a cold sensor's first reading.
    pub cold_noise: f64,
}

/// The episodes under way.
#[derive(Debug)]
struct Episodes {
    noise: EpisodeNoise,
    /// The field `[R, n]`.
    field: Tensor,
    /// The filter's mean `[R, n]` and covariance `[R, n, n]`.
    mean: Tensor,
    covariance: Tensor,
    /// 1 for the sensors read at the step before, `[R, n]`.
    warm: Tensor,
    step: usize,
}

/// The environment; see the [module docs](self).
#[derive(Debug)]
pub struct SensorSchedule {
    spec: EnvSpec,
    settings: ScheduleSettings,
    /// `Σ` and the Cholesky factors of `Σ` and `(1 − a²) Σ`, `[n, n]`.
    prior: Tensor,
    prior_factor: Tensor,
    drift_factor: Tensor,
    episodes: Option<Episodes>,
}

impl SensorSchedule {
    /// The task of `settings`, named `name`.
    ///
    /// # Errors
    /// [`EnvError::Config`] for a persistence outside (0, 1), sizes out of range.
    pub fn new(name: &str, settings: ScheduleSettings) -> Result<Self, EnvError> {
        let problem = |p: String| EnvError::Config { env: name.to_owned(), problem: p };
        if !(settings.persistence > 0.0 && settings.persistence < 1.0) {
            return Err(problem(format!("persistence must be in (0, 1), got {}", settings.persistence)));
        }
        if settings.horizon == 0 {
            return Err(problem("the horizon must be at least 1 step".into()));
        }
        let space = KHotSpace::new(settings.sites, settings.k).map_err(|e| problem(e.to_string()))?;
        let n = settings.sites;
        let mut sigma = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                let around = (i as f64 - j as f64).abs();
                let d = around.min(n as f64 - around);
                sigma[i * n + j] = (-d * d / (2.0 * settings.length * settings.length)).exp();
            }
        }
        // A little jitter keeps the Cholesky factor defined for long correlation lengths.
        let prior = Tensor::from_slice(&sigma).f_view([n as i64, n as i64])?;
        let jittered = prior.f_add(&Tensor::f_eye(n as i64, (Kind::Double, tch::Device::Cpu))?.f_mul_scalar(1e-9)?)?;
        let prior_factor = jittered.f_linalg_cholesky(false)?;
        let drift_factor = prior_factor.f_mul_scalar((1.0 - settings.persistence.powi(2)).sqrt())?;
        let spec = EnvSpec {
            name: name.to_owned(),
            space,
            rows: 1,
            differentiable: false,
            metric: "return".to_owned(),
            higher_is_better: true,
            observation_dim: 2 * n + 1,
            description: format!(
                "read {} of {n} sensors per step of a drifting field over {} steps; reward minus the Kalman \
                 filter's error",
                settings.k, settings.horizon
            ),
        };
        Ok(Self { spec, settings, prior, prior_factor, drift_factor, episodes: None })
    }

    fn under_way(&mut self) -> Result<&mut Episodes, EnvError> {
        let env = self.spec.name.clone();
        self.episodes.as_mut().ok_or(EnvError::NotReset { env })
    }

    /// The noise variance of each sensor now, `[R, n]`.
    fn sensor_noise(&self, warm: &Tensor) -> Result<Tensor, EnvError> {
        let (noise, cold) = (self.settings.noise, self.settings.cold_noise);
        Ok(warm.f_mul_scalar(noise - cold)?.f_add_scalar(cold)?)
    }

    fn observation(&self, episodes: &Episodes) -> Result<Tensor, EnvError> {
        let variance = episodes.covariance.f_diagonal(0, 1, 2)?;
        let rows = variance.size()[0];
        let time = Tensor::f_full(
            [rows, 1],
            episodes.step as f64 / self.settings.horizon as f64,
            (Kind::Double, tch::Device::Cpu),
        )?;
        Ok(Tensor::f_cat(&[variance, episodes.warm.shallow_clone(), time], 1)?.f_to_kind(Kind::Float)?)
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
        let (rows, n) = (seeds.len() as i64, self.settings.sites as i64);
        let mut noise = EpisodeNoise::new(seeds);
        let field = noise.normals(self.settings.sites)?.f_matmul(&self.prior_factor.f_transpose(0, 1)?)?;
        let episodes = Episodes {
            noise,
            field,
            mean: Tensor::f_zeros([rows, n], (Kind::Double, tch::Device::Cpu))?,
            covariance: self.prior.f_expand([rows, n, n], false)?.f_contiguous()?,
            warm: Tensor::f_zeros([rows, n], (Kind::Double, tch::Device::Cpu))?,
            step: 0,
        };
        let observation = self.observation(&episodes)?;
        self.episodes = Some(episodes);
        Ok(observation)
    }

    fn step(&mut self, actions: &Tensor) -> Result<EpisodeStep, EnvError> {
        let spec = self.spec.clone();
        let settings = self.settings;
        let (n, k) = (settings.sites as i64, settings.k as i64);
        let rows = self.under_way()?.field.size()[0];
        if actions.size() != [rows, n] {
            return Err(EnvError::ActionShape {
                env: spec.name,
                rows: rows as usize,
                n: n as usize,
                shape: actions.size(),
            });
        }
        let chosen = chosen_items(&spec, actions)?.f_to_device(tch::Device::Cpu)?;
        let warm = self.under_way()?.warm.shallow_clone();
        let noise_now = self.sensor_noise(&warm)?;
        let (drift, persistence) = (self.drift_factor.shallow_clone(), settings.persistence);
        let prior = self.prior.shallow_clone();
        let episodes = self.under_way()?;
        // The same draws every step, whatever the actions: readings' noise, then drift.
        let reading_noise = episodes.noise.normals(settings.sites)?;
        let drift_noise = episodes.noise.normals(settings.sites)?;
        // Kalman update on the chosen sensors' readings y = x_S + v_S.
        let columns = episodes.covariance.f_gather(2, &chosen.f_unsqueeze(1)?.f_expand([rows, n, k], false)?, false)?;
        let block = columns.f_gather(1, &chosen.f_unsqueeze(2)?.f_expand([rows, k, k], false)?, false)?;
        let chosen_noise = noise_now.f_gather(1, &chosen, false)?;
        let innovation_covariance = block.f_add(&chosen_noise.f_diag_embed(0, -2, -1)?)?;
        let readings = episodes
            .field
            .f_gather(1, &chosen, false)?
            .f_add(&chosen_noise.f_sqrt()?.f_mul(&reading_noise.f_gather(1, &chosen, false)?)?)?;
        let innovation = readings.f_sub(&episodes.mean.f_gather(1, &chosen, false)?)?;
        // K = P H^T S^{-1}, from S K^T = H P (S is symmetric).
        let gain =
            Tensor::f_linalg_solve(&innovation_covariance, &columns.f_transpose(1, 2)?, true)?.f_transpose(1, 2)?;
        let mean = episodes.mean.f_add(&gain.f_matmul(&innovation.f_unsqueeze(2)?)?.f_squeeze_dim(2)?)?;
        let covariance = episodes.covariance.f_sub(&gain.f_matmul(&columns.f_transpose(1, 2)?)?)?;
        let covariance = covariance.f_add(&covariance.f_transpose(1, 2)?)?.f_mul_scalar(0.5)?;
        let squared_error = episodes.field.f_sub(&mean)?.f_square()?.f_mean_dim(-1, false, Kind::Double)?;
        // The field and the filter move on.
        episodes.field =
            episodes.field.f_mul_scalar(persistence)?.f_add(&drift_noise.f_matmul(&drift.f_transpose(0, 1)?)?)?;
        episodes.mean = mean.f_mul_scalar(persistence)?;
        episodes.covariance = covariance
            .f_mul_scalar(persistence * persistence)?
            .f_add(&prior.f_mul_scalar(1.0 - persistence * persistence)?)?;
        episodes.warm = actions.f_to_device(tch::Device::Cpu)?.f_to_kind(Kind::Double)?;
        episodes.step += 1;
        let at_horizon = episodes.step >= settings.horizon;
        let cold_reads = warm.f_rsub_scalar(1.0)?.f_mul(&episodes.warm)?.f_sum(Kind::Double)?.double_value(&[]);
        let mse = squared_error.f_mean(Kind::Double)?.double_value(&[]);
        let episodes = self.episodes.as_ref().expect("under way");
        let observations = self.observation(episodes)?;
        let mut step = EpisodeStep::going_on(squared_error.f_neg()?, observations)?;
        if at_horizon {
            step.truncated = step.truncated.f_logical_not()?;
        }
        step.info =
            BTreeMap::from([("squared_error".to_owned(), mse), ("cold_reads".to_owned(), cold_reads / rows as f64)]);
        Ok(step)
    }

    fn baseline_names(&self) -> Vec<String> {
        vec!["greedy".to_owned()]
    }

    fn baseline_action(&mut self, name: &str) -> Result<Tensor, EnvError> {
        if name != "greedy" {
            return Err(EnvError::Config { env: self.spec.name.clone(), problem: format!("no baseline named {name}") });
        }
        let warm = self.under_way()?.warm.shallow_clone();
        let noise = self.sensor_noise(&warm)?;
        let episodes = self.under_way()?;
        let mut covariance = episodes.covariance.shallow_clone();
        let rows = covariance.size()[0];
        let mut chosen = Tensor::f_zeros_like(&noise)?;
        for _ in 0..self.settings.k {
            // The trace reduction of reading each sensor next: ‖P e_j‖² / (P_jj + r_j).
            let variance = covariance.f_diagonal(0, 1, 2)?.f_add(&noise)?;
            let gain = covariance.f_square()?.f_sum_dim_intlist(1, false, Kind::Double)?.f_div(&variance)?;
            let gain = gain.f_masked_fill(&chosen.f_gt(0.5)?, f64::NEG_INFINITY)?;
            let best = gain.f_argmax(-1, true)?; // [R, 1]
            let n = covariance.size()[1];
            let column = covariance.f_gather(2, &best.f_unsqueeze(1)?.f_expand([rows, n, 1], false)?, false)?;
            let scale = variance.f_gather(1, &best, false)?.f_unsqueeze(2)?; // [R, 1, 1]
            covariance = covariance.f_sub(&column.f_matmul(&column.f_transpose(1, 2)?)?.f_div(&scale)?)?;
            chosen = chosen.f_scatter_value(1, &best, 1.0)?;
        }
        Ok(chosen.f_to_kind(Kind::Float)?)
    }
}

/// The registry's entry `sensor-schedule`.
pub fn entry() -> crate::registry::EnvEntry {
    use crate::registry::{EnvEntry, OptionSpec, Shape};
    EnvEntry::new(
        "sensor-schedule",
        "episodes: read k of n sensors per step of a drifting field, tracked by a Kalman filter; reward minus its \
         error; sensors warm up; baselines greedy information gain, random",
        |make| {
            let options = make.options;
            let settings = ScheduleSettings {
                sites: options.count("n")?,
                k: make.k,
                horizon: options.count("horizon")?,
                length: options.number("length")?,
                persistence: options.number("persistence")?,
                noise: options.number("noise")?,
                cold_noise: options.number("cold-noise")?,
            };
            Ok(Box::new(crate::episodes::Episodic::new(SensorSchedule::new(make.name, settings)?)))
        },
    )
    .default_k(3)
    .default_learning_rate(3e-3)
    .metric("return", true)
    .digits(3)
    .option(OptionSpec::count("n", 16, 2, 256, "sites and sensors on the ring"))
    .option(OptionSpec::count("horizon", 24, 1, 10_000, "steps per episode T"))
    .option(OptionSpec::positive("length", 1.5, 1e3, "correlation length of the field, in sites"))
    .option(OptionSpec::positive("persistence", 0.9, 1.0, "AR(1) coefficient a of the field, in (0, 1)"))
    .option(OptionSpec::positive("noise", 0.01, 1e6, "noise variance of a warm sensor's reading"))
    .option(OptionSpec::positive("cold-noise", 1.0, 1e6, "noise variance of a sensor's first reading after being off"))
    .baseline("greedy")
    .baseline("random")
    .shape(|make| Ok(Shape { items: make.options.count("n")?, items_are: "sensors (option n)".to_owned(), rows: 1 }))
}
