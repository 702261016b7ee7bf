//! The machine and the rules shared by every command: the two binaries, devices
//! (`--device`), CPU threads
//! (`--threads`), one-line error messages, names that become paths, JSON without duplicate
//! keys, files written safely (atomically, never through a link) and the signals that stop a
//! run.

pub mod binaries;
pub mod device;
pub mod files;
pub mod json;
pub mod messages;
pub mod names;
pub mod signals;
pub mod threads;
