//! GetTrailStatus bookkeeping: one [`TrailStatus`] per trail, shared by its workers (which
//! report into it) and the service (which answers GetTrailStatus from it). A leaf module,
//! so the workers that report do not import one another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// GetTrailStatus bookkeeping, shared by a trail's workers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrailStatus {
    /// The last successful delivery of log files.
    pub latest_delivery_time_ms: Option<i64>,
    /// The error of the last failed attempt; cleared by the next success.
    pub latest_delivery_error: Option<String>,
    pub latest_delivery_attempt_time_ms: Option<i64>,
    pub latest_notification_time_ms: Option<i64>,
    pub latest_notification_error: Option<String>,
    pub latest_notification_attempt_time_ms: Option<i64>,
    pub latest_cloud_watch_logs_delivery_time_ms: Option<i64>,
    pub latest_cloud_watch_logs_delivery_error: Option<String>,
    /// Reserved for the digest writer (log file integrity).
    pub latest_digest_delivery_time_ms: Option<i64>,
    pub latest_digest_delivery_error: Option<String>,
    /// The last successful delivery of Insights files (GetTrailStatus has no member for
    /// it; kept for logs and the console).
    #[serde(default)]
    pub latest_insights_delivery_time_ms: Option<i64>,
    /// The error of the last failed Insights file delivery; cleared by the next success.
    /// GetTrailStatus reports it as `LatestDeliveryError` when log files have none.
    #[serde(default)]
    pub latest_insights_delivery_error: Option<String>,
}

impl TrailStatus {
    /// Takes the delivery and notification part from `persisted` (what the delivery
    /// worker saved in its state file), keeping the rest.
    pub(crate) fn restore_delivery(&mut self, persisted: &TrailStatus) {
        self.latest_delivery_time_ms = persisted.latest_delivery_time_ms;
        self.latest_delivery_error = persisted.latest_delivery_error.clone();
        self.latest_delivery_attempt_time_ms = persisted.latest_delivery_attempt_time_ms;
        self.latest_notification_time_ms = persisted.latest_notification_time_ms;
        self.latest_notification_error = persisted.latest_notification_error.clone();
        self.latest_notification_attempt_time_ms = persisted.latest_notification_attempt_time_ms;
    }
}

/// A trail's status, shared between its workers and GetTrailStatus.
pub type StatusHandle = Arc<Mutex<TrailStatus>>;

pub(crate) fn update_status(status: &StatusHandle, change: impl FnOnce(&mut TrailStatus)) {
    let mut guard = status.lock().unwrap_or_else(PoisonError::into_inner);
    change(&mut guard);
}

pub(crate) fn status_snapshot(status: &StatusHandle) -> TrailStatus {
    status
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// The status handles of every trail, by trail id, created on first use.
#[derive(Debug, Default)]
pub(crate) struct Statuses {
    handles: Mutex<HashMap<String, StatusHandle>>,
}

impl Statuses {
    pub(crate) fn handle(&self, trail_id: &str) -> StatusHandle {
        let mut handles = self.handles.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(handles.entry(trail_id.to_owned()).or_default())
    }

    pub(crate) fn remove(&self, trail_id: &str) {
        self.handles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(trail_id);
    }
}
