//! Archive retention is by ingest time, file by file, and removes emptied partitions.

use std::time::Duration;

use opentrail_archive::{ArchiveOptions, list_all_part_files, list_partitions};

use crate::support::*;

const DAY_MS: i64 = 24 * 3600 * 1000;

#[test]
fn old_event_dates_are_kept_for_the_whole_period_after_ingest() {
    // Imported historical logs: event dates years old, recorded today.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    append(
        &store,
        records(&event("a", "PutItem", "2012-01-01T00:00:00Z")),
    );
    let archive_dir = dir.path().join("archive");
    let archiver = open_archiver(&store, &archive_dir, eager_options());
    archiver.run_once().expect("seal");
    assert_eq!(
        archiver.options().retention,
        Duration::from_secs(2557 * 24 * 3600),
        "7 years by default"
    );

    let report = archiver.expire_at(now_ms()).expect("expire now");
    assert_eq!(report.files_removed, 0);
    let report = archiver
        .expire_at(now_ms() + 2556 * DAY_MS)
        .expect("expire just inside");
    assert_eq!(report.files_removed, 0);
    assert_eq!(list_all_part_files(&archive_dir).expect("files").len(), 1);

    let report = archiver
        .expire_at(now_ms() + 2558 * DAY_MS)
        .expect("expire after");
    assert_eq!((report.files_removed, report.partitions_removed), (1, 1));
    assert!(report.bytes_removed > 0);
    assert!(
        list_partitions(&archive_dir)
            .expect("partitions")
            .is_empty()
    );
}

#[test]
fn files_expire_one_by_one_by_their_newest_ingest_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    let archive_dir = dir.path().join("archive");
    let options = ArchiveOptions {
        retention: Duration::from_secs(3600),
        ..eager_options()
    };
    let archiver = open_archiver(&store, &archive_dir, options);
    append(
        &store,
        records(&event("a", "PutItem", "2020-01-01T00:00:00Z")),
    );
    archiver.run_once().expect("first seal");
    std::thread::sleep(Duration::from_millis(20));
    append(
        &store,
        records(&event("b", "PutItem", "2020-01-01T00:00:00Z")),
    );
    append(
        &store,
        records(&event("c", "PutItem", "2020-01-02T00:00:00Z")),
    );
    archiver.run_once().expect("second seal");

    let files = list_all_part_files(&archive_dir).expect("files");
    assert_eq!(files.len(), 3);
    let first_ingest = opentrail_archive::read_part_file_summary(&files[0].path)
        .expect("footer")
        .ingest_time_max_ms;

    // Just after the first seal's rows expire, only its file goes.
    let report = archiver
        .expire_at(first_ingest + 3_600_000 + 1)
        .expect("expire");
    assert_eq!((report.files_removed, report.partitions_removed), (1, 0));
    let remaining: Vec<(u64, u64)> = list_all_part_files(&archive_dir)
        .expect("files")
        .iter()
        .map(|file| (file.first_seq, file.last_seq))
        .collect();
    assert_eq!(remaining, [(2, 3), (2, 3)]);
    assert_eq!(archived_seqs(&archive_dir).len(), 2);

    let report = archiver
        .expire_at(now_ms() + 3_600_000 + 1)
        .expect("expire all");
    assert_eq!((report.files_removed, report.partitions_removed), (2, 2));
}

#[test]
fn partitions_dated_after_the_cutoff_are_not_opened() {
    // A file whose footer is unreadable is never deleted; one dated after the cutoff
    // is not even looked at.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    let archive_dir = dir.path().join("archive");
    let archiver = open_archiver(&store, &archive_dir, eager_options());
    append(
        &store,
        records(&event("a", "PutItem", "2020-01-01T00:00:00Z")),
    );
    archiver.run_once().expect("seal");
    let broken_old = archive_dir
        .join("event_date=2019-01-01")
        .join(opentrail_archive::part_file_name(90, 91));
    let broken_new = archive_dir
        .join("event_date=2099-01-01")
        .join(opentrail_archive::part_file_name(92, 93));
    for path in [&broken_old, &broken_new] {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("partition");
        std::fs::write(path, b"not parquet").expect("write");
    }
    let report = archiver
        .expire_at(now_ms() + 2558 * DAY_MS)
        .expect("expire");
    assert_eq!(report.files_removed, 1, "the real, expired file");
    assert_eq!(
        report.files_unreadable, 1,
        "only the one dated before the cutoff was opened"
    );
    assert!(broken_old.exists() && broken_new.exists());
}
