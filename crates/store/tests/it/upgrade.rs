//! A data dir written by the previous release (fjall, one LSM key per event and
//! attribute) opens with this one: its events are converted into segments on first open,
//! with the same seqs, ingest times and JSON, the same cursors, and nothing lost.
//!
//! `tests/fixtures/v1/store.tar.gz` was written by the previous release's `opentrail
//! serve` (300 synthetic events ingested over HTTP, then two consumer cursors saved);
//! `expected.json.gz` is what that release's `read_log` and cursors returned for it.

use std::io::Read;
use std::path::{Path, PathBuf};

use opentrail_event::{EventRecord, FilterField};
use opentrail_store::{AppendOutcome, LookupQuery, Store, StoreOptions};

use crate::support::{all_ids, unpack_store_fixture};

const TRAIL_CURSOR: &str = "trail/arn:aws:cloudtrail:us-east-1:111122223333:trail/main";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v1")
        .join(name)
}

struct Expected {
    last_seq: u64,
    cursors: Vec<(String, u64)>,
    /// (seq, ingest time, JSON) for every log entry.
    entries: Vec<(u64, i64, String)>,
}

fn expected() -> Expected {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(fixture("expected.json.gz")).expect("open"))
        .read_to_string(&mut text)
        .expect("gunzip");
    let value: serde_json::Value = serde_json::from_str(&text).expect("expected.json parses");
    let number = |value: &serde_json::Value| value.as_u64().expect("a number");
    Expected {
        last_seq: number(&value["last_seq"]),
        cursors: vec![
            ("archive".to_owned(), number(&value["cursor_archive"])),
            (TRAIL_CURSOR.to_owned(), number(&value["cursor_trail"])),
        ],
        entries: value["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|entry| {
                (
                    number(&entry["seq"]),
                    entry["ingest_time_ms"].as_i64().expect("ingest time"),
                    entry["json"].as_str().expect("json").to_owned(),
                )
            })
            .collect(),
    }
}

fn whole_log(store: &Store) -> Vec<(u64, i64, String)> {
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let batch = store.read_log(after, 64).expect("read_log");
        let Some(last) = batch.last() else {
            return entries;
        };
        after = last.seq;
        entries.extend(
            batch
                .into_iter()
                .map(|entry| (entry.seq, entry.ingest_time_ms, entry.json)),
        );
    }
}

fn assert_same_store(store: &Store, expected: &Expected) {
    assert_eq!(store.stats().expect("stats").last_seq, expected.last_seq);
    assert_eq!(
        whole_log(store),
        expected.entries,
        "the same log, byte for byte"
    );
    for (consumer, cursor) in &expected.cursors {
        assert_eq!(
            &store.load_cursor(consumer).expect("cursor"),
            cursor,
            "{consumer}"
        );
    }
    // Lookups agree with a brute-force scan of the previous release's log.
    let records: Vec<(u64, EventRecord)> = expected
        .entries
        .iter()
        .map(|(seq, _, json)| (*seq, EventRecord::from_stored(json).expect("stored record")))
        .collect();
    for (field, value) in [
        (FilterField::EventName, "DeleteTable"),
        (FilterField::Username, "alice"),
        (FilterField::ErrorCode, "AccessDenied"),
        (FilterField::ResourceName, "bucket-3/key-3"),
    ] {
        let mut want: Vec<(i64, u64, String)> = records
            .iter()
            .filter(|(_, record)| record.attributes.index_values().contains(&(field, value)))
            .map(|(seq, record)| (record.event_time_ms, *seq, record.event_id.clone()))
            .collect();
        want.sort_by_key(|&(time, seq, _)| std::cmp::Reverse((time, seq)));
        let want: Vec<String> = want.into_iter().map(|(_, _, id)| id).collect();
        assert!(!want.is_empty(), "the fixture has {field}={value}");
        let mut query = LookupQuery::new(None, None, 7);
        query.filters = vec![(field, value.to_owned())];
        assert_eq!(all_ids(store, query), want, "{field}={value}");
    }
    let (_, first) = &records[0];
    let found = store
        .get_event(&first.account_id, &first.event_id)
        .expect("get_event")
        .expect("the first event is there");
    assert_eq!(found.record.json, first.json);
}

#[test]
fn a_store_of_the_previous_release_is_converted_on_first_open_with_nothing_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = unpack_store_fixture("v1", dir.path());
    let expected = expected();
    assert_eq!(expected.entries.len(), 300);
    {
        let store = Store::open(&store_dir, StoreOptions::default()).expect("opens and converts");
        assert!(!store_dir.join("engine").exists(), "the old engine is gone");
        assert_same_store(&store, &expected);

        // It takes writes as usual: new seqs continue, old events are still duplicates.
        let (_, _, old_json) = &expected.entries[10];
        let old = EventRecord::from_stored(old_json).expect("record");
        let outcomes = store.append(vec![old]).expect("append");
        assert_eq!(
            outcomes,
            vec![AppendOutcome::Duplicate {
                seq: expected.entries[10].0
            }]
        );
    }
    let store = Store::open(&store_dir, StoreOptions::default()).expect("reopens");
    assert_same_store(&store, &expected);
}

#[test]
fn a_conversion_interrupted_half_way_starts_over_on_the_next_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = unpack_store_fixture("v1", dir.path());
    // What a kill during the conversion leaves: partial segments and metadata, the old
    // engine intact, no FORMAT file.
    std::fs::create_dir_all(store_dir.join("segments")).expect("segments");
    std::fs::write(
        store_dir
            .join("segments")
            .join("00000000000000000001-00000000000000000100.seg"),
        b"half a segment",
    )
    .expect("partial segment");
    std::fs::write(store_dir.join("meta.json"), b"{\"format\":2,").expect("partial meta");
    let store = Store::open(&store_dir, StoreOptions::default()).expect("opens and converts");
    assert_same_store(&store, &expected());
}
