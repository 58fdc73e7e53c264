//! Crash-safe file operations: a file either has its old content or its new one.

use std::io::Write;
use std::path::Path;

use crate::error::StoreError;

/// Writes `bytes` to a temporary sibling, fsyncs it, renames it over `path` and fsyncs the
/// directory, so after a crash `path` holds either the old or the new content.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let temporary = temporary_sibling(path);
    {
        let mut file =
            std::fs::File::create(&temporary).map_err(|error| StoreError::io(&temporary, error))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|error| StoreError::io(&temporary, error))?;
    }
    std::fs::rename(&temporary, path).map_err(|error| StoreError::io(path, error))?;
    sync_parent(path)
}

/// The name a file is written under before its atomic rename.
pub(crate) fn temporary_sibling(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Fsyncs the directory holding `path`, making a create, rename or removal durable.
pub(crate) fn sync_parent(path: &Path) -> Result<(), StoreError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    sync_dir(parent)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(|error| StoreError::io(dir, error))
}

/// Removes a file; an absent one is fine (a crash may have removed it already).
pub(crate) fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(StoreError::io(path, error)),
    }
}

/// Bytes of every file under `dir`, recursively.
pub(crate) fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => bytes_under(&entry.path()),
            Ok(_) => entry.metadata().map(|metadata| metadata.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}
