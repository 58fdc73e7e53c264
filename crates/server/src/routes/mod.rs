//! The HTTP surface: which path goes to which handler, behind which layers.
//!
//! Layers, outermost first:
//! 1. [`observability::assign_request_id`]: request id, request span, log line, metrics,
//!    `x-amzn-RequestId` on every response.
//! 2. `DefaultBodyLimit`: body extractors stop at the configured ingest limit (413).
//! 3. [`observability::record_matched_route`] (route layer): route template for metrics.
//! 4. [`auth::authenticate`] (route layer, [`authenticated_routes`] only): a [`Caller`]
//!    for the handler, or the AWS error for why not.
//!
//! **Adding an API:** add the route in [`authenticated_routes`]; the handler takes
//! `caller: Caller` and checks its role (`caller.require_read()?` …). SigV4 requests reach
//! the handler with the body already read and verified, so take it as `Bytes`.
//!
//! [`Caller`]: crate::auth::Caller

pub mod alerts;
pub mod channels;
pub mod events;
pub mod insights;
pub mod json11;
pub mod k8s_audit;
pub mod keys;
pub mod lake;
pub mod operations;
pub mod put_audit_events;
pub mod rules;
#[cfg(test)]
mod tests;
pub mod trails;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::middleware;
use axum::routing::{delete, get, post};

use crate::state::AppState;
use crate::{auth, observability};

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let body_bytes_max = state.config.ingest_body_bytes_max;
    Router::new()
        .route("/health", get(operations::health))
        .route("/ready", get(operations::ready))
        .merge(authenticated_routes(state.clone()))
        // The console authenticates by session cookie, so it sits outside the SigV4 layer.
        .merge(crate::console::router(state.clone()))
        .route_layer(middleware::from_fn(observability::record_matched_route))
        .fallback(operations::not_found)
        .layer(DefaultBodyLimit::max(body_bytes_max))
        .layer(middleware::from_fn(observability::assign_request_id))
        .with_state(state)
}

/// Every route that requires a signed request or a bearer token.
///
/// Extension points (to be added here):
/// - `POST /` is routed to [`json11::dispatch`], which answers `UnknownOperationException`
///   until operations (LookupEvents, trails, channels) get their arm there.
/// - `POST /v1/events` — native ingest (`caller.require_ingest()`), `GET /v1/events` —
///   native lookup (`caller.require_read()`).
/// - `POST /v1/k8s-audit` — Kubernetes audit webhook (`caller.require_ingest()`).
/// - `GET /v1/alerts` — what the detection rules matched (`caller.require_read()`);
///   `POST /v1/alerts/{alertId}/acknowledge` marks one as seen (`caller.require_admin()`).
/// - `/v1/rules…` — detection rules: list (read), add, disable, enable, delete (admin
///   of the default account); see [`rules`].
/// - `POST /PutAuditEvents` — cloudtrail-data restJson1; signed for `cloudtrail-data`,
///   which [`auth::signing_service_for_path`] already knows.
pub fn authenticated_routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", post(json11::dispatch))
        .route("/v1/events", post(events::ingest).get(events::lookup))
        .route("/v1/k8s-audit", post(k8s_audit::receive))
        .route("/v1/alerts", get(alerts::list_alerts))
        .route(
            "/v1/alerts/{alert_id}/acknowledge",
            post(alerts::acknowledge_alert),
        )
        .route("/v1/rules", get(rules::list_rules).post(rules::add_rule))
        .route("/v1/rules/{id}", delete(rules::delete_rule))
        .route("/v1/rules/{id}/disable", post(rules::disable_rule))
        .route("/v1/rules/{id}/enable", post(rules::enable_rule))
        .route("/PutAuditEvents", post(put_audit_events::put_audit_events))
        .route("/metrics", get(operations::metrics))
        .route("/v1/keys", post(keys::create_key).get(keys::list_keys))
        .route("/v1/keys/{access_key_id}", delete(keys::revoke_key))
        .route_layer(middleware::from_fn_with_state(
            auth::Authenticator::from_ref(&state),
            auth::authenticate,
        ))
}
