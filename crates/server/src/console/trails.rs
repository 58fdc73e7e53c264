//! The console's trails endpoints. Each one builds the JSON 1.1 request body and runs it
//! through the API's own trail handler ([`handle_operation`]) with the session's
//! [`Caller`], so the console applies exactly the API's rules: admin keys change trails,
//! read keys only view them, another account's trail does not exist, and validation
//! messages are CloudTrail's.
//!
//! - `GET /console/api/trails[?refresh=1]` → `{"trails":[{…TrailShape, "Status": {IsLogging,
//!   LatestDeliveryTime, LatestDeliveryError, StartLoggingTime, StopLoggingTime, …}}]}`
//!   (DescribeTrails, then GetTrailStatus per trail; times are epoch seconds as in the API).
//! - `POST /console/api/trails` `{"name","bucket","prefix"?,"logFileValidation"?}` →
//!   CreateTrail's answer.
//! - `POST /console/api/trails/start` and `/stop` `{"name"}` → `{}` (StartLogging,
//!   StopLogging). The name travels in the body, not the path: a trail ARN contains `/`.
//! - `POST /console/api/trails/insights` `{"name","enabled"}` → PutInsightSelectors'
//!   answer: both Insights types on management events, or none.
//!
//! Every change is recorded by self-audit under the API operation's name, as the JSON 1.1
//! endpoint records it, so a change made in the console is as visible as one made with the
//! CLI. A list is recorded as `DescribeTrails` when the page opens, but not its background
//! refreshes (`?refresh=1`): an open page would otherwise write 720 records an hour about
//! itself.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use opentrail_protocol::AwsError;
use opentrail_protocol::json11::Operation;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::audit::CallContext;
use crate::auth::Caller;
use crate::routes::trails::handle_operation;
use crate::state::AppState;

/// What the create form sends.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateRequest {
    name: String,
    bucket: String,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    log_file_validation: bool,
}

/// What the Insights switch sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InsightsRequest {
    name: String,
    enabled: bool,
}

/// What the Start and Stop buttons send.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NameRequest {
    name: String,
}

/// `GET /console/api/trails`: every trail of the caller's account and region with its status.
pub async fn list(
    State(state): State<AppState>,
    call: CallContext,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let result = list_with_status(&state, &call.caller).await;
    let refresh = raw
        .as_deref()
        .is_some_and(|query| query.split('&').any(|pair| pair == "refresh=1"));
    if refresh {
        return result.map(Json);
    }
    call.record(
        Operation::DescribeTrails.name(),
        Some(json!({ "console": "trails" })),
        result.as_ref().err(),
    )
    .await;
    result.map(Json)
}

/// DescribeTrails, then GetTrailStatus for each trail found, through the API's handler.
pub(crate) async fn list_with_status(state: &AppState, caller: &Caller) -> Result<Value, ApiError> {
    let described = run(state, caller, Operation::DescribeTrails, &json!({})).await?;
    let shapes = described
        .get("trailList")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut trails = Vec::with_capacity(shapes.len());
    for mut shape in shapes {
        // The ARN names the trail unambiguously, whatever its home region.
        let Some(arn) = shape
            .get("TrailARN")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            continue;
        };
        let status = run(
            state,
            caller,
            Operation::GetTrailStatus,
            &json!({ "Name": arn }),
        )
        .await?;
        if let Some(object) = shape.as_object_mut() {
            object.insert("Status".to_owned(), status);
        }
        trails.push(shape);
    }
    Ok(json!({ "trails": trails }))
}

/// `POST /console/api/trails`: CreateTrail.
pub async fn create(
    State(state): State<AppState>,
    call: CallContext,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let caller = &call.caller;
    // The role is checked again inside the handler; checking first means a read key
    // learns nothing from how its malformed form would have been validated.
    let result = match caller.require_admin() {
        Ok(()) => match create_body(&body) {
            Ok(request) => run(&state, caller, Operation::CreateTrail, &request).await,
            Err(error) => Err(error),
        },
        Err(error) => Err(error),
    };
    call.record(
        Operation::CreateTrail.name(),
        Some(parameters(&body)),
        result.as_ref().err(),
    )
    .await;
    result.map(Json)
}

/// The CreateTrail request for a create form's body.
fn create_body(body: &[u8]) -> Result<Value, ApiError> {
    let request: CreateRequest = serde_json::from_slice(body).map_err(|error| {
        validation(format!(
            "The request body must be {{\"name\", \"bucket\", \"prefix\"?, \"logFileValidation\"?}}: {error}"
        ))
    })?;
    let mut wire = json!({
        "Name": request.name.trim(),
        "S3BucketName": request.bucket.trim(),
        "EnableLogFileValidation": request.log_file_validation,
    });
    // An empty prefix field means no prefix, not an empty-string prefix.
    if let Some(prefix) = request
        .prefix
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        && let Some(object) = wire.as_object_mut()
    {
        object.insert("S3KeyPrefix".to_owned(), Value::from(prefix));
    }
    Ok(wire)
}

/// `POST /console/api/trails/start`: StartLogging.
pub async fn start(
    state: State<AppState>,
    call: CallContext,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    switch(Operation::StartLogging, state, call, body).await
}

/// `POST /console/api/trails/stop`: StopLogging.
pub async fn stop(
    state: State<AppState>,
    call: CallContext,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    switch(Operation::StopLogging, state, call, body).await
}

/// `POST /console/api/trails/insights` `{"name","enabled"}`: PutInsightSelectors, both
/// Insights types on management events, or none.
pub async fn insights(
    State(state): State<AppState>,
    call: CallContext,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let caller = &call.caller;
    let result = match caller.require_admin() {
        Ok(()) => match serde_json::from_slice::<InsightsRequest>(&body) {
            Ok(request) => {
                let selectors = if request.enabled {
                    json!([
                        { "InsightType": "ApiCallRateInsight" },
                        { "InsightType": "ApiErrorRateInsight" },
                    ])
                } else {
                    json!([])
                };
                run(
                    &state,
                    caller,
                    Operation::PutInsightSelectors,
                    &json!({ "TrailName": request.name, "InsightSelectors": selectors }),
                )
                .await
            }
            Err(error) => Err(validation(format!(
                "The request body must be {{\"name\": \"<trail name or ARN>\", \"enabled\": true|false}}: {error}"
            ))),
        },
        Err(error) => Err(error),
    };
    call.record(
        Operation::PutInsightSelectors.name(),
        Some(parameters(&body)),
        result.as_ref().err(),
    )
    .await;
    result.map(Json)
}

async fn switch(
    operation: Operation,
    State(state): State<AppState>,
    call: CallContext,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let caller = &call.caller;
    let result = match caller.require_admin() {
        Ok(()) => match serde_json::from_slice::<NameRequest>(&body) {
            Ok(request) => run(&state, caller, operation, &json!({ "Name": request.name })).await,
            Err(error) => Err(validation(format!(
                "The request body must be {{\"name\": \"<trail name or ARN>\"}}: {error}"
            ))),
        },
        Err(error) => Err(error),
    };
    call.record(
        operation.name(),
        Some(parameters(&body)),
        result.as_ref().err(),
    )
    .await;
    result.map(|_| Json(json!({})))
}

/// Runs one JSON 1.1 trail operation with the caller's rights and parses its answer.
pub(crate) async fn run(
    state: &AppState,
    caller: &Caller,
    operation: Operation,
    request: &Value,
) -> Result<Value, ApiError> {
    let body = serde_json::to_vec(request).map_err(ApiError::internal)?;
    let wire = handle_operation(&state.trails, caller, operation, &body).await?;
    if wire.body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&wire.body).map_err(ApiError::internal)
}

/// The request as self-audit records it: the form carries no secrets; a body that is not
/// JSON is noted rather than dropped silently.
fn parameters(body: &[u8]) -> Value {
    let sent = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    json!({ "console": "trails", "request": sent })
}

fn validation(message: String) -> ApiError {
    ApiError(AwsError::validation(message))
}
