//! A local alert webhook: a minimal HTTP/1.1 keep-alive server on 127.0.0.1 that answers
//! every request 200 and hands each body, with the instant it was fully read, to the
//! harness. The server's alert delivery `POST`s here (`OPENTRAIL_ALERT_WEBHOOK_URL`).

use std::time::Instant;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::proxy::{content_length, find};

/// One request the webhook received.
pub struct Delivery {
    /// When its body had been read in full.
    pub received: Instant,
    pub body: Vec<u8>,
}

/// The running receiver; dropping it stops accepting.
pub struct WebhookReceiver {
    /// Where to `POST` alerts.
    pub url: String,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
    acceptor: JoinHandle<()>,
}

impl WebhookReceiver {
    pub async fn start() -> anyhow::Result<WebhookReceiver> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind the alert webhook")?;
        let address = listener
            .local_addr()
            .context("cannot read the alert webhook's address")?;
        let (sender, deliveries) = mpsc::unbounded_channel();
        let acceptor = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_connection(stream, sender.clone()));
            }
        });
        Ok(WebhookReceiver {
            url: format!("http://{address}/alerts"),
            deliveries,
            acceptor,
        })
    }

    /// The next delivery, or `None` once `deadline` passes.
    pub async fn next_before(&mut self, deadline: tokio::time::Instant) -> Option<Delivery> {
        tokio::time::timeout_at(deadline, self.deliveries.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

/// Reads requests off one connection (Content-Length bodies: what the server's HTTP
/// client sends for JSON) and answers each with an empty 200.
async fn serve_connection(
    mut stream: tokio::net::TcpStream,
    deliveries: mpsc::UnboundedSender<Delivery>,
) {
    const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
    let _ = stream.set_nodelay(true);
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let Some(header_end) = find(&buffer, b"\r\n\r\n") else {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            }
            continue;
        };
        let body_start = header_end + 4;
        let body_end = body_start + content_length(&buffer[..header_end]);
        while buffer.len() < body_end {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            }
        }
        let delivery = Delivery {
            received: Instant::now(),
            body: buffer[body_start..body_end].to_vec(),
        };
        buffer.drain(..body_end);
        if deliveries.send(delivery).is_err() || stream.write_all(ANSWER).await.is_err() {
            return;
        }
    }
}
