//! ListInsightsMetricData: request validation and response shapes (botocore model).
//!
//! The model's rules, each answered with `InvalidParameterException`: `EventSource`,
//! `EventName` and `InsightType` are required; `ErrorCode` is required with
//! `ApiErrorRateInsight` (and matches the model's pattern); `Period` is 60, 300 or 3600
//! (default 3600); `DataType` is `FillWithZeros` or `NonZeroData` (default); `MaxResults`
//! is 1..21600 (default 21600); `StartTime` is before `EndTime`.

use serde::{Deserialize, Serialize};

use crate::error::AwsError;
use crate::time::{epoch_seconds_to_ms, ms_to_epoch_seconds};
use crate::token;

/// `MaxResults` upper bound and default.
pub const METRIC_MAX_RESULTS_LIMIT: usize = 21_600;
/// The default `Period`, in seconds.
pub const DEFAULT_PERIOD_SECONDS: i64 = 3_600;
/// The model's `Period` values, in seconds.
pub const PERIODS_SECONDS: [i64; 3] = [60, 300, 3_600];
/// The default `StartTime`: 90 days before the request.
pub const DEFAULT_RANGE_MS: i64 = 90 * 86_400_000;
/// The model's two Insights types.
pub const INSIGHT_TYPES: [&str; 2] = ["ApiCallRateInsight", "ApiErrorRateInsight"];

/// The request as it arrives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListInsightsMetricDataRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trail_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insight_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// A request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedMetricQuery {
    /// Given only for Insights on data events (the model's rule).
    pub trail_name: Option<String>,
    pub event_source: String,
    pub event_name: String,
    /// One of [`INSIGHT_TYPES`].
    pub insight_type: String,
    /// Present exactly when `insight_type` is `ApiErrorRateInsight`.
    pub error_code: Option<String>,
    /// `[start_ms, end_ms)`, after the defaults.
    pub start_ms: i64,
    pub end_ms: i64,
    pub period_seconds: i64,
    pub fill_with_zeros: bool,
    pub max_results: usize,
    next_token: Option<String>,
    /// The times as sent (defaults move with the clock), for the token.
    sent_times: (Option<i64>, Option<i64>),
}

impl ListInsightsMetricDataRequest {
    /// Applies the model's rules; `now_ms` fills the default time range.
    pub fn validate(&self, now_ms: i64) -> Result<ValidatedMetricQuery, AwsError> {
        let required = |value: &Option<String>, name: &str| {
            value
                .clone()
                .filter(|value| !value.is_empty())
                .ok_or_else(|| AwsError::invalid_parameter(format!("{name} is required.")))
        };
        let event_source = required(&self.event_source, "EventSource")?;
        let event_name = required(&self.event_name, "EventName")?;
        let insight_type = required(&self.insight_type, "InsightType")?;
        if !INSIGHT_TYPES.contains(&insight_type.as_str()) {
            return Err(AwsError::invalid_parameter(format!(
                "InsightType '{insight_type}' is not valid. Valid types are ApiCallRateInsight and ApiErrorRateInsight."
            )));
        }
        let error_code = match (insight_type.as_str(), &self.error_code) {
            ("ApiErrorRateInsight", None) => {
                return Err(AwsError::invalid_parameter(
                    "ErrorCode is required when InsightType is ApiErrorRateInsight.",
                ));
            }
            ("ApiErrorRateInsight", Some(code)) => {
                if !valid_error_code(code) {
                    return Err(AwsError::invalid_parameter(format!(
                        "ErrorCode '{code}' is not valid: at most 128 letters, digits, spaces and _.,-:[]"
                    )));
                }
                Some(code.clone())
            }
            // The model: ErrorCode is "only returned" for the error type; ignored otherwise.
            _ => None,
        };
        let period_seconds = self.period.unwrap_or(DEFAULT_PERIOD_SECONDS);
        if !PERIODS_SECONDS.contains(&period_seconds) {
            return Err(AwsError::invalid_parameter(format!(
                "Period must be 60, 300 or 3600 seconds, got {period_seconds}."
            )));
        }
        let fill_with_zeros = match self.data_type.as_deref() {
            None | Some("NonZeroData") => false,
            Some("FillWithZeros") => true,
            Some(other) => {
                return Err(AwsError::invalid_parameter(format!(
                    "DataType '{other}' is not valid. Valid types are FillWithZeros and NonZeroData."
                )));
            }
        };
        let max_results = match self.max_results {
            None => METRIC_MAX_RESULTS_LIMIT,
            Some(requested) => usize::try_from(requested)
                .ok()
                .filter(|count| (1..=METRIC_MAX_RESULTS_LIMIT).contains(count))
                .ok_or_else(|| {
                    AwsError::invalid_parameter(format!(
                        "MaxResults must be between 1 and {METRIC_MAX_RESULTS_LIMIT}, got {requested}."
                    ))
                })?,
        };
        let time = |number: &serde_json::Number| {
            epoch_seconds_to_ms(number).ok_or_else(|| {
                AwsError::invalid_parameter(format!(
                    "Time {number} is outside the range of possible values."
                ))
            })
        };
        let sent_start = self.start_time.as_ref().map(time).transpose()?;
        let sent_end = self.end_time.as_ref().map(time).transpose()?;
        let end_ms = sent_end.unwrap_or(now_ms);
        let start_ms = sent_start.unwrap_or(end_ms - DEFAULT_RANGE_MS);
        if start_ms >= end_ms {
            return Err(AwsError::invalid_parameter(
                "StartTime must be earlier than EndTime.",
            ));
        }
        Ok(ValidatedMetricQuery {
            trail_name: self.trail_name.clone(),
            event_source,
            event_name,
            insight_type,
            error_code,
            start_ms,
            end_ms,
            period_seconds,
            fill_with_zeros,
            max_results,
            next_token: self.next_token.clone(),
            sent_times: (sent_start, sent_end),
        })
    }
}

/// The model's `ErrorCode` pattern: `^[\w\d\s_.,\-:\[\]]+$`, at most 128 characters.
fn valid_error_code(code: &str) -> bool {
    !code.is_empty()
        && code.chars().count() <= 128
        && code.chars().all(|character| {
            character.is_alphanumeric()
                || character.is_whitespace()
                || "_.,-:[]".contains(character)
        })
}

impl ValidatedMetricQuery {
    /// Everything that decides which points are listed, nothing about paging.
    fn fingerprint(&self) -> Vec<u8> {
        serde_json::to_vec(&(
            "ListInsightsMetricData",
            &self.trail_name,
            &self.event_source,
            &self.event_name,
            &self.insight_type,
            &self.error_code,
            self.sent_times,
            self.period_seconds,
            self.fill_with_zeros,
        ))
        .unwrap_or_default()
    }

    /// The first timestamp (epoch ms) this page starts at, from `NextToken`.
    pub fn resume_at_ms(&self) -> Result<Option<i64>, AwsError> {
        let Some(next_token) = self.next_token.as_deref() else {
            return Ok(None);
        };
        let cursor = token::decode(next_token, &self.fingerprint())?;
        let bytes: [u8; 8] = cursor
            .as_slice()
            .try_into()
            .map_err(|_| AwsError::invalid_next_token("The NextToken is not valid."))?;
        Ok(Some(i64::from_be_bytes(bytes)))
    }

    /// One page of `points` ((period start in epoch ms, value), oldest first), from the
    /// token's position, with the token for the next page.
    pub fn page(&self, points: &[(i64, f64)]) -> Result<ListInsightsMetricDataResponse, AwsError> {
        let from = self.resume_at_ms()?;
        let remaining: Vec<&(i64, f64)> = points
            .iter()
            .filter(|(at, _)| from.is_none_or(|from| *at >= from))
            .collect();
        let page = &remaining[..remaining.len().min(self.max_results)];
        let next_token = remaining
            .get(self.max_results)
            .map(|(at, _)| token::encode(&at.to_be_bytes(), &self.fingerprint()));
        Ok(ListInsightsMetricDataResponse {
            trail_arn: None,
            event_source: self.event_source.clone(),
            event_name: self.event_name.clone(),
            insight_type: self.insight_type.clone(),
            error_code: self.error_code.clone(),
            timestamps: page
                .iter()
                .map(|(at, _)| ms_to_epoch_seconds(*at))
                .collect(),
            values: page.iter().map(|(_, value)| *value).collect(),
            next_token,
        })
    }
}

/// The response; `TrailARN` only for Insights on data events, `ErrorCode` only for the
/// error type, `NextToken` only when more points follow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListInsightsMetricDataResponse {
    #[serde(rename = "TrailARN", default, skip_serializing_if = "Option::is_none")]
    pub trail_arn: Option<String>,
    pub event_source: String,
    pub event_name: String,
    pub insight_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Epoch seconds.
    pub timestamps: Vec<serde_json::Number>,
    pub values: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: serde_json::Value) -> ListInsightsMetricDataRequest {
        serde_json::from_value(body).expect("request shape")
    }

    const NOW: i64 = 1_748_822_400_000;

    #[test]
    fn defaults_are_the_models() {
        let query = request(serde_json::json!({
            "EventSource": "ssm.amazonaws.com",
            "EventName": "PutParameter",
            "InsightType": "ApiCallRateInsight",
            "ErrorCode": "ignored for the call rate",
        }))
        .validate(NOW)
        .expect("valid");
        assert_eq!(query.period_seconds, 3_600);
        assert!(!query.fill_with_zeros);
        assert_eq!(query.max_results, 21_600);
        assert_eq!(query.end_ms, NOW);
        assert_eq!(query.start_ms, NOW - 90 * 86_400_000);
        assert_eq!(query.error_code, None);
    }

    #[test]
    fn each_rule_is_an_invalid_parameter() {
        let base = serde_json::json!({
            "EventSource": "ssm.amazonaws.com",
            "EventName": "PutParameter",
            "InsightType": "ApiErrorRateInsight",
            "ErrorCode": "AccessDenied",
        });
        for (member, value) in [
            ("EventSource", serde_json::Value::Null),
            ("InsightType", "ApiRate".into()),
            ("ErrorCode", serde_json::Value::Null),
            ("ErrorCode", "Access/Denied".into()),
            ("Period", 120.into()),
            ("DataType", "Zeros".into()),
            ("MaxResults", 0.into()),
            ("MaxResults", 21_601.into()),
            ("EndTime", 1_000.into()),
        ] {
            let mut body = base.clone();
            if value.is_null() {
                body.as_object_mut().expect("object").remove(member);
            } else {
                body[member] = value;
            }
            body["StartTime"] = 2_000.into();
            if member != "EndTime" {
                body["EndTime"] = 3_000.into();
            }
            let error = request(body).validate(NOW).expect_err(member);
            assert_eq!(error.code, "InvalidParameterException", "{member}");
        }
    }

    #[test]
    fn pages_resume_where_the_token_points_and_tokens_are_bound_to_the_parameters() {
        let body = serde_json::json!({
            "EventSource": "ssm.amazonaws.com",
            "EventName": "PutParameter",
            "InsightType": "ApiCallRateInsight",
            "Period": 60,
            "MaxResults": 2,
            "StartTime": 0,
            "EndTime": 600,
        });
        let points: Vec<(i64, f64)> = (0..5).map(|i| (i * 60_000, i as f64)).collect();
        let first = request(body.clone())
            .validate(NOW)
            .expect("valid")
            .page(&points)
            .expect("page");
        assert_eq!(first.values, [0.0, 1.0]);
        let token = first.next_token.clone().expect("more follow");
        let mut next = body.clone();
        next["NextToken"] = token.clone().into();
        let second = request(next)
            .validate(NOW)
            .expect("valid")
            .page(&points)
            .expect("page");
        assert_eq!(second.values, [2.0, 3.0]);
        assert_eq!(second.timestamps[0].as_f64(), Some(120.0));

        let mut other = body;
        other["EventName"] = "DeleteParameter".into();
        other["NextToken"] = token.into();
        let error = request(other)
            .validate(NOW)
            .expect("valid")
            .page(&points)
            .expect_err("bound");
        assert_eq!(error.code, "InvalidNextTokenException");
    }
}
