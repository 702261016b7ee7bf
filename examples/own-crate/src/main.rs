//! Learns which 5 of 40 items have the highest hidden values, seeing only the reward of each
//! subset it tries (a closure), with `sfess_agent::Agent`.

use sfess_agent::{Agent, AgentOptions};
use sfess_envs::custom::RewardEnv;
use sfess_envs::{KHotSpace, Phase};
use tch::Tensor;

fn main() -> anyhow::Result<()> {
    let steps: u64 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(|_| anyhow::anyhow!("usage: own-crate [STEPS], got {arg:?}"))?,
        None => 300,
    };
    anyhow::ensure!(steps > 0, "usage: own-crate [STEPS], with STEPS > 0");
    let hidden: Vec<f32> = (0..40).map(|i| ((i * 17) % 40) as f32 / 10.0).collect();
    let values = Tensor::from_slice(&hidden);
    let reward = move |actions: &Tensor| actions.mv(&values); // actions: [batch, 40] k-hot
    let env = RewardEnv::new("hidden-values", KHotSpace::new(40, 5)?, reward);
    let mut agent = Agent::new(env, AgentOptions::default())?;
    let rewards = agent.train(steps)?;
    let mut best: Vec<usize> = (0..hidden.len()).collect();
    best.sort_by(|a, b| hidden[*b].total_cmp(&hidden[*a]));
    best.truncate(5);
    best.sort_unstable();
    let (first, last) = (rewards.first().unwrap_or(&0.0), rewards.last().unwrap_or(&0.0));
    println!("mean sampled reward: first step {first:.2}, last step {last:.2}");
    println!("learned subset {:?} scores {:.2}", agent.best_subset()?, agent.evaluate(Phase::Test)?["reward"]);
    println!("best subset    {best:?}");
    Ok(())
}
