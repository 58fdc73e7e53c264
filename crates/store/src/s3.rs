//! How OpenTrail reaches an S3-compatible service, for the segments' home, `import` from
//! `s3://` and trail destinations alike: one connection type and one client setup.
//!
//! Requests are path-style (`endpoint/bucket/key`), which every S3-compatible server
//! accepts; plain HTTP is allowed when the endpoint says `http://` (local test servers).
//! Credentials are static or absent, never looked up elsewhere: without them requests go
//! unsigned (public buckets), because object_store would otherwise try instance
//! metadata, which a self-hosted server never has.

use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

/// The region assumed when none is configured: S3-compatible servers mostly ignore it,
/// but request signing needs one.
pub const DEFAULT_S3_REGION: &str = "us-east-1";

/// How to reach an S3-compatible service.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Connection {
    /// `http(s)://host:port`; `None` means AWS's own endpoint for `region`.
    pub endpoint: Option<String>,
    /// Empty: [`DEFAULT_S3_REGION`].
    pub region: String,
    /// Both or neither; without them requests are unsigned.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Connection {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("S3Connection")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "…"),
            )
            .finish()
    }
}

/// How long one request may take and how often object_store retries it before the
/// caller's own retry (the sealer's next pass, a delivery's backoff) takes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S3RequestLimits {
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub retries_max: usize,
    pub retry_timeout: Duration,
}

impl Default for S3RequestLimits {
    fn default() -> Self {
        S3RequestLimits {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retries_max: 3,
            retry_timeout: Duration::from_secs(30),
        }
    }
}

/// A connection that cannot be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum S3ConnectionError {
    #[error("the S3 access key id and secret access key must be given together")]
    UnpairedCredentials,
}

impl S3Connection {
    pub fn region_or_default(&self) -> &str {
        if self.region.is_empty() {
            DEFAULT_S3_REGION
        } else {
            &self.region
        }
    }

    /// A client builder for `bucket`, with this connection's endpoint, region and
    /// credentials, path-style requests and `limits`; the caller builds it.
    pub fn bucket_builder(
        &self,
        bucket: &str,
        limits: S3RequestLimits,
    ) -> Result<AmazonS3Builder, S3ConnectionError> {
        let client_options = ClientOptions::new()
            .with_allow_http(
                self.endpoint
                    .as_deref()
                    .is_some_and(|endpoint| endpoint.starts_with("http://")),
            )
            .with_timeout(limits.request_timeout)
            .with_connect_timeout(limits.connect_timeout);
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(self.region_or_default())
            .with_virtual_hosted_style_request(false)
            .with_client_options(client_options)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: limits.retries_max,
                retry_timeout: limits.retry_timeout,
            });
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(builder
                .with_access_key_id(access_key_id)
                .with_secret_access_key(secret_access_key)),
            (None, None) => Ok(builder.with_skip_signature(true)),
            _ => Err(S3ConnectionError::UnpairedCredentials),
        }
    }
}
