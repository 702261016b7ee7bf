//! The policy-gradient trainer: Adam over the policy's and the environment's variables,
//! one estimator, validation and checkpoints every `eval_every` steps.
//!
//! Every random draw of step `t` comes from a generator seeded by `(seed, t)` alone, so a
//! run resumed from a checkpoint continues exactly as the uninterrupted run would have.

use std::path::Path;

use anyhow::{Context, bail};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use sfess_agents::GradientEstimator;
use sfess_envs::Environment;
use tch::{Kind, Tensor};

use crate::policy::Policy;

/// Adam (Kingma & Ba 2015) exactly as `torch.optim.Adam`, with its moments kept in the
/// open so that checkpoints hold them:
///
/// ```text
/// m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²,
/// θ ← θ − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
/// ```
#[derive(Debug)]
pub struct Adam {
    learning_rate: f64,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    /// Updates taken.
    pub steps: i64,
    /// `(name, variable)`, sorted by name.
    params: Vec<(String, Tensor)>,
    first: Vec<Tensor>,
    second: Vec<Tensor>,
}

impl Adam {
    /// Adam over `params` (named, in a stable order), with ε = 1e-8.
    pub fn new(params: Vec<(String, Tensor)>, learning_rate: f64, beta1: f64, beta2: f64) -> Self {
        let first = params.iter().map(|(_, p)| p.zeros_like()).collect();
        let second = params.iter().map(|(_, p)| p.zeros_like()).collect();
        Self { learning_rate, beta1, beta2, epsilon: 1e-8, steps: 0, params, first, second }
    }

    /// Clears the gradients.
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            let mut grad = p.grad();
            if grad.defined() {
                let _ = grad.zero_();
            }
        }
    }

    /// One update from the accumulated gradients.
    ///
    /// # Errors
    /// libtorch errors.
    pub fn step(&mut self) -> anyhow::Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        let (correction1, correction2) = (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t));
        tch::no_grad(|| -> anyhow::Result<()> {
            for (((_, p), m), v) in self.params.iter_mut().zip(&mut self.first).zip(&mut self.second) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = m.f_mul_scalar_(self.beta1)?.f_add_(&g.f_mul_scalar(1.0 - self.beta1)?)?;
                let _ = v.f_mul_scalar_(self.beta2)?.f_add_(&g.f_square()?.f_mul_scalar(1.0 - self.beta2)?)?;
                // As torch: √v / √(1 − β₂ᵗ) + ε.
                let denominator = v.f_sqrt()?.f_div_scalar(correction2.sqrt())?.f_add_scalar(self.epsilon)?;
                let _ = p.f_sub_(&m.f_div(&denominator)?.f_mul_scalar(self.learning_rate / correction1)?)?;
            }
            Ok(())
        })
    }

    /// The moments as named tensors, for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut state = Vec::new();
        for ((name, _), (m, v)) in self.params.iter().zip(self.first.iter().zip(&self.second)) {
            state.push((format!("adam.m.{name}"), m.shallow_clone()));
            state.push((format!("adam.v.{name}"), v.shallow_clone()));
        }
        state
    }

    /// Restores the moments from [`Adam::state`]'s names.
    ///
    /// # Errors
    /// A moment is missing or of the wrong shape.
    pub fn restore(&mut self, tensors: &std::collections::HashMap<String, Tensor>, steps: i64) -> anyhow::Result<()> {
        for ((name, _), (m, v)) in self.params.iter().zip(self.first.iter_mut().zip(self.second.iter_mut())) {
            for (key, moment) in [(format!("adam.m.{name}"), &mut *m), (format!("adam.v.{name}"), &mut *v)] {
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

/// What one training step reports.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// The mean loss of the step's samples (minus their mean reward, plus any logit loss).
    pub loss: f64,
    /// The environment's diagnostics of the step ([`sfess_envs::Transition::info`]).
    pub info: std::collections::BTreeMap<String, f64>,
}

/// One training step: draw, score, build the surrogate, update.
///
/// # Errors
/// Estimator, environment and policy errors; a non-finite loss.
pub fn train_step(
    step: u64,
    seed: u64,
    env: &mut dyn Environment,
    policy: &dyn Policy,
    estimator: &dyn GradientEstimator,
    samples: usize,
    optimizer: &mut Adam,
) -> anyhow::Result<StepReport> {
    let mut rng = step_rng(seed, step);
    let observation = env.reset(&mut rng)?;
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
    let value = surrogate.f_to_kind(Kind::Double)?.double_value(&[]);
    if !value.is_finite() {
        bail!(
            "the loss became {value} at step {step} ({} on {}); the last good checkpoint is kept",
            estimator.name(),
            spec.name
        );
    }
    optimizer.zero_grad();
    surrogate.f_backward()?;
    optimizer.step()?;
    Ok(StepReport { loss: value, info: transition.info })
}

/// Writes a checkpoint (the variables, Adam's moments and the step) atomically.
///
/// # Errors
/// The file cannot be written.
pub fn save_checkpoint(path: &Path, step: u64, variables: &[(String, Tensor)], optimizer: &Adam) -> anyhow::Result<()> {
    let mut tensors: Vec<(String, Tensor)> =
        variables.iter().map(|(n, t)| (format!("var.{n}"), t.shallow_clone())).collect();
    tensors.extend(optimizer.state());
    tensors.push(("meta.step".to_owned(), Tensor::from_slice(&[step as i64])));
    let temporary = path.with_extension("partial");
    Tensor::save_multi(&tensors, &temporary).with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))
}

/// Loads a checkpoint into the variables and the optimizer; returns its step.
///
/// # Errors
/// The file is missing or does not match the run's variables.
pub fn load_checkpoint(path: &Path, variables: &[(String, Tensor)], optimizer: &mut Adam) -> anyhow::Result<u64> {
    let device = variables.first().map_or(tch::Device::Cpu, |(_, t)| t.device());
    let tensors: std::collections::HashMap<String, Tensor> = Tensor::load_multi_with_device(path, device)
        .with_context(|| format!("reading the checkpoint {}", path.display()))?
        .into_iter()
        .collect();
    let step = tensors.get("meta.step").context("the checkpoint has no step")?.int64_value(&[0]);
    for (name, variable) in variables {
        let key = format!("var.{name}");
        let saved = tensors.get(&key).with_context(|| format!("the checkpoint has no {key}"))?;
        anyhow::ensure!(
            saved.size() == variable.size(),
            "{key} has shape {:?}, expected {:?}",
            saved.size(),
            variable.size()
        );
        let mut variable = variable.shallow_clone();
        tch::no_grad(|| variable.f_copy_(saved))?;
    }
    optimizer.restore(&tensors, step)?;
    Ok(step as u64)
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
        let mut adam = Adam::new(vec![("w".into(), w.shallow_clone())], 0.1, 0.9, 0.999);
        let c = Tensor::from_slice(&[1.0f64, 2.0, 3.0]);
        for _ in 0..3 {
            adam.zero_grad();
            (w.square() * &c).sum(Kind::Double).backward();
            adam.step().unwrap();
        }
        let got = Vec::<f64>::try_from(&w.detach()).unwrap();
        let expected = [0.7015862729460302, -1.7006233916636408, 0.20487125044086524];
        for (a, b) in got.iter().zip(expected) {
            assert!((a - b).abs() < 1e-12, "{got:?}");
        }
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
