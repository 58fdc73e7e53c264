//! Channel operations of the JSON 1.1 control plane.

use axum::response::Response;
use opentrail_protocol::AwsError;
use opentrail_protocol::json11::Operation;

use crate::api_error::ApiError;
use crate::app::AppState;
use crate::auth::Caller;

/// CreateChannel, GetChannel, ListChannels, UpdateChannel, DeleteChannel.
pub async fn handle(
    state: &AppState,
    caller: &Caller,
    operation: Operation,
    body: &[u8],
) -> Result<Response, ApiError> {
    let _ = (state, caller, body);
    Err(ApiError(AwsError::unknown_operation(format!(
        "The operation {} is not implemented by OpenTrail yet.",
        operation.name()
    ))))
}
