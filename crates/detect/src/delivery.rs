//! Alerts sent to a webhook (`OPENTRAIL_ALERT_WEBHOOK_URL`): each alert is `POST`ed as
//! one JSON object, in log order, retried with backoff until the receiver answers 2xx.
//!
//! How many alerts were delivered is kept in `delivered.json` beside the alert log,
//! rewritten atomically after each one. A crash between a delivery and that write sends
//! the alert again: receivers tell a repeat by its `alertId`, which a match always
//! keeps. An alert matched before a crash and not yet sent is sent after the restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::alerts::{Alert, AlertLog};
use crate::error::DetectError;

/// The delivery state's file, beside the alert log.
pub const DELIVERY_STATE_FILE_NAME: &str = "delivered.json";
/// Time for one webhook request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the log is checked for new alerts when nothing is pending. Alerts are
/// matched within the detection consumer's own poll, so this keeps ack → delivery
/// well under a second.
const IDLE_POLL: Duration = Duration::from_millis(100);
const BACKOFF_INITIAL: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Default, Serialize, Deserialize)]
struct DeliveryState {
    /// Alerts delivered, from the oldest: the next one to send is at this position.
    delivered: u64,
}

/// Sends the alert log to one webhook.
pub struct AlertDelivery {
    alerts: Arc<AlertLog>,
    state_path: PathBuf,
    url: String,
    client: reqwest::Client,
}

impl AlertDelivery {
    /// `alerts_dir` is where the alert log lives; the state is kept beside it.
    pub fn new(alerts: Arc<AlertLog>, alerts_dir: &Path, url: String) -> AlertDelivery {
        AlertDelivery {
            alerts,
            state_path: alerts_dir.join(DELIVERY_STATE_FILE_NAME),
            url,
            client: reqwest::Client::new(),
        }
    }

    /// Delivers until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_INITIAL;
        // Read once; afterwards this worker is the only writer of the state.
        let mut delivered = None;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let pause = match self.deliver_pending(&mut delivered).await {
                Ok(0) => IDLE_POLL,
                Ok(_) => {
                    backoff = BACKOFF_INITIAL;
                    Duration::ZERO
                }
                Err(error) => {
                    tracing::warn!(%error, url = %self.url, retry_in_ms = backoff.as_millis() as u64, "alert delivery failed; retrying");
                    metrics::counter!("opentrail_alert_delivery_failures_total").increment(1);
                    let pause = backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    pause
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Sends what is pending, one alert at a time; returns how many were sent.
    /// `delivered` caches the state's count between calls (`None`: read it from the
    /// file), so an idle poll compares two numbers and touches no file.
    async fn deliver_pending(&self, delivered: &mut Option<u64>) -> Result<u64, DetectError> {
        let mut state = match *delivered {
            Some(count) => DeliveryState { delivered: count },
            None => {
                let state_path = self.state_path.clone();
                let state = tokio::task::spawn_blocking(move || read_state(&state_path))
                    .await
                    .map_err(|error| DetectError::Task(error.to_string()))??;
                *delivered = Some(state.delivered);
                state
            }
        };
        if state.delivered >= self.alerts.len() {
            return Ok(0);
        }
        let alerts = Arc::clone(&self.alerts);
        let first = state.delivered;
        let pending = tokio::task::spawn_blocking(move || alerts.read_from(first, 100))
            .await
            .map_err(|error| DetectError::Task(error.to_string()))??;
        let mut sent = 0;
        for alert in pending {
            self.send(&alert).await?;
            state.delivered += 1;
            sent += 1;
            let bytes = serde_json::to_vec(&state)
                .map_err(|error| DetectError::Encode(error.to_string()))?;
            let state_path = self.state_path.clone();
            tokio::task::spawn_blocking(move || {
                opentrail_durable::write_atomically(&state_path, &bytes)
                    .map_err(|source| DetectError::io(&state_path, source))
            })
            .await
            .map_err(|error| DetectError::Task(error.to_string()))??;
            *delivered = Some(state.delivered);
            metrics::counter!("opentrail_alerts_delivered_total").increment(1);
        }
        Ok(sent)
    }

    async fn send(&self, alert: &Alert) -> Result<(), DetectError> {
        let answer = self
            .client
            .post(&self.url)
            .timeout(REQUEST_TIMEOUT)
            .json(alert)
            .send()
            .await
            .map_err(|error| DetectError::Delivery(format!("{}: {error}", self.url)))?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(DetectError::Delivery(format!(
                "{} answered HTTP {}",
                self.url,
                answer.status()
            )))
        }
    }
}

fn read_state(path: &Path) -> Result<DeliveryState, DetectError> {
    match opentrail_durable::read_optional(path).map_err(|source| DetectError::io(path, source))? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|error| DetectError::Corrupt {
            path: path.to_path_buf(),
            detail: error.to_string(),
        }),
        None => Ok(DeliveryState::default()),
    }
}
