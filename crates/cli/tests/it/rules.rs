//! `opentrail rules` as a user runs it: `rules test` with the shipped starter rules over a
//! few log files, as a table and as JSON, and a broken rule reported with its file and
//! line; and `rules add|list|disable|enable|remove` against a real server.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use serde_json::Value;

use crate::{BINARY, Server};

const BUCKET_DELETED: &str = "f29bb726-7dfb-48e9-9e6a-0e15902cd9d7";
const ROOT_LOGIN: &str = "8ce7a6d9-1e1c-4026-8d0c-0eeb88a25767";
const LOGGING_STOPPED: &str = "915700c7-c070-440d-b537-2cd813695daf";

fn starter_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/cloudtrail")
}

fn rules_test(arguments: &[&str]) -> anyhow::Result<Output> {
    Command::new(BINARY)
        .args(["rules", "test"])
        .args(arguments)
        .env_remove("OPENTRAIL_CONFIG")
        .stdin(Stdio::null())
        .output()
        .context("run opentrail rules test")
}

/// A CloudTrail log file with a deleted bucket, a denied bucket deletion and a root
/// console login, and an NDJSON file with a stopped trail (no eventID: as in the file).
fn write_logs(dir: &Path) -> anyhow::Result<()> {
    let record = |name: &str, source: &str, id: &str, extra: &str| {
        format!(
            r#"{{"eventVersion":"1.09","userIdentity":{{"type":"IAMUser","principalId":"AIDAEXAMPLE","arn":"arn:aws:iam::111122223333:user/alice","accountId":"111122223333","userName":"alice"}},"eventTime":"2026-11-30T10:00:0{}Z","eventSource":"{source}","eventName":"{name}","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.7","userAgent":"aws-cli/2.15.30","eventID":"{id}","readOnly":false,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111122223333"{extra}}}"#,
            id.len() % 10
        )
    };
    let deleted = record(
        "DeleteBucket",
        "s3.amazonaws.com",
        "11111111-1111-4111-8111-111111111111",
        r#","requestParameters":{"bucketName":"acme-logs"}"#,
    );
    let denied = record(
        "DeleteBucket",
        "s3.amazonaws.com",
        "22222222-2222-4222-8222-222222222222",
        r#","requestParameters":{"bucketName":"acme-logs"},"errorCode":"BucketNotEmpty""#,
    );
    let root_login = r#"{"eventVersion":"1.09","userIdentity":{"type":"Root","principalId":"111122223333","arn":"arn:aws:iam::111122223333:root","accountId":"111122223333"},"eventTime":"2026-11-30T07:58:12Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.7","requestParameters":null,"responseElements":{"ConsoleLogin":"Success"},"additionalEventData":{"MFAUsed":"Yes"},"eventID":"33333333-3333-4333-8333-333333333333","eventType":"AwsConsoleSignIn","recipientAccountId":"111122223333"}"#;
    std::fs::write(
        dir.join("111122223333_CloudTrail_us-east-1_20261130T1000Z_abc.json"),
        format!("{{\"Records\":[{deleted},{denied},{root_login}]}}"),
    )?;
    let stopped = r#"{"eventTime":"2026-11-30T11:20:05Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","requestParameters":{"name":"main"}}"#;
    std::fs::write(dir.join("more.ndjson"), format!("{stopped}\n"))?;
    Ok(())
}

#[test]
fn rules_test_prints_each_match_and_a_count_per_rule() -> anyhow::Result<()> {
    let logs = tempfile::tempdir()?;
    write_logs(logs.path())?;
    let rules = starter_rules();
    let rules = rules.to_str().context("path")?;
    let logs_path = logs.path().to_str().context("path")?;

    let table = rules_test(&[rules, "--against", logs_path])?;
    let stdout = String::from_utf8(table.stdout)?;
    ensure!(
        table.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&table.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("RULE "), "{stdout}");
    assert!(lines[0].contains("EVENT ID"), "{stdout}");
    let bucket_line = lines
        .iter()
        .find(|line| line.starts_with("S3 bucket deleted"))
        .context(stdout.clone())?;
    assert!(bucket_line.contains("11111111-1111-4111-8111-111111111111"));
    assert!(bucket_line.contains("DeleteBucket"));
    assert!(bucket_line.ends_with("_abc.json"), "{bucket_line}");
    assert!(
        !stdout.contains("22222222-2222"),
        "a denied deletion is no match"
    );
    let stopped = lines
        .iter()
        .find(|line| line.starts_with("CloudTrail logging stopped"))
        .context(stdout.clone())?;
    assert!(stopped.contains("2026-11-30T11:20:05Z") && stopped.contains(" - "));
    assert!(stdout.contains("Root user console login"), "{stdout}");
    // The counts: every starter rule, zero included.
    let counts_header = lines
        .iter()
        .position(|line| line.starts_with("MATCHES"))
        .context(stdout.clone())?;
    assert_eq!(lines[counts_header + 1..counts_header + 8].len(), 7);
    assert!(
        lines[counts_header + 1..counts_header + 8]
            .iter()
            .any(|line| line.starts_with("0 ") && line.contains("DynamoDB table deleted")),
        "{stdout}"
    );
    assert!(
        stdout.contains("3 matches in 4 records from 2 files."),
        "{stdout}"
    );

    let json = rules_test(&[rules, "--against", logs_path, "--output", "json"])?;
    ensure!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let report: Value = serde_json::from_slice(&json.stdout)?;
    let matches = report["matches"].as_array().context("matches")?;
    let fired: Vec<(&str, &str)> = matches
        .iter()
        .map(|row| {
            (
                row["ruleId"].as_str().unwrap_or_default(),
                row["eventName"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        fired,
        [
            (BUCKET_DELETED, "DeleteBucket"),
            (ROOT_LOGIN, "ConsoleLogin"),
            (LOGGING_STOPPED, "StopLogging")
        ],
        "{report:#}"
    );
    assert_eq!(
        matches[0]["eventId"],
        "11111111-1111-4111-8111-111111111111"
    );
    assert_eq!(matches[0]["ruleTitle"], "S3 bucket deleted");
    assert_eq!(matches[0]["level"], "medium");
    assert_eq!(matches[0]["record"], 0);
    assert_eq!(matches[1]["record"], 2);
    assert_eq!(matches[2]["eventId"], Value::Null);
    assert_eq!(report["records"], 4);
    assert_eq!(report["files"], 2);
    let counts = report["counts"].as_array().context("counts")?;
    assert_eq!(counts.len(), 7);
    let count_of = |id: &str| {
        counts
            .iter()
            .find(|count| count["ruleId"] == id)
            .map(|count| count["matches"].clone())
    };
    assert_eq!(count_of(BUCKET_DELETED), Some(Value::from(1)));
    assert_eq!(count_of(ROOT_LOGIN), Some(Value::from(1)));
    assert_eq!(report["refused"], Value::Array(Vec::new()));
    Ok(())
}

#[test]
fn a_broken_rule_is_reported_with_its_file_and_line() -> anyhow::Result<()> {
    let logs = tempfile::tempdir()?;
    write_logs(logs.path())?;
    let rule = logs.path().join("broken.yml");
    std::fs::write(
        &rule,
        "title: Broken\nid: 00000000-0000-4000-8000-000000000001\nlogsource:\n    product: \
         aws\n    service: cloudtrail\ndetection:\n    selection:\n        eventName|sounds_like: \
         DeleteBucket\n    condition: selection\n",
    )?;
    let output = rules_test(&[
        rule.to_str().context("path")?,
        "--against",
        logs.path().to_str().context("path")?,
    ])?;
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr)?;
    assert!(
        stderr.contains(&format!("{}:8: ", rule.display())),
        "{stderr}"
    );
    assert!(stderr.contains("sounds_like"), "{stderr}");
    Ok(())
}

const ADDED_RULE_ID: &str = "6c1d2b66-0000-4000-8000-00000000c001";

fn run_ok(server: &Server, arguments: &[&str]) -> anyhow::Result<String> {
    let output = server.client(arguments)?;
    ensure!(
        output.status.success(),
        "`opentrail {}` failed: {}\n{}",
        arguments.join(" "),
        String::from_utf8_lossy(&output.stderr),
        server.logs()
    );
    Ok(String::from_utf8(output.stdout)?)
}

fn listed_rules(server: &Server) -> anyhow::Result<Vec<Value>> {
    let list = server.client_json(&["rules", "list"])?;
    Ok(list["rules"].as_array().context("rules array")?.clone())
}

/// Waits (bounded) until `opentrail alerts` lists `count` alerts.
fn wait_for_alerts(server: &Server, count: usize) -> anyhow::Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = server.client_json(&["alerts"])?;
        let alerts = answer["alerts"].as_array().context("alerts array")?.clone();
        if alerts.len() >= count {
            return Ok(alerts);
        }
        ensure!(
            Instant::now() < deadline,
            "{} alert(s), not {count}\n{}",
            alerts.len(),
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ingest_bucket_policy_change(server: &Server, dir: &Path, event_id: &str) -> anyhow::Result<()> {
    let file = dir.join(format!("{event_id}.json"));
    std::fs::write(
        &file,
        format!(
            r#"{{"Records":[{{"eventVersion":"1.09","eventTime":"2026-11-30T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"PutBucketPolicy","awsRegion":"us-east-1","eventID":"{event_id}","recipientAccountId":"123456789012","requestParameters":{{"bucketName":"acme"}}}}]}}"#
        ),
    )?;
    run_ok(server, &["ingest", file.to_str().context("path")?])?;
    Ok(())
}

#[test]
fn rules_are_added_listed_disabled_enabled_and_removed_on_a_server() -> anyhow::Result<()> {
    let (data, logs) = crate::temporary_directories()?;
    let server = Server::start(data.path(), logs.path(), &[])?;
    let work = tempfile::tempdir()?;
    assert_eq!(run_ok(&server, &["rules", "list"])?.trim(), "No rules.");

    let rule = work.path().join("bucket_policy.yml");
    std::fs::write(
        &rule,
        format!(
            "title: Bucket policy changed\nid: {ADDED_RULE_ID}\nlevel: medium\nlogsource:\n    \
             product: aws\n    service: cloudtrail\ndetection:\n    selection:\n        \
             eventName: PutBucketPolicy\n    condition: selection\n"
        ),
    )?;
    let added = run_ok(&server, &["rules", "add", rule.to_str().context("path")?])?;
    assert!(
        added.contains(ADDED_RULE_ID) && added.contains("Bucket policy changed"),
        "{added}"
    );
    let rules = listed_rules(&server)?;
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(
        (&rules[0]["id"], &rules[0]["origin"], &rules[0]["enabled"]),
        (
            &Value::from(ADDED_RULE_ID),
            &Value::from("api"),
            &Value::from(true)
        )
    );
    let table = run_ok(&server, &["rules", "list"])?;
    assert!(table.starts_with("RULE ID"), "{table}");

    ingest_bucket_policy_change(&server, work.path(), "6c1d2b66-0000-4000-8000-0000000000e1")?;
    let alerts = wait_for_alerts(&server, 1)?;
    assert_eq!(alerts[0]["ruleId"], ADDED_RULE_ID);

    let disabled = run_ok(&server, &["rules", "disable", ADDED_RULE_ID])?;
    assert!(disabled.starts_with("Disabled rule"), "{disabled}");
    assert_eq!(listed_rules(&server)?[0]["enabled"], false);
    let enabled = run_ok(&server, &["rules", "enable", ADDED_RULE_ID])?;
    assert!(enabled.starts_with("Enabled rule"), "{enabled}");

    // The same id again is refused, with the reason; so is a rule that cannot run.
    let again = server.client(&["rules", "add", rule.to_str().context("path")?])?;
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("InvalidRuleException") && stderr.contains("already used"),
        "{stderr}"
    );
    let broken = work.path().join("broken.yml");
    std::fs::write(
        &broken,
        "title: Broken\nid: 6c1d2b66-0000-4000-8000-00000000c002\nlogsource:\n    product: \
         aws\n    service: cloudtrail\ndetection:\n    selection:\n        eventName|sounds_like: \
         DeleteBucket\n    condition: selection\n",
    )?;
    let refused = server.client(&["rules", "add", broken.to_str().context("path")?])?;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("line 8") && stderr.contains("sounds_like"),
        "{stderr}"
    );

    let removed = run_ok(&server, &["rules", "remove", ADDED_RULE_ID])?;
    assert!(removed.starts_with("Removed rule"), "{removed}");
    assert!(listed_rules(&server)?.is_empty());
    let unknown = server.client(&["rules", "disable", ADDED_RULE_ID])?;
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("RuleNotFoundException"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    Ok(())
}
