//! SIGINT, SIGTERM and SIGUSR1 as a request to stop cleanly.
//!
//! The first signal only sets a flag ([`Interrupt`]); the run loop sees it between steps,
//! writes its checkpoint and returns [`Interrupted`], which the binary turns into exit code
//! 128 + the signal (130 for SIGINT, 143 for SIGTERM, 138 for SIGUSR1: the signal Slurm
//! sends before a time limit, which a sweep's task script turns into a requeue). A second
//! signal ends the process at once with that code, for when stopping cleanly takes too long.
//!
//! SIGXFSZ (a write past the file-size limit, `ulimit -f`) is caught and does nothing
//! ([`fail_writes_past_the_file_size_limit`]): the write then fails with `EFBIG`, and the
//! run reports it like a full disk (the file and the step named, the append cut back to its
//! last whole line) instead of being killed without a word.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1, SIGXFSZ};

/// The handlers' flag, once installed.
static INSTALLED: std::sync::OnceLock<Interrupt> = std::sync::OnceLock::new();

/// Whether (and by which signal) the process was asked to stop. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    /// The first signal received, 0 for none.
    signal: Arc<AtomicUsize>,
    /// Set with it: what an environment waiting on a child process polls.
    flag: Arc<AtomicBool>,
}

impl Interrupt {
    /// A flag that no signal sets (a library caller, a test): only [`Interrupt::trigger`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs the handlers of SIGINT, SIGTERM and SIGUSR1: the first sets the flag, a
    /// second exits at once with 128 + its number.
    ///
    /// # Errors
    /// The handlers cannot be installed.
    pub fn install() -> std::io::Result<Self> {
        if let Some(installed) = INSTALLED.get() {
            return Ok(installed.clone());
        }
        let interrupt = Self::new();
        for signal in [SIGINT, SIGTERM, SIGUSR1] {
            // Registered first, so that it sees the flag as it was before this signal.
            signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(&interrupt.flag))?;
            signal_hook::flag::register_usize(signal, Arc::clone(&interrupt.signal), signal as usize)?;
            signal_hook::flag::register(signal, Arc::clone(&interrupt.flag))?;
        }
        Ok(INSTALLED.get_or_init(|| interrupt).clone())
    }

    /// The flag [`Interrupt::install`] installed in this process, else one no signal sets.
    pub fn of_process() -> Self {
        INSTALLED.get().cloned().unwrap_or_default()
    }

    /// Acts as if `signal` had been received.
    pub fn trigger(&self, signal: i32) {
        self.signal.store(signal as usize, Ordering::SeqCst);
        self.flag.store(true, Ordering::SeqCst);
    }

    /// The signal received, if any.
    pub fn received(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 if self.flag.load(Ordering::SeqCst) => Some(SIGINT),
            0 => None,
            signal => Some(signal as i32),
        }
    }

    /// The shared flag, for code that polls while it waits (the reward command's answers).
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.flag)
    }
}

/// Makes a write past the file-size limit fail with `EFBIG` instead of killing the
/// process: SIGXFSZ gets a handler that does nothing. A handler (not `SIG_IGN`, which child
/// processes would inherit) is reset by `exec`, so the commands a run starts keep the
/// default.
///
/// # Errors
/// The handler cannot be installed.
pub fn fail_writes_past_the_file_size_limit() -> std::io::Result<()> {
    // The flag is never read: the handler only has to exist.
    signal_hook::flag::register(SIGXFSZ, Arc::new(AtomicBool::new(false))).map(drop)
}

/// The conventional name of a signal number (`SIGINT`), or `signal N`.
pub fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal).map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_owned())
}

/// A run stopped by a signal after saving where it stands.
#[derive(Debug, thiserror::Error)]
#[error("{what} stopped by {} {where_}", signal_name(*.signal))]
pub struct Interrupted {
    /// The signal.
    pub signal: i32,
    /// What stopped: `training`, `compare`.
    pub what: String,
    /// Where it stands and how to continue.
    pub where_: String,
}

impl Interrupted {
    /// The exit code: 128 + the signal.
    pub fn exit_code(&self) -> u8 {
        u8::try_from(128 + self.signal).unwrap_or(1)
    }

    /// Interrupted before `dir` was written to.
    pub fn before_start(signal: i32, dir: &std::path::Path) -> Self {
        Self {
            signal,
            what: "training".into(),
            where_: format!("before the run started; nothing was written to {}", dir.display()),
        }
    }
}
