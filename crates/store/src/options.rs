//! The store's tunables (`StoreOptions`), each with an explicit bound.

use std::time::Duration;

use crate::location::SegmentsLocation;

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
    /// When the process's resident memory passes this, the segment pages (term tables,
    /// postings, id tables) that lookups faulted in are dropped from the mapping (Linux,
    /// checked ten times a second). They stay in the page cache, so the next read of one
    /// is a minor fault. The rest of the store's memory is bounded by the options above.
    pub rss_soft_limit_bytes: u64,
    /// Whether sealed segments are recompressed at a higher zstd level in the background
    /// (`settler.rs`), on a thread at the lowest CPU priority: records about a sixth
    /// smaller, for CPU time nothing else wanted.
    pub settle: bool,
    /// Settling and the dedup groups built after a restart wait, before each step, until
    /// no lookup has run for this long (at most a second per step: `quiet.rs`), because
    /// where CPU time is capped from outside (a container's limit, a VM's host), work at
    /// the lowest priority still spends it. Zero: they never wait.
    pub lookup_quiet: Duration,
    /// Where sealed segments are kept: under the store's directory, or in a bucket
    /// (with `segments/` as the local cache).
    pub segments_location: SegmentsLocation,
    /// The most memory the dedup groups' filters hold (`id_groups.rs`, 1.25 bytes per
    /// event covered). Past it the oldest group is dropped, and the segments it covered
    /// are checked by their own filters again.
    pub dedup_group_bytes_max: u64,
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
            // A 10M-event ingest holds ~650 MB of heads and seals plus ~150 MB of
            // mapped files; lookups alone after it, ~770 MB with every index page mapped.
            rss_soft_limit_bytes: 832 * 1024 * 1024,
            settle: true,
            lookup_quiet: crate::quiet::QUIET,
            // Covers the newest 27M to 54M events (the groups double in size).
            dedup_group_bytes_max: 64 * 1024 * 1024,
            segments_location: SegmentsLocation::DataDir,
            free_space_reserve_bytes: None,
        }
    }
}
