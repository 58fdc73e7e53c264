//! Sending records to an OpenTrail server: `POST /v1/events` with NDJSON, signed with
//! SigV4 by a key that may ingest.

use std::time::Duration;

use opentrail_protocol::sigv4::{self, SigningParams};
use reqwest::Url;

const INGEST_PATH: &str = "/v1/events";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An access key that may ingest.
#[derive(Clone)]
pub struct IngestCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for IngestCredentials {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("IngestCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Why a client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    #[error("invalid OpenTrail endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error("cannot open the recording queue: {0}")]
    Queue(#[from] std::io::Error),
}

/// Why a batch was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot reach OpenTrail at {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("OpenTrail answered HTTP {status}: {message}")]
    Refused { status: u16, message: String },
}

/// What the server did with a batch it answered 200 to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SendReport {
    pub accepted: usize,
    pub duplicates: usize,
    /// Records the server will never accept, with its reasons (they are logged, not
    /// retried: resending them cannot succeed).
    pub rejected: Vec<String>,
}

/// A signed client of one OpenTrail server.
#[derive(Debug, Clone)]
pub struct IngestClient {
    http: reqwest::Client,
    endpoint: Url,
    credentials: IngestCredentials,
    region: String,
}

impl IngestClient {
    pub fn new(
        endpoint: &str,
        credentials: IngestCredentials,
        region: &str,
    ) -> Result<IngestClient, ClientSetupError> {
        let endpoint = Url::parse(endpoint).map_err(|error| ClientSetupError::Endpoint {
            endpoint: endpoint.to_owned(),
            reason: error.to_string(),
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|error| ClientSetupError::Http(error.to_string()))?;
        Ok(IngestClient {
            http,
            endpoint,
            credentials,
            region: region.to_owned(),
        })
    }

    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// Sends `records` (JSON texts) as one NDJSON batch; returns once the server has made
    /// them durable.
    pub async fn send(&self, records: &[String]) -> Result<SendReport, SendError> {
        let mut body = Vec::with_capacity(records.iter().map(|record| record.len() + 1).sum());
        for record in records {
            body.extend_from_slice(record.as_bytes());
            body.push(b'\n');
        }
        let unreachable = |reason: String| SendError::Unreachable {
            endpoint: self.endpoint.to_string(),
            reason,
        };
        let url = self
            .endpoint
            .join(INGEST_PATH)
            .map_err(|error| unreachable(error.to_string()))?;
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => return Err(unreachable("the endpoint has no host".to_owned())),
        };
        const CONTENT_TYPE: &str = "application/x-ndjson";
        let signature = sigv4::sign(
            "POST",
            INGEST_PATH,
            &[("host", &host), ("content-type", CONTENT_TYPE)],
            &body,
            &SigningParams {
                access_key_id: &self.credentials.access_key_id,
                secret_access_key: &self.credentials.secret_access_key,
                region: &self.region,
                service: "cloudtrail",
                now: jiff::Timestamp::now(),
                include_content_sha256: false,
            },
        );
        let mut request = self
            .http
            .post(url)
            .header("host", &host)
            .header("content-type", CONTENT_TYPE);
        for (name, value) in &signature {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if status != 200 {
            let message = answer
                .get("message")
                .or_else(|| answer.get("Message"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            return Err(SendError::Refused { status, message });
        }
        let count = |name: &str| {
            answer
                .get(name)
                .and_then(serde_json::Value::as_array)
                .map_or(0, Vec::len)
        };
        let rejected = answer
            .get("failed")
            .and_then(serde_json::Value::as_array)
            .map(|failures| failures.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        Ok(SendReport {
            accepted: count("accepted"),
            duplicates: count("duplicates"),
            rejected,
        })
    }
}
