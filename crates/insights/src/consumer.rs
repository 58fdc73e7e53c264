//! Insights as a consumer of the log (cursor `insights`): every event is counted, every
//! closed minute judged, and each period boundary appended to the store as a CloudTrail
//! Insights record.
//!
//! Order of durability, per scan: the metrics lines and the Insights records are appended
//! (fsynced; the records' `eventID`s are derived from the series and the period, so
//! appending one twice stores it once), then — at most every [`SNAPSHOT_INTERVAL`], and
//! whenever a period starts or ends — the snapshot (`state.json`: the analysis, the seq it
//! covers, the metrics files' lengths) in one atomic replace, and only then the cursor. A
//! crash anywhere replays from the snapshot: the metrics files are cut back to its
//! lengths, the same events are counted again, the same minutes judged again, and the
//! records found again are deduplicated by the store. So the baseline survives restarts
//! and no period is lost or reported twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use opentrail_event::{EventRecord, IngestContext};
use opentrail_store::{LogConsumer, ScanBounds, ScanStep, Store};
use serde::{Deserialize, Serialize};

use crate::analysis::{Analyzer, Settings, Transition};
use crate::attribution::attributions;
use crate::error::InsightsError;
use crate::metric_files::MetricFiles;
use crate::model::InsightsScope;
use crate::record::insight_record;

/// The Insights consumer's cursor name in the store.
pub const INSIGHTS_CONSUMER: &str = "insights";
/// The longest a snapshot may lag the analysis: what a restart replays at most.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(10);
/// How long the log must have brought nothing to analyse before minutes end by the clock:
/// short, but longer than the pauses inside an import of old logs.
const QUIET_MS: i64 = 2_000;
const STATE_FILE: &str = "state.json";
const SNAPSHOT_VERSION: u32 = 1;
const SCAN_BOUNDS: ScanBounds = ScanBounds {
    chunk_events: 2_000,
    chunks_max: Some(16),
};

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    through_seq: u64,
    metric_files: BTreeMap<String, u64>,
    analyzer: Analyzer,
}

/// What one [`InsightsConsumer::run_once`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InsightsScan {
    pub through_seq: u64,
    /// Events read, and among them the ones Insights analyses.
    pub events: u64,
    pub analysed: u64,
    /// Insights records appended (a Start or an End each).
    pub records: u64,
}

pub struct InsightsConsumer {
    log: LogConsumer,
    dir: PathBuf,
    metrics: MetricFiles,
    analyzer: Arc<Mutex<Analyzer>>,
    scope: Arc<dyn InsightsScope>,
    through_seq: u64,
    last_snapshot: Instant,
    unsaved: bool,
    last_analysed_wall_ms: i64,
}

impl InsightsConsumer {
    /// Opens from the snapshot in `dir` (when its settings match `settings`; otherwise the
    /// analysis starts over from the beginning of the retained log), and registers the
    /// cursor so retention keeps what is not analysed yet.
    pub fn open(
        store: Store,
        dir: &Path,
        settings: Settings,
        scope: Arc<dyn InsightsScope>,
        analyzer: Arc<Mutex<Analyzer>>,
    ) -> Result<InsightsConsumer, InsightsError> {
        opentrail_durable::create_directory_durably(dir)
            .map_err(|source| InsightsError::io(dir, source))?;
        let metrics = MetricFiles::open(&dir.join("metrics"))?;
        let snapshot = read_snapshot(&dir.join(STATE_FILE))?
            .filter(|snapshot| *snapshot.analyzer.settings() == settings);
        let (through_seq, restored) = match snapshot {
            Some(snapshot) => {
                metrics.restore(&snapshot.metric_files)?;
                (snapshot.through_seq, snapshot.analyzer)
            }
            None => {
                metrics.clear()?;
                (0, Analyzer::new(settings))
            }
        };
        *analyzer.lock().unwrap_or_else(PoisonError::into_inner) = restored;
        let log = LogConsumer::new(store, INSIGHTS_CONSUMER);
        log.save_cursor(through_seq)?;
        Ok(InsightsConsumer {
            log,
            dir: dir.to_path_buf(),
            metrics,
            analyzer,
            scope,
            through_seq,
            last_snapshot: Instant::now(),
            unsaved: false,
            last_analysed_wall_ms: 0,
        })
    }

    /// Counts the events after the cursor (at most one bounded scan), judges the minutes
    /// the watermark closed, stores the Insights records of the periods that started or
    /// ended, and saves progress. `now_ms` moves the watermark once the log is quiet.
    /// Blocking.
    pub fn run_once(&mut self, now_ms: i64) -> Result<InsightsScan, InsightsError> {
        let mut scan = InsightsScan::default();
        let closed = {
            let mut analyzer = self.analyzer.lock().unwrap_or_else(PoisonError::into_inner);
            let through = self.log.scan(self.through_seq, SCAN_BOUNDS, |entry| {
                scan.events += 1;
                if analyzer.observe_record(&entry.json) {
                    scan.analysed += 1;
                }
                ScanStep::Continue
            })?;
            scan.through_seq = through;
            if scan.analysed > 0 {
                self.last_analysed_wall_ms = now_ms;
            }
            let caught_up = through >= self.log.store().last_seq();
            let quiet = now_ms - self.last_analysed_wall_ms >= QUIET_MS;
            // Nothing is arriving: minutes end by the clock, not by the next event.
            let clock_ms = (caught_up && quiet).then_some(now_ms);
            let closed = analyzer.close(clock_ms);
            // Under the lock: a metrics read sees these minutes in memory or on disk.
            if !closed.hours.is_empty() {
                self.metrics.append(&closed.hours)?;
            }
            closed
        };
        let records = self.records_of(&closed.transitions)?;
        scan.records = records.len() as u64;
        if !records.is_empty() {
            self.log.store().append(records)?;
        }
        let advanced = scan.through_seq > self.through_seq;
        self.through_seq = scan.through_seq;
        self.unsaved |= advanced || !closed.transitions.is_empty() || !closed.hours.is_empty();
        if self.unsaved
            && (!closed.transitions.is_empty() || self.last_snapshot.elapsed() >= SNAPSHOT_INTERVAL)
        {
            self.save()?;
        }
        Ok(scan)
    }

    /// Writes the snapshot and then the cursor.
    pub fn save(&mut self) -> Result<(), InsightsError> {
        let snapshot = {
            let analyzer = self.analyzer.lock().unwrap_or_else(PoisonError::into_inner);
            // Counted back from the newest event, not the clock, so the metrics of
            // imported old logs stay as long as they are the newest there are.
            if let Some(newest_ms) = analyzer.newest_event_ms() {
                self.metrics.expire(newest_ms)?;
            }
            Snapshot {
                version: SNAPSHOT_VERSION,
                through_seq: self.through_seq,
                metric_files: self.metrics.lengths()?,
                analyzer: analyzer.clone(),
            }
        };
        let path = self.dir.join(STATE_FILE);
        let text = serde_json::to_vec(&snapshot).map_err(|error| InsightsError::Corrupt {
            path: path.clone(),
            detail: error.to_string(),
        })?;
        opentrail_durable::write_atomically(&path, &text)
            .map_err(|source| InsightsError::io(&path, source))?;
        self.log.save_cursor(self.through_seq)?;
        self.last_snapshot = Instant::now();
        self.unsaved = false;
        Ok(())
    }

    /// The records of the transitions whose account and region have the Insights type
    /// turned on; the others were judged but are not reported.
    fn records_of(&self, transitions: &[Transition]) -> Result<Vec<EventRecord>, InsightsError> {
        let mut records = Vec::new();
        for transition in transitions {
            let key = &transition.key;
            if !self
                .scope
                .is_enabled(&key.account_id, &key.region, key.insight_type, key.category)
            {
                continue;
            }
            let attributions = attributions(self.log.store(), transition)?;
            let json = insight_record(transition, &attributions);
            let context = IngestContext {
                account_id: key.account_id.clone(),
                region: key.region.clone(),
            };
            let record = EventRecord::from_json_object(&json, &context)
                .map_err(|invalid| InsightsError::Record(invalid.message))?;
            tracing::info!(
                state = transition.state.as_str(),
                insight_type = key.insight_type.as_str(),
                event_source = %key.event_source,
                event_name = %key.event_name,
                account = %key.account_id,
                region = %key.region,
                "Insights period boundary"
            );
            records.push(record);
        }
        Ok(records)
    }
}

/// Forgets the analysis (Insights turned off everywhere): the snapshot, the metrics, and
/// the cursor, so nothing holds back retention.
pub fn forget(store: &Store, dir: &Path) -> Result<(), InsightsError> {
    let state = dir.join(STATE_FILE);
    match std::fs::remove_file(&state) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(InsightsError::io(&state, source)),
    }
    let metrics_dir = dir.join("metrics");
    if metrics_dir.exists() {
        MetricFiles::open(&metrics_dir)?.clear()?;
    }
    store.delete_cursor(INSIGHTS_CONSUMER)?;
    Ok(())
}

fn read_snapshot(path: &Path) -> Result<Option<Snapshot>, InsightsError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(InsightsError::io(path, source)),
    };
    let snapshot: Snapshot =
        serde_json::from_slice(&text).map_err(|error| InsightsError::Corrupt {
            path: path.to_path_buf(),
            detail: error.to_string(),
        })?;
    if snapshot.version != SNAPSHOT_VERSION {
        return Ok(None);
    }
    Ok(Some(snapshot))
}
