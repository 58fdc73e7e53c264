//! A consistent copy of a store directory while a server keeps writing to it, without
//! its cooperation (the server holds the directory's lock; the copy does not take it).
//!
//! It works because of what the store already guarantees: segment and dictionary files
//! are written once under their final name and never changed, journals only grow (a torn
//! tail is cut on open), and a file is removed only after what replaces it exists. The
//! copy is ordered so that what it takes first never claims more than what it takes later:
//!
//! 1. the metadata (cursors, retention floor) and the high-water mark of acknowledged
//!    seqs, read before any event file: the copied log holds at least what they name;
//! 2. dictionaries, journals (listed before segments: a journal is removed only after
//!    the segment covering it exists, so one of the two is always listed), then each
//!    segment's Parquet columns before the segment itself;
//! 3. dictionaries again (journals may have named a newer one meanwhile).
//!
//! A file that vanishes while being copied (sealed, merged, expired) restarts the copy. At
//! the end the copy is opened as a store (recovery runs on it, and a log shorter than the
//! copied high-water mark fails the open), so a backup that would not open is never
//! reported as made.

use std::path::{Path, PathBuf};

use crate::error::StoreError;
use crate::journal;
use crate::layout::{
    DICTIONARIES_DIR, FORMAT_FILE_NAME, HIGH_WATER_FILE_NAME, JOURNAL_DIR, SEGMENTS_DIR,
};
use crate::meta::{META_FILE_NAME, Meta};
use crate::options::StoreOptions;
use crate::store::Store;

/// Copy attempts before giving up: each restart means the server sealed or merged
/// exactly while a file was being copied.
const ATTEMPTS: usize = 5;

/// What a backup copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreBackup {
    /// Every event acknowledged before the backup began has a seq at or below this, and
    /// the copy holds it.
    pub acknowledged_through_seq: u64,
    pub last_seq: u64,
    pub bytes: u64,
}

/// Copies the store in `source` into `destination` (created; must not exist or be empty).
/// `cursor_overrides` replaces cursors in the copied metadata: a consumer whose own state
/// was copied *before* the store (the archive) must restart from where that state ends.
pub fn backup_store(
    source: &Path,
    destination: &Path,
    cursor_overrides: &[(String, u64)],
) -> Result<StoreBackup, StoreError> {
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        if destination.exists() {
            std::fs::remove_dir_all(destination)
                .map_err(|error| StoreError::io(destination, error))?;
        }
        match copy_once(source, destination, cursor_overrides) {
            Ok(backup) => return Ok(backup),
            Err(CopyError::Vanished(path)) => {
                last_error = Some(StoreError::io(
                    &path,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "removed while being copied (sealed, merged or expired)",
                    ),
                ))
            }
            Err(CopyError::Store(error)) => return Err(error),
        }
    }
    Err(last_error.unwrap_or_else(|| StoreError::Poisoned("backup did not finish".to_owned())))
}

enum CopyError {
    /// A file listed a moment ago is gone: start again.
    Vanished(PathBuf),
    Store(StoreError),
}

impl From<StoreError> for CopyError {
    fn from(error: StoreError) -> Self {
        CopyError::Store(error)
    }
}

fn copy_once(
    source: &Path,
    destination: &Path,
    cursor_overrides: &[(String, u64)],
) -> Result<StoreBackup, CopyError> {
    let Some(mut meta) = Meta::load(source)? else {
        return Err(StoreError::corrupt(
            "store",
            source.display().to_string(),
            "no meta.json: not a store directory",
        )
        .into());
    };
    let high_water_path = source.join(HIGH_WATER_FILE_NAME);
    let high_water = match std::fs::read(&high_water_path) {
        Ok(bytes) => bytes
            .get(..8)
            .and_then(|bytes| bytes.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
        Err(error) => return Err(StoreError::io(&high_water_path, error).into()),
    };
    for (consumer, seq) in cursor_overrides {
        meta.cursors.insert(consumer.clone(), *seq);
    }

    for dir in [DICTIONARIES_DIR, JOURNAL_DIR, SEGMENTS_DIR] {
        let path = destination.join(dir);
        std::fs::create_dir_all(&path).map_err(|error| StoreError::io(&path, error))?;
    }
    let mut bytes = 0;
    bytes += copy_dictionaries(source, destination)?;
    for (_, path) in journal::list(&source.join(JOURNAL_DIR))? {
        bytes += copy_file(&path, &destination.join(JOURNAL_DIR))?;
    }
    let mut segments = Vec::new();
    let segments_dir = source.join(SEGMENTS_DIR);
    for entry in
        std::fs::read_dir(&segments_dir).map_err(|error| StoreError::io(&segments_dir, error))?
    {
        let path = entry
            .map_err(|error| StoreError::io(&segments_dir, error))?
            .path();
        if crate::segment::parse_file_name(&path).is_some() {
            segments.push(path);
        }
    }
    segments.sort();
    for segment in &segments {
        let columns = crate::columns::path_for_segment(segment);
        if columns.exists() {
            bytes += copy_file(&columns, &destination.join(SEGMENTS_DIR))?;
        }
        bytes += copy_file(segment, &destination.join(SEGMENTS_DIR))?;
    }
    bytes += copy_dictionaries(source, destination)?;
    bytes += copy_file(&source.join(FORMAT_FILE_NAME), destination)?;
    let meta_bytes = serde_json::to_vec_pretty(&meta).map_err(|error| {
        StoreError::corrupt("store metadata", META_FILE_NAME, error.to_string())
    })?;
    crate::files::write_atomically(&destination.join(META_FILE_NAME), &meta_bytes)?;
    crate::files::write_atomically(
        &destination.join(HIGH_WATER_FILE_NAME),
        &high_water.to_be_bytes(),
    )?;

    // The proof: the copy opens as a store (its recovery runs) with every acknowledged
    // event. A listing that missed a segment would show up here as a gap.
    let store = Store::open(destination, StoreOptions::default())?;
    let stats = store.stats()?;
    drop(store);
    if stats.last_seq < high_water {
        return Err(StoreError::corrupt(
            "backup",
            destination.display().to_string(),
            format!(
                "the copy ends at seq {} but seq {high_water} was acknowledged",
                stats.last_seq
            ),
        )
        .into());
    }
    Ok(StoreBackup {
        acknowledged_through_seq: high_water,
        last_seq: stats.last_seq,
        bytes,
    })
}

fn copy_dictionaries(source: &Path, destination: &Path) -> Result<u64, CopyError> {
    let dir = source.join(DICTIONARIES_DIR);
    let mut bytes = 0;
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(0);
    };
    for entry in entries {
        let path = entry.map_err(|error| StoreError::io(&dir, error))?.path();
        let target = destination
            .join(DICTIONARIES_DIR)
            .join(path.file_name().unwrap_or_default());
        if path.is_file() && !target.exists() && !is_temporary(&path) {
            bytes += copy_file(&path, &destination.join(DICTIONARIES_DIR))?;
        }
    }
    Ok(bytes)
}

fn is_temporary(path: &Path) -> bool {
    path.extension().is_some_and(|extension| extension == "tmp")
}

/// Copies a file into `dir` under its own name and fsyncs it.
fn copy_file(path: &Path, dir: &Path) -> Result<u64, CopyError> {
    let target = dir.join(path.file_name().unwrap_or_default());
    match opentrail_durable::copy_durably(path, &target) {
        Ok(bytes) => Ok(bytes),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Err(CopyError::Vanished(path.to_path_buf()))
        }
        Err(error) => Err(StoreError::io(path, error).into()),
    }
}
