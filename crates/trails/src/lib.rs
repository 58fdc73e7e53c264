//! Trails: which events a trail logs, and the delivery of CloudTrail log files.
//!
//! - [`model`]: the trail as persisted (settings, selectors, tags, logging history).
//! - [`registry`]: `DATA_DIR/trails/trails.json`, written atomically and durably.
//! - [`selectors`]: basic and advanced event selectors, and a trail's whole filter.
//! - [`log_file`]: CloudTrail's key layout and file naming, gzip `{"Records":[…]}`.
//! - [`destinations`]: where log files go: the [`Destination`] trait and its kinds, one
//!   module each (a local directory, an S3-compatible endpoint), through `object_store`.
//! - [`delivery`]: the per-trail delivery consumer: plan, write, record, advance; one for
//!   log files and, while a trail has Insights selectors, one for Insights files.
//! - [`manifest`]: the durable record of delivered files that digests (issue 6) consume.
//! - [`digest`]: log file integrity: digest files, their signatures, and the per-trail
//!   digest writer (a consumer of the manifest with its own durable state).
//! - [`digest_keys`]: the per-region RSA signing keys, rotated, old public keys kept.
//! - [`validate`]: checks a trail's digests and log files in its bucket (what
//!   `opentrail validate` runs), stricter than `aws cloudtrail validate-logs`.
//! - [`notify`]: SNS-shaped notifications to configured webhooks.
//! - [`streams`]: the CloudWatch Logs stand-in: the stream consumer; its sinks are in
//!   [`sinks`], behind the [`StreamSink`] trait.
//! - [`status`]: GetTrailStatus bookkeeping the workers report into.
//! - [`options`]: [`TrailsOptions`], and [`TrailsOptions::from_config`], the one place
//!   where configuration ([`TrailsConfig`]) becomes destinations, sinks and tunables.
//! - [`service`]: [`Trails`], the handle the server uses: trail operations; the
//!   per-trail workers are started and stopped by `supervisor`.
//!
//! Every view here is a consumer of the event log with a durable cursor in the store
//! (`trail/<arn>` for log files, `trail/<arn>/insights` for Insights files,
//! `trail/<arn>/cloudwatch-logs` for streams), so recovery
//! is replay. A delivered file is a pure function of (trail, log range): its key and
//! bytes are fixed by a plan recorded durably before the object is written, so a crash
//! anywhere rewrites the same key with the same records.
//!
//! This crate knows CloudTrail's file formats but not its API: wire shapes and error codes
//! live in the protocol crate, and the server converts.

mod consumer;
pub mod delivery;
pub mod destinations;
pub mod digest;
pub mod digest_keys;
mod error;
pub mod log_file;
pub mod manifest;
pub mod model;
pub mod notify;
pub mod options;
pub mod registry;
pub mod selectors;
pub mod service;
pub mod sinks;
mod state_file;
pub mod status;
pub mod streams;
mod supervisor;
pub mod validate;

pub use delivery::{CrashPoint, DeliveryKind, DeliveryOptions};
pub use destinations::{
    Bucket, Destination, DestinationBucket, DestinationConfig, DestinationError, DestinationFuture,
    Destinations,
};
pub use digest::DigestOptions;
pub use digest_keys::PublicKeyInfo;
pub use error::TrailsError;
pub use manifest::{DeliveredFile, Manifest};
pub use model::{
    AdvancedSelector, BasicSelector, DataResource, EventSelectors, FieldSelector, InsightSelector,
    LoggingHistory, ReadWriteType, SnsTopic, Tag, Trail, TrailSettings,
};
pub use options::{TrailsConfig, TrailsOptions};
pub use service::{InsightSelection, NewTrail, Scope, TrailRef, TrailUpdate, Trails};
pub use sinks::{SendFuture, SinkConnector, StreamSink, StreamSinkConfig};
pub use status::{StatusHandle, TrailStatus};
pub use streams::StreamOptions;
