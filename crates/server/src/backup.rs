//! `opentrail backup` and `opentrail restore`: a consistent copy of a data directory,
//! taken while a server runs on it.
//!
//! The order is what makes the copy consistent (each later part never claims less than an
//! earlier one expects):
//!
//! 1. Everything but the store and the archive (keys, digest keys, trails with their
//!    delivery manifests and digest chains, local trail buckets). A trail's manifest is
//!    copied before the store, so the store's cursors, read later, are at or past it; a
//!    restored trail resumes after the later of the two and never resends a file.
//! 2. The Parquet archive (`opentrail_archive::backup_archive`): its state, then the part
//!    files it counts as done.
//! 3. The store (`opentrail_store::backup_store`), with the archive's cursor set to where
//!    the copied `state.json` ends, so the restored archiver seals exactly what the copy
//!    lacks.
//! 4. `BACKUP.json`, last: a directory without it is not a finished backup.
//!
//! Segments kept in a bucket (`segments_url`) are not copied: the bucket's own versioning
//! or replication is their backup.
//!
//! A backup to `s3://BUCKET/PREFIX` is made in a local staging directory first and then
//! uploaded file by file (streamed, multipart for large files) with `BACKUP.json` last;
//! a restore from S3 refuses a prefix without `BACKUP.json`, downloads, and restores.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::app::ARCHIVE_DIR_NAME;

/// Written last into a finished backup.
pub const BACKUP_MANIFEST_NAME: &str = "BACKUP.json";
const STORE_DIR_NAME: &str = "store";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is not empty: a backup or restore writes into a new directory")]
    NotEmpty(PathBuf),
    #[error("{0} holds no finished backup ({BACKUP_MANIFEST_NAME} is missing)")]
    NotABackup(PathBuf),
    #[error("{0} holds no OpenTrail data directory (no store)")]
    NotADataDir(PathBuf),
    #[error(transparent)]
    Archive(#[from] opentrail_archive::ArchiveError),
    #[error(transparent)]
    Store(#[from] opentrail_store::StoreError),
    #[error("{url}: {detail}")]
    S3 { url: String, detail: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a finished backup holds; also its `BACKUP.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupManifest {
    pub format: u32,
    pub created_at: String,
    /// Every event acknowledged before the backup began has a seq at or below this.
    pub acknowledged_through_seq: u64,
    pub last_seq: u64,
    pub archived_through_seq: Option<u64>,
}

/// Copies the data directory `data_dir` into `destination` (new or empty).
pub fn backup(data_dir: &Path, destination: &Path) -> Result<BackupManifest, BackupError> {
    let store_dir = data_dir.join(STORE_DIR_NAME);
    if !store_dir.join("meta.json").exists() {
        return Err(BackupError::NotADataDir(data_dir.to_path_buf()));
    }
    prepare_empty_dir(destination)?;
    let created_at = jiff::Timestamp::now().to_string();

    copy_tree(data_dir, destination, &|relative| {
        !relative.starts_with(STORE_DIR_NAME) && !relative.starts_with(ARCHIVE_DIR_NAME)
    })?;
    let archived_through_seq = opentrail_archive::backup_archive(
        &data_dir.join(ARCHIVE_DIR_NAME),
        &destination.join(ARCHIVE_DIR_NAME),
    )?;
    let overrides: Vec<(String, u64)> = archived_through_seq
        .map(|seq| (opentrail_archive::ARCHIVE_CONSUMER.to_owned(), seq))
        .into_iter()
        .collect();
    let store =
        opentrail_store::backup_store(&store_dir, &destination.join(STORE_DIR_NAME), &overrides)?;
    let manifest = BackupManifest {
        format: 1,
        created_at,
        acknowledged_through_seq: store.acknowledged_through_seq,
        last_seq: store.last_seq,
        archived_through_seq,
    };
    write_manifest(destination, &manifest)?;
    Ok(manifest)
}

/// Copies a finished backup into `data_dir` (new or empty); `opentrail serve` then opens
/// it as it would after a crash.
pub fn restore(backup: &Path, data_dir: &Path) -> Result<BackupManifest, BackupError> {
    let manifest_path = backup.join(BACKUP_MANIFEST_NAME);
    let manifest: BackupManifest = match std::fs::read(&manifest_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| BackupError::Io {
            path: manifest_path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, error),
        })?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::NotABackup(backup.to_path_buf()));
        }
        Err(error) => return Err(io(&manifest_path)(error)),
    };
    prepare_empty_dir(data_dir)?;
    copy_tree(backup, data_dir, &|relative| {
        relative != Path::new(BACKUP_MANIFEST_NAME)
    })?;
    Ok(manifest)
}

fn prepare_empty_dir(dir: &Path) -> Result<(), BackupError> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io(dir))?;
        if entries.next().is_some() {
            return Err(BackupError::NotEmpty(dir.to_path_buf()));
        }
    }
    // The copy holds the master key and access keys: only its owner may read it.
    opentrail_durable::create_private_directory(dir).map_err(io(dir))
}

fn write_manifest(destination: &Path, manifest: &BackupManifest) -> Result<(), BackupError> {
    let path = destination.join(BACKUP_MANIFEST_NAME);
    let bytes = serde_json::to_vec_pretty(manifest).map_err(|error| BackupError::Io {
        path: path.clone(),
        source: std::io::Error::other(error),
    })?;
    opentrail_durable::write_private_atomically(&path, &bytes).map_err(io(&path))
}

/// Copies every regular file under `source` whose path (relative to it) `include` accepts,
/// skipping lock and temporary files; a file removed meanwhile is skipped.
fn copy_tree(
    source: &Path,
    destination: &Path,
    include: &dyn Fn(&Path) -> bool,
) -> Result<(), BackupError> {
    let mut pending = vec![source.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let path = entry.path();
            let relative = path.strip_prefix(source).unwrap_or(&path).to_path_buf();
            if !include(&relative) {
                continue;
            }
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name == "LOCK" || name.ends_with(".tmp") {
                continue;
            }
            let kind = entry.file_type().map_err(io(&path))?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                match copy_file(&path, &destination.join(&relative)) {
                    Err(BackupError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound => {}
                    other => other?,
                }
            }
        }
    }
    Ok(())
}

fn copy_file(from: &Path, to: &Path) -> Result<(), BackupError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    opentrail_durable::copy_durably(from, to)
        .map(|_| ())
        .map_err(io(from))
}

fn s3_error(url: &str, detail: String) -> BackupError {
    BackupError::S3 {
        url: url.to_owned(),
        detail,
    }
}

/// A parsed `s3://BUCKET[/PREFIX]`.
pub fn parse_s3_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then(|| (bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

fn object_path(prefix: &str, relative: &str) -> object_store::path::Path {
    if prefix.is_empty() {
        object_store::path::Path::from(relative)
    } else {
        object_store::path::Path::from(format!("{prefix}/{relative}"))
    }
}

/// Uploads a finished backup directory under `prefix`, `BACKUP.json` last, so a prefix
/// holding it holds every file. Returns the files uploaded.
pub async fn upload_backup(
    local: &Path,
    bucket: &std::sync::Arc<dyn object_store::ObjectStore>,
    prefix: &str,
    url: &str,
) -> Result<usize, BackupError> {
    let s3_error = |detail: String| s3_error(url, detail);
    let mut files = Vec::new();
    let mut pending = vec![local.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let manifest = local.join(BACKUP_MANIFEST_NAME);
    files.retain(|path| *path != manifest);
    files.sort();
    files.push(manifest);
    for path in &files {
        let relative = path
            .strip_prefix(local)
            .unwrap_or(path)
            .to_string_lossy()
            .replace(std::path::MAIN_SEPARATOR, "/");
        let mut file = tokio::fs::File::open(path).await.map_err(io(path))?;
        let mut writer = object_store::buffered::BufWriter::new(
            std::sync::Arc::clone(bucket),
            object_path(prefix, &relative),
        );
        tokio::io::copy(&mut file, &mut writer)
            .await
            .map_err(|error| s3_error(format!("uploading {relative}: {error}")))?;
        tokio::io::AsyncWriteExt::shutdown(&mut writer)
            .await
            .map_err(|error| s3_error(format!("uploading {relative}: {error}")))?;
    }
    Ok(files.len())
}

/// Downloads the backup under `prefix` into `local` (new or empty); refuses a prefix
/// without `BACKUP.json`.
pub async fn download_backup(
    bucket: &std::sync::Arc<dyn object_store::ObjectStore>,
    prefix: &str,
    local: &Path,
    url: &str,
) -> Result<usize, BackupError> {
    use futures_util::StreamExt as _;
    use object_store::ObjectStoreExt as _;
    let s3_error = |detail: String| s3_error(url, detail);
    match bucket
        .head(&object_path(prefix, BACKUP_MANIFEST_NAME))
        .await
    {
        Ok(_) => {}
        Err(object_store::Error::NotFound { .. }) => {
            return Err(BackupError::NotABackup(PathBuf::from(url)));
        }
        Err(error) => return Err(s3_error(error.to_string())),
    }
    prepare_empty_dir(local)?;
    let listing_prefix = (!prefix.is_empty()).then(|| object_store::path::Path::from(prefix));
    let mut listing = bucket.list(listing_prefix.as_ref());
    let mut count = 0;
    while let Some(object) = listing.next().await {
        let object = object.map_err(|error| s3_error(error.to_string()))?;
        let key = object.location.as_ref();
        let relative = key
            .strip_prefix(prefix)
            .unwrap_or(key)
            .trim_start_matches('/');
        // Keys are ours, but a bucket is shared ground: never write outside `local`.
        if relative.is_empty()
            || relative
                .split('/')
                .any(|part| part == ".." || part.is_empty())
        {
            return Err(s3_error(format!("unexpected key {key}")));
        }
        let target = local.join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut body = bucket
            .get(&object.location)
            .await
            .map_err(|error| s3_error(format!("{key}: {error}")))?
            .into_stream();
        let mut file = tokio::fs::File::create(&target)
            .await
            .map_err(io(&target))?;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|error| s3_error(format!("{key}: {error}")))?;
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                .await
                .map_err(io(&target))?;
        }
        file.sync_all().await.map_err(io(&target))?;
        count += 1;
    }
    Ok(count)
}
