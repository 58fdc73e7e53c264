//! LookupEvents: validation against the model, response shape, and NextToken binding.

use anyhow::{Context, Result, ensure};
use opentrail_event::FilterField;
use opentrail_protocol::error::{AwsError, codes};
use opentrail_protocol::json11;
use opentrail_protocol::lookup_events::{
    Event, EventInput, LookupEventsRequest, LookupEventsResponse, ResourceInput, ValidatedLookup,
};
use serde_json::json;

fn validate(body: serde_json::Value) -> Result<ValidatedLookup, AwsError> {
    let bytes = serde_json::to_vec(&body).map_err(|e| AwsError::serialization(e.to_string()))?;
    json11::parse_body::<LookupEventsRequest>(&bytes)?.validate()
}

fn error_code(body: serde_json::Value) -> Option<String> {
    validate(body).err().map(|error| error.code)
}

#[test]
fn empty_body_gets_defaults() -> Result<()> {
    let lookup = validate(json!({}))?;
    ensure!(
        lookup
            == ValidatedLookup {
                attribute: None,
                start_ms: None,
                end_ms: None,
                insight: false,
                max_results: 50,
                next_token: None,
            }
    );
    Ok(())
}

#[test]
fn full_request_validates() -> Result<()> {
    let lookup = validate(json!({
        "LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "root"}],
        "StartTime": 1704164645,
        "EndTime": 1704240000.5,
        "MaxResults": 7,
        "NextToken": "abc"
    }))?;
    ensure!(lookup.attribute == Some((FilterField::Username, "root".to_owned())));
    ensure!(lookup.start_ms == Some(1_704_164_645_000));
    ensure!(lookup.end_ms == Some(1_704_240_000_500));
    ensure!(lookup.max_results == 7);
    ensure!(lookup.next_token.as_deref() == Some("abc"));
    Ok(())
}

#[test]
fn boto3_float_times_are_accepted() -> Result<()> {
    let lookup = validate(json!({"StartTime": 1704164645.678}))?;
    ensure!(lookup.start_ms == Some(1_704_164_645_678));
    Ok(())
}

#[test]
fn attribute_rules() {
    let two = json!({"LookupAttributes": [
        {"AttributeKey": "Username", "AttributeValue": "a"},
        {"AttributeKey": "EventName", "AttributeValue": "b"}
    ]});
    assert_eq!(
        error_code(two),
        Some(codes::INVALID_LOOKUP_ATTRIBUTES.to_owned())
    );
    for attribute in [
        json!({"AttributeKey": "Bogus", "AttributeValue": "a"}),
        json!({"AttributeKey": "username", "AttributeValue": "a"}),
        json!({"AttributeKey": "Username", "AttributeValue": ""}),
        json!({"AttributeKey": "Username"}),
        json!({"AttributeValue": "a"}),
        json!({"AttributeKey": "Username", "AttributeValue": "x".repeat(2001)}),
        // 1001 underscores weigh 2002.
        json!({"AttributeKey": "Username", "AttributeValue": "_".repeat(1001)}),
    ] {
        assert_eq!(
            error_code(json!({"LookupAttributes": [attribute.clone()]})),
            Some(codes::INVALID_LOOKUP_ATTRIBUTES.to_owned()),
            "{attribute}"
        );
    }
    assert!(
        validate(json!({"LookupAttributes": [
            {"AttributeKey": "Username", "AttributeValue": "_".repeat(1000)}
        ]}))
        .is_ok()
    );
    assert!(validate(json!({"LookupAttributes": []})).is_ok());
}

#[test]
fn every_key_is_accepted() -> Result<()> {
    for (key, field) in [
        ("EventId", FilterField::EventId),
        ("EventName", FilterField::EventName),
        ("ReadOnly", FilterField::ReadOnly),
        ("Username", FilterField::Username),
        ("ResourceType", FilterField::ResourceType),
        ("ResourceName", FilterField::ResourceName),
        ("EventSource", FilterField::EventSource),
        ("AccessKeyId", FilterField::AccessKeyId),
    ] {
        let lookup =
            validate(json!({"LookupAttributes": [{"AttributeKey": key, "AttributeValue": "v"}]}))?;
        ensure!(lookup.attribute == Some((field, "v".to_owned())), "{key}");
    }
    Ok(())
}

#[test]
fn insight_category_rules() -> Result<()> {
    ensure!(validate(json!({"EventCategory": "insight"}))?.insight);
    ensure!(
        error_code(json!({"EventCategory": "Insight"}))
            == Some(codes::INVALID_EVENT_CATEGORY.to_owned())
    );
    ensure!(
        error_code(json!({"EventCategory": "management"}))
            == Some(codes::INVALID_EVENT_CATEGORY.to_owned())
    );
    // Insights lookups support only EventId, EventName and EventSource.
    ensure!(
        validate(json!({"EventCategory": "insight",
        "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "x"}]}))
        .is_ok()
    );
    ensure!(
        error_code(json!({"EventCategory": "insight",
            "LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "x"}]}))
            == Some(codes::INVALID_LOOKUP_ATTRIBUTES.to_owned())
    );
    Ok(())
}

#[test]
fn time_range_rules() {
    assert_eq!(
        error_code(json!({"StartTime": 1704240000, "EndTime": 1704164645})),
        Some(codes::INVALID_TIME_RANGE.to_owned())
    );
    assert!(validate(json!({"StartTime": 1704164645, "EndTime": 1704164645})).is_ok());
    assert_eq!(
        error_code(json!({"StartTime": 1e300})),
        Some(codes::INVALID_TIME_RANGE.to_owned())
    );
    assert_eq!(
        error_code(json!({"StartTime": "2024-01-02T03:04:05Z"})),
        Some(codes::SERIALIZATION.to_owned())
    );
}

#[test]
fn max_results_rules() -> Result<()> {
    for bad in [0, -1, 51, 1000] {
        ensure!(
            error_code(json!({"MaxResults": bad})) == Some(codes::INVALID_MAX_RESULTS.to_owned()),
            "{bad}"
        );
    }
    ensure!(validate(json!({"MaxResults": 1}))?.max_results == 1);
    ensure!(validate(json!({"MaxResults": 50}))?.max_results == 50);
    ensure!(error_code(json!({"MaxResults": 1.5})) == Some(codes::SERIALIZATION.to_owned()));
    Ok(())
}

#[test]
fn next_token_is_bound_to_filters_but_not_page_size() -> Result<()> {
    let first = validate(json!({
        "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "ConsoleLogin"}],
        "StartTime": 1704164645,
        "MaxResults": 10
    }))?;
    let token = first.encode_next_token(b"store-cursor");

    // The same parameters (even with a different page size or an equivalent float time)
    // continue the listing, as often as asked.
    for resend in [
        json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "ConsoleLogin"}],
               "StartTime": 1704164645, "MaxResults": 10, "NextToken": token}),
        json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "ConsoleLogin"}],
               "StartTime": 1704164645.0, "MaxResults": 3, "NextToken": token}),
    ] {
        let cursor = validate(resend)?.decode_cursor()?;
        ensure!(cursor.as_deref() == Some(&b"store-cursor"[..]));
    }

    // Anything that changes which events match invalidates the token.
    for changed in [
        json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "Other"}],
               "StartTime": 1704164645, "NextToken": token}),
        json!({"LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "ConsoleLogin"}],
               "StartTime": 1704164645, "NextToken": token}),
        json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "ConsoleLogin"}],
               "StartTime": 1704164646, "NextToken": token}),
        json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "ConsoleLogin"}],
               "NextToken": token}),
        json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "ConsoleLogin"}],
               "StartTime": 1704164645, "EventCategory": "insight", "NextToken": token}),
        json!({"StartTime": 1704164645, "NextToken": "not-a-token"}),
    ] {
        let error = validate(changed.clone())?
            .decode_cursor()
            .err()
            .context("must fail")?;
        ensure!(error.code == codes::INVALID_NEXT_TOKEN, "{changed}");
        ensure!(error.status == 400);
    }
    ensure!(validate(json!({}))?.decode_cursor()?.is_none());
    Ok(())
}

#[test]
fn response_shape_matches_the_model() -> Result<()> {
    let record = r#"{"eventVersion":"1.11","eventID":"0f4c2d8e","readOnly":false}"#;
    let event = Event::from(EventInput {
        event_id: "0f4c2d8e".to_owned(),
        event_name: Some("RunInstances".to_owned()),
        read_only: Some(false),
        access_key_id: Some("ASIAEXAMPLEKEY000001".to_owned()),
        event_time_ms: 1_741_083_309_000,
        event_source: Some("ec2.amazonaws.com".to_owned()),
        username: None,
        resources: vec![ResourceInput {
            resource_type: None,
            resource_name: Some("i-0123".to_owned()),
        }],
        record_json: record.to_owned(),
    });
    let response = LookupEventsResponse {
        events: vec![event],
        next_token: None,
    };
    let wire = json11::ok_response(&response);
    ensure!(wire.status == 200);
    ensure!(wire.header("content-type") == Some("application/x-amz-json-1.1"));
    let text = String::from_utf8(wire.body)?;
    ensure!(text.contains(r#""EventTime":1741083309.0"#), "{text}");
    let body: serde_json::Value = serde_json::from_str(&text)?;
    ensure!(
        body == json!({"Events": [{
            "EventId": "0f4c2d8e",
            "EventName": "RunInstances",
            "ReadOnly": "false",
            "AccessKeyId": "ASIAEXAMPLEKEY000001",
            "EventTime": 1741083309.0,
            "EventSource": "ec2.amazonaws.com",
            "Resources": [{"ResourceName": "i-0123"}],
            "CloudTrailEvent": record
        }]}),
        "{body}"
    );
    // The CLI side parses it back.
    let parsed: LookupEventsResponse = serde_json::from_str(&text)?;
    ensure!(parsed == response);
    Ok(())
}

#[test]
fn empty_resources_are_an_empty_list_and_token_is_sent() -> Result<()> {
    let response = LookupEventsResponse {
        events: vec![Event::from(EventInput {
            event_id: "e".to_owned(),
            event_time_ms: 1_700_000_000_123,
            record_json: "{}".to_owned(),
            ..EventInput::default()
        })],
        next_token: Some("tok".to_owned()),
    };
    let body: serde_json::Value = serde_json::from_slice(&json11::ok_response(&response).body)?;
    ensure!(
        body == json!({"Events": [{"EventId": "e", "EventTime": 1700000000.123,
                                    "Resources": [], "CloudTrailEvent": "{}"}],
                        "NextToken": "tok"}),
        "{body}"
    );
    Ok(())
}
