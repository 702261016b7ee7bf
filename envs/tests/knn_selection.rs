//! Feature selection scored by k-NN accuracy, on tiny synthetic data: the batched
//! classifier against a naive loop, informative against noise pixels, Fisher scores, and
//! the environment's interface.

use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use sfess_envs::data::{Mnist, Split};
use sfess_envs::env::distinct_indices;
use sfess_envs::knn_selection::{KnnFeatureSelection, KnnSelectionConfig, fisher_scores};
use sfess_envs::{EnvError, Environment, FixedAction, Phase};
use tch::{Device, Kind, Tensor};

/// Pixels of the synthetic images.
const PIXELS: usize = 16;
/// The pixels that carry the class.
const INFORMATIVE: [usize; 3] = [2, 5, 11];

/// Images as integer pixel values `0..=255` (row per image) with labels.
struct Raw {
    pixels: Vec<Vec<i64>>,
    labels: Vec<i64>,
}

impl Raw {
    /// The split: pixels `b / 255` as `f32`.
    fn split(&self) -> Split {
        let n = self.labels.len() as i64;
        let flat: Vec<f32> = self.pixels.iter().flatten().map(|&b| b as f32 / 255.0).collect();
        let width = self.pixels.first().map_or(0, Vec::len) as i64;
        Split { images: Tensor::from_slice(&flat).view([n, width]), labels: Tensor::from_slice(&self.labels) }
    }
}

/// 3 balanced classes of 16-pixel images: pixels 2, 5 and 11 are `40 + 80·class ± 15`,
/// the others uniform noise in `0..=255`, and pixel 15 is constantly 0.
fn separable(n: usize, rng: &mut Xoshiro256PlusPlus) -> Raw {
    let labels: Vec<i64> = (0..n as i64).map(|i| i % 3).collect();
    let pixels = labels
        .iter()
        .map(|&c| {
            (0..PIXELS)
                .map(|p| match p {
                    _ if INFORMATIVE.contains(&p) => 40 + 80 * c + rng.random_range(-15..=15),
                    15 => 0,
                    _ => rng.random_range(0..=255),
                })
                .collect()
        })
        .collect();
    Raw { pixels, labels }
}

/// Images of `width` pixels whose values take only 3 levels and labels in `0..5`: many
/// exact distance ties and vote ties.
fn tied(n: usize, width: usize, rng: &mut Xoshiro256PlusPlus) -> Raw {
    let levels = [0, 128, 255];
    Raw {
        pixels: (0..n).map(|_| (0..width).map(|_| levels[rng.random_range(0..3)]).collect()).collect(),
        labels: (0..n).map(|_| rng.random_range(0..5)).collect(),
    }
}

/// Training, validation and test data from one generator.
fn data(train: &Raw, validation: &Raw, test: &Raw) -> Mnist {
    Mnist { train: train.split(), validation: validation.split(), test: test.split() }
}

/// The naive classifier: integer distances over `selected`, references sorted by
/// (distance, position), majority of the first `neighbours`, vote ties → smaller label.
fn naive_predict(references: &[&[i64]], labels: &[i64], query: &[i64], selected: &[usize], neighbours: usize) -> i64 {
    let mut order: Vec<(i64, usize)> = references
        .iter()
        .enumerate()
        .map(|(r, x)| (selected.iter().map(|&p| (query[p] - x[p]).pow(2)).sum(), r))
        .collect();
    order.sort();
    let mut votes = [0usize; 16];
    for &(_, r) in &order[..neighbours] {
        votes[labels[r] as usize] += 1;
    }
    let mut best = 0;
    for c in 1..votes.len() {
        if votes[c] > votes[best] {
            best = c;
        }
    }
    best as i64
}

/// The k-hot masks of `sets` over `width` pixels, `[S, 1, width]`.
fn masks(width: usize, sets: &[Vec<usize>]) -> Tensor {
    let rows: Vec<Tensor> = sets
        .iter()
        .map(|set| {
            let mut v = vec![0f32; width];
            for &p in set {
                v[p] = 1.0;
            }
            Tensor::from_slice(&v).view([1, 1, width as i64])
        })
        .collect();
    Tensor::cat(&rows, 0)
}

fn config(k: usize, neighbours: usize, references: usize, queries: usize) -> KnnSelectionConfig {
    KnnSelectionConfig { k, neighbours, references, queries }
}

#[test]
fn batched_step_and_prediction_match_a_naive_loop_exactly() {
    // Width 16 with k = 3 (f32 products); width 300 with k = 280 (> 258: f64 products);
    // 600 references × 400 queries, so that the 8 samples are split into groups.
    for (width, k, seed, references, queries) in [(16, 3, 1u64, 50, 30), (300, 280, 2, 50, 30), (16, 3, 3, 600, 400)] {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let (train, validation) = (tied(references + queries + 40, width, &mut rng), tied(40, width, &mut rng));
        let neighbours = 4; // even: vote ties happen
        let mut env = KnnFeatureSelection::new(
            "knn-fs",
            data(&train, &validation, &validation),
            config(k, neighbours, references, queries),
            Device::Cpu,
        )
        .unwrap();
        let mut reset_rng = Xoshiro256PlusPlus::seed_from_u64(seed + 100);
        let picks = distinct_indices(&mut reset_rng.clone(), train.labels.len(), references + queries);
        env.reset(&mut reset_rng).unwrap();
        let sets: Vec<Vec<usize>> = (0..8)
            .map(|_| {
                let mut set: Vec<usize> = distinct_indices(&mut rng, width, k).iter().map(|&p| p as usize).collect();
                set.sort_unstable();
                set
            })
            .collect();
        let rewards = env.step(&masks(width, &sets)).unwrap().rewards;
        assert_eq!(rewards.size(), [8, 1]);
        let reference_pixels: Vec<&[i64]> =
            picks[..references].iter().map(|&i| train.pixels[i as usize].as_slice()).collect();
        let reference_labels: Vec<i64> = picks[..references].iter().map(|&i| train.labels[i as usize]).collect();
        for (s, set) in sets.iter().enumerate() {
            let correct = picks[references..]
                .iter()
                .filter(|&&q| {
                    let q = q as usize;
                    naive_predict(&reference_pixels, &reference_labels, &train.pixels[q], set, neighbours)
                        == train.labels[q]
                })
                .count();
            assert_eq!(
                rewards.double_value(&[s as i64, 0]),
                f64::from(correct as f32 / queries as f32),
                "width {width}, set {s}"
            );
        }
        // Whole-split prediction: every label, against the whole training split.
        let all: Vec<&[i64]> = train.pixels.iter().map(Vec::as_slice).collect();
        for set in &sets[..3] {
            let predicted = Vec::<i64>::try_from(&env.predict(set, &validation.split().images).unwrap()).unwrap();
            let expected: Vec<i64> =
                validation.pixels.iter().map(|q| naive_predict(&all, &train.labels, q, set, neighbours)).collect();
            assert_eq!(predicted, expected, "width {width}");
            let accuracy = expected.iter().zip(&validation.labels).filter(|(p, y)| p == y).count() as f64 / 40.0;
            assert_eq!(env.accuracy_of(set, Phase::Validation).unwrap(), accuracy);
        }
    }
}

#[test]
fn informative_pixels_classify_and_noise_pixels_do_not() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let (train, validation, test) = (separable(300, &mut rng), separable(300, &mut rng), separable(300, &mut rng));
    let mut env =
        KnnFeatureSelection::new("knn-fs", data(&train, &validation, &test), config(3, 5, 100, 60), Device::Cpu)
            .unwrap();
    let noise = [0, 1, 3];
    for phase in [Phase::Validation, Phase::Test] {
        assert!(env.accuracy_of(&INFORMATIVE, phase).unwrap() >= 0.99);
        // Chance is 1/3; with 300 queries its standard deviation is 0.027.
        let chance = env.accuracy_of(&noise, phase).unwrap();
        assert!((chance - 1.0 / 3.0).abs() < 0.12, "{chance}");
    }
    env.reset(&mut Xoshiro256PlusPlus::seed_from_u64(4)).unwrap();
    let rewards = env.step(&masks(PIXELS, &[INFORMATIVE.to_vec(), noise.to_vec()])).unwrap().rewards;
    assert!(rewards.double_value(&[0, 0]) >= 0.95, "{rewards:?}");
    // 60 queries: sd 0.061 around 1/3.
    assert!(rewards.double_value(&[1, 0]) < 0.65, "{rewards:?}");
}

#[test]
fn fisher_scores_rank_the_informative_pixels_first() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let split = separable(300, &mut rng).split();
    let scores = fisher_scores(&split.images, &split.labels).unwrap();
    assert_eq!(scores.len(), PIXELS);
    let mut order: Vec<usize> = (0..PIXELS).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut top = order[..3].to_vec();
    top.sort_unstable();
    assert_eq!(top, INFORMATIVE, "{scores:?}");
    assert_eq!(scores[15], 0.0, "a constant pixel scores 0");
    // A hand example: pixel 0 constant, pixel 1 a perfect separator, pixel 2 with class
    // means 0.6 and 0.7 (overall 0.65): between = 4·0.05² = 0.01, within = 2·0.01 + 2·0.04 = 0.1.
    let images = Tensor::from_slice(&[0.0f32, 1.0, 0.5, 0.0, 1.0, 0.7, 0.0, 0.0, 0.5, 0.0, 0.0, 0.9]).view([4, 3]);
    let labels = Tensor::from_slice(&[0i64, 0, 1, 1]);
    let scores = fisher_scores(&images, &labels).unwrap();
    assert_eq!(scores[0], 0.0);
    assert_eq!(scores[1], f64::INFINITY);
    assert!((scores[2] - 0.1).abs() < 1e-6, "{scores:?}");
    assert!(fisher_scores(&images, &Tensor::from_slice(&[0i64, 1])).is_err());
    assert!(fisher_scores(&images, &Tensor::from_slice(&[0i64, -1, 0, 1])).is_err());
}

#[test]
fn the_environment_evaluates_policies_and_baselines() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(6);
    let (train, validation, test) = (separable(240, &mut rng), separable(90, &mut rng), separable(90, &mut rng));
    let mut env =
        KnnFeatureSelection::new("knn-fs", data(&train, &validation, &test), config(3, 5, 100, 50), Device::Cpu)
            .unwrap();
    let spec = env.spec().clone();
    assert_eq!((spec.rows, spec.differentiable, spec.higher_is_better, spec.observation_dim), (1, false, true, 0));
    assert_eq!((spec.metric.as_str(), spec.space.n(), spec.space.k()), ("accuracy", PIXELS, 3));
    let policy = FixedAction(masks(PIXELS, &[INFORMATIVE.to_vec()]).view([1, PIXELS as i64]));
    let metrics = env.evaluate(Phase::Test, &policy).unwrap();
    assert_eq!(metrics["accuracy"], env.accuracy_of(&INFORMATIVE, Phase::Test).unwrap());
    let two = FixedAction(masks(PIXELS, &[vec![0, 1]]).view([1, PIXELS as i64]));
    assert!(matches!(env.evaluate(Phase::Test, &two), Err(EnvError::Policy(_))));
    let baselines = env.baselines(Phase::Validation).unwrap();
    assert_eq!(baselines.keys().map(String::as_str).collect::<Vec<_>>(), ["fisher-score", "random"]);
    assert_eq!(baselines["fisher-score"], env.accuracy_of(&INFORMATIVE, Phase::Validation).unwrap());
    // Random 3 of 16 pixels: each set holds about 0.56 informative pixels on average.
    assert!(baselines["random"] > 0.2 && baselines["random"] < baselines["fisher-score"], "{baselines:?}");
    assert_eq!(env.baselines(Phase::Validation).unwrap(), baselines, "cached");
    assert!(env.baselines(Phase::Test).unwrap().contains_key("fisher-score"));
}

#[test]
fn bad_configurations_and_actions_are_errors() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let (train, held) = (separable(60, &mut rng), separable(20, &mut rng));
    let make = |c: KnnSelectionConfig| KnnFeatureSelection::new("knn-fs", data(&train, &held, &held), c, Device::Cpu);
    let config_error = |c: KnnSelectionConfig| matches!(make(c), Err(EnvError::Config { .. }));
    assert!(config_error(config(0, 5, 20, 10)), "k = 0");
    assert!(config_error(config(17, 5, 20, 10)), "k > pixels");
    assert!(config_error(config(3, 0, 20, 10)), "no neighbours");
    assert!(config_error(config(3, 21, 20, 10)), "neighbours > references");
    assert!(config_error(config(3, 5, 0, 10)), "no references");
    assert!(config_error(config(3, 5, 20, 0)), "no queries");
    assert!(config_error(config(3, 5, 50, 11)), "references + queries > training images");
    assert!(make(config(3, 5, 50, 10)).is_ok());
    // 784-pixel images: k = 785 is out of range.
    let wide = Split {
        images: Tensor::zeros([8, 784], (Kind::Float, Device::Cpu)),
        labels: Tensor::zeros([8], (Kind::Int64, Device::Cpu)),
    };
    let wide_data = Mnist {
        train: wide,
        validation: Split {
            images: Tensor::zeros([2, 784], (Kind::Float, Device::Cpu)),
            labels: Tensor::zeros([2], (Kind::Int64, Device::Cpu)),
        },
        test: Split {
            images: Tensor::zeros([2, 784], (Kind::Float, Device::Cpu)),
            labels: Tensor::zeros([2], (Kind::Int64, Device::Cpu)),
        },
    };
    assert!(matches!(
        KnnFeatureSelection::new("w", wide_data, config(785, 1, 4, 4), Device::Cpu),
        Err(EnvError::Config { .. })
    ));
    // Pixels outside [0, 1] (or NaN), negative labels.
    for bad in [2.0f32, -0.5, f32::NAN] {
        let split = train.split();
        let _ = split.images.get(0).get(0).fill_(f64::from(bad));
        let data = Mnist { train: split, validation: held.split(), test: held.split() };
        assert!(matches!(
            KnnFeatureSelection::new("b", data, config(3, 5, 20, 10), Device::Cpu),
            Err(EnvError::Config { .. })
        ));
    }
    let split = train.split();
    let _ = split.labels.get(3).fill_(-1);
    let data = Mnist { train: split, validation: held.split(), test: held.split() };
    assert!(matches!(
        KnnFeatureSelection::new("b", data, config(3, 5, 20, 10), Device::Cpu),
        Err(EnvError::Config { .. })
    ));
    // Actions: before reset, wrong shape, not k-hot.
    let mut env = make(config(3, 5, 20, 10)).unwrap();
    let good = masks(PIXELS, &[vec![0, 1, 2]]);
    assert!(matches!(env.step(&good), Err(EnvError::NotReset { .. })));
    env.reset(&mut rng).unwrap();
    assert!(env.step(&good).is_ok());
    assert!(matches!(env.step(&good.view([1, 16])), Err(EnvError::ActionShape { .. })));
    assert!(matches!(env.step(&masks(PIXELS, &[vec![0, 1]])), Err(EnvError::Config { .. })));
    assert!(matches!(env.step(&(good * 0.5)), Err(EnvError::Config { .. })));
    // Selections for accuracy_of: empty, repeated, out of range.
    for selected in [vec![], vec![1, 1, 2], vec![0, 16]] {
        assert!(matches!(env.accuracy_of(&selected, Phase::Validation), Err(EnvError::Config { .. })), "{selected:?}");
    }
}
