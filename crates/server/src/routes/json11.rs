//! `POST /`: the AWS JSON 1.1 control plane, dispatched on `X-Amz-Target`.
//!
//! Every call is recorded by self-audit (with its error code when it failed).
//! Operations OpenTrail does not implement answer `UnknownOperationException`.

use axum::extract::State;
use axum::response::Response;
use opentrail_protocol::AwsError;
use opentrail_protocol::json11::{self, Operation};
use opentrail_protocol::lookup_events::{
    Event, EventInput, LookupEventsRequest, LookupEventsResponse, ResourceInput,
};

use crate::api_error::ApiError;
use crate::audit::CallContext;
use crate::auth::Caller;
use crate::auth::RequestBody;
use crate::lookup::{lookup_events_query, run_lookup};
use crate::state::AppState;

pub async fn dispatch(
    State(state): State<AppState>,
    call: CallContext,
    RequestBody(body): RequestBody,
) -> Result<Response, ApiError> {
    let operation = json11::operation_from_headers(call.headers())?;
    let caller = &call.caller;
    let result = match operation {
        Operation::LookupEvents => lookup_events(&state, caller, &body).await,
        Operation::CreateChannel
        | Operation::GetChannel
        | Operation::ListChannels
        | Operation::UpdateChannel
        | Operation::DeleteChannel => {
            crate::routes::channels::handle(&state, caller, operation, &body).await
        }
        Operation::CreateTrail
        | Operation::GetTrail
        | Operation::DescribeTrails
        | Operation::ListTrails
        | Operation::UpdateTrail
        | Operation::DeleteTrail
        | Operation::StartLogging
        | Operation::StopLogging
        | Operation::GetTrailStatus
        | Operation::PutEventSelectors
        | Operation::GetEventSelectors
        | Operation::PutInsightSelectors
        | Operation::GetInsightSelectors
        | Operation::AddTags
        | Operation::ListTags
        | Operation::RemoveTags
        | Operation::ListPublicKeys => {
            crate::routes::trails::handle(&state, caller, operation, &body).await
        }
        Operation::CreateEventDataStore
        | Operation::GetEventDataStore
        | Operation::ListEventDataStores
        | Operation::UpdateEventDataStore
        | Operation::DeleteEventDataStore
        | Operation::RestoreEventDataStore
        | Operation::StartQuery
        | Operation::DescribeQuery
        | Operation::GetQueryResults
        | Operation::ListQueries
        | Operation::CancelQuery => {
            crate::routes::lake::handle(&state, caller, operation, &body).await
        }
        Operation::ListInsightsMetricData => {
            crate::routes::insights::list_insights_metric_data(&state, caller, &body).await
        }
        other => Err(ApiError(AwsError::unknown_operation(format!(
            "The operation {} is not implemented by OpenTrail.",
            other.name()
        )))),
    };
    call.record(
        operation.name(),
        request_parameters(&body),
        result.as_ref().err(),
    )
    .await;
    result
}

/// The request body as recorded by self-audit: JSON 1.1 requests carry no secrets, so the
/// parameters are kept as sent; a body that is not JSON is left out.
fn request_parameters(body: &[u8]) -> Option<serde_json::Value> {
    if body.is_empty() {
        return None;
    }
    serde_json::from_slice(body).ok()
}

/// LookupEvents exactly as CloudTrail's (one attribute, MaxResults ≤ 50, NextToken bound
/// to its parameters), scoped to the signing region and the caller's account, with data
/// events included.
async fn lookup_events(
    state: &AppState,
    caller: &Caller,
    body: &[u8],
) -> Result<Response, ApiError> {
    caller.require_read()?;
    if let Some(per_second) = state.config.lookup_rate_limit_per_key_per_second
        && !state
            .rate_limiter
            .try_acquire(&caller.access_key_id, per_second)
    {
        return Err(ApiError(AwsError::throttling("Rate exceeded")));
    }
    let request: LookupEventsRequest = json11::parse_body(body)?;
    let lookup = request.validate()?;
    let query = lookup_events_query(state, caller, &lookup)?;
    let page = run_lookup(state, query).await?;
    let events = page
        .events
        .iter()
        .map(|stored| {
            let record = &stored.record;
            let attributes = &record.attributes;
            Event::from(EventInput {
                event_id: record.event_id.clone(),
                event_name: Some(attributes.event_name.clone()),
                read_only: attributes.read_only,
                access_key_id: attributes.access_key_id.clone(),
                event_time_ms: record.event_time_ms,
                event_source: Some(attributes.event_source.clone()),
                username: attributes.username.clone(),
                resources: attributes
                    .resources
                    .iter()
                    .map(|resource| ResourceInput {
                        resource_type: resource.resource_type.clone(),
                        resource_name: resource.resource_name.clone(),
                    })
                    .collect(),
                record_json: record.json.clone(),
            })
        })
        .collect();
    let response = LookupEventsResponse {
        events,
        next_token: page
            .next
            .map(|cursor| lookup.encode_next_token(&cursor.to_bytes())),
    };
    Ok(crate::api_error::wire_response_into_http(
        json11::ok_response(&response),
    ))
}
