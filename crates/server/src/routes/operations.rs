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
