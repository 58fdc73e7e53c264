//! The alert log and the detection consumer: matches become alerts once, a torn last line
//! is cut, and a crash between appending alerts and saving the cursor repeats nothing.

use std::path::Path;
use std::sync::{Arc, RwLock};

use opentrail_detect::{AlertLog, DETECTIONS_CONSUMER, DetectionConsumer, Screening, Verdicts};
use opentrail_event::{EventRecord, IngestContext, parse_batch};
use opentrail_store::{Store, StoreOptions};

use crate::load_starter_rules;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/events")
        .join(format!("{name}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The fixture events, in order, each with its own eventID.
fn fixture_records(fixtures: &[&str]) -> Vec<EventRecord> {
    fixture_records_from(0, fixtures)
}

/// [`fixture_records`], numbering the eventIDs from `first`.
fn fixture_records_from(first: usize, fixtures: &[&str]) -> Vec<EventRecord> {
    let records: Vec<serde_json::Value> = fixtures
        .iter()
        .enumerate()
        .map(|(offset, name)| {
            let index = first + offset;
            let mut record: serde_json::Value =
                serde_json::from_str(&fixture(name)).expect("fixture is JSON");
            record["eventID"] = format!("00000000-0000-4000-8000-{index:012}").into();
            record
        })
        .collect();
    let body = serde_json::json!({ "Records": records }).to_string();
    let context = IngestContext {
        account_id: "111122223333".into(),
        region: "us-east-1".into(),
    };
    let batch = parse_batch(body.as_bytes(), &context).expect("batch parses");
    assert!(batch.failures.is_empty(), "{:?}", batch.failures);
    batch
        .records
        .into_iter()
        .map(|(_, record)| record)
        .collect()
}

fn open_store(dir: &Path) -> Store {
    Store::open(&dir.join("store"), StoreOptions::default()).expect("store opens")
}

/// A store holding the fixture events, in order.
fn store_with(dir: &Path, fixtures: &[&str]) -> Store {
    let store = open_store(dir);
    store.append(fixture_records(fixtures)).expect("append");
    store
}

fn starter_screening() -> Arc<Screening> {
    Arc::new(Screening::new(Arc::new(RwLock::new(Arc::new(
        load_starter_rules(),
    )))))
}

fn consumer(store: &Store, alerts: &Arc<AlertLog>) -> DetectionConsumer {
    screened_consumer(store, alerts, starter_screening())
}

fn screened_consumer(
    store: &Store,
    alerts: &Arc<AlertLog>,
    screening: Arc<Screening>,
) -> DetectionConsumer {
    DetectionConsumer::open(store.clone(), Arc::clone(alerts), screening).expect("consumer opens")
}

/// (seq, eventName) of every alert, oldest first.
fn alerted(alerts: &AlertLog) -> Vec<(u64, String)> {
    alerts
        .read_from(0, 100)
        .expect("read")
        .into_iter()
        .map(|alert| (alert.seq, alert.event_name))
        .collect()
}

const MIXED: [&str; 6] = [
    "dynamodb_table_deleted.quiet",
    "dynamodb_table_deleted.fires",
    "s3_bucket_deleted.quiet",
    "root_console_login.fires",
    "s3_bucket_deleted.fires",
    "root_console_login.quiet",
];

#[test]
fn a_batch_screened_at_ingest_raises_the_alerts_a_full_read_raises() {
    let unscreened_dir = tempfile::tempdir().expect("tempdir");
    let store = store_with(unscreened_dir.path(), &MIXED);
    let alerts = Arc::new(AlertLog::open(&unscreened_dir.path().join("alerts")).expect("log"));
    let full = consumer(&store, &alerts).run_once().expect("scan");

    let dir = tempfile::tempdir().expect("tempdir");
    let screened_store = open_store(dir.path());
    let screening = starter_screening();
    let records = fixture_records(&MIXED);
    let verdicts = screening
        .judge(records.iter().map(|record| record.json.as_str()))
        .expect("rules run");
    let outcomes = screened_store.append(records).expect("append");
    screening.note(verdicts, &outcomes);
    let screened_alerts = Arc::new(AlertLog::open(&dir.path().join("alerts")).expect("log"));
    let screened = screened_consumer(&screened_store, &screened_alerts, screening)
        .run_once()
        .expect("scan");

    assert_eq!(
        (screened.events, screened.alerts, screened.through_seq),
        (full.events, full.alerts, full.through_seq)
    );
    assert_eq!(full.alerts, 3);
    assert_eq!(alerted(&screened_alerts), alerted(&alerts));
}

#[test]
fn the_consumer_reads_only_what_a_screened_run_admits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let screening = starter_screening();
    let records = fixture_records(&MIXED);
    // Verdicts that wrongly drop the DynamoDB deletion (seq 2): the consumer does not
    // read it, which is how it saves the work.
    let verdicts =
        Verdicts::assumed_for_test(screening.rules(), vec![true, false, true, true, true, true]);
    let outcomes = store.append(records).expect("append");
    screening.note(verdicts, &outcomes);
    let alerts = Arc::new(AlertLog::open(&dir.path().join("alerts")).expect("log"));
    let report = screened_consumer(&store, &alerts, Arc::clone(&screening))
        .run_once()
        .expect("scan");
    assert_eq!((report.events, report.through_seq), (6, 6));
    assert_eq!(
        alerted(&alerts),
        vec![
            (4, "ConsoleLogin".to_owned()),
            (5, "DeleteBucket".to_owned())
        ]
    );

    // Screened with rules that are no longer in force: read whole again.
    let fresh_dir = tempfile::tempdir().expect("tempdir");
    let fresh_store = open_store(fresh_dir.path());
    let outcomes = fresh_store.append(fixture_records(&MIXED)).expect("append");
    let stale =
        Verdicts::assumed_for_test(Arc::new(load_starter_rules()), vec![false; MIXED.len()]);
    let fresh_screening = starter_screening();
    fresh_screening.note(stale, &outcomes);
    let fresh_alerts = Arc::new(AlertLog::open(&fresh_dir.path().join("alerts")).expect("log"));
    screened_consumer(&fresh_store, &fresh_alerts, fresh_screening)
        .run_once()
        .expect("scan");
    assert_eq!(fresh_alerts.len(), 3);
}

#[test]
fn each_match_becomes_one_alert_and_a_second_scan_adds_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with(
        dir.path(),
        &[
            "dynamodb_table_deleted.quiet",
            "dynamodb_table_deleted.fires",
            "root_console_login.fires",
        ],
    );
    let alerts = Arc::new(AlertLog::open(&dir.path().join("alerts")).expect("alert log"));
    let detections = consumer(&store, &alerts);
    let report = detections.run_once().expect("scan");
    assert_eq!(
        (report.events, report.alerts, report.through_seq),
        (3, 2, 3)
    );
    let listed = alerts.read_from(0, 10).expect("read");
    assert_eq!(
        listed
            .iter()
            .map(|alert| (alert.seq, alert.event_name.as_str()))
            .collect::<Vec<_>>(),
        vec![(2, "DeleteTable"), (3, "ConsoleLogin")]
    );
    assert_eq!(listed[0].alert_id, format!("2-{}", listed[0].rule_id));
    let again = detections.run_once().expect("scan");
    assert_eq!((again.events, again.alerts), (0, 0));
    assert_eq!(alerts.len(), 2);
    assert_eq!(
        store.load_cursor(DETECTIONS_CONSUMER).expect("cursor"),
        3,
        "the cursor covers what was matched"
    );
}

#[test]
fn a_crash_before_the_cursor_save_repeats_no_alert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with(
        dir.path(),
        &[
            "dynamodb_table_deleted.fires",
            "s3_bucket_deleted.quiet",
            "s3_bucket_deleted.fires",
        ],
    );
    let alerts_dir = dir.path().join("alerts");
    {
        let alerts = Arc::new(AlertLog::open(&alerts_dir).expect("alert log"));
        consumer(&store, &alerts).run_once().expect("scan");
        assert_eq!(alerts.len(), 2);
    }
    // As if the process died after the alerts were fsynced but before the cursor was.
    store.save_cursor(DETECTIONS_CONSUMER, 0).expect("cursor");
    let alerts = Arc::new(AlertLog::open(&alerts_dir).expect("alert log reopens"));
    let report = consumer(&store, &alerts).run_once().expect("scan");
    assert_eq!(report.alerts, 0, "nothing matched twice");
    assert_eq!(alerts.len(), 2);
}

#[test]
fn a_cursor_saved_less_often_than_every_scan_repeats_and_misses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with(dir.path(), &["dynamodb_table_deleted.fires"]);
    let alerts_dir = dir.path().join("alerts");
    {
        let alerts = Arc::new(AlertLog::open(&alerts_dir).expect("alert log"));
        let detections = consumer(&store, &alerts);
        detections.run_once().expect("first scan");
        assert_eq!(store.load_cursor(DETECTIONS_CONSUMER).expect("cursor"), 1);
        // A firing event, then quiet ones, matched within a second of the first save:
        // the cursor stays behind them.
        let records = fixture_records_from(
            1,
            &[
                "s3_bucket_deleted.fires",
                "s3_bucket_deleted.quiet",
                "root_console_login.quiet",
            ],
        );
        store.append(records).expect("append");
        let report = detections.run_once().expect("second scan");
        assert_eq!(
            (report.events, report.alerts, report.through_seq),
            (3, 1, 4)
        );
        assert_eq!(store.load_cursor(DETECTIONS_CONSUMER).expect("cursor"), 1);
        let again = detections.run_once().expect("third scan");
        assert_eq!(
            (again.events, again.alerts),
            (0, 0),
            "the running consumer goes on from where it is, not from the saved cursor"
        );
    }
    // A restart rescans only what follows the newest alert: nothing fires twice.
    let alerts = Arc::new(AlertLog::open(&alerts_dir).expect("alert log reopens"));
    let report = consumer(&store, &alerts)
        .run_once()
        .expect("scan after restart");
    assert_eq!((report.events, report.alerts), (2, 0));
    assert_eq!(
        alerted(&alerts),
        vec![
            (1, "DeleteTable".to_owned()),
            (2, "DeleteBucket".to_owned())
        ]
    );
}

#[test]
fn a_torn_last_line_is_cut_and_the_rest_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with(dir.path(), &["dynamodb_table_deleted.fires"]);
    let alerts_dir = dir.path().join("alerts");
    {
        let alerts = Arc::new(AlertLog::open(&alerts_dir).expect("alert log"));
        consumer(&store, &alerts).run_once().expect("scan");
    }
    let path = alerts_dir.join(opentrail_detect::ALERT_LOG_FILE_NAME);
    let mut bytes = std::fs::read(&path).expect("read");
    let whole = bytes.len();
    bytes.extend_from_slice(br#"{"alertId":"3-torn","rul"#);
    std::fs::write(&path, &bytes).expect("write");
    let alerts = AlertLog::open(&alerts_dir).expect("reopens");
    assert_eq!((alerts.len(), alerts.last_seq()), (1, 1));
    assert_eq!(
        std::fs::metadata(&path).expect("metadata").len(),
        whole as u64
    );
}

#[test]
fn newest_lists_newest_first_within_what_is_visible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with(
        dir.path(),
        &[
            "dynamodb_table_deleted.fires",
            "s3_bucket_deleted.fires",
            "root_console_login.fires",
        ],
    );
    let alerts = Arc::new(AlertLog::open(&dir.path().join("alerts")).expect("alert log"));
    consumer(&store, &alerts).run_once().expect("scan");
    let newest = alerts.newest(2, |_| true).expect("newest");
    assert_eq!(
        newest.iter().map(|alert| alert.seq).collect::<Vec<_>>(),
        vec![3, 2]
    );
    let only_s3 = alerts
        .newest(10, |alert| alert.event_source == "s3.amazonaws.com")
        .expect("newest");
    assert_eq!(only_s3.len(), 1);
    assert!(alerts.newest(10, |_| false).expect("newest").is_empty());
}
