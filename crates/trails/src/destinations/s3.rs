//! An S3-compatible endpoint: one `AmazonS3` client per bucket with the configured
//! endpoint, region and static credentials, path-style requests (what S3-compatible
//! servers expect) and plain HTTP allowed for `http://` endpoints. object_store's own
//! retries are kept short: the delivery worker retries with its own backoff, and reports
//! errors in GetTrailStatus meanwhile. Objects keep attributes, so the trait's provided
//! writes and reads apply (signatures as `x-amz-meta-signature`).

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use opentrail_store::S3Connection;
use opentrail_store::s3::S3RequestLimits;

use super::{Destination, DestinationBucket, DestinationError, DestinationFuture};

/// Time for one S3 request, connection included.
const S3_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// object_store's retries of one request; the delivery loop retries beyond this.
const S3_REQUEST_RETRIES_MAX: usize = 2;
const S3_RETRY_TIMEOUT: Duration = Duration::from_secs(20);

/// An S3-compatible service such as `http://127.0.0.1:5055`.
#[derive(Debug, Clone)]
pub struct S3Endpoint {
    pub connection: S3Connection,
}

impl Destination for S3Endpoint {
    fn open_bucket(&self, name: &str) -> Result<Arc<dyn DestinationBucket>, DestinationError> {
        let limits = S3RequestLimits {
            request_timeout: S3_REQUEST_TIMEOUT,
            connect_timeout: S3_CONNECT_TIMEOUT,
            retries_max: S3_REQUEST_RETRIES_MAX,
            retry_timeout: S3_RETRY_TIMEOUT,
        };
        let setup = |reason: String| DestinationError::Setup {
            bucket: name.to_owned(),
            reason,
        };
        let builder = self
            .connection
            .bucket_builder(name, limits)
            .map_err(|error| setup(error.to_string()))?;
        let store = builder.build().map_err(|error| setup(error.to_string()))?;
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
