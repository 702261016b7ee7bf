//! Slate recommendation with a user whose taste drifts with what was shown (`slate`): show
//! `k` of `n` items at each step; the user clicks some; their taste moves toward the slate.
//!
//! # The user
//! Items sit at angles `θ_i = 2π i / n` on a circle of tastes; the user's taste is an angle
//! `φ_t`, uniform at the start. Item `i` is clicked with probability
//!
//! `p_i = σ(β (cos(θ_i − φ_t) − c))`
//!
//! (`β` the option `sharpness`, `c = 1/2`), independently, and a click on it is worth `v_i`:
//! `premium` for the items within 30° of the episode's promotion angle `ψ` (uniform at the
//! start, like the taste, and fixed over the episode), 1 for the others. After each
//! slate the taste drifts toward the slate's mean direction `m_t` (the angle of
//! `Σ_{i shown} (cos θ_i, sin θ_i)`):
//!
//! `φ_{t+1} = φ_t + η · wrap(m_t − φ_t) + ε_t`,  `ε_t ~ N(0, τ²)`
//!
//! (`η` the option `drift`, `τ` the option `taste-noise`). The reward of a step is the worth
//! of its clicks; an episode lasts `T` steps (`horizon`).
//!
//! The policy sees each item's click probability now, each item's worth (divided by
//! `premium`) and the fraction of the episode gone (`2n + 1` features). A policy that
//! ignores what it sees (one fixed slate) cannot follow the promotion from episode to
//! episode.
//!
//! # Baselines
//! `greedy`: the slate of the `k` items of highest expected worth now, `p_i v_i` (greedy by
//! the current interest, weighted by worth). It keeps the taste where it is: a slate
//! around `φ` has its mean at `φ`. Leading the user toward the premium items first, with
//! slates a little off their taste, pays later, which only a policy that plans over the
//! episode does. `random`: k items uniformly at random.

use std::collections::BTreeMap;
use std::f64::consts::PI;

use tch::{Kind, Tensor};

use crate::env::{EnvError, EnvSpec, top_k_hot};
use crate::episodes::{EpisodeNoise, EpisodeStep, SequentialEnvironment, checked_actions, state_with_time};
use crate::space::KHotSpace;

/// The settings of a slate task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlateSettings {
    /// Items n.
    pub items: usize,
    /// Items per slate k.
    pub k: usize,
    /// Steps per episode T.
    pub horizon: usize,
    /// β: how sharply clicks fall off away from the taste.
    pub sharpness: f64,
    /// Worth of a click on a premium item (1 for the others).
    pub premium: f64,
    /// η: how far the taste moves toward a slate's direction, in (0, 1].
    pub drift: f64,
    /// τ: the standard deviation of the taste's own noise per step, in radians.
    pub taste_noise: f64,
}

/// The episodes under way.
#[derive(Debug)]
struct Episodes {
    noise: EpisodeNoise,
    /// The taste `[R]`.
    taste: Tensor,
    /// The worth of a click on each item, `[R, n]`.
    worth: Tensor,
    step: usize,
}

/// The environment; see the [module docs](self).
#[derive(Debug)]
pub struct Slate {
    spec: EnvSpec,
    settings: SlateSettings,
    /// `θ_i`, `[n]`.
    angles: Tensor,
    episodes: Option<Episodes>,
}

/// `x` wrapped into `(−π, π]`.
fn wrap(x: &Tensor) -> Result<Tensor, tch::TchError> {
    // π − ((π − x) mod 2π), with the remainder's sign of the divisor.
    x.f_rsub_scalar(PI)?.f_remainder(2.0 * PI)?.f_rsub_scalar(PI)
}

impl Slate {
    /// The task of `settings`, named `name`.
    ///
    /// # Errors
    /// [`EnvError::Config`] for a drift outside (0, 1], sizes out of range.
    pub fn new(name: &str, settings: SlateSettings) -> Result<Self, EnvError> {
        let problem = |p: String| EnvError::Config { env: name.to_owned(), problem: p };
        if !(settings.drift > 0.0 && settings.drift <= 1.0) {
            return Err(problem(format!("drift must be in (0, 1], got {}", settings.drift)));
        }
        if settings.horizon == 0 {
            return Err(problem("the horizon must be at least 1 step".into()));
        }
        let space = KHotSpace::new(settings.items, settings.k).map_err(|e| problem(e.to_string()))?;
        let n = settings.items;
        let angles: Vec<f64> = (0..n).map(|i| 2.0 * PI * i as f64 / n as f64).collect();
        let spec = EnvSpec {
            name: name.to_owned(),
            space,
            rows: 1,
            differentiable: false,
            metric: "return".to_owned(),
            higher_is_better: true,
            observation_dim: 2 * n + 1,
            description: format!(
                "show {} of {n} items per step to a user whose taste drifts toward what was shown, {} steps",
                settings.k, settings.horizon
            ),
        };
        Ok(Self { spec, settings, angles: Tensor::from_slice(&angles), episodes: None })
    }

    fn under_way(&mut self) -> Result<&mut Episodes, EnvError> {
        let env = self.spec.name.clone();
        self.episodes.as_mut().ok_or(EnvError::NotReset { env })
    }

    /// Each item's click probability for each taste, `[R, n]`.
    fn click_probabilities(&self, taste: &Tensor) -> Result<Tensor, EnvError> {
        let offset = self.angles.f_unsqueeze(0)?.f_sub(&taste.f_unsqueeze(1)?)?;
        Ok(offset.f_cos()?.f_sub_scalar(0.5)?.f_mul_scalar(self.settings.sharpness)?.f_sigmoid()?)
    }

    fn observation(&self, episodes: &Episodes) -> Result<Tensor, EnvError> {
        let clicks = self.click_probabilities(&episodes.taste)?;
        let worth = episodes.worth.f_div_scalar(self.settings.premium.max(1.0))?;
        state_with_time(&[clicks, worth], episodes.step, self.settings.horizon)
    }
}

impl SequentialEnvironment for Slate {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn horizon(&self) -> usize {
        self.settings.horizon
    }

    fn reset(&mut self, seeds: &[u64]) -> Result<Tensor, EnvError> {
        let mut noise = EpisodeNoise::new(seeds);
        let angles = noise.uniforms(2)?.f_mul_scalar(2.0 * PI)?.f_sub_scalar(PI)?;
        let (taste, promotion) = (angles.f_select(1, 0)?, angles.f_select(1, 1)?);
        // Items within 30° of the promotion are worth `premium`.
        let distance = wrap(&self.angles.f_unsqueeze(0)?.f_sub(&promotion.f_unsqueeze(1)?)?)?.f_abs()?;
        let premium = distance.f_le(PI / 6.0 + 1e-9)?.f_to_kind(Kind::Double)?;
        let worth = premium.f_mul_scalar(self.settings.premium - 1.0)?.f_add_scalar(1.0)?;
        let episodes = Episodes { noise, taste, worth, step: 0 };
        let observation = self.observation(&episodes)?;
        self.episodes = Some(episodes);
        Ok(observation)
    }

    fn step(&mut self, actions: &Tensor) -> Result<EpisodeStep, EnvError> {
        let spec = self.spec.clone();
        let settings = self.settings;
        let rows = self.under_way()?.taste.size()[0];
        let shown = checked_actions(&spec, actions, rows)?;
        let taste = self.under_way()?.taste.shallow_clone();
        let probabilities = self.click_probabilities(&taste)?;
        let episodes = self.under_way()?;
        // The same draws every step, whatever the slate: one uniform per item, the taste's noise.
        let uniforms = episodes.noise.uniforms(settings.items)?;
        let taste_noise = episodes.noise.normals(1)?.f_squeeze_dim(1)?;
        let clicks = uniforms.f_lt_tensor(&probabilities)?.f_to_kind(Kind::Double)?.f_mul(&shown)?;
        let rewards = clicks.f_mul(&episodes.worth)?.f_sum_dim_intlist(1, false, Kind::Double)?;
        let direction = shown.f_matmul(&self.angles.f_sin()?)?.f_atan2(&shown.f_matmul(&self.angles.f_cos()?)?)?;
        let moved = taste
            .f_add(&wrap(&direction.f_sub(&taste)?)?.f_mul_scalar(settings.drift)?)?
            .f_add(&taste_noise.f_mul_scalar(settings.taste_noise)?)?;
        let episodes = self.under_way()?;
        episodes.taste = wrap(&moved)?;
        episodes.step += 1;
        let at_horizon = episodes.step >= settings.horizon;
        let click_rate = clicks.f_sum(Kind::Double)?.double_value(&[]) / (rows as f64 * settings.k.max(1) as f64);
        let episodes = self.episodes.as_ref().expect("under way");
        let mut step = EpisodeStep::timed(rewards, self.observation(episodes)?, at_horizon)?;
        step.info = BTreeMap::from([("click_rate".to_owned(), click_rate)]);
        Ok(step)
    }

    fn baseline_names(&self) -> Vec<String> {
        vec!["greedy".to_owned()]
    }

    fn baseline_action(&mut self, name: &str) -> Result<Tensor, EnvError> {
        if name != "greedy" {
            return Err(EnvError::Config { env: self.spec.name.clone(), problem: format!("no baseline named {name}") });
        }
        let (taste, worth) = {
            let episodes = self.under_way()?;
            (episodes.taste.shallow_clone(), episodes.worth.shallow_clone())
        };
        let expected = self.click_probabilities(&taste)?.f_mul(&worth)?;
        Ok(top_k_hot(&expected, self.settings.k as i64)?)
    }
}

/// The registry's entry `slate`.
pub fn entry() -> crate::registry::EnvEntry {
    description().constructor(|make| {
        let options = make.options;
        let settings = SlateSettings {
            items: options.count("n")?,
            k: make.k,
            horizon: options.count("horizon")?,
            sharpness: options.number("sharpness")?,
            premium: options.number("premium")?,
            drift: options.number("drift")?,
            taste_noise: options.number("taste-noise")?,
        };
        Ok(Box::new(crate::episodes::Episodic::new(Slate::new(make.name, settings)?)))
    })
}

/// [`entry`] without its constructor: what [`Registry::catalog`](crate::registry::Registry::catalog) lists.
pub(crate) fn description() -> crate::registry::EnvEntry {
    use crate::registry::OptionSpec;
    crate::episodes::description(
        "slate",
        "episodes: show k of n items per step to a user whose taste drifts toward what was shown; reward the worth \
         of the clicks; baselines greedy by expected worth, random",
        (24, "items"),
        20,
        &["greedy"],
    )
    .default_k(4)
    .digits(2)
    .option(OptionSpec::positive("sharpness", 4.0, 1e3, "β: how sharply clicks fall off away from the taste"))
    .option(OptionSpec::positive(
        "premium",
        3.0,
        1e6,
        "worth of a click on a premium item (within 30° of the episode's promotion)",
    ))
    .option(OptionSpec::positive("drift", 0.5, 1.0, "η: how far the taste moves toward a slate's direction"))
    .option(OptionSpec::positive("taste-noise", 0.05, 10.0, "τ: noise of the taste per step, in radians"))
}
