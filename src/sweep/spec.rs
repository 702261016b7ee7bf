//! The sweep file: fixed settings, a grid of values, and settings per estimator; and its
//! expansion into one checked run configuration per combination.
//!
//! ```toml
//! description = "Table 4 of the paper: stochastic k-NN"
//!
//! [fixed]                       # every run: any field of a run's config.json
//! steps = 50000
//!
//! [grid]                        # every combination of these lists is one run
//! env = ["knn-mnist", "knn-fashion-mnist"]
//! estimator = ["sfess-vr", "sfess", "gs", "stgs", "imle", "simple"]
//! seed = [0, 1, 2, 3, 4]
//! options.candidates = [64, 128]  # an option of the run's environment (`envs NAME`)
//! latent = [                    # settings that vary together: a list of tables
//!   { k = 5, options = { groups = 10, items = 10 }, label = "d10-n10-k5" },
//! ]
//!
//! [estimators.gs]               # the runs of one estimator (after the grid's values)
//! samples = 1
//! ```
//!
//! A key is a field of `config.json` (`steps`, `learning_rate`, `estimator_options.sampler`,
//! `env_options.max-coverage.n`) or `options.NAME`, the option `NAME` of whichever
//! environment the run has. JSON files have the same structure (dotted keys are split).
//! A combination's folder is named by its grid values, in the order env, the other axes
//! (alphabetical), estimator, seed: `knn-mnist-candidates64-sfess-vr-seed0`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde_json::{Map, Value};
use sfess_envs::registry::Registry;

use crate::config::TrainConfig;
use crate::train::estimators::EstimatorName;

/// The top-level keys of a sweep file.
const FILE_KEYS: [&str; 4] = ["description", "fixed", "grid", "estimators"];
/// The key of a settings table that names it in folder names (not a setting).
const LABEL: &str = "label";
/// Settings of the run's own environment.
const OPTIONS: &str = "options";

/// A parsed sweep file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepSpec {
    /// What the sweep is (free text).
    pub description: Option<String>,
    /// Settings every run gets.
    pub fixed: Map<String, Value>,
    /// The axes, in naming order.
    pub axes: Vec<Axis>,
    /// Settings of the runs of one estimator, applied after the grid's values.
    pub per_estimator: BTreeMap<EstimatorName, Map<String, Value>>,
}

/// One list of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// Its key: a setting (`seed`, `options.n`) or, for tables of settings, a free name.
    pub name: String,
    /// The values (scalars) or tables of settings.
    pub values: Vec<Value>,
}

/// One combination of the grid: the run folder's name, the values that made it, and its
/// configuration (resolved and checked).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Combination {
    /// The run folder's name inside the sweep's folder.
    pub name: String,
    /// Each axis's value, as shown in names and tables.
    pub values: BTreeMap<String, String>,
    /// The run's configuration.
    pub config: TrainConfig,
}

impl Axis {
    /// Whether its values are tables of settings that vary together.
    fn is_settings(&self) -> bool {
        self.values.iter().all(Value::is_object)
    }

    /// How the axis's `index`-th value shows in folder names and tables.
    fn display(&self, index: usize) -> String {
        match &self.values[index] {
            Value::Object(table) => match table.get(LABEL) {
                Some(Value::String(label)) => label.clone(),
                Some(other) => other.to_string(),
                None => format!("{}{index}", self.name),
            },
            Value::String(text) => text.clone(),
            other => other.to_string(),
        }
    }

    /// Its part of a folder name: the value for `env` and `estimator`, `seed3`, `k10`,
    /// `n80` (the last segment of the key), or a table's label.
    fn name_part(&self, index: usize) -> String {
        let value = self.display(index);
        match self.name.as_str() {
            "env" | "estimator" => value,
            _ if self.is_settings() => value,
            key => format!("{}{value}", key.rsplit('.').next().unwrap_or(key).replace('_', "-")),
        }
    }
}

impl SweepSpec {
    /// Reads a sweep file: TOML (`.toml`) or JSON (`.json`).
    ///
    /// # Errors
    /// The file cannot be read, has another extension, does not parse, or is not a sweep.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading the sweep file {}", path.display()))?;
        let value: Value = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => toml::from_str(&text).with_context(|| format!("{} is not TOML", path.display()))?,
            Some("json") => serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?,
            _ => anyhow::bail!("{}: a sweep file is TOML (.toml) or JSON (.json)", path.display()),
        };
        Self::from_value(value).with_context(|| format!("the sweep file {}", path.display()))
    }

    /// A sweep from its parsed file.
    ///
    /// # Errors
    /// Unknown top-level keys, an empty grid or list, a grid entry that is not a list,
    /// per-estimator settings of an unknown estimator.
    pub fn from_value(value: Value) -> anyhow::Result<Self> {
        let Value::Object(mut file) = value else { anyhow::bail!("a sweep file is a table of settings") };
        if let Some(key) = file.keys().find(|k| !FILE_KEYS.contains(&k.as_str())) {
            anyhow::bail!("unknown key {key:?}; a sweep file has {}", FILE_KEYS.join(", "));
        }
        let description = match file.remove("description") {
            None => None,
            Some(Value::String(text)) => Some(text),
            Some(other) => anyhow::bail!("description must be text, got {other}"),
        };
        let table = |file: &mut Map<String, Value>, key: &str| match file.remove(key) {
            None => Ok(Map::new()),
            Some(Value::Object(map)) => Ok(map),
            Some(other) => Err(anyhow::anyhow!("{key} must be a table, got {other}")),
        };
        let fixed = table(&mut file, "fixed")?;
        let mut axes = Vec::new();
        flatten_grid("", table(&mut file, "grid")?, &mut axes)?;
        anyhow::ensure!(!axes.is_empty(), "the grid is empty: give at least one list of values under [grid]");
        axes.sort_by_key(|axis| (naming_rank(&axis.name), axis.name.clone()));
        let mut per_estimator = BTreeMap::new();
        for (name, settings) in table(&mut file, "estimators")? {
            let estimator = <EstimatorName as clap::ValueEnum>::from_str(&name, false).map_err(|_| {
                anyhow::anyhow!("[estimators.{name}]: no estimator {name:?}; see sfess-agent estimators")
            })?;
            let Value::Object(settings) = settings else { anyhow::bail!("estimators.{name} must be a table") };
            per_estimator.insert(estimator, settings);
        }
        Ok(Self { description, fixed, axes, per_estimator })
    }

    /// The number of combinations.
    pub fn len(&self) -> usize {
        self.axes.iter().map(|a| a.values.len()).product()
    }

    /// Whether the grid has no combination (never, for a parsed file).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every combination, each checked as `train` checks a configuration, in grid order
    /// (the last axis, the seed, varying fastest).
    ///
    /// # Errors
    /// A combination whose settings do not make a valid configuration (the error names the
    /// combination and the setting), two combinations with one folder name or one
    /// configuration.
    pub fn combinations(&self, registry: &Registry) -> anyhow::Result<Vec<Combination>> {
        let mut combinations: Vec<Combination> = Vec::with_capacity(self.len());
        let mut index = vec![0usize; self.axes.len()];
        loop {
            let combination = self.combination(&index, registry)?;
            if let Some(same) = combinations.iter().find(|c| c.name == combination.name) {
                anyhow::bail!(
                    "the combinations {} and {} have the same folder name {}; give the tables of settings distinct labels",
                    describe(&same.values),
                    describe(&combination.values),
                    combination.name
                );
            }
            if let Some(same) = combinations.iter().find(|c| c.config == combination.config) {
                anyhow::bail!(
                    "the combinations {} and {} give the same run (the same configuration)",
                    same.name,
                    combination.name
                );
            }
            combinations.push(combination);
            // The next index, the last axis fastest.
            let mut axis = self.axes.len();
            loop {
                if axis == 0 {
                    return Ok(combinations);
                }
                axis -= 1;
                index[axis] += 1;
                if index[axis] < self.axes[axis].values.len() {
                    break;
                }
                index[axis] = 0;
            }
        }
    }

    /// The combination of the axes' values at `index`.
    fn combination(&self, index: &[usize], registry: &Registry) -> anyhow::Result<Combination> {
        let values: BTreeMap<String, String> =
            self.axes.iter().zip(index).map(|(axis, &i)| (axis.name.clone(), axis.display(i))).collect();
        let name =
            sanitize(&self.axes.iter().zip(index).map(|(axis, &i)| axis.name_part(i)).collect::<Vec<_>>().join("-"));
        let what = || format!("sweep combination {} ({})", name, describe(&values));
        let mut settings = Map::new();
        merge_table(&mut settings, &self.fixed);
        for (axis, &i) in self.axes.iter().zip(index) {
            match &axis.values[i] {
                Value::Object(table) => {
                    let mut table = table.clone();
                    table.remove(LABEL);
                    merge_table(&mut settings, &table);
                }
                value => merge(&mut settings, &axis.name, value.clone()),
            }
        }
        let estimator = match settings.get("estimator") {
            Some(value) => serde_json::from_value::<EstimatorName>(value.clone())
                .map_err(|e| anyhow::anyhow!("estimator: {e}"))
                .with_context(what)?,
            None => TrainConfig::default().estimator,
        };
        if let Some(own) = self.per_estimator.get(&estimator) {
            merge_table(&mut settings, own);
        }
        // `options` are the run's environment's.
        if let Some(options) = settings.remove(OPTIONS) {
            let env = settings.get("env").and_then(Value::as_str).unwrap_or(&TrainConfig::default().env).to_owned();
            let mut section = Map::new();
            section.insert(env, options);
            let mut env_options = Map::new();
            env_options.insert("env_options".to_owned(), Value::Object(section));
            merge_table(&mut settings, &env_options);
        }
        let config = TrainConfig::from_json(&Value::Object(settings).to_string(), registry)
            .and_then(|config| config.with_absolute_paths(registry)?.resolved(registry))
            .with_context(what)?;
        Ok(Combination { name, values, config })
    }
}

/// `env knn-mnist, estimator sfess, seed 0`.
fn describe(values: &BTreeMap<String, String>) -> String {
    values.iter().map(|(axis, value)| format!("{axis} {value}")).collect::<Vec<_>>().join(", ")
}

/// The axes' naming order: env first, estimator and seed last, the others between.
fn naming_rank(name: &str) -> u8 {
    match name {
        "env" => 0,
        "estimator" => 2,
        "seed" => 3,
        _ => 1,
    }
}

/// The grid's lists, found under nested tables (`options.n = [...]` in TOML is a table
/// `options` holding `n`).
fn flatten_grid(prefix: &str, table: Map<String, Value>, axes: &mut Vec<Axis>) -> anyhow::Result<()> {
    for (key, value) in table {
        let name = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
        match value {
            Value::Array(values) => {
                anyhow::ensure!(!values.is_empty(), "grid.{name} is an empty list");
                let tables = values.iter().filter(|v| v.is_object()).count();
                anyhow::ensure!(
                    tables == 0 || tables == values.len(),
                    "grid.{name} mixes tables of settings and single values"
                );
                for (i, value) in values.iter().enumerate() {
                    anyhow::ensure!(
                        !values[..i].contains(value),
                        "grid.{name} gives {value} twice (the same runs would be trained twice)"
                    );
                }
                axes.push(Axis { name, values });
            }
            Value::Object(inner) => flatten_grid(&name, inner, axes)?,
            other => anyhow::bail!("grid.{name} must be a list of values, got {other}"),
        }
    }
    Ok(())
}

/// Sets the dotted `key` (`estimator_options.sampler`) in `settings`; a table value is
/// merged key by key.
fn merge(settings: &mut Map<String, Value>, key: &str, value: Value) {
    let (head, rest) = match key.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (key, None),
    };
    match (rest, value) {
        (Some(rest), value) => {
            let inner = settings.entry(head.to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if !inner.is_object() {
                *inner = Value::Object(Map::new());
            }
            if let Value::Object(inner) = inner {
                merge(inner, rest, value);
            }
        }
        (None, Value::Object(table)) => {
            let inner = settings.entry(head.to_owned()).or_insert_with(|| Value::Object(Map::new()));
            match inner {
                Value::Object(inner) => merge_table(inner, &table),
                other => *other = Value::Object(table),
            }
        }
        (None, value) => {
            settings.insert(head.to_owned(), value);
        }
    }
}

fn merge_table(settings: &mut Map<String, Value>, table: &Map<String, Value>) {
    for (key, value) in table {
        merge(settings, key, value.clone());
    }
}

/// A folder name: letters, digits, `.`, `_`, `-`; anything else becomes `_`.
fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml: &str) -> anyhow::Result<SweepSpec> {
        SweepSpec::from_value(toml::from_str(toml)?)
    }

    fn names(spec: &SweepSpec) -> Vec<String> {
        spec.combinations(&Registry::shipped()).unwrap().into_iter().map(|c| c.name).collect()
    }

    #[test]
    fn a_grid_expands_to_every_combination_named_by_its_values() {
        let spec = spec(
            r#"
            [fixed]
            env = "max-coverage"
            steps = 60
            [grid]
            seed = [0, 1]
            estimator = ["sfess-vr", "sfess"]
            options.n = [30, 40]
            [estimators.sfess]
            samples = 1
            "#,
        )
        .unwrap();
        assert_eq!(spec.len(), 8);
        let combinations = spec.combinations(&Registry::shipped()).unwrap();
        let names: Vec<&str> = combinations.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "n30-sfess-vr-seed0",
                "n30-sfess-vr-seed1",
                "n30-sfess-seed0",
                "n30-sfess-seed1",
                "n40-sfess-vr-seed0",
                "n40-sfess-vr-seed1",
                "n40-sfess-seed0",
                "n40-sfess-seed1"
            ]
        );
        let last = combinations.last().unwrap();
        assert_eq!((last.config.steps, last.config.seed, last.config.samples), (60, 1, 1));
        assert_eq!(last.config.env_options["max-coverage"]["n"], 40);
        assert_eq!(combinations[0].config.samples, 32, "sfess-vr keeps the default samples");
        assert_eq!(last.values["options.n"], "40");
    }

    #[test]
    fn tables_of_settings_vary_together_and_json_files_read_the_same() {
        let toml = spec(
            r#"
            [fixed]
            env = "max-coverage"
            [grid]
            size = [{ k = 3, options = { n = 20 }, label = "small" }, { k = 6, "options.n" = 40, label = "big" }]
            "#,
        )
        .unwrap();
        let json = SweepSpec::from_value(
            serde_json::from_str(
                r#"{"fixed": {"env": "max-coverage"},
                    "grid": {"size": [{"k": 3, "options": {"n": 20}, "label": "small"},
                                      {"k": 6, "options.n": 40, "label": "big"}]}}"#,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(toml, json);
        let combinations = toml.combinations(&Registry::shipped()).unwrap();
        assert_eq!(names(&toml), ["small", "big"]);
        assert_eq!(
            (combinations[1].config.k, &combinations[1].config.env_options["max-coverage"]["n"]),
            (Some(6), &40.into())
        );
    }

    #[test]
    fn bad_files_are_refused_before_anything_runs() {
        let error =
            |text: &str| format!("{:#}", spec(text).and_then(|s| s.combinations(&Registry::shipped())).unwrap_err());
        assert!(error("[grid]\n").contains("the grid is empty"));
        assert!(error("[grid]\nseed = []\n").contains("grid.seed is an empty list"));
        assert!(error("[grid]\nseed = 3\n").contains("grid.seed must be a list"));
        assert!(error("[grids]\nseed = [1]\n").contains("unknown key \"grids\""));
        assert!(error("[grid]\nseed = [0, 0]\n").contains("gives 0 twice"));
        assert!(error("[grid]\nseed = [0]\n[estimators.magic]\nsamples = 1\n").contains("no estimator \"magic\""));
        // A wrong type or an unknown field names the combination and the setting.
        let typed = error("[fixed]\nenv = \"max-coverage\"\n[grid]\nseed = [0]\nsteps = [10, \"many\"]\n");
        assert!(typed.contains("combination stepsmany-seed0 (seed 0, steps many)"), "{typed}");
        assert!(typed.contains("steps: invalid type"), "{typed}");
        let unknown = error("[fixed]\nstepz = 3\n[grid]\nseed = [0]\n");
        assert!(unknown.contains("unknown field `stepz`"), "{unknown}");
        // A value out of range in one combination is named with it.
        let range = error("[fixed]\nenv = \"max-coverage\"\n[grid]\nk = [5, 0]\nseed = [0]\n");
        assert!(range.contains("k0-seed0") && range.contains("-k must be between 1 and"), "{range}");
        let option = error("[fixed]\nenv = \"max-coverage\"\n[grid]\noptions.nn = [5]\n");
        assert!(option.contains("max-coverage has no option \"nn\""), "{option}");
        let same = error("[grid]\nsize = [{ k = 3 }, { k = 3, label = \"x\" }]\n");
        assert!(same.contains("give the same run"), "{same}");
    }

    /// The paper's grids that ship in `sweeps/`: every combination checks, with the
    /// paper's run counts.
    #[test]
    fn the_shipped_sweep_files_expand_to_the_papers_grids() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps");
        for (file, runs) in [
            ("table2.toml", 120),
            ("table3.toml", 120),
            ("table4.toml", 60),
            ("table4-smoke.toml", 12),
            ("smoke.toml", 8),
        ] {
            let spec = SweepSpec::read(&dir.join(file)).unwrap();
            let combinations = spec.combinations(&Registry::shipped()).unwrap();
            assert_eq!(combinations.len(), runs, "{file}");
            for c in &combinations {
                let expected = if c.config.estimator == EstimatorName::SfessVr { 32 } else { 1 };
                assert_eq!(c.config.samples, expected, "{file} {}", c.name);
            }
        }
        let table3 = SweepSpec::read(&dir.join("table3.toml")).unwrap().combinations(&Registry::shipped()).unwrap();
        let big = table3.iter().find(|c| c.name == "vae-fashion-d20-n20-k10-simple-seed4").unwrap();
        assert_eq!((big.config.k, big.config.steps), (Some(10), 50_000));
        assert_eq!(big.config.env_options["vae-fashion"]["groups"], 20);
    }
}
