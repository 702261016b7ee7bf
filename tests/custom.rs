//! Custom reward environments through the library: the closure form learns, the policy
//! flag picks logits or an MLP, and black boxes refuse the pathwise estimators.

use sfess_agent::config::PolicyName;
use sfess_agent::config::estimators::EstimatorName;
use sfess_agent::{Agent, AgentOptions};
use sfess_envs::custom::RewardEnv;
use sfess_envs::{KHotSpace, Phase};
use tch::{Kind, Tensor};

/// Hidden values 0, 1/30, …, 29/30 in a scrambled order: item i is worth (7i mod 30)/30.
fn hidden_values() -> Tensor {
    let values: Vec<f32> = (0..30).map(|i| ((7 * i) % 30) as f32 / 30.0).collect();
    Tensor::from_slice(&values)
}

fn hidden_values_env() -> RewardEnv {
    let values = hidden_values();
    RewardEnv::new("hidden-values", KHotSpace::new(30, 5).unwrap(), move |actions: &Tensor| actions.mv(&values))
}

#[test]
fn a_closure_environment_learns_the_k_items_with_the_highest_hidden_values() {
    let mut agent = Agent::new(hidden_values_env(), AgentOptions::default()).unwrap();
    let rewards = agent.train(300).unwrap();
    let mean = |r: &[f64]| r.iter().sum::<f64>() / r.len() as f64;
    // Uniform subsets score 5 · 14.5/30 ≈ 2.42 on average; the best five score (29+28+27+26+25)/30 = 4.5.
    let (first, last) = (mean(&rewards[..20]), mean(&rewards[280..]));
    assert!(first < 3.0, "the first steps already score {first}");
    assert!(last > 4.3, "after 300 steps the samples score only {last}");
    // Items worth 25/30 … 29/30: 7i ≡ 25, 26, 27, 28, 29 (mod 30) → i = 25, 8, 21, 4, 17.
    assert_eq!(agent.best_subset().unwrap(), vec![4, 8, 17, 21, 25]);
    let test = agent.evaluate(Phase::Test).unwrap()["reward"];
    assert!((test - 4.5).abs() < 1e-5, "{test}");
    let random = agent.baselines(Phase::Test).unwrap()["random"];
    assert!((random - 2.42).abs() < 0.3, "{random}");
}

#[test]
fn the_same_seed_gives_the_same_rewards() {
    let run = || Agent::new(hidden_values_env(), AgentOptions::default()).unwrap().train(20).unwrap();
    assert_eq!(run(), run());
}

#[test]
fn black_boxes_refuse_pathwise_estimators_and_name_the_ones_that_work() {
    for estimator in [EstimatorName::Gs, EstimatorName::Stgs, EstimatorName::Simple, EstimatorName::Imle] {
        let options = AgentOptions { estimator, ..AgentOptions::default() };
        let message = format!("{:#}", Agent::new(hidden_values_env(), options).err().unwrap());
        assert!(message.contains("is a black box; use sfess-vr or sfess"), "{message}");
    }
    // Declared differentiable, the same closure trains with gs.
    let options = AgentOptions { estimator: EstimatorName::Gs, samples: 1, ..AgentOptions::default() };
    let mut agent = Agent::new(hidden_values_env().differentiable(), options).unwrap();
    agent.train(5).unwrap();
}

#[test]
fn an_mlp_policy_needs_an_observation() {
    let options = AgentOptions { policy: PolicyName::Mlp, ..AgentOptions::default() };
    let message = format!("{:#}", Agent::new(hidden_values_env(), options).err().unwrap());
    assert!(message.contains("--policy mlp reads the observation"), "{message}");
}

#[test]
fn an_mlp_policy_learns_a_contextual_reward() {
    // Three kinds of context (one-hot); kind c rewards items 3c, 3c+1, 3c+2 of 9 (k = 3).
    let env = RewardEnv::contextual(
        "contextual",
        KHotSpace::new(9, 3).unwrap(),
        32,
        3,
        |rng, rows| {
            let kinds: Vec<i64> = (0..rows).map(|_| (rng.next_u64() % 3) as i64).collect();
            Tensor::from_slice(&kinds).one_hot(3).to_kind(Kind::Float)
        },
        |actions: &Tensor, contexts: &Tensor| {
            let wanted = contexts.repeat_interleave_self_int(3, Some(1), None::<i64>);
            (actions * wanted).sum_dim_intlist(-1, false, Kind::Float)
        },
    )
    .unwrap();
    let options = AgentOptions { policy: PolicyName::Mlp, learning_rate: Some(1e-2), ..AgentOptions::default() };
    let mut agent = Agent::new(env, options).unwrap();
    let random = agent.baselines(Phase::Validation).unwrap()["random"];
    // A uniform 3-subset of 9 holds one wanted item on average.
    assert!((random - 1.0).abs() < 0.1, "{random}");
    agent.train(300).unwrap();
    let learned = agent.evaluate(Phase::Validation).unwrap()["reward"];
    assert!(learned > 2.9, "the MLP policy scores {learned} of 3 after 300 steps");
}
