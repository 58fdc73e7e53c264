//! The console's Alerts endpoints, over the same code as `GET /v1/alerts` and
//! `POST /v1/alerts/{alertId}/acknowledge` ([`crate::routes::alerts`]) with the session's
//! caller: the same roles (any read key lists, an admin key acknowledges), the same
//! account scoping, the same errors.
//!
//! - `GET /console/api/alerts[?unacknowledged=true][&refresh=1]` →
//!   `{"alerts":[…AlertItem],"rulesRunning":N}`: the newest alerts, and how many rules
//!   run (none means the page explains how to load some).
//! - `POST /console/api/alerts/{alertId}/acknowledge` → the API's own handler (routed in
//!   `console/mod.rs`; the session layer checks the CSRF token first).
//!
//! A list is recorded by self-audit (`ListAlerts`) when the page opens, but not its
//! background refreshes (`refresh=1`), as on the Trails page: an open page would
//! otherwise write a record about itself every few seconds.

use axum::Json;
use axum::extract::{RawQuery, State};
use opentrail_protocol::native::{AlertItem, alerts_query};
use serde::Serialize;

use crate::api_error::ApiError;
use crate::audit::CallContext;
use crate::routes::alerts::newest_alerts;
use crate::state::AppState;

/// The page's data: the alerts and whether any rule could raise more.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertsPage {
    alerts: Vec<AlertItem>,
    rules_running: usize,
}

/// `GET /console/api/alerts`.
pub async fn list(
    State(state): State<AppState>,
    call: CallContext,
    RawQuery(raw): RawQuery,
) -> Result<Json<AlertsPage>, ApiError> {
    let raw = raw.unwrap_or_default();
    let (refresh, api_query) = split_refresh(&raw);
    let result = match alerts_query(&api_query) {
        Ok(query) => newest_alerts(&state, &call.caller, query)
            .await
            .map(|answer| AlertsPage {
                alerts: answer.alerts,
                rules_running: state.detections.rules().len(),
            }),
        Err(error) => Err(ApiError(error)),
    };
    if !refresh {
        call.record(
            "ListAlerts",
            Some(serde_json::json!({ "console": "alerts", "query": api_query })),
            result.as_ref().err(),
        )
        .await;
    }
    result.map(Json)
}

/// Whether the query asks for a background refresh, and the query without it (what the
/// API's parser accepts).
fn split_refresh(raw: &str) -> (bool, String) {
    let mut refresh = false;
    let rest: Vec<&str> = raw
        .split('&')
        .filter(|pair| {
            let is_refresh = *pair == "refresh=1";
            refresh |= is_refresh;
            !is_refresh && !pair.is_empty()
        })
        .collect();
    (refresh, rest.join("&"))
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use serde_json::Value;
    use tower::ServiceExt as _;

    use super::split_refresh;
    use crate::console::session::{SessionLimits, SessionStore};
    use crate::keys::Role;
    use crate::test_state::{TestState, local_peer, raise_alert, test_state};

    const DEFAULT_ACCOUNT: &str = "123456789012";
    const OTHER_ACCOUNT: &str = "444455556666";

    struct Console {
        router: Router,
        sessions: SessionStore,
        state: crate::state::AppState,
        admin_key_id: String,
        _data_dir: tempfile::TempDir,
    }

    /// A signed-in browser: its cookie and CSRF token.
    struct Browser {
        cookie: String,
        csrf_token: String,
    }

    impl Console {
        fn start() -> Console {
            let TestState {
                state,
                admin,
                data_dir,
            } = test_state(|_| {});
            let sessions = SessionStore::new(SessionLimits::default());
            let router = crate::console::router_with_sessions(state.clone(), sessions.clone())
                .with_state(state.clone())
                .layer(local_peer());
            Console {
                router,
                sessions,
                state,
                admin_key_id: admin.key.access_key_id,
                _data_dir: data_dir,
            }
        }

        fn browser(&self, access_key_id: &str) -> Browser {
            let created = self.sessions.create(access_key_id).expect("session");
            Browser {
                cookie: format!("opentrail_session={}", created.id),
                csrf_token: created.session.csrf_token,
            }
        }

        fn browser_with_key(&self, role: Role, account: &str) -> Browser {
            let key = self.state.keys.create(role, account).expect("key");
            self.browser(&key.key.access_key_id)
        }

        async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
            let response = self
                .router
                .clone()
                .oneshot(request)
                .await
                .expect("infallible");
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        }

        async fn get(&self, path: &str, browser: &Browser) -> (StatusCode, Value) {
            let request = Request::builder()
                .uri(path)
                .header(header::COOKIE, &browser.cookie)
                .body(Body::empty())
                .expect("request");
            self.send(request).await
        }

        async fn acknowledge(
            &self,
            alert_id: &str,
            browser: &Browser,
            csrf_token: &str,
        ) -> (StatusCode, Value) {
            let request = Request::builder()
                .method("POST")
                .uri(format!("/console/api/alerts/{alert_id}/acknowledge"))
                .header(header::COOKIE, &browser.cookie)
                .header("sec-fetch-site", "same-origin")
                .header("x-csrf-token", csrf_token)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .expect("request");
            self.send(request).await
        }

        fn raise(&self, seq: u64, account: &str) -> String {
            raise_alert(&self.state, seq, account)
        }
    }

    fn alert_ids(page: &Value) -> Vec<&str> {
        page["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .map(|alert| alert["alertId"].as_str().expect("id"))
            .collect()
    }

    #[tokio::test]
    async fn the_page_lists_acknowledges_and_hides_acknowledged_alerts() {
        let console = Console::start();
        let older = console.raise(1, DEFAULT_ACCOUNT);
        let newer = console.raise(2, DEFAULT_ACCOUNT);
        let admin = console.browser(&console.admin_key_id.clone());

        let (status, page) = console.get("/console/api/alerts", &admin).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(alert_ids(&page), [newer.as_str(), older.as_str()]);
        assert_eq!(page["rulesRunning"], 0, "no rule is loaded in this state");
        assert_eq!(page["alerts"][0]["acknowledged"], false);

        let (status, answer) = console.acknowledge(&older, &admin, &admin.csrf_token).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["alert"]["acknowledged"], true);
        assert_eq!(
            answer["alert"]["acknowledgedBy"],
            console.admin_key_id.as_str()
        );

        let (_, hidden) = console
            .get("/console/api/alerts?unacknowledged=true&refresh=1", &admin)
            .await;
        assert_eq!(alert_ids(&hidden), [newer.as_str()]);
    }

    #[tokio::test]
    async fn acknowledging_needs_the_csrf_token_and_an_admin_key_of_the_account() {
        let console = Console::start();
        let alert = console.raise(1, DEFAULT_ACCOUNT);
        let admin = console.browser(&console.admin_key_id.clone());
        let (status, answer) = console.acknowledge(&alert, &admin, "not-the-token").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(answer["__type"], "InvalidCsrfTokenException");

        let reader = console.browser_with_key(Role::Read, DEFAULT_ACCOUNT);
        let (status, page) = console.get("/console/api/alerts", &reader).await;
        assert_eq!(status, StatusCode::OK, "a read key lists alerts");
        assert_eq!(alert_ids(&page), [alert.as_str()]);
        let (status, answer) = console
            .acknowledge(&alert, &reader, &reader.csrf_token)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(answer["__type"], "AccessDeniedException");

        let other_admin = console.browser_with_key(Role::Admin, OTHER_ACCOUNT);
        let (_, page) = console.get("/console/api/alerts", &other_admin).await;
        assert_eq!(alert_ids(&page), Vec::<&str>::new(), "not its account");
        let (status, answer) = console
            .acknowledge(&alert, &other_admin, &other_admin.csrf_token)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(answer["__type"], "AlertNotFoundException");

        let (_, page) = console.get("/console/api/alerts", &admin).await;
        assert_eq!(page["alerts"][0]["acknowledged"], false, "nothing changed");
    }

    #[test]
    fn a_refresh_is_told_apart_from_the_query() {
        assert_eq!(split_refresh(""), (false, String::new()));
        assert_eq!(
            split_refresh("refresh=1&unacknowledged=true"),
            (true, "unacknowledged=true".to_owned())
        );
        assert_eq!(
            split_refresh("unacknowledged=false"),
            (false, "unacknowledged=false".to_owned())
        );
    }
}
