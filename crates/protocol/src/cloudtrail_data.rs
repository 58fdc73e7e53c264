//! cloudtrail-data `PutAuditEvents` (restJson1) and the record CloudTrail stores for a
//! channel event.
//!
//! Request: `POST /PutAuditEvents?channelArn=…&externalId=…` with
//! `{"auditEvents":[{"id","eventData","eventDataChecksum"}]}`. Whole-request problems are
//! errors (`DuplicatedAuditEventId`, …); problems with one entry only put that entry in
//! `failed`, so the rest of the batch still lands.
//!
//! The stored record follows the CloudTrail Lake integration schema
//! (userguide/query-integration-event-schema): CloudTrail-provided fields at the top and
//! the caller's document, verbatim, under `eventData`.

use std::collections::HashSet;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use opentrail_event::RecordErrorKind;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::error::{
    AwsError, REST_JSON_CONTENT_TYPE, WireResponse, data_codes, serialize_or_fallback,
};
use crate::sigv4::percent_decode;
use crate::time::{format_record_time, parse_record_time};

/// The SigV4 signing name (credential scope service) of cloudtrail-data.
pub const SIGNING_NAME: &str = "cloudtrail-data";
/// The one route of the service.
pub const PUT_AUDIT_EVENTS_PATH: &str = "/PutAuditEvents";
/// Entries per request (model `AuditEvents` 1..100).
pub const MAX_AUDIT_EVENTS: usize = 100;
/// Request size limit from the API documentation ("up to 1 MB"); the server enforces it
/// on the body before parsing.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// `eventVersion` of stored channel events. The schema page documents the field but not
/// its value; this is our choice, distinct from the 1.x management-event versions.
pub const CHANNEL_EVENT_VERSION: &str = "2.0";
/// `eventCategory` of events from outside AWS.
pub const CHANNEL_EVENT_CATEGORY: &str = "ActivityAuditLog";
/// `eventType` of events from outside AWS.
pub const CHANNEL_EVENT_TYPE: &str = "ActivityLog";

/// Per-entry `errorCode` values (model `ResultErrorEntry.errorCode` documentation).
pub mod entry_codes {
    pub const FIELD_TOO_LONG: &str = "FieldTooLong";
    pub const FIELD_NOT_FOUND: &str = "FieldNotFound";
    pub const INVALID_CHECKSUM: &str = "InvalidChecksum";
    pub const INVALID_DATA: &str = "InvalidData";
    pub const INVALID_RECIPIENT: &str = "InvalidRecipient";
    pub const INVALID_EVENT_SOURCE: &str = "InvalidEventSource";
    pub const ACCOUNT_NOT_SUBSCRIBED: &str = "AccountNotSubscribed";
    pub const THROTTLING: &str = "Throttling";
    pub const INTERNAL_FAILURE: &str = "InternalFailure";
}

/// The per-entry code of a record the event parser refused. `POST /v1/events` answers in
/// this vocabulary, and `opentrail ingest` uses it for the records it refuses itself,
/// so a summary reads the same whichever side refused a record.
pub fn record_error_code(kind: RecordErrorKind) -> &'static str {
    match kind {
        RecordErrorKind::MissingField => entry_codes::FIELD_NOT_FOUND,
        RecordErrorKind::TooLarge => entry_codes::FIELD_TOO_LONG,
        RecordErrorKind::NotAnObject
        | RecordErrorKind::InvalidJson
        | RecordErrorKind::InvalidUtf8
        | RecordErrorKind::InvalidEventTime
        | RecordErrorKind::InvalidField => entry_codes::INVALID_DATA,
    }
}

/// The query parameters of PutAuditEvents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutAuditEventsQuery {
    /// The channel's ARN or bare ID, as sent; see [`crate::channels::parse_channel_ref`].
    pub channel_arn: String,
    pub external_id: Option<String>,
}

/// Parses `channelArn` and `externalId` from the raw query string.
pub fn parse_query(query: &str) -> Result<PutAuditEventsQuery, AwsError> {
    let mut channel_arn = None;
    let mut external_id = None;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(raw_key);
        let value = String::from_utf8(percent_decode(raw_value));
        match key.as_slice() {
            b"channelArn" => {
                channel_arn = Some(value.map_err(|_| {
                    AwsError::data(
                        data_codes::INVALID_CHANNEL_ARN,
                        "channelArn is not valid UTF-8.",
                    )
                })?);
            }
            b"externalId" => {
                external_id = Some(
                    value.map_err(|_| AwsError::validation("externalId is not valid UTF-8."))?,
                );
            }
            _ => {}
        }
    }
    let channel_arn = channel_arn.filter(|arn| !arn.is_empty()).ok_or_else(|| {
        AwsError::data(
            data_codes::INVALID_CHANNEL_ARN,
            "The channelArn query parameter is required.",
        )
    })?;
    if let Some(external_id) = &external_id {
        let pattern_ok = external_id.chars().all(|character| {
            character.is_alphanumeric()
                || matches!(
                    character,
                    '_' | '+' | '=' | ',' | '.' | '@' | ':' | '/' | '-'
                )
        });
        if !(2..=1224).contains(&external_id.chars().count()) || !pattern_ok {
            return Err(AwsError::validation(
                "externalId must be 2 to 1224 characters of letters, digits and _+=,.@:/-.",
            ));
        }
    }
    Ok(PutAuditEventsQuery {
        channel_arn,
        external_id,
    })
}

/// The PutAuditEvents body. Also `Serialize`, for the CLI and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutAuditEventsRequest {
    /// Required by the model; optional here so absence is a validation error, not a
    /// serialization one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_events: Option<Vec<AuditEvent>>,
}

/// One `AuditEvent`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// The caller's id for the event, 1..128 of `[-_A-Za-z0-9]`, unique in the request.
    pub id: String,
    /// A JSON document, as a string.
    pub event_data: String,
    /// base64(SHA-256(eventData)), optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_data_checksum: Option<String>,
}

/// Parses and checks the whole request: shape (`SerializationException`), entry count and
/// id format (`ValidationException`), unique ids (`DuplicatedAuditEventId`).
pub fn parse_request(body: &[u8]) -> Result<Vec<AuditEvent>, AwsError> {
    let request: PutAuditEventsRequest = serde_json::from_slice(body)
        .map_err(|error| AwsError::data(crate::error::codes::SERIALIZATION, error.to_string()))?;
    let events = request.audit_events.ok_or_else(|| {
        AwsError::data(crate::error::codes::VALIDATION, "auditEvents is required.")
    })?;
    if events.is_empty() || events.len() > MAX_AUDIT_EVENTS {
        return Err(AwsError::data(
            crate::error::codes::VALIDATION,
            format!(
                "auditEvents must contain 1 to {MAX_AUDIT_EVENTS} entries, got {}.",
                events.len()
            ),
        ));
    }
    let mut seen_ids = HashSet::with_capacity(events.len());
    for event in &events {
        let id_ok = (1..=128).contains(&event.id.len())
            && event
                .id
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
        if !id_ok {
            return Err(AwsError::data(
                crate::error::codes::VALIDATION,
                format!(
                    "Audit event id '{}' must be 1 to 128 characters of letters, digits, '-' and '_'.",
                    event.id
                ),
            ));
        }
        if !seen_ids.insert(event.id.as_str()) {
            return Err(AwsError::data(
                data_codes::DUPLICATED_AUDIT_EVENT_ID,
                format!(
                    "Two or more entries in the request have the same event ID: '{}'.",
                    event.id
                ),
            ));
        }
    }
    Ok(events)
}

/// Why one entry was refused; becomes a `failed` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    pub error_code: &'static str,
    pub error_message: String,
}

impl EntryFailure {
    fn new(error_code: &'static str, error_message: impl Into<String>) -> Self {
        EntryFailure {
            error_code,
            error_message: error_message.into(),
        }
    }

    /// The `failed` item for the entry with this id.
    pub fn into_result_entry(self, id: &str) -> ResultErrorEntry {
        ResultErrorEntry {
            id: id.to_owned(),
            error_code: self.error_code.to_owned(),
            error_message: self.error_message,
        }
    }
}

/// A JSON object kept as its members' raw text, in the order sent, so the stored
/// `eventData` is exactly what the caller wrote (no float re-rounding, no key reordering).
#[derive(Debug)]
struct RawObject(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawObjectVisitor;
        impl<'de> Visitor<'de> for RawObjectVisitor {
            type Value = RawObject;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
                let mut members: Vec<(String, Box<RawValue>)> = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Box<RawValue>>()? {
                    if members.iter().any(|(existing, _)| *existing == key) {
                        return Err(serde::de::Error::custom(format!("duplicate field '{key}'")));
                    }
                    members.push((key, value));
                }
                Ok(RawObject(members))
            }
        }
        deserializer.deserialize_map(RawObjectVisitor)
    }
}

impl RawObject {
    fn get(&self, key: &str) -> Option<&RawValue> {
        self.0
            .iter()
            .find(|(member, _)| member == key)
            .map(|(_, value)| value.as_ref())
    }
}

impl Serialize for RawObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// An entry's `eventData` that passed every check, with the fields the server needs.
#[derive(Debug)]
pub struct ValidatedEventData {
    document: RawObject,
    pub event_time: Timestamp,
    pub event_source: String,
    pub event_name: String,
    pub uid: String,
    pub recipient_account_id: String,
    pub user_identity_type: String,
    pub principal_id: String,
    pub user_agent: Option<String>,
    pub source_ip_address: Option<String>,
    pub error_code: Option<String>,
}

/// Field length limits of the integration schema, in characters.
const VERSION_MAX: usize = 256;
const IDENTITY_TYPE_MAX: usize = 128;
const GENERAL_STRING_MAX: usize = 1024;
const ERROR_FIELD_MAX: usize = 256;
/// Size limits of the JSON-object fields, in bytes of their JSON text.
const REQUEST_RESPONSE_MAX_BYTES: usize = 100 * 1024;
const ADDITIONAL_EVENT_DATA_MAX_BYTES: usize = 28 * 1024;

/// Checks one entry against the integration event schema: checksum, JSON, required fields,
/// types, lengths, time format, and that `recipientAccountId` is the channel owner.
pub fn validate_audit_event(
    event: &AuditEvent,
    channel_owner_account_id: &str,
) -> Result<ValidatedEventData, EntryFailure> {
    if let Some(checksum) = &event.event_data_checksum {
        let expected = Sha256::digest(event.event_data.as_bytes());
        let matches = STANDARD
            .decode(checksum.trim())
            .is_ok_and(|claimed| claimed.as_slice() == expected.as_slice());
        if !matches {
            return Err(EntryFailure::new(
                entry_codes::INVALID_CHECKSUM,
                "The eventDataChecksum does not match base64(SHA-256(eventData)).",
            ));
        }
    }
    let document: RawObject = serde_json::from_str(&event.event_data).map_err(|error| {
        EntryFailure::new(
            entry_codes::INVALID_DATA,
            format!("eventData is not a JSON object: {error}"),
        )
    })?;

    required_string(&document, "version", VERSION_MAX)?;
    let identity_raw = document
        .get("userIdentity")
        .ok_or_else(|| field_not_found("userIdentity"))?;
    let identity: RawObject = serde_json::from_str(identity_raw.get())
        .map_err(|_| invalid_data("userIdentity must be a JSON object."))?;
    let user_identity_type =
        required_string_in(&identity, "userIdentity.type", "type", IDENTITY_TYPE_MAX)?;
    let principal_id = required_string_in(
        &identity,
        "userIdentity.principalId",
        "principalId",
        GENERAL_STRING_MAX,
    )?;
    check_object_or_null(&identity, "details", "userIdentity.details", None)?;

    let event_source = required_string(&document, "eventSource", GENERAL_STRING_MAX)?;
    let event_name = required_string(&document, "eventName", GENERAL_STRING_MAX)?;
    let event_time_text = required_string(&document, "eventTime", GENERAL_STRING_MAX)?;
    let event_time = parse_record_time(&event_time_text).ok_or_else(|| {
        invalid_data(format!(
            "eventTime '{event_time_text}' is not a UTC timestamp of the form yyyy-MM-ddTHH:mm:ss."
        ))
    })?;
    let uid = required_string(&document, "UID", GENERAL_STRING_MAX)?;
    let recipient_account_id =
        required_string(&document, "recipientAccountId", GENERAL_STRING_MAX)?;

    let user_agent = optional_string(&document, "userAgent", GENERAL_STRING_MAX)?;
    let error_code = optional_string(&document, "errorCode", ERROR_FIELD_MAX)?;
    optional_string(&document, "errorMessage", ERROR_FIELD_MAX)?;
    let source_ip_address = optional_string(&document, "sourceIPAddress", GENERAL_STRING_MAX)?;
    check_object_or_null(
        &document,
        "requestParameters",
        "requestParameters",
        Some(REQUEST_RESPONSE_MAX_BYTES),
    )?;
    check_object_or_null(
        &document,
        "responseElements",
        "responseElements",
        Some(REQUEST_RESPONSE_MAX_BYTES),
    )?;
    check_object_or_null(
        &document,
        "additionalEventData",
        "additionalEventData",
        Some(ADDITIONAL_EVENT_DATA_MAX_BYTES),
    )?;

    if recipient_account_id != channel_owner_account_id {
        return Err(EntryFailure::new(
            entry_codes::INVALID_RECIPIENT,
            format!(
                "recipientAccountId '{recipient_account_id}' must be the channel owner's account ID."
            ),
        ));
    }

    Ok(ValidatedEventData {
        document,
        event_time,
        event_source,
        event_name,
        uid,
        recipient_account_id,
        user_identity_type,
        principal_id,
        user_agent,
        source_ip_address,
        error_code,
    })
}

fn field_not_found(path: &str) -> EntryFailure {
    EntryFailure::new(
        entry_codes::FIELD_NOT_FOUND,
        format!("Required field '{path}' is missing from eventData."),
    )
}

fn invalid_data(message: impl Into<String>) -> EntryFailure {
    EntryFailure::new(entry_codes::INVALID_DATA, message)
}

fn required_string(
    document: &RawObject,
    key: &str,
    max_chars: usize,
) -> Result<String, EntryFailure> {
    required_string_in(document, key, key, max_chars)
}

fn required_string_in(
    object: &RawObject,
    path: &str,
    key: &str,
    max_chars: usize,
) -> Result<String, EntryFailure> {
    let raw = object.get(key).ok_or_else(|| field_not_found(path))?;
    let value = string_value(raw, path, max_chars)?.ok_or_else(|| field_not_found(path))?;
    if value.is_empty() {
        return Err(field_not_found(path));
    }
    Ok(value)
}

fn optional_string(
    document: &RawObject,
    key: &str,
    max_chars: usize,
) -> Result<Option<String>, EntryFailure> {
    match document.get(key) {
        None => Ok(None),
        Some(raw) => string_value(raw, key, max_chars),
    }
}

/// A string member's value; `Ok(None)` for an explicit `null`.
fn string_value(
    raw: &RawValue,
    path: &str,
    max_chars: usize,
) -> Result<Option<String>, EntryFailure> {
    let value: Option<String> = serde_json::from_str(raw.get())
        .map_err(|_| invalid_data(format!("Field '{path}' must be a string.")))?;
    if let Some(text) = &value
        && text.chars().count() > max_chars
    {
        return Err(EntryFailure::new(
            entry_codes::FIELD_TOO_LONG,
            format!("Field '{path}' is longer than {max_chars} characters."),
        ));
    }
    Ok(value)
}

fn check_object_or_null(
    object: &RawObject,
    key: &str,
    path: &str,
    max_bytes: Option<usize>,
) -> Result<(), EntryFailure> {
    let Some(raw) = object.get(key) else {
        return Ok(());
    };
    let text = raw.get();
    if !(text.starts_with('{') || text == "null") {
        return Err(invalid_data(format!(
            "Field '{path}' must be a JSON object."
        )));
    }
    if let Some(limit) = max_bytes
        && text.len() > limit
    {
        return Err(EntryFailure::new(
            entry_codes::FIELD_TOO_LONG,
            format!("Field '{path}' is larger than {limit} bytes."),
        ));
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChannelRecord<'a> {
    event_version: &'static str,
    event_category: &'static str,
    event_type: &'static str,
    #[serde(rename = "eventID")]
    event_id: &'a str,
    event_time: String,
    aws_region: &'a str,
    recipient_account_id: &'a str,
    metadata: ChannelRecordMetadata<'a>,
    event_data: &'a RawObject,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChannelRecordMetadata<'a> {
    ingestion_time: String,
    #[serde(rename = "channelARN")]
    channel_arn: &'a str,
}

/// Builds the record CloudTrail stores for a channel event:
///
/// ```json
/// {"eventVersion":"2.0","eventCategory":"ActivityAuditLog","eventType":"ActivityLog",
///  "eventID":"…","eventTime":"2024-01-02T03:04:05Z","awsRegion":"us-east-1",
///  "recipientAccountId":"111122223333",
///  "metadata":{"ingestionTime":"…","channelARN":"arn:aws:cloudtrail:…:channel/…"},
///  "eventData":{ …the caller's document, members and order as sent… }}
/// ```
///
/// `eventTime` is the caller's `eventData.eventTime` normalised to UTC whole seconds;
/// `addendum` is never produced (it describes late deliveries by AWS itself).
pub fn wrap_event_data(
    event_data: &ValidatedEventData,
    event_id: &str,
    channel_arn: &str,
    region: &str,
    ingestion_time: Timestamp,
) -> String {
    let record = ChannelRecord {
        event_version: CHANNEL_EVENT_VERSION,
        event_category: CHANNEL_EVENT_CATEGORY,
        event_type: CHANNEL_EVENT_TYPE,
        event_id,
        event_time: format_record_time(event_data.event_time),
        aws_region: region,
        recipient_account_id: &event_data.recipient_account_id,
        metadata: ChannelRecordMetadata {
            ingestion_time: format_record_time(ingestion_time),
            channel_arn,
        },
        event_data: &event_data.document,
    };
    // Every part is a string or already-valid raw JSON, so this cannot fail.
    String::from_utf8(serialize_or_fallback(&record)).unwrap_or_else(|_| "{}".to_owned())
}

/// The PutAuditEvents response; both lists are always present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutAuditEventsResponse {
    pub successful: Vec<AuditEventResultEntry>,
    pub failed: Vec<ResultErrorEntry>,
}

/// One `successful` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEventResultEntry {
    pub id: String,
    #[serde(rename = "eventID")]
    pub event_id: String,
}

/// One `failed` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultErrorEntry {
    pub id: String,
    pub error_code: String,
    pub error_message: String,
}

impl PutAuditEventsResponse {
    /// The 200 restJson1 response.
    pub fn to_wire(&self) -> WireResponse {
        WireResponse {
            status: 200,
            headers: vec![("content-type", REST_JSON_CONTENT_TYPE.to_owned())],
            body: serialize_or_fallback(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_records_get_the_cloudtrail_data_entry_codes() {
        assert_eq!(
            record_error_code(RecordErrorKind::MissingField),
            "FieldNotFound"
        );
        assert_eq!(record_error_code(RecordErrorKind::TooLarge), "FieldTooLong");
        assert_eq!(
            record_error_code(RecordErrorKind::InvalidJson),
            "InvalidData"
        );
    }

    #[test]
    fn query_parameters_decode() -> Result<(), AwsError> {
        let query = parse_query(
            "channelArn=arn%3Aaws%3Acloudtrail%3Aus-east-1%3A111122223333%3Achannel%2Fabc&externalId=ext-1",
        )?;
        assert_eq!(
            query.channel_arn,
            "arn:aws:cloudtrail:us-east-1:111122223333:channel/abc"
        );
        assert_eq!(query.external_id.as_deref(), Some("ext-1"));
        assert_eq!(parse_query("channelArn=abc")?.external_id, None);
        Ok(())
    }

    #[test]
    fn missing_channel_or_bad_external_id_is_refused() {
        assert_eq!(
            parse_query("").err().map(|e| e.code),
            Some(data_codes::INVALID_CHANNEL_ARN.to_owned())
        );
        assert_eq!(
            parse_query("channelArn=x&externalId=a")
                .err()
                .map(|e| e.code),
            Some(crate::error::codes::VALIDATION.to_owned())
        );
        assert_eq!(
            parse_query("channelArn=x&externalId=has%20space")
                .err()
                .map(|e| e.code),
            Some(crate::error::codes::VALIDATION.to_owned())
        );
    }

    #[test]
    fn raw_object_keeps_order_and_text() -> Result<(), serde_json::Error> {
        let object: RawObject =
            serde_json::from_str(r#"{"z":1.50,"a":{"n":12345678901234567890123}}"#)?;
        assert_eq!(
            serde_json::to_string(&object)?,
            r#"{"z":1.50,"a":{"n":12345678901234567890123}}"#
        );
        assert!(serde_json::from_str::<RawObject>(r#"{"a":1,"a":2}"#).is_err());
        assert!(serde_json::from_str::<RawObject>("[1]").is_err());
        Ok(())
    }
}
