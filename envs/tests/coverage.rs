//! Maximum coverage: the instance's algorithms against hand-computed values and brute
//! force, and the environment's interface.

use std::collections::BTreeSet;

use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use sfess_envs::coverage::{CoverageInstance, MaxCoverage};
use sfess_envs::{EnvError, Environment, FixedAction, Phase};
use tch::{Device, Kind, Tensor};

/// `1 − 1/e`, greedy's guarantee.
const GREEDY_RATIO: f64 = 1.0 - 1.0 / std::f64::consts::E;

/// Brute force: the best value and the lexicographically first subset attaining it, by
/// scoring every k-subset with sets of element indices (no bitsets).
fn brute_force(sets: &[Vec<usize>], weights: &[f64], k: usize) -> (Vec<usize>, f64) {
    let total: f64 = weights.iter().sum();
    let value = |chosen: &[usize]| {
        let covered: BTreeSet<usize> = chosen.iter().flat_map(|&i| sets[i].iter().copied()).collect();
        covered.iter().map(|&e| weights[e]).sum::<f64>() / total
    };
    let n = sets.len();
    let mut best: Option<(Vec<usize>, f64)> = None;
    // Combinations in lexicographic order; keep the first strict maximum (up to 1e-12).
    let mut chosen: Vec<usize> = (0..k).collect();
    loop {
        let v = value(&chosen);
        if best.as_ref().is_none_or(|(_, b)| v > b + 1e-12) {
            best = Some((chosen.clone(), v));
        }
        let Some(i) = (0..k).rev().find(|&i| chosen[i] < n - k + i) else { break };
        chosen[i] += 1;
        for j in i + 1..k {
            chosen[j] = chosen[j - 1] + 1;
        }
    }
    best.unwrap_or((Vec::new(), 0.0))
}

/// The sets of an instance as element lists.
fn sets_of(instance: &CoverageInstance) -> Vec<Vec<usize>> {
    (0..instance.sets()).map(|i| instance.set(i)).collect()
}

/// Small random instances: the generator's (unit weights) and the same sets with weights
/// drawn from a heavy-tailed law (`u^-2`).
fn small_instances() -> Vec<(Vec<Vec<usize>>, Vec<f64>)> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    let mut out = Vec::new();
    for seed in 0..24u64 {
        let n = 3 + (seed as usize % 8);
        let m = 5 + 7 * (seed as usize % 5);
        let instance = CoverageInstance::random(n, m, seed).unwrap();
        let sets = sets_of(&instance);
        let heavy: Vec<f64> = (0..m).map(|_| rng.random::<f64>().max(1e-3).powi(-2)).collect();
        out.push((sets.clone(), vec![1.0; m]));
        out.push((sets, heavy));
    }
    out
}

#[test]
fn coverage_on_a_hand_example() {
    let sets = vec![vec![0, 1, 2], vec![2, 3], vec![4], vec![]];
    let weighted = CoverageInstance::from_sets(6, sets.clone(), Some(vec![1.0, 1.0, 1.0, 1.0, 2.0, 4.0])).unwrap();
    // Total weight 10.
    assert_eq!(weighted.coverage(&[0, 1]), 0.4);
    assert_eq!(weighted.coverage(&[0, 2]), 0.5);
    assert_eq!(weighted.coverage(&[1, 1, 3]), 0.2);
    assert_eq!(weighted.coverage(&[]), 0.0);
    assert_eq!(weighted.coverage(&[0, 1, 2]), 0.6);
    assert_eq!(weighted.coverage(&[2, 9]), 0.2, "indices ≥ n cover nothing");
    let plain = CoverageInstance::from_sets(6, sets, None).unwrap();
    assert_eq!(plain.coverage(&[0, 1, 2]), 5.0 / 6.0);
    assert_eq!((plain.sets(), plain.elements()), (4, 6));
    assert_eq!(plain.set(0), vec![0, 1, 2]);
    assert_eq!(plain.set(3), Vec::<usize>::new());
}

#[test]
fn greedy_is_suboptimal_on_the_classic_trap() {
    // A = {0,1,2,3} is the largest set, so greedy takes it; then B or C adds one element.
    // B ∪ C = {0..6} covers everything.
    let sets = vec![vec![0, 1, 2, 3], vec![0, 1, 4], vec![2, 3, 5]];
    let instance = CoverageInstance::from_sets(6, sets, None).unwrap();
    assert_eq!(instance.greedy(2), vec![0, 1], "ties go to the lowest index");
    assert_eq!(instance.coverage(&instance.greedy(2)), 5.0 / 6.0);
    assert_eq!(instance.optimum(2, 100), Some((vec![1, 2], 1.0)));
    assert_eq!(instance.greedy(1), vec![0]);
    assert_eq!(instance.optimum(1, 100), Some((vec![0], 4.0 / 6.0)));
    assert_eq!(instance.greedy(5), vec![0, 1, 2], "k is capped at n");
}

#[test]
fn optimum_equals_brute_force() {
    let mut checked = 0;
    for (sets, weights) in small_instances() {
        let m = weights.len();
        let instance = CoverageInstance::from_sets(m, sets.clone(), Some(weights.clone())).unwrap();
        for k in 0..=sets.len() {
            let (expected_set, expected) = brute_force(&sets, &weights, k);
            let (set, value) = instance.optimum(k, u64::MAX).unwrap();
            assert!((value - expected).abs() < 1e-12, "k = {k}: {value} vs {expected} on {sets:?}");
            assert_eq!(set.len(), k);
            assert!(set.windows(2).all(|w| w[0] < w[1]), "{set:?}");
            assert_eq!(instance.coverage(&set), value);
            if weights.iter().all(|&w| w == 1.0) {
                assert_eq!(set, expected_set, "the lexicographically first optimum, k = {k}, {sets:?}");
            }
            checked += 1;
        }
    }
    assert!(checked > 200);
}

#[test]
fn greedy_achieves_the_guarantee() {
    let mut strictly_worse = 0;
    for (sets, weights) in small_instances() {
        let instance = CoverageInstance::from_sets(weights.len(), sets.clone(), Some(weights)).unwrap();
        for k in 1..=sets.len() {
            let greedy = instance.greedy(k);
            assert_eq!(greedy.len(), k);
            assert_eq!(greedy.iter().collect::<BTreeSet<_>>().len(), k, "distinct sets");
            let value = instance.coverage(&greedy);
            let (_, optimum) = instance.optimum(k, u64::MAX).unwrap();
            assert!(value >= GREEDY_RATIO * optimum - 1e-12, "k = {k}: greedy {value} < (1 − 1/e)·{optimum}");
            assert!(value <= optimum + 1e-12);
            strictly_worse += usize::from(value < optimum - 1e-12);
        }
    }
    // The generator is meant to trap greedy: it must happen on some small instances too.
    assert!(strictly_worse > 0);
}

#[test]
fn the_default_instance_leaves_greedy_room() {
    // The command line's defaults: 50 sets, 500 elements, k = 5, seed 0.
    let instance = CoverageInstance::random(50, 500, 0).unwrap();
    assert_eq!((instance.sets(), instance.elements()), (50, 500));
    assert!((0..50).all(|i| !instance.set(i).is_empty()));
    let greedy = instance.coverage(&instance.greedy(5));
    let (_, optimum) = instance.optimum(5, 5_000_000).unwrap();
    assert!(greedy < optimum - 0.01, "greedy {greedy} vs optimum {optimum}");
    assert_eq!(instance, CoverageInstance::random(50, 500, 0).unwrap(), "deterministic in the seed");
    assert_ne!(instance, CoverageInstance::random(50, 500, 1).unwrap());
}

#[test]
fn optimum_respects_the_enumeration_limit() {
    let instance = CoverageInstance::random(20, 60, 3).unwrap();
    // C(20, 4) = 4845.
    assert!(instance.optimum(4, 4845).is_some());
    assert!(instance.optimum(4, 4844).is_none());
    assert!(instance.optimum(21, u64::MAX).is_none(), "k > n");
    assert_eq!(instance.optimum(0, 1), Some((Vec::new(), 0.0)));
}

#[test]
fn bad_instances_are_errors() {
    let config = |r: Result<CoverageInstance, EnvError>| matches!(r, Err(EnvError::Config { .. }));
    assert!(config(CoverageInstance::from_sets(3, vec![], None)), "no sets");
    assert!(config(CoverageInstance::from_sets(3, vec![vec![0, 3]], None)), "element ≥ m");
    assert!(config(CoverageInstance::from_sets(0, vec![vec![]], None)), "no elements");
    assert!(config(CoverageInstance::from_sets(2, vec![vec![0]], Some(vec![1.0, -1.0]))), "negative weight");
    assert!(config(CoverageInstance::from_sets(2, vec![vec![0]], Some(vec![1.0, f64::NAN]))), "NaN weight");
    assert!(config(CoverageInstance::from_sets(2, vec![vec![0]], Some(vec![1.0, f64::INFINITY]))), "infinite");
    assert!(config(CoverageInstance::from_sets(2, vec![vec![0]], Some(vec![1.0]))), "wrong length");
    assert!(config(CoverageInstance::from_sets(2, vec![vec![0]], Some(vec![0.0, 0.0]))), "zero total");
    assert!(config(CoverageInstance::random(0, 5, 0)));
    assert!(config(CoverageInstance::random(5, 0, 0)));
    let instance = CoverageInstance::random(4, 10, 0).unwrap();
    assert!(matches!(MaxCoverage::new("cov", instance, 5), Err(EnvError::Config { .. })), "k > n");
}

/// The k-hot vector of `chosen` among `n`, `[1, n]`.
fn k_hot(n: usize, chosen: &[usize]) -> Tensor {
    let mut v = vec![0f32; n];
    for &i in chosen {
        v[i] = 1.0;
    }
    Tensor::from_slice(&v).view([1, n as i64])
}

#[test]
fn the_environment_scores_k_hot_actions() {
    let instance = CoverageInstance::random(12, 40, 5).unwrap();
    let mut env = MaxCoverage::new("cov", instance.clone(), 3).unwrap();
    let spec = env.spec().clone();
    assert_eq!((spec.rows, spec.differentiable, spec.higher_is_better, spec.observation_dim), (1, false, true, 0));
    assert_eq!((spec.metric.as_str(), spec.space.n(), spec.space.k()), ("coverage", 12, 3));
    let picks = [vec![0, 1, 2], vec![3, 7, 11], vec![4, 5, 9]];
    let actions = Tensor::stack(&picks.iter().map(|p| k_hot(12, p)).collect::<Vec<_>>(), 0);
    assert!(matches!(env.step(&actions), Err(EnvError::NotReset { .. })));
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    assert!(env.reset(&mut rng).unwrap().inputs.is_empty());
    let transition = env.step(&actions).unwrap();
    assert_eq!(transition.rewards.size(), [3, 1]);
    assert!(transition.terminated && !transition.truncated);
    for (s, p) in picks.iter().enumerate() {
        assert_eq!(transition.rewards.double_value(&[s as i64, 0]), instance.coverage(p) as f32 as f64);
    }
    // Wrong shapes and non-k-hot actions are errors.
    assert!(matches!(env.step(&Tensor::zeros([3, 12], (Kind::Float, Device::Cpu))), Err(EnvError::ActionShape { .. })));
    let two_hot = k_hot(12, &[0, 1]).unsqueeze(0);
    assert!(matches!(env.step(&two_hot), Err(EnvError::Config { .. })));
    let relaxed = Tensor::full([1, 1, 12], 0.25, (Kind::Float, Device::Cpu));
    assert!(matches!(env.step(&relaxed), Err(EnvError::Config { .. })));
    // Evaluation plays the policy's action; both phases agree.
    let policy = FixedAction(k_hot(12, &picks[1]));
    for phase in [Phase::Validation, Phase::Test] {
        assert_eq!(env.evaluate(phase, &policy).unwrap()["coverage"], instance.coverage(&picks[1]));
    }
    assert!(env.evaluate(Phase::Test, &FixedAction(k_hot(12, &[1]))).is_err());
}

#[test]
fn baselines_are_random_greedy_and_optimum() {
    let instance = CoverageInstance::random(14, 60, 2).unwrap();
    let mut env = MaxCoverage::new("cov", instance.clone(), 4).unwrap();
    let baselines = env.baselines(Phase::Validation).unwrap();
    assert_eq!(baselines.keys().map(String::as_str).collect::<Vec<_>>(), ["greedy", "optimum", "random"]);
    assert_eq!(baselines["greedy"], instance.coverage(&instance.greedy(4)));
    assert_eq!(baselines["optimum"], instance.optimum(4, u64::MAX).unwrap().1);
    // The mean of 32 random 4-subsets lies between the worst and the best 4-subset.
    let worst = {
        let mut low = f64::INFINITY;
        for mask in 0u32..1 << 14 {
            if mask.count_ones() == 4 {
                let chosen: Vec<usize> = (0..14).filter(|i| mask >> i & 1 == 1).collect();
                low = low.min(instance.coverage(&chosen));
            }
        }
        low
    };
    assert!(baselines["random"] > worst && baselines["random"] < baselines["optimum"], "{baselines:?}");
    assert_eq!(env.baselines(Phase::Test).unwrap(), baselines);
    // Beyond 5,000,000 subsets there is no optimum: C(60, 10) ≈ 7.5·10¹⁰.
    let mut big = MaxCoverage::new("cov", CoverageInstance::random(60, 100, 0).unwrap(), 10).unwrap();
    let baselines = big.baselines(Phase::Test).unwrap();
    assert!(!baselines.contains_key("optimum") && baselines.contains_key("greedy"));
}
