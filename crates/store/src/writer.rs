//! The single writer thread: group commit of appends, head rotation, and retention.
//!
//! A caller compresses its records into blocks on its own thread (so compression scales
//! with the callers) and queues them. The writer drains what is waiting (up to
//! `group_commit_events_max` events), decides per record whether it is new or a
//! duplicate, writes one journal frame per append and fsyncs once for the group, adds the
//! new rows to the active head, and only then answers each caller: concurrent writers
//! share one fsync, and a lookup that starts after `append` returns sees the events.
//!
//! Retention runs on the same thread, so it never races an append's dedup check.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentrail_event::EventRecord;

use crate::blocks::BlockEncoder;
use crate::error::StoreError;
use crate::head::{Head, HeadRow, PrehashedMap};
use crate::journal::{self, JournalWriter, PreparedRecords};
use crate::layout::HIGH_WATER_FILE_NAME;
use crate::shared::{RotationSignal, Shared, now_ms, read_head};
use crate::space::{FreeSpace, WriteStatus};
use crate::terms;
use crate::values::{AppendOutcome, ExpireReport};

/// How often an idle writer checks whether the head is due for sealing.
const IDLE_CHECK: Duration = Duration::from_millis(200);
/// How often a writer waiting for the sealer looks again.
const SEAL_WAIT_POLL: Duration = Duration::from_millis(2);
/// A writer waits at most this long for the sealer before it writes anyway (and warns):
/// a seal that never finishes must show up as an error, not as a store that hangs.
const SEAL_WAIT_MAX: Duration = Duration::from_secs(30);

type Reply<T> = mpsc::SyncSender<Result<T, StoreError>>;

enum Command {
    Append(PendingAppend),
    Expire {
        now_ms: i64,
        reply: Reply<ExpireReport>,
    },
    Rotate {
        reply: Reply<()>,
    },
}

pub(crate) struct WriterHandle {
    sender: Mutex<Option<SyncSender<Command>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    rotations: RotationSignal,
}

impl WriterHandle {
    pub(crate) fn start(shared: Arc<Shared>) -> Result<WriterHandle, StoreError> {
        let high_water_path = shared.dir.join(HIGH_WATER_FILE_NAME);
        let high_water_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&high_water_path)
            .map_err(|error| StoreError::io(&high_water_path, error))?;
        let sources = shared.sources();
        let (journal, active) = match sources.heads.last() {
            Some(active) => {
                let first_seq = read_head(active).first_seq;
                (
                    JournalWriter::open(&shared.journal_dir, first_seq)?,
                    active.clone(),
                )
            }
            None => {
                let first_seq = shared.last_seq.load(Ordering::Acquire) + 1;
                let journal = JournalWriter::open(&shared.journal_dir, first_seq)?;
                let head = Arc::new(RwLock::new(Head::new(
                    first_seq,
                    journal.path.clone(),
                    shared.new_source_id(),
                )));
                shared
                    .sources
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .heads
                    .push(head.clone());
                (journal, head)
            }
        };
        let last_ingest_time_ms = last_ingest_time_ms(&shared);
        let (sender, receiver) = mpsc::sync_channel(shared.options.append_queue_max.max(1));
        let rotations: RotationSignal = Arc::new((Mutex::new(0), std::sync::Condvar::new()));
        let writer = Writer {
            shared,
            journal,
            active,
            high_water_file,
            last_ingest_time_ms,
            rotations: rotations.clone(),
        };
        let thread = std::thread::Builder::new()
            // Linux keeps 15 bytes of a thread's name: the store's threads are named
            // short enough to tell apart in `top -H` and in profiles.
            .name("store-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|error| StoreError::io(std::path::Path::new("<writer thread>"), error))?;
        Ok(WriterHandle {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            rotations,
        })
    }

    pub(crate) fn rotation_requests(&self) -> RotationSignal {
        self.rotations.clone()
    }

    pub(crate) fn append(
        &self,
        shared: &Shared,
        records: Vec<EventRecord>,
        wait_for_room: bool,
        before_visible: Option<BeforeVisible>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let prepared = prepare(shared, &records)?;
        let (reply, response) = mpsc::sync_channel(1);
        self.send(
            Command::Append(PendingAppend {
                records,
                prepared,
                reply,
                before_visible,
            }),
            wait_for_room,
        )?;
        let Appended { outcomes, records } = response.recv().map_err(|_| writer_gone())??;
        // Freed here, by the thread that appended them, rather than on the writer's
        // serial path.
        drop(records);
        Ok(outcomes)
    }

    pub(crate) fn expire(&self, now_ms: i64) -> Result<ExpireReport, StoreError> {
        let (reply, response) = mpsc::sync_channel(1);
        self.send(Command::Expire { now_ms, reply }, true)?;
        response.recv().map_err(|_| writer_gone())?
    }

    /// Freezes the active head for sealing, whatever its size or age.
    pub(crate) fn rotate(&self) -> Result<(), StoreError> {
        let (reply, response) = mpsc::sync_channel(1);
        self.send(Command::Rotate { reply }, true)?;
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

/// Answers every append of a group with the error: the first gets it as it is, the
/// others an equal one (I/O errors cannot be cloned; they get its message).
fn reply_error(group: Vec<PendingAppend>, error: StoreError) {
    let mut appends = group.into_iter();
    let Some(first) = appends.next() else {
        return;
    };
    for append in appends {
        let _ = append.reply.send(Err(equal_error(&error)));
    }
    let _ = first.reply.send(Err(error));
}

fn equal_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::DiskFull {
            path,
            available_mb,
            reserve_mb,
        } => StoreError::DiskFull {
            path: path.clone(),
            available_mb: *available_mb,
            reserve_mb: *reserve_mb,
        },
        StoreError::WriteRolledBack(reason) => StoreError::WriteRolledBack(reason.clone()),
        other => StoreError::Poisoned(other.to_string()),
    }
}

fn writer_gone() -> StoreError {
    StoreError::Poisoned("the store writer has stopped".into())
}

/// Compresses a caller's records on the caller's thread, with the current dictionary.
fn prepare(shared: &Shared, records: &[EventRecord]) -> Result<PreparedRecords, StoreError> {
    let dictionary = shared.dictionaries.current();
    let mut encoder = BlockEncoder::new(dictionary.as_deref(), crate::blocks::Effort::Journal);
    let mut places = Vec::with_capacity(records.len());
    for record in records {
        places.push(encoder.push(record.json.as_bytes())?);
    }
    Ok(PreparedRecords {
        blocks: encoder.finish()?,
        places,
    })
}

struct Writer {
    shared: Arc<Shared>,
    journal: JournalWriter,
    active: Arc<RwLock<Head>>,
    high_water_file: File,
    /// Ingest times never go backwards, so retention can find its cut by seq.
    last_ingest_time_ms: i64,
    rotations: RotationSignal,
}

struct PendingAppend {
    records: Vec<EventRecord>,
    prepared: PreparedRecords,
    reply: Reply<Appended>,
    before_visible: Option<BeforeVisible>,
}

/// A written append's outcomes, with its records handed back to the appending thread.
struct Appended {
    outcomes: Vec<AppendOutcome>,
    records: Vec<EventRecord>,
}

/// Runs on the writer thread once an append's records are durable and in the head, and
/// before their seqs are published to readers (`Store::last_seq`, the log consumers),
/// with the append's outcomes: for a side table that a consumer must find in place when
/// it first sees those seqs. It must be quick, and must not append to the store or wait
/// for it (reading `Store::last_seq` is fine: the hook runs before it moves).
pub type BeforeVisible = Box<dyn FnOnce(&[AppendOutcome]) + Send>;

impl Writer {
    fn run(mut self, receiver: Receiver<Command>) {
        let group_events_max = self.shared.options.group_commit_events_max.max(1);
        loop {
            let command = match receiver.recv_timeout(IDLE_CHECK) {
                Ok(command) => command,
                Err(RecvTimeoutError::Timeout) => {
                    self.rotate_if_due(false);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut group = Vec::new();
            let mut deferred = None;
            match command {
                Command::Append(append) => group.push(append),
                other => deferred = Some(other),
            }
            // Appends keep queuing meanwhile, so the group after a wait is a large one.
            self.wait_for_sealer();
            let mut group_events: usize = group.iter().map(|append| append.records.len()).sum();
            while deferred.is_none() && group_events < group_events_max {
                match receiver.try_recv() {
                    Ok(Command::Append(append)) => {
                        group_events += append.records.len();
                        group.push(append);
                    }
                    Ok(other) => deferred = Some(other),
                    Err(_) => break,
                }
            }
            if !group.is_empty() {
                // Appends still come in: a bulk load's seals keep their second thread.
                self.shared.sealer_times.group_committed();
                self.commit_group(group);
                self.rotate_if_due(false);
            }
            match deferred {
                Some(Command::Expire { now_ms, reply }) => {
                    let _ = reply.send(self.expire(now_ms));
                }
                Some(Command::Rotate { reply }) => {
                    let _ = reply.send(self.rotate());
                }
                _ => {}
            }
        }
    }

    /// Waits while unsealed heads hold more than the budget, so a bulk load that
    /// outruns the sealer becomes backpressure on producers instead of memory.
    fn wait_for_sealer(&self) {
        let budget = self.shared.options.unsealed_bytes_max();
        let started = Instant::now();
        let mut waited = false;
        loop {
            let unsealed: u64 = self
                .shared
                .sources()
                .heads
                .iter()
                .map(|head| read_head(head).bytes())
                .sum();
            if unsealed <= budget {
                break;
            }
            if started.elapsed() > SEAL_WAIT_MAX {
                tracing::warn!(
                    unsealed,
                    budget,
                    "the sealer is not keeping up; writing anyway"
                );
                break;
            }
            // Every poll: seals take a second thread while appends wait.
            self.shared.sealer_times.appends_wait();
            std::thread::sleep(SEAL_WAIT_POLL);
            waited = true;
        }
        // Only a real wait counts, not the check every group commit makes.
        if waited {
            self.shared.sealer_times.add_append_wait(started);
        }
    }

    fn commit_group(&mut self, mut group: Vec<PendingAppend>) {
        let shared = Arc::clone(&self.shared);
        let health = &shared.write_health;
        // Refused groups keep nothing; the status says whether later ones may succeed.
        let refuse = |group: Vec<PendingAppend>, status: WriteStatus, error: StoreError| {
            health.set(status);
            health.count_refused(group.len());
            reply_error(group, error);
        };
        if let WriteStatus::Failed { reason } = health.status() {
            return refuse(
                group,
                WriteStatus::Failed {
                    reason: reason.clone(),
                },
                StoreError::Poisoned(reason),
            );
        }
        if let Err(refusal) = self.check_free_space() {
            let reason = refusal.to_string();
            return refuse(group, WriteStatus::Refusing { reason }, refusal);
        }
        match self.write_group(&mut group) {
            Ok(outcomes) => {
                health.set(WriteStatus::Accepting);
                for (append, outcomes) in group.into_iter().zip(outcomes) {
                    let PendingAppend { records, reply, .. } = append;
                    let _ = reply.send(Ok(Appended { outcomes, records }));
                }
            }
            // Nothing of the group was kept, and the journal is as it was: the next group
            // may succeed.
            Err(error @ StoreError::WriteRolledBack(_)) => {
                let reason = error.to_string();
                refuse(group, WriteStatus::Refusing { reason }, error);
            }
            // The journal may hold a partial frame it could not cut: nothing more may
            // follow it until recovery has run.
            Err(error) => {
                let reason = format!(
                    "{error}. Acknowledged events are safe in the journal; free the disk or fix the device, then restart the server"
                );
                refuse(group, WriteStatus::Failed { reason }, error);
            }
        }
    }

    /// Refuses the group when free space is under the reserve. Reading the filesystem's
    /// counters costs a system call per group commit, not per event.
    fn check_free_space(&self) -> Result<(), StoreError> {
        let reserve = self.shared.options.free_space_reserve_bytes;
        if reserve == Some(0) {
            return Ok(());
        }
        match FreeSpace::of(&self.shared.dir, reserve)?.refusal(&self.shared.dir) {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }

    fn write_group(
        &mut self,
        group: &mut [PendingAppend],
    ) -> Result<Vec<Vec<AppendOutcome>>, StoreError> {
        let ingest_time_ms = now_ms().max(self.last_ingest_time_ms);
        let previous_last_seq = self.shared.last_seq.load(Ordering::Acquire);
        let plan = self.plan_group(group, previous_last_seq + 1, ingest_time_ms)?;
        self.journal.append_durably(&plan.frames)?;
        self.last_ingest_time_ms = ingest_time_ms;
        self.add_to_head(group, &plan.new_rows, ingest_time_ms);

        let last_seq = previous_last_seq + plan.new_rows.len() as u64;
        debug_assert!(
            plan.new_rows
                .iter()
                .map(|row| row.seq)
                .eq(previous_last_seq + 1..=last_seq),
            "seqs are dense: a group takes the next ones, in order"
        );
        for (append, outcomes) in group.iter_mut().zip(&plan.outcomes) {
            if let Some(before_visible) = append.before_visible.take() {
                before_visible(outcomes);
            }
        }
        self.shared.publish_last_seq(last_seq);
        // Not fsynced: it only has to survive a process crash, which the page cache does;
        // see `check_high_water_mark`.
        self.high_water_file
            .write_all_at(&last_seq.to_be_bytes(), 0)
            .map_err(|error| StoreError::io(&self.shared.dir.join(HIGH_WATER_FILE_NAME), error))?;
        Ok(plan.outcomes)
    }

    /// Decides, per record, "new" (the next seq) or "duplicate" (the seq it already has:
    /// in this group, a head or a segment), and encodes one journal frame per append.
    fn plan_group(
        &self,
        group: &[PendingAppend],
        first_new_seq: u64,
        ingest_time_ms: i64,
    ) -> Result<GroupPlan, StoreError> {
        let mut next_seq = first_new_seq;
        let sources = self.shared.sources();
        // Records of this group by (account, eventID): a batch may repeat a record.
        let mut in_group = GroupIds::default();
        let mut plan = GroupPlan {
            frames: Vec::new(),
            outcomes: Vec::with_capacity(group.len()),
            new_rows: Vec::new(),
        };
        for (append_index, append) in group.iter().enumerate() {
            let first_seq = next_seq;
            let mut stored = Vec::with_capacity(append.records.len());
            let mut append_outcomes = Vec::with_capacity(append.records.len());
            for (record_index, record) in append.records.iter().enumerate() {
                let key = (record.account_id.as_str(), record.event_id.as_str());
                let hash = terms::id_hash(key.0, key.1);
                let existing = match in_group.get(hash, key) {
                    Some(seq) => Some(seq),
                    None => self
                        .shared
                        .find_id_hashed(&sources, hash, key.0, key.1)?
                        .map(|event| event.seq)
                        .filter(|seq| {
                            *seq > self.shared.expired_through_seq.load(Ordering::Acquire)
                        }),
                };
                match existing {
                    Some(seq) => {
                        stored.push(false);
                        append_outcomes.push(AppendOutcome::Duplicate { seq });
                    }
                    None => {
                        let seq = next_seq;
                        next_seq += 1;
                        in_group.insert(hash, key, seq);
                        stored.push(true);
                        append_outcomes.push(AppendOutcome::Stored { seq });
                        plan.new_rows.push(NewRow {
                            append_index,
                            record_index,
                            seq,
                            id_hash: hash,
                        });
                    }
                }
            }
            journal::encode_frame(
                &mut plan.frames,
                first_seq,
                ingest_time_ms,
                &stored,
                &append.prepared.blocks,
            );
            plan.outcomes.push(append_outcomes);
        }
        Ok(plan)
    }

    /// Adds a written group to the active head: its blocks, then a row (with postings)
    /// for every new record. Lookups see them once the lock is released.
    fn add_to_head(&self, group: &mut [PendingAppend], new_rows: &[NewRow], ingest_time_ms: i64) {
        // Before the write lock: encoding a batch of columns takes a while.
        let columns_bytes = read_head(&self.active).push_columns(new_rows.iter().map(|row| {
            (
                row.seq,
                ingest_time_ms,
                &group[row.append_index].records[row.record_index],
            )
        }));
        let mut head = self
            .active
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        head.count_columns_bytes(columns_bytes);
        let mut first_blocks = Vec::with_capacity(group.len());
        for append in group.iter_mut() {
            // The frames are written: the head takes the blocks over.
            first_blocks.push(head.add_blocks(std::mem::take(&mut append.prepared.blocks)));
        }
        for new_row in new_rows {
            let append = &group[new_row.append_index];
            let record = &append.records[new_row.record_index];
            let (block, index) = append.prepared.places[new_row.record_index];
            let row = HeadRow {
                seq: new_row.seq,
                event_time_ms: record.event_time_ms,
                ingest_time_ms,
                block: first_blocks[new_row.append_index] + block,
                index,
                id_hash: new_row.id_hash,
            };
            head.push_row(row, record);
        }
    }

    /// Rotates the active head when it is big or old enough (or `force`).
    fn rotate_if_due(&mut self, force: bool) {
        let due = {
            let head = read_head(&self.active);
            let options = &self.shared.options;
            !head.is_empty()
                && (force
                    || head.len() >= options.seal_events_max
                    || head.bytes() >= options.write_buffer_bytes
                    || head.created.elapsed() >= options.seal_interval)
        };
        if due && let Err(error) = self.rotate() {
            tracing::error!(%error, "could not start a new journal file");
        }
    }

    /// Freezes the active head (the sealer takes it from here) and starts a new one with
    /// its own journal file.
    fn rotate(&mut self) -> Result<(), StoreError> {
        if read_head(&self.active).is_empty() {
            return Ok(());
        }
        let first_seq = self.shared.last_seq.load(Ordering::Acquire) + 1;
        let journal = JournalWriter::open(&self.shared.journal_dir, first_seq)?;
        let head = Arc::new(RwLock::new(Head::new(
            first_seq,
            journal.path.clone(),
            self.shared.new_source_id(),
        )));
        {
            let mut sources = self
                .shared
                .sources
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            sources.heads.push(head.clone());
        }
        self.journal = journal;
        self.active = head;
        let (lock, condvar) = &*self.rotations;
        if let Ok(mut generation) = lock.lock() {
            // Never the sealer's stop value.
            *generation = (*generation + 1) % (u64::MAX - 1);
        }
        condvar.notify_all();
        Ok(())
    }

    /// Raises the retention floor to the newest seq ingested before the cutoff (never
    /// past a consumer's cursor), then removes whole segments and journals below it.
    fn expire(&mut self, now_ms: i64) -> Result<ExpireReport, StoreError> {
        let cutoff = now_ms.saturating_sub(self.shared.retention_ms);
        let previous = self.shared.expired_through_seq.load(Ordering::Acquire);
        let lowest_cursor = self
            .shared
            .meta
            .read(|meta| meta.cursors.values().copied().min())
            .unwrap_or(u64::MAX);
        let sources = self.shared.sources();
        let mut through = previous;
        for segment in &sources.segments {
            match segment.last_seq_ingested_before(cutoff) {
                Some(seq) => through = through.max(seq),
                None => break,
            }
            if segment.max_ingest_ms >= cutoff {
                break;
            }
        }
        for head in &sources.heads {
            let head = read_head(head);
            let expired_rows = head.rows.partition_point(|row| row.ingest_time_ms < cutoff);
            if let Some(row) = expired_rows.checked_sub(1) {
                through = through.max(head.rows[row].seq);
            }
            if expired_rows < head.len() {
                break;
            }
        }
        let through = through.min(lowest_cursor);
        if through <= previous {
            return Ok(ExpireReport {
                events_removed: 0,
                expired_through_seq: previous,
            });
        }
        self.shared
            .meta
            .update(|meta| meta.expired_through_seq = through)?;
        self.shared
            .expired_through_seq
            .store(through, Ordering::Release);
        // Seqs are dense: every seq up to `last_seq` was given to exactly one event.
        let events_removed = through - previous;

        if read_head(&self.active)
            .last_seq()
            .is_some_and(|last| last <= through)
        {
            self.rotate()?;
        }
        crate::sealer::remove_expired(&self.shared, through)?;
        Ok(ExpireReport {
            events_removed,
            expired_through_seq: through,
        })
    }
}

fn last_ingest_time_ms(shared: &Shared) -> i64 {
    let sources = shared.sources();
    let from_heads = sources
        .heads
        .iter()
        .filter_map(|head| read_head(head).rows.last().map(|row| row.ingest_time_ms))
        .max();
    let from_segments = sources
        .segments
        .iter()
        .map(|segment| segment.max_ingest_ms)
        .max();
    from_heads
        .into_iter()
        .chain(from_segments)
        .max()
        .unwrap_or(i64::MIN)
}

/// The seqs a group gave, by (account, eventID), keyed by the id's hash as it is (std's
/// SipHash over both strings was 1% of the writer's CPU). A hash two ids share, a real
/// 64-bit collision, sends the later one to `overflow`.
#[derive(Default)]
struct GroupIds<'g> {
    first: PrehashedMap<((&'g str, &'g str), u64)>,
    overflow: Vec<((&'g str, &'g str), u64)>,
}

impl<'g> GroupIds<'g> {
    fn get(&self, hash: u64, key: (&str, &str)) -> Option<u64> {
        match self.first.get(&hash) {
            Some((first_key, seq)) if *first_key == key => Some(*seq),
            Some(_) => self
                .overflow
                .iter()
                .find(|(other, _)| *other == key)
                .map(|(_, seq)| *seq),
            None => None,
        }
    }

    fn insert(&mut self, hash: u64, key: (&'g str, &'g str), seq: u64) {
        match self.first.entry(hash) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert((key, seq));
            }
            std::collections::hash_map::Entry::Occupied(_) => self.overflow.push((key, seq)),
        }
    }
}

/// What one group commit writes: the journal frames, each append's outcomes, and the
/// new records, in seq order.
struct GroupPlan {
    frames: Vec<u8>,
    outcomes: Vec<Vec<AppendOutcome>>,
    new_rows: Vec<NewRow>,
}

/// A record of the group that is new: where it is in the group, the seq it takes, and
/// its id hash (made once, for the dedup check, and kept by the head).
struct NewRow {
    append_index: usize,
    record_index: usize,
    seq: u64,
    id_hash: u64,
}

#[cfg(test)]
mod tests {
    use super::GroupIds;

    #[test]
    fn ids_of_a_group_that_share_a_hash_keep_their_own_seqs() {
        let mut ids = GroupIds::default();
        ids.insert(7, ("111122223333", "a"), 1);
        ids.insert(7, ("111122223333", "b"), 2);
        ids.insert(8, ("444455556666", "a"), 3);
        assert_eq!(ids.get(7, ("111122223333", "a")), Some(1));
        assert_eq!(ids.get(7, ("111122223333", "b")), Some(2));
        assert_eq!(ids.get(7, ("111122223333", "c")), None);
        assert_eq!(ids.get(8, ("444455556666", "a")), Some(3));
        assert_eq!(ids.get(9, ("111122223333", "a")), None);
    }
}
