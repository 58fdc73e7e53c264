//! The delivery consumer of one trail: log entries in, CloudTrail log files out.
//!
//! # One batch, step by step
//!
//! The worker reads the event log after its cursor, keeps the entries the trail's filter
//! admits (in memory, bounded by the size cut), and cuts a batch when the size cut is
//! reached or `interval` has passed since the first unprocessed entry was seen. Then:
//!
//! 1. **Plan.** The batch's log range `(after_seq, through_seq]`, its planned delivery
//!    time, and for each stream (account, region) the object key and the sequence numbers
//!    of its records, are written to `state.json` and fsynced.
//! 2. **Write.** Each file is built (on a blocking thread) and put to the bucket. Failures
//!    are retried with exponential backoff, for as long as it takes; nothing is dropped,
//!    and `LatestDeliveryError` reports the failure meanwhile.
//! 3. **Record.** The delivered files (key, SHA-256 of the uncompressed bytes, oldest and
//!    newest event times) are appended to the trail's [`Manifest`] and fsynced.
//! 4. **Advance.** The store cursor `trail/<arn>` moves to `through_seq`.
//! 5. **Notify** the SNS webhook, when the trail has a topic, then mark the plan complete.
//!
//! # Exactly once
//!
//! The key of a file is a pure function of the plan: the unique string hashes the trail
//! and the log range, and the timestamp is the recorded planned time. After a crash at any
//! step, the worker finds the incomplete plan, re-reads exactly the planned sequence
//! numbers (retention cannot have removed them: the cursor holds them) and redoes steps
//! 2–5: the same keys get the same bytes, the manifest gets only the lines it lacks, and
//! the cursor moves once. The next batch starts after `through_seq`, so no event is ever
//! in two different files.
//!
//! Events accepted while the trail was not logging are skipped by sequence number (the
//! trail's [`crate::model::LoggingHistory`]), so a restart cannot deliver them either.
//!
//! # Log files and Insights files
//!
//! The same worker delivers a trail's Insights files ([`DeliveryKind::Insights`]): the
//! Insights records its Insights selectors pick, under `CloudTrail-Insight/`, with its own
//! cursor (`trail/<arn>/insights`) and plan (`insights-state.json`), so both kinds are
//! exactly once in the same way. Insights files skip steps 3 and 5: they are not in the
//! manifest, so digests do not cover them, and no notification is sent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentrail_store::{LogConsumer, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::consumer::{
    Backoff, Offer, blocking, pause_unless_shutdown, read_filtered, save_cursor,
};
pub use crate::consumer::{CrashPoint, WorkerStop};
use crate::destinations::Destinations;
use crate::error::TrailsError;
use crate::log_file::{self, FileFolder, FileIdentity};
use crate::manifest::{DeliveredFile, Manifest};
use crate::model::{SnsTopic, Trail};
use crate::notify::{Notifier, deterministic_message_id};
use crate::selectors::{EventView, TrailFilter};
use crate::state_file;
use crate::status::{StatusHandle, TrailStatus, status_snapshot, update_status};

/// Bumped if `state.json` changes shape; an older server refuses a newer file.
const STATE_FORMAT: u32 = 1;
const STATE_FILE_NAME: &str = "state.json";
/// The Insights worker's plan, beside the log-file worker's (same shape).
pub const INSIGHTS_STATE_FILE_NAME: &str = "insights-state.json";

/// What a delivery worker delivers. Both kinds run every step the same way; they differ
/// in what they read, where files go, and what follows a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    /// Log files under `CloudTrail/`: cursor `trail/<arn>`, plan `state.json`; recorded
    /// in the manifest (digests cover them), notified, reported as `LatestDelivery…`.
    LogFiles,
    /// Insights files under `CloudTrail-Insight/`: cursor `trail/<arn>/insights`, plan
    /// `insights-state.json`; no manifest, no notification, failures reported as
    /// `latest_insights_delivery_error`.
    Insights,
}

impl DeliveryKind {
    /// The store cursor of this kind's worker of `trail`.
    pub fn consumer(self, trail: &Trail) -> String {
        match self {
            DeliveryKind::LogFiles => trail.delivery_consumer(),
            DeliveryKind::Insights => trail.insights_consumer(),
        }
    }

    /// The worker's plan file in the trail's state directory.
    pub fn state_file_name(self) -> &'static str {
        match self {
            DeliveryKind::LogFiles => STATE_FILE_NAME,
            DeliveryKind::Insights => INSIGHTS_STATE_FILE_NAME,
        }
    }

    fn folder(self) -> FileFolder {
        match self {
            DeliveryKind::LogFiles => FileFolder::Logs,
            DeliveryKind::Insights => FileFolder::Insights,
        }
    }

    fn filter(self, trail: &Trail, default_account_id: &str) -> TrailFilter {
        match self {
            DeliveryKind::LogFiles => TrailFilter::new(trail, default_account_id),
            DeliveryKind::Insights => TrailFilter::for_insights(trail),
        }
    }

    /// For log messages.
    fn files_name(self) -> &'static str {
        match self {
            DeliveryKind::LogFiles => "log files",
            DeliveryKind::Insights => "Insights files",
        }
    }
}

/// Tunables of delivery, each with an explicit bound.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// A batch is cut at most this long after its first log entry was seen (default 60 s,
    /// at least 1 s).
    pub interval: Duration,
    /// The size cut: a batch is cut once it holds this many events…
    pub batch_events_max: usize,
    /// …or this many bytes of record JSON. Also the memory bound of a waiting batch.
    pub batch_bytes_max: usize,
    /// Log entries read per `read_log` call.
    pub read_chunk_events: usize,
    /// The first pause after a failed write; doubled after each failure…
    pub retry_backoff_initial: Duration,
    /// …up to this.
    pub retry_backoff_max: Duration,
    /// Attempts of one SNS notification before `LatestNotificationError` is set.
    pub notification_attempts_max: u32,
    /// Manifest day files are kept this long.
    pub manifest_retention: Duration,
    /// Makes the worker stop at a step, as if the process died there. Tests only.
    #[doc(hidden)]
    pub crash_for_test: Option<CrashPoint>,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            interval: Duration::from_secs(60),
            batch_events_max: 10_000,
            // CloudTrail's limit is 50 MB compressed; 16 MiB of JSON compresses far below.
            batch_bytes_max: 16 * 1024 * 1024,
            read_chunk_events: 1024,
            retry_backoff_initial: Duration::from_secs(1),
            retry_backoff_max: Duration::from_secs(60),
            notification_attempts_max: 4,
            manifest_retention: Duration::from_secs(7 * 24 * 3600),
            crash_for_test: None,
        }
    }
}

impl DeliveryOptions {
    /// The shortest allowed interval.
    pub const INTERVAL_MIN: Duration = Duration::from_secs(1);

    /// How often the worker looks for new log entries: a quarter of the interval, between
    /// 100 ms and 1 s, so a file appears at most about `interval` + a quarter after its
    /// first event.
    pub fn poll_interval(&self) -> Duration {
        (self.interval / 4).clamp(Duration::from_millis(100), Duration::from_secs(1))
    }
}

/// What `state.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryState {
    pub format: u32,
    /// The number of the last planned batch (batches are numbered from 1).
    pub last_batch_number: u64,
    /// The last planned batch; redone on start unless complete.
    #[serde(default)]
    pub batch: Option<PlannedBatch>,
    /// Delivery and notification status as of the last state write.
    #[serde(default)]
    pub status: TrailStatus,
}

/// One batch, fixed before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedBatch {
    pub batch_number: u64,
    pub after_seq: u64,
    pub through_seq: u64,
    pub planned_time_ms: i64,
    pub bucket: String,
    #[serde(default)]
    pub sns_topic: Option<SnsTopic>,
    pub files: Vec<PlannedFile>,
    pub complete: bool,
}

/// One file of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedFile {
    pub key: String,
    pub account_id: String,
    pub region: String,
    /// The sequence numbers of its records as inclusive runs `[first, last]`.
    pub seq_runs: Vec<[u64; 2]>,
}

impl PlannedFile {
    fn record_count(&self) -> u64 {
        self.seq_runs
            .iter()
            .map(|[first, last]| last - first + 1)
            .sum()
    }
}

/// Loads a trail's log-file delivery state (default when none yet). Blocking.
pub fn load_state(trail_dir: &Path) -> Result<DeliveryState, TrailsError> {
    load_kind_state(trail_dir, DeliveryKind::LogFiles)
}

/// Loads the delivery state of one kind of a trail's files. Blocking.
pub fn load_kind_state(trail_dir: &Path, kind: DeliveryKind) -> Result<DeliveryState, TrailsError> {
    state_file::load_versioned_state(&trail_dir.join(kind.state_file_name()), STATE_FORMAT)
}

impl state_file::VersionedState for DeliveryState {
    fn format(&self) -> u32 {
        self.format
    }

    fn with_format(format: u32) -> Self {
        DeliveryState {
            format,
            ..DeliveryState::default()
        }
    }
}

fn save_state(
    trail_dir: &Path,
    kind: DeliveryKind,
    state: &DeliveryState,
    sync: bool,
) -> Result<(), TrailsError> {
    let path = trail_dir.join(kind.state_file_name());
    std::fs::create_dir_all(trail_dir).map_err(|source| TrailsError::Write {
        path: trail_dir.to_owned(),
        source,
    })?;
    let bytes = serde_json::to_vec(state).map_err(|error| TrailsError::Corrupt {
        path: path.clone(),
        reason: error.to_string(),
    })?;
    opentrail_durable::replace(&path, &bytes, opentrail_durable::Access::Default, sync)
        .map_err(|source| TrailsError::Write { path, source })
}

/// What every delivery worker shares.
pub struct DeliveryContext {
    pub store: Store,
    pub destinations: Arc<Destinations>,
    pub notifier: Notifier,
    pub options: DeliveryOptions,
    pub default_account_id: String,
}

/// One record waiting for the next batch.
#[derive(Debug, Clone)]
struct PendingRecord {
    seq: u64,
    account_id: String,
    region: String,
    json: String,
}

/// The delivery worker of one trail. Drive it with [`DeliveryWorker::run`], or step by
/// step in tests with [`DeliveryWorker::recover`] and [`DeliveryWorker::poll`].
pub struct DeliveryWorker {
    kind: DeliveryKind,
    context: Arc<DeliveryContext>,
    trail_updates: watch::Receiver<Arc<Trail>>,
    trail: Arc<Trail>,
    filter: TrailFilter,
    trail_dir: PathBuf,
    state: DeliveryState,
    /// Log files only: what digests consume.
    manifest: Option<Manifest>,
    next_file_seq: u64,
    status: StatusHandle,
    /// Everything at or below this is delivered (or skipped) and durable.
    cursor: u64,
    /// Everything at or below this has been read into `pending` (or skipped).
    read_through: u64,
    pending: Vec<PendingRecord>,
    pending_bytes: usize,
    /// When the first entry after `cursor` was read: the batch is due `interval` later.
    window_started: Option<Instant>,
    shutdown: watch::Receiver<bool>,
}

impl DeliveryWorker {
    /// This worker's view of the log (`trail/<arn>`, or `trail/<arn>/insights`).
    fn log(&self) -> LogConsumer {
        LogConsumer::new(self.context.store.clone(), self.kind.consumer(&self.trail))
    }

    /// Opens the log-file worker of a trail whose state lives in `trail_dir`. Blocking
    /// (reads the state, the manifest's last line and the store cursor).
    pub fn open(
        context: Arc<DeliveryContext>,
        trail_updates: watch::Receiver<Arc<Trail>>,
        trail_dir: PathBuf,
        status: StatusHandle,
        shutdown: watch::Receiver<bool>,
    ) -> Result<DeliveryWorker, TrailsError> {
        Self::open_kind(
            DeliveryKind::LogFiles,
            context,
            trail_updates,
            trail_dir,
            status,
            shutdown,
        )
    }

    /// Opens the worker of one kind of a trail's files. Blocking.
    pub fn open_kind(
        kind: DeliveryKind,
        context: Arc<DeliveryContext>,
        trail_updates: watch::Receiver<Arc<Trail>>,
        trail_dir: PathBuf,
        status: StatusHandle,
        shutdown: watch::Receiver<bool>,
    ) -> Result<DeliveryWorker, TrailsError> {
        let trail = Arc::clone(&trail_updates.borrow());
        let filter = kind.filter(&trail, &context.default_account_id);
        let state = load_kind_state(&trail_dir, kind)?;
        let (manifest, next_file_seq) = match kind {
            DeliveryKind::LogFiles => {
                let manifest = Manifest::new(&trail_dir);
                let next_file_seq = manifest.last()?.map_or(1, |file| file.file_seq + 1);
                (Some(manifest), next_file_seq)
            }
            DeliveryKind::Insights => (None, 1),
        };
        let stored_cursor = context.store.load_cursor(&kind.consumer(&trail))?;
        let mut cursor = stored_cursor;
        if let Some(batch) = &state.batch {
            if batch.complete {
                cursor = cursor.max(batch.through_seq);
            } else {
                // The plan starts where the durable cursor was when it was made.
                cursor = cursor.max(batch.after_seq);
            }
        }
        if let Some(first) = filter.logging().first_deliverable_after() {
            cursor = cursor.max(first);
        }
        if kind == DeliveryKind::LogFiles {
            update_status(&status, |current| current.restore_delivery(&state.status));
        }
        Ok(DeliveryWorker {
            kind,
            context,
            trail_updates,
            trail,
            filter,
            trail_dir,
            state,
            manifest,
            next_file_seq,
            status,
            cursor,
            read_through: cursor,
            pending: Vec::new(),
            pending_bytes: 0,
            window_started: None,
            shutdown,
        })
    }

    /// Everything at or below this is durably delivered or skipped.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    pub fn state(&self) -> &DeliveryState {
        &self.state
    }

    /// Runs until shutdown: recovery first, then a poll every
    /// [`DeliveryOptions::poll_interval`], and a last delivery attempt at shutdown.
    pub async fn run(mut self) {
        let arn = self.trail.arn();
        let files = self.kind.files_name();
        tracing::debug!(
            trail = arn.as_str(),
            cursor = self.cursor,
            files,
            "trail delivery started"
        );
        loop {
            match self.recover().await {
                Ok(()) => break,
                Err(WorkerStop::Shutdown | WorkerStop::SimulatedCrash(_)) => return,
                Err(WorkerStop::Failed(error)) => {
                    tracing::error!(trail = arn.as_str(), files, %error, "redoing the planned batch failed; retrying");
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
        let poll_interval = self.context.options.poll_interval();
        loop {
            tokio::select! {
                _ = self.shutdown.changed() => {}
                _ = self.trail_updates.changed() => {}
                () = tokio::time::sleep(poll_interval) => {}
            }
            if *self.shutdown.borrow() {
                self.flush_at_shutdown().await;
                return;
            }
            match self.poll(false).await {
                Ok(_) => {}
                Err(WorkerStop::Shutdown | WorkerStop::SimulatedCrash(_)) => return,
                Err(WorkerStop::Failed(error)) => {
                    tracing::error!(trail = arn.as_str(), files, %error, "delivery failed; retrying");
                    // Start the batch again from the durable cursor.
                    self.forget_pending();
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

    /// One last delivery of what is waiting, without retries: if the destination fails,
    /// the plan (or the unread log) is picked up at the next start.
    async fn flush_at_shutdown(&mut self) {
        if self.pending.is_empty() && self.read_through <= self.cursor {
            return;
        }
        if let Err(error) = self.deliver_pending().await {
            tracing::info!(
                trail = self.trail.arn().as_str(),
                files = self.kind.files_name(),
                %error,
                "batch left for the next start"
            );
        }
    }

    fn forget_pending(&mut self) {
        self.pending.clear();
        self.pending_bytes = 0;
        self.read_through = self.cursor;
        self.window_started = None;
    }

    /// Picks up trail changes (selectors, logging periods, settings). Compares versions
    /// rather than asking the channel, because `run`'s `changed()` already marks a new
    /// version as seen.
    fn refresh_trail(&mut self) {
        let latest = Arc::clone(&self.trail_updates.borrow_and_update());
        if !Arc::ptr_eq(&latest, &self.trail) {
            let trail = latest;
            self.filter = self.kind.filter(&trail, &self.context.default_account_id);
            self.trail = trail;
            if let Some(first) = self.filter.logging().first_deliverable_after()
                && first > self.cursor
                && self.pending.is_empty()
            {
                // Nothing before the first logging period can be delivered.
                self.cursor = first;
                self.read_through = self.read_through.max(first);
            }
        }
    }

    /// Redoes the last planned batch if it is not complete.
    pub async fn recover(&mut self) -> Result<(), WorkerStop> {
        let Some(batch) = self.state.batch.clone() else {
            return Ok(());
        };
        if batch.complete {
            return Ok(());
        }
        tracing::info!(
            trail = self.trail.arn().as_str(),
            batch = batch.batch_number,
            through_seq = batch.through_seq,
            "redoing a planned batch after a restart"
        );
        let contents = self.read_planned_records(&batch).await?;
        self.execute(batch, contents).await
    }

    /// Reads the planned records of each file back from the log.
    async fn read_planned_records(
        &self,
        batch: &PlannedBatch,
    ) -> Result<Vec<Vec<String>>, WorkerStop> {
        let store = self.context.store.clone();
        let files = batch.files.clone();
        let chunk = self.context.options.read_chunk_events.max(1);
        let read = blocking(move || -> Result<Vec<Vec<String>>, TrailsError> {
            let mut contents = Vec::with_capacity(files.len());
            for file in &files {
                let mut records = Vec::new();
                for [first, last] in &file.seq_runs {
                    let mut after = first.saturating_sub(1);
                    while after < *last {
                        let wanted = usize::try_from(last - after)
                            .unwrap_or(usize::MAX)
                            .min(chunk);
                        let entries = store.read_log(after, wanted)?;
                        let Some(last_entry) = entries.last() else {
                            break;
                        };
                        after = last_entry.seq;
                        records.extend(
                            entries
                                .into_iter()
                                .filter(|entry| entry.seq <= *last)
                                .map(|entry| entry.json),
                        );
                    }
                }
                let expected = file.record_count();
                if records.len() as u64 != expected {
                    return Err(TrailsError::Corrupt {
                        path: PathBuf::from(&file.key),
                        reason: format!(
                            "the plan lists {expected} records but the log holds {}",
                            records.len()
                        ),
                    });
                }
                contents.push(records);
            }
            Ok(contents)
        })
        .await?;
        Ok(read)
    }

    /// Reads new log entries and delivers a batch when it is due. With `force`, a batch
    /// is due whenever anything was read (tests use it to skip the interval). Returns
    /// whether a batch was delivered.
    pub async fn poll(&mut self, force: bool) -> Result<bool, WorkerStop> {
        self.refresh_trail();
        if self
            .state
            .batch
            .as_ref()
            .is_some_and(|batch| !batch.complete)
        {
            self.recover().await?;
            self.forget_pending();
        }
        if self.filter.logging().periods.is_empty() {
            // Never logged: nothing can be delivered until StartLogging.
            return Ok(false);
        }
        self.read_more().await?;
        let options = &self.context.options;
        let size_cut = self.pending.len() >= options.batch_events_max
            || self.pending_bytes >= options.batch_bytes_max;
        let interval_passed = self
            .window_started
            .is_some_and(|started| started.elapsed() >= options.interval);
        let has_progress = self.read_through > self.cursor;
        tracing::trace!(
            cursor = self.cursor,
            read_through = self.read_through,
            pending = self.pending.len(),
            size_cut,
            interval_passed,
            "delivery poll"
        );
        if has_progress && (size_cut || interval_passed || force) {
            self.deliver_pending().await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Reads entries after `read_through` until the log is exhausted or the size cut is
    /// reached, keeping those the filter admits.
    async fn read_more(&mut self) -> Result<(), WorkerStop> {
        let options = &self.context.options;
        let room_events = options.batch_events_max.saturating_sub(self.pending.len());
        let room_bytes = options.batch_bytes_max.saturating_sub(self.pending_bytes);
        if room_events == 0 || room_bytes == 0 {
            return Ok(());
        }
        let log = self.log();
        let filter = self.filter.clone();
        let after = self.read_through;
        let chunk = options.read_chunk_events.max(1);
        let arn = self.trail.arn();
        let read = blocking(move || {
            read_and_filter(&log, &filter, after, chunk, room_events, room_bytes, &arn)
        })
        .await?;
        if read.through_seq > self.read_through {
            if self.window_started.is_none() {
                self.window_started = Some(Instant::now());
            }
            self.read_through = read.through_seq;
        }
        for record in read.records {
            self.pending_bytes += record.json.len();
            self.pending.push(record);
        }
        Ok(())
    }

    /// Plans and executes a batch of everything read so far (or, with nothing admitted,
    /// only moves the cursor).
    async fn deliver_pending(&mut self) -> Result<(), WorkerStop> {
        let through_seq = self.read_through;
        if self.pending.is_empty() {
            save_cursor(&self.log(), through_seq).await?;
            self.cursor = through_seq;
            self.window_started = None;
            return Ok(());
        }
        let planned_time_ms = jiff::Timestamp::now().as_millisecond();
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        // One file per stream (account, region), records in log order.
        let mut streams: BTreeMap<(String, String), Vec<PendingRecord>> = BTreeMap::new();
        for record in pending {
            streams
                .entry((record.account_id.clone(), record.region.clone()))
                .or_default()
                .push(record);
        }
        let trail_arn = self.trail.arn();
        let batch_number = self.state.last_batch_number + 1;
        let mut files = Vec::with_capacity(streams.len());
        let mut contents = Vec::with_capacity(streams.len());
        for ((account_id, region), records) in streams {
            let folder = self.kind.folder();
            let unique = log_file::unique_string_in(
                folder,
                &FileIdentity {
                    trail_id: &self.trail.id,
                    trail_arn: &trail_arn,
                    after_seq: self.cursor,
                    through_seq,
                    account_id: &account_id,
                    region: &region,
                },
            );
            let key = log_file::file_key(
                folder,
                self.trail.settings.s3_key_prefix.as_deref(),
                &account_id,
                &region,
                planned_time_ms,
                &unique,
            );
            files.push(PlannedFile {
                key,
                account_id,
                region,
                seq_runs: seq_runs(records.iter().map(|record| record.seq)),
            });
            contents.push(records.into_iter().map(|record| record.json).collect());
        }
        let batch = PlannedBatch {
            batch_number,
            after_seq: self.cursor,
            through_seq,
            planned_time_ms,
            bucket: self.trail.settings.s3_bucket_name.clone(),
            // CloudTrail notifies log file deliveries only.
            sns_topic: match self.kind {
                DeliveryKind::LogFiles => self.trail.settings.sns_topic.clone(),
                DeliveryKind::Insights => None,
            },
            files,
            complete: false,
        };
        self.state.last_batch_number = batch_number;
        self.state.batch = Some(batch.clone());
        self.state.status = self.status_to_persist();
        self.persist_state(true).await?;
        self.crash_if(CrashPoint::AfterPlan)?;
        self.window_started = None;
        self.execute(batch, contents).await
    }

    fn crash_if(&self, point: CrashPoint) -> Result<(), WorkerStop> {
        if self.context.options.crash_for_test == Some(point) {
            return Err(WorkerStop::SimulatedCrash(point));
        }
        Ok(())
    }

    async fn persist_state(&self, sync: bool) -> Result<(), WorkerStop> {
        let trail_dir = self.trail_dir.clone();
        let state = self.state.clone();
        let kind = self.kind;
        blocking(move || save_state(&trail_dir, kind, &state, sync)).await?;
        Ok(())
    }

    /// The status the plan file keeps: the log-file worker's is what GetTrailStatus shows
    /// after a restart; the Insights worker keeps none.
    fn status_to_persist(&self) -> TrailStatus {
        match self.kind {
            DeliveryKind::LogFiles => status_snapshot(&self.status),
            DeliveryKind::Insights => TrailStatus::default(),
        }
    }

    /// Steps 2–5 of a planned batch: write, record, advance, notify.
    async fn execute(
        &mut self,
        batch: PlannedBatch,
        contents: Vec<Vec<String>>,
    ) -> Result<(), WorkerStop> {
        let mut delivered = Vec::with_capacity(batch.files.len());
        for (file, records) in batch.files.iter().zip(contents) {
            let record_count = records.len();
            let (oldest, newest) = event_time_range(&records);
            let path = PathBuf::from(&file.key);
            let built = blocking(move || {
                log_file::build_log_file(&records)
                    .map_err(|source| TrailsError::Write { path, source })
            })
            .await?;
            self.put_with_retries(&batch.bucket, &file.key, built.gzip)
                .await?;
            delivered.push(DeliveredFile {
                file_seq: 0,
                batch_number: batch.batch_number,
                bucket: batch.bucket.clone(),
                key: file.key.clone(),
                sha256_hex: built.sha256_hex,
                records: record_count,
                oldest_event_time_ms: oldest,
                newest_event_time_ms: newest,
                after_seq: batch.after_seq,
                through_seq: batch.through_seq,
                planned_time_ms: batch.planned_time_ms,
                delivered_time_ms: 0,
            });
        }
        self.crash_if(CrashPoint::AfterObjects)?;

        self.record_in_manifest(batch.batch_number, delivered)
            .await?;
        self.crash_if(CrashPoint::AfterManifest)?;

        let through_seq = batch.through_seq;
        save_cursor(&self.log(), through_seq).await?;
        self.cursor = self.cursor.max(through_seq);
        self.read_through = self.read_through.max(self.cursor);
        self.crash_if(CrashPoint::AfterCursor)?;

        let delivered_time_ms = jiff::Timestamp::now().as_millisecond();
        let file_count = batch.files.len() as u64;
        match self.kind {
            DeliveryKind::LogFiles => {
                update_status(&self.status, |status| {
                    status.latest_delivery_time_ms = Some(delivered_time_ms);
                    status.latest_delivery_attempt_time_ms = Some(delivered_time_ms);
                    status.latest_delivery_error = None;
                });
                metrics::counter!("opentrail_trail_files_delivered_total").increment(file_count);
            }
            DeliveryKind::Insights => {
                update_status(&self.status, |status| {
                    status.latest_insights_delivery_time_ms = Some(delivered_time_ms);
                    status.latest_insights_delivery_error = None;
                });
                metrics::counter!("opentrail_trail_insights_files_delivered_total")
                    .increment(file_count);
            }
        }
        tracing::debug!(
            trail = self.trail.arn().as_str(),
            batch = batch.batch_number,
            files = file_count,
            through_seq = batch.through_seq,
            "delivered {}",
            self.kind.files_name()
        );

        if let Some(topic) = &batch.sns_topic {
            self.notify(&batch, topic).await;
        }
        if let Some(planned) = self.state.batch.as_mut()
            && planned.batch_number == batch.batch_number
        {
            planned.complete = true;
        }
        self.state.status = self.status_to_persist();
        // A lost completion mark only repeats the idempotent steps after a crash.
        self.persist_state(false).await?;
        if let Some(manifest) = &self.manifest {
            self.prune_manifest(manifest.clone()).await;
        }
        Ok(())
    }

    /// Writes one object, retrying with exponential backoff until it succeeds or
    /// shutdown begins. Opening the bucket is part of the attempt, so a destination that
    /// is not even reachable yet is retried the same way.
    async fn put_with_retries(
        &mut self,
        bucket_name: &str,
        key: &str,
        bytes: Vec<u8>,
    ) -> Result<(), WorkerStop> {
        let options = &self.context.options;
        let mut backoff = Backoff::new(options.retry_backoff_initial, options.retry_backoff_max);
        loop {
            let attempt_time_ms = jiff::Timestamp::now().as_millisecond();
            let attempt = match self.context.destinations.bucket(bucket_name) {
                Ok(bucket) => bucket.put(key, bytes.clone()).await,
                Err(error) => Err(error),
            };
            let Err(error) = attempt else {
                return Ok(());
            };
            let message = error.to_string();
            tracing::warn!(
                trail = self.trail.arn().as_str(),
                key,
                error = message.as_str(),
                retry_in_ms = backoff.next_pause().as_millis() as u64,
                "delivery of {} failed",
                self.kind.files_name()
            );
            metrics::counter!("opentrail_trail_delivery_failures_total").increment(1);
            let kind = self.kind;
            update_status(&self.status, |status| match kind {
                DeliveryKind::LogFiles => {
                    status.latest_delivery_error = Some(message);
                    status.latest_delivery_attempt_time_ms = Some(attempt_time_ms);
                }
                DeliveryKind::Insights => status.latest_insights_delivery_error = Some(message),
            });
            backoff.pause(&mut self.shutdown).await?;
        }
    }

    /// Appends the batch's files the manifest does not hold yet (a redone batch may have
    /// recorded them before the crash). Insights files have no manifest.
    async fn record_in_manifest(
        &mut self,
        batch_number: u64,
        delivered: Vec<DeliveredFile>,
    ) -> Result<(), WorkerStop> {
        let Some(manifest) = self.manifest.clone() else {
            return Ok(());
        };
        let next_file_seq = self.next_file_seq;
        let appended = blocking(move || -> Result<u64, TrailsError> {
            let already = manifest.recorded_for_batch(batch_number)?;
            let now_ms = jiff::Timestamp::now().as_millisecond();
            let mut file_seq = next_file_seq;
            let missing: Vec<DeliveredFile> = delivered
                .into_iter()
                .filter(|file| !already.iter().any(|recorded| recorded.key == file.key))
                .map(|mut file| {
                    file.file_seq = file_seq;
                    file.delivered_time_ms = now_ms;
                    file_seq += 1;
                    file
                })
                .collect();
            manifest.append(&missing)?;
            Ok(file_seq)
        })
        .await?;
        self.next_file_seq = appended;
        Ok(())
    }

    async fn notify(&mut self, batch: &PlannedBatch, topic: &SnsTopic) {
        let keys: Vec<String> = batch.files.iter().map(|file| file.key.clone()).collect();
        let message_id = deterministic_message_id(&[
            "opentrail notification v1",
            &self.trail.id,
            &batch.batch_number.to_string(),
        ]);
        let attempt_time_ms = jiff::Timestamp::now().as_millisecond();
        let options = &self.context.options;
        let result = self
            .context
            .notifier
            .notify(
                topic,
                &message_id,
                &batch.bucket,
                &keys,
                options.notification_attempts_max,
                options.retry_backoff_initial.min(Duration::from_secs(1)),
            )
            .await;
        let done_ms = jiff::Timestamp::now().as_millisecond();
        update_status(&self.status, |status| {
            status.latest_notification_attempt_time_ms = Some(attempt_time_ms);
            match result {
                Ok(()) => {
                    status.latest_notification_time_ms = Some(done_ms);
                    status.latest_notification_error = None;
                }
                Err(error) => status.latest_notification_error = Some(error),
            }
        });
    }

    /// Deletes manifest day files past the retention. Failures are logged: they only
    /// cost disk.
    async fn prune_manifest(&self, manifest: Manifest) {
        let retention_ms =
            i64::try_from(self.context.options.manifest_retention.as_millis()).unwrap_or(i64::MAX);
        let keep_from_ms = jiff::Timestamp::now()
            .as_millisecond()
            .saturating_sub(retention_ms);
        let trail_dir = self.trail_dir.clone();
        // Files the digest writer has not put in a digest yet must stay.
        let prune = move || manifest.prune(keep_from_ms, crate::digest::manifest_hold(&trail_dir));
        match tokio::task::spawn_blocking(prune).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not prune the delivery manifest"),
            Err(error) => tracing::warn!(%error, "manifest pruning task failed"),
        }
    }
}

/// What one read pass found.
struct ReadOutcome {
    records: Vec<PendingRecord>,
    through_seq: u64,
}

/// Reads log entries after `after_seq`, chunk by chunk, until the log is exhausted or
/// the room (events, bytes) is used up; at least one admitted record always fits, so an
/// oversized record cannot stall delivery. Blocking.
fn read_and_filter(
    log: &LogConsumer,
    filter: &TrailFilter,
    after_seq: u64,
    chunk_events: usize,
    room_events: usize,
    room_bytes: usize,
    trail_arn: &str,
) -> Result<ReadOutcome, TrailsError> {
    let mut records = Vec::new();
    let mut bytes = 0usize;
    let through_seq = read_filtered(log, filter, after_seq, chunk_events, trail_arn, |entry| {
        let fits = records.len() < room_events
            && (records.is_empty() || bytes + entry.json.len() <= room_bytes);
        if !fits {
            return Offer::Full;
        }
        bytes += entry.json.len();
        records.push(PendingRecord {
            seq: entry.seq,
            account_id: entry.account_id,
            region: entry.region,
            json: entry.json,
        });
        Offer::Taken
    })?;
    Ok(ReadOutcome {
        records,
        through_seq,
    })
}

/// Inclusive runs of consecutive numbers from an ascending sequence.
fn seq_runs(seqs: impl IntoIterator<Item = u64>) -> Vec<[u64; 2]> {
    let mut runs: Vec<[u64; 2]> = Vec::new();
    for seq in seqs {
        match runs.last_mut() {
            Some(run) if run[1] + 1 == seq => run[1] = seq,
            _ => runs.push([seq, seq]),
        }
    }
    runs
}

/// Oldest and newest `eventTime` among the records that have a parsable one.
fn event_time_range(records: &[String]) -> (Option<i64>, Option<i64>) {
    let mut oldest: Option<i64> = None;
    let mut newest: Option<i64> = None;
    for record in records {
        let Some(time_ms) = EventView::parse(record)
            .ok()
            .and_then(|event| event.event_time_ms())
        else {
            continue;
        };
        oldest = Some(oldest.map_or(time_ms, |current| current.min(time_ms)));
        newest = Some(newest.map_or(time_ms, |current| current.max(time_ms)));
    }
    (oldest, newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_compress_consecutive_sequence_numbers() {
        assert_eq!(seq_runs([1, 2, 3, 7, 9, 10]), vec![[1, 3], [7, 7], [9, 10]]);
        assert!(seq_runs([]).is_empty());
    }
}
