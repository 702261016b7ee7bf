//! Environments registered by name, in the spirit of Gymnasium's `register` and `make`.
//!
//! Each environment is one [`EnvEntry`] made in its own module: its name, a one-line
//! description, the data set it reads, its defaults, its own options ([`OptionSpec`]) and a
//! constructor. [`Registry::shipped`] lists the environments of this crate; a user's binary
//! starts from it and [`Registry::register`]s its own, then hands the registry to
//! `sfess_agent::cli`, which gives every registered environment `train`, `--resume`,
//! `eval` and `compare`.
//!
//! This file holds the [`Registry`]; the types an entry is made of ([`EnvEntry`], [`Make`],
//! ...; [`OptionSpec`], [`EnvOptions`], ...; [`RegistryError`]) are in files of their own,
//! re-exported here, which the environments use. None of these imports an environment: the
//! list of shipped environments ([`Registry::shipped`], `shipped.rs`) is the one file that
//! does.
//!
//! ```
//! use sfess_envs::custom::RewardEnv;
//! use sfess_envs::registry::{EnvEntry, OptionSpec, Registry};
//! use sfess_envs::KHotSpace;
//!
//! let mut registry = Registry::shipped();
//! registry.register(
//!     EnvEntry::new("ones", "reward: how many of the first 5 items are chosen", |make| {
//!         let n = make.options.count("n")?;
//!         let space = KHotSpace::new(n, make.k).map_err(|e| make.error(e.to_string()))?;
//!         let first = tch::Tensor::ones([5], tch::kind::FLOAT_CPU);
//!         Ok(Box::new(RewardEnv::new(make.name, space, move |a: &tch::Tensor| a.narrow(1, 0, 5).mv(&first))))
//!     })
//!     .default_k(5)
//!     .option(OptionSpec::count("n", 20, 5, 1000, "items to choose from")),
//! )?;
//! assert!(registry.get("ones").is_ok() && registry.get("knn-mnist").is_ok());
//! # Ok::<(), sfess_envs::registry::RegistryError>(())
//! ```

mod entry;
mod error;
mod options;
mod shipped;

pub use entry::{
    EnvEntry, IMAGE_PIXELS, Make, Metric, Network, PaperRow, Settings, Shape, SubsetKl, on_data_set, paper_rows,
};
pub use error::{RegistryError, check_name};
pub use options::{EnvOptions, MAX_ITEMS, MAX_LATENT, MAX_ROWS, MAX_WIDTH, OptionKind, OptionSpec};

/// The registered environments, in registration order.
#[derive(Debug, Default)]
pub struct Registry {
    entries: Vec<EnvEntry>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `entry`.
    ///
    /// # Errors
    /// A name taken already, or one that is not usable on a command line (lowercase
    /// letters, digits, `-`, `_`); the same for its options' names.
    pub fn register(&mut self, entry: EnvEntry) -> Result<&mut Self, RegistryError> {
        check_name("environment name", &entry.name)?;
        for option in &entry.options {
            check_name("option name", &option.name)?;
        }
        if self.entries.iter().any(|e| e.name == entry.name) {
            return Err(RegistryError::Duplicate(entry.name));
        }
        self.entries.push(entry);
        Ok(self)
    }

    /// The entry named `name`.
    ///
    /// # Errors
    /// [`RegistryError::Unknown`], listing the names.
    pub fn get(&self, name: &str) -> Result<&EnvEntry, RegistryError> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| RegistryError::Unknown { name: name.to_owned(), known: self.names().join(", ") })
    }

    /// Every entry, in registration order.
    pub fn entries(&self) -> &[EnvEntry] {
        &self.entries
    }

    /// Every name, in registration order.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }

    /// The old global flags of every environment's options, with the option each now is:
    /// `("--sensor-modes", "modes")`.
    pub fn legacy_flags(&self) -> Vec<(String, String)> {
        let mut flags: Vec<(String, String)> = Vec::new();
        for option in self.entries.iter().flat_map(|e| &e.options) {
            if let Some(flag) = &option.legacy_flag
                && !flags.iter().any(|(f, _)| f == flag)
            {
                flags.push((flag.clone(), option.name.clone()));
            }
        }
        flags
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::Value;

    use super::*;

    #[test]
    fn the_shipped_environments_are_all_registered_with_distinct_names() {
        let registry = Registry::shipped();
        assert_eq!(registry.entries().len(), 16);
        let mut names = registry.names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 16);
        for entry in registry.entries() {
            check_name("environment name", &entry.name).unwrap();
            // Every option's default fits its own kind.
            let options = entry.options_from(&BTreeMap::new());
            let required = entry.options.iter().any(|o| o.default.is_none());
            assert_eq!(options.is_err(), required, "{}", entry.name);
        }
        // One option per old flag, whichever environments share it.
        let flags = registry.legacy_flags();
        for (flag, option) in &flags {
            for entry in registry.entries() {
                for o in entry.options.iter().filter(|o| o.legacy_flag.as_deref() == Some(flag.as_str())) {
                    assert_eq!(&o.name, option, "{flag} of {}", entry.name);
                }
            }
        }
    }

    #[test]
    fn the_catalog_describes_the_shipped_environments_and_builds_none() {
        let (shipped, catalog) = (Registry::shipped(), Registry::catalog());
        assert_eq!(catalog.names(), shipped.names());
        for (described, entry) in catalog.entries().iter().zip(shipped.entries()) {
            assert_eq!(format!("{described:?}"), format!("{entry:?}"));
            assert_eq!(described.description, entry.description);
            assert_eq!(described.options_table(), entry.options_table());
            assert_eq!(
                (described.metric.clone(), described.differentiable),
                (entry.metric.clone(), entry.differentiable)
            );
            assert_eq!(
                (described.default_learning_rate, &described.baselines),
                (entry.default_learning_rate, &entry.baselines)
            );
            assert_eq!(described.policy_is_chosen(), entry.policy_is_chosen());
        }
        assert_eq!(catalog.legacy_flags(), shipped.legacy_flags());
        let coverage = catalog.get("max-coverage").unwrap();
        let options = coverage.options_from(&BTreeMap::new()).unwrap();
        let built = coverage.make(coverage.settings(5, 1, 0, tch::Device::Cpu, &options).into_make());
        assert!(built.is_err_and(|e| e.to_string().contains("only describes")));
    }

    fn entry() -> EnvEntry {
        EnvEntry::new("t", "test", |make| Err(make.error("not built in this test")))
            .option(OptionSpec::count("n", 5, 1, 10, "items"))
            .option(OptionSpec::seed("seed", 0, "instance"))
            .option(OptionSpec::text("command", None, "what to run").legacy_flag("--reward-cmd"))
    }

    #[test]
    fn options_are_checked_and_defaults_filled_in() {
        let entry = entry();
        let given = |pairs: &[(&str, Value)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        let options = entry.options_from(&given(&[("command", Value::from("cat")), ("n", "7".into())])).unwrap();
        assert_eq!((options.count("n").unwrap(), options.seed("seed").unwrap()), (7, 0));
        assert_eq!(options.text("command").unwrap(), "cat");
        assert!(options.number("n").is_ok() && options.count("command").is_err());
        for (pairs, phrase) in [
            (
                vec![("command", Value::from("cat")), ("m", Value::from(1))],
                "t has no option \"m\"; its options are: n, seed, command",
            ),
            (
                vec![("command", Value::from("cat")), ("n", Value::from(11))],
                "t option n: must be between 1 and 10, got 11",
            ),
            (vec![("command", Value::from("cat")), ("n", Value::from("x"))], "expected a whole number, got \"x\""),
            (vec![("command", Value::from("cat")), ("seed", Value::from(-1))], "expected a seed"),
            (vec![("command", Value::from(" "))], "expected a non-empty string"),
            (vec![], "t option command: must be given: --env-option command=... (or --reward-cmd ...)"),
        ] {
            let message = entry.options_from(&given(&pairs)).unwrap_err().to_string();
            assert!(message.contains(phrase), "{phrase:?} not in {message:?}");
        }
    }

    #[test]
    fn names_are_checked_and_unique() {
        let mut registry = Registry::new();
        registry.register(entry()).unwrap();
        assert_eq!(registry.register(entry()).unwrap_err(), RegistryError::Duplicate("t".to_owned()));
        let bad = EnvEntry::new("Bad Name", "", |make| Err(make.error("")));
        assert!(matches!(registry.register(bad), Err(RegistryError::BadName { .. })));
        let message = registry.get("u").unwrap_err().to_string();
        assert_eq!(message, "unknown environment \"u\"; the environments are: t");
    }
}
