//! `opentrail ingest` and `opentrail lookup` against a real server: files of every shape
//! in, the classic "who deleted the table" question out.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, ensure};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use crate::{Server, temporary_directories};

const ACCOUNT: &str = "123456789012";
const DELETE_TABLE_ID: &str = "d0e1e7e0-0000-4000-8000-000000000001";
const BULK_SOURCE: &str = "bulk.example.com";
const BULK_EVENTS: usize = 1200;
/// The line of the NDJSON file that is not JSON (zero-based among non-blank lines).
const BULK_BAD_INDEX: usize = 600;

fn minutes_ago(minutes: i64) -> anyhow::Result<String> {
    let time = jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_mins(minutes))?;
    Ok(time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn event(id: &str, name: &str, source: &str, user: &str, time: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLE",
            "arn": format!("arn:aws:iam::{ACCOUNT}:user/{user}"),
            "accountId": ACCOUNT,
            "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
            "userName": user
        },
        "eventTime": time,
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15.0",
        "eventID": id,
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT
    })
}

fn delete_table(time: &str) -> Value {
    let mut record = event(
        DELETE_TABLE_ID,
        "DeleteTable",
        "dynamodb.amazonaws.com",
        "Alice",
        time,
    );
    record["requestParameters"] = json!({ "tableName": "Music" });
    record["readOnly"] = json!(false);
    record["resources"] = json!([{
        "accountId": ACCOUNT,
        "type": "AWS::DynamoDB::Table",
        "ARN": format!("arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/Music")
    }]);
    record
}

fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

/// A directory as a user might have it: a CloudTrail log file (gzip, in the S3 layout,
/// next to a digest file), a JSON array with one bad record, a large NDJSON file with a
/// broken line and blank lines, and a file that is not events at all.
/// Returns the number of events that should be accepted.
fn write_event_files(root: &Path) -> anyhow::Result<usize> {
    let logs = root.join(format!("AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2024/05/06"));
    std::fs::create_dir_all(&logs)?;
    let cloudtrail_file = json!({
        "Records": [
            delete_table(&minutes_ago(5)?),
            event("e-putitem", "PutItem", "dynamodb.amazonaws.com", "Alice", &minutes_ago(120)?)
        ]
    });
    std::fs::write(
        logs.join(format!(
            "{ACCOUNT}_CloudTrail_us-east-1_20240506T1200Z_abc.json.gz"
        )),
        gzip(cloudtrail_file.to_string().as_bytes())?,
    )?;
    std::fs::write(
        logs.join(format!(
            "{ACCOUNT}_CloudTrail-Digest_us-east-1_x_20240506T1200Z.json.gz"
        )),
        gzip(br#"{"digestStartTime":"2024-05-06T11:00:00Z"}"#)?,
    )?;

    let mut denied = event(
        "e-denied",
        "GetItem",
        "dynamodb.amazonaws.com",
        "Bob",
        &minutes_ago(30)?,
    );
    denied["errorCode"] = json!("AccessDenied");
    let mut nameless = event(
        "e-nameless",
        "X",
        "dynamodb.amazonaws.com",
        "Bob",
        &minutes_ago(31)?,
    );
    if let Some(object) = nameless.as_object_mut() {
        object.remove("eventName");
    }
    let array = json!([
        event(
            "e-describe",
            "DescribeTable",
            "dynamodb.amazonaws.com",
            "Bob",
            &minutes_ago(32)?
        ),
        nameless,
        denied
    ]);
    std::fs::write(
        root.join("exported.json"),
        serde_json::to_string_pretty(&array)?,
    )?;

    let mut bulk = String::new();
    let bulk_time = minutes_ago(60)?;
    for index in 0..BULK_EVENTS {
        if index == BULK_BAD_INDEX {
            bulk.push_str("{\"eventID\": \"truncated\n\n");
            continue;
        }
        let record = event(
            &format!("bulk-{index:05}"),
            "GetObject",
            BULK_SOURCE,
            "Carol",
            &bulk_time,
        );
        bulk.push_str(&record.to_string());
        bulk.push('\n');
    }
    std::fs::write(root.join("bulk.ndjson"), bulk)?;
    std::fs::write(root.join("README.txt"), "not events")?;
    Ok(2 + 2 + (BULK_EVENTS - 1))
}

fn stdout_json(output: &std::process::Output) -> anyhow::Result<Value> {
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "stdout is not JSON: {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn run_ok(server: &Server, arguments: &[&str]) -> anyhow::Result<std::process::Output> {
    let output = server.client(arguments)?;
    ensure!(
        output.status.success(),
        "`opentrail {}` failed: {}\n{}",
        arguments.join(" "),
        String::from_utf8_lossy(&output.stderr),
        server.logs()
    );
    Ok(output)
}

fn failed_entries(summary: &Value) -> Vec<(String, u64, String)> {
    summary["failed"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|entry| {
                    let file = entry["file"].as_str().unwrap_or_default();
                    let name = Path::new(file)
                        .file_name()
                        .map(|name| name.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    (
                        name,
                        entry["index"].as_u64().unwrap_or(u64::MAX),
                        entry["error_code"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn ingest_a_directory_then_find_who_deleted_the_table() -> anyhow::Result<()> {
    let (data, logs) = temporary_directories()?;
    let input = tempfile::tempdir()?;
    let expected_accepted = write_event_files(input.path())?;
    let server = Server::start(data.path(), logs.path(), &[])?;
    let input_path = input.path().to_string_lossy().into_owned();

    let first = run_ok(
        &server,
        &[
            "ingest",
            &input_path,
            "--batch-events",
            "500",
            "--output",
            "json",
        ],
    )?;
    let summary = stdout_json(&first)?;
    assert_eq!(summary["files"], 3, "{summary:#}");
    assert_eq!(
        summary["files_skipped"], 2,
        "README.txt and the digest: {summary:#}"
    );
    assert_eq!(summary["events_accepted"], expected_accepted, "{summary:#}");
    assert_eq!(summary["duplicates"], 0, "{summary:#}");
    assert_eq!(summary["errors"], json!([]), "{summary:#}");
    assert_eq!(
        failed_entries(&summary),
        vec![
            (
                "bulk.ndjson".to_owned(),
                BULK_BAD_INDEX as u64,
                "InvalidData".to_owned()
            ),
            ("exported.json".to_owned(), 1, "FieldNotFound".to_owned()),
        ],
        "{summary:#}"
    );

    // Again, with bodies so small that every file is split: everything is a duplicate,
    // and failed records are still named by their position in their file.
    let again = run_ok(
        &server,
        &[
            "ingest",
            &input_path,
            "--batch-bytes",
            "1024",
            "--output",
            "json",
        ],
    )?;
    let summary = stdout_json(&again)?;
    assert_eq!(summary["events_accepted"], 0, "{summary:#}");
    assert_eq!(summary["duplicates"], expected_accepted, "{summary:#}");
    assert_eq!(failed_entries(&summary).len(), 2, "{summary:#}");
    assert_eq!(failed_entries(&summary)[1].1, 1, "{summary:#}");

    // Who deleted the table?
    let found = stdout_json(&run_ok(
        &server,
        &["lookup", "--event-name", "DeleteTable", "--output", "json"],
    )?)?;
    let records = found.as_array().context("a JSON array")?;
    assert_eq!(records.len(), 1, "{found:#}");
    assert_eq!(records[0]["eventID"], DELETE_TABLE_ID);
    assert_eq!(records[0]["userIdentity"]["userName"], "Alice");
    assert_eq!(records[0]["sourceIPAddress"], "203.0.113.7");
    assert_eq!(records[0]["requestParameters"]["tableName"], "Music");

    let table = run_ok(&server, &["lookup", "--event-name", "DeleteTable"])?;
    let text = String::from_utf8(table.stdout)?;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("TIME"), "{text}");
    for expected in [
        "DeleteTable",
        "Alice",
        "dynamodb.amazonaws.com",
        "Music",
        "203.0.113.7",
    ] {
        assert!(lines[1].contains(expected), "{expected} missing: {text}");
    }

    let csv = run_ok(
        &server,
        &[
            "lookup",
            "--filter",
            "resourceName=Music",
            "--output",
            "csv",
        ],
    )?;
    let csv_text = String::from_utf8(csv.stdout)?;
    let csv_lines: Vec<&str> = csv_text.lines().collect();
    assert_eq!(csv_lines.len(), 2, "{csv_text}");
    assert!(
        csv_lines[0].starts_with("eventTime,eventName,username,"),
        "{csv_text}"
    );
    assert!(csv_lines[1].contains(",DeleteTable,Alice,"), "{csv_text}");
    assert!(csv_lines[1].contains(DELETE_TABLE_ID), "{csv_text}");
    Ok(())
}

#[test]
fn lookup_follows_pages_filters_and_time_ranges() -> anyhow::Result<()> {
    let (data, logs) = temporary_directories()?;
    let input = tempfile::tempdir()?;
    write_event_files(input.path())?;
    let server = Server::start(data.path(), logs.path(), &[])?;
    let input_path = input.path().to_string_lossy().into_owned();
    run_ok(&server, &["ingest", &input_path, "--quiet"])?;

    // More than one page of 1000: the CLI follows the cursor.
    let everything = run_ok(
        &server,
        &[
            "lookup",
            "--event-source",
            BULK_SOURCE,
            "--all",
            "--output",
            "ndjson",
        ],
    )?;
    let text = String::from_utf8(everything.stdout)?;
    let mut ids: Vec<String> = Vec::new();
    for line in text.lines() {
        let record: Value = serde_json::from_str(line)?;
        ids.push(record["eventID"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(ids.len(), BULK_EVENTS - 1);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), BULK_EVENTS - 1, "no event twice across pages");

    let limited = stdout_json(&run_ok(
        &server,
        &[
            "lookup",
            "--event-source",
            BULK_SOURCE,
            "--limit",
            "1100",
            "--output",
            "json",
        ],
    )?)?;
    assert_eq!(limited.as_array().map(Vec::len), Some(1100));
    let default_limit = stdout_json(&run_ok(
        &server,
        &["lookup", "--event-source", BULK_SOURCE, "--output", "json"],
    )?)?;
    assert_eq!(default_limit.as_array().map(Vec::len), Some(50));

    // Relative times: Alice's PutItem was two hours ago, her DeleteTable five minutes ago.
    let recent = stdout_json(&run_ok(
        &server,
        &[
            "lookup",
            "--username",
            "Alice",
            "--start",
            "-1h",
            "--end",
            "now",
            "--output",
            "json",
        ],
    )?)?;
    let names: Vec<&str> = recent
        .as_array()
        .context("array")?
        .iter()
        .filter_map(|record| record["eventName"].as_str())
        .collect();
    assert_eq!(names, ["DeleteTable"]);
    let all_of_alice = stdout_json(&run_ok(
        &server,
        &[
            "lookup",
            "--username",
            "Alice",
            "--start=-3h",
            "--output",
            "json",
        ],
    )?)?;
    assert_eq!(all_of_alice.as_array().map(Vec::len), Some(2));

    // Several filters at once, and the client-side failed-calls filter.
    let mutating = stdout_json(&run_ok(
        &server,
        &[
            "lookup",
            "--event-source",
            "dynamodb.amazonaws.com",
            "--read-only",
            "false",
            "--source-ip",
            "203.0.113.7",
            "--output",
            "json",
        ],
    )?)?;
    let mutating_names: Vec<&str> = mutating
        .as_array()
        .context("array")?
        .iter()
        .filter_map(|record| record["eventName"].as_str())
        .collect();
    assert_eq!(mutating_names, ["DeleteTable", "PutItem"]);
    let failures = stdout_json(&run_ok(
        &server,
        &[
            "lookup",
            "--event-source",
            "dynamodb.amazonaws.com",
            "--errors-only",
            "--output",
            "json",
        ],
    )?)?;
    assert_eq!(failures.as_array().map(Vec::len), Some(1), "{failures:#}");
    assert_eq!(failures[0]["errorCode"], "AccessDenied");

    let none = run_ok(
        &server,
        &["lookup", "--event-name", "NoSuchEvent", "--output", "json"],
    )?;
    assert_eq!(stdout_json(&none)?, json!([]));

    // A bad time is one error line, before anything is sent.
    let bad = server.client(&["lookup", "--start", "last tuesday"])?;
    assert!(!bad.status.success());
    let stderr = String::from_utf8(bad.stderr)?;
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--start") && stderr.contains("-1h"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn a_file_the_server_cannot_read_fails_the_run_but_not_the_others() -> anyhow::Result<()> {
    let (data, logs) = temporary_directories()?;
    let input = tempfile::tempdir()?;
    let good = json!({"Records": [event("e-good", "ListTables", "dynamodb.amazonaws.com", "Dan", &minutes_ago(1)?)]});
    std::fs::write(input.path().join("good.json"), good.to_string())?;
    std::fs::write(input.path().join("broken.json"), "this is not JSON")?;
    let server = Server::start(data.path(), logs.path(), &[])?;

    let output = server.client(&[
        "ingest",
        &input.path().to_string_lossy(),
        "--output",
        "json",
    ])?;
    assert!(!output.status.success(), "a broken file fails the run");
    let stderr = String::from_utf8(output.stderr.clone())?;
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("1 of 2 files could not be ingested"),
        "{stderr}"
    );
    let summary = stdout_json(&output)?;
    assert_eq!(summary["events_accepted"], 1, "{summary:#}");
    let errors = summary["errors"].as_array().context("errors")?;
    assert_eq!(errors.len(), 1, "{summary:#}");
    assert!(
        errors[0]["file"]
            .as_str()
            .unwrap_or_default()
            .ends_with("broken.json"),
        "{summary:#}"
    );

    // A read-only key may not ingest: the run stops at once with the server's reason.
    let reader = server.client_json(&["keys", "create", "--role", "read"])?;
    let denied = server.client(&[
        "ingest",
        &input.path().join("good.json").to_string_lossy(),
        "--access-key-id",
        reader["accessKeyId"].as_str().context("id")?,
        "--secret-access-key",
        reader["secretAccessKey"].as_str().context("secret")?,
    ])?;
    assert!(!denied.status.success());
    let denied_stderr = String::from_utf8(denied.stderr)?;
    assert_eq!(denied_stderr.lines().count(), 1, "{denied_stderr}");
    assert!(denied_stderr.contains("AccessDenied"), "{denied_stderr}");

    let missing = server.client(&["ingest", "/nonexistent/events.json"])?;
    assert!(!missing.status.success());
    let missing_stderr = String::from_utf8(missing.stderr)?;
    assert!(
        missing_stderr.starts_with("opentrail: error: cannot read /nonexistent/events.json"),
        "{missing_stderr}"
    );
    Ok(())
}
