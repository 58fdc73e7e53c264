//! `backup_store` copies a store that another thread keeps appending to, sealing and
//! merging all the while: each copy opens, holds every event acknowledged before it began
//! exactly once, and keeps the cursors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use opentrail_store::{Store, StoreOptions, backup_store};

use crate::support::{event, records};

fn busy_options() -> StoreOptions {
    // Tiny heads and segments: seals and merges happen many times during each copy.
    StoreOptions {
        seal_events_max: 300,
        seal_interval: Duration::from_millis(50),
        merge_events_below: 1_500,
        segment_events_max: 3_000,
        ..StoreOptions::default()
    }
}

#[test]
fn copies_taken_while_appends_seal_and_merge_hold_every_acknowledged_event_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("store");
    let store = Arc::new(Store::open(&source, busy_options()).expect("open"));
    store.save_cursor("trail/x", 7).expect("cursor");
    let acknowledged = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, acknowledged, stop) = (store.clone(), acknowledged.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut next = 0u64;
            while !stop.load(Ordering::Acquire) {
                let batch: Vec<String> = (next..next + 50)
                    .map(|n| event(&format!("e{n}"), "PutItem", "2024-01-02T03:04:05Z"))
                    .collect();
                store
                    .append(records(&format!("[{}]", batch.join(","))))
                    .expect("append");
                next += 50;
                acknowledged.store(next, Ordering::Release);
            }
        })
    };
    while acknowledged.load(Ordering::Acquire) < 2_000 {
        std::thread::sleep(Duration::from_millis(5));
    }
    for copy in 0..8 {
        let before = acknowledged.load(Ordering::Acquire);
        let destination = dir.path().join(format!("copy-{copy}"));
        let made = backup_store(&source, &destination, &[("archive".to_owned(), 3)])
            .expect("backup while writing");
        assert!(
            made.last_seq >= before,
            "copy {copy} ends before what was acknowledged"
        );
        let restored = Store::open(&destination, StoreOptions::default()).expect("copy opens");
        let entries = restored.read_log(0, usize::MAX).expect("read the copy");
        let mut ids: Vec<&str> = entries
            .iter()
            .map(|entry| {
                let start = entry.json.find("\"eventID\":\"").expect("id") + 11;
                &entry.json[start..start + entry.json[start..].find('"').expect("end")]
            })
            .collect();
        let count = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), count, "copy {copy} holds an event twice");
        for n in 0..before {
            assert!(
                ids.binary_search(&format!("e{n}").as_str()).is_ok(),
                "copy {copy} lacks e{n}, acknowledged before it began"
            );
        }
        assert_eq!(restored.load_cursor("trail/x").expect("cursor"), 7);
        assert_eq!(restored.load_cursor("archive").expect("cursor"), 3);
    }
    stop.store(true, Ordering::Release);
    writer.join().expect("writer");
    let stats = store.stats().expect("stats");
    assert!(
        stats.segments > 1,
        "the writer's seals ran during the copies: {stats:?}"
    );
}
