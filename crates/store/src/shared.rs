//! What the store's readers, writer and sealer share (`Shared`): the sources of events at
//! one instant, recovery after a crash, and reading one record, one seq or one event id
//! from whichever source holds it. `store.rs` is the public front door over it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock, RwLockReadGuard};

use opentrail_event::EventRecord;

use crate::blocks::Dictionaries;
use crate::cache::BlockCache;
use crate::error::StoreError;
use crate::head::{Head, HeadRow};
use crate::id_groups::IdGroups;
use crate::journal;
use crate::layout::{
    DICTIONARIES_DIR, FORMAT_FILE_NAME, FORMAT_TEXT, HIGH_WATER_FILE_NAME, JOURNAL_DIR,
    LOCK_FILE_NAME, SEGMENTS_DIR,
};
use crate::meta::{Meta, MetaState, STORE_FORMAT};
use crate::options::StoreOptions;
use crate::query::{Scope, StoredEvent};
use crate::segment::{self, IdProbe, Segment};
use crate::stored_record::{parse_stored, record_text};
use crate::terms;
use crate::values::LogEntry;

/// Wakes the sealer when the writer rotated a head (the count of rotations asked for).
pub(crate) type RotationSignal = Arc<(Mutex<u64>, std::sync::Condvar)>;

/// The sources of events at one instant: every seq is in exactly one of them.
#[derive(Clone)]
pub(crate) struct Sources {
    /// Sorted by `covers_first`.
    pub segments: Vec<Arc<Segment>>,
    /// Heads being sealed, oldest first, then the active head.
    pub heads: Vec<Arc<RwLock<Head>>>,
    /// Dedup filters over runs of these segments (`id_groups.rs`), shared by every
    /// snapshot until the sealer replaces them.
    pub id_groups: Arc<IdGroups>,
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
    /// Notified each time `last_seq` moves on (see [`Shared::publish_last_seq`]).
    appended: (Mutex<()>, Condvar),
    pub expired_through_seq: AtomicU64,
    next_source_id: AtomicU64,
    /// Held by whoever rewrites segments (the sealer, `compact`), one at a time.
    pub maintenance: Mutex<()>,
    /// Set when sealing failed; reported by `flush_tables` and `stats` callers.
    pub sealer_error: Mutex<Option<String>>,
    /// While an opened store's dedup groups are built on a thread of their own
    /// (`id_groups::build_at_once`), the sealer leaves the groups alone.
    pub groups_built_apart: AtomicBool,
    /// Sources taken out of `sources`, freed by the housekeeping thread once no
    /// snapshot holds them (`retired.rs`).
    pub retired: crate::retired::Retired,
    /// Lookups in flight and the last one's end, which idle-class work waits out
    /// (`quiet.rs`).
    pub lookups: crate::quiet::LookupActivity,
    /// Whether the writer accepts writes (free space, failed journal writes).
    pub write_health: crate::space::WriteHealth,
    /// How long the sealer has worked and appends have waited for it (`StoreStats`).
    pub sealer_times: SealerTimes,
    /// Where sealed segments are kept durably (`location.rs`); `segments_dir` is its
    /// local copy.
    pub home: Box<dyn crate::location::SegmentHome>,
    /// Held for the store's lifetime so a second process cannot open the same directory.
    _lock_file: std::fs::File,
}

/// Since the store opened: how long heads were being sealed and segments merged, and how
/// long appends waited for that (unsealed heads over their budget). Together they say
/// whether ingest is held back by sealing or by everything else. When it is, seals take a
/// second thread (`segment::SecondThread`).
pub(crate) struct SealerTimes {
    opened: std::time::Instant,
    busy_ns: AtomicU64,
    appends_waited_ns: AtomicU64,
    /// Milliseconds since `opened`, plus one (0: never), of the writer's last wait for the
    /// sealer and of its last group commit.
    last_wait_ms: AtomicU64,
    last_group_ms: AtomicU64,
    rows_on_second_thread: AtomicU64,
}

/// How recently appends must have waited for the sealer, and how recently a group must
/// have been committed (or appends be waiting still), for a seal to take a second thread:
/// longer than a seal, so a bulk load keeps it from seal to seal, and short enough that it
/// is let go within a moment of the load's end, when lookups follow.
const SECOND_THREAD_AFTER_WAIT_MS: u64 = 30_000;
const SECOND_THREAD_AFTER_APPEND_MS: u64 = 200;

/// Adds the time from its making to its drop to the busy time: a seal or merge counts
/// however it ends.
pub(crate) struct BusyTimer<'a> {
    times: &'a SealerTimes,
    started: std::time::Instant,
}

impl Drop for BusyTimer<'_> {
    fn drop(&mut self) {
        self.times
            .busy_ns
            .fetch_add(self.started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

impl SealerTimes {
    fn new() -> SealerTimes {
        SealerTimes {
            opened: std::time::Instant::now(),
            busy_ns: AtomicU64::new(0),
            appends_waited_ns: AtomicU64::new(0),
            last_wait_ms: AtomicU64::new(0),
            last_group_ms: AtomicU64::new(0),
            rows_on_second_thread: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64 + 1
    }

    /// Times one seal or merge, until the returned timer is dropped.
    pub(crate) fn busy(&self) -> BusyTimer<'_> {
        BusyTimer {
            times: self,
            started: std::time::Instant::now(),
        }
    }

    /// The writer is waiting for the sealer now.
    pub(crate) fn appends_wait(&self) {
        self.last_wait_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The writer committed a group.
    pub(crate) fn group_committed(&self) {
        self.last_group_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    pub(crate) fn add_append_wait(&self, since: std::time::Instant) {
        self.appends_waited_ns
            .fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    pub(crate) fn rows_on_second_thread(&self) -> u64 {
        self.rows_on_second_thread.load(Ordering::Relaxed)
    }

    /// (busy, appends waited), in milliseconds.
    pub(crate) fn millis(&self) -> (u64, u64) {
        (
            self.busy_ns.load(Ordering::Relaxed) / 1_000_000,
            self.appends_waited_ns.load(Ordering::Relaxed) / 1_000_000,
        )
    }
}

/// A second thread while a bulk load outruns the sealer: appends waited for it lately, and
/// are still coming in or waiting.
impl crate::segment::SecondThread for SealerTimes {
    fn wanted(&self) -> bool {
        let now = self.now_ms();
        let since = |at: &AtomicU64| match at.load(Ordering::Relaxed) {
            0 => u64::MAX,
            at => now.saturating_sub(at),
        };
        let since_wait = since(&self.last_wait_ms);
        since_wait <= SECOND_THREAD_AFTER_WAIT_MS
            && since_wait.min(since(&self.last_group_ms)) <= SECOND_THREAD_AFTER_APPEND_MS
    }

    fn used(&self, rows: usize) {
        self.rows_on_second_thread
            .fetch_add(rows as u64, Ordering::Relaxed);
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
    /// Makes the events through `last_seq` (already readable) known, and wakes whoever
    /// waits for them in [`Shared::wait_for_events_after`].
    pub(crate) fn publish_last_seq(&self, last_seq: u64) {
        self.last_seq.store(last_seq, Ordering::Release);
        // Taken before notifying: a waiter checks `last_seq` under this lock, so it is
        // either already waiting (and woken) or sees the new value.
        let _guard = self
            .appended
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.appended.1.notify_all();
    }

    /// Waits until the log holds an event after `seq`, or `timeout` passes; the last seq.
    pub(crate) fn wait_for_events_after(&self, seq: u64, timeout: std::time::Duration) -> u64 {
        let guard = self
            .appended
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let _woken = self
            .appended
            .1
            .wait_timeout_while(guard, timeout, |_| {
                self.last_seq.load(Ordering::Acquire) <= seq
            })
            .unwrap_or_else(PoisonError::into_inner);
        self.last_seq.load(Ordering::Acquire)
    }

    pub(crate) fn recover(
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
            lookups: crate::quiet::LookupActivity::new(options.lookup_quiet),
            options,
            dictionaries,
            sources: RwLock::new(Sources {
                segments: Vec::new(),
                heads: Vec::new(),
                id_groups: Arc::default(),
            }),
            meta,
            last_seq: AtomicU64::new(expired_through_seq),
            appended: (Mutex::new(()), Condvar::new()),
            expired_through_seq: AtomicU64::new(expired_through_seq),
            next_source_id: AtomicU64::new(1),
            maintenance: Mutex::new(()),
            sealer_error: Mutex::new(None),
            groups_built_apart: AtomicBool::new(false),
            retired: crate::retired::Retired::default(),
            write_health: crate::space::WriteHealth::new(),
            sealer_times: SealerTimes::new(),
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
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Sources {
            segments,
            heads,
            id_groups: Arc::default(),
        };
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
                    let record =
                        parse_stored(json, &format_args!("{} seq {this_seq}", path.display()))?;
                    let row = HeadRow {
                        seq: this_seq,
                        event_time_ms: record.event_time_ms,
                        ingest_time_ms: frame.ingest_time_ms,
                        block,
                        index,
                        id_hash: terms::id_hash(&record.account_id, &record.event_id),
                    };
                    let columns_bytes = head.push_columns(std::iter::once((
                        this_seq,
                        frame.ingest_time_ms,
                        &record,
                    )));
                    head.count_columns_bytes(columns_bytes);
                    head.push_row(row, &record);
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
                record_text(decoded.record(index as usize), &segment.path.display())
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
                let (reference, block) = reference;
                let decoded = self.cache.get_or_load((source_id, block), || {
                    crate::blocks::decode_block(
                        &self.dictionaries,
                        reference.block.dictionary_id,
                        reference.block.raw_len,
                        &reference.block.bytes,
                        &|| journal.display().to_string(),
                    )
                })?;
                record_text(decoded.record(reference.index as usize), &journal.display())
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
        self.find_id_hashed(sources, hash, account_id, event_id)
    }

    /// [`Shared::find_id`] with the id's hash already made ([`terms::id_hash`]).
    pub(crate) fn find_id_hashed(
        &self,
        sources: &Sources,
        hash: u64,
        account_id: &str,
        event_id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let matches =
            |record: &EventRecord| record.account_id == account_id && record.event_id == event_id;
        let probe = IdProbe::new(hash);
        // Segments inside the dedup groups' range are probed only where a group says
        // "maybe"; the others (older formats, and those sealed since the last group) each
        // by their own filter.
        let segments = &sources.segments;
        let covered = sources.id_groups.covered_segments(segments);
        let (older, newer) = (&segments[..covered.start], &segments[covered.end..]);
        // The filter blocks load while the heads are searched.
        sources.id_groups.prefetch(&probe);
        for segment in older.iter().chain(newer) {
            segment.prefetch_id(&probe);
        }
        for head_lock in sources.heads.iter().rev() {
            // Collected without allocating when nothing matches, as for almost every new
            // event; the lock is not held while records are read.
            let candidates: Vec<(u32, HeadRow)> = {
                let head = read_head(head_lock);
                head.rows_with_id(hash)
                    .map(|row| (row, head.rows[row as usize]))
                    .collect()
            };
            for (row, head_row) in candidates {
                let json = self.record_json(&RecordPlace::Head(head_lock.clone(), row))?;
                let record = parse_stored(json.as_bytes(), &format_args!("seq {}", head_row.seq))?;
                if matches(&record) {
                    return Ok(Some(StoredEvent {
                        seq: head_row.seq,
                        ingest_time_ms: head_row.ingest_time_ms,
                        record,
                    }));
                }
            }
        }
        let in_segment = |segment: &Arc<Segment>| -> Result<Option<StoredEvent>, StoreError> {
            if !segment.may_contain_id(&probe) {
                return Ok(None);
            }
            for row in segment.rows_with_id(hash) {
                let json = self.record_json(&RecordPlace::Segment(segment.clone(), row))?;
                let seq = segment.seq(row);
                let record = parse_stored(
                    json.as_bytes(),
                    &format_args!("{} seq {seq}", segment.path.display()),
                )?;
                if matches(&record) {
                    return Ok(Some(StoredEvent {
                        seq,
                        ingest_time_ms: segment.ingest_time_ms(seq),
                        record,
                    }));
                }
            }
            Ok(None)
        };
        let maybe_grouped = sources
            .id_groups
            .segments_to_probe(&probe, segments, covered)
            .flat_map(|range| segments[range].iter().rev());
        for segment in newer
            .iter()
            .rev()
            .chain(maybe_grouped)
            .chain(older.iter().rev())
        {
            if let Some(found) = in_segment(segment)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Where `seq`'s record is laid out, as a sort key: (segment, record number) for a sealed
    /// one, after every segment and by seq for one in a head (whose rows are in seq order).
    pub(crate) fn layout_place(&self, sources: &Sources, seq: u64) -> (usize, u64) {
        match segment_of_seq(sources, seq) {
            Ok(index) => (
                index,
                sources.segments[index]
                    .row_of_seq(seq)
                    .and_then(|row| sources.segments[index].record_number(row))
                    .map_or(u64::MAX, u64::from),
            ),
            Err(_) => (usize::MAX, seq),
        }
    }

    /// Reads the event at one seq.
    pub(crate) fn read_seq(&self, sources: &Sources, seq: u64) -> Result<SeqRead, StoreError> {
        let found = segment_of_seq(sources, seq);
        if let Ok(index) = found {
            let segment = &sources.segments[index];
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
        let mut next_start = found
            .err()
            .and_then(|index| sources.segments.get(index))
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

/// `Ok(index)` of the segment whose seq range holds `seq`, or `Err(index)` of the first
/// segment after it (segments are in seq order and do not overlap).
fn segment_of_seq(sources: &Sources, seq: u64) -> Result<usize, usize> {
    let index = sources
        .segments
        .partition_point(|segment| segment.covers_last < seq);
    match sources.segments.get(index) {
        Some(segment) if segment.covers_first <= seq => Ok(index),
        _ => Err(index),
    }
}

pub(crate) fn read_head(head: &RwLock<Head>) -> RwLockReadGuard<'_, Head> {
    head.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn lock_directory(dir: &Path) -> Result<std::fs::File, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::{SECOND_THREAD_AFTER_APPEND_MS, SealerTimes};
    use crate::segment::SecondThread;

    #[test]
    fn seals_take_a_second_thread_only_while_appends_wait_or_keep_coming_after_a_wait() {
        let times = SealerTimes::new();
        times.group_committed();
        assert!(
            !times.wanted(),
            "appends that never waited leave seals one thread"
        );
        times.appends_wait();
        assert!(times.wanted(), "appends waiting now");
        let lull = std::time::Duration::from_millis(SECOND_THREAD_AFTER_APPEND_MS + 50);
        std::thread::sleep(lull);
        assert!(
            !times.wanted(),
            "no append since the wait: the load is over"
        );
        times.group_committed();
        assert!(times.wanted(), "appends come in again soon after a wait");
        std::thread::sleep(lull);
        assert!(!times.wanted(), "and stop again");
    }
}
