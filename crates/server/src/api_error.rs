//! Turning protocol errors into HTTP responses.
//!
//! The protocol crate decides codes, statuses and bodies ([`AwsError`] renders a plain
//! [`WireResponse`]); this module only copies that data into an axum response, so the
//! wire shape has one owner.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use opentrail_protocol::{AwsError, WireResponse};

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// An error answered in the awsJson1_1 shape: `{"__type", "message"}` plus the
/// `x-amzn-ErrorType` header. The native `/v1/...` API uses the same shape, so one client
/// error parser serves both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError(pub AwsError);

impl ApiError {
    pub fn code(&self) -> &str {
        &self.0.code
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// For failures that are the server's fault: the detail goes to the log (with the
    /// request id of the surrounding span), never to the client.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal failure");
        ApiError(AwsError::internal_failure())
    }
}

impl From<AwsError> for ApiError {
    fn from(error: AwsError) -> Self {
        ApiError(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let overloaded = self.0.status == 503;
        let mut response = wire_response_into_http(self.0.to_json11());
        if overloaded {
            // Tells well-behaved clients (and our own CLI) when to retry.
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

/// Copies a protocol-rendered response into an HTTP response. Public so the lead's
/// restJson1 routes (PutAuditEvents) can send `AwsError::to_rest_json()` the same way.
pub fn wire_response_into_http(wire: WireResponse) -> Response {
    let status = StatusCode::from_u16(wire.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, wire.body).into_response();
    let headers = response.headers_mut();
    for (name, value) in wire.headers {
        // Header names come from the protocol crate's constants; values are error codes
        // and content types. A value that is not a valid header is dropped, not fatal.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    }
    response
}
