//! The archiver: a consumer of the event log that seals ranges of it into Parquet.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use opentrail_store::{LogConsumer, LogEntry, ScanBounds, ScanStep, Store};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::compaction::{self, CompactReport};
use crate::error::ArchiveError;
use crate::files::{self, CONTROL_DIR_NAME};
use crate::schema::{self, COLUMNS, ColumnType, RowBatchBuilder};

/// The consumer name of the archive's cursor in the store.
pub const ARCHIVE_CONSUMER: &str = "archive";

/// Rows per Arrow batch handed to the Parquet writer: bounds the memory of one batch
/// while keeping per-batch overhead negligible.
const WRITE_BATCH_ROWS: usize = 4096;

pub(crate) const STATE_FILE_NAME: &str = "state.json";
const LOCK_FILE_NAME: &str = "LOCK";
const STATE_FORMAT: u32 = 1;

/// Tunables, each with an explicit bound.
#[derive(Debug, Clone)]
pub struct ArchiveOptions {
    /// Seal once at least this many events wait.
    pub seal_events_min: u64,
    /// Seal whatever waits once its oldest event was recorded this long ago, so a quiet
    /// server still archives. Also the most SQL lags behind ingest.
    pub seal_age_max: Duration,
    /// The most events one seal (and so one file) holds.
    pub seal_events_max: usize,
    /// The most record JSON bytes one seal holds. The archiver's memory is bounded by
    /// about this, plus one `read_log` chunk (at most `read_chunk_events` records of up
    /// to 256 KB each), plus one row group being encoded.
    pub seal_bytes_max: usize,
    /// Log entries read per `read_log` call.
    pub read_chunk_events: usize,
    /// The most rows in one Parquet row group.
    pub row_group_rows_max: usize,
    /// ZSTD level of every column (1–22).
    pub zstd_level: i32,
    /// An event is archived only once it was recorded (ingest time) at least this long
    /// ago. Zero archives as soon as a seal is due, keeping a second copy of every recent
    /// event beside the store's; the server passes the store's retention less a day, so
    /// an event moves from the store to the archive when it is about to leave lookups and
    /// is kept in one place at a time (issue 13).
    pub archive_after: Duration,
    /// Files are deleted once every row in them was recorded (ingest time) this long ago.
    pub retention: Duration,
    /// How often the background loop runs [`Archiver::expire`] and [`Archiver::compact`].
    pub maintenance_interval: Duration,
    /// A partition's small files are merged once its event date ended this long ago
    /// (late and imported events still add files later; those are merged in turn).
    pub compact_after: Duration,
    /// The most rows a merged file holds; files with at least half as many are left
    /// alone, so a late event never rewrites a large file.
    pub compacted_file_rows_max: u64,
    /// Makes the archiver stop at a chosen step of a seal, as if the process died there.
    /// For crash tests only.
    #[doc(hidden)]
    pub crash_for_test: Option<CrashPoint>,
}

impl Default for ArchiveOptions {
    fn default() -> Self {
        ArchiveOptions {
            seal_events_min: 50_000,
            seal_age_max: Duration::from_secs(5 * 60),
            seal_events_max: 250_000,
            seal_bytes_max: 64 * 1024 * 1024,
            read_chunk_events: 256,
            row_group_rows_max: 65_536,
            zstd_level: 3,
            archive_after: Duration::ZERO,
            retention: Duration::from_secs(2557 * 24 * 3600),
            maintenance_interval: Duration::from_secs(3600),
            compact_after: Duration::from_secs(24 * 3600),
            compacted_file_rows_max: 1_000_000,
            crash_for_test: None,
        }
    }
}

/// A step of a seal after which [`ArchiveOptions::crash_for_test`] stops the archiver.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The seal plan is durable; no file is written yet.
    AfterPlan,
    /// This many part files of the seal are durable.
    AfterFiles(usize),
    /// Every file and the new state are durable; the store cursor is not saved.
    BeforeCursorSave,
    /// A merged file is durable; its inputs are not deleted yet.
    AfterMergedFile,
}

/// What one [`Archiver::run_once`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchiveReport {
    /// The seal this run wrote, if any.
    pub sealed: Option<SealReport>,
    /// Whether that seal finished one a crash had interrupted.
    pub resumed_interrupted_seal: bool,
    /// Events in the log past the archive after this run: the archive's lag.
    pub pending_events: u64,
    /// The log is archived through this sequence number.
    pub archived_through_seq: u64,
}

/// One sealed range of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealReport {
    pub first_seq: u64,
    pub last_seq: u64,
    pub events: u64,
    /// One file per event date, oldest date first.
    pub files: Vec<PathBuf>,
    pub bytes_written: u64,
}

/// What one [`Archiver::expire`] removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchiveExpireReport {
    pub files_removed: u64,
    pub bytes_removed: u64,
    pub partitions_removed: u64,
    /// Files past the date cut whose footer could not be read: kept, since the archive
    /// never deletes what it cannot judge.
    pub files_unreadable: u64,
}

/// The archiver's durable progress, in `<dir>/_opentrail/state.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ArchiveState {
    pub(crate) format: u32,
    /// Every log entry up to here is in a part file.
    pub(crate) archived_through_seq: u64,
    /// A seal whose files may be partly written: redone first, identically.
    pub(crate) sealing: Option<SealRange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SealRange {
    first_seq: u64,
    last_seq: u64,
}

/// Seals the event log into Parquet. One per archive directory (a lock file enforces
/// it); cheap to share behind an `Arc`, since every operation takes `&self`.
pub struct Archiver {
    /// The archive's cursor (`ARCHIVE_CONSUMER`) and its reads of the log.
    log: LogConsumer,
    dir: PathBuf,
    options: ArchiveOptions,
    state: Mutex<ArchiveState>,
    /// Held for the archiver's lifetime so a second archiver cannot write the same
    /// directory.
    _lock_file: File,
}

impl Archiver {
    /// Opens (creating if needed) the archive in `dir` for `store`, removes what a crash
    /// left half-written, and registers the archive's cursor with the store so retention
    /// keeps every event the archive has not sealed yet. Open it before the store's
    /// retention first runs.
    pub fn open(
        store: Store,
        dir: &Path,
        options: ArchiveOptions,
    ) -> Result<Archiver, ArchiveError> {
        check_options(&options)?;
        let control_dir = dir.join(CONTROL_DIR_NAME);
        files::create_dir_durably(&control_dir)?;
        let lock_path = control_dir.join(LOCK_FILE_NAME);
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|error| ArchiveError::io(&lock_path, error))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(ArchiveError::Locked {
                    path: dir.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(ArchiveError::io(&lock_path, error));
            }
        }
        let removed = files::remove_stale_temp_files(dir)?;
        if removed > 0 {
            tracing::info!(removed, dir = %dir.display(), "removed temporary files of an interrupted archive write");
        }
        for partition in files::list_partitions(dir)? {
            compaction::remove_superseded_files(&partition)?;
        }

        let log = LogConsumer::new(store, ARCHIVE_CONSUMER);
        let store_cursor = log.load_cursor()?;
        let state_path = control_dir.join(STATE_FILE_NAME);
        let state = match read_state(&state_path)? {
            Some(state) => state,
            // A new archive directory starts where the store says the archive got to:
            // 0 on a new store, or a previous archive's progress if this directory was
            // replaced on purpose.
            None => ArchiveState {
                format: STATE_FORMAT,
                archived_through_seq: store_cursor,
                sealing: None,
            },
        };
        if store_cursor > state.archived_through_seq {
            return Err(ArchiveError::Inconsistent {
                path: state_path,
                detail: format!(
                    "the store's {ARCHIVE_CONSUMER:?} cursor is at seq {store_cursor} but the archive holds only \
                     through seq {}; was the archive directory restored from an older copy?",
                    state.archived_through_seq
                ),
            });
        }
        write_state(&state_path, &state)?;
        // Registers the consumer (an absent cursor holds nothing back) and repairs a
        // crash between a state save and the cursor save.
        log.save_cursor(state.archived_through_seq)?;
        Ok(Archiver {
            log,
            dir: dir.to_path_buf(),
            options,
            state: Mutex::new(state),
            _lock_file: lock_file,
        })
    }

    /// The archive's root directory (the table location for SQL engines).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> &ArchiveOptions {
        &self.options
    }

    /// The log is archived through this sequence number.
    pub fn archived_through_seq(&self) -> u64 {
        self.lock_state().archived_through_seq
    }

    /// Finishes an interrupted seal if there is one; otherwise seals the next range of
    /// the log if enough has accumulated or it has waited long enough. Writes at most one
    /// seal; call again while it reports one to catch up a backlog.
    pub fn run_once(&self) -> Result<ArchiveReport, ArchiveError> {
        self.run_once_at(now_ms())
    }

    /// [`Archiver::run_once`] as if the clock read `now_ms`, which decides whether the
    /// waiting events are old enough to seal.
    pub fn run_once_at(&self, now_ms: i64) -> Result<ArchiveReport, ArchiveError> {
        let mut state = self.lock_state();
        if let Some(range) = state.sealing {
            let entries = self.read_range(range)?;
            if u64::try_from(entries.len()).unwrap_or(u64::MAX)
                != range.last_seq - range.first_seq + 1
            {
                tracing::warn!(
                    first_seq = range.first_seq,
                    last_seq = range.last_seq,
                    found = entries.len(),
                    "an interrupted seal's range is not contiguous in the log; archiving what it holds"
                );
            }
            let sealed = self.seal(&mut state, range, entries)?;
            return self.report(&state, Some(sealed), true);
        }

        let through = state.archived_through_seq;
        let last_seq = self.log.store().last_seq();
        if last_seq <= through {
            return self.report(&state, None, false);
        }
        let Some(oldest) = self.log.store().read_log(through, 1)?.into_iter().next() else {
            return self.report(&state, None, false);
        };
        let cutoff_ms = self.archive_cutoff_ms(now_ms);
        if oldest.ingest_time_ms > cutoff_ms {
            return self.report(&state, None, false);
        }
        let waited_ms = now_ms.saturating_sub(self.due_since_ms(oldest.ingest_time_ms));
        let age_max_ms = millis(self.options.seal_age_max);
        let due = waited_ms >= age_max_ms || self.enough_waiting(through, last_seq, cutoff_ms)?;
        if !due {
            return self.report(&state, None, false);
        }

        let entries = self.read_next_seal(through, cutoff_ms)?;
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return self.report(&state, None, false);
        };
        let range = SealRange {
            first_seq: first.seq,
            last_seq: last.seq,
        };
        // The plan is durable before any file exists, so every part file past the
        // archived seq belongs to the recorded plan and a restart redoes exactly it.
        state.sealing = Some(range);
        write_state(&self.state_path(), &state)?;
        if self.options.crash_for_test == Some(CrashPoint::AfterPlan) {
            return Err(ArchiveError::InjectedCrash);
        }
        let sealed = self.seal(&mut state, range, entries)?;
        self.report(&state, Some(sealed), false)
    }

    /// Runs [`Archiver::run_once`] until it seals nothing more; returns how many seals it
    /// wrote.
    pub fn catch_up(&self) -> Result<u64, ArchiveError> {
        let mut seals = 0;
        while self.run_once()?.sealed.is_some() {
            seals += 1;
        }
        Ok(seals)
    }

    /// Deletes part files whose every row was recorded longer ago than the retention
    /// period, and partitions left empty.
    pub fn expire(&self) -> Result<ArchiveExpireReport, ArchiveError> {
        self.expire_at(now_ms())
    }

    /// [`Archiver::expire`] as if the clock read `now_ms`.
    ///
    /// Only partitions whose event date is on or before the cutoff's date are opened:
    /// an event is recorded after it happens, so a later partition cannot hold a row
    /// recorded before the cutoff (a clock running ahead only keeps a file longer).
    pub fn expire_at(&self, now_ms: i64) -> Result<ArchiveExpireReport, ArchiveError> {
        // Seals and expiry do not interleave: one never deletes what the other writes.
        let _state = self.lock_state();
        let retention_ms = millis(self.options.retention);
        let cutoff_ms = now_ms.saturating_sub(retention_ms);
        let Ok(cutoff_date) = schema::event_date_of_millis(cutoff_ms) else {
            return Ok(ArchiveExpireReport::default());
        };
        let mut report = ArchiveExpireReport::default();
        for partition in files::list_partitions(&self.dir)? {
            if partition.event_date.as_str() > cutoff_date.as_str() {
                break;
            }
            let part_files = files::list_part_files(&partition)?;
            let mut kept = 0;
            for part_file in &part_files {
                let summary = match files::read_part_file_summary(&part_file.path) {
                    Ok(summary) => summary,
                    Err(error) => {
                        tracing::warn!(%error, "keeping an archive file whose footer cannot be read");
                        report.files_unreadable += 1;
                        kept += 1;
                        continue;
                    }
                };
                if summary.ingest_time_max_ms >= cutoff_ms {
                    kept += 1;
                    continue;
                }
                let bytes = std::fs::metadata(&part_file.path)
                    .map(|metadata| metadata.len())
                    .unwrap_or(0);
                std::fs::remove_file(&part_file.path)
                    .map_err(|error| ArchiveError::io(&part_file.path, error))?;
                report.files_removed += 1;
                report.bytes_removed += bytes;
            }
            if kept == 0 && remove_dir_if_empty(&partition.dir)? {
                report.partitions_removed += 1;
            }
        }
        if report.files_removed > 0 {
            tracing::info!(
                files = report.files_removed,
                bytes = report.bytes_removed,
                partitions = report.partitions_removed,
                "archive retention removed expired files"
            );
        }
        Ok(report)
    }

    /// Merges the small part files of partitions whose event date ended at least
    /// [`ArchiveOptions::compact_after`] ago (see the `compaction` module docs for why a
    /// crash cannot duplicate rows).
    pub fn compact(&self) -> Result<CompactReport, ArchiveError> {
        self.compact_at(now_ms())
    }

    /// [`Archiver::compact`] as if the clock read `now_ms`.
    pub fn compact_at(&self, now_ms: i64) -> Result<CompactReport, ArchiveError> {
        let state = self.lock_state();
        let after_ms = millis(self.options.compact_after);
        // Partitions dated before this date ended at least `compact_after` ago.
        let Ok(open_from_date) = schema::event_date_of_millis(now_ms.saturating_sub(after_ms))
        else {
            return Ok(CompactReport::default());
        };
        let mut report = CompactReport::default();
        for partition in files::list_partitions(&self.dir)? {
            if partition.event_date.as_str() >= open_from_date.as_str() {
                break;
            }
            report.superseded_files_removed += compaction::remove_superseded_files(&partition)?;
            let part_files = files::list_part_files(&partition)?;
            if part_files.len() < 2 {
                continue;
            }
            let mut sized = Vec::with_capacity(part_files.len());
            for part_file in part_files {
                // Only sealed files are merged; a file of the pending plan may be redone.
                if part_file.last_seq > state.archived_through_seq {
                    break;
                }
                let rows = files::read_part_file_summary(&part_file.path)?.rows;
                sized.push((part_file, rows));
            }
            for run in compaction::plan_merges(&sized, self.options.compacted_file_rows_max) {
                let merged = compaction::write_merged_file(&partition, &run, |metadata| {
                    self.writer_properties(metadata)
                })?;
                if self.options.crash_for_test == Some(CrashPoint::AfterMergedFile) {
                    return Err(ArchiveError::InjectedCrash);
                }
                for input in &run {
                    std::fs::remove_file(&input.path)
                        .map_err(|error| ArchiveError::io(&input.path, error))?;
                }
                files::sync_dir(&partition.dir)?;
                tracing::info!(inputs = run.len(), merged = %merged.display(), "merged small archive files");
                report.files_merged += u64::try_from(run.len()).unwrap_or(u64::MAX);
                report.files_written += 1;
            }
        }
        Ok(report)
    }

    /// Runs the archiver on its own thread: seals whenever due (checking every
    /// `interval`, and back to back while catching up a backlog) and applies retention
    /// and compaction every [`ArchiveOptions::maintenance_interval`]. Errors are logged and retried
    /// after `interval`; nothing is skipped. Stop it with [`ArchiverHandle::shutdown`].
    pub fn spawn(self, interval: Duration) -> Result<ArchiverHandle, ArchiveError> {
        let archiver = Arc::new(self);
        let stop = Arc::new(StopSignal::default());
        let thread = std::thread::Builder::new()
            .name("opentrail-archiver".to_owned())
            .spawn({
                let archiver = archiver.clone();
                let stop = stop.clone();
                move || {
                    opentrail_store::yield_to_ingest();
                    background_loop(&archiver, &stop, interval)
                }
            })
            .map_err(|error| ArchiveError::io(&archiver.dir, error))?;
        Ok(ArchiverHandle {
            archiver,
            stop,
            thread: Some(thread),
        })
    }

    fn lock_state(&self) -> MutexGuard<'_, ArchiveState> {
        // The state is only replaced after its file is written, so a panic elsewhere
        // cannot leave it half-updated.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join(CONTROL_DIR_NAME).join(STATE_FILE_NAME)
    }

    fn report(
        &self,
        state: &ArchiveState,
        sealed: Option<SealReport>,
        resumed_interrupted_seal: bool,
    ) -> Result<ArchiveReport, ArchiveError> {
        let last_seq = self.log.store().last_seq();
        Ok(ArchiveReport {
            sealed,
            resumed_interrupted_seal,
            pending_events: last_seq.saturating_sub(state.archived_through_seq),
            archived_through_seq: state.archived_through_seq,
        })
    }

    /// The newest ingest time an event may have to be archived at `now_ms`
    /// ([`ArchiveOptions::archive_after`]).
    fn archive_cutoff_ms(&self, now_ms: i64) -> i64 {
        if self.options.archive_after.is_zero() {
            // Not `now_ms`: a clock that stepped back must not hold events back.
            return i64::MAX;
        }
        now_ms.saturating_sub(millis(self.options.archive_after))
    }

    /// When an event recorded at `ingest_time_ms` became eligible for the archive.
    fn due_since_ms(&self, ingest_time_ms: i64) -> i64 {
        ingest_time_ms.saturating_add(millis(self.options.archive_after))
    }

    /// Whether at least `seal_events_min` events after `through` may be archived. Ingest
    /// time never decreases with seq, so one read of the `seal_events_min`-th event says.
    fn enough_waiting(
        &self,
        through: u64,
        last_seq: u64,
        cutoff_ms: i64,
    ) -> Result<bool, ArchiveError> {
        let min = self.options.seal_events_min.max(1);
        if last_seq - through < min {
            return Ok(false);
        }
        if cutoff_ms == i64::MAX {
            return Ok(true);
        }
        let nth = self.log.store().read_log(through + min - 1, 1)?;
        Ok(nth
            .first()
            .is_some_and(|entry| entry.ingest_time_ms <= cutoff_ms))
    }

    /// The entries of the next seal: from `through`, up to the event and byte bounds and
    /// the last event recorded at or before `cutoff_ms`.
    fn read_next_seal(&self, through: u64, cutoff_ms: i64) -> Result<Vec<LogEntry>, ArchiveError> {
        let mut entries: Vec<LogEntry> = Vec::new();
        let mut bytes = 0usize;
        self.log.scan(through, self.unbounded_scan(), |entry| {
            if entry.ingest_time_ms > cutoff_ms {
                return ScanStep::StopBefore;
            }
            let full = entries.len() >= self.options.seal_events_max
                || bytes.saturating_add(entry.json.len()) > self.options.seal_bytes_max;
            // Always take one entry, so a record over the byte bound still moves on.
            if full && !entries.is_empty() {
                return ScanStep::StopBefore;
            }
            bytes += entry.json.len();
            entries.push(entry);
            ScanStep::Continue
        })?;
        Ok(entries)
    }

    /// Scans read in chunks of `read_chunk_events` until the visitor stops them.
    fn unbounded_scan(&self) -> ScanBounds {
        ScanBounds {
            chunk_events: self.options.read_chunk_events,
            chunks_max: None,
        }
    }

    /// Exactly the entries of `range`, as a seal planned them.
    fn read_range(&self, range: SealRange) -> Result<Vec<LogEntry>, ArchiveError> {
        let mut entries = Vec::new();
        let after = range.first_seq.saturating_sub(1);
        self.log.scan(after, self.unbounded_scan(), |entry| {
            if entry.seq > range.last_seq {
                return ScanStep::StopBefore;
            }
            entries.push(entry);
            ScanStep::Continue
        })?;
        Ok(entries)
    }

    /// Writes the part files of `range`, then records it as archived, then saves the
    /// store cursor: in that order, each step durable before the next.
    fn seal(
        &self,
        state: &mut MutexGuard<'_, ArchiveState>,
        range: SealRange,
        entries: Vec<LogEntry>,
    ) -> Result<SealReport, ArchiveError> {
        let events = u64::try_from(entries.len()).unwrap_or(u64::MAX);
        let mut by_date: BTreeMap<String, Vec<LogEntry>> = BTreeMap::new();
        for entry in entries {
            let event_date =
                schema::event_date_of(&entry.json).map_err(|error| ArchiveError::BadRecord {
                    seq: entry.seq,
                    detail: error.0,
                })?;
            by_date.entry(event_date).or_default().push(entry);
        }
        let mut files = Vec::with_capacity(by_date.len());
        let mut bytes_written = 0;
        for (written, (event_date, entries)) in by_date.into_iter().enumerate() {
            if self.options.crash_for_test == Some(CrashPoint::AfterFiles(written)) {
                return Err(ArchiveError::InjectedCrash);
            }
            let path = self.write_part_file(range, &event_date, &entries)?;
            bytes_written += std::fs::metadata(&path)
                .map(|metadata| metadata.len())
                .unwrap_or(0);
            files.push(path);
        }

        let new_state = ArchiveState {
            format: STATE_FORMAT,
            archived_through_seq: range.last_seq,
            sealing: None,
        };
        write_state(&self.state_path(), &new_state)?;
        **state = new_state;
        if self.options.crash_for_test == Some(CrashPoint::BeforeCursorSave) {
            return Err(ArchiveError::InjectedCrash);
        }
        self.log.save_cursor(range.last_seq)?;
        tracing::info!(
            first_seq = range.first_seq,
            last_seq = range.last_seq,
            events,
            files = files.len(),
            bytes_written,
            "sealed a log range into the archive"
        );
        Ok(SealReport {
            first_seq: range.first_seq,
            last_seq: range.last_seq,
            events,
            files,
            bytes_written,
        })
    }

    /// Writes one partition's part file of a seal. Its bytes are a pure function of the
    /// entries and the options, so a redo after a crash writes the same file.
    fn write_part_file(
        &self,
        range: SealRange,
        event_date: &str,
        entries: &[LogEntry],
    ) -> Result<PathBuf, ArchiveError> {
        let partition_dir = files::partition_dir(&self.dir, event_date);
        files::create_dir_durably(&partition_dir)?;
        let path = partition_dir.join(files::part_file_name(range.first_seq, range.last_seq));
        let ingest_time_min_ms = entries
            .iter()
            .map(|entry| entry.ingest_time_ms)
            .min()
            .unwrap_or_default();
        let ingest_time_max_ms = entries
            .iter()
            .map(|entry| entry.ingest_time_ms)
            .max()
            .unwrap_or_default();
        let properties = self.writer_properties(schema::seal_metadata(
            range.first_seq,
            range.last_seq,
            ingest_time_min_ms,
            ingest_time_max_ms,
        ))?;
        files::write_file_durably(&path, |file| {
            let mut writer = ArrowWriter::try_new(file, schema::arrow_schema(), Some(properties))
                .map_err(|error| ArchiveError::parquet(&path, error))?;
            let mut builder = RowBatchBuilder::new();
            for entry in entries {
                builder
                    .append(entry.seq, entry.ingest_time_ms, &entry.json)
                    .map_err(|error| ArchiveError::BadRecord {
                        seq: entry.seq,
                        detail: error.0,
                    })?;
                if builder.rows() >= WRITE_BATCH_ROWS {
                    let batch = builder
                        .finish()
                        .map_err(|error| ArchiveError::arrow(&path, error))?;
                    writer
                        .write(&batch)
                        .map_err(|error| ArchiveError::parquet(&path, error))?;
                }
            }
            if builder.rows() > 0 {
                let batch = builder
                    .finish()
                    .map_err(|error| ArchiveError::arrow(&path, error))?;
                writer
                    .write(&batch)
                    .map_err(|error| ArchiveError::parquet(&path, error))?;
            }
            writer
                .into_inner()
                .map_err(|error| ArchiveError::parquet(&path, error))
        })?;
        Ok(path)
    }

    /// ZSTD everywhere; dictionary encoding only where values repeat; no min/max
    /// statistics on JSON text (useless for pruning, and they bloat the footer); a Bloom
    /// filter on `eventid` so point lookups skip row groups.
    fn writer_properties(
        &self,
        key_value_metadata: Vec<KeyValue>,
    ) -> Result<WriterProperties, ArchiveError> {
        let zstd_level = ZstdLevel::try_new(self.options.zstd_level).map_err(|error| {
            ArchiveError::InvalidOptions {
                detail: format!("zstd_level {}: {error}", self.options.zstd_level),
            }
        })?;
        let mut builder = WriterProperties::builder()
            .set_compression(Compression::ZSTD(zstd_level))
            .set_max_row_group_row_count(Some(self.options.row_group_rows_max))
            .set_dictionary_enabled(false)
            .set_key_value_metadata(Some(key_value_metadata))
            .set_column_bloom_filter_enabled(ColumnPath::from("eventid"), true);
        for column in COLUMNS {
            let path = ColumnPath::from(column.name);
            if column.dictionary {
                builder = builder.set_column_dictionary_enabled(path.clone(), true);
            }
            if column.column_type == ColumnType::Json {
                builder = builder.set_column_statistics_enabled(path, EnabledStatistics::None);
            }
        }
        Ok(builder.build())
    }
}

/// Stops and joins the background archiver.
pub struct ArchiverHandle {
    archiver: Arc<Archiver>,
    stop: Arc<StopSignal>,
    thread: Option<JoinHandle<()>>,
}

impl ArchiverHandle {
    /// The running archiver, e.g. for reports or an on-demand [`Archiver::run_once`].
    pub fn archiver(&self) -> &Arc<Archiver> {
        &self.archiver
    }

    /// Asks the loop to stop and waits for it. A seal in progress finishes first (a seal
    /// is bounded by the seal limits); waiting events stay in the log for the next start.
    pub fn shutdown(mut self) -> Result<(), ArchiveError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), ArchiveError> {
        self.stop.request();
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| ArchiveError::WorkerPanicked),
            None => Ok(()),
        }
    }
}

impl Drop for ArchiverHandle {
    fn drop(&mut self) {
        if let Err(error) = self.stop_and_join() {
            tracing::error!(%error, "archiver thread ended abnormally");
        }
    }
}

#[derive(Default)]
struct StopSignal {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl StopSignal {
    fn request(&self) {
        *self
            .stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        self.wake.notify_all();
    }

    fn is_requested(&self) -> bool {
        *self
            .stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sleeps up to `timeout`; returns whether a stop was requested.
    fn wait(&self, timeout: Duration) -> bool {
        let stopped = self
            .stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (stopped, _) = self
            .wake
            .wait_timeout_while(stopped, timeout, |stopped| !*stopped)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *stopped
    }
}

fn background_loop(archiver: &Archiver, stop: &StopSignal, interval: Duration) {
    let mut last_maintenance_ms: Option<i64> = None;
    let maintenance_interval_ms = millis(archiver.options.maintenance_interval);
    loop {
        if stop.is_requested() {
            return;
        }
        let sealed = match archiver.run_once() {
            Ok(report) => report.sealed.is_some(),
            Err(error) => {
                tracing::error!(%error, "archiving failed; retrying");
                false
            }
        };
        let now = now_ms();
        if last_maintenance_ms
            .is_none_or(|last| now.saturating_sub(last) >= maintenance_interval_ms)
        {
            if let Err(error) = archiver.expire_at(now) {
                tracing::error!(%error, "archive retention failed; retrying");
            }
            if let Err(error) = archiver.compact_at(now) {
                tracing::error!(%error, "archive compaction failed; retrying");
            }
            last_maintenance_ms = Some(now);
        }
        // After a seal, go straight on: a backlog is caught up seal after seal.
        if !sealed && stop.wait(interval) {
            return;
        }
    }
}

fn check_options(options: &ArchiveOptions) -> Result<(), ArchiveError> {
    let invalid = |detail: &str| {
        Err(ArchiveError::InvalidOptions {
            detail: detail.to_owned(),
        })
    };
    if options.seal_events_max == 0 || options.seal_bytes_max == 0 {
        return invalid("seal_events_max and seal_bytes_max must be positive");
    }
    if options.read_chunk_events == 0 {
        return invalid("read_chunk_events must be positive");
    }
    if options.row_group_rows_max == 0 {
        return invalid("row_group_rows_max must be positive");
    }
    if options.compacted_file_rows_max < 2 {
        return invalid("compacted_file_rows_max must be at least 2");
    }
    if ZstdLevel::try_new(options.zstd_level).is_err() {
        return invalid("zstd_level must be within 1..=22");
    }
    Ok(())
}

pub(crate) fn read_state(path: &Path) -> Result<Option<ArchiveState>, ArchiveError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(ArchiveError::io(path, error)),
    };
    // Written by atomic rename, so a damaged state file is real damage: say so rather
    // than guess the progress (a wrong guess would duplicate or drop rows).
    let state: ArchiveState =
        serde_json::from_slice(&bytes).map_err(|error| ArchiveError::Inconsistent {
            path: path.to_path_buf(),
            detail: format!("unreadable archive state: {error}"),
        })?;
    if state.format != STATE_FORMAT {
        return Err(ArchiveError::Inconsistent {
            path: path.to_path_buf(),
            detail: format!("unknown archive state format {}", state.format),
        });
    }
    Ok(Some(state))
}

pub(crate) fn write_state(path: &Path, state: &ArchiveState) -> Result<(), ArchiveError> {
    let bytes = serde_json::to_vec(state).map_err(|error| ArchiveError::Inconsistent {
        path: path.to_path_buf(),
        detail: format!("archive state does not serialise: {error}"),
    })?;
    files::write_bytes_durably(path, &bytes)
}

/// Removes `dir` if nothing is left in it; true when it did.
fn remove_dir_if_empty(dir: &Path) -> Result<bool, ArchiveError> {
    let mut entries = std::fs::read_dir(dir).map_err(|error| ArchiveError::io(dir, error))?;
    if entries.next().is_some() {
        return Ok(false);
    }
    std::fs::remove_dir(dir).map_err(|error| ArchiveError::io(dir, error))?;
    Ok(true)
}

/// A duration in whole milliseconds, saturated: the options are compared with ingest
/// times in milliseconds.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}
