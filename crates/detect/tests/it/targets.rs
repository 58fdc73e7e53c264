//! Alert notification targets: an NDJSON file and syslog over UDP each receive every alert
//! once, across a stop and a restart, while a target that cannot be reached (a webhook on
//! a closed port) is retried without holding the others back.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use opentrail_detect::{AlertTarget, Detections, DetectionsOptions};
use opentrail_event::{IngestContext, parse_batch};
use opentrail_store::{Store, StoreOptions};
use tokio::net::UdpSocket;

use crate::starter_dir;

fn fixture(name: &str, event_id: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/events")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let mut record: serde_json::Value = serde_json::from_str(&text).expect("fixture is JSON");
    record["eventID"] = event_id.into();
    record.to_string()
}

fn append(store: &Store, records: &[String]) {
    let context = IngestContext {
        account_id: "111122223333".into(),
        region: "us-east-1".into(),
    };
    let body = format!("{{\"Records\":[{}]}}", records.join(","));
    let batch = parse_batch(body.as_bytes(), &context).expect("the records parse");
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

/// A port nothing listens on: bound, then released.
fn closed_tcp_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// Every alertId in the file (one alert object per line).
fn file_alert_ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let alert: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            alert["alertId"].as_str().expect("alertId").to_owned()
        })
        .collect()
}

/// The alert object a syslog message carries, after its structured data.
fn syslog_alert_id(datagram: &[u8]) -> String {
    let text = std::str::from_utf8(datagram).expect("UTF-8");
    assert!(text.starts_with("<134>1 "), "RFC 5424, local0.info: {text}");
    let json = &text[text.find("] {").expect("structured data, then the alert") + 2..];
    let alert: serde_json::Value = serde_json::from_str(json).expect("the alert is JSON");
    alert["alertId"].as_str().expect("alertId").to_owned()
}

async fn receive_until(
    socket: &UdpSocket,
    received: &mut BTreeMap<String, usize>,
    expected: usize,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buffer = vec![0u8; 65_536];
    while received.values().sum::<usize>() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "syslog received only {received:?}");
        if let Ok(Ok(length)) = tokio::time::timeout(left, socket.recv(&mut buffer)).await {
            *received
                .entry(syslog_alert_id(&buffer[..length]))
                .or_default() += 1;
        }
    }
}

async fn wait_for_lines(path: &Path, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while file_alert_ids(path).len() < expected {
        assert!(
            Instant::now() < deadline,
            "the file holds {:?}",
            file_alert_ids(path)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_and_syslog_get_each_alert_once_across_a_restart_while_a_dead_target_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let syslog = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
    let alert_file = dir.path().join("out/alerts.ndjson");
    let options = DetectionsOptions {
        alerts_dir: dir.path().join("alerts"),
        rules_state_dir: dir.path().join("detections"),
        rules_dir: Some(starter_dir()),
        targets: vec![
            AlertTarget::Webhook {
                url: format!("http://127.0.0.1:{}/alerts", closed_tcp_port()),
                secret: None,
            },
            AlertTarget::File {
                path: alert_file.clone(),
            },
            AlertTarget::Syslog {
                address: format!("udp://{}", syslog.local_addr().expect("address")),
            },
        ],
    };
    for target in &options.targets {
        target.validate().expect("a valid target");
    }
    let mut received = BTreeMap::new();
    {
        let store = Store::open(&dir.path().join("store"), StoreOptions::default()).expect("store");
        let detections = Detections::open(store.clone(), options.clone()).expect("detections");
        let workers = detections.start().expect("workers");
        append(
            &store,
            &[
                fixture(
                    "dynamodb_table_deleted.fires",
                    "00000000-0000-4000-8000-000000000001",
                ),
                fixture(
                    "dynamodb_table_deleted.quiet",
                    "00000000-0000-4000-8000-000000000002",
                ),
                fixture(
                    "s3_bucket_deleted.fires",
                    "00000000-0000-4000-8000-000000000003",
                ),
            ],
        );
        wait_for_lines(&alert_file, 2).await;
        receive_until(&syslog, &mut received, 2).await;
        workers.stop().await;
    }
    {
        let store = Store::open(&dir.path().join("store"), StoreOptions::default()).expect("store");
        let detections = Detections::open(store.clone(), options).expect("detections");
        let workers = detections.start().expect("workers");
        append(
            &store,
            &[fixture(
                "root_console_login.fires",
                "00000000-0000-4000-8000-000000000004",
            )],
        );
        wait_for_lines(&alert_file, 3).await;
        receive_until(&syslog, &mut received, 3).await;
        workers.stop().await;
        let logged: Vec<String> = detections
            .alerts()
            .read_from(0, 10)
            .expect("read")
            .into_iter()
            .map(|alert| alert.alert_id)
            .collect();
        assert_eq!(logged.len(), 3);
        assert_eq!(
            file_alert_ids(&alert_file),
            logged,
            "in log order, once each"
        );
        assert_eq!(received.keys().cloned().collect::<Vec<_>>(), {
            let mut sorted = logged.clone();
            sorted.sort();
            sorted
        });
        assert!(received.values().all(|&count| count == 1), "{received:?}");
    }
    // Nothing more arrives: the restart repeated nothing.
    let mut buffer = vec![0u8; 65_536];
    let late = tokio::time::timeout(Duration::from_millis(300), syslog.recv(&mut buffer)).await;
    assert!(late.is_err(), "an extra syslog message arrived");
    let state = std::fs::read_to_string(dir.path().join("alerts/delivered-file.json"))
        .expect("the file target's position");
    assert!(state.contains("\"delivered\":3"), "{state}");
    assert!(
        !dir.path().join("alerts/delivered.json").exists(),
        "the unreachable webhook delivered nothing"
    );
}

#[test]
fn a_target_kind_configured_twice_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store"), StoreOptions::default()).expect("store");
    let syslog = |address: &str| AlertTarget::Syslog {
        address: address.to_owned(),
    };
    let refused = Detections::open(
        store,
        DetectionsOptions {
            alerts_dir: dir.path().join("alerts"),
            rules_state_dir: dir.path().join("detections"),
            rules_dir: None,
            targets: vec![syslog("udp://127.0.0.1:514"), syslog("tcp://127.0.0.1:514")],
        },
    );
    assert!(matches!(
        refused,
        Err(opentrail_detect::DetectError::DuplicateTarget("syslog"))
    ));
    assert!(syslog("http://127.0.0.1:514").validate().is_err());
    assert!(syslog("udp://127.0.0.1").validate().is_err());
}
