//! Segments of earlier formats open with this release and answer as before: every event
//! by its id, dedup against them, lookups; settling keeps their format, and a merge with
//! current segments rewrites them in the current one.
//!
//! Each fixture, `tests/fixtures/<format>/store.tar.gz`, was written by the store of the
//! release that wrote that format: the 600 records of `support::varied_batch(0, 600)`,
//! appended 100 at a time and sealed every 200, so three segments and no journal.
//! - `otseg004` (commit 5168391): whole 64-bit id hashes and whole terms.
//! - `otseg005` (commit 68ea0f6): 32-bit id fingerprints in 8-byte entries, whole terms
//!   in 12-byte entries, no Elias-Fano postings.
//! - `otseg006` (commit 4da7e43): no `record_of_row` section (blocks always in row
//!   order).
//! - `otseg007` (commit 7f0f89f): the classic Bloom filter, and blocks kept from the
//!   journal, so settling them rewrites the blocks in row order.

use std::path::Path;

use opentrail_event::EventRecord;
use opentrail_store::{AppendOutcome, Store, StoreOptions};

use crate::support::{ACCOUNT, records, unpack_store_fixture, varied_batch, varied_lookups};

const EVENTS: usize = 600;

fn segment_magics(dir: &Path) -> Vec<String> {
    let mut magics: Vec<String> = std::fs::read_dir(dir.join("segments"))
        .expect("segments dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "seg"))
        .map(|path| String::from_utf8_lossy(&std::fs::read(path).expect("read")[..8]).into_owned())
        .collect();
    magics.sort();
    magics
}

/// Every record is found by its id, with its own name.
fn assert_every_id_found(store: &Store, expected: &[EventRecord]) {
    for record in expected {
        let found = store
            .get_event(ACCOUNT, &record.event_id)
            .expect("get_event")
            .unwrap_or_else(|| panic!("{} not found", record.event_id));
        assert_eq!(
            found.record.attributes.event_name,
            record.attributes.event_name
        );
    }
}

/// Appending every record again stores none of them.
fn assert_all_duplicates(store: &Store) {
    let outcomes = store
        .append(records(&varied_batch(0, EVENTS)))
        .expect("append");
    assert!(
        outcomes
            .iter()
            .all(|outcome| matches!(outcome, AppendOutcome::Duplicate { .. })),
        "every record of the fixture is a duplicate"
    );
}

#[test]
fn segments_with_whole_id_hashes_answer_settle_and_merge_into_the_current_format() {
    old_segments_answer_settle_and_merge_into_the_current_format("otseg004", "OTSEG004");
}

#[test]
fn segments_with_unpacked_tables_answer_settle_and_merge_into_the_current_format() {
    old_segments_answer_settle_and_merge_into_the_current_format("otseg005", "OTSEG005");
}

#[test]
fn segments_without_a_record_map_answer_settle_and_merge_into_the_current_format() {
    old_segments_answer_settle_and_merge_into_the_current_format("otseg006", "OTSEG006");
}

#[test]
fn segments_with_a_classic_bloom_filter_answer_settle_and_merge_into_the_current_format() {
    old_segments_answer_settle_and_merge_into_the_current_format("otseg007", "OTSEG007");
}

fn old_segments_answer_settle_and_merge_into_the_current_format(fixture: &str, magic: &str) {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = unpack_store_fixture(fixture, temp.path());
    assert_eq!(segment_magics(&dir), vec![magic; 3]);
    let options = StoreOptions {
        merge_events_below: 0,
        settle: false,
        ..StoreOptions::default()
    };
    let store = Store::open(&dir, options.clone()).expect("store opens");
    let expected = records(&varied_batch(0, EVENTS));
    assert_every_id_found(&store, &expected);
    let expected_lookups = varied_lookups(&store);
    assert_eq!(expected_lookups[0].len(), EVENTS / 6, "every AssumeRole");
    assert_all_duplicates(&store);

    // A settled copy keeps the sections, so it keeps the format they are in.
    store.settle().expect("settle");
    assert_eq!(segment_magics(&dir), vec![magic; 3]);
    assert_every_id_found(&store, &expected);
    assert_all_duplicates(&store);

    // New events land in a current segment; a merge rewrites everything in the current
    // format, with the old segments' ids and terms carried over from their tables.
    let newer = records(&varied_batch(EVENTS, 200));
    store.append(newer.clone()).expect("append");
    store.flush_tables().expect("seal");
    assert_eq!(segment_magics(&dir), [magic, magic, magic, "OTSEG008"]);
    let lookups_before_merge = varied_lookups(&store);
    store.compact().expect("merge");
    assert_eq!(segment_magics(&dir), vec!["OTSEG008"]);
    assert_eq!(varied_lookups(&store), lookups_before_merge);
    assert_every_id_found(&store, &expected);
    assert_every_id_found(&store, &newer);
    assert_all_duplicates(&store);
    drop(store);

    let store = Store::open(&dir, options).expect("store reopens");
    assert_every_id_found(&store, &expected);
    assert!(lookups_before_merge[1].len() > expected_lookups[1].len());
    assert_eq!(varied_lookups(&store), lookups_before_merge);
    assert_eq!(store.verify().expect("verify"), (EVENTS + 200) as u64);
}
