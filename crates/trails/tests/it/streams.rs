//! Stream sinks (the CloudWatch Logs stand-in): file rotation, webhook signatures, syslog
//! framing, and each event sent once per successful batch.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentrail_trails::model::EventSelectors;
use opentrail_trails::streams::{StreamContext, StreamOptions, StreamWorker, signature_header};
use opentrail_trails::{SinkConnector as _, StreamSinkConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::watch;

use crate::support::{ACCOUNT, TestStore, record, trail};

/// Headers (lower-case names) and body of one request the test webhook received.
type CapturedRequest = (Vec<(String, String)>, Vec<u8>);

const LOG_GROUP: &str = "arn:aws:logs:us-east-1:111122223333:log-group:audit:*";

fn worker(
    test_store: &TestStore,
    sink: &StreamSinkConfig,
    logging_after: u64,
) -> (StreamWorker, watch::Sender<bool>) {
    let context = Arc::new(StreamContext {
        store: test_store.store.clone(),
        client: reqwest::Client::new(),
        options: StreamOptions {
            retry_backoff_initial: Duration::from_millis(20),
            retry_backoff_max: Duration::from_millis(100),
            ..StreamOptions::default()
        },
        default_account_id: ACCOUNT.to_owned(),
    });
    let (_trail_sender, trail_receiver) = watch::channel(Arc::new(trail(
        "streamed",
        EventSelectors::Default,
        Some(logging_after),
    )));
    let (shutdown_sender, shutdown_receiver) = watch::channel(false);
    let opened = StreamWorker::open(
        context,
        trail_receiver,
        LOG_GROUP.to_owned(),
        sink.connect(),
        test_store.path().join("trails/streamed"),
        Arc::new(Mutex::new(Default::default())),
        shutdown_receiver,
    )
    .expect("open stream worker");
    (opened, shutdown_sender)
}

fn events(count: usize) -> Vec<Value> {
    (0..count)
        .map(|index| {
            record(
                &format!("Streamed{index}"),
                json!({"padding": "x".repeat(300)}),
            )
        })
        .collect()
}

#[test]
fn signature_is_hmac_sha256_hex() {
    // RFC 4231, test case 2.
    assert_eq!(
        signature_header("Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_sink_appends_ndjson_and_rotates_at_the_size_limit() {
    let test_store = TestStore::new();
    let path = test_store.path().join("sink/audit.ndjson");
    let sink = StreamSinkConfig::File {
        path: path.clone(),
        rotate_bytes: 2048,
        keep_files: 20,
    };
    let appended = test_store.append(&events(12));
    let (mut stream_worker, _shutdown) = worker(&test_store, &sink, 0);
    assert_eq!(stream_worker.poll().await.expect("poll"), 12);
    assert_eq!(
        stream_worker.poll().await.expect("poll"),
        0,
        "nothing new, nothing sent"
    );
    let mut seen = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(path.parent().expect("parent")).expect("dir") {
        let file = entry.expect("entry").path();
        files += 1;
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(
            text.len() <= 2048,
            "{} is {} bytes",
            file.display(),
            text.len()
        );
        for line in text.lines() {
            let parsed: Value = serde_json::from_str(line).expect("one JSON record per line");
            seen.push(parsed["eventID"].as_str().expect("id").to_owned());
        }
    }
    assert!(files > 1, "the sink rotated");
    seen.sort();
    let mut expected: Vec<String> = appended.iter().map(|(_, id)| id.clone()).collect();
    expected.sort();
    assert_eq!(seen, expected);
    // The cursor moved: a restarted worker sends nothing again.
    let (mut restarted, _shutdown) = worker(&test_store, &sink, 0);
    assert_eq!(restarted.poll().await.expect("poll"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_sink_signs_each_ndjson_batch_and_retries_failures() {
    let test_store = TestStore::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let captured: Arc<Mutex<Vec<CapturedRequest>>> = Arc::default();
    let server_captured = Arc::clone(&captured);
    tokio::spawn(async move {
        let mut served = 0;
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            served += 1;
            let mut reader = BufReader::new(socket);
            let mut headers = Vec::new();
            let mut content_length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                    break;
                }
                let line = line.trim_end().to_owned();
                if line.is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(": ") {
                    if name.eq_ignore_ascii_case("content-length") {
                        content_length = value.parse().unwrap_or(0);
                    }
                    headers.push((name.to_ascii_lowercase(), value.to_owned()));
                }
            }
            let mut body = vec![0u8; content_length];
            let _ = reader.read_exact(&mut body).await;
            // The first request fails: the sink must retry it.
            let status = if served == 1 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            if served > 1 {
                server_captured
                    .lock()
                    .expect("capture")
                    .push((headers, body));
            }
            let response =
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ =
                tokio::io::AsyncWriteExt::write_all(reader.get_mut(), response.as_bytes()).await;
        }
    });
    let sink = StreamSinkConfig::Webhook {
        url: format!("http://{address}/logs"),
        secret: Some("hook-secret".to_owned()),
    };
    let appended = test_store.append(&events(3));
    let (mut stream_worker, _shutdown) = worker(&test_store, &sink, 0);
    assert_eq!(stream_worker.poll().await.expect("poll"), 3);
    let requests = captured.lock().expect("capture").clone();
    assert_eq!(requests.len(), 1);
    let (headers, body) = &requests[0];
    let header = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    assert_eq!(
        header("x-opentrail-signature-256"),
        Some(signature_header("hook-secret", body).as_str())
    );
    assert_eq!(header("content-type"), Some("application/x-ndjson"));
    assert_eq!(
        header("x-opentrail-log-stream"),
        Some("111122223333_CloudTrail_us-east-1")
    );
    assert_eq!(header("x-opentrail-log-group"), Some(LOG_GROUP));
    let lines: Vec<Value> = std::str::from_utf8(body)
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("json line"))
        .collect();
    let ids: Vec<&str> = lines
        .iter()
        .map(|line| line["eventID"].as_str().unwrap_or_default())
        .collect();
    let expected: Vec<&str> = appended.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_syslog_sink_sends_rfc5424_with_octet_counting() {
    let test_store = TestStore::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let received = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut bytes = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(Ok(read)) =
            tokio::time::timeout(Duration::from_secs(2), socket.read(&mut buffer)).await
        {
            if read == 0 {
                break;
            }
            bytes.extend_from_slice(&buffer[..read]);
        }
        bytes
    });
    let sink = StreamSinkConfig::Syslog {
        address: address.to_string(),
    };
    let appended = test_store.append(&events(2));
    let (mut stream_worker, _shutdown) = worker(&test_store, &sink, 0);
    assert_eq!(stream_worker.poll().await.expect("poll"), 2);
    drop(stream_worker);
    let bytes = received.await.expect("receiver");
    let mut rest = std::str::from_utf8(&bytes).expect("utf-8");
    let mut messages = Vec::new();
    while !rest.is_empty() {
        let (length, tail) = rest.split_once(' ').expect("octet count");
        let length: usize = length.parse().expect("number");
        messages.push(&tail[..length]);
        rest = &tail[length..];
    }
    assert_eq!(messages.len(), 2);
    for (message, (_, id)) in messages.iter().zip(&appended) {
        assert!(message.starts_with("<134>1 "), "{message}");
        assert!(
            message.contains(" opentrail - CloudTrail [opentrail@32473 logGroup="),
            "{message}"
        );
        let json_start = message.find("] {").expect("record after structured data") + 2;
        let parsed: Value = serde_json::from_str(&message[json_start..]).expect("record");
        assert_eq!(parsed["eventID"], id.as_str());
    }
}
