use std::time::Duration;

use opentrail_store::{LookupQuery, Store, StoreOptions};

use crate::support::{ACCOUNT, REGION, event, records};

const DAY_MS: i64 = 24 * 3600 * 1000;

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn open_with_retention(dir: &std::path::Path, days: u64) -> Store {
    let options = StoreOptions {
        retention: Duration::from_secs(days * 24 * 3600),
        ..StoreOptions::default()
    };
    Store::open(dir, options).expect("store opens")
}

fn ids_at(store: &Store, now_ms: i64) -> Vec<String> {
    let query = LookupQuery::new(Some(ACCOUNT.into()), Some(REGION.into()), 50);
    let page = store.lookup_at(&query, now_ms).expect("lookup");
    page.events
        .into_iter()
        .map(|event| event.record.event_id)
        .collect()
}

#[test]
fn old_event_times_stay_findable_because_retention_counts_from_ingest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_with_retention(dir.path(), 90);
    store
        .append(records(&event("from-2019", "Op", "2019-03-01T00:00:00Z")))
        .expect("append");
    assert_eq!(ids_at(&store, now_ms() + 89 * DAY_MS), vec!["from-2019"]);
}

#[test]
fn expired_events_are_hidden_then_removed_and_space_is_reclaimed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_with_retention(dir.path(), 90);
    let lines: Vec<String> = (0..2_000)
        .map(|i| event(&format!("old-{i}"), "Op", "2024-01-01T00:00:00Z"))
        .collect();
    store.append(records(&lines.join("\n"))).expect("append");
    store.flush_tables().expect("flush");
    store.compact().expect("compact");
    let full_bytes = store.stats().expect("stats").table_bytes;

    let later = now_ms() + 91 * DAY_MS;
    assert!(
        ids_at(&store, later).is_empty(),
        "expired events are never returned, even before removal"
    );
    let report = store.expire(later).expect("expire");
    assert_eq!(report.events_removed, 2_000);
    assert_eq!(report.expired_through_seq, 2_000);
    assert!(store.read_log(0, 10).expect("log").is_empty());
    assert!(store.get_event(ACCOUNT, "old-1").expect("get").is_none());

    store.flush_tables().expect("flush");
    store.compact().expect("compact");
    let after_bytes = store.stats().expect("stats").table_bytes;
    assert!(
        after_bytes < full_bytes / 2,
        "space reclaimed: {full_bytes} -> {after_bytes}"
    );
}

#[test]
fn sequence_numbers_continue_after_everything_expired_and_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open_with_retention(dir.path(), 1);
        store
            .append(records(&event("gone", "Op", "2024-01-01T00:00:00Z")))
            .expect("append");
        store.expire(now_ms() + 2 * DAY_MS).expect("expire");
    }
    let store = open_with_retention(dir.path(), 1);
    let outcomes = store
        .append(records(&event("fresh", "Op", "2024-01-01T00:00:00Z")))
        .expect("append");
    assert_eq!(
        outcomes,
        vec![opentrail_store::AppendOutcome::Stored { seq: 2 }]
    );
}

#[test]
fn retention_waits_for_consumers_that_have_not_read_the_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_with_retention(dir.path(), 1);
    let lines: Vec<String> = (0..10)
        .map(|i| event(&format!("e-{i}"), "Op", "2024-01-01T00:00:00Z"))
        .collect();
    store.append(records(&lines.join("\n"))).expect("append");
    store.save_cursor("delivery", 4).expect("cursor");
    let report = store.expire(now_ms() + 2 * DAY_MS).expect("expire");
    assert_eq!(report.events_removed, 4);
    assert_eq!(
        store
            .read_log(0, 100)
            .expect("log")
            .first()
            .map(|entry| entry.seq),
        Some(5)
    );
    store.delete_cursor("delivery").expect("delete cursor");
    assert_eq!(
        store
            .expire(now_ms() + 2 * DAY_MS)
            .expect("expire")
            .events_removed,
        6
    );
}
