//! Integration tests of `opentrail-event`, one binary (each extra test binary relinks the
//! whole graph). Modules are named after the behaviour they protect.

mod corpus;
mod input_shapes;
mod lossless_round_trip;
mod normalisation;
mod per_record_errors;

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use opentrail_event::{IngestContext, ParsedBatch, parse_batch};

pub fn context() -> IngestContext {
    IngestContext {
        account_id: "111122223333".to_owned(),
        region: "eu-west-1".to_owned(),
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

/// A minimal valid record whose `eventName` tells records apart.
pub fn record(event_name: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"2024-05-01T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"{event_name}","eventID":"id-{event_name}","awsRegion":"us-east-1","recipientAccountId":"123456789012","readOnly":true,"eventType":"AwsApiCall","eventCategory":"Management"}}"#
    )
}

pub fn parse(bytes: &[u8]) -> ParsedBatch {
    parse_batch(bytes, &context()).expect("batch parses")
}

/// The `eventName` of each good record, with its index.
pub fn names(batch: &ParsedBatch) -> Vec<(usize, &str)> {
    batch
        .records
        .iter()
        .map(|(index, record)| (*index, record.attributes.event_name.as_str()))
        .collect()
}
