//! Operational endpoints: health, metrics, and the answer for unknown paths.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::IntoResponse;
use opentrail_protocol::AwsError;
use opentrail_store::WriteStatus;
use serde::Serialize;

use crate::api_error::ApiError;
use crate::auth::Caller;
use crate::state::AppState;

#[derive(Serialize)]
pub struct HealthResponse {
    status: &'static str,
}

/// `GET /health`, unauthenticated. The listener is bound only after the store and keys
/// are open, so any answer at all means ready.
pub async fn health() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok" })
}

#[derive(Serialize)]
pub struct ReadyResponse {
    /// `ready`, or `degraded` when writes are refused.
    status: &'static str,
    /// `accepting`, `refusing` (resumes by itself) or `failed` (needs a restart).
    writes: &'static str,
    /// Why, when not ready; also a background sealing error, which does not refuse writes
    /// yet but will once the unsealed data reaches its bound, and the last panic caught in
    /// detections (the event it was matching fired no rule).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    free_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    free_space_reserve_bytes: Option<u64>,
}

/// `GET /ready`, unauthenticated like `/health`: 200 while the store accepts writes, 503
/// with the reason while it refuses them (free space under the reserve, a failed journal
/// write). Reads are served either way; probe `/health` for liveness.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<ReadyResponse>) {
    let store = state.store.clone();
    let (status, space, sealer_error) = tokio::task::spawn_blocking(move || {
        (
            store.write_status(),
            store.free_space().ok(),
            store.sealer_error(),
        )
    })
    .await
    .unwrap_or((
        WriteStatus::Failed {
            reason: "the store could not be asked".to_owned(),
        },
        None,
        None,
    ));
    let (writes, mut reasons) = match status {
        WriteStatus::Accepting => ("accepting", Vec::new()),
        WriteStatus::Refusing { reason } => ("refusing", vec![reason]),
        WriteStatus::Failed { reason } => ("failed", vec![reason]),
    };
    // The writer only looks at free space when a write comes; report it now too.
    if writes == "accepting"
        && let Some(refusal) = space.and_then(|space| space.refusal(&state.config.store_dir()))
    {
        reasons.push(refusal.to_string());
    }
    let ready = reasons.is_empty();
    if let Some(error) = sealer_error {
        reasons.push(format!("sealing failed (retrying): {error}"));
    }
    // Detections went on past it, so like a sealing error it does not refuse writes.
    if let Some(fault) = state.detections.faults().last() {
        reasons.push(format!("detection fault: {fault}"));
    }
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(ReadyResponse {
            status: if ready { "ready" } else { "degraded" },
            writes,
            reasons,
            free_bytes: space.map(|space| space.available_bytes),
            free_space_reserve_bytes: space.map(|space| space.reserve_bytes),
        }),
    )
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
        metrics::gauge!("opentrail_store_mapped_segment_bytes")
            .set(stats.mapped_segment_bytes as f64);
        metrics::gauge!("opentrail_store_unsealed_events").set(stats.unsealed_events as f64);
        metrics::gauge!("opentrail_store_unsettled_segments").set(stats.unsettled_segments as f64);
        metrics::gauge!("opentrail_store_segments_outside_dedup_groups")
            .set(stats.segments_outside_dedup_groups as f64);
        metrics::gauge!("opentrail_store_dedup_group_bytes").set(stats.dedup_group_bytes as f64);
        // Totals since the store opened, in fractional seconds (a counter would be whole).
        metrics::gauge!("opentrail_store_sealer_busy_seconds")
            .set(stats.sealer_busy_ms as f64 / 1000.0);
        metrics::gauge!("opentrail_store_appends_waited_for_sealer_seconds")
            .set(stats.appends_waited_for_sealer_ms as f64 / 1000.0);
        metrics::gauge!("opentrail_store_background_waited_for_lookups_seconds")
            .set(stats.background_waited_for_lookups_ms as f64 / 1000.0);
        metrics::counter!("opentrail_store_rows_sealed_on_second_thread_total")
            .absolute(stats.rows_sealed_on_second_thread);
    }
    let store = state.store.clone();
    if let Ok((space, refused, status)) = tokio::task::spawn_blocking(move || {
        (
            store.free_space(),
            store.refused_writes(),
            store.write_status(),
        )
    })
    .await
    {
        if let Ok(space) = space {
            metrics::gauge!("opentrail_store_free_bytes").set(space.available_bytes as f64);
            metrics::gauge!("opentrail_store_free_space_reserve_bytes")
                .set(space.reserve_bytes as f64);
        }
        metrics::counter!("opentrail_store_writes_refused_total").absolute(refused);
        metrics::gauge!("opentrail_store_accepting_writes")
            .set(f64::from(u8::from(status == WriteStatus::Accepting)));
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
