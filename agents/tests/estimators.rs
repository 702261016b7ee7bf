//! The gradient estimators: unbiasedness (and its failure with Gumbel top-k), the
//! leave-one-out baseline by hand, SIMPLE against enumeration, relaxations, I-MLE by
//! hand, and gradients reaching a network and an environment's parameters.

#[path = "distribution/reference.rs"]
#[allow(dead_code)] // shared with the distribution tests, which use all of it
mod reference;

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use reference::enumerate;
use sfess_agents::{EstimatorError, GradientEstimator, Imle, ImleNoise, RelaxedTopK, Sampler, ScoreFunction, Simple};
use tch::{Kind, Tensor, nn, nn::Module};

/// paper.md's logits where Gumbel top-k and the conditional Poisson law differ.
const ETA: [f64; 5] = [2.0, 0.5, -1.0, -0.3, 1.2];
const TARGET: [f64; 5] = [0.1, 1.3, 0.7, 0.2, 0.9];
const K: i64 = 2;

/// f(z) = ||z − b||² per sample, [S, B], differentiable in z.
fn toy_loss(actions: &Tensor) -> Tensor {
    let b = Tensor::from_slice(&TARGET).to_kind(actions.kind());
    (actions - b).square().sum_dim_intlist(-1, false, None::<Kind>)
}

/// The exact gradient Σ_z p(z) f(z) (z − π), by enumeration.
fn exact_gradient() -> Vec<f64> {
    let exact = enumerate(&ETA, K as usize);
    let mut gradient = vec![0.0; ETA.len()];
    for (s, lp) in exact.subsets.iter().zip(&exact.log_probs) {
        let z: Vec<f64> = (0..ETA.len()).map(|i| if s.contains(&i) { 1.0 } else { 0.0 }).collect();
        let f: f64 = z.iter().zip(&TARGET).map(|(a, b)| (a - b).powi(2)).sum();
        for i in 0..ETA.len() {
            gradient[i] += lp.exp() * f * (z[i] - exact.marginals[i]);
        }
    }
    gradient
}

/// `rows` independent gradient estimates at the same logits, [rows, n] (each row's
/// gradient times the batch size, since the surrogate averages over rows).
fn estimates(estimator: &dyn GradientEstimator, rows: i64, samples: usize, seed: u64) -> Tensor {
    let logits = Tensor::from_slice(&ETA).view([1, 5]).repeat([rows, 1]).set_requires_grad(true);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let draw = estimator.draw(&logits, K, samples, &mut rng).unwrap();
    let losses = toy_loss(draw.actions());
    estimator.surrogate_loss(&draw, &losses).unwrap().backward();
    logits.grad() * rows as f64
}

/// Largest |mean − exact| in units of the mean's standard error, over coordinates.
fn largest_z_score(estimates: &Tensor) -> f64 {
    let rows = estimates.size()[0] as f64;
    let mean = Vec::<f64>::try_from(estimates.mean_dim(0, false, Kind::Double)).unwrap();
    let sd = Vec::<f64>::try_from(estimates.std_dim(0, true, false)).unwrap();
    exact_gradient()
        .iter()
        .zip(mean.iter().zip(&sd))
        .map(|(e, (m, s))| (m - e).abs() / (s / rows.sqrt()))
        .fold(0.0, f64::max)
}

#[test]
fn score_function_estimators_are_unbiased_with_exact_samples_only() {
    // Five coordinates, each within 4.5 standard errors: a false alarm has probability < 4e-5.
    for (estimator, samples) in
        [(ScoreFunction::plain(Sampler::Exact), 1), (ScoreFunction::leave_one_out(Sampler::Exact), 4)]
    {
        let z = largest_z_score(&estimates(&estimator, 200_000, samples, 1));
        assert!(z < 4.5, "{}: {z:.1} standard errors from the exact gradient", estimator.name());
    }
    for (estimator, samples) in
        [(ScoreFunction::plain(Sampler::GumbelTopK), 1), (ScoreFunction::leave_one_out(Sampler::GumbelTopK), 4)]
    {
        let z = largest_z_score(&estimates(&estimator, 200_000, samples, 2));
        assert!(z > 8.0, "{} with Gumbel top-k: bias not detected ({z:.1} standard errors)", estimator.name());
    }
}

/// S = 2: b_1 = f_2, b_2 = f_1. S = 3: b_1 = (f_2 + f_3)/2, …
#[test]
fn leave_one_out_baseline_excludes_the_sample_itself() {
    let two = Tensor::from_slice(&[1.0f64, 10.0, 3.0, 20.0]).view([2, 2]);
    let b = Vec::<f64>::try_from(ScoreFunction::baselines(&two).unwrap().view([-1])).unwrap();
    assert_eq!(b, [3.0, 20.0, 1.0, 10.0]);
    let three = Tensor::from_slice(&[1.0f64, 2.0, 4.0]).view([3, 1]);
    let b = Vec::<f64>::try_from(ScoreFunction::baselines(&three).unwrap().view([-1])).unwrap();
    assert_eq!(b, [3.0, 2.5, 1.5]);
    let one = Tensor::from_slice(&[1.0f64]).view([1, 1]);
    assert!(matches!(ScoreFunction::baselines(&one), Err(EstimatorError::TooFewSamples { minimum: 2, .. })));
}

/// With S = 2 the estimate is ((f_1 − f_2)(z_1 − π) + (f_2 − f_1)(z_2 − π))/2 = (f_1 − f_2)(z_1 − z_2)/2.
#[test]
fn leave_one_out_estimate_by_hand() {
    let logits = Tensor::from_slice(&ETA).view([1, 5]).set_requires_grad(true);
    let estimator = ScoreFunction::leave_one_out(Sampler::Exact);
    let draw = estimator.draw(&logits, K, 2, &mut Xoshiro256PlusPlus::seed_from_u64(3)).unwrap();
    let losses = toy_loss(draw.actions());
    estimator.surrogate_loss(&draw, &losses).unwrap().backward();
    let f = Vec::<f64>::try_from(losses.view([-1])).unwrap();
    let z = draw.actions().view([2, 5]);
    let expected = (z.get(0) - z.get(1)) * ((f[0] - f[1]) / 2.0);
    assert!(logits.grad().view([5]).allclose(&expected, 1e-12, 1e-12, false));
    let too_few = estimator.draw(&logits, K, 1, &mut Xoshiro256PlusPlus::seed_from_u64(3)).unwrap_err();
    assert!(too_few.to_string().contains("at least 2 samples"), "{too_few}");
}

/// SIMPLE's gradient is Cov(z) ∂f/∂z, with Cov(z) from enumeration.
#[test]
fn simple_backward_is_the_covariance_times_the_loss_gradient() {
    let logits = Tensor::from_slice(&ETA).view([1, 5]).set_requires_grad(true);
    let draw = Simple::new().draw(&logits, K, 3, &mut Xoshiro256PlusPlus::seed_from_u64(4)).unwrap();
    let losses = toy_loss(draw.actions());
    Simple::new().surrogate_loss(&draw, &losses).unwrap().backward();
    // ∂f_s/∂z_s = 2 (z_s − b); the mean over the 3 samples.
    let z = Vec::<f64>::try_from(draw.actions().detach().view([-1])).unwrap();
    let v: Vec<f64> = (0..5).map(|i| (0..3).map(|s| 2.0 * (z[s * 5 + i] - TARGET[i])).sum::<f64>() / 3.0).collect();
    let exact = enumerate(&ETA, K as usize);
    let mut expected = [0.0; 5];
    for (s, lp) in exact.subsets.iter().zip(&exact.log_probs) {
        let c: Vec<f64> = (0..5).map(|i| if s.contains(&i) { 1.0 } else { 0.0 } - exact.marginals[i]).collect();
        let projection: f64 = c.iter().zip(&v).map(|(a, b)| a * b).sum();
        for i in 0..5 {
            expected[i] += lp.exp() * c[i] * projection;
        }
    }
    let got = Vec::<f64>::try_from(logits.grad().view([-1])).unwrap();
    for (a, b) in got.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-12, "{got:?} vs {expected:?}");
    }
    // The forward is exact and k-hot.
    assert!(bool::try_from(draw.actions().sum_dim_intlist(-1, false, Kind::Double).eq(2.0).all()).unwrap());
}

#[test]
fn relaxed_top_k_approaches_hard_top_k_at_low_temperature_and_stgs_is_k_hot() {
    let logits = Tensor::from_slice(&ETA).view([1, 5]);
    let gs = RelaxedTopK::new(0.01, false).unwrap();
    let draw = gs.draw(&logits, K, 200, &mut Xoshiro256PlusPlus::seed_from_u64(5)).unwrap();
    let relaxed = draw.actions();
    let sums = relaxed.sum_dim_intlist(-1, false, Kind::Double);
    assert!(sums.allclose(&(sums.ones_like() * 2.0), 1e-9, 1e-9, false), "relaxed vectors sum to k");
    let hard = relaxed.topk(2, -1, true, false).1;
    let hot = relaxed.zeros_like().scatter_value(-1, &hard, 1.0);
    // Mean distance to the hard top-k (a sample whose two best keys are within τ stays split).
    let gap = (relaxed - &hot).abs().mean(Kind::Double).double_value(&[]);
    assert!(gap < 0.01, "τ = 0.01 is {gap} from k-hot on average");
    let warm =
        RelaxedTopK::new(1.0, false).unwrap().draw(&logits, K, 200, &mut Xoshiro256PlusPlus::seed_from_u64(5)).unwrap();
    let warm_gap = (warm.actions() - warm.actions().round()).abs().mean(Kind::Double).double_value(&[]);
    assert!(warm_gap > 0.1, "τ = 1 should be visibly relaxed ({warm_gap})");

    let stgs = RelaxedTopK::new(0.5, true).unwrap();
    let leaf = logits.set_requires_grad(true);
    let draw = stgs.draw(&leaf, K, 50, &mut Xoshiro256PlusPlus::seed_from_u64(6)).unwrap();
    let a = draw.actions();
    assert!(bool::try_from(a.eq(0.0).logical_or(&a.eq(1.0)).all()).unwrap(), "STGS forward is k-hot");
    assert!(bool::try_from(a.sum_dim_intlist(-1, false, Kind::Double).eq(2.0).all()).unwrap());
    stgs.surrogate_loss(&draw, &toy_loss(a)).unwrap().backward();
    assert!(leaf.grad().abs().sum(Kind::Double).double_value(&[]) > 0.0, "STGS back-propagates");
    assert!(RelaxedTopK::new(0.0, false).is_err() && RelaxedTopK::new(f64::NAN, true).is_err());
}

/// Zero noise temperature, η = [3, 2, 1, 0], k = 2, f(z) = c · z with c = [0.05, 0, 0, −0.3]:
/// z = topk(η) = {0, 1}; with λ = 10 the target keys are η − λc = [2.5, 2, 1, 3] → {0, 3};
/// the gradient is z − z' = [0, 1, 0, −1].
#[test]
fn imle_by_hand() {
    let logits = Tensor::from_slice(&[3.0f64, 2.0, 1.0, 0.0]).view([1, 4]).set_requires_grad(true);
    let imle = Imle::new(10.0, 0.0, ImleNoise::Gumbel).unwrap();
    let draw = imle.draw(&logits, 2, 1, &mut Xoshiro256PlusPlus::seed_from_u64(0)).unwrap();
    assert_eq!(Vec::<f64>::try_from(draw.actions().detach().view([-1])).unwrap(), [1.0, 1.0, 0.0, 0.0]);
    let c = Tensor::from_slice(&[0.05f64, 0.0, 0.0, -0.3]);
    let losses = (draw.actions() * c).sum_dim_intlist(-1, false, None::<Kind>);
    let surrogate = imle.surrogate_loss(&draw, &losses).unwrap();
    assert!((surrogate.double_value(&[]) - 0.05).abs() < 1e-15, "the surrogate's value is mean f");
    surrogate.backward();
    assert_eq!(Vec::<f64>::try_from(logits.grad().view([-1])).unwrap(), [0.0, 1.0, 0.0, -1.0]);
    assert!(Imle::new(0.0, 1.0, ImleNoise::Gumbel).is_err());
    assert!(Imle::new(1.0, 1.0, ImleNoise::SumOfGamma { steps: 0 }).is_err());
}

/// Sum-of-Gamma noise gives k-hot samples and does perturb the top-k.
#[test]
fn imle_sum_of_gamma_noise_draws_k_hot_samples() {
    let logits = Tensor::from_slice(&ETA).view([1, 5]);
    let imle = Imle::new(10.0, 1.0, ImleNoise::SumOfGamma { steps: 10 }).unwrap();
    let draw = imle.draw(&logits, K, 500, &mut Xoshiro256PlusPlus::seed_from_u64(8)).unwrap();
    let a = draw.actions().detach();
    assert!(bool::try_from(a.sum_dim_intlist(-1, false, Kind::Double).eq(2.0).all()).unwrap());
    let distinct = a.view([500, 5]).unique_dim(0, false, false, false).0.size()[0];
    assert!(distinct > 1, "the perturbation changes the top-k");
}

#[test]
fn estimators_that_need_a_gradient_refuse_black_box_losses() {
    let logits = Tensor::from_slice(&ETA).view([1, 5]).set_requires_grad(true);
    let estimators: Vec<Box<dyn GradientEstimator>> = vec![
        Box::new(RelaxedTopK::new(0.5, false).unwrap()),
        Box::new(RelaxedTopK::new(0.5, true).unwrap()),
        Box::new(Imle::new(10.0, 1.0, ImleNoise::Gumbel).unwrap()),
        Box::new(Simple::new()),
    ];
    for estimator in estimators {
        let draw = estimator.draw(&logits, K, 2, &mut Xoshiro256PlusPlus::seed_from_u64(0)).unwrap();
        let black_box = toy_loss(&draw.actions().detach());
        let err = estimator.surrogate_loss(&draw, &black_box).unwrap_err();
        assert!(matches!(err, EstimatorError::NotDifferentiable { .. }), "{}: {err}", estimator.name());
        assert!(err.to_string().contains("sfess and sfess-vr work"));
    }
    for estimator in [ScoreFunction::plain(Sampler::Exact), ScoreFunction::leave_one_out(Sampler::Exact)] {
        let draw = estimator.draw(&logits, K, 2, &mut Xoshiro256PlusPlus::seed_from_u64(0)).unwrap();
        let black_box = toy_loss(draw.actions()).detach();
        assert!(estimator.surrogate_loss(&draw, &black_box).is_ok());
        let wrong_shape = Tensor::zeros([3, 1], (Kind::Double, tch::Device::Cpu));
        assert!(matches!(estimator.surrogate_loss(&draw, &wrong_shape), Err(EstimatorError::LossShape { .. })));
    }
}

/// One backward pass trains both the network that made the logits (through the estimator)
/// and the environment's own parameters (pathwise through f), for every estimator.
#[test]
fn gradients_reach_the_policy_network_and_the_environments_parameters() {
    let estimators: Vec<(Box<dyn GradientEstimator>, usize)> = vec![
        (Box::new(ScoreFunction::plain(Sampler::Exact)), 1),
        (Box::new(ScoreFunction::leave_one_out(Sampler::Exact)), 4),
        (Box::new(RelaxedTopK::new(0.5, false).unwrap()), 1),
        (Box::new(RelaxedTopK::new(0.5, true).unwrap()), 1),
        (Box::new(Imle::new(10.0, 1.0, ImleNoise::Gumbel).unwrap()), 1),
        (Box::new(Simple::new()), 2),
    ];
    for (estimator, samples) in estimators {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let policy = nn::seq()
            .add(nn::linear(vs.root() / "l1", 3, 8, Default::default()))
            .add_fn(|x| x.relu())
            .add(nn::linear(vs.root() / "l2", 8, 5, Default::default()));
        let decoder = vs.root().randn("decoder", &[5], 0.0, 1.0);
        let x = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 1.0, 0.0, -0.5]).view([2, 3]);
        let logits = policy.forward(&x);
        let draw = estimator.draw(&logits, K, samples, &mut Xoshiro256PlusPlus::seed_from_u64(1)).unwrap();
        // An environment with its own parameter: f(z) = (decoder · z − 1)².
        let losses = ((draw.actions() * &decoder).sum_dim_intlist(-1, false, None::<Kind>) - 1.0).square();
        estimator.surrogate_loss(&draw, &losses).unwrap().backward();
        for (name, variable) in vs.variables() {
            let norm = variable.grad().abs().sum(Kind::Double).double_value(&[]);
            assert!(norm > 0.0, "{}: no gradient reached {name}", estimator.name());
        }
    }
}

/// One loss per group of rows (a VAE's d subsets per image): with S = 2 the leave-one-out
/// estimate for a row of image b is (f_{0,b} − f_{1,b})(z_{0,row} − z_{1,row})/2, divided by
/// the number of losses per sample R.
#[test]
fn grouped_losses_are_shared_by_their_rows() {
    let eta: Vec<f64> = ETA.iter().cycle().take(20).copied().collect();
    let logits = Tensor::from_slice(&eta).view([4, 5]).set_requires_grad(true);
    let estimator = ScoreFunction::leave_one_out(Sampler::Exact);
    let draw = estimator.draw(&logits, K, 2, &mut Xoshiro256PlusPlus::seed_from_u64(12)).unwrap();
    // Image 0 owns rows 0-1, image 1 rows 2-3.
    let losses = toy_loss(draw.actions()).view([2, 2, 2]).sum_dim_intlist(-1, false, None::<Kind>);
    estimator.surrogate_loss(&draw, &losses).unwrap().backward();
    let f = Vec::<f64>::try_from(losses.view([-1])).unwrap(); // [f_{0,0}, f_{0,1}, f_{1,0}, f_{1,1}]
    let z = draw.actions().detach();
    for row in 0..4i64 {
        let image = (row / 2) as usize;
        let expected = (z.get(0).get(row) - z.get(1).get(row)) * ((f[image] - f[2 + image]) / 2.0 / 2.0);
        assert!(logits.grad().get(row).allclose(&expected, 1e-12, 1e-12, false), "row {row}");
    }
    let bad = Tensor::zeros([2, 3], (Kind::Double, tch::Device::Cpu));
    assert!(matches!(estimator.surrogate_loss(&draw, &bad), Err(EstimatorError::LossShape { .. })));
}

/// A draw handed to another estimator's surrogate is an error, not a panic.
#[test]
fn a_draw_from_another_estimator_is_refused() {
    let logits = Tensor::from_slice(&ETA).view([1, 5]).set_requires_grad(true);
    let draw =
        RelaxedTopK::new(0.5, false).unwrap().draw(&logits, K, 2, &mut Xoshiro256PlusPlus::seed_from_u64(0)).unwrap();
    let losses = toy_loss(draw.actions());
    for estimator in [
        Box::new(ScoreFunction::plain(Sampler::Exact)) as Box<dyn GradientEstimator>,
        Box::new(Simple::new()),
        Box::new(Imle::new(10.0, 1.0, ImleNoise::Gumbel).unwrap()),
    ] {
        let err = estimator.surrogate_loss(&draw, &losses).unwrap_err();
        assert!(matches!(err, EstimatorError::ForeignDraw { .. }), "{}: {err}", estimator.name());
    }
}
