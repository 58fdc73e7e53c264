//! Self-audit: every management call to OpenTrail is recorded as a CloudTrail event with
//! `eventSource` `cloudtrail.amazonaws.com`, in the same log as everything else.
//!
//! Handlers hand a record to [`AuditRecorder::record`], which queues it on a bounded
//! channel (waiting for room rather than dropping: an audit trail must not lose its own
//! records under load). One background task drains the queue and appends what is waiting
//! in one group commit, so self-audit adds no fsync to the caller's latency. At graceful
//! shutdown the queue is drained before the store closes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use opentrail_event::{ApiCall, EventRecord};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::api_error::ApiError;
use crate::auth::Caller;
use crate::observability::RequestId;

/// Records waiting to be appended; a full queue makes management calls wait.
const AUDIT_QUEUE_MAX: usize = 4096;
/// The most records one append carries.
const AUDIT_BATCH_MAX: usize = 1024;

pub const SELF_EVENT_SOURCE: &str = "cloudtrail.amazonaws.com";

#[derive(Clone)]
pub struct AuditRecorder {
    sender: Arc<Mutex<Option<mpsc::Sender<EventRecord>>>>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

/// What a handler knows about the call it just served.
struct AuditedCall<'a> {
    pub event_name: &'a str,
    pub caller: &'a Caller,
    pub request_id: &'a RequestId,
    pub client: Option<SocketAddr>,
    pub headers: &'a HeaderMap,
    pub request_parameters: Option<serde_json::Value>,
    /// The AWS error code and message when the call failed.
    pub error: Option<(&'a str, &'a str)>,
    pub read_only: bool,
}

/// Who made a management call and how: everything a self-audit record needs besides the
/// call's name, parameters and outcome. Handlers take it as an extractor, in place of the
/// caller, so no audited route can forget a part of the record.
pub struct CallContext {
    pub caller: Caller,
    audit: AuditRecorder,
    request_id: RequestId,
    client: SocketAddr,
    headers: HeaderMap,
}

/// For the API's router and the console's: any state the recorder can be taken from.
impl<S> FromRequestParts<S> for CallContext
where
    AuditRecorder: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let Ok(request_id) = RequestId::from_request_parts(parts, state).await;
        let ConnectInfo(client) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map_err(ApiError::internal)?;
        Ok(CallContext {
            caller,
            audit: AuditRecorder::from_ref(state),
            request_id,
            client,
            headers: parts.headers.clone(),
        })
    }
}

impl CallContext {
    /// The request's headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Records the call; read-only is inferred from its name, as for ingested events.
    pub async fn record(
        &self,
        event_name: &str,
        request_parameters: Option<serde_json::Value>,
        error: Option<&ApiError>,
    ) {
        let read_only = opentrail_event::infer_read_only(event_name);
        self.record_as(event_name, request_parameters, error, read_only)
            .await;
    }

    /// Records a call that only reads, whatever its name says (the console's export).
    pub async fn record_read(
        &self,
        event_name: &str,
        request_parameters: serde_json::Value,
        error: Option<&ApiError>,
    ) {
        self.record_as(event_name, Some(request_parameters), error, true)
            .await;
    }

    async fn record_as(
        &self,
        event_name: &str,
        request_parameters: Option<serde_json::Value>,
        error: Option<&ApiError>,
        read_only: bool,
    ) {
        self.audit
            .record(AuditedCall {
                event_name,
                caller: &self.caller,
                request_id: &self.request_id,
                client: Some(self.client),
                headers: &self.headers,
                request_parameters,
                error: error.map(|error| (error.code(), error.message())),
                read_only,
            })
            .await;
    }
}

impl AuditRecorder {
    /// Starts the background appender on the current tokio runtime.
    pub fn start(store: opentrail_store::Store) -> AuditRecorder {
        let (sender, mut receiver) = mpsc::channel::<EventRecord>(AUDIT_QUEUE_MAX);
        let task = tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                while batch.len() < AUDIT_BATCH_MAX {
                    match receiver.try_recv() {
                        Ok(record) => batch.push(record),
                        Err(_) => break,
                    }
                }
                let store = store.clone();
                let count = batch.len();
                // Waits for room in the store's queue: self-audit is never dropped.
                match tokio::task::spawn_blocking(move || store.append(batch)).await {
                    Ok(Ok(_)) => metrics::counter!("opentrail_self_audit_events_total")
                        .increment(count as u64),
                    Ok(Err(error)) => {
                        tracing::error!(%error, count, "self-audit records could not be stored")
                    }
                    Err(error) => tracing::error!(%error, count, "self-audit append task failed"),
                }
            }
        });
        AuditRecorder {
            sender: Arc::new(Mutex::new(Some(sender))),
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// Queues the record of one management call.
    async fn record(&self, call: AuditedCall<'_>) {
        let user_agent = call
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|value| value.to_str().ok());
        let source_ip = call.client.map(|address| address.ip().to_string());
        let api_call = ApiCall {
            event_source: SELF_EVENT_SOURCE,
            event_name: call.event_name,
            event_type: "AwsApiCall",
            event_time_ms: jiff::Timestamp::now().as_millisecond(),
            account_id: &call.caller.account_id,
            region: &call.caller.region,
            access_key_id: &call.caller.access_key_id,
            role: call.caller.role.as_str(),
            source_ip_address: source_ip.as_deref(),
            user_agent,
            request_id: call.request_id.as_str(),
            request_parameters: call.request_parameters,
            error_code: call.error.map(|(code, _)| code),
            error_message: call.error.map(|(_, message)| message),
            read_only: call.read_only,
        };
        let record = match api_call.to_record() {
            Ok(record) => record,
            Err(error) => {
                tracing::error!(%error, event_name = call.event_name, "could not build a self-audit record");
                return;
            }
        };
        let sender = match self.sender.lock() {
            Ok(sender) => sender.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if let Some(sender) = sender
            && sender.send(record).await.is_err()
        {
            tracing::warn!("self-audit record arrived after shutdown began");
        }
    }

    /// Stops accepting records and waits until every queued one is appended.
    pub async fn close(&self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        let task = self.task.lock().ok().and_then(|mut task| task.take());
        if let Some(task) = task
            && let Err(error) = task.await
        {
            tracing::error!(%error, "self-audit appender failed while draining");
        }
    }
}
