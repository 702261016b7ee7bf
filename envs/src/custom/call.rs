//! What a reward closure is given besides its actions ([`Call`]): where it is called from
//! ([`Stage`]) and the generator its noise should come from.

use rand::Rng;
use rand::distr::{Distribution, Open01};
use rand_distr::StandardNormal;
use tch::{Kind, Tensor};

use crate::env::Phase;

/// Where a reward closure is called from ([`Call::stage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Scoring the sampled actions of training step `step` (from 0, as the trainer numbers
    /// it; after a plain `reset`, see the
    /// [module docs](crate::custom#which-generator-a-call-gets)).
    Train {
        /// The training step.
        step: u64,
    },
    /// Scoring the policy's deterministic action ([`Environment::evaluate`]) or the random
    /// subsets ([`Environment::baselines`]) on this phase.
    ///
    /// [`Environment::evaluate`]: crate::Environment::evaluate
    /// [`Environment::baselines`]: crate::Environment::baselines
    Evaluate(Phase),
}

/// What a reward closure is given with its actions: where it is called from, and the
/// generator its noise should come from (see the
/// [module docs](crate::custom#which-generator-a-call-gets) for how it is seeded).
///
/// ```
/// use sfess_envs::custom::{Call, Stage};
/// use rand::SeedableRng;
/// use tch::Tensor;
///
/// // A noisy reward, written as for `RewardEnv::with_call`, called by hand.
/// let mut reward = |actions: &Tensor, call: &mut Call| {
///     let sum = actions.sum_dim_intlist(-1, false, None::<tch::Kind>);
///     &sum + call.normal_like(&sum) * 0.5
/// };
/// let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1);
/// let rewards = reward(&Tensor::ones([3, 4], tch::kind::FLOAT_CPU), &mut Call::new(Stage::Train { step: 0 }, &mut rng));
/// assert_eq!(rewards.size(), [3]);
/// ```
#[non_exhaustive]
pub struct Call<'a> {
    /// Training step or evaluation phase.
    pub stage: Stage,
    /// The generator for the closure's noise.
    pub rng: &'a mut dyn Rng,
}

impl std::fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call").field("stage", &self.stage).finish_non_exhaustive()
    }
}

impl<'a> Call<'a> {
    /// A call at `stage` drawing from `rng`: what [`RewardEnv`](super::RewardEnv) passes,
    /// for calling a reward closure by hand (in a test of it).
    pub fn new(stage: Stage, rng: &'a mut dyn Rng) -> Self {
        Self { stage, rng }
    }

    /// Standard normals `N(0, 1)` of this shape, f32 on the CPU, from [`Call::rng`].
    ///
    /// # Numerics
    /// rand_distr's `StandardNormal` (the ziggurat method); its values are stable within a
    /// rand_distr version, so the same seed gives the same tensor bit for bit.
    ///
    /// # Panics
    /// On a negative dimension.
    pub fn normal(&mut self, shape: &[i64]) -> Tensor {
        draw::<f32, _>(&mut *self.rng, StandardNormal, shape)
    }

    /// Uniforms on the open interval `(0, 1)` (never exactly 0 or 1, so `ln u` is finite)
    /// of this shape, f32 on the CPU, from [`Call::rng`].
    ///
    /// # Panics
    /// On a negative dimension.
    pub fn uniform(&mut self, shape: &[i64]) -> Tensor {
        draw::<f32, _>(&mut *self.rng, Open01, shape)
    }

    /// [`Call::normal`] with the shape and device of `like`, in its kind when that is
    /// f64, f16 or bf16 and in f32 otherwise: `&sum + call.normal_like(&sum) * 0.5`.
    pub fn normal_like(&mut self, like: &Tensor) -> Tensor {
        self.like(like, StandardNormal)
    }

    /// [`Call::uniform`] with the shape, device and (floating) kind of `like`, as
    /// [`Call::normal_like`].
    pub fn uniform_like(&mut self, like: &Tensor) -> Tensor {
        self.like(like, Open01)
    }

    fn like<D: Distribution<f32> + Distribution<f64>>(&mut self, like: &Tensor, distribution: D) -> Tensor {
        let shape = like.size();
        let drawn = match like.kind() {
            Kind::Double => draw::<f64, _>(&mut *self.rng, distribution, &shape),
            kind @ (Kind::Half | Kind::BFloat16) => draw::<f32, _>(&mut *self.rng, distribution, &shape).to_kind(kind),
            _ => draw::<f32, _>(&mut *self.rng, distribution, &shape),
        };
        drawn.to_device(like.device())
    }
}

/// `shape.product()` draws of `distribution` from `rng`, in row-major order, as a CPU tensor.
///
/// # Panics
/// On a negative dimension.
fn draw<T: tch::kind::Element, D: Distribution<T>>(rng: &mut dyn Rng, distribution: D, shape: &[i64]) -> Tensor {
    let count = shape.iter().map(|&d| usize::try_from(d).expect("a tensor dimension cannot be negative")).product();
    let values: Vec<T> = distribution.sample_iter(rng).take(count).collect();
    Tensor::from_slice(&values).view(shape)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    use super::*;

    fn floats(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    }

    #[test]
    fn call_draws_standard_normals_and_open_uniforms() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let mut call = Call::new(Stage::Train { step: 0 }, &mut rng);
        let z = call.normal(&[100, 200]);
        assert_eq!((z.size(), z.kind()), (vec![100, 200], Kind::Float));
        // 20,000 draws: the mean has sd 0.007, the variance sd 0.01.
        let (mean, var) = (z.mean(Kind::Double).double_value(&[]), z.var(true).double_value(&[]));
        assert!(mean.abs() < 0.04 && (var - 1.0).abs() < 0.05, "{mean} {var}");
        let u = call.uniform(&[20_000]);
        assert!(bool::try_from(u.gt(0.0).logical_and(&u.lt(1.0)).all()).unwrap());
        let mean = u.mean(Kind::Double).double_value(&[]);
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        let like = call.uniform_like(&Tensor::zeros([2, 3], tch::kind::DOUBLE_CPU));
        assert_eq!((like.size(), like.kind()), (vec![2, 3], Kind::Double));
        assert_eq!(call.normal(&[0, 4]).size(), [0, 4]);
        // The same seed, the same draws.
        let mut again = Xoshiro256PlusPlus::seed_from_u64(3);
        assert_eq!(floats(&Call::new(Stage::Train { step: 0 }, &mut again).normal(&[100, 200])), floats(&z));
    }
}
