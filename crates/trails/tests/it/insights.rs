//! Insights files: a trail with Insights selectors delivers the Insights records of its
//! account, regions and selected types under `CloudTrail-Insight/`, exactly once across a
//! crash, never in its log files; the service turns the worker on and off with the
//! selectors, and tells the analysis which Insights are in force.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use opentrail_trails::delivery::{CrashPoint, DeliveryContext, DeliveryWorker, WorkerStop};
use opentrail_trails::model::{EventSelectors, InsightSelector, Trail};
use opentrail_trails::notify::Notifier;
use opentrail_trails::selectors::{Decision, TrailFilter};
use opentrail_trails::{
    AdvancedSelector, BasicSelector, DataResource, DeliveryKind, DeliveryOptions,
    DestinationConfig, Destinations, FieldSelector, InsightSelection, Manifest, NewTrail,
    ReadWriteType, Scope, StreamOptions, TrailRef, Trails, TrailsError, TrailsOptions,
};
use serde_json::{Value, json};

use crate::support::{
    ACCOUNT, BUCKET, Harness, OTHER_ACCOUNT, REGION, TestStore, delivered_files, event_id_counts,
    record, trail,
};

const CALL_RATE: &str = "ApiCallRateInsight";
const ERROR_RATE: &str = "ApiErrorRateInsight";

/// An Insights record as CloudTrail writes it, plus top-level `eventName`/`eventSource`
/// (CloudTrail names the API only inside `insightDetails`).
fn insight(insight_type: &str, state: &str, extra: Value) -> Value {
    let mut value = record(
        "PutParameter",
        json!({
            "eventVersion": "1.08",
            "eventSource": "ssm.amazonaws.com",
            "eventType": "AwsCloudTrailInsight",
            "eventCategory": "Insight",
            "sharedEventID": "8f5a2b8c-0000-4000-8000-000000000001",
            "insightDetails": {
                "state": state,
                "eventSource": "ssm.amazonaws.com",
                "eventName": "PutParameter",
                "insightType": insight_type,
                "insightContext": {"statistics": {"baseline": {"average": 0.5}, "insight": {"average": 12.0}}},
            },
        }),
    );
    if let Some(members) = value.as_object_mut() {
        for key in ["userIdentity", "sourceIPAddress", "readOnly"] {
            members.remove(key);
        }
        if let Some(extra) = extra.as_object() {
            for (key, member) in extra {
                members.insert(key.clone(), member.clone());
            }
        }
    }
    value
}

fn with_insights(mut trail: Trail, types: &[&str]) -> Trail {
    trail.insight_selectors = types
        .iter()
        .map(|insight_type| InsightSelector {
            insight_type: (*insight_type).to_owned(),
            event_categories: vec!["Management".to_owned()],
        })
        .collect();
    trail
}

/// The Insights worker of the harness's trail, as after a (re)start.
fn insights_worker(harness: &Harness, options: DeliveryOptions) -> DeliveryWorker {
    let context = Arc::new(DeliveryContext {
        store: harness.test_store.store.clone(),
        destinations: Arc::new(Destinations::from_config(
            &DestinationConfig::LocalDirectory {
                buckets_dir: harness.buckets_dir.clone(),
            },
        )),
        notifier: Notifier::new(reqwest::Client::new(), BTreeMap::new()),
        options,
        default_account_id: ACCOUNT.to_owned(),
    });
    DeliveryWorker::open_kind(
        DeliveryKind::Insights,
        context,
        harness.trail_sender.subscribe(),
        harness.trail_dir.clone(),
        Arc::clone(&harness.status),
        harness.shutdown_sender.subscribe(),
    )
    .expect("open the Insights worker")
}

fn split_by_folder(
    files: &BTreeMap<String, Vec<Value>>,
) -> (BTreeMap<String, Vec<Value>>, BTreeMap<String, Vec<Value>>) {
    files
        .iter()
        .map(|(key, records)| (key.clone(), records.clone()))
        .partition(|(key, _)| key.contains("/CloudTrail-Insight/"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selected_insights_of_the_trails_account_and_region_go_to_cloudtrail_insight_files() {
    let mut single_region = with_insights(
        trail("insightful", EventSelectors::Default, Some(0)),
        &[CALL_RATE],
    );
    single_region.settings.is_multi_region_trail = false;
    let harness = Harness::new(single_region);
    let appended = harness.test_store.append(&[
        insight(CALL_RATE, "Start", json!({})),
        insight(CALL_RATE, "End", json!({})),
        insight(ERROR_RATE, "Start", json!({"insightDetails": {"state": "Start", "insightType": ERROR_RATE, "errorCode": "AccessDenied"}})),
        insight(CALL_RATE, "Start", json!({"awsRegion": "eu-west-1"})),
        insight(CALL_RATE, "Start", json!({"recipientAccountId": OTHER_ACCOUNT})),
        record("RunInstances", json!({})),
    ]);
    let ids: Vec<String> = appended.iter().map(|(_, id)| id.clone()).collect();

    let mut insights = insights_worker(&harness, Harness::options());
    assert!(insights.poll(true).await.expect("Insights poll"));
    let mut logs = harness.worker(Harness::options());
    assert!(logs.poll(true).await.expect("log poll"));

    let (insight_files, log_files) = split_by_folder(&harness.delivered());
    assert_eq!(insight_files.len(), 1, "{:?}", insight_files.keys());
    let (key, records) = insight_files.iter().next().expect("one Insights file");
    // prefix/logs/AWSLogs/<acct>/CloudTrail-Insight/<region>/YYYY/MM/DD/<name>
    let parts: Vec<&str> = key.split('/').collect();
    assert_eq!(parts.len(), 10, "{key}");
    assert_eq!(
        &parts[..6],
        &[
            "prefix",
            "logs",
            "AWSLogs",
            ACCOUNT,
            "CloudTrail-Insight",
            REGION
        ]
    );
    let name = parts[9];
    let (stamp, unique) = name
        .strip_prefix(&format!("{ACCOUNT}_CloudTrail-Insight_{REGION}_"))
        .and_then(|rest| rest.strip_suffix(".json.gz"))
        .and_then(|rest| rest.split_once('_'))
        .unwrap_or_else(|| panic!("file name {name}"));
    assert_eq!(stamp.len(), "YYYYMMDDTHHmmZ".len(), "{stamp}");
    assert_eq!(&stamp[..8], format!("{}{}{}", parts[6], parts[7], parts[8]));
    assert_eq!(unique.len(), 16);
    assert!(
        unique.chars().all(|c| c.is_ascii_alphanumeric()),
        "{unique}"
    );
    // The selected type of this account and region, Start then End, as stored.
    let delivered_ids: Vec<&str> = records
        .iter()
        .map(|record| record["eventID"].as_str().expect("eventID"))
        .collect();
    assert_eq!(delivered_ids, vec![ids[0].as_str(), ids[1].as_str()]);
    assert_eq!(records[0]["insightDetails"]["state"], "Start");
    assert_eq!(records[1]["insightDetails"]["state"], "End");
    assert_eq!(records[0]["insightDetails"]["insightType"], CALL_RATE);

    // Log files hold the management event and no Insights record.
    let log_counts = event_id_counts(&log_files);
    assert_eq!(log_counts.keys().collect::<Vec<_>>(), vec![&ids[5]]);

    // Its own cursor; digests are not told about Insights files.
    let store = &harness.test_store.store;
    let arn = format!("arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/insightful");
    assert_eq!(
        store
            .load_cursor(&format!("trail/{arn}/insights"))
            .expect("cursor"),
        harness.test_store.last_seq()
    );
    let manifest = Manifest::new(&harness.trail_dir)
        .read_after(0, 100)
        .expect("manifest");
    assert!(
        manifest
            .iter()
            .all(|file| !file.key.contains("CloudTrail-Insight"))
    );
    assert_eq!(manifest.len(), 1);
    let status = harness.status.lock().expect("status").clone();
    assert!(status.latest_insights_delivery_time_ms.is_some());
    assert!(status.latest_insights_delivery_error.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_region_trail_delivers_every_regions_insights_of_the_selected_types() {
    let harness = Harness::new(with_insights(
        trail("everywhere", EventSelectors::Default, Some(0)),
        &[CALL_RATE, ERROR_RATE],
    ));
    let appended = harness.test_store.append(&[
        insight(CALL_RATE, "Start", json!({})),
        insight(ERROR_RATE, "Start", json!({"awsRegion": "eu-west-1", "insightDetails": {"state": "Start", "insightType": ERROR_RATE}})),
        insight("SomeFutureInsight", "Start", json!({"insightDetails": {"state": "Start", "insightType": "SomeFutureInsight"}})),
    ]);
    let mut worker = insights_worker(&harness, Harness::options());
    assert!(worker.poll(true).await.expect("poll"));
    let files = harness.delivered();
    let regions: Vec<&str> = files
        .keys()
        .map(|key| key.split('/').nth(5).expect("region"))
        .collect();
    assert_eq!(regions, vec!["eu-west-1", REGION]);
    let counts = event_id_counts(&files);
    assert_eq!(counts.len(), 2);
    assert!(
        !counts.contains_key(&appended[2].1),
        "an unselected type was delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_redelivers_the_same_insights_file_and_no_record_twice() {
    for crash_point in [
        CrashPoint::AfterPlan,
        CrashPoint::AfterObjects,
        CrashPoint::AfterManifest,
        CrashPoint::AfterCursor,
    ] {
        let harness = Harness::new(with_insights(
            trail("crashy-insights", EventSelectors::Default, Some(0)),
            &[CALL_RATE],
        ));
        let first = harness.test_store.append(&[
            insight(CALL_RATE, "Start", json!({})),
            insight(CALL_RATE, "End", json!({})),
        ]);
        let mut crashing = insights_worker(
            &harness,
            DeliveryOptions {
                crash_for_test: Some(crash_point),
                ..Harness::options()
            },
        );
        match crashing.poll(true).await {
            Err(WorkerStop::SimulatedCrash(point)) => assert_eq!(point, crash_point),
            other => panic!("expected a simulated crash at {crash_point:?}, got {other:?}"),
        }
        let planned = crashing.state().batch.clone().expect("a planned batch");
        drop(crashing);
        let second = harness
            .test_store
            .append(&[insight(CALL_RATE, "Start", json!({}))]);

        let mut restarted = insights_worker(&harness, Harness::options());
        restarted.recover().await.expect("recover");
        let files = harness.delivered();
        for file in &planned.files {
            assert!(file.key.contains("/CloudTrail-Insight/"), "{}", file.key);
            assert!(
                files.contains_key(&file.key),
                "{crash_point:?}: {} missing",
                file.key
            );
        }
        assert!(restarted.poll(true).await.expect("poll after restart"));
        let counts = event_id_counts(&harness.delivered());
        for (_, id) in first.iter().chain(&second) {
            assert_eq!(counts.get(id), Some(&1), "{crash_point:?}: {id}");
        }
        assert_eq!(counts.len(), 3, "{crash_point:?}");
        // Log files never picked them up, and the manifest stayed empty.
        assert!(
            Manifest::new(&harness.trail_dir)
                .read_after(0, 10)
                .expect("manifest")
                .is_empty()
        );
    }
}

#[test]
fn insights_records_never_go_into_log_files_whatever_the_event_selectors() {
    let insight_json = insight(CALL_RATE, "Start", json!({})).to_string();
    let everything_basic = BasicSelector {
        read_write_type: ReadWriteType::All,
        include_management_events: true,
        data_resources: vec![DataResource {
            resource_type: "AWS::S3::Object".to_owned(),
            values: vec!["arn:aws:s3".to_owned()],
        }],
        exclude_management_event_sources: Vec::new(),
    };
    let everything_advanced = AdvancedSelector {
        name: None,
        field_selectors: vec![
            FieldSelector {
                field: "eventCategory".to_owned(),
                equals: vec!["Management".to_owned(), "Data".to_owned()],
                ..FieldSelector::default()
            },
            FieldSelector {
                field: "eventSource".to_owned(),
                not_equals: vec!["nothing.amazonaws.com".to_owned()],
                ..FieldSelector::default()
            },
        ],
    };
    for selectors in [
        EventSelectors::Default,
        EventSelectors::Basic(vec![everything_basic]),
        EventSelectors::Advanced(vec![everything_advanced]),
    ] {
        let with_types = with_insights(trail("t", selectors, Some(0)), &[CALL_RATE]);
        let logs = TrailFilter::new(&with_types, ACCOUNT);
        assert_eq!(logs.decide(1, &insight_json), Decision::Skip);
        let insights = TrailFilter::for_insights(&with_types);
        assert!(matches!(
            insights.decide(1, &insight_json),
            Decision::Deliver { .. }
        ));
    }
    // An odd insightDetails on another record costs it nothing: it is read only for
    // Insights records.
    let odd = record("RunInstances", json!({"insightDetails": "not an object"})).to_string();
    let plain = trail("t", EventSelectors::Default, Some(0));
    assert!(matches!(
        TrailFilter::new(&plain, ACCOUNT).decide(1, &odd),
        Decision::Deliver { .. }
    ));
    assert_eq!(
        TrailFilter::for_insights(&with_insights(plain, &[CALL_RATE])).decide(1, &odd),
        Decision::Skip
    );
}

// ------------------------------------------------------------------ the service

fn service_options(test_store: &TestStore) -> TrailsOptions {
    TrailsOptions {
        data_dir: test_store.path().to_owned(),
        destination: opentrail_trails::destinations::connect(&DestinationConfig::LocalDirectory {
            buckets_dir: test_store.path().join("buckets"),
        }),
        default_account_id: ACCOUNT.to_owned(),
        trails_per_region_max: 5,
        delivery: DeliveryOptions {
            interval: Duration::from_secs(1),
            ..Harness::options()
        },
        streams: StreamOptions::default(),
        sns_topics: Default::default(),
        log_groups: Default::default(),
        digest: Default::default(),
    }
}

fn new_trail(name: &str, is_multi_region_trail: bool) -> NewTrail {
    NewTrail {
        name: name.to_owned(),
        s3_bucket_name: BUCKET.to_owned(),
        s3_key_prefix: Some(name.to_owned()),
        sns_topic_name: None,
        include_global_service_events: true,
        is_multi_region_trail,
        enable_log_file_validation: false,
        cloud_watch_logs_log_group_arn: None,
        cloud_watch_logs_role_arn: None,
        recursive_logging: true,
        tags: Vec::new(),
    }
}

fn selectors(types: &[(&str, &[&str])]) -> Vec<InsightSelector> {
    types
        .iter()
        .map(|(insight_type, categories)| InsightSelector {
            insight_type: (*insight_type).to_owned(),
            event_categories: categories.iter().map(|c| (*c).to_owned()).collect(),
        })
        .collect()
}

/// Waits (bounded) until `ids` are all in files under `<bucket>/<prefix>/…/<folder>/`.
async fn wait_for_delivery(
    test_store: &TestStore,
    prefix: &str,
    folder: &str,
    ids: &[String],
) -> BTreeMap<String, usize> {
    let bucket_dir = test_store.path().join("buckets").join(BUCKET);
    let mut counts = BTreeMap::new();
    for _ in 0..200 {
        let files: BTreeMap<String, Vec<Value>> = delivered_files(&bucket_dir)
            .into_iter()
            .filter(|(key, _)| {
                key.starts_with(&format!("{prefix}/")) && key.contains(&format!("/{folder}/"))
            })
            .collect();
        counts = event_id_counts(&files);
        if ids.iter().all(|id| counts.contains_key(id)) {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{ids:?} not delivered under {prefix}/…/{folder}: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insights_selectors_turn_delivery_on_and_off_and_say_which_insights_are_in_force() {
    let test_store = TestStore::new();
    let trails =
        Trails::open(test_store.store.clone(), service_options(&test_store)).expect("open");
    trails.start();
    let scope = Scope {
        account_id: ACCOUNT.to_owned(),
        region: REGION.to_owned(),
    };
    let name = |name: &str| TrailRef::Name(name.to_owned());
    trails
        .create_trail(&scope, new_trail("watched", true))
        .await
        .expect("create");
    trails
        .start_logging(&scope, &name("watched"))
        .await
        .expect("start");
    assert!(trails.insight_selections().is_empty());

    // Recorded before Insights were on: never delivered (no back-fill).
    let before = test_store.append(&[insight(CALL_RATE, "Start", json!({}))]);
    let on = trails
        .put_insight_selectors(
            &scope,
            &name("watched"),
            selectors(&[
                (CALL_RATE, &["Management"]),
                (ERROR_RATE, &["Management", "Data"]),
            ]),
        )
        .await;
    // Data events are not logged by a trail with default selectors.
    assert!(
        matches!(on, Err(TrailsError::InvalidInsightSelectors(_))),
        "{on:?}"
    );
    let watched = trails
        .put_insight_selectors(
            &scope,
            &name("watched"),
            selectors(&[(CALL_RATE, &["Management"])]),
        )
        .await
        .expect("Insights on");
    assert!(watched.has_insight_selectors());
    assert_eq!(
        trails.insight_selections(),
        vec![InsightSelection {
            account_id: ACCOUNT.to_owned(),
            home_region: REGION.to_owned(),
            all_regions: true,
            insight_type: CALL_RATE.to_owned(),
            event_categories: vec!["Management".to_owned()],
            logging: true,
        }]
    );
    let during = test_store.append(&[
        insight(CALL_RATE, "Start", json!({"awsRegion": "ap-south-1"})),
        insight(CALL_RATE, "End", json!({"awsRegion": "ap-south-1"})),
    ]);
    let during_ids: Vec<String> = during.iter().map(|(_, id)| id.clone()).collect();
    let counts = wait_for_delivery(&test_store, "watched", "CloudTrail-Insight", &during_ids).await;
    assert!(
        !counts.contains_key(&before[0].1),
        "an Insight recorded before turning on was delivered"
    );
    assert!(counts.values().all(|count| *count == 1));
    let consumer = watched.insights_consumer();
    assert!(test_store.store.load_cursor(&consumer).expect("cursor") > 0);

    // A trail logging only read management events cannot analyse call rates.
    trails
        .create_trail(&scope, new_trail("readers", false))
        .await
        .expect("create");
    trails
        .put_event_selectors(
            &scope,
            &name("readers"),
            EventSelectors::Basic(vec![BasicSelector {
                read_write_type: ReadWriteType::ReadOnly,
                include_management_events: true,
                data_resources: Vec::new(),
                exclude_management_event_sources: Vec::new(),
            }]),
        )
        .await
        .expect("read-only selectors");
    let refused = trails
        .put_insight_selectors(
            &scope,
            &name("readers"),
            selectors(&[(CALL_RATE, &["Management"])]),
        )
        .await;
    assert!(
        matches!(refused, Err(TrailsError::InvalidInsightSelectors(_))),
        "{refused:?}"
    );
    trails
        .put_insight_selectors(
            &scope,
            &name("readers"),
            selectors(&[(ERROR_RATE, &["Management"])]),
        )
        .await
        .expect("errors need only read events");
    assert_eq!(trails.insight_selections().len(), 2);
    // Only in the home region, like PutEventSelectors.
    let elsewhere = Scope {
        account_id: ACCOUNT.to_owned(),
        region: "eu-west-1".to_owned(),
    };
    assert!(matches!(
        trails
            .put_insight_selectors(&elsewhere, &name("watched"), Vec::new())
            .await,
        Err(TrailsError::InvalidHomeRegion { .. })
    ));

    // Persisted across a restart.
    trails.shutdown().await;
    let trails =
        Trails::open(test_store.store.clone(), service_options(&test_store)).expect("reopen");
    trails.start();
    assert_eq!(trails.insight_selections().len(), 2);

    // Off: the worker stops, its cursor goes, and new Insights are not delivered; log
    // files go on (and serve as the sign that delivery has moved past them).
    let off = trails
        .put_insight_selectors(&scope, &name("watched"), Vec::new())
        .await
        .expect("Insights off");
    assert!(!off.has_insight_selectors());
    assert_eq!(test_store.store.load_cursor(&consumer).expect("cursor"), 0);
    assert!(
        !trails
            .trail_dir(&off.id)
            .join("insights-state.json")
            .exists()
    );
    let after = test_store.append(&[
        insight(CALL_RATE, "Start", json!({})),
        record("RunInstances", json!({"eventSource": "ec2.amazonaws.com"})),
    ]);
    wait_for_delivery(&test_store, "watched", "CloudTrail", &[after[1].1.clone()]).await;
    let all = event_id_counts(&delivered_files(
        &test_store.path().join("buckets").join(BUCKET),
    ));
    assert!(
        !all.contains_key(&after[0].1),
        "an Insight was delivered after Insights were turned off"
    );
    assert_eq!(
        trails
            .insight_selections()
            .iter()
            .map(|selection| selection.insight_type.as_str())
            .collect::<Vec<_>>(),
        vec![ERROR_RATE]
    );

    // On again: from now on only.
    trails
        .put_insight_selectors(
            &scope,
            &name("watched"),
            selectors(&[(CALL_RATE, &["Management"])]),
        )
        .await
        .expect("Insights on again");
    let again = test_store.append(&[insight(CALL_RATE, "End", json!({}))]);
    let counts = wait_for_delivery(
        &test_store,
        "watched",
        "CloudTrail-Insight",
        &[again[0].1.clone()],
    )
    .await;
    assert!(!counts.contains_key(&after[0].1));

    // DeleteTrail removes the Insights cursor with the others.
    trails
        .delete_trail(&scope, &name("watched"))
        .await
        .expect("delete");
    assert_eq!(test_store.store.load_cursor(&consumer).expect("cursor"), 0);
    trails.shutdown().await;
}
