//! Small files of finished days are merged; a crash mid-merge never leaves a row twice.

use std::collections::BTreeSet;

use opentrail_archive::{
    ArchiveError, ArchiveOptions, CrashPoint, list_all_part_files, read_part_file,
};

use crate::support::*;

/// Appends `count` events dated `date` and seals them as one range.
fn seal_events(
    archiver: &opentrail_archive::Archiver,
    store: &opentrail_store::Store,
    tag: &str,
    date: &str,
    count: usize,
) {
    let events: Vec<String> = (0..count)
        .map(|i| {
            event(
                &format!("{tag}-{i}"),
                "PutItem",
                &format!("{date}T12:00:00Z"),
            )
        })
        .collect();
    append(store, records(&format!("[{}]", events.join(","))));
    assert!(archiver.run_once().expect("seal").sealed.is_some());
}

fn ranges(archive_dir: &std::path::Path) -> Vec<String> {
    list_all_part_files(archive_dir)
        .expect("files")
        .iter()
        .map(|file| format!("{}/{}-{}", file.event_date, file.first_seq, file.last_seq))
        .collect()
}

fn today() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%d").to_string()
}

#[test]
fn small_files_of_finished_days_are_merged_and_today_is_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    let archive_dir = dir.path().join("archive");
    let archiver = open_archiver(&store, &archive_dir, eager_options());
    for seal in 0..4 {
        seal_events(&archiver, &store, &format!("old{seal}"), "2020-01-01", 2);
    }
    let today = today();
    seal_events(&archiver, &store, "new0", &today, 1);
    seal_events(&archiver, &store, "new1", &today, 1);
    let before: BTreeSet<u64> = archived_seqs(&archive_dir)
        .into_iter()
        .map(|(_, seq)| seq)
        .collect();

    let report = archiver.compact().expect("compact");
    assert_eq!((report.files_merged, report.files_written), (4, 1));
    assert_eq!(
        ranges(&archive_dir),
        [
            "2020-01-01/1-8".to_owned(),
            format!("{today}/9-9"),
            format!("{today}/10-10")
        ]
    );
    let after: Vec<u64> = archived_seqs(&archive_dir)
        .into_iter()
        .map(|(_, seq)| seq)
        .collect();
    assert_eq!(after.len(), before.len(), "no row gained or lost");
    assert_eq!(after.iter().copied().collect::<BTreeSet<_>>(), before);

    // The merged file reads back as the log's records, and its footer spans its inputs.
    let merged = &list_all_part_files(&archive_dir).expect("files")[0];
    let log = store.read_log(0, 8).expect("log");
    let rebuilt = read_part_file(&merged.path).expect("read merged");
    assert_eq!(rebuilt.len(), 8);
    for (record, entry) in rebuilt.iter().zip(&log) {
        assert_eq!(record.seq, entry.seq);
        let original: serde_json::Value = serde_json::from_str(&entry.json).expect("JSON");
        assert_eq!(serde_json::Value::Object(record.record.clone()), original);
    }
    let summary = opentrail_archive::read_part_file_summary(&merged.path).expect("footer");
    assert_eq!(summary.ingest_time_min_ms, log[0].ingest_time_ms);
    assert_eq!(summary.ingest_time_max_ms, log[7].ingest_time_ms);

    assert_eq!(
        archiver.compact().expect("again"),
        opentrail_archive::CompactReport::default()
    );
}

#[test]
fn merges_take_contiguous_runs_of_small_files_up_to_the_row_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    let archive_dir = dir.path().join("archive");
    let options = ArchiveOptions {
        compacted_file_rows_max: 4,
        ..eager_options()
    };
    let archiver = open_archiver(&store, &archive_dir, options);
    // Rows per seal; files of 2 rows or more are not small with a bound of 4.
    for (seal, rows) in [1, 1, 3, 1, 1, 1, 1, 1].into_iter().enumerate() {
        seal_events(&archiver, &store, &format!("s{seal}"), "2020-01-01", rows);
    }
    archiver.compact().expect("compact");
    assert_eq!(
        ranges(&archive_dir),
        [
            "2020-01-01/1-2",
            "2020-01-01/3-5",
            "2020-01-01/6-9",
            "2020-01-01/10-10"
        ]
    );
    assert_eq!(archived_seqs(&archive_dir).len(), 10);
}

#[test]
fn a_crash_between_the_merged_file_and_the_deletes_leaves_no_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    let archive_dir = dir.path().join("archive");
    let crashing = ArchiveOptions {
        crash_for_test: Some(CrashPoint::AfterMergedFile),
        ..eager_options()
    };
    let archiver = open_archiver(&store, &archive_dir, crashing);
    for seal in 0..3 {
        seal_events(&archiver, &store, &format!("s{seal}"), "2020-01-01", 2);
    }
    let outcome = archiver.compact();
    assert!(
        matches!(outcome, Err(ArchiveError::InjectedCrash)),
        "{outcome:?}"
    );
    assert_eq!(
        archived_seqs(&archive_dir).len(),
        12,
        "merged file and inputs both on disk"
    );
    drop(archiver);

    let archiver = open_archiver(&store, &archive_dir, eager_options());
    assert_eq!(
        ranges(&archive_dir),
        ["2020-01-01/1-6"],
        "open removed the superseded inputs"
    );
    let seqs: Vec<u64> = archived_seqs(&archive_dir)
        .into_iter()
        .map(|(_, seq)| seq)
        .collect();
    assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
    assert_eq!(archiver.compact().expect("compact").files_written, 0);
}
