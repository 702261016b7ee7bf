//! Files the tool writes are never left half-written, and never written through a
//! symbolic link: every file opened for writing in a run, sweep or comparison folder is
//! opened with `O_NOFOLLOW` ([`open_for_writing`]), so that a link planted in the folder
//! (`.lock`, `metrics.jsonl`, a temporary `.NAME.partial`) can neither truncate nor
//! create the file it points to.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Why a file could not be opened for writing.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file is a symbolic link (dangling or not): nothing is written through it.
    #[error("{} is a symbolic link; refusing to write through it", path.display())]
    SymbolicLink {
        /// The link.
        path: PathBuf,
    },
    /// Any other failure.
    #[error("opening {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Opens `path` with `options` (which say how: append, create, ...) without following a
/// symbolic link: the one way this crate opens a file for writing.
///
/// # Errors
/// [`OpenError::SymbolicLink`] when `path` is a link; [`OpenError::Io`] otherwise.
pub fn open_for_writing(path: &Path, options: &mut OpenOptions) -> Result<File, OpenError> {
    options.custom_flags(nix::libc::O_NOFOLLOW).open(path).map_err(|source| {
        // ELOOP: the last component is a link (O_NOFOLLOW), or a folder above loops;
        // EEXIST with create_new: the name is taken, possibly by a link.
        let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            OpenError::SymbolicLink { path: path.to_owned() }
        } else {
            OpenError::Io { path: path.to_owned(), source }
        }
    })
}

/// Opens `path` for reading if it is a regular file (following links, as every read does).
/// A FIFO, a device or a folder planted where a run's file should be is refused: opening a
/// FIFO would block for ever, and a device could be read without end. Opened with
/// `O_NONBLOCK` so that even the open of a FIFO returns; it changes nothing for a regular
/// file.
///
/// # Errors
/// The file cannot be opened (`NotFound` when it is missing), or it is not a regular file
/// (`InvalidInput`).
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new().read(true).custom_flags(nix::libc::O_NONBLOCK).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, a device or a folder stands in its place)",
        ));
    }
    Ok(file)
}

/// The bytes of the regular file `path` ([`open_regular`]).
///
/// # Errors
/// As [`open_regular`]; a failed read.
pub fn read_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_regular(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The text of the regular file `path` ([`open_regular`]).
///
/// # Errors
/// As [`open_regular`]; a failed read or text that is not UTF-8.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    let mut text = String::new();
    open_regular(path)?.read_to_string(&mut text)?;
    Ok(text)
}

/// The text of `path`, empty when there is no such file.
///
/// # Errors
/// The file exists and cannot be read.
pub fn read_or_empty(path: &Path) -> anyhow::Result<String> {
    match read_text(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        result => result.with_context(|| format!("reading {}", path.display())),
    }
}

/// Removes `path` if it exists (a link is removed itself, never what it points to).
///
/// # Errors
/// It exists and cannot be removed.
pub fn remove_if_there(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder, flushed to the
/// disk and then renamed into place: a reader sees the old file or the whole new one, never
/// a part, even after a crash. On failure (a full disk) the temporary file is removed and
/// the old file is left as it was. Whatever holds the temporary name first (a file left by
/// a crash, a link) is removed, and the temporary file is created new; the rename replaces
/// a link at `path` itself, so nothing is ever written through a link.
///
/// # Errors
/// The folder is not writable; the disk is full.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.partial"));
    remove_if_there(&temporary)?;
    let mut file = open_for_writing(&temporary, OpenOptions::new().write(true).create_new(true))
        .with_context(|| format!("writing {}", path.display()))?;
    let result = file.write_all(bytes).and_then(|()| file.sync_all()).and_then(|()| std::fs::rename(&temporary, path));
    drop(file);
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.with_context(|| format!("writing {}", path.display()))?;
    // The rename itself reaches the disk with the folder's entry.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_never_written_through() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside.txt");
        std::fs::write(&outside, "keep").unwrap();
        let folder = tmp.path().join("run");
        std::fs::create_dir(&folder).unwrap();
        // A link to a file, and a dangling one: refused, the file untouched, nothing created.
        let link = folder.join("metrics.jsonl");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let error = open_for_writing(&link, OpenOptions::new().append(true).create(true)).unwrap_err();
        assert_eq!(error.to_string(), format!("{} is a symbolic link; refusing to write through it", link.display()));
        let dangling = folder.join("marginals.jsonl");
        let missing = tmp.path().join("created.txt");
        std::os::unix::fs::symlink(&missing, &dangling).unwrap();
        assert!(matches!(
            open_for_writing(&dangling, OpenOptions::new().append(true).create(true)),
            Err(OpenError::SymbolicLink { .. })
        ));
        // A planted temporary link is removed, and the file at `path` replaces its link.
        std::os::unix::fs::symlink(&outside, folder.join(".summary.json.partial")).unwrap();
        std::os::unix::fs::symlink(&outside, folder.join("summary.json")).unwrap();
        write_atomically(&folder.join("summary.json"), b"new").unwrap();
        assert_eq!(std::fs::read_to_string(folder.join("summary.json")).unwrap(), "new");
        assert!(!std::fs::symlink_metadata(folder.join("summary.json")).unwrap().is_symlink());
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep");
        assert!(!missing.exists());
    }
}
