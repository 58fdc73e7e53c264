//! ListInsightsMetricData: the per-minute series behind Insights, for the caller's account
//! and the region the call was signed for (JSON 1.1).

use axum::response::Response;
use opentrail_insights::{InsightType, MetricQuery, SourceCategory};
use opentrail_protocol::AwsError;
use opentrail_protocol::error::codes;
use opentrail_protocol::insights_metrics::ListInsightsMetricDataRequest;
use opentrail_protocol::json11;
use opentrail_protocol::trails::parse_trail_name_or_arn;
use opentrail_trails::Scope;

use crate::api_error::{ApiError, wire_response_into_http};
use crate::auth::Caller;
use crate::state::AppState;

/// Read role, as LookupEvents (the model links the two permissions). Without `TrailName`
/// the series is of management events; with it, of the data events that trail logs.
pub async fn list_insights_metric_data(
    state: &AppState,
    caller: &Caller,
    body: &[u8],
) -> Result<Response, ApiError> {
    caller.require_read()?;
    let request: ListInsightsMetricDataRequest = json11::parse_body(body)?;
    let query = request.validate(jiff::Timestamp::now().as_millisecond())?;
    let insight_type = InsightType::parse(&query.insight_type).ok_or_else(|| {
        AwsError::invalid_parameter(format!(
            "InsightType '{}' is not valid.",
            query.insight_type
        ))
    })?;
    let (category, trail_arn) = match &query.trail_name {
        None => (SourceCategory::Management, None),
        Some(name) => (
            SourceCategory::Data,
            Some(trail_arn_of(state, caller, name)?),
        ),
    };
    let metric_query = MetricQuery {
        account_id: caller.account_id.clone(),
        region: caller.region.clone(),
        event_source: query.event_source.clone(),
        event_name: query.event_name.clone(),
        insight_type,
        error_code: query.error_code.clone(),
        category,
        start_ms: query.start_ms,
        end_ms: query.end_ms,
        period_seconds: query.period_seconds,
        fill_with_zeros: query.fill_with_zeros,
    };
    let insights = state.insights.clone();
    let points = tokio::task::spawn_blocking(move || insights.metric_data(&metric_query))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let mut response = query.page(&points)?;
    response.trail_arn = trail_arn;
    Ok(wire_response_into_http(json11::ok_response(&response)))
}

/// The ARN of the caller's trail `name` (a name or an ARN). The model lists no
/// TrailNotFound for this operation: an unknown trail is an invalid trail name.
fn trail_arn_of(state: &AppState, caller: &Caller, name: &str) -> Result<String, ApiError> {
    let reference = crate::routes::trails::trail_ref(parse_trail_name_or_arn(Some(name))?);
    let scope = Scope {
        account_id: caller.account_id.clone(),
        region: caller.region.clone(),
    };
    let trail = state.trails.get_trail(&scope, &reference).map_err(|_| {
        AwsError::new(
            codes::INVALID_TRAIL_NAME,
            format!(
                "Trail {} does not exist for this account and region.",
                reference.display()
            ),
        )
    })?;
    Ok(trail.arn())
}
