//! The stored record reads back as the producer's object plus the appended members, and
//! no input, however broken, makes parsing panic.

use std::collections::BTreeSet;

use opentrail_event::{EventRecord, parse_batch};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::{context, gzip, parse};

const NORMALISED_MEMBERS: [&str; 7] = [
    "eventVersion",
    "eventID",
    "eventType",
    "eventCategory",
    "awsRegion",
    "recipientAccountId",
    "readOnly",
];

/// Asserts that `stored` is `input` plus exactly the normalised members `input` lacked (or
/// held as `null`), and returns the names of those members.
fn assert_is_input_plus_normalised(
    input: &Map<String, Value>,
    stored: &EventRecord,
) -> BTreeSet<String> {
    let stored_value: Value = serde_json::from_str(&stored.json).expect("stored record is JSON");
    let stored_object = stored_value
        .as_object()
        .expect("stored record is an object");
    let mut filled = BTreeSet::new();
    for member in NORMALISED_MEMBERS {
        match input.get(member) {
            None | Some(Value::Null) => {
                assert!(
                    stored_object
                        .get(member)
                        .is_some_and(|value| !value.is_null()),
                    "{member} not filled in {}",
                    stored.json
                );
                filled.insert(member.to_owned());
            }
            Some(_) => {}
        }
    }
    for (key, value) in stored_object {
        if !filled.contains(key) {
            assert_eq!(input.get(key), Some(value), "member {key} changed");
        }
    }
    for key in input.keys() {
        assert!(stored_object.contains_key(key), "member {key} lost");
    }
    filled
}

#[test]
fn unknown_members_escapes_and_unicode_survive() {
    let text = r#"{"eventTime":"2021-07-28T12:00:00Z","eventSource":"s3.amazonaws.com","eventName":"PutObject",
        "requestParameters":{"key":"a\"b\\c\u00e9\ud83d\ude00\n","bucketName":"b","x-amz-acl":null,"size":12345678901234567890,"ratio":-1.5e-7},
        "additionalEventData":{"nested":[[],{},[{"deep":[true,false]}]]},"\u0065vil":"kept","emoji":"😀",
        "userIdentity":{"type":"IAMUser","userName":"al\u0069ce","extra":{"a":1}}}"#;
    let input: Value = serde_json::from_str(text).expect("valid");
    let record = EventRecord::from_json_object(text, &context()).expect("valid record");
    let filled = assert_is_input_plus_normalised(input.as_object().expect("object"), &record);
    assert_eq!(filled.len(), NORMALISED_MEMBERS.len());
    assert_eq!(
        record.attributes.username.as_deref(),
        Some("alice"),
        "escaped strings are decoded"
    );
}

#[test]
fn every_shape_stores_the_same_objects() {
    let input = json!({"eventTime":"2021-07-28T12:00:00Z","eventSource":"s3.amazonaws.com","eventName":"PutObject","eventID":"fixed","x":{"y":[1,"z"]}});
    let compact = serde_json::to_string(&input).expect("serialises");
    let pretty = serde_json::to_string_pretty(&input).expect("serialises");
    for body in [
        compact.clone(),
        pretty.clone(),
        format!("[{compact}]"),
        format!("[\n{pretty}\n]"),
        format!(r#"{{"Records":[{compact}]}}"#),
        format!("{compact}\n{compact}\n"),
        format!("{pretty}\n{pretty}"),
    ] {
        for bytes in [body.clone().into_bytes(), gzip(body.as_bytes())] {
            let batch = parse(&bytes);
            assert!(batch.failures.is_empty(), "{body}: {:?}", batch.failures);
            assert!(!batch.records.is_empty());
            for (_, record) in &batch.records {
                assert_is_input_plus_normalised(input.as_object().expect("object"), record);
                assert_eq!(record.event_id, "fixed");
            }
        }
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1.0e12f64..1.0e12).prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        r#"[\\"{}\[\],:\n ]{0,6}"#.prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map(any::<String>(), inner, 0..5)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A valid record: the required members, any subset of the normalised members (valid or
/// `null`), and arbitrary other members.
fn record_object() -> impl Strategy<Value = Map<String, Value>> {
    let normalised = prop::collection::vec(
        (
            prop::sample::select(NORMALISED_MEMBERS.to_vec()),
            prop_oneof![Just(None), "[a-zA-Z0-9-]{1,12}".prop_map(Some)],
        ),
        0..8,
    );
    let extra = prop::collection::btree_map("x[a-zA-Z0-9 _\"\\\\é]{0,8}", json_value(), 0..6);
    ("[A-Z][a-zA-Z]{0,12}", normalised, extra).prop_map(|(event_name, normalised, extra)| {
        let mut object = Map::new();
        object.insert("eventTime".to_owned(), json!("2022-02-02T02:02:02.5+01:00"));
        object.insert("eventSource".to_owned(), json!("example.amazonaws.com"));
        object.insert("eventName".to_owned(), json!(event_name));
        for (member, value) in normalised {
            let value = match (member, value) {
                (_, None) => Value::Null,
                ("readOnly", Some(text)) => json!(text.len() % 2 == 0),
                (_, Some(text)) => json!(text),
            };
            object.insert(member.to_owned(), value);
        }
        object.extend(extra);
        object
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_records_survive_the_round_trip(object in record_object(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_string_pretty(&object).expect("serialises")
        } else {
            serde_json::to_string(&object).expect("serialises")
        };
        let batch = parse(text.as_bytes());
        prop_assert!(batch.failures.is_empty(), "{:?}", batch.failures);
        prop_assert_eq!(batch.records.len(), 1);
        let record = &batch.records[0].1;
        // Compare with the input as read from its text: serde_json's default float parsing
        // is not exact, so the generated `Value` itself may differ from its own text.
        let input: Map<String, Value> = serde_json::from_str(&text).expect("valid JSON");
        assert_is_input_plus_normalised(&input, record);
        prop_assert!(!record.json.contains('\n'));
        let reread = EventRecord::from_stored(&record.json).expect("stored record reads back");
        prop_assert_eq!(&reread, record);
    }

    #[test]
    fn batches_report_every_element_once_in_order(elements in prop::collection::vec(prop_oneof![
        record_object().prop_map(|object| serde_json::to_string(&object).expect("serialises")),
        json_value().prop_map(|value| serde_json::to_string(&value).expect("serialises")),
    ], 0..12)) {
        let body = format!("[{}]", elements.join(","));
        let batch = parse(body.as_bytes());
        let mut indexes: Vec<usize> = batch.records.iter().map(|(index, _)| *index).collect();
        indexes.extend(batch.failures.iter().map(|failure| failure.index));
        indexes.sort_unstable();
        prop_assert_eq!(indexes, (0..elements.len()).collect::<Vec<_>>());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_batch(&bytes, &context());
        let _ = parse_batch(&gzip(&bytes), &context());
    }

    #[test]
    fn json_like_text_never_panics(text in r#"[\[\]{}",:\\ \n\r\tae0-9.]{0,96}"#) {
        let _ = parse_batch(text.as_bytes(), &context());
        let _ = parse_batch(format!(r#"{{"Records":[{text}]}}"#).as_bytes(), &context());
        let _ = EventRecord::from_json_object(&text, &context());
        let _ = EventRecord::from_stored(&text);
    }
}
