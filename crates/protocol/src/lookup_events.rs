//! LookupEvents: request validation and response shapes (spec §2.2, §3; botocore model).
//!
//! Clients validate almost nothing (boto3 sends two attributes, unknown keys, or
//! `MaxResults: 51` without complaint), so every rule of the model is enforced here and
//! answered with the modelled error code.

use opentrail_event::FilterField;
use serde::{Deserialize, Serialize};

use crate::error::AwsError;
use crate::time::{epoch_seconds_to_ms, ms_to_epoch_seconds};
use crate::token;

/// `MaxResults` upper bound and default (model: 1..50, "The default is 50").
pub const MAX_RESULTS_LIMIT: usize = 50;
/// `AttributeValue` length limit, with `_`, space, `,` and `\n` counting double.
pub const ATTRIBUTE_VALUE_MAX_WEIGHTED_LEN: usize = 2000;
/// The only `EventCategory` value the model allows.
pub const INSIGHT_CATEGORY: &str = "insight";

/// The LookupEvents request as it arrives. Also `Serialize`, so the CLI can build it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LookupEventsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_attributes: Option<Vec<LookupAttribute>>,
    /// Epoch seconds; a JSON integer (CLI v1) or float (boto3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// One `LookupAttribute`. Both members are required by the model; they are optional here
/// so their absence becomes `InvalidLookupAttributesException` rather than a
/// serialization error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LookupAttribute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_value: Option<String>,
}

/// A LookupEvents request that passed validation, in OpenTrail's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedLookup {
    /// At most one attribute filter, with its value exactly as sent (AWS matches values
    /// case-sensitively).
    pub attribute: Option<(FilterField, String)>,
    /// Inclusive bounds in epoch milliseconds. `None` means "not given": the server applies
    /// its defaults (start: the oldest retained event, 90 days for CloudTrail; end: now).
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// `EventCategory: "insight"`: return only Insights events.
    pub insight: bool,
    pub max_results: usize,
    pub next_token: Option<String>,
}

/// The `LookupAttribute.AttributeKey` values of the botocore model, in its order.
pub const LOOKUP_ATTRIBUTE_KEYS: [&str; 8] = [
    "EventId",
    "EventName",
    "ReadOnly",
    "Username",
    "ResourceType",
    "ResourceName",
    "EventSource",
    "AccessKeyId",
];

/// Maps a `LookupAttribute.AttributeKey` (case-sensitive, model enum) to its filter field:
/// the inverse of [`field_to_attribute_key`], the one table of the mapping.
pub fn attribute_key_to_field(key: &str) -> Option<FilterField> {
    FilterField::ALL
        .into_iter()
        .find(|field| field_to_attribute_key(*field) == Some(key))
}

/// The `AttributeKey` for a filter field, `None` for OpenTrail's extra fields that
/// CloudTrail's API cannot express.
pub fn field_to_attribute_key(field: FilterField) -> Option<&'static str> {
    match field {
        FilterField::EventId => Some("EventId"),
        FilterField::EventName => Some("EventName"),
        FilterField::ReadOnly => Some("ReadOnly"),
        FilterField::Username => Some("Username"),
        FilterField::ResourceType => Some("ResourceType"),
        FilterField::ResourceName => Some("ResourceName"),
        FilterField::EventSource => Some("EventSource"),
        FilterField::AccessKeyId => Some("AccessKeyId"),
        _ => None,
    }
}

/// The model's length measure for `AttributeValue`: characters, with `_`, space, `,` and
/// newline counting as two.
pub fn attribute_value_weighted_len(value: &str) -> usize {
    value
        .chars()
        .map(|character| match character {
            '_' | ' ' | ',' | '\n' => 2,
            _ => 1,
        })
        .sum()
}

impl LookupEventsRequest {
    /// Applies every rule of the model, in the order AWS documents the errors.
    pub fn validate(&self) -> Result<ValidatedLookup, AwsError> {
        let insight = match self.event_category.as_deref() {
            None => false,
            Some(INSIGHT_CATEGORY) => true,
            Some(other) => {
                return Err(AwsError::invalid_event_category(format!(
                    "EventCategory '{other}' is not valid. The only supported value is '{INSIGHT_CATEGORY}'."
                )));
            }
        };
        let attribute = validate_attributes(self.lookup_attributes.as_deref(), insight)?;
        let start_ms = self.start_time.as_ref().map(parse_time).transpose()?;
        let end_ms = self.end_time.as_ref().map(parse_time).transpose()?;
        if let (Some(start), Some(end)) = (start_ms, end_ms)
            && start > end
        {
            return Err(AwsError::invalid_time_range(
                "Start time must be earlier than or equal to end time.",
            ));
        }
        let max_results = match self.max_results {
            None => MAX_RESULTS_LIMIT,
            Some(requested) => usize::try_from(requested)
                .ok()
                .filter(|count| (1..=MAX_RESULTS_LIMIT).contains(count))
                .ok_or_else(|| {
                    AwsError::invalid_max_results(format!(
                        "MaxResults must be between 1 and {MAX_RESULTS_LIMIT}, got {requested}."
                    ))
                })?,
        };
        Ok(ValidatedLookup {
            attribute,
            start_ms,
            end_ms,
            insight,
            max_results,
            next_token: self.next_token.clone(),
        })
    }
}

fn parse_time(seconds: &serde_json::Number) -> Result<i64, AwsError> {
    epoch_seconds_to_ms(seconds).ok_or_else(|| {
        AwsError::invalid_time_range(format!(
            "Time {seconds} is outside the range of possible values."
        ))
    })
}

fn validate_attributes(
    attributes: Option<&[LookupAttribute]>,
    insight: bool,
) -> Result<Option<(FilterField, String)>, AwsError> {
    let attribute = match attributes.unwrap_or_default() {
        [] => return Ok(None),
        [single] => single,
        _ => {
            return Err(AwsError::invalid_lookup_attributes(
                "You can only specify one lookup attribute.",
            ));
        }
    };
    let Some(key) = attribute.attribute_key.as_deref() else {
        return Err(AwsError::invalid_lookup_attributes(
            "LookupAttribute is missing AttributeKey.",
        ));
    };
    let Some(field) = attribute_key_to_field(key) else {
        return Err(AwsError::invalid_lookup_attributes(format!(
            "AttributeKey '{key}' is not valid. Valid keys are EventId, EventName, ReadOnly, Username, ResourceType, ResourceName, EventSource and AccessKeyId."
        )));
    };
    if insight
        && !matches!(
            field,
            FilterField::EventId | FilterField::EventName | FilterField::EventSource
        )
    {
        return Err(AwsError::invalid_lookup_attributes(format!(
            "AttributeKey '{key}' is not supported for Insights events. Use EventId, EventName or EventSource."
        )));
    }
    let Some(value) = attribute.attribute_value.as_deref() else {
        return Err(AwsError::invalid_lookup_attributes(
            "LookupAttribute is missing AttributeValue.",
        ));
    };
    let weighted_len = attribute_value_weighted_len(value);
    if value.is_empty() || weighted_len > ATTRIBUTE_VALUE_MAX_WEIGHTED_LEN {
        return Err(AwsError::invalid_lookup_attributes(format!(
            "AttributeValue must be 1 to {ATTRIBUTE_VALUE_MAX_WEIGHTED_LEN} characters long ('_', ' ', ',' and newline count as two)."
        )));
    }
    Ok(Some((field, value.to_owned())))
}

impl ValidatedLookup {
    /// The bytes a `NextToken` is bound to: everything that decides *which* events match —
    /// attribute, time bounds as given, category — and nothing about paging.
    ///
    /// `MaxResults` is deliberately left out. A cursor marks a position in the result
    /// order, which does not depend on page size, and botocore's paginator may legitimately
    /// change it between pages (`PageSize`, or a `--max-items` resume that re-issues with a
    /// different limit). AWS describes the rule as "the same parameters", and its own
    /// example is the lookup attribute. Times are compared after normalisation to
    /// milliseconds, so `1704164645` and `1704164645.0` are the same parameter.
    pub fn fingerprint(&self) -> Vec<u8> {
        let attribute = self.attribute.as_ref().map(|(field, value)| {
            (
                field_to_attribute_key(*field).unwrap_or("?"),
                value.as_str(),
            )
        });
        // A JSON array of plain values is an unambiguous, stable encoding.
        serde_json::to_vec(&(
            "LookupEvents",
            attribute,
            self.start_ms,
            self.end_ms,
            self.insight,
        ))
        .unwrap_or_default()
    }

    /// The store cursor carried by this request's `NextToken`, if any.
    pub fn decode_cursor(&self) -> Result<Option<Vec<u8>>, AwsError> {
        self.next_token
            .as_deref()
            .map(|next_token| token::decode(next_token, &self.fingerprint()))
            .transpose()
    }

    /// The `NextToken` to return for a page that ended at `cursor`.
    pub fn encode_next_token(&self, cursor: &[u8]) -> String {
        token::encode(cursor, &self.fingerprint())
    }
}

/// The LookupEvents response. `NextToken` is omitted on the last page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LookupEventsResponse {
    #[serde(default)]
    pub events: Vec<Event>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// One `Event` on the wire. Every member is optional in the model; absent ones are left
/// out rather than sent as `null`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Event {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    /// `"true"` or `"false"`: a string in this API, unlike the record's boolean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Epoch seconds as a JSON number, e.g. `1424476529.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<Resource>>,
    /// The whole record, serialised as a JSON string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_trail_event: Option<String>,
}

/// One `Resource` of an `Event`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
}

/// What the server knows about a stored event, in its own terms, to build an [`Event`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventInput {
    pub event_id: String,
    pub event_name: Option<String>,
    pub read_only: Option<bool>,
    pub access_key_id: Option<String>,
    pub event_time_ms: i64,
    pub event_source: Option<String>,
    pub username: Option<String>,
    pub resources: Vec<ResourceInput>,
    /// The stored record's JSON text, sent verbatim as `CloudTrailEvent`.
    pub record_json: String,
}

/// One resource of an [`EventInput`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceInput {
    pub resource_type: Option<String>,
    pub resource_name: Option<String>,
}

impl From<EventInput> for Event {
    fn from(input: EventInput) -> Self {
        Event {
            event_id: Some(input.event_id),
            event_name: input.event_name,
            read_only: input.read_only.map(|read_only| read_only.to_string()),
            access_key_id: input.access_key_id,
            event_time: Some(ms_to_epoch_seconds(input.event_time_ms)),
            event_source: input.event_source,
            username: input.username,
            // Always present: CloudTrail sends `[]` for an event without resources.
            resources: Some(
                input
                    .resources
                    .into_iter()
                    .map(|resource| Resource {
                        resource_type: resource.resource_type,
                        resource_name: resource.resource_name,
                    })
                    .collect(),
            ),
            cloud_trail_event: Some(input.record_json),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attribute_key_maps_both_ways() {
        for key in LOOKUP_ATTRIBUTE_KEYS {
            let field = attribute_key_to_field(key);
            assert_eq!(field.and_then(field_to_attribute_key), Some(key));
        }
        assert_eq!(attribute_key_to_field("eventname"), None);
        assert_eq!(attribute_key_to_field(""), None);
    }

    #[test]
    fn weighted_length_counts_specials_twice() {
        assert_eq!(attribute_value_weighted_len("abc"), 3);
        assert_eq!(attribute_value_weighted_len("a_b c,d\n"), 12);
        assert_eq!(attribute_value_weighted_len("ሴ"), 1);
    }
}
