//! Delivery: files in CloudTrail's layout, exactly once across crashes at every step,
//! stopped trails, size cuts, outages of the destination, and the service end to end.

use std::sync::Arc;
use std::time::Duration;

use opentrail_trails::delivery::{CrashPoint, WorkerStop};
use opentrail_trails::model::{EventSelectors, Trail};
use opentrail_trails::{
    DeliveryOptions, DestinationConfig, Manifest, NewTrail, Scope, StreamOptions, TrailRef, Trails,
    TrailsOptions,
};
use serde_json::json;

use crate::support::{
    ACCOUNT, BUCKET, Harness, OTHER_ACCOUNT, REGION, TestStore, delivered_files, event_id_counts,
    record, trail,
};

fn management_events(count: usize, tag: &str) -> Vec<serde_json::Value> {
    (0..count)
        .map(|index| record(&format!("Run{tag}{index}"), json!({})))
        .collect()
}

fn ids(appended: &[(u64, String)]) -> Vec<String> {
    appended.iter().map(|(_, id)| id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admitted_events_are_delivered_once_in_cloudtrail_keys_and_recorded_in_the_manifest() {
    let harness = Harness::new(trail("main", EventSelectors::Default, Some(0)));
    let mut events = management_events(3, "A");
    events.push(record(
        "GetObject",
        json!({"eventCategory": "Data", "eventSource": "s3.amazonaws.com", "readOnly": true}),
    ));
    events.push(record("RunElsewhere", json!({"awsRegion": "eu-west-1"})));
    events.push(record(
        "RunOther",
        json!({"recipientAccountId": OTHER_ACCOUNT}),
    ));
    let appended = harness.test_store.append(&events);
    let mut worker = harness.worker(Harness::options());
    assert!(worker.poll(true).await.expect("poll"));

    let files = harness.delivered();
    // One file per stream: (111122223333, us-east-1), (111122223333, eu-west-1),
    // (444455556666, us-east-1). The data event is not selected.
    assert_eq!(files.len(), 3, "{:?}", files.keys());
    let counts = event_id_counts(&files);
    assert_eq!(counts.len(), 5);
    assert!(counts.values().all(|count| *count == 1));
    assert!(
        !counts.contains_key(&appended[3].1),
        "the data event was delivered"
    );
    for (key, records) in &files {
        let parts: Vec<&str> = key.split('/').collect();
        // prefix/logs/AWSLogs/<acct>/CloudTrail/<region>/YYYY/MM/DD/<name>
        assert_eq!(parts.len(), 10, "{key}");
        assert_eq!(&parts[..3], &["prefix", "logs", "AWSLogs"]);
        let (account, region) = (parts[3], parts[5]);
        assert_eq!(parts[4], "CloudTrail");
        let name = parts[9];
        let stamp_and_unique = name
            .strip_prefix(&format!("{account}_CloudTrail_{region}_"))
            .and_then(|rest| rest.strip_suffix(".json.gz"))
            .unwrap_or_else(|| panic!("file name {name}"));
        let (stamp, unique) = stamp_and_unique.split_once('_').expect("stamp_unique");
        assert_eq!(stamp.len(), "YYYYMMDDTHHmmZ".len(), "{stamp}");
        assert_eq!(&stamp[..4], parts[6]);
        assert_eq!(&stamp[4..6], parts[7]);
        assert_eq!(&stamp[6..8], parts[8]);
        assert_eq!(unique.len(), 16);
        for record in records {
            assert_eq!(record["recipientAccountId"], account);
            assert_eq!(record["awsRegion"], region);
        }
    }
    let manifest = Manifest::new(&harness.trail_dir);
    let recorded = manifest.read_after(0, 100).expect("manifest");
    assert_eq!(recorded.len(), 3);
    for (index, file) in recorded.iter().enumerate() {
        assert_eq!(file.file_seq, index as u64 + 1);
        assert_eq!(file.bucket, BUCKET);
        let bytes = std::fs::read(harness.bucket_dir().join(&file.key)).expect("object");
        let body = crate::support::gunzip_single_member(&bytes);
        use sha2::Digest;
        assert_eq!(file.sha256_hex, hex::encode(sha2::Sha256::digest(&body)));
        assert_eq!(file.oldest_event_time_ms, Some(1_772_619_309_000));
        assert_eq!(file.newest_event_time_ms, Some(1_772_619_309_000));
    }
    let cursor = harness
        .test_store
        .store
        .load_cursor(&format!(
            "trail/arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/main"
        ))
        .expect("cursor");
    assert_eq!(cursor, harness.test_store.last_seq());
    // Nothing new: nothing more.
    assert!(!worker.poll(true).await.expect("poll"));
    assert_eq!(harness.delivered().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_rewrites_the_same_key_with_the_same_records_and_no_event_twice() {
    for crash_point in [
        CrashPoint::AfterPlan,
        CrashPoint::AfterObjects,
        CrashPoint::AfterManifest,
        CrashPoint::AfterCursor,
    ] {
        let harness = Harness::new(trail("crashy", EventSelectors::Default, Some(0)));
        let first = harness.test_store.append(&management_events(5, "B"));
        let mut crashing = harness.worker(DeliveryOptions {
            crash_for_test: Some(crash_point),
            ..Harness::options()
        });
        match crashing.poll(true).await {
            Err(WorkerStop::SimulatedCrash(point)) => assert_eq!(point, crash_point),
            other => panic!("expected a simulated crash at {crash_point:?}, got {other:?}"),
        }
        let planned = crashing.state().batch.clone().expect("a planned batch");
        assert!(!planned.complete);
        let planned_keys: Vec<String> = planned.files.iter().map(|file| file.key.clone()).collect();
        let bytes_before_restart: Vec<Option<Vec<u8>>> = planned_keys
            .iter()
            .map(|key| std::fs::read(harness.bucket_dir().join(key)).ok())
            .collect();
        drop(crashing);

        // Events that arrive while the process is down.
        let second = harness.test_store.append(&management_events(3, "C"));

        let mut restarted = harness.worker(Harness::options());
        restarted.recover().await.expect("recover");
        for (key, before) in planned_keys.iter().zip(&bytes_before_restart) {
            let after = std::fs::read(harness.bucket_dir().join(key))
                .expect("rewritten under the same key");
            if let Some(before) = before {
                assert_eq!(&after, before, "{crash_point:?}: same key, same bytes");
            }
        }
        assert!(restarted.poll(true).await.expect("poll"));

        let files = harness.delivered();
        for key in &planned_keys {
            assert!(
                files.contains_key(key),
                "{crash_point:?}: planned key {key} missing"
            );
        }
        assert_eq!(files.len(), 2, "{crash_point:?}: {:?}", files.keys());
        let counts = event_id_counts(&files);
        let mut expected = ids(&first);
        expected.extend(ids(&second));
        assert_eq!(counts.len(), expected.len(), "{crash_point:?}");
        for id in &expected {
            assert_eq!(counts.get(id), Some(&1), "{crash_point:?}: event {id}");
        }
        // The planned file holds exactly the first batch.
        let planned_records = &files[&planned_keys[0]];
        let planned_ids: Vec<&str> = planned_records
            .iter()
            .map(|record| record["eventID"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            planned_ids,
            ids(&first).iter().map(String::as_str).collect::<Vec<_>>()
        );
        // Every file recorded once in the manifest.
        let manifest = Manifest::new(&harness.trail_dir)
            .read_after(0, 100)
            .expect("manifest");
        assert_eq!(manifest.len(), 2, "{crash_point:?}: {manifest:?}");
        assert_ne!(manifest[0].key, manifest[1].key);
        assert_eq!(restarted.cursor(), harness.test_store.last_seq());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_accepted_while_the_trail_is_stopped_are_not_delivered() {
    let test_trail = trail("stoppable", EventSelectors::Default, None);
    let harness = Harness::new(test_trail.clone());
    let before_start = harness.test_store.append(&management_events(2, "D"));
    let mut worker = harness.worker(Harness::options());
    // Never started: nothing is delivered.
    assert!(!worker.poll(true).await.expect("poll"));

    let mut started = test_trail.clone();
    started.logging.start(harness.test_store.last_seq(), 1);
    harness.trail_sender.send_replace(Arc::new(started.clone()));
    let while_logging = harness.test_store.append(&management_events(2, "E"));

    let mut stopped = started.clone();
    stopped.logging.stop(harness.test_store.last_seq(), 2);
    harness.trail_sender.send_replace(Arc::new(stopped.clone()));
    let while_stopped = harness.test_store.append(&management_events(2, "F"));

    let mut restarted_trail = stopped.clone();
    restarted_trail
        .logging
        .start(harness.test_store.last_seq(), 3);
    harness.trail_sender.send_replace(Arc::new(restarted_trail));
    let after_restart = harness.test_store.append(&management_events(2, "G"));

    assert!(worker.poll(true).await.expect("poll"));
    let counts = event_id_counts(&harness.delivered());
    for id in ids(&while_logging).iter().chain(ids(&after_restart).iter()) {
        assert_eq!(counts.get(id), Some(&1), "{id} should be delivered once");
    }
    for id in ids(&before_start).iter().chain(ids(&while_stopped).iter()) {
        assert!(
            !counts.contains_key(id),
            "{id} was accepted while the trail was stopped"
        );
    }
    // A restarted worker agrees (the decision is by sequence number).
    let mut again = harness.worker(Harness::options());
    assert!(!again.poll(true).await.expect("poll"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_cut_at_the_size_limit_and_otherwise_at_the_interval() {
    let harness = Harness::new(trail("cuts", EventSelectors::Default, Some(0)));
    harness.test_store.append(&management_events(5, "H"));
    let options = DeliveryOptions {
        batch_events_max: 2,
        interval: Duration::from_secs(3600),
        ..Harness::options()
    };
    let mut worker = harness.worker(options);
    assert!(worker.poll(false).await.expect("poll"), "size cut");
    assert!(worker.poll(false).await.expect("poll"), "size cut");
    // One event waits: not due before the interval.
    assert!(!worker.poll(false).await.expect("poll"));
    assert_eq!(harness.delivered().len(), 2);
    assert!(worker.poll(true).await.expect("poll"));
    let files = harness.delivered();
    let mut sizes: Vec<usize> = files.values().map(Vec::len).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![1, 2, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_destination_is_retried_with_backoff_and_nothing_is_dropped() {
    let harness = Harness::new(trail("outage", EventSelectors::Default, Some(0)));
    let appended = harness.test_store.append(&management_events(4, "I"));
    // A file where the key's folders must go: every write fails until it is removed.
    let blocker = harness.bucket_dir().join("prefix");
    std::fs::create_dir_all(harness.bucket_dir()).expect("bucket dir");
    std::fs::write(&blocker, b"not a directory").expect("blocker");

    let mut worker = harness.worker(Harness::options());
    let status = Arc::clone(&harness.status);
    let delivering = tokio::spawn(async move {
        let delivered = worker.poll(true).await;
        (worker, delivered)
    });
    let mut saw_error = false;
    for _ in 0..200 {
        let error = status.lock().expect("status").latest_delivery_error.clone();
        if error.is_some() {
            saw_error = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_error, "LatestDeliveryError was never reported");
    // Keep failing for a while: retries go on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!delivering.is_finished());
    assert!(harness.delivered().is_empty());
    std::fs::remove_file(&blocker).expect("remove blocker");

    let (_worker, delivered) = tokio::time::timeout(Duration::from_secs(20), delivering)
        .await
        .expect("delivery resumed")
        .expect("task");
    assert!(delivered.expect("poll"));
    let counts = event_id_counts(&harness.delivered());
    for id in ids(&appended) {
        assert_eq!(counts.get(&id), Some(&1));
    }
    let status = harness.status.lock().expect("status").clone();
    assert!(status.latest_delivery_error.is_none());
    assert!(status.latest_delivery_time_ms.is_some());
}

fn service_options(test_store: &TestStore, interval: Duration) -> TrailsOptions {
    TrailsOptions {
        data_dir: test_store.path().to_owned(),
        destination: opentrail_trails::destinations::connect(&DestinationConfig::LocalDirectory {
            buckets_dir: test_store.path().join("buckets"),
        }),
        default_account_id: ACCOUNT.to_owned(),
        trails_per_region_max: 2,
        delivery: DeliveryOptions {
            interval,
            ..Harness::options()
        },
        streams: StreamOptions::default(),
        sns_topics: Default::default(),
        log_groups: Default::default(),
        digest: Default::default(),
    }
}

fn new_trail(name: &str) -> NewTrail {
    NewTrail {
        name: name.to_owned(),
        s3_bucket_name: "service-bucket".to_owned(),
        s3_key_prefix: None,
        sns_topic_name: None,
        include_global_service_events: true,
        is_multi_region_trail: false,
        enable_log_file_validation: false,
        cloud_watch_logs_log_group_arn: None,
        cloud_watch_logs_role_arn: None,
        recursive_logging: true,
        tags: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_delivers_within_the_interval_and_enforces_trail_rules() {
    let test_store = TestStore::new();
    let trails = Trails::open(
        test_store.store.clone(),
        service_options(&test_store, Duration::from_secs(1)),
    )
    .expect("open trails");
    trails.start();
    let scope = Scope {
        account_id: ACCOUNT.to_owned(),
        region: REGION.to_owned(),
    };
    let created = trails
        .create_trail(&scope, new_trail("svc"))
        .await
        .expect("create");
    assert!(
        test_store.path().join("buckets/service-bucket").is_dir(),
        "CreateTrail creates the bucket folder"
    );
    assert!(matches!(
        trails.create_trail(&scope, new_trail("svc")).await,
        Err(opentrail_trails::TrailsError::AlreadyExists(_))
    ));
    trails
        .create_trail(&scope, new_trail("svc-two"))
        .await
        .expect("second");
    assert!(matches!(
        trails.create_trail(&scope, new_trail("svc-three")).await,
        Err(opentrail_trails::TrailsError::LimitExceeded { .. })
    ));
    let elsewhere = Scope {
        account_id: ACCOUNT.to_owned(),
        region: "eu-west-1".to_owned(),
    };
    let by_arn = TrailRef::Arn {
        region: REGION.to_owned(),
        account_id: ACCOUNT.to_owned(),
        name: "svc".to_owned(),
    };
    assert!(matches!(
        trails.start_logging(&elsewhere, &by_arn).await,
        Err(opentrail_trails::TrailsError::InvalidHomeRegion { .. })
    ));
    let stranger = Scope {
        account_id: "999999999999".to_owned(),
        region: REGION.to_owned(),
    };
    assert!(matches!(
        trails.get_trail(&stranger, &by_arn),
        Err(opentrail_trails::TrailsError::NotFound(_))
    ));

    let before = test_store.append(&management_events(1, "J"));
    trails
        .start_logging(&scope, &TrailRef::Name("svc".to_owned()))
        .await
        .expect("start");
    let appended = test_store.append(&management_events(3, "K"));
    let bucket_dir = test_store.path().join("buckets/service-bucket");
    let mut delivered = Default::default();
    for _ in 0..100 {
        delivered = delivered_files(&bucket_dir);
        if event_id_counts(&delivered).len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counts = event_id_counts(&delivered);
    for id in ids(&appended) {
        assert_eq!(counts.get(&id), Some(&1));
    }
    assert!(!counts.contains_key(&before[0].1));
    // The worker writes the objects, then the manifest and cursor, then its status: the
    // files can be visible a moment before the status says so.
    let mut status = None;
    for _ in 0..100 {
        let (_, current) = trails
            .status(&scope, &TrailRef::Name("svc".to_owned()))
            .expect("status");
        let delivered = current.latest_delivery_time_ms.is_some();
        status = Some(current);
        if delivered {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = status.expect("status read");
    assert!(status.latest_delivery_time_ms.is_some());

    trails.shutdown().await;
    // Persisted across a restart: the trail, its logging state and its delivery status.
    let reopened = Trails::open(
        test_store.store.clone(),
        service_options(&test_store, Duration::from_secs(1)),
    )
    .expect("reopen");
    let (trail, status): (Trail, _) = reopened
        .status(&scope, &TrailRef::Name("svc".to_owned()))
        .expect("status");
    assert!(trail.logging.is_logging);
    assert!(status.latest_delivery_time_ms.is_some());
    reopened.start();
    reopened
        .delete_trail(&scope, &TrailRef::Name("svc".to_owned()))
        .await
        .expect("delete");
    assert!(!reopened.trail_dir(&created.id).exists());
    assert!(
        reopened
            .get_trail(&scope, &TrailRef::Name("svc".to_owned()))
            .is_err()
    );
    reopened.shutdown().await;
}
