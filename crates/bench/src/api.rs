//! The calls the harness makes, SigV4-signed as any AWS client would sign them:
//! `POST /v1/events` (native ingest), `POST /` LookupEvents and the Lake operations (AWS
//! JSON 1.1), native lookup pages and `GET /metrics`.

use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use opentrail_protocol::sigv4::{self, SigningParams};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::server::Credentials;

const SERVICE: &str = "cloudtrail";
/// The `X-Amz-Target` of a CloudTrail operation is this followed by its name.
const TARGET_PREFIX: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.";
/// An overloaded server answers 503 with Retry-After; the harness waits and resends.
const RETRIES_MAX: u32 = 20;

pub struct Api {
    http: reqwest::Client,
    endpoint: String,
    host: String,
    credentials: Credentials,
}

/// The counts of an ingest answer.
#[derive(Debug, Default, Clone, Copy)]
pub struct IngestCounts {
    pub accepted: usize,
    pub duplicates: usize,
    pub failed: usize,
    pub retries: u32,
}

#[derive(Deserialize)]
struct IngestAnswer {
    accepted: Vec<IgnoredAny>,
    duplicates: Vec<IgnoredAny>,
    failed: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
struct LookupAnswer {
    #[serde(rename = "Events", default)]
    events: Vec<LookupEvent>,
}

#[derive(Deserialize)]
struct LookupEvent {
    #[serde(rename = "EventId")]
    event_id: String,
}

/// One LookupEvents request: a single attribute, a time window, a page size.
#[derive(Debug, Clone)]
pub struct Lookup<'a> {
    pub region: &'a str,
    pub attribute: &'a str,
    pub value: &'a str,
    /// Epoch seconds, inclusive; `None` leaves CloudTrail's default.
    pub start_s: Option<i64>,
    pub end_s: Option<i64>,
    pub max_results: u32,
}

impl Api {
    pub fn new(endpoint: &str, host: &str, credentials: Credentials) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .pool_max_idle_per_host(256)
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Api {
            http,
            endpoint: endpoint.to_owned(),
            host: host.to_owned(),
            credentials,
        })
    }

    /// Ingests one NDJSON body; answers once the server acknowledged it (after fsync).
    pub async fn ingest(&self, body: Vec<u8>) -> anyhow::Result<IngestCounts> {
        // Shared, so a resend after a 503 copies no bytes.
        let body = Bytes::from(body);
        let mut retries = 0;
        loop {
            let response = self
                .send(
                    "/v1/events",
                    "us-east-1",
                    "application/x-ndjson",
                    None,
                    body.clone(),
                )
                .await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok());
            let bytes = response
                .bytes()
                .await
                .context("cannot read the ingest answer")?;
            if status.as_u16() == 503 || status.as_u16() == 429 {
                retries += 1;
                if retries > RETRIES_MAX {
                    bail!("the server stayed overloaded after {RETRIES_MAX} retries");
                }
                let wait = retry_after.map_or(
                    Duration::from_millis(50 * u64::from(retries)),
                    Duration::from_secs,
                );
                tokio::time::sleep(wait.min(Duration::from_secs(2))).await;
                continue;
            }
            if !status.is_success() {
                bail!(
                    "ingest failed with HTTP {status}: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
                );
            }
            let answer: IngestAnswer = serde_json::from_slice(&bytes)
                .context("the ingest answer is not the expected JSON")?;
            return Ok(IngestCounts {
                accepted: answer.accepted.len(),
                duplicates: answer.duplicates.len(),
                failed: answer.failed.len(),
                retries,
            });
        }
    }

    /// LookupEvents; returns the page's event ids, newest first.
    pub async fn lookup(&self, lookup: &Lookup<'_>) -> anyhow::Result<Vec<String>> {
        let mut request = serde_json::json!({
            "LookupAttributes": [{"AttributeKey": lookup.attribute, "AttributeValue": lookup.value}],
            "MaxResults": lookup.max_results,
        });
        if let Some(start) = lookup.start_s {
            request["StartTime"] = start.into();
        }
        if let Some(end) = lookup.end_s {
            request["EndTime"] = end.into();
        }
        let bytes = self
            .call_bytes(lookup.region, "LookupEvents", &request)
            .await?;
        let answer: LookupAnswer = serde_json::from_slice(&bytes)
            .context("the LookupEvents answer is not the expected JSON")?;
        Ok(answer
            .events
            .into_iter()
            .map(|event| event.event_id)
            .collect())
    }

    /// One CloudTrail operation over AWS JSON 1.1 (`StartQuery`, …); its answer.
    pub async fn call(
        &self,
        region: &str,
        operation: &str,
        request: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let bytes = self.call_bytes(region, operation, request).await?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("the {operation} answer is not JSON"))
    }

    async fn call_bytes(
        &self,
        region: &str,
        operation: &str,
        request: &serde_json::Value,
    ) -> anyhow::Result<Vec<u8>> {
        let body =
            serde_json::to_vec(request).with_context(|| format!("cannot encode {operation}"))?;
        let target = format!("{TARGET_PREFIX}{operation}");
        let response = self
            .send(
                "/",
                region,
                "application/x-amz-json-1.1",
                Some(&target),
                body.into(),
            )
            .await?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("cannot read the {operation} answer"))?;
        if !status.is_success() {
            bail!(
                "{operation} failed with HTTP {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
            );
        }
        Ok(bytes.to_vec())
    }

    /// How many events match one native lookup filter (`GET /v1/events`, every page).
    pub async fn count_events(&self, filter: &str, value: &str) -> anyhow::Result<usize> {
        #[derive(Deserialize)]
        struct Page {
            events: Vec<IgnoredAny>,
            #[serde(rename = "nextCursor")]
            next_cursor: Option<String>,
        }
        let mut count = 0;
        let mut cursor: Option<String> = None;
        loop {
            let mut path_and_query = format!("/v1/events?{filter}={value}&limit=1000");
            if let Some(cursor) = &cursor {
                path_and_query.push_str("&cursor=");
                path_and_query.push_str(cursor);
            }
            let request = self.signed(
                "GET",
                &path_and_query,
                vec![("host", &self.host)],
                "us-east-1",
                Bytes::new(),
            );
            let response = request
                .send()
                .await
                .with_context(|| format!("cannot reach the server at {}", self.endpoint))?;
            let status = response.status();
            let bytes = response
                .bytes()
                .await
                .context("cannot read a lookup page")?;
            if !status.is_success() {
                bail!(
                    "GET /v1/events failed with HTTP {status}: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
                );
            }
            let page: Page = serde_json::from_slice(&bytes).context("a lookup page is not JSON")?;
            count += page.events.len();
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(count),
            }
        }
    }

    /// The server's Prometheus text (`GET /metrics`, signed like every API call).
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let request = self.signed(
            "GET",
            "/metrics",
            vec![("host", &self.host)],
            "us-east-1",
            Bytes::new(),
        );
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.endpoint))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .context("cannot read the metrics answer")?;
        if !status.is_success() {
            bail!(
                "GET /metrics failed with HTTP {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
            );
        }
        String::from_utf8(bytes.to_vec()).context("the metrics answer is not UTF-8")
    }

    async fn send(
        &self,
        path: &str,
        region: &str,
        content_type: &str,
        target: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<reqwest::Response> {
        let mut headers: Vec<(&str, &str)> =
            vec![("host", &self.host), ("content-type", content_type)];
        if let Some(target) = target {
            headers.push(("x-amz-target", target));
        }
        self.signed("POST", path, headers, region, body)
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.endpoint))
    }

    /// A request with `headers` and `body`, signed with the admin key for `region`.
    fn signed(
        &self,
        method: &str,
        path_and_query: &str,
        headers: Vec<(&str, &str)>,
        region: &str,
        body: Bytes,
    ) -> reqwest::RequestBuilder {
        let signature = sigv4::sign(
            method,
            path_and_query,
            &headers,
            &body,
            &SigningParams {
                access_key_id: &self.credentials.access_key_id,
                secret_access_key: &self.credentials.secret_access_key,
                region,
                service: SERVICE,
                now: jiff::Timestamp::now(),
                include_content_sha256: false,
            },
        );
        let url = format!("{}{path_and_query}", self.endpoint);
        let mut request = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url),
        };
        for (name, value) in &headers {
            request = request.header(*name, *value);
        }
        for (name, value) in &signature {
            request = request.header(name.as_str(), value.as_str());
        }
        request.body(body)
    }
}

/// The sum of a metric's samples (every label set) in Prometheus text; `None` when the
/// text has none.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        // `name 12` or `name{label="…"} 12`, not a longer name that starts the same.
        if !rest.starts_with([' ', '{']) {
            continue;
        }
        if let Some(value) = rest
            .rsplit(' ')
            .next()
            .and_then(|value| value.parse::<f64>().ok())
        {
            *total.get_or_insert(0.0) += value;
        }
    }
    total
}
