//! What every view of the log in this crate shares (trail delivery and stream sinks; the
//! digest worker consumes the delivery manifest instead): blocking store work off the async
//! threads, reading the log after a cursor through a trail's filter in bounded chunks,
//! saving the cursor once what was read is safely elsewhere, and the way a worker stops,
//! pauses and retries a failing destination.

use std::time::Duration;

use opentrail_store::{LogConsumer, ScanBounds, ScanStep};
use tokio::sync::watch;

use crate::error::TrailsError;
use crate::selectors::{Decision, TrailFilter};

/// Log chunks one read may go through. Skipped entries cost no memory, but a long run of
/// them (a stopped trail behind a busy log) must not hold a blocking thread for long: the
/// next poll continues from where this one stopped.
pub(crate) const READ_CHUNKS_PER_POLL_MAX: usize = 64;

/// A step of log-file delivery after which a test crash stops the worker. It stands beside
/// [`WorkerStop`], which carries it, so that stream workers need not import `delivery`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The plan is durable; no object written.
    AfterPlan,
    /// Every object is written; the manifest and the cursor are not.
    AfterObjects,
    /// The manifest is durable; the cursor has not moved.
    AfterManifest,
    /// The cursor moved; the plan is not marked complete and nobody was notified.
    AfterCursor,
}

/// Why a worker stopped before finishing a step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerStop {
    #[error("shutting down")]
    Shutdown,
    #[error("simulated crash at {0:?}")]
    SimulatedCrash(CrashPoint),
    #[error(transparent)]
    Failed(#[from] TrailsError),
}

/// Sleeps for `duration`, or reports that shutdown began (before or during the sleep).
pub(crate) async fn pause_unless_shutdown(
    shutdown: &mut watch::Receiver<bool>,
    duration: Duration,
) -> Result<(), WorkerStop> {
    if *shutdown.borrow() {
        return Err(WorkerStop::Shutdown);
    }
    tokio::select! {
        _ = shutdown.changed() => Err(WorkerStop::Shutdown),
        () = tokio::time::sleep(duration) => Ok(()),
    }
}

/// The pauses between attempts at a failing destination: from `initial`, doubled after
/// each failure up to `max`, without jitter. Retries go on for as long as it takes; only
/// shutdown ends them.
pub(crate) struct Backoff {
    next_pause: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            next_pause: initial,
            max,
        }
    }

    /// How long [`Backoff::pause`] will sleep, for reporting the failure first.
    pub(crate) fn next_pause(&self) -> Duration {
        self.next_pause
    }

    /// Sleeps before the next attempt (or reports that shutdown began), then doubles the
    /// pause.
    pub(crate) async fn pause(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), WorkerStop> {
        pause_unless_shutdown(shutdown, self.next_pause).await?;
        self.next_pause = self.next_pause.saturating_mul(2).min(self.max);
        Ok(())
    }
}

/// Runs blocking work (store calls, file I/O) off the async threads.
pub(crate) async fn blocking<T, E>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, TrailsError>
where
    T: Send + 'static,
    E: Send + 'static,
    TrailsError: From<E>,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| TrailsError::Task(error.to_string()))?
        .map_err(TrailsError::from)
}

/// Saves the consumer's cursor: everything through `through_seq` is done with.
pub(crate) async fn save_cursor(log: &LogConsumer, through_seq: u64) -> Result<(), TrailsError> {
    let log = log.clone();
    blocking(move || log.save_cursor(through_seq)).await
}

/// What a reader does with an entry the filter delivers.
pub(crate) enum Offer {
    /// Taken (or deliberately dropped): read on.
    Taken,
    /// No room: stop before this entry; the next read starts with it.
    Full,
}

/// One delivered log entry: its seq and JSON, and the account and region it goes to.
pub(crate) struct Delivered {
    pub(crate) seq: u64,
    pub(crate) json: String,
    pub(crate) account_id: String,
    pub(crate) region: String,
}

/// Reads the log after `after_seq` in chunks of `chunk_events` and offers each entry
/// `filter` delivers to `offer`, until `offer` says [`Offer::Full`], the log is exhausted,
/// or [`READ_CHUNKS_PER_POLL_MAX`] chunks were read. Returns the seq through which every
/// entry was considered (taken or skipped). Unreadable records are counted, logged with
/// `trail_arn`, and skipped. Blocking.
pub(crate) fn read_filtered(
    log: &LogConsumer,
    filter: &TrailFilter,
    after_seq: u64,
    chunk_events: usize,
    trail_arn: &str,
    mut offer: impl FnMut(Delivered) -> Offer,
) -> Result<u64, TrailsError> {
    let bounds = ScanBounds {
        chunk_events,
        chunks_max: Some(READ_CHUNKS_PER_POLL_MAX),
    };
    let through_seq = log.scan(after_seq, bounds, |entry| {
        match filter.decide(entry.seq, &entry.json) {
            Decision::Deliver { account_id, region } => {
                let delivered = Delivered {
                    seq: entry.seq,
                    json: entry.json,
                    account_id,
                    region,
                };
                if let Offer::Full = offer(delivered) {
                    return ScanStep::StopBefore;
                }
            }
            Decision::Skip => {}
            Decision::Unreadable(reason) => {
                metrics::counter!("opentrail_trail_unreadable_records_total").increment(1);
                tracing::error!(
                    trail = trail_arn,
                    seq = entry.seq,
                    reason = reason.as_str(),
                    "a stored record cannot be read for delivery; skipped"
                );
            }
        }
        ScanStep::Continue
    })?;
    Ok(through_seq)
}
