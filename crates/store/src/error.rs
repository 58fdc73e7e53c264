//! The store's error type: a leaf module every other module uses.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt {what} at {location}: {detail}")]
    Corrupt {
        what: &'static str,
        location: String,
        detail: String,
    },
    #[error("the store is locked by another process ({path})")]
    Locked { path: PathBuf },
    #[error("the append queue is full; retry later")]
    Overloaded,
    #[error("the store is shut down after an earlier write failure: {0}")]
    Poisoned(String),
    /// Writes are refused until free space is back above the reserve; nothing was written.
    #[error(
        "writes are refused: {path} has {available_mb} MB free, under the reserve of {reserve_mb} MB; they resume by themselves once space is freed"
    )]
    DiskFull {
        path: PathBuf,
        available_mb: u64,
        reserve_mb: u64,
    },
    /// A journal write failed and was rolled back: nothing of it was kept, and the store
    /// goes on accepting writes.
    #[error("the write was not stored ({0}); retry later")]
    WriteRolledBack(String),
    #[error("{path} holds a store in an older format: {detail}")]
    NeedsMigration { path: PathBuf, detail: String },
    #[error("migrating the store in {path} failed: {detail}")]
    Migration { path: PathBuf, detail: String },
    /// A request to the segments' home (an object store) failed.
    #[error("segment store {url}: {action} {key} failed: {detail}")]
    SegmentHome {
        url: String,
        action: &'static str,
        key: String,
        detail: String,
    },
}

impl StoreError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn corrupt(
        what: &'static str,
        location: impl Into<String>,
        detail: impl Into<String>,
    ) -> StoreError {
        StoreError::Corrupt {
            what,
            location: location.into(),
            detail: detail.into(),
        }
    }
}
