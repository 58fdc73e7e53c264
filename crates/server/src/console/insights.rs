//! The console's Insights endpoints: the periods found, and one series' timeline.
//!
//! - `GET /console/api/insights[?start=MS&end=MS]` → `{"periods":[…],"baselineMinutes"}`:
//!   the Insights records of the caller's account (every account for an admin of the
//!   default account) with event times in the range (default: the last 7 days), paired
//!   by `sharedEventID`, newest first. A period whose End is not recorded yet has
//!   `end: null`.
//! - `GET /console/api/insights/timeline?account&region&eventSource&eventName&insightType[&errorCode]&start=MS&end=MS`
//!   → `{"points":[[ms,count]…],"band":[[ms,average,threshold]…],"baselineMinutes"}`:
//!   the series' count per minute with the baseline band before each minute (at most
//!   [`TIMELINE_MINUTES_MAX`] minutes).
//!
//! The list is recorded by self-audit (`ListInsights`) when the page opens; timelines
//! are not (each click would write a record about itself).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use opentrail_insights::{InsightType, MetricQuery, SourceCategory};
use opentrail_protocol::AwsError;
use opentrail_store::{EventLane, LookupQuery};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api_error::ApiError;
use crate::audit::CallContext;
use crate::auth::Caller;
use crate::lookup::{run_lookup, scoped_account};
use crate::state::AppState;

/// Insights records one list reads: periods are rare, so this is weeks of them.
const PERIOD_RECORDS_MAX: usize = 1_000;
/// A timeline covers at most two days of minutes.
pub const TIMELINE_MINUTES_MAX: i64 = 2 * 24 * 60;
const DEFAULT_LIST_RANGE_MS: i64 = 7 * 24 * 60 * 60 * 1000;

#[derive(Debug, Deserialize)]
pub struct RangeQuery {
    start: Option<i64>,
    end: Option<i64>,
}

/// One Insights period, as the page lists it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Period {
    shared_event_id: String,
    account: String,
    region: String,
    event_source: String,
    event_name: String,
    insight_type: String,
    error_code: Option<String>,
    /// Epoch ms of the Start record, and of the End record when there is one.
    start: Option<i64>,
    end: Option<i64>,
    start_event_id: Option<String>,
    end_event_id: Option<String>,
    baseline_average: Option<f64>,
    insight_average: Option<f64>,
    /// The first `userIdentityArn` attribution of the latest record.
    top_principal: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeriodsResponse {
    periods: Vec<Period>,
    baseline_minutes: i64,
}

pub async fn periods(
    State(state): State<AppState>,
    call: CallContext,
    Query(range): Query<RangeQuery>,
) -> Result<Json<PeriodsResponse>, ApiError> {
    let result = list_periods(&state, &call.caller, &range).await;
    call.record(
        "ListInsights",
        Some(serde_json::json!({ "console": "insights", "start": range.start, "end": range.end })),
        result.as_ref().err(),
    )
    .await;
    result.map(Json)
}

async fn list_periods(
    state: &AppState,
    caller: &Caller,
    range: &RangeQuery,
) -> Result<PeriodsResponse, ApiError> {
    caller.require_read()?;
    let end = range
        .end
        .unwrap_or_else(|| jiff::Timestamp::now().as_millisecond());
    let start = range.start.unwrap_or(end - DEFAULT_LIST_RANGE_MS);
    let mut query = LookupQuery::new(
        scoped_account(state, caller, None)?,
        None,
        PERIOD_RECORDS_MAX,
    );
    query.lane = EventLane::Insight;
    query.start_time_ms = Some(start);
    query.end_time_ms = Some(end);
    let page = run_lookup(state, query).await?;
    // Oldest first, so an End lands on the period its Start opened.
    let mut periods: BTreeMap<String, Period> = BTreeMap::new();
    for stored in page.events.iter().rev() {
        let Ok(record) = serde_json::from_str::<Value>(&stored.record.json) else {
            continue;
        };
        let details = &record["insightDetails"];
        let text = |value: &Value| value.as_str().map(str::to_owned);
        let Some(shared) = text(&record["sharedEventID"]) else {
            continue;
        };
        let period = periods.entry(shared.clone()).or_insert_with(|| Period {
            shared_event_id: shared,
            account: stored.record.attributes.recipient_account_id.clone(),
            region: stored.record.attributes.aws_region.clone(),
            event_source: stored.record.attributes.event_source.clone(),
            event_name: stored.record.attributes.event_name.clone(),
            insight_type: text(&details["insightType"]).unwrap_or_default(),
            error_code: text(&details["errorCode"]),
            start: None,
            end: None,
            start_event_id: None,
            end_event_id: None,
            baseline_average: None,
            insight_average: None,
            top_principal: None,
        });
        let statistics = &details["insightContext"]["statistics"];
        period.baseline_average = statistics["baseline"]["average"].as_f64();
        period.insight_average = statistics["insight"]["average"].as_f64();
        period.top_principal = details["insightContext"]["attributions"]
            .as_array()
            .and_then(|attributions| {
                attributions
                    .iter()
                    .find(|attribution| attribution["attribute"] == "userIdentityArn")
            })
            .and_then(|attribution| text(&attribution["insight"][0]["value"]));
        match details["state"].as_str() {
            Some("Start") => {
                period.start = Some(stored.record.event_time_ms);
                period.start_event_id = Some(stored.record.event_id.clone());
            }
            Some("End") => {
                period.end = Some(stored.record.event_time_ms);
                period.end_event_id = Some(stored.record.event_id.clone());
            }
            _ => {}
        }
    }
    let mut periods: Vec<Period> = periods.into_values().collect();
    periods.sort_by_key(|period| std::cmp::Reverse(period.start.or(period.end)));
    Ok(PeriodsResponse {
        periods,
        baseline_minutes: state.insights.settings().baseline_minutes,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineQuery {
    account: Option<String>,
    region: String,
    event_source: String,
    event_name: String,
    insight_type: String,
    error_code: Option<String>,
    start: i64,
    end: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineResponse {
    points: Vec<(i64, f64)>,
    band: Vec<(i64, f64, f64)>,
    baseline_minutes: i64,
}

pub async fn timeline(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<TimelineQuery>,
) -> Result<Json<TimelineResponse>, ApiError> {
    caller.require_read()?;
    let account = scoped_account(&state, &caller, query.account.as_deref())?
        .unwrap_or_else(|| caller.account_id.clone());
    let insight_type = InsightType::parse(&query.insight_type).ok_or_else(|| {
        ApiError(AwsError::validation(format!(
            "insightType must be ApiCallRateInsight or ApiErrorRateInsight, got '{}'.",
            query.insight_type
        )))
    })?;
    if query.end <= query.start || (query.end - query.start) / 60_000 > TIMELINE_MINUTES_MAX {
        return Err(ApiError(AwsError::validation(format!(
            "start must be before end, at most {TIMELINE_MINUTES_MAX} minutes apart."
        ))));
    }
    let metric_query = MetricQuery {
        account_id: account,
        region: query.region,
        event_source: query.event_source,
        event_name: query.event_name,
        insight_type,
        error_code: query.error_code.filter(|code| !code.is_empty()),
        category: SourceCategory::Management,
        start_ms: query.start,
        end_ms: query.end,
        period_seconds: 60,
        fill_with_zeros: true,
    };
    let insights = state.insights.clone();
    let timeline = tokio::task::spawn_blocking(move || insights.timeline(&metric_query))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(Json(TimelineResponse {
        points: timeline.points,
        band: timeline.band,
        baseline_minutes: timeline.baseline_minutes,
    }))
}
