//! `opentrail alerts` against a real server running the starter rules: an event that
//! fires a rule is listed, one that does not is not.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use crate::{Server, temporary_directories};

const ACCOUNT: &str = "123456789012";

fn record(id: &str, name: &str, source: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "arn": format!("arn:aws:iam::{ACCOUNT}:user/alice"),
            "accountId": ACCOUNT,
            "userName": "alice"
        },
        "eventTime": "2026-11-30T10:00:00Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "eventID": id,
        "requestParameters": { "tableName": "orders" },
        "recipientAccountId": ACCOUNT
    })
}

fn alerts_json(server: &Server) -> anyhow::Result<Value> {
    let output = server.client(&["alerts", "--output", "json"])?;
    ensure!(
        output.status.success(),
        "`opentrail alerts` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).context("alerts printed invalid JSON")
}

#[test]
fn alerts_lists_what_the_rules_matched() -> anyhow::Result<()> {
    let (data, logs) = temporary_directories()?;
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/cloudtrail");
    let rules = rules.to_string_lossy().into_owned();
    let server = Server::start(data.path(), logs.path(), &[("OPENTRAIL_RULES_DIR", &rules)])?;

    let empty = server.client(&["alerts"])?;
    ensure!(
        empty.status.success(),
        "{}",
        String::from_utf8_lossy(&empty.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&empty.stdout).trim(), "No alerts.");

    let input = tempfile::tempdir()?;
    let file = input.path().join("events.json");
    let deleted = "a1e7a1e7-0000-4000-8000-000000000001";
    let described = "a1e7a1e7-0000-4000-8000-000000000002";
    let body = json!({ "Records": [
        record(deleted, "DeleteTable", "dynamodb.amazonaws.com"),
        record(described, "DescribeTable", "dynamodb.amazonaws.com"),
    ]});
    std::fs::write(&file, body.to_string())?;
    let ingested = server.client(&["ingest", &file.to_string_lossy()])?;
    ensure!(
        ingested.status.success(),
        "{}",
        String::from_utf8_lossy(&ingested.stderr)
    );

    // Matching runs beside ingest; wait (bounded) for the alert rather than for a time.
    let deadline = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let answer = alerts_json(&server)?;
        if answer["alerts"]
            .as_array()
            .is_some_and(|alerts| !alerts.is_empty())
        {
            break answer;
        }
        ensure!(
            Instant::now() < deadline,
            "no alert appeared\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let alerts = listed["alerts"].as_array().context("alerts array")?;
    assert_eq!(alerts.len(), 1, "{listed:#}");
    assert_eq!(alerts[0]["eventId"], deleted);
    assert_eq!(alerts[0]["eventName"], "DeleteTable");

    let table = server.client(&["alerts"])?;
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("DETECTED"), "{text}");
    assert!(
        text.contains("DeleteTable") && text.contains(deleted),
        "{text}"
    );
    assert!(!text.contains(described), "{text}");
    Ok(())
}
