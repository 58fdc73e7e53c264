//! The store's front door: opening and recovery, and every read (lookups, the log,
//! single events). Writes go through the writer thread (`writer.rs`); sealing and
//! merging through the sealer thread (`sealer.rs`).
//!
//! ```text
//! DATA/store/
//!   FORMAT                  "opentrail-store 2"
//!   meta.json               cursors, retention floor
//!   acknowledged_seq        the highest acknowledged seq (a loss detector, not a source)
//!   journal/<seq>.journal   one per unsealed head: the only synchronous write
//!   segments/<a>-<b>.seg    immutable sealed events, seqs a..=b (and <a>-<b>.parquet,
//!                           their columns); with a bucket as their home
//!                           (`location.rs`), a local cache of it
//!   dicts/<id>.zdict        zstd dictionaries the journal's blocks name
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use opentrail_event::EventRecord;

use crate::blocks::Dictionaries;
use crate::cache::BlockCache;
use crate::error::{StoreError, StoreOptions};
use crate::head::{Head, HeadRow};
use crate::journal;
use crate::meta::{Meta, MetaState, STORE_FORMAT};
use crate::query::{LookupPage, LookupQuery, Scope, StoredEvent};
use crate::segment::{self, Segment};
use crate::terms;
use crate::writer::WriterHandle;

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
}

/// What one retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpireReport {
    pub events_removed: u64,
    pub expired_through_seq: u64,
}

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

pub(crate) const LOCK_FILE_NAME: &str = "LOCK";
pub(crate) const FORMAT_FILE_NAME: &str = "FORMAT";
const FORMAT_TEXT: &str = "opentrail-store 2\n";
pub(crate) const JOURNAL_DIR: &str = "journal";
pub(crate) const SEGMENTS_DIR: &str = "segments";
pub(crate) const DICTIONARIES_DIR: &str = "dicts";
/// The highest acknowledged sequence number, rewritten (without fsync) after every group
/// commit. If recovery ever finds fewer events than this, acknowledged events were lost to
/// damage, and opening fails loudly instead of serving a silently shorter log.
pub(crate) const HIGH_WATER_FILE_NAME: &str = "acknowledged_seq";
/// The folder of the previous format's storage engine.
pub(crate) const V1_ENGINE_DIR: &str = "engine";

/// The sources of events at one instant: every seq is in exactly one of them.
#[derive(Clone)]
pub(crate) struct Sources {
    /// Sorted by `covers_first`.
    pub segments: Vec<Arc<Segment>>,
    /// Heads being sealed, oldest first, then the active head.
    pub heads: Vec<Arc<RwLock<Head>>>,
}

/// State readers, the writer and the sealer share.
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub journal_dir: PathBuf,
    pub segments_dir: PathBuf,
    pub options: StoreOptions,
    pub dictionaries: Dictionaries,
    pub sources: RwLock<Sources>,
    pub meta: Meta,
    pub cache: BlockCache,
    pub retention_ms: i64,
    pub last_seq: AtomicU64,
    pub expired_through_seq: AtomicU64,
    next_source_id: AtomicU64,
    /// Held by whoever rewrites segments (the sealer, `compact`), one at a time.
    pub maintenance: Mutex<()>,
    /// Set when sealing failed; reported by `flush_tables` and `stats` callers.
    pub sealer_error: Mutex<Option<String>>,
    /// Whether the writer accepts writes (free space, failed journal writes).
    pub write_health: crate::space::WriteHealth,
    /// Where sealed segments are kept durably (`location.rs`); `segments_dir` is its
    /// local copy.
    pub home: Box<dyn crate::location::SegmentHome>,
    /// Held for the store's lifetime so a second process cannot open the same directory.
    _lock_file: std::fs::File,
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
        self.threads.writer.append(&self.shared, records, true)
    }

    /// Like [`Store::append`], but reports [`StoreError::Overloaded`] instead of waiting
    /// when the append queue is full, so servers can answer 503.
    pub fn try_append(&self, records: Vec<EventRecord>) -> Result<Vec<AppendOutcome>, StoreError> {
        self.threads.writer.append(&self.shared, records, false)
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
        crate::lookup::run(&self.shared, query, now_ms)
    }

    /// The event stored for (account, eventID), if retained.
    pub fn get_event(
        &self,
        account_id: &str,
        event_id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
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

    /// A consumer's durable cursor (0 when it has read nothing).
    pub fn load_cursor(&self, consumer: &str) -> Result<u64, StoreError> {
        Ok(self
            .shared
            .meta
            .read(|meta| meta.cursors.get(consumer).copied().unwrap_or(0)))
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

    /// Every scope (account, region, lane) that holds or held an event.
    pub fn scopes(&self) -> Vec<Scope> {
        self.shared.scopes(&self.shared.sources())
    }

    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let sources = self.shared.sources();
        let mut unflushed_bytes = 0;
        let mut unsealed_events = 0;
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
        })
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
                    parse_stored(json, &segment.path.display().to_string())?;
                }
                records += decoded.len() as u64;
            }
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

/// What reading one seq found.
pub(crate) enum SeqRead {
    Found(LogEntry),
    /// The seq is in a source but holds no event (expired before it was sealed).
    Absent,
    /// No source holds the seq; the next source starts here.
    NextSourceFrom(u64),
    End,
}

/// Where an event's record lives.
pub(crate) enum RecordPlace {
    Segment(Arc<Segment>, u32),
    Head(Arc<RwLock<Head>>, u32),
}

impl Shared {
    fn recover(
        dir: &Path,
        options: StoreOptions,
        lock_file: std::fs::File,
    ) -> Result<Shared, StoreError> {
        let journal_dir = dir.join(JOURNAL_DIR);
        let segments_dir = dir.join(SEGMENTS_DIR);
        for folder in [&journal_dir, &segments_dir] {
            std::fs::create_dir_all(folder).map_err(|error| StoreError::io(folder, error))?;
        }
        let format_path = dir.join(FORMAT_FILE_NAME);
        if !format_path.exists() {
            crate::files::write_atomically(&format_path, FORMAT_TEXT.as_bytes())?;
        }
        let meta = match Meta::load(dir)? {
            Some(state) if state.format != STORE_FORMAT => {
                return Err(StoreError::NeedsMigration {
                    path: dir.to_path_buf(),
                    detail: format!(
                        "format {} (this release reads {STORE_FORMAT})",
                        state.format
                    ),
                });
            }
            Some(state) => Meta::open(dir, state),
            None => Meta::create(
                dir,
                MetaState {
                    format: STORE_FORMAT,
                    ..MetaState::default()
                },
            )?,
        };
        let expired_through_seq = meta.read(|state| state.expired_through_seq);
        let dictionaries = Dictionaries::open(dir.join(DICTIONARIES_DIR))?;
        let home = crate::location::open(&options.segments_location)?;
        // Before segments are opened: the home's segments missing here are downloaded,
        // local ones not yet in the home uploaded, replaced ones removed from it.
        home.reconcile(&segments_dir, expired_through_seq)?;
        let shared = Shared {
            dir: dir.to_path_buf(),
            journal_dir,
            segments_dir,
            retention_ms: i64::try_from(options.retention.as_millis()).unwrap_or(i64::MAX),
            cache: BlockCache::new(options.cache_bytes),
            options,
            dictionaries,
            sources: RwLock::new(Sources {
                segments: Vec::new(),
                heads: Vec::new(),
            }),
            meta,
            last_seq: AtomicU64::new(expired_through_seq),
            expired_through_seq: AtomicU64::new(expired_through_seq),
            next_source_id: AtomicU64::new(1),
            maintenance: Mutex::new(()),
            sealer_error: Mutex::new(None),
            write_health: crate::space::WriteHealth::new(),
            home,
            _lock_file: lock_file,
        };
        let segments = shared.recover_segments()?;
        let covered_through = segments
            .iter()
            .map(|segment| segment.covers_last)
            .max()
            .unwrap_or(0);
        let mut last_seq = covered_through.max(expired_through_seq);
        let heads = shared.recover_journals(covered_through, &mut last_seq)?;
        shared.last_seq.store(last_seq, Ordering::Release);
        check_high_water_mark(dir, &shared.journal_dir, last_seq)?;
        *shared
            .sources
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Sources { segments, heads };
        Ok(shared)
    }

    /// Opens every segment. A merge that crashed after writing its output but before
    /// removing its inputs leaves segments inside another's range: those are removed.
    fn recover_segments(&self) -> Result<Vec<Arc<Segment>>, StoreError> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.segments_dir)
            .map_err(|error| StoreError::io(&self.segments_dir, error))?
        {
            let path = entry
                .map_err(|error| StoreError::io(&self.segments_dir, error))?
                .path();
            if path.extension().is_some_and(|ext| ext == "tmp") {
                // A seal or merge that never finished: its inputs are all still there.
                crate::files::remove_if_present(&path)?;
                continue;
            }
            if let Some((first, last)) = segment::parse_file_name(&path) {
                found.push((first, std::cmp::Reverse(last), path));
            } else if path
                .extension()
                .is_some_and(|ext| ext == crate::columns::PARQUET_EXTENSION)
                && !path.with_extension(segment::SEGMENT_EXTENSION).exists()
            {
                // The columns of a segment whose removal a crash interrupted.
                crate::files::remove_if_present(&path)?;
            }
        }
        found.sort();
        let mut segments: Vec<Arc<Segment>> = Vec::new();
        for (first, std::cmp::Reverse(last), path) in found {
            if let Some(previous) = segments.last() {
                if last <= previous.covers_last {
                    tracing::info!(path = %path.display(), "removing a segment a finished merge replaced");
                    crate::files::remove_if_present(&path)?;
                    crate::files::remove_if_present(&crate::columns::path_for_segment(&path))?;
                    continue;
                }
                if first <= previous.covers_last {
                    return Err(StoreError::corrupt(
                        "segment",
                        path.display().to_string(),
                        format!("seqs {first}..={last} overlap {}", previous.path.display()),
                    ));
                }
            }
            let segment = Segment::open(&path, self.new_source_id(), &self.dictionaries)?;
            segments.push(Arc::new(segment));
        }
        Ok(segments)
    }

    /// Replays every journal file into a head; the newest becomes the active head.
    fn recover_journals(
        &self,
        covered_through: u64,
        last_seq: &mut u64,
    ) -> Result<Vec<Arc<RwLock<Head>>>, StoreError> {
        let journals = journal::list(&self.journal_dir)?;
        let mut heads = Vec::new();
        let count = journals.len();
        for (position, (first_seq, path)) in journals.into_iter().enumerate() {
            let scanned = journal::scan(&path)?;
            let frame_last = scanned
                .frames
                .iter()
                .map(|frame| frame.first_seq + frame.stored.iter().filter(|s| **s).count() as u64)
                .filter(|end| *end > 0)
                .map(|end| end - 1)
                .max();
            let sealed = first_seq <= covered_through
                && frame_last.is_none_or(|last| last <= covered_through);
            if sealed {
                // Sealed into a segment before a crash removed the journal.
                crate::files::remove_if_present(&path)?;
                continue;
            }
            if scanned.valid_len < scanned.file_len {
                tracing::warn!(
                    path = %path.display(),
                    valid = scanned.valid_len,
                    len = scanned.file_len,
                    "cutting a torn write off the journal"
                );
                journal::truncate(&path, scanned.valid_len)?;
            }
            let mut head = Head::new(first_seq, path.clone(), self.new_source_id());
            let expired_through = self.expired_through_seq.load(Ordering::Acquire);
            for frame in scanned.frames {
                let first_block = head.add_blocks(frame.blocks);
                let mut seq = frame.first_seq;
                let mut places = Vec::new();
                for (block_offset, block) in head.blocks[first_block as usize..].iter().enumerate()
                {
                    for index in 0..block.record_count {
                        places.push((first_block + block_offset as u32, index));
                    }
                }
                let mut decoded: Option<(u32, crate::blocks::DecodedBlock)> = None;
                for (stored, (block, index)) in frame.stored.iter().zip(places) {
                    if !*stored {
                        continue;
                    }
                    let this_seq = seq;
                    seq += 1;
                    *last_seq = (*last_seq).max(this_seq);
                    if this_seq <= expired_through {
                        continue;
                    }
                    if decoded.as_ref().is_none_or(|(number, _)| *number != block) {
                        let encoded = &head.blocks[block as usize];
                        let location = || format!("{} at byte {}", path.display(), frame.offset);
                        decoded = Some((
                            block,
                            crate::blocks::decode_block(
                                &self.dictionaries,
                                encoded.dictionary_id,
                                encoded.raw_len,
                                &encoded.bytes,
                                &location,
                            )?,
                        ));
                    }
                    let Some((_, block_records)) = decoded.as_ref() else {
                        continue;
                    };
                    let json = block_records.record(index as usize).unwrap_or_default();
                    let record = parse_stored(json, &format!("{} seq {this_seq}", path.display()))?;
                    let row = HeadRow {
                        seq: this_seq,
                        event_time_ms: record.event_time_ms,
                        ingest_time_ms: frame.ingest_time_ms,
                        block,
                        index,
                        id_hash: terms::id_hash(&record.account_id, &record.event_id),
                    };
                    head.push_row(row, &terms::terms_of(&record), &terms::scope_of(&record));
                }
            }
            if position + 1 < count && head.is_empty() {
                crate::files::remove_if_present(&path)?;
                continue;
            }
            heads.push(Arc::new(RwLock::new(head)));
        }
        Ok(heads)
    }

    pub(crate) fn new_source_id(&self) -> u64 {
        self.next_source_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn sources(&self) -> Sources {
        self.sources
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub(crate) fn is_visible(&self, seq: u64, ingest_time_ms: i64, now_ms: i64) -> bool {
        seq > self.expired_through_seq.load(Ordering::Acquire)
            && ingest_time_ms >= now_ms.saturating_sub(self.retention_ms)
    }

    pub(crate) fn scopes(&self, sources: &Sources) -> Vec<Scope> {
        let mut scopes = std::collections::BTreeSet::new();
        for segment in &sources.segments {
            scopes.extend(segment.scopes.iter().cloned());
        }
        for head in &sources.heads {
            scopes.extend(read_head(head).scopes.iter().cloned());
        }
        scopes.into_iter().collect()
    }

    /// Starts the disk reads of every segment block these records need and the cache
    /// lacks, so that reading them one by one afterwards overlaps their waits.
    pub(crate) fn prefetch<'a>(&self, places: impl IntoIterator<Item = &'a RecordPlace>) {
        let mut previous = None;
        for place in places {
            let RecordPlace::Segment(segment, row) = place else {
                continue;
            };
            let Some((block, _)) = segment.block_of_row(*row) else {
                continue;
            };
            let key = (segment.id, block);
            if previous != Some(key) && !self.cache.contains(&key) {
                segment.prefetch_block(block);
            }
            previous = Some(key);
        }
    }

    /// The record JSON at a place, through the block cache.
    pub(crate) fn record_json(&self, place: &RecordPlace) -> Result<String, StoreError> {
        match place {
            RecordPlace::Segment(segment, row) => {
                let (block, index) = segment.block_of_row(*row).ok_or_else(|| {
                    StoreError::corrupt(
                        "segment",
                        segment.path.display().to_string(),
                        format!("no block holds row {row}"),
                    )
                })?;
                let decoded = self.cache.get_or_load((segment.id, block), || {
                    segment.decode_block(block, &self.dictionaries)
                })?;
                record_text(
                    decoded.record(index as usize),
                    &segment.path.display().to_string(),
                )
            }
            RecordPlace::Head(head, row) => {
                let (source_id, reference, journal) = {
                    let head = read_head(head);
                    let reference = head.record_ref(*row).ok_or_else(|| {
                        StoreError::corrupt(
                            "head",
                            head.journal_path.display().to_string(),
                            format!("no row {row}"),
                        )
                    })?;
                    let block = head.rows[*row as usize].block;
                    (
                        head.source_id,
                        (reference, block),
                        head.journal_path.clone(),
                    )
                };
                let ((reference, block), location) = (reference, journal.display().to_string());
                let decoded = self.cache.get_or_load((source_id, block), || {
                    crate::blocks::decode_block(
                        &self.dictionaries,
                        reference.block.dictionary_id,
                        reference.block.raw_len,
                        &reference.block.bytes,
                        &|| location.clone(),
                    )
                })?;
                record_text(decoded.record(reference.index as usize), &location)
            }
        }
    }

    /// The stored event with (account, eventID), whether or not it is still visible.
    pub(crate) fn find_id(
        &self,
        sources: &Sources,
        account_id: &str,
        event_id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let hash = terms::id_hash(account_id, event_id);
        let matches =
            |record: &EventRecord| record.account_id == account_id && record.event_id == event_id;
        for head_lock in sources.heads.iter().rev() {
            let candidates: Vec<(u32, HeadRow)> = {
                let head = read_head(head_lock);
                head.rows_with_id(hash)
                    .into_iter()
                    .map(|row| (row, head.rows[row as usize]))
                    .collect()
            };
            for (row, head_row) in candidates {
                let json = self.record_json(&RecordPlace::Head(head_lock.clone(), row))?;
                let record = parse_stored(json.as_bytes(), &format!("seq {}", head_row.seq))?;
                if matches(&record) {
                    return Ok(Some(StoredEvent {
                        seq: head_row.seq,
                        ingest_time_ms: head_row.ingest_time_ms,
                        record,
                    }));
                }
            }
        }
        for segment in sources.segments.iter().rev() {
            if !segment.may_contain_id(hash) {
                continue;
            }
            for row in segment.rows_with_id(hash) {
                let json = self.record_json(&RecordPlace::Segment(segment.clone(), row))?;
                let seq = segment.seq(row);
                let record = parse_stored(
                    json.as_bytes(),
                    &format!("{} seq {seq}", segment.path.display()),
                )?;
                if matches(&record) {
                    return Ok(Some(StoredEvent {
                        seq,
                        ingest_time_ms: segment.ingest_time_ms(seq),
                        record,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Reads the event at one seq.
    pub(crate) fn read_seq(&self, sources: &Sources, seq: u64) -> Result<SeqRead, StoreError> {
        let index = sources
            .segments
            .partition_point(|segment| segment.covers_last < seq);
        if let Some(segment) = sources.segments.get(index)
            && segment.covers_first <= seq
        {
            let Some(row) = segment.row_of_seq(seq) else {
                return Ok(SeqRead::Absent);
            };
            let json = self.record_json(&RecordPlace::Segment(segment.clone(), row))?;
            return Ok(SeqRead::Found(LogEntry {
                seq,
                ingest_time_ms: segment.ingest_time_ms(seq),
                json,
            }));
        }
        let mut next_start = sources
            .segments
            .get(index)
            .map(|segment| segment.covers_first);
        for head_lock in &sources.heads {
            let (row, ingest_time_ms, first_row_seq) = {
                let head = read_head(head_lock);
                match head.row_of_seq(seq) {
                    Some(row) => (Some(row), head.rows[row as usize].ingest_time_ms, None),
                    None => (None, 0, head.rows.first().map(|row| row.seq)),
                }
            };
            if let Some(row) = row {
                let json = self.record_json(&RecordPlace::Head(head_lock.clone(), row))?;
                return Ok(SeqRead::Found(LogEntry {
                    seq,
                    ingest_time_ms,
                    json,
                }));
            }
            if let Some(first) = first_row_seq.filter(|first| *first > seq) {
                next_start = Some(next_start.map_or(first, |start| start.min(first)));
            }
        }
        Ok(match next_start {
            Some(start) => SeqRead::NextSourceFrom(start),
            None => SeqRead::End,
        })
    }
}

pub(crate) fn read_head(head: &RwLock<Head>) -> RwLockReadGuard<'_, Head> {
    head.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn record_text(bytes: Option<&[u8]>, location: &str) -> Result<String, StoreError> {
    let bytes = bytes.ok_or_else(|| {
        StoreError::corrupt("record block", location, "record index out of range")
    })?;
    String::from_utf8(bytes.to_vec()).map_err(|error| {
        StoreError::corrupt("stored record", location, format!("invalid UTF-8: {error}"))
    })
}

pub(crate) fn parse_stored(json: &[u8], location: &str) -> Result<EventRecord, StoreError> {
    let text = std::str::from_utf8(json).map_err(|error| {
        StoreError::corrupt("stored record", location, format!("invalid UTF-8: {error}"))
    })?;
    EventRecord::from_stored(text)
        .map_err(|error| StoreError::corrupt("stored record", location, format!("{error:?}")))
}

fn lock_directory(dir: &Path) -> Result<std::fs::File, StoreError> {
    let lock_path = dir.join(LOCK_FILE_NAME);
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|error| StoreError::io(&lock_path, error))?;
    match lock_file.try_lock() {
        Ok(()) => Ok(lock_file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            path: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(error)) => Err(StoreError::io(&lock_path, error)),
    }
}

fn check_high_water_mark(
    dir: &Path,
    journal_dir: &Path,
    recovered_last_seq: u64,
) -> Result<(), StoreError> {
    let path = dir.join(HIGH_WATER_FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(StoreError::io(&path, error)),
    };
    // A torn write of this unsynced file can only make it unreadable, never larger.
    let Ok(acknowledged) = <[u8; 8]>::try_from(bytes.as_slice()).map(u64::from_be_bytes) else {
        return Ok(());
    };
    if acknowledged > recovered_last_seq {
        return Err(StoreError::corrupt(
            "event log",
            journal_dir.display().to_string(),
            format!(
                "events up to seq {acknowledged} were acknowledged but only {recovered_last_seq} were recovered; \
                 the journal or segments are damaged"
            ),
        ));
    }
    Ok(())
}

pub(crate) fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}
