//! Files that must survive a crash whole, and appends that must survive it at all.
//!
//! A replaced file is written to a temporary sibling, fsynced, renamed over the target,
//! and the directory is fsynced, so a reader sees the old content or the new, never a mix.
//! (The server has the same helper for its key files; this crate does not depend on the
//! server, so it keeps its own few lines.)

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Replaces `path` with `contents` atomically. With `sync`, also durably: the new content
/// and the rename are on disk when this returns.
pub(crate) fn write_file_atomically(path: &Path, contents: &[u8], sync: bool) -> io::Result<()> {
    let temporary_path = temporary_sibling(path);
    let mut file = File::create(&temporary_path)?;
    file.write_all(contents)?;
    if sync {
        file.sync_all()?;
    }
    drop(file);
    std::fs::rename(&temporary_path, path)?;
    if sync {
        sync_directory_of(path)?;
    }
    Ok(())
}

/// Appends `contents` to `path` (created if missing) and fsyncs it, and the directory when
/// the file is new.
pub(crate) fn append_durably(path: &Path, contents: &[u8]) -> io::Result<()> {
    let existed = path.exists();
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(contents)?;
    file.sync_all()?;
    if !existed {
        sync_directory_of(path)?;
    }
    Ok(())
}

/// Fsyncs a file that another component wrote (the local bucket's objects).
pub(crate) fn sync_file_and_directory(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()?;
    sync_directory_of(path)
}

pub(crate) fn sync_directory_of(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // On Unix a directory is opened read-only and fsynced to persist its entries.
    File::open(parent)?.sync_all()
}

/// Reads a file, `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

fn temporary_sibling(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// A worker's state file: versioned JSON, empty when absent.
pub(crate) trait VersionedState: serde::de::DeserializeOwned + Default {
    fn format(&self) -> u32;
    fn with_format(format: u32) -> Self;
}

/// Loads a versioned state file (the empty state when none exists yet), refusing one
/// written by a newer server rather than misreading it. Blocking.
pub(crate) fn load_versioned_state<T: VersionedState>(
    path: &Path,
    current_format: u32,
) -> Result<T, crate::TrailsError> {
    let bytes = read_optional(path).map_err(|source| crate::TrailsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let Some(bytes) = bytes else {
        return Ok(T::with_format(current_format));
    };
    let state: T = serde_json::from_slice(&bytes).map_err(|error| crate::TrailsError::Corrupt {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })?;
    if state.format() > current_format {
        return Err(crate::TrailsError::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "format {} is newer than this server's {current_format}",
                state.format()
            ),
        });
    }
    Ok(state)
}
