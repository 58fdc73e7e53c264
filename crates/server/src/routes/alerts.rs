//! `GET /v1/alerts`: what the detection rules matched, newest first (read role). A key
//! sees its own account's alerts; an admin key of the default account sees every
//! account's, as with lookups.

use axum::Json;
use axum::extract::{RawQuery, State};
use opentrail_detect::Alert;
use opentrail_protocol::native::{AlertItem, AlertsResponse, alerts_limit};

use crate::api_error::ApiError;
use crate::audit::CallContext;
use crate::auth::Caller;
use crate::state::AppState;

pub async fn list_alerts(
    State(state): State<AppState>,
    call: CallContext,
    RawQuery(query): RawQuery,
) -> Result<Json<AlertsResponse>, ApiError> {
    let query_text = query.unwrap_or_default();
    let result = newest_alerts(&state, &call.caller, &query_text).await;
    call.record(
        "ListAlerts",
        Some(serde_json::json!({ "query": query_text })),
        result.as_ref().err(),
    )
    .await;
    result.map(Json)
}

async fn newest_alerts(
    state: &AppState,
    caller: &Caller,
    query_text: &str,
) -> Result<AlertsResponse, ApiError> {
    caller.require_read()?;
    let limit = alerts_limit(query_text)?;
    let sees_every_account = caller.is_admin_of_default_account(&state.config.account_id);
    let account = caller.account_id.clone();
    let alerts = state.detections.alerts().clone();
    let newest = tokio::task::spawn_blocking(move || {
        alerts.newest(limit, |alert| {
            sees_every_account || alert.recipient_account_id == account
        })
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok(AlertsResponse {
        alerts: newest.into_iter().map(alert_item).collect(),
    })
}

fn alert_item(alert: Alert) -> AlertItem {
    AlertItem {
        alert_id: alert.alert_id,
        rule_id: alert.rule_id,
        rule_title: alert.rule_title,
        level: alert.level,
        event_id: alert.event_id,
        event_name: alert.event_name,
        event_source: alert.event_source,
        event_time: alert.event_time,
        recipient_account_id: alert.recipient_account_id,
        aws_region: alert.aws_region,
        detected_at: alert.detected_at,
    }
}
