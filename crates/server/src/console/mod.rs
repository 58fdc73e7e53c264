//! The web console at `/console`: sign-in with an access key, Event history, event
//! detail, export, trails and key management, served from files embedded in the binary.
//!
//! - [`assets`]: the embedded HTML, CSS and JavaScript (`crates/server/console/`).
//! - [`session`]: the server-side session table, cookies and CSRF tokens.
//! - [`sign_in`]: `GET /console/api/session`, `POST /console/api/sign-in`,
//!   `POST /console/api/sign-out`, each sign-in and sign-out recorded as a `ConsoleLogin`
//!   or `ConsoleLogout` event (`eventSource` `signin.amazonaws.com`, `eventType`
//!   `AwsConsoleSignIn`, as AWS records console sign-ins).
//! - [`events`]: the data endpoints: a page of rows, the live tail, one record, and
//!   streamed CSV or JSON export.
//! - [`trails`]: list with status, create, start and stop, through the JSON 1.1 trail
//!   handler with the session's caller.
//! - [`insights`]: the Insights periods found, and one series' per-minute timeline with
//!   its baseline band.
//! - [`alerts`]: the newest alerts with their acknowledgements, and acknowledging one
//!   through the API's own handler.
//! - [`query`]: SQL over the events (CloudTrail Lake): the account's event data stores,
//!   sample queries, starting, polling, paging, downloading and cancelling a query through
//!   the Lake API's own handler, the query history, and saved queries kept per account in
//!   `DATA_DIR/console/saved-queries.json`.
//!
//! The console authenticates by cookie, so it is merged beside, not behind, the SigV4
//! layer. [`require_session`] turns a session into the same [`Caller`] the API's
//! authentication produces, so every data endpoint checks roles and account scoping with
//! the same code as the API; the keys endpoints *are* the API's handlers.
//!
//! **Adding a page**: add its data routes to
//! `signed_in` in [`router`] (handlers take `caller: Caller` and check the role like any
//! API handler), and register the page in `PAGES` in `console/assets/console.js`.

pub mod alerts;
pub mod assets;
pub mod events;
pub mod insights;
pub mod query;
pub mod session;
pub mod sign_in;
#[cfg(test)]
mod tests;
pub mod trails;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use opentrail_protocol::AwsError;

use crate::api_error::ApiError;
use crate::audit::AuditRecorder;
use crate::auth::{AuthenticationMethod, Caller};
use crate::config::Config;
use crate::keys::AccessKey;
use crate::rate_limit::RateLimiter;
use crate::routes::keys;
use crate::state::AppState;
use session::{CSRF_HEADER, SESSION_COOKIE, Session, SessionLimits, SessionStore};

/// Console request bodies are sign-in forms and key requests: small.
const CONSOLE_BODY_BYTES_MAX: usize = 16 * 1024;

/// `default-src 'none'` and only our own origin for scripts, styles, images and fetches:
/// event data is attacker-influenced text, so even an injection bug could neither run
/// inline script nor send data elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// What the console's handlers share.
#[derive(Clone)]
pub struct ConsoleState {
    pub app: AppState,
    pub sessions: SessionStore,
    /// Sign-in attempts per client address: bounds guessing and the self-audit records
    /// failed attempts produce.
    pub sign_in_limiter: RateLimiter,
    /// The Query page's saved queries, per account.
    pub saved_queries: query::SavedQueries,
}

impl FromRef<ConsoleState> for AppState {
    fn from_ref(console: &ConsoleState) -> AppState {
        console.app.clone()
    }
}

impl FromRef<ConsoleState> for AuditRecorder {
    fn from_ref(console: &ConsoleState) -> AuditRecorder {
        console.app.audit.clone()
    }
}

impl FromRef<ConsoleState> for crate::auth::BodyLimit {
    fn from_ref(console: &ConsoleState) -> crate::auth::BodyLimit {
        crate::auth::BodyLimit::from_ref(&console.app)
    }
}

/// Where the console is served.
pub const PATH: &str = "/console";

/// The console's routes (all under [`PATH`]), to be merged into the application router
/// outside the SigV4 layer.
pub fn router(app: AppState) -> Router<AppState> {
    router_with_sessions(app, SessionStore::new(SessionLimits::default()))
}

/// [`router`] with a given session table (tests use short limits).
pub fn router_with_sessions(app: AppState, sessions: SessionStore) -> Router<AppState> {
    Router::new()
        .nest(PATH, console_routes(app, sessions))
        // A nested router does not see its prefix with a trailing slash.
        .route("/console/", get(assets::index))
        .layer(middleware::from_fn(security_headers))
}

fn console_routes(app: AppState, sessions: SessionStore) -> Router<AppState> {
    let state = ConsoleState {
        saved_queries: query::SavedQueries::new(&app.config.data_dir),
        app,
        sessions,
        sign_in_limiter: RateLimiter::default(),
    };
    let signed_in = Router::new()
        .route("/api/events", get(events::list))
        .route("/api/events/tail", get(events::tail))
        .route("/api/event", get(events::detail))
        .route("/api/export", get(events::export))
        // The API's own handlers: the same admin check and account scoping as /v1/keys.
        .route("/api/keys", get(keys::list_keys).post(keys::create_key))
        .route("/api/keys/{access_key_id}", delete(keys::revoke_key))
        // The trails API's own handler behind each, with the session's caller.
        .route("/api/trails", get(trails::list).post(trails::create))
        .route("/api/trails/start", post(trails::start))
        .route("/api/trails/stop", post(trails::stop))
        .route("/api/trails/insights", post(trails::insights))
        .route("/api/insights", get(insights::periods))
        .route("/api/insights/timeline", get(insights::timeline))
        .route("/api/alerts", get(alerts::list))
        // The API's own handler: admin keys acknowledge, scoped to their account.
        .route(
            "/api/alerts/{alert_id}/acknowledge",
            post(crate::routes::alerts::acknowledge_alert),
        )
        // CloudTrail Lake: StartQuery, DescribeQuery and CancelQuery are the API's own
        // handler with the session's caller.
        .route("/api/query/data-stores", get(query::data_stores))
        .route("/api/query/samples", get(query::samples))
        .route("/api/query/sample-sql", get(query::sample_sql))
        .route("/api/query/start", post(query::start))
        .route("/api/query/status", get(query::status))
        .route("/api/query/results", get(query::results))
        .route("/api/query/download", get(query::download))
        .route("/api/query/cancel", post(query::cancel))
        .route("/api/query/history", get(query::history))
        .route(
            "/api/query/saved",
            get(query::saved_list).post(query::saved_save),
        )
        .route("/api/query/saved/{id}", delete(query::saved_delete))
        .route("/api/sign-out", post(sign_in::sign_out))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_session,
        ));
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{*file}", get(assets::asset))
        .route("/api/session", get(sign_in::session))
        .route("/api/sign-in", post(sign_in::sign_in))
        .merge(signed_in)
        .route("/api/{*rest}", any(api_not_found))
        // Every other path is a page of the single-page app (`/console/events`, …).
        .route("/{*page}", get(assets::index))
        .layer(DefaultBodyLimit::max(CONSOLE_BODY_BYTES_MAX))
        .with_state(state)
}

/// The signed-in session of a request, for handlers behind [`require_session`].
#[derive(Clone)]
pub struct SignedIn {
    pub session_id: String,
    pub session: Session,
}

/// The session id is a credential: `{:?}` shows the session, never the id.
impl std::fmt::Debug for SignedIn {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SignedIn")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// Middleware: a live session whose key is still active, and for state-changing methods a
/// same-origin request carrying the session's CSRF token. Puts the [`Caller`] and
/// [`SignedIn`] into the request for handlers.
pub async fn require_session(
    State(state): State<ConsoleState>,
    mut request: Request,
    next: Next,
) -> Response {
    match authenticate(&state, request.method(), request.headers()) {
        Ok((caller, signed_in)) => {
            tracing::Span::current().record("access_key_id", caller.access_key_id.as_str());
            request.extensions_mut().insert(caller);
            request.extensions_mut().insert(signed_in);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

/// The caller behind a request's session cookie.
pub fn authenticate(
    state: &ConsoleState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(Caller, SignedIn), ApiError> {
    let session_id = cookie(headers, SESSION_COOKIE).ok_or_else(not_signed_in)?;
    let session = state.sessions.touch(session_id).ok_or_else(not_signed_in)?;
    let Some(key) = state
        .app
        .keys
        .get(&session.access_key_id)
        .filter(AccessKey::is_active)
    else {
        // Revoked since sign-in: the session ends with the key.
        state.sessions.remove(session_id);
        return Err(not_signed_in());
    };
    if is_state_changing(method) {
        require_same_origin(headers)?;
        let presented = header_text(headers, CSRF_HEADER).unwrap_or_default();
        if !session::tokens_match(presented, &session.csrf_token) {
            return Err(csrf_rejected());
        }
    }
    let caller = Caller {
        access_key_id: key.access_key_id,
        role: key.role,
        account_id: key.account_id,
        region: state.app.config.region.clone(),
        // A session cookie is a bearer credential: whoever holds it is the key.
        method: AuthenticationMethod::BearerToken,
    };
    Ok((
        caller,
        SignedIn {
            session_id: session_id.to_owned(),
            session,
        },
    ))
}

fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Browsers say where a request came from; a cross-site one never changes state. (The
/// CSRF token is the real check: this is defence in depth for browsers without it.)
pub fn require_same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    // `Sec-Fetch-Site` is set by the browser itself and survives reverse proxies, so it
    // decides when present.
    if let Some(site) = header_text(headers, "sec-fetch-site") {
        return if matches!(site, "same-origin" | "none") {
            Ok(())
        } else {
            Err(csrf_rejected())
        };
    }
    // Older browsers: compare `Origin` with the host the browser addressed (a proxy may
    // have rewritten `Host` and kept the original in `X-Forwarded-Host`).
    if let Some(origin) = header_text(headers, header::ORIGIN.as_str()) {
        let origin_host = origin
            .split_once("://")
            .map_or(origin, |(_, host)| host)
            .trim_end_matches('/');
        let addressed = [header::HOST.as_str(), "x-forwarded-host"]
            .into_iter()
            .filter_map(|name| header_text(headers, name));
        if !addressed.into_iter().any(|host| host == origin_host) {
            return Err(csrf_rejected());
        }
    }
    Ok(())
}

/// The value of a cookie, looking through every `Cookie` header (HTTP/2 may split them).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|text| session::cookie_value(text, name))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Whether cookies should be marked `Secure`: when the browser reached us over HTTPS
/// (usually through a TLS-terminating proxy). A forged header only makes cookies stricter.
pub fn request_is_https(config: &Config, headers: &HeaderMap) -> bool {
    // Served over TLS by this server itself, or by a proxy in front that says so.
    config.tls_cert.is_some()
        || header_text(headers, "x-forwarded-proto")
            .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
        || header_text(headers, header::ORIGIN.as_str())
            .is_some_and(|origin| origin.starts_with("https://"))
}

pub fn not_signed_in() -> ApiError {
    ApiError(AwsError::with_status(
        "NotSignedInException",
        "Sign in to the console first (the session is missing, expired, or its key was revoked).",
        401,
    ))
}

fn csrf_rejected() -> ApiError {
    ApiError(AwsError::with_status(
        "InvalidCsrfTokenException",
        "The request did not carry this session's CSRF token, or came from another site.",
        403,
    ))
}

async fn api_not_found() -> ApiError {
    ApiError(AwsError::with_status(
        "ResourceNotFoundException",
        "No such console API.",
        404,
    ))
}

/// Outermost console layer: browser hardening headers on every response, and
/// `Cache-Control: no-store` unless a handler chose otherwise (data must not linger in
/// shared caches).
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        // Console URLs carry filters (user names, IPs): never leak them to other sites.
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
