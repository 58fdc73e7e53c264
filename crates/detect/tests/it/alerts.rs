//! The alert log and the detection consumer: matches become alerts once, a torn last line
//! is cut, and a crash between appending alerts and saving the cursor repeats nothing.

use std::path::Path;
use std::sync::{Arc, RwLock};

use opentrail_detect::{AlertLog, DETECTIONS_CONSUMER, DetectionConsumer};
use opentrail_event::{IngestContext, parse_batch};
use opentrail_store::{Store, StoreOptions};

use crate::load_starter_rules;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/events")
        .join(format!("{name}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// A store holding the fixture events, in order, each with its own eventID.
fn store_with(dir: &Path, fixtures: &[&str]) -> Store {
    let store = Store::open(&dir.join("store"), StoreOptions::default()).expect("store opens");
    let records: Vec<serde_json::Value> = fixtures
        .iter()
        .enumerate()
        .map(|(index, name)| {
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
    store
        .append(
            batch
                .records
                .into_iter()
                .map(|(_, record)| record)
                .collect(),
        )
        .expect("append");
    store
}

fn consumer(store: &Store, alerts: &Arc<AlertLog>) -> DetectionConsumer {
    DetectionConsumer::open(
        store.clone(),
        Arc::clone(alerts),
        Arc::new(RwLock::new(Arc::new(load_starter_rules()))),
    )
    .expect("consumer opens")
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
