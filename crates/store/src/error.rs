//! The store's error type and its options: leaf modules every other module uses.

use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Tunables, each with an explicit bound.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Events are kept this long after OpenTrail recorded them (by ingest time).
    pub retention: Duration,
    /// The most events one group commit (one fsync) carries.
    pub group_commit_events_max: usize,
    /// The most appends waiting for the writer; beyond it `try_append` reports overload.
    pub append_queue_max: usize,
    /// Decompressed record blocks kept for reads (lookups and consumers).
    pub cache_bytes: u64,
    /// The in-memory head is sealed into a segment once it holds this many bytes
    /// (compressed records plus postings). When sealing falls behind, the writer waits
    /// before its next group commit once unsealed heads hold twice this, so a bulk load
    /// becomes backpressure instead of memory.
    pub write_buffer_bytes: u64,
    /// The head is sealed once it holds this many events.
    pub seal_events_max: usize,
    /// The longest an event stays in the head before it is sealed.
    pub seal_interval: Duration,
    /// Segments with fewer events than this are merged with their neighbours.
    pub merge_events_below: usize,
    /// A merge makes segments of at most this many events.
    pub segment_events_max: usize,
    /// Where sealed segments are kept: under the store's directory, or in a bucket
    /// (with `segments/` as the local cache).
    pub segments_location: crate::location::SegmentsLocation,
    /// Writes are refused while the data directory's filesystem has less free space than
    /// this; `None`: 5% of the filesystem, at most 512 MiB; `Some(0)`: never.
    pub free_space_reserve_bytes: Option<u64>,
}

impl StoreOptions {
    /// Unsealed head bytes above which appends wait for the sealer.
    pub(crate) fn unsealed_bytes_max(&self) -> u64 {
        self.write_buffer_bytes.saturating_mul(2)
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            retention: Duration::from_secs(90 * 24 * 3600),
            group_commit_events_max: 8192,
            append_queue_max: 256,
            cache_bytes: 64 * 1024 * 1024,
            write_buffer_bytes: 128 * 1024 * 1024,
            seal_events_max: 1_000_000,
            seal_interval: Duration::from_secs(120),
            merge_events_below: 250_000,
            // A merge holds its output's tables in memory: this bounds that.
            segment_events_max: 1_000_000,
            segments_location: crate::location::SegmentsLocation::DataDir,
            free_space_reserve_bytes: None,
        }
    }
}
