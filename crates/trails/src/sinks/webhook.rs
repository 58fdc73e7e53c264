//! `webhook`: `POST` of a batch as NDJSON (`application/x-ndjson`), with the log group and
//! stream as headers and, when a `secret` is set, `X-OpenTrail-Signature-256:
//! sha256=<hex HMAC-SHA256(secret, body)>` (GitHub's convention). Any 2xx is success.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{SINK_REQUEST_TIMEOUT, SendFuture, StreamSink};

pub(crate) struct WebhookSink {
    pub(crate) url: String,
    pub(crate) secret: Option<String>,
}

impl StreamSink for WebhookSink {
    fn send<'a>(
        &'a mut self,
        client: &'a reqwest::Client,
        log_group: &'a str,
        stream: &'a str,
        lines: &'a [String],
    ) -> SendFuture<'a> {
        Box::pin(async move {
            let url = &self.url;
            let body = ndjson(lines);
            let mut request = client
                .post(url.as_str())
                .timeout(SINK_REQUEST_TIMEOUT)
                .header("content-type", "application/x-ndjson")
                .header("x-opentrail-log-group", log_group)
                .header("x-opentrail-log-stream", stream);
            if let Some(secret) = &self.secret {
                request =
                    request.header("x-opentrail-signature-256", signature_header(secret, &body));
            }
            match request.body(body).send().await {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => Err(format!("webhook {url} answered HTTP {}", response.status())),
                Err(error) => Err(format!("webhook {url} failed: {error}")),
            }
        })
    }
}

fn ndjson(lines: &[String]) -> Vec<u8> {
    let mut body = Vec::with_capacity(lines.iter().map(|line| line.len() + 1).sum());
    for line in lines {
        body.extend_from_slice(line.as_bytes());
        body.push(b'\n');
    }
    body
}

/// `sha256=<lower-case hex HMAC-SHA256(secret, body)>`.
pub fn signature_header(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this never fails; the fallback keeps it total.
    match <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => "sha256=".to_owned(),
    }
}
