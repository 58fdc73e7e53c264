//! `syslog`: RFC 5424 messages, facility local0, severity informational, `APP-NAME`
//! `opentrail`, `MSGID` `CloudTrail`, the log group and stream as structured data, and the
//! record as the message.
//!
//! The address is `host:port` or `tcp://host:port` (TCP with octet-counting framing, RFC
//! 6587; the connection is kept between batches and made again after a failure), or
//! `udp://host:port` (one message per datagram, RFC 5426; nothing confirms receipt, so a
//! lost datagram is lost).

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use super::{SINK_REQUEST_TIMEOUT, SendFuture, StreamSink};

pub(crate) struct SyslogSink {
    pub(crate) address: String,
    pub(crate) connection: Option<TcpStream>,
}

/// How a syslog address is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Tcp,
    Udp,
}

/// The transport and the `host:port` of an address (`host:port`, `tcp://…`, `udp://…`).
pub(crate) fn split_address(address: &str) -> (Transport, &str) {
    if let Some(rest) = address.strip_prefix("udp://") {
        (Transport::Udp, rest)
    } else if let Some(rest) = address.strip_prefix("tcp://") {
        (Transport::Tcp, rest)
    } else {
        (Transport::Tcp, address)
    }
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
            let (transport, host_port) = split_address(&address);
            if transport == Transport::Udp {
                return send_datagrams(host_port, log_group, stream, lines)
                    .await
                    .map_err(|error| format!("syslog {address}: {error}"));
            }
            let mut frames = Vec::new();
            for line in lines {
                let message = syslog_message(log_group, stream, line);
                frames.extend_from_slice(format!("{} {message}", message.len()).as_bytes());
            }
            if self.connection.is_none() {
                let connected =
                    tokio::time::timeout(SINK_REQUEST_TIMEOUT, TcpStream::connect(host_port))
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

/// Sends each record as one datagram from a fresh socket (no state to keep between
/// batches, and a receiver that moved is found again).
async fn send_datagrams(
    host_port: &str,
    log_group: &str,
    stream: &str,
    lines: &[String],
) -> std::io::Result<()> {
    let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
    tokio::time::timeout(SINK_REQUEST_TIMEOUT, async {
        let target = tokio::net::lookup_host(host_port)
            .await?
            .next()
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "the host has no address")
            })?;
        let local: std::net::SocketAddr = if target.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let socket = UdpSocket::bind(local).await?;
        for line in lines {
            let message = syslog_message(log_group, stream, line);
            socket.send_to(message.as_bytes(), target).await?;
        }
        Ok(())
    })
    .await
    .map_err(|_| timed_out())?
}

/// One RFC 5424 message, without transport framing.
fn syslog_message(log_group: &str, stream: &str, record: &str) -> String {
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
    format!(
        "<134>1 {timestamp} - opentrail - CloudTrail [opentrail@32473 logGroup=\"{}\" logStream=\"{}\"] {record}",
        escape(log_group),
        escape(stream)
    )
}
