//! The stream sinks that stand in for CloudWatch Logs, one module each, and their
//! configuration.
//!
//! A log group maps to a [`SinkConnector`], which gives each stream worker its own
//! [`StreamSink`] (a sink may keep a connection). Configured sinks are
//! [`StreamSinkConfig`]s: adding a kind operators can configure is a module implementing
//! [`StreamSink`], a variant of `StreamSinkConfig` (its TOML shape and checks), and its
//! arm in `connect`. Code (tests, an embedding program) can register any
//! `Arc<dyn SinkConnector>` in `TrailsOptions::log_groups` without either.

pub(crate) mod file;
pub(crate) mod syslog;
pub(crate) mod webhook;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use serde::Deserialize;

/// Time for one webhook request or one syslog connection attempt or write.
pub(crate) const SINK_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What [`StreamSink::send`] returns: done, or why not (retried with backoff).
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Somewhere a trail's stream batches go. A batch is one stream's records (CloudTrail
/// JSON, one per line); an error is retried with the same batch until it succeeds.
pub trait StreamSink: Send + Sync {
    fn send<'a>(
        &'a mut self,
        client: &'a reqwest::Client,
        log_group: &'a str,
        stream: &'a str,
        lines: &'a [String],
    ) -> SendFuture<'a>;
}

/// Makes the sink of a log group, once per stream worker.
pub trait SinkConnector: Send + Sync + fmt::Debug {
    fn connect(&self) -> Box<dyn StreamSink>;
}

impl SinkConnector for StreamSinkConfig {
    fn connect(&self) -> Box<dyn StreamSink> {
        connect(self)
    }
}

/// Rotate the file sink at 100 MiB unless configured otherwise.
pub const DEFAULT_ROTATE_BYTES: u64 = 100 * 1024 * 1024;
/// Rotated files kept unless configured otherwise.
pub const DEFAULT_KEEP_FILES: usize = 5;

/// Where a log group's events go (a `cloudwatch_log_groups` table entry).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StreamSinkConfig {
    Webhook {
        url: String,
        /// The HMAC-SHA256 key of the signature header; no header without it.
        #[serde(default)]
        secret: Option<String>,
    },
    File {
        path: PathBuf,
        #[serde(default = "default_rotate_bytes")]
        rotate_bytes: u64,
        #[serde(default = "default_keep_files")]
        keep_files: usize,
    },
    Syslog {
        /// An RFC 5424 receiver: `host:port` or `tcp://host:port` (TCP), or
        /// `udp://host:port` (UDP).
        address: String,
    },
}

fn default_rotate_bytes() -> u64 {
    DEFAULT_ROTATE_BYTES
}

fn default_keep_files() -> usize {
    DEFAULT_KEEP_FILES
}

impl StreamSinkConfig {
    /// Checks what TOML cannot: a usable URL, address, and limits.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            StreamSinkConfig::Webhook { url, .. } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "webhook url {url:?} must start with http:// or https://"
                    ));
                }
            }
            StreamSinkConfig::File {
                path,
                rotate_bytes,
                keep_files,
            } => {
                if path.as_os_str().is_empty() {
                    return Err("file sink path must not be empty".to_owned());
                }
                if *rotate_bytes < 1024 {
                    return Err("rotate_bytes must be at least 1024".to_owned());
                }
                if !(1..=1000).contains(keep_files) {
                    return Err("keep_files must be between 1 and 1000".to_owned());
                }
            }
            StreamSinkConfig::Syslog { address } => {
                let (_, host_port) = syslog::split_address(address);
                if host_port.contains("://")
                    || host_port
                        .rsplit_once(':')
                        .is_none_or(|(_, port)| port.parse::<u16>().is_err())
                {
                    return Err(format!(
                        "syslog address {address:?} must be host:port, tcp://host:port or udp://host:port"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The sink a configuration names.
pub(crate) fn connect(config: &StreamSinkConfig) -> Box<dyn StreamSink> {
    match config.clone() {
        StreamSinkConfig::Webhook { url, secret } => Box::new(webhook::WebhookSink { url, secret }),
        StreamSinkConfig::File {
            path,
            rotate_bytes,
            keep_files,
        } => Box::new(file::FileSink {
            path,
            rotate_bytes,
            keep_files,
        }),
        StreamSinkConfig::Syslog { address } => Box::new(syslog::SyslogSink {
            address,
            connection: None,
        }),
    }
}
