//! Acknowledged alerts: who marked which alert as seen, and when.
//!
//! One NDJSON file beside the alert log (`DATA_DIR/alerts/acknowledgements.ndjson`), one
//! line per acknowledgement, appended with one write and one fsync before the caller is
//! told. The alert log itself is never rewritten, so an acknowledgement is a record of
//! its own, joined to alerts by `alertId`. A crash can leave a torn last line (an
//! acknowledgement never confirmed to anyone); opening cuts it off. Acknowledgements are
//! at most one per alert, so they are all held in memory.
//!
//! **Invariant:** an alert is acknowledged at most once: the first acknowledgement is
//! kept, and acknowledging it again changes nothing (no second line), so retries are safe.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::error::DetectError;

/// The file under the alerts directory.
pub const ACKNOWLEDGEMENTS_FILE_NAME: &str = "acknowledgements.ndjson";

/// One alert marked as seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Acknowledgement {
    pub alert_id: String,
    /// When it was acknowledged (RFC 3339, UTC).
    pub acknowledged_at: String,
    /// Who acknowledged it (the caller's access key id).
    pub acknowledged_by: String,
}

/// What [`Acknowledgements::acknowledge`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    /// The alert's acknowledgement: this call's, or the earlier one that stands.
    pub acknowledgement: Acknowledgement,
    /// False when the alert had been acknowledged already.
    pub newly: bool,
}

/// The durable set of acknowledged alerts.
#[derive(Debug)]
pub struct Acknowledgements {
    path: PathBuf,
    /// Alert id → its acknowledgement. Held while appending, so two callers acknowledging
    /// the same alert write one line.
    by_alert: Mutex<HashMap<String, Acknowledgement>>,
}

impl Acknowledgements {
    /// Opens (creating the directory if needed) the acknowledgements in `dir`, cutting a
    /// torn last line. A damaged complete line fails the open, naming the file.
    pub fn open(dir: &Path) -> Result<Acknowledgements, DetectError> {
        let (path, bytes) = crate::alerts::open_lines(dir, ACKNOWLEDGEMENTS_FILE_NAME)?;
        let mut by_alert = HashMap::new();
        for (index, line) in bytes.split(|&byte| byte == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let acknowledgement: Acknowledgement =
                serde_json::from_slice(line).map_err(|error| DetectError::Corrupt {
                    path: path.clone(),
                    detail: format!("line {}: {error}", index + 1),
                })?;
            by_alert
                .entry(acknowledgement.alert_id.clone())
                .or_insert(acknowledgement);
        }
        Ok(Acknowledgements {
            path,
            by_alert: Mutex::new(by_alert),
        })
    }

    /// Acknowledges `alert_id` on behalf of `acknowledged_by`, durably (one write, one
    /// fsync) unless it was acknowledged before, in which case the first acknowledgement
    /// stands and nothing is written. The caller checks that the alert exists and that
    /// it may act on it. Blocking.
    pub fn acknowledge(
        &self,
        alert_id: &str,
        acknowledged_by: &str,
    ) -> Result<Acknowledged, DetectError> {
        let mut by_alert = self.by_alert.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = match by_alert.entry(alert_id.to_owned()) {
            Entry::Occupied(earlier) => {
                return Ok(Acknowledged {
                    acknowledgement: earlier.get().clone(),
                    newly: false,
                });
            }
            Entry::Vacant(entry) => entry,
        };
        let acknowledgement = Acknowledgement {
            alert_id: alert_id.to_owned(),
            acknowledged_at: jiff::Timestamp::now()
                .round(jiff::Unit::Millisecond)
                .map_err(|error| DetectError::Encode(error.to_string()))?
                .to_string(),
            acknowledged_by: acknowledged_by.to_owned(),
        };
        let mut line = serde_json::to_vec(&acknowledgement)
            .map_err(|error| DetectError::Encode(error.to_string()))?;
        line.push(b'\n');
        opentrail_durable::append_durably(&self.path, &line)
            .map_err(|source| DetectError::io(&self.path, source))?;
        entry.insert(acknowledgement.clone());
        Ok(Acknowledged {
            acknowledgement,
            newly: true,
        })
    }

    /// The acknowledgement of one alert, if it has one.
    pub fn get(&self, alert_id: &str) -> Option<Acknowledgement> {
        self.lock().get(alert_id).cloned()
    }

    /// Every acknowledgement, by alert id: a copy, so a caller reading the alert log
    /// does not hold up acknowledgements meanwhile.
    pub fn snapshot(&self) -> HashMap<String, Acknowledgement> {
        self.lock().clone()
    }

    /// Alerts acknowledged.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Acknowledgement>> {
        self.by_alert.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Truncates `path` to `len` bytes and syncs it.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acknowledgement_survives_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = Acknowledgements::open(dir.path()).expect("open");
        assert!(first.is_empty());
        let made = first
            .acknowledge("7-rule-a", "OTAKADMIN")
            .expect("acknowledge");
        assert!(made.newly);
        assert_eq!(made.acknowledgement.acknowledged_by, "OTAKADMIN");
        drop(first);

        let reopened = Acknowledgements::open(dir.path()).expect("reopen");
        assert_eq!(reopened.get("7-rule-a"), Some(made.acknowledgement));
        assert_eq!(
            reopened.get("8-rule-a"),
            None,
            "only the alert acknowledged"
        );
        assert_eq!(reopened.len(), 1);
    }

    #[test]
    fn acknowledging_again_keeps_the_first_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let acknowledgements = Acknowledgements::open(dir.path()).expect("open");
        let first = acknowledgements
            .acknowledge("7-rule-a", "OTAKFIRST")
            .expect("first");
        let file = dir.path().join(ACKNOWLEDGEMENTS_FILE_NAME);
        let written = std::fs::read(&file).expect("file");

        let again = acknowledgements
            .acknowledge("7-rule-a", "OTAKSECOND")
            .expect("again");
        assert!(!again.newly);
        assert_eq!(again.acknowledgement, first.acknowledgement);
        assert_eq!(
            std::fs::read(&file).expect("file"),
            written,
            "no second line"
        );

        let reopened = Acknowledgements::open(dir.path()).expect("reopen");
        assert_eq!(
            reopened.get("7-rule-a").map(|ack| ack.acknowledged_by),
            Some("OTAKFIRST".to_owned())
        );
    }

    #[test]
    fn a_torn_last_line_is_cut_and_the_complete_ones_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let acknowledgements = Acknowledgements::open(dir.path()).expect("open");
        acknowledgements
            .acknowledge("1-rule-a", "OTAKADMIN")
            .expect("acknowledge");
        drop(acknowledgements);
        let file = dir.path().join(ACKNOWLEDGEMENTS_FILE_NAME);
        let complete = std::fs::read(&file).expect("file");
        opentrail_durable::append_durably(&file, br#"{"alertId":"2-rule-a","ackn"#)
            .expect("torn append");

        let reopened = Acknowledgements::open(dir.path()).expect("reopen");
        assert!(reopened.get("1-rule-a").is_some());
        assert!(reopened.get("2-rule-a").is_none());
        assert_eq!(
            std::fs::read(&file).expect("file"),
            complete,
            "the torn tail is gone"
        );
        // And appends continue on a clean line.
        reopened
            .acknowledge("2-rule-a", "OTAKADMIN")
            .expect("acknowledge after the cut");
        let after = Acknowledgements::open(dir.path()).expect("reopen again");
        assert_eq!(after.len(), 2);
    }

    #[test]
    fn a_damaged_line_fails_the_open_naming_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join(ACKNOWLEDGEMENTS_FILE_NAME);
        std::fs::write(&file, b"not json\n").expect("write");
        let error = Acknowledgements::open(dir.path()).expect_err("damaged");
        let message = error.to_string();
        assert!(message.contains(ACKNOWLEDGEMENTS_FILE_NAME), "{message}");
        assert!(message.contains("line 1"), "{message}");
    }
}
