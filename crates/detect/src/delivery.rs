//! Alerts sent to their notification targets, the kinds trails stream to: a webhook
//! (`OPENTRAIL_ALERT_WEBHOOK_URL`, signed with `OPENTRAIL_ALERT_WEBHOOK_SECRET`), syslog
//! (`OPENTRAIL_ALERT_SYSLOG`) and an NDJSON file (`OPENTRAIL_ALERT_FILE`). Syslog and the
//! file go through the trails crate's stream sinks (`opentrail_trails::sinks`); the
//! webhook keeps its own request, so its body stays one alert object.
//!
//! Each target has its own worker and its own count of alerts delivered (a state file
//! beside the alert log, rewritten atomically after each batch), so a target that fails
//! is retried with backoff while the others go on. Alerts go in log order. A crash
//! between a send and that write sends the batch again: receivers tell a repeat by its
//! `alertId`, which a match always keeps. An alert matched before a crash and not yet
//! sent is sent after the restart. A target configured on a data dir that already holds
//! alerts is sent all of them, oldest first.
//!
//! The webhook gets one `POST` per alert, `content-type: application/json`, the alert
//! object as the body (`alertId`, `ruleId`, `ruleTitle`, `level`, `eventId`,
//! `eventName`, `eventSource`, `eventTime`, `recipientAccountId`, `awsRegion`, `seq`,
//! `detectedAt`) and, when a secret is set, `X-OpenTrail-Signature-256: sha256=<lower-case
//! hex HMAC-SHA256(secret, body)>`, as trail stream webhooks are signed. Syslog gets
//! each alert object as the message of one RFC 5424 message (structured data
//! `logGroup="opentrail-alerts" logStream="alerts"`); the file one alert object per line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opentrail_trails::{SinkConnector as _, StreamSink, StreamSinkConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::alerts::{Alert, AlertLog};
use crate::error::DetectError;

/// The webhook's delivery state file, beside the alert log (its name predates the other
/// targets, and is kept so an upgrade neither repeats nor skips).
pub const DELIVERY_STATE_FILE_NAME: &str = "delivered.json";
/// The signature header of a signed webhook request.
pub const SIGNATURE_HEADER: &str = "x-opentrail-signature-256";
/// Time for one webhook request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest a delivery with nothing pending waits before reading the log again; an
/// appended alert wakes it at once (`AlertLog::subscribe`).
const IDLE_POLL: Duration = Duration::from_millis(100);
const BACKOFF_INITIAL: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Alerts per syslog or file batch (the webhook sends one per request).
const BATCH_ALERTS_MAX: usize = 100;
/// The log group and stream names syslog messages carry.
const SYSLOG_LOG_GROUP: &str = "opentrail-alerts";
const SYSLOG_STREAM: &str = "alerts";

/// A place alerts are sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertTarget {
    /// `POST` of each alert as JSON, signed when `secret` is set.
    Webhook { url: String, secret: Option<String> },
    /// RFC 5424 messages: `host:port` or `tcp://host:port` (TCP), `udp://host:port`.
    Syslog { address: String },
    /// One alert per line, appended and fsynced per batch (rotated at 100 MiB).
    File { path: PathBuf },
}

impl AlertTarget {
    /// The target's kind, in logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            AlertTarget::Webhook { .. } => "webhook",
            AlertTarget::Syslog { .. } => "syslog",
            AlertTarget::File { .. } => "file",
        }
    }

    /// Where it sends, for logs (never the secret).
    pub fn describe(&self) -> String {
        match self {
            AlertTarget::Webhook { url, .. } => url.clone(),
            AlertTarget::Syslog { address } => address.clone(),
            AlertTarget::File { path } => path.display().to_string(),
        }
    }

    /// The file, beside the alert log, that counts what this target has been sent.
    pub fn state_file_name(&self) -> &'static str {
        match self {
            AlertTarget::Webhook { .. } => DELIVERY_STATE_FILE_NAME,
            AlertTarget::Syslog { .. } => "delivered-syslog.json",
            AlertTarget::File { .. } => "delivered-file.json",
        }
    }

    /// Checks what a configuration cannot: a usable URL, address or path.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            AlertTarget::Webhook { url, .. } => StreamSinkConfig::Webhook {
                url: url.clone(),
                secret: None,
            }
            .validate(),
            AlertTarget::Syslog { address } => self::syslog_config(address).validate(),
            AlertTarget::File { path } => file_config(path).validate(),
        }
    }
}

fn syslog_config(address: &str) -> StreamSinkConfig {
    StreamSinkConfig::Syslog {
        address: address.to_owned(),
    }
}

fn file_config(path: &Path) -> StreamSinkConfig {
    StreamSinkConfig::File {
        path: path.to_path_buf(),
        rotate_bytes: opentrail_trails::streams::DEFAULT_ROTATE_BYTES,
        keep_files: opentrail_trails::streams::DEFAULT_KEEP_FILES,
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct DeliveryState {
    /// Alerts delivered, from the oldest: the next one to send is at this position.
    delivered: u64,
}

/// How a target is reached.
enum Sender {
    Webhook {
        url: String,
        secret: Option<String>,
    },
    /// Syslog and file: the trails crate's stream sinks.
    Stream(Box<dyn StreamSink>),
}

/// Sends the alert log to one target.
pub struct AlertDelivery {
    alerts: Arc<AlertLog>,
    /// Changes when alerts are appended (see [`AlertLog::subscribe`]).
    appended: watch::Receiver<u64>,
    target: AlertTarget,
    state_path: PathBuf,
    sender: Sender,
    client: reqwest::Client,
}

impl AlertDelivery {
    /// `alerts_dir` is where the alert log lives; the target's state is kept beside it.
    pub fn new(alerts: Arc<AlertLog>, alerts_dir: &Path, target: AlertTarget) -> AlertDelivery {
        let sender = match &target {
            AlertTarget::Webhook { url, secret } => Sender::Webhook {
                url: url.clone(),
                secret: secret.clone(),
            },
            AlertTarget::Syslog { address } => Sender::Stream(syslog_config(address).connect()),
            AlertTarget::File { path } => Sender::Stream(file_config(path).connect()),
        };
        AlertDelivery {
            appended: alerts.subscribe(),
            alerts,
            state_path: alerts_dir.join(target.state_file_name()),
            target,
            sender,
            client: reqwest::Client::new(),
        }
    }

    /// Delivers until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_INITIAL;
        // Read once; afterwards this worker is the only writer of the state.
        let mut delivered = None;
        loop {
            if *shutdown.borrow() {
                return;
            }
            // Marked seen before reading the log: an alert appended from here on ends
            // the idle wait below.
            self.appended.borrow_and_update();
            let pause = match self.deliver_pending(&mut delivered).await {
                Ok(0) => IDLE_POLL,
                Ok(_) => {
                    backoff = BACKOFF_INITIAL;
                    Duration::ZERO
                }
                Err(error) => {
                    tracing::warn!(
                        %error,
                        target = self.target.kind(),
                        to = %self.target.describe(),
                        retry_in_ms = backoff.as_millis() as u64,
                        "alert delivery failed; retrying"
                    );
                    metrics::counter!("opentrail_alert_delivery_failures_total", "target" => self.target.kind())
                        .increment(1);
                    let pause = backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    pause
                }
            };
            // Idle: the next alert wakes the delivery at once. A failing target keeps its
            // backoff.
            let idle = pause == IDLE_POLL;
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
                Ok(()) = self.appended.changed(), if idle => {}
            }
        }
    }

    /// Sends what is pending, one batch at a time; returns how many were sent.
    /// `delivered` caches the state's count between calls (`None`: read it from the
    /// file), so an idle poll compares two numbers and touches no file.
    async fn deliver_pending(&mut self, delivered: &mut Option<u64>) -> Result<u64, DetectError> {
        let mut state = match *delivered {
            Some(count) => DeliveryState { delivered: count },
            None => {
                let state_path = self.state_path.clone();
                let mut state = blocking(move || read_state(&state_path)).await?;
                if let AlertTarget::File { path } = &self.target {
                    let (path, alerts) = (path.clone(), Arc::clone(&self.alerts));
                    let counted = state.delivered;
                    state.delivered =
                        blocking(move || already_in_file(&path, &alerts, counted)).await?;
                }
                *delivered = Some(state.delivered);
                state
            }
        };
        if state.delivered >= self.alerts.len() {
            return Ok(0);
        }
        let alerts = Arc::clone(&self.alerts);
        let first = state.delivered;
        let batch_max = match self.sender {
            Sender::Webhook { .. } => 1,
            Sender::Stream(_) => BATCH_ALERTS_MAX,
        };
        let pending = blocking(move || alerts.read_from(first, batch_max)).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        self.send(&pending).await?;
        state.delivered += pending.len() as u64;
        let bytes =
            serde_json::to_vec(&state).map_err(|error| DetectError::Encode(error.to_string()))?;
        let state_path = self.state_path.clone();
        blocking(move || {
            opentrail_durable::write_atomically(&state_path, &bytes)
                .map_err(|source| DetectError::io(&state_path, source))
        })
        .await?;
        *delivered = Some(state.delivered);
        metrics::counter!("opentrail_alerts_delivered_total", "target" => self.target.kind())
            .increment(pending.len() as u64);
        Ok(pending.len() as u64)
    }

    async fn send(&mut self, alerts: &[Alert]) -> Result<(), DetectError> {
        match &mut self.sender {
            Sender::Webhook { url, secret } => {
                for alert in alerts {
                    send_webhook(&self.client, url, secret.as_deref(), alert).await?;
                }
                Ok(())
            }
            Sender::Stream(sink) => {
                let lines = alerts
                    .iter()
                    .map(serde_json::to_string)
                    .collect::<Result<Vec<String>, _>>()
                    .map_err(|error| DetectError::Encode(error.to_string()))?;
                sink.send(&self.client, SYSLOG_LOG_GROUP, SYSLOG_STREAM, &lines)
                    .await
                    .map_err(DetectError::Delivery)
            }
        }
    }
}

/// The alert file's tail looked at after a restart: more than one batch of alerts.
const FILE_TAIL_BYTES: u64 = BATCH_ALERTS_MAX as u64 * 4096;

/// The count of alerts delivered to the NDJSON file at `path`, given the saved count
/// `counted`. A crash between writing a batch and saving the count leaves that batch at
/// the file's end: its alerts are counted instead of written twice. (The file is its own
/// record of what it got; a webhook or a syslog server cannot be asked.)
fn already_in_file(path: &Path, alerts: &AlertLog, counted: u64) -> Result<u64, DetectError> {
    #[derive(Deserialize)]
    struct AlertIdOnly {
        #[serde(rename = "alertId")]
        alert_id: String,
    }
    let Some(tail) = read_tail(path, FILE_TAIL_BYTES)? else {
        return Ok(counted);
    };
    // The first line of the tail may be cut: it does not parse and is passed over.
    let written: std::collections::HashSet<String> = tail
        .split(|&byte| byte == b'\n')
        .filter_map(|line| serde_json::from_slice::<AlertIdOnly>(line).ok())
        .map(|line| line.alert_id)
        .collect();
    if written.is_empty() {
        return Ok(counted);
    }
    let pending = alerts.read_from(counted, BATCH_ALERTS_MAX)?;
    let already = pending
        .iter()
        .take_while(|alert| written.contains(&alert.alert_id))
        .count();
    Ok(counted + already as u64)
}

/// The last `max_bytes` of the file at `path`; `None` when it does not exist.
fn read_tail(path: &Path, max_bytes: u64) -> Result<Option<Vec<u8>>, DetectError> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(DetectError::io(path, source)),
    };
    let length = file
        .metadata()
        .map_err(|source| DetectError::io(path, source))?
        .len();
    file.seek(SeekFrom::Start(length.saturating_sub(max_bytes)))
        .map_err(|source| DetectError::io(path, source))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)
        .map_err(|source| DetectError::io(path, source))?;
    Ok(Some(tail))
}

async fn send_webhook(
    client: &reqwest::Client,
    url: &str,
    secret: Option<&str>,
    alert: &Alert,
) -> Result<(), DetectError> {
    let body = serde_json::to_vec(alert).map_err(|error| DetectError::Encode(error.to_string()))?;
    let mut request = client
        .post(url)
        .timeout(REQUEST_TIMEOUT)
        .header("content-type", "application/json");
    if let Some(secret) = secret {
        request = request.header(
            SIGNATURE_HEADER,
            opentrail_trails::streams::signature_header(secret, &body),
        );
    }
    let answer = request
        .body(body)
        .send()
        .await
        .map_err(|error| DetectError::Delivery(format!("{url}: {error}")))?;
    if answer.status().is_success() {
        Ok(())
    } else {
        Err(DetectError::Delivery(format!(
            "{url} answered HTTP {}",
            answer.status()
        )))
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DetectError> + Send + 'static,
) -> Result<T, DetectError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| DetectError::Task(error.to_string()))?
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
