//! Every event of the real CloudTrail corpus is archived exactly once and comes back as
//! the same JSON object.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use opentrail_archive::{ArchiveOptions, list_all_part_files, read_part_file};
use opentrail_event::{EventRecord, IngestContext, parse_batch};

use crate::support::*;

const CORPUS_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/cloudtrail"
);

fn corpus_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("corpus dir {}: {error}", dir.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .to_owned();
        if path.is_dir() {
            corpus_files(&path, out);
        } else if name.ends_with(".json")
            || name.ends_with(".json.gz")
            || name.ends_with(".json.cloudtrail")
        {
            out.push(path);
        }
    }
}

#[test]
fn every_corpus_event_is_archived_once_and_reads_back_unchanged() {
    let mut files = Vec::new();
    corpus_files(Path::new(CORPUS_DIR), &mut files);
    assert!(files.len() > 4_000, "corpus found at {CORPUS_DIR}");
    let context = IngestContext {
        account_id: "000000000000".into(),
        region: "us-east-1".into(),
    };
    let mut all_records: Vec<EventRecord> = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).expect("read corpus file");
        let batch = parse_batch(&bytes, &context)
            .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        assert!(
            batch.failures.is_empty(),
            "{}: {:?}",
            file.display(),
            batch.failures
        );
        all_records.extend(batch.records.into_iter().map(|(_, record)| record));
    }

    assert!(
        all_records.len() > 33_000,
        "parsed {} events",
        all_records.len()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    let mut stored = 0;
    for chunk in all_records.chunks(1_000) {
        stored += append(&store, chunk.to_vec());
    }
    // The corpus repeats some (recipientAccountId, eventID) pairs across files; the store
    // keeps one of each, and the archive must hold exactly what the store holds.
    drop(all_records);
    let last_seq = store.stats().expect("stats").last_seq;
    assert_eq!(u64::try_from(stored).expect("count"), last_seq);

    let archive_dir = dir.path().join("archive");
    // Small seals, so the corpus crosses many seal boundaries.
    let options = ArchiveOptions {
        seal_events_max: 5_000,
        ..eager_options()
    };
    let archiver = open_archiver(&store, &archive_dir, options);
    let started = std::time::Instant::now();
    let seals = archiver.catch_up().expect("archive the corpus");
    let archive_elapsed = started.elapsed();
    assert!(seals >= 5, "{seals} seals");
    assert_eq!(archiver.archived_through_seq(), last_seq);
    // Merging the small files of finished days must lose and duplicate nothing either:
    // everything below is checked on the merged files.
    let compacted = archiver.compact().expect("compact the corpus archive");
    assert!(compacted.files_written > 0, "{compacted:?}");

    // The log, by seq, to compare against.
    let mut expected: BTreeMap<u64, (i64, serde_json::Value)> = BTreeMap::new();
    let mut raw_json_bytes = 0usize;
    let mut after = 0;
    loop {
        let entries = store.read_log(after, 4096).expect("read log");
        let Some(last) = entries.last() else { break };
        after = last.seq;
        for entry in entries {
            raw_json_bytes += entry.json.len();
            let value = serde_json::from_str(&entry.json).expect("stored JSON parses");
            expected.insert(entry.seq, (entry.ingest_time_ms, value));
        }
    }

    let part_files = list_all_part_files(&archive_dir).expect("files");
    let mut archived_rows = 0usize;
    let mut parquet_bytes = 0u64;
    for part_file in &part_files {
        parquet_bytes += std::fs::metadata(&part_file.path).expect("metadata").len();
        for record in read_part_file(&part_file.path).expect("read part file") {
            archived_rows += 1;
            let (ingest_time_ms, value) = expected
                .remove(&record.seq)
                .unwrap_or_else(|| panic!("seq {} archived twice or never stored", record.seq));
            assert_eq!(record.ingest_time_ms, ingest_time_ms);
            assert_eq!(
                serde_json::Value::Object(record.record),
                value,
                "seq {}",
                record.seq
            );
            let event_time = value["eventTime"].as_str().expect("eventTime");
            let timestamp: jiff::Timestamp = event_time.parse().expect("RFC 3339");
            assert_eq!(
                timestamp.strftime("%Y-%m-%d").to_string(),
                part_file.event_date,
                "seq {}",
                record.seq
            );
        }
    }
    assert!(
        expected.is_empty(),
        "{} stored events were not archived",
        expected.len()
    );
    assert_eq!(archived_rows, stored, "one row per stored event");
    eprintln!(
        "corpus: {stored} events, {seals} seals in {archive_elapsed:?}, {} files in {} partitions, \
         {raw_json_bytes} JSON bytes -> {parquet_bytes} Parquet bytes ({:.1}x)",
        part_files.len(),
        opentrail_archive::list_partitions(&archive_dir)
            .expect("partitions")
            .len(),
        raw_json_bytes as f64 / parquet_bytes as f64
    );
}
