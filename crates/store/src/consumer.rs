//! A view of the log with a durable cursor: the one type every consumer builds on (the
//! Parquet archive, trail delivery, stream sinks).
//!
//! A consumer reads the log after its cursor in bounded chunks, does its work, makes the
//! result durable elsewhere, and only then saves the cursor. A crash before the save
//! replays the same entries, so each consumer's output must be a pure function of the
//! seqs it read (the archive's part files, a trail's log files). Retention never removes
//! an entry at or above the lowest saved cursor.

use crate::error::StoreError;
use crate::store::Store;
use crate::values::LogEntry;

/// Lowers the calling thread's scheduling priority (Linux: nice 10 for this thread only,
/// and the threads it starts afterwards).
///
/// A consumer is a view that may lag (its cursor holds what it has not done), while
/// ingest answers producers waiting on an fsync: on two cores, a thread that reads the
/// whole log (the archive, detections, Insights) would otherwise take the CPU from ingest
/// during a burst. At a lower priority it catches up when the burst ends. Call it first
/// thing in a consumer's own thread; never on an async runtime's threads.
pub fn yield_to_ingest() {
    const BACKGROUND_NICENESS: i32 = 10;
    #[cfg(target_os = "linux")]
    if let Err(error) =
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), BACKGROUND_NICENESS)
    {
        tracing::debug!(%error, "could not lower a consumer thread's priority");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = BACKGROUND_NICENESS;
}

/// What a scan's visitor does with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStep {
    /// The entry was taken (or deliberately skipped): read on.
    Continue,
    /// Stop before this entry; a later scan starts with it.
    StopBefore,
}

/// How much one scan may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanBounds {
    /// Entries per `read_log` call, so memory stays bounded whatever the visitor keeps.
    pub chunk_events: usize,
    /// Chunks one scan may read; `None`: until the visitor stops or the log ends. A
    /// bound keeps a consumer that skips most entries (a stopped trail behind a busy log)
    /// from holding a thread for long: the next scan continues where this one stopped.
    pub chunks_max: Option<usize>,
}

/// A named consumer of the log: its cursor in the store and its reads.
#[derive(Clone)]
pub struct LogConsumer {
    store: Store,
    name: String,
}

impl LogConsumer {
    pub fn new(store: Store, name: impl Into<String>) -> LogConsumer {
        LogConsumer {
            store,
            name: name.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The seq through which this consumer is done (0: nothing yet, or never saved).
    pub fn load_cursor(&self) -> Result<u64, StoreError> {
        self.store.load_cursor(&self.name)
    }

    /// Everything through `through_seq` is durable elsewhere; retention may remove it
    /// once every other consumer is past it too.
    pub fn save_cursor(&self, through_seq: u64) -> Result<(), StoreError> {
        debug_assert!(
            through_seq <= self.store.last_seq(),
            "consumer {} saved a cursor past the end of the log ({through_seq})",
            self.name
        );
        self.store.save_cursor(&self.name, through_seq)
    }

    /// Reads the log after `after_seq` in chunks and hands each entry to `visit`, in seq
    /// order, until `visit` answers [`ScanStep::StopBefore`], the log ends, or the bounds
    /// are reached. Returns the seq through which every entry was handed over (and taken):
    /// `after_seq` when none was. Blocking.
    pub fn scan(
        &self,
        after_seq: u64,
        bounds: ScanBounds,
        mut visit: impl FnMut(LogEntry) -> ScanStep,
    ) -> Result<u64, StoreError> {
        let chunk_events = bounds.chunk_events.max(1);
        let mut through_seq = after_seq;
        let mut chunks = 0usize;
        while bounds.chunks_max.is_none_or(|max| chunks < max) {
            chunks += 1;
            let entries = self.store.read_log(through_seq, chunk_events)?;
            let exhausted = entries.len() < chunk_events;
            for entry in entries {
                debug_assert!(entry.seq > through_seq, "the log reads in seq order");
                let seq = entry.seq;
                if visit(entry) == ScanStep::StopBefore {
                    return Ok(through_seq);
                }
                through_seq = seq;
            }
            if exhausted {
                break;
            }
        }
        Ok(through_seq)
    }

    /// Reads the entries in `(after_seq, through_seq]` and returns `map`'s result for each,
    /// in seq order. A span of at least [`PARALLEL_MAP_MIN_EVENTS`] is cut into `workers`
    /// contiguous parts, each read and mapped on its own thread (a scoped thread, which
    /// inherits the caller's priority), so that a consumer whose work is per entry
    /// (detections) catches up a backlog on every core, decoding included. Each part reads
    /// [`MAP_READ_EVENTS`] entries at a time.
    pub fn map_range<T: Send>(
        &self,
        after_seq: u64,
        through_seq: u64,
        workers: usize,
        map: impl Fn(LogEntry) -> T + Sync,
    ) -> Result<Vec<(u64, T)>, StoreError> {
        let span = through_seq.saturating_sub(after_seq);
        if workers < 2 || span < PARALLEL_MAP_MIN_EVENTS {
            return self.map_part(after_seq, through_seq, &map);
        }
        let part_len = span.div_ceil(workers as u64);
        let parts: Vec<(u64, u64)> = (0..workers as u64)
            .map(|index| {
                let first_after = after_seq + index * part_len;
                (first_after, (first_after + part_len).min(through_seq))
            })
            .filter(|(after, through)| after < through)
            .collect();
        std::thread::scope(|scope| {
            let map = &map;
            // The first part is read here; a thread that cannot start leaves its part to
            // this one.
            let spawned: Vec<_> = parts[1..]
                .iter()
                .map(|&(after, through)| {
                    let handle = std::thread::Builder::new()
                        .name(format!("{}-reader", self.name))
                        .spawn_scoped(scope, move || self.map_part(after, through, map));
                    ((after, through), handle)
                })
                .collect();
            let mut mapped = self.map_part(parts[0].0, parts[0].1, map)?;
            for ((after, through), handle) in spawned {
                let part = match handle {
                    Ok(handle) => handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?,
                    Err(_) => self.map_part(after, through, map)?,
                };
                mapped.extend(part);
            }
            Ok(mapped)
        })
    }

    fn map_part<T>(
        &self,
        after_seq: u64,
        through_seq: u64,
        map: &impl Fn(LogEntry) -> T,
    ) -> Result<Vec<(u64, T)>, StoreError> {
        let mut mapped = Vec::new();
        let mut cursor = after_seq;
        while cursor < through_seq {
            let limit = usize::try_from(through_seq - cursor)
                .unwrap_or(usize::MAX)
                .min(MAP_READ_EVENTS);
            let entries = self.store.read_log(cursor, limit)?;
            let Some(last) = entries.last().map(|entry| entry.seq) else {
                break;
            };
            for entry in entries {
                if entry.seq > through_seq {
                    return Ok(mapped);
                }
                mapped.push((entry.seq, map(entry)));
            }
            cursor = last;
        }
        Ok(mapped)
    }
}

/// A [`LogConsumer::map_range`] span shorter than this is read on the caller's thread:
/// starting threads would cost more than they save.
pub const PARALLEL_MAP_MIN_EVENTS: u64 = 512;
/// Entries one [`LogConsumer::map_range`] part reads at a time (bounds its memory).
const MAP_READ_EVENTS: usize = 1_000;
