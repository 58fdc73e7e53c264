//! Server settings: one typed [`Config`], built from four layers.
//!
//! Later layers win: built-in defaults < TOML file (`--config FILE`) < environment
//! variables `OPENTRAIL_<SETTING>` < command-line flags. Every layer is parsed into the
//! same all-optional [`ConfigLayer`], so the precedence lives in one place
//! ([`ConfigLayer::apply_over`]) and every setting is validated once, on the merged result.
//!
//! | setting (TOML key) | environment variable | default |
//! |---|---|---|
//! | `data_dir` | `OPENTRAIL_DATA_DIR` | `./opentrail-data` |
//! | `listen` | `OPENTRAIL_LISTEN` | `127.0.0.1:4580` |
//! | `pg_listen` | `OPENTRAIL_PG_LISTEN` | none: off; else the Postgres wire protocol on this address (SQL over event data stores, a read key's id and secret as user and password) |
//! | `account_id` | `OPENTRAIL_ACCOUNT_ID` | `123456789012` |
//! | `region` | `OPENTRAIL_REGION` | `us-east-1` |
//! | `ingest_body_bytes_max` | `OPENTRAIL_INGEST_BODY_BYTES_MAX` | 10 MiB |
//! | `ingest_queue_max` | `OPENTRAIL_INGEST_QUEUE_MAX` | 256 |
//! | `record_ingest_calls` | `OPENTRAIL_RECORD_INGEST_CALLS` | `false` |
//! | `retention_days` | `OPENTRAIL_RETENTION_DAYS` | 90 |
//! | `archive_retention_days` | `OPENTRAIL_ARCHIVE_RETENTION_DAYS` | 2555 |
//! | `archive_after_days` | `OPENTRAIL_ARCHIVE_AFTER_DAYS` | `retention_days` less one: an event moves to the Parquet archive this long after it was recorded, shortly before lookups drop it, so it is kept in one place at a time; `0` archives every event within `archive_seal_age_secs`, as a second copy beside the store |
//! | `archive_seal_age_secs` | `OPENTRAIL_ARCHIVE_SEAL_AGE_SECS` | 300 |
//! | `seal_interval_secs` | `OPENTRAIL_SEAL_INTERVAL_SECS` | 120: the longest an event stays in the store's in-memory head before it is sealed into a segment |
//! | `tls_cert`, `tls_key` | `OPENTRAIL_TLS_CERT`, `OPENTRAIL_TLS_KEY` | none: plain HTTP. Both PEM files: HTTPS only (HTTP/1.1 and HTTP/2), reloaded on SIGHUP |
//! | `connections_max` | `OPENTRAIL_CONNECTIONS_MAX` | 1024: beyond it, new connections wait in the listen backlog |
//! | `header_read_timeout_secs` | `OPENTRAIL_HEADER_READ_TIMEOUT_SECS` | 30: a request's headers must arrive within this |
//! | `idle_timeout_secs` | `OPENTRAIL_IDLE_TIMEOUT_SECS` | 60: a connection with nothing in flight and no byte moving is closed after this |
//! | `body_read_timeout_secs` | `OPENTRAIL_BODY_READ_TIMEOUT_SECS` | 60: a request body must arrive within this (else 408) |
//! | `free_space_reserve_mb` | `OPENTRAIL_FREE_SPACE_RESERVE_MB` | 5% of the data dir's filesystem, at most 512 MiB: under this much free space, writes are refused with 503 until space is freed; `0` turns the check off |
//! | `segments_url` | `OPENTRAIL_SEGMENTS_URL` | none: sealed segments stay under `<data_dir>/store/segments`; `s3://BUCKET[/PREFIX]` keeps them in a bucket reached with the `s3_*` settings below (the local folder is then a cache, refilled at start) |
//! | `lookup_rate_limit_per_key_per_second` | `OPENTRAIL_LOOKUP_RATE_LIMIT_PER_KEY_PER_SECOND` | none |
//! | `insights_baseline_minutes` | `OPENTRAIL_INSIGHTS_BASELINE_MINUTES` | 10080 (7 days, CloudTrail's): the window an Insights baseline covers, and the history an account needs before its first Insights; shorten it for demos and tests |
//! | `lake_memory_limit_mb` | `OPENTRAIL_LAKE_MEMORY_LIMIT_MB` | 256: the memory every running Lake query shares; sorts, joins and aggregations spill to disk before a query fails with it |
//! | `lake_query_timeout_secs` | `OPENTRAIL_LAKE_QUERY_TIMEOUT_SECS` | 3600 (CloudTrail's hour): a Lake query still running after this ends as `TIMED_OUT`, keeping the rows it had |
//! | `rules_dir` | `OPENTRAIL_RULES_DIR` | none: only the rules added through the API (`opentrail rules add`, kept in `<data_dir>/detections`); else also Sigma rules (`*.yml`, `logsource: product: aws, service: cloudtrail`) matched against every event, reloaded when they change |
//! | `alert_webhook_url` | `OPENTRAIL_ALERT_WEBHOOK_URL` | none; else each alert is `POST`ed there as JSON (`ruleId`, `ruleTitle`, `eventId`, `eventName`, `eventTime`, …) |
//! | `alert_webhook_secret` | `OPENTRAIL_ALERT_WEBHOOK_SECRET` | none: unsigned; else each alert request carries `X-OpenTrail-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`, as trail stream webhooks |
//! | `alert_syslog` | `OPENTRAIL_ALERT_SYSLOG` | none; else each alert goes to syslog as an RFC 5424 message: `udp://host:port`, or `tcp://host:port` / `host:port` (octet-counted) |
//! | `alert_file` | `OPENTRAIL_ALERT_FILE` | none; else each alert is appended to this NDJSON file (fsynced per batch, rotated at 100 MiB, 5 kept) |
//! | `s3_endpoint` | `OPENTRAIL_S3_ENDPOINT` | none: trail buckets are directories under `<data_dir>/buckets` |
//! | `s3_region` | `OPENTRAIL_S3_REGION` | the `region` setting |
//! | `s3_access_key_id` | `OPENTRAIL_S3_ACCESS_KEY_ID` | none (requests to the endpoint are unsigned) |
//! | `s3_secret_access_key` | `OPENTRAIL_S3_SECRET_ACCESS_KEY` | none |
//! | `delivery_interval_secs` | `OPENTRAIL_DELIVERY_INTERVAL_SECS` | 60 (at least 1): a trail's log file is written at most this long after its first event |
//! | `digest_interval_secs` | `OPENTRAIL_DIGEST_INTERVAL_SECS` | 3600 (at least 1): a trail with log file validation writes a digest file per region this often |
//! | `digest_key_rotation_days` | `OPENTRAIL_DIGEST_KEY_ROTATION_DAYS` | 30: digest signing keys (one per region, in `<data_dir>/digest-keys`) are replaced this often; old public keys stay listed |
//! | `trails_per_region_max` | `OPENTRAIL_TRAILS_PER_REGION_MAX` | 5 (CloudTrail's quota) |
//! | `[sns_topics]` table | (TOML only) | empty: topic ARN or name = webhook URL that gets each delivery's SNS-shaped notification |
//! | `[cloudwatch_log_groups."<log group ARN>"]` tables | (TOML only) | empty: the stream sink of a log group, `kind = "webhook"` (`url`, `secret`), `"file"` (`path`, `rotate_bytes`, `keep_files`) or `"syslog"` (`address`) |
//! | `[[proxy]]` sections | (TOML only) | none: recording proxies served by this process, each recording into this store (`listen`, `upstream`, `[proxy.recording]`; see `opentrail_proxy::config`) |
//!
//! An environment variable set to the empty string counts as unset, because container
//! runtimes often pass every declared variable, set or not.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use opentrail_trails::{DestinationConfig, StreamSinkConfig, TrailsConfig};
use serde::Deserialize;

/// Where events, keys and the master key live unless configured otherwise.
pub const DEFAULT_DATA_DIR: &str = "./opentrail-data";
/// Loopback only by default: exposing the service is an explicit decision.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4580";
/// The account id AWS uses in its own documentation examples, so it is recognisably fake.
pub const DEFAULT_ACCOUNT_ID: &str = "123456789012";
pub const DEFAULT_REGION: &str = "us-east-1";
/// The issue's "10 MB" body limit, as a power of two like other AWS size limits.
pub const DEFAULT_INGEST_BODY_BYTES_MAX: usize = 10 * 1024 * 1024;
/// Matches the store's own default append queue bound.
pub const DEFAULT_INGEST_QUEUE_MAX: usize = 256;
/// CloudTrail's event history window.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// CloudTrail Lake's default retention (seven years).
pub const DEFAULT_ARCHIVE_RETENTION_DAYS: u32 = 2555;
pub const DEFAULT_ARCHIVE_SEAL_AGE_SECS: u32 = 300;
/// Long enough that a quiet server makes few small segments (merges combine them).
pub const DEFAULT_SEAL_INTERVAL_SECS: u32 = 120;
/// CloudTrail's Insights baseline: the 7 days before the activity.
pub const DEFAULT_INSIGHTS_BASELINE_MINUTES: u32 = 7 * 24 * 60;
/// A year: a longer baseline only costs memory without changing what is found.
const INSIGHTS_BASELINE_MINUTES_LIMIT: u32 = 366 * 24 * 60;
pub const DEFAULT_LAKE_MEMORY_LIMIT_MB: u32 = 256;
const LAKE_MEMORY_LIMIT_MB_LIMIT: u32 = 1024 * 1024;
pub const DEFAULT_LAKE_QUERY_TIMEOUT_SECS: u32 = 3600;
const LAKE_QUERY_TIMEOUT_SECS_LIMIT: u32 = 7 * 24 * 3600;
/// The common soft limit of open files is 1024; the store needs some of its own.
pub const DEFAULT_CONNECTIONS_MAX: u32 = 1024;
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u32 = 30;
pub const DEFAULT_IDLE_TIMEOUT_SECS: u32 = 60;
/// Generous: a 10 MiB ingest body over a slow link.
pub const DEFAULT_BODY_READ_TIMEOUT_SECS: u32 = 60;

const INGEST_BODY_BYTES_MAX_LIMIT: usize = 1024 * 1024 * 1024;
const INGEST_QUEUE_MAX_LIMIT: usize = 65_536;
const RETENTION_DAYS_LIMIT: u32 = 36_500;
const LOOKUP_RATE_LIMIT_PER_SECOND_LIMIT: u32 = 1_000_000;

/// The validated settings the server runs with. Passed explicitly, never global.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The Postgres wire protocol's address; `None`: not served.
    pub pg_listen: Option<SocketAddr>,
    /// The default account: the first admin key belongs to it, events without a
    /// `recipientAccountId` land in it, and its admins see every account.
    pub account_id: String,
    /// The default region, used where a request does not carry one (bearer tokens).
    pub region: String,
    /// Largest accepted request body; larger gets 413.
    pub ingest_body_bytes_max: usize,
    /// How many ingest batches may wait for the store writer before ingest answers 503.
    pub ingest_queue_max: usize,
    /// Self-audit also records ingest calls (off by default: it would double the volume).
    pub record_ingest_calls: bool,
    /// Lookup (event history) keeps events this many days after they were recorded.
    pub retention_days: u32,
    /// The columnar archive keeps events this many days.
    pub archive_retention_days: u32,
    /// Events are archived this many days after they were recorded; `None` is
    /// [`Config::archive_after_days`]'s default, a day before the store's retention ends.
    pub archive_after_days: Option<u32>,
    /// Events reach the Parquet archive at the latest this long after they are due
    /// (`archive_after_days`; sooner when enough events are waiting).
    pub archive_seal_age_secs: u32,
    pub seal_interval_secs: u32,
    /// PEM certificate chain and private key: serve HTTPS only. Both or neither.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Open connections at most; beyond it, new ones wait in the listen backlog.
    pub connections_max: u32,
    pub header_read_timeout_secs: u32,
    pub idle_timeout_secs: u32,
    pub body_read_timeout_secs: u32,
    /// Writes are refused while the data dir's filesystem has less free space than this
    /// many MB. `None`: 5% of the filesystem, at most 512 MiB.
    pub free_space_reserve_mb: Option<u64>,
    /// `None`: sealed segments stay under the data dir; else `s3://BUCKET[/PREFIX]`,
    /// reached with the trail delivery `s3_*` settings (see [`Config::segments_location`]).
    pub segments_url: Option<String>,
    /// Sigma rules matched against every event (`serve --rules DIR`).
    pub rules_dir: Option<PathBuf>,
    /// Where each alert is `POST`ed.
    pub alert_webhook_url: Option<String>,
    /// Signs the alert webhook's requests (HMAC-SHA256 of the body).
    pub alert_webhook_secret: Option<Secret>,
    /// Where each alert is sent as a syslog message (`udp://`, `tcp://` or `host:port`).
    pub alert_syslog: Option<String>,
    /// An NDJSON file each alert is appended to.
    pub alert_file: Option<PathBuf>,
    /// `None` means LookupEvents is not rate limited (CloudTrail allows 2 per second).
    pub lookup_rate_limit_per_key_per_second: Option<u32>,
    /// The Insights baseline window, in minutes (at least 1).
    pub insights_baseline_minutes: u32,
    pub lake_memory_limit_mb: u32,
    pub lake_query_timeout_secs: u32,
    /// Where trails deliver log files, how often, and their notification and stream sinks.
    pub trail_delivery: TrailDeliveryConfig,
    /// Recording proxies this process serves (`[[proxy]]`).
    pub proxies: Vec<opentrail_proxy::ProxyConfig>,
}

/// Trail delivery settings (see the module table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailDeliveryConfig {
    /// `None`: buckets are directories under `<data_dir>/buckets`.
    pub s3_endpoint: Option<String>,
    /// `None`: the `region` setting.
    pub s3_region: Option<String>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<Secret>,
    pub delivery_interval_secs: u64,
    pub digest_interval_secs: u64,
    pub digest_key_rotation_days: u32,
    pub trails_per_region_max: usize,
    /// SNS topic ARN or name → webhook URL.
    pub sns_topics: BTreeMap<String, String>,
    /// CloudWatch Logs log group ARN → stream sink.
    pub cloudwatch_log_groups: BTreeMap<String, StreamSinkConfig>,
}

impl Default for TrailDeliveryConfig {
    fn default() -> Self {
        TrailDeliveryConfig {
            s3_endpoint: None,
            s3_region: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            delivery_interval_secs: DEFAULT_DELIVERY_INTERVAL_SECS,
            digest_interval_secs: DEFAULT_DIGEST_INTERVAL_SECS,
            digest_key_rotation_days: DEFAULT_DIGEST_KEY_ROTATION_DAYS,
            trails_per_region_max: DEFAULT_TRAILS_PER_REGION_MAX,
            sns_topics: BTreeMap::new(),
            cloudwatch_log_groups: BTreeMap::new(),
        }
    }
}

/// A secret setting: kept out of `Debug` output, so logging a config never leaks it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Secret(…)")
    }
}

/// CloudTrail's default delivery cadence is about 5 minutes; a minute keeps files close
/// to real time without producing thousands of tiny files a day.
pub const DEFAULT_DELIVERY_INTERVAL_SECS: u64 = 60;
/// CloudTrail writes digest files hourly.
pub const DEFAULT_DIGEST_INTERVAL_SECS: u64 = 3600;
/// CloudTrail's documented public keys are valid for 30 days.
pub const DEFAULT_DIGEST_KEY_ROTATION_DAYS: u32 = 30;
const DIGEST_KEY_ROTATION_DAYS_LIMIT: u32 = 3650;
/// CloudTrail's quota of trails per region.
pub const DEFAULT_TRAILS_PER_REGION_MAX: usize = 5;
const DELIVERY_INTERVAL_SECS_LIMIT: u64 = 24 * 3600;
const TRAILS_PER_REGION_LIMIT: usize = 1000;

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            listen: SocketAddr::from(([127, 0, 0, 1], 4580)),
            pg_listen: None,
            account_id: DEFAULT_ACCOUNT_ID.to_owned(),
            region: DEFAULT_REGION.to_owned(),
            ingest_body_bytes_max: DEFAULT_INGEST_BODY_BYTES_MAX,
            ingest_queue_max: DEFAULT_INGEST_QUEUE_MAX,
            record_ingest_calls: false,
            retention_days: DEFAULT_RETENTION_DAYS,
            archive_retention_days: DEFAULT_ARCHIVE_RETENTION_DAYS,
            archive_after_days: None,
            archive_seal_age_secs: DEFAULT_ARCHIVE_SEAL_AGE_SECS,
            seal_interval_secs: DEFAULT_SEAL_INTERVAL_SECS,
            tls_cert: None,
            tls_key: None,
            connections_max: DEFAULT_CONNECTIONS_MAX,
            header_read_timeout_secs: DEFAULT_HEADER_READ_TIMEOUT_SECS,
            idle_timeout_secs: DEFAULT_IDLE_TIMEOUT_SECS,
            body_read_timeout_secs: DEFAULT_BODY_READ_TIMEOUT_SECS,
            free_space_reserve_mb: None,
            segments_url: None,
            rules_dir: None,
            alert_webhook_url: None,
            alert_webhook_secret: None,
            alert_syslog: None,
            alert_file: None,
            lookup_rate_limit_per_key_per_second: None,
            insights_baseline_minutes: DEFAULT_INSIGHTS_BASELINE_MINUTES,
            lake_memory_limit_mb: DEFAULT_LAKE_MEMORY_LIMIT_MB,
            lake_query_timeout_secs: DEFAULT_LAKE_QUERY_TIMEOUT_SECS,
            trail_delivery: TrailDeliveryConfig::default(),
            proxies: Vec::new(),
        }
    }
}

/// One layer of settings; `None` leaves the setting to the layer below.
///
/// This is also the TOML file's schema. Unknown keys are rejected so that a typo in the
/// file is an error rather than a silently ignored setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigLayer {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub pg_listen: Option<SocketAddr>,
    pub account_id: Option<String>,
    pub region: Option<String>,
    pub ingest_body_bytes_max: Option<usize>,
    pub ingest_queue_max: Option<usize>,
    pub record_ingest_calls: Option<bool>,
    pub retention_days: Option<u32>,
    pub archive_retention_days: Option<u32>,
    pub archive_after_days: Option<u32>,
    pub archive_seal_age_secs: Option<u32>,
    pub seal_interval_secs: Option<u32>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub connections_max: Option<u32>,
    pub header_read_timeout_secs: Option<u32>,
    pub idle_timeout_secs: Option<u32>,
    pub body_read_timeout_secs: Option<u32>,
    pub free_space_reserve_mb: Option<u64>,
    pub segments_url: Option<String>,
    pub rules_dir: Option<PathBuf>,
    pub alert_webhook_url: Option<String>,
    pub alert_webhook_secret: Option<Secret>,
    pub alert_syslog: Option<String>,
    pub alert_file: Option<PathBuf>,
    /// `Some(None)` explicitly turns a lower layer's limit off (environment value `none`).
    pub lookup_rate_limit_per_key_per_second: Option<Option<u32>>,
    pub insights_baseline_minutes: Option<u32>,
    pub lake_memory_limit_mb: Option<u32>,
    pub lake_query_timeout_secs: Option<u32>,
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<Secret>,
    pub delivery_interval_secs: Option<u64>,
    pub digest_interval_secs: Option<u64>,
    pub digest_key_rotation_days: Option<u32>,
    pub trails_per_region_max: Option<usize>,
    pub sns_topics: Option<BTreeMap<String, String>>,
    pub cloudwatch_log_groups: Option<BTreeMap<String, StreamSinkConfig>>,
    pub proxy: Option<Vec<opentrail_proxy::ProxyConfig>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    ParseFile {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("invalid environment variable {name}={value:?}: {reason}")]
    InvalidEnvironmentVariable {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("invalid setting {setting} = {value:?}: {reason}")]
    InvalidSetting {
        setting: &'static str,
        value: String,
        reason: String,
    },
}

impl Config {
    /// Days after which an event moves to the Parquet archive: as set, else the day before
    /// the store's retention ends, so each event is kept in one place at a time.
    pub fn archive_after_days(&self) -> u32 {
        self.archive_after_days
            .unwrap_or(self.retention_days.saturating_sub(1))
    }

    /// The bounds on HTTP connections (`connections.rs`).
    pub fn connection_limits(&self) -> crate::connections::ConnectionLimits {
        let seconds = |value: u32| std::time::Duration::from_secs(u64::from(value));
        crate::connections::ConnectionLimits {
            connections_max: self.connections_max as usize,
            header_read_timeout: seconds(self.header_read_timeout_secs),
            idle_timeout: seconds(self.idle_timeout_secs),
            body_read_timeout: seconds(self.body_read_timeout_secs),
        }
    }

    /// Builds the configuration from every layer, reading the real process environment.
    pub fn load(config_file: Option<&Path>, flags: ConfigLayer) -> Result<Config, ConfigError> {
        Config::load_with_environment(config_file, |name| std::env::var(name).ok(), flags)
    }

    /// Like [`Config::load`], with the environment passed in (tests must not mutate the
    /// process environment: other tests run concurrently).
    pub fn load_with_environment(
        config_file: Option<&Path>,
        environment: impl Fn(&str) -> Option<String>,
        flags: ConfigLayer,
    ) -> Result<Config, ConfigError> {
        let file_layer = match config_file {
            Some(path) => ConfigLayer::from_toml_file(path)?,
            None => ConfigLayer::default(),
        };
        let environment_layer = ConfigLayer::from_environment(environment)?;
        let mut config = Config::default();
        file_layer.apply_over(&mut config);
        environment_layer.apply_over(&mut config);
        flags.apply_over(&mut config);
        config.validate()?;
        Ok(config)
    }

    /// Checks every setting; the first problem found is reported.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !is_valid_account_id(&self.account_id) {
            return Err(invalid_setting(
                "account_id",
                &self.account_id,
                "an account id is exactly 12 digits, like 123456789012",
            ));
        }
        if !is_valid_region(&self.region) {
            return Err(invalid_setting(
                "region",
                &self.region,
                "a region looks like us-east-1: lower-case words joined by '-', ending in a number",
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid_setting("data_dir", "", "must not be empty"));
        }
        check_range(
            "ingest_body_bytes_max",
            self.ingest_body_bytes_max,
            1,
            INGEST_BODY_BYTES_MAX_LIMIT,
        )?;
        check_range(
            "ingest_queue_max",
            self.ingest_queue_max,
            1,
            INGEST_QUEUE_MAX_LIMIT,
        )?;
        check_range(
            "insights_baseline_minutes",
            self.insights_baseline_minutes,
            1,
            INSIGHTS_BASELINE_MINUTES_LIMIT,
        )?;
        check_range(
            "lake_memory_limit_mb",
            self.lake_memory_limit_mb,
            16,
            LAKE_MEMORY_LIMIT_MB_LIMIT,
        )?;
        check_range(
            "lake_query_timeout_secs",
            self.lake_query_timeout_secs,
            1,
            LAKE_QUERY_TIMEOUT_SECS_LIMIT,
        )?;
        check_range(
            "retention_days",
            self.retention_days,
            1,
            RETENTION_DAYS_LIMIT,
        )?;
        check_range(
            "archive_retention_days",
            self.archive_retention_days,
            1,
            RETENTION_DAYS_LIMIT,
        )?;
        if self.archive_after_days() > self.retention_days {
            return Err(invalid_setting(
                "archive_after_days",
                &self.archive_after_days().to_string(),
                &format!(
                    "must not exceed retention_days ({}): the store would keep events past their retention until they are archived",
                    self.retention_days
                ),
            ));
        }
        check_range(
            "archive_seal_age_secs",
            self.archive_seal_age_secs,
            1,
            86_400,
        )?;
        check_range("seal_interval_secs", self.seal_interval_secs, 1, 86_400)?;
        check_range("connections_max", self.connections_max, 1, 1_000_000)?;
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            let (given, missing) = if self.tls_cert.is_some() {
                ("tls_cert", "tls_key")
            } else {
                ("tls_key", "tls_cert")
            };
            return Err(invalid_setting(
                missing,
                "",
                &format!("{given} is set, so {missing} must be too (HTTPS needs both)"),
            ));
        }
        check_range(
            "header_read_timeout_secs",
            self.header_read_timeout_secs,
            1,
            3_600,
        )?;
        check_range("idle_timeout_secs", self.idle_timeout_secs, 1, 86_400)?;
        check_range(
            "body_read_timeout_secs",
            self.body_read_timeout_secs,
            1,
            86_400,
        )?;
        if let Some(url) = &self.segments_url
            && let Err(reason) = opentrail_store::S3Segments::parse_url(url)
        {
            return Err(invalid_setting("segments_url", url, &reason));
        }
        if let Some(url) = &self.alert_webhook_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid_setting(
                "alert_webhook_url",
                url,
                "must be an http:// or https:// URL",
            ));
        }
        if self.alert_webhook_secret.is_some() && self.alert_webhook_url.is_none() {
            return Err(invalid_setting(
                "alert_webhook_secret",
                "…",
                "set alert_webhook_url too: the secret signs its requests",
            ));
        }
        if let Some(address) = &self.alert_syslog
            && let Err(reason) = (opentrail_detect::AlertTarget::Syslog {
                address: address.clone(),
            })
            .validate()
        {
            return Err(invalid_setting("alert_syslog", address, &reason));
        }
        if let Some(path) = &self.alert_file
            && path.as_os_str().is_empty()
        {
            return Err(invalid_setting(
                "alert_file",
                "",
                "must be the path of a file",
            ));
        }
        if let Some(rate) = self.lookup_rate_limit_per_key_per_second {
            check_range(
                "lookup_rate_limit_per_key_per_second",
                rate,
                1,
                LOOKUP_RATE_LIMIT_PER_SECOND_LIMIT,
            )?;
        }
        self.validate_trail_delivery()
    }

    /// Trail delivery settings that TOML types cannot check.
    fn validate_trail_delivery(&self) -> Result<(), ConfigError> {
        let delivery = &self.trail_delivery;
        check_range(
            "delivery_interval_secs",
            delivery.delivery_interval_secs,
            1,
            DELIVERY_INTERVAL_SECS_LIMIT,
        )?;
        check_range(
            "digest_interval_secs",
            delivery.digest_interval_secs,
            1,
            DELIVERY_INTERVAL_SECS_LIMIT,
        )?;
        check_range(
            "digest_key_rotation_days",
            delivery.digest_key_rotation_days,
            1,
            DIGEST_KEY_ROTATION_DAYS_LIMIT,
        )?;
        check_range(
            "trails_per_region_max",
            delivery.trails_per_region_max,
            1,
            TRAILS_PER_REGION_LIMIT,
        )?;
        if let Some(endpoint) = &delivery.s3_endpoint
            && !is_http_url(endpoint)
        {
            return Err(invalid_setting(
                "s3_endpoint",
                endpoint,
                "an endpoint is an http:// or https:// URL, like http://127.0.0.1:9000",
            ));
        }
        if let Some(region) = &delivery.s3_region
            && region.is_empty()
        {
            return Err(invalid_setting("s3_region", region, "must not be empty"));
        }
        if delivery.s3_access_key_id.is_some() != delivery.s3_secret_access_key.is_some() {
            return Err(invalid_setting(
                "s3_access_key_id",
                "",
                "set both s3_access_key_id and s3_secret_access_key, or neither",
            ));
        }
        for (topic, url) in &delivery.sns_topics {
            if !is_http_url(url) {
                return Err(invalid_setting(
                    "sns_topics",
                    topic,
                    "each topic maps to an http:// or https:// webhook URL",
                ));
            }
        }
        for (log_group, sink) in &delivery.cloudwatch_log_groups {
            if let Err(reason) = sink.validate() {
                return Err(invalid_setting("cloudwatch_log_groups", log_group, &reason));
            }
        }
        for proxy in &self.proxies {
            if let Err(reason) = proxy.validate() {
                return Err(invalid_setting("proxy", &proxy.listen.to_string(), &reason));
            }
            if proxy.listen == self.listen {
                return Err(invalid_setting(
                    "proxy",
                    &proxy.listen.to_string(),
                    "a proxy cannot listen on the server's own address",
                ));
            }
        }
        Ok(())
    }

    /// Where the event store keeps its files.
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    /// The trails settings, for `opentrail_trails::TrailsOptions::from_config`, which
    /// applies their defaults and floors.
    pub fn trails_config(&self) -> TrailsConfig {
        let delivery = &self.trail_delivery;
        let destination = delivery
            .s3_endpoint
            .as_ref()
            .map(|_| DestinationConfig::S3(self.s3_connection()));
        TrailsConfig {
            data_dir: self.data_dir.clone(),
            default_account_id: self.account_id.clone(),
            destination,
            delivery_interval: Duration::from_secs(delivery.delivery_interval_secs),
            digest_interval: Duration::from_secs(delivery.digest_interval_secs),
            digest_key_rotation: Duration::from_secs(
                u64::from(delivery.digest_key_rotation_days) * 24 * 3600,
            ),
            trails_per_region_max: delivery.trails_per_region_max,
            sns_topics: delivery.sns_topics.clone(),
            log_groups: delivery.cloudwatch_log_groups.clone(),
        }
    }

    /// Where alerts are sent (`alert_webhook_url` and its secret, `alert_syslog`,
    /// `alert_file`), each with its own worker.
    pub fn alert_targets(&self) -> Vec<opentrail_detect::AlertTarget> {
        let mut targets = Vec::new();
        if let Some(url) = &self.alert_webhook_url {
            targets.push(opentrail_detect::AlertTarget::Webhook {
                url: url.clone(),
                secret: self
                    .alert_webhook_secret
                    .as_ref()
                    .map(|secret| secret.0.clone()),
            });
        }
        if let Some(address) = &self.alert_syslog {
            targets.push(opentrail_detect::AlertTarget::Syslog {
                address: address.clone(),
            });
        }
        if let Some(path) = &self.alert_file {
            targets.push(opentrail_detect::AlertTarget::File { path: path.clone() });
        }
        targets
    }

    /// Where the store keeps sealed segments: `segments_url` with the `s3_*` settings.
    /// Call it on a validated config (an invalid URL counts as unset).
    pub fn segments_location(&self) -> opentrail_store::SegmentsLocation {
        let Some(Ok(mut settings)) = self
            .segments_url
            .as_deref()
            .map(opentrail_store::S3Segments::parse_url)
        else {
            return opentrail_store::SegmentsLocation::DataDir;
        };
        settings.connection = self.s3_connection();
        opentrail_store::SegmentsLocation::S3(settings)
    }

    /// How to reach the S3-compatible service (`OPENTRAIL_S3_*`) that segments and trail
    /// buckets share; the region defaults to the server's.
    pub fn s3_connection(&self) -> opentrail_store::S3Connection {
        let delivery = &self.trail_delivery;
        opentrail_store::S3Connection {
            endpoint: delivery.s3_endpoint.clone(),
            region: delivery
                .s3_region
                .clone()
                .unwrap_or_else(|| self.region.clone()),
            access_key_id: delivery.s3_access_key_id.clone(),
            secret_access_key: delivery
                .s3_secret_access_key
                .as_ref()
                .map(|secret| secret.0.clone()),
        }
    }
}

impl ConfigLayer {
    pub fn from_toml_file(path: &Path) -> Result<ConfigLayer, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        ConfigLayer::from_toml_str(&text).map_err(|source| ConfigError::ParseFile {
            path: path.to_owned(),
            source,
        })
    }

    pub fn from_toml_str(text: &str) -> Result<ConfigLayer, toml::de::Error> {
        toml::from_str(text)
    }

    /// Reads every `OPENTRAIL_<SETTING>` variable through `environment`.
    pub fn from_environment(
        environment: impl Fn(&str) -> Option<String>,
    ) -> Result<ConfigLayer, ConfigError> {
        let read = |name: &'static str| environment(name).filter(|value| !value.is_empty());
        Ok(ConfigLayer {
            data_dir: read("OPENTRAIL_DATA_DIR").map(PathBuf::from),
            listen: parse_environment_variable(&read, "OPENTRAIL_LISTEN", parse_socket_address)?,
            pg_listen: parse_environment_variable(
                &read,
                "OPENTRAIL_PG_LISTEN",
                parse_socket_address,
            )?,
            account_id: read("OPENTRAIL_ACCOUNT_ID"),
            region: read("OPENTRAIL_REGION"),
            ingest_body_bytes_max: parse_environment_variable(
                &read,
                "OPENTRAIL_INGEST_BODY_BYTES_MAX",
                parse_number::<usize>,
            )?,
            ingest_queue_max: parse_environment_variable(
                &read,
                "OPENTRAIL_INGEST_QUEUE_MAX",
                parse_number::<usize>,
            )?,
            record_ingest_calls: parse_environment_variable(
                &read,
                "OPENTRAIL_RECORD_INGEST_CALLS",
                parse_bool,
            )?,
            retention_days: parse_environment_variable(
                &read,
                "OPENTRAIL_RETENTION_DAYS",
                parse_number::<u32>,
            )?,
            archive_retention_days: parse_environment_variable(
                &read,
                "OPENTRAIL_ARCHIVE_RETENTION_DAYS",
                parse_number::<u32>,
            )?,
            archive_after_days: parse_environment_variable(
                &read,
                "OPENTRAIL_ARCHIVE_AFTER_DAYS",
                parse_number::<u32>,
            )?,
            archive_seal_age_secs: parse_environment_variable(
                &read,
                "OPENTRAIL_ARCHIVE_SEAL_AGE_SECS",
                parse_number::<u32>,
            )?,
            seal_interval_secs: parse_environment_variable(
                &read,
                "OPENTRAIL_SEAL_INTERVAL_SECS",
                parse_number::<u32>,
            )?,
            tls_cert: read("OPENTRAIL_TLS_CERT").map(PathBuf::from),
            tls_key: read("OPENTRAIL_TLS_KEY").map(PathBuf::from),
            connections_max: parse_environment_variable(
                &read,
                "OPENTRAIL_CONNECTIONS_MAX",
                parse_number::<u32>,
            )?,
            header_read_timeout_secs: parse_environment_variable(
                &read,
                "OPENTRAIL_HEADER_READ_TIMEOUT_SECS",
                parse_number::<u32>,
            )?,
            idle_timeout_secs: parse_environment_variable(
                &read,
                "OPENTRAIL_IDLE_TIMEOUT_SECS",
                parse_number::<u32>,
            )?,
            body_read_timeout_secs: parse_environment_variable(
                &read,
                "OPENTRAIL_BODY_READ_TIMEOUT_SECS",
                parse_number::<u32>,
            )?,
            free_space_reserve_mb: parse_environment_variable(
                &read,
                "OPENTRAIL_FREE_SPACE_RESERVE_MB",
                parse_number::<u64>,
            )?,
            segments_url: read("OPENTRAIL_SEGMENTS_URL"),
            rules_dir: read("OPENTRAIL_RULES_DIR").map(PathBuf::from),
            alert_webhook_url: read("OPENTRAIL_ALERT_WEBHOOK_URL"),
            alert_webhook_secret: read("OPENTRAIL_ALERT_WEBHOOK_SECRET").map(Secret),
            alert_syslog: read("OPENTRAIL_ALERT_SYSLOG"),
            alert_file: read("OPENTRAIL_ALERT_FILE").map(PathBuf::from),
            lookup_rate_limit_per_key_per_second: parse_environment_variable(
                &read,
                "OPENTRAIL_LOOKUP_RATE_LIMIT_PER_KEY_PER_SECOND",
                parse_optional_rate_limit,
            )?,
            insights_baseline_minutes: parse_environment_variable(
                &read,
                "OPENTRAIL_INSIGHTS_BASELINE_MINUTES",
                parse_number::<u32>,
            )?,
            lake_memory_limit_mb: parse_environment_variable(
                &read,
                "OPENTRAIL_LAKE_MEMORY_LIMIT_MB",
                parse_number::<u32>,
            )?,
            lake_query_timeout_secs: parse_environment_variable(
                &read,
                "OPENTRAIL_LAKE_QUERY_TIMEOUT_SECS",
                parse_number::<u32>,
            )?,
            s3_endpoint: read("OPENTRAIL_S3_ENDPOINT"),
            s3_region: read("OPENTRAIL_S3_REGION"),
            s3_access_key_id: read("OPENTRAIL_S3_ACCESS_KEY_ID"),
            s3_secret_access_key: read("OPENTRAIL_S3_SECRET_ACCESS_KEY").map(Secret),
            delivery_interval_secs: parse_environment_variable(
                &read,
                "OPENTRAIL_DELIVERY_INTERVAL_SECS",
                parse_number::<u64>,
            )?,
            digest_interval_secs: parse_environment_variable(
                &read,
                "OPENTRAIL_DIGEST_INTERVAL_SECS",
                parse_number::<u64>,
            )?,
            digest_key_rotation_days: parse_environment_variable(
                &read,
                "OPENTRAIL_DIGEST_KEY_ROTATION_DAYS",
                parse_number::<u32>,
            )?,
            trails_per_region_max: parse_environment_variable(
                &read,
                "OPENTRAIL_TRAILS_PER_REGION_MAX",
                parse_number::<usize>,
            )?,
            // Maps have no sensible one-variable form: they come from the TOML file.
            sns_topics: None,
            cloudwatch_log_groups: None,
            proxy: None,
        })
    }

    /// Overwrites every setting of `config` that this layer sets.
    pub fn apply_over(self, config: &mut Config) {
        let ConfigLayer {
            data_dir,
            listen,
            pg_listen,
            account_id,
            region,
            ingest_body_bytes_max,
            ingest_queue_max,
            record_ingest_calls,
            retention_days,
            archive_retention_days,
            archive_after_days,
            archive_seal_age_secs,
            seal_interval_secs,
            tls_cert,
            tls_key,
            connections_max,
            header_read_timeout_secs,
            idle_timeout_secs,
            body_read_timeout_secs,
            free_space_reserve_mb,
            segments_url,
            rules_dir,
            alert_webhook_url,
            alert_webhook_secret,
            alert_syslog,
            alert_file,
            lookup_rate_limit_per_key_per_second,
            insights_baseline_minutes,
            lake_memory_limit_mb,
            lake_query_timeout_secs,
            s3_endpoint,
            s3_region,
            s3_access_key_id,
            s3_secret_access_key,
            delivery_interval_secs,
            digest_interval_secs,
            digest_key_rotation_days,
            trails_per_region_max,
            sns_topics,
            cloudwatch_log_groups,
            proxy,
        } = self;
        // Destructuring above makes adding a field without handling it here a compile error.
        if let Some(value) = data_dir {
            config.data_dir = value;
        }
        if let Some(value) = listen {
            config.listen = value;
        }
        if let Some(value) = pg_listen {
            config.pg_listen = Some(value);
        }
        if let Some(value) = account_id {
            config.account_id = value;
        }
        if let Some(value) = region {
            config.region = value;
        }
        if let Some(value) = ingest_body_bytes_max {
            config.ingest_body_bytes_max = value;
        }
        if let Some(value) = ingest_queue_max {
            config.ingest_queue_max = value;
        }
        if let Some(value) = record_ingest_calls {
            config.record_ingest_calls = value;
        }
        if let Some(value) = retention_days {
            config.retention_days = value;
        }
        if let Some(value) = archive_retention_days {
            config.archive_retention_days = value;
        }
        if let Some(value) = archive_after_days {
            config.archive_after_days = Some(value);
        }
        if let Some(value) = archive_seal_age_secs {
            config.archive_seal_age_secs = value;
        }
        if let Some(value) = seal_interval_secs {
            config.seal_interval_secs = value;
        }
        if let Some(value) = proxy {
            config.proxies = value;
        }
        if let Some(value) = tls_cert {
            config.tls_cert = Some(value);
        }
        if let Some(value) = tls_key {
            config.tls_key = Some(value);
        }
        for (setting, value) in [
            (&mut config.connections_max, connections_max),
            (
                &mut config.header_read_timeout_secs,
                header_read_timeout_secs,
            ),
            (&mut config.idle_timeout_secs, idle_timeout_secs),
            (&mut config.body_read_timeout_secs, body_read_timeout_secs),
        ] {
            if let Some(value) = value {
                *setting = value;
            }
        }
        if let Some(value) = free_space_reserve_mb {
            config.free_space_reserve_mb = Some(value);
        }
        if let Some(value) = segments_url {
            config.segments_url = Some(value);
        }
        if let Some(value) = rules_dir {
            config.rules_dir = Some(value);
        }
        if let Some(value) = alert_webhook_url {
            config.alert_webhook_url = Some(value);
        }
        if let Some(value) = alert_webhook_secret {
            config.alert_webhook_secret = Some(value);
        }
        if let Some(value) = alert_syslog {
            config.alert_syslog = Some(value);
        }
        if let Some(value) = alert_file {
            config.alert_file = Some(value);
        }
        if let Some(value) = lookup_rate_limit_per_key_per_second {
            config.lookup_rate_limit_per_key_per_second = value;
        }
        if let Some(value) = insights_baseline_minutes {
            config.insights_baseline_minutes = value;
        }
        if let Some(value) = lake_memory_limit_mb {
            config.lake_memory_limit_mb = value;
        }
        if let Some(value) = lake_query_timeout_secs {
            config.lake_query_timeout_secs = value;
        }
        let delivery = &mut config.trail_delivery;
        if let Some(value) = s3_endpoint {
            delivery.s3_endpoint = Some(value);
        }
        if let Some(value) = s3_region {
            delivery.s3_region = Some(value);
        }
        if let Some(value) = s3_access_key_id {
            delivery.s3_access_key_id = Some(value);
        }
        if let Some(value) = s3_secret_access_key {
            delivery.s3_secret_access_key = Some(value);
        }
        if let Some(value) = delivery_interval_secs {
            delivery.delivery_interval_secs = value;
        }
        if let Some(value) = digest_interval_secs {
            delivery.digest_interval_secs = value;
        }
        if let Some(value) = digest_key_rotation_days {
            delivery.digest_key_rotation_days = value;
        }
        if let Some(value) = trails_per_region_max {
            delivery.trails_per_region_max = value;
        }
        if let Some(value) = sns_topics {
            delivery.sns_topics = value;
        }
        if let Some(value) = cloudwatch_log_groups {
            delivery.cloudwatch_log_groups = value;
        }
    }
}

fn is_http_url(text: &str) -> bool {
    (text.starts_with("http://") || text.starts_with("https://"))
        && !text.contains(char::is_whitespace)
}

/// An AWS account id: exactly 12 ASCII digits (leading zeros allowed).
pub fn is_valid_account_id(candidate: &str) -> bool {
    candidate.len() == 12 && candidate.bytes().all(|byte| byte.is_ascii_digit())
}

/// A region name shaped like AWS's: `us-east-1`, `us-gov-west-1`, `ap-southeast-2`.
/// The region need not exist; self-hosted deployments may invent their own.
pub fn is_valid_region(candidate: &str) -> bool {
    const REGION_LEN_MAX: usize = 32;
    if candidate.len() > REGION_LEN_MAX {
        return false;
    }
    let parts: Vec<&str> = candidate.split('-').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return false;
    };
    let is_lower_word =
        |part: &&str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase());
    first.len() == 2
        && is_lower_word(first)
        && !middle.is_empty()
        && middle.iter().all(is_lower_word)
        && !last.is_empty()
        && last.bytes().all(|byte| byte.is_ascii_digit())
}

fn invalid_setting(setting: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::InvalidSetting {
        setting,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

fn check_range<T>(setting: &'static str, value: T, min: T, max: T) -> Result<(), ConfigError>
where
    T: PartialOrd + std::fmt::Display,
{
    if value < min || value > max {
        return Err(invalid_setting(
            setting,
            &value.to_string(),
            &format!("must be between {min} and {max}"),
        ));
    }
    Ok(())
}

fn parse_environment_variable<T>(
    read: &impl Fn(&'static str) -> Option<String>,
    name: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    let Some(value) = read(name) else {
        return Ok(None);
    };
    match parse(&value) {
        Ok(parsed) => Ok(Some(parsed)),
        Err(reason) => Err(ConfigError::InvalidEnvironmentVariable {
            name,
            value,
            reason,
        }),
    }
}

fn parse_socket_address(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| "expected an IP address and port, like 127.0.0.1:4580".to_owned())
}

fn parse_number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| "expected a non-negative whole number".to_owned())
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

fn parse_optional_rate_limit(text: &str) -> Result<Option<u32>, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "none" | "off" | "unlimited" => Ok(None),
        number => number
            .parse()
            .map(Some)
            .map_err(|_| "expected a number of requests per second, or none".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn environment_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn no_environment() -> impl Fn(&str) -> Option<String> {
        |_| None
    }

    fn write_config_file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), text).expect("write temp file");
        file
    }

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let config = Config::load_with_environment(None, no_environment(), ConfigLayer::default())
            .expect("defaults load");
        assert_eq!(config, Config::default());
        assert_eq!(config.data_dir, PathBuf::from("./opentrail-data"));
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.account_id, "123456789012");
        assert_eq!(config.region, "us-east-1");
        assert_eq!(config.ingest_body_bytes_max, 10 * 1024 * 1024);
        assert!(!config.record_ingest_calls);
        assert_eq!(config.retention_days, 90);
        assert_eq!(config.archive_retention_days, 2555);
        assert_eq!(
            config.archive_after_days(),
            89,
            "events move to the archive the day before the store drops them"
        );
        assert_eq!(config.lookup_rate_limit_per_key_per_second, None);
        assert_eq!(config.store_dir(), PathBuf::from("./opentrail-data/store"));
    }

    #[test]
    fn file_overrides_defaults() {
        let file = write_config_file(
            r#"
            data_dir = "/var/lib/opentrail"
            listen = "0.0.0.0:9000"
            account_id = "111122223333"
            region = "eu-west-2"
            ingest_body_bytes_max = 2048
            ingest_queue_max = 8
            record_ingest_calls = true
            retention_days = 30
            archive_retention_days = 365
            archive_after_days = 7
            lookup_rate_limit_per_key_per_second = 2
            "#,
        );
        let config = Config::load_with_environment(
            Some(file.path()),
            no_environment(),
            ConfigLayer::default(),
        )
        .expect("file loads");
        assert_eq!(
            config,
            Config {
                data_dir: PathBuf::from("/var/lib/opentrail"),
                listen: "0.0.0.0:9000".parse().expect("address"),
                pg_listen: None,
                account_id: "111122223333".to_owned(),
                region: "eu-west-2".to_owned(),
                ingest_body_bytes_max: 2048,
                ingest_queue_max: 8,
                record_ingest_calls: true,
                retention_days: 30,
                archive_retention_days: 365,
                archive_after_days: Some(7),
                archive_seal_age_secs: DEFAULT_ARCHIVE_SEAL_AGE_SECS,
                seal_interval_secs: DEFAULT_SEAL_INTERVAL_SECS,
                tls_cert: None,
                tls_key: None,
                connections_max: DEFAULT_CONNECTIONS_MAX,
                header_read_timeout_secs: DEFAULT_HEADER_READ_TIMEOUT_SECS,
                idle_timeout_secs: DEFAULT_IDLE_TIMEOUT_SECS,
                body_read_timeout_secs: DEFAULT_BODY_READ_TIMEOUT_SECS,
                free_space_reserve_mb: None,
                segments_url: None,
                rules_dir: None,
                alert_webhook_url: None,
                alert_webhook_secret: None,
                alert_syslog: None,
                alert_file: None,
                lookup_rate_limit_per_key_per_second: Some(2),
                insights_baseline_minutes: DEFAULT_INSIGHTS_BASELINE_MINUTES,
                lake_memory_limit_mb: DEFAULT_LAKE_MEMORY_LIMIT_MB,
                lake_query_timeout_secs: DEFAULT_LAKE_QUERY_TIMEOUT_SECS,
                trail_delivery: TrailDeliveryConfig::default(),
                proxies: Vec::new(),
            }
        );
    }

    #[test]
    fn proxy_sections_are_read_and_checked() {
        let file = write_config_file(
            r#"
[[proxy]]
listen = "127.0.0.1:4590"
upstream = "http://127.0.0.1:9000"
[proxy.recording]
key_names = { AKIAEXAMPLE = "alice" }
[[proxy.recording.routes]]
method = "POST"
path = "/v1/users/{user}"
event_name = "CreateUser"
"#,
        );
        let config = Config::load_with_environment(
            Some(file.path()),
            no_environment(),
            ConfigLayer::default(),
        )
        .expect("file loads");
        assert_eq!(config.proxies.len(), 1);
        let proxy = &config.proxies[0];
        assert_eq!(proxy.upstream, "http://127.0.0.1:9000");
        assert_eq!(proxy.recording.key_names["AKIAEXAMPLE"], "alice");
        assert_eq!(proxy.recording.routes[0].event_name, "CreateUser");

        let bad_route = write_config_file(
            "[[proxy]]
listen = \"127.0.0.1:4590\"
upstream = \"http://x\"
[[proxy.recording.routes]]
path = \"/a/{rest+}/b\"
event_name = \"X\"
",
        );
        let error = Config::load_with_environment(
            Some(bad_route.path()),
            no_environment(),
            ConfigLayer::default(),
        )
        .expect_err("a greedy label in the middle is refused");
        assert!(error.to_string().contains("greedy"), "{error}");
        let no_scheme = write_config_file(
            "[[proxy]]
listen = \"127.0.0.1:4590\"
upstream = \"127.0.0.1:9000\"
",
        );
        assert!(
            Config::load_with_environment(
                Some(no_scheme.path()),
                no_environment(),
                ConfigLayer::default()
            )
            .is_err()
        );
    }

    #[test]
    fn environment_overrides_file_and_flags_override_environment() {
        let file = write_config_file(
            "account_id = \"111122223333\"\nregion = \"eu-west-2\"\nlisten = \"127.0.0.1:1\"\n",
        );
        let environment = environment_of(&[
            ("OPENTRAIL_ACCOUNT_ID", "444455556666"),
            ("OPENTRAIL_REGION", "ap-southeast-2"),
            ("OPENTRAIL_LISTEN", "127.0.0.1:2"),
            ("OPENTRAIL_DATA_DIR", "/from/environment"),
        ]);
        let flags = ConfigLayer {
            listen: Some("127.0.0.1:3".parse().expect("address")),
            ..ConfigLayer::default()
        };
        let config =
            Config::load_with_environment(Some(file.path()), environment, flags).expect("loads");
        assert_eq!(config.account_id, "444455556666");
        assert_eq!(config.region, "ap-southeast-2");
        assert_eq!(config.data_dir, PathBuf::from("/from/environment"));
        assert_eq!(config.listen.to_string(), "127.0.0.1:3");
    }

    #[test]
    fn empty_environment_variable_counts_as_unset() {
        let environment = environment_of(&[("OPENTRAIL_REGION", "")]);
        let config = Config::load_with_environment(None, environment, ConfigLayer::default())
            .expect("loads");
        assert_eq!(config.region, DEFAULT_REGION);
    }

    #[test]
    fn environment_can_turn_a_file_rate_limit_off() {
        let file = write_config_file("lookup_rate_limit_per_key_per_second = 5\n");
        let environment =
            environment_of(&[("OPENTRAIL_LOOKUP_RATE_LIMIT_PER_KEY_PER_SECOND", "none")]);
        let config =
            Config::load_with_environment(Some(file.path()), environment, ConfigLayer::default())
                .expect("loads");
        assert_eq!(config.lookup_rate_limit_per_key_per_second, None);
    }

    #[test]
    fn every_numeric_and_boolean_environment_variable_is_read() {
        let environment = environment_of(&[
            ("OPENTRAIL_INGEST_BODY_BYTES_MAX", "4096"),
            ("OPENTRAIL_INGEST_QUEUE_MAX", "16"),
            ("OPENTRAIL_RECORD_INGEST_CALLS", "yes"),
            ("OPENTRAIL_RETENTION_DAYS", "7"),
            ("OPENTRAIL_ARCHIVE_RETENTION_DAYS", "70"),
            ("OPENTRAIL_LOOKUP_RATE_LIMIT_PER_KEY_PER_SECOND", "3"),
            ("OPENTRAIL_SEAL_INTERVAL_SECS", "1"),
        ]);
        let config = Config::load_with_environment(None, environment, ConfigLayer::default())
            .expect("loads");
        assert_eq!(config.ingest_body_bytes_max, 4096);
        assert_eq!(config.ingest_queue_max, 16);
        assert!(config.record_ingest_calls);
        assert_eq!(config.retention_days, 7);
        assert_eq!(config.archive_retention_days, 70);
        assert_eq!(
            config.archive_after_days(),
            6,
            "the archive follows a shorter store retention"
        );
        assert_eq!(config.lookup_rate_limit_per_key_per_second, Some(3));
        assert_eq!(config.seal_interval_secs, 1);
    }

    #[test]
    fn alert_targets_come_from_the_environment_and_are_checked() {
        let environment = environment_of(&[
            ("OPENTRAIL_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook"),
            ("OPENTRAIL_ALERT_WEBHOOK_SECRET", "s3cr3t"),
            ("OPENTRAIL_ALERT_SYSLOG", "udp://127.0.0.1:514"),
            ("OPENTRAIL_ALERT_FILE", "/var/log/opentrail/alerts.ndjson"),
        ]);
        let config = Config::load_with_environment(None, environment, ConfigLayer::default())
            .expect("loads");
        assert!(
            !format!("{config:?}").contains("s3cr3t"),
            "the secret stays out of logs"
        );
        assert_eq!(
            config.alert_targets(),
            vec![
                opentrail_detect::AlertTarget::Webhook {
                    url: "http://127.0.0.1:9/hook".to_owned(),
                    secret: Some("s3cr3t".to_owned()),
                },
                opentrail_detect::AlertTarget::Syslog {
                    address: "udp://127.0.0.1:514".to_owned(),
                },
                opentrail_detect::AlertTarget::File {
                    path: PathBuf::from("/var/log/opentrail/alerts.ndjson"),
                },
            ]
        );
        for (name, value, setting) in [
            ("OPENTRAIL_ALERT_SYSLOG", "syslog.example", "alert_syslog"),
            (
                "OPENTRAIL_ALERT_WEBHOOK_SECRET",
                "s3cr3t",
                "alert_webhook_secret",
            ),
        ] {
            let refused = Config::load_with_environment(
                None,
                environment_of(&[(name, value)]),
                ConfigLayer::default(),
            );
            assert!(
                matches!(refused, Err(ConfigError::InvalidSetting { setting: s, .. }) if s == setting),
                "{name}={value}: {refused:?}"
            );
        }
    }

    #[test]
    fn segments_url_takes_the_s3_connection_settings_and_is_checked() {
        let environment = environment_of(&[
            ("OPENTRAIL_SEGMENTS_URL", "s3://audit-segments/prod/"),
            ("OPENTRAIL_S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("OPENTRAIL_S3_ACCESS_KEY_ID", "AKID"),
            ("OPENTRAIL_S3_SECRET_ACCESS_KEY", "SECRET"),
        ]);
        let config = Config::load_with_environment(None, environment, ConfigLayer::default())
            .expect("loads");
        let opentrail_store::SegmentsLocation::S3(settings) = config.segments_location() else {
            panic!("segments in a bucket");
        };
        assert_eq!(settings.bucket, "audit-segments");
        assert_eq!(settings.prefix, "prod");
        assert_eq!(
            settings.connection.endpoint.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            settings.connection.region, DEFAULT_REGION,
            "the region setting by default"
        );
        assert_eq!(settings.connection.access_key_id.as_deref(), Some("AKID"));
        assert_eq!(
            settings.connection.secret_access_key.as_deref(),
            Some("SECRET")
        );
        assert!(!format!("{:?}", config.segments_location()).contains("SECRET"));

        let unset = Config::load_with_environment(None, no_environment(), ConfigLayer::default())
            .expect("loads");
        assert_eq!(
            unset.segments_location(),
            opentrail_store::SegmentsLocation::DataDir
        );
        let file = write_config_file("segments_url = \"s3://from-file\"\n");
        let from_file = Config::load_with_environment(
            Some(file.path()),
            no_environment(),
            ConfigLayer::default(),
        )
        .expect("loads");
        assert_eq!(from_file.segments_url.as_deref(), Some("s3://from-file"));

        for bad in ["/var/segments", "file:///x", "s3://", "s3://UPPER/x"] {
            let environment = environment_of(&[("OPENTRAIL_SEGMENTS_URL", bad)]);
            let error = Config::load_with_environment(None, environment, ConfigLayer::default())
                .expect_err(bad);
            assert!(
                matches!(
                    error,
                    ConfigError::InvalidSetting {
                        setting: "segments_url",
                        ..
                    }
                ),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn unparseable_environment_variable_names_the_variable() {
        let environment = environment_of(&[("OPENTRAIL_RECORD_INGEST_CALLS", "maybe")]);
        let error = Config::load_with_environment(None, environment, ConfigLayer::default())
            .expect_err("must fail");
        let message = error.to_string();
        assert!(
            message.contains("OPENTRAIL_RECORD_INGEST_CALLS"),
            "{message}"
        );
        assert!(message.contains("maybe"), "{message}");
    }

    #[test]
    fn account_id_must_be_exactly_twelve_digits() {
        for bad in [
            "12345678901",
            "1234567890123",
            "12345678901a",
            "",
            "１２３４５６７８９０１２",
        ] {
            let environment = environment_of(&[("OPENTRAIL_ACCOUNT_ID", bad)]);
            let result = Config::load_with_environment(None, environment, ConfigLayer::default());
            if bad.is_empty() {
                // Empty means unset, so the default applies.
                assert!(result.is_ok());
                continue;
            }
            let message = result.expect_err(bad).to_string();
            assert!(message.contains("account_id"), "{message}");
            assert!(message.contains("12 digits"), "{message}");
        }
        assert!(is_valid_account_id("000000000000"));
    }

    #[test]
    fn region_must_look_like_an_aws_region() {
        for good in [
            "us-east-1",
            "us-gov-west-1",
            "ap-southeast-2",
            "eu-central-1",
            "cn-north-1",
        ] {
            assert!(is_valid_region(good), "{good}");
        }
        for bad in [
            "us-east",
            "US-EAST-1",
            "useast1",
            "u-east-1",
            "us--1",
            "us-east-1a",
            "-east-1",
        ] {
            assert!(!is_valid_region(bad), "{bad}");
        }
        let environment = environment_of(&[("OPENTRAIL_REGION", "mars")]);
        let message = Config::load_with_environment(None, environment, ConfigLayer::default())
            .expect_err("must fail")
            .to_string();
        assert!(
            message.contains("region") && message.contains("us-east-1"),
            "{message}"
        );
    }

    #[test]
    fn unknown_key_in_file_is_rejected_with_the_path() {
        let file = write_config_file("acount_id = \"123456789012\"\n");
        let error = Config::load_with_environment(
            Some(file.path()),
            no_environment(),
            ConfigLayer::default(),
        )
        .expect_err("must fail");
        let message = error.to_string();
        assert!(message.contains("acount_id"), "{message}");
        assert!(
            message.contains(&file.path().display().to_string()),
            "{message}"
        );
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let error = Config::load_with_environment(
            Some(Path::new("/nonexistent/opentrail.toml")),
            no_environment(),
            ConfigLayer::default(),
        )
        .expect_err("must fail");
        assert!(matches!(error, ConfigError::ReadFile { .. }));
        assert!(error.to_string().contains("/nonexistent/opentrail.toml"));
    }

    #[test]
    fn zero_limits_are_rejected() {
        for (name, value) in [
            ("OPENTRAIL_INGEST_BODY_BYTES_MAX", "0"),
            ("OPENTRAIL_INGEST_QUEUE_MAX", "0"),
            ("OPENTRAIL_RETENTION_DAYS", "0"),
            ("OPENTRAIL_LOOKUP_RATE_LIMIT_PER_KEY_PER_SECOND", "0"),
        ] {
            let environment = environment_of(&[(name, value)]);
            let error = Config::load_with_environment(None, environment, ConfigLayer::default())
                .expect_err(name);
            assert!(
                matches!(error, ConfigError::InvalidSetting { .. }),
                "{name}: {error}"
            );
        }
    }

    #[test]
    fn archive_after_days_may_be_zero_but_not_past_the_store_retention() {
        let environment = environment_of(&[("OPENTRAIL_ARCHIVE_AFTER_DAYS", "0")]);
        let config = Config::load_with_environment(None, environment, ConfigLayer::default())
            .expect("zero archives at once");
        assert_eq!(config.archive_after_days(), 0);

        let environment = environment_of(&[
            ("OPENTRAIL_RETENTION_DAYS", "30"),
            ("OPENTRAIL_ARCHIVE_AFTER_DAYS", "31"),
        ]);
        let error = Config::load_with_environment(None, environment, ConfigLayer::default())
            .expect_err("past the store's retention");
        assert!(
            matches!(
                &error,
                ConfigError::InvalidSetting {
                    setting: "archive_after_days",
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("retention_days (30)"), "{error}");
    }

    #[test]
    fn trail_delivery_settings_come_from_file_and_environment() {
        let file = write_config_file(
            r#"
            s3_endpoint = "http://127.0.0.1:9000"
            delivery_interval_secs = 5

            [sns_topics]
            "arn:aws:sns:us-east-1:111122223333:trail-topic" = "http://127.0.0.1:9100/sns"

            [cloudwatch_log_groups."arn:aws:logs:us-east-1:111122223333:log-group:audit:*"]
            kind = "webhook"
            url = "http://127.0.0.1:9200/logs"
            secret = "s3cr3t"

            [cloudwatch_log_groups."arn:aws:logs:us-east-1:111122223333:log-group:local"]
            kind = "file"
            path = "/tmp/opentrail-audit.ndjson"
            "#,
        );
        let environment = environment_of(&[
            ("OPENTRAIL_S3_REGION", "eu-west-1"),
            ("OPENTRAIL_S3_ACCESS_KEY_ID", "AKID"),
            ("OPENTRAIL_S3_SECRET_ACCESS_KEY", "SECRET"),
            ("OPENTRAIL_DELIVERY_INTERVAL_SECS", "1"),
            ("OPENTRAIL_TRAILS_PER_REGION_MAX", "7"),
        ]);
        let config =
            Config::load_with_environment(Some(file.path()), environment, ConfigLayer::default())
                .expect("loads");
        let delivery = &config.trail_delivery;
        assert_eq!(
            delivery.s3_endpoint.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(delivery.s3_region.as_deref(), Some("eu-west-1"));
        assert_eq!(delivery.s3_access_key_id.as_deref(), Some("AKID"));
        assert_eq!(delivery.delivery_interval_secs, 1);
        assert_eq!(delivery.trails_per_region_max, 7);
        assert_eq!(delivery.sns_topics.len(), 1);
        assert_eq!(delivery.cloudwatch_log_groups.len(), 2);
        assert!(!format!("{config:?}").contains("SECRET"));
        for (name, value) in [
            ("OPENTRAIL_DELIVERY_INTERVAL_SECS", "0"),
            ("OPENTRAIL_S3_ENDPOINT", "127.0.0.1:9000"),
            ("OPENTRAIL_S3_ACCESS_KEY_ID", "only-half"),
        ] {
            let environment = environment_of(&[(name, value)]);
            let error = Config::load_with_environment(None, environment, ConfigLayer::default())
                .expect_err(name);
            assert!(
                matches!(error, ConfigError::InvalidSetting { .. }),
                "{name}: {error}"
            );
        }
        assert_eq!(Config::default().trail_delivery.delivery_interval_secs, 60);
        assert_eq!(Config::default().trail_delivery.trails_per_region_max, 5);
    }
}
