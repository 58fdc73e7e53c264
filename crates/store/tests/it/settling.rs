//! The settler recompresses sealed segments: the store gets smaller and answers every read
//! exactly as before, whether it settles in the background, on request, or is closed
//! half-way through.

use std::path::Path;
use std::time::{Duration, Instant};

use opentrail_store::{LogEntry, Store, StoreOptions};

use crate::support::{records, varied_batch, varied_lookups};

const EVENTS: usize = 24_000;
const SEAL_EVENTS: usize = 6_000;

fn load(store: &Store) {
    for first in (0..EVENTS).step_by(1_000) {
        store
            .append(records(&varied_batch(first, 1_000)))
            .expect("append");
    }
    store.flush_tables().expect("seal");
}

fn whole_log(store: &Store) -> Vec<LogEntry> {
    let mut log = Vec::new();
    loop {
        let page = store
            .read_log(log.last().map_or(0, |entry: &LogEntry| entry.seq), 5_000)
            .expect("read_log");
        if page.is_empty() {
            return log;
        }
        log.extend(page);
    }
}

fn options(settle_in_background: bool) -> StoreOptions {
    StoreOptions {
        seal_events_max: SEAL_EVENTS,
        merge_events_below: 0,
        settle: settle_in_background,
        ..StoreOptions::default()
    }
}

/// Waits for the background settler; in `SCHED_IDLE` it may wait long on a busy machine.
fn wait_until_settled(store: &Store) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while store.stats().expect("stats").unsettled_segments > 0 {
        assert!(
            Instant::now() < deadline,
            "the settler did not finish in time"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct SetOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn temporary_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("segments"))
        .expect("segments dir")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect()
}

#[test]
fn settled_segments_are_smaller_and_answer_every_read_as_before() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), options(false)).expect("store opens");
    load(&store);
    let stats = store.stats().expect("stats");
    assert_eq!(stats.segments, (EVENTS / SEAL_EVENTS) as u64);
    assert_eq!(
        stats.unsettled_segments, stats.segments,
        "nothing settles when told not to"
    );
    let log = whole_log(&store);
    assert_eq!(log.len(), EVENTS);
    let found = varied_lookups(&store);
    assert!(
        found.iter().all(|ids| !ids.is_empty()),
        "each lookup finds events"
    );
    let records_before = store.space_by_part().records;

    store.settle().expect("settle");
    assert_eq!(store.stats().expect("stats").unsettled_segments, 0);
    let records_after = store.space_by_part().records;
    assert!(
        records_after < records_before,
        "records take {records_after} bytes settled, {records_before} before"
    );
    assert!(
        whole_log(&store) == log,
        "the log reads back the same records"
    );
    assert_eq!(varied_lookups(&store), found);
    assert_eq!(store.verify().expect("verify"), EVENTS as u64);
    assert!(temporary_files(dir.path()).is_empty());
    // Settled stays settled: a second pass rewrites nothing.
    store.settle().expect("settle again");
    assert_eq!(store.space_by_part().records, records_after);

    drop(store);
    let store = Store::open(dir.path(), options(true)).expect("store reopens");
    let stats = store.stats().expect("stats");
    assert_eq!(
        (stats.segments, stats.unsettled_segments),
        ((EVENTS / SEAL_EVENTS) as u64, 0)
    );
    assert!(
        whole_log(&store) == log,
        "the log reads back the same after reopening"
    );
    assert_eq!(varied_lookups(&store), found);
}

#[test]
fn the_background_settler_settles_sealed_segments_by_itself() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), options(true)).expect("store opens");
    load(&store);
    let log = whole_log(&store);
    wait_until_settled(&store);
    assert!(
        whole_log(&store) == log,
        "the log reads back the same records"
    );
    assert_eq!(store.verify().expect("verify"), EVENTS as u64);
}

#[test]
fn a_store_closed_while_settling_leaves_whole_segments_and_no_temporary_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), options(true)).expect("store opens");
    load(&store);
    let log = whole_log(&store);
    // Close it while a settled copy is being written.
    let deadline = Instant::now() + Duration::from_secs(600);
    while temporary_files(dir.path()).is_empty() {
        assert!(Instant::now() < deadline, "the settler never started");
        assert!(
            store.stats().expect("stats").unsettled_segments > 0,
            "everything settled between two looks; nothing to interrupt"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    drop(store);
    assert_eq!(temporary_files(dir.path()), Vec::<String>::new());
    let store = Store::open(dir.path(), options(false)).expect("store reopens");
    assert!(whole_log(&store) == log, "every event is there once");
    assert_eq!(store.verify().expect("verify"), EVENTS as u64);
}

#[test]
fn the_settler_waits_for_a_lull_in_lookups() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Small segments, each settled in a few steps: without the wait most would be settled
    // by the time they are counted.
    let seal_events = 1_000;
    let store = Store::open(
        dir.path(),
        StoreOptions {
            seal_events_max: seal_events,
            ..options(true)
        },
    )
    .expect("store opens");
    let stop_lookups = std::sync::atomic::AtomicBool::new(false);
    let unsettled_under_lookups = std::thread::scope(|scope| {
        // Lookups from before the first seal until after the last, one after another.
        let lookups = scope.spawn(|| {
            let mut rounds = 0u64;
            while !stop_lookups.load(std::sync::atomic::Ordering::Relaxed) {
                varied_lookups(&store);
                rounds += 1;
            }
            rounds
        });
        let _stop_lookups = SetOnDrop(&stop_lookups);
        load(&store);
        // In `SCHED_IDLE` the settler may get no CPU for a while on a busy machine: wait
        // until it has waited for the lookups once (a second at most), having done a step
        // per wait at most, far from a whole segment.
        let deadline = Instant::now() + Duration::from_secs(600);
        while store
            .stats()
            .expect("stats")
            .background_waited_for_lookups_ms
            == 0
        {
            assert!(
                Instant::now() < deadline,
                "the settler never waited for the lookups"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let unsettled = store.stats().expect("stats").unsettled_segments;
        stop_lookups.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(lookups.join().expect("lookups") > 0);
        unsettled
    });
    assert_eq!(
        unsettled_under_lookups,
        (EVENTS / seal_events) as u64,
        "no segment settled while lookups kept coming"
    );
    wait_until_settled(&store);
    assert_eq!(store.verify().expect("verify"), EVENTS as u64);
}

#[test]
fn lookups_running_while_the_settler_swaps_segments_answer_as_before() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The settler does not wait for lulls in lookups here: swaps must land among them.
    let store = Store::open(
        dir.path(),
        StoreOptions {
            lookup_quiet: Duration::ZERO,
            ..options(true)
        },
    )
    .expect("store opens");
    load(&store);
    let expected = varied_lookups(&store);
    // Lookups on two threads while segments are swapped under them: every one sees each
    // event once. The settler runs only on idle CPU, so each thread rests as long as its
    // last round took: with a fixed short rest, rounds that take longer (a debug build, a
    // slow machine) kept both cores busy and starved the settler, and this test and any
    // other waiting on a settle ran into their deadlines.
    let settled = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while !settled.load(std::sync::atomic::Ordering::Relaxed) {
                    let round_started = Instant::now();
                    assert!(
                        varied_lookups(&store) == expected,
                        "a lookup changed during a settle"
                    );
                    std::thread::sleep(round_started.elapsed().max(Duration::from_millis(2)));
                }
            });
        }
        // Set on the way out, panic included: a wait that failed stops the lookups, so
        // the test fails instead of hanging on threads that never end.
        let _stop_lookups = SetOnDrop(&settled);
        wait_until_settled(&store);
    });
    assert!(varied_lookups(&store) == expected);
    assert_eq!(store.verify().expect("verify"), EVENTS as u64);
}
