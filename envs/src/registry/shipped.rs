//! The environments this crate ships: the one file that names every environment (each
//! builds its [`EnvEntry`](super::EnvEntry) from the types of the registry's other files).

use super::Registry;
use crate::data::DataSet;

impl Registry {
    /// Every environment this crate ships.
    pub fn shipped() -> Self {
        let mut registry = Self::new();
        for entry in [
            crate::knn::entry(DataSet::Mnist),
            crate::knn::entry(DataSet::FashionMnist),
            crate::feature_selection::entry(DataSet::Mnist),
            crate::feature_selection::entry(DataSet::FashionMnist),
            crate::vae::entry(DataSet::Mnist),
            crate::vae::entry(DataSet::FashionMnist),
            crate::external::entry(),
            crate::external_episodes::entry(),
            crate::sensor::entry(None),
            crate::sensor::entry(Some(DataSet::Mnist)),
            crate::sensor::entry(Some(DataSet::FashionMnist)),
            crate::knn_selection::entry(DataSet::Mnist),
            crate::knn_selection::entry(DataSet::FashionMnist),
            crate::coverage::entry(),
            crate::scheduling::entry(),
            crate::slate::entry(),
        ] {
            // The shipped names are distinct and well formed (a test checks it).
            let _ = registry.register(entry);
        }
        registry
    }
}
