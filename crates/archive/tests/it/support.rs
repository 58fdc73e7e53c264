use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use arrow_array::RecordBatch;
use opentrail_archive::{ArchiveOptions, Archiver, list_all_part_files};
use opentrail_event::{EventRecord, IngestContext, parse_batch};
use opentrail_store::{AppendOutcome, Store, StoreOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

pub const ACCOUNT: &str = "111122223333";
pub const REGION: &str = "us-east-1";

pub fn context() -> IngestContext {
    IngestContext {
        account_id: ACCOUNT.into(),
        region: REGION.into(),
    }
}

/// Parses records that the test knows are valid.
pub fn records(json: &str) -> Vec<EventRecord> {
    let batch = parse_batch(json.as_bytes(), &context()).expect("test batch parses");
    assert!(
        batch.failures.is_empty(),
        "test records are valid: {:?}",
        batch.failures
    );
    batch
        .records
        .into_iter()
        .map(|(_, record)| record)
        .collect()
}

/// A minimal valid record.
pub fn event(event_id: &str, event_name: &str, event_time: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventID":"{event_id}","eventName":"{event_name}","eventSource":"dynamodb.amazonaws.com","eventTime":"{event_time}","awsRegion":"{REGION}","recipientAccountId":"{ACCOUNT}","readOnly":false,"userIdentity":{{"type":"IAMUser","userName":"alice","arn":"arn:aws:iam::{ACCOUNT}:user/alice","accessKeyId":"AKIAALICE"}}}}"#
    )
}

pub fn open_store(dir: &Path) -> Store {
    Store::open(dir, StoreOptions::default()).expect("store opens")
}

/// Appends records and returns how many were stored (not duplicates).
pub fn append(store: &Store, records: Vec<EventRecord>) -> usize {
    let outcomes = store.append(records).expect("append");
    outcomes
        .iter()
        .filter(|outcome| matches!(outcome, AppendOutcome::Stored { .. }))
        .count()
}

/// Seals whatever waits, at once.
pub fn eager_options() -> ArchiveOptions {
    ArchiveOptions {
        seal_events_min: 1,
        seal_age_max: Duration::ZERO,
        ..ArchiveOptions::default()
    }
}

pub fn open_archiver(store: &Store, dir: &Path, options: ArchiveOptions) -> Archiver {
    Archiver::open(store.clone(), dir, options).expect("archiver opens")
}

pub fn read_batches(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).expect("open part file");
    ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet footer")
        .build()
        .expect("reader")
        .collect::<Result<Vec<_>, _>>()
        .expect("batches")
}

/// Every archived seq with its partition date, in file order; duplicates kept.
pub fn archived_seqs(archive_dir: &Path) -> Vec<(String, u64)> {
    let mut seqs = Vec::new();
    for file in list_all_part_files(archive_dir).expect("list files") {
        for batch in read_batches(&file.path) {
            let column = batch.column_by_name("seq").expect("seq column");
            let values = column
                .as_any()
                .downcast_ref::<arrow_array::UInt64Array>()
                .expect("UInt64");
            seqs.extend(
                values
                    .values()
                    .iter()
                    .map(|seq| (file.event_date.clone(), *seq)),
            );
        }
    }
    seqs
}

/// Every part file's bytes by path relative to the archive.
pub fn file_bytes(archive_dir: &Path) -> BTreeMap<String, Vec<u8>> {
    list_all_part_files(archive_dir)
        .expect("list files")
        .into_iter()
        .map(|file| {
            let relative = file
                .path
                .strip_prefix(archive_dir)
                .expect("inside archive")
                .display()
                .to_string();
            (relative, std::fs::read(&file.path).expect("read part file"))
        })
        .collect()
}

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}
