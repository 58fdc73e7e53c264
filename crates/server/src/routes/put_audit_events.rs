//! `POST /PutAuditEvents`: the cloudtrail-data REST-JSON API.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use opentrail_protocol::AwsError;

use crate::api_error::{ApiError, wire_response_into_http};
use crate::app::AppState;
use crate::auth::Caller;

pub async fn put_audit_events(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let _ = (state, caller, query, body);
    Ok(wire_response_into_http(
        AwsError::data(
            "UnsupportedOperationException",
            "PutAuditEvents is not implemented yet.",
        )
        .to_rest_json(),
    ))
}
