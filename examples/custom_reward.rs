//! Your own black-box reward in a closure: find the k of n items with the highest hidden
//! values, seeing only a noisy score of each subset tried.
//!
//!     cargo run --release --example custom_reward [STEPS]
use sfess_agent::{Agent, AgentOptions};
use sfess_envs::{
    KHotSpace, Phase,
    custom::{Call, RewardEnv},
};
use tch::{Device, Kind, Tensor};

fn main() -> anyhow::Result<()> {
    let (n, k) = (100, 10);
    let steps: u64 = std::env::args().nth(1).map_or(Ok(500), |s| s.parse())?;
    tch::manual_seed(7);
    let hidden = Tensor::randn([n], (Kind::Float, Device::Cpu));
    let (values, exact) = (hidden.shallow_clone(), hidden.shallow_clone());
    // The reward of each subset (a row of `actions`, [batch, n]): its values' sum plus noise,
    // drawn from the step's own generator (so the same seed gives the same run).
    let reward = move |actions: &Tensor, call: &mut Call| {
        let sum = actions.mv(&values);
        &sum + call.normal_like(&sum) * 0.5
    };
    let env = RewardEnv::with_call("hidden-values", KHotSpace::new(n as usize, k)?, reward)
        .evaluate_with(move |actions: &Tensor, _: &mut Call| actions.mv(&exact)); // evaluation: no noise
    let mut agent = Agent::new(env, AgentOptions::default())?;
    println!("random subsets score {:.2}", agent.baselines(Phase::Test)?["random"]);
    for _ in 0..5 {
        let rewards = agent.train(steps / 5)?;
        let mean = rewards.iter().sum::<f64>() / rewards.len().max(1) as f64;
        println!("step {:>4}: mean sampled reward {mean:6.2}", agent.steps());
    }
    let best = hidden.topk(k as i64, 0, true, true).1;
    let best: Vec<i64> = Vec::try_from(best.sort(0, false).0)?;
    println!("learned subset {:?} scores {:.2}", agent.best_subset()?, agent.evaluate(Phase::Test)?["reward"]);
    println!("best subset    {best:?}");
    Ok(())
}
