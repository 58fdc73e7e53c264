//! Where log files go: buckets of an S3-compatible store, or directories under
//! `DATA_DIR/buckets/<bucket>` by default, both through `object_store`.
//!
//! - **S3**: one `AmazonS3` client per bucket with the configured endpoint, region and
//!   static credentials, path-style requests (what S3-compatible servers expect) and plain
//!   HTTP allowed for `http://` endpoints. object_store's own retries are kept short: the
//!   delivery worker retries with its own backoff, and reports errors in GetTrailStatus
//!   meanwhile.
//! - **Local directory**: `LocalFileSystem` rooted at the bucket directory, which
//!   CreateTrail creates. It writes to a temporary file and renames it into place; this
//!   module then fsyncs the file and its directory, so a delivered file survives a power
//!   loss before the delivery cursor moves past it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutOptions,
    PutPayload, RetryConfig,
};

/// Time for one S3 request, connection included.
const S3_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// object_store's retries of one request; the delivery loop retries beyond this.
const S3_REQUEST_RETRIES_MAX: usize = 2;
const S3_RETRY_TIMEOUT: Duration = Duration::from_secs(20);

/// Where buckets live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationConfig {
    /// `<buckets_dir>/<bucket>/<key>`; CreateTrail creates the bucket directory.
    LocalDirectory { buckets_dir: PathBuf },
    /// An S3-compatible endpoint such as `http://127.0.0.1:5055`.
    S3 {
        endpoint: String,
        region: String,
        /// Without credentials, requests are sent unsigned.
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
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

/// The buckets of one configured destination, each opened once.
#[derive(Debug)]
pub struct Destinations {
    config: DestinationConfig,
    opened: Mutex<HashMap<String, Bucket>>,
}

/// One bucket: an object store rooted at it.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub name: String,
    store: Arc<dyn ObjectStore>,
    /// The bucket's directory, for the local destination.
    local_root: Option<PathBuf>,
}

impl Destinations {
    pub fn new(config: DestinationConfig) -> Destinations {
        Destinations {
            config,
            opened: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &DestinationConfig {
        &self.config
    }

    /// Whether buckets are local directories.
    pub fn is_local(&self) -> bool {
        matches!(self.config, DestinationConfig::LocalDirectory { .. })
    }

    /// The bucket's handle, opening it on first use (for the local destination this
    /// creates the bucket directory when it is missing).
    pub fn bucket(&self, name: &str) -> Result<Bucket, DestinationError> {
        let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = opened.get(name) {
            return Ok(bucket.clone());
        }
        let bucket = self.open_bucket(name)?;
        opened.insert(name.to_owned(), bucket.clone());
        Ok(bucket)
    }

    fn open_bucket(&self, name: &str) -> Result<Bucket, DestinationError> {
        let setup_error = |reason: String| DestinationError::Setup {
            bucket: name.to_owned(),
            reason,
        };
        match &self.config {
            DestinationConfig::LocalDirectory { buckets_dir } => {
                let root = buckets_dir.join(name);
                std::fs::create_dir_all(&root)
                    .map_err(|error| setup_error(format!("{}: {error}", root.display())))?;
                let store = LocalFileSystem::new_with_prefix(&root)
                    .map_err(|error| setup_error(error.to_string()))?;
                Ok(Bucket {
                    name: name.to_owned(),
                    store: Arc::new(store),
                    local_root: Some(root),
                })
            }
            DestinationConfig::S3 {
                endpoint,
                region,
                access_key_id,
                secret_access_key,
            } => {
                let client_options = ClientOptions::new()
                    .with_allow_http(endpoint.starts_with("http://"))
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
                    .with_endpoint(endpoint)
                    .with_region(region)
                    .with_bucket_name(name)
                    .with_virtual_hosted_style_request(false)
                    .with_client_options(client_options)
                    .with_retry(retry);
                match (access_key_id, secret_access_key) {
                    (Some(access_key_id), Some(secret_access_key)) => {
                        builder = builder
                            .with_access_key_id(access_key_id)
                            .with_secret_access_key(secret_access_key);
                    }
                    // Without static credentials object_store would look for instance
                    // metadata, which a self-hosted server never has.
                    _ => builder = builder.with_skip_signature(true),
                }
                let store = builder
                    .build()
                    .map_err(|error| setup_error(error.to_string()))?;
                Ok(Bucket {
                    name: name.to_owned(),
                    store: Arc::new(store),
                    local_root: None,
                })
            }
        }
    }

    /// Makes a bucket ready for a trail: the local destination creates its directory; an
    /// S3 endpoint must already have it ([`DestinationError::BucketDoesNotExist`]).
    pub async fn prepare_bucket(&self, name: &str) -> Result<(), DestinationError> {
        let bucket = self.bucket(name)?;
        if bucket.local_root.is_some() {
            return Ok(());
        }
        match bucket.store.list_with_delimiter(None).await {
            Ok(_) => Ok(()),
            Err(error) if is_missing_bucket(&error) => Err(DestinationError::BucketDoesNotExist {
                bucket: name.to_owned(),
            }),
            Err(source) => Err(DestinationError::List {
                bucket: name.to_owned(),
                source,
            }),
        }
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

impl Bucket {
    /// The object store rooted at this bucket (for readers such as the digest validator).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// The bucket's directory when it is local.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// Writes (or overwrites) one object durably.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), DestinationError> {
        let location = ObjectPath::from(key);
        let mut options = PutOptions::default();
        if self.local_root.is_none() {
            // LocalFileSystem refuses attributes; S3 keeps them as the object's headers.
            let mut attributes = Attributes::new();
            attributes.insert(Attribute::ContentType, "application/x-gzip".into());
            options.attributes = attributes;
        }
        self.store
            .put_opts(&location, PutPayload::from(bytes), options)
            .await
            .map_err(|source| DestinationError::Put {
                bucket: self.name.clone(),
                key: key.to_owned(),
                source,
            })?;
        if let Some(root) = &self.local_root {
            let path = root.join(key);
            tokio::task::spawn_blocking(move || {
                opentrail_durable::sync_file_and_parent(&path)
                    .map_err(|source| DestinationError::Sync { path, source })
            })
            .await
            .map_err(|error| DestinationError::Sync {
                path: root.join(key),
                source: std::io::Error::other(error.to_string()),
            })??;
        }
        Ok(())
    }

    /// Writes a digest file with its signature: as S3 user metadata
    /// (`x-amz-meta-signature`, `x-amz-meta-signature-algorithm`), or in a sidecar
    /// `<key>.signature.json` for a local directory, whose store refuses attributes. The
    /// sidecar is written first, so a digest never exists without its signature.
    pub async fn put_signed(
        &self,
        key: &str,
        bytes: Vec<u8>,
        signature: &str,
        algorithm: &str,
    ) -> Result<(), DestinationError> {
        if self.local_root.is_some() {
            let sidecar = serde_json::json!({
                "signature": signature,
                "signatureAlgorithm": algorithm,
            })
            .to_string();
            let sidecar_key = format!("{key}{}", crate::digest::SIGNATURE_SIDECAR_SUFFIX);
            self.put(&sidecar_key, sidecar.into_bytes()).await?;
            return self.put(key, bytes).await;
        }
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, "application/x-gzip".into());
        attributes.insert(
            Attribute::Metadata("signature".into()),
            signature.to_owned().into(),
        );
        attributes.insert(
            Attribute::Metadata("signature-algorithm".into()),
            algorithm.to_owned().into(),
        );
        let options = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        self.store
            .put_opts(&ObjectPath::from(key), PutPayload::from(bytes), options)
            .await
            .map_err(|source| DestinationError::Put {
                bucket: self.name.clone(),
                key: key.to_owned(),
                source,
            })?;
        Ok(())
    }

    /// Reads a digest file and its signature (metadata or sidecar). `Ok(None)` when the
    /// object does not exist; the signature is `None` when it has none.
    pub async fn get_signed(
        &self,
        key: &str,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, DestinationError> {
        let location = ObjectPath::from(key);
        let get_error = |source| DestinationError::Get {
            bucket: self.name.clone(),
            key: key.to_owned(),
            source,
        };
        let result = match self.store.get(&location).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => return Err(get_error(source)),
        };
        let mut signature = result
            .attributes
            .get(&Attribute::Metadata("signature".into()))
            .map(|value| value.to_string());
        let bytes = result.bytes().await.map_err(get_error)?.to_vec();
        if self.local_root.is_some() {
            let sidecar_key = format!("{key}{}", crate::digest::SIGNATURE_SIDECAR_SUFFIX);
            signature = match self.get_optional(&sidecar_key).await? {
                Some(sidecar) => serde_json::from_slice::<serde_json::Value>(&sidecar)
                    .ok()
                    .and_then(|value| value.get("signature")?.as_str().map(str::to_owned)),
                None => None,
            };
        }
        Ok(Some((bytes, signature)))
    }

    /// Reads one object whole; `Ok(None)` when it does not exist.
    pub async fn get_optional(&self, key: &str) -> Result<Option<Vec<u8>>, DestinationError> {
        match self.get(key).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(DestinationError::Get {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Reads one object whole.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, DestinationError> {
        let location = ObjectPath::from(key);
        let get_error = |source| DestinationError::Get {
            bucket: self.name.clone(),
            key: key.to_owned(),
            source,
        };
        let result = self.store.get(&location).await.map_err(get_error)?;
        let bytes = result.bytes().await.map_err(get_error)?;
        Ok(bytes.to_vec())
    }
}
