//! A crash at any step of a seal loses nothing and duplicates nothing: the restarted
//! archiver redoes exactly the interrupted range, with byte-identical files.

use std::collections::BTreeSet;

use opentrail_archive::{
    ARCHIVE_CONSUMER, ArchiveError, ArchiveOptions, CrashPoint, list_all_part_files,
};

use crate::support::*;

/// Events over three event dates, so a seal writes three files.
fn three_day_events(prefix: &str, count: usize) -> String {
    let events: Vec<String> = (0..count)
        .map(|i| {
            event(
                &format!("{prefix}{i}"),
                "PutItem",
                &format!("2024-03-0{}T12:00:00Z", 1 + i % 3),
            )
        })
        .collect();
    format!("[{}]", events.join(","))
}

fn crash_then_recover(crash_point: CrashPoint) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    let mut stored = append(&store, records(&three_day_events("first", 9)));
    let archive_dir = dir.path().join("archive");

    let crashing = ArchiveOptions {
        crash_for_test: Some(crash_point),
        ..eager_options()
    };
    let archiver = open_archiver(&store, &archive_dir, crashing);
    let outcome = archiver.run_once();
    assert!(
        matches!(outcome, Err(ArchiveError::InjectedCrash)),
        "{crash_point:?}: {outcome:?}"
    );
    let files_at_crash = file_bytes(&archive_dir);
    drop(archiver);

    // What a crash mid-write leaves behind: a torn temporary file.
    let torn = archive_dir
        .join("event_date=2024-03-02")
        .join(format!(".{}.tmp", opentrail_archive::part_file_name(1, 9)));
    if let Some(parent) = torn.parent() {
        std::fs::create_dir_all(parent).expect("partition dir");
    }
    std::fs::write(&torn, b"PAR1 torn").expect("torn file");

    // More events arrive before the restart: a naive re-plan would choose another range.
    stored += append(&store, records(&three_day_events("second", 4)));

    let archiver = open_archiver(&store, &archive_dir, eager_options());
    assert!(!torn.exists(), "temporary files are removed at open");
    if crash_point == CrashPoint::BeforeCursorSave {
        assert_eq!(
            store.load_cursor(ARCHIVE_CONSUMER).expect("cursor"),
            9,
            "open repairs the cursor"
        );
    }
    let report = archiver.run_once().expect("recovering run");
    match crash_point {
        CrashPoint::BeforeCursorSave => {
            let sealed = report.sealed.expect("the next range");
            assert_eq!((sealed.first_seq, sealed.last_seq), (10, 13));
            assert!(!report.resumed_interrupted_seal);
        }
        _ => {
            let sealed = report.sealed.expect("the interrupted range");
            assert!(report.resumed_interrupted_seal);
            assert_eq!(
                (sealed.first_seq, sealed.last_seq),
                (1, 9),
                "exactly the planned range"
            );
            assert_eq!(sealed.files.len(), 3);
        }
    }
    // Files written before the crash were rewritten byte for byte.
    let files_after = file_bytes(&archive_dir);
    for (path, bytes) in &files_at_crash {
        assert_eq!(
            files_after.get(path),
            Some(bytes),
            "{crash_point:?}: {path} changed"
        );
    }
    archiver.catch_up().expect("catch up");

    let seqs: Vec<u64> = archived_seqs(&archive_dir)
        .into_iter()
        .map(|(_, seq)| seq)
        .collect();
    let distinct: BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(seqs.len(), stored, "{crash_point:?}: no duplicates");
    assert_eq!(
        distinct,
        (1..=13).collect(),
        "{crash_point:?}: nothing lost"
    );
    assert_eq!(store.load_cursor(ARCHIVE_CONSUMER).expect("cursor"), 13);
    let names: BTreeSet<String> = list_all_part_files(&archive_dir)
        .expect("files")
        .iter()
        .map(|file| format!("{}/{}-{}", file.event_date, file.first_seq, file.last_seq))
        .collect();
    let expected: BTreeSet<String> = ["2024-03-01", "2024-03-02", "2024-03-03"]
        .iter()
        .flat_map(|date| [format!("{date}/1-9"), format!("{date}/10-13")])
        .collect();
    assert_eq!(names, expected, "{crash_point:?}");
}

#[test]
fn a_crash_after_the_plan_redoes_the_planned_range() {
    crash_then_recover(CrashPoint::AfterPlan);
}

#[test]
fn a_crash_before_any_file_redoes_the_planned_range() {
    crash_then_recover(CrashPoint::AfterFiles(0));
}

#[test]
fn a_crash_between_files_rewrites_the_same_files() {
    crash_then_recover(CrashPoint::AfterFiles(1));
    crash_then_recover(CrashPoint::AfterFiles(2));
}

#[test]
fn a_crash_before_the_cursor_save_keeps_the_files_and_repairs_the_cursor() {
    crash_then_recover(CrashPoint::BeforeCursorSave);
}

#[test]
fn a_rerun_of_the_same_range_writes_identical_files() {
    // Files written, cursor not saved, and the planned range redone from scratch: the
    // result is byte-identical, which is what makes a redo safe.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    append(&store, records(&three_day_events("e", 6)));
    let archive_dir = dir.path().join("archive");
    let archiver = open_archiver(&store, &archive_dir, eager_options());
    archiver.run_once().expect("seal");
    let first = file_bytes(&archive_dir);
    assert_eq!(first.len(), 3);
    drop(archiver);

    // Roll the archive back to "plan recorded, cursor not saved" and rerun.
    let state_path = archive_dir.join("_opentrail").join("state.json");
    std::fs::write(
        &state_path,
        br#"{"format":1,"archived_through_seq":0,"sealing":{"first_seq":1,"last_seq":6}}"#,
    )
    .expect("state");
    store.save_cursor(ARCHIVE_CONSUMER, 0).expect("cursor");
    let archiver = open_archiver(&store, &archive_dir, eager_options());
    let report = archiver.run_once().expect("redo");
    assert!(report.resumed_interrupted_seal);
    assert_eq!(file_bytes(&archive_dir), first);
    assert_eq!(archived_seqs(&archive_dir).len(), 6);
}

#[test]
fn a_store_cursor_ahead_of_the_archive_state_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    append(&store, records(&three_day_events("e", 3)));
    let archive_dir = dir.path().join("archive");
    drop(open_archiver(&store, &archive_dir, eager_options()));
    store.save_cursor(ARCHIVE_CONSUMER, 3).expect("cursor");
    let outcome = opentrail_archive::Archiver::open(store.clone(), &archive_dir, eager_options());
    assert!(
        matches!(outcome, Err(ArchiveError::Inconsistent { .. })),
        "{:?}",
        outcome.err()
    );
}
