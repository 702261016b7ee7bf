//! The machine: devices (`--device`), CPU threads (`--threads`), one-line error messages.

pub mod device;
pub mod messages;
pub mod threads;
