//! Each per-record failure names the record's index, and good records around it survive.

use opentrail_event::{EventRecord, ParsedBatch, RecordErrorKind};

use crate::{context, gzip, names, parse, record};

/// A bad record of each kind, each different from its neighbours.
fn bad_records() -> Vec<(Vec<u8>, RecordErrorKind)> {
    let oversized = record("Big").replacen(
        r#""eventVersion""#,
        &format!(
            r#""padding":"{}","eventVersion""#,
            "x".repeat(opentrail_event::MAX_RECORD_BYTES)
        ),
        1,
    );
    let mut invalid_utf8 = record("Latin1").into_bytes();
    let at = invalid_utf8.len() - 10;
    invalid_utf8.splice(at..at, [b'\xE9', b'\xFF']);
    vec![
        (b"[1,2]".to_vec(), RecordErrorKind::NotAnObject),
        (br#""a string""#.to_vec(), RecordErrorKind::NotAnObject),
        (
            br#"{"eventName":"X","eventSource":"s3.amazonaws.com"}"#.to_vec(),
            RecordErrorKind::MissingField,
        ),
        (
            record("Time")
                .replace("2024-05-01T10:00:00Z", "yesterday")
                .into_bytes(),
            RecordErrorKind::InvalidEventTime,
        ),
        (oversized.into_bytes(), RecordErrorKind::TooLarge),
        (invalid_utf8, RecordErrorKind::InvalidUtf8),
        (
            br#"{"eventName": tru, "x": [1]}"#.to_vec(),
            RecordErrorKind::InvalidJson,
        ),
        (
            record("Typed")
                .replace(r#""eventName":"Typed""#, r#""eventName":5"#)
                .into_bytes(),
            RecordErrorKind::InvalidField,
        ),
    ]
}

/// Good records at even indexes, bad ones at odd indexes.
fn interleaved() -> (Vec<Vec<u8>>, Vec<(usize, RecordErrorKind)>) {
    let mut elements = Vec::new();
    let mut expected_failures = Vec::new();
    for (position, (bad, kind)) in bad_records().into_iter().enumerate() {
        elements.push(record(&format!("Good{position}")).into_bytes());
        expected_failures.push((elements.len(), kind));
        elements.push(bad);
    }
    elements.push(record("Last").into_bytes());
    (elements, expected_failures)
}

fn join(elements: &[Vec<u8>], open: &[u8], separator: &[u8], close: &[u8]) -> Vec<u8> {
    let mut body = open.to_vec();
    for (position, element) in elements.iter().enumerate() {
        if position > 0 {
            body.extend_from_slice(separator);
        }
        body.extend_from_slice(element);
    }
    body.extend_from_slice(close);
    body
}

fn assert_interleaved_result(
    batch: &ParsedBatch,
    elements: &[Vec<u8>],
    expected_failures: &[(usize, RecordErrorKind)],
) {
    let failures: Vec<(usize, RecordErrorKind)> = batch
        .failures
        .iter()
        .map(|failure| (failure.index, failure.kind))
        .collect();
    assert_eq!(failures, expected_failures, "{:#?}", batch.failures);
    let good_indexes: Vec<usize> = batch.records.iter().map(|(index, _)| *index).collect();
    let expected_good: Vec<usize> = (0..elements.len()).filter(|index| index % 2 == 0).collect();
    assert_eq!(good_indexes, expected_good);
    assert_eq!(batch.record_count(), elements.len());
}

#[test]
fn every_error_kind_names_its_index_in_an_array() {
    let (elements, expected_failures) = interleaved();
    let body = join(&elements, b"[\n", b",\n", b"\n]");
    assert_interleaved_result(&parse(&body), &elements, &expected_failures);
    assert_interleaved_result(&parse(&gzip(&body)), &elements, &expected_failures);
}

#[test]
fn every_error_kind_names_its_index_in_a_records_file() {
    let (elements, expected_failures) = interleaved();
    let body = join(&elements, br#"{"Records":["#, b",", b"]}");
    assert_interleaved_result(&parse(&body), &elements, &expected_failures);
    assert_interleaved_result(&parse(&gzip(&body)), &elements, &expected_failures);
}

#[test]
fn every_error_kind_names_its_index_in_ndjson() {
    let (elements, expected_failures) = interleaved();
    let body = join(&elements, b"", b"\n\n", b"\n");
    assert_interleaved_result(&parse(&body), &elements, &expected_failures);
    assert_interleaved_result(&parse(&gzip(&body)), &elements, &expected_failures);
}

#[test]
fn an_unterminated_string_sinks_only_its_ndjson_line() {
    let body = format!("{}\n{{\"eventName\":\"open\n{}\n", record("A"), record("B"));
    let batch = parse(body.as_bytes());
    assert_eq!(names(&batch), vec![(0, "A"), (2, "B")]);
    assert_eq!(batch.failures.len(), 1);
    assert_eq!(
        (batch.failures[0].index, batch.failures[0].kind),
        (1, RecordErrorKind::InvalidJson)
    );
    let broken_first = format!("{{\"eventName\":\"open\n{}\n", record("B"));
    assert_eq!(names(&parse(broken_first.as_bytes())), vec![(1, "B")]);
}

#[test]
fn empty_array_elements_are_invalid_json() {
    let body = format!("[{},,{},]", record("A"), record("B"));
    let batch = parse(body.as_bytes());
    assert_eq!(names(&batch), vec![(0, "A"), (2, "B")]);
    let failures: Vec<_> = batch
        .failures
        .iter()
        .map(|failure| (failure.index, failure.kind))
        .collect();
    assert_eq!(
        failures,
        vec![
            (1, RecordErrorKind::InvalidJson),
            (3, RecordErrorKind::InvalidJson)
        ]
    );
}

fn kind_of(text: &str) -> RecordErrorKind {
    match EventRecord::from_json_object(text, &context()) {
        Ok(record) => panic!("accepted: {text}\n{}", record.json),
        Err(invalid) => invalid.kind,
    }
}

fn with_member(member: &str, value: &str) -> String {
    let base: serde_json::Value = serde_json::from_str(&record("Base")).expect("valid record");
    let mut object = base.as_object().expect("object").clone();
    object.insert(
        member.to_owned(),
        serde_json::from_str(value).expect("valid member value"),
    );
    serde_json::to_string(&object).expect("serialises")
}

#[test]
fn members_of_the_wrong_type_are_invalid_fields() {
    for (member, value) in [
        ("eventName", "5"),
        ("eventName", r#""""#),
        ("eventSource", "[]"),
        ("eventID", "7"),
        ("eventID", r#""""#),
        ("awsRegion", "false"),
        ("recipientAccountId", "123"),
        ("eventVersion", "1.08"),
        ("eventCategory", "{}"),
        ("readOnly", r#""yes""#),
        ("readOnly", "1"),
        ("errorCode", "1"),
        ("sourceIPAddress", "{}"),
        ("userIdentity", r#""alice""#),
        ("userIdentity", r#"{"type":"IAMUser","arn":[]}"#),
        (
            "userIdentity",
            r#"{"type":"AssumedRole","sessionContext":{"sessionIssuer":"role"}}"#,
        ),
        (
            "userIdentity",
            r#"{"type":"IdentityCenterUser","onBehalfOf":{"userId":1}}"#,
        ),
        ("resources", "{}"),
        ("resources", "[1]"),
        ("resources", r#"[{"ARN":1}]"#),
    ] {
        assert_eq!(
            kind_of(&with_member(member, value)),
            RecordErrorKind::InvalidField,
            "{member}: {value}"
        );
    }
}

#[test]
fn error_messages_name_the_member() {
    let invalid = EventRecord::from_json_object(
        &with_member("resources", r#"[{"ARN":"a"},{"type":7}]"#),
        &context(),
    )
    .expect_err("invalid");
    assert_eq!(
        invalid.message,
        "resources[1].type must be a string, found a number"
    );
    let missing =
        EventRecord::from_json_object(r#"{"eventSource":"s"}"#, &context()).expect_err("invalid");
    assert_eq!(missing.kind, RecordErrorKind::MissingField);
    assert_eq!(
        missing.message,
        "missing required member eventName, eventTime"
    );
}

#[test]
fn event_time_problems_are_invalid_event_times() {
    for value in [
        r#""2024-05-01""#,
        r#""2024-05-01T10:00:00""#,
        r#""2024-13-01T10:00:00Z""#,
        "1714557600",
        r#""""#,
    ] {
        assert_eq!(
            kind_of(&with_member("eventTime", value)),
            RecordErrorKind::InvalidEventTime,
            "{value}"
        );
    }
    assert_eq!(
        kind_of(&with_member("eventTime", "null")),
        RecordErrorKind::MissingField
    );
}

#[test]
fn duplicate_members_that_are_read_are_invalid_json() {
    let duplicated = record("A").replacen('{', r#"{"eventName":"Other","#, 1);
    assert_eq!(kind_of(&duplicated), RecordErrorKind::InvalidJson);
}

#[test]
fn nulls_in_optional_members_count_as_absent() {
    for (member, value) in [
        ("errorCode", "null"),
        ("userIdentity", "null"),
        ("resources", "null"),
        ("sourceIPAddress", r#""""#),
    ] {
        let record =
            EventRecord::from_json_object(&with_member(member, value), &context()).expect("valid");
        assert_eq!(record.attributes.error_code, None);
        assert_eq!(record.attributes.username, None);
        assert!(record.attributes.resources.is_empty());
        assert_eq!(record.attributes.source_ip_address, None);
    }
}
