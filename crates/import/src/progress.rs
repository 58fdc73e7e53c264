//! Live counters of a running import: a leaf module, because the lister and the appender
//! (in `pipeline`) both update them, and the pipeline starts the lister.

use std::sync::atomic::{AtomicBool, AtomicU64};

/// Live counters for a progress display, updated while the import runs.
#[derive(Debug, Default)]
pub struct ImportProgress {
    /// CloudTrail files queued for reading, and their stored size: what remains known.
    pub files_found: AtomicU64,
    pub bytes_found: AtomicU64,
    /// Set once every source has been listed; until then the totals above still grow.
    pub listing_complete: AtomicBool,
    /// Files finished (every event durable, or failed, or skipped after reading), and
    /// their stored bytes.
    pub files_done: AtomicU64,
    pub bytes_done: AtomicU64,
    /// JSON bytes after decompression of the files done.
    pub json_bytes_done: AtomicU64,
    pub events_imported: AtomicU64,
    pub duplicates: AtomicU64,
    pub files_skipped: AtomicU64,
    pub files_already_imported: AtomicU64,
    pub error_files: AtomicU64,
}
