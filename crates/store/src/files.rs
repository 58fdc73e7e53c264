//! Crash-safe file operations: a file either has its old content or its new one.

use std::path::Path;

use crate::error::StoreError;

/// Replaces `path` with `bytes` atomically and durably (`opentrail_durable`).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    opentrail_durable::write_atomically(path, bytes).map_err(|error| StoreError::io(path, error))
}

pub(crate) use opentrail_durable::temporary_sibling;

/// Fsyncs the directory holding `path`, making a create, rename or removal durable.
pub(crate) fn sync_parent(path: &Path) -> Result<(), StoreError> {
    opentrail_durable::sync_parent(path).map_err(|error| StoreError::io(path, error))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    opentrail_durable::sync_directory(dir).map_err(|error| StoreError::io(dir, error))
}

/// Removes a file; an absent one is fine (a crash may have removed it already).
pub(crate) fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    opentrail_durable::remove_if_present(path).map_err(|error| StoreError::io(path, error))
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
