//! Appending to the store from async handlers, with backpressure.
//!
//! The store's writer has a bounded queue; when it is full, [`append_records`] answers
//! `ServiceUnavailable` (503 with `Retry-After`) at once instead of queueing without
//! bound. A semaphore bounds how many ingest requests may hold parsed batches in memory
//! at the same time, so memory stays bounded under any load.

use std::sync::Arc;

use opentrail_detect::Screening;
use opentrail_event::EventRecord;
use opentrail_protocol::AwsError;
use opentrail_store::{AppendOutcome, Store, StoreError};
use tokio::sync::Semaphore;

use crate::api_error::{ApiError, RETRY_AFTER_SECONDS};

/// Ingest requests that may be parsing or waiting for fsync at once. With the 10 MiB body
/// limit this caps ingest memory near 32 × (body + parsed records).
pub const INGEST_REQUESTS_IN_FLIGHT_MAX: usize = 32;

/// Admission control for ingest.
#[derive(Clone)]
pub struct IngestLimiter {
    permits: Arc<Semaphore>,
}

impl Default for IngestLimiter {
    fn default() -> Self {
        IngestLimiter {
            permits: Arc::new(Semaphore::new(INGEST_REQUESTS_IN_FLIGHT_MAX)),
        }
    }
}

impl IngestLimiter {
    /// A permit to hold while parsing and appending one request, or 503 when too many
    /// requests are already in flight.
    pub fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| overloaded())
    }
}

pub fn overloaded() -> ApiError {
    metrics::counter!("opentrail_ingest_rejected_total", "reason" => "overloaded").increment(1);
    ApiError(AwsError::new(
        opentrail_protocol::error::codes::SERVICE_UNAVAILABLE,
        format!("OpenTrail is busy writing earlier events; retry after {RETRY_AFTER_SECONDS} s."),
    ))
}

/// 503 for a write the store refused and did not keep (nothing was stored): the message
/// is the store's, which names the cause and says when writes resume.
fn writes_refused(reason: &'static str, error: &StoreError) -> ApiError {
    metrics::counter!("opentrail_ingest_rejected_total", "reason" => reason).increment(1);
    ApiError(AwsError::new(
        opentrail_protocol::error::codes::SERVICE_UNAVAILABLE,
        error.to_string(),
    ))
}

/// Appends records durably; returns once they are fsynced (or were duplicates). A full
/// queue or a refused write answers 503 with `Retry-After`; nothing of it was stored.
pub async fn append_to_store(
    store: Store,
    screening: Option<Arc<Screening>>,
    records: Vec<EventRecord>,
) -> Result<Vec<AppendOutcome>, ApiError> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let appended = tokio::task::spawn_blocking(move || append_blocking(&store, screening, records))
        .await
        .map_err(ApiError::internal)?;
    appended.into_api_result()
}

/// What [`append_blocking`] did, for [`Appended::into_api_result`] to count and answer.
pub struct Appended {
    outcome: Result<Vec<AppendOutcome>, StoreError>,
    elapsed: std::time::Duration,
}

/// [`append_to_store`] on the calling thread, which it blocks until the records are
/// durable: for a caller already on a blocking thread (the ingest route parses there, and
/// appending from the same thread saves a hand-over and frees the records where they
/// were allocated).
///
/// With `screening`, the records are first run through the detection rules' prefilter,
/// and the verdicts noted against the seqs they got (by the store's writer, before those
/// seqs are visible), so the detection consumer does not read the records no rule can
/// fire on (see `opentrail_detect::Screening`).
pub fn append_blocking(
    store: &Store,
    screening: Option<Arc<Screening>>,
    records: Vec<EventRecord>,
) -> Appended {
    let started = std::time::Instant::now();
    let outcome = if records.is_empty() {
        Ok(Vec::new())
    } else {
        let verdicts = screening.as_ref().and_then(|screening| {
            screening.judge(records.iter().map(|record| record.json.as_str()))
        });
        match (screening, verdicts) {
            // Noted before the seqs are visible, so the consumer never reads them whole
            // for want of a note that was on its way.
            (Some(screening), Some(verdicts)) => store.try_append_then(
                records,
                Box::new(move |outcomes| screening.note(verdicts, outcomes)),
            ),
            _ => store.try_append(records),
        }
    };
    Appended {
        outcome,
        elapsed: started.elapsed(),
    }
}

impl Appended {
    /// The outcomes, counted in the metrics; a refused write as a 503 (see
    /// [`append_to_store`]).
    pub fn into_api_result(self) -> Result<Vec<AppendOutcome>, ApiError> {
        match self.outcome {
            // One outcome per record: none means nothing was appended, nothing to count.
            Ok(outcomes) if outcomes.is_empty() => Ok(outcomes),
            Ok(outcomes) => {
                metrics::histogram!("opentrail_append_seconds").record(self.elapsed.as_secs_f64());
                let stored = outcomes
                    .iter()
                    .filter(|o| matches!(o, AppendOutcome::Stored { .. }))
                    .count() as u64;
                metrics::counter!("opentrail_events_stored_total").increment(stored);
                metrics::counter!("opentrail_events_duplicate_total")
                    .increment(outcomes.len() as u64 - stored);
                Ok(outcomes)
            }
            Err(StoreError::Overloaded) => Err(overloaded()),
            Err(error @ StoreError::DiskFull { .. }) => Err(writes_refused("disk_full", &error)),
            Err(error @ StoreError::WriteRolledBack(_)) => {
                Err(writes_refused("write_failed", &error))
            }
            Err(error @ StoreError::Poisoned(_)) => Err(writes_refused("store_failed", &error)),
            Err(error) => Err(ApiError::internal(error)),
        }
    }
}
