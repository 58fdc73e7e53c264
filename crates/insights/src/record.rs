//! CloudTrail Insights records, as CloudTrail writes them (spec §7.2): a Start and an End
//! record sharing a `sharedEventID`, the API named only inside `insightDetails`.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::analysis::{PeriodState, Transition};
use crate::model::{InsightType, SeriesKey};

/// The event version CloudTrail gives Insights records.
const INSIGHT_EVENT_VERSION: &str = "1.08";

/// One attribute's values during the period and in the baseline, top 5 each.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    /// `userIdentityArn`, `userAgent` or `errorCode`.
    pub attribute: &'static str,
    pub insight: Vec<(String, f64)>,
    pub baseline: Vec<(String, f64)>,
}

/// The `sharedEventID` of a period: the same for its Start and End, and the same when a
/// replay after a crash builds the records again.
pub fn shared_event_id(key: &SeriesKey, period_start_minute: i64) -> String {
    name_uuid(key, period_start_minute, "period")
}

/// The `eventID` of a period's Start or End record; deterministic, so a replay stores
/// each record once (the store deduplicates by account and event id).
pub fn event_id(key: &SeriesKey, period_start_minute: i64, state: PeriodState) -> String {
    name_uuid(key, period_start_minute, state.as_str())
}

fn name_uuid(key: &SeriesKey, period_start_minute: i64, part: &str) -> String {
    let name = format!(
        "opentrail-insight\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{period_start_minute}\u{1f}{part}",
        key.account_id,
        key.region,
        key.event_source,
        key.event_name,
        key.insight_type.as_str(),
        key.category.as_str(),
        key.error_code.as_deref().unwrap_or(""),
    );
    Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
}

/// The record of one transition, as JSON text.
pub fn insight_record(transition: &Transition, attributions: &[Attribution]) -> String {
    let key = &transition.key;
    let mut statistics = json!({
        "baseline": {"average": round(transition.baseline_average)},
        "insight": {"average": round(transition.insight_average)},
        "baselineDuration": transition.baseline_duration_minutes,
    });
    if transition.state == PeriodState::End {
        statistics["insightDuration"] = json!(transition.insight_duration_minutes);
    }
    let mut details = json!({
        "state": transition.state.as_str(),
        "eventSource": key.event_source,
        "eventName": key.event_name,
        "insightType": key.insight_type.as_str(),
    });
    if key.insight_type == InsightType::ApiErrorRateInsight
        && let Some(code) = &key.error_code
    {
        details["errorCode"] = json!(code);
    }
    details["insightContext"] = json!({
        "statistics": statistics,
        "attributions": attributions.iter().map(attribution_json).collect::<Vec<_>>(),
    });
    let record = json!({
        "eventVersion": INSIGHT_EVENT_VERSION,
        "eventTime": event_time(transition.minute),
        "awsRegion": key.region,
        "eventID": event_id(key, transition.period_start_minute, transition.state),
        "eventType": "AwsCloudTrailInsight",
        "recipientAccountId": key.account_id,
        "sharedEventID": shared_event_id(key, transition.period_start_minute),
        "insightDetails": details,
        "eventCategory": "Insight",
    });
    record.to_string()
}

fn attribution_json(attribution: &Attribution) -> Value {
    let values = |list: &[(String, f64)]| {
        list.iter()
            .map(|(value, average)| json!({"value": value, "average": round(*average)}))
            .collect::<Vec<_>>()
    };
    json!({
        "attribute": attribution.attribute,
        "insight": values(&attribution.insight),
        "baseline": values(&attribution.baseline),
    })
}

/// Averages as CloudTrail shows them: a number, not 17 digits of noise.
fn round(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

fn event_time(minute: i64) -> String {
    jiff::Timestamp::from_millisecond(minute * 60_000)
        .map(|time| time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}
