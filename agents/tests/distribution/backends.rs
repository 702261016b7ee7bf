//! The parallel backend against the stable one on the paper's shapes: the same law to
//! rounding (1e-12), through the same public API, on CPU tensors.

use super::reference::{close, normal_logits};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use sfess_agents::{ConditionalPoisson, Normalizer, Sampler};
use tch::{Kind, Tensor};

/// `(rows, n, k, scale, offset)`: logits `scale · N(0, 1) + offset` per task.
const PAPER_SHAPES: [(i64, i64, i64, f64, f64); 6] = [
    (128, 128, 10, 1.5, -3.0), // k-NN: minus distances in a 2-D embedding
    (1, 784, 50, 1.0, 0.0),    // feature selection, k = 50
    (1, 784, 30, 1.0, 0.0),    // feature selection, k = 30
    (1280, 10, 5, 2.0, 0.0),   // VAE (10, 10, 5): 128 images × 10 groups
    (2560, 20, 10, 2.0, 0.0),  // VAE (20, 20, 10)
    (4, 1000, 37, 8.0, 0.0),   // a padded tree (1000 → 1024 leaves), spread logits
];

fn both(rows: i64, n: i64, k: i64, scale: f64, offset: f64) -> (ConditionalPoisson, ConditionalPoisson) {
    let eta: Vec<f64> =
        normal_logits((rows * n) as usize, (rows + n + k) as u64).iter().map(|x| scale * x + offset).collect();
    let logits = Tensor::from_slice(&eta).view([rows, n]);
    let stable = ConditionalPoisson::with_normalizer(&logits, k, Normalizer::Stable).unwrap();
    let parallel = ConditionalPoisson::with_normalizer(&logits, k, Normalizer::Parallel).unwrap();
    (stable, parallel)
}

#[test]
fn normaliser_marginals_entropy_and_kl_agree_with_the_stable_backend() {
    for (rows, n, k, scale, offset) in PAPER_SHAPES {
        let (stable, parallel) = both(rows, n, k, scale, offset);
        for (a, b) in parallel.log_normalizer_values().iter().zip(stable.log_normalizer_values()) {
            assert!(close(*a, b, 1e-12), "B={rows} n={n} k={k}: log e_k {a} vs {b}");
        }
        for (a, b) in parallel.marginal_values().iter().zip(stable.marginal_values()) {
            assert!((a - b).abs() <= 1e-12, "B={rows} n={n} k={k}: π {a} vs {b}");
        }
        for (a, b) in parallel.entropy_values().iter().zip(stable.entropy_values()) {
            assert!(close(*a, b, 1e-12), "B={rows} n={n} k={k}: H {a} vs {b}");
        }
        for (a, b) in parallel.log_prob_sum_eq_k_values().iter().zip(stable.log_prob_sum_eq_k_values()) {
            assert!(close(*a, b, 1e-12), "B={rows} n={n} k={k}: log P(Σb = k) {a} vs {b}");
        }
        let sums = parallel.marginals().sum_dim_intlist(-1, false, Kind::Double);
        let worst = (sums - k as f64).abs().max().double_value(&[]);
        assert!(worst <= 1e-12 * n as f64, "B={rows} n={n} k={k}: |Σπ − k| = {worst}");
    }
}

#[test]
fn covariance_vector_products_agree_with_the_stable_backend() {
    for (rows, n, k, scale, offset) in PAPER_SHAPES {
        let (stable, parallel) = both(rows, n, k, scale, offset);
        let v = Tensor::from_slice(&normal_logits((rows * n) as usize, 99)).view([rows, n]);
        let a = parallel.covariance_vector_product(&v).unwrap();
        let b = stable.covariance_vector_product(&v).unwrap();
        let scale = b.abs().max().double_value(&[]).max(1.0);
        let error = (&a - &b).abs().max().double_value(&[]);
        assert!(error <= 1e-12 * scale, "B={rows} n={n} k={k}: |Δ Cov v| = {error} (scale {scale})");
        // Σ_i (Cov(z) v)_i = Cov(Σ z, z · v) = 0.
        let sums = a.sum_dim_intlist(-1, false, Kind::Double).abs().max().double_value(&[]);
        assert!(sums <= 1e-12 * scale * n as f64, "B={rows} n={n} k={k}: Σ Cov v = {sums}");
    }
}

/// The score-function estimator's ingredients on the k-NN shape: samples are k-hot, their
/// inclusion frequencies match the marginals within 5 standard errors plus 5 counts (the
/// normal approximation fails for rare items: a Poisson count of mean λ ≤ 1 exceeds λ + 5
/// with probability below 1e-4), and the gradient of
/// `log p` through the parallel backend is `z − π`.
#[test]
fn samples_and_gradients_on_the_knn_shape() {
    let (rows, n, k) = (128i64, 128i64, 10i64);
    let eta: Vec<f64> = normal_logits((rows * n) as usize, 5).iter().map(|x| 1.5 * x - 3.0).collect();
    let logits = Tensor::from_slice(&eta).view([rows, n]).to_kind(Kind::Float).set_requires_grad(true);
    let cp = ConditionalPoisson::with_normalizer(&logits, k, Normalizer::Parallel).unwrap();
    let draws = 400;
    let z = cp.sample(draws, Sampler::Exact, &mut Xoshiro256PlusPlus::seed_from_u64(1)).unwrap();
    assert_eq!((z.size(), z.kind()), (vec![draws as i64, rows, n], Kind::Float));
    let binary = z.eq(0.0).logical_or(&z.eq(1.0)).all();
    let sizes = z.sum_dim_intlist(-1, false, Kind::Double).eq(k as f64).all();
    assert!(bool::try_from(binary).unwrap() && bool::try_from(sizes).unwrap(), "samples are not k-hot");
    let frequency = z.mean_dim(0, false, Kind::Double);
    let pi = cp.marginals().to_kind(Kind::Double);
    let se = (&pi * (&pi * -1.0 + 1.0) / draws as f64).sqrt();
    let excess = ((&frequency - &pi).abs() - se * 5.0 - 5.0 / draws as f64).max().double_value(&[]);
    assert!(excess <= 0.0, "a frequency is more than 5 standard errors (+ 5 counts) from its marginal: {excess}");
    cp.log_prob(&z).unwrap().sum(Kind::Float).backward();
    let expected = (z.to_kind(Kind::Double) - pi.unsqueeze(0)).sum_dim_intlist(0, false, Kind::Double);
    let grad = logits.grad().to_kind(Kind::Double);
    assert!(grad.allclose(&expected, 1e-4, 1e-3, false), "∇ log p ≠ z − π");
}

/// `new` picks the device's default: the stable backend for CPU logits.
#[test]
fn default_backend_per_device() {
    let logits = Tensor::from_slice(&[0.1f64, -2.0, 1.5, 0.3]).view([1, 4]);
    assert_eq!(ConditionalPoisson::new(&logits, 2).unwrap().normalizer(), Normalizer::Stable);
    assert_eq!(Normalizer::default_for(tch::Device::Cuda(0)), Normalizer::Parallel);
    assert_eq!(Normalizer::default_for(tch::Device::Cpu), Normalizer::Stable);
}

/// `Auto` is the device's default, chosen where the law is built: the distribution names
/// the backend it used, and gives the same law as that backend.
#[test]
fn auto_is_the_devices_backend() {
    let logits = Tensor::from_slice(&[0.1f64, -2.0, 1.5, 0.3]).view([1, 4]);
    let auto = ConditionalPoisson::with_normalizer(&logits, 2, Normalizer::Auto).unwrap();
    let stable = ConditionalPoisson::with_normalizer(&logits, 2, Normalizer::Stable).unwrap();
    assert_eq!(auto.normalizer(), Normalizer::Stable);
    assert_eq!(auto.marginal_values(), stable.marginal_values());
    assert_eq!(auto.log_normalizer_values(), stable.log_normalizer_values());
    assert_eq!(Normalizer::Auto.resolve(tch::Device::Cuda(0)), Normalizer::Parallel);
    assert_eq!(Normalizer::Auto.resolve(tch::Device::Cpu), Normalizer::Stable);
    for backend in Normalizer::ALL {
        assert_eq!(backend.resolve(tch::Device::Cuda(0)), backend);
        assert_eq!(backend.resolve(tch::Device::Cpu), backend);
    }
}
