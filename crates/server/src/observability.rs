//! Request ids, request logs and Prometheus metrics.
//!
//! Every response carries `x-amzn-RequestId` (botocore copies it into
//! `ResponseMetadata.RequestId`), and every log line written while a request is handled
//! sits in a `request` span carrying the same id, so a client-reported id finds its logs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::Instrument as _;

/// The response header AWS SDKs read the request id from.
pub const REQUEST_ID_HEADER: HeaderName =
    HeaderName::from_static(opentrail_protocol::error::REQUEST_ID_HEADER);

/// Histograms are kept as summaries in the recorder; upkeep drains their buffers so memory
/// stays bounded between scrapes.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The id of the request being handled (a UUID v4, like AWS's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub Arc<str>);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Outside the middleware (unit tests of a single handler) a fresh id still works.
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::generate))
    }
}

impl RequestId {
    pub fn generate() -> RequestId {
        RequestId(Arc::from(uuid::Uuid::new_v4().to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The route template a request matched (`/v1/keys/{access_key_id}`), passed from the
/// inner routing layer back out to [`assign_request_id`] for metric labels: labelling by
/// raw path would let clients create unbounded label sets.
#[derive(Debug, Clone)]
struct MatchedRoute(Arc<str>);

/// Outermost middleware: assigns the request id, opens the request span, logs the outcome,
/// records request metrics and stamps `x-amzn-RequestId` on every response, errors and
/// 404s included.
pub async fn assign_request_id(mut request: Request, next: Next) -> Response {
    let request_id = RequestId::generate();
    request.extensions_mut().insert(request_id.clone());
    let span = tracing::info_span!(
        "request",
        request_id = request_id.as_str(),
        method = %request.method(),
        path = request.uri().path(),
        access_key_id = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();

    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let route = response
        .extensions()
        .get::<MatchedRoute>()
        .map(|matched| matched.0.to_string())
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request finished"
        );
    });
    metrics::counter!(
        "opentrail_http_requests_total",
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!("opentrail_http_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
    response
}

/// Route layer: hands the matched route template to [`assign_request_id`].
pub async fn record_matched_route(
    matched_path: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    if let Some(matched_path) = matched_path {
        response
            .extensions_mut()
            .insert(MatchedRoute(Arc::from(matched_path.as_str())));
    }
    response
}

#[derive(Debug, thiserror::Error)]
#[error("cannot install the Prometheus metrics recorder: {0}")]
pub struct MetricsInstallError(String);

/// The process-wide Prometheus recorder, installed on first use. `metrics` allows one
/// global recorder per process, so a second server in the same process (tests) shares it.
pub fn prometheus_handle() -> Result<PrometheusHandle, MetricsInstallError> {
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut installed = HANDLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|error| MetricsInstallError(error.to_string()))?;
    describe_metrics();
    *installed = Some(handle.clone());
    Ok(handle)
}

/// Runs recorder upkeep until the returned task is aborted.
pub fn spawn_metrics_upkeep(handle: PrometheusHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
        loop {
            interval.tick().await;
            handle.run_upkeep();
        }
    })
}

fn describe_metrics() {
    metrics::describe_counter!(
        "opentrail_http_requests_total",
        "HTTP requests answered, by route template and status code."
    );
    metrics::describe_histogram!(
        "opentrail_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time from receiving a request to having its response ready, by route template."
    );
}
