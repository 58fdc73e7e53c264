//! The archive's directory layout, durable file replacement, and reading files back.
//!
//! ```text
//! <dir>/event_date=2024-01-01/part-<first_seq:020>-<last_seq:020>.parquet
//! <dir>/event_date=2024-01-01/.part-….parquet.tmp     (only while being written)
//! <dir>/_opentrail/state.json                         (the archiver's progress)
//! <dir>/_opentrail/LOCK                               (one archiver per directory)
//! ```

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampMillisecondType, UInt64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::ParquetMetaDataReader;

use crate::error::ArchiveError;
use crate::schema::{self, reconstruct_record};

/// Where the archiver keeps its own files, beside the partitions. Not a `key=value`
/// directory and holding no `.parquet` file, so table scanners never read it.
pub const CONTROL_DIR_NAME: &str = "_opentrail";
pub const PARTITION_DIR_PREFIX: &str = "event_date=";
const PART_FILE_PREFIX: &str = "part-";
const PARQUET_EXTENSION: &str = ".parquet";
const TEMP_FILE_PREFIX: &str = ".";
const TEMP_FILE_SUFFIX: &str = ".tmp";

/// The partition directory for an event date (`YYYY-MM-DD`).
pub fn partition_dir(archive_dir: &Path, event_date: &str) -> PathBuf {
    archive_dir.join(format!("{PARTITION_DIR_PREFIX}{event_date}"))
}

/// The file name of a sealed seq range: zero-padded so names sort in log order and a
/// rerun of the same seal names the same file.
pub fn part_file_name(first_seq: u64, last_seq: u64) -> String {
    format!("{PART_FILE_PREFIX}{first_seq:020}-{last_seq:020}{PARQUET_EXTENSION}")
}

/// The seal range a part file name encodes, if it is one.
pub fn parse_part_file_name(name: &str) -> Option<(u64, u64)> {
    let range = name
        .strip_prefix(PART_FILE_PREFIX)?
        .strip_suffix(PARQUET_EXTENSION)?;
    let (first, last) = range.split_once('-')?;
    if first.len() != 20 || last.len() != 20 {
        return None;
    }
    Some((first.parse().ok()?, last.parse().ok()?))
}

fn temp_path_for(final_path: &Path) -> PathBuf {
    let name = final_path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    final_path.with_file_name(format!("{TEMP_FILE_PREFIX}{name}{TEMP_FILE_SUFFIX}"))
}

pub fn is_temp_file_name(name: &str) -> bool {
    name.starts_with(TEMP_FILE_PREFIX) && name.ends_with(TEMP_FILE_SUFFIX)
}

/// Writes a file so that `final_path` holds either its old content or all of the new
/// content, durably, whatever happens: write a temporary sibling, fsync it, rename it
/// over the final name, fsync the directory so the rename itself survives a power loss.
pub fn write_file_durably(
    final_path: &Path,
    write: impl FnOnce(File) -> Result<File, ArchiveError>,
) -> Result<(), ArchiveError> {
    let temp_path = temp_path_for(final_path);
    let file = File::create(&temp_path).map_err(|error| ArchiveError::io(&temp_path, error))?;
    let result = write(file).and_then(|file| {
        file.sync_all()
            .map_err(|error| ArchiveError::io(&temp_path, error))
    });
    if let Err(error) = result {
        // Best effort: a leftover temporary file is also removed at the next start.
        let _ = std::fs::remove_file(&temp_path);
        return Err(error);
    }
    std::fs::rename(&temp_path, final_path).map_err(|error| ArchiveError::io(final_path, error))?;
    sync_parent_dir(final_path)
}

/// Writes small bytes durably (see [`write_file_durably`]).
pub fn write_bytes_durably(final_path: &Path, bytes: &[u8]) -> Result<(), ArchiveError> {
    write_file_durably(final_path, |mut file| {
        file.write_all(bytes)
            .map_err(|error| ArchiveError::io(final_path, error))?;
        Ok(file)
    })
}

/// Creates a directory (and parents) and makes its entry durable in its parent.
pub fn create_dir_durably(dir: &Path) -> Result<(), ArchiveError> {
    opentrail_durable::create_directory_durably(dir).map_err(|error| ArchiveError::io(dir, error))
}

pub fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    opentrail_durable::sync_directory(dir).map_err(|error| ArchiveError::io(dir, error))
}

fn sync_parent_dir(path: &Path) -> Result<(), ArchiveError> {
    opentrail_durable::sync_parent(path).map_err(|error| ArchiveError::io(path, error))
}

/// One partition directory of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// `YYYY-MM-DD`.
    pub event_date: String,
    pub dir: PathBuf,
}

/// Every partition directory, oldest event date first.
pub fn list_partitions(archive_dir: &Path) -> Result<Vec<Partition>, ArchiveError> {
    let mut partitions = Vec::new();
    let entries = match std::fs::read_dir(archive_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(partitions),
        Err(error) => return Err(ArchiveError::io(archive_dir, error)),
    };
    for entry in entries {
        let entry = entry.map_err(|error| ArchiveError::io(archive_dir, error))?;
        let name = entry.file_name();
        let Some(event_date) = name
            .to_str()
            .and_then(|name| name.strip_prefix(PARTITION_DIR_PREFIX))
        else {
            continue;
        };
        if entry.file_type().is_ok_and(|file_type| file_type.is_dir()) {
            partitions.push(Partition {
                event_date: event_date.to_owned(),
                dir: entry.path(),
            });
        }
    }
    partitions.sort_by(|left, right| left.event_date.cmp(&right.event_date));
    Ok(partitions)
}

/// One Parquet file of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartFile {
    pub event_date: String,
    pub path: PathBuf,
    /// The seal range the file belongs to (from its name).
    pub first_seq: u64,
    pub last_seq: u64,
}

/// The part files of one partition, in log order.
pub fn list_part_files(partition: &Partition) -> Result<Vec<PartFile>, ArchiveError> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(&partition.dir)
        .map_err(|error| ArchiveError::io(&partition.dir, error))?;
    for entry in entries {
        let entry = entry.map_err(|error| ArchiveError::io(&partition.dir, error))?;
        let name = entry.file_name();
        let Some((first_seq, last_seq)) = name.to_str().and_then(parse_part_file_name) else {
            continue;
        };
        files.push(PartFile {
            event_date: partition.event_date.clone(),
            path: entry.path(),
            first_seq,
            last_seq,
        });
    }
    files.sort_by_key(|file| file.first_seq);
    Ok(files)
}

/// Whether another file of `file`'s partition covers its whole seq range: a merge's
/// output beside the merge's inputs, which the merge then deletes (or, after a crash in
/// between, the archiver's next start). Readers skip such a file, or they would see its
/// rows twice.
pub fn is_superseded(file: &PartFile, files: &[PartFile]) -> bool {
    files.iter().any(|other| {
        other.path != file.path
            && other.event_date == file.event_date
            && other.first_seq <= file.first_seq
            && file.last_seq <= other.last_seq
    })
}

/// Every part file of the archive, by event date, then in log order.
pub fn list_all_part_files(archive_dir: &Path) -> Result<Vec<PartFile>, ArchiveError> {
    let mut files = Vec::new();
    for partition in list_partitions(archive_dir)? {
        files.extend(list_part_files(&partition)?);
    }
    Ok(files)
}

/// Removes temporary files a crash left behind in the partitions and the control dir.
/// Only the archiver (which holds the directory lock) writes there, so at its start every
/// temporary file is dead.
pub fn remove_stale_temp_files(archive_dir: &Path) -> Result<usize, ArchiveError> {
    let mut dirs: Vec<PathBuf> = list_partitions(archive_dir)?
        .into_iter()
        .map(|partition| partition.dir)
        .collect();
    dirs.push(archive_dir.join(CONTROL_DIR_NAME));
    let mut removed = 0;
    for dir in dirs {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(ArchiveError::io(&dir, error)),
        };
        for entry in entries {
            let entry = entry.map_err(|error| ArchiveError::io(&dir, error))?;
            if entry.file_name().to_str().is_some_and(is_temp_file_name) {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(|error| ArchiveError::io(&path, error))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// What a part file's footer says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartFileSummary {
    pub rows: u64,
    pub ingest_time_min_ms: i64,
    pub ingest_time_max_ms: i64,
    pub schema_version: String,
}

/// Reads only a part file's footer.
pub fn read_part_file_summary(path: &Path) -> Result<PartFileSummary, ArchiveError> {
    let file = File::open(path).map_err(|error| ArchiveError::io(path, error))?;
    let metadata = ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .map_err(|error| ArchiveError::parquet(path, error))?;
    let file_metadata = metadata.file_metadata();
    let key_value = |key: &str| -> Option<&str> {
        file_metadata
            .key_value_metadata()?
            .iter()
            .find(|entry| entry.key == key)?
            .value
            .as_deref()
    };
    let unreadable = |key: &str| ArchiveError::UnreadableFile {
        path: path.to_path_buf(),
        detail: format!("footer metadata {key} is missing or not a number"),
    };
    let number = |key: &str| -> Result<i64, ArchiveError> {
        key_value(key)
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| unreadable(key))
    };
    Ok(PartFileSummary {
        rows: u64::try_from(file_metadata.num_rows()).unwrap_or_default(),
        ingest_time_min_ms: number(schema::INGEST_TIME_MIN_KEY)?,
        ingest_time_max_ms: number(schema::INGEST_TIME_MAX_KEY)?,
        schema_version: key_value(schema::SCHEMA_VERSION_KEY)
            .unwrap_or_default()
            .to_owned(),
    })
}

/// One record read back from the archive.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedRecord {
    pub seq: u64,
    pub ingest_time_ms: i64,
    /// The record, equal as a JSON value to the one the log held.
    pub record: serde_json::Map<String, serde_json::Value>,
}

/// Reads every record of one part file back, in log order, rebuilding each record from
/// its columns (see the crate docs, "Lossless").
pub fn read_part_file(path: &Path) -> Result<Vec<ArchivedRecord>, ArchiveError> {
    let file = File::open(path).map_err(|error| ArchiveError::io(path, error))?;
    let mut records = Vec::new();
    read_part_file_in_batches(file, path, 4096, |batch| {
        records.extend(batch);
        Ok::<_, ArchiveError>(true)
    })?;
    Ok(records)
}

/// Reads an open part file's records back in log order, `batch_rows` at a time, handing
/// each batch to `visit` until it answers false (then this answers false too). A reader
/// of many files (SQL) holds one batch, never a whole file; holding the file open keeps a
/// compaction that removes it from pulling it away. `path` names it in errors.
pub fn read_part_file_in_batches<E: From<ArchiveError>>(
    file: File,
    path: &Path,
    batch_rows: usize,
    mut visit: impl FnMut(Vec<ArchivedRecord>) -> Result<bool, E>,
) -> Result<bool, E> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|builder| builder.with_batch_size(batch_rows.max(1)).build())
        .map_err(|error| ArchiveError::parquet(path, error))?;
    let unreadable = |detail: String| ArchiveError::UnreadableFile {
        path: path.to_path_buf(),
        detail,
    };
    for batch in reader {
        let batch = batch.map_err(|error| unreadable(format!("Arrow error: {error}")))?;
        let seqs = batch
            .column_by_name("seq")
            .and_then(|array| array.as_primitive_opt::<UInt64Type>())
            .ok_or_else(|| unreadable("no UInt64 seq column".to_owned()))?;
        let ingest_times = batch
            .column_by_name("ingesttime")
            .and_then(|array| array.as_primitive_opt::<TimestampMillisecondType>())
            .ok_or_else(|| unreadable("no Timestamp(ms) ingesttime column".to_owned()))?;
        let mut records = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let record = reconstruct_record(&batch, row)
                .map_err(|error| unreadable(format!("row {row}: {error}")))?;
            records.push(ArchivedRecord {
                seq: seqs.value(row),
                ingest_time_ms: ingest_times.value(row),
                record,
            });
        }
        if !visit(records)? {
            return Ok(false);
        }
    }
    Ok(true)
}
