//! `log_prob` back-propagates the exact score `z − π` into whatever made the logits.

use super::reference::{EXACT, normal_logits};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use sfess_agents::{ConditionalPoisson, Normalizer, Sampler};
use tch::{Kind, Tensor, nn, nn::Module};

#[test]
fn gradient_of_log_prob_is_z_minus_pi_in_f32_and_f64() {
    for normalizer in EXACT {
        gradient_of_log_prob_is_z_minus_pi_in_f32_and_f64_with(normalizer);
    }
}

fn gradient_of_log_prob_is_z_minus_pi_in_f32_and_f64_with(normalizer: Normalizer) {
    for kind in [Kind::Double, Kind::Float] {
        let eta = normal_logits(24, 1);
        let logits = Tensor::from_slice(&eta).view([2, 12]).to_kind(kind).set_requires_grad(true);
        let cp = ConditionalPoisson::with_normalizer(&logits, 4, normalizer).unwrap();
        let z = cp.sample(3, Sampler::Exact, &mut Xoshiro256PlusPlus::seed_from_u64(2)).unwrap();
        cp.log_prob(&z).unwrap().sum(Kind::Double).backward();
        let expected =
            (z.to_kind(Kind::Double) - cp.marginals().to_kind(Kind::Double)).sum_dim_intlist(0, false, None::<Kind>);
        let tol = if kind == Kind::Double { 1e-12 } else { 1e-5 };
        let grad = logits.grad().to_kind(Kind::Double);
        assert!(grad.allclose(&expected, 0.0, tol, false), "{kind:?}");
        assert_eq!(cp.log_prob(&z).unwrap().kind(), kind);
    }
}

/// The gradient reaches the parameters of a small network that produced the logits:
/// d/dW Σ log p(z) = Σ (z − π) xᵀ for a linear layer logits = x Wᵀ.
#[test]
fn gradient_reaches_a_network_that_produced_the_logits() {
    for normalizer in EXACT {
        gradient_reaches_a_network_that_produced_the_logits_with(normalizer);
    }
}

fn gradient_reaches_a_network_that_produced_the_logits_with(normalizer: Normalizer) {
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let layer = nn::linear(vs.root(), 3, 6, nn::LinearConfig { bias: false, ..Default::default() });
    let x = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 1.0, 0.0, -0.5]).view([2, 3]);
    let logits = layer.forward(&x);
    let cp = ConditionalPoisson::with_normalizer(&logits, 2, normalizer).unwrap();
    let z = cp.sample(4, Sampler::Exact, &mut Xoshiro256PlusPlus::seed_from_u64(9)).unwrap();
    cp.log_prob(&z).unwrap().sum(Kind::Float).backward();
    let score = (z - cp.marginals()).sum_dim_intlist(0, false, None::<Kind>); // [B, n]
    let expected = score.transpose(0, 1).matmul(&x); // [n, 3]
    assert!(layer.ws.grad().allclose(&expected, 1e-5, 1e-5, false));
}

#[test]
fn log_normalizer_gradient_is_the_marginals() {
    for normalizer in EXACT {
        log_normalizer_gradient_is_the_marginals_with(normalizer);
    }
}

fn log_normalizer_gradient_is_the_marginals_with(normalizer: Normalizer) {
    let logits = Tensor::from_slice(&normal_logits(9, 4)).view([1, 9]).set_requires_grad(true);
    let cp = ConditionalPoisson::with_normalizer(&logits, 3, normalizer).unwrap();
    cp.log_normalizer().sum(Kind::Double).backward();
    assert!(logits.grad().allclose(&cp.marginals(), 0.0, 1e-15, false));
    assert!((cp.log_normalizer().double_value(&[0]) - cp.log_normalizer_values()[0]).abs() == 0.0);
}

/// The gradients of the entropy and of the KL to uniform, against central finite
/// differences of their enumerated values.
#[test]
fn entropy_and_kl_gradients_match_finite_differences() {
    for normalizer in EXACT {
        entropy_and_kl_gradients_match_finite_differences_with(normalizer);
    }
}

fn entropy_and_kl_gradients_match_finite_differences_with(normalizer: Normalizer) {
    use super::reference::enumerate;
    let eta = normal_logits(7, 21);
    let logits = Tensor::from_slice(&eta).view([1, 7]).set_requires_grad(true);
    let cp = ConditionalPoisson::with_normalizer(&logits, 3, normalizer).unwrap();
    let kl = cp.kl_to_uniform().unwrap();
    assert!((kl.double_value(&[0]) - cp.kl_to_uniform_values()[0]).abs() < 1e-15);
    kl.sum(Kind::Double).backward();
    let grad = Vec::<f64>::try_from(logits.grad().view([-1])).unwrap();
    let h = 1e-5;
    for i in 0..7 {
        let mut up = eta.clone();
        let mut down = eta.clone();
        up[i] += h;
        down[i] -= h;
        // KL = log C(n, k) − H: its derivative is minus that of the entropy.
        let numeric = -(enumerate(&up, 3).entropy - enumerate(&down, 3).entropy) / (2.0 * h);
        assert!((grad[i] - numeric).abs() < 1e-8, "item {i}: {} vs {numeric}", grad[i]);
    }
    let logits = Tensor::from_slice(&eta).view([1, 7]).set_requires_grad(true);
    let cp = ConditionalPoisson::with_normalizer(&logits, 3, normalizer).unwrap();
    cp.entropy().unwrap().sum(Kind::Double).backward();
    let entropy_grad = Vec::<f64>::try_from(logits.grad().view([-1])).unwrap();
    for (a, b) in entropy_grad.iter().zip(&grad) {
        assert!((a + b).abs() < 1e-12);
    }
}
