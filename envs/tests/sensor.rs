//! The sensor-placement environment on tiny hand-made fields: pivoted QR against a
//! brute-force reference, least squares against the normal equations, batched rewards
//! against one-at-a-time computations, singular sets, synthetic fields and bad configs.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use sfess_envs::data::{Mnist, Split};
use sfess_envs::env::distinct_indices;
use sfess_envs::sensor::{
    Fields, RANDOM_BASELINE_SEED, RANDOM_BASELINE_SUBSETS, SensorConfig, SensorPlacement, qr_pivots,
};
use sfess_envs::{EnvError, Environment, FixedAction, Phase};
use tch::{Device, Kind, Tensor};

const CPU: Device = Device::Cpu;

/// A split of `fields` `[N, n]` (labels unused).
fn split(fields: &Tensor) -> Split {
    let n = fields.size()[0];
    Split { images: fields.to_kind(Kind::Float), labels: Tensor::zeros([n], (Kind::Int64, CPU)) }
}

/// Image fields from three `[N, n]` tensors.
fn images(train: &Tensor, validation: &Tensor, test: &Tensor) -> Fields {
    Fields::Images(Mnist { train: split(train), validation: split(validation), test: split(test) })
}

/// Uniform random fields `[rows, n]` from libtorch's generator.
fn uniform(rows: i64, n: i64) -> Tensor {
    Tensor::rand([rows, n], (Kind::Float, CPU))
}

fn config(sensors: usize, modes: usize, batch: usize) -> SensorConfig {
    SensorConfig { sensors, modes, batch }
}

fn to_vec(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).contiguous().view([-1])).unwrap()
}

/// k-hot actions `[S, 1, n]` for sensor sets.
fn actions(sets: &[Vec<usize>], n: usize) -> Tensor {
    let mut values = vec![0f32; sets.len() * n];
    for (s, set) in sets.iter().enumerate() {
        for &p in set {
            values[s * n + p] = 1.0;
        }
    }
    Tensor::from_slice(&values).view([sets.len() as i64, 1, n as i64])
}

/// Solves the small dense system `a x = b` by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs())).unwrap();
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col].clone();
            for (v, p) in a[row].iter_mut().zip(&pivot_row).skip(col) {
                *v -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let tail: f64 = (row + 1..n).map(|c| a[row][c] * x[c]).sum();
        x[row] = (b[row] - tail) / a[row][row];
    }
    x
}

/// All k-subsets of 0..n in lexicographic order.
fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    if k == 0 {
        return vec![vec![]];
    }
    (k - 1..n)
        .flat_map(|last| {
            subsets(last, k - 1).into_iter().map(move |mut s| {
                s.push(last);
                s
            })
        })
        .collect()
}

/// The O(n³)-per-step reference of greedy pivoting: at each step, the column with the
/// largest residual after least-squares projection on the picked columns (A_P A_P⁺ a_j).
fn reference_pivots(matrix: &Tensor, count: usize) -> Vec<usize> {
    let cols = matrix.size()[1] as usize;
    let mut picked: Vec<usize> = Vec::new();
    for _ in 0..count {
        let mut best: Option<(usize, f64)> = None;
        for j in (0..cols).filter(|j| !picked.contains(j)) {
            let column = matrix.select(1, j as i64).unsqueeze(1);
            let residual = if picked.is_empty() {
                column
            } else {
                let index = Tensor::from_slice(&picked.iter().map(|&p| p as i64).collect::<Vec<_>>());
                let basis = matrix.index_select(1, &index);
                &column - basis.matmul(&basis.linalg_pinv(1e-12, false).matmul(&column))
            };
            let norm = residual.square().sum(Kind::Double).double_value(&[]);
            if best.is_none_or(|(_, b)| norm > b) {
                best = Some((j, norm));
            }
        }
        picked.push(best.unwrap().0);
    }
    picked
}

#[test]
fn pivoted_qr_matches_the_projection_reference() {
    for seed in 0..6 {
        tch::manual_seed(seed);
        let matrix = Tensor::randn([4, 10], (Kind::Double, CPU));
        let pivots = qr_pivots(&matrix, 4).unwrap();
        let norms = to_vec(&matrix.square().sum_dim_intlist(0, false, Kind::Double));
        let longest = (0..10).max_by(|&i, &j| norms[i].total_cmp(&norms[j])).unwrap();
        assert_eq!(pivots[0], longest, "seed {seed}");
        assert_eq!(pivots, reference_pivots(&matrix, 4), "seed {seed}");
        // All columns: the first four as before, then the rest (rank exhausted), distinct.
        let all = qr_pivots(&matrix.to_kind(Kind::Float), 20).unwrap();
        assert_eq!(all[..4], pivots[..]);
        let mut sorted = all.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
    }
}

/// k = r: the greedy pick's |det Ψ_S| against all C(10, 4) subsets. The proven guarantee of
/// greedy volume maximisation is 1/k! of the best (Çivril and Magdon-Ismail 2009); it also
/// beats the median subset.
#[test]
fn square_qr_pick_is_within_the_greedy_bound_of_the_best_determinant() {
    for seed in 0..5 {
        tch::manual_seed(100 + seed);
        // Ψ: 10 × 4 with orthonormal columns, like a PCA basis.
        let (psi, _) = Tensor::linalg_qr(&Tensor::randn([10, 4], (Kind::Double, CPU)), "reduced");
        let det = |rows: &[usize]| -> f64 {
            let index = Tensor::from_slice(&rows.iter().map(|&p| p as i64).collect::<Vec<_>>());
            Tensor::linalg_det(&psi.index_select(0, &index)).abs().double_value(&[])
        };
        let mut greedy = qr_pivots(&psi.transpose(0, 1), 4).unwrap();
        greedy.sort_unstable();
        let mut all: Vec<f64> = subsets(10, 4).iter().map(|s| det(s)).collect();
        all.sort_by(f64::total_cmp);
        assert_eq!(all.len(), 210);
        let (best, median, picked) = (all[209], all[105], det(&greedy));
        assert!(picked >= best / 24.0, "seed {seed}: {picked} vs best {best}");
        assert!(picked > median, "seed {seed}: {picked} vs median {median}");
    }
}

/// The basis is the PCA of the training fields: orthonormal eigenvectors of the scatter
/// matrix with its largest eigenvalues, and the explained variance is their share.
#[test]
fn modes_are_the_leading_principal_components() {
    tch::manual_seed(1);
    let train = uniform(60, 8) * Tensor::from_slice(&[1.0f32, 2.0, 0.5, 3.0, 1.0, 0.2, 1.5, 2.5]);
    let env = SensorPlacement::new("s", images(&train, &uniform(5, 8), &uniform(5, 8)), config(4, 3, 8), CPU).unwrap();
    let x = train.to_kind(Kind::Double);
    let mean = x.mean_dim(0, false, Kind::Double);
    assert!(env.mean().allclose(&mean, 1e-12, 1e-12, false));
    let centred = &x - &mean;
    let scatter = centred.transpose(0, 1).matmul(&centred);
    let psi = env.modes();
    assert_eq!(psi.size(), [8, 3]);
    assert!(psi.transpose(0, 1).matmul(psi).allclose(&Tensor::eye(3, (Kind::Double, CPU)), 1e-12, 1e-12, false));
    let values = to_vec(&scatter.linalg_eigvalsh("L")); // ascending
    for (i, lambda) in to_vec(&psi.transpose(0, 1).matmul(&scatter).matmul(psi).diagonal(0, 0, 1)).iter().enumerate() {
        assert!((lambda - values[7 - i]).abs() < 1e-9 * values[7], "mode {i}: {lambda} vs {}", values[7 - i]);
        let column = psi.select(1, i as i64);
        let defect = scatter.matmul(&column) - &column * *lambda;
        assert!(defect.abs().max().double_value(&[]) < 1e-9 * values[7]);
    }
    let expected = values[5..].iter().sum::<f64>() / values.iter().sum::<f64>();
    assert!((env.explained_variance() - expected).abs() < 1e-12);
}

/// Reconstruction and MSE against the normal equations, k ≥ r, and against the
/// minimum-norm solution, k < r, in plain f64 arithmetic.
#[test]
fn least_squares_matches_the_normal_equations() {
    tch::manual_seed(2);
    let (n, r) = (8usize, 3usize);
    let validation = uniform(20, n as i64);
    let env = SensorPlacement::new(
        "s",
        images(&uniform(60, n as i64), &validation, &uniform(5, n as i64)),
        config(4, r, 8),
        CPU,
    )
    .unwrap();
    let mean = to_vec(env.mean());
    let psi = to_vec(env.modes()); // row-major n × r
    let rows = to_vec(&validation);
    for sensors in [vec![1usize, 4, 6, 7], vec![0, 2, 3, 5, 6], vec![2, 5]] {
        let k = sensors.len();
        let mut total = 0.0;
        let direct = to_vec(&env.reconstruct(&sensors, &validation).unwrap());
        for f in 0..20 {
            let x = &rows[f * n..(f + 1) * n];
            let y: Vec<f64> = sensors.iter().map(|&s| x[s] - mean[s]).collect();
            let a: Vec<f64> = if k >= r {
                // (Ψ_Sᵀ Ψ_S) a = Ψ_Sᵀ y
                let gram = (0..r)
                    .map(|i| (0..r).map(|j| sensors.iter().map(|&s| psi[s * r + i] * psi[s * r + j]).sum()).collect())
                    .collect();
                let rhs = (0..r).map(|i| sensors.iter().zip(&y).map(|(&s, v)| psi[s * r + i] * v).sum()).collect();
                solve(gram, rhs)
            } else {
                // a = Ψ_Sᵀ (Ψ_S Ψ_Sᵀ)⁻¹ y
                let gram = sensors
                    .iter()
                    .map(|&s| sensors.iter().map(|&t| (0..r).map(|i| psi[s * r + i] * psi[t * r + i]).sum()).collect())
                    .collect();
                let w = solve(gram, y.clone());
                (0..r).map(|i| sensors.iter().zip(&w).map(|(&s, v)| psi[s * r + i] * v).sum()).collect()
            };
            for p in 0..n {
                let estimate = mean[p] + (0..r).map(|i| psi[p * r + i] * a[i]).sum::<f64>();
                assert!((estimate - direct[f * n + p]).abs() < 1e-10, "{sensors:?} field {f} pixel {p}");
                total += (x[p] - estimate).powi(2);
            }
        }
        let expected = total / (20 * n) as f64;
        let got = env.error_of(&sensors, Phase::Validation).unwrap();
        assert!((got - expected).abs() < 1e-10 * expected, "{sensors:?}: {got} vs {expected}");
    }
}

/// A field in the affine span μ + Ψ_r b is recovered exactly from any well-posed set with
/// k ≥ r; fields drawn from an r-dimensional affine family have (almost) zero error.
#[test]
fn fields_in_the_span_are_reconstructed_exactly() {
    tch::manual_seed(3);
    let (n, r) = (12i64, 3i64);
    let directions = Tensor::randn([r, n], (Kind::Float, CPU));
    let offset = Tensor::randn([1, n], (Kind::Float, CPU));
    let family = |rows: i64| Tensor::randn([rows, r], (Kind::Float, CPU)).matmul(&directions) + &offset;
    let env = SensorPlacement::new("s", images(&family(50), &family(20), &family(20)), config(3, 3, 8), CPU).unwrap();
    let b = Tensor::randn([5, r], (Kind::Double, CPU));
    let fields = b.matmul(&env.modes().transpose(0, 1)) + env.mean();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
    let mut checked = 0;
    for trial in 0..30 {
        let k = 3 + trial % 5;
        let sensors: Vec<usize> = distinct_indices(&mut rng, n as usize, k).iter().map(|&p| p as usize).collect();
        let index = Tensor::from_slice(&sensors.iter().map(|&p| p as i64).collect::<Vec<_>>());
        let rows = env.modes().index_select(0, &index);
        // σ_min(Ψ_S)² is the smallest eigenvalue of Ψ_Sᵀ Ψ_S (k ≥ r).
        let smallest = rows.transpose(0, 1).matmul(&rows).linalg_eigvalsh("L").min().double_value(&[]).sqrt();
        if smallest < 0.05 {
            continue;
        }
        checked += 1;
        let error = (env.reconstruct(&sensors, &fields).unwrap() - &fields).abs().max().double_value(&[]);
        assert!(error < 1e-9, "{sensors:?}: {error}");
        // The held-out fields lie in the span up to f32 rounding.
        assert!(env.error_of(&sensors, Phase::Test).unwrap() < 1e-10);
    }
    assert!(checked >= 20, "{checked}");
}

/// Rewards of a batch of actions equal minus the MSE of each set computed alone, directly.
#[test]
fn batched_rewards_equal_one_at_a_time_errors() {
    tch::manual_seed(5);
    let (n, k) = (16usize, 5usize);
    let train = uniform(40, n as i64) * uniform(1, n as i64);
    // The validation split holds the training fields, so error_of sees the same fields.
    let mut env =
        SensorPlacement::new("s", images(&train, &train, &uniform(3, n as i64)), config(k, 4, 40), CPU).unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(6);
    let sets: Vec<Vec<usize>> =
        (0..6).map(|_| distinct_indices(&mut rng, n, k).iter().map(|&p| p as usize).collect()).collect();
    let direct = |env: &SensorPlacement, set: &[usize], fields: &Tensor| -> f64 {
        let x = fields.to_kind(Kind::Double);
        (env.reconstruct(set, &x).unwrap() - &x).square().mean(Kind::Double).double_value(&[])
    };
    assert!(env.reset(&mut rng).unwrap().inputs.is_empty());
    let rewards = to_vec(&env.step(&actions(&sets, n)).unwrap().rewards);
    assert_eq!(rewards.len(), 6);
    for (set, reward) in sets.iter().zip(&rewards) {
        let alone = env.error_of(set, Phase::Validation).unwrap();
        assert!((alone - direct(&env, set, &train)).abs() < 1e-12 * alone);
        assert!((-reward - alone).abs() < 1e-6 * alone, "{set:?}: {reward} vs {alone}");
    }
    // A smaller batch: the fields `reset` draws with `distinct_indices` from the same rng.
    let mut env =
        SensorPlacement::new("s", images(&train, &train, &uniform(3, n as i64)), config(k, 4, 7), CPU).unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    env.reset(&mut rng).unwrap();
    let rewards = to_vec(&env.step(&actions(&sets, n)).unwrap().rewards);
    let picks = distinct_indices(&mut Xoshiro256PlusPlus::seed_from_u64(7), 40, 7);
    let batch = train.index_select(0, &Tensor::from_slice(&picks));
    for (set, reward) in sets.iter().zip(&rewards) {
        let expected = direct(&env, set, &batch);
        assert!((-reward - expected).abs() < 1e-6 * expected, "{set:?}: {reward} vs {expected}");
    }
}

/// Dead pixels (always 0) and duplicated pixels (always equal) make Ψ_S singular: the
/// errors stay finite, and a set of dead pixels alone reconstructs the mean.
#[test]
fn singular_and_ill_conditioned_sets_stay_finite() {
    tch::manual_seed(8);
    let n = 10i64;
    let fields = |rows: i64| {
        let x = uniform(rows, n);
        let _ = x.select(1, 0).fill_(0.0);
        x.select(1, 2).copy_(&x.select(1, 1));
        // Pixel 4 is pixel 3 plus a tiny independent wiggle: nearly duplicate.
        x.select(1, 4).copy_(&(x.select(1, 3) + Tensor::rand([rows], (Kind::Float, CPU)) * 1e-4));
        x
    };
    let (train, test) = (fields(80), fields(30));
    let mut env = SensorPlacement::new("s", images(&train, &test, &test), config(3, 3, 16), CPU).unwrap();
    let x = test.to_kind(Kind::Double);
    let mean_only = (&x - env.mean()).square().mean(Kind::Double).double_value(&[]);
    let dead = env.error_of(&[0], Phase::Validation).unwrap();
    assert!((dead - mean_only).abs() < 1e-9 * mean_only, "{dead} vs {mean_only}");
    // A duplicated pixel adds no information: Ψ_S has rank 1 (its second singular value is
    // rounding, cut by the tolerance), and the minimum-norm solution is that of one pixel.
    let one = env.error_of(&[1], Phase::Validation).unwrap();
    for set in [vec![1usize, 2], vec![0, 1, 2]] {
        let error = env.error_of(&set, Phase::Validation).unwrap();
        assert!((error - one).abs() < 1e-9 * one, "{set:?}: {error} vs {one}");
    }
    for set in [vec![0usize, 1, 2], vec![1, 2], vec![3, 4], vec![0, 3, 4], vec![1, 2, 3, 4]] {
        let error = env.error_of(&set, Phase::Validation).unwrap();
        assert!(error.is_finite(), "{set:?}: {error}");
        let rebuilt = env.reconstruct(&set, &x).unwrap();
        assert!(bool::try_from(rebuilt.isfinite().all()).unwrap(), "{set:?}");
    }
    env.reset(&mut Xoshiro256PlusPlus::seed_from_u64(9)).unwrap();
    let sets = [vec![0usize, 1, 2], vec![0, 3, 4], vec![1, 2, 5]];
    let rewards = env.step(&actions(&sets, n as usize)).unwrap().rewards;
    assert_eq!(rewards.size(), [3, 1]);
    assert_eq!(rewards.kind(), Kind::Float);
    assert!(bool::try_from(rewards.isfinite().all()).unwrap(), "{rewards:?}");
}

/// Synthetic fields: the same seed gives the same environment; QR pivoting beats random
/// sensors by a clear margin.
#[test]
fn synthetic_fields_are_deterministic_and_qr_beats_random() {
    let make = |seed| SensorPlacement::new("s", Fields::Synthetic { side: 10, seed }, config(12, 6, 32), CPU).unwrap();
    let (mut a, b, c) = (make(1), make(1), make(2));
    assert_eq!(a.qr_pivot_sensors(), b.qr_pivot_sensors());
    assert_eq!(a.explained_variance(), b.explained_variance());
    let set = [0usize, 5, 17, 33, 42, 58, 61, 70, 77, 89, 94, 99];
    let (ea, eb, ec) = [&a, &b, &c].map(|e| e.error_of(&set, Phase::Test).unwrap()).into();
    assert_eq!(ea, eb);
    assert_ne!(ea, ec);
    let baselines = a.baselines(Phase::Validation).unwrap();
    let (qr, random) = (baselines["qr-pivoting"], baselines["random"]);
    assert!(qr < 0.7 * random, "qr {qr} vs random {random}");
    assert!(a.explained_variance() > 0.9 && a.explained_variance() < 1.0);
}

/// The defaults the CLI uses (side 16, k 20, r 10): the numbers quoted in the docs.
#[test]
fn synthetic_defaults() {
    let mut env =
        SensorPlacement::new("sensors", Fields::Synthetic { side: 16, seed: 0 }, SensorConfig::default(), CPU).unwrap();
    assert_eq!(SensorConfig::default(), config(20, 10, 256));
    let explained = env.explained_variance();
    let baselines = env.baselines(Phase::Validation).unwrap();
    let (qr, random) = (baselines["qr-pivoting"], baselines["random"]);
    println!("explained variance {explained:.4}, validation MSE: QR pivoting {qr:.5}, random {random:.5}");
    assert!(explained > 0.97 && explained < 0.995, "{explained}");
    assert!(qr < 0.6 * random, "qr {qr} vs random {random}");
    let spec = env.spec();
    assert_eq!((spec.space.n(), spec.space.k(), spec.rows, spec.observation_dim), (256, 20, 1, 0));
    assert!(!spec.differentiable && !spec.higher_is_better);
    assert_eq!((spec.name.as_str(), spec.metric.as_str()), ("sensors", "mse"));
}

#[test]
fn the_environment_protocol() {
    tch::manual_seed(10);
    let n = 12usize;
    let mut env =
        SensorPlacement::new("s", images(&uniform(30, 12), &uniform(9, 12), &uniform(7, 12)), config(4, 2, 5), CPU)
            .unwrap();
    let set = vec![1usize, 3, 8, 11];
    assert!(matches!(env.step(&actions(std::slice::from_ref(&set), n)), Err(EnvError::NotReset { .. })));
    env.reset(&mut Xoshiro256PlusPlus::seed_from_u64(1)).unwrap();
    assert!(matches!(env.step(&Tensor::zeros([2, n as i64], (Kind::Float, CPU))), Err(EnvError::ActionShape { .. })));
    assert!(matches!(env.step(&actions(&[vec![1, 2, 3]], n)), Err(EnvError::Config { .. })));
    assert!(matches!(env.step(&(actions(std::slice::from_ref(&set), n) * 0.5)), Err(EnvError::Config { .. })));
    for phase in [Phase::Validation, Phase::Test] {
        let policy = FixedAction(actions(std::slice::from_ref(&set), n).view([1, n as i64]));
        let metrics = env.evaluate(phase, &policy).unwrap();
        assert_eq!(metrics, BTreeMap::from([("mse".to_owned(), env.error_of(&set, phase).unwrap())]));
        let baselines = env.baselines(phase).unwrap();
        assert_eq!(baselines.len(), 2);
        assert_eq!(baselines["qr-pivoting"], env.error_of(&env.qr_pivot_sensors(), phase).unwrap());
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(RANDOM_BASELINE_SEED);
        let random = (0..RANDOM_BASELINE_SUBSETS)
            .map(|_| {
                let subset: Vec<usize> = distinct_indices(&mut rng, n, 4).iter().map(|&p| p as usize).collect();
                env.error_of(&subset, phase).unwrap()
            })
            .sum::<f64>()
            / RANDOM_BASELINE_SUBSETS as f64;
        assert!((baselines["random"] - random).abs() < 1e-12 * random);
    }
    let qr = env.qr_pivot_sensors();
    assert_eq!(qr.len(), 4);
    assert!(qr.windows(2).all(|w| w[0] < w[1]));
    for bad in [vec![], vec![12], vec![3, 3]] {
        assert!(matches!(env.error_of(&bad, Phase::Test), Err(EnvError::Config { .. })), "{bad:?}");
    }
    assert!(matches!(env.reconstruct(&set, &uniform(2, 11)), Err(EnvError::Config { .. })));
}

/// Oversampling (k > r): QR pivots on the first k modes and gives k distinct sensors.
#[test]
fn oversampled_qr_uses_k_modes() {
    tch::manual_seed(11);
    let env = SensorPlacement::new("s", images(&uniform(40, 9), &uniform(5, 9), &uniform(5, 9)), config(6, 2, 4), CPU)
        .unwrap();
    let qr = env.qr_pivot_sensors();
    assert_eq!(qr.len(), 6);
    assert!(qr.windows(2).all(|w| w[0] < w[1]) && qr[5] < 9);
}

#[test]
fn bad_configs_are_rejected() {
    let fields = || images(&uniform(20, 6), &uniform(4, 6), &uniform(4, 6));
    let cases: Vec<(Fields, SensorConfig, &str)> = vec![
        (fields(), config(0, 2, 4), "sensors k = 0"),
        (fields(), config(7, 2, 4), "sensors k = 7"),
        (fields(), config(3, 0, 4), "modes r = 0"),
        (fields(), config(3, 7, 4), "modes r = 7"),
        (images(&uniform(4, 6), &uniform(4, 6), &uniform(4, 6)), config(3, 5, 2), "modes r = 5"),
        (fields(), config(3, 2, 0), "batch 0"),
        (fields(), config(3, 2, 21), "batch 21"),
        (images(&uniform(20, 6), &uniform(4, 5), &uniform(4, 6)), config(3, 2, 4), "same n"),
        (images(&uniform(20, 6), &uniform(0, 6), &uniform(4, 6)), config(3, 2, 4), "at least one field"),
        (Fields::Synthetic { side: 0, seed: 1 }, config(3, 2, 4), "synthetic side"),
        (Fields::Synthetic { side: 65, seed: 1 }, config(3, 2, 4), "synthetic side"),
    ];
    for (fields, config, message) in cases {
        match SensorPlacement::new("bad", fields, config, CPU) {
            Err(EnvError::Config { env, problem }) => {
                assert_eq!(env, "bad");
                assert!(problem.contains(message), "{problem:?} lacks {message:?}");
            }
            other => panic!("{config:?}: expected a config error, got {other:?}"),
        }
    }
}
