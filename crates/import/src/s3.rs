//! `s3://bucket/prefix` sources, through `object_store` against any S3-compatible endpoint.
//!
//! The connection is configured only from [`S3Config`] (the CLI fills it from its flags and
//! the `OPENTRAIL_S3_*` environment), never from `AWS_*` variables: those belong to the
//! OpenTrail API credentials of the same command line. Requests are path-style
//! (`endpoint/bucket/key`), which every S3-compatible server accepts, and plain HTTP is
//! allowed for local test servers. Without an access key, requests are sent unsigned
//! (public buckets).

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;

use crate::error::ImportError;
use crate::source::s3_url;

/// How to reach the S3-compatible service.
#[derive(Debug, Clone, Default)]
pub struct S3Config {
    /// `http(s)://host:port`; `None` means AWS's own endpoint for `region`.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

/// The region assumed when none is configured. S3-compatible servers mostly ignore it,
/// but SigV4 needs one.
pub const DEFAULT_S3_REGION: &str = "us-east-1";

/// Opens a client for one bucket.
pub(crate) fn open_bucket(
    config: &S3Config,
    bucket: &str,
) -> Result<Arc<dyn ObjectStore>, ImportError> {
    let region = if config.region.is_empty() {
        DEFAULT_S3_REGION
    } else {
        &config.region
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(region)
        .with_virtual_hosted_style_request(false)
        .with_allow_http(true);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    match (&config.access_key_id, &config.secret_access_key) {
        (Some(access_key_id), Some(secret_access_key)) => {
            builder = builder
                .with_access_key_id(access_key_id)
                .with_secret_access_key(secret_access_key);
        }
        (None, None) => builder = builder.with_skip_signature(true),
        _ => {
            return Err(ImportError::InvalidSource {
                source_text: s3_url(bucket, ""),
                reason: "the S3 access key id and secret access key must be given together"
                    .to_owned(),
            });
        }
    }
    let store = builder.build().map_err(|source| ImportError::S3Setup {
        url: s3_url(bucket, ""),
        source,
    })?;
    Ok(Arc::new(store))
}
