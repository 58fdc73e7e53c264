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

/// Lookups fault segment index pages into the process, where they count in its RSS for as
/// long as the mapping lives; the trimmer drops them past `rss_soft_limit_bytes`, and lookups
/// still answer from the page cache afterwards.
#[cfg(target_os = "linux")]
#[test]
fn segment_pages_that_lookups_map_are_dropped_past_the_rss_soft_limit() {
    use opentrail_event::FilterField;
    use opentrail_store::LookupQuery;

    use crate::support::{ACCOUNT, REGION};

    const SEGMENTS: usize = 3;
    const EVENTS_PER_SEGMENT: usize = 20_000;
    let loaded = |rss_soft_limit_bytes: u64| {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(
            dir.path(),
            StoreOptions {
                rss_soft_limit_bytes,
                // A merge or a settle would replace the segments (and their mappings)
                // under the test.
                merge_events_below: 0,
                settle: false,
                ..StoreOptions::default()
            },
        )
        .expect("store opens");
        for segment in 0..SEGMENTS {
            let json: Vec<String> = (0..EVENTS_PER_SEGMENT)
                .map(|n| {
                    // A user of its own per event: term tables and postings of many pages.
                    event(
                        &format!("id-{segment}-{n}"),
                        "GetItem",
                        "2024-05-01T10:00:00Z",
                    )
                    .replace("alice", &format!("user-{segment}-{n}"))
                })
                .collect();
            store.append(records(&json.join("\n"))).expect("append");
            store.flush_tables().expect("seal");
        }
        (dir, store)
    };
    let look_up_users = |store: &Store| {
        for n in (0..EVENTS_PER_SEGMENT).step_by(97) {
            let mut query = LookupQuery::new(Some(ACCOUNT.into()), Some(REGION.into()), 50);
            query.filters = vec![(FilterField::Username, format!("user-1-{n}"))];
            let page = store.lookup(&query).expect("lookup");
            let ids: Vec<&str> = page
                .events
                .iter()
                .map(|e| e.record.event_id.as_str())
                .collect();
            assert_eq!(ids, [format!("id-1-{n}")], "user-1-{n} finds its one event");
        }
    };
    let mapped = |store: &Store| store.stats().expect("stats").mapped_segment_bytes;

    let (_kept_dir, kept) = loaded(u64::MAX);
    look_up_users(&kept);
    let kept_after_lookups = mapped(&kept);
    assert!(kept_after_lookups > 0, "lookups map index pages in");
    // Many of the trimmer's checks: under the limit, nothing is dropped.
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(mapped(&kept) > 0, "pages stay mapped under the limit");

    let (_trimmed_dir, trimmed) = loaded(0);
    look_up_users(&trimmed);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while mapped(&trimmed) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the sealer never dropped {} mapped bytes",
            mapped(&trimmed)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The pages come back from the page cache: the same answers.
    look_up_users(&trimmed);
}

/// The split of bytes per event the store benchmark prints accounts for every byte of the
/// segments, their columns and the journals.
#[test]
fn space_by_part_accounts_for_every_byte_of_segments_columns_and_journals() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = crate::support::open(dir.path());
    let batch = |from: usize| -> Vec<String> {
        (from..from + 2_000)
            .map(|n| event(&format!("id-{n}"), "GetItem", "2024-05-01T10:00:00Z"))
            .collect()
    };
    store.append(records(&batch(0).join("\n"))).expect("append");
    store.flush_tables().expect("seal");
    // A second batch stays in the head and its journal.
    store
        .append(records(&batch(2_000).join("\n")))
        .expect("append");

    let space = store.space_by_part();
    let files = |sub: &str| -> u64 {
        std::fs::read_dir(dir.path().join(sub))
            .expect("list")
            .map(|entry| entry.expect("entry").metadata().expect("metadata").len())
            .sum()
    };
    assert!(space.records > 0 && space.columns > 0 && space.postings > 0);
    assert!(space.ids > 0 && space.positions > 0 && space.journal > 0);
    assert_eq!(
        space.records + space.postings + space.ids + space.positions + space.columns,
        files("segments"),
        "{space:?}"
    );
    assert_eq!(space.journal, files("journal"), "{space:?}");
}

/// When unsealed heads pass their budget, appends wait for the sealer, and the store's
/// stats say so (the figures behind `opentrail_store_sealer_busy_seconds` and
/// `opentrail_store_appends_waited_for_sealer_seconds`): an operator can tell ingest held
/// back by sealing from ingest held back by anything else.
#[test]
fn stats_count_the_sealers_work_and_the_appends_that_waited_for_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Every head is over its budget once it holds an event: it is rotated after its
    // group commit, and the next append waits until the sealer has sealed it.
    let store = Store::open(
        dir.path(),
        StoreOptions {
            write_buffer_bytes: 1,
            // One segment per event, left as they are.
            merge_events_below: 0,
            settle: false,
            ..StoreOptions::default()
        },
    )
    .expect("store opens");
    let before = store.stats().expect("stats");
    assert_eq!(
        (
            before.sealer_busy_ms,
            before.appends_waited_for_sealer_ms,
            before.rows_sealed_on_second_thread
        ),
        (0, 0, 0),
        "a new store has neither sealed nor waited"
    );
    for n in 0..20 {
        append_put_item(&store, n);
    }
    store.flush_tables().expect("flush");
    let after = store.stats().expect("stats");
    assert!(
        after.segments >= 19,
        "{} segments: every event was sealed apart",
        after.segments
    );
    // Each seal writes and fsyncs two files, and 19 appends waited for one each.
    assert!(after.sealer_busy_ms > 0, "{after:?}");
    assert!(after.appends_waited_for_sealer_ms > 0, "{after:?}");
    assert!(
        after.appends_waited_for_sealer_ms <= after.sealer_busy_ms + 1_000,
        "appends wait only while the sealer works: {after:?}"
    );
    // Seals keep the journal's blocks: none compresses records, on either thread (merges
    // and seals that rewrite records still take the second one; see `shared.rs`). What
    // they wrote reads back.
    assert_eq!(after.rows_sealed_on_second_thread, 0, "{after:?}");
    for n in 0..20 {
        let id = format!("id-{n}");
        let found = store
            .get_event(crate::support::ACCOUNT, &id)
            .expect("get_event");
        assert_eq!(found.map(|event| event.record.event_id), Some(id));
    }
}

/// Without waiting appends, seals keep to one thread: the other core stays with lookups
/// and requests.
#[test]
fn seals_keep_to_one_thread_when_no_append_waits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("store opens");
    for n in 0..3 {
        append_put_item(&store, n);
        store.flush_tables().expect("seal");
    }
    let stats = store.stats().expect("stats");
    assert!(stats.segments >= 1, "{stats:?}");
    assert_eq!(stats.appends_waited_for_sealer_ms, 0, "{stats:?}");
    assert_eq!(stats.rows_sealed_on_second_thread, 0, "{stats:?}");
}

/// Appends one event, `id-<n>`.
fn append_put_item(store: &Store, n: usize) {
    let json = event(&format!("id-{n}"), "PutItem", "2024-05-01T10:00:00Z");
    store.append(records(&json)).expect("append");
}
