//! A gradient estimator written outside `sfess-agents`, with its public API alone: REINFORCE
//! with a constant baseline `c`, whose gradient for row `b` is `1/(S R) Σ_s (f_s − c)(z_s − π_b)`
//! (`R` losses per sample). Used through the trait, its surrogate's gradient must match the
//! exact gradient, computed in f64 by enumerating every k-subset of every row.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use sfess_agents::estimator::Result;
use sfess_agents::{ConditionalPoisson, Draw, EstimatorError, GradientEstimator, Properties, Sampler};
use tch::{Kind, Tensor};

/// REINFORCE with a constant baseline: exact samples of the conditional Poisson law, and
/// the surrogate `mean f + mean (f − c)(log p(z) − stopgrad log p(z))`, the log-probabilities
/// of a group of rows summed when the losses come one per group.
#[derive(Debug)]
struct Reinforce {
    baseline: f64,
}

impl GradientEstimator for Reinforce {
    fn name(&self) -> &'static str {
        "reinforce"
    }

    fn properties(&self) -> Properties {
        Properties { exact_samples: true, unbiased: true, non_differentiable_f: true, tuning_free: false }
    }

    fn draw(&self, logits: &Tensor, k: i64, samples: usize, rng: &mut dyn Rng) -> Result<Draw> {
        let actions = ConditionalPoisson::new(logits, k)?.sample(samples, Sampler::Exact, rng)?;
        Draw::new(actions, logits, k)
    }

    fn surrogate_loss(&self, draw: &Draw, losses: &Tensor) -> Result<Tensor> {
        let groups = draw.groups(losses)? as i64;
        let log_prob = ConditionalPoisson::new(draw.logits(), draw.k())?.log_prob(draw.actions())?;
        let [samples, per_sample] = losses.size()[..] else { unreachable!("groups checked the shape") };
        let log_prob = log_prob.f_view([samples, per_sample, groups])?.f_sum_dim_intlist(-1, false, None::<Kind>)?;
        let advantage = losses.f_detach()?.f_sub_scalar(self.baseline)?;
        let score_term = advantage.f_mul(&log_prob.f_sub(&log_prob.f_detach()?)?)?.f_mean(None)?;
        Ok(losses.f_mean(None)?.f_add(&score_term)?)
    }
}

/// Logits of two rows, where the law is far from uniform.
const ETA: [[f64; 5]; 2] = [[2.0, 0.5, -1.0, -0.3, 1.2], [-0.4, 1.0, 0.3, -1.5, 0.8]];
/// Each row's target: its loss is `‖z_b − t_b‖²`.
const TARGET: [[f64; 5]; 2] = [[0.1, 1.3, 0.7, 0.2, 0.9], [1.0, 0.0, 0.5, 0.9, 0.2]];
const K: usize = 2;
const SAMPLES: usize = 40_000;

/// `‖z − t_b‖²` per row, `[S, B]`.
fn row_losses(actions: &Tensor) -> Tensor {
    let target = Tensor::from_slice(TARGET.as_flattened()).view([2, 5]).to_kind(actions.kind());
    (actions - target).square().sum_dim_intlist(-1, false, None::<Kind>)
}

/// Every k-subset of `0..n` as a 0/1 vector.
fn subsets(n: usize, k: usize) -> Vec<Vec<f64>> {
    (0u32..1 << n)
        .filter(|m| m.count_ones() as usize == k)
        .map(|m| (0..n).map(|i| f64::from(m >> i & 1)).collect())
        .collect()
}

/// For the two rows' k-subset laws and losses `loss(z_0, z_1)` (one per group of `groups`
/// rows: `[f_0, f_1]` or `[F]`), the mean and the variance of each coordinate of one
/// sample's term of the estimator, `(f_r − c)(z_b − π_b) / R` for row `b` in group `r`,
/// by enumerating every pair of subsets: `[B·n]` each.
fn exact_moments(baseline: f64, groups: usize, loss: impl Fn(&[f64], &[f64]) -> Vec<f64>) -> (Vec<f64>, Vec<f64>) {
    let all = subsets(5, K);
    let energy = |b: usize, z: &[f64]| z.iter().zip(&ETA[b]).map(|(z, e)| z * e).sum::<f64>();
    let log_z: Vec<f64> = (0..2).map(|b| all.iter().map(|z| energy(b, z).exp()).sum::<f64>().ln()).collect();
    let probability = |b: usize, z: &[f64]| (energy(b, z) - log_z[b]).exp();
    let marginals: Vec<Vec<f64>> =
        (0..2).map(|b| (0..5).map(|i| all.iter().map(|z| probability(b, z) * z[i]).sum()).collect()).collect();
    let losses_per_sample = (2 / groups) as f64;
    let (mut mean, mut square) = (vec![0.0; 10], vec![0.0; 10]);
    for z0 in &all {
        for z1 in &all {
            let p = probability(0, z0) * probability(1, z1);
            let f = loss(z0, z1);
            for (b, z) in [z0, z1].into_iter().enumerate() {
                for i in 0..5 {
                    let term = (f[b / groups] - baseline) * (z[i] - marginals[b][i]) / losses_per_sample;
                    mean[b * 5 + i] += p * term;
                    square[b * 5 + i] += p * term * term;
                }
            }
        }
    }
    let variance = mean.iter().zip(&square).map(|(m, s)| s - m * m).collect();
    (mean, variance)
}

/// The gradient of the estimator's surrogate for the logits, drawn through the trait with
/// `SAMPLES` samples at a fixed seed, losses from `losses`: `[B·n]`.
fn estimate(estimator: &dyn GradientEstimator, losses: impl Fn(&Tensor) -> Tensor) -> Vec<f64> {
    let logits = Tensor::from_slice(ETA.as_flattened()).view([2, 5]).set_requires_grad(true);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    let draw = estimator.draw(&logits, K as i64, SAMPLES, &mut rng).unwrap();
    assert_eq!((draw.samples(), draw.actions().size()), (SAMPLES, vec![SAMPLES as i64, 2, 5]));
    let surrogate = estimator.surrogate_loss(&draw, &losses(draw.actions())).unwrap();
    surrogate.backward();
    Vec::<f64>::try_from(logits.grad().view([-1])).unwrap()
}

/// Whether every coordinate of `estimate` is within 5 standard errors of the mean of
/// `SAMPLES` terms of these moments (a false alarm has probability below 1e-5 over ten
/// coordinates).
fn within_five_standard_errors(estimate: &[f64], (mean, variance): &(Vec<f64>, Vec<f64>)) -> bool {
    estimate.iter().zip(mean.iter().zip(variance)).all(|(e, (m, v))| (e - m).abs() < 5.0 * (v / SAMPLES as f64).sqrt())
}

#[test]
fn an_estimator_of_our_own_matches_the_exact_gradient_through_the_trait() {
    let norm = |z: &[f64], b: usize| z.iter().zip(&TARGET[b]).map(|(z, t)| (z - t).powi(2)).sum::<f64>();
    let estimator: &dyn GradientEstimator = &Reinforce { baseline: 1.5 };

    // One loss per row.
    let moments = exact_moments(1.5, 1, |z0, z1| vec![norm(z0, 0), norm(z1, 1)]);
    let got = estimate(estimator, row_losses);
    assert!(within_five_standard_errors(&got, &moments), "{got:?} vs {:?}", moments.0);
    // The check can fail: the gradient with its sign flipped, or with the rows swapped, is
    // rejected.
    let flipped: Vec<f64> = got.iter().map(|g| -g).collect();
    let swapped: Vec<f64> = got[5..].iter().chain(&got[..5]).copied().collect();
    assert!(!within_five_standard_errors(&flipped, &moments) && !within_five_standard_errors(&swapped, &moments));

    // One loss per group of both rows, their product: both rows' log-probabilities score it.
    let moments = exact_moments(1.5, 2, |z0, z1| vec![norm(z0, 0) * norm(z1, 1)]);
    let got = estimate(estimator, |actions| row_losses(actions).prod_dim_int(1, true, None::<Kind>));
    assert!(within_five_standard_errors(&got, &moments), "{got:?} vs {:?}", moments.0);
}

#[test]
fn a_draw_must_fit_its_logits() {
    let logits = Tensor::from_slice(ETA.as_flattened()).view([2, 5]);
    let actions = |shape: [i64; 3]| Tensor::zeros(shape, (Kind::Double, tch::Device::Cpu));
    let draw = Draw::new(actions([3, 2, 5]), &logits, 2).unwrap();
    assert_eq!((draw.samples(), draw.k(), draw.logits().size()), (3, 2, vec![2, 5]));
    for shape in [[3, 1, 5], [3, 2, 4], [0, 2, 5]] {
        let error = Draw::new(actions(shape), &logits, 2).unwrap_err();
        assert!(matches!(error, EstimatorError::DrawShape { .. }), "{shape:?}: {error}");
    }
    assert!(matches!(Draw::new(actions([3, 2, 5]), &logits, 6), Err(EstimatorError::Distribution(_))));
    // Losses of the wrong shape are refused by the draw's check.
    let losses = Tensor::zeros([3, 3], (Kind::Double, tch::Device::Cpu));
    assert!(matches!(draw.groups(&losses), Err(EstimatorError::LossShape { .. })));
}
