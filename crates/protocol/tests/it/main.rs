//! Integration tests of opentrail-protocol, one binary (see the crate's Cargo.toml).

mod botocore_fixtures;
mod channels;
mod cloudtrail_data;
mod json11;
mod lookup_events;
mod sigv4_roundtrip;
mod sigv4_suite;
