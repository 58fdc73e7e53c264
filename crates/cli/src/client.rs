//! The HTTP client every server-talking subcommand uses (`keys`, `lookup`, `ingest`):
//! where the server is, which credentials to sign with, SigV4 signing, and turning error
//! responses into one readable line.
//!
//! Resolution order, first found wins:
//! - endpoint: `--endpoint`, `OPENTRAIL_ENDPOINT`, `http://127.0.0.1:4580`;
//! - credentials: `--access-key-id`/`--secret-access-key`, `AWS_ACCESS_KEY_ID`/
//!   `AWS_SECRET_ACCESS_KEY`, the `[default]` profile of `<data-dir>/credentials`;
//! - region: `--region`, `AWS_REGION`, `AWS_DEFAULT_REGION`, `OPENTRAIL_REGION`, the
//!   credentials file's `region`, `us-east-1`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use opentrail_protocol::aws_calls::{ResponseError, response_error, status_code_name};
use opentrail_protocol::error::REQUEST_ID_HEADER;
use opentrail_protocol::json11::TARGET_HEADER;
use opentrail_protocol::sigv4::{self, SigningParams};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::one_line;

const EVENTS_PATH: &str = "/v1/events";
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A `Retry-After` beyond this is capped: a misconfigured proxy must not park the run.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(120);
/// A server that cannot be reached is most likely down or mistyped; a few quick retries
/// ride out a restart without making a wrong `--endpoint` hang for minutes.
const TRANSPORT_RETRIES_MAX: u32 = 3;

/// SigV4 service name for the control plane and the native `/v1/...` API.
pub const CLOUDTRAIL_SIGNING_SERVICE: &str = "cloudtrail";
const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4580";
const DEFAULT_DATA_DIR: &str = "./opentrail-data";
const DEFAULT_REGION: &str = "us-east-1";
const CREDENTIALS_FILE_NAME: &str = "credentials";
const CREDENTIALS_PROFILE: &str = "default";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Long enough for a large ingest batch to be made durable; short enough that a hung
/// server does not hang a script forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Error bodies are read for their message only; a runaway body is cut here.
const ERROR_BODY_BYTES_MAX: usize = 64 * 1024;

/// How to reach and authenticate to a server. Flattened into every client subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionArgs {
    /// Server URL.
    #[arg(long, global = true, value_name = "URL", env = "OPENTRAIL_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// Access key id to sign with (else AWS_ACCESS_KEY_ID, else DATA_DIR/credentials).
    #[arg(long, global = true, value_name = "ID")]
    pub access_key_id: Option<String>,
    /// Secret access key to sign with (else AWS_SECRET_ACCESS_KEY, else DATA_DIR/credentials).
    #[arg(long, global = true, value_name = "SECRET")]
    pub secret_access_key: Option<String>,
    /// Region to sign for (else AWS_REGION, AWS_DEFAULT_REGION, OPENTRAIL_REGION, the
    /// credentials file, us-east-1). Ingested events without awsRegion get it; `lookup`
    /// still covers every region unless --aws-region narrows it.
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// Data directory whose credentials file is the last credentials fallback.
    #[arg(long, global = true, value_name = "DIR", env = "OPENTRAIL_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

/// The credentials of a command that works offline unless given `--endpoint`
/// (`import`, `query`). Flattened next to its own `--endpoint`.
#[derive(Debug, Clone, clap::Args)]
pub struct EndpointCredentials {
    /// Access key id for --endpoint (else AWS_ACCESS_KEY_ID, else DATA_DIR/credentials).
    #[arg(long, value_name = "ID")]
    pub access_key_id: Option<String>,
    /// Secret access key for --endpoint (else AWS_SECRET_ACCESS_KEY, else DATA_DIR/credentials).
    #[arg(long, value_name = "SECRET")]
    pub secret_access_key: Option<String>,
    /// Region to sign --endpoint requests for (else AWS_REGION, …, us-east-1).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

impl EndpointCredentials {
    /// How to reach `endpoint` with these credentials; `data_dir` holds the fallback
    /// credentials file.
    pub fn connection(&self, endpoint: &str, data_dir: PathBuf) -> ConnectionArgs {
        ConnectionArgs {
            endpoint: endpoint.to_owned(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            region: self.region.clone(),
            data_dir,
        }
    }
}

#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret, not even in a debug dump.
        formatter
            .debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// An error answer from the server, in the AWS shape (`__type`, `message`).
#[derive(Debug, Clone)]
pub struct ServerError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    /// The `Retry-After` header (delay in seconds) an overloaded server answers with.
    pub retry_after: Option<Duration>,
}

impl ServerError {
    /// Whether sending the same request again later may succeed: throttling (429) and
    /// server-side failures (5xx, among them 503 under overload).
    pub fn is_retryable(&self) -> bool {
        self.status == 429 || self.status >= 500
    }
}

/// A request body: its media type, an optional `Content-Encoding` (the payload is then
/// already encoded, and the signature covers the encoded bytes), and the bytes.
#[derive(Debug, Clone)]
pub struct RequestBody<'a> {
    pub content_type: &'a str,
    pub content_encoding: Option<&'a str>,
    /// `X-Amz-Target` of an AWS JSON 1.1 call (signed like the other headers).
    pub amz_target: Option<&'a str>,
    pub payload: Vec<u8>,
}

/// Why a request did not succeed.
pub enum SendFailure {
    /// 413: the body is over the server's limit.
    TooLarge(String),
    /// The server refused this body (or stayed unavailable through every retry); other
    /// bodies may still succeed.
    Rejected(String),
    /// No request can succeed: bad credentials, no permission, no such API, no server.
    Fatal(anyhow::Error),
}

/// The server's answer to `POST /v1/events`: what became of each record, by its zero-based
/// index in the body. `ingest` and `import` both read it through [`ApiClient::post_events`].
#[derive(Debug, Default, Deserialize)]
pub struct EventsAnswer {
    #[serde(default)]
    pub accepted: Vec<RecordIndex>,
    #[serde(default)]
    pub duplicates: Vec<RecordIndex>,
    #[serde(default)]
    pub failed: Vec<RecordFailure>,
}

#[derive(Debug, Deserialize)]
pub struct RecordIndex {
    pub index: usize,
}

/// A record the server refused, with its cloudtrail-data error code (`InvalidData`, …).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordFailure {
    pub index: usize,
    #[serde(default)]
    pub error_code: String,
    #[serde(default)]
    pub message: String,
}

/// How often a failed `POST /v1/events` is sent again.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// After 429 and 5xx answers.
    pub server_retries: u32,
    /// After the server could not be reached.
    pub transport_retries: u32,
}

impl RetryPolicy {
    /// `retries` after server errors, and at most three when the server cannot be reached.
    pub fn new(retries: u32) -> RetryPolicy {
        RetryPolicy {
            server_retries: retries,
            transport_retries: retries.min(TRANSPORT_RETRIES_MAX),
        }
    }
}

/// Exponential backoff with jitter: half the backoff plus a random part of the other
/// half, so clients that failed together do not retry together. A `Retry-After` is a
/// floor: the server said not to come back sooner.
pub(crate) fn retry_delay(attempt: u32, retry_after: Option<Duration>, random: u64) -> Duration {
    let backoff = BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(attempt))
        .min(BACKOFF_MAX);
    let half = backoff / 2;
    let half_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    let jittered = half + Duration::from_nanos(random % half_nanos.saturating_add(1));
    match retry_after {
        Some(retry_after) => retry_after.min(RETRY_AFTER_MAX).max(jittered),
        None => jittered,
    }
}

/// A random number for jitter: each `RandomState` is freshly keyed, so hashing nothing
/// with it gives a new value. No dependency for something this unimportant.
pub(crate) fn random_u64() -> u64 {
    RandomState::new().build_hasher().finish()
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Some AWS messages span lines (the canonical request of a signature mismatch);
        // the first line says what went wrong.
        let first_line = self.message.lines().next().unwrap_or_default().trim();
        write!(
            formatter,
            "{}: {first_line} (HTTP {}",
            self.code, self.status
        )?;
        if let Some(request_id) = &self.request_id {
            write!(formatter, ", request id {request_id}")?;
        }
        write!(formatter, ")")
    }
}

impl std::error::Error for ServerError {}

/// A signed-request client for one server and one key.
pub struct ApiClient {
    http: reqwest::Client,
    endpoint: Url,
    credentials: Credentials,
    region: String,
}

impl ApiClient {
    /// Resolves endpoint, credentials and region from flags, environment and data dir.
    pub fn from_connection_args(args: &ConnectionArgs) -> anyhow::Result<ApiClient> {
        let environment = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let file_profile = || read_credentials_profile(&args.data_dir.join(CREDENTIALS_FILE_NAME));
        let (credentials, file_region) = resolve_credentials(args, &environment, file_profile)?;
        let region = args
            .region
            .clone()
            .or_else(|| environment("AWS_REGION"))
            .or_else(|| environment("AWS_DEFAULT_REGION"))
            .or_else(|| environment("OPENTRAIL_REGION"))
            .or(file_region)
            .unwrap_or_else(|| DEFAULT_REGION.to_owned());
        ApiClient::new(&args.endpoint, credentials, region)
    }

    pub fn new(
        endpoint: &str,
        credentials: Credentials,
        region: String,
    ) -> anyhow::Result<ApiClient> {
        let endpoint = Url::parse(endpoint).with_context(|| {
            format!("invalid endpoint {endpoint:?}: expected a URL like {DEFAULT_ENDPOINT}")
        })?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
            bail!("invalid endpoint {endpoint}: expected an http:// or https:// URL with a host");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("opentrail-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(ApiClient {
            http,
            endpoint,
            credentials,
            region,
        })
    }

    /// One `POST /v1/events` of `payload` (encoded as `content_encoding` says), retried
    /// while the server is overloaded or unreachable, as `policy` allows: the one way
    /// `ingest` and `import --endpoint` send events.
    pub async fn post_events(
        &self,
        payload: &[u8],
        content_encoding: Option<&str>,
        policy: RetryPolicy,
    ) -> Result<EventsAnswer, SendFailure> {
        let mut attempt = 0u32;
        loop {
            let request = RequestBody {
                content_type: "application/json",
                content_encoding,
                amz_target: None,
                payload: payload.to_vec(),
            };
            let error = match self
                .send_body(Method::POST, EVENTS_PATH, Some(request))
                .await
            {
                Ok(answer) => {
                    return serde_json::from_slice(&answer).map_err(|error| {
                        SendFailure::Fatal(anyhow::Error::new(error).context(
                            "the server's answer to POST /v1/events is not the JSON expected",
                        ))
                    });
                }
                Err(error) => error,
            };
            let (retry_after, transport) = match error.downcast_ref::<ServerError>() {
                Some(server) => match server.status {
                    413 => return Err(SendFailure::TooLarge(one_line(&error))),
                    // Bad credentials or no permission: every request would fail alike.
                    401 | 403 => return Err(SendFailure::Fatal(error)),
                    404 => {
                        return Err(SendFailure::Fatal(
                            error.context("the server does not offer POST /v1/events"),
                        ));
                    }
                    _ if server.is_retryable() => (server.retry_after, false),
                    _ => return Err(SendFailure::Rejected(one_line(&error))),
                },
                None if error.downcast_ref::<reqwest::Error>().is_some() => (None, true),
                None => return Err(SendFailure::Fatal(error)),
            };
            let allowed = if transport {
                policy.transport_retries
            } else {
                policy.server_retries
            };
            if attempt >= allowed {
                return Err(if transport {
                    SendFailure::Fatal(error)
                } else {
                    SendFailure::Rejected(format!(
                        "{} (gave up after {attempt} retries)",
                        one_line(&error)
                    ))
                });
            }
            tokio::time::sleep(retry_delay(attempt, retry_after, random_u64())).await;
            attempt += 1;
        }
    }

    /// An AWS JSON 1.1 call (`POST /` with `X-Amz-Target`); the answer's JSON.
    pub async fn call_json11(
        &self,
        target: &str,
        request: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let payload = serde_json::to_vec(request).context("cannot encode the request")?;
        let body = RequestBody {
            content_type: "application/x-amz-json-1.1",
            content_encoding: None,
            amz_target: Some(target),
            payload,
        };
        let bytes = self.send_body(Method::POST, "/", Some(body)).await?;
        serde_json::from_slice(&bytes).context("the server's answer is not JSON")
    }

    pub async fn get_json<T: DeserializeOwned>(&self, path_and_query: &str) -> anyhow::Result<T> {
        let body = self.send(Method::GET, path_and_query, None).await?;
        parse_json_body(&body)
    }

    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path_and_query: &str,
        request: &impl Serialize,
    ) -> anyhow::Result<T> {
        let payload = serde_json::to_vec(request).context("cannot encode the request")?;
        let body = self
            .send(
                Method::POST,
                path_and_query,
                Some(("application/json", payload)),
            )
            .await?;
        parse_json_body(&body)
    }

    pub async fn delete_json<T: DeserializeOwned>(
        &self,
        path_and_query: &str,
    ) -> anyhow::Result<T> {
        let body = self.send(Method::DELETE, path_and_query, None).await?;
        parse_json_body(&body)
    }

    /// Sends one SigV4-signed request (service `cloudtrail`) and returns the body of a
    /// successful response; an error response becomes a [`ServerError`].
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> anyhow::Result<Vec<u8>> {
        let body = body.map(|(content_type, payload)| RequestBody {
            content_type,
            content_encoding: None,
            amz_target: None,
            payload,
        });
        self.send_body(method, path_and_query, body).await
    }

    /// [`ApiClient::send`] with any [`RequestBody`]. Failures to reach the server or to
    /// read its answer keep their `reqwest::Error` as the source, so callers can tell them
    /// apart from a [`ServerError`] by downcasting.
    pub async fn send_body(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<RequestBody<'_>>,
    ) -> anyhow::Result<Vec<u8>> {
        let url = self
            .endpoint
            .join(path_and_query)
            .with_context(|| format!("invalid request path {path_and_query:?}"))?;
        // Sign exactly what goes on the wire: the URL's own serialised path and query.
        let wire_path_and_query = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let host = host_header_value(&url);
        let (content_type, content_encoding, amz_target, payload) = match body {
            Some(body) => (
                Some(body.content_type),
                body.content_encoding,
                body.amz_target,
                body.payload,
            ),
            None => (None, None, None, Vec::new()),
        };
        let mut signed_headers: Vec<(&str, &str)> = vec![("host", host.as_str())];
        if let Some(content_type) = content_type {
            signed_headers.push(("content-type", content_type));
        }
        if let Some(content_encoding) = content_encoding {
            signed_headers.push(("content-encoding", content_encoding));
        }
        if let Some(amz_target) = amz_target {
            signed_headers.push((TARGET_HEADER, amz_target));
        }
        let signature_headers = sigv4::sign(
            method.as_str(),
            &wire_path_and_query,
            &signed_headers,
            &payload,
            &SigningParams {
                access_key_id: &self.credentials.access_key_id,
                secret_access_key: &self.credentials.secret_access_key,
                region: &self.region,
                service: CLOUDTRAIL_SIGNING_SERVICE,
                now: jiff::Timestamp::now(),
                include_content_sha256: false,
            },
        );

        let mut request = self.http.request(method.clone(), url).header("host", &host);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(content_encoding) = content_encoding {
            request = request.header("content-encoding", content_encoding);
        }
        if let Some(amz_target) = amz_target {
            request = request.header(TARGET_HEADER, amz_target);
        }
        for (name, value) in &signature_headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request
            .body(payload)
            .send()
            .await
            .with_context(|| format!("cannot reach OpenTrail at {}", self.endpoint))?;
        let status = response.status();
        let request_id = response
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let headers = response.headers().clone();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        let bytes = response.bytes().await.with_context(|| {
            format!(
                "the connection to {} broke while reading the answer",
                self.endpoint
            )
        })?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let mut error = server_error(status.as_u16(), &headers, request_id, &bytes);
        error.retry_after = retry_after;
        Err(error.into())
    }
}

/// `Retry-After` as delay-seconds. The HTTP-date form is not used by OpenTrail, and a
/// caller without a delay falls back to its own backoff, so it is not parsed.
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn parse_json_body<T: DeserializeOwned>(body: &[u8]) -> anyhow::Result<T> {
    serde_json::from_slice(body).context("the server's answer is not the JSON this command expects")
}

/// The AWS error shape's code and message (decoded by the protocol crate), or the body's
/// text when the answer is not in that shape (a proxy's error page).
fn server_error(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    request_id: Option<String>,
    body: &[u8],
) -> ServerError {
    let body = &body[..body.len().min(ERROR_BODY_BYTES_MAX)];
    let decoded = response_error(status, headers, body);
    let (code, body_message) = match decoded {
        Some(ResponseError { code, message }) => (code, message),
        None => (status_code_name(status), None),
    };
    let message = body_message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body).trim().to_owned();
        if text.is_empty() {
            "the server gave no reason".to_owned()
        } else {
            text
        }
    });
    ServerError {
        status,
        code,
        message,
        request_id,
        retry_after: None,
    }
}

fn host_header_value(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    // `Url::port` is None for the scheme's default port, which is also when clients
    // leave the port out of Host.
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// A profile of an AWS shared-credentials file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialsProfile {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub region: Option<String>,
}

fn resolve_credentials(
    args: &ConnectionArgs,
    environment: &impl Fn(&str) -> Option<String>,
    file_profile: impl FnOnce() -> anyhow::Result<CredentialsProfile>,
) -> anyhow::Result<(Credentials, Option<String>)> {
    match (&args.access_key_id, &args.secret_access_key) {
        (Some(access_key_id), Some(secret_access_key)) => {
            return Ok((
                Credentials {
                    access_key_id: access_key_id.clone(),
                    secret_access_key: secret_access_key.clone(),
                },
                None,
            ));
        }
        (Some(_), None) | (None, Some(_)) => {
            bail!("--access-key-id and --secret-access-key must be given together")
        }
        (None, None) => {}
    }
    match (
        environment("AWS_ACCESS_KEY_ID"),
        environment("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(access_key_id), Some(secret_access_key)) => {
            return Ok((
                Credentials {
                    access_key_id,
                    secret_access_key,
                },
                None,
            ));
        }
        (Some(_), None) | (None, Some(_)) => {
            bail!("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together")
        }
        (None, None) => {}
    }
    let profile = file_profile()?;
    match (profile.access_key_id, profile.secret_access_key) {
        (Some(access_key_id), Some(secret_access_key)) => Ok((
            Credentials {
                access_key_id,
                secret_access_key,
            },
            profile.region,
        )),
        _ => bail!(
            "the [{CREDENTIALS_PROFILE}] profile of {} lacks aws_access_key_id or aws_secret_access_key",
            args.data_dir.join(CREDENTIALS_FILE_NAME).display()
        ),
    }
}

/// Reads the `[default]` profile of an AWS shared-credentials file.
pub fn read_credentials_profile(path: &Path) -> anyhow::Result<CredentialsProfile> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => bail!(
            "no credentials: pass --access-key-id and --secret-access-key, set AWS_ACCESS_KEY_ID \
             and AWS_SECRET_ACCESS_KEY, or point --data-dir at a server's data directory \
             ({} does not exist)",
            path.display()
        ),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", path.display()));
        }
    };
    Ok(parse_credentials_profile(&text, CREDENTIALS_PROFILE))
}

/// The INI subset AWS credential files use: `[profile]` headers, `key = value` lines,
/// `#`/`;` comments.
fn parse_credentials_profile(text: &str, wanted_profile: &str) -> CredentialsProfile {
    let mut profile = CredentialsProfile::default();
    let mut in_wanted_profile = false;
    for raw_line in text.lines() {
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            in_wanted_profile = section.trim() == wanted_profile;
            continue;
        }
        if !in_wanted_profile {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = Some(value.trim().to_owned()).filter(|value| !value.is_empty());
        match key.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => profile.access_key_id = value,
            "aws_secret_access_key" => profile.secret_access_key = value,
            "region" => profile.region = value,
            _ => {}
        }
    }
    profile
}

/// An id (a rule's, an alert's) as one URL path segment: anything but unreserved
/// characters is percent-encoded, so an id never reaches another route.
pub fn path_segment(id: &str) -> String {
    let mut encoded = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        for random in [0, 1, u64::MAX / 3, u64::MAX] {
            let first = retry_delay(0, None, random);
            assert!(first >= Duration::from_millis(250) && first <= Duration::from_millis(500));
            let fourth = retry_delay(3, None, random);
            assert!(fourth >= Duration::from_secs(2) && fourth <= Duration::from_secs(4));
            let late = retry_delay(30, None, random);
            assert!(late >= BACKOFF_MAX / 2 && late <= BACKOFF_MAX);
        }
    }

    #[test]
    fn retry_after_is_a_floor_and_capped() {
        assert_eq!(
            retry_delay(0, Some(Duration::from_secs(3)), 0),
            Duration::from_secs(3)
        );
        assert_eq!(
            retry_delay(0, Some(Duration::from_secs(100_000)), 0),
            RETRY_AFTER_MAX
        );
        // Backoff already beyond the server's hint wins.
        assert!(retry_delay(6, Some(Duration::from_secs(1)), 0) >= Duration::from_secs(15));
    }

    fn args(access_key_id: Option<&str>, secret_access_key: Option<&str>) -> ConnectionArgs {
        ConnectionArgs {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            access_key_id: access_key_id.map(str::to_owned),
            secret_access_key: secret_access_key.map(str::to_owned),
            region: None,
            data_dir: PathBuf::from("/nonexistent"),
        }
    }

    fn file_profile(id: &str, secret: &str) -> impl FnOnce() -> anyhow::Result<CredentialsProfile> {
        let profile = CredentialsProfile {
            access_key_id: Some(id.to_owned()),
            secret_access_key: Some(secret.to_owned()),
            region: Some("eu-west-1".to_owned()),
        };
        move || Ok(profile)
    }

    #[test]
    fn flags_beat_environment_which_beats_the_file() {
        let environment = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("ENVKEY".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("envsecret".to_owned()),
            _ => None,
        };
        let (from_flags, _) = resolve_credentials(
            &args(Some("FLAGKEY"), Some("flagsecret")),
            &environment,
            file_profile("FILEKEY", "filesecret"),
        )
        .expect("flags");
        assert_eq!(from_flags.access_key_id, "FLAGKEY");

        let (from_environment, _) = resolve_credentials(
            &args(None, None),
            &environment,
            file_profile("FILEKEY", "filesecret"),
        )
        .expect("environment");
        assert_eq!(from_environment.access_key_id, "ENVKEY");

        let (from_file, region) = resolve_credentials(
            &args(None, None),
            &|_: &str| None,
            file_profile("FILEKEY", "filesecret"),
        )
        .expect("file");
        assert_eq!(from_file.access_key_id, "FILEKEY");
        assert_eq!(from_file.secret_access_key, "filesecret");
        assert_eq!(region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn half_given_credentials_are_an_error() {
        let error = resolve_credentials(
            &args(Some("FLAGKEY"), None),
            &|_: &str| None,
            file_profile("FILEKEY", "filesecret"),
        )
        .expect_err("must fail");
        assert!(error.to_string().contains("together"));
    }

    #[test]
    fn missing_credentials_file_explains_every_option() {
        let error =
            read_credentials_profile(Path::new("/nonexistent/credentials")).expect_err("missing");
        let message = error.to_string();
        assert!(message.contains("--access-key-id"), "{message}");
        assert!(message.contains("AWS_ACCESS_KEY_ID"), "{message}");
        assert!(message.contains("/nonexistent/credentials"), "{message}");
    }

    #[test]
    fn credentials_file_default_profile_is_read() {
        let text = "# written by opentrail\n[other]\naws_access_key_id = NOPE\n\n[default]\naws_access_key_id = OTAKAAAA\naws_secret_access_key = abc/def+ghi=\nregion = ap-south-1\n";
        assert_eq!(
            parse_credentials_profile(text, "default"),
            CredentialsProfile {
                access_key_id: Some("OTAKAAAA".to_owned()),
                secret_access_key: Some("abc/def+ghi=".to_owned()),
                region: Some("ap-south-1".to_owned()),
            }
        );
    }

    #[test]
    fn error_answers_become_one_readable_line() {
        let error = server_error(
            400,
            &HeaderMap::new(),
            Some("req-1".to_owned()),
            br#"{"__type":"com.amazonaws.cloudtrail.v20131101#InvalidSignatureException","message":"The request signature we calculated does not match.\n\nCanonical..."}"#,
        );
        assert_eq!(error.code, "InvalidSignatureException");
        assert_eq!(
            error.to_string(),
            "InvalidSignatureException: The request signature we calculated does not match. (HTTP 400, request id req-1)"
        );
        let plain = server_error(502, &HeaderMap::new(), None, b"Bad Gateway");
        assert_eq!(plain.to_string(), "BadGateway: Bad Gateway (HTTP 502)");
    }

    #[test]
    fn retry_after_is_read_as_seconds() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        let overloaded = server_error(503, &HeaderMap::new(), None, b"{}");
        assert!(overloaded.is_retryable());
        assert!(server_error(429, &HeaderMap::new(), None, b"{}").is_retryable());
        assert!(!server_error(400, &HeaderMap::new(), None, b"{}").is_retryable());
        assert!(!server_error(413, &HeaderMap::new(), None, b"{}").is_retryable());
    }

    #[test]
    fn host_header_leaves_out_default_ports() {
        assert_eq!(
            host_header_value(&Url::parse("http://127.0.0.1:4580/").expect("url")),
            "127.0.0.1:4580"
        );
        assert_eq!(
            host_header_value(&Url::parse("http://example.test/").expect("url")),
            "example.test"
        );
        assert_eq!(
            host_header_value(&Url::parse("https://example.test:443/").expect("url")),
            "example.test"
        );
    }
}
