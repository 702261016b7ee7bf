//! `ConditionalPoisson::sample_from_torch_generator`: the draws follow libtorch's own
//! generator, as a PyTorch program's do. In a test binary of its own, because libtorch's
//! generator is global to the process and other tests reseed it.

use sfess_agents::{ConditionalPoisson, Normalizer, Sampler};
use tch::{Kind, Tensor};

#[test]
fn draws_repeat_after_manual_seed_advance_the_generator_and_follow_the_law() {
    let logits = Tensor::from_slice(&[0.3f64, -1.0, 2.0, 0.0, 0.5, 1.0, -0.2, 0.7]).view([2, 4]);
    for normalizer in [Normalizer::Stable, Normalizer::Parallel] {
        let law = ConditionalPoisson::with_normalizer(&logits, 2, normalizer).unwrap();
        tch::manual_seed(11);
        let first = law.sample_from_torch_generator(4000, Sampler::Exact).unwrap();
        let after_first = Tensor::rand([1], (Kind::Double, tch::Device::Cpu)).double_value(&[0]);
        tch::manual_seed(11);
        let again = law.sample_from_torch_generator(4000, Sampler::Exact).unwrap();
        assert!(first.equal(&again), "{normalizer:?}: the same seed gives the same draws");
        let next = law.sample_from_torch_generator(4000, Sampler::Exact).unwrap();
        assert!(!first.equal(&next), "{normalizer:?}: a second call draws anew");
        // The call advanced libtorch's generator (it did not reseed it): what follows the
        // first call is not what follows the seed alone.
        tch::manual_seed(11);
        let after_seed = Tensor::rand([1], (Kind::Double, tch::Device::Cpu)).double_value(&[0]);
        assert_ne!(after_first, after_seed, "{normalizer:?}");
        // k-hot, with inclusion frequencies within 5 standard errors of π.
        assert!(first.sum_dim_intlist(-1, false, Kind::Double).eq(2.0).all().int64_value(&[]) == 1);
        let frequencies = Vec::<f64>::try_from(first.mean_dim(0, false, Kind::Double).view([-1])).unwrap();
        let marginals = law.marginal_values();
        for (f, p) in frequencies.iter().zip(&marginals) {
            let standard_error = (p * (1.0 - p) / 4000.0).sqrt();
            assert!((f - p).abs() < 5.0 * standard_error, "{normalizer:?}: frequency {f} against π = {p}");
        }
    }
}
