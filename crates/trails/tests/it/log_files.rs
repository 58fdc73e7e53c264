//! Key layout, file naming and file bytes.

use opentrail_trails::log_file::{FileIdentity, build_log_file, log_file_key, unique_string};
use serde_json::Value;

use crate::support::gunzip_single_member;

fn identity(after_seq: u64, through_seq: u64) -> FileIdentity<'static> {
    FileIdentity {
        trail_id: "5f1c2b1e-0000-4000-8000-000000000001",
        trail_arn: "arn:aws:cloudtrail:us-east-1:111122223333:trail/main",
        after_seq,
        through_seq,
        account_id: "111122223333",
        region: "us-east-1",
    }
}

#[test]
fn unique_string_is_sixteen_alphanumerics_and_a_pure_function_of_the_range() {
    let first = unique_string(&identity(0, 10));
    assert_eq!(first.len(), 16);
    assert!(
        first.bytes().all(|byte| byte.is_ascii_alphanumeric()),
        "{first}"
    );
    assert_eq!(first, unique_string(&identity(0, 10)));
    assert_ne!(first, unique_string(&identity(0, 11)));
    assert_ne!(first, unique_string(&identity(10, 20)));
    let other_stream = FileIdentity {
        region: "eu-west-1",
        ..identity(0, 10)
    };
    assert_ne!(first, unique_string(&other_stream));
}

#[test]
fn key_layout_matches_cloudtrail() {
    // 2026-03-04T10:15:59.999Z
    let time_ms = 1_772_619_359_999;
    let key = log_file_key(
        Some("org/prod"),
        "111122223333",
        "eu-west-2",
        time_ms,
        "Mu0KsOhtH1ar15ZZ",
    );
    assert_eq!(
        key,
        "org/prod/AWSLogs/111122223333/CloudTrail/eu-west-2/2026/03/04/111122223333_CloudTrail_eu-west-2_20260304T1015Z_Mu0KsOhtH1ar15ZZ.json.gz"
    );
    let unprefixed = log_file_key(
        None,
        "111122223333",
        "eu-west-2",
        time_ms,
        "Mu0KsOhtH1ar15ZZ",
    );
    assert!(unprefixed.starts_with("AWSLogs/111122223333/CloudTrail/eu-west-2/2026/03/04/"));
}

#[test]
fn file_is_one_gzip_member_of_records_in_order_with_the_hash_of_the_uncompressed_bytes() {
    let records = [
        r#"{"eventID":"a","eventName":"One"}"#.to_owned(),
        r#"{"eventID":"b","eventName":"Two","nested":{"x":[1,2]}}"#.to_owned(),
    ];
    let built = build_log_file(&records).expect("build");
    let body = gunzip_single_member(&built.gzip);
    assert_eq!(
        body,
        br#"{"Records":[{"eventID":"a","eventName":"One"},{"eventID":"b","eventName":"Two","nested":{"x":[1,2]}}]}"#
    );
    assert_eq!(built.uncompressed_len, body.len());
    use sha2::Digest;
    assert_eq!(built.sha256_hex, hex::encode(sha2::Sha256::digest(&body)));
    let parsed: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(parsed["Records"].as_array().map(Vec::len), Some(2));
    // The same records always give the same bytes.
    assert_eq!(build_log_file(&records).expect("build").gzip, built.gzip);
}
