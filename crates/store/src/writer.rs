//! The single writer thread: group commit of appends, and retention.
//!
//! Appends from every caller queue on one bounded channel. The writer drains what is
//! waiting (up to `group_commit_events_max` events), writes the log entries, dedup entries
//! and index entries of all of them in ONE atomic fjall batch, fsyncs once, and only then
//! answers each caller. Concurrent writers therefore share one fsync, and a lookup that
//! starts after `append` returns sees the events (read-your-writes).
//!
//! Retention runs on the same thread, so it never races an append's dedup check.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentrail_event::{EventRecord, LookupAttributes};

use crate::engine::{
    AppendOutcome, ExpireReport, HIGH_WATER_FILE_NAME, Shared, StoreError, StoreOptions,
    decode_log_value, encode_log_value, now_ms,
};
use crate::keys::{self, Position, ScopeId, seq_from_key, seq_key};
use crate::lookup::{EventLane, Scope};

/// Events removed per retention batch: bounds the size of one atomic delete.
const EXPIRE_BATCH_EVENTS_MAX: usize = 1_000;
/// How often a writer waiting for memtable flushes looks again.
const FLUSH_WAIT_POLL: Duration = Duration::from_millis(2);
/// A writer waits at most this long for flushes before it writes anyway (and warns): a
/// flush that never finishes must show up as an error, not as a store that hangs.
const FLUSH_WAIT_MAX: Duration = Duration::from_secs(30);

type Reply<T> = mpsc::SyncSender<Result<T, StoreError>>;

enum Command {
    Append {
        records: Vec<EventRecord>,
        reply: Reply<Vec<AppendOutcome>>,
    },
    Expire {
        now_ms: i64,
        reply: Reply<ExpireReport>,
    },
}

pub(crate) struct WriterHandle {
    sender: Mutex<Option<SyncSender<Command>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl WriterHandle {
    pub(crate) fn start(
        shared: Arc<Shared>,
        options: &StoreOptions,
    ) -> Result<WriterHandle, StoreError> {
        let high_water_path = shared.dir.join(HIGH_WATER_FILE_NAME);
        let high_water_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&high_water_path)
            .map_err(|error| StoreError::io(&high_water_path, error))?;
        let last_ingest_time_ms = last_ingest_time_ms(&shared)?;
        let (sender, receiver) = mpsc::sync_channel(options.append_queue_max.max(1));
        let writer = Writer {
            shared,
            high_water_file,
            last_ingest_time_ms,
            group_commit_events_max: options.group_commit_events_max.max(1),
            unflushed_bytes_max: options.unflushed_bytes_max(),
            poisoned: None,
        };
        let thread = std::thread::Builder::new()
            .name("opentrail-store-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|error| StoreError::io(std::path::Path::new("<writer thread>"), error))?;
        Ok(WriterHandle {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
        })
    }

    pub(crate) fn append(
        &self,
        records: Vec<EventRecord>,
        wait_for_room: bool,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, response) = mpsc::sync_channel(1);
        self.send(Command::Append { records, reply }, wait_for_room)?;
        response.recv().map_err(|_| writer_gone())?
    }

    pub(crate) fn expire(&self, now_ms: i64) -> Result<ExpireReport, StoreError> {
        let (reply, response) = mpsc::sync_channel(1);
        self.send(Command::Expire { now_ms, reply }, true)?;
        response.recv().map_err(|_| writer_gone())?
    }

    fn send(&self, command: Command, wait_for_room: bool) -> Result<(), StoreError> {
        let sender = match self.sender.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let sender = sender.ok_or_else(writer_gone)?;
        if wait_for_room {
            return sender.send(command).map_err(|_| writer_gone());
        }
        match sender.try_send(command) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(StoreError::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(writer_gone()),
        }
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what is queued and exit.
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        if let Ok(mut thread) = self.thread.lock()
            && let Some(thread) = thread.take()
        {
            let _ = thread.join();
        }
    }
}

fn writer_gone() -> StoreError {
    StoreError::Poisoned("the store writer has stopped".into())
}

struct Writer {
    shared: Arc<Shared>,
    high_water_file: File,
    /// Ingest times never go backwards, so retention can stop at the first young event.
    last_ingest_time_ms: i64,
    group_commit_events_max: usize,
    /// Memtable bytes (active and sealed) above which the writer waits for flushes.
    unflushed_bytes_max: u64,
    /// Set after a failed commit: like fjall, refuse further writes rather than pretend.
    poisoned: Option<String>,
}

struct PendingAppend {
    records: Vec<EventRecord>,
    reply: Reply<Vec<AppendOutcome>>,
}

impl Writer {
    fn run(mut self, receiver: Receiver<Command>) {
        while let Ok(command) = receiver.recv() {
            let mut group = Vec::new();
            let mut deferred_expire = None;
            match command {
                Command::Append { records, reply } => group.push(PendingAppend { records, reply }),
                Command::Expire { now_ms, reply } => deferred_expire = Some((now_ms, reply)),
            }
            // Appends keep queuing meanwhile, so the group after a wait is a large one.
            self.wait_for_flushes();
            let mut group_events: usize = group.iter().map(|append| append.records.len()).sum();
            while deferred_expire.is_none() && group_events < self.group_commit_events_max {
                match receiver.try_recv() {
                    Ok(Command::Append { records, reply }) => {
                        group_events += records.len();
                        group.push(PendingAppend { records, reply });
                    }
                    Ok(Command::Expire { now_ms, reply }) => {
                        deferred_expire = Some((now_ms, reply))
                    }
                    Err(_) => break,
                }
            }
            if !group.is_empty() {
                self.commit_group(group);
            }
            if let Some((now_ms, reply)) = deferred_expire {
                let _ = reply.send(self.expire(now_ms));
            }
        }
    }

    /// Waits while the memtables not yet flushed hold more than the budget. fjall lets
    /// four sealed memtables queue per keyspace before it halts writes; when flushing
    /// falls behind a bulk ingest, that is several hundred MB of memory and of journal to
    /// replay after a crash. Waiting here turns the backlog into backpressure on ingest.
    fn wait_for_flushes(&self) {
        // `write_buffer_size` is fjall's own count of unflushed memtable bytes (doc-hidden
        // but public; fjall's global write buffer limit is not implemented yet).
        let database = &self.shared.database;
        if database.write_buffer_size() <= self.unflushed_bytes_max {
            return;
        }
        let started = Instant::now();
        while database.write_buffer_size() > self.unflushed_bytes_max {
            if started.elapsed() > FLUSH_WAIT_MAX {
                tracing::warn!(
                    unflushed_bytes = database.write_buffer_size(),
                    limit = self.unflushed_bytes_max,
                    "memtable flushes are not keeping up; writing anyway"
                );
                return;
            }
            std::thread::sleep(FLUSH_WAIT_POLL);
        }
        tracing::debug!(
            waited_ms = started.elapsed().as_millis() as u64,
            "waited for memtable flushes"
        );
    }

    fn commit_group(&mut self, group: Vec<PendingAppend>) {
        if let Some(reason) = &self.poisoned {
            for append in group {
                let _ = append.reply.send(Err(StoreError::Poisoned(reason.clone())));
            }
            return;
        }
        match self.write_group(&group) {
            Ok(outcomes) => {
                for (append, outcome) in group.into_iter().zip(outcomes) {
                    let _ = append.reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                let reason = error.to_string();
                tracing::error!(%reason, "group commit failed");
                if matches!(error, StoreError::Engine { .. } | StoreError::Poisoned(_)) {
                    self.poisoned = Some(reason.clone());
                }
                for append in group {
                    let _ = append.reply.send(Err(StoreError::Poisoned(reason.clone())));
                }
            }
        }
    }

    fn write_group(
        &mut self,
        group: &[PendingAppend],
    ) -> Result<Vec<Vec<AppendOutcome>>, StoreError> {
        let shared = &self.shared;
        let ingest_time_ms = now_ms().max(self.last_ingest_time_ms);
        let first_seq = shared.last_seq.load(Ordering::Acquire) + 1;
        let mut next_seq = first_seq;
        let mut batch = shared
            .database
            .batch()
            .durability(Some(fjall::PersistMode::SyncAll));
        let mut stored_in_this_group: HashMap<Vec<u8>, u64> = HashMap::new();
        let known_scopes = match shared.scopes.read() {
            Ok(scopes) => scopes.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let mut new_scopes: Vec<(Scope, ScopeId)> = Vec::new();
        let mut outcomes = Vec::with_capacity(group.len());
        let mut group_index_keys: Vec<keys::IndexKey> = Vec::new();

        for append in group {
            let mut append_outcomes = Vec::with_capacity(append.records.len());
            for record in &append.records {
                let dedup_key = keys::dedup_key(&record.account_id, &record.event_id);
                if let Some(&seq) = stored_in_this_group.get(&dedup_key) {
                    append_outcomes.push(AppendOutcome::Duplicate { seq });
                    continue;
                }
                if let Some(existing) = shared
                    .dedup
                    .get(&dedup_key)
                    .map_err(|error| shared.engine_error(error))?
                {
                    let seq = seq_from_key(&existing).ok_or_else(|| StoreError::Corrupt {
                        what: "dedup entry",
                        location: format!(
                            "account {} event {}",
                            record.account_id, record.event_id
                        ),
                        detail: format!("expected 8 bytes, found {}", existing.len()),
                    })?;
                    append_outcomes.push(AppendOutcome::Duplicate { seq });
                    continue;
                }
                let seq = next_seq;
                next_seq += 1;
                batch.insert(
                    &shared.log,
                    seq_key(seq).to_vec(),
                    encode_log_value(ingest_time_ms, &record.json),
                );
                stored_in_this_group.insert(dedup_key, seq);

                let scope = scope_of(record);
                let known_id = known_scopes.get(&scope).copied().or_else(|| {
                    new_scopes
                        .iter()
                        .find(|(new, _)| *new == scope)
                        .map(|(_, id)| *id)
                });
                let scope_id = match known_id {
                    Some(scope_id) => scope_id,
                    None => {
                        let scope_id = ScopeId::try_from(known_scopes.len() + new_scopes.len())
                            .map_err(|_| StoreError::Corrupt {
                                what: "scope table",
                                location: shared.engine_dir().display().to_string(),
                                detail: "more than 2^32 (account, region) scopes".into(),
                            })?;
                        batch.insert(
                            &shared.meta,
                            keys::meta_scope_key(&scope),
                            scope_id.to_be_bytes().to_vec(),
                        );
                        new_scopes.push((scope, scope_id));
                        scope_id
                    }
                };
                let position = keys::position(record.event_time_ms, seq);
                group_index_keys.extend(index_keys(
                    &record.attributes,
                    scope_id,
                    record.event_time_ms,
                    &position,
                ));
                append_outcomes.push(AppendOutcome::Stored { seq });
            }
            outcomes.push(append_outcomes);
        }

        if next_seq == first_seq {
            return Ok(outcomes);
        }
        // Memtables are skiplists: inserting in key order keeps each search path in cache
        // from one insert to the next, which roughly halves the writer's insert cost.
        let mut dedup_entries: Vec<(Vec<u8>, u64)> = stored_in_this_group.into_iter().collect();
        dedup_entries.sort_unstable();
        for (dedup_key, seq) in dedup_entries {
            batch.insert(&shared.dedup, dedup_key, &seq_key(seq)[..]);
        }
        group_index_keys.sort_unstable();
        for index_key in &group_index_keys {
            batch.insert(&shared.index, &index_key[..], &[][..]);
        }
        batch.commit().map_err(|error| shared.engine_error(error))?;
        let last_seq = next_seq - 1;
        shared.last_seq.store(last_seq, Ordering::Release);
        self.last_ingest_time_ms = ingest_time_ms;
        if !new_scopes.is_empty() {
            match shared.scopes.write() {
                Ok(mut scopes) => scopes.extend(new_scopes),
                Err(poisoned) => poisoned.into_inner().extend(new_scopes),
            }
        }
        // Not fsynced: it only has to be right after a process crash, where the page
        // cache survives; see `check_high_water_mark`.
        if let Err(error) = self
            .high_water_file
            .write_all_at(&last_seq.to_be_bytes(), 0)
        {
            tracing::warn!(%error, "could not update the acknowledged-seq marker");
        }
        Ok(outcomes)
    }

    fn expire(&mut self, now_ms: i64) -> Result<ExpireReport, StoreError> {
        let shared = self.shared.clone();
        let oldest_unconsumed_seq = self.lowest_consumer_cursor()?.saturating_add(1);
        let mut report = ExpireReport {
            events_removed: 0,
            expired_through_seq: shared.expired_through_seq.load(Ordering::Acquire),
        };
        loop {
            let start = seq_key(report.expired_through_seq + 1);
            let mut batch = shared
                .database
                .batch()
                .durability(Some(fjall::PersistMode::SyncAll));
            let mut removed_in_batch = 0;
            let mut last_removed_seq = None;
            for guard in shared.log.range(start..).take(EXPIRE_BATCH_EVENTS_MAX) {
                let (seq, value) = shared.log_entry(guard)?;
                if seq >= oldest_unconsumed_seq {
                    break;
                }
                let (ingest_time_ms, json) = decode_log_value(seq, &value)?;
                if !shared.is_expired(ingest_time_ms, now_ms) {
                    break;
                }
                let (record, index_keys) = stored_record_and_index_keys(&shared, seq, json)?;
                for index_key in index_keys {
                    batch.remove(&shared.index, &index_key[..]);
                }
                batch.remove(
                    &shared.dedup,
                    keys::dedup_key(&record.account_id, &record.event_id),
                );
                batch.remove(&shared.log, &seq_key(seq)[..]);
                removed_in_batch += 1;
                last_removed_seq = Some(seq);
            }
            let Some(through_seq) = last_removed_seq else {
                return Ok(report);
            };
            batch.insert(
                &shared.meta,
                keys::META_EXPIRED_THROUGH,
                seq_key(through_seq).to_vec(),
            );
            batch.commit().map_err(|error| shared.engine_error(error))?;
            shared
                .expired_through_seq
                .store(through_seq, Ordering::Release);
            report.events_removed += removed_in_batch;
            report.expired_through_seq = through_seq;
        }
    }

    fn lowest_consumer_cursor(&self) -> Result<u64, StoreError> {
        let mut lowest = u64::MAX;
        for guard in self.shared.meta.prefix(keys::META_CURSOR_PREFIX) {
            let value = guard
                .value()
                .map_err(|error| self.shared.engine_error(error))?;
            if let Some(seq) = seq_from_key(&value) {
                lowest = lowest.min(seq);
            }
        }
        Ok(lowest)
    }
}

fn last_ingest_time_ms(shared: &Shared) -> Result<i64, StoreError> {
    let Some(guard) = shared.log.last_key_value() else {
        return Ok(i64::MIN);
    };
    let (key, value) = guard
        .into_inner()
        .map_err(|error| shared.engine_error(error))?;
    let seq = seq_from_key(&key).unwrap_or_default();
    Ok(decode_log_value(seq, &value)?.0)
}

pub(crate) fn scope_of(record: &EventRecord) -> Scope {
    let lane = if record.attributes.event_category == "Insight" {
        EventLane::Insight
    } else {
        EventLane::Standard
    };
    Scope {
        account_id: record.account_id.clone(),
        region: record.region.clone(),
        lane,
    }
}

/// A logged record and the index keys it has (or should have), for retention and for
/// rebuilding the index.
pub(crate) fn stored_record_and_index_keys(
    shared: &Shared,
    seq: u64,
    json: &str,
) -> Result<(EventRecord, Vec<keys::IndexKey>), StoreError> {
    let record = EventRecord::from_stored(json).map_err(|error| StoreError::Corrupt {
        what: "stored record",
        location: format!("log seq {seq}"),
        detail: format!("{error:?}"),
    })?;
    let scope = scope_of(&record);
    let Some(scope_id) = shared.scope_id(&scope) else {
        return Err(StoreError::Corrupt {
            what: "scope table",
            location: format!("log seq {seq}"),
            detail: format!("no id for the event's scope {scope:?}"),
        });
    };
    let position = keys::position(record.event_time_ms, seq);
    let index_keys = index_keys(
        &record.attributes,
        scope_id,
        record.event_time_ms,
        &position,
    );
    Ok((record, index_keys))
}

/// Every index key of one event: the time-only entry plus one per attribute value.
pub(crate) fn index_keys(
    attributes: &LookupAttributes,
    scope_id: ScopeId,
    event_time_ms: i64,
    position: &Position,
) -> Vec<keys::IndexKey> {
    let day = keys::day_key(event_time_ms);
    let values = attributes.index_values();
    let mut index_keys = Vec::with_capacity(values.len() + 1);
    let time_prefix = keys::index_prefix(day, keys::TIME_FIELD, scope_id, "");
    index_keys.push(keys::index_key(&time_prefix, position));
    for (field, value) in values {
        if !keys::is_indexed(field) {
            continue;
        }
        let prefix = keys::index_prefix(day, keys::field_byte(field), scope_id, value);
        index_keys.push(keys::index_key(&prefix, position));
    }
    index_keys
}
