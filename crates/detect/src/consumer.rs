//! Detections as a consumer of the log: every acknowledged event is matched against the
//! loaded rules, and each match becomes an [`Alert`] in the [`AlertLog`].
//!
//! Order of durability: the alerts of a scan are appended (fsynced) first, the cursor
//! (`detections`) is saved after. A crash between the two leaves alerts the cursor does
//! not cover; the next scan starts after the highest seq the alert log names, not at the
//! cursor, so those events are not matched twice. Every event at or below that seq was
//! matched in the same scan, because a scan handles events in seq order and appends its
//! alerts once, at its end. So a restart neither misses nor repeats an alert.
//!
//! Where the ingest path screened a run of seqs with the same rules (`screening.rs`),
//! the scan reads only the records the prefilter admitted there; everything else is read
//! and matched whole.
//!
//! A panic while matching one event (a bug in a rule's evaluation, met on an odd record)
//! is caught: that event fires no rule, and the fault is logged, counted and listed by
//! the server's `/ready` ([`DetectionFaults`]). Retrying the event would stop detections
//! for every event after it, which is worse than a gap of one event that is reported.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use opentrail_store::{LogConsumer, LogEntry, Store};
use serde::Deserialize;

use crate::alerts::{Alert, AlertLog};
use crate::error::DetectError;
use crate::rule_set::RuleSet;
use crate::screening::{Screening, Stretch};

/// The detection consumer's cursor name in the store.
pub const DETECTIONS_CONSUMER: &str = "detections";

/// The most events one scan matches: bounds the memory of a scan's alerts and how long
/// one scan holds a set of rules.
const SCAN_EVENTS_MAX: u64 = 64_000;

/// The cursor is saved at most this often. A consumer that keeps up scans every group
/// commit, and a save is a metadata rewrite with two fsyncs beside the journal's. Saving
/// less often repeats nothing: a restart starts after the alert log's newest event at
/// least, and the events after it that were already matched fired no rule.
const CURSOR_SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// The rules in force, replaced whole when the rules change (the directory's files, or
/// a change through the API).
pub type SharedRules = Arc<RwLock<Arc<RuleSet>>>;

/// Matches the log against the rules, one bounded scan at a time.
pub struct DetectionConsumer {
    log: LogConsumer,
    alerts: Arc<AlertLog>,
    /// The rules in force, and what the ingest paths screened with them.
    screening: Arc<Screening>,
    /// Threads a backlog is read and matched on: the machine's cores.
    workers: usize,
    progress: Mutex<Progress>,
    faults: Arc<DetectionFaults>,
}

/// Panics caught in the detection consumer: how many, and the last one.
#[derive(Debug, Default)]
pub struct DetectionFaults {
    count: AtomicU64,
    /// When and what, for `/ready`.
    last: Mutex<Option<String>>,
}

impl DetectionFaults {
    /// Logs a caught panic, counts it (`opentrail_detection_faults_total`) and keeps it
    /// as the last one.
    pub fn note(&self, what: String) {
        tracing::error!(fault = %what, "a detection fault was caught; detections go on");
        metrics::counter!("opentrail_detection_faults_total").increment(1);
        self.count.fetch_add(1, Ordering::Relaxed);
        let at = jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_default();
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(format!("{at}: {what}"));
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The last fault, with its time.
    pub fn last(&self) -> Option<String> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What a panic says, when it says it with text.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Where the consumer is, ahead of its saved cursor between saves.
#[derive(Default)]
struct Progress {
    /// Every event up to this seq was matched.
    matched_through: u64,
    /// When the cursor was last saved; `None` before the first save.
    saved_at: Option<Instant>,
}

/// What one [`DetectionConsumer::run_once`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// The seq through which every event is matched.
    pub through_seq: u64,
    pub events: u64,
    pub alerts: u64,
}

impl DetectionConsumer {
    /// Registers the consumer's cursor with the store, so retention keeps every event it
    /// has not matched yet.
    pub fn open(
        store: Store,
        alerts: Arc<AlertLog>,
        screening: Arc<Screening>,
    ) -> Result<DetectionConsumer, DetectError> {
        Self::open_reporting(store, alerts, screening, Arc::default())
    }

    /// [`DetectionConsumer::open`], noting caught panics in `faults`.
    pub(crate) fn open_reporting(
        store: Store,
        alerts: Arc<AlertLog>,
        screening: Arc<Screening>,
        faults: Arc<DetectionFaults>,
    ) -> Result<DetectionConsumer, DetectError> {
        let log = LogConsumer::new(store, DETECTIONS_CONSUMER);
        let cursor = log.load_cursor()?;
        log.save_cursor(cursor.max(alerts.last_seq()))?;
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(DetectionConsumer {
            log,
            alerts,
            screening,
            workers,
            progress: Mutex::new(Progress::default()),
            faults,
        })
    }

    /// Matches the events after the cursor (at most [`SCAN_EVENTS_MAX`]), appends their
    /// alerts, then saves the cursor. Blocking. A backlog is read and matched on every
    /// core ([`LogConsumer::map_range`]).
    pub fn run_once(&self) -> Result<ScanReport, DetectError> {
        let after = self
            .lock_progress()
            .matched_through
            .max(self.log.load_cursor()?)
            .max(self.alerts.last_seq());
        // The log's end is read before the rules, and the scan stops there: an event
        // appended after a rule change returned lies past it, so it is matched by the
        // rules as changed, never by the set read here.
        let end = self.log.store().last_seq();
        let rules = self.screening.rules();
        let detected_at = jiff::Timestamp::now().to_string();
        let through = end.min(after.saturating_add(SCAN_EVENTS_MAX));
        let mut found = Vec::new();
        let mut events = 0u64;
        let mut matched_through = after;
        let mut failure = None;
        for stretch in self.screening.plan(after, through, &rules) {
            let outcomes = match stretch {
                Stretch::Screened {
                    first,
                    last,
                    admitted,
                } => {
                    let outcomes = self.match_seqs(&admitted, &rules, &detected_at)?;
                    let failed = outcomes.iter().any(|(_, outcome)| outcome.is_err());
                    if !failed {
                        // Every other seq of the stretch was screened out: matched, with
                        // no alert.
                        found.extend(
                            outcomes
                                .into_iter()
                                .flat_map(|(_, alerts)| alerts.unwrap_or_default()),
                        );
                        events += last - first + 1;
                        matched_through = last;
                        continue;
                    }
                    outcomes
                }
                Stretch::Unscreened { after, through } => {
                    self.log.map_range(after, through, self.workers, |entry| {
                        alerts_of(&rules, &entry, &detected_at, &self.faults)
                    })?
                }
            };
            for (seq, outcome) in outcomes {
                match outcome {
                    Ok(alerts) => {
                        found.extend(alerts);
                        events += 1;
                        matched_through = seq;
                    }
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                }
            }
            if failure.is_some() {
                break;
            }
        }
        // What was matched before a failure is kept; the failing event is tried again.
        self.alerts.append(&found)?;
        if matched_through > after {
            self.save_cursor_now_and_then(matched_through)?;
            self.screening.forget_through(matched_through);
        }
        if let Some(error) = failure {
            return Err(error);
        }
        Ok(ScanReport {
            through_seq: matched_through,
            events,
            alerts: found.len() as u64,
        })
    }
}

impl DetectionConsumer {
    fn lock_progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that every event through `seq` was matched, and saves the cursor unless
    /// it was saved less than [`CURSOR_SAVE_INTERVAL`] ago.
    fn save_cursor_now_and_then(&self, seq: u64) -> Result<(), DetectError> {
        let mut progress = self.lock_progress();
        progress.matched_through = seq;
        if progress
            .saved_at
            .is_some_and(|at| at.elapsed() < CURSOR_SAVE_INTERVAL)
        {
            return Ok(());
        }
        self.log.save_cursor(seq)?;
        progress.saved_at = Some(Instant::now());
        Ok(())
    }

    /// Reads and matches single seqs (a screened stretch's admitted records), in order;
    /// a seq the log no longer holds (retention) has nothing to match.
    fn match_seqs(
        &self,
        seqs: &[u64],
        rules: &RuleSet,
        detected_at: &str,
    ) -> Result<Vec<(u64, EventAlerts)>, DetectError> {
        let mut outcomes = Vec::with_capacity(seqs.len());
        for &seq in seqs {
            for entry in self.log.store().read_log(seq - 1, 1)? {
                if entry.seq == seq {
                    outcomes.push((seq, alerts_of(rules, &entry, detected_at, &self.faults)));
                }
            }
        }
        Ok(outcomes)
    }
}

/// The alerts one event fired, or why it could not be matched.
type EventAlerts = Result<Vec<Alert>, DetectError>;

/// The alerts one log entry fires; none when matching it panicked (noted in `faults`).
fn alerts_of(
    rules: &RuleSet,
    entry: &LogEntry,
    detected_at: &str,
    faults: &DetectionFaults,
) -> EventAlerts {
    isolated(entry.seq, faults, || {
        matched_alerts(rules, entry, detected_at)
    })
}

/// `match_event`'s outcome, or no alerts when it panicked.
fn isolated(
    seq: u64,
    faults: &DetectionFaults,
    match_event: impl FnOnce() -> EventAlerts,
) -> EventAlerts {
    // The rules are only read while matching, so nothing is left half-changed.
    std::panic::catch_unwind(AssertUnwindSafe(match_event)).unwrap_or_else(|panic| {
        faults.note(format!(
            "matching the event at seq {seq} panicked ({}); it fired no rule",
            panic_message(panic.as_ref())
        ));
        Ok(Vec::new())
    })
}

fn matched_alerts(rules: &RuleSet, entry: &LogEntry, detected_at: &str) -> EventAlerts {
    let matches = rules.matches(&entry.json)?;
    if matches.is_empty() {
        return Ok(Vec::new());
    }
    let event: EventNames =
        serde_json::from_str(&entry.json).map_err(|error| DetectError::Corrupt {
            path: format!("seq {}", entry.seq).into(),
            detail: error.to_string(),
        })?;
    Ok(matches
        .into_iter()
        .map(|found| Alert {
            alert_id: format!("{}-{}", entry.seq, found.rule_id),
            rule_id: found.rule_id,
            rule_title: found.rule_title,
            level: found.level.map_or("", |level| level.as_str()).to_owned(),
            event_id: event.event_id.clone(),
            event_name: event.event_name.clone(),
            event_source: event.event_source.clone(),
            event_time: event.event_time.clone(),
            recipient_account_id: event.recipient_account_id.clone(),
            aws_region: event.aws_region.clone(),
            seq: entry.seq,
            detected_at: detected_at.to_owned(),
        })
        .collect())
}

/// The members of a record an alert names (a stored record has them all).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventNames {
    #[serde(rename = "eventID", default)]
    event_id: String,
    #[serde(default)]
    event_name: String,
    #[serde(default)]
    event_source: String,
    #[serde(default)]
    event_time: String,
    #[serde(default)]
    recipient_account_id: String,
    #[serde(default)]
    aws_region: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_while_matching_one_event_is_noted_and_the_next_event_is_matched() {
        let faults = DetectionFaults::default();
        let outcome = isolated(41, &faults, || {
            panic!("a rule met a record it did not expect")
        });
        assert!(matches!(outcome, Ok(alerts) if alerts.is_empty()));
        assert_eq!(faults.count(), 1);
        let last = faults.last().expect("the fault is kept");
        assert!(
            last.contains("seq 41") && last.contains("a rule met a record it did not expect"),
            "{last}"
        );

        let alert = Alert {
            alert_id: "42-rule".into(),
            rule_id: "rule".into(),
            rule_title: "Rule".into(),
            level: "high".into(),
            event_id: "e".into(),
            event_name: "DeleteTrail".into(),
            event_source: "cloudtrail.amazonaws.com".into(),
            event_time: "2026-12-07T00:00:00Z".into(),
            recipient_account_id: "123456789012".into(),
            aws_region: "us-east-1".into(),
            seq: 42,
            detected_at: "2026-12-07T00:00:01Z".into(),
        };
        let next = isolated(42, &faults, || Ok(vec![alert.clone()]));
        assert_eq!(next.expect("matched").len(), 1);
        let failed = isolated(43, &faults, || {
            let not_json = serde_json::from_str::<serde_json::Value>("{").expect_err("cut short");
            Err(DetectError::InvalidRecord(not_json))
        });
        assert!(
            failed.is_err(),
            "an error is not a panic: the event is tried again"
        );
        assert_eq!(faults.count(), 1);
    }
}
