//! One writer per folder: an exclusive lock on `DIR/.lock`, held for as long as a process
//! writes to the folder (a run folder by `train`, a comparison folder by `compare`).
//!
//! The lock is the operating system's (`flock`, through [`std::fs::File::try_lock`]): it
//! is released when the process ends however it ends, so a killed process never leaves a
//! folder locked. The file itself stays, and says who holds the lock now: a second process
//! is refused with the holder's pid, command and start time. A `.lock` that is a symbolic
//! link is refused ([`crate::system::files::open_for_writing`]).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::system::files::{OpenError, open_for_writing};

/// The lock file's name inside the folder.
pub const LOCK: &str = ".lock";

/// The lock on a folder; dropping it releases the lock.
#[derive(Debug)]
pub struct FolderLock {
    file: File,
}

/// Why a folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("{} is in use by another process ({holder}); wait for it to finish or stop it first", dir.display())]
    Held {
        /// The folder.
        dir: PathBuf,
        /// What the lock file says about its holder.
        holder: String,
    },
    /// The lock file cannot be opened (it is a symbolic link, the folder is not writable).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The lock file cannot be locked.
    #[error("locking {}: {source}", dir.display())]
    Io {
        /// The folder.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl FolderLock {
    /// Locks `dir` (which must exist) for this process, recording `what` it does there.
    ///
    /// # Errors
    /// [`LockError::Held`] when another process holds the lock; [`LockError::Open`] when the
    /// lock file cannot be opened; [`LockError::Io`] when it cannot be locked.
    pub fn acquire(dir: &Path, what: &str) -> Result<Self, LockError> {
        let io = |source| LockError::Io { dir: dir.to_owned(), source };
        let path = dir.join(LOCK);
        let mut file = open_for_writing(&path, OpenOptions::new().read(true).write(true).create(true).truncate(false))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() { "holder unknown".to_owned() } else { holder.to_owned() };
                return Err(LockError::Held { dir: dir.to_owned(), holder });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        // Who holds it, for the message of the next process (best effort: the lock is what counts).
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let line = format!("pid {}, {what}, locked at unix time {started}\n", std::process::id());
        let _ =
            file.set_len(0).and_then(|()| file.seek(SeekFrom::Start(0))).and_then(|_| file.write_all(line.as_bytes()));
        Ok(Self { file })
    }
}

/// The pid the lock file of `dir` names: the process that holds the lock, or one that was
/// killed while it held it (the lock is released then, the text stays). Read without
/// locking.
pub fn holder_pid(dir: &Path) -> Option<u32> {
    let text = crate::system::files::read_text(&dir.join(LOCK)).ok()?;
    text.strip_prefix("pid ")?.split(',').next()?.trim().parse().ok()
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holder_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let first = FolderLock::acquire(tmp.path(), "train --out X").unwrap();
        let refused = FolderLock::acquire(tmp.path(), "train --resume X").unwrap_err().to_string();
        assert!(refused.contains("in use") && refused.contains(&format!("pid {}", std::process::id())), "{refused}");
        assert!(refused.contains("train --out X"), "{refused}");
        assert_eq!(holder_pid(tmp.path()), Some(std::process::id()));
        drop(first);
        FolderLock::acquire(tmp.path(), "train --resume X").unwrap();
    }
}
