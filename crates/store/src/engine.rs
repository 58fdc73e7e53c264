//! The store: fjall keyspaces for the log, the dedup map, the lookup index and metadata.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use opentrail_event::EventRecord;

use crate::keys::{self, ScopeId, seq_from_key, seq_key};
use crate::lookup::{LookupPage, LookupQuery, Scope, StoredEvent};
use crate::writer::WriterHandle;

/// Tunables, each with an explicit bound.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Events are kept this long after OpenTrail recorded them (by ingest time).
    pub retention: Duration,
    /// The most events one group commit (one fsync) carries.
    pub group_commit_events_max: usize,
    /// The most appends waiting for the writer; beyond it `try_append` reports overload.
    pub append_queue_max: usize,
    /// The engine's block cache.
    pub cache_bytes: u64,
    /// Memtables across the log, dedup and index keyspaces (a third each); a full one is
    /// flushed to a table. Full memtables wait in memory for their flush, and when flushing
    /// falls behind, the writer waits before its next group commit once active and
    /// waiting memtables hold twice this. With the cache, this bounds the store's memory
    /// regardless of how many events it holds or how fast they come.
    pub write_buffer_bytes: u64,
}

impl StoreOptions {
    /// The memtable bytes (active and sealed) above which appends wait for flushes.
    pub(crate) fn unflushed_bytes_max(&self) -> u64 {
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
        }
    }
}

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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage engine error in {path}: {source}")]
    Engine {
        path: PathBuf,
        #[source]
        source: fjall::Error,
    },
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
}

impl StoreError {
    pub(crate) fn engine(path: &Path, source: fjall::Error) -> StoreError {
        if matches!(source, fjall::Error::Poisoned) {
            return StoreError::Poisoned(format!(
                "storage engine at {} is poisoned",
                path.display()
            ));
        }
        StoreError::Engine {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Figures for metrics and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// The highest sequence number ever assigned.
    pub last_seq: u64,
    /// Sequence numbers at or below this were removed by retention.
    pub expired_through_seq: u64,
    /// Bytes the engine uses on disk (journal and tables).
    pub disk_bytes: u64,
    /// Bytes in table files alone: what retention and compaction shrink.
    pub table_bytes: u64,
    /// Bytes in memtables not yet flushed to tables (active and sealed).
    pub unflushed_bytes: u64,
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
    writer: Arc<WriterHandle>,
}

/// State readers and the writer share.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) database: fjall::Database,
    pub(crate) log: fjall::Keyspace,
    pub(crate) dedup: fjall::Keyspace,
    pub(crate) index: fjall::Keyspace,
    pub(crate) meta: fjall::Keyspace,
    pub(crate) scopes: RwLock<BTreeMap<Scope, ScopeId>>,
    pub(crate) retention_ms: i64,
    pub(crate) last_seq: AtomicU64,
    pub(crate) expired_through_seq: AtomicU64,
    /// Held for the store's lifetime so a second process cannot open the same directory.
    _lock_file: std::fs::File,
}

const LOCK_FILE_NAME: &str = "LOCK";
const ENGINE_DIR_NAME: &str = "engine";
/// The highest acknowledged sequence number, rewritten (without fsync) after every group
/// commit. If the engine ever recovers fewer events than this, acknowledged events were
/// lost to corruption, and opening fails loudly instead of serving a silently shorter log.
pub(crate) const HIGH_WATER_FILE_NAME: &str = "acknowledged_seq";

impl Store {
    /// Opens (creating if needed) the store in `dir`, recovering after any crash.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|error| StoreError::io(dir, error))?;
        let lock_path = dir.join(LOCK_FILE_NAME);
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|error| StoreError::io(&lock_path, error))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: dir.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(StoreError::io(&lock_path, error));
            }
        }

        let engine_dir = dir.join(ENGINE_DIR_NAME);
        discard_unfinished_engine(&engine_dir)?;
        let database = fjall::Database::builder(&engine_dir)
            .cache_size(options.cache_bytes)
            // fjall's floor is 64 MiB of journal.
            .max_journaling_size(options.write_buffer_bytes.saturating_mul(2).max(64 << 20))
            .open()
            .map_err(|error| StoreError::engine(&engine_dir, error))?;
        // The write buffer is split between the keyspaces that take every event's writes.
        let memtable_bytes = (options.write_buffer_bytes / 3).max(1 << 20);
        let open_keyspace = |name: &str, create_options: fjall::KeyspaceCreateOptions| {
            database
                .keyspace(name, || create_options)
                .map_err(|error| StoreError::engine(&engine_dir, error))
        };
        let log = open_keyspace(
            "log",
            log_keyspace_options().max_memtable_size(memtable_bytes),
        )?;
        let dedup = open_keyspace(
            "dedup",
            compressed_keyspace_options().max_memtable_size(memtable_bytes),
        )?;
        let index = open_keyspace(
            "index",
            compressed_keyspace_options()
                // Lookups only range-scan the index; bloom filters would never be read.
                .filter_policy(fjall::config::FilterPolicy::disabled())
                .max_memtable_size(memtable_bytes),
        )?;
        let meta = open_keyspace("meta", fjall::KeyspaceCreateOptions::default())?;

        let read_u64_meta = |name: &str| -> Result<u64, StoreError> {
            match meta
                .get(name)
                .map_err(|error| StoreError::engine(&engine_dir, error))?
            {
                None => Ok(0),
                Some(bytes) => seq_from_key(&bytes).ok_or_else(|| StoreError::Corrupt {
                    what: "metadata value",
                    location: format!("{} key {name:?}", engine_dir.display()),
                    detail: format!("expected 8 bytes, found {}", bytes.len()),
                }),
            }
        };
        let expired_through_seq = read_u64_meta(keys::META_EXPIRED_THROUGH)?;
        let last_log_seq = match log.last_key_value() {
            None => 0,
            Some(guard) => {
                let key = guard
                    .key()
                    .map_err(|error| StoreError::engine(&engine_dir, error))?;
                seq_from_key(&key).ok_or_else(|| StoreError::Corrupt {
                    what: "log key",
                    location: engine_dir.display().to_string(),
                    detail: format!("expected 8 bytes, found {}", key.len()),
                })?
            }
        };
        let last_seq = last_log_seq.max(expired_through_seq);
        check_high_water_mark(dir, last_seq)?;

        let mut scopes = BTreeMap::new();
        for guard in meta.prefix(keys::META_SCOPE_PREFIX) {
            let (key, value) = guard
                .into_inner()
                .map_err(|error| StoreError::engine(&engine_dir, error))?;
            let scope = keys::decode_scope(&key[keys::META_SCOPE_PREFIX.len()..]);
            let scope_id = <[u8; 4]>::try_from(&value[..])
                .ok()
                .map(ScopeId::from_be_bytes);
            let (Some(scope), Some(scope_id)) = (scope, scope_id) else {
                return Err(StoreError::Corrupt {
                    what: "scope metadata",
                    location: engine_dir.display().to_string(),
                    detail: format!("undecodable entry {key:?} -> {value:?}"),
                });
            };
            scopes.insert(scope, scope_id);
        }
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            database,
            log,
            dedup,
            index,
            meta,
            scopes: RwLock::new(scopes),
            retention_ms: i64::try_from(options.retention.as_millis()).unwrap_or(i64::MAX),
            last_seq: AtomicU64::new(last_seq),
            expired_through_seq: AtomicU64::new(expired_through_seq),
            _lock_file: lock_file,
        });
        crate::index_rebuild::rebuild_index_if_stale(&shared)?;
        let writer = Arc::new(WriterHandle::start(shared.clone(), &options)?);
        Ok(Store { shared, writer })
    }

    /// Appends records durably (one shared fsync per group commit) and reports, per
    /// record in order, its sequence number or that it was a duplicate. Blocks until the
    /// records are on disk; waits for room when the append queue is full.
    pub fn append(&self, records: Vec<EventRecord>) -> Result<Vec<AppendOutcome>, StoreError> {
        self.writer.append(records, true)
    }

    /// Like [`Store::append`], but reports [`StoreError::Overloaded`] instead of waiting
    /// when the append queue is full, so servers can answer 503.
    pub fn try_append(&self, records: Vec<EventRecord>) -> Result<Vec<AppendOutcome>, StoreError> {
        self.writer.append(records, false)
    }

    /// Removes events recorded longer ago than the retention period, but never past what
    /// every consumer cursor has read. Returns what was removed.
    pub fn expire(&self, now_ms: i64) -> Result<ExpireReport, StoreError> {
        self.writer.expire(now_ms)
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
        let key = keys::dedup_key(account_id, event_id);
        let Some(seq_bytes) = self
            .shared
            .dedup
            .get(&key)
            .map_err(|error| self.shared.engine_error(error))?
        else {
            return Ok(None);
        };
        let seq = seq_from_key(&seq_bytes).ok_or_else(|| StoreError::Corrupt {
            what: "dedup entry",
            location: format!("account {account_id} event {event_id}"),
            detail: format!("expected 8 bytes, found {}", seq_bytes.len()),
        })?;
        self.shared.read_event(seq, now_ms())
    }

    /// Up to `limit` log entries with sequence numbers after `after_seq`, in order.
    /// Consumers (Parquet, delivery, digests) read the log through this.
    pub fn read_log(&self, after_seq: u64, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        let start = seq_key(after_seq.saturating_add(1));
        let mut entries = Vec::new();
        for guard in self.shared.log.range(start..).take(limit) {
            let (seq, value) = self.shared.log_entry(guard)?;
            let (ingest_time_ms, json) = decode_log_value(seq, &value)?;
            entries.push(LogEntry {
                seq,
                ingest_time_ms,
                json: json.to_owned(),
            });
        }
        Ok(entries)
    }

    /// A consumer's durable cursor (0 when it has read nothing).
    pub fn load_cursor(&self, consumer: &str) -> Result<u64, StoreError> {
        let key = format!("{}{consumer}", keys::META_CURSOR_PREFIX);
        match self
            .shared
            .meta
            .get(&key)
            .map_err(|error| self.shared.engine_error(error))?
        {
            None => Ok(0),
            Some(bytes) => seq_from_key(&bytes).ok_or_else(|| StoreError::Corrupt {
                what: "consumer cursor",
                location: key,
                detail: format!("expected 8 bytes, found {}", bytes.len()),
            }),
        }
    }

    /// Durably records that `consumer` has processed the log through `seq`. Call it only
    /// after the consumer's own output is durable.
    pub fn save_cursor(&self, consumer: &str, seq: u64) -> Result<(), StoreError> {
        let key = format!("{}{consumer}", keys::META_CURSOR_PREFIX);
        let mut batch = self
            .shared
            .database
            .batch()
            .durability(Some(fjall::PersistMode::SyncAll));
        batch.insert(&self.shared.meta, key, seq.to_be_bytes().to_vec());
        batch
            .commit()
            .map_err(|error| self.shared.engine_error(error))
    }

    /// Forgets a consumer, so it no longer holds back retention.
    pub fn delete_cursor(&self, consumer: &str) -> Result<(), StoreError> {
        let key = format!("{}{consumer}", keys::META_CURSOR_PREFIX);
        let mut batch = self
            .shared
            .database
            .batch()
            .durability(Some(fjall::PersistMode::SyncAll));
        batch.remove(&self.shared.meta, key);
        batch
            .commit()
            .map_err(|error| self.shared.engine_error(error))
    }

    /// Every scope (account, region, lane) that has ever held an event.
    pub fn scopes(&self) -> Vec<Scope> {
        match self.shared.scopes.read() {
            Ok(scopes) => scopes.keys().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().keys().cloned().collect(),
        }
    }

    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(StoreStats {
            last_seq: self.shared.last_seq.load(Ordering::Acquire),
            expired_through_seq: self.shared.expired_through_seq.load(Ordering::Acquire),
            disk_bytes: self
                .shared
                .database
                .disk_space()
                .map_err(|error| self.shared.engine_error(error))?,
            table_bytes: [
                &self.shared.log,
                &self.shared.dedup,
                &self.shared.index,
                &self.shared.meta,
            ]
            .iter()
            .map(|keyspace| keyspace.disk_space())
            .sum(),
            unflushed_bytes: self.shared.database.write_buffer_size(),
        })
    }

    /// Compacts every keyspace, reclaiming the space of expired events now rather than
    /// whenever background compaction gets to it.
    pub fn compact(&self) -> Result<(), StoreError> {
        for keyspace in [
            &self.shared.log,
            &self.shared.dedup,
            &self.shared.index,
            &self.shared.meta,
        ] {
            keyspace
                .major_compact()
                .map_err(|error| self.shared.engine_error(error))?;
        }
        Ok(())
    }

    /// Moves everything in memory into table files. Not needed for durability (the
    /// journal already has it); it makes reopening faster and lets tests reach tables.
    pub fn flush_tables(&self) -> Result<(), StoreError> {
        for keyspace in [
            &self.shared.log,
            &self.shared.dedup,
            &self.shared.index,
            &self.shared.meta,
        ] {
            keyspace
                .rotate_memtable_and_wait()
                .map_err(|error| self.shared.engine_error(error))?;
        }
        Ok(())
    }

    /// Reads every entry of every keyspace, so every block's checksum and every log record's
    /// CRC is checked. Returns how many log records were verified, or the first damage
    /// found, with its location.
    pub fn verify(&self) -> Result<u64, StoreError> {
        let mut records = 0;
        for guard in self.shared.log.iter() {
            let (seq, value) = self.shared.log_entry(guard)?;
            decode_log_value(seq, &value)?;
            records += 1;
        }
        for keyspace in [&self.shared.dedup, &self.shared.index, &self.shared.meta] {
            for guard in keyspace.iter() {
                guard
                    .into_inner()
                    .map_err(|error| self.shared.engine_error(error))?;
            }
        }
        Ok(records)
    }

    /// The data directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }
}

impl Shared {
    pub(crate) fn engine_dir(&self) -> PathBuf {
        self.dir.join(ENGINE_DIR_NAME)
    }

    pub(crate) fn engine_error(&self, error: fjall::Error) -> StoreError {
        StoreError::engine(&self.engine_dir(), error)
    }

    /// One item of an iterator over the log, as (seq, encoded value).
    pub(crate) fn log_entry(&self, guard: fjall::Guard) -> Result<(u64, fjall::Slice), StoreError> {
        let (key, value) = guard
            .into_inner()
            .map_err(|error| self.engine_error(error))?;
        let seq = seq_from_key(&key).ok_or_else(|| StoreError::Corrupt {
            what: "log key",
            location: self.engine_dir().display().to_string(),
            detail: format!("expected 8 bytes, found {}", key.len()),
        })?;
        Ok((seq, value))
    }

    /// Reads one event by sequence number; `None` when absent or past retention.
    pub(crate) fn read_event(
        &self,
        seq: u64,
        now_ms: i64,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let Some(value) = self
            .log
            .get(seq_key(seq))
            .map_err(|error| self.engine_error(error))?
        else {
            return Ok(None);
        };
        let (ingest_time_ms, json) = decode_log_value(seq, &value)?;
        if self.is_expired(ingest_time_ms, now_ms) {
            return Ok(None);
        }
        let record = EventRecord::from_stored(json).map_err(|error| StoreError::Corrupt {
            what: "stored record",
            location: format!("log seq {seq}"),
            detail: format!("{error:?}"),
        })?;
        Ok(Some(StoredEvent {
            seq,
            ingest_time_ms,
            record,
        }))
    }

    pub(crate) fn scope_id(&self, scope: &Scope) -> Option<ScopeId> {
        match self.scopes.read() {
            Ok(scopes) => scopes.get(scope).copied(),
            Err(poisoned) => poisoned.into_inner().get(scope).copied(),
        }
    }

    pub(crate) fn is_expired(&self, ingest_time_ms: i64, now_ms: i64) -> bool {
        ingest_time_ms < now_ms.saturating_sub(self.retention_ms)
    }
}

/// fjall writes its `version` marker last when it creates a database, and treats a folder
/// without one as new, but a kill between creating the journal and writing the marker
/// leaves files that make the next creation fail ("File exists"). Nothing can have been
/// written to such a folder, so it is removed and created again.
fn discard_unfinished_engine(engine_dir: &Path) -> Result<(), StoreError> {
    const FJALL_VERSION_MARKER: &str = "version";
    let marker = engine_dir.join(FJALL_VERSION_MARKER);
    let unfinished = engine_dir.exists()
        && !marker
            .try_exists()
            .map_err(|error| StoreError::io(&marker, error))?;
    if unfinished {
        tracing::warn!(path = %engine_dir.display(), "removing a storage engine whose creation was interrupted");
        std::fs::remove_dir_all(engine_dir).map_err(|error| StoreError::io(engine_dir, error))?;
    }
    Ok(())
}

/// JSON compresses well: LZ4 at every level (fjall leaves the first two uncompressed by
/// default), in larger blocks than the default 4 KiB for a better ratio. Every point read
/// of the log hits (seq numbers come from the index), so bloom filters would be wasted.
fn log_keyspace_options() -> fjall::KeyspaceCreateOptions {
    fjall::KeyspaceCreateOptions::default()
        .data_block_compression_policy(fjall::config::CompressionPolicy::all(
            fjall::CompressionType::Lz4,
        ))
        .data_block_size_policy(fjall::config::BlockSizePolicy::all(32 * 1024))
        .expect_point_read_hits(true)
}

/// Index and dedup keys share long prefixes; LZ4 at every level shrinks what prefix
/// truncation leaves.
fn compressed_keyspace_options() -> fjall::KeyspaceCreateOptions {
    fjall::KeyspaceCreateOptions::default()
        .data_block_compression_policy(fjall::config::CompressionPolicy::all(
            fjall::CompressionType::Lz4,
        ))
        .data_block_size_policy(fjall::config::BlockSizePolicy::all(16 * 1024))
}

/// Log values carry their own CRC, checked on every read: a damaged record is reported
/// with its sequence number, never served.
pub(crate) fn encode_log_value(ingest_time_ms: i64, json: &str) -> Vec<u8> {
    let mut value = Vec::with_capacity(12 + json.len());
    value.extend_from_slice(&ingest_time_ms.to_be_bytes());
    value.extend_from_slice(&crc32fast::hash(json.as_bytes()).to_be_bytes());
    value.extend_from_slice(json.as_bytes());
    value
}

pub(crate) fn decode_log_value(seq: u64, value: &[u8]) -> Result<(i64, &str), StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        what: "log record",
        location: format!("log seq {seq}"),
        detail,
    };
    if value.len() < 12 {
        return Err(corrupt(format!(
            "record header needs 12 bytes, found {}",
            value.len()
        )));
    }
    let (header, json) = value.split_at(12);
    let mut time_bytes = [0u8; 8];
    time_bytes.copy_from_slice(&header[..8]);
    let mut crc_bytes = [0u8; 4];
    crc_bytes.copy_from_slice(&header[8..]);
    let expected_crc = u32::from_be_bytes(crc_bytes);
    let actual_crc = crc32fast::hash(json);
    if expected_crc != actual_crc {
        return Err(corrupt(format!(
            "checksum mismatch: stored {expected_crc:08x}, computed {actual_crc:08x}"
        )));
    }
    let json =
        std::str::from_utf8(json).map_err(|error| corrupt(format!("invalid UTF-8: {error}")))?;
    Ok((i64::from_be_bytes(time_bytes), json))
}

fn check_high_water_mark(dir: &Path, recovered_last_seq: u64) -> Result<(), StoreError> {
    let path = dir.join(HIGH_WATER_FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(StoreError::io(&path, error)),
    };
    // A torn write of this unsynced file can only make it unreadable, never larger.
    let Some(acknowledged) = seq_from_key(&bytes) else {
        return Ok(());
    };
    if acknowledged > recovered_last_seq {
        return Err(StoreError::Corrupt {
            what: "event log",
            location: dir.join(ENGINE_DIR_NAME).display().to_string(),
            detail: format!(
                "events up to seq {acknowledged} were acknowledged but only {recovered_last_seq} were recovered; \
                 the journal or tables are damaged"
            ),
        });
    }
    Ok(())
}

pub(crate) fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}
