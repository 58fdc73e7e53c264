//! Helpers: a store with events, trails built in code, and reading delivered files back.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use opentrail_event::{EventRecord, IngestContext};
use opentrail_store::{AppendOutcome, Store, StoreOptions};
use opentrail_trails::delivery::{DeliveryContext, DeliveryWorker};
use opentrail_trails::model::{EventSelectors, LoggingHistory, Trail, TrailSettings};
use opentrail_trails::notify::Notifier;
use opentrail_trails::{DeliveryOptions, DestinationConfig, Destinations, StatusHandle};
use serde_json::{Value, json};
use tokio::sync::watch;

pub const ACCOUNT: &str = "111122223333";
pub const OTHER_ACCOUNT: &str = "444455556666";
pub const REGION: &str = "us-east-1";
pub const BUCKET: &str = "trail-bucket";

/// A CloudTrail record; `extra` members are merged in (and override).
pub fn record(event_name: &str, extra: Value) -> Value {
    let mut base = json!({
        "eventVersion": "1.11",
        "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::{ACCOUNT}:user/alice"), "accountId": ACCOUNT, "userName": "alice"},
        "eventTime": "2026-03-04T10:15:09Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": event_name,
        "awsRegion": REGION,
        "sourceIPAddress": "203.0.113.7",
        "eventID": uuid_like(),
        "readOnly": false,
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    });
    if let (Some(base_members), Some(extra_members)) = (base.as_object_mut(), extra.as_object()) {
        for (key, value) in extra_members {
            base_members.insert(key.clone(), value.clone());
        }
    }
    base
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("00000000-0000-4000-8000-{n:012}")
}

pub struct TestStore {
    pub store: Store,
    pub dir: tempfile::TempDir,
}

impl TestStore {
    pub fn new() -> TestStore {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("store"), StoreOptions::default()).expect("store");
        TestStore { store, dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Appends records; returns their sequence numbers and event ids.
    pub fn append(&self, records: &[Value]) -> Vec<(u64, String)> {
        let context = IngestContext {
            account_id: ACCOUNT.to_owned(),
            region: REGION.to_owned(),
        };
        let parsed: Vec<EventRecord> = records
            .iter()
            .map(|value| {
                EventRecord::from_json_object(&value.to_string(), &context).expect("valid record")
            })
            .collect();
        let ids: Vec<String> = parsed
            .iter()
            .map(|record| record.event_id.clone())
            .collect();
        let outcomes = self.store.append(parsed).expect("append");
        outcomes
            .into_iter()
            .zip(ids)
            .map(|(outcome, id)| match outcome {
                AppendOutcome::Stored { seq } => (seq, id),
                AppendOutcome::Duplicate { seq } => panic!("unexpected duplicate at {seq}"),
            })
            .collect()
    }

    pub fn last_seq(&self) -> u64 {
        self.store.stats().expect("stats").last_seq
    }
}

/// A trail of the default account, logging from `after_seq` on.
pub fn trail(name: &str, selectors: EventSelectors, logging_after_seq: Option<u64>) -> Trail {
    let mut logging = LoggingHistory::default();
    if let Some(after_seq) = logging_after_seq {
        logging.start(after_seq, 1);
    }
    Trail {
        id: format!("id-{name}"),
        name: name.to_owned(),
        account_id: ACCOUNT.to_owned(),
        home_region: REGION.to_owned(),
        settings: TrailSettings {
            s3_bucket_name: BUCKET.to_owned(),
            s3_key_prefix: Some("prefix/logs".to_owned()),
            sns_topic: None,
            include_global_service_events: true,
            is_multi_region_trail: true,
            log_file_validation_enabled: false,
            cloud_watch_logs_log_group_arn: None,
            cloud_watch_logs_role_arn: None,
            recursive_logging: true,
        },
        selectors,
        tags: Vec::new(),
        logging,
        created_time_ms: 0,
        insight_selectors: Vec::new(),
    }
}

/// Everything a delivery worker needs, rooted in one temp dir.
pub struct Harness {
    pub test_store: TestStore,
    pub buckets_dir: PathBuf,
    pub trail_dir: PathBuf,
    pub trail_sender: watch::Sender<Arc<Trail>>,
    pub shutdown_sender: watch::Sender<bool>,
    pub status: StatusHandle,
}

impl Harness {
    pub fn new(trail: Trail) -> Harness {
        let test_store = TestStore::new();
        let buckets_dir = test_store.path().join("buckets");
        let trail_dir = test_store.path().join("trails").join(&trail.id);
        let (trail_sender, _) = watch::channel(Arc::new(trail));
        let (shutdown_sender, _) = watch::channel(false);
        Harness {
            test_store,
            buckets_dir,
            trail_dir,
            trail_sender,
            shutdown_sender,
            status: Arc::new(Mutex::new(Default::default())),
        }
    }

    pub fn options() -> DeliveryOptions {
        DeliveryOptions {
            retry_backoff_initial: std::time::Duration::from_millis(20),
            retry_backoff_max: std::time::Duration::from_millis(100),
            ..DeliveryOptions::default()
        }
    }

    /// A worker as after a (re)start of the process.
    pub fn worker(&self, options: DeliveryOptions) -> DeliveryWorker {
        let context = Arc::new(DeliveryContext {
            store: self.test_store.store.clone(),
            destinations: Arc::new(Destinations::from_config(
                &DestinationConfig::LocalDirectory {
                    buckets_dir: self.buckets_dir.clone(),
                },
            )),
            notifier: Notifier::new(reqwest::Client::new(), BTreeMap::new()),
            options,
            default_account_id: ACCOUNT.to_owned(),
        });
        DeliveryWorker::open(
            context,
            self.trail_sender.subscribe(),
            self.trail_dir.clone(),
            Arc::clone(&self.status),
            self.shutdown_sender.subscribe(),
        )
        .expect("open worker")
    }

    pub fn bucket_dir(&self) -> PathBuf {
        self.buckets_dir.join(BUCKET)
    }

    /// Every delivered file: key → records.
    pub fn delivered(&self) -> BTreeMap<String, Vec<Value>> {
        delivered_files(&self.bucket_dir())
    }
}

/// Reads every `.json.gz` under a bucket directory: key → records.
pub fn delivered_files(bucket_dir: &Path) -> BTreeMap<String, Vec<Value>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![bucket_dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".json.gz") {
                let key = path
                    .strip_prefix(bucket_dir)
                    .expect("under bucket")
                    .to_string_lossy()
                    .into_owned();
                let body = gunzip_single_member(&std::fs::read(&path).expect("read"));
                let parsed: Value = serde_json::from_slice(&body).expect("json");
                let records = parsed["Records"].as_array().expect("Records array").clone();
                files.insert(key, records);
            }
        }
    }
    files
}

/// Decompresses a gzip file, asserting it is exactly one member.
pub fn gunzip_single_member(bytes: &[u8]) -> Vec<u8> {
    let mut decoder = flate2::read::GzDecoder::new(bytes);
    let mut body = Vec::new();
    decoder.read_to_end(&mut body).expect("gunzip");
    let rest = decoder.into_inner();
    assert!(
        rest.is_empty(),
        "bytes after the first gzip member: {}",
        rest.len()
    );
    body
}

/// Event ids in delivered files, with how many times each appears.
pub fn event_id_counts(files: &BTreeMap<String, Vec<Value>>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for records in files.values() {
        for record in records {
            let id = record["eventID"].as_str().expect("eventID").to_owned();
            *counts.entry(id).or_insert(0) += 1;
        }
    }
    counts
}
