//! Detections as a consumer of the log: every acknowledged event is matched against the
//! loaded rules, and each match becomes an [`Alert`] in the [`AlertLog`].
//!
//! Order of durability: the alerts of a scan are appended (fsynced) first, the cursor
//! (`detections`) is saved after. A crash between the two leaves alerts the cursor does
//! not cover; the next scan starts after the highest seq the alert log names, not at the
//! cursor, so those events are not matched twice. Every event at or below that seq was
//! matched in the same scan, because a scan handles events in seq order and appends its
//! alerts once, at its end. So a restart neither misses nor repeats an alert.

use std::sync::{Arc, PoisonError, RwLock};

use opentrail_store::{LogConsumer, LogEntry, Store};
use serde::Deserialize;

use crate::alerts::{Alert, AlertLog};
use crate::error::DetectError;
use crate::rule_set::RuleSet;

/// The detection consumer's cursor name in the store.
pub const DETECTIONS_CONSUMER: &str = "detections";

/// The most events one scan matches: bounds the memory of a scan's alerts and how long
/// one scan holds a set of rules.
const SCAN_EVENTS_MAX: u64 = 64_000;

/// The rules in force, replaced whole when the rules change (the directory's files, or
/// a change through the API).
pub type SharedRules = Arc<RwLock<Arc<RuleSet>>>;

/// Matches the log against the rules, one bounded scan at a time.
pub struct DetectionConsumer {
    log: LogConsumer,
    alerts: Arc<AlertLog>,
    rules: SharedRules,
    /// Threads a backlog is read and matched on: the machine's cores.
    workers: usize,
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
        rules: SharedRules,
    ) -> Result<DetectionConsumer, DetectError> {
        let log = LogConsumer::new(store, DETECTIONS_CONSUMER);
        let cursor = log.load_cursor()?;
        log.save_cursor(cursor.max(alerts.last_seq()))?;
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(DetectionConsumer {
            log,
            alerts,
            rules,
            workers,
        })
    }

    /// Matches the events after the cursor (at most [`SCAN_EVENTS_MAX`]), appends their
    /// alerts, then saves the cursor. Blocking. A backlog is read and matched on every
    /// core ([`LogConsumer::map_range`]).
    pub fn run_once(&self) -> Result<ScanReport, DetectError> {
        let after = self.log.load_cursor()?.max(self.alerts.last_seq());
        // The log's end is read before the rules, and the scan stops there: an event
        // appended after a rule change returned lies past it, so it is matched by the
        // rules as changed, never by the set read here.
        let end = self.log.store().last_seq();
        let rules = Arc::clone(&self.rules.read().unwrap_or_else(PoisonError::into_inner));
        let detected_at = jiff::Timestamp::now().to_string();
        let through = end.min(after.saturating_add(SCAN_EVENTS_MAX));
        let outcomes = self.log.map_range(after, through, self.workers, |entry| {
            alerts_of(&rules, &entry, &detected_at)
        })?;
        let mut found = Vec::new();
        let mut events = 0u64;
        let mut matched_through = after;
        let mut failure = None;
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
        // What was matched before a failure is kept; the failing event is tried again.
        self.alerts.append(&found)?;
        if matched_through > after {
            self.log.save_cursor(matched_through)?;
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

/// The alerts one log entry fires.
fn alerts_of(
    rules: &RuleSet,
    entry: &LogEntry,
    detected_at: &str,
) -> Result<Vec<Alert>, DetectError> {
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
