//! The stream sinks that stand in for CloudWatch Logs, one module each. Adding a sink is a
//! module implementing [`StreamSink`], a variant of `StreamSinkConfig` (its TOML shape and
//! checks), and its arm in [`connect`].

pub(crate) mod file;
pub(crate) mod syslog;
pub(crate) mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::streams::StreamSinkConfig;

/// Time for one webhook request or one syslog connection attempt or write.
pub(crate) const SINK_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What [`StreamSink::send`] returns: done, or why not (retried with backoff).
pub(crate) type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Somewhere a trail's stream batches go. A batch is one stream's records (CloudTrail
/// JSON, one per line); an error is retried with the same batch until it succeeds.
pub(crate) trait StreamSink: Send + Sync {
    fn send<'a>(
        &'a mut self,
        client: &'a reqwest::Client,
        log_group: &'a str,
        stream: &'a str,
        lines: &'a [String],
    ) -> SendFuture<'a>;
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
