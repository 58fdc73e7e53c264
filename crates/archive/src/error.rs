//! The crate's error: a leaf module, so the modules that return it do not import `lib.rs`.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] opentrail_store::StoreError),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Parquet error on {path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("Arrow error on {path}: {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow_schema::ArrowError,
    },
    #[error("log seq {seq} holds a record the archive cannot read: {detail}")]
    BadRecord { seq: u64, detail: String },
    #[error("archive file {path} is unreadable: {detail}")]
    UnreadableFile { path: PathBuf, detail: String },
    #[error("archive state at {path} is inconsistent: {detail}")]
    Inconsistent { path: PathBuf, detail: String },
    #[error("the archive at {path} is locked by another archiver")]
    Locked { path: PathBuf },
    #[error("invalid archive options: {detail}")]
    InvalidOptions { detail: String },
    #[error("the archiver thread panicked")]
    WorkerPanicked,
    /// Returned where [`ArchiveOptions::crash_for_test`] asked the archiver to stop.
    #[doc(hidden)]
    #[error("injected crash (test only)")]
    InjectedCrash,
}

impl ArchiveError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> ArchiveError {
        ArchiveError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn parquet(path: &Path, source: parquet::errors::ParquetError) -> ArchiveError {
        ArchiveError::Parquet {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn arrow(path: &Path, source: arrow_schema::ArrowError) -> ArchiveError {
        ArchiveError::Arrow {
            path: path.to_path_buf(),
            source,
        }
    }
}
