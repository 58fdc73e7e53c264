//! An S3-compatible endpoint: one `AmazonS3` client per bucket with the configured
//! endpoint, region and static credentials, path-style requests (what S3-compatible
//! servers expect) and plain HTTP allowed for `http://` endpoints. object_store's own
//! retries are kept short: the delivery worker retries with its own backoff, and reports
//! errors in GetTrailStatus meanwhile. Objects keep attributes, so the trait's provided
//! writes and reads apply (signatures as `x-amz-meta-signature`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use super::{Destination, DestinationBucket, DestinationError, DestinationFuture};

/// Time for one S3 request, connection included.
const S3_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// object_store's retries of one request; the delivery loop retries beyond this.
const S3_REQUEST_RETRIES_MAX: usize = 2;
const S3_RETRY_TIMEOUT: Duration = Duration::from_secs(20);

/// An S3-compatible endpoint such as `http://127.0.0.1:5055`.
#[derive(Clone)]
pub struct S3Endpoint {
    pub endpoint: String,
    pub region: String,
    /// Without credentials, requests are sent unsigned.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl fmt::Debug for S3Endpoint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("S3Endpoint")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Destination for S3Endpoint {
    fn open_bucket(&self, name: &str) -> Result<Arc<dyn DestinationBucket>, DestinationError> {
        let client_options = ClientOptions::new()
            .with_allow_http(self.endpoint.starts_with("http://"))
            .with_timeout(S3_REQUEST_TIMEOUT)
            .with_connect_timeout(S3_CONNECT_TIMEOUT);
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: S3_REQUEST_RETRIES_MAX,
            retry_timeout: S3_RETRY_TIMEOUT,
        };
        let mut builder = AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_region(&self.region)
            .with_bucket_name(name)
            .with_virtual_hosted_style_request(false)
            .with_client_options(client_options)
            .with_retry(retry);
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(access_key_id), Some(secret_access_key)) => {
                builder = builder
                    .with_access_key_id(access_key_id)
                    .with_secret_access_key(secret_access_key);
            }
            // Without static credentials object_store would look for instance metadata,
            // which a self-hosted server never has.
            _ => builder = builder.with_skip_signature(true),
        }
        let store = builder.build().map_err(|error| DestinationError::Setup {
            bucket: name.to_owned(),
            reason: error.to_string(),
        })?;
        Ok(Arc::new(S3Bucket {
            name: name.to_owned(),
            store: Arc::new(store),
        }))
    }
}

#[derive(Debug)]
struct S3Bucket {
    name: String,
    store: Arc<dyn ObjectStore>,
}

impl DestinationBucket for S3Bucket {
    fn name(&self) -> &str {
        &self.name
    }

    fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// The bucket must already exist: a listing tells.
    fn prepare(&self) -> DestinationFuture<'_, ()> {
        Box::pin(async move {
            match self.store.list_with_delimiter(None).await {
                Ok(_) => Ok(()),
                Err(error) if is_missing_bucket(&error) => {
                    Err(DestinationError::BucketDoesNotExist {
                        bucket: self.name.clone(),
                    })
                }
                Err(source) => Err(DestinationError::List {
                    bucket: self.name.clone(),
                    source,
                }),
            }
        })
    }
}

/// Whether a listing failed because the bucket does not exist. object_store reports a
/// failed list as a generic error, so this reads the S3 answer it carries: the S3 error
/// code `NoSuchBucket`, or a 404 (a bucket listing has no other reason to be not found).
fn is_missing_bucket(error: &object_store::Error) -> bool {
    if matches!(error, object_store::Error::NotFound { .. }) {
        return true;
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.contains("NoSuchBucket") || text.contains("404 Not Found")
}
