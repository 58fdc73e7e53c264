//! `POST /`: the AWS JSON 1.1 control plane, dispatched on `X-Amz-Target`.
//!
//! This is the extension point for LookupEvents, channels and trails: add a
//! `match operation { Operation::LookupEvents => …, _ => unknown }` here. Until an
//! operation is implemented it answers `UnknownOperationException`, which is what the
//! issue asks for and what botocore reports cleanly.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use opentrail_protocol::AwsError;
use opentrail_protocol::json11;

use crate::api_error::ApiError;
use crate::app::AppState;
use crate::auth::Caller;

pub async fn dispatch(
    State(_state): State<AppState>,
    _caller: Caller,
    headers: HeaderMap,
    _body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    let operation = json11::operation_from_headers(&headers)?;
    Err(ApiError(AwsError::unknown_operation(format!(
        "The operation {} is not implemented by OpenTrail yet.",
        operation.name()
    ))))
}
