//! Signing in and out of the console, and what the audit trail records about it.
//!
//! - `GET /console/api/session` → who is signed in (with the session's CSRF token), or
//!   `{"signedIn": false, "csrfToken": …}` plus the double-submit cookie sign-in needs.
//! - `POST /console/api/sign-in` `{"accessKeyId", "secretAccessKey"}` with that token in
//!   `X-CSRF-Token` → the session cookie. The secret is checked against the key store
//!   in constant time; ingest keys cannot sign in (they cannot read anything).
//! - `POST /console/api/sign-out` → the session ends.
//!
//! Every attempt, successful or not, is appended to the log as AWS records console
//! sign-ins: `eventSource` `signin.amazonaws.com`, `eventType` `AwsConsoleSignIn`,
//! `eventName` `ConsoleLogin` (or `ConsoleLogout`), `responseElements.ConsoleLogin`
//! `Success` or `Failure`. A successful sign-in is answered only once its record is
//! durable, so nobody uses the console without a trace. When the access key id is
//! unknown, the identity's `userName` is `HIDDEN_DUE_TO_SECURITY_REASONS` (as AWS does):
//! people paste secrets into the wrong field, and the log must not keep them.

use std::net::SocketAddr;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentrail_event::{DEFAULT_EVENT_VERSION, EventRecord, IngestContext, InvalidRecord};
use opentrail_protocol::AwsError;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::session::{self, SESSION_COOKIE, SIGN_IN_CSRF_COOKIE};
use super::{ConsoleState, SignedIn, authenticate, cookie, request_is_https, require_same_origin};
use crate::api_error::ApiError;
use crate::auth::Caller;
use crate::keys::{AccessKey, Role};
use crate::observability::RequestId;

/// `eventSource` of console sign-in records, as in AWS.
pub const SIGN_IN_EVENT_SOURCE: &str = "signin.amazonaws.com";
/// `eventType` of console sign-in records, as in AWS.
pub const SIGN_IN_EVENT_TYPE: &str = "AwsConsoleSignIn";
pub const CONSOLE_LOGIN: &str = "ConsoleLogin";
pub const CONSOLE_LOGOUT: &str = "ConsoleLogout";
/// What AWS puts in place of a user name it will not reveal.
const HIDDEN_USER_NAME: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";
/// Sign-in attempts per second (and burst) from one client address.
const SIGN_IN_ATTEMPTS_PER_SECOND: u32 = 5;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    signed_in: bool,
    csrf_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<String>,
    /// An admin of the default account sees, and may filter by, every account.
    #[serde(skip_serializing_if = "Option::is_none")]
    sees_every_account: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signed_in_at: Option<String>,
    /// Idle minutes after which the session ends, so the page can say so.
    #[serde(skip_serializing_if = "Option::is_none")]
    idle_timeout_seconds: Option<u64>,
}

impl SessionInfo {
    fn signed_in(state: &ConsoleState, caller: &Caller, signed_in: &SignedIn) -> SessionInfo {
        SessionInfo {
            signed_in: true,
            csrf_token: signed_in.session.csrf_token.clone(),
            access_key_id: Some(caller.access_key_id.clone()),
            role: Some(caller.role.as_str()),
            account_id: Some(caller.account_id.clone()),
            sees_every_account: Some(
                caller.is_admin_of_default_account(&state.app.config.account_id),
            ),
            signed_in_at: Some(signed_in.session.signed_in_at.to_string()),
            idle_timeout_seconds: Some(state.sessions.limits().idle.as_secs()),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignInRequest {
    access_key_id: String,
    secret_access_key: String,
}

/// `GET /console/api/session`.
pub async fn session(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    if let Ok((caller, signed_in)) = authenticate(&state, &Method::GET, &headers) {
        return json_response(
            StatusCode::OK,
            &SessionInfo::signed_in(&state, &caller, &signed_in),
        );
    }
    // Keep a well-formed token the browser already has, so two sign-in tabs do not
    // invalidate each other.
    let token = match cookie(&headers, SIGN_IN_CSRF_COOKIE)
        .filter(|token| is_token_shaped(token))
        .map(str::to_owned)
    {
        Some(token) => token,
        None => match session::random_token() {
            Ok(token) => token,
            Err(error) => return ApiError::internal(error).into_response(),
        },
    };
    let mut response = json_response(
        StatusCode::OK,
        &SessionInfo {
            signed_in: false,
            csrf_token: token.clone(),
            access_key_id: None,
            role: None,
            account_id: None,
            sees_every_account: None,
            signed_in_at: None,
            idle_timeout_seconds: None,
        },
    );
    append_cookie(
        &mut response,
        &session::set_cookie(
            SIGN_IN_CSRF_COOKIE,
            &token,
            request_is_https(&state.app.config, &headers),
            None,
        ),
    );
    response
}

/// `POST /console/api/sign-in`.
pub async fn sign_in(
    State(state): State<ConsoleState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request_id: RequestId,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_same_origin(&headers)?;
    let expected = cookie(&headers, SIGN_IN_CSRF_COOKIE).unwrap_or_default();
    let presented = headers
        .get(session::CSRF_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if expected.is_empty() || !session::tokens_match(presented, expected) {
        return Err(ApiError(AwsError::with_status(
            "InvalidCsrfTokenException",
            "Reload the sign-in page and try again (its form token is missing or stale).",
            403,
        )));
    }
    if !state
        .sign_in_limiter
        .try_acquire(&client.ip().to_string(), SIGN_IN_ATTEMPTS_PER_SECOND)
    {
        return Err(ApiError(AwsError::throttling(
            "Too many sign-in attempts from this address; wait a moment.",
        )));
    }
    let request: SignInRequest = serde_json::from_slice(&body).map_err(|_| {
        ApiError(AwsError::validation(
            "The body must be {\"accessKeyId\": \"…\", \"secretAccessKey\": \"…\"}.",
        ))
    })?;

    let attempt = SignInAttempt {
        state: &state,
        client,
        request_id: &request_id,
        headers: &headers,
    };
    let key = state.app.keys.get(request.access_key_id.trim());
    let secret_matches = state
        .app
        .keys
        .secret_for_active_key(request.access_key_id.trim())
        .is_some_and(|secret| session::tokens_match(&request.secret_access_key, &secret));
    let key = match key {
        Some(key) if secret_matches => key,
        known_key => {
            attempt
                .record_failure(
                    known_key.as_ref(),
                    "FailedAuthentication",
                    "Failed authentication",
                )
                .await;
            metrics::counter!("opentrail_console_sign_ins_total", "outcome" => "failed")
                .increment(1);
            return Err(ApiError(AwsError::with_status(
                "FailedAuthentication",
                "The access key ID or secret access key is wrong, or the key was revoked.",
                401,
            )));
        }
    };
    if key.role == Role::Ingest {
        attempt
            .record_failure(
                Some(&key),
                "AccessDenied",
                "Ingest keys cannot sign in to the console",
            )
            .await;
        metrics::counter!("opentrail_console_sign_ins_total", "outcome" => "denied").increment(1);
        return Err(ApiError(AwsError::access_denied(
            "Ingest keys can only write events; sign in with a read or admin key.",
        )));
    }

    // The record first: a sign-in the audit trail cannot hold does not happen.
    let record = console_sign_in_record(&SignInEvent {
        event_name: CONSOLE_LOGIN,
        key: Some(&key),
        default_account_id: &state.app.config.account_id,
        region: &state.app.config.region,
        client: Some(client),
        headers: &headers,
        request_id: request_id.as_str(),
        failure: None,
    })
    .map_err(ApiError::internal)?;
    append_now(&state, record).await?;

    let created = state
        .sessions
        .create(&key.access_key_id)
        .map_err(ApiError::internal)?;
    metrics::counter!("opentrail_console_sign_ins_total", "outcome" => "success").increment(1);
    tracing::info!(
        access_key_id = key.access_key_id.as_str(),
        "console sign-in"
    );
    let caller = Caller {
        access_key_id: key.access_key_id.clone(),
        role: key.role,
        account_id: key.account_id.clone(),
        region: state.app.config.region.clone(),
        method: crate::auth::AuthenticationMethod::BearerToken,
    };
    let signed_in = SignedIn {
        session_id: created.id.clone(),
        session: created.session,
    };
    let secure = request_is_https(&state.app.config, &headers);
    let mut response = json_response(
        StatusCode::OK,
        &SessionInfo::signed_in(&state, &caller, &signed_in),
    );
    append_cookie(
        &mut response,
        &session::set_cookie(SESSION_COOKIE, &created.id, secure, None),
    );
    append_cookie(
        &mut response,
        &session::set_cookie(SIGN_IN_CSRF_COOKIE, "", secure, Some(0)),
    );
    Ok(response)
}

/// `POST /console/api/sign-out` (behind the session and CSRF checks).
pub async fn sign_out(
    State(state): State<ConsoleState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request_id: RequestId,
    Extension(signed_in): Extension<SignedIn>,
    headers: HeaderMap,
) -> Response {
    state.sessions.remove(&signed_in.session_id);
    let key = state.app.keys.get(&signed_in.session.access_key_id);
    match console_sign_in_record(&SignInEvent {
        event_name: CONSOLE_LOGOUT,
        key: key.as_ref(),
        default_account_id: &state.app.config.account_id,
        region: &state.app.config.region,
        client: Some(client),
        headers: &headers,
        request_id: request_id.as_str(),
        failure: None,
    }) {
        // The session is gone either way; a lost sign-out record is logged, not fatal.
        Ok(record) => {
            if let Err(error) = append_now(&state, record).await {
                tracing::error!(code = error.code(), "could not record a console sign-out");
            }
        }
        Err(error) => tracing::error!(%error, "could not build a console sign-out record"),
    }
    let mut response = json_response(StatusCode::OK, &json!({ "signedIn": false }));
    append_cookie(
        &mut response,
        &session::set_cookie(
            SESSION_COOKIE,
            "",
            request_is_https(&state.app.config, &headers),
            Some(0),
        ),
    );
    response
}

struct SignInAttempt<'a> {
    state: &'a ConsoleState,
    client: SocketAddr,
    request_id: &'a RequestId,
    headers: &'a HeaderMap,
}

impl SignInAttempt<'_> {
    /// Failed attempts are recorded too (they are what an investigation looks for), but a
    /// failure to record one only goes to the log: the attempt fails anyway.
    async fn record_failure(&self, key: Option<&AccessKey>, code: &str, message: &str) {
        let record = console_sign_in_record(&SignInEvent {
            event_name: CONSOLE_LOGIN,
            key,
            default_account_id: &self.state.app.config.account_id,
            region: &self.state.app.config.region,
            client: Some(self.client),
            headers: self.headers,
            request_id: self.request_id.as_str(),
            failure: Some((code, message)),
        });
        match record {
            Ok(record) => {
                if let Err(error) = append_now(self.state, record).await {
                    tracing::error!(code = error.code(), "could not record a failed sign-in");
                }
            }
            Err(error) => tracing::error!(%error, "could not build a failed sign-in record"),
        }
    }
}

/// What a sign-in or sign-out record says.
pub struct SignInEvent<'a> {
    pub event_name: &'a str,
    /// The key signed in with; `None` when the presented id names no key.
    pub key: Option<&'a AccessKey>,
    pub default_account_id: &'a str,
    pub region: &'a str,
    pub client: Option<SocketAddr>,
    pub headers: &'a HeaderMap,
    pub request_id: &'a str,
    /// Error code and message of a failed sign-in.
    pub failure: Option<(&'a str, &'a str)>,
}

/// The CloudTrail record of a console sign-in or sign-out.
pub fn console_sign_in_record(event: &SignInEvent<'_>) -> Result<EventRecord, InvalidRecord> {
    let account_id = event
        .key
        .map_or(event.default_account_id, |key| key.account_id.as_str());
    let user_identity = match event.key {
        // The same identity shape as every other self-audit record, so a filter on the
        // access key or user name finds the key's console sessions with its API calls.
        Some(key) => json!({
            "type": "IAMUser",
            "principalId": key.access_key_id,
            "arn": format!("arn:aws:iam::{}:user/opentrail/{}", key.account_id, key.access_key_id),
            "accountId": key.account_id,
            "accessKeyId": key.access_key_id,
            "userName": key.access_key_id,
            "opentrailRole": key.role.as_str(),
        }),
        None => json!({
            "type": "IAMUser",
            "accountId": account_id,
            "userName": HIDDEN_USER_NAME,
        }),
    };
    let user_agent = event
        .headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok());
    let outcome = if event.failure.is_some() {
        "Failure"
    } else {
        "Success"
    };
    // `{"ConsoleLogin": "Success"}` as AWS writes it; `{"ConsoleLogout": …}` likewise.
    let mut response_elements = serde_json::Map::new();
    response_elements.insert(event.event_name.to_owned(), json!(outcome));
    let event_time = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut record = json!({
        "eventVersion": DEFAULT_EVENT_VERSION,
        "userIdentity": user_identity,
        "eventTime": event_time,
        "eventSource": SIGN_IN_EVENT_SOURCE,
        "eventName": event.event_name,
        "awsRegion": event.region,
        "sourceIPAddress": event.client.map(|address| address.ip().to_string()),
        "userAgent": user_agent,
        "requestParameters": null,
        "responseElements": response_elements,
        "additionalEventData": {
            "LoginTo": "/console",
            "MobileVersion": "No",
            "MFAUsed": "No",
        },
        "requestID": event.request_id,
        "eventID": uuid::Uuid::new_v4().to_string(),
        "readOnly": false,
        "eventType": SIGN_IN_EVENT_TYPE,
        "managementEvent": true,
        "recipientAccountId": account_id,
        "eventCategory": "Management",
    });
    if let (Some((code, message)), Some(object)) = (event.failure, record.as_object_mut()) {
        object.insert("errorCode".into(), json!(code));
        object.insert("errorMessage".into(), json!(message));
    }
    let context = IngestContext {
        account_id: account_id.to_owned(),
        region: event.region.to_owned(),
    };
    EventRecord::from_json_object(&record.to_string(), &context)
}

/// Appends one record and waits for it to be durable (sign-ins are rare; their record
/// must not sit in a queue when the answer says "signed in").
async fn append_now(state: &ConsoleState, record: EventRecord) -> Result<(), ApiError> {
    let store = state.app.store.clone();
    tokio::task::spawn_blocking(move || store.append(vec![record]))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    metrics::counter!("opentrail_self_audit_events_total").increment(1);
    Ok(())
}

fn is_token_shaped(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(error) => ApiError::internal(error).into_response(),
    }
}

fn append_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}
