//! OpenTrail's native JSON API (`/v1/events`): what the CLI and the console speak.
//!
//! - `GET /v1/events?eventName=…&username=…&start=…&end=…&limit=…&cursor=…` — any number
//!   of filters at once (the [`FilterField`] names), a time range (RFC 3339 or epoch
//!   milliseconds, both ends inclusive), a page size of 1..=1000 (default 50), and an
//!   opaque cursor. `region` (default: every region), `account` (admins of the default
//!   account only) and `category=insight` narrow the scope. The answer is
//!   `{"events":[<record>…],"nextCursor":"…"}`, newest first; `nextCursor` is absent on
//!   the last page.
//! - `POST /v1/events` and `POST /v1/k8s-audit` answer [`IngestResponse`].
//! - `GET /v1/alerts?limit=N&unacknowledged=true` answers [`AlertsResponse`];
//!   `POST /v1/alerts/{alertId}/acknowledge` answers [`AlertResponse`]; `GET /v1/rules` answers
//!   [`RulesResponse`]; `POST /v1/rules` (Sigma YAML), `POST /v1/rules/{id}/disable`,
//!   `POST /v1/rules/{id}/enable` and `DELETE /v1/rules/{id}` answer [`RuleResponse`].

use serde::{Deserialize, Serialize};

use opentrail_event::FilterField;

use crate::error::AwsError;
use crate::time::parse_record_time;
use crate::token;

pub const DEFAULT_PAGE_EVENTS: usize = 50;
pub const MAX_PAGE_EVENTS: usize = 1000;

const VALIDATION: &str = "ValidationException";

/// A validated `GET /v1/events` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeLookup {
    pub filters: Vec<(FilterField, String)>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub limit: usize,
    pub region: Option<String>,
    pub account: Option<String>,
    pub insight: bool,
    cursor: Option<String>,
}

impl NativeLookup {
    /// Parses a raw (percent-encoded) query string.
    pub fn from_query(query: &str) -> Result<NativeLookup, AwsError> {
        let mut lookup = NativeLookup {
            filters: Vec::new(),
            start_ms: None,
            end_ms: None,
            limit: DEFAULT_PAGE_EVENTS,
            region: None,
            account: None,
            insight: false,
            cursor: None,
        };
        for (name, value) in query_pairs(query)? {
            match name.as_str() {
                "start" => lookup.start_ms = Some(parse_time(&name, &value)?),
                "end" => lookup.end_ms = Some(parse_time(&name, &value)?),
                "limit" => {
                    lookup.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|limit| (1..=MAX_PAGE_EVENTS).contains(limit))
                        .ok_or_else(|| invalid(format!("limit must be an integer from 1 to {MAX_PAGE_EVENTS}, got '{value}'.")))?;
                }
                "cursor" => lookup.cursor = Some(value).filter(|cursor| !cursor.is_empty()),
                "region" => lookup.region = Some(value).filter(|region| !region.is_empty()),
                "account" => lookup.account = Some(value).filter(|account| !account.is_empty()),
                "category" => match value.as_str() {
                    "insight" => lookup.insight = true,
                    "" | "standard" => lookup.insight = false,
                    other => {
                        return Err(invalid(format!(
                            "category must be 'insight' or 'standard', got '{other}'."
                        )));
                    }
                },
                other => {
                    let field = FilterField::from_name(other).ok_or_else(|| {
                        invalid(format!(
                            "Unknown parameter '{other}'. Filters: {}; also start, end, limit, cursor, region, account, category.",
                            FilterField::ALL.iter().map(|field| field.name()).collect::<Vec<_>>().join(", ")
                        ))
                    })?;
                    if lookup
                        .filters
                        .iter()
                        .any(|(existing, _)| *existing == field)
                    {
                        return Err(invalid(format!(
                            "The filter {} is given twice.",
                            field.name()
                        )));
                    }
                    if value.is_empty() {
                        return Err(invalid(format!(
                            "The filter {} needs a value.",
                            field.name()
                        )));
                    }
                    lookup.filters.push((field, value));
                }
            }
        }
        if let (Some(start), Some(end)) = (lookup.start_ms, lookup.end_ms)
            && start > end
        {
            return Err(AwsError::new(
                "InvalidTimeRangeException",
                "start must not be after end.",
            ));
        }
        Ok(lookup)
    }

    /// Binds cursors to the query that produced them (everything but `limit` and
    /// `cursor`), like LookupEvents' NextToken.
    fn fingerprint(&self) -> Vec<u8> {
        let mut filters: Vec<String> = self
            .filters
            .iter()
            .map(|(field, value)| format!("{}={value}", field.name()))
            .collect();
        filters.sort();
        format!(
            "{}|{:?}|{:?}|{:?}|{:?}|{}",
            filters.join("\u{1f}"),
            self.start_ms,
            self.end_ms,
            self.region,
            self.account,
            self.insight
        )
        .into_bytes()
    }

    /// The store cursor carried by `cursor=…`, if any.
    pub fn decode_cursor(&self) -> Result<Option<Vec<u8>>, AwsError> {
        self.cursor
            .as_deref()
            .map(|cursor| token::decode(cursor, &self.fingerprint()))
            .transpose()
    }

    pub fn encode_cursor(&self, cursor: &[u8]) -> String {
        token::encode(cursor, &self.fingerprint())
    }
}

/// `{"events":[…],"nextCursor":"…"}` with the stored record text spliced in unchanged (no
/// re-serialisation, and records read back exactly as stored).
pub fn lookup_response_body<'a>(
    records: impl IntoIterator<Item = &'a str>,
    next_cursor: Option<&str>,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(4096);
    body.extend_from_slice(b"{\"events\":[");
    for (position, record) in records.into_iter().enumerate() {
        if position > 0 {
            body.push(b',');
        }
        body.extend_from_slice(record.as_bytes());
    }
    body.push(b']');
    if let Some(cursor) = next_cursor {
        body.extend_from_slice(b",\"nextCursor\":");
        // A cursor is URL-safe base64: it never needs escaping, but serialise to be sure.
        body.extend_from_slice(serde_json::to_string(cursor).unwrap_or_default().as_bytes());
    }
    body.push(b'}');
    body
}

/// The answer to `POST /v1/events` (and `POST /v1/k8s-audit`, which adds
/// `skippedStages`: audit events of earlier stages, not recorded).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestResponse {
    pub accepted: Vec<IngestedEvent>,
    pub duplicates: Vec<IngestedEvent>,
    pub failed: Vec<IngestFailure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_stages: Option<usize>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestedEvent {
    pub index: usize,
    pub event_id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestFailure {
    pub index: usize,
    pub error_code: String,
    pub message: String,
}

/// The answer to `GET /v1/alerts`: rule matches, newest first.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertsResponse {
    pub alerts: Vec<AlertItem>,
}

/// One alert: the rule that fired and the event that fired it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertItem {
    pub alert_id: String,
    pub rule_id: String,
    pub rule_title: String,
    pub level: String,
    pub event_id: String,
    pub event_name: String,
    pub event_source: String,
    pub event_time: String,
    pub recipient_account_id: String,
    pub aws_region: String,
    pub detected_at: String,
    /// Whether someone marked the alert as seen (`POST /v1/alerts/{alertId}/acknowledge`).
    #[serde(default)]
    pub acknowledged: bool,
    /// When it was acknowledged (RFC 3339), `null` until it is.
    #[serde(default)]
    pub acknowledged_at: Option<String>,
    /// The access key id that acknowledged it, `null` until it is.
    #[serde(default)]
    pub acknowledged_by: Option<String>,
}

/// The answer to `POST /v1/alerts/{alertId}/acknowledge`: the alert as it is now.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertResponse {
    pub alert: AlertItem,
}

/// The answer to `GET /v1/rules`: every detection rule, running or disabled (directory
/// rules first, then rules added through the API), and every rule file or rule refused.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RulesResponse {
    pub rules: Vec<RuleItem>,
    pub refused: Vec<RefusedRuleItem>,
}

/// The answer to `POST /v1/rules`, `POST /v1/rules/{id}/disable|enable` and
/// `DELETE /v1/rules/{id}`: the rule as it is now (or was, when removed).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleResponse {
    pub rule: RuleItem,
}

/// One detection rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleItem {
    pub id: String,
    pub title: String,
    /// Sigma's `level` (`informational` … `critical`), when the rule has one.
    #[serde(default)]
    pub level: Option<String>,
    /// Sigma's `status` (`stable`, `test`, `experimental`…), when the rule has one.
    #[serde(default)]
    pub status: Option<String>,
    /// `directory` (the server's rules directory) or `api` (added through the API).
    pub origin: String,
    /// The file the rule is read from.
    pub file: String,
    /// A disabled rule is listed but matches nothing.
    pub enabled: bool,
}

/// A rule file, or a rule in it, that does not run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusedRuleItem {
    pub origin: String,
    pub file: String,
    /// 1-based, where it can be told.
    #[serde(default)]
    pub line: Option<u32>,
    /// The rule's title, when the problem is one rule's.
    #[serde(default)]
    pub rule_title: Option<String>,
    pub reason: String,
}

/// The most alerts one `GET /v1/alerts` returns, and the default.
pub const ALERTS_LIMIT_MAX: usize = 1_000;
pub const ALERTS_LIMIT_DEFAULT: usize = 100;

/// `limit` of `GET /v1/alerts?limit=N` (1 to [`ALERTS_LIMIT_MAX`]).
pub fn alerts_limit(query: &str) -> Result<usize, AwsError> {
    alerts_query(query).map(|query| query.limit)
}

/// A validated `GET /v1/alerts` query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertsQuery {
    /// The newest this many alerts (after the filter).
    pub limit: usize,
    /// `unacknowledged=true`: only alerts nobody has acknowledged.
    pub unacknowledged: bool,
}

/// `GET /v1/alerts?limit=N&unacknowledged=true|false`.
pub fn alerts_query(query: &str) -> Result<AlertsQuery, AwsError> {
    let mut limit = ALERTS_LIMIT_DEFAULT;
    let mut unacknowledged = false;
    for (name, value) in query_pairs(query)? {
        match name.as_str() {
            "unacknowledged" => {
                unacknowledged = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(invalid(format!(
                            "unacknowledged must be true or false, not {value:?}"
                        )));
                    }
                };
            }
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|limit| (1..=ALERTS_LIMIT_MAX).contains(limit))
                    .ok_or_else(|| {
                        invalid(format!(
                            "limit must be a number from 1 to {ALERTS_LIMIT_MAX}, not {value:?}"
                        ))
                    })?;
            }
            other => return Err(invalid(format!("unknown query parameter {other:?}"))),
        }
    }
    Ok(AlertsQuery {
        limit,
        unacknowledged,
    })
}

fn invalid(message: String) -> AwsError {
    AwsError::new(VALIDATION, message)
}

fn parse_time(name: &str, value: &str) -> Result<i64, AwsError> {
    if let Ok(epoch_ms) = value.parse::<i64>() {
        return Ok(epoch_ms);
    }
    parse_record_time(value)
        .map(|time| time.as_millisecond())
        .ok_or_else(|| {
            invalid(format!(
                "{name} must be an RFC 3339 time or epoch milliseconds, got '{value}'."
            ))
        })
}

/// A raw query string's `name=value` pairs, percent-decoded (`+` is a space); a
/// component that is not UTF-8 once decoded is a validation error.
fn query_pairs(query: &str) -> Result<Vec<(String, String)>, AwsError> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode_component(raw_name)?, decode_component(raw_value)?))
        })
        .collect()
}

fn decode_component(raw: &str) -> Result<String, AwsError> {
    let spaced = raw.replace('+', " ");
    String::from_utf8(crate::sigv4::percent_decode(&spaced)).map_err(|_| {
        invalid(format!(
            "The query component '{raw}' is not valid percent-encoded UTF-8."
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_filters_time_range_and_paging_parse() {
        let lookup = NativeLookup::from_query(
            "eventName=DeleteTable&username=alice&sourceIPAddress=203.0.113.7&start=2024-01-01T00%3A00%3A00Z&end=1704153600000&limit=10",
        )
        .expect("valid");
        assert_eq!(lookup.filters.len(), 3);
        assert_eq!(lookup.start_ms, Some(1_704_067_200_000));
        assert_eq!(lookup.end_ms, Some(1_704_153_600_000));
        assert_eq!(lookup.limit, 10);
    }

    #[test]
    fn bad_queries_are_rejected_with_the_reason() {
        for (query, needle) in [
            ("bogus=1", "Unknown parameter"),
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("start=yesterday", "start"),
            ("eventName=A&eventName=B", "twice"),
            (
                "start=2024-01-02T00:00:00Z&end=2024-01-01T00:00:00Z",
                "after",
            ),
        ] {
            let error = NativeLookup::from_query(query).expect_err(query);
            assert!(error.message.contains(needle), "{query}: {}", error.message);
        }
    }

    #[test]
    fn cursors_are_bound_to_their_query() {
        let first = NativeLookup::from_query("eventName=A").expect("valid");
        let cursor = first.encode_cursor(b"position");
        let same = NativeLookup::from_query(&format!("eventName=A&limit=5&cursor={cursor}"))
            .expect("valid");
        assert_eq!(
            same.decode_cursor().expect("same query"),
            Some(b"position".to_vec())
        );
        let other =
            NativeLookup::from_query(&format!("eventName=B&cursor={cursor}")).expect("valid");
        assert!(other.decode_cursor().is_err());
    }

    #[test]
    fn records_are_spliced_verbatim() {
        let body = lookup_response_body([r#"{"a":1}"#, r#"{"b":2}"#], Some("abc"));
        assert_eq!(
            String::from_utf8(body).expect("utf8"),
            r#"{"events":[{"a":1},{"b":2}],"nextCursor":"abc"}"#
        );
    }

    #[test]
    fn alerts_queries_take_a_limit_and_the_unacknowledged_filter() {
        assert_eq!(
            alerts_query("").expect("empty"),
            AlertsQuery {
                limit: ALERTS_LIMIT_DEFAULT,
                unacknowledged: false
            }
        );
        assert_eq!(
            alerts_query("unacknowledged=true&limit=5").expect("both"),
            AlertsQuery {
                limit: 5,
                unacknowledged: true
            }
        );
        let error = alerts_query("unacknowledged=yes").expect_err("not a bool");
        assert_eq!(error.code, VALIDATION);
        assert!(error.message.contains("true or false"), "{}", error.message);
    }
}
