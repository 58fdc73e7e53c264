//! The store's front door: opening and recovery, and every read (lookups, the log,
//! single events). Writes go through the writer thread (`writer.rs`); sealing and
//! merging through the sealer thread (`sealer.rs`); the state they share is `shared.rs`,
//! the directory's layout `layout.rs`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use opentrail_event::{EventRecord, FilterField};

use crate::error::StoreError;
use crate::layout::{FORMAT_FILE_NAME, V1_ENGINE_DIR};
use crate::options::StoreOptions;
use crate::query::{LookupPage, LookupQuery, PositionBounds, Scope, StoredEvent};
use crate::shared::{SeqRead, Shared, lock_directory, now_ms, read_head};
use crate::stored_record::parse_stored;
use crate::values::{AppendOutcome, ExpireReport, LogEntry, StoreStats};
use crate::writer::{BeforeVisible, WriterHandle};

/// The handle to an open store. Cheap to clone; all clones share one writer.
#[derive(Clone)]
pub struct Store {
    pub(crate) shared: Arc<Shared>,
    threads: Arc<Threads>,
}

/// The store's threads. Dropping the last handle stops them in order (the writer
/// finishes what is queued, then the sealer stops) and waits for both.
struct Threads {
    writer: WriterHandle,
    _sealer: crate::sealer::SealerHandle,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, recovering after any crash. A store
    /// of the previous format is converted first (see `migrate.rs`).
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|error| StoreError::io(dir, error))?;
        let lock_file = lock_directory(dir)?;
        if dir.join(V1_ENGINE_DIR).exists() && !dir.join(FORMAT_FILE_NAME).exists() {
            crate::migrate::migrate_v1(dir)?;
        }
        let shared = Arc::new(Shared::recover(dir, options, lock_file)?);
        let writer = WriterHandle::start(shared.clone())?;
        let sealer = crate::sealer::start(&shared, writer.rotation_requests())?;
        Ok(Store {
            shared,
            threads: Arc::new(Threads {
                writer,
                _sealer: sealer,
            }),
        })
    }

    /// Appends records durably (one shared fsync per group commit) and reports, per
    /// record in order, its sequence number or that it was a duplicate. Blocks until the
    /// records are on disk; waits for room when the append queue is full.
    pub fn append(&self, records: Vec<EventRecord>) -> Result<Vec<AppendOutcome>, StoreError> {
        self.threads
            .writer
            .append(&self.shared, records, true, None)
    }

    /// Like [`Store::append`], but reports [`StoreError::Overloaded`] instead of waiting
    /// when the append queue is full, so servers can answer 503.
    pub fn try_append(&self, records: Vec<EventRecord>) -> Result<Vec<AppendOutcome>, StoreError> {
        self.threads
            .writer
            .append(&self.shared, records, false, None)
    }

    /// [`Store::try_append`], and `before_visible` runs with the outcomes after the
    /// records are durable but before any reader can see their seqs (see
    /// [`BeforeVisible`]); it does not run when the append fails.
    pub fn try_append_then(
        &self,
        records: Vec<EventRecord>,
        before_visible: BeforeVisible,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        self.threads
            .writer
            .append(&self.shared, records, false, Some(before_visible))
    }

    /// Removes events recorded longer ago than the retention period, but never past what
    /// every consumer cursor has read. Returns what was removed.
    pub fn expire(&self, now_ms: i64) -> Result<ExpireReport, StoreError> {
        self.threads.writer.expire(now_ms)
    }

    /// Runs one evaluation of `query`: newest first, at most `query.limit` events.
    pub fn lookup(&self, query: &LookupQuery) -> Result<LookupPage, StoreError> {
        self.lookup_at(query, now_ms())
    }

    /// [`Store::lookup`] as if the clock read `now_ms`, which decides what has expired.
    pub fn lookup_at(&self, query: &LookupQuery, now_ms: i64) -> Result<LookupPage, StoreError> {
        let _in_flight = self.shared.lookups.begin();
        crate::lookup::run(&self.shared, query, now_ms)
    }

    /// The event stored for (account, eventID), if retained.
    pub fn get_event(
        &self,
        account_id: &str,
        event_id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let _in_flight = self.shared.lookups.begin();
        let sources = self.shared.sources();
        let Some(found) = self.shared.find_id(&sources, account_id, event_id)? else {
            return Ok(None);
        };
        let now = now_ms();
        Ok(self
            .shared
            .is_visible(found.seq, found.ingest_time_ms, now)
            .then_some(found))
    }

    /// Up to `limit` log entries with sequence numbers after `after_seq`, in order.
    /// Consumers (Parquet, delivery, digests) read the log through this.
    pub fn read_log(&self, after_seq: u64, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        let sources = self.shared.sources();
        let last_seq = self.shared.last_seq.load(Ordering::Acquire);
        let mut seq = after_seq
            .max(self.shared.expired_through_seq.load(Ordering::Acquire))
            .saturating_add(1);
        let mut entries = Vec::new();
        while entries.len() < limit && seq <= last_seq {
            match self.shared.read_seq(&sources, seq)? {
                SeqRead::Found(entry) => {
                    entries.push(entry);
                    seq += 1;
                }
                SeqRead::Absent => seq += 1,
                SeqRead::NextSourceFrom(next) => seq = next.max(seq + 1),
                SeqRead::End => break,
            }
        }
        Ok(entries)
    }

    /// The log entries of `seqs`, in the order given, for a reader that already knows
    /// which events it wants (SQL, after filtering a segment's columns). A seq that is
    /// expired, past the published log or held by no source is left out.
    ///
    /// They are read in the order the records are laid out (a segment's rows, newest
    /// first), so consecutive reads share the block just decoded whatever order the seqs
    /// come in: a sealed head's Parquet rows, which SQL filters first, are in seq order.
    pub fn read_seqs(&self, seqs: &[u64]) -> Result<Vec<LogEntry>, StoreError> {
        let sources = self.shared.sources();
        let last_seq = self.shared.last_seq.load(Ordering::Acquire);
        let expired_through = self.shared.expired_through_seq.load(Ordering::Acquire);
        let mut reads: Vec<(usize, (usize, u64))> = seqs
            .iter()
            .enumerate()
            .filter(|(_, seq)| **seq > expired_through && **seq <= last_seq)
            .map(|(given, &seq)| (given, self.shared.layout_place(&sources, seq)))
            .collect();
        reads.sort_unstable_by_key(|(_, place)| *place);
        let mut found: Vec<Option<LogEntry>> =
            std::iter::repeat_with(|| None).take(seqs.len()).collect();
        for (given, _) in reads {
            if let SeqRead::Found(entry) = self.shared.read_seq(&sources, seqs[given])? {
                found[given] = Some(entry);
            }
        }
        Ok(found.into_iter().flatten().collect())
    }

    /// The seqs of the events of the sealed segment that starts at `covers_first` indexed
    /// under every `(field, value)` of `terms` whose event time (epoch ms) is within
    /// `event_times`, in the segment's row order (newest first).
    /// Terms are hashes, so this is a superset of the events whose fields equal those
    /// values, for a reader that re-checks what it reads (SQL). `None` when no segment
    /// starts there any more (a merge replaced it): the caller reads its range instead.
    pub fn segment_seqs_indexed_under(
        &self,
        covers_first: u64,
        terms: &[(FilterField, &str)],
        event_times: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<Vec<u64>>, StoreError> {
        let sources = self.shared.sources();
        // Sorted by `covers_first`.
        let Ok(index) = sources
            .segments
            .binary_search_by_key(&covers_first, |segment| segment.covers_first)
        else {
            return Ok(None);
        };
        if terms.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let segment = &sources.segments[index];
        let bounds = PositionBounds::between(*event_times.start(), *event_times.end());
        let terms: Vec<u64> = terms
            .iter()
            .map(|(field, value)| crate::terms::term(*field, value))
            .collect();
        // A lookup's row walk, without its page limit or visibility (SQL checks both).
        let matches =
            crate::segment::top_matches(segment, &terms, &bounds, usize::MAX, &|_, _| true);
        Ok(Some(
            matches
                .into_iter()
                .map(|(position, _)| position.seq)
                .collect(),
        ))
    }

    /// A consumer's durable cursor (0 when it has read nothing).
    pub fn load_cursor(&self, consumer: &str) -> Result<u64, StoreError> {
        Ok(self
            .shared
            .meta
            .read(|meta| meta.cursors.get(consumer).copied().unwrap_or(0)))
    }

    /// The highest sequence number ever assigned (cheap, unlike [`Store::stats`], which
    /// measures the disk).
    pub fn last_seq(&self) -> u64 {
        self.shared.last_seq.load(Ordering::Acquire)
    }

    /// Waits until the log holds an event after `seq` (readable, as [`Store::read_log`]
    /// reads it) or `timeout` passes, and returns the last seq then. A consumer that has
    /// caught up waits here instead of sleeping, so it starts on an append at once.
    pub fn wait_for_events_after(&self, seq: u64, timeout: std::time::Duration) -> u64 {
        self.shared.wait_for_events_after(seq, timeout)
    }

    /// Durably records that `consumer` has processed the log through `seq`. Call it only
    /// after the consumer's own output is durable.
    pub fn save_cursor(&self, consumer: &str, seq: u64) -> Result<(), StoreError> {
        self.shared.meta.update(|meta| {
            meta.cursors.insert(consumer.to_owned(), seq);
        })
    }

    /// Forgets a consumer, so it no longer holds back retention.
    pub fn delete_cursor(&self, consumer: &str) -> Result<(), StoreError> {
        self.shared.meta.update(|meta| {
            meta.cursors.remove(consumer);
        })
    }

    /// Every source of events at this instant, for a scan of all of them (SQL): see
    /// [`ScanSources`].
    pub fn scan_sources(&self) -> Result<crate::ScanSources, StoreError> {
        crate::scan_sources::scan_sources(&self.shared, now_ms())
    }

    /// Every scope (account, region, lane) that holds or held an event.
    pub fn scopes(&self) -> Vec<Scope> {
        self.shared.scopes(&self.shared.sources())
    }

    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let sources = self.shared.sources();
        let mut unflushed_bytes = 0;
        let mut unsealed_events = 0;
        let (sealer_busy_ms, appends_waited_for_sealer_ms) = self.shared.sealer_times.millis();
        for head in &sources.heads {
            let head = read_head(head);
            unflushed_bytes += head.bytes();
            unsealed_events += head.len() as u64;
        }
        Ok(StoreStats {
            last_seq: self.shared.last_seq.load(Ordering::Acquire),
            expired_through_seq: self.shared.expired_through_seq.load(Ordering::Acquire),
            disk_bytes: crate::files::bytes_under(&self.shared.dir),
            table_bytes: crate::files::bytes_under(&self.shared.segments_dir)
                + crate::files::bytes_under(&self.shared.journal_dir),
            unflushed_bytes,
            segments: sources.segments.len() as u64,
            unsealed_events,
            unsettled_segments: crate::settler::unsettled_segments(&sources.segments),
            mapped_segment_bytes: crate::sealer::mapped_segment_bytes(&sources.segments),
            sealer_busy_ms,
            appends_waited_for_sealer_ms,
            rows_sealed_on_second_thread: self.shared.sealer_times.rows_on_second_thread(),
            segments_outside_dedup_groups: (sources.segments.len()
                - sources.id_groups.covered_segments(&sources.segments).len())
                as u64,
            dedup_group_bytes: sources.id_groups.filter_bytes(),
            background_waited_for_lookups_ms: self.shared.lookups.waited_ms(),
        })
    }

    /// Where the bytes of sealed segments and journals go (`opentrail-store-bench`'s
    /// bytes per event split).
    pub fn space_by_part(&self) -> crate::values::SpaceByPart {
        let mut space = crate::values::SpaceByPart {
            journal: crate::files::bytes_under(&self.shared.journal_dir),
            ..Default::default()
        };
        for segment in &self.shared.sources().segments {
            segment.add_space(&mut space);
            space.columns += std::fs::metadata(crate::columns::path_for_segment(&segment.path))
                .map_or(0, |metadata| metadata.len());
        }
        space
    }

    /// Whether writes are accepted now, and if not, why.
    pub fn write_status(&self) -> crate::space::WriteStatus {
        self.shared.write_health.status()
    }

    /// Appends refused since the store opened (free space under the reserve, rolled-back
    /// journal writes).
    pub fn refused_writes(&self) -> u64 {
        self.shared.write_health.refused_writes()
    }

    /// The data directory's filesystem, with the reserve under which writes are refused.
    pub fn free_space(&self) -> Result<crate::space::FreeSpace, StoreError> {
        crate::space::FreeSpace::of(
            &self.shared.dir,
            self.shared.options.free_space_reserve_bytes,
        )
    }

    /// The last background sealing error, until a later seal succeeds.
    pub fn sealer_error(&self) -> Option<String> {
        self.shared
            .sealer_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Merges sealed segments into as few as the size limit allows, now rather than
    /// whenever the background merge gets to them.
    pub fn compact(&self) -> Result<(), StoreError> {
        crate::sealer::merge_all(&self.shared)
    }

    /// Recompresses every sealed segment not yet settled (see `settler.rs`), on the
    /// calling thread, now rather than whenever the background settler gets to them.
    pub fn settle(&self) -> Result<(), StoreError> {
        crate::settler::settle_all(&self.shared)
    }

    /// Seals everything in memory into segments and waits until that is done. Not needed
    /// for durability (the journal already has it); it makes reopening faster.
    pub fn flush_tables(&self) -> Result<(), StoreError> {
        self.threads.writer.rotate()?;
        crate::sealer::seal_pending(&self.shared)
    }

    /// Reads every record of every segment and head, so every checksum is checked.
    /// Returns how many records were verified, or the first damage found, with its
    /// location.
    pub fn verify(&self) -> Result<u64, StoreError> {
        let sources = self.shared.sources();
        let mut records = 0;
        for segment in &sources.segments {
            for block in 0..segment.block_count() as u32 {
                let decoded = segment.decode_block(block, &self.shared.dictionaries)?;
                for index in 0..decoded.len() {
                    let json = decoded.record(index).unwrap_or_default();
                    parse_stored(json, &segment.path.display())?;
                }
            }
            // Kept journal blocks may also hold records that are not rows (duplicates).
            records += u64::from(segment.rows);
        }
        for head in &sources.heads {
            let head = read_head(head);
            for (block_index, block) in head.blocks.iter().enumerate() {
                crate::blocks::decode_block(
                    &self.shared.dictionaries,
                    block.dictionary_id,
                    block.raw_len,
                    &block.bytes,
                    &|| format!("{} block {block_index}", head.journal_path.display()),
                )?;
            }
            records += head.len() as u64;
        }
        Ok(records)
    }

    /// The data directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }
}
