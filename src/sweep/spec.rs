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
//! (alphabetical), estimator, seed: `knn-mnist-candidates64-sfess-vr-seed0`; the name must
//! be a [`PathName`].
//!
//! Each setting of a combination comes from one place: a setting given by two of `[fixed]`,
//! the grid's lists and tables (or twice in one of them, or as both `options.NAME` and
//! `env_options.ENV.NAME`) is refused by name; only `[estimators.NAME]` overrides, after the
//! grid's values. A JSON file that gives a key twice is refused, as TOML refuses it. A grid
//! of more than [`MAX_COMBINATIONS`] is refused from its lists' lengths, before expanding.

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hasher;
use std::path::Path;

use anyhow::Context;
use serde_json::{Map, Value};
use sfess_envs::registry::Registry;

use crate::config::TrainConfig;
use crate::config::estimators::EstimatorName;
use crate::system::names::PathName;

/// The most combinations a sweep may have.
pub const MAX_COMBINATIONS: usize = 100_000;

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
    pub name: PathName,
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
            Some("json") => {
                crate::system::json::parse(&text).with_context(|| format!("{} is not JSON", path.display()))?
            }
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

    /// The number of combinations: the product of the lists' lengths (`None` past `usize`).
    pub fn count(&self) -> Option<usize> {
        self.axes.iter().try_fold(1usize, |product, axis| product.checked_mul(axis.values.len()))
    }

    /// Every combination, each checked as `train` checks a configuration, in grid order
    /// (the last axis, the seed, varying fastest). Linear in their number: duplicates are
    /// found by hashing.
    ///
    /// # Errors
    /// More than [`MAX_COMBINATIONS`] (refused before expanding); a combination whose
    /// settings do not make a valid configuration, set a setting in two places, or make a
    /// folder name that is not a [`PathName`] (the error names the combination and the
    /// setting); two combinations with one folder name (in any case) or one configuration.
    pub fn combinations(&self, registry: &Registry) -> anyhow::Result<Vec<Combination>> {
        let count = self.count().filter(|&n| n <= MAX_COMBINATIONS).ok_or_else(|| {
            let lengths: Vec<String> = self.axes.iter().map(|a| format!("{} {}", a.values.len(), a.name)).collect();
            anyhow::anyhow!(
                "the grid makes {} combinations ({}), more than the {MAX_COMBINATIONS} a sweep may have; split it \
                 into several sweep files",
                self.count().map_or_else(|| "over 2^64".to_owned(), |n| n.to_string()),
                lengths.join(" × ")
            )
        })?;
        let mut combinations: Vec<Combination> = Vec::with_capacity(count);
        // Earlier combinations by folder name (as a case-insensitive file system sees it)
        // and by a hash of their configuration.
        let mut by_name: HashMap<String, usize> = HashMap::with_capacity(count);
        let mut by_config: HashMap<u64, Vec<usize>> = HashMap::with_capacity(count);
        let mut index = vec![0usize; self.axes.len()];
        loop {
            let combination = self.combination(&index, registry)?;
            match by_name.entry(combination.name.folder_key()) {
                Entry::Occupied(same) => anyhow::bail!(
                    "the combinations {} and {} have the same folder name {}; give the tables of settings distinct labels",
                    describe(&combinations[*same.get()].values),
                    describe(&combination.values),
                    combination.name
                ),
                Entry::Vacant(slot) => slot.insert(combinations.len()),
            };
            let mut hasher = DefaultHasher::new();
            hasher.write(&serde_json::to_vec(&combination.config)?);
            let same_hash = by_config.entry(hasher.finish()).or_default();
            if let Some(&same) = same_hash.iter().find(|&&i| combinations[i].config == combination.config) {
                anyhow::bail!(
                    "the combinations {} and {} give the same run (the same configuration)",
                    combinations[same].name,
                    combination.name
                );
            }
            same_hash.push(combinations.len());
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
        let name = PathName::parse(&name)
            .map_err(|e| anyhow::anyhow!("{e}; give the tables of settings other labels"))
            .with_context(what)?;
        let mut merged = Merged::default();
        merged.table(&self.fixed, "[fixed]", false).with_context(what)?;
        for (axis, &i) in self.axes.iter().zip(index) {
            let source = format!("grid.{}", axis.name);
            match &axis.values[i] {
                Value::Object(table) => {
                    let mut table = table.clone();
                    table.remove(LABEL);
                    merged.table(&table, &source, false)
                }
                value => merged.set(&axis.name, value.clone(), &source, false),
            }
            .with_context(what)?;
        }
        let estimator = match merged.settings.get("estimator") {
            Some(value) => serde_json::from_value::<EstimatorName>(value.clone())
                .map_err(|e| anyhow::anyhow!("estimator: {e}"))
                .with_context(what)?,
            None => TrainConfig::default().estimator,
        };
        if let Some(own) = self.per_estimator.get(&estimator) {
            merged.table(own, &format!("[estimators.{}]", estimator.as_str()), true).with_context(what)?;
        }
        merged.move_options().with_context(what)?;
        let config = TrainConfig::from_json(&Value::Object(merged.settings).to_string(), registry)
            .and_then(|config| Ok(config.with_absolute_paths(registry)?.check(registry)?.into_config()))
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
                let mut seen = HashSet::with_capacity(values.len());
                for value in &values {
                    anyhow::ensure!(
                        seen.insert(value.to_string()),
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

/// A combination's settings as they are merged, with where each came from.
#[derive(Default)]
struct Merged {
    /// The settings: a `config.json` (with `options` until [`Merged::move_options`]).
    settings: Map<String, Value>,
    /// The source (`[fixed]`, `grid.seed`) of each setting, by its dotted path.
    origins: BTreeMap<String, String>,
}

impl Merged {
    /// Sets every key of `table` (see [`Merged::set`]).
    fn table(&mut self, table: &Map<String, Value>, source: &str, overrides: bool) -> anyhow::Result<()> {
        table.iter().try_for_each(|(key, value)| self.set(key, value.clone(), source, overrides))
    }

    /// Sets the dotted `key` (`estimator_options.sampler`) to `value` for `source`; a table
    /// sets each of its keys. A setting that is set already (or a table above or below it) is
    /// a conflict naming both sources, unless `source` `overrides`.
    fn set(&mut self, key: &str, value: Value, source: &str, overrides: bool) -> anyhow::Result<()> {
        if let Value::Object(table) = value {
            for (inner, value) in table {
                self.set(&format!("{key}.{inner}"), value, source, overrides)?;
            }
            return Ok(());
        }
        // A setting below `key` (`key.x`), `key` itself, or one above it (`key` is `a.b`, `a` is set).
        let below = format!("{key}.");
        let mut set_already: Vec<String> = self
            .origins
            .range(key.to_owned()..)
            .take_while(|(path, _)| path.starts_with(key))
            .map(|(p, _)| p.clone())
            .collect();
        set_already.retain(|path| path == key || path.starts_with(&below));
        set_already.extend(
            key.match_indices('.')
                .map(|(at, _)| &key[..at])
                .filter(|above| self.origins.contains_key(*above))
                .map(str::to_owned),
        );
        if let Some(path) = set_already.first() {
            let earlier = &self.origins[path];
            anyhow::ensure!(
                overrides && earlier != source,
                "{key} is set {}; give each setting in one place",
                if earlier == source {
                    format!("twice in {source}")
                } else {
                    format!("by both {earlier} and {source}")
                }
            );
        }
        for path in set_already {
            self.origins.remove(&path);
        }
        self.origins.insert(key.to_owned(), source.to_owned());
        let mut table = &mut self.settings;
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                table.insert(part.to_owned(), value);
                break;
            }
            let inner = table.entry(part.to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if !inner.is_object() {
                *inner = Value::Object(Map::new());
            }
            let Value::Object(inner) = inner else { unreachable!("made a table above") };
            table = inner;
        }
        Ok(())
    }

    /// Moves `options.NAME` to `env_options.ENV.NAME`, ENV the run's environment; one that
    /// `env_options.ENV.NAME` sets already is a conflict.
    fn move_options(&mut self) -> anyhow::Result<()> {
        let Some(options) = self.settings.remove(OPTIONS) else { return Ok(()) };
        anyhow::ensure!(options.is_object(), "{OPTIONS} must be a table of the environment's options, got {options}");
        let env = self.settings.get("env").and_then(Value::as_str).unwrap_or(&TrainConfig::default().env).to_owned();
        let prefix = format!("{OPTIONS}.");
        let moved: Vec<(String, String)> = self
            .origins
            .iter()
            .filter(|(path, _)| path.starts_with(&prefix))
            .map(|(path, source)| (path.clone(), source.clone()))
            .collect();
        for (path, source) in moved {
            self.origins.remove(&path);
            let mut value = &options;
            for part in path[prefix.len()..].split('.') {
                value = &value[part];
            }
            self.set(&format!("env_options.{env}.{}", &path[prefix.len()..]), value.clone(), &source, false)?;
        }
        Ok(())
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
        spec.combinations(&Registry::shipped()).unwrap().into_iter().map(|c| c.name.into()).collect()
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
        assert_eq!(spec.count(), Some(8));
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

    /// A folder name that is not a [`PathName`] (`..` would be the sweep folder's parent,
    /// `.` and an empty label the sweep folder itself, `table.md` the report's file) is
    /// refused with its combination, before anything runs.
    #[test]
    fn labels_that_are_not_folder_names_are_refused() {
        for (label, name) in [("..", "\"..\""), (".", "\".\""), ("", "\"\""), ("table.md", "\"table.md\"")] {
            let text = format!("[fixed]\nenv = \"max-coverage\"\n[grid]\nsize = [{{ k = 3, label = \"{label}\" }}]\n");
            let error = format!("{:#}", spec(&text).unwrap().combinations(&Registry::shipped()).unwrap_err());
            assert!(error.contains(&format!("the name {name} is")) && error.contains("sweep combination"), "{error}");
        }
        // An empty label among other values makes a name that starts with `-` (a flag).
        let text = "[fixed]\nenv = \"max-coverage\"\n[grid]\nsize = [{ k = 3, label = \"\" }]\nseed = [0]\n";
        let error = format!("{:#}", spec(text).unwrap().combinations(&Registry::shipped()).unwrap_err());
        assert!(error.contains("\"-seed0\" is not allowed"), "{error}");
        // Names that differ only in case are one folder on some file systems.
        let text =
            "[fixed]\nenv = \"max-coverage\"\n[grid]\nsize = [{ k = 3, label = \"a\" }, { k = 4, label = \"A\" }]\n";
        let error = format!("{:#}", spec(text).unwrap().combinations(&Registry::shipped()).unwrap_err());
        assert!(error.contains("the same folder name A"), "{error}");
    }

    /// Expansion is linear: a hundred thousand combinations, every one checked.
    #[test]
    fn the_largest_grid_expands_with_every_combination_checked() {
        let seeds: Vec<String> = (0..MAX_COMBINATIONS / 100).map(|s| s.to_string()).collect();
        let rates: Vec<String> = (1..=100).map(|r| format!("{}.0e-3", r)).collect();
        let text = format!(
            "[fixed]\nenv = \"max-coverage\"\n[grid]\nlearning_rate = [{}]\nseed = [{}]\n",
            rates.join(", "),
            seeds.join(", ")
        );
        let largest = spec(&text).unwrap();
        assert_eq!(largest.count(), Some(MAX_COMBINATIONS));
        let combinations = largest.combinations(&Registry::shipped()).unwrap();
        assert_eq!(combinations.len(), MAX_COMBINATIONS);
        assert_eq!(combinations[0].name, "learning-rate0.001-seed0");
        let last = combinations.last().unwrap();
        assert_eq!((last.config.learning_rate, last.config.seed), (Some(0.1), 999));
        // One more value is refused, from the lists' lengths.
        let text = text.replace("seed = [0,", "seed = [100000, 0,");
        let error = format!("{:#}", spec(&text).unwrap().combinations(&Registry::shipped()).unwrap_err());
        assert!(error.contains("makes 100100 combinations (100 learning_rate × 1001 seed)"), "{error}");
    }

    /// 10¹³ combinations, or more than a `usize` counts, are refused before anything is
    /// allocated for them.
    #[test]
    fn a_grid_past_the_limit_is_refused_before_expanding() {
        let ten = (0..10).map(|v| v.to_string()).collect::<Vec<_>>().join(", ");
        for (axes, count) in [(13, "10000000000000"), (25, "over 2^64")] {
            let lists: String = (0..axes).map(|a| format!("options.x{a} = [{ten}]\n")).collect();
            let spec = spec(&format!("[grid]\n{lists}")).unwrap();
            let error = format!("{:#}", spec.combinations(&Registry::shipped()).unwrap_err());
            assert!(
                error.contains(&format!("makes {count} combinations")) && error.contains("100000 a sweep"),
                "{error}"
            );
        }
    }

    /// A setting is given in one place: two sources of one setting are refused by name;
    /// `[estimators.NAME]` alone overrides (after the grid's values).
    #[test]
    fn a_setting_given_twice_is_refused_by_name() {
        let error = |text: &str| format!("{:#}", spec(text).unwrap().combinations(&Registry::shipped()).unwrap_err());
        let base = "[fixed]\nenv = \"max-coverage\"\n";
        let fixed_and_grid = error(&format!("{base}seed = 3\n[grid]\nseed = [0, 1]\n"));
        assert!(fixed_and_grid.contains("seed is set by both [fixed] and grid.seed"), "{fixed_and_grid}");
        let two_tables = error(&format!("{base}[grid]\na = [{{ k = 3 }}]\nb = [{{ k = 5 }}]\n"));
        assert!(two_tables.contains("k is set by both grid.a and grid.b"), "{two_tables}");
        let table_and_list = error(&format!("{base}[grid]\nk = [3]\nsize = [{{ k = 5, label = \"s\" }}]\n"));
        assert!(table_and_list.contains("k is set by both grid.k and grid.size"), "{table_and_list}");
        let two_spellings =
            error(&format!("{base}[fixed.env_options.max-coverage]\nn = 30\n[grid]\noptions.n = [40]\n"));
        assert!(
            two_spellings.contains("env_options.max-coverage.n is set by both [fixed] and grid.options.n"),
            "{two_spellings}"
        );
        let not_a_table = error(&format!("{base}options = 3\n[grid]\nseed = [0]\n"));
        assert!(not_a_table.contains("options must be a table"), "{not_a_table}");
        let table_and_value =
            error(&format!("{base}estimator_options = 3\n[grid]\nestimator_options.sampler = [\"exact\"]\n"));
        assert!(table_and_value.contains("estimator_options.sampler is set by both [fixed]"), "{table_and_value}");
        // Tables merge key by key, and per-estimator settings override the grid's.
        let spec = spec(&format!(
            "{base}estimator_options = {{ temperature = 0.5 }}\n[grid]\nestimator_options.sampler = [\"exact\"]\n\
             samples = [4]\nestimator = [\"sfess\"]\n[estimators.sfess]\nsamples = 1\n"
        ))
        .unwrap();
        let config = &spec.combinations(&Registry::shipped()).unwrap()[0].config;
        assert_eq!((config.estimator_options.temperature, config.samples), (0.5, 1));
    }

    /// JSON sweep files refuse a key given twice, as TOML does.
    #[test]
    fn a_json_key_given_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.json");
        std::fs::write(&path, r#"{"fixed": {"seed": 3, "seed": 4}, "grid": {"steps": [5]}}"#).unwrap();
        let error = format!("{:#}", SweepSpec::read(&path).unwrap_err());
        assert!(error.contains("is not JSON") && error.contains("the key \"seed\" is given twice"), "{error}");
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
