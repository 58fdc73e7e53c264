//! Operational endpoints: health, metrics, and the answer for unknown paths.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, Uri, header};
use axum::response::IntoResponse;
use opentrail_protocol::AwsError;
use serde::Serialize;

use crate::api_error::ApiError;
use crate::app::AppState;
use crate::auth::Caller;

#[derive(Serialize)]
pub struct HealthResponse {
    status: &'static str,
}

/// `GET /health`, unauthenticated. The listener is bound only after the store and keys
/// are open, so any answer at all means ready.
pub async fn health() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok" })
}

/// `GET /metrics` in the Prometheus text format. Any authenticated key may scrape: the
/// numbers are operational and hold no event content. Prometheus can send an ingest
/// key's bearer token (`authorization: {credentials: …}` in its scrape config).
pub async fn metrics(State(state): State<AppState>, _caller: Caller) -> impl IntoResponse {
    // Store figures are read at scrape time: cheap, and always current.
    let store = state.store.clone();
    if let Ok(Ok(stats)) = tokio::task::spawn_blocking(move || store.stats()).await {
        metrics::gauge!("opentrail_store_last_seq").set(stats.last_seq as f64);
        metrics::gauge!("opentrail_store_expired_through_seq")
            .set(stats.expired_through_seq as f64);
        metrics::gauge!("opentrail_store_disk_bytes").set(stats.disk_bytes as f64);
        metrics::gauge!("opentrail_store_table_bytes").set(stats.table_bytes as f64);
        metrics::gauge!("opentrail_store_unflushed_bytes").set(stats.unflushed_bytes as f64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// Any path no route matches.
pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError(AwsError::with_status(
        "NotFoundException",
        format!("No such resource: {method} {}", uri.path()),
        404,
    ))
}
