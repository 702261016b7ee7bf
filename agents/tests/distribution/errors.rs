//! Bad input gives a typed error with a clear message, never a panic.

use super::reference::EXACT;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use sfess_agents::{ConditionalPoisson, ConditionalPoissonError as Error, Normalizer, Sampler};
use tch::{Kind, Tensor};

fn logits() -> Tensor {
    Tensor::from_slice(&[0.1f64, -2.0, 1.5, 0.3]).view([1, 4])
}

fn build(logits: &Tensor, k: i64, normalizer: Normalizer) -> Result<ConditionalPoisson, Error> {
    ConditionalPoisson::with_normalizer(logits, k, normalizer)
}

#[test]
fn k_out_of_range() {
    for normalizer in Normalizer::ALL {
        for k in [-1, 5] {
            let err = build(&logits(), k, normalizer).unwrap_err();
            assert!(matches!(err, Error::KOutOfRange { n: 4, .. }), "{err}");
            assert!(err.to_string().contains("out of range"));
        }
    }
}

#[test]
fn non_finite_logits_name_their_position() {
    for normalizer in Normalizer::ALL {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let t = Tensor::from_slice(&[0.0, 1.0, 2.0, 3.0, bad, 0.0]).view([2, 3]);
            let err = build(&t, 1, normalizer).unwrap_err();
            assert!(matches!(err, Error::NonFiniteLogit { row: 1, index: 1, .. }), "{normalizer:?}: {err}");
        }
    }
    // The same check on demand.
    let cp = build(&logits(), 1, Normalizer::Parallel).unwrap();
    assert!(cp.check_finite().is_ok());
    let bad_v = Tensor::from_slice(&[0.0, f64::NAN, 0.0, 0.0]).view([1, 4]);
    for normalizer in EXACT {
        let cp = build(&logits(), 2, normalizer).unwrap();
        let err = cp.covariance_vector_product(&bad_v).unwrap_err();
        assert!(matches!(err, Error::NonFiniteLogit { row: 0, index: 1, .. }), "{normalizer:?}: {err}");
    }
}

#[test]
fn shapes_and_kinds() {
    for normalizer in Normalizer::ALL {
        let vector = Tensor::from_slice(&[0.0f64, 1.0]);
        assert!(matches!(build(&vector, 1, normalizer), Err(Error::LogitsShape { .. })));
        let empty = Tensor::zeros([2, 0], (Kind::Double, tch::Device::Cpu));
        assert!(matches!(build(&empty, 0, normalizer), Err(Error::LogitsShape { .. })));
        let ints = Tensor::from_slice(&[1i64, 2]).view([1, 2]);
        assert!(matches!(build(&ints, 1, normalizer), Err(Error::LogitsKind { .. })));
    }
}

#[test]
fn actions_must_be_k_hot_and_fit_the_logits() {
    for normalizer in EXACT {
        actions_checked(normalizer);
    }
}

fn actions_checked(normalizer: Normalizer) {
    let cp = build(&logits(), 2, normalizer).unwrap();
    let wrong_size = Tensor::from_slice(&[1.0f64, 1.0, 1.0, 0.0]).view([1, 4]);
    assert!(matches!(cp.log_prob(&wrong_size), Err(Error::NotKHot { .. })));
    let fractional = Tensor::from_slice(&[1.0f64, 0.5, 0.5, 0.0]).view([1, 4]);
    assert!(matches!(cp.log_prob(&fractional), Err(Error::NotKHot { .. })));
    let wrong_shape = Tensor::from_slice(&[1.0f64, 1.0, 0.0]).view([1, 3]);
    assert!(matches!(cp.score(&wrong_shape), Err(Error::ActionsShape { .. })));
    let ok = cp.sample(2, Sampler::GumbelTopK, &mut Xoshiro256PlusPlus::seed_from_u64(0)).unwrap();
    assert_eq!(cp.log_prob(&ok).unwrap().size(), [2, 1]);
    let too_many = cp.sample(usize::MAX / 2, Sampler::Exact, &mut Xoshiro256PlusPlus::seed_from_u64(0)).unwrap_err();
    assert!(matches!(too_many, Error::TooManySamples { .. }), "{too_many}");
    // 4 TB of samples: within the address space, beyond any memory. An error, not an abort
    // (the host's buffer is reserved fallibly; libtorch's allocator fails with an error).
    let beyond_memory = cp.sample(1 << 40, Sampler::Exact, &mut Xoshiro256PlusPlus::seed_from_u64(0)).unwrap_err();
    match normalizer {
        Normalizer::Stable => assert!(matches!(beyond_memory, Error::TooManySamples { .. }), "{beyond_memory}"),
        _ => assert!(matches!(beyond_memory, Error::Torch(_)), "{beyond_memory}"),
    }
}
