//! PutAuditEvents: request checks, per-entry validation, the stored record, the response.

use anyhow::{Context, Result, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use opentrail_protocol::cloudtrail_data::{
    AuditEvent, AuditEventResultEntry, PutAuditEventsResponse, entry_codes, parse_request,
    validate_audit_event, wrap_event_data,
};
use opentrail_protocol::error::{codes, data_codes};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const OWNER: &str = "111122223333";
const CHANNEL_ARN: &str =
    "arn:aws:cloudtrail:us-east-1:111122223333:channel/6464f5be-705b-4c51-b64c-d46643ff96dc";

fn event_data() -> Value {
    json!({
        "version": "1.0",
        "userIdentity": {"type": "CustomUser", "principalId": "alice", "details": {"team": "ops"}},
        "userAgent": "my-app/1.0",
        "eventSource": "my.app",
        "eventName": "DeleteWidget",
        "eventTime": "2024-01-02T03:04:05Z",
        "UID": "req-123",
        "requestParameters": {"widget": 7, "price": 1.50},
        "responseElements": null,
        "sourceIPAddress": "203.0.113.9",
        "recipientAccountId": OWNER,
        "additionalEventData": {"note": "x"}
    })
}

fn checksum(text: &str) -> String {
    STANDARD.encode(Sha256::digest(text.as_bytes()))
}

fn entry(id: &str, data: &Value, with_checksum: bool) -> AuditEvent {
    let text = data.to_string();
    AuditEvent {
        id: id.to_owned(),
        event_data_checksum: with_checksum.then(|| checksum(&text)),
        event_data: text,
    }
}

fn failure_code(data: &Value) -> Option<&'static str> {
    validate_audit_event(&entry("1", data, true), OWNER)
        .err()
        .map(|failure| failure.error_code)
}

#[test]
fn request_shape_is_checked() -> Result<()> {
    let one = json!({"auditEvents": [{"id": "a-1", "eventData": "{}"}]});
    ensure!(parse_request(one.to_string().as_bytes())?.len() == 1);

    let cases = [
        (json!({}), codes::VALIDATION),
        (json!({"auditEvents": []}), codes::VALIDATION),
        (
            json!({"auditEvents": [{"id": "bad id", "eventData": "{}"}]}),
            codes::VALIDATION,
        ),
        (
            json!({"auditEvents": [{"id": "", "eventData": "{}"}]}),
            codes::VALIDATION,
        ),
        (
            json!({"auditEvents": [{"id": "x".repeat(129), "eventData": "{}"}]}),
            codes::VALIDATION,
        ),
        (json!({"auditEvents": [{"id": "a"}]}), codes::SERIALIZATION),
        (json!({"auditEvents": "nope"}), codes::SERIALIZATION),
        (
            json!({"auditEvents": [{"id": "a", "eventData": "{}"}, {"id": "a", "eventData": "{}"}]}),
            data_codes::DUPLICATED_AUDIT_EVENT_ID,
        ),
    ];
    for (body, code) in cases {
        let error = parse_request(body.to_string().as_bytes())
            .err()
            .context("must fail")?;
        ensure!(error.code == code && error.status == 400, "{body}: {error}");
        let rendered = error.to_rest_json();
        ensure!(rendered.header("x-amzn-ErrorType") == Some(code));
    }
    let hundred_one: Vec<Value> = (0..101)
        .map(|index| json!({"id": format!("e{index}"), "eventData": "{}"}))
        .collect();
    let error = parse_request(json!({"auditEvents": hundred_one}).to_string().as_bytes())
        .err()
        .context("101 entries must fail")?;
    ensure!(error.code == codes::VALIDATION);
    ensure!(
        parse_request(b"not json").err().map(|e| e.code) == Some(codes::SERIALIZATION.to_owned())
    );
    Ok(())
}

#[test]
fn valid_entry_passes_with_or_without_checksum() -> Result<()> {
    for with_checksum in [true, false] {
        let validated = validate_audit_event(&entry("1", &event_data(), with_checksum), OWNER)
            .map_err(|failure| anyhow::anyhow!("{failure:?}"))?;
        ensure!(validated.event_name == "DeleteWidget");
        ensure!(validated.event_source == "my.app");
        ensure!(validated.principal_id == "alice");
        ensure!(validated.event_time == "2024-01-02T03:04:05Z".parse::<Timestamp>()?);
    }
    Ok(())
}

#[test]
fn bad_checksum_fails_the_entry() {
    let mut event = entry("1", &event_data(), true);
    event.event_data_checksum = Some(checksum("something else"));
    assert_eq!(
        validate_audit_event(&event, OWNER)
            .err()
            .map(|f| f.error_code),
        Some(entry_codes::INVALID_CHECKSUM)
    );
    event.event_data_checksum = Some("not base64!".to_owned());
    assert_eq!(
        validate_audit_event(&event, OWNER)
            .err()
            .map(|f| f.error_code),
        Some(entry_codes::INVALID_CHECKSUM)
    );
}

#[test]
fn missing_required_fields_are_field_not_found() {
    for field in [
        "version",
        "userIdentity",
        "eventSource",
        "eventName",
        "eventTime",
        "UID",
        "recipientAccountId",
    ] {
        let mut data = event_data();
        if let Some(object) = data.as_object_mut() {
            object.remove(field);
        }
        assert_eq!(
            failure_code(&data),
            Some(entry_codes::FIELD_NOT_FOUND),
            "{field}"
        );
    }
    for field in ["type", "principalId"] {
        let mut data = event_data();
        if let Some(identity) = data["userIdentity"].as_object_mut() {
            identity.remove(field);
        }
        assert_eq!(
            failure_code(&data),
            Some(entry_codes::FIELD_NOT_FOUND),
            "{field}"
        );
    }
}

#[test]
fn malformed_data_is_invalid_data() {
    let entry_with_text = |text: &str| AuditEvent {
        id: "1".to_owned(),
        event_data: text.to_owned(),
        event_data_checksum: None,
    };
    for text in ["not json", "[1,2]", "\"string\"", r#"{"a":1,"a":2}"#] {
        assert_eq!(
            validate_audit_event(&entry_with_text(text), OWNER)
                .err()
                .map(|f| f.error_code),
            Some(entry_codes::INVALID_DATA),
            "{text}"
        );
    }
    let mutations: [(&str, Value); 5] = [
        ("eventTime", json!("last tuesday")),
        ("eventName", json!(42)),
        ("userIdentity", json!("alice")),
        ("requestParameters", json!([1])),
        ("userAgent", json!({"nested": true})),
    ];
    for (field, value) in mutations {
        let mut data = event_data();
        data[field] = value;
        assert_eq!(
            failure_code(&data),
            Some(entry_codes::INVALID_DATA),
            "{field}"
        );
    }
}

#[test]
fn long_fields_are_field_too_long() {
    let mutations: [(&str, Value); 5] = [
        ("version", json!("v".repeat(257))),
        ("eventName", json!("n".repeat(1025))),
        ("errorCode", json!("e".repeat(257))),
        ("requestParameters", json!({"blob": "b".repeat(100 * 1024)})),
        (
            "additionalEventData",
            json!({"blob": "b".repeat(28 * 1024)}),
        ),
    ];
    for (field, value) in mutations {
        let mut data = event_data();
        data[field] = value;
        assert_eq!(
            failure_code(&data),
            Some(entry_codes::FIELD_TOO_LONG),
            "{field}"
        );
    }
}

#[test]
fn foreign_recipient_is_invalid_recipient() {
    let mut data = event_data();
    data["recipientAccountId"] = json!("999999999999");
    assert_eq!(failure_code(&data), Some(entry_codes::INVALID_RECIPIENT));
}

#[test]
fn civil_event_time_is_accepted_as_utc() -> Result<()> {
    let mut data = event_data();
    data["eventTime"] = json!("2024-01-02T03:04:05");
    let validated = validate_audit_event(&entry("1", &data, true), OWNER)
        .map_err(|failure| anyhow::anyhow!("{failure:?}"))?;
    ensure!(validated.event_time == "2024-01-02T03:04:05Z".parse::<Timestamp>()?);
    Ok(())
}

#[test]
fn stored_record_follows_the_integration_schema() -> Result<()> {
    let sent = r#"{"version":"1.0","userIdentity":{"type":"CustomUser","principalId":"alice"},"eventSource":"my.app","eventName":"DeleteWidget","eventTime":"2024-01-02T05:04:05+02:00","UID":"req-123","requestParameters":{"price":1.50,"big":12345678901234567890123},"recipientAccountId":"111122223333","custom":"kept"}"#;
    let event = AuditEvent {
        id: "1".to_owned(),
        event_data: sent.to_owned(),
        event_data_checksum: Some(checksum(sent)),
    };
    let validated =
        validate_audit_event(&event, OWNER).map_err(|failure| anyhow::anyhow!("{failure:?}"))?;
    let ingestion_time: Timestamp = "2024-01-02T03:05:00.250Z".parse()?;
    let record = wrap_event_data(
        &validated,
        "evt-uuid",
        CHANNEL_ARN,
        "us-east-1",
        ingestion_time,
    );

    // The caller's document is stored verbatim: same members, order and number text.
    let expected_prefix = r#"{"eventVersion":"2.0","eventCategory":"ActivityAuditLog","eventType":"ActivityLog","eventID":"evt-uuid","eventTime":"2024-01-02T03:04:05Z","awsRegion":"us-east-1","recipientAccountId":"111122223333","metadata":{"ingestionTime":"2024-01-02T03:05:00Z","channelARN":"arn:aws:cloudtrail:us-east-1:111122223333:channel/6464f5be-705b-4c51-b64c-d46643ff96dc"},"eventData":"#;
    ensure!(record == format!("{expected_prefix}{sent}}}"), "{record}");
    let parsed: Value = serde_json::from_str(&record)?;
    ensure!(parsed["eventData"]["custom"] == "kept");
    Ok(())
}

#[test]
fn response_always_has_both_lists() -> Result<()> {
    let empty: Value = serde_json::from_slice(&PutAuditEventsResponse::default().to_wire().body)?;
    ensure!(empty == json!({"successful": [], "failed": []}));

    let failure = validate_audit_event(
        &AuditEvent {
            id: "2".to_owned(),
            event_data: "nope".to_owned(),
            event_data_checksum: None,
        },
        OWNER,
    )
    .err()
    .context("must fail")?;
    let response = PutAuditEventsResponse {
        successful: vec![AuditEventResultEntry {
            id: "1".to_owned(),
            event_id: "evt-uuid".to_owned(),
        }],
        failed: vec![failure.into_result_entry("2")],
    };
    let wire = response.to_wire();
    ensure!(wire.status == 200 && wire.header("content-type") == Some("application/json"));
    let body: Value = serde_json::from_slice(&wire.body)?;
    ensure!(body["successful"] == json!([{"id": "1", "eventID": "evt-uuid"}]));
    ensure!(body["failed"][0]["id"] == "2" && body["failed"][0]["errorCode"] == "InvalidData");
    ensure!(
        body["failed"][0]["errorMessage"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    Ok(())
}
