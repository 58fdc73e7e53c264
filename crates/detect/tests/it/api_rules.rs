//! Rules managed through `Detections` (what the API calls): added, disabled, enabled and
//! removed, kept across a reopen, refused with a reason, and run by the consumer even when
//! no rules directory is configured.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use opentrail_detect::{DetectError, Detections, DetectionsOptions, RuleOrigin};
use opentrail_event::{IngestContext, parse_batch};
use opentrail_store::{Store, StoreOptions};

use crate::{rule_id, starter_dir};

const ADDED_ID: &str = "5b0c1a55-0000-4000-8000-00000000a001";

/// A rule of our own: fires on `PutBucketPolicy`.
fn bucket_policy_rule(id: &str) -> String {
    format!(
        r#"title: Bucket policy changed
id: {id}
status: test
level: medium
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventSource: s3.amazonaws.com
        eventName: PutBucketPolicy
    condition: selection
"#
    )
}

fn bucket_policy_event(event_id: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.09","eventTime":"2026-11-30T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"PutBucketPolicy","awsRegion":"us-east-1","eventID":"{event_id}","recipientAccountId":"111122223333","requestParameters":{{"bucketName":"acme"}}}}"#
    )
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/events")
        .join(format!("{name}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn options(dir: &Path, rules_dir: Option<PathBuf>) -> DetectionsOptions {
    DetectionsOptions {
        alerts_dir: dir.join("alerts"),
        rules_state_dir: dir.join("detections"),
        rules_dir,
        targets: Vec::new(),
    }
}

fn open(dir: &Path, rules_dir: Option<PathBuf>) -> (Store, Detections) {
    let store = Store::open(&dir.join("store"), StoreOptions::default()).expect("store opens");
    let detections =
        Detections::open(store.clone(), options(dir, rules_dir)).expect("detections open");
    (store, detections)
}

fn fires(detections: &Detections, record: &str) -> Vec<String> {
    detections
        .rules()
        .matches(record)
        .expect("the record is JSON")
        .into_iter()
        .map(|found| found.rule_id)
        .collect()
}

fn append(store: &Store, record: &str) {
    let context = IngestContext {
        account_id: "111122223333".into(),
        region: "us-east-1".into(),
    };
    let batch = parse_batch(record.as_bytes(), &context).expect("the record parses");
    store
        .append(
            batch
                .records
                .into_iter()
                .map(|(_, record)| record)
                .collect(),
        )
        .expect("append");
}

#[test]
fn an_added_rule_runs_is_listed_as_api_and_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let event = bucket_policy_event("00000000-0000-4000-8000-0000000000e1");
    {
        let (_store, detections) = open(dir.path(), None);
        assert!(fires(&detections, &event).is_empty());
        let added = detections
            .add_rule(&bucket_policy_rule(ADDED_ID))
            .expect("the rule is added");
        assert_eq!(
            (added.info.id.as_str(), added.origin, added.enabled),
            (ADDED_ID, RuleOrigin::Api, true)
        );
        assert_eq!(added.info.title, "Bucket policy changed");
        assert_eq!(fires(&detections, &event), vec![ADDED_ID.to_owned()]);
        let catalog = detections.catalog();
        assert_eq!(catalog.rules.len(), 1);
        assert!(catalog.refused.is_empty(), "{:?}", catalog.refused);
    }
    let (_store, reopened) = open(dir.path(), None);
    assert_eq!(fires(&reopened, &event), vec![ADDED_ID.to_owned()]);
    assert_eq!(
        reopened.catalog().rule(ADDED_ID).map(|rule| rule.origin),
        Some(RuleOrigin::Api)
    );
}

#[test]
fn a_disabled_rule_is_listed_but_matches_nothing_until_enabled_and_stays_so_after_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let starter = starter_dir();
    let deleted_table = fixture("dynamodb_table_deleted.fires");
    let table_rule = {
        let (_store, detections) = open(dir.path(), Some(starter.clone()));
        let table_rule = rule_id(&detections.rules(), "dynamodb_table_deleted");
        assert_eq!(fires(&detections, &deleted_table), vec![table_rule.clone()]);
        let disabled = detections
            .set_rule_enabled(&table_rule, false)
            .expect("a directory rule can be disabled");
        assert_eq!(
            (disabled.origin, disabled.enabled),
            (RuleOrigin::Directory, false)
        );
        assert!(fires(&detections, &deleted_table).is_empty());
        detections
            .add_rule(&bucket_policy_rule(ADDED_ID))
            .expect("added");
        detections
            .set_rule_enabled(ADDED_ID, false)
            .expect("an API rule can be disabled");
        table_rule
    };
    let (_store, reopened) = open(dir.path(), Some(starter));
    assert!(
        fires(&reopened, &deleted_table).is_empty(),
        "disabled stays disabled"
    );
    assert!(
        fires(
            &reopened,
            &bucket_policy_event("00000000-0000-4000-8000-0000000000e2")
        )
        .is_empty()
    );
    let catalog = reopened.catalog();
    assert_eq!(
        catalog.rule(&table_rule).map(|rule| rule.enabled),
        Some(false)
    );
    assert_eq!(catalog.rule(ADDED_ID).map(|rule| rule.enabled), Some(false));
    assert_eq!(
        catalog.rules.iter().filter(|rule| rule.enabled).count(),
        6,
        "the other starter rules still run"
    );
    reopened
        .set_rule_enabled(&table_rule, true)
        .expect("enabled again");
    assert_eq!(fires(&reopened, &deleted_table), vec![table_rule]);
}

#[test]
fn api_rules_are_removed_and_directory_rules_are_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let starter = starter_dir();
    {
        let (_store, detections) = open(dir.path(), Some(starter.clone()));
        detections
            .add_rule(&bucket_policy_rule(ADDED_ID))
            .expect("added");
        let removed = detections.remove_rule(ADDED_ID).expect("removed");
        assert_eq!(removed.info.id, ADDED_ID);
        assert!(detections.catalog().rule(ADDED_ID).is_none());
        let table_rule = rule_id(&detections.rules(), "dynamodb_table_deleted");
        assert!(matches!(
            detections.remove_rule(&table_rule),
            Err(DetectError::DirectoryRule { .. })
        ));
        assert!(matches!(
            detections.remove_rule("no-such-rule"),
            Err(DetectError::UnknownRule { .. })
        ));
        assert!(matches!(
            detections.set_rule_enabled("no-such-rule", false),
            Err(DetectError::UnknownRule { .. })
        ));
    }
    let (_store, reopened) = open(dir.path(), Some(starter));
    assert!(reopened.catalog().rule(ADDED_ID).is_none());
    assert_eq!(reopened.catalog().rules.len(), 7);
}

#[test]
fn rules_that_cannot_run_or_clash_are_refused_with_a_reason_and_nothing_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, detections) = open(dir.path(), Some(starter_dir()));
    let table_rule = rule_id(&detections.rules(), "dynamodb_table_deleted");
    let reason = |text: &str| match detections.add_rule(text) {
        Err(DetectError::Refused(refusals)) => refusals
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
        other => panic!("expected a refusal, got {other:?}"),
    };

    let clash = reason(&bucket_policy_rule(&table_rule));
    assert!(clash.contains("already used"), "{clash}");
    let broken = bucket_policy_rule(ADDED_ID).replace("condition: selection", "condition: nothing");
    let unknown_selection = reason(&broken);
    assert!(
        unknown_selection.contains(":12"),
        "names the line: {unknown_selection}"
    );
    let two = format!(
        "{}---\n{}",
        bucket_policy_rule(ADDED_ID),
        bucket_policy_rule("5b0c1a55-0000-4000-8000-00000000a002")
    );
    assert!(reason(&two).contains("one rule at a time"));
    let odd_id = reason(&bucket_policy_rule("../escape"));
    assert!(odd_id.contains("cannot be stored"), "{odd_id}");
    let other_source = bucket_policy_rule(ADDED_ID).replace("service: cloudtrail", "service: s3");
    assert!(reason(&other_source).contains("logsource"));

    assert_eq!(detections.catalog().rules.len(), 7, "nothing was added");
    let api_dir = dir.path().join("detections/rules");
    assert_eq!(
        std::fs::read_dir(&api_dir)
            .expect("the API rules dir")
            .count(),
        0,
        "no file was kept"
    );
}

/// With no rules directory, no consumer runs until a rule is added; then the events
/// stored after it are matched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_runs_once_a_rule_is_added_without_a_rules_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, detections) = open(dir.path(), None);
    let workers = detections.start().expect("workers start");
    detections
        .add_rule(&bucket_policy_rule(ADDED_ID))
        .expect("added");
    append(
        &store,
        &bucket_policy_event("00000000-0000-4000-8000-0000000000e3"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while detections.alerts().is_empty() {
        assert!(Instant::now() < deadline, "no alert was made");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alerts = detections.alerts().read_from(0, 10).expect("read");
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        (alerts[0].rule_id.as_str(), alerts[0].event_name.as_str()),
        (ADDED_ID, "PutBucketPolicy")
    );
    workers.stop().await;
}

/// A consumer cursor left by a run with rules would hold retention back for ever; a start
/// without any rule drops it.
#[test]
fn a_start_without_rules_drops_the_cursor_an_earlier_run_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (store, _detections) = open(dir.path(), Some(starter_dir()));
        append(
            &store,
            &bucket_policy_event("00000000-0000-4000-8000-0000000000e4"),
        );
        store
            .save_cursor(opentrail_detect::DETECTIONS_CONSUMER, 1)
            .expect("cursor");
    }
    let (store, _detections) = open(dir.path(), None);
    assert_eq!(
        store
            .load_cursor(opentrail_detect::DETECTIONS_CONSUMER)
            .expect("cursor"),
        0
    );
}
