//! `sfess-agent envs [NAME]`: the registered environments as a table, or one
//! environment's defaults and options (without loading any data or starting any process).

use std::io::Write;

use clap::Args;
use sfess_envs::registry::Registry;

/// Arguments of `envs`.
#[derive(Debug, Clone, Args)]
pub struct EnvsArgs {
    /// One environment, with its options.
    pub name: Option<String>,
}

/// `sfess-agent envs`: the table, or NAME's page, on `stdout`.
///
/// # Errors
/// No environment named NAME; `stdout` cannot be written.
pub fn run(args: &EnvsArgs, registry: &Registry, stdout: &mut dyn Write) -> anyhow::Result<()> {
    let text = match &args.name {
        Some(name) => environment_page(registry, name)?,
        None => environments_table(registry),
    };
    super::write_out(stdout, &text, "the table")
}

/// `sfess-agent envs`: one line per registered environment (without loading any data or
/// starting any process).
fn environments_table(registry: &Registry) -> String {
    let mut out = String::from(
        "| env | k | data | metric | differentiable loss | options | task |\n|---|---|---|---|---|---|---|\n",
    );
    for entry in registry.entries() {
        let data = entry.data.map_or("none", |set| set.name());
        let better = if entry.metric.higher_is_better { "higher is better" } else { "lower is better" };
        let differentiable = if entry.differentiable { "yes" } else { "no (black box)" };
        out += &format!(
            "| {} | {} | {data} | {} ({better}) | {differentiable} | {} | {} |\n",
            entry.name,
            entry.default_k,
            entry.metric.key,
            entry.option_names(),
            entry.description
        );
    }
    out + "\nsfess-agent envs NAME shows an environment's options; set them with --env-option NAME=VALUE.\n"
}

/// `sfess-agent envs NAME`: one environment, its defaults and its options.
///
/// # Errors
/// No environment of that name.
fn environment_page(registry: &Registry, name: &str) -> anyhow::Result<String> {
    let entry = registry.get(name)?;
    let lr = match entry.default_learning_rate {
        Some(lr) => lr.to_string(),
        None => "the policy's: 0.05 for free logits, 1e-3 for an MLP".to_owned(),
    };
    let policy = if entry.policy_is_chosen() {
        "--policy logits (default), mlp, or (episodes) mlp-action"
    } else {
        "the paper's network"
    };
    let mut out = format!("{}: {}\n\n", entry.name, entry.description);
    out += &format!("- data: {}\n", entry.data.map_or("none", |set| set.name()));
    out += &format!("- default k: {}\n- default learning rate: {lr}\n- policy: {policy}\n", entry.default_k);
    out += &format!(
        "- metric: {} ({})\n- loss differentiable in the actions: {}\n",
        entry.metric.key,
        if entry.metric.higher_is_better { "higher is better" } else { "lower is better" },
        if entry.differentiable { "yes (every estimator)" } else { "no: a black box (sfess, sfess-vr)" }
    );
    if !entry.baselines.is_empty() {
        out += &format!("- baselines: {}\n", entry.baselines.join(", "));
    }
    if entry.options.is_empty() {
        out += "\nNo options of its own.\n";
    } else {
        out += &format!(
            "\nOptions (--env-option NAME=VALUE, or under \"env_options\": {{\"{}\": {{...}}}} in a config file):\n\n",
            entry.name
        );
        out += &entry.options_table();
    }
    Ok(out)
}
