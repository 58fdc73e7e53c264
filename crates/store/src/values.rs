//! The plain values the store's calls return: what an append did, a log entry as
//! consumers read it, figures for metrics, what a retention pass removed.

/// What happened to one appended record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Durable in the log at this sequence number.
    Stored { seq: u64 },
    /// (`recipientAccountId`, `eventID`) was already stored, at this sequence number.
    Duplicate { seq: u64 },
}

/// One log entry, as consumers (Parquet, delivery, digests) read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub seq: u64,
    pub ingest_time_ms: i64,
    pub json: String,
}

/// Figures for metrics and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// The highest sequence number ever assigned.
    pub last_seq: u64,
    /// Sequence numbers at or below this were removed by retention.
    pub expired_through_seq: u64,
    /// Bytes the store uses on disk, everything included.
    pub disk_bytes: u64,
    /// Bytes in sealed segments and journals: what retention shrinks.
    pub table_bytes: u64,
    /// Bytes held by heads not yet sealed (compressed records and postings).
    pub unflushed_bytes: u64,
    /// Sealed segments.
    pub segments: u64,
    /// Events in heads not yet sealed.
    pub unsealed_events: u64,
    /// Sealed segments the settler has not recompressed yet.
    pub unsettled_segments: u64,
    /// Segment pages mapped into the process (index pages lookups faulted in), which
    /// count in its RSS; shed past `StoreOptions::rss_soft_limit_bytes` (Linux; 0
    /// elsewhere).
    pub mapped_segment_bytes: u64,
    /// Milliseconds spent sealing heads and merging segments since the store opened (by
    /// the sealer thread, and by `flush_tables` and `compact` when they seal or merge).
    /// Passes that found nothing to do do not count.
    pub sealer_busy_ms: u64,
    /// Milliseconds appends have waited for the sealer since the store opened: while
    /// unsealed heads hold more than their budget, the writer holds the next group back.
    pub appends_waited_for_sealer_ms: u64,
    /// Rows whose record blocks seals and merges wrote on a second thread since the store
    /// opened: they take one while appends wait for the sealer during a bulk load.
    pub rows_sealed_on_second_thread: u64,
    /// Sealed segments outside the dedup groups, whose own filters every new event is
    /// checked against (the newest few, and all of them until the groups are built
    /// after opening).
    pub segments_outside_dedup_groups: u64,
    /// Memory the dedup groups' filters hold (about 1.25 bytes per event they cover).
    pub dedup_group_bytes: u64,
    /// Milliseconds the settler and the dedup groups' build have waited for lulls in
    /// lookups since the store opened (`StoreOptions::lookup_quiet`).
    pub background_waited_for_lookups_ms: u64,
}

/// Where the bytes of sealed segments and journals go, for the benchmarks' split of
/// bytes per event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpaceByPart {
    /// Compressed record blocks, with their block table and dictionary.
    pub records: u64,
    /// The Parquet files of columns beside the segments.
    pub columns: u64,
    /// Term tables and postings.
    pub postings: u64,
    /// Id tables and their Bloom filters (dedup and lookups by event id).
    pub ids: u64,
    /// Event times, seqs, seq → row, ingest-time runs and segment metadata.
    pub positions: u64,
    /// Journal files of heads not yet sealed.
    pub journal: u64,
}

/// What one retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpireReport {
    pub events_removed: u64,
    pub expired_through_seq: u64,
}
