//! A destination and a stream sink added from outside the crate: each is one type here,
//! implementing the crate's trait, registered through `TrailsOptions` (no configuration
//! variant, no arm in the crate's `match`). The service delivers to them as to its own:
//! log files and signed digests arrive in the destination, events in the sink.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use opentrail_trails::validate::{ValidationReport, ValidationRequest, validate};
use opentrail_trails::{
    DeliveryOptions, Destination, DestinationBucket, DestinationError, Destinations, DigestOptions,
    NewTrail, Scope, SendFuture, SinkConnector, StreamOptions, StreamSink, TrailRef, Trails,
    TrailsOptions,
};
use serde_json::{Value, json};

use crate::support::{ACCOUNT, REGION, TestStore, gunzip_single_member, record};

const BUCKET: &str = "memory-bucket";
const LOG_GROUP: &str = "arn:aws:logs:us-east-1:111122223333:log-group:collected";

// ------------------------------------------------------------------ the example destination

/// Buckets held in memory, shared with the test that reads what arrived.
#[derive(Debug, Clone, Default)]
struct MemoryDestination {
    buckets: Arc<Mutex<BTreeMap<String, Arc<InMemory>>>>,
}

impl Destination for MemoryDestination {
    fn open_bucket(&self, name: &str) -> Result<Arc<dyn DestinationBucket>, DestinationError> {
        let mut buckets = self.buckets.lock().expect("buckets");
        let store = Arc::clone(buckets.entry(name.to_owned()).or_default());
        Ok(Arc::new(MemoryBucket {
            name: name.to_owned(),
            store,
        }))
    }
}

/// `InMemory` keeps object attributes, so the trait's provided writes and reads (content
/// type, signature metadata) apply as they are.
#[derive(Debug)]
struct MemoryBucket {
    name: String,
    store: Arc<InMemory>,
}

impl DestinationBucket for MemoryBucket {
    fn name(&self) -> &str {
        &self.name
    }

    fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store) as Arc<dyn ObjectStore>
    }
}

impl MemoryDestination {
    /// Every object of a bucket whose key contains `part`: key → bytes.
    async fn objects(&self, bucket: &str, part: &str) -> BTreeMap<String, Vec<u8>> {
        let store = self.buckets.lock().expect("buckets").get(bucket).cloned();
        let Some(store) = store else {
            return BTreeMap::new();
        };
        let mut objects = BTreeMap::new();
        let mut listing = store.list(None);
        while let Some(meta) = listing.next().await {
            let key = meta.expect("list").location.to_string();
            if key.contains(part) {
                let bytes = object_store::ObjectStoreExt::get(store.as_ref(), &key.as_str().into())
                    .await
                    .expect("get")
                    .bytes()
                    .await
                    .expect("bytes");
                objects.insert(key, bytes.to_vec());
            }
        }
        objects
    }
}

// ------------------------------------------------------------------ the example sink

/// Keeps every line it is sent, with its log group and stream.
#[derive(Debug, Clone, Default)]
struct CollectingSink {
    received: Arc<Mutex<Vec<(String, String, Value)>>>,
}

impl StreamSink for CollectingSink {
    fn send<'a>(
        &'a mut self,
        _client: &'a reqwest::Client,
        log_group: &'a str,
        stream: &'a str,
        lines: &'a [String],
    ) -> SendFuture<'a> {
        let mut received = self.received.lock().expect("received");
        for line in lines {
            let record = serde_json::from_str(line).expect("one JSON record per line");
            received.push((log_group.to_owned(), stream.to_owned(), record));
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

impl SinkConnector for CollectingSink {
    fn connect(&self) -> Box<dyn StreamSink> {
        Box::new(self.clone())
    }
}

// ------------------------------------------------------------------ the service

fn options(
    test_store: &TestStore,
    destination: &MemoryDestination,
    sink: &CollectingSink,
) -> TrailsOptions {
    TrailsOptions {
        data_dir: test_store.path().to_owned(),
        destination: Arc::new(destination.clone()),
        default_account_id: ACCOUNT.to_owned(),
        trails_per_region_max: 5,
        delivery: DeliveryOptions {
            interval: Duration::from_secs(1),
            ..DeliveryOptions::default()
        },
        streams: StreamOptions {
            poll_interval: Duration::from_millis(50),
            ..StreamOptions::default()
        },
        sns_topics: BTreeMap::new(),
        log_groups: BTreeMap::from([(
            LOG_GROUP.to_owned(),
            Arc::new(sink.clone()) as Arc<dyn SinkConnector>,
        )]),
        digest: DigestOptions {
            interval: Duration::from_secs(1),
            ..DigestOptions::default()
        },
    }
}

fn scope() -> Scope {
    Scope {
        account_id: ACCOUNT.to_owned(),
        region: REGION.to_owned(),
    }
}

fn new_trail(name: &str, log_group: Option<&str>, validation: bool) -> NewTrail {
    NewTrail {
        name: name.to_owned(),
        s3_bucket_name: BUCKET.to_owned(),
        s3_key_prefix: None,
        sns_topic_name: None,
        include_global_service_events: true,
        is_multi_region_trail: false,
        enable_log_file_validation: validation,
        cloud_watch_logs_log_group_arn: log_group.map(str::to_owned),
        cloud_watch_logs_role_arn: None,
        recursive_logging: true,
        tags: Vec::new(),
    }
}

/// Appends `count` events and returns their ids.
fn append_events(test_store: &TestStore, count: usize, tag: &str) -> Vec<String> {
    let records: Vec<Value> = (0..count)
        .map(|index| record(&format!("{tag}{index}"), json!({})))
        .collect();
    test_store
        .append(&records)
        .into_iter()
        .map(|(_, id)| id)
        .collect()
}

/// Event id → how many delivered log files hold it.
fn delivered_ids(log_files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for bytes in log_files.values() {
        let file: Value = serde_json::from_slice(&gunzip_single_member(bytes)).expect("json");
        for record in file["Records"].as_array().expect("Records") {
            let id = record["eventID"].as_str().expect("eventID").to_owned();
            *counts.entry(id).or_insert(0) += 1;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_registered_from_outside_gets_log_files_and_signed_digests() {
    let test_store = TestStore::new();
    let destination = MemoryDestination::default();
    let trails = Trails::open(
        test_store.store.clone(),
        options(&test_store, &destination, &CollectingSink::default()),
    )
    .expect("open trails");
    trails.start();
    let start_ms = jiff::Timestamp::now().as_millisecond();
    trails
        .create_trail(&scope(), new_trail("in-memory", None, true))
        .await
        .expect("create");
    trails
        .start_logging(&scope(), &TrailRef::Name("in-memory".to_owned()))
        .await
        .expect("start");
    let appended = append_events(&test_store, 3, "Memory");

    let mut delivered = BTreeMap::new();
    for _ in 0..100 {
        delivered = delivered_ids(&destination.objects(BUCKET, "/CloudTrail/").await);
        if delivered.len() >= appended.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &appended {
        assert_eq!(
            delivered.get(id),
            Some(&1),
            "event {id} in exactly one file"
        );
    }

    // The digests signed through the trait's provided metadata writes validate, with the
    // log file they list, when read back through the same destination.
    let destinations = Arc::new(Destinations::new(Arc::new(destination.clone())));
    let mut report = ValidationReport::default();
    for _ in 0..100 {
        let end_ms = jiff::Timestamp::now().as_millisecond();
        let request = ValidationRequest {
            bucket: BUCKET.to_owned(),
            prefix: None,
            account_id: ACCOUNT.to_owned(),
            region: REGION.to_owned(),
            trail_name: "in-memory".to_owned(),
            home_region: REGION.to_owned(),
            start_ms,
            end_ms,
            public_keys: trails.list_public_keys(REGION, start_ms - 3_600_000, end_ms + 7_200_000),
        };
        report = validate(&destinations, &request).await.expect("validate");
        if report.count(false, true) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(report.count(true, true) >= 1, "{}", report.summary());
    assert!(report.count(false, true) >= 1, "{}", report.summary());
    assert!(report.is_valid(), "{}", report.summary());
    trails.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_registered_from_outside_gets_each_event_of_its_log_group() {
    let test_store = TestStore::new();
    let sink = CollectingSink::default();
    let trails = Trails::open(
        test_store.store.clone(),
        options(&test_store, &MemoryDestination::default(), &sink),
    )
    .expect("open trails");
    trails.start();
    assert!(
        matches!(
            trails
                .create_trail(
                    &scope(),
                    new_trail(
                        "unregistered",
                        Some("arn:aws:logs:us-east-1:111122223333:log-group:other"),
                        false
                    ),
                )
                .await,
            Err(opentrail_trails::TrailsError::LogGroupNotConfigured(_))
        ),
        "only registered log groups are accepted"
    );
    trails
        .create_trail(&scope(), new_trail("collected", Some(LOG_GROUP), false))
        .await
        .expect("create");
    trails
        .start_logging(&scope(), &TrailRef::Name("collected".to_owned()))
        .await
        .expect("start");
    let appended = append_events(&test_store, 5, "Collected");

    let mut received = Vec::new();
    for _ in 0..100 {
        received = sink.received.lock().expect("received").clone();
        if received.len() >= appended.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids: Vec<&str> = received
        .iter()
        .map(|(_, _, record)| record["eventID"].as_str().expect("eventID"))
        .collect();
    assert_eq!(ids, appended.iter().map(String::as_str).collect::<Vec<_>>());
    for (log_group, stream, _) in &received {
        assert_eq!(log_group, LOG_GROUP);
        assert_eq!(stream, &format!("{ACCOUNT}_CloudTrail_{REGION}"));
    }
    // The worker reports success once the batch's cursor is saved, just after the send.
    let mut status = Default::default();
    for _ in 0..100 {
        (_, status) = trails
            .status(&scope(), &TrailRef::Name("collected".to_owned()))
            .expect("status");
        if status.latest_cloud_watch_logs_delivery_time_ms.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(status.latest_cloud_watch_logs_delivery_time_ms.is_some());
    assert!(status.latest_cloud_watch_logs_delivery_error.is_none());
    trails.shutdown().await;
}
