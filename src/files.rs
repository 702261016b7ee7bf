//! Files the tool writes are never left half-written.

use std::path::Path;

use anyhow::Context;

/// Writes `bytes` to `path` through a temporary file in the same folder, renamed into place
/// once complete: a reader sees the old file or the whole new one, never a part.
///
/// # Errors
/// The folder is not writable; the disk is full.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.partial"));
    let result = std::fs::write(&temporary, bytes).and_then(|()| std::fs::rename(&temporary, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.with_context(|| format!("writing {}", path.display()))
}
