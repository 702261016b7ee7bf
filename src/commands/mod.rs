//! The commands beside training: `compare` and `report`, `bench`, `inspect` and `toy`.

pub mod bench;
pub mod compare;
pub mod inspect;
pub mod report;
pub mod show;
pub mod toy;
