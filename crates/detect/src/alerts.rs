//! The alert log: every rule match, durable, in the order of the events that fired it.
//!
//! One NDJSON file (`DATA_DIR/alerts/alerts.ndjson`), appended with one write and one
//! fsync per batch of matches. A crash can leave a torn last line (a batch never
//! acknowledged to the detection cursor); opening cuts it off, and the detection
//! consumer, resuming after the last complete alert's seq, matches those events again.
//! Alerts are few (one per rule match), so reads go through the whole file.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::DetectError;

/// The file under the alerts directory.
pub const ALERT_LOG_FILE_NAME: &str = "alerts.ndjson";

/// One rule match: which rule, which event, when it was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// `<seq>-<rule id>`: the same match always has the same id, so a receiver can
    /// drop one delivered twice.
    pub alert_id: String,
    pub rule_id: String,
    pub rule_title: String,
    pub level: String,
    pub event_id: String,
    pub event_name: String,
    pub event_source: String,
    pub event_time: String,
    pub recipient_account_id: String,
    pub aws_region: String,
    /// The event's position in the log.
    pub seq: u64,
    /// When the match was made (RFC 3339).
    pub detected_at: String,
}

/// What opening found, kept in step with every append.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    alerts: u64,
    last_seq: u64,
}

/// The append-only alert log.
#[derive(Debug)]
pub struct AlertLog {
    path: PathBuf,
    tally: Mutex<Tally>,
    /// The number of alerts, sent after each append: deliveries wake on it.
    appended: watch::Sender<u64>,
}

impl AlertLog {
    /// Opens (creating if needed) the log in `dir`, cutting a torn last line.
    pub fn open(dir: &Path) -> Result<AlertLog, DetectError> {
        let (path, bytes) = open_lines(dir, ALERT_LOG_FILE_NAME)?;
        let mut tally = Tally::default();
        for line in bytes.split(|&byte| byte == b'\n') {
            if line.is_empty() {
                continue;
            }
            let alert = parse_line(&path, line)?;
            tally.alerts += 1;
            tally.last_seq = tally.last_seq.max(alert.seq);
        }
        let (appended, _) = watch::channel(tally.alerts);
        Ok(AlertLog {
            path,
            tally: Mutex::new(tally),
            appended,
        })
    }

    /// Changes after each append (to the number of alerts), so a delivery that has sent
    /// everything waits for the next alert instead of polling.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Appends `alerts` durably (one write, one fsync); they are in the log once this
    /// returns.
    pub fn append(&self, alerts: &[Alert]) -> Result<(), DetectError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let mut text = Vec::new();
        for alert in alerts {
            serde_json::to_writer(&mut text, alert)
                .map_err(|error| DetectError::Encode(error.to_string()))?;
            text.push(b'\n');
        }
        let mut tally = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
        opentrail_durable::append_durably(&self.path, &text)
            .map_err(|source| DetectError::io(&self.path, source))?;
        tally.alerts += alerts.len() as u64;
        tally.last_seq = alerts
            .iter()
            .map(|alert| alert.seq)
            .fold(tally.last_seq, u64::max);
        self.appended.send_replace(tally.alerts);
        Ok(())
    }

    /// Alerts in the log.
    pub fn len(&self) -> u64 {
        self.tally_now().alerts
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The highest event seq any alert names: every event at or below it was matched.
    pub fn last_seq(&self) -> u64 {
        self.tally_now().last_seq
    }

    /// Up to `limit` alerts starting at position `first` (0 is the oldest), in log order.
    pub fn read_from(&self, first: u64, limit: usize) -> Result<Vec<Alert>, DetectError> {
        let mut alerts = Vec::new();
        let mut position = 0u64;
        self.for_each_line(|line| {
            if position >= first && alerts.len() < limit {
                alerts.push(parse_line(&self.path, line)?);
            }
            position += 1;
            Ok(alerts.len() < limit)
        })?;
        Ok(alerts)
    }

    /// The newest `limit` alerts that `visible` admits, newest first.
    pub fn newest(
        &self,
        limit: usize,
        visible: impl Fn(&Alert) -> bool,
    ) -> Result<Vec<Alert>, DetectError> {
        let mut kept = std::collections::VecDeque::with_capacity(limit.min(1024));
        self.for_each_line(|line| {
            let alert = parse_line(&self.path, line)?;
            if visible(&alert) {
                if kept.len() == limit {
                    kept.pop_front();
                }
                if limit > 0 {
                    kept.push_back(alert);
                }
            }
            Ok(true)
        })?;
        Ok(kept.into_iter().rev().collect())
    }

    fn tally_now(&self) -> Tally {
        *self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls `visit` with each complete line, in order, until it answers `false`.
    fn for_each_line(
        &self,
        mut visit: impl FnMut(&[u8]) -> Result<bool, DetectError>,
    ) -> Result<(), DetectError> {
        let bytes = opentrail_durable::read_optional(&self.path)
            .map_err(|source| DetectError::io(&self.path, source))?
            .unwrap_or_default();
        for line in bytes.split(|&byte| byte == b'\n') {
            if line.is_empty() {
                continue;
            }
            if !visit(line)? {
                break;
            }
        }
        Ok(())
    }
}

fn parse_line(path: &Path, line: &[u8]) -> Result<Alert, DetectError> {
    serde_json::from_slice(line).map_err(|error| DetectError::Corrupt {
        path: path.to_path_buf(),
        detail: error.to_string(),
    })
}

/// Truncates `path` to `len` bytes and syncs it.
/// Opens the NDJSON file `file_name` in `dir` (creating the directory if needed): its path
/// and its complete lines. A torn last line (a write a crash cut short, never
/// acknowledged) is cut from the file first.
pub(crate) fn open_lines(dir: &Path, file_name: &str) -> Result<(PathBuf, Vec<u8>), DetectError> {
    opentrail_durable::create_private_directory(dir)
        .map_err(|source| DetectError::io(dir, source))?;
    let path = dir.join(file_name);
    let mut bytes = opentrail_durable::read_optional(&path)
        .map_err(|source| DetectError::io(&path, source))?
        .unwrap_or_default();
    let complete = bytes
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |newline| newline + 1);
    if complete < bytes.len() {
        cut_to(&path, complete as u64)?;
        bytes.truncate(complete);
    }
    Ok((path, bytes))
}

fn cut_to(path: &Path, len: u64) -> Result<(), DetectError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|source| DetectError::io(path, source))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|source| DetectError::io(path, source))
}
