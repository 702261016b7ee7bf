//! Bad input gives a typed error with a clear message, never a panic.

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use sfess_agents::{ConditionalPoisson, ConditionalPoissonError as Error, Sampler};
use tch::{Kind, Tensor};

fn logits() -> Tensor {
    Tensor::from_slice(&[0.1f64, -2.0, 1.5, 0.3]).view([1, 4])
}

#[test]
fn k_out_of_range() {
    for k in [-1, 5] {
        let err = ConditionalPoisson::new(&logits(), k).unwrap_err();
        assert!(matches!(err, Error::KOutOfRange { n: 4, .. }), "{err}");
        assert!(err.to_string().contains("out of range"));
    }
}

#[test]
fn non_finite_logits_name_their_position() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let t = Tensor::from_slice(&[0.0, 1.0, 2.0, 3.0, bad, 0.0]).view([2, 3]);
        let err = ConditionalPoisson::new(&t, 1).unwrap_err();
        assert!(matches!(err, Error::NonFiniteLogit { row: 1, index: 1, .. }), "{err}");
    }
}

#[test]
fn shapes_and_kinds() {
    let vector = Tensor::from_slice(&[0.0f64, 1.0]);
    assert!(matches!(ConditionalPoisson::new(&vector, 1), Err(Error::LogitsShape { .. })));
    let empty = Tensor::zeros([2, 0], (Kind::Double, tch::Device::Cpu));
    assert!(matches!(ConditionalPoisson::new(&empty, 0), Err(Error::LogitsShape { .. })));
    let ints = Tensor::from_slice(&[1i64, 2]).view([1, 2]);
    assert!(matches!(ConditionalPoisson::new(&ints, 1), Err(Error::LogitsKind { .. })));
}

#[test]
fn actions_must_be_k_hot_and_fit_the_logits() {
    let cp = ConditionalPoisson::new(&logits(), 2).unwrap();
    let wrong_size = Tensor::from_slice(&[1.0f64, 1.0, 1.0, 0.0]).view([1, 4]);
    assert!(matches!(cp.log_prob(&wrong_size), Err(Error::NotKHot { .. })));
    let fractional = Tensor::from_slice(&[1.0f64, 0.5, 0.5, 0.0]).view([1, 4]);
    assert!(matches!(cp.log_prob(&fractional), Err(Error::NotKHot { .. })));
    let wrong_shape = Tensor::from_slice(&[1.0f64, 1.0, 0.0]).view([1, 3]);
    assert!(matches!(cp.score(&wrong_shape), Err(Error::ActionsShape { .. })));
    let ok = cp.sample(2, Sampler::GumbelTopK, &mut Xoshiro256PlusPlus::seed_from_u64(0)).unwrap();
    assert_eq!(cp.log_prob(&ok).unwrap().size(), [2, 1]);
}
