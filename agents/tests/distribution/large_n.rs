//! Large n against the double-double reference: `log e_k` relative error <= 1e-12 and
//! marginals absolute error <= 1e-12, logits anywhere in [-50, 50].

use super::reference::{self, EXACT, close, normal_logits, uniform_logits};
use sfess_agents::{ConditionalPoisson, Normalizer, log_binomial};
use tch::Tensor;

fn policy(eta: &[f64], k: usize, normalizer: Normalizer) -> ConditionalPoisson {
    let logits = Tensor::from_slice(eta).view([1, eta.len() as i64]);
    ConditionalPoisson::with_normalizer(&logits, k as i64, normalizer).unwrap()
}

/// Items to check marginals at: the extremes of the logits and evenly spaced ranks.
fn probe_indices(eta: &[f64], count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..eta.len()).collect();
    order.sort_by(|&a, &b| eta[a].total_cmp(&eta[b]));
    (0..count).map(|r| order[r * (eta.len() - 1) / (count - 1)]).collect()
}

/// Both exact backends against the reference: the normaliser and the probed marginals.
fn check(eta: &[f64], k: usize, probes: usize) {
    for normalizer in EXACT {
        check_with(eta, k, probes, normalizer);
    }
}

fn check_with(eta: &[f64], k: usize, probes: usize, normalizer: Normalizer) {
    let n = eta.len();
    let cp = policy(eta, k, normalizer);
    let z = cp.log_normalizer_values()[0];
    let pi = cp.marginal_values();
    let sum: f64 = pi.iter().sum();
    assert!((sum - k as f64).abs() <= 1e-12 * n as f64, "{normalizer:?} n={n} k={k}: Σπ = {sum}");
    if k == 0 || k == n {
        let expected = if k == 0 { 0.0 } else { eta.iter().sum() };
        assert!(close(z, expected, 1e-12));
        assert!(pi.iter().all(|&p| p == if k == 0 { 0.0 } else { 1.0 }));
        return;
    }
    let z_ref = reference::log_normalizer(eta, k);
    assert!(close(z, z_ref, 1e-12), "{normalizer:?} n={n} k={k}: log e_k = {z} vs reference {z_ref}");
    if probes > 0 {
        let indices = probe_indices(eta, probes);
        for (&i, expected) in indices.iter().zip(reference::marginals(eta, k, &indices)) {
            assert!(
                (pi[i] - expected).abs() <= 1e-12,
                "{normalizer:?} n={n} k={k} item {i}: π = {} vs reference {expected}",
                pi[i]
            );
        }
    }
}

#[test]
fn every_k_at_n_60_all_marginals() {
    for eta in [uniform_logits(60, 50.0, 1), normal_logits(60, 2)] {
        for k in 0..=60 {
            check(&eta, k, 60);
        }
    }
}

#[test]
fn every_k_at_n_300() {
    let eta = uniform_logits(300, 50.0, 3);
    for k in 0..=300 {
        check(&eta, k, if k % 25 == 1 { 5 } else { 0 });
    }
}

#[test]
fn n_10000_logits_in_plus_minus_50() {
    let eta = uniform_logits(10_000, 50.0, 4);
    for k in [0, 1, 2, 37, 1000, 5000, 9000, 9999, 10_000] {
        check(&eta, k, 6);
    }
}

#[test]
fn n_10000_normal_logits() {
    let eta = normal_logits(10_000, 5);
    for k in [1, 50, 3000, 9950] {
        check(&eta, k, 4);
    }
}

/// Equal logits: the uniform law, `e_k(1, …, 1) = C(n, k)` and `π = k/n` exactly.
#[test]
fn equal_logits_give_the_binomial_coefficient() {
    for (normalizer, (n, k, x)) in EXACT
        .into_iter()
        .flat_map(|b| [(10_000usize, 5000usize, 0.0), (10_000, 3, 50.0), (2000, 1999, -50.0)].map(|c| (b, c)))
    {
        let eta = vec![x; n];
        let cp = policy(&eta, k, normalizer);
        let expected = log_binomial(n, k) + k as f64 * x;
        assert!(close(cp.log_normalizer_values()[0], expected, 1e-12), "{normalizer:?} n={n} k={k}");
        let target = k as f64 / n as f64;
        assert!(cp.marginal_values().iter().all(|p| (p - target).abs() <= 1e-12));
        assert!(cp.kl_to_uniform_values()[0] <= 1e-9 * expected.abs().max(1.0));
    }
}
