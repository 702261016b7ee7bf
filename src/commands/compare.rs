//! `sfess-agent compare`: estimators side by side over seeds, as a sweep over estimator ×
//! seed.
//!
//! Every (estimator, seed) pair is an ordinary run folder `DIR/ESTIMATOR-seedSEED`; as in
//! the paper, SFESS + VR draws `--samples` samples per row and every other estimator one.
//! A later request on DIR may add pairs, never change one; complete pairs are kept,
//! interrupted ones resume, and a failure is recorded in the pair's `failed.txt` without
//! stopping the others. The report (see [`crate::sweep::report`]) follows.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde_json::{Map, Value};
use sfess_envs::registry::{EnvEntry, Registry};

use super::scheduler::SchedulerArgs;
use super::task_options::TaskOptions;
use crate::config::TrainConfig;
use crate::config::estimators::EstimatorName;
use crate::sweep::spec::{Axis, SweepSpec};
use crate::system::device::DeviceSpec;

/// Arguments of `compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Environment (see `sfess-agent envs`).
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// Estimators, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = EstimatorName::ALL)]
    pub estimators: Vec<EstimatorName>,
    /// Seeds, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [0u64, 1, 2, 3, 4])]
    pub seeds: Vec<u64>,
    /// Output folder: one run folder per (estimator, seed), and the tables and figures.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The task's options, passed to every run.
    #[command(flatten)]
    pub task: TaskOptions,
    /// Where and how the runs go.
    #[command(flatten)]
    pub scheduler: SchedulerArgs,
}

/// The sweep that `compare` runs: the task's options fixed, estimators × seeds as the grid.
///
/// # Errors
/// A seed or an estimator given twice.
pub fn sweep_of(
    env: &str,
    estimators: &[EstimatorName],
    seeds: &[u64],
    task: &TaskOptions,
    device: &DeviceSpec,
) -> anyhow::Result<SweepSpec> {
    for (i, seed) in seeds.iter().enumerate() {
        anyhow::ensure!(!seeds[..i].contains(seed), "--seeds gives seed {seed} twice");
    }
    for (i, estimator) in estimators.iter().enumerate() {
        anyhow::ensure!(!estimators[..i].contains(estimator), "--estimators gives {} twice", estimator.as_str());
    }
    let mut config = TrainConfig::of_env(env);
    task.apply(&mut config)?;
    if *device != DeviceSpec::Auto {
        config.device = device.to_string();
    }
    let Value::Object(mut fixed) = serde_json::to_value(&config)? else { anyhow::bail!("a configuration is a table") };
    // The grid's.
    fixed.remove("estimator");
    fixed.remove("seed");
    let one_sample = Map::from_iter([("samples".to_owned(), Value::from(1))]);
    Ok(SweepSpec {
        description: Some(format!("compare on {env}")),
        fixed,
        axes: vec![
            Axis { name: "estimator".into(), values: estimators.iter().map(|e| Value::from(e.as_str())).collect() },
            Axis { name: "seed".into(), values: seeds.iter().map(|&s| Value::from(s)).collect() },
        ],
        per_estimator: estimators
            .iter()
            .filter(|&&e| e != EstimatorName::SfessVr)
            .map(|&e| (e, one_sample.clone()))
            .collect(),
    })
}

/// The estimators that can run on `env`: all of `wanted` where its loss is differentiable;
/// on a black box only the score-function ones, with a note on what was skipped.
///
/// # Errors
/// None of `wanted` works on the black box.
pub fn estimators_for(env: &EnvEntry, wanted: &[EstimatorName]) -> anyhow::Result<Vec<EstimatorName>> {
    if env.differentiable {
        return Ok(wanted.to_vec());
    }
    let (kept, skipped): (Vec<EstimatorName>, Vec<EstimatorName>) =
        wanted.iter().partition(|name| crate::train::estimators::works_on_black_box(**name));
    if !skipped.is_empty() {
        let names: Vec<&str> = skipped.iter().map(|n| n.as_str()).collect();
        crate::system::messages::say(format_args!(
            "compare: {} is a black box; skipping {} (they need a differentiable loss)",
            env.name,
            names.join(", ")
        ));
    }
    anyhow::ensure!(
        !kept.is_empty(),
        "{} is a black box: compare {} on it",
        env.name,
        crate::train::estimators::black_box_names().replace(" or ", " and ")
    );
    Ok(kept)
}

/// `sfess-agent compare`: runs the comparison with `--device` `device` (`auto` when not
/// given) and `--threads` `threads`, then writes its tables to `stdout`.
///
/// # Errors
/// Empty `--seeds` or `--estimators`, options that do not check, and the sweep's errors
/// (a failed run among them, after the tables).
pub fn run(
    args: &CompareArgs,
    device: &DeviceSpec,
    threads: Option<usize>,
    registry: &Registry,
    stdout: &mut dyn Write,
) -> anyhow::Result<()> {
    let scheduler = args.scheduler.scheduler("compare", threads, false)?;
    anyhow::ensure!(
        !args.seeds.is_empty() && !args.estimators.is_empty(),
        "--seeds and --estimators must not be empty"
    );
    let estimators = estimators_for(registry.get(&args.env)?, &args.estimators)?;
    let spec = sweep_of(&args.env, &estimators, &args.seeds, &args.task, device)?;
    let request = crate::sweep::Request {
        out: args.out.clone(),
        description: spec.description.clone(),
        tasks: spec.combinations(registry)?,
        command: "compare",
    };
    super::sweep::finish(&crate::sweep::execute(&request, &scheduler, registry)?, &args.out, stdout)
}
