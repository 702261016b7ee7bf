//! The environments this crate ships: the one file that names every environment (each
//! builds its [`EnvEntry`](super::EnvEntry) from the types of the registry's other files).
//!
//! Two lists of the same environments in the same order: [`Registry::shipped`] with their
//! constructors, and [`Registry::catalog`] without them (a test checks that they agree).

use super::Registry;
use crate::data::DataSet::{FashionMnist, Mnist};

impl Registry {
    /// Every environment this crate ships.
    pub fn shipped() -> Self {
        Self::of([
            crate::knn::entry(Mnist),
            crate::knn::entry(FashionMnist),
            crate::feature_selection::entry(Mnist),
            crate::feature_selection::entry(FashionMnist),
            crate::vae::entry(Mnist),
            crate::vae::entry(FashionMnist),
            crate::external::entry(),
            crate::external_episodes::entry(),
            crate::sensor::entry(None),
            crate::sensor::entry(Some(Mnist)),
            crate::sensor::entry(Some(FashionMnist)),
            crate::knn_selection::entry(Mnist),
            crate::knn_selection::entry(FashionMnist),
            crate::coverage::entry(),
            crate::scheduling::entry(),
            crate::slate::entry(),
        ])
    }

    /// The shipped environments' descriptions, without their constructors: everything
    /// `sfess-agent envs`, the help and the configuration checks read, and nothing that
    /// builds an environment (building one of these is an error). A program that only
    /// lists the environments links neither the environments' code nor libtorch (the
    /// `sfess-agent` binary's fast commands use it).
    pub fn catalog() -> Self {
        Self::of([
            crate::knn::description(Mnist),
            crate::knn::description(FashionMnist),
            crate::feature_selection::description(Mnist),
            crate::feature_selection::description(FashionMnist),
            crate::vae::description(Mnist),
            crate::vae::description(FashionMnist),
            crate::external::description(),
            crate::external_episodes::description(),
            crate::sensor::description(None),
            crate::sensor::description(Some(Mnist)),
            crate::sensor::description(Some(FashionMnist)),
            crate::knn_selection::description(Mnist),
            crate::knn_selection::description(FashionMnist),
            crate::coverage::description(),
            crate::scheduling::description(),
            crate::slate::description(),
        ])
    }

    fn of(entries: [super::EnvEntry; 16]) -> Self {
        let mut registry = Self::new();
        for entry in entries {
            // The shipped names are distinct and well formed (a test checks it).
            let _ = registry.register(entry);
        }
        registry
    }
}
