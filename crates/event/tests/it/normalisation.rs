//! Missing members are filled in, present ones are never changed, and the attributes are
//! derived from the result.

use opentrail_event::{EventRecord, FilterField, IngestContext, RecordErrorKind};
use serde_json::{Value, json};

use crate::{context, record};

const MINIMAL: &str = r#"{"eventTime":"2024-05-01T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","custom":{"kept":[1,2.5,null]}}"#;

fn normalise(text: &str) -> EventRecord {
    EventRecord::from_json_object(text, &context()).expect("valid record")
}

fn as_value(json: &str) -> Value {
    serde_json::from_str(json).expect("stored record is JSON")
}

#[test]
fn absent_members_are_appended_in_order() {
    let record = normalise(MINIMAL);
    let prefix = &MINIMAL[..MINIMAL.len() - 1];
    assert!(record.json.starts_with(prefix), "{}", record.json);
    let appended = &record.json[prefix.len()..];
    let event_id = uuid::Uuid::parse_str(&record.event_id).expect("eventID is a UUID");
    assert_eq!(event_id.get_version_num(), 5);
    assert_eq!(
        appended,
        format!(
            r#","eventVersion":"1.11","eventID":"{}","eventType":"AwsApiCall","eventCategory":"Management","awsRegion":"eu-west-1","recipientAccountId":"111122223333","readOnly":true}}"#,
            record.event_id
        )
    );
    assert_eq!(record.account_id, "111122223333");
    assert_eq!(record.region, "eu-west-1");
    assert_eq!(record.event_time_ms, 1_714_557_600_000);
    assert_eq!(record.attributes.read_only, Some(true));
    assert_eq!(record.attributes.event_category, "Management");
}

#[test]
fn a_resent_record_without_an_event_id_gets_the_same_id() {
    assert_eq!(normalise(MINIMAL).event_id, normalise(MINIMAL).event_id);
    let pretty = MINIMAL.replace(",\"", ",\n  \"").replace("\":", "\": ");
    assert_eq!(
        normalise(&pretty).event_id,
        normalise(MINIMAL).event_id,
        "the same object pretty-printed is the same record"
    );
}

#[test]
fn generated_event_ids_differ_by_text_account_and_region() {
    let id = normalise(MINIMAL).event_id;
    let other_time = MINIMAL.replace("10:00:00Z", "10:00:01Z");
    assert_ne!(normalise(&other_time).event_id, id);
    for other in [
        IngestContext {
            account_id: "444455556666".to_owned(),
            ..context()
        },
        IngestContext {
            region: "us-east-1".to_owned(),
            ..context()
        },
    ] {
        let record = EventRecord::from_json_object(MINIMAL, &other).expect("valid record");
        assert_ne!(record.event_id, id);
    }
}

#[test]
fn complete_records_are_stored_byte_for_byte() {
    let text = record("PutObject");
    let stored = normalise(&text);
    assert_eq!(stored.json, text);
    assert_eq!(stored.event_id, "id-PutObject");
    assert_eq!(stored.account_id, "123456789012");
    assert_eq!(stored.region, "us-east-1");
    assert_eq!(
        stored.attributes.read_only,
        Some(true),
        "a recorded readOnly wins over inference"
    );
}

#[test]
fn surrounding_whitespace_is_dropped() {
    let text = record("A");
    assert_eq!(normalise(&format!(" \t{text} \r")).json, text);
}

#[test]
fn null_members_are_filled_in_place() {
    let text = r#"{"eventID":null,"eventTime":"2024-05-01T10:00:00Z","eventSource":"iam.amazonaws.com","eventName":"CreateUser","readOnly":null,"awsRegion":null}"#;
    let record = normalise(text);
    let value = as_value(&record.json);
    assert_eq!(value["eventID"], json!(record.event_id));
    assert_eq!(value["readOnly"], json!(false));
    assert_eq!(value["awsRegion"], json!("eu-west-1"));
    assert!(
        record
            .json
            .starts_with(&format!(r#"{{"eventID":"{}","eventTime""#, record.event_id))
    );
    assert_eq!(record.json.matches("\"eventID\"").count(), 1);
    assert_eq!(record.json.matches("\"readOnly\"").count(), 1);
}

#[test]
fn read_only_is_inferred_from_the_event_name() {
    for (event_name, read_only) in [
        ("GetObject", true),
        ("DescribeInstances", true),
        ("PutObject", false),
        ("Getaway", false),
    ] {
        let text = MINIMAL.replace("GetObject", event_name);
        let record = normalise(&text);
        assert_eq!(record.attributes.read_only, Some(read_only), "{event_name}");
        assert_eq!(
            as_value(&record.json)["readOnly"],
            json!(read_only),
            "{event_name}"
        );
    }
}

#[test]
fn read_only_as_a_string_is_accepted_and_kept() {
    let text = MINIMAL.replacen('{', r#"{"readOnly":"false","#, 1);
    let record = normalise(&text);
    assert_eq!(record.attributes.read_only, Some(false));
    assert_eq!(as_value(&record.json)["readOnly"], json!("false"));
}

#[test]
fn insight_events_get_the_insight_category() {
    let text = MINIMAL.replacen('{', r#"{"eventType":"AwsCloudTrailInsight","#, 1);
    let record = normalise(&text);
    assert_eq!(record.attributes.event_category, "Insight");
}

/// CloudTrail's own Insights records carry no top-level eventName or eventSource: the
/// API they describe is named inside `insightDetails`.
#[test]
fn insight_records_as_cloudtrail_writes_them_take_their_names_from_insight_details() {
    let text = r#"{"eventVersion":"1.07","eventTime":"2024-03-01T10:15:00Z","awsRegion":"us-east-1","eventID":"5f7b7c3c-1111-4e0e-9a7e-000000000001","eventType":"AwsCloudTrailInsight","recipientAccountId":"111122223333","sharedEventID":"0c2d1f0e-2222-4e0e-9a7e-000000000002","insightDetails":{"state":"Start","eventSource":"ssm.amazonaws.com","eventName":"UpdateInstanceInformation","insightType":"ApiCallRateInsight","insightContext":{"statistics":{"baseline":{"average":0.5},"insight":{"average":20.0},"baselineDuration":10080}}},"eventCategory":"Insight"}"#;
    let record = normalise(text);
    assert_eq!(record.attributes.event_name, "UpdateInstanceInformation");
    assert_eq!(record.attributes.event_source, "ssm.amazonaws.com");
    assert_eq!(record.attributes.event_category, "Insight");
    assert_eq!(as_value(&record.json), as_value(text), "kept as sent");

    let nameless = text.replace(r#""eventName":"UpdateInstanceInformation","#, "");
    let invalid =
        EventRecord::from_json_object(&nameless, &context()).expect_err("no event name anywhere");
    assert_eq!(invalid.kind, RecordErrorKind::MissingField);
    assert!(invalid.message.contains("eventName"), "{}", invalid.message);
}

#[test]
fn empty_context_cannot_fill_account_or_region() {
    let empty = IngestContext {
        account_id: String::new(),
        region: String::new(),
    };
    let invalid = EventRecord::from_json_object(MINIMAL, &empty).expect_err("nothing to fill in");
    assert_eq!(invalid.kind, RecordErrorKind::MissingField);
    assert!(
        EventRecord::from_json_object(&record("A"), &empty).is_ok(),
        "a complete record needs no context"
    );
}

#[test]
fn context_values_are_escaped() {
    let odd = IngestContext {
        account_id: "acc\"ount".to_owned(),
        region: "re\\gion\n".to_owned(),
    };
    let record = EventRecord::from_json_object(MINIMAL, &odd).expect("valid");
    let value = as_value(&record.json);
    assert_eq!(value["recipientAccountId"], json!("acc\"ount"));
    assert_eq!(value["awsRegion"], json!("re\\gion\n"));
    assert_eq!(record.region, "re\\gion\n");
}

#[test]
fn pretty_printed_records_are_stored_on_one_line() {
    let mut value: Value = serde_json::from_str(&record("A")).expect("valid");
    value["note"] = json!("two\nlines \r with  spaces");
    value["nested"] = json!({"list": [1, {"x": " spaced "}], "empty": {}});
    let pretty = serde_json::to_string_pretty(&value).expect("serialises");
    let stored = normalise(&pretty);
    assert!(!stored.json.contains(['\n', '\r']), "{}", stored.json);
    assert_eq!(as_value(&stored.json), value);
}

#[test]
fn event_time_accepts_offsets_and_fractions() {
    for (event_time, expected_ms) in [
        ("2024-05-01T10:00:00Z", 1_714_557_600_000),
        ("2024-05-01T12:00:00+02:00", 1_714_557_600_000),
        ("2024-05-01T05:30:00-04:30", 1_714_557_600_000),
        ("2024-05-01T10:00:00.123Z", 1_714_557_600_123),
        ("2024-05-01T10:00:00.123456789Z", 1_714_557_600_123),
        ("1969-12-31T23:59:59.5Z", -500),
    ] {
        let text = MINIMAL.replace("2024-05-01T10:00:00Z", event_time);
        assert_eq!(normalise(&text).event_time_ms, expected_ms, "{event_time}");
    }
}

#[test]
fn stored_records_read_back_unchanged() {
    let record = normalise(MINIMAL);
    let reread = EventRecord::from_stored(&record.json).expect("stored record reads back");
    assert_eq!(reread, record);
}

#[test]
fn unnormalised_text_is_not_a_stored_record() {
    let invalid = EventRecord::from_stored(MINIMAL).expect_err("lacks normalised members");
    assert_eq!(invalid.kind, RecordErrorKind::MissingField);
    assert_eq!(
        EventRecord::from_stored("[1]")
            .expect_err("not an object")
            .kind,
        RecordErrorKind::NotAnObject
    );
    assert_eq!(
        EventRecord::from_stored("{").expect_err("not JSON").kind,
        RecordErrorKind::InvalidJson
    );
}

/// The example record of the spec (§4): RunInstances by CloudFormation through a role.
const CLOUDFORMATION_RUN_INSTANCES: &str = r#"{
  "eventVersion":"1.11",
  "userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLEROLEID1234:AWSCloudFormation",
    "arn":"arn:aws:sts::111122223333:assumed-role/cfn-deploy-role/AWSCloudFormation",
    "accountId":"111122223333","accessKeyId":"ASIAEXAMPLEKEY000001",
    "sessionContext":{"sessionIssuer":{"type":"Role","principalId":"AROAEXAMPLEROLEID1234",
        "arn":"arn:aws:iam::111122223333:role/cfn-deploy-role","accountId":"111122223333","userName":"cfn-deploy-role"},
      "attributes":{"creationDate":"2025-03-04T10:15:02Z","mfaAuthenticated":"false"}},
    "invokedBy":"cloudformation.amazonaws.com"},
  "eventTime":"2025-03-04T10:15:09Z","eventSource":"ec2.amazonaws.com","eventName":"RunInstances",
  "awsRegion":"us-east-1","sourceIPAddress":"cloudformation.amazonaws.com","userAgent":"cloudformation.amazonaws.com",
  "requestParameters":{"instanceType":"t3.micro"},
  "responseElements":{"instancesSet":{"items":[{"instanceId":"i-0123456789abcdef0"}]}},
  "resources":[{"ARN":"arn:aws:ec2:us-east-1:111122223333:instance/i-0123456789abcdef0","accountId":"111122223333","type":"AWS::EC2::Instance"}],
  "requestID":"5b7a9c1e-2f3d-4a6b-8c9d-0e1f2a3b4c5d","eventID":"0f4c2d8e-9a1b-4c3d-8e7f-6a5b4c3d2e1f",
  "readOnly":false,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111122223333",
  "eventCategory":"Management","errorCode":"Client.UnauthorizedOperation"}"#;

#[test]
fn attributes_of_the_spec_example() {
    let record = normalise(CLOUDFORMATION_RUN_INSTANCES);
    let attributes = &record.attributes;
    assert_eq!(attributes.event_id, "0f4c2d8e-9a1b-4c3d-8e7f-6a5b4c3d2e1f");
    assert_eq!(attributes.event_name, "RunInstances");
    assert_eq!(attributes.event_source, "ec2.amazonaws.com");
    assert_eq!(attributes.read_only_text(), Some("false"));
    assert_eq!(attributes.username.as_deref(), Some("AWSCloudFormation"));
    assert_eq!(
        attributes.access_key_id.as_deref(),
        Some("ASIAEXAMPLEKEY000001")
    );
    assert_eq!(
        attributes.user_arn.as_deref(),
        Some("arn:aws:sts::111122223333:assumed-role/cfn-deploy-role/AWSCloudFormation")
    );
    assert_eq!(
        attributes.invoked_by.as_deref(),
        Some("cloudformation.amazonaws.com")
    );
    assert_eq!(
        attributes.error_code.as_deref(),
        Some("Client.UnauthorizedOperation")
    );
    assert_eq!(
        attributes.source_ip_address.as_deref(),
        Some("cloudformation.amazonaws.com")
    );
    assert_eq!(attributes.resources.len(), 1);
    assert_eq!(
        attributes.resources[0].resource_type.as_deref(),
        Some("AWS::EC2::Instance")
    );
    assert_eq!(record.event_time_ms, 1_741_083_309_000);

    let index_values = attributes.index_values();
    for expected in [
        (FilterField::Username, "AWSCloudFormation"),
        (
            FilterField::ResourceName,
            "arn:aws:ec2:us-east-1:111122223333:instance/i-0123456789abcdef0",
        ),
        (FilterField::ResourceName, "i-0123456789abcdef0"),
        (FilterField::ResourceType, "AWS::EC2::Instance"),
        (FilterField::ReadOnly, "false"),
        (FilterField::RecipientAccountId, "111122223333"),
        (FilterField::EventCategory, "Management"),
        (FilterField::InvokedBy, "cloudformation.amazonaws.com"),
    ] {
        assert!(
            index_values.contains(&expected),
            "{expected:?} missing from {index_values:?}"
        );
    }
    assert_eq!(index_values.len(), 16);
}

/// `record` padded with an unknown member to exactly `total_bytes`.
fn padded_to(record: &str, total_bytes: usize) -> String {
    let unpadded = record.replacen('{', r#"{"padding":"","#, 1);
    let padding = "x".repeat(total_bytes - unpadded.len());
    let padded = record.replacen('{', &format!(r#"{{"padding":"{padding}","#), 1);
    assert_eq!(padded.len(), total_bytes);
    padded
}

#[test]
fn the_size_limit_applies_to_the_stored_record() {
    let limit = opentrail_event::MAX_RECORD_BYTES;
    let complete = padded_to(&record("A"), limit);
    assert_eq!(
        normalise(&complete).json.len(),
        limit,
        "a complete record at the limit is kept"
    );
    let needs_event_id = padded_to(MINIMAL, limit - 10);
    let invalid = EventRecord::from_json_object(&needs_event_id, &context())
        .expect_err("normalisation pushes it over the limit");
    assert_eq!(invalid.kind, RecordErrorKind::TooLarge);
}
