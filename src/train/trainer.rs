//! One policy-gradient step: Adam over the policy's and the environment's variables, and
//! the step of a one-step environment (draw, score, surrogate, update). The loop around it
//! (loss windows, validation, checkpoints, signals, records) is [`crate::run::training`].
//!
//! Every random draw of step `t` comes from a generator seeded by `(seed, t)` alone, so a
//! run resumed from a checkpoint continues exactly as the uninterrupted run would have.

use anyhow::{Context, bail};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use sfess_agents::GradientEstimator;
use sfess_envs::Environment;
use tch::{Kind, Tensor};

use crate::train::policy::Policy;

/// Adam (Kingma & Ba 2015) exactly as `torch.optim.Adam`, with its moments kept in the
/// open so that checkpoints hold them:
///
/// ```text
/// m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²,
/// θ ← θ − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
/// ```
///
/// # Layout
/// The parameters of each (device, type) are moved into one flat buffer, and each
/// parameter becomes a view into it (as apex's and DeepSpeed's fused optimisers do); the
/// moments are flat buffers of the same layout. An update is then a dozen tensor operations
/// over each buffer, however many parameter tensors there are, with the same arithmetic per
/// element as one update per tensor (so the same numbers).
#[derive(Debug)]
pub struct Adam {
    learning_rate: f64,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    /// Updates taken.
    pub steps: i64,
    /// `(name, variable)`, sorted by name; each a view into its group's buffer.
    params: Vec<(String, Tensor)>,
    groups: Vec<FlatGroup>,
}

/// The parameters of one device and type, flattened.
#[derive(Debug)]
struct FlatGroup {
    /// `(index into params, offset, elements)` of each member, in buffer order.
    members: Vec<(usize, i64, i64)>,
    values: Tensor,
    first: Tensor,
    second: Tensor,
}

impl FlatGroup {
    /// A member's slice of `buffer`, shaped as the parameter.
    fn view(buffer: &Tensor, offset: i64, elements: i64, shape: &[i64]) -> Result<Tensor, tch::TchError> {
        buffer.f_narrow(0, offset, elements)?.f_view(shape)
    }
}

impl Adam {
    /// Adam over `params` (named, in a stable order), with ε = 1e-8. Each parameter's data
    /// moves into its group's flat buffer (its values are unchanged).
    ///
    /// # Errors
    /// libtorch errors.
    pub fn new(params: Vec<(String, Tensor)>, learning_rate: f64, beta1: f64, beta2: f64) -> anyhow::Result<Self> {
        let mut keys: Vec<(tch::Device, Kind)> = Vec::new();
        for (_, p) in &params {
            if !keys.contains(&(p.device(), p.kind())) {
                keys.push((p.device(), p.kind()));
            }
        }
        let mut groups = Vec::new();
        tch::no_grad(|| -> anyhow::Result<()> {
            for key in keys {
                let mut members = Vec::new();
                let mut flats = Vec::new();
                let mut offset = 0;
                for (index, (_, p)) in params.iter().enumerate().filter(|(_, (_, p))| (p.device(), p.kind()) == key) {
                    let elements = p.numel() as i64;
                    members.push((index, offset, elements));
                    flats.push(p.f_detach()?.f_reshape([-1])?);
                    offset += elements;
                }
                let values = Tensor::f_cat(&flats, 0)?;
                for &(index, offset, elements) in &members {
                    let mut p = params[index].1.shallow_clone();
                    let view = FlatGroup::view(&values, offset, elements, &p.size())?;
                    p.f_set_data(&view)?;
                }
                let (first, second) = (values.f_zeros_like()?, values.f_zeros_like()?);
                groups.push(FlatGroup { members, values, first, second });
            }
            Ok(())
        })?;
        Ok(Self { learning_rate, beta1, beta2, epsilon: 1e-8, steps: 0, params, groups })
    }

    /// One update with the gradient of `loss` with respect to every parameter (those it does
    /// not reach get a zero gradient, which leaves them unchanged while their moments are
    /// zero). Nothing is accumulated in the parameters' `.grad`.
    ///
    /// # Errors
    /// libtorch errors (a loss that does not require a gradient).
    pub fn backward_step(&mut self, loss: &Tensor) -> anyhow::Result<()> {
        let variables: Vec<&Tensor> = self.params.iter().map(|(_, p)| p).collect();
        let gradients = Tensor::f_run_backward(&[loss], &variables, false, false)?;
        self.steps += 1;
        let t = self.steps as i32;
        let (correction1, correction2) = (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t));
        let (beta1, beta2, epsilon, step) = (self.beta1, self.beta2, self.epsilon, self.learning_rate / correction1);
        tch::no_grad(|| -> anyhow::Result<()> {
            for group in &mut self.groups {
                let mut flats = Vec::with_capacity(group.members.len());
                for &(index, _, elements) in &group.members {
                    let g = &gradients[index];
                    flats.push(if g.defined() {
                        g.f_reshape([-1])?
                    } else {
                        Tensor::f_zeros([elements], (group.values.kind(), group.values.device()))?
                    });
                }
                let g = Tensor::f_cat(&flats, 0)?;
                let _ = group.first.f_mul_scalar_(beta1)?.f_add_(&g.f_mul_scalar(1.0 - beta1)?)?;
                let _ = group.second.f_mul_scalar_(beta2)?.f_add_(&g.f_square()?.f_mul_scalar(1.0 - beta2)?)?;
                // As torch: √v / √(1 − β₂ᵗ) + ε.
                let denominator = group.second.f_sqrt()?.f_div_scalar(correction2.sqrt())?.f_add_scalar(epsilon)?;
                let _ = group.values.f_sub_(&group.first.f_div(&denominator)?.f_mul_scalar(step)?)?;
            }
            Ok(())
        })
    }

    /// Each group's members as `(name, slice of buffer)` for `buffer` = the first or second
    /// moment.
    fn moments(&self, second: bool) -> anyhow::Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for group in &self.groups {
            let buffer = if second { &group.second } else { &group.first };
            for &(index, offset, elements) in &group.members {
                let (name, p) = &self.params[index];
                out.push((name.clone(), FlatGroup::view(buffer, offset, elements, &p.size())?));
            }
        }
        Ok(out)
    }

    /// The moments as named tensors (copies), for a checkpoint.
    ///
    /// # Errors
    /// libtorch errors.
    pub fn state(&self) -> anyhow::Result<Vec<(String, Tensor)>> {
        let mut state = Vec::new();
        for ((name, m), (_, v)) in self.moments(false)?.into_iter().zip(self.moments(true)?) {
            state.push((format!("adam.m.{name}"), m.f_detach_copy()?));
            state.push((format!("adam.v.{name}"), v.f_detach_copy()?));
        }
        Ok(state)
    }

    /// Restores the moments from [`Adam::state`]'s names.
    ///
    /// # Errors
    /// A moment is missing or of the wrong shape.
    pub fn restore(&mut self, tensors: &std::collections::HashMap<String, Tensor>, steps: i64) -> anyhow::Result<()> {
        for (prefix, second) in [("adam.m", false), ("adam.v", true)] {
            for (name, mut moment) in self.moments(second)? {
                let key = format!("{prefix}.{name}");
                let saved = tensors.get(&key).with_context(|| format!("the checkpoint has no {key}"))?;
                anyhow::ensure!(
                    saved.size() == moment.size(),
                    "{key} has shape {:?}, expected {:?}",
                    saved.size(),
                    moment.size()
                );
                tch::no_grad(|| moment.f_copy_(saved))?;
            }
        }
        self.steps = steps;
        Ok(())
    }
}

/// The generator of step `t` of a run seeded `seed` (SplitMix64 of both, so that nearby
/// seeds and steps give unrelated streams).
pub fn step_rng(seed: u64, step: u64) -> Xoshiro256PlusPlus {
    let mut z = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ step.wrapping_add(0x632b_e59b_d9b4_e019);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    Xoshiro256PlusPlus::seed_from_u64(z ^ (z >> 31))
}

/// The seed of the environment's own noise at step `t` of a run seeded `seed`
/// ([`sfess_envs::StepSeed`]): a stream apart from [`step_rng`]'s, so that drawing it
/// changes none of the policy's draws.
pub fn env_seed(seed: u64, step: u64) -> u64 {
    use rand::Rng;
    step_rng(seed ^ 0x656e_765f_6e6f_6973, step).next_u64()
}

/// What one training step reports.
#[derive(Debug)]
pub struct StepReport {
    /// The mean loss of the step's samples (minus their mean reward, plus any logit loss):
    /// a detached `f64` scalar on the step's device, so that reading it (and waiting for
    /// the device) is the caller's choice; [`StepReport::loss_value`] reads it.
    pub loss: Tensor,
    /// The environment's diagnostics of the step ([`sfess_envs::Transition::info`]),
    /// recorded as `info.NAME` ([`sfess_envs::info_metric`]).
    pub info: std::collections::BTreeMap<String, f64>,
    /// The trainer's own measures of the step, recorded under their names beside `loss`
    /// (over episodes: `return` and `length`; none for one-step environments).
    pub measures: std::collections::BTreeMap<String, f64>,
}

impl StepReport {
    /// The loss on the host (one synchronisation on a device).
    ///
    /// # Errors
    /// libtorch errors.
    pub fn loss_value(&self) -> anyhow::Result<f64> {
        Ok(f64::try_from(&self.loss)?)
    }
}

/// The surrogate of training step `step` of a one-step environment: draw, score, build.
/// Its value is the mean loss of the step's samples (plus any logit loss), its gradient the
/// estimator's.
///
/// # Errors
/// Estimator, environment and policy errors.
pub fn step_surrogate(
    step: u64,
    seed: u64,
    env: &mut dyn Environment,
    policy: &dyn Policy,
    estimator: &dyn GradientEstimator,
    samples: usize,
) -> anyhow::Result<(Tensor, std::collections::BTreeMap<String, f64>)> {
    let mut rng = step_rng(seed, step);
    let env_seed = sfess_envs::StepSeed { step, seed: env_seed(seed, step) };
    let observation = env.reset_step(env_seed, &mut rng)?;
    let logits = policy.forward(&observation)?;
    let spec = env.spec().clone();
    let (rows, n, k) = (spec.rows as i64, spec.space.n() as i64, spec.space.k() as i64);
    if logits.size() != [rows, n] {
        bail!(
            "the policy gave logits of shape {:?} but {} takes actions of {rows} rows of {n} items",
            logits.size(),
            spec.name
        );
    }
    let draw = estimator.draw(&logits, k, samples, &mut rng)?;
    let transition = env.step(draw.actions())?;
    let losses = transition.rewards.f_neg()?;
    let mut surrogate = estimator.surrogate_loss(&draw, &losses)?;
    if let Some(extra) = env.logit_loss(&logits)? {
        surrogate = surrogate.f_add(&extra)?;
    }
    Ok((surrogate, transition.info))
}

/// One training step: [`step_surrogate`], then the update. It never waits for the
/// device: the loss stays there ([`StepReport::loss`]) and its finiteness is the caller's to
/// check, when it reads it (the runner does every `min(100, eval_every)` steps and before
/// every checkpoint).
///
/// # Errors
/// Estimator, environment and policy errors.
pub fn train_step(
    step: u64,
    seed: u64,
    env: &mut dyn Environment,
    policy: &dyn Policy,
    estimator: &dyn GradientEstimator,
    samples: usize,
    optimizer: &mut Adam,
) -> anyhow::Result<StepReport> {
    let (surrogate, info) = step_surrogate(step, seed, env, policy, estimator, samples)?;
    let loss = surrogate.f_detach()?.f_to_kind(Kind::Double)?;
    optimizer.backward_step(&surrogate)?;
    Ok(StepReport { loss, info, measures: std::collections::BTreeMap::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our Adam against the values PyTorch 2.11 gives for the same problem:
    /// ```python
    /// import torch
    /// w = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    /// opt = torch.optim.Adam([w], lr=0.1, betas=(0.9, 0.999))
    /// for _ in range(3):
    ///     opt.zero_grad(); ((w ** 2) * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum().backward(); opt.step()
    /// print(w.tolist())
    /// ```
    #[test]
    fn adam_matches_torch() {
        let w = Tensor::from_slice(&[1.0f64, -2.0, 0.5]).set_requires_grad(true);
        let mut adam = Adam::new(vec![("w".into(), w.shallow_clone())], 0.1, 0.9, 0.999).unwrap();
        let c = Tensor::from_slice(&[1.0f64, 2.0, 3.0]);
        for _ in 0..3 {
            adam.backward_step(&(w.square() * &c).sum(Kind::Double)).unwrap();
        }
        let got = Vec::<f64>::try_from(&w.detach()).unwrap();
        let expected = [0.7015862729460302, -1.7006233916636408, 0.20487125044086524];
        for (a, b) in got.iter().zip(expected) {
            assert!((a - b).abs() < 1e-12, "{got:?}");
        }
    }

    /// The flat update against one update per tensor (the textbook loop), bit for bit, on
    /// parameters of two types, one of them never reached by the loss (it stays put), and
    /// through a checkpoint's moments.
    #[test]
    fn flat_buffers_update_exactly_as_one_tensor_at_a_time() {
        let make = || {
            tch::manual_seed(3);
            vec![
                ("a".to_owned(), Tensor::randn([3, 4], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true)),
                ("b".to_owned(), Tensor::randn([5], (Kind::Double, tch::Device::Cpu)).set_requires_grad(true)),
                ("c".to_owned(), Tensor::randn([2, 2], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true)),
                ("unused".to_owned(), Tensor::randn([7], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true)),
            ]
        };
        let loss = |p: &[(String, Tensor)]| {
            let a = p[0].1.square().sum(Kind::Float) * 0.5 + p[0].1.sin().sum(Kind::Float);
            let c = p[2].1.exp().sum(Kind::Float);
            (a + c).to_kind(Kind::Double) + p[1].1.cos().sum(Kind::Double)
        };
        let flat_params = make();
        let mut adam =
            Adam::new(flat_params.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect(), 0.05, 0.9, 0.999)
                .unwrap();
        let reference = make();
        let (mut m, mut v): (Vec<Tensor>, Vec<Tensor>) =
            reference.iter().map(|(_, p)| (p.zeros_like(), p.zeros_like())).unzip();
        for t in 1..=4 {
            adam.backward_step(&loss(&flat_params)).unwrap();
            let variables: Vec<&Tensor> = reference.iter().map(|(_, p)| p).collect();
            let grads = Tensor::run_backward(&[loss(&reference)], &variables, false, false);
            let (c1, c2) = (1.0 - 0.9f64.powi(t), 1.0 - 0.999f64.powi(t));
            tch::no_grad(|| {
                for (((_, p), g), (m, v)) in reference.iter().zip(&grads).zip(m.iter_mut().zip(v.iter_mut())) {
                    if !g.defined() {
                        continue;
                    }
                    let (b1, b2) = (0.9f64, 0.999f64);
                    let _ = m.f_mul_scalar_(b1).unwrap().f_add_(&g.f_mul_scalar(1.0 - b1).unwrap()).unwrap();
                    let _ = v.f_mul_scalar_(b2).unwrap().f_add_(&g.square().f_mul_scalar(1.0 - b2).unwrap()).unwrap();
                    let denominator = v.sqrt().f_div_scalar(c2.sqrt()).unwrap().f_add_scalar(1e-8).unwrap();
                    let update = m.f_div(&denominator).unwrap().f_mul_scalar(0.05 / c1).unwrap();
                    let _ = p.shallow_clone().f_sub_(&update).unwrap();
                }
            });
        }
        for ((name, a), (_, b)) in flat_params.iter().zip(&reference) {
            assert!(a.equal(b), "{name} differs from the per-tensor update");
        }
        let state: std::collections::HashMap<String, Tensor> = adam.state().unwrap().into_iter().collect();
        assert!(state["adam.m.a"].equal(&m[0]) && state["adam.v.b"].equal(&v[1]));
        let mut restored = Adam::new(make(), 0.05, 0.9, 0.999).unwrap();
        restored.restore(&state, 4).unwrap();
        assert!(restored.state().unwrap().iter().all(|(key, t)| t.equal(&state[key])));
    }

    #[test]
    fn step_generators_differ_by_seed_and_step() {
        use rand::Rng;
        let a = step_rng(0, 0).next_u64();
        assert_eq!(a, step_rng(0, 0).next_u64());
        assert_ne!(a, step_rng(0, 1).next_u64());
        assert_ne!(a, step_rng(1, 0).next_u64());
    }
}
