//! What the detection rules matched, and who has seen it.
//!
//! - `GET /v1/alerts[?limit=N&unacknowledged=true]` (read role) → [`AlertsResponse`],
//!   newest first, each alert with whether, when and by whom it was acknowledged;
//!   `unacknowledged=true` leaves acknowledged ones out (before the limit applies).
//! - `POST /v1/alerts/{alertId}/acknowledge` (admin role) → [`AlertResponse`]: the alert,
//!   acknowledged. Acknowledging changes what everyone's list shows, and a read key never
//!   changes anything, so it takes an admin key. Idempotent: acknowledging again answers
//!   the first acknowledgement (its time and key) and writes nothing.
//!
//! A key sees and acknowledges its own account's alerts; an admin key of the default
//! account those of every account, as with lookups. Another account's alert answers 404
//! `AlertNotFoundException`, like an unknown id, so alert ids of other tenants cannot be
//! probed. Both calls are recorded by self-audit (`ListAlerts`, `AcknowledgeAlert`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use opentrail_detect::{Acknowledgement, Alert};
use opentrail_protocol::AwsError;
use opentrail_protocol::native::{
    AlertItem, AlertResponse, AlertsQuery, AlertsResponse, alerts_query,
};

use crate::api_error::ApiError;
use crate::audit::CallContext;
use crate::auth::Caller;
use crate::state::AppState;

const ALERT_NOT_FOUND: &str = "AlertNotFoundException";

pub async fn list_alerts(
    State(state): State<AppState>,
    call: CallContext,
    RawQuery(query): RawQuery,
) -> Result<Json<AlertsResponse>, ApiError> {
    let query_text = query.unwrap_or_default();
    let result = match alerts_query(&query_text) {
        Ok(query) => newest_alerts(&state, &call.caller, query).await,
        Err(error) => Err(ApiError(error)),
    };
    call.record(
        "ListAlerts",
        Some(serde_json::json!({ "query": query_text })),
        result.as_ref().err(),
    )
    .await;
    result.map(Json)
}

/// The newest alerts `caller` may see, with their acknowledgements (read role). The
/// console's Alerts page calls this too.
pub(crate) async fn newest_alerts(
    state: &AppState,
    caller: &Caller,
    query: AlertsQuery,
) -> Result<AlertsResponse, ApiError> {
    caller.require_read()?;
    let scope = AccountScope::of(state, caller);
    let acknowledgements = state.acknowledgements.snapshot();
    let alerts = state.detections.alerts().clone();
    let newest = tokio::task::spawn_blocking(move || {
        let newest = alerts.newest(query.limit, |alert| {
            scope.admits(alert)
                && !(query.unacknowledged && acknowledgements.contains_key(&alert.alert_id))
        })?;
        Ok::<_, opentrail_detect::DetectError>((newest, acknowledgements))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    let (newest, acknowledgements) = newest;
    Ok(AlertsResponse {
        alerts: newest
            .into_iter()
            .map(|alert| with_acknowledgement(alert, &acknowledgements))
            .collect(),
    })
}

pub async fn acknowledge_alert(
    State(state): State<AppState>,
    call: CallContext,
    Path(alert_id): Path<String>,
) -> Result<Json<AlertResponse>, ApiError> {
    let result = acknowledge(&state, &call.caller, &alert_id).await;
    call.record(
        "AcknowledgeAlert",
        Some(serde_json::json!({ "alertId": alert_id })),
        result.as_ref().err(),
    )
    .await;
    result.map(|alert| Json(AlertResponse { alert }))
}

async fn acknowledge(
    state: &AppState,
    caller: &Caller,
    alert_id: &str,
) -> Result<AlertItem, ApiError> {
    caller.require_admin()?;
    let scope = AccountScope::of(state, caller);
    let alerts = state.detections.alerts().clone();
    let wanted = alert_id.to_owned();
    let found = tokio::task::spawn_blocking(move || {
        alerts.newest(1, |alert| alert.alert_id == wanted && scope.admits(alert))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    let Some(alert) = found.into_iter().next() else {
        return Err(ApiError(AwsError::with_status(
            ALERT_NOT_FOUND,
            format!("No alert has the id {alert_id}."),
            404,
        )));
    };
    let acknowledgements = state.acknowledgements.clone();
    let acknowledged_by = caller.access_key_id.clone();
    let id = alert.alert_id.clone();
    let acknowledged =
        tokio::task::spawn_blocking(move || acknowledgements.acknowledge(&id, &acknowledged_by))
            .await
            .map_err(ApiError::internal)?
            .map_err(|error| ApiError::internal(format_args!("alert {alert_id}: {error}")))?;
    if acknowledged.newly {
        tracing::info!(
            alert_id,
            acknowledged_by = caller.access_key_id.as_str(),
            "alert acknowledged"
        );
    }
    Ok(alert_item(alert, Some(acknowledged.acknowledgement)))
}

/// Whose alerts a caller sees: its own account's, or every account's for an admin of
/// the default account.
#[derive(Debug, Clone)]
struct AccountScope {
    every_account: bool,
    account: String,
}

impl AccountScope {
    fn of(state: &AppState, caller: &Caller) -> AccountScope {
        AccountScope {
            every_account: caller.is_admin_of_default_account(&state.config.account_id),
            account: caller.account_id.clone(),
        }
    }

    fn admits(&self, alert: &Alert) -> bool {
        self.every_account || alert.recipient_account_id == self.account
    }
}

fn with_acknowledgement(
    alert: Alert,
    acknowledgements: &HashMap<String, Acknowledgement>,
) -> AlertItem {
    let acknowledgement = acknowledgements.get(&alert.alert_id).cloned();
    alert_item(alert, acknowledgement)
}

fn alert_item(alert: Alert, acknowledgement: Option<Acknowledgement>) -> AlertItem {
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
        acknowledged: acknowledgement.is_some(),
        acknowledged_at: acknowledgement
            .as_ref()
            .map(|ack| ack.acknowledged_at.clone()),
        acknowledged_by: acknowledgement.map(|ack| ack.acknowledged_by),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use opentrail_protocol::sigv4::{self, SigningParams};
    use opentrail_store::LookupQuery;
    use serde_json::Value;
    use tower::ServiceExt as _;

    use crate::keys::{CreatedAccessKey, Role};
    use crate::state::AppState;
    use crate::test_state::{TestState, local_peer, raise_alert, test_state};

    const DEFAULT_ACCOUNT: &str = "123456789012";
    const OTHER_ACCOUNT: &str = "444455556666";

    struct Api {
        router: Router,
        state: AppState,
        admin: CreatedAccessKey,
        _data_dir: tempfile::TempDir,
    }

    struct Answer {
        status: StatusCode,
        error_type: Option<String>,
        json: Value,
    }

    impl Api {
        fn start() -> Api {
            let TestState {
                state,
                admin,
                data_dir,
            } = test_state(|_| {});
            let router = crate::routes::router(state.clone()).layer(local_peer());
            Api {
                router,
                state,
                admin,
                _data_dir: data_dir,
            }
        }

        fn key(&self, role: Role, account: &str) -> CreatedAccessKey {
            self.state.keys.create(role, account).expect("key")
        }

        fn raise(&self, seq: u64, account: &str) -> String {
            raise_alert(&self.state, seq, account)
        }

        /// A SigV4-signed request, as the CLI sends it (only ingest keys have bearer
        /// tokens).
        async fn call(&self, key: &CreatedAccessKey, method: &str, path: &str) -> Answer {
            let host = "localhost:4580";
            let signature_headers = sigv4::sign(
                method,
                path,
                &[("host", host)],
                b"",
                &SigningParams {
                    access_key_id: &key.key.access_key_id,
                    secret_access_key: &key.secret_access_key,
                    region: "us-east-1",
                    service: "cloudtrail",
                    now: jiff::Timestamp::now(),
                    include_content_sha256: false,
                },
            );
            let mut request = Request::builder()
                .method(method)
                .uri(path)
                .header("host", host);
            for (name, value) in signature_headers {
                request = request.header(name, value);
            }
            let request = request.body(Body::empty()).expect("request");
            let response = self
                .router
                .clone()
                .oneshot(request)
                .await
                .expect("infallible");
            let status = response.status();
            let error_type = response
                .headers()
                .get("x-amzn-errortype")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            Answer {
                status,
                error_type,
                json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            }
        }

        async fn acknowledge(&self, key: &CreatedAccessKey, alert_id: &str) -> Answer {
            self.call(key, "POST", &format!("/v1/alerts/{alert_id}/acknowledge"))
                .await
        }

        async fn list(&self, key: &CreatedAccessKey, query: &str) -> Vec<Value> {
            let answer = self.call(key, "GET", &format!("/v1/alerts{query}")).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
            answer.json["alerts"].as_array().expect("alerts").clone()
        }

        /// The self-audit records named `event_name` (written by a background task,
        /// hence the wait).
        async fn wait_for_events_named(&self, event_name: &str) -> Vec<Value> {
            for _ in 0..500 {
                let mut query = LookupQuery::new(None, None, 100);
                query.filters = vec![(opentrail_event::FilterField::EventName, event_name.into())];
                let found: Vec<Value> = self
                    .state
                    .store
                    .lookup(&query)
                    .expect("lookup")
                    .events
                    .into_iter()
                    .map(|event| serde_json::from_str(&event.record.json).expect("json"))
                    .collect();
                if !found.is_empty() {
                    return found;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("no {event_name} event was recorded");
        }
    }

    fn ids(alerts: &[Value]) -> Vec<&str> {
        alerts
            .iter()
            .map(|alert| alert["alertId"].as_str().expect("alertId"))
            .collect()
    }

    #[tokio::test]
    async fn an_acknowledged_alert_says_who_and_when_and_can_be_filtered_out() {
        let api = Api::start();
        let older = api.raise(1, DEFAULT_ACCOUNT);
        let newer = api.raise(2, DEFAULT_ACCOUNT);
        let unacknowledged = api.list(&api.admin, "").await;
        assert_eq!(ids(&unacknowledged), [newer.as_str(), older.as_str()]);
        assert_eq!(unacknowledged[0]["acknowledged"], false);
        assert_eq!(unacknowledged[0]["acknowledgedAt"], Value::Null);
        assert_eq!(unacknowledged[0]["acknowledgedBy"], Value::Null);

        let answer = api.acknowledge(&api.admin, &older).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        let alert = &answer.json["alert"];
        assert_eq!(alert["alertId"], older.as_str());
        assert_eq!(alert["acknowledged"], true);
        assert_eq!(
            alert["acknowledgedBy"],
            api.admin.key.access_key_id.as_str()
        );
        let at = alert["acknowledgedAt"].as_str().expect("acknowledgedAt");
        assert!(at.parse::<jiff::Timestamp>().is_ok(), "RFC 3339: {at}");

        let listed = api.list(&api.admin, "").await;
        assert_eq!(listed[1]["alertId"], older.as_str());
        assert_eq!(listed[1]["acknowledged"], true);
        assert_eq!(listed[1]["acknowledgedAt"], at);
        assert_eq!(listed[0]["acknowledged"], false);
        let open = api.list(&api.admin, "?unacknowledged=true").await;
        assert_eq!(ids(&open), [newer.as_str()]);
        let open_one = api.list(&api.admin, "?unacknowledged=true&limit=1").await;
        assert_eq!(ids(&open_one), [newer.as_str()], "filtered, then limited");

        let recorded = api.wait_for_events_named("AcknowledgeAlert").await;
        assert_eq!(recorded[0]["requestParameters"]["alertId"], older.as_str());
        assert_eq!(recorded[0]["readOnly"], false);
    }

    #[tokio::test]
    async fn acknowledging_again_answers_the_first_acknowledgement() {
        let api = Api::start();
        let alert = api.raise(1, DEFAULT_ACCOUNT);
        let first = api.acknowledge(&api.admin, &alert).await;
        assert_eq!(first.status, StatusCode::OK);
        let second_admin = api.key(Role::Admin, DEFAULT_ACCOUNT);
        let again = api.acknowledge(&second_admin, &alert).await;
        assert_eq!(again.status, StatusCode::OK, "a retry succeeds");
        assert_eq!(again.json, first.json, "the first acknowledgement stands");
        assert_eq!(
            again.json["alert"]["acknowledgedBy"],
            api.admin.key.access_key_id.as_str()
        );
        assert_eq!(api.state.acknowledgements.len(), 1);
    }

    #[tokio::test]
    async fn acknowledging_takes_an_admin_key_of_the_alerts_account() {
        let api = Api::start();
        let default_alert = api.raise(1, DEFAULT_ACCOUNT);
        let other_alert = api.raise(2, OTHER_ACCOUNT);
        for role in [Role::Read, Role::Ingest] {
            let key = api.key(role, DEFAULT_ACCOUNT);
            let refused = api.acknowledge(&key, &default_alert).await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{role}");
            assert_eq!(refused.error_type.as_deref(), Some("AccessDeniedException"));
        }

        // Another account's admin: that alert does not exist for it.
        let other_admin = api.key(Role::Admin, OTHER_ACCOUNT);
        let hidden = api.acknowledge(&other_admin, &default_alert).await;
        assert_eq!(hidden.status, StatusCode::NOT_FOUND);
        assert_eq!(hidden.json["__type"], "AlertNotFoundException");
        assert!(
            api.state.acknowledgements.get(&default_alert).is_none(),
            "nothing was recorded"
        );

        let own = api.acknowledge(&other_admin, &other_alert).await;
        assert_eq!(own.status, StatusCode::OK, "{}", own.json);
        let other_reader = api.key(Role::Read, OTHER_ACCOUNT);
        let seen = api.list(&other_reader, "").await;
        assert_eq!(ids(&seen), [other_alert.as_str()], "only its own account");
        assert_eq!(seen[0]["acknowledged"], true);

        // The default account's admin sees every account's alerts, and acts on them.
        let everything = api.list(&api.admin, "").await;
        assert_eq!(
            ids(&everything),
            [other_alert.as_str(), default_alert.as_str()]
        );
        let across = api.acknowledge(&api.admin, &default_alert).await;
        assert_eq!(across.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn an_unknown_alert_or_a_bad_filter_is_refused_in_the_apis_form() {
        let api = Api::start();
        api.raise(1, DEFAULT_ACCOUNT);
        let unknown = api.acknowledge(&api.admin, "99-no-such-rule").await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        assert_eq!(
            unknown.error_type.as_deref(),
            Some("AlertNotFoundException")
        );
        let message = unknown.json["message"].as_str().expect("message");
        assert!(message.contains("99-no-such-rule"), "{message}");

        let bad = api
            .call(&api.admin, "GET", "/v1/alerts?unacknowledged=maybe")
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(bad.error_type.as_deref(), Some("ValidationException"));
    }
}
