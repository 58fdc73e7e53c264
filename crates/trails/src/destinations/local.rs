//! Local directories: bucket `b` is `<buckets_dir>/b`, by default `DATA_DIR/buckets/b`.
//!
//! `LocalFileSystem` writes to a temporary file and renames it into place; this module
//! then fsyncs the file and its directory, so a delivered file survives a power loss
//! before the delivery cursor moves past it. The store refuses object attributes, so a
//! digest's signature goes to a sidecar `<key>.signature.json`, written before the digest
//! so a digest never exists without its signature.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::{Destination, DestinationBucket, DestinationError, DestinationFuture};

/// Local trail buckets live here, under the data directory.
pub const BUCKETS_DIR_NAME: &str = "buckets";
/// Suffix of a digest's signature sidecar.
pub const SIGNATURE_SIDECAR_SUFFIX: &str = ".signature.json";

/// Buckets as directories under one directory.
#[derive(Debug, Clone)]
pub struct LocalDirectory {
    buckets_dir: PathBuf,
}

impl LocalDirectory {
    pub fn new(buckets_dir: PathBuf) -> LocalDirectory {
        LocalDirectory { buckets_dir }
    }
}

impl Destination for LocalDirectory {
    /// Creates the bucket directory when it is missing.
    fn open_bucket(&self, name: &str) -> Result<Arc<dyn DestinationBucket>, DestinationError> {
        let setup_error = |reason: String| DestinationError::Setup {
            bucket: name.to_owned(),
            reason,
        };
        let root = self.buckets_dir.join(name);
        std::fs::create_dir_all(&root)
            .map_err(|error| setup_error(format!("{}: {error}", root.display())))?;
        let store = LocalFileSystem::new_with_prefix(&root)
            .map_err(|error| setup_error(error.to_string()))?;
        Ok(Arc::new(LocalBucket {
            name: name.to_owned(),
            store: Arc::new(store),
            root,
        }))
    }
}

#[derive(Debug)]
struct LocalBucket {
    name: String,
    store: Arc<dyn ObjectStore>,
    root: PathBuf,
}

impl LocalBucket {
    /// Writes one object without attributes, then fsyncs it and its directory.
    async fn put_durably(&self, key: &str, bytes: Vec<u8>) -> Result<(), DestinationError> {
        self.store
            .put(&ObjectPath::from(key), PutPayload::from(bytes))
            .await
            .map_err(|source| DestinationError::Put {
                bucket: self.name.clone(),
                key: key.to_owned(),
                source,
            })?;
        let path = self.root.join(key);
        tokio::task::spawn_blocking(move || {
            opentrail_durable::sync_file_and_parent(&path)
                .map_err(|source| DestinationError::Sync { path, source })
        })
        .await
        .map_err(|error| DestinationError::Sync {
            path: self.root.join(key),
            source: std::io::Error::other(error.to_string()),
        })?
    }
}

impl DestinationBucket for LocalBucket {
    fn name(&self) -> &str {
        &self.name
    }

    fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> DestinationFuture<'a, ()> {
        Box::pin(self.put_durably(key, bytes))
    }

    fn put_signed<'a>(
        &'a self,
        key: &'a str,
        bytes: Vec<u8>,
        signature: &'a str,
        algorithm: &'a str,
    ) -> DestinationFuture<'a, ()> {
        Box::pin(async move {
            let sidecar = serde_json::json!({
                "signature": signature,
                "signatureAlgorithm": algorithm,
            })
            .to_string();
            let sidecar_key = format!("{key}{SIGNATURE_SIDECAR_SUFFIX}");
            self.put_durably(&sidecar_key, sidecar.into_bytes()).await?;
            self.put_durably(key, bytes).await
        })
    }

    fn get_signed<'a>(
        &'a self,
        key: &'a str,
    ) -> DestinationFuture<'a, Option<(Vec<u8>, Option<String>)>> {
        Box::pin(async move {
            let Some(bytes) = super::get_optional(self, key).await? else {
                return Ok(None);
            };
            let sidecar_key = format!("{key}{SIGNATURE_SIDECAR_SUFFIX}");
            let signature = match super::get_optional(self, &sidecar_key).await? {
                Some(sidecar) => serde_json::from_slice::<serde_json::Value>(&sidecar)
                    .ok()
                    .and_then(|value| value.get("signature")?.as_str().map(str::to_owned)),
                None => None,
            };
            Ok(Some((bytes, signature)))
        })
    }
}
