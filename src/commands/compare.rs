//! `sfess-agent compare` and `sfess-agent report`: estimators side by side over seeds.
//!
//! `compare` runs every (estimator, seed) pair as an ordinary run folder
//! `DIR/ESTIMATOR-seedSEED` (a child `sfess-agent train` process each, up to `--jobs` at a
//! time), skips pairs whose run is complete, resumes interrupted ones from their
//! checkpoint, and records a failure (a refused estimator, a NaN, a crash) in the pair's
//! `failed.txt` without stopping the others. `report` rebuilds every output from the run
//! folders alone: `table.md`, `table.csv`, `summary.json`, and the figures `curves.{svg,png}`
//! (validation metric against steps, mean ± one standard deviation over seeds) and
//! `speed.{svg,png}` (seconds per training step).

use std::collections::BTreeMap;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::cli::TaskOptions;
use crate::config::TrainConfig;
use crate::run::files::write_atomically;
use crate::run::lock::FolderLock;
use crate::run::signals::{Interrupt, Interrupted};
use crate::run::{Record, SUMMARY, Summary};
use crate::system::device::DeviceSpec;
use crate::train::estimators::EstimatorName;
use sfess_envs::registry::{EnvEntry, Registry};

/// Which pair a run folder holds, written by `compare` before the run starts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pair {
    /// Environment.
    pub env: String,
    /// Estimator.
    pub estimator: EstimatorName,
    /// Seed.
    pub seed: u64,
}

const PAIR: &str = "pair.json";
const REQUEST: &str = "compare.json";
const FAILED: &str = "failed.txt";

impl Pair {
    /// The pair's run folder under `dir`.
    pub fn dir(&self, root: &Path) -> PathBuf {
        root.join(format!("{}-seed{}", self.estimator.as_str(), self.seed))
    }
}

/// What to compare: the pairs and the `train` options every run gets.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Environment.
    pub env: String,
    /// Estimators.
    pub estimators: Vec<EstimatorName>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Runs at a time.
    pub jobs: usize,
    /// Output folder.
    pub out: PathBuf,
    /// The task's options, passed to every run (`--steps 2000`, `--samples 32`, …).
    pub task: TaskOptions,
    /// `--device` for every run.
    pub device: String,
    /// `--threads` for every run: its share of the CPUs (see [`crate::system::threads::share`]).
    pub threads_per_run: usize,
    /// Set by SIGINT or SIGTERM: forwarded to the running children.
    pub interrupt: Interrupt,
    /// The environments (the children are this same binary, so they have the same).
    pub registry: Arc<Registry>,
}

impl Plan {
    /// The configuration `train` gives the pair's run (as its `config.json` records it).
    ///
    /// # Errors
    /// The current folder cannot be read (to make paths absolute).
    pub fn config_of(&self, estimator: EstimatorName, seed: u64) -> anyhow::Result<TrainConfig> {
        let mut config = TrainConfig { env: self.env.clone(), estimator, seed, ..TrainConfig::default() };
        self.task.apply(&mut config);
        if estimator != EstimatorName::SfessVr {
            config.samples = 1;
        }
        if self.device != DeviceSpec::Auto.to_string() {
            config.device.clone_from(&self.device);
        }
        config.with_absolute_paths(&self.registry)?.resolved(&self.registry)
    }
}

/// The request a comparison folder was made for (its `compare.json`): the configuration
/// of its first pair; every later request on the folder must match it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Request {
    /// The configuration of sfess-vr's run with seed 0 under this request.
    config: TrainConfig,
}

/// Runs the plan, then the report; returns the report's Markdown table.
///
/// # Errors
/// The output folder is locked by another compare, holds runs of another request, cannot be
/// written; the binary cannot start a child run; a signal ([`Interrupted`], once the
/// running children have checkpointed and stopped). Failed runs are not errors: they are
/// reported.
pub fn compare(plan: &Plan) -> anyhow::Result<String> {
    refuse_duplicates(plan)?;
    std::fs::create_dir_all(&plan.out).with_context(|| format!("creating {}", plan.out.display()))?;
    let holder = std::env::args().collect::<Vec<_>>().join(" ");
    let _lock = FolderLock::acquire(&plan.out, &holder)?;
    refuse_another_request(plan)?;
    let exe = std::env::current_exe().context("locating the sfess-agent binary")?;
    let mut queue = Vec::new();
    for &estimator in &plan.estimators {
        for &seed in &plan.seeds {
            let pair = Pair { env: plan.env.clone(), estimator, seed };
            let dir = pair.dir(&plan.out);
            if dir.join(SUMMARY).exists() {
                continue;
            }
            queue.push(pair);
        }
    }
    let total = queue.len();
    eprintln!(
        "compare: {} runs complete already, {total} to run, {} at a time with {} threads each",
        plan.estimators.len() * plan.seeds.len() - total,
        plan.jobs,
        plan.threads_per_run
    );
    let queue = Arc::new(Mutex::new(queue.into_iter().rev().collect::<Vec<_>>()));
    let finished = Arc::new(Mutex::new(0usize));
    let launched = Arc::new(Mutex::new(0usize));
    let started = Instant::now();
    std::thread::scope(|scope| {
        // No more workers than runs (`--jobs` may say anything).
        for _ in 0..plan.jobs.clamp(1, total.max(1)) {
            let (queue, finished, launched, exe) =
                (Arc::clone(&queue), Arc::clone(&finished), Arc::clone(&launched), exe.clone());
            scope.spawn(move || {
                loop {
                    if plan.interrupt.received().is_some() {
                        return;
                    }
                    let Some(pair) = queue.lock().map(|mut q| q.pop()).ok().flatten() else { return };
                    *launched.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                    let outcome = run_pair(&exe, plan, &pair);
                    let mut done = finished.lock().unwrap_or_else(|e| e.into_inner());
                    *done += 1;
                    let left = total - *done;
                    let running = launched.lock().map_or(0, |l| *l) - *done;
                    // With every worker busy, the remaining runs take about as long per run as the finished ones.
                    let eta = started.elapsed().as_secs_f64() / *done as f64 * left as f64;
                    let status = match outcome {
                        Ok(PairOutcome::Done) => "done".to_owned(),
                        Ok(PairOutcome::Stopped) => "stopped by the signal (its checkpoint is kept)".to_owned(),
                        Err(e) => format!("failed: {e:#}"),
                    };
                    eprintln!(
                        "compare: {}-seed{} {status} | {} finished, {running} running, {} waiting, ETA {:.0} s",
                        pair.estimator.as_str(),
                        pair.seed,
                        *done,
                        left - running,
                        eta
                    );
                }
            });
        }
    });
    if let Some(signal) = plan.interrupt.received() {
        let where_ = format!(
            "after its running runs checkpointed and stopped; rerun the same command to continue (complete runs \
             are kept, stopped ones resume): {}",
            plan.out.display()
        );
        return Err(Interrupted { signal, what: "compare".into(), where_ }.into());
    }
    report(&plan.out, &plan.registry)
}

/// The same estimator or seed twice would train the same pair twice.
fn refuse_duplicates(plan: &Plan) -> anyhow::Result<()> {
    for (i, seed) in plan.seeds.iter().enumerate() {
        anyhow::ensure!(!plan.seeds[..i].contains(seed), "--seeds gives seed {seed} twice");
    }
    for (i, estimator) in plan.estimators.iter().enumerate() {
        anyhow::ensure!(!plan.estimators[..i].contains(estimator), "--estimators gives {} twice", estimator.as_str());
    }
    Ok(())
}

/// Records the request in a new comparison folder; in one that has a request (or runs),
/// refuses a request that differs, naming the settings and the pairs.
fn refuse_another_request(plan: &Plan) -> anyhow::Result<()> {
    let path = plan.out.join(REQUEST);
    let request = Request { config: plan.config_of(EstimatorName::SfessVr, 0)? };
    let another = |what: String| {
        anyhow::anyhow!(
            "{} holds a comparison made with other settings: {what}; repeat that request to continue it, or \
             choose another --out",
            plan.out.display()
        )
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let recorded: Request = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a comparison request", path.display()))?;
            if let Some(changed) = crate::config::changed_flags(&recorded.config, &request.config, "it") {
                return Err(another(changed));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    // Each pair already started must hold the configuration this request gives it.
    let mut differing = Vec::new();
    for entry in std::fs::read_dir(&plan.out).with_context(|| format!("reading {}", plan.out.display()))? {
        let dir = entry?.path();
        let Ok(text) = std::fs::read_to_string(dir.join(PAIR)) else { continue };
        let pair: Pair =
            serde_json::from_str(&text).with_context(|| format!("{} is not a valid pair", dir.join(PAIR).display()))?;
        if pair.env != plan.env {
            differing.push(format!("{} (a run of {})", dir.display(), pair.env));
            continue;
        }
        let Ok(recorded) = crate::run::read_config(&dir, &plan.registry) else { continue };
        let recorded = recorded.with_absolute_paths(&plan.registry)?.resolved(&plan.registry)?;
        if let Some(changed) =
            crate::config::changed_flags(&recorded, &plan.config_of(pair.estimator, pair.seed)?, "it")
        {
            differing.push(format!("{} ({changed})", dir.display()));
        }
    }
    if !differing.is_empty() {
        return Err(another(format!("its runs {}", differing.join("; "))));
    }
    write_atomically(&path, (serde_json::to_string_pretty(&request)? + "\n").as_bytes())
}

/// How a pair's child run ended, short of a failure.
enum PairOutcome {
    /// Complete.
    Done,
    /// Stopped by the signal compare forwarded (it wrote its checkpoint).
    Stopped,
}

/// The pause between two looks at a running child.
const POLL: Duration = Duration::from_millis(20);

/// Runs one pair as a child `train`, resuming its folder when it holds a started run; a
/// failure is written to the folder's `failed.txt`. A signal to compare is forwarded to
/// the child, which checkpoints and stops.
fn run_pair(exe: &Path, plan: &Plan, pair: &Pair) -> anyhow::Result<PairOutcome> {
    let dir = pair.dir(&plan.out);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _ = std::fs::remove_file(dir.join(FAILED));
    write_atomically(&dir.join(PAIR), (serde_json::to_string_pretty(pair)? + "\n").as_bytes())?;
    let mut command = Command::new(exe);
    command.arg("train").arg("--threads").arg(plan.threads_per_run.to_string());
    command.args(["--quiet", "--json"]);
    // In its own process group, so that a Ctrl-C at the terminal reaches compare alone
    // (which forwards it once: a second signal would stop the child at once, without its
    // checkpoint); if compare dies without forwarding, the child gets SIGTERM (see `cli`).
    command.process_group(0).env(PARENT_ENV, std::process::id().to_string());
    if crate::run::run_file_in(&dir).is_some() {
        // A resumed run keeps its configuration (checked against this request already).
        command.arg("--resume").arg(&dir);
    } else {
        command.arg("--device").arg(&plan.device);
        command.args(["--env", pair.env.as_str(), "--estimator", pair.estimator.as_str()]);
        command.arg("--seed").arg(pair.seed.to_string()).arg("--out").arg(&dir).args(flags_for(plan, pair.estimator));
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting a child sfess-agent train")?;
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = std::io::Read::read_to_end(&mut pipe, &mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    });
    let mut forwarded = false;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for a child sfess-agent train")? {
            break status;
        }
        if let (false, Some(signal)) = (forwarded, plan.interrupt.received()) {
            // Not reaped yet, so the pid is still the child's.
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::try_from(signal).ok());
            forwarded = true;
        }
        std::thread::sleep(POLL);
    };
    let stderr = stderr.and_then(|reader| reader.join().ok()).unwrap_or_default();
    if status.success() {
        return Ok(PairOutcome::Done);
    }
    if forwarded && status.code().is_some_and(|code| code > 128) {
        return Ok(PairOutcome::Stopped);
    }
    let reason = match (stderr.lines().rev().find(|l| !l.trim().is_empty()), status.signal()) {
        (_, Some(signal)) => format!("killed by {} (signal {signal})", crate::run::signals::signal_name(signal)),
        (Some(line), None) => line.trim_start_matches("error: ").to_owned(),
        (None, None) => format!("it exited with {status} and no message"),
    };
    write_atomically(&dir.join(FAILED), format!("{reason}\n").as_bytes())?;
    anyhow::bail!("{reason}")
}

/// The environment variable that tells a child `train` the pid of the compare that
/// started it.
pub const PARENT_ENV: &str = "SFESS_AGENT_COMPARE_PID";

/// The `train` flags of one estimator's runs: as the paper, SFESS + VR draws `--samples`
/// samples per row (32 by default) and every other estimator one.
fn flags_for(plan: &Plan, estimator: EstimatorName) -> Vec<String> {
    let mut flags = plan.task.to_flags();
    if estimator != EstimatorName::SfessVr {
        if let Some(i) = flags.iter().position(|f| f == "--samples") {
            flags.drain(i..=i + 1);
        }
        flags.extend(["--samples".to_owned(), "1".to_owned()]);
    }
    flags
}

/// One estimator's line of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Estimator.
    pub estimator: String,
    /// Mean of the test metric over the completed seeds.
    pub mean: Option<f64>,
    /// Standard deviation over seeds (`n − 1`), 0 for one seed.
    pub std: Option<f64>,
    /// Completed seeds.
    pub seeds: Vec<u64>,
    /// Failed seeds with their reasons.
    pub failed: BTreeMap<u64, String>,
    /// Mean seconds per training step.
    pub seconds_per_step: Option<f64>,
    /// Their standard deviation over seeds.
    pub seconds_per_step_std: Option<f64>,
    /// The paper's mean and standard deviation for the same task and configuration.
    pub paper: Option<(f64, f64)>,
}

/// `summary.json` of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct ComparisonSummary {
    /// Environment.
    pub env: String,
    /// The metric tabulated (test split).
    pub metric: String,
    /// Whether larger is better.
    pub higher_is_better: bool,
    /// One row per estimator.
    pub estimators: Vec<Row>,
}

struct RunData {
    pair: Pair,
    summary: Option<Summary>,
    failed: Option<String>,
    validation: Vec<(u64, f64)>,
    k: usize,
    /// The run's configuration, when it can be read.
    config: Option<TrainConfig>,
}

fn read_runs(dir: &Path, registry: &Registry) -> anyhow::Result<Vec<RunData>> {
    let mut runs = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let Ok(text) = std::fs::read_to_string(path.join(PAIR)) else { continue };
        let pair: Pair = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid pair", path.join(PAIR).display()))?;
        let summary =
            std::fs::read_to_string(path.join(SUMMARY)).ok().and_then(|t| serde_json::from_str::<Summary>(&t).ok());
        let failed = std::fs::read_to_string(path.join(FAILED)).ok().map(|t| t.trim().to_owned());
        let entry = registry
            .get(&pair.env)
            .with_context(|| format!("{}: report it with the binary that registered {}", path.display(), pair.env))?;
        let config = crate::run::read_config(&path, registry).ok();
        let k = config.as_ref().and_then(|c| c.subset_size(registry).ok()).unwrap_or(entry.default_k);
        let metric = entry.metric.key.as_str();
        let validation = std::fs::read_to_string(path.join(crate::run::METRICS))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Record>(l).ok())
            .filter(|r| r.split == "validation" && r.metric == metric)
            .map(|r| (r.step, r.value))
            .collect();
        runs.push(RunData { pair, summary, failed, validation, k, config });
    }
    Ok(runs)
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
        wanted.iter().partition(|name| name.works_on_black_box());
    if !skipped.is_empty() {
        let names: Vec<&str> = skipped.iter().map(|n| n.as_str()).collect();
        eprintln!(
            "compare: {} is a black box; skipping {} (they need a differentiable loss)",
            env.name,
            names.join(", ")
        );
    }
    anyhow::ensure!(
        !kept.is_empty(),
        "{} is a black box: compare {} on it",
        env.name,
        EstimatorName::black_box_names().replace(" or ", " and ")
    );
    Ok(kept)
}

/// The paper's results for the run configuration `config` of `entry`, if it has any.
fn paper_numbers(
    entry: &EnvEntry,
    config: Option<&TrainConfig>,
    k: usize,
    registry: &Registry,
) -> Option<Vec<(&'static str, f64, f64)>> {
    let options = match config {
        Some(config) => config.options(registry).ok()?,
        None => entry.options_from(&BTreeMap::new()).ok()?,
    };
    let batch = config.map_or(TrainConfig::default().batch_size, |c| c.batch_size);
    entry.paper_results_of(&entry.settings(k, batch, 0, tch::Device::Cpu, &options))
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// Rebuilds `table.md`, `table.csv`, `summary.json` and the figures from the run folders
/// in `dir`; returns the Markdown table.
///
/// # Errors
/// `dir` holds no comparison, or its files cannot be written.
pub fn report(dir: &Path, registry: &Registry) -> anyhow::Result<String> {
    let runs = read_runs(dir, registry)?;
    let Some(env) = runs.first().map(|r| r.pair.env.clone()) else {
        anyhow::bail!("{} holds no comparison runs (no */pair.json); run sfess-agent compare first", dir.display());
    };
    anyhow::ensure!(runs.iter().all(|r| r.pair.env == env), "{} mixes runs of several environments", dir.display());
    let entry = registry.get(&env)?;
    let metric = entry.metric.key.as_str();
    // The name the runs go by (a `cmd`'s option `name`), for the title and the summary.
    let label = runs[0].config.as_ref().map_or_else(|| env.clone(), |c| c.label().to_owned());
    let paper = paper_numbers(entry, runs[0].config.as_ref(), runs[0].k, registry);
    let mut rows = Vec::new();
    for name in EstimatorName::ALL.iter() {
        let mine: Vec<&RunData> = runs.iter().filter(|r| r.pair.estimator == *name).collect();
        if mine.is_empty() {
            continue;
        }
        let done: Vec<(u64, f64, f64)> = mine
            .iter()
            .filter_map(|r| {
                r.summary.as_ref().and_then(|s| s.test.get(metric).map(|v| (r.pair.seed, *v, s.seconds_per_step)))
            })
            .collect();
        let values: Vec<f64> = done.iter().map(|d| d.1).collect();
        let (mean, std) = if values.is_empty() {
            (None, None)
        } else {
            let (m, s) = mean_std(&values);
            (Some(m), Some(s))
        };
        // A summary written before speeds were kept across resumptions may say 0: not a speed.
        let speed: Vec<f64> = done.iter().map(|d| d.2).filter(|s| *s > 0.0).collect();
        let failed = mine
            .iter()
            .filter(|r| r.summary.is_none())
            .map(|r| (r.pair.seed, r.failed.clone().unwrap_or_else(|| "incomplete".to_owned())))
            .collect();
        let mut seeds: Vec<u64> = done.iter().map(|d| d.0).collect();
        seeds.sort_unstable();
        rows.push(Row {
            estimator: name.as_str().to_owned(),
            mean,
            std,
            seeds,
            failed,
            seconds_per_step: (!speed.is_empty()).then(|| mean_std(&speed).0),
            seconds_per_step_std: (!speed.is_empty()).then(|| mean_std(&speed).1),
            paper: paper.as_ref().and_then(|p| p.iter().find(|row| row.0 == name.as_str()).map(|row| (row.1, row.2))),
        });
    }
    let better = entry.metric.higher_is_better;
    let mut ranked: Vec<(usize, f64)> = rows.iter().enumerate().filter_map(|(i, r)| r.mean.map(|m| (i, m))).collect();
    ranked.sort_by(|a, b| if better { b.1.total_cmp(&a.1) } else { a.1.total_cmp(&b.1) });
    let mark = |i: usize, text: String| match ranked.iter().position(|r| r.0 == i) {
        Some(0) => format!("**{text}**"),
        Some(1) => format!("<u>{text}</u>"),
        _ => text,
    };
    let digits = entry.metric.digits;
    // The paper's column only where the paper has numbers for this task and configuration.
    let paper_header = if paper.is_some() { " paper (5 seeds, 50,000 steps) |" } else { "" };
    let paper_rule = if paper.is_some() { "---:|" } else { "" };
    let mut md = format!(
        "{} — test {metric} ({}), mean ± std over seeds; best in bold, second underlined\n\n\
         | estimator | ours | seeds | s/step |{paper_header}\n|---|---:|---:|---:|{paper_rule}\n",
        label,
        if better { "higher is better" } else { "lower is better" }
    );
    let mut csv = String::from("estimator,mean,std,seeds,failed,seconds_per_step,paper_mean,paper_std\n");
    for (i, row) in rows.iter().enumerate() {
        let ours = match (row.mean, row.std) {
            (Some(m), Some(s)) => mark(i, format!("{m:.digits$} ± {s:.digits$}")),
            _ => "—".to_owned(),
        };
        let failed = if row.failed.is_empty() {
            String::new()
        } else {
            let reasons: Vec<String> =
                row.failed.iter().map(|(seed, why)| format!("seed {seed} failed: {why}")).collect();
            format!(" ({})", reasons.join("; "))
        };
        let paper_cell = row.paper.map_or("—".to_owned(), |(m, s)| format!("{m:.digits$} ± {s:.digits$}"));
        let speed = row.seconds_per_step.map_or("—".to_owned(), |s| format!("{s:.4}"));
        let paper_cell = if paper.is_some() { format!(" {paper_cell} |") } else { String::new() };
        md += &format!("| {} | {ours}{failed} | {} | {speed} |{paper_cell}\n", row.estimator, row.seeds.len());
        let opt = |x: Option<f64>| x.map_or(String::new(), |v| v.to_string());
        csv += &format!(
            "{},{},{},{},{},{},{},{}\n",
            row.estimator,
            opt(row.mean),
            opt(row.std),
            row.seeds.len(),
            row.failed.len(),
            opt(row.seconds_per_step),
            opt(row.paper.map(|p| p.0)),
            opt(row.paper.map(|p| p.1))
        );
    }
    // The untrained selections of the black-box tasks (random subsets, classical methods).
    let mut baselines: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for run in &runs {
        for (name, value) in run.summary.iter().flat_map(|s| s.baselines.iter()) {
            baselines.entry(name.clone()).or_default().push(*value);
        }
    }
    // A baseline needs no training: every run reports the same value unless the runs differ
    // in what they select from (then mean ± std over runs).
    for (name, values) in &baselines {
        let (m, s) = mean_std(values);
        let same = s <= 1e-9 * m.abs().max(1.0);
        let cell = if same { format!("{m:.digits$}") } else { format!("{m:.digits$} ± {s:.digits$}") };
        let paper_cell = if paper.is_some() { " — |" } else { "" };
        md += &format!("| baseline: {name} | {cell} | — | — |{paper_cell}\n");
        csv += &format!("baseline: {name},{m},{s},,0,,,\n");
    }
    let summary = ComparisonSummary {
        env: label.clone(),
        metric: metric.to_owned(),
        higher_is_better: better,
        estimators: rows.clone(),
    };
    write_atomically(&dir.join("table.md"), md.as_bytes())?;
    write_atomically(&dir.join("table.csv"), csv.as_bytes())?;
    write_atomically(&dir.join("summary.json"), (serde_json::to_string_pretty(&summary)? + "\n").as_bytes())?;
    draw_figures(dir, &label, metric, &runs, &rows)?;
    Ok(md)
}

fn draw_figures(dir: &Path, env: &str, metric: &str, runs: &[RunData], rows: &[Row]) -> anyhow::Result<()> {
    use crate::plot::{Bar, BarPanel, Curve, CurvePanel};
    let mut curves = Vec::new();
    for row in rows {
        let mut by_step: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for run in runs.iter().filter(|r| r.pair.estimator.as_str() == row.estimator && r.summary.is_some()) {
            for &(step, value) in &run.validation {
                by_step.entry(step).or_default().push(value);
            }
        }
        let points: Vec<(f64, f64, f64)> = by_step
            .iter()
            .map(|(&s, v)| {
                let (m, sd) = mean_std(v);
                (s as f64, m, sd)
            })
            .collect();
        if !points.is_empty() {
            curves.push(Curve { name: row.estimator.clone(), points });
        }
    }
    if !curves.is_empty() {
        let panel = CurvePanel {
            title: format!("{}: validation {metric} (mean ± 1 std over seeds)", env),
            x_label: "training step".into(),
            y_label: format!("validation {metric}"),
            curves,
        };
        crate::plot::curves(&dir.join("curves"), &panel)?;
    }
    let timed: Vec<Bar> = rows
        .iter()
        .filter_map(|r| {
            let (mean, std) = (r.seconds_per_step?, r.seconds_per_step_std.unwrap_or(0.0));
            Some(Bar { label: r.estimator.clone(), values: vec![(mean, std)] })
        })
        .collect();
    if !timed.is_empty() {
        let panel = BarPanel {
            title: format!("{}: seconds per training step", env),
            y_label: "seconds per step".into(),
            series: vec!["mean over seeds".into()],
            groups: timed,
        };
        crate::plot::bars(&dir.join("speed"), &[panel])?;
    }
    Ok(())
}
