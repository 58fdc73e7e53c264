//! Every input shape is read, plain and gzip; bodies of no shape are batch errors.

use opentrail_event::{BatchError, ParsedBatch, parse_batch, parse_batch_with_limit};

use crate::{context, gzip, names, parse, record};

/// Parses `body` as sent and gzipped; both must give the same records.
fn parse_plain_and_gzip(body: &str) -> ParsedBatch {
    let plain = parse(body.as_bytes());
    let gzipped = parse(&gzip(body.as_bytes()));
    assert_eq!(names(&plain), names(&gzipped), "gzip changed the result");
    assert_eq!(
        plain.failures, gzipped.failures,
        "gzip changed the failures"
    );
    plain
}

#[test]
fn records_wrapper_is_read() {
    let body = format!(r#"{{"Records":[{},{}]}}"#, record("A"), record("B"));
    let batch = parse_plain_and_gzip(&body);
    assert_eq!(names(&batch), vec![(0, "A"), (1, "B")]);
    assert!(batch.failures.is_empty());
}

#[test]
fn records_wrapper_may_have_other_members_and_pretty_printing() {
    let body = format!(
        "{{\n  \"digest\": {{\"Records\": 1}},\n  \"Records\": [\n    {},\n    {}\n  ],\n  \"more\": [1, 2]\n}}\n",
        record("A"),
        record("B")
    );
    let batch = parse_plain_and_gzip(&body);
    assert_eq!(names(&batch), vec![(0, "A"), (1, "B")]);
}

#[test]
fn json_array_is_read() {
    let body = format!("[\n{},\n{}\n]", record("A"), record("B"));
    let batch = parse_plain_and_gzip(&body);
    assert_eq!(names(&batch), vec![(0, "A"), (1, "B")]);
}

#[test]
fn single_object_is_read() {
    let batch = parse_plain_and_gzip(&record("A"));
    assert_eq!(names(&batch), vec![(0, "A")]);
}

#[test]
fn ndjson_is_read_skipping_blank_lines() {
    let body = format!(
        "\n{}\r\n\n   \n{}\r\n{}",
        record("A"),
        record("B"),
        record("C")
    );
    let batch = parse_plain_and_gzip(&body);
    assert_eq!(names(&batch), vec![(0, "A"), (1, "B"), (2, "C")]);
    assert!(batch.failures.is_empty());
}

#[test]
fn concatenated_pretty_objects_are_read() {
    let pretty = |name: &str| {
        let value: serde_json::Value = serde_json::from_str(&record(name)).expect("valid record");
        serde_json::to_string_pretty(&value).expect("serialises")
    };
    let body = format!("{}\n{}\n", pretty("A"), pretty("B"));
    let batch = parse_plain_and_gzip(&body);
    assert_eq!(names(&batch), vec![(0, "A"), (1, "B")]);
    let same_line = format!("{} {}", record("C"), record("D"));
    assert_eq!(
        names(&parse(same_line.as_bytes())),
        vec![(0, "C"), (1, "D")]
    );
}

#[test]
fn empty_collections_hold_no_records() {
    for body in ["[]", " [ \n ] ", r#"{"Records":[]}"#] {
        let batch = parse_plain_and_gzip(body);
        assert_eq!(batch.record_count(), 0, "{body}");
    }
}

#[test]
fn multi_member_gzip_is_read_to_the_end() {
    let first = format!("[{},", record("A"));
    let second = format!("{}]", record("B"));
    let mut body = gzip(first.as_bytes());
    body.extend_from_slice(&gzip(second.as_bytes()));
    assert_eq!(names(&parse(&body)), vec![(0, "A"), (1, "B")]);
}

#[test]
fn byte_order_mark_is_skipped() {
    let body = format!("\u{feff}{}", record("A"));
    assert_eq!(names(&parse_plain_and_gzip(&body)), vec![(0, "A")]);
}

#[test]
fn empty_bodies_are_batch_errors() {
    for body in [&b""[..], b"  \n\t ", &gzip(b""), &gzip(b"\n")] {
        assert!(
            matches!(parse_batch(body, &context()), Err(BatchError::Empty)),
            "{body:?}"
        );
    }
}

#[test]
fn bodies_of_no_shape_are_batch_errors() {
    let record_a = record("A");
    for body in [
        "42".to_owned(),
        r#""text""#.to_owned(),
        "null".to_owned(),
        "<xml/>".to_owned(),
        format!("[{record_a}"),
        format!("[{record_a}] trailing"),
        format!(r#"{{"Records":[{record_a}]}} {{}}"#),
        format!("{{\"Records\":[{record_a}]"),
        r#"{"eventName":"#.to_owned(),
        "[}".to_owned(),
    ] {
        let plain = parse_batch(body.as_bytes(), &context());
        assert!(
            matches!(plain, Err(BatchError::Unrecognised(_))),
            "{body}: {plain:?}"
        );
        let gzipped = parse_batch(&gzip(body.as_bytes()), &context());
        assert!(
            matches!(gzipped, Err(BatchError::Unrecognised(_))),
            "{body} gzipped: {gzipped:?}"
        );
    }
}

#[test]
fn corrupt_gzip_is_a_batch_error() {
    let mut body = gzip(record("A").as_bytes());
    let middle = body.len() / 2;
    body.truncate(middle);
    assert!(matches!(
        parse_batch(&body, &context()),
        Err(BatchError::Gzip(_))
    ));
    assert!(matches!(
        parse_batch(&[0x1f, 0x8b, 0, 1, 2], &context()),
        Err(BatchError::Gzip(_))
    ));
}

#[test]
fn decompressed_size_is_bounded() {
    let body = format!("[{}]", record("A"));
    let compressed = gzip(body.as_bytes());
    let exact = parse_batch_with_limit(&compressed, &context(), body.len()).expect("fits exactly");
    assert_eq!(exact.records.len(), 1);
    let over = parse_batch_with_limit(&compressed, &context(), body.len() - 1);
    assert!(
        matches!(over, Err(BatchError::DecompressedTooLarge { max_bytes }) if max_bytes == body.len() - 1)
    );
    // A zip bomb stops at the bound rather than after inflating everything.
    let bomb = gzip(&vec![b' '; 64 * 1024 * 1024]);
    assert!(matches!(
        parse_batch_with_limit(&bomb, &context(), 1024 * 1024),
        Err(BatchError::DecompressedTooLarge { .. })
    ));
}
