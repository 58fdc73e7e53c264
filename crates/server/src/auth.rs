//! Authentication: every request except `GET /health` proves which key sent it.
//!
//! Two ways are accepted:
//! - **SigV4** (`Authorization: AWS4-HMAC-SHA256 …`), what the aws CLI, boto3 and our own
//!   CLI send. The body is read (up to the configured limit) because the signature covers
//!   its hash; handlers then get the same bytes back as the request body.
//! - **Bearer token** (`Authorization: Bearer otb_…`), for producers that cannot sign.
//!   Tokens are handed out with `ingest` keys.
//!
//! The [`authenticate`] middleware puts a [`Caller`] into the request extensions; handlers
//! take it as an extractor. Authorisation (what a role may do) stays with each handler,
//! via the helpers on [`Caller`].

use axum::body::{Body, Bytes};
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use opentrail_protocol::AwsError;
use opentrail_protocol::sigv4::{self, SignedRequest, VerifiedRequest};

use crate::api_error::ApiError;
use crate::config::Config;
use crate::keys::{AccessKey, KeyStore, Role};

/// SigV4 service name of the control plane and of our native `/v1/...` API.
pub const CLOUDTRAIL_SIGNING_SERVICE: &str = "cloudtrail";
/// SigV4 service name boto3's `cloudtrail-data` client signs `PutAuditEvents` with.
pub const CLOUDTRAIL_DATA_SIGNING_SERVICE: &str = "cloudtrail-data";

/// The authenticated sender of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub access_key_id: String,
    pub role: Role,
    pub account_id: String,
    /// The region the request was signed for; for bearer tokens, the configured default
    /// region (a token carries no region).
    pub region: String,
    pub method: AuthenticationMethod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthenticationMethod {
    SigV4,
    BearerToken,
}

impl Caller {
    /// An admin of the default account administers, and sees, every account.
    pub fn is_admin_of_default_account(&self, default_account_id: &str) -> bool {
        self.role == Role::Admin && self.account_id == default_account_id
    }

    /// Whether this caller may see or act on data of `account_id`: its own account, or
    /// any account for an admin of the default account.
    pub fn may_access_account(&self, account_id: &str, default_account_id: &str) -> bool {
        self.account_id == account_id || self.is_admin_of_default_account(default_account_id)
    }

    /// Admins only (key management).
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Read | Role::Ingest => Err(self.denied("requires an admin key")),
        }
    }

    /// Admins and readers (lookup, queries).
    pub fn require_read(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin | Role::Read => Ok(()),
            Role::Ingest => Err(self.denied("requires a read or admin key")),
        }
    }

    /// Admins and ingest keys (writing events). A read key never writes.
    pub fn require_ingest(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin | Role::Ingest => Ok(()),
            Role::Read => Err(self.denied("requires an ingest or admin key")),
        }
    }

    fn denied(&self, requirement: &str) -> ApiError {
        ApiError(AwsError::access_denied(format!(
            "Access key {} with role {} is not authorized to perform this operation: it {requirement}.",
            self.access_key_id, self.role
        )))
    }

    fn from_key(key: AccessKey, region: String, method: AuthenticationMethod) -> Caller {
        Caller {
            access_key_id: key.access_key_id,
            role: key.role,
            account_id: key.account_id,
            region,
            method,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            // A route that takes a Caller but is not behind `authenticate` is a wiring bug.
            ApiError::internal("a handler asked for the caller on an unauthenticated route")
        })
    }
}

/// What the [`authenticate`] middleware checks requests against: the keys, and the
/// configuration (region, body limit).
#[derive(Clone)]
pub struct Authenticator {
    pub keys: KeyStore,
    pub config: std::sync::Arc<Config>,
}

/// Middleware: authenticates the request or answers with the AWS error for why not.
pub async fn authenticate(
    State(state): State<Authenticator>,
    request: Request,
    next: Next,
) -> Response {
    match authenticate_request(&state, request).await {
        Ok((caller, mut request)) => {
            tracing::Span::current().record("access_key_id", caller.access_key_id.as_str());
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => {
            tracing::info!(code = error.code(), "authentication failed");
            error.into_response()
        }
    }
}

/// The SigV4 service name a path must be signed for.
pub fn signing_service_for_path(path: &str) -> &'static str {
    if path == "/PutAuditEvents" {
        CLOUDTRAIL_DATA_SIGNING_SERVICE
    } else {
        CLOUDTRAIL_SIGNING_SERVICE
    }
}

/// Verifies a SigV4 request against the key store's active secrets.
pub fn verify_signature(
    keys: &KeyStore,
    parts: &Parts,
    body: &[u8],
    now: jiff::Timestamp,
) -> Result<VerifiedRequest, ApiError> {
    let signed_request = SignedRequest::from_parts(parts, body);
    sigv4::verify(
        &signed_request,
        now,
        signing_service_for_path(parts.uri.path()),
        |access_key_id| keys.secret_for_active_key(access_key_id),
    )
    .map_err(|error| ApiError(error.to_aws_error()))
}

enum PresentedCredentials<'a> {
    Nothing,
    BearerToken(&'a str),
    /// Anything else in `Authorization` is left to the SigV4 parser, which names what is
    /// wrong with it (`IncompleteSignatureException`).
    Signature,
}

fn presented_credentials(headers: &HeaderMap) -> PresentedCredentials<'_> {
    const BEARER_SCHEME: &str = "bearer ";
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return PresentedCredentials::Nothing;
    };
    let Ok(text) = value.to_str() else {
        return PresentedCredentials::Signature;
    };
    match text.get(..BEARER_SCHEME.len()) {
        Some(scheme) if scheme.eq_ignore_ascii_case(BEARER_SCHEME) => {
            PresentedCredentials::BearerToken(text[BEARER_SCHEME.len()..].trim())
        }
        _ => PresentedCredentials::Signature,
    }
}

async fn authenticate_request(
    state: &Authenticator,
    request: Request,
) -> Result<(Caller, Request), ApiError> {
    match presented_credentials(request.headers()) {
        PresentedCredentials::Nothing => Err(ApiError(AwsError::missing_authentication_token())),
        PresentedCredentials::BearerToken(token) => {
            let key = state
                .keys
                .key_for_bearer_token(token)
                .ok_or_else(|| ApiError(AwsError::unrecognized_client()))?;
            let caller = Caller::from_key(
                key,
                state.config.region.clone(),
                AuthenticationMethod::BearerToken,
            );
            Ok((caller, request))
        }
        PresentedCredentials::Signature => {
            let (parts, body) = request.into_parts();
            let body_bytes =
                read_body_within_limit(body, state.config.ingest_body_bytes_max).await?;
            let verified =
                verify_signature(&state.keys, &parts, &body_bytes, jiff::Timestamp::now())?;
            // The key may have been revoked between verification and here.
            let key = state
                .keys
                .get(&verified.access_key_id)
                .filter(AccessKey::is_active)
                .ok_or_else(|| ApiError(AwsError::unrecognized_client()))?;
            let caller = Caller::from_key(key, verified.region, AuthenticationMethod::SigV4);
            Ok((caller, Request::from_parts(parts, Body::from(body_bytes))))
        }
    }
}

/// Reads the whole body, answering 413 past `limit_bytes` so memory stays bounded.
pub async fn read_body_within_limit(body: Body, limit_bytes: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit_bytes)
        .await
        .map_err(|error| body_read_error(&error, limit_bytes))
}

/// A request body read whole, for handlers: like axum's `Bytes`, but a body past the
/// ingest limit answers 413 and one that stops arriving 408 (`RequestTimeoutException`,
/// which SDKs retry), both in the AWS error shape.
pub struct RequestBody(pub Bytes);

/// The most bytes a request body may have (`ingest_body_bytes_max`), for the handlers'
/// state to hand to [`RequestBody`].
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

impl<S> FromRequest<S> for RequestBody
where
    S: Send + Sync,
    BodyLimit: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let BodyLimit(limit_bytes) = BodyLimit::from_ref(state);
        // `DefaultBodyLimit` (routes) has already wrapped the body in that limit; the
        // figure is for the error message.
        axum::body::to_bytes(request.into_body(), usize::MAX)
            .await
            .map(RequestBody)
            .map_err(|error| body_read_error(&error, limit_bytes))
    }
}

fn body_read_error(error: &axum::Error, limit_bytes: usize) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(current) = source {
        if current.is::<http_body_util::LengthLimitError>() {
            return ApiError(AwsError::request_entity_too_large(limit_bytes));
        }
        if current.is::<tower_http::timeout::TimeoutError>() {
            return ApiError(AwsError::with_status(
                "RequestTimeoutException",
                "The request body stopped arriving before it was complete; send it again.",
                408,
            ));
        }
        source = current.source();
    }
    ApiError(AwsError::validation(format!(
        "The request body could not be read: {error}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn caller(role: Role, account_id: &str) -> Caller {
        Caller {
            access_key_id: "OTAKTESTTESTTESTTEST".to_owned(),
            role,
            account_id: account_id.to_owned(),
            region: "us-east-1".to_owned(),
            method: AuthenticationMethod::SigV4,
        }
    }

    #[test]
    fn roles_map_to_permissions() {
        let admin = caller(Role::Admin, "111111111111");
        let reader = caller(Role::Read, "111111111111");
        let ingester = caller(Role::Ingest, "111111111111");
        assert!(
            admin.require_admin().is_ok()
                && admin.require_read().is_ok()
                && admin.require_ingest().is_ok()
        );
        assert!(
            reader.require_admin().is_err()
                && reader.require_read().is_ok()
                && reader.require_ingest().is_err()
        );
        assert!(
            ingester.require_admin().is_err()
                && ingester.require_read().is_err()
                && ingester.require_ingest().is_ok()
        );
        let denied = reader.require_ingest().expect_err("read key cannot write");
        assert_eq!(denied.code(), "AccessDeniedException");
        assert_eq!(denied.0.status, 403);
    }

    #[test]
    fn only_an_admin_of_the_default_account_crosses_accounts() {
        let default_account = "123456789012";
        let default_admin = caller(Role::Admin, default_account);
        let default_reader = caller(Role::Read, default_account);
        let other_admin = caller(Role::Admin, "210987654321");
        assert!(default_admin.may_access_account("555555555555", default_account));
        assert!(!default_reader.may_access_account("555555555555", default_account));
        assert!(!other_admin.may_access_account(default_account, default_account));
        assert!(other_admin.may_access_account("210987654321", default_account));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_other_schemes_go_to_sigv4() {
        let mut headers = HeaderMap::new();
        assert!(matches!(
            presented_credentials(&headers),
            PresentedCredentials::Nothing
        ));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  otb_abc "),
        );
        assert!(matches!(
            presented_credentials(&headers),
            PresentedCredentials::BearerToken("otb_abc")
        ));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=x"),
        );
        assert!(matches!(
            presented_credentials(&headers),
            PresentedCredentials::Signature
        ));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        );
        assert!(matches!(
            presented_credentials(&headers),
            PresentedCredentials::Signature
        ));
    }

    #[test]
    fn put_audit_events_is_signed_for_cloudtrail_data() {
        assert_eq!(
            signing_service_for_path("/PutAuditEvents"),
            "cloudtrail-data"
        );
        assert_eq!(signing_service_for_path("/"), "cloudtrail");
        assert_eq!(signing_service_for_path("/v1/keys"), "cloudtrail");
    }

    #[tokio::test]
    async fn oversized_body_is_413_and_small_body_passes() {
        let error = read_body_within_limit(Body::from(vec![0u8; 11]), 10)
            .await
            .expect_err("too large");
        assert_eq!(error.code(), "RequestEntityTooLargeException");
        assert_eq!(error.0.status, 413);
        let bytes = read_body_within_limit(Body::from(vec![1u8; 10]), 10)
            .await
            .expect("fits");
        assert_eq!(bytes.len(), 10);
    }
}
