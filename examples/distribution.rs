//! The k-subset distribution as a library: exact statistics, exact samples, and a
//! log-probability that back-propagates the score `z − π` into the logits.
//!
//! ```text
//! cargo run --release --example distribution      (after `source scripts/env.sh`)
//! ```

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use sfess_agents::{ConditionalPoisson, Sampler};
use tch::{Kind, Tensor};

fn main() -> Result<(), sfess_agents::ConditionalPoissonError> {
    // Two rows of logits, subsets of size k = 2 out of n = 5.
    let logits = Tensor::from_slice(&[2.0f64, 0.5, -1.0, -0.3, 1.2, 0.0, 0.0, 0.0, 0.0, 0.0])
        .view([2, 5])
        .set_requires_grad(true);
    let policy = ConditionalPoisson::new(&logits, 2)?;
    println!("log e_k(exp η) per row: {:?}", policy.log_normalizer_values());
    println!("inclusion probabilities:");
    policy.marginals().print();
    println!("entropy {:?}, KL to uniform {:?}", policy.entropy_values(), policy.kl_to_uniform_values());

    // 4 exact samples per row: [S, B, n], each k-hot.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let actions = policy.sample(4, Sampler::Exact, &mut rng)?;
    // A REINFORCE-style surrogate: its gradient is Σ_s f(z_s) (z_s − π).
    let rewards = actions.narrow(2, 0, 1).squeeze_dim(2); // reward: item 0 chosen
    let surrogate = (rewards.detach() * policy.log_prob(&actions)?).sum(Kind::Double);
    surrogate.backward();
    println!("gradient of the surrogate with respect to the logits:");
    logits.grad().print();
    Ok(())
}
