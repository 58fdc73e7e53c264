//! What [`crate::Trails`] runs with, and the one place where configuration becomes it.
//!
//! [`TrailsConfig`] is the trails part of the server's configuration, as plain values;
//! [`TrailsOptions::from_config`] applies the defaults and floors and connects the
//! destination and the stream sinks. [`TrailsOptions`] holds them as trait objects, so
//! code (tests, an embedding program) can also hand it destinations and sinks that no
//! configuration names.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::delivery::DeliveryOptions;
use crate::destinations::{self, Destination, DestinationConfig};
use crate::digest::DigestOptions;
use crate::sinks::{SinkConnector, StreamSinkConfig};
use crate::streams::StreamOptions;

/// The trails settings of a server configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailsConfig {
    /// Trail state lives in `<data_dir>/trails`, digest keys in `<data_dir>/digest-keys`.
    pub data_dir: PathBuf,
    /// The operator's account: its trails deliver every account's events.
    pub default_account_id: String,
    /// Where buckets live; `None`: directories under `<data_dir>/buckets`.
    pub destination: Option<DestinationConfig>,
    /// A trail's log file is written at most this long after its first event (at least
    /// [`DeliveryOptions::INTERVAL_MIN`]).
    pub delivery_interval: Duration,
    /// A digest closes this long after the previous one (at least
    /// [`DigestOptions::INTERVAL_MIN`]).
    pub digest_interval: Duration,
    /// Digest signing keys are replaced after this long.
    pub digest_key_rotation: Duration,
    pub trails_per_region_max: usize,
    /// SNS topic (ARN or name) → webhook URL.
    pub sns_topics: BTreeMap<String, String>,
    /// CloudWatch Logs log group ARN → sink.
    pub log_groups: BTreeMap<String, StreamSinkConfig>,
}

/// Everything [`crate::Trails`] needs.
#[derive(Debug, Clone)]
pub struct TrailsOptions {
    /// Trail state lives in `<data_dir>/trails`, digest keys in `<data_dir>/digest-keys`.
    pub data_dir: PathBuf,
    /// Where buckets live.
    pub destination: Arc<dyn Destination>,
    /// The operator's account: its trails deliver every account's events.
    pub default_account_id: String,
    pub trails_per_region_max: usize,
    pub delivery: DeliveryOptions,
    pub streams: StreamOptions,
    /// SNS topic (ARN or name) → webhook URL.
    pub sns_topics: BTreeMap<String, String>,
    /// CloudWatch Logs log group ARN → sink.
    pub log_groups: BTreeMap<String, Arc<dyn SinkConnector>>,
    /// Digest files (log file integrity).
    pub digest: DigestOptions,
}

impl TrailsOptions {
    /// The options a configuration names; every tunable it does not set has its default.
    pub fn from_config(config: TrailsConfig) -> TrailsOptions {
        let destination = config
            .destination
            .unwrap_or_else(|| DestinationConfig::local_in_data_dir(&config.data_dir));
        TrailsOptions {
            destination: destinations::connect(&destination),
            data_dir: config.data_dir,
            default_account_id: config.default_account_id,
            trails_per_region_max: config.trails_per_region_max,
            delivery: DeliveryOptions {
                interval: config.delivery_interval.max(DeliveryOptions::INTERVAL_MIN),
                ..DeliveryOptions::default()
            },
            streams: StreamOptions::default(),
            sns_topics: config.sns_topics,
            log_groups: config
                .log_groups
                .into_iter()
                .map(|(log_group, sink)| (log_group, Arc::new(sink) as Arc<dyn SinkConnector>))
                .collect(),
            digest: DigestOptions {
                interval: config.digest_interval.max(DigestOptions::INTERVAL_MIN),
                key_rotation: config.digest_key_rotation,
            },
        }
    }
}
