//! The machine and the rules shared by every command: devices (`--device`), CPU threads
//! (`--threads`), one-line error messages, names that become paths, JSON without duplicate
//! keys.

pub mod device;
pub mod json;
pub mod messages;
pub mod names;
pub mod threads;
