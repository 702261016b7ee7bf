//! The environment interface: Gymnasium's `reset`/`step`, batched over rows and samples.
//!
//! The [`Environment`] trait, the values it exchanges ([`EnvSpec`], [`Observation`],
//! [`Transition`], [`EnvError`], [`EvalPolicy`], ...) and the helpers for k-hot actions
//! ([`top_k_hot`], [`chosen_items`], [`random_subsets`], ...) are in files of their own,
//! re-exported here.

mod actions;
mod environment;
mod types;

pub(crate) use actions::{check_actions, random_batch};
pub use actions::{chosen_items, chosen_lists, distinct_indices, k_hot_rows, random_subsets, top_k_hot};
pub use environment::Environment;
pub(crate) use types::held_out;
pub use types::{
    EnvError, EnvSpec, EvalPolicy, FixedAction, INFO_PREFIX, Observation, Phase, RewardError, StepSeed, Transition,
    info_metric,
};
