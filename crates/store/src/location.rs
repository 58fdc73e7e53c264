//! Where sealed segments live: their home.
//!
//! A sealed segment (`<first>-<last>.seg` and its columns, `<first>-<last>.parquet`) is
//! written once and never changed, so it can live anywhere that stores whole files. Every
//! segment is always written into the local `segments/` folder first (segment.rs and
//! columns.rs rename it into place); the [`SegmentHome`] then makes it durable where it
//! belongs:
//!
//! - [`SegmentsLocation::DataDir`] (the default): `segments/` is the home; nothing to do.
//! - [`SegmentsLocation::S3`]: a bucket and prefix on an S3-compatible store, through
//!   `object_store`. `segments/` is then a cache of the bucket: at open every remote
//!   segment missing locally is downloaded before recovery opens the segments.
//!
//! Crash safety follows the local rules, one level out:
//! - The columns go up before their segment and are removed after it, so a remote `.seg`
//!   always has its `.parquet`; a remote `.parquet` without a `.seg` anywhere is removed.
//! - The sealer removes a journal only after its segment is uploaded, and a merge removes
//!   its inputs only after the merged segment is uploaded; a failed upload keeps what it
//!   would replace and is retried.
//! - At open ([`SegmentHome::reconcile`]), over local and remote segments together:
//!   segments whose seq range lies inside another's (a merge that finished but did not
//!   remove its inputs) and segments wholly below the retention floor are removed
//!   remotely; every other local segment not yet uploaded is uploaded first, and every
//!   remote one missing locally is downloaded (through a temporary name).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::StoreError;
use crate::s3::{DEFAULT_S3_REGION, S3Connection, S3RequestLimits};
use crate::segment;

/// Files up to this size are uploaded in one request; larger ones in parts of this size.
const UPLOAD_PART_BYTES: usize = 16 * 1024 * 1024;
/// One request's limit; a large segment's upload is many parts, each within it.
const S3_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
const S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A failed request is retried a few times; beyond that the caller's own retry takes over
/// (the sealer's next pass), so an unreachable bucket is reported in seconds.
const S3_REQUEST_RETRIES_MAX: usize = 3;
const S3_RETRY_TIMEOUT: Duration = Duration::from_secs(30);

/// Where sealed segments go (`OPENTRAIL_SEGMENTS_URL` in the server).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SegmentsLocation {
    /// `segments/` under the store's directory.
    #[default]
    DataDir,
    /// A bucket and prefix on an S3-compatible store.
    S3(S3Segments),
}

/// A bucket and prefix on an S3-compatible store, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Segments {
    pub bucket: String,
    /// Without leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
    pub connection: S3Connection,
}

impl S3Segments {
    /// Parses `s3://BUCKET[/PREFIX]` (the connection fields are left empty). The error
    /// says what is wrong, for the server to report at startup.
    pub fn parse_url(url: &str) -> Result<S3Segments, String> {
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err("segments go under the data dir (unset) or to s3://BUCKET[/PREFIX]".into());
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|byte| {
                byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || byte == b'.'
            });
        if !bucket_ok {
            return Err(format!(
                "{bucket:?} is not a bucket name (3 to 63 lower-case letters, digits, '-' or '.')"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|part| part.is_empty() && !prefix.is_empty())
            || prefix.contains(char::is_whitespace)
            || prefix.split('/').any(|part| part == "." || part == "..")
        {
            return Err(format!("{prefix:?} is not a usable key prefix"));
        }
        Ok(S3Segments {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            connection: S3Connection {
                region: DEFAULT_S3_REGION.to_owned(),
                ..S3Connection::default()
            },
        })
    }

    /// `s3://bucket/prefix`, for messages.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Where sealed segments are kept durably. Every method is given the local path of a
/// segment file (`segments/<first>-<last>.seg`); the home derives its columns' path.
pub(crate) trait SegmentHome: Send + Sync {
    /// Makes a segment that was just renamed into place locally durable in the home.
    /// Until this returns `Ok`, nothing the segment replaces may be removed.
    fn publish(&self, segment_path: &Path) -> Result<(), StoreError>;

    /// Removes a segment (removed locally already) from the home.
    fn remove(&self, segment_path: &Path) -> Result<(), StoreError>;

    /// At open, before recovery reads `segments_dir`: brings the home and the local
    /// folder into agreement (see the module docs). Segments wholly at or below
    /// `expired_through_seq` are no longer needed.
    fn reconcile(&self, segments_dir: &Path, expired_through_seq: u64) -> Result<(), StoreError>;
}

/// Opens the home `location` names.
pub(crate) fn open(location: &SegmentsLocation) -> Result<Box<dyn SegmentHome>, StoreError> {
    Ok(match location {
        SegmentsLocation::DataDir => Box::new(LocalHome),
        SegmentsLocation::S3(settings) => Box::new(ObjectStoreHome::open_s3(settings)?),
    })
}

/// `segments/` itself is the home.
pub(crate) struct LocalHome;

impl SegmentHome for LocalHome {
    fn publish(&self, _segment_path: &Path) -> Result<(), StoreError> {
        Ok(())
    }

    fn remove(&self, _segment_path: &Path) -> Result<(), StoreError> {
        Ok(())
    }

    fn reconcile(&self, _segments_dir: &Path, _expired: u64) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Segments in an `object_store` (a bucket and prefix), with `segments/` as the local
/// cache. The store is synchronous: requests run on this home's own small runtime, and
/// the calling thread waits for them, whatever thread (or runtime) it is.
pub(crate) struct ObjectStoreHome {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// For messages: `s3://bucket/prefix`.
    url: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for ObjectStoreHome {
    fn drop(&mut self) {
        // Never blocks, so dropping the store inside an async context is fine.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Which parts of one segment a listing found.
#[derive(Debug, Default, Clone, Copy)]
struct Found {
    segment: bool,
    columns: bool,
}

impl ObjectStoreHome {
    fn open_s3(settings: &S3Segments) -> Result<ObjectStoreHome, StoreError> {
        let url = settings.url();
        let setup = |detail: String| StoreError::SegmentHome {
            url: url.clone(),
            action: "setting up",
            key: String::new(),
            detail,
        };
        let limits = S3RequestLimits {
            request_timeout: S3_REQUEST_TIMEOUT,
            connect_timeout: S3_CONNECT_TIMEOUT,
            retries_max: S3_REQUEST_RETRIES_MAX,
            retry_timeout: S3_RETRY_TIMEOUT,
        };
        let builder = settings
            .connection
            .bucket_builder(&settings.bucket, limits)
            .map_err(|error| setup(error.to_string()))?;
        let store = builder.build().map_err(|error| setup(error.to_string()))?;
        ObjectStoreHome::new(Arc::new(store), &settings.prefix, url)
    }

    pub(crate) fn new(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        url: String,
    ) -> Result<ObjectStoreHome, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("store-segments")
            .enable_all()
            .build()
            .map_err(|error| StoreError::io(Path::new("<segment upload runtime>"), error))?;
        Ok(ObjectStoreHome {
            store,
            prefix: prefix.trim_matches('/').to_owned(),
            url,
            runtime: Some(runtime),
        })
    }

    /// Runs `future` on this home's runtime and waits for it. Works from any thread,
    /// including a runtime's own (where `block_on` would panic).
    fn run<T: Send + 'static>(
        &self,
        future: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let stopped = || StoreError::SegmentHome {
            url: self.url.clone(),
            action: "running",
            key: String::new(),
            detail: "the segment transfer runtime stopped".into(),
        };
        let runtime = self.runtime.as_ref().ok_or_else(stopped)?;
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = sender.send(future.await);
        });
        receiver.recv().map_err(|_| stopped())
    }

    fn key(&self, file_name: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(file_name)
        } else {
            ObjectPath::from(format!("{}/{file_name}", self.prefix))
        }
    }

    fn error(&self, action: &'static str, key: &ObjectPath, detail: impl ToString) -> StoreError {
        StoreError::SegmentHome {
            url: self.url.clone(),
            action,
            key: key.to_string(),
            detail: detail.to_string(),
        }
    }

    /// Uploads one local file under `key`: in one request when small, else in parts.
    fn upload(&self, local: &Path, key: &ObjectPath) -> Result<(), StoreError> {
        let mut file = std::fs::File::open(local).map_err(|error| StoreError::io(local, error))?;
        let len = file
            .metadata()
            .map_err(|error| StoreError::io(local, error))?
            .len();
        let store = self.store.clone();
        let location = key.clone();
        if len <= UPLOAD_PART_BYTES as u64 {
            let mut bytes = Vec::with_capacity(len as usize);
            file.read_to_end(&mut bytes)
                .map_err(|error| StoreError::io(local, error))?;
            return self
                .run(async move { store.put(&location, PutPayload::from(bytes)).await })?
                .map(|_| ())
                .map_err(|error| self.error("uploading", key, error));
        }
        let mut upload = self
            .run(async move { store.put_multipart(&location).await })?
            .map_err(|error| self.error("starting the upload of", key, error))?;
        loop {
            let mut part = Vec::with_capacity(UPLOAD_PART_BYTES);
            (&mut file)
                .take(UPLOAD_PART_BYTES as u64)
                .read_to_end(&mut part)
                .map_err(|error| StoreError::io(local, error))?;
            if part.is_empty() {
                break;
            }
            let sent = upload.put_part(PutPayload::from(part));
            if let Err(error) = self.run(sent)? {
                let _ = self.run(async move { upload.abort().await });
                return Err(self.error("uploading a part of", key, error));
            }
        }
        self.run(async move { upload.complete().await })?
            .map(|_| ())
            .map_err(|error| self.error("completing the upload of", key, error))
    }

    /// Downloads `key` to `local` through a temporary name, fsynced, then renamed.
    fn download(&self, key: &ObjectPath, local: &Path) -> Result<(), StoreError> {
        let temporary = crate::files::temporary_sibling(local);
        let store = self.store.clone();
        let location = key.clone();
        let target = temporary.clone();
        let written = self.run(async move {
            let object = store.get(&location).await.map_err(|e| e.to_string())?;
            let mut stream = object.into_stream();
            let mut file = std::fs::File::create(&target).map_err(|e| e.to_string())?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| e.to_string())?;
                file.write_all(&chunk).map_err(|e| e.to_string())?;
            }
            file.sync_all().map_err(|e| e.to_string())
        })?;
        if let Err(detail) = written {
            let _ = crate::files::remove_if_present(&temporary);
            return Err(self.error("downloading", key, detail));
        }
        std::fs::rename(&temporary, local).map_err(|error| StoreError::io(local, error))?;
        crate::files::sync_parent(local)
    }

    fn delete(&self, key: &ObjectPath) -> Result<(), StoreError> {
        let store = self.store.clone();
        let location = key.clone();
        match self.run(async move { store.delete(&location).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(self.error("removing", key, error)),
        }
    }

    /// The segments under the prefix, by (first, last) seq.
    fn list(&self) -> Result<BTreeMap<(u64, u64), Found>, StoreError> {
        let store = self.store.clone();
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let listed = self.run(async move {
            let mut stream = store.list(prefix.as_ref());
            let mut locations = Vec::new();
            while let Some(meta) = stream.next().await {
                locations.push(meta?.location);
            }
            Ok::<_, object_store::Error>(locations)
        })?;
        let locations = listed.map_err(|error| self.error("listing", &self.key(""), error))?;
        let mut found: BTreeMap<(u64, u64), Found> = BTreeMap::new();
        for location in locations {
            let Some(name) = location.filename() else {
                continue;
            };
            if self.key(name) != location {
                continue; // Deeper than the prefix: not ours.
            }
            let local = Path::new(name);
            if let Some(range) = segment::parse_file_name(local) {
                found.entry(range).or_default().segment = true;
            } else if local
                .extension()
                .is_some_and(|ext| ext == crate::columns::PARQUET_EXTENSION)
                && let Some(range) =
                    segment::parse_file_name(&local.with_extension(segment::SEGMENT_EXTENSION))
            {
                found.entry(range).or_default().columns = true;
            }
        }
        Ok(found)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl SegmentHome for ObjectStoreHome {
    fn publish(&self, segment_path: &Path) -> Result<(), StoreError> {
        // The columns first: a remote segment always has its columns.
        let columns = crate::columns::path_for_segment(segment_path);
        self.upload(&columns, &self.key(&file_name(&columns)))?;
        self.upload(segment_path, &self.key(&file_name(segment_path)))
    }

    fn remove(&self, segment_path: &Path) -> Result<(), StoreError> {
        // The segment first: a remote Parquet file without its segment is removed at open.
        self.delete(&self.key(&file_name(segment_path)))?;
        let columns = crate::columns::path_for_segment(segment_path);
        self.delete(&self.key(&file_name(&columns)))
    }

    fn reconcile(&self, segments_dir: &Path, expired_through_seq: u64) -> Result<(), StoreError> {
        let remote = self.list()?;
        let mut all: BTreeMap<(u64, u64), (bool, Found)> = BTreeMap::new();
        for (range, found) in &remote {
            all.entry(*range).or_default().1 = *found;
        }
        for entry in
            std::fs::read_dir(segments_dir).map_err(|error| StoreError::io(segments_dir, error))?
        {
            let path = entry
                .map_err(|error| StoreError::io(segments_dir, error))?
                .path();
            if let Some(range) = segment::parse_file_name(&path) {
                all.entry(range).or_default().0 = true;
            }
        }
        // The same rule recovery applies locally: sorted by first seq, widest first, a
        // segment inside the previous kept one is what a finished merge replaced.
        let mut order: Vec<(u64, std::cmp::Reverse<u64>)> = all
            .keys()
            .map(|(first, last)| (*first, std::cmp::Reverse(*last)))
            .collect();
        order.sort();
        let mut kept = Vec::new();
        let mut dropped = Vec::new();
        let mut kept_through: Option<u64> = None;
        for (first, std::cmp::Reverse(last)) in order {
            if last <= expired_through_seq || kept_through.is_some_and(|through| last <= through) {
                dropped.push((first, last));
            } else {
                kept.push((first, last));
                kept_through = Some(kept_through.map_or(last, |through| through.max(last)));
            }
        }
        // Everything kept is in both places before anything dropped is removed.
        for range in &kept {
            let (local, found) = all.get(range).copied().unwrap_or_default();
            let path = segments_dir.join(segment::file_name(range.0, range.1));
            if local && !found.segment {
                tracing::info!(segment = %path.display(), home = %self.url, "uploading a segment not yet in its home");
                self.publish(&path)?;
            } else if !local && found.segment {
                let columns = crate::columns::path_for_segment(&path);
                tracing::info!(segment = %path.display(), home = %self.url, "downloading a segment");
                // The columns first, as when a segment is sealed.
                self.download(&self.key(&file_name(&columns)), &columns)?;
                self.download(&self.key(&file_name(&path)), &path)?;
            }
        }
        for range in &dropped {
            let found = remote.get(range).copied().unwrap_or_default();
            if found.segment || found.columns {
                let path = segments_dir.join(segment::file_name(range.0, range.1));
                tracing::info!(segment = %path.display(), home = %self.url, "removing a replaced or expired segment from its home");
                self.remove(&path)?;
            }
        }
        // Columns whose segment is nowhere (an interrupted removal).
        for (range, found) in &remote {
            if found.columns && !found.segment && !all.get(range).is_some_and(|(local, _)| *local) {
                let path = segments_dir.join(segment::file_name(range.0, range.1));
                self.remove(&path)?;
            }
        }
        Ok(())
    }
}
