//! A Gymnasium-style driver stepping a k-hot environment one action at a time, through
//! `gymnasium_rs::core::Env`: random subsets against maximum coverage.
//!
//!     cargo run -p sfess-envs --features gymnasium --example gymnasium_driver
use gymnasium_rs::core::{Env, Space};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use sfess_envs::coverage::{CoverageInstance, MaxCoverage};
use sfess_envs::env::distinct_indices;
use sfess_envs::gymnasium::GymnasiumEnv;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (sets, k) = (50, 5);
    let mut env = GymnasiumEnv::new(MaxCoverage::new("max-coverage", CoverageInstance::random(sets, 500, 0)?, k)?);
    let Space::Box { low, .. } = env.action_space() else { return Err("expected a Box action space".into()) };
    println!("action space: Box of {} entries in [0, 1], k = {k} ones", low.len());
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let mut best = 0.0f32;
    for episode in 0..10 {
        let (_observation, _info) = env.reset_seed(episode);
        let mut action = ndarray::Array1::zeros(sets);
        for i in distinct_indices(&mut rng, sets, k) {
            action[i as usize] = 1.0;
        }
        let (_, reward, terminated, truncated, info) = env.step(action);
        best = best.max(reward);
        let rows = info["rewards"].as_array().map_or(0, Vec::len);
        println!("episode {episode}: coverage {reward:.3}, terminated {terminated}, truncated {truncated}, {rows} row");
    }
    println!("best random coverage {best:.3}; an action with 6 ones is refused:");
    let mut bad = ndarray::Array1::zeros(sets);
    bad.slice_mut(ndarray::s![..6]).fill(1.0);
    env.reset_default();
    println!("  {:?}", env.step(bad).4["error"]);
    Ok(())
}
