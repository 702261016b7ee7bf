//! The report of a sweep (or a comparison): its tables and figures, rebuilt from its run
//! folders alone (what `sfess-agent report DIR` and a sweep that ends write).
//!
//! The runs are grouped by environment and configuration (every grid value but the
//! estimator and the seed); each group gets a table with the estimators as rows: the mean
//! ± standard deviation of the test metric over the completed seeds, the seeds, steps,
//! samples per row and learning rate of the row's runs, the median seconds per training
//! step (a run's median over its loss windows, then the median over seeds: one slow step
//! or a validation cannot distort it), and the paper's numbers where the paper has them.
//! Untrained baselines (random subsets, classical methods) are rows of their own.
//!
//! Files: `table.md` (every group), `table.csv` (one line per row, with its group),
//! `summary.json` (`{"groups": [...]}`), written first; then per group the validation
//! curves against training steps (`curves`), reward evaluations (`curves-evaluations`:
//! steps × rows × samples, the cost on a black box) and wall-clock seconds
//! (`curves-seconds`), with the baselines as dashed lines, and `speed` (median seconds per
//! step); each as SVG and PNG, prefixed by the group's name when there are several groups
//! (one prefix per group: `-2`, `-3` for names that differ only in punctuation). Under each
//! table, links to every run's own figures (its `figures/`, see [`crate::run::figures`]).
//!
//! A run the report cannot read (a `config.json` or `summary.json` that does not parse, an
//! environment this binary lacks) is left out with a warning on stderr and named under the
//! tables (`skipped` in `summary.json`); a file the report cannot write is named in its
//! error, after the tables are written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::folder::{FAILED, RECORD, SweepRecord, refuse_a_run_folder};
use super::spec::Combination;
use crate::config::TrainConfig;
use crate::config::estimators::EstimatorName;
use crate::run::{Record, SECONDS_PER_STEP, Summary};
use crate::system::files::write_atomically;
use crate::system::names::PathName;
use sfess_envs::registry::{EnvEntry, Registry};

pub use crate::system::names::sweep_folder::{SUMMARY, TABLE_CSV, TABLE_MD};
/// The figures of each group (the stems of their `.svg` and `.png` files).
const FIGURE_STEMS: [&str; 4] = ["curves", "curves-evaluations", "curves-seconds", "speed"];
/// The longest figure prefix taken from a group's title, in bytes.
const PREFIX_LEN: usize = 100;

/// One estimator's line of a group's table.
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
    /// Failed or unfinished seeds with their reasons.
    pub failed: BTreeMap<u64, String>,
    /// Training steps of the row's runs.
    pub steps: Vec<u64>,
    /// Samples per row of the row's runs.
    pub samples: Vec<usize>,
    /// Learning rates of the row's runs.
    pub learning_rates: Vec<f64>,
    /// Median seconds per training step: each run's median over its windows, then the
    /// median over runs.
    pub seconds_per_step: Option<f64>,
    /// The paper's mean and standard deviation for the same task and configuration.
    pub paper: Option<(f64, f64)>,
}

/// One table: the runs of one environment in one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// The environment's name in tables (a `cmd`'s option `name`, else its registered name).
    pub env: String,
    /// The grid values the group's runs share, estimator and seed aside.
    pub values: BTreeMap<String, String>,
    /// The metric tabulated (test split).
    pub metric: String,
    /// Whether larger is better.
    pub higher_is_better: bool,
    /// One row per estimator.
    pub estimators: Vec<Row>,
    /// Untrained baselines: `name → (mean, std over runs)`.
    pub baselines: BTreeMap<String, (f64, f64)>,
}

/// `summary.json` of a report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportSummary {
    /// One per environment and configuration.
    pub groups: Vec<Group>,
    /// The runs the report could not read, left out of every group.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
}

/// A run left out of the report, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// Its folder inside the report's.
    pub name: String,
    /// Why it could not be read.
    pub reason: String,
}

/// What the report reads of one run folder.
struct RunData {
    task: Combination,
    summary: Option<Summary>,
    failed: Option<String>,
    /// Validation records of the main metric: `(step, value, elapsed seconds)`.
    validation: Vec<(u64, f64, f64)>,
    /// The run's median seconds per step.
    seconds_per_step: Option<f64>,
    /// Reward evaluations per step: rows × samples.
    evaluations_per_step: f64,
}

/// The tasks of the folder: its `sweep.json`, else every sub-folder holding a run (a
/// comparison made before sweeps existed); with the sub-folders that could not be read.
fn tasks_of(dir: &Path, registry: &Registry) -> anyhow::Result<(Vec<Combination>, Vec<Skipped>)> {
    if dir.join(RECORD).exists() {
        return Ok((SweepRecord::read(dir)?.tasks, Vec::new()));
    }
    let (mut tasks, mut skipped) = (Vec::new(), Vec::new());
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(crate::run::CONFIG).exists())
        .collect();
    entries.sort();
    for path in entries {
        let folder = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let read = PathName::parse(&folder)
            .map_err(anyhow::Error::from)
            .and_then(|name| Ok((name, crate::run::read_config(&path, registry)?)));
        match read {
            Ok((name, config)) => {
                let values = BTreeMap::from([
                    ("estimator".to_owned(), config.estimator.as_str().to_owned()),
                    ("seed".to_owned(), config.seed.to_string()),
                ]);
                tasks.push(Combination { name, values, config });
            }
            Err(error) => skipped.push(Skipped { name: folder, reason: format!("{error:#}") }),
        }
    }
    Ok((tasks, skipped))
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 })
}

/// What the report reads of the task's run folder.
///
/// # Errors
/// The task's environment is not registered; its `summary.json` is there but does not
/// parse.
fn read_run(dir: &Path, task: Combination, registry: &Registry) -> anyhow::Result<RunData> {
    let path = dir.join(&task.name);
    let entry = registry.get(&task.config.env).with_context(|| {
        format!("{}: report it with the binary that registered {}", path.display(), task.config.env)
    })?;
    let summary = match crate::system::files::read_text(&path.join(crate::run::SUMMARY)) {
        Ok(text) => Some(
            serde_json::from_str::<Summary>(&text)
                .with_context(|| format!("{} is not a run's summary", path.join(crate::run::SUMMARY).display()))?,
        ),
        Err(_) => None,
    };
    let failed = crate::system::files::read_text(&path.join(FAILED)).ok().map(|t| t.trim().to_owned());
    let metric = entry.metric.key.as_str();
    let records: Vec<Record> = crate::system::files::read_text(&path.join(crate::run::METRICS))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Record>(l).ok())
        .collect();
    let validation = records
        .iter()
        .filter(|r| r.split == "validation" && r.metric == metric)
        .map(|r| (r.step, r.value, r.elapsed_seconds))
        .collect();
    let mut windows: Vec<f64> =
        records.iter().filter(|r| r.split == "train" && r.metric == SECONDS_PER_STEP).map(|r| r.value).collect();
    // Runs made before the windows were recorded have only their mean.
    let seconds_per_step =
        median(&mut windows).or_else(|| summary.as_ref().map(|s| s.seconds_per_step).filter(|s| *s > 0.0));
    let rows = rows_per_step(&task.config, registry);
    let evaluations_per_step = (rows * task.config.samples) as f64;
    Ok(RunData { task, summary, failed, validation, seconds_per_step, evaluations_per_step })
}

/// The rows a step of the run scores (its batch, or one for a single global subset).
fn rows_per_step(config: &TrainConfig, registry: &Registry) -> usize {
    config.check(registry).ok().and_then(|spec| spec.shape().ok().flatten()).map_or(config.batch_size, |s| s.rows)
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// What makes a group: the environment and the grid values but the estimator and the seed.
type GroupKey = (String, BTreeMap<String, String>);

/// The grid values that make a group: all but the estimator and the seed.
fn group_values(task: &Combination) -> BTreeMap<String, String> {
    task.values
        .iter()
        .filter(|(k, _)| k.as_str() != "estimator" && k.as_str() != "seed")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Rebuilds `table.md`, `table.csv`, `summary.json` and then the figures from the run
/// folders in `dir`; returns the Markdown tables. A run that cannot be read is skipped, with
/// a warning on stderr, and named under the tables.
///
/// # Errors
/// `dir` holds a run or no runs; a file cannot be written (named; the tables are written
/// before any figure).
pub fn report(dir: &Path, registry: &Registry) -> anyhow::Result<String> {
    refuse_a_run_folder(dir, "a sweep or a comparison")?;
    let (tasks, mut skipped) = tasks_of(dir, registry)?;
    anyhow::ensure!(
        !tasks.is_empty() || !skipped.is_empty(),
        "{} holds no comparison runs (no sweep.json and no run folders); run sfess-agent compare or sweep first",
        dir.display()
    );
    // Groups (environment, grid values) in the order of their first task.
    let mut grouped: Vec<(GroupKey, Vec<RunData>)> = Vec::new();
    let mut group_of: HashMap<GroupKey, usize> = HashMap::new();
    for task in tasks {
        let key = (task.config.env.clone(), group_values(&task));
        let name = task.name.to_string();
        let run = match read_run(dir, task, registry) {
            Ok(run) => run,
            Err(error) => {
                skipped.push(Skipped { name, reason: format!("{error:#}") });
                continue;
            }
        };
        match group_of.get(&key) {
            Some(&i) => grouped[i].1.push(run),
            None => {
                group_of.insert(key.clone(), grouped.len());
                grouped.push((key, vec![run]));
            }
        }
    }
    for Skipped { name, reason } in &skipped {
        crate::system::messages::say(format_args!("report: skipping {}: {reason}", dir.join(name).display()));
    }
    let several = grouped.len() > 1;
    let mut md = String::new();
    let mut csv = String::from(
        "group,estimator,mean,std,seeds,failed,steps,samples,learning_rate,median_seconds_per_step,paper_mean,paper_std\n",
    );
    let mut groups = Vec::new();
    let mut titles = Vec::new();
    for ((env, values), runs) in &grouped {
        let entry = registry.get(env)?;
        let group = tabulate(entry, values, runs, registry);
        let title = title(&group);
        md += &markdown(&group, &title, entry.metric.digits, several);
        md += &figure_links(dir, runs);
        for row in &group.estimators {
            let opt = |x: Option<f64>| x.map_or(String::new(), |v| v.to_string());
            let join = |v: Vec<String>| v.join(" ");
            csv += &format!(
                "{},{},{},{},{},{},{},{},{},{},{},{}\n",
                csv_field(&title),
                row.estimator,
                opt(row.mean),
                opt(row.std),
                row.seeds.len(),
                row.failed.len(),
                join(row.steps.iter().map(u64::to_string).collect()),
                join(row.samples.iter().map(usize::to_string).collect()),
                join(row.learning_rates.iter().map(f64::to_string).collect()),
                opt(row.seconds_per_step),
                opt(row.paper.map(|p| p.0)),
                opt(row.paper.map(|p| p.1))
            );
        }
        for (name, (m, s)) in &group.baselines {
            csv += &format!("{},baseline: {name},{m},{s},,0,,,,,,\n", csv_field(&title));
        }
        groups.push(group);
        titles.push(title);
    }
    if !skipped.is_empty() {
        md += "Skipped runs (they could not be read):\n\n";
        for Skipped { name, reason } in &skipped {
            md += &format!("- {name}: {}\n", crate::system::messages::one_line(reason));
        }
        md += "\n";
    }
    let summary = ReportSummary { groups, skipped };
    // The tables first: a figure that cannot be written (a full disk) loses no table.
    write_atomically(&dir.join(TABLE_MD), md.as_bytes())?;
    write_atomically(&dir.join(TABLE_CSV), csv.as_bytes())?;
    write_atomically(&dir.join(SUMMARY), (serde_json::to_string_pretty(&summary)? + "\n").as_bytes())?;
    let mut unwritten = Vec::new();
    let prefixes = if several { figure_prefixes(&titles) } else { vec![String::new()] };
    for ((((_, runs), group), title), prefix) in grouped.iter().zip(&summary.groups).zip(&titles).zip(&prefixes) {
        unwritten.extend(draw_figures(dir, prefix, title, group, runs).err().map(|e| format!("{e:#}")));
    }
    anyhow::ensure!(
        unwritten.is_empty(),
        "{} and {} are written, but not every figure: {}",
        dir.join(TABLE_MD).display(),
        dir.join(TABLE_CSV).display(),
        unwritten.join("; ")
    );
    Ok(md)
}

/// The figures' file-name prefix of each group (titled `titles`, several): its title made
/// a file name (letters, digits and `-`, at most [`PREFIX_LEN`] bytes), with `-2`, `-3`
/// added to one that an earlier group's took already (in any case): titles that differ only
/// in punctuation or case, or beyond the length, get distinct prefixes.
fn figure_prefixes(titles: &[String]) -> Vec<String> {
    let mut taken = HashSet::new();
    titles
        .iter()
        .map(|title| {
            let mut base = slug(title);
            base.truncate(PREFIX_LEN);
            let base = base.trim_end_matches('-').to_owned();
            let mut prefix = base.clone();
            let mut n = 1;
            while !taken.insert(prefix.to_ascii_lowercase()) {
                n += 1;
                prefix = format!("{base}-{n}");
            }
            format!("{prefix}-")
        })
        .collect()
}

/// The figures of each run of a group (what `show` drew into its `figures/`), linked
/// relative to the report's folder: one line per run that has any.
fn figure_links(dir: &Path, runs: &[RunData]) -> String {
    let mut lines = String::new();
    for run in runs {
        let folder = dir.join(&run.task.name).join(crate::run::FIGURES);
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".png") && !name.contains(".partial."))
            .collect();
        names.sort();
        if names.is_empty() {
            continue;
        }
        let links: Vec<String> = names
            .iter()
            .map(|name| {
                let stem = name.trim_end_matches(".png");
                format!("[{stem}]({}/{}/{name})", run.task.name, crate::run::FIGURES)
            })
            .collect();
        lines += &format!("- {}: {}\n", run.task.name, links.join(", "));
    }
    if lines.is_empty() {
        lines
    } else {
        format!("Figures of each run (`sfess-agent show RUN` draws them again):\n\n{lines}\n")
    }
}

/// `knn-mnist`, or `vae-mnist, latent d10-n10-k5` for a group with grid values.
fn title(group: &Group) -> String {
    let mut title = group.env.clone();
    for (axis, value) in group.values.iter().filter(|(axis, _)| axis.as_str() != "env") {
        title += &format!(", {} {value}", axis.rsplit('.').next().unwrap_or(axis));
    }
    title
}

/// A file-name prefix: letters, digits and `-`.
fn slug(text: &str) -> String {
    let mut slug = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_matches('-').to_owned()
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_owned() }
}

fn distinct<T: PartialEq + Copy>(values: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for value in values {
        if !out.contains(&value) {
            out.push(value);
        }
    }
    out
}

/// The rows of one group.
fn tabulate(entry: &EnvEntry, values: &BTreeMap<String, String>, runs: &[RunData], registry: &Registry) -> Group {
    let metric = entry.metric.key.as_str();
    let paper = runs[0].task.config.check(registry).ok().and_then(|spec| spec.paper_results());
    let mut rows = Vec::new();
    for name in EstimatorName::ALL.iter() {
        let mine: Vec<&RunData> = runs.iter().filter(|r| r.task.config.estimator == *name).collect();
        if mine.is_empty() {
            continue;
        }
        let done: Vec<(u64, f64)> = mine
            .iter()
            .filter_map(|r| r.summary.as_ref().and_then(|s| s.test.get(metric).map(|v| (r.task.config.seed, *v))))
            .collect();
        let values: Vec<f64> = done.iter().map(|d| d.1).collect();
        let (mean, std) = if values.is_empty() {
            (None, None)
        } else {
            let (m, s) = mean_std(&values);
            (Some(m), Some(s))
        };
        let mut speeds: Vec<f64> =
            mine.iter().filter(|r| r.summary.is_some()).filter_map(|r| r.seconds_per_step).collect();
        let failed = mine
            .iter()
            .filter(|r| r.summary.is_none())
            .map(|r| (r.task.config.seed, r.failed.clone().unwrap_or_else(|| "incomplete".to_owned())))
            .collect();
        let mut seeds: Vec<u64> = done.iter().map(|d| d.0).collect();
        seeds.sort_unstable();
        let configs = || mine.iter().map(|r| &r.task.config);
        rows.push(Row {
            estimator: name.as_str().to_owned(),
            mean,
            std,
            seeds,
            failed,
            steps: distinct(configs().map(|c| c.steps)),
            samples: distinct(configs().map(|c| c.samples)),
            learning_rates: distinct(configs().filter_map(|c| c.learning_rate)),
            seconds_per_step: median(&mut speeds),
            paper: paper.as_ref().and_then(|p| p.iter().find(|row| row.0 == name.as_str()).map(|row| (row.1, row.2))),
        });
    }
    // A baseline needs no training: every run reports the same value unless the runs differ
    // in what they select from (then mean ± std over runs).
    let mut baselines: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for run in runs {
        for (name, value) in run.summary.iter().flat_map(|s| s.baselines.iter()) {
            baselines.entry(name.clone()).or_default().push(*value);
        }
    }
    Group {
        env: runs[0].task.config.label().to_owned(),
        values: values.clone(),
        metric: metric.to_owned(),
        higher_is_better: entry.metric.higher_is_better,
        estimators: rows,
        baselines: baselines.into_iter().map(|(name, values)| (name, mean_std(&values))).collect(),
    }
}

/// A group's Markdown table, under a heading when the report has several.
fn markdown(group: &Group, title: &str, digits: usize, several: bool) -> String {
    let better = group.higher_is_better;
    let mut ranked: Vec<(usize, f64)> =
        group.estimators.iter().enumerate().filter_map(|(i, r)| r.mean.map(|m| (i, m))).collect();
    ranked.sort_by(|a, b| if better { b.1.total_cmp(&a.1) } else { a.1.total_cmp(&b.1) });
    let mark = |i: usize, text: String| match ranked.iter().position(|r| r.0 == i) {
        Some(0) => format!("**{text}**"),
        Some(1) => format!("<u>{text}</u>"),
        _ => text,
    };
    let has_paper = group.estimators.iter().any(|r| r.paper.is_some());
    let paper_header = if has_paper { " paper (5 seeds, 50,000 steps) |" } else { "" };
    let paper_rule = if has_paper { "---:|" } else { "" };
    let heading = if several { format!("## {title}\n\nTest") } else { format!("{title} — test") };
    let mut md = format!(
        "{heading} {} ({}), mean ± std over seeds; best in bold, second underlined; s/step is the median seconds \
         per training step\n\n\
         | estimator | ours | seeds | steps | samples | lr | s/step |{paper_header}\n|---|---:|---:|---:|---:|---:|---:|{paper_rule}\n",
        group.metric,
        if better { "higher is better" } else { "lower is better" }
    );
    let list = |values: Vec<String>| if values.is_empty() { "—".to_owned() } else { values.join(", ") };
    for (i, row) in group.estimators.iter().enumerate() {
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
        let seeds = if row.seeds.is_empty() {
            "0".to_owned()
        } else {
            format!("{} ({})", row.seeds.len(), list(row.seeds.iter().map(u64::to_string).collect()))
        };
        let paper_cell = match (has_paper, row.paper) {
            (false, _) => String::new(),
            (true, Some((m, s))) => format!(" {m:.digits$} ± {s:.digits$} |"),
            (true, None) => " — |".to_owned(),
        };
        md += &format!(
            "| {} | {ours}{failed} | {seeds} | {} | {} | {} | {} |{paper_cell}\n",
            row.estimator,
            list(row.steps.iter().map(u64::to_string).collect()),
            list(row.samples.iter().map(usize::to_string).collect()),
            list(row.learning_rates.iter().map(|lr| format!("{lr}")).collect()),
            row.seconds_per_step.map_or("—".to_owned(), significant),
        );
    }
    for (name, (m, s)) in &group.baselines {
        let same = *s <= 1e-9 * m.abs().max(1.0);
        let cell = if same { format!("{m:.digits$}") } else { format!("{m:.digits$} ± {s:.digits$}") };
        let paper_cell = if has_paper { " — |" } else { "" };
        md += &format!("| baseline: {name} | {cell} | — | — | — | — | — |{paper_cell}\n");
    }
    md + "\n"
}

/// Seconds with three significant digits: `0.0123`, `0.000213`, `1.25`.
fn significant(seconds: f64) -> String {
    if seconds <= 0.0 || !seconds.is_finite() {
        return format!("{seconds}");
    }
    let decimals = (2 - seconds.log10().floor() as i64).max(0) as usize;
    format!("{seconds:.decimals$}")
}

/// The curves of a group against steps, reward evaluations and seconds, and its speeds.
fn draw_figures(dir: &Path, prefix: &str, title: &str, group: &Group, runs: &[RunData]) -> anyhow::Result<()> {
    use crate::plot::{Bar, BarPanel, Curve, CurvePanel};
    let metric = &group.metric;
    let baselines: Vec<(String, f64)> =
        group.baselines.iter().map(|(name, (mean, _))| (format!("baseline: {name} (test)"), *mean)).collect();
    // x of a validation record: its step, the rewards evaluated by then, or its wall clock.
    type Axis = fn(&RunData, (u64, f64, f64)) -> f64;
    let [curves_stem, evaluations_stem, seconds_stem, speed_stem] = FIGURE_STEMS;
    let axes: [(&str, &str, Axis); 3] = [
        (curves_stem, "training step", |_, (step, _, _)| step as f64),
        (evaluations_stem, "reward evaluations (steps × rows × samples)", |run, (step, _, _)| {
            step as f64 * run.evaluations_per_step
        }),
        (seconds_stem, "wall-clock seconds (training and validation)", |_, (_, _, elapsed)| elapsed),
    ];
    let named = |stem: &Path| format!("writing the figure {} (.svg and .png)", stem.display());
    for (stem, x_label, x_of) in axes {
        let mut curves = Vec::new();
        for row in &group.estimators {
            // Points at the same step across seeds: mean ± std of the metric and of x.
            let mut at: BTreeMap<u64, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
            for run in runs.iter().filter(|r| r.task.config.estimator.as_str() == row.estimator && r.summary.is_some())
            {
                for &record in &run.validation {
                    let point = at.entry(record.0).or_default();
                    point.0.push(x_of(run, record));
                    point.1.push(record.1);
                }
            }
            let points: Vec<(f64, f64, f64)> = at
                .values()
                .map(|(xs, ys)| {
                    let (m, sd) = mean_std(ys);
                    (mean_std(xs).0, m, sd)
                })
                .collect();
            if !points.is_empty() {
                curves.push(Curve { name: row.estimator.clone(), points });
            }
        }
        if curves.is_empty() {
            continue;
        }
        let panel = CurvePanel {
            title: format!("{title}: validation {metric} (mean ± 1 std over seeds)"),
            x_label: x_label.into(),
            y_label: format!("validation {metric}"),
            curves,
            baselines: baselines.clone(),
            log_y: false,
        };
        let path = dir.join(format!("{prefix}{stem}"));
        crate::plot::curves(&path, &panel).with_context(|| named(&path))?;
    }
    let timed: Vec<Bar> = group
        .estimators
        .iter()
        .filter_map(|r| Some(Bar { label: r.estimator.clone(), values: vec![(r.seconds_per_step?, 0.0)] }))
        .collect();
    if !timed.is_empty() {
        let panel = BarPanel {
            title: format!("{title}: seconds per training step"),
            y_label: "seconds per step (median)".into(),
            series: vec!["median over windows and seeds".into()],
            groups: timed,
        };
        let path = dir.join(format!("{prefix}{speed_stem}"));
        crate::plot::bars(&path, &[panel]).with_context(|| named(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report's `summary.json` takes a run's name ([`refuse_a_run_folder`]
    /// tells them apart).
    #[test]
    fn the_reports_summary_is_named_as_a_runs() {
        assert_eq!(SUMMARY, crate::run::SUMMARY);
    }

    /// Groups whose titles make one file name (punctuation, case, length) get distinct
    /// figure files, none longer than a file system allows.
    #[test]
    fn every_group_gets_its_own_figure_files() {
        let long = format!("x, label {}", "a".repeat(300));
        let titles: Vec<String> =
            ["x, size a b", "x, size a-b", "x, size a.b", "X, size A-B", "x, size a-b-2", &long, &format!("{long}b")]
                .map(str::to_owned)
                .to_vec();
        let prefixes = figure_prefixes(&titles);
        assert_eq!(&prefixes[..3], ["x-size-a-b-", "x-size-a-b-2-", "x-size-a-b-3-"]);
        let files: Vec<String> = prefixes
            .iter()
            .flat_map(|p| FIGURE_STEMS.iter().flat_map(move |s| ["svg", "png"].map(|e| format!("{p}{s}.{e}"))))
            .collect();
        let distinct: HashSet<String> = files.iter().map(|f| f.to_ascii_lowercase()).collect();
        assert_eq!(distinct.len(), files.len(), "{files:?}");
        assert!(files.iter().all(|f| f.len() < 200), "{files:?}");
    }
}
