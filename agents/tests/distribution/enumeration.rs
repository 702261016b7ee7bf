//! Every quantity against brute-force enumeration of all k-subsets, n <= 12, every k.

use super::reference::{EXACT, close, enumerate, normal_logits, uniform_logits};
use sfess_agents::{ConditionalPoisson, Normalizer, log_binomial};
use tch::Tensor;

fn cases() -> Vec<Vec<f64>> {
    let mut cases = vec![vec![0.0; 5], vec![2.0, 0.5, -1.0, -0.3, 1.2], vec![3.7]];
    for n in [2, 6, 9, 12] {
        cases.push(normal_logits(n, n as u64));
        cases.push(uniform_logits(n, 50.0, 100 + n as u64));
    }
    cases
}

fn policy(eta: &[f64], k: usize, normalizer: Normalizer) -> ConditionalPoisson {
    let logits = Tensor::from_slice(eta).view([1, eta.len() as i64]);
    ConditionalPoisson::with_normalizer(&logits, k as i64, normalizer).unwrap()
}

#[test]
fn exact_normalisers_marginals_entropy_and_kl_match_enumeration() {
    for normalizer in EXACT {
        exact_normalisers_marginals_entropy_and_kl_match_enumeration_with(normalizer);
    }
}

fn exact_normalisers_marginals_entropy_and_kl_match_enumeration_with(normalizer: Normalizer) {
    for eta in cases() {
        let n = eta.len();
        for k in 0..=n {
            let exact = enumerate(&eta, k);
            let cp = policy(&eta, k, normalizer);
            let z = cp.log_normalizer_values()[0];
            assert!(
                close(z, exact.log_normalizer, 1e-12),
                "{normalizer:?} n={n} k={k}: {z} vs {}",
                exact.log_normalizer
            );
            for (i, (a, b)) in cp.marginal_values().iter().zip(&exact.marginals).enumerate() {
                assert!((a - b).abs() <= 1e-12, "{normalizer:?} n={n} k={k} item {i}: {a} vs {b}");
            }
            let sum: f64 = cp.marginal_values().iter().sum();
            assert!((sum - k as f64).abs() <= 1e-12 * n as f64, "Σπ = {sum}, k = {k}");
            assert!(close(cp.entropy_values()[0], exact.entropy, 1e-11), "entropy n={n} k={k}");
            let kl = log_binomial(n, k) - exact.entropy;
            assert!((cp.kl_to_uniform_values()[0] - kl.max(0.0)).abs() <= 1e-10 * kl.abs().max(1.0));
        }
    }
}

#[test]
fn log_prob_of_every_subset_matches_enumeration_and_sums_to_one() {
    for normalizer in EXACT {
        log_prob_of_every_subset_matches_enumeration_and_sums_to_one_with(normalizer);
    }
}

fn log_prob_of_every_subset_matches_enumeration_and_sums_to_one_with(normalizer: Normalizer) {
    for eta in cases() {
        let n = eta.len();
        for k in 0..=n {
            let exact = enumerate(&eta, k);
            let cp = policy(&eta, k, normalizer);
            let actions: Vec<f64> = exact
                .subsets
                .iter()
                .flat_map(|s| (0..n).map(move |i| if s.contains(&i) { 1.0 } else { 0.0 }))
                .collect();
            let actions = Tensor::from_slice(&actions).view([exact.subsets.len() as i64, 1, n as i64]);
            let log_probs = Vec::<f64>::try_from(cp.log_prob(&actions).unwrap().view([-1])).unwrap();
            for (a, b) in log_probs.iter().zip(&exact.log_probs) {
                assert!(close(*a, *b, 1e-11), "n={n} k={k}: log p = {a} vs {b}");
            }
            let total: f64 = log_probs.iter().map(|lp| lp.exp()).sum();
            assert!((total - 1.0).abs() < 1e-12);
        }
    }
}

/// The paper's Eq. 3: Bernoulli log-likelihood minus log P(Σ b = k) equals log p(z).
#[test]
fn paper_log_prob_sum_eq_k_is_consistent_with_enumeration() {
    for normalizer in EXACT {
        paper_log_prob_sum_eq_k_is_consistent_with_enumeration_with(normalizer);
    }
}

fn paper_log_prob_sum_eq_k_is_consistent_with_enumeration_with(normalizer: Normalizer) {
    for eta in cases() {
        let n = eta.len();
        for k in 0..=n {
            let exact = enumerate(&eta, k);
            let cp = policy(&eta, k, normalizer);
            let log_p_sum = cp.log_prob_sum_eq_k_values()[0];
            let s = &exact.subsets[0];
            let log_bernoulli: f64 = (0..n)
                .map(|i| {
                    let x = if s.contains(&i) { eta[i] } else { -eta[i] };
                    -(x.max(0.0) - x + (-x.abs()).exp().ln_1p()) // log σ(x)
                })
                .sum();
            assert!(close(log_bernoulli - log_p_sum, exact.log_probs[0], 1e-11), "n={n} k={k}");
            let tensor = cp.log_prob_sum_eq_k().double_value(&[0]);
            assert!(close(tensor, log_p_sum, 1e-14));
        }
    }
}

/// E[z − π] = 0 under the distribution: the score has mean zero.
#[test]
fn score_has_mean_zero_under_enumeration() {
    for normalizer in EXACT {
        score_has_mean_zero_under_enumeration_with(normalizer);
    }
}

fn score_has_mean_zero_under_enumeration_with(normalizer: Normalizer) {
    for eta in cases() {
        let n = eta.len();
        for k in 0..=n {
            let exact = enumerate(&eta, k);
            let cp = policy(&eta, k, normalizer);
            let mut mean = vec![0.0; n];
            for (s, lp) in exact.subsets.iter().zip(&exact.log_probs) {
                let z: Vec<f64> = (0..n).map(|i| if s.contains(&i) { 1.0 } else { 0.0 }).collect();
                let score = cp.score(&Tensor::from_slice(&z).view([1, n as i64])).unwrap();
                for (m, g) in mean.iter_mut().zip(Vec::<f64>::try_from(score.view([-1])).unwrap()) {
                    *m += lp.exp() * g;
                }
            }
            assert!(mean.iter().all(|m| m.abs() < 1e-12), "n={n} k={k}: {mean:?}");
        }
    }
}

/// The DFT backends where they are well conditioned (n <= 12, N(0, 1) logits).
#[test]
fn dft_backends_agree_with_enumeration_when_well_conditioned() {
    for n in [3, 8, 12] {
        let eta = normal_logits(n, 40 + n as u64);
        for k in 0..=n {
            let exact = enumerate(&eta, k);
            let dft = policy(&eta, k, Normalizer::Dft);
            assert!(close(dft.log_normalizer_values()[0], exact.log_normalizer, 1e-10), "dft n={n} k={k}");
            for (a, b) in dft.marginal_values().iter().zip(&exact.marginals) {
                assert!((a - b).abs() < 1e-10, "dft marginals n={n} k={k}");
            }
            // complex64 resolves P(Σ b = k) to about 1e-7 n: compare only where P >= 1e-2.
            let log_p_sum: f64 =
                exact.log_normalizer - eta.iter().map(|x| x.max(0.0) + (-x.abs()).exp().ln_1p()).sum::<f64>();
            if log_p_sum >= 1e-2f64.ln() {
                let paper = policy(&eta, k, Normalizer::PaperComplex64);
                assert!(close(paper.log_normalizer_values()[0], exact.log_normalizer, 1e-3), "complex64 n={n} k={k}");
            }
        }
    }
}

/// Where `P(Σ b = k)` is tiny (n = 784, k = 50, N(0, 1) logits: about 4e-183), the f64
/// DFT refuses and the paper code's complex64 clamp returns a wrong value with the
/// gradient of the Bernoulli part only; the stable backend is exact (checked elsewhere).
#[test]
fn dft_cannot_resolve_a_tiny_probability_and_the_clamp_is_wrong() {
    let eta = normal_logits(784, 9);
    let logits = Tensor::from_slice(&eta).view([1, 784]);
    let err = ConditionalPoisson::with_normalizer(&logits, 50, Normalizer::Dft).unwrap_err();
    assert!(err.to_string().contains("cannot resolve row 0"), "{err}");
    let stable = ConditionalPoisson::new(&logits, 50).unwrap();
    let paper = ConditionalPoisson::with_normalizer(&logits, 50, Normalizer::PaperComplex64).unwrap();
    let log_p_true = stable.log_prob_sum_eq_k_values()[0];
    let log_p_paper = paper.log_prob_sum_eq_k_values()[0];
    assert!(log_p_true < -300.0, "log P(Σb=k) = {log_p_true}");
    assert!((log_p_paper - log_p_true).abs() > 100.0, "{log_p_paper} vs {log_p_true}");
    let sum: f64 = paper.marginal_values().iter().sum();
    assert!((sum - 50.0).abs() > 1.0, "the clamped gradient is not a marginal vector: Σπ = {sum}");
}

/// `Cov(z) v` (SIMPLE's backward) against Σ_z p(z) (z − π)(z − π)ᵀ v by enumeration.
#[test]
fn covariance_vector_product_matches_enumeration() {
    for normalizer in EXACT {
        covariance_vector_product_matches_enumeration_with(normalizer);
    }
}

fn covariance_vector_product_matches_enumeration_with(normalizer: Normalizer) {
    for eta in cases() {
        let n = eta.len();
        let v = normal_logits(n, 77);
        for k in 0..=n {
            let exact = enumerate(&eta, k);
            let mut expected = vec![0.0; n];
            for (s, lp) in exact.subsets.iter().zip(&exact.log_probs) {
                let centred: Vec<f64> =
                    (0..n).map(|i| if s.contains(&i) { 1.0 } else { 0.0 } - exact.marginals[i]).collect();
                let projection: f64 = centred.iter().zip(&v).map(|(c, x)| c * x).sum();
                for (e, c) in expected.iter_mut().zip(&centred) {
                    *e += lp.exp() * c * projection;
                }
            }
            let cp = policy(&eta, k, normalizer);
            let got = cp.covariance_vector_product(&Tensor::from_slice(&v).view([1, n as i64])).unwrap();
            let got = Vec::<f64>::try_from(got.view([-1])).unwrap();
            for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
                assert!((a - b).abs() <= 1e-12, "{normalizer:?} n={n} k={k} item {i}: {a} vs {b}");
            }
        }
    }
}
