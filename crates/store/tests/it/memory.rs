//! The store's memory stays within its write buffer budget however fast events come.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use opentrail_store::{Store, StoreOptions};

use crate::support::{event, records};

#[test]
fn unflushed_memtables_stay_within_twice_the_write_buffer_during_a_bulk_load() {
    const WRITE_BUFFER: u64 = 3 << 20;
    const GROUP_EVENTS_MAX: usize = 2_000;
    const WRITERS: usize = 8;
    const BATCHES_PER_WRITER: usize = 20;
    const BATCH_EVENTS: usize = 250;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(
        dir.path(),
        StoreOptions {
            write_buffer_bytes: WRITE_BUFFER,
            group_commit_events_max: GROUP_EVENTS_MAX,
            ..StoreOptions::default()
        },
    )
    .expect("store opens");
    // About 2 KB per event and 40,000 events: 80 MB from 8 concurrent producers, so the
    // group commits are large and flushing has to keep up with them.
    let padding = "x".repeat(1500);
    let most_unflushed = AtomicU64::new(0);
    let loading = AtomicBool::new(true);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while loading.load(Ordering::Acquire) {
                let unflushed = store.stats().expect("stats").unflushed_bytes;
                most_unflushed.fetch_max(unflushed, Ordering::AcqRel);
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let producers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (store, padding) = (&store, &padding);
                scope.spawn(move || {
                    for batch in 0..BATCHES_PER_WRITER {
                        let json: Vec<String> = (0..BATCH_EVENTS)
                            .map(|n| {
                                let record = event(
                                    &format!("id-{writer}-{batch}-{n}"),
                                    "PutItem",
                                    "2024-05-01T10:00:00Z",
                                );
                                format!(
                                    r#"{},"padding":"{padding}"}}"#,
                                    &record[..record.len() - 1]
                                )
                            })
                            .collect();
                        store.append(records(&json.join("\n"))).expect("append");
                    }
                })
            })
            .collect();
        for producer in producers {
            producer.join().expect("producer");
        }
        loading.store(false, Ordering::Release);
    });
    // The writer checks before each group commit, so one group (up to 2,000 events of
    // about 3 KB with their index entries) may come on top of the limit.
    let one_group = (GROUP_EVENTS_MAX * 3 * 1024) as u64;
    let most_unflushed = most_unflushed.into_inner();
    assert!(
        most_unflushed <= 2 * WRITE_BUFFER + one_group,
        "{most_unflushed} unflushed bytes, budget {WRITE_BUFFER}"
    );
    assert_eq!(
        store.stats().expect("stats").last_seq,
        (WRITERS * BATCHES_PER_WRITER * BATCH_EVENTS) as u64,
        "every event was stored"
    );
}
