//! The background loop archives without being asked and stops cleanly.

use std::time::{Duration, Instant};

use opentrail_archive::Archiver;

use crate::support::*;

#[test]
fn the_background_loop_archives_new_events_and_shuts_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    let archive_dir = dir.path().join("archive");
    let handle = Archiver::open(store.clone(), &archive_dir, eager_options())
        .expect("archiver")
        .spawn(Duration::from_millis(20))
        .expect("spawn");
    let events: Vec<String> = (0..20)
        .map(|i| event(&format!("e{i}"), "PutItem", "2024-01-01T00:00:00Z"))
        .collect();
    append(&store, records(&format!("[{}]", events.join(","))));

    let deadline = Instant::now() + Duration::from_secs(30);
    while handle.archiver().archived_through_seq() < 20 {
        assert!(
            Instant::now() < deadline,
            "the loop did not archive in time"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    handle.shutdown().expect("clean shutdown");
    assert_eq!(archived_seqs(&archive_dir).len(), 20);

    // The lock was released: the directory can be opened again.
    let reopened =
        Archiver::open(store, &archive_dir, eager_options()).expect("reopen after shutdown");
    assert_eq!(reopened.archived_through_seq(), 20);
}

#[test]
fn dropping_the_handle_also_stops_the_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    let archive_dir = dir.path().join("archive");
    let handle = Archiver::open(store.clone(), &archive_dir, eager_options())
        .expect("archiver")
        .spawn(Duration::from_secs(3600))
        .expect("spawn");
    // Shutdown does not wait out the hour-long interval: were it to, this drop would
    // hang the test run (no clock is read, so a loaded machine cannot fail it).
    drop(handle);
    Archiver::open(store, &archive_dir, eager_options()).expect("lock released");
}
