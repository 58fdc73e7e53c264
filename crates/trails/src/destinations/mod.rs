//! Where log files and digests go: buckets, through `object_store`.
//!
//! A [`Destination`] is a kind of place buckets live; it opens a bucket as a
//! [`DestinationBucket`], which writes and reads objects. One module per kind:
//!
//! - [`local`]: directories `<buckets_dir>/<bucket>` (by default `DATA_DIR/buckets`),
//!   fsynced, signatures in sidecar files.
//! - [`s3`]: an S3-compatible endpoint, path-style, signatures as object metadata.
//!
//! Adding a kind is a module implementing both traits. Operators choose among the kinds of
//! [`DestinationConfig`]: a kind they can configure also gets a variant there and its arm
//! in [`connect`], the one place a configuration becomes a destination. Code (tests, an
//! embedding program) can hand any `Arc<dyn Destination>` to [`Destinations::new`] or
//! `TrailsOptions::destination` without either.
//!
//! [`Destinations`] opens each bucket once and keeps it; a destination is never asked for
//! the same bucket twice.

pub mod local;
pub mod s3;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use object_store::path::Path as ObjectPath;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};
use opentrail_store::S3Connection;

pub use local::{BUCKETS_DIR_NAME, LocalDirectory, SIGNATURE_SIDECAR_SUFFIX};
pub use s3::S3Endpoint;

/// Where buckets live, as configured. Its `Debug` leaves the secret key out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationConfig {
    /// `<buckets_dir>/<bucket>/<key>`; CreateTrail creates the bucket directory.
    LocalDirectory { buckets_dir: PathBuf },
    /// An S3-compatible service such as `http://127.0.0.1:5055`; without credentials,
    /// requests are sent unsigned.
    S3(S3Connection),
}

impl DestinationConfig {
    /// The default: directories under `<data_dir>/buckets`.
    pub fn local_in_data_dir(data_dir: &Path) -> DestinationConfig {
        DestinationConfig::LocalDirectory {
            buckets_dir: data_dir.join(BUCKETS_DIR_NAME),
        }
    }
}

/// The destination a configuration names.
pub fn connect(config: &DestinationConfig) -> Arc<dyn Destination> {
    match config.clone() {
        DestinationConfig::LocalDirectory { buckets_dir } => {
            Arc::new(LocalDirectory::new(buckets_dir))
        }
        DestinationConfig::S3(connection) => Arc::new(S3Endpoint { connection }),
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DestinationError {
    #[error("bucket {bucket} does not exist")]
    BucketDoesNotExist { bucket: String },
    #[error("cannot set up bucket {bucket}: {reason}")]
    Setup { bucket: String, reason: String },
    #[error("cannot write s3://{bucket}/{key}: {source}")]
    Put {
        bucket: String,
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("cannot read s3://{bucket}/{key}: {source}")]
    Get {
        bucket: String,
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("cannot list bucket {bucket}: {source}")]
    List {
        bucket: String,
        #[source]
        source: object_store::Error,
    },
    #[error("cannot sync {path}: {source}")]
    Sync {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the bucket operations return.
pub type DestinationFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, DestinationError>> + Send + 'a>>;

/// A kind of place buckets live.
pub trait Destination: Send + Sync + fmt::Debug {
    /// Opens bucket `name` (the local kind creates its directory). A failure is retried
    /// by the caller like a failed write, so a destination that is not reachable yet
    /// only delays delivery.
    fn open_bucket(&self, name: &str) -> Result<Arc<dyn DestinationBucket>, DestinationError>;
}

/// One opened bucket.
///
/// The provided methods suit stores that keep object attributes (S3 and most object
/// stores): log files carry their content type, digests their signature as the user
/// metadata `signature` and `signature-algorithm`. A store without attributes overrides
/// them (see [`local`]).
pub trait DestinationBucket: Send + Sync + fmt::Debug {
    fn name(&self) -> &str;

    /// The object store rooted at this bucket (readers such as the validator list and
    /// read through it).
    fn object_store(&self) -> Arc<dyn ObjectStore>;

    /// The bucket's directory when it is one on this machine.
    fn local_root(&self) -> Option<&Path> {
        None
    }

    /// Makes the bucket ready for a trail (CreateTrail, UpdateTrail); a bucket that
    /// cannot exist is [`DestinationError::BucketDoesNotExist`].
    fn prepare(&self) -> DestinationFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Writes (or overwrites) one object durably: once this returns, the object survives
    /// a crash of this process.
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> DestinationFuture<'a, ()> {
        Box::pin(put_object(self, key, bytes, gzip_attributes()))
    }

    /// Writes a digest file with its signature, so that [`DestinationBucket::get_signed`]
    /// returns both; a digest never exists without its signature.
    fn put_signed<'a>(
        &'a self,
        key: &'a str,
        bytes: Vec<u8>,
        signature: &'a str,
        algorithm: &'a str,
    ) -> DestinationFuture<'a, ()> {
        let mut attributes = gzip_attributes();
        attributes.insert(
            Attribute::Metadata("signature".into()),
            signature.to_owned().into(),
        );
        attributes.insert(
            Attribute::Metadata("signature-algorithm".into()),
            algorithm.to_owned().into(),
        );
        Box::pin(put_object(self, key, bytes, attributes))
    }

    /// Reads a digest file and its signature. `Ok(None)` when the object does not exist;
    /// the signature is `None` when it has none.
    fn get_signed<'a>(
        &'a self,
        key: &'a str,
    ) -> DestinationFuture<'a, Option<(Vec<u8>, Option<String>)>> {
        Box::pin(async move {
            let location = ObjectPath::from(key);
            let get_error = |source| DestinationError::Get {
                bucket: self.name().to_owned(),
                key: key.to_owned(),
                source,
            };
            let result = match self.object_store().get(&location).await {
                Ok(result) => result,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(source) => return Err(get_error(source)),
            };
            let signature = result
                .attributes
                .get(&Attribute::Metadata("signature".into()))
                .map(|value| value.to_string());
            let bytes = result.bytes().await.map_err(get_error)?.to_vec();
            Ok(Some((bytes, signature)))
        })
    }
}

/// `Content-Type: application/x-gzip`: every object trails write is gzip.
fn gzip_attributes() -> Attributes {
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, "application/x-gzip".into());
    attributes
}

/// Writes one object with `attributes` through the bucket's object store.
async fn put_object<B: DestinationBucket + ?Sized>(
    bucket: &B,
    key: &str,
    bytes: Vec<u8>,
    attributes: Attributes,
) -> Result<(), DestinationError> {
    let options = PutOptions {
        attributes,
        ..PutOptions::default()
    };
    bucket
        .object_store()
        .put_opts(&ObjectPath::from(key), PutPayload::from(bytes), options)
        .await
        .map_err(|source| DestinationError::Put {
            bucket: bucket.name().to_owned(),
            key: key.to_owned(),
            source,
        })?;
    Ok(())
}

/// The buckets of one destination, each opened once.
#[derive(Debug)]
pub struct Destinations {
    destination: Arc<dyn Destination>,
    opened: Mutex<HashMap<String, Bucket>>,
}

/// One opened bucket, cheap to clone.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub name: String,
    opened: Arc<dyn DestinationBucket>,
}

impl Destinations {
    pub fn new(destination: Arc<dyn Destination>) -> Destinations {
        Destinations {
            destination,
            opened: Mutex::new(HashMap::new()),
        }
    }

    /// The destination a configuration names (see [`connect`]).
    pub fn from_config(config: &DestinationConfig) -> Destinations {
        Destinations::new(connect(config))
    }

    /// The bucket's handle, opening it on first use.
    pub fn bucket(&self, name: &str) -> Result<Bucket, DestinationError> {
        let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = opened.get(name) {
            return Ok(bucket.clone());
        }
        let bucket = Bucket {
            name: name.to_owned(),
            opened: self.destination.open_bucket(name)?,
        };
        opened.insert(name.to_owned(), bucket.clone());
        Ok(bucket)
    }

    /// Makes a bucket ready for a trail (see [`DestinationBucket::prepare`]).
    pub async fn prepare_bucket(&self, name: &str) -> Result<(), DestinationError> {
        self.bucket(name)?.opened.prepare().await
    }
}

impl Bucket {
    /// The object store rooted at this bucket (for readers such as the digest validator).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.opened.object_store()
    }

    /// The bucket's directory when it is local.
    pub fn local_root(&self) -> Option<&Path> {
        self.opened.local_root()
    }

    /// Writes (or overwrites) one object durably.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), DestinationError> {
        self.opened.put(key, bytes).await
    }

    /// Writes a digest file with its signature.
    pub async fn put_signed(
        &self,
        key: &str,
        bytes: Vec<u8>,
        signature: &str,
        algorithm: &str,
    ) -> Result<(), DestinationError> {
        self.opened
            .put_signed(key, bytes, signature, algorithm)
            .await
    }

    /// Reads a digest file and its signature; `Ok(None)` when it does not exist.
    pub async fn get_signed(
        &self,
        key: &str,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, DestinationError> {
        self.opened.get_signed(key).await
    }

    /// Reads one object whole; `Ok(None)` when it does not exist.
    pub async fn get_optional(&self, key: &str) -> Result<Option<Vec<u8>>, DestinationError> {
        get_optional(self.opened.as_ref(), key).await
    }

    /// Reads one object whole.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, DestinationError> {
        get(self.opened.as_ref(), key).await
    }
}

/// Reads one object whole.
async fn get<B: DestinationBucket + ?Sized>(
    bucket: &B,
    key: &str,
) -> Result<Vec<u8>, DestinationError> {
    let get_error = |source| DestinationError::Get {
        bucket: bucket.name().to_owned(),
        key: key.to_owned(),
        source,
    };
    let result = bucket
        .object_store()
        .get(&ObjectPath::from(key))
        .await
        .map_err(get_error)?;
    let bytes = result.bytes().await.map_err(get_error)?;
    Ok(bytes.to_vec())
}

/// Reads one object whole; `Ok(None)` when it does not exist.
async fn get_optional<B: DestinationBucket + ?Sized>(
    bucket: &B,
    key: &str,
) -> Result<Option<Vec<u8>>, DestinationError> {
    match get(bucket, key).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(DestinationError::Get {
            source: object_store::Error::NotFound { .. },
            ..
        }) => Ok(None),
        Err(error) => Err(error),
    }
}
