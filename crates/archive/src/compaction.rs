//! Compaction: merging the many small part files of a finished day into few large ones.
//!
//! A quiet server seals every [`ArchiveOptions::seal_age_max`](crate::ArchiveOptions),
//! so a day's partition collects hundreds of small files; over 7 years that would be
//! hundreds of thousands of files for every SQL scan to list and open. Once a day is
//! over, its files are merged.
//!
//! # Why a crash cannot duplicate or lose rows
//!
//! Within one partition, the ranges in part file names never overlap: each seal range
//! is written once per partition. A merge takes a *contiguous run* of a partition's
//! files in seq order and writes one file named after the run's whole range
//! (`part-<first of the first>-<last of the last>.parquet`), durably, before deleting the
//! inputs. Because the run is contiguous, the merged range contains exactly the inputs'
//! ranges and no other file's. So the rule "a file whose range lies inside another
//! file's range in the same partition is superseded" identifies exactly the inputs of a
//! merge whose deletes a crash interrupted; [`remove_superseded_files`] applies it when the
//! archiver opens and before every merge. A crash while writing leaves only a temporary
//! file, removed at open. Seals never write into a merged range: new seals start past the
//! archived seq, and merges only take files at or below it.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::error::ArchiveError;
use crate::files::{self, PartFile, Partition};
use crate::schema;

/// What one compaction pass did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompactReport {
    /// Part files merged away.
    pub files_merged: u64,
    /// Merged files written.
    pub files_written: u64,
    /// Inputs of an interrupted merge found and removed.
    pub superseded_files_removed: u64,
}

/// Deletes every part file whose seq range lies inside another part file's range in the
/// same partition (the inputs of a merge a crash interrupted). Returns how many.
pub fn remove_superseded_files(partition: &Partition) -> Result<u64, ArchiveError> {
    let part_files = files::list_part_files(partition)?;
    let mut removed = 0;
    for part_file in &part_files {
        if files::is_superseded(part_file, &part_files) {
            std::fs::remove_file(&part_file.path)
                .map_err(|error| ArchiveError::io(&part_file.path, error))?;
            removed += 1;
        }
    }
    if removed > 0 {
        files::sync_dir(&partition.dir)?;
        tracing::info!(removed, partition = %partition.dir.display(), "removed inputs of an interrupted merge");
    }
    Ok(removed)
}

/// The runs of a partition's files worth merging: maximal contiguous runs (in seq order)
/// of files under half of `rows_max` rows, cut so no merged file exceeds `rows_max` rows,
/// keeping only runs of two or more. Each file comes with its row count.
pub fn plan_merges(part_files: &[(PartFile, u64)], rows_max: u64) -> Vec<Vec<PartFile>> {
    let small_rows_max = rows_max / 2;
    let mut runs = Vec::new();
    let mut run: Vec<PartFile> = Vec::new();
    let mut run_rows = 0u64;
    for (part_file, rows) in part_files {
        if *rows >= small_rows_max {
            close_run(&mut run, &mut runs);
            run_rows = 0;
            continue;
        }
        if run_rows + rows > rows_max {
            close_run(&mut run, &mut runs);
            run_rows = 0;
        }
        run.push(part_file.clone());
        run_rows += rows;
    }
    close_run(&mut run, &mut runs);
    runs
}

/// Ends the current run: kept when it merges at least two files.
fn close_run(run: &mut Vec<PartFile>, runs: &mut Vec<Vec<PartFile>>) {
    if run.len() >= 2 {
        runs.push(std::mem::take(run));
    } else {
        run.clear();
    }
}

/// Writes one file holding every row of `run` (in order) and returns its path. The inputs
/// are left in place; the caller deletes them once this returns.
pub fn write_merged_file(
    partition: &Partition,
    run: &[PartFile],
    properties_for: impl FnOnce(Vec<KeyValue>) -> Result<WriterProperties, ArchiveError>,
) -> Result<PathBuf, ArchiveError> {
    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return Err(ArchiveError::Inconsistent {
            path: partition.dir.clone(),
            detail: "an empty merge was planned".to_owned(),
        });
    };
    let (first_seq, last_seq) = (first.first_seq, last.last_seq);
    let mut ingest_time_min_ms = i64::MAX;
    let mut ingest_time_max_ms = i64::MIN;
    for part_file in run {
        let summary = files::read_part_file_summary(&part_file.path)?;
        ingest_time_min_ms = ingest_time_min_ms.min(summary.ingest_time_min_ms);
        ingest_time_max_ms = ingest_time_max_ms.max(summary.ingest_time_max_ms);
    }
    let properties = properties_for(schema::seal_metadata(
        first_seq,
        last_seq,
        ingest_time_min_ms,
        ingest_time_max_ms,
    ))?;
    let path = partition
        .dir
        .join(files::part_file_name(first_seq, last_seq));
    files::write_file_durably(&path, |file| {
        let mut writer = ArrowWriter::try_new(file, schema::arrow_schema(), Some(properties))
            .map_err(|error| ArchiveError::parquet(&path, error))?;
        for part_file in run {
            copy_rows(&part_file.path, &mut writer)?;
        }
        writer
            .into_inner()
            .map_err(|error| ArchiveError::parquet(&path, error))
    })?;
    Ok(path)
}

/// Streams every row of `input` into `writer`, one record batch at a time.
fn copy_rows(input: &Path, writer: &mut ArrowWriter<File>) -> Result<(), ArchiveError> {
    let file = File::open(input).map_err(|error| ArchiveError::io(input, error))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|builder| builder.with_batch_size(4096).build())
        .map_err(|error| ArchiveError::parquet(input, error))?;
    let expected_schema = schema::arrow_schema();
    for batch in reader {
        let batch = batch.map_err(|error| ArchiveError::arrow(input, error))?;
        // Merging files of another schema version would silently mix layouts.
        if batch.schema().fields() != expected_schema.fields() {
            return Err(ArchiveError::UnreadableFile {
                path: input.to_path_buf(),
                detail: "its schema differs from this version's; not merged".to_owned(),
            });
        }
        let batch = batch
            .with_schema(expected_schema.clone())
            .map_err(|error| ArchiveError::arrow(input, error))?;
        writer
            .write(&batch)
            .map_err(|error| ArchiveError::parquet(input, error))?;
    }
    Ok(())
}
