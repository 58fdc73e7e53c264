//! When seals happen, what they contain, and that repeating them adds nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use opentrail_archive::{
    ARCHIVE_CONSUMER, ArchiveError, ArchiveOptions, Archiver, list_all_part_files, part_file_name,
};

use crate::support::*;

#[test]
fn rows_are_partitioned_by_the_utc_date_of_event_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    let batch = [
        event("a", "PutItem", "2024-01-01T23:59:59Z"),
        event("b", "PutItem", "2024-01-02T00:30:00+02:00"), // 2024-01-01T22:30Z
        event("c", "GetItem", "2024-01-02T00:00:00Z"),
        event("d", "GetItem", "2019-06-30T12:00:00.5Z"),
    ];
    append(&store, records(&format!("[{}]", batch.join(","))));
    let archive_dir = dir.path().join("archive");
    let report = open_archiver(&store, &archive_dir, eager_options())
        .run_once()
        .expect("seal");
    let sealed = report.sealed.expect("sealed");

    let mut dates: Vec<String> = sealed
        .files
        .iter()
        .map(|path| {
            let partition = path
                .parent()
                .and_then(|parent| parent.file_name())
                .expect("partition dir");
            assert_eq!(
                path.file_name().and_then(|name| name.to_str()),
                Some(part_file_name(1, 4).as_str())
            );
            partition.to_string_lossy().into_owned()
        })
        .collect();
    dates.sort();
    assert_eq!(
        dates,
        [
            "event_date=2019-06-30",
            "event_date=2024-01-01",
            "event_date=2024-01-02"
        ]
    );
    let rows = archived_seqs(&archive_dir);
    assert_eq!(
        rows,
        [
            ("2019-06-30".to_owned(), 4),
            ("2024-01-01".to_owned(), 1),
            ("2024-01-01".to_owned(), 2),
            ("2024-01-02".to_owned(), 3)
        ]
    );
}

#[test]
fn running_again_adds_no_rows_and_new_events_get_their_own_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    append(
        &store,
        records(&event("a", "PutItem", "2024-01-01T00:00:00Z")),
    );
    let archive_dir = dir.path().join("archive");
    let archiver = open_archiver(&store, &archive_dir, eager_options());
    assert!(archiver.run_once().expect("first").sealed.is_some());
    assert!(
        archiver.run_once().expect("second").sealed.is_none(),
        "nothing new to seal"
    );
    assert_eq!(archived_seqs(&archive_dir).len(), 1);

    append(
        &store,
        records(&event("b", "PutItem", "2024-01-01T01:00:00Z")),
    );
    let sealed = archiver.run_once().expect("third").sealed.expect("sealed");
    assert_eq!((sealed.first_seq, sealed.last_seq), (2, 2));
    assert_eq!(archived_seqs(&archive_dir).len(), 2);
    assert_eq!(list_all_part_files(&archive_dir).expect("files").len(), 2);
    assert_eq!(store.load_cursor(ARCHIVE_CONSUMER).expect("cursor"), 2);

    // A new archiver on the same directory resumes from its state.
    drop(archiver);
    let reopened = open_archiver(&store, &archive_dir, eager_options());
    assert_eq!(reopened.archived_through_seq(), 2);
    assert!(reopened.run_once().expect("after reopen").sealed.is_none());
    assert_eq!(archived_seqs(&archive_dir).len(), 2);
}

#[test]
fn seals_wait_for_enough_events_or_for_the_oldest_to_age() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    let options = ArchiveOptions {
        seal_events_min: 5,
        seal_age_max: Duration::from_secs(60),
        ..ArchiveOptions::default()
    };
    let archiver = open_archiver(&store, &dir.path().join("archive"), options);
    let events: Vec<String> = (0..3)
        .map(|i| event(&format!("e{i}"), "PutItem", "2024-01-01T00:00:00Z"))
        .collect();
    append(&store, records(&format!("[{}]", events.join(","))));

    let report = archiver.run_once_at(now_ms()).expect("young and few");
    assert!(report.sealed.is_none());
    assert_eq!(report.pending_events, 3, "the lag is reported");

    let report = archiver.run_once_at(now_ms() + 61_000).expect("old enough");
    assert_eq!(report.sealed.expect("sealed by age").events, 3);

    let events: Vec<String> = (3..8)
        .map(|i| event(&format!("e{i}"), "PutItem", "2024-01-01T00:00:00Z"))
        .collect();
    append(&store, records(&format!("[{}]", events.join(","))));
    let report = archiver.run_once_at(now_ms()).expect("enough");
    assert_eq!(report.sealed.expect("sealed by count").events, 5);
}

#[test]
fn events_are_archived_only_once_they_were_recorded_archive_after_ago() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    let batch = |range: std::ops::Range<usize>| {
        let events: Vec<String> = range
            .map(|i| event(&format!("e{i}"), "PutItem", "2024-01-01T00:00:00Z"))
            .collect();
        records(&format!("[{}]", events.join(",")))
    };
    append(&store, batch(0..3));
    let first_recorded_ms = store.read_log(0, 1).expect("read")[0].ingest_time_ms;
    // Ingest time has millisecond steps: wait for the next one, so the two batches differ.
    while now_ms() <= first_recorded_ms {
        std::thread::sleep(Duration::from_millis(1));
    }
    append(&store, batch(3..7));
    let second_recorded_ms = store.read_log(3, 1).expect("read")[0].ingest_time_ms;
    assert!(second_recorded_ms > first_recorded_ms);

    let day_ms = 24 * 3600 * 1000;
    let options = ArchiveOptions {
        archive_after: Duration::from_secs(24 * 3600),
        seal_events_min: 3,
        seal_age_max: Duration::from_secs(60),
        ..ArchiveOptions::default()
    };
    let archiver = open_archiver(&store, &dir.path().join("archive"), options);

    // Seven events wait, more than seal_events_min, but none is a day old.
    let report = archiver.run_once_at(now_ms()).expect("too recent");
    assert!(report.sealed.is_none());
    assert!(
        list_all_part_files(&dir.path().join("archive"))
            .expect("list")
            .is_empty()
    );

    // A day after the first batch: exactly it is due, and it is enough for a seal.
    let report = archiver
        .run_once_at(first_recorded_ms + day_ms)
        .expect("first batch due");
    let sealed = report.sealed.expect("the first batch is sealed");
    assert_eq!((sealed.first_seq, sealed.last_seq), (1, 3));
    assert_eq!(report.pending_events, 4);

    // The second batch is due a moment later but is waited for (count or age) as usual.
    let report = archiver
        .run_once_at(second_recorded_ms + day_ms)
        .expect("second batch due");
    assert_eq!(report.sealed.expect("four events are enough").events, 4);
    assert_eq!(archived_seqs(&dir.path().join("archive")).len(), 7);
}

#[test]
fn a_backlog_is_sealed_in_bounded_ranges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    let events: Vec<String> = (0..10)
        .map(|i| event(&format!("e{i}"), "PutItem", "2024-01-01T00:00:00Z"))
        .collect();
    append(&store, records(&format!("[{}]", events.join(","))));
    let options = ArchiveOptions {
        seal_events_max: 4,
        read_chunk_events: 3,
        row_group_rows_max: 2,
        ..eager_options()
    };
    let archive_dir = dir.path().join("archive");
    let archiver = open_archiver(&store, &archive_dir, options);
    assert_eq!(archiver.catch_up().expect("catch up"), 3);
    let names: Vec<String> = list_all_part_files(&archive_dir)
        .expect("files")
        .iter()
        .map(|file| format!("{}-{}", file.first_seq, file.last_seq))
        .collect();
    assert_eq!(names, ["1-4", "5-8", "9-10"]);
    let seqs: Vec<u64> = archived_seqs(&archive_dir)
        .into_iter()
        .map(|(_, seq)| seq)
        .collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());

    // Row groups are bounded too.
    let file = std::fs::File::open(&list_all_part_files(&archive_dir).expect("files")[0].path)
        .expect("open");
    let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .expect("footer");
    assert_eq!(metadata.num_row_groups(), 2);
}

#[test]
fn the_byte_bound_splits_seals_but_always_takes_one_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    let events: Vec<String> = (0..3)
        .map(|i| event(&format!("e{i}"), "PutItem", "2024-01-01T00:00:00Z"))
        .collect();
    append(&store, records(&format!("[{}]", events.join(","))));
    let options = ArchiveOptions {
        seal_bytes_max: 10,
        ..eager_options()
    };
    let archive_dir = dir.path().join("archive");
    assert_eq!(
        open_archiver(&store, &archive_dir, options)
            .catch_up()
            .expect("catch up"),
        3
    );
    assert_eq!(archived_seqs(&archive_dir).len(), 3);
}

#[test]
fn one_archive_directory_has_one_archiver() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    let archive_dir = dir.path().join("archive");
    let _first = open_archiver(&store, &archive_dir, eager_options());
    let second = Archiver::open(store.clone(), &archive_dir, eager_options());
    assert!(
        matches!(second, Err(ArchiveError::Locked { .. })),
        "{:?}",
        second.err()
    );
}

#[test]
fn opening_registers_the_cursor_so_store_retention_waits_for_the_archive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_options = opentrail_store::StoreOptions {
        retention: Duration::from_millis(1),
        ..opentrail_store::StoreOptions::default()
    };
    let store =
        opentrail_store::Store::open(&dir.path().join("store"), store_options).expect("store");
    append(
        &store,
        records(&event("a", "PutItem", "2024-01-01T00:00:00Z")),
    );
    let archiver = open_archiver(&store, &dir.path().join("archive"), eager_options());
    let far_future_ms = now_ms() + 3_600_000;
    assert_eq!(
        store.expire(far_future_ms).expect("expire").events_removed,
        0,
        "held by the archive cursor"
    );
    archiver.run_once().expect("seal");
    assert_eq!(
        store.expire(far_future_ms).expect("expire").events_removed,
        1,
        "archived, so released"
    );
}

#[test]
fn every_seq_is_archived_once_across_many_small_seals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    let archive_dir = dir.path().join("archive");
    let archiver = open_archiver(&store, &archive_dir, eager_options());
    let mut stored = 0;
    for round in 0..5 {
        let events: Vec<String> = (0..7)
            .map(|i| {
                event(
                    &format!("r{round}e{i}"),
                    "PutItem",
                    &format!("2024-01-0{}T00:00:00Z", 1 + i % 3),
                )
            })
            .collect();
        stored += append(&store, records(&format!("[{}]", events.join(","))));
        archiver.catch_up().expect("catch up");
    }
    let seqs: Vec<u64> = archived_seqs(&archive_dir)
        .into_iter()
        .map(|(_, seq)| seq)
        .collect();
    let distinct: BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(seqs.len(), stored);
    assert_eq!(distinct.len(), stored);
}
