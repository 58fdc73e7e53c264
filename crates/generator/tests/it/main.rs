//! The generator's contract: determinism, records OpenTrail accepts, the corpus's shape,
//! the stories, and the AWSLogs file layout. No timing assertions.

use std::collections::HashMap;
use std::io::Read as _;

use opentrail_event::{IngestContext, parse_batch};
use opentrail_generator::{Generator, GeneratorConfig, LogFileWriter, stories};
use serde_json::Value;

fn ndjson(config: GeneratorConfig) -> Vec<u8> {
    let mut generator = Generator::new(config);
    let mut out = Vec::new();
    while generator.next_ndjson_batch(500, &mut out) > 0 {}
    out
}

fn records(config: GeneratorConfig) -> Vec<Value> {
    Generator::new(config)
        .map(|event| serde_json::from_str(&event.json).expect("generated JSON parses"))
        .collect()
}

fn context() -> IngestContext {
    IngestContext {
        account_id: "123456789012".into(),
        region: "us-east-1".into(),
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = ndjson(GeneratorConfig::new(42, 3_000));
    let b = ndjson(GeneratorConfig::new(42, 3_000));
    let c = ndjson(GeneratorConfig::new(43, 3_000));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.iter().filter(|&&byte| byte == b'\n').count(), 3_000);
}

#[test]
fn every_record_is_valid_for_opentrail() {
    let body = ndjson(GeneratorConfig::new(7, 20_000));
    let batch = parse_batch(&body, &context()).expect("the batch parses");
    assert!(
        batch.failures.is_empty(),
        "failures: {:?}",
        &batch.failures[..batch.failures.len().min(3)]
    );
    assert_eq!(batch.records.len(), 20_000);
}

#[test]
fn shape_is_like_the_corpus() {
    let events: Vec<String> = Generator::new(GeneratorConfig::new(11, 30_000))
        .map(|event| event.json)
        .collect();
    let mean = events.iter().map(String::len).sum::<usize>() as f64 / events.len() as f64;
    assert!(
        (1_150.0..1_700.0).contains(&mean),
        "mean record size {mean}"
    );

    let values: Vec<Value> = events
        .iter()
        .map(|json| serde_json::from_str(json).expect("parses"))
        .collect();
    let count = |predicate: &dyn Fn(&Value) -> bool| {
        values.iter().filter(|v| predicate(v)).count() as f64 / values.len() as f64
    };
    let share_of_top = |key: &dyn Fn(&Value) -> Option<String>| {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for value in &values {
            if let Some(k) = key(value) {
                *counts.entry(k).or_default() += 1;
            }
        }
        let top = counts.values().copied().max().unwrap_or(0);
        (counts.len(), top as f64 / values.len() as f64)
    };

    let (sources, top_source) = share_of_top(&|v| v["eventSource"].as_str().map(str::to_owned));
    assert!(sources >= 12, "{sources} event sources");
    assert!(
        (0.2..0.6).contains(&top_source),
        "top event source share {top_source}"
    );
    let (names, _) = share_of_top(&|v| v["eventName"].as_str().map(str::to_owned));
    assert!(names >= 40, "{names} event names");
    let (users, top_user) =
        share_of_top(&|v| v["userIdentity"]["userName"].as_str().map(str::to_owned));
    assert!(
        users >= 60 && top_user > 0.01,
        "{users} users, top share {top_user}"
    );
    let (keys, _) = share_of_top(&|v| v["userIdentity"]["accessKeyId"].as_str().map(str::to_owned));
    assert!(keys >= 200, "{keys} access keys");
    let (ips, _) = share_of_top(&|v| v["sourceIPAddress"].as_str().map(str::to_owned));
    assert!(ips >= 200, "{ips} source IPs");
    let (resources, _) = share_of_top(&|v| v["resources"][0]["ARN"].as_str().map(str::to_owned));
    assert!(resources >= 2_000, "{resources} resources");

    let errors = count(&|v| v.get("errorCode").is_some());
    assert!((0.02..0.15).contains(&errors), "error share {errors}");
    let access_denied = count(&|v| v["errorCode"] == "AccessDenied");
    assert!(
        access_denied > errors / 3.0,
        "AccessDenied should dominate errors"
    );
    let read_only = count(&|v| v["readOnly"] == true);
    assert!(
        (0.4..0.8).contains(&read_only),
        "read-only share {read_only}"
    );
    let data = count(&|v| v["eventCategory"] == "Data");
    assert!((0.3..0.7).contains(&data), "data event share {data}");
    let invoked_by = count(&|v| v["userIdentity"].get("invokedBy").is_some());
    assert!(
        (0.1..0.5).contains(&invoked_by),
        "invokedBy share {invoked_by}"
    );
    let services = count(&|v| v["userIdentity"]["type"] == "AWSService");
    let roles = count(&|v| v["userIdentity"]["type"] == "AssumedRole");
    let iam_users = count(&|v| v["userIdentity"]["type"] == "IAMUser");
    assert!(
        services > 0.05 && roles > 0.3 && iam_users > 0.05,
        "{services} {roles} {iam_users}"
    );
}

#[test]
fn events_are_time_ordered_inside_the_window() {
    let config = GeneratorConfig::new(3, 10_000);
    let (start, end) = (config.start_ms, config.end_ms());
    let times: Vec<i64> = Generator::new(config)
        .map(|event| event.meta.event_time_ms)
        .collect();
    assert!(times.windows(2).all(|pair| pair[0] <= pair[1]));
    assert!(times.iter().all(|&time| (start..end).contains(&time)));
}

#[test]
fn the_stories_are_there() {
    let values = records(GeneratorConfig::new(5, 20_000));
    let deletes: Vec<&Value> = values
        .iter()
        .filter(|v| v["eventName"] == stories::DELETE_TABLE_EVENT_NAME)
        .collect();
    assert_eq!(deletes.len(), 1);
    let delete = deletes[0];
    assert_eq!(delete["userIdentity"]["type"], "IAMUser");
    assert_eq!(
        delete["userIdentity"]["userName"],
        stories::DELETE_TABLE_USER
    );
    assert_eq!(delete["sourceIPAddress"], stories::DELETE_TABLE_IP);
    assert_eq!(
        delete["requestParameters"]["tableName"],
        stories::DELETE_TABLE_NAME
    );
    assert_eq!(delete["eventSource"], "dynamodb.amazonaws.com");
    assert_eq!(delete["readOnly"], false);
    assert_eq!(delete["awsRegion"], "us-east-1");
    assert_eq!(delete["recipientAccountId"], "123456789012");
    assert!(
        values.iter().any(|v| v["eventName"] == "ConsoleLogin"
            && v["sourceIPAddress"] == stories::DELETE_TABLE_IP)
    );
    // Nobody else uses the story's address, so a lookup by it tells the story alone.
    let from_ip = values
        .iter()
        .filter(|v| v["sourceIPAddress"] == stories::DELETE_TABLE_IP)
        .count();
    assert_eq!(from_ip, 4);

    let launches: Vec<&Value> = values
        .iter()
        .filter(|v| {
            v["eventName"] == "RunInstances"
                && v["userIdentity"]["invokedBy"] == stories::LAUNCH_INVOKED_BY
        })
        .collect();
    assert_eq!(launches.len(), stories::LAUNCH_INSTANCES);
    for launch in &launches {
        assert_eq!(launch["userIdentity"]["userName"], stories::LAUNCH_USER);
        assert_eq!(launch["sourceIPAddress"], stories::LAUNCH_INVOKED_BY);
        assert_eq!(launch["resources"][0]["type"], "AWS::EC2::Instance");
    }
    let create = values
        .iter()
        .find(|v| v["eventName"] == "CreateStack")
        .expect("the stack is created");
    assert_eq!(create["userIdentity"]["userName"], stories::LAUNCH_USER);
    assert_eq!(
        create["requestParameters"]["stackName"],
        stories::LAUNCH_STACK
    );
    assert!(create["eventTime"].as_str() <= launches[0]["eventTime"].as_str());
}

#[test]
fn stories_follow_the_configured_account_and_region() {
    let mut config = GeneratorConfig::new(9, 2_000);
    config.primary_account = "999988887777".into();
    config.primary_region = "eu-west-1".into();
    let values = records(config);
    let delete = values
        .iter()
        .find(|v| v["eventName"] == "DeleteTable")
        .expect("story present");
    assert_eq!(delete["recipientAccountId"], "999988887777");
    assert_eq!(delete["awsRegion"], "eu-west-1");
    let primary = values
        .iter()
        .filter(|v| v["awsRegion"] == "eu-west-1")
        .count();
    assert!(primary > values.len() / 2);
}

#[test]
fn without_stories_there_is_no_story() {
    let mut config = GeneratorConfig::new(5, 5_000);
    config.stories = false;
    let values = records(config);
    assert!(
        values
            .iter()
            .all(|v| v["eventName"] != "DeleteTable" && v["eventName"] != "CreateStack")
    );
    assert_eq!(values.len(), 5_000);
}

#[test]
fn log_files_use_the_awslogs_layout_and_hold_every_record() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = GeneratorConfig::new(21, 6_000);
    let mut writer = LogFileWriter::new(dir.path(), 21);
    let mut expected_ids = Vec::new();
    for event in Generator::new(config) {
        writer.write(&event.meta, &event.json).expect("write");
        let value: Value = serde_json::from_str(&event.json).expect("parses");
        expected_ids.push(value["eventID"].as_str().expect("id").to_owned());
    }
    let summary = writer.finish().expect("finish");
    assert_eq!(summary.records, 6_000);
    assert!(summary.files > 10);
    // Small per-window files compress less than a whole day would (the corpus: 5.6x per file).
    assert!(summary.compressed_bytes * 3 < summary.raw_bytes);

    let mut ids = Vec::new();
    let mut files = 0;
    let mut pending = vec![dir.path().to_owned()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            files += 1;
            let relative = path
                .strip_prefix(dir.path())
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            let parts: Vec<&str> = relative.split('/').collect();
            assert_eq!(parts.len(), 8, "{relative}");
            assert_eq!((parts[0], parts[2]), ("AWSLogs", "CloudTrail"));
            let (account, region) = (parts[1], parts[3]);
            let name = parts[7];
            assert!(
                name.starts_with(&format!(
                    "{account}_CloudTrail_{region}_{}{}{}T",
                    parts[4], parts[5], parts[6]
                )),
                "{name}"
            );
            assert!(name.ends_with(".json.gz"));
            let mut text = String::new();
            flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("open"))
                .read_to_string(&mut text)
                .expect("gunzip");
            let batch = parse_batch(text.as_bytes(), &context()).expect("a CloudTrail file parses");
            assert!(batch.failures.is_empty());
            let value: Value = serde_json::from_str(&text).expect("parses");
            for record in value["Records"].as_array().expect("Records") {
                assert_eq!(record["recipientAccountId"], account);
                assert_eq!(record["awsRegion"], region);
                ids.push(record["eventID"].as_str().expect("id").to_owned());
            }
        }
    }
    assert_eq!(files as u64, summary.files);
    ids.sort();
    expected_ids.sort();
    assert_eq!(ids, expected_ids);
}
