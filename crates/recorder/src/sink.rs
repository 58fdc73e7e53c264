//! Where records go: [`RecordSink`] is what the proxy and the tower layer hand records to.
//! [`RemoteSink`] ships them to an OpenTrail server through a bounded queue (on disk for
//! the proxy, in memory for the tower layer); the server crate has the sink that appends
//! to a local store.
//!
//! A sink never blocks the call being recorded: `submit` only queues. When the queue is
//! full it says so, and the caller decides (the proxy refuses calls it cannot record,
//! unless told to let them through).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng as _;
use tokio::sync::{Notify, mpsc};

use crate::client::IngestClient;
use crate::queue::DiskQueue;

/// Records per request to the server.
const BATCH_RECORDS_MAX: usize = 500;
const BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Records waiting for the disk writer; past it, `submit` refuses.
const WRITER_CHANNEL: usize = 16 * 1024;
/// How long the disk writer gathers records after the first of a group: one fsync per
/// group, so at most about 100 a second whatever the call rate.
const GROUP_LINGER: Duration = Duration::from_millis(10);
/// How long the shipper waits after sending a batch that was not full, so a steady trickle
/// of calls goes to the server in batches rather than one request per call.
const SHIP_LINGER: Duration = Duration::from_millis(100);
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(15);

/// The queue is full: the record was not taken.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the recording queue is full ({reason}); the record was not kept")]
pub struct SinkFull {
    pub reason: String,
}

/// Takes records without blocking.
pub trait RecordSink: Send + Sync + 'static {
    /// Whether a record submitted now would be taken.
    fn has_room(&self) -> bool;
    /// Queues one record (CloudTrail JSON text).
    fn submit(&self, record: String) -> Result<(), SinkFull>;
}

/// Where a [`RemoteSink`] keeps records until the server has them.
#[derive(Debug, Clone)]
pub enum QueueKind {
    /// In memory, at most this many records: a crash of the process loses them.
    Memory { records_max: usize },
    /// Fsynced on local disk, at most this many bytes: survives crashes of either side.
    Disk { directory: PathBuf, bytes_max: u64 },
}

enum Backing {
    Memory {
        records: Mutex<VecDeque<String>>,
        records_max: usize,
    },
    Disk {
        queue: Arc<Mutex<DiskQueue>>,
        writer: mpsc::Sender<String>,
        bytes_max: u64,
    },
}

struct Shared {
    client: IngestClient,
    backing: Backing,
    /// Bytes taken and not yet acknowledged by the server.
    pending_bytes: AtomicU64,
    wake: Notify,
    drained: Notify,
}

/// Ships records to an OpenTrail server in the background, in order, retrying with
/// backoff until each batch is acknowledged.
#[derive(Clone)]
pub struct RemoteSink {
    shared: Arc<Shared>,
}

impl RemoteSink {
    /// Opens the queue (recovering records a previous run left) and starts shipping.
    /// Must be called inside a tokio runtime.
    pub fn start(client: IngestClient, kind: QueueKind) -> std::io::Result<RemoteSink> {
        let (backing, writer_input) = match kind {
            QueueKind::Memory { records_max } => (
                Backing::Memory {
                    records: Mutex::new(VecDeque::new()),
                    records_max,
                },
                None,
            ),
            QueueKind::Disk {
                directory,
                bytes_max,
            } => {
                let queue = Arc::new(Mutex::new(DiskQueue::open(&directory)?));
                let (writer, input) = mpsc::channel(WRITER_CHANNEL);
                (
                    Backing::Disk {
                        queue,
                        writer,
                        bytes_max,
                    },
                    Some(input),
                )
            }
        };
        let initial = match &backing {
            Backing::Disk { queue, .. } => lock(queue).pending_bytes(),
            Backing::Memory { .. } => 0,
        };
        let shared = Arc::new(Shared {
            client,
            backing,
            pending_bytes: AtomicU64::new(initial),
            wake: Notify::new(),
            drained: Notify::new(),
        });
        if let Some(input) = writer_input {
            tokio::spawn(write_to_disk(Arc::clone(&shared), input));
        }
        tokio::spawn(ship(Arc::clone(&shared)));
        Ok(RemoteSink { shared })
    }

    /// Bytes of records the server has not acknowledged yet.
    pub fn pending_bytes(&self) -> u64 {
        self.shared.pending_bytes.load(Ordering::Acquire)
    }

    /// Waits until every record taken so far is acknowledged, or `timeout` passes;
    /// returns whether the queue drained.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let drained = self.shared.drained.notified();
            if self.pending_bytes() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return self.pending_bytes() == 0;
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RecordSink for RemoteSink {
    fn has_room(&self) -> bool {
        match &self.shared.backing {
            Backing::Memory {
                records,
                records_max,
            } => lock(records).len() < *records_max,
            Backing::Disk {
                bytes_max, writer, ..
            } => self.pending_bytes() < *bytes_max && writer.capacity() > 0,
        }
    }

    fn submit(&self, record: String) -> Result<(), SinkFull> {
        let size = record.len() as u64 + 1;
        let taken = match &self.shared.backing {
            Backing::Memory {
                records,
                records_max,
            } => {
                let mut records = lock(records);
                if records.len() >= *records_max {
                    return Err(refused(format!("{records_max} records in memory")));
                }
                records.push_back(record);
                Ok(())
            }
            Backing::Disk {
                writer, bytes_max, ..
            } => {
                if self.pending_bytes() + size > *bytes_max {
                    return Err(refused(format!("{bytes_max} bytes on disk")));
                }
                writer
                    .try_send(record)
                    .map_err(|_| refused("the disk writer is behind".to_owned()))
            }
        };
        taken?;
        self.shared.pending_bytes.fetch_add(size, Ordering::AcqRel);
        metrics::counter!("opentrail_recorder_records_queued_total").increment(1);
        self.shared.wake.notify_one();
        Ok(())
    }
}

fn refused(reason: String) -> SinkFull {
    metrics::counter!("opentrail_recorder_records_refused_total").increment(1);
    SinkFull { reason }
}

/// Appends queued records to the disk queue in groups, one fsync per group.
async fn write_to_disk(shared: Arc<Shared>, mut input: mpsc::Receiver<String>) {
    let Backing::Disk { queue, .. } = &shared.backing else {
        return;
    };
    while let Some(first) = input.recv().await {
        let mut group = vec![first];
        let linger = tokio::time::Instant::now() + GROUP_LINGER;
        while group.len() < BATCH_RECORDS_MAX {
            match tokio::time::timeout_at(linger, input.recv()).await {
                Ok(Some(next)) => group.push(next),
                Ok(None) | Err(_) => break,
            }
        }
        let mut backoff = BACKOFF_FIRST;
        loop {
            let queue = Arc::clone(queue);
            let records = group.clone();
            let appended = tokio::task::spawn_blocking(move || lock(&queue).append(&records)).await;
            match appended {
                Ok(Ok(())) => break,
                Ok(Err(error)) => {
                    // The records are still in `group`; they are written once the disk
                    // takes them (meanwhile `submit` refuses as the channel fills).
                    tracing::error!(%error, "cannot append to the recording queue; retrying");
                }
                Err(error) => tracing::error!(%error, "the recording queue writer panicked"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        shared.wake.notify_one();
    }
}

/// Sends batches in order until each is acknowledged.
async fn ship(shared: Arc<Shared>) {
    loop {
        let wake = shared.wake.notified();
        let batch = match next_batch(&shared).await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(%error, "cannot read the recording queue; retrying");
                tokio::time::sleep(BACKOFF_MAX).await;
                continue;
            }
        };
        let Some((records, acknowledge)) = batch else {
            shared.drained.notify_waiters();
            let _ = tokio::time::timeout(Duration::from_secs(1), wake).await;
            continue;
        };
        send_until_acknowledged(&shared, &records).await;
        let full_batch = records.len() >= BATCH_RECORDS_MAX;
        let bytes: u64 = records.iter().map(|record| record.len() as u64 + 1).sum();
        if let Err(error) = acknowledge.run(&shared).await {
            tracing::error!(%error, "cannot save the recording queue's cursor; the batch will be sent again (the server deduplicates it)");
            tokio::time::sleep(BACKOFF_FIRST).await;
            continue;
        }
        shared.pending_bytes.fetch_sub(
            bytes.min(shared.pending_bytes.load(Ordering::Acquire)),
            Ordering::AcqRel,
        );
        metrics::counter!("opentrail_recorder_records_sent_total").increment(records.len() as u64);
        metrics::gauge!("opentrail_recorder_pending_bytes")
            .set(shared.pending_bytes.load(Ordering::Acquire) as f64);
        if !full_batch {
            tokio::time::sleep(SHIP_LINGER).await;
        }
    }
}

enum Acknowledge {
    Memory(usize),
    Disk(crate::queue::Position),
}

impl Acknowledge {
    async fn run(self, shared: &Shared) -> std::io::Result<()> {
        match (self, &shared.backing) {
            (Acknowledge::Memory(count), Backing::Memory { records, .. }) => {
                lock(records).drain(..count);
                Ok(())
            }
            (Acknowledge::Disk(position), Backing::Disk { queue, .. }) => {
                let queue = Arc::clone(queue);
                tokio::task::spawn_blocking(move || lock(&queue).acknowledge(position))
                    .await
                    .map_err(std::io::Error::other)?
            }
            _ => Ok(()),
        }
    }
}

async fn next_batch(shared: &Shared) -> std::io::Result<Option<(Vec<String>, Acknowledge)>> {
    match &shared.backing {
        Backing::Memory { records, .. } => {
            let records = lock(records);
            let batch: Vec<String> = records.iter().take(BATCH_RECORDS_MAX).cloned().collect();
            let count = batch.len();
            Ok((count > 0).then_some((batch, Acknowledge::Memory(count))))
        }
        Backing::Disk { queue, .. } => {
            let queue = Arc::clone(queue);
            let (batch, position) = tokio::task::spawn_blocking(move || {
                lock(&queue).read_batch(BATCH_RECORDS_MAX, BATCH_BYTES_MAX)
            })
            .await
            .map_err(std::io::Error::other)??;
            Ok((!batch.is_empty()).then_some((batch, Acknowledge::Disk(position))))
        }
    }
}

async fn send_until_acknowledged(shared: &Shared, records: &[String]) {
    let mut backoff = BACKOFF_FIRST;
    let mut failures = 0u32;
    loop {
        match shared.client.send(records).await {
            Ok(report) => {
                for rejection in &report.rejected {
                    tracing::error!(%rejection, "OpenTrail rejected a recorded call's record");
                }
                if failures > 0 {
                    tracing::info!(
                        endpoint = shared.client.endpoint(),
                        failures,
                        "OpenTrail is reachable again"
                    );
                }
                return;
            }
            Err(error) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(%error, failures, "cannot ship recorded calls yet; they stay queued");
                }
                metrics::counter!("opentrail_recorder_send_failures_total").increment(1);
            }
        }
        // Jitter spreads the retries of many proxies after an outage.
        let jitter = rand::rng().random_range(0.5..1.0);
        tokio::time::sleep(backoff.mul_f64(jitter)).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
