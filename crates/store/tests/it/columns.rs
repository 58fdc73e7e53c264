//! Every sealed segment has a Parquet file beside it with one row per stored event, which
//! any Parquet reader (DuckDB, DataFusion) reads as it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow_array::{Array, StringArray, TimestampMillisecondArray, UInt64Array};
use opentrail_event::FilterField;
use opentrail_store::{LookupQuery, Store, StoreOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::support::{ACCOUNT, REGION, all_ids, event, records};

fn parquet_files(store_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(store_dir.join("segments"))
        .expect("segments dir")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "parquet"))
        .collect();
    files.sort();
    files
}

/// One Parquet row: (seq, eventid, eventtime).
type ColumnRow = (u64, String, i64);

/// A store that seals every 150 events and never merges.
fn open_small_segments(dir: &Path) -> Store {
    Store::open(
        dir,
        StoreOptions {
            seal_events_max: 150,
            merge_events_below: 0,
            ..StoreOptions::default()
        },
    )
    .expect("store opens")
}

/// (eventname → count) and every row of every Parquet file, by seq.
fn read_columns(store_dir: &Path) -> (BTreeMap<String, usize>, Vec<ColumnRow>) {
    let (counts, mut rows) = read_columns_in_file_order(store_dir);
    rows.sort();
    (counts, rows)
}

/// (eventname → count) and every row of every Parquet file, as the files hold them.
fn read_columns_in_file_order(store_dir: &Path) -> (BTreeMap<String, usize>, Vec<ColumnRow>) {
    let mut counts = BTreeMap::new();
    let mut rows = Vec::new();
    for path in parquet_files(store_dir) {
        let file = std::fs::File::open(&path).expect("open parquet");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("a Parquet file")
            .build()
            .expect("reader");
        for batch in reader {
            let batch = batch.expect("batch");
            let column = |name: &str| {
                batch
                    .column_by_name(name)
                    .unwrap_or_else(|| panic!("column {name}"))
                    .clone()
            };
            let names = column("eventname");
            let names = names.as_any().downcast_ref::<StringArray>().expect("utf8");
            let ids = column("eventid");
            let ids = ids.as_any().downcast_ref::<StringArray>().expect("utf8");
            let seqs = column("seq");
            let seqs = seqs.as_any().downcast_ref::<UInt64Array>().expect("u64");
            let times = column("eventtime");
            let times = times
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .expect("timestamp");
            for row in 0..batch.num_rows() {
                *counts.entry(names.value(row).to_owned()).or_default() += 1;
                rows.push((seqs.value(row), ids.value(row).to_owned(), times.value(row)));
                assert!(!column("recipientaccountid").is_null(row));
            }
        }
    }
    (counts, rows)
}

#[test]
fn each_segment_has_parquet_columns_with_one_row_per_stored_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_small_segments(dir.path());
    let names = ["PutItem", "DeleteTable", "GetItem"];
    let lines: Vec<String> = (0..1_000)
        .map(|i| {
            event(
                &format!("e-{i:04}"),
                names[i % 3],
                &format!("2024-05-{:02}T10:{:02}:00Z", 1 + i % 28, i % 60),
            )
        })
        .collect();
    for chunk in lines.chunks(100) {
        store.append(records(&chunk.join("\n"))).expect("append");
    }
    // A duplicate is not a row.
    store.append(records(&lines[5])).expect("append duplicate");
    store.flush_tables().expect("seal");
    assert!(
        parquet_files(dir.path()).len() > 2,
        "several segments, each with its columns"
    );

    let check = |store: &Store| {
        let (counts, rows) = read_columns(dir.path());
        assert_eq!(rows.len(), 1_000, "one row per stored event");
        let seqs: Vec<u64> = rows.iter().map(|(seq, _, _)| *seq).collect();
        assert_eq!(seqs, (1..=1_000).collect::<Vec<u64>>());
        for name in names {
            let mut query = LookupQuery::new(Some(ACCOUNT.into()), Some(REGION.into()), 50);
            query.filters = vec![(FilterField::EventName, name.to_owned())];
            assert_eq!(
                counts.get(name).copied(),
                Some(all_ids(store, query).len()),
                "{name}"
            );
        }
        for (seq, id, time) in rows.iter().step_by(97) {
            let log = store.read_log(seq - 1, 1).expect("read_log");
            let stored = store.get_event(ACCOUNT, id).expect("get").expect("present");
            assert_eq!(stored.seq, *seq);
            assert_eq!(stored.record.event_time_ms, *time);
            assert_eq!(log[0].json, stored.record.json);
        }
    };
    check(&store);
    // Merged segments keep exactly one row per event, and no Parquet file is left over.
    store.compact().expect("merge");
    assert_eq!(parquet_files(dir.path()).len(), 1);
    check(&store);
}

#[test]
fn a_head_recovered_from_its_journal_is_sealed_with_whole_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = || StoreOptions {
        merge_events_below: 0,
        ..StoreOptions::default()
    };
    let appended = |store: &Store, from: usize, count: usize| {
        let lines: Vec<String> = (from..from + count)
            .map(|i| {
                let name = if i % 2 == 0 { "PutItem" } else { "GetItem" };
                event(&format!("e-{i:04}"), name, "2024-05-01T10:00:00Z")
            })
            .collect();
        store.append(records(&lines.join("\n"))).expect("append");
    };
    {
        let store = Store::open(dir.path(), options()).expect("store opens");
        appended(&store, 0, 300);
        // Closed with its head unsealed: the next open rebuilds it from the journal.
    }
    assert!(parquet_files(dir.path()).is_empty(), "nothing sealed yet");
    let store = Store::open(dir.path(), options()).expect("store reopens");
    appended(&store, 300, 201);
    store.flush_tables().expect("seal");

    assert_eq!(parquet_files(dir.path()).len(), 1);
    let (counts, rows) = read_columns_in_file_order(dir.path());
    let seqs: Vec<u64> = rows.iter().map(|(seq, _, _)| *seq).collect();
    // One row per event, in seq order: columns the head made as rows arrived (recovered
    // ones included) keep it; made from the records at the seal they would be newest
    // first, here seq descending.
    assert_eq!(
        seqs,
        (1..=501).collect::<Vec<u64>>(),
        "one row per event, the head's own columns"
    );
    assert_eq!(counts.get("PutItem"), Some(&251));
    assert_eq!(counts.get("GetItem"), Some(&250));
    for (seq, id, _) in rows.iter().step_by(50) {
        let stored = store.get_event(ACCOUNT, id).expect("get").expect("present");
        assert_eq!(stored.seq, *seq, "{id}");
    }
}

#[test]
fn records_read_by_seq_come_back_in_the_order_asked_whatever_their_layout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_small_segments(dir.path());
    // Event times out of seq order, so a segment's rows (newest first) are too.
    let lines: Vec<String> = (0..450)
        .map(|i| {
            event(
                &format!("e-{i:04}"),
                "PutItem",
                &format!("2024-05-01T10:{:02}:00Z", (i * 37) % 60),
            )
        })
        .collect();
    for chunk in lines[..400].chunks(100) {
        store.append(records(&chunk.join("\n"))).expect("append");
    }
    store.flush_tables().expect("seal");
    // The last 50 stay in the head.
    store
        .append(records(&lines[400..].join("\n")))
        .expect("append");

    let mut asked: Vec<u64> = (1..=450).rev().step_by(7).collect();
    asked.extend([3, 3, 451, 9_999]);
    asked.sort_by_key(|seq| (seq * 7_919) % 1_000);
    let entries = store.read_seqs(&asked).expect("read_seqs");
    let read: Vec<u64> = entries.iter().map(|entry| entry.seq).collect();
    let expected: Vec<u64> = asked.iter().copied().filter(|seq| *seq <= 450).collect();
    assert_eq!(read, expected, "in the order asked, past the log left out");
    for entry in &entries {
        let log = store.read_log(entry.seq - 1, 1).expect("read_log");
        assert_eq!(log[0].json, entry.json, "seq {}", entry.seq);
    }
}
