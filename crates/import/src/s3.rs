//! `s3://bucket/prefix` sources, through `object_store` against any S3-compatible endpoint.
//!
//! The connection is configured only from [`S3Connection`] (the CLI fills it from its flags and
//! the `OPENTRAIL_S3_*` environment), never from `AWS_*` variables: those belong to the
//! OpenTrail API credentials of the same command line. Requests are path-style
//! (`endpoint/bucket/key`), which every S3-compatible server accepts, and plain HTTP is
//! allowed for local test servers. Without an access key, requests are sent unsigned
//! (public buckets).

use std::sync::Arc;

use object_store::ObjectStore;
use opentrail_store::S3Connection;
use opentrail_store::s3::S3RequestLimits;

use crate::error::ImportError;
use crate::source::s3_url;

/// Opens a client for one bucket.
pub(crate) fn open_bucket(
    config: &S3Connection,
    bucket: &str,
) -> Result<Arc<dyn ObjectStore>, ImportError> {
    let builder = config
        .bucket_builder(bucket, S3RequestLimits::default())
        .map_err(|error| ImportError::InvalidSource {
            source_text: s3_url(bucket, ""),
            reason: error.to_string(),
        })?;
    let store = builder.build().map_err(|source| ImportError::S3Setup {
        url: s3_url(bucket, ""),
        source,
    })?;
    Ok(Arc::new(store))
}
