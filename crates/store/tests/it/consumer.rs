//! `LogConsumer`: scans read in seq order within their bounds and stop where the visitor
//! says, and the cursor it saves is what the store keeps (and what retention respects).

use opentrail_store::{AppendOutcome, LogConsumer, ScanBounds, ScanStep};

use crate::support::{event, open, records};

fn store_with_events(dir: &std::path::Path, count: usize) -> opentrail_store::Store {
    let store = open(dir);
    let lines: Vec<String> = (0..count)
        .map(|index| event(&format!("id-{index}"), "GetItem", "2026-11-01T00:00:00Z"))
        .collect();
    store.append(records(&lines.join("\n"))).expect("append");
    store
}

#[test]
fn a_scan_visits_entries_in_seq_order_and_stops_before_the_one_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_events(dir.path(), 10);
    let consumer = LogConsumer::new(store, "test-view");
    let mut seen = Vec::new();
    let bounds = ScanBounds {
        chunk_events: 3,
        chunks_max: None,
    };
    let through = consumer
        .scan(2, bounds, |entry| {
            if entry.seq == 8 {
                return ScanStep::StopBefore;
            }
            seen.push(entry.seq);
            ScanStep::Continue
        })
        .expect("scan");
    assert_eq!(seen, vec![3, 4, 5, 6, 7]);
    assert_eq!(
        through, 7,
        "the refused entry is where the next scan starts"
    );

    let mut rest = Vec::new();
    let through = consumer
        .scan(through, bounds, |entry| {
            rest.push(entry.seq);
            ScanStep::Continue
        })
        .expect("scan");
    assert_eq!(rest, vec![8, 9, 10]);
    assert_eq!(through, 10);
}

#[test]
fn a_bounded_scan_reads_at_most_its_chunks_and_the_next_one_continues() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_events(dir.path(), 10);
    let consumer = LogConsumer::new(store, "test-view");
    let bounds = ScanBounds {
        chunk_events: 2,
        chunks_max: Some(2),
    };
    let mut count = 0;
    let through = consumer
        .scan(0, bounds, |_| {
            count += 1;
            ScanStep::Continue
        })
        .expect("scan");
    assert_eq!((count, through), (4, 4));
    let through = consumer
        .scan(through, bounds, |_| ScanStep::Continue)
        .expect("scan");
    assert_eq!(through, 8);
}

#[test]
fn a_mapped_range_is_every_entry_in_it_once_in_seq_order_on_any_number_of_threads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_events(dir.path(), 3_000);
    let consumer = LogConsumer::new(store, "test-view");
    let event_id = |entry: opentrail_store::LogEntry| {
        let record: serde_json::Value = serde_json::from_str(&entry.json).expect("JSON");
        record["eventID"].as_str().map(str::to_owned)
    };
    let expected: Vec<(u64, Option<String>)> = (11..=2_990u64)
        .map(|seq| (seq, Some(format!("id-{}", seq - 1))))
        .collect();
    for workers in [1, 2, 3, 7] {
        let mapped = consumer
            .map_range(10, 2_990, workers, event_id)
            .expect("map");
        assert_eq!(mapped, expected, "{workers} workers");
    }
    // Past the end of the log, and an empty span.
    let tail = consumer
        .map_range(2_995, 9_000, 2, |entry| entry.seq)
        .expect("map");
    assert_eq!(
        tail.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        vec![2_996, 2_997, 2_998, 2_999, 3_000]
    );
    assert!(
        consumer
            .map_range(5, 5, 2, |entry| entry.seq)
            .expect("map")
            .is_empty()
    );
}

#[test]
fn a_wait_for_events_ends_when_another_thread_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_events(dir.path(), 3);
    // Nothing after seq 3: the wait ends with its timeout, the log unchanged.
    assert_eq!(
        store.wait_for_events_after(3, std::time::Duration::from_millis(10)),
        3
    );
    assert_eq!(store.wait_for_events_after(2, std::time::Duration::ZERO), 3);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            let line = event("id-late", "PutItem", "2026-11-01T00:00:00Z");
            store.append(records(&line)).expect("append");
        })
    };
    // An hour: only the append can end this wait in a test run.
    let last = store.wait_for_events_after(3, std::time::Duration::from_secs(3_600));
    assert_eq!(last, 4);
    writer.join().expect("writer");
}

#[test]
fn a_before_visible_hook_sees_the_outcomes_before_readers_see_the_seqs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_events(dir.path(), 3);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let lines = [
        event("id-1", "PutItem", "2026-11-01T00:00:00Z"),
        event("id-new", "PutItem", "2026-11-01T00:00:00Z"),
    ];
    let hook = {
        let store = store.clone();
        let seen = std::sync::Arc::clone(&seen);
        Box::new(move |outcomes: &[AppendOutcome]| {
            *seen.lock().expect("lock") = Some((outcomes.to_vec(), store.last_seq()));
        })
    };
    let outcomes = store
        .try_append_then(records(&lines.join("\n")), hook)
        .expect("append");
    let (hooked, last_seq_then) = seen.lock().expect("lock").take().expect("the hook ran");
    assert_eq!(hooked, outcomes, "the same outcomes the append returns");
    assert!(matches!(
        outcomes[..],
        [
            AppendOutcome::Duplicate { .. },
            AppendOutcome::Stored { seq: 4 }
        ]
    ));
    assert_eq!(
        last_seq_then, 3,
        "seq 4 was not visible yet when the hook ran"
    );
    assert_eq!(store.last_seq(), 4);
}

#[test]
fn the_saved_cursor_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = store_with_events(dir.path(), 5);
        let consumer = LogConsumer::new(store, "test-view");
        assert_eq!(consumer.load_cursor().expect("cursor"), 0);
        consumer.save_cursor(4).expect("save");
    }
    let consumer = LogConsumer::new(open(dir.path()), "test-view");
    assert_eq!(consumer.load_cursor().expect("cursor"), 4);
    assert_eq!(consumer.store().last_seq(), 5);
}
