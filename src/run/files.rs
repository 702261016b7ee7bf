//! Files the tool writes are never left half-written.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// The text of `path`, empty when there is no such file.
///
/// # Errors
/// The file exists and cannot be read.
pub fn read_or_empty(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        result => result.with_context(|| format!("reading {}", path.display())),
    }
}

/// Removes `path` if it exists.
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
/// the old file is left as it was.
///
/// # Errors
/// The folder is not writable; the disk is full.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.partial"));
    let result = std::fs::File::create(&temporary)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&temporary, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.with_context(|| format!("writing {}", path.display()))?;
    // The rename itself reaches the disk with the folder's entry.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}
