//! The exact sampler against enumerated probabilities (chi-square), and the same test
//! rejecting Gumbel top-k on logits where the two laws differ.

use super::reference::{EXACT, enumerate, normal_logits};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use sfess_agents::{ConditionalPoisson, Normalizer, Sampler};
use std::collections::HashMap;
use tch::{Kind, Tensor};

/// Upper 0.1% point of the chi-square law with `df` degrees of freedom (Wilson–Hilferty).
fn chi_square_critical(df: usize) -> f64 {
    let df = df as f64;
    let z = 3.090_232; // upper 0.1% point of N(0, 1)
    df * (1.0 - 2.0 / (9.0 * df) + z * (2.0 / (9.0 * df)).sqrt()).powi(3)
}

/// Pearson's statistic of `draws` samples of the first row against the enumerated law.
fn chi_square(
    eta: &[f64],
    k: usize,
    draws: usize,
    sampler: Sampler,
    seed: u64,
    normalizer: Normalizer,
) -> (f64, usize) {
    let n = eta.len();
    let logits = Tensor::from_slice(eta).view([1, n as i64]);
    let cp = ConditionalPoisson::with_normalizer(&logits, k as i64, normalizer).unwrap();
    let samples = cp.sample(draws, sampler, &mut Xoshiro256PlusPlus::seed_from_u64(seed)).unwrap();
    let values = Vec::<f32>::try_from(samples.view([-1])).unwrap();
    let mut counts: HashMap<Vec<usize>, usize> = HashMap::new();
    for z in values.chunks(n) {
        let subset: Vec<usize> = (0..n).filter(|&i| z[i] == 1.0).collect();
        assert_eq!(subset.len(), k, "a sample is not k-hot");
        *counts.entry(subset).or_default() += 1;
    }
    let exact = enumerate(eta, k);
    let statistic = exact
        .subsets
        .iter()
        .zip(&exact.log_probs)
        .map(|(s, lp)| {
            let expected = draws as f64 * lp.exp();
            let observed = *counts.get(s).unwrap_or(&0) as f64;
            (observed - expected).powi(2) / expected
        })
        .sum();
    (statistic, exact.subsets.len() - 1)
}

/// Logits of paper.md's example, where Gumbel top-k inclusion probabilities are
/// 0.852 0.322 0.075 0.149 0.602 but the conditional Poisson marginals are
/// 0.800 0.347 0.086 0.168 0.600.
const DIFFERING: [f64; 5] = [2.0, 0.5, -1.0, -0.3, 1.2];

/// Both exact backends' samplers pass at a fixed seed, and Gumbel top-k (drawn by either
/// backend) fails the same test: it is able to reject a wrong sampler.
#[test]
fn exact_sampler_passes_chi_square_and_gumbel_top_k_fails_it() {
    let draws = 200_000;
    for normalizer in EXACT {
        let (exact, df) = chi_square(&DIFFERING, 2, draws, Sampler::Exact, 11, normalizer);
        let critical = chi_square_critical(df);
        assert!(exact < critical, "{normalizer:?} exact sampler: χ² = {exact:.1} >= {critical:.1} (df = {df})");
        let (gumbel, _) = chi_square(&DIFFERING, 2, draws, Sampler::GumbelTopK, 11, normalizer);
        assert!(gumbel > critical, "{normalizer:?} Gumbel top-k: χ² = {gumbel:.1} < {critical:.1}");
    }
}

#[test]
fn exact_sampler_passes_chi_square_on_more_laws() {
    for normalizer in EXACT {
        // n = 9 pads the product tree to 16 leaves; n = 8 fills 8 exactly.
        for (n, k, seed) in [(8, 1, 1u64), (8, 4, 2), (10, 7, 3), (9, 3, 6), (6, 6, 4), (6, 0, 5)] {
            let eta = normal_logits(n, seed).iter().map(|x| 1.5 * x).collect::<Vec<_>>();
            let (statistic, df) = chi_square(&eta, k, 60_000, Sampler::Exact, seed, normalizer);
            if df == 0 {
                assert_eq!(statistic, 0.0);
                continue;
            }
            let critical = chi_square_critical(df);
            assert!(statistic < critical, "{normalizer:?} n={n} k={k}: χ² = {statistic:.1} >= {critical:.1}");
        }
    }
}

/// Many rows at once, large n: every sample is k-hot, and inclusion frequencies match
/// the marginals within 5 binomial standard errors.
#[test]
fn batched_inclusion_frequencies_match_marginals() {
    for normalizer in EXACT {
        batched_inclusion_frequencies_match_marginals_with(normalizer);
    }
}

fn batched_inclusion_frequencies_match_marginals_with(normalizer: Normalizer) {
    let (batch, n, k, draws) = (3i64, 200i64, 20i64, 4000);
    let eta: Vec<f64> = normal_logits((batch * n) as usize, 8).iter().map(|x| 2.0 * x).collect();
    let logits = Tensor::from_slice(&eta).view([batch, n]);
    let cp = ConditionalPoisson::with_normalizer(&logits, k, normalizer).unwrap();
    let samples = cp.sample(draws, Sampler::Exact, &mut Xoshiro256PlusPlus::seed_from_u64(3)).unwrap();
    assert_eq!(samples.size(), [draws as i64, batch, n]);
    let sizes = samples.sum_dim_intlist(-1, false, Kind::Double);
    assert!(bool::try_from(sizes.eq(k as f64).all()).unwrap());
    let frequency = Vec::<f64>::try_from(samples.mean_dim(0, false, Kind::Double).view([-1])).unwrap();
    for (i, (f, p)) in frequency.iter().zip(cp.marginal_values()).enumerate() {
        let se = (p * (1.0 - p) / draws as f64).sqrt().max(1e-12);
        assert!((f - p).abs() <= 5.0 * se + 1e-12, "{normalizer:?} entry {i}: frequency {f} vs π {p}");
    }
}

#[test]
fn sampling_is_reproducible_and_f32_logits_give_f32_samples() {
    for normalizer in EXACT {
        reproducible_with(normalizer);
    }
}

fn reproducible_with(normalizer: Normalizer) {
    let logits = Tensor::from_slice(&[0.3f32, -1.0, 2.0, 0.0, 0.5, 1.0]).view([2, 3]);
    let cp = ConditionalPoisson::with_normalizer(&logits, 1, normalizer).unwrap();
    let a = cp.sample(50, Sampler::Exact, &mut Xoshiro256PlusPlus::seed_from_u64(5)).unwrap();
    let b = cp.sample(50, Sampler::Exact, &mut Xoshiro256PlusPlus::seed_from_u64(5)).unwrap();
    assert_eq!(a.kind(), Kind::Float);
    assert!(a.equal(&b));
    let c = cp.sample(50, Sampler::Exact, &mut Xoshiro256PlusPlus::seed_from_u64(6)).unwrap();
    assert!(!a.equal(&c));
}
