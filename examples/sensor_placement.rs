//! Sensor placement as a black box: choose k of 256 grid points from which smooth fields are
//! reconstructed by least squares in r principal components; the reward is minus the mean
//! squared reconstruction error. SFESS + VR against QR pivoting (Manohar et al. 2018) and
//! random sensors.
//!
//!     cargo run --release --example sensor_placement [STEPS]
use sfess_agent::{Agent, AgentOptions};
use sfess_envs::Phase;
use sfess_envs::sensor::{Fields, SensorConfig, SensorPlacement};
use tch::Device;

fn main() -> anyhow::Result<()> {
    let steps: u64 = std::env::args().nth(1).map_or(Ok(1000), |s| s.parse())?;
    let config = SensorConfig { sensors: 20, modes: 10, batch: 128 };
    let fields = Fields::Synthetic { side: 16, seed: 0 };
    let env = SensorPlacement::new("sensor-placement-synthetic", fields, config, Device::Cpu)?;
    println!("{} PCA modes explain {:.1}% of the fields' variance", config.modes, 100.0 * env.explained_variance());
    let options = AgentOptions { samples: 32, ..AgentOptions::default() };
    let mut agent = Agent::new(env, options)?;
    let report = |agent: &mut Agent| -> anyhow::Result<()> {
        println!("step {:>5}: validation MSE {:.5}", agent.steps(), agent.evaluate(Phase::Validation)?["mse"]);
        Ok(())
    };
    report(&mut agent)?;
    for _ in 0..5 {
        agent.train(steps / 5)?;
        report(&mut agent)?;
    }
    let baselines = agent.baselines(Phase::Test)?;
    println!("test MSE: learned {:.5}", agent.evaluate(Phase::Test)?["mse"]);
    println!("          QR pivoting {:.5}, random sensors {:.5}", baselines["qr-pivoting"], baselines["random"]);
    println!("sensors: {:?}", agent.best_subset()?);
    Ok(())
}
