//! What every view of the log in this crate shares (trail delivery and stream sinks; the
//! digest worker consumes the delivery manifest instead): blocking store work off the async
//! threads, reading the log after a cursor through a trail's filter in bounded chunks, and
//! saving the cursor once what was read is safely elsewhere.

use opentrail_store::{LogConsumer, ScanBounds, ScanStep};

use crate::error::TrailsError;
use crate::selectors::{Decision, TrailFilter};

/// Log chunks one read may go through. Skipped entries cost no memory, but a long run of
/// them (a stopped trail behind a busy log) must not hold a blocking thread for long: the
/// next poll continues from where this one stopped.
pub(crate) const READ_CHUNKS_PER_POLL_MAX: usize = 64;

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
