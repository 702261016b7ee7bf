//! # sfess-envs: the reward side of sfess-agent
//!
//! Brief overview: environments whose actions are k-hot vectors, with Gymnasium's
//! semantics, batched ([`Environment`]): `reset` samples the context the policy sees,
//! `step` gives one loss per sampled action. An environment may own trainable parameters
//! (a decoder, a reconstruction network) that the trainer optimises with the policy. The
//! paper's stochastic k-NN task is [`knn::StochasticKnn`]; data sets are in `data`.
//!
//! This crate does not depend on the policy side (`sfess-agents`); an environment states
//! the action space it accepts as a [`KHotSpace`] and the runner checks that the policy
//! produces the same `(n, k)`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod coverage;
pub mod custom;
pub mod data;
pub mod env;
pub mod episodes;
pub mod external;
pub mod external_episodes;
pub mod feature_selection;
#[cfg(feature = "gymnasium")]
pub mod gymnasium;
pub mod knn;
pub mod knn_selection;
pub mod pictures;
pub mod registry;
pub mod scheduling;
pub mod sensor;
pub mod slate;
pub mod space;
pub mod text;
pub mod vae;

pub use env::{
    EnvError, EnvSpec, Environment, EvalPolicy, FixedAction, INFO_PREFIX, Observation, Phase, StepSeed, Transition,
    info_metric,
};
pub use episodes::{EpisodeStep, Episodic, SequentialEnvironment};
pub use space::{KHotSpace, SpaceError};
pub use text::printable;

/// The book's Gymnasium chapter as a doctest (its samples need this crate's `gymnasium`
/// feature and its `gymnasium_rs` and `ndarray` dependencies); the other chapters' samples
/// are doctests of the root package (`sfess-agent`'s `mod book`).
#[cfg(all(doctest, feature = "gymnasium"))]
#[doc = include_str!("../../docs/book/src/gymnasium.md")]
struct GymnasiumChapter;
