//! Streams: the CloudWatch Logs part of a trail.
//!
//! A trail's `CloudWatchLogsLogGroupArn` maps, through `TrailsOptions::log_groups` (the
//! `cloudwatch_log_groups` configuration table), to a sink. Each event the trail delivers
//! is also sent to the sink as one CloudTrail JSON record, in a stream named like
//! CloudTrail's (`<account>_CloudTrail_<region>`, spec §5). The sinks (`webhook`, `file`,
//! `syslog`) are in `crate::sinks`, one module each behind the `StreamSink` trait.
//!
//! The stream consumer has its own store cursor (`trail/<arn>/cloudwatch-logs`), so it
//! is independent of log-file delivery and resumes after a restart. The bounded buffer is
//! one read batch (at most [`StreamOptions::batch_events_max`] events and
//! [`StreamOptions::batch_bytes_max`] bytes); beyond it the log itself is the buffer: a
//! failing sink is retried with backoff and the cursor waits, so nothing is dropped. A
//! batch that was sent but whose cursor was not saved is sent again after a crash, so
//! sinks see every event at least once (each line carries its `eventID`). Events over
//! 256 KB are not sent, as in CloudTrail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentrail_store::{LogConsumer, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::consumer::{
    Backoff, Offer, WorkerStop, blocking, pause_unless_shutdown, read_filtered, save_cursor,
};
use crate::error::TrailsError;
use crate::model::Trail;
use crate::selectors::TrailFilter;
use crate::sinks::{SinkConnector, StreamSink};
use crate::status::{StatusHandle, status_snapshot, update_status};

pub use crate::sinks::webhook::signature_header;
pub use crate::sinks::{DEFAULT_KEEP_FILES, DEFAULT_ROTATE_BYTES, StreamSinkConfig};

const STREAM_STATUS_FILE_NAME: &str = "stream_status.json";

/// Tunables of stream delivery.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// How often new log entries are looked for.
    pub poll_interval: Duration,
    /// One batch (one webhook request per stream) holds at most this many events…
    pub batch_events_max: usize,
    /// …and this many bytes (CloudWatch Logs' PutLogEvents limit is 1 MiB).
    pub batch_bytes_max: usize,
    /// Larger events are not sent (CloudTrail's limit for CloudWatch Logs).
    pub event_bytes_max: usize,
    pub retry_backoff_initial: Duration,
    pub retry_backoff_max: Duration,
    /// The cursor is saved at least this often while only skipped entries arrive.
    pub idle_cursor_save_interval: Duration,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            poll_interval: Duration::from_millis(250),
            batch_events_max: 1000,
            batch_bytes_max: 1024 * 1024,
            event_bytes_max: 256 * 1024,
            retry_backoff_initial: Duration::from_secs(1),
            retry_backoff_max: Duration::from_secs(60),
            idle_cursor_save_interval: Duration::from_secs(10),
        }
    }
}

/// What every stream worker shares.
pub struct StreamContext {
    pub store: Store,
    pub client: reqwest::Client,
    pub options: StreamOptions,
    pub default_account_id: String,
}

/// The sink of a log group ARN (`…:log-group:name` with or without a trailing `:*`).
pub(crate) fn sink_for<'a>(
    log_groups: &'a BTreeMap<String, Arc<dyn SinkConnector>>,
    log_group_arn: &str,
) -> Option<&'a Arc<dyn SinkConnector>> {
    let bare = log_group_arn.strip_suffix(":*").unwrap_or(log_group_arn);
    log_groups
        .get(log_group_arn)
        .or_else(|| log_groups.get(bare))
        .or_else(|| log_groups.get(&format!("{bare}:*")))
}

/// The stream name CloudTrail uses in CloudWatch Logs.
pub fn stream_name(account_id: &str, region: &str) -> String {
    format!("{account_id}_CloudTrail_{region}")
}

/// The persisted part of the status the stream worker owns.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamStatus {
    latest_delivery_time_ms: Option<i64>,
    latest_delivery_error: Option<String>,
}

/// Loads the stream status of a trail into `status`. Blocking.
pub fn load_stream_status(trail_dir: &Path, status: &StatusHandle) {
    let path = trail_dir.join(STREAM_STATUS_FILE_NAME);
    let Ok(Some(bytes)) = opentrail_durable::read_optional(&path) else {
        return;
    };
    if let Ok(saved) = serde_json::from_slice::<StreamStatus>(&bytes) {
        update_status(status, |current| {
            current.latest_cloud_watch_logs_delivery_time_ms = saved.latest_delivery_time_ms;
            current.latest_cloud_watch_logs_delivery_error = saved.latest_delivery_error;
        });
    }
}

/// The stream consumer of one trail.
pub struct StreamWorker {
    context: Arc<StreamContext>,
    trail_updates: watch::Receiver<Arc<Trail>>,
    trail: Arc<Trail>,
    filter: TrailFilter,
    log_group_arn: String,
    sink: Box<dyn StreamSink>,
    trail_dir: PathBuf,
    status: StatusHandle,
    cursor: u64,
    last_cursor_save: Instant,
    shutdown: watch::Receiver<bool>,
}

impl StreamWorker {
    /// This trail's stream view of the log (`trail/<arn>/cloudwatch-logs`).
    fn log(&self) -> LogConsumer {
        LogConsumer::new(self.context.store.clone(), self.trail.stream_consumer())
    }

    /// Opens the worker (blocking: reads the cursor).
    pub fn open(
        context: Arc<StreamContext>,
        trail_updates: watch::Receiver<Arc<Trail>>,
        log_group_arn: String,
        sink: Box<dyn StreamSink>,
        trail_dir: PathBuf,
        status: StatusHandle,
        shutdown: watch::Receiver<bool>,
    ) -> Result<StreamWorker, TrailsError> {
        let trail = Arc::clone(&trail_updates.borrow());
        let filter = TrailFilter::new(&trail, &context.default_account_id);
        let mut cursor = context.store.load_cursor(&trail.stream_consumer())?;
        if let Some(first) = filter.logging().first_deliverable_after() {
            cursor = cursor.max(first);
        }
        Ok(StreamWorker {
            sink,
            context,
            trail_updates,
            trail,
            filter,
            log_group_arn,
            trail_dir,
            status,
            cursor,
            last_cursor_save: Instant::now(),
            shutdown,
        })
    }

    pub async fn run(mut self) {
        let poll_interval = self.context.options.poll_interval;
        loop {
            tokio::select! {
                _ = self.shutdown.changed() => {}
                _ = self.trail_updates.changed() => {}
                () = tokio::time::sleep(poll_interval) => {}
            }
            if *self.shutdown.borrow() {
                return;
            }
            match self.poll().await {
                Ok(_) => {}
                Err(WorkerStop::Shutdown | WorkerStop::SimulatedCrash(_)) => return,
                Err(WorkerStop::Failed(error)) => {
                    tracing::error!(trail = self.trail.arn().as_str(), %error, "stream delivery failed");
                    if pause_unless_shutdown(
                        &mut self.shutdown,
                        self.context.options.retry_backoff_max,
                    )
                    .await
                    .is_err()
                    {
                        return;
                    }
                }
            }
        }
    }

    /// Sends whatever is new; returns the number of events sent.
    pub async fn poll(&mut self) -> Result<usize, WorkerStop> {
        // Compared by version: `run`'s `changed()` already marks a new version as seen.
        let latest = Arc::clone(&self.trail_updates.borrow_and_update());
        if !Arc::ptr_eq(&latest, &self.trail) {
            self.trail = latest;
            self.filter = TrailFilter::new(&self.trail, &self.context.default_account_id);
            if let Some(first) = self.filter.logging().first_deliverable_after() {
                self.cursor = self.cursor.max(first);
            }
        }
        if self.filter.logging().periods.is_empty() {
            return Ok(0);
        }
        let log = self.log();
        let filter = self.filter.clone();
        let after = self.cursor;
        let options = self.context.options.clone();
        let arn = self.trail.arn();
        let (streams, through_seq) =
            blocking(move || read_stream_batch(&log, &filter, after, &options, &arn)).await?;
        if through_seq <= self.cursor {
            return Ok(0);
        }
        let sent: usize = streams.values().map(Vec::len).sum();
        if sent == 0
            && self.last_cursor_save.elapsed() < self.context.options.idle_cursor_save_interval
        {
            // Only skipped entries: no need for an fsync on every poll.
            return Ok(0);
        }
        for ((account_id, region), lines) in &streams {
            let stream = stream_name(account_id, region);
            self.send_with_retries(&stream, lines).await?;
        }
        save_cursor(&self.log(), through_seq).await?;
        self.cursor = through_seq;
        self.last_cursor_save = Instant::now();
        if sent > 0 {
            let now_ms = jiff::Timestamp::now().as_millisecond();
            update_status(&self.status, |status| {
                status.latest_cloud_watch_logs_delivery_time_ms = Some(now_ms);
                status.latest_cloud_watch_logs_delivery_error = None;
            });
            metrics::counter!("opentrail_trail_stream_events_total").increment(sent as u64);
            self.persist_status().await;
        }
        Ok(sent)
    }

    async fn send_with_retries(
        &mut self,
        stream: &str,
        lines: &[String],
    ) -> Result<(), WorkerStop> {
        let options = &self.context.options;
        let mut backoff = Backoff::new(options.retry_backoff_initial, options.retry_backoff_max);
        loop {
            let client = self.context.client.clone();
            let Err(error) = self
                .sink
                .send(&client, &self.log_group_arn, stream, lines)
                .await
            else {
                return Ok(());
            };
            tracing::warn!(
                trail = self.trail.arn().as_str(),
                error = error.as_str(),
                "stream sink failed; retrying"
            );
            metrics::counter!("opentrail_trail_stream_failures_total").increment(1);
            update_status(&self.status, |status| {
                status.latest_cloud_watch_logs_delivery_error = Some(error);
            });
            self.persist_status().await;
            backoff.pause(&mut self.shutdown).await?;
        }
    }

    /// Writes the stream status (atomically, without fsync: it is bookkeeping, not data).
    async fn persist_status(&self) {
        let snapshot = status_snapshot(&self.status);
        let saved = StreamStatus {
            latest_delivery_time_ms: snapshot.latest_cloud_watch_logs_delivery_time_ms,
            latest_delivery_error: snapshot.latest_cloud_watch_logs_delivery_error,
        };
        let path = self.trail_dir.join(STREAM_STATUS_FILE_NAME);
        let trail_dir = self.trail_dir.clone();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&trail_dir)?;
            let bytes = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
            opentrail_durable::replace(&path, &bytes, opentrail_durable::Access::Default, false)
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::warn!(
                trail = self.trail.arn().as_str(),
                "could not save the stream status"
            );
        }
    }
}

type StreamBatch = BTreeMap<(String, String), Vec<String>>;

/// Reads one bounded batch after `after_seq`, grouped by stream. Blocking.
fn read_stream_batch(
    log: &LogConsumer,
    filter: &TrailFilter,
    after_seq: u64,
    options: &StreamOptions,
    trail_arn: &str,
) -> Result<(StreamBatch, u64), TrailsError> {
    let mut streams = StreamBatch::new();
    let mut events = 0usize;
    let mut bytes = 0usize;
    let chunk = options.batch_events_max.max(1);
    let through_seq = read_filtered(log, filter, after_seq, chunk, trail_arn, |entry| {
        if entry.json.len() > options.event_bytes_max {
            metrics::counter!("opentrail_trail_stream_oversized_events_total").increment(1);
            return Offer::Taken;
        }
        if events >= options.batch_events_max
            || (events > 0 && bytes + entry.json.len() + 1 > options.batch_bytes_max)
        {
            return Offer::Full;
        }
        events += 1;
        bytes += entry.json.len() + 1;
        streams
            .entry((entry.account_id, entry.region))
            .or_default()
            .push(entry.json);
        Offer::Taken
    })?;
    Ok((streams, through_seq))
}
