//! `syslog`: RFC 5424 messages over TCP with octet-counting framing (RFC 6587), facility
//! local0, severity informational, `APP-NAME` `opentrail`, `MSGID` `CloudTrail`, the log
//! group and stream as structured data, and the record as the message. The connection is
//! kept between batches and made again after a failure.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{SINK_REQUEST_TIMEOUT, SendFuture, StreamSink};

pub(crate) struct SyslogSink {
    pub(crate) address: String,
    pub(crate) connection: Option<TcpStream>,
}

impl StreamSink for SyslogSink {
    fn send<'a>(
        &'a mut self,
        _client: &'a reqwest::Client,
        log_group: &'a str,
        stream: &'a str,
        lines: &'a [String],
    ) -> SendFuture<'a> {
        Box::pin(async move {
            let address = self.address.clone();
            let mut frames = Vec::new();
            for line in lines {
                frames.extend_from_slice(&syslog_frame(log_group, stream, line));
            }
            if self.connection.is_none() {
                let connected = tokio::time::timeout(
                    SINK_REQUEST_TIMEOUT,
                    TcpStream::connect(address.as_str()),
                )
                .await
                .map_err(|_| format!("syslog {address}: connection timed out"))?
                .map_err(|error| format!("syslog {address}: {error}"))?;
                self.connection = Some(connected);
            }
            let Some(connection) = self.connection.as_mut() else {
                return Err(format!("syslog {address}: not connected"));
            };
            let written = tokio::time::timeout(SINK_REQUEST_TIMEOUT, async {
                connection.write_all(&frames).await?;
                connection.flush().await
            })
            .await;
            match written {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => {
                    self.connection = None;
                    Err(format!("syslog {address}: {error}"))
                }
                Err(_) => {
                    self.connection = None;
                    Err(format!("syslog {address}: write timed out"))
                }
            }
        })
    }
}

/// One RFC 5424 message with RFC 6587 octet-counting framing.
fn syslog_frame(log_group: &str, stream: &str, record: &str) -> Vec<u8> {
    let escape = |value: &str| {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace(']', "\\]")
    };
    let timestamp = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    // PRI 134 = facility local0 (16) * 8 + severity informational (6).
    let message = format!(
        "<134>1 {timestamp} - opentrail - CloudTrail [opentrail@32473 logGroup=\"{}\" logStream=\"{}\"] {record}",
        escape(log_group),
        escape(stream)
    );
    format!("{} {message}", message.len()).into_bytes()
}
