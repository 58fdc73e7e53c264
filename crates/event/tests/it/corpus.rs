//! Every event of the corpus of real CloudTrail logs loads without a record error, and the
//! derivation rules hold on each one.
//!
//! The corpus lives outside the repository (`../shared/corpus/cloudtrail` next to the
//! workspace) and is read in place; `OPENTRAIL_CORPUS_DIR` points elsewhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use opentrail_event::{EventRecord, FilterField, IngestContext, infer_read_only, parse_batch};
use serde_json::Value;

const DEFAULT_CORPUS_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/cloudtrail"
);

/// Events per set, from the corpus README.
const EXPECTED_EVENTS: [(&str, usize); 4] = [
    ("invictus-ir-aws_dataset", 2_900),
    ("sans504-s3-ransomware-lab", 30_477),
    ("stratus-red-team-grimoire", 266),
    ("traildiscover-logExamples", 563),
];

/// Files per set, from the corpus README.
const EXPECTED_FILES: [(&str, usize); 4] = [
    ("invictus-ir-aws_dataset", 55),
    ("sans504-s3-ransomware-lab", 3_872),
    ("stratus-red-team-grimoire", 23),
    ("traildiscover-logExamples", 584),
];

/// Event names whose recorded `readOnly` the inference rule gets wrong: CloudTrail marks
/// them read-only though their names do not say so (see the `record` module docs).
const KNOWN_INFERENCE_MISSES: [&str; 3] = ["InvokeModel", "SendEmail", "CreateCase"];

fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("OPENTRAIL_CORPUS_DIR")
        .map_or_else(|| PathBuf::from(DEFAULT_CORPUS_DIR), PathBuf::from);
    assert!(
        dir.is_dir(),
        "CloudTrail corpus not found at {}; set OPENTRAIL_CORPUS_DIR",
        dir.display()
    );
    dir
}

fn log_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("corpus directory is readable")
        .map(|entry| entry.expect("corpus entry is readable").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            log_files(&path, files);
        } else if name.contains("CloudTrail-Digest") {
            // Digest files describe log files; they hold no events.
        } else if name.ends_with(".json")
            || name.ends_with(".json.gz")
            || name.ends_with(".json.cloudtrail")
        {
            files.push(path);
        }
    }
}

/// Checks the derivation rules of one event against its input object.
fn check_event(input: &Value, record: &EventRecord, location: &str) {
    let text = |pointer: &str| {
        input
            .pointer(pointer)
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
    };
    let attributes = &record.attributes;
    assert_eq!(
        Some(attributes.event_name.as_str()),
        text("/eventName"),
        "{location}"
    );
    assert_eq!(
        Some(attributes.event_source.as_str()),
        text("/eventSource"),
        "{location}"
    );
    if let Some(event_id) = text("/eventID") {
        assert_eq!(attributes.event_id, event_id, "{location}");
    }
    if let Some(read_only) = input.get("readOnly").and_then(Value::as_bool) {
        assert_eq!(attributes.read_only, Some(read_only), "{location}");
    }
    if let Some(region) = text("/awsRegion") {
        assert_eq!(record.region, region, "{location}");
    }
    if let Some(account) = text("/recipientAccountId") {
        assert_eq!(record.account_id, account, "{location}");
    }
    assert_eq!(
        attributes.access_key_id.as_deref(),
        text("/userIdentity/accessKeyId"),
        "{location}"
    );
    assert_eq!(
        attributes.user_arn.as_deref(),
        text("/userIdentity/arn"),
        "{location}"
    );
    assert_eq!(
        attributes.invoked_by.as_deref(),
        text("/userIdentity/invokedBy"),
        "{location}"
    );
    assert_eq!(
        attributes.error_code.as_deref(),
        text("/errorCode"),
        "{location}"
    );
    assert_eq!(
        attributes.source_ip_address.as_deref(),
        text("/sourceIPAddress"),
        "{location}"
    );

    let username = attributes.username.as_deref();
    match text("/userIdentity/type") {
        Some("IAMUser") => assert_eq!(username, text("/userIdentity/userName"), "{location}"),
        Some("Root") => assert_eq!(
            username,
            text("/userIdentity/userName").or(Some("root")),
            "{location}"
        ),
        Some("AssumedRole") => {
            let arn = text("/userIdentity/arn").expect("assumed roles carry an arn");
            assert!(arn.contains(":assumed-role/"), "{location}");
            assert_eq!(username, arn.rsplit('/').next(), "{location}");
        }
        Some("AWSService") => assert_eq!(username, text("/userIdentity/invokedBy"), "{location}"),
        _ if input.get("userIdentity").is_some() => {
            assert!(
                username.is_some_and(|name| !name.is_empty()),
                "{location}: no username"
            )
        }
        _ => assert_eq!(username, None, "{location}"),
    }

    let expected_resources: Vec<(Option<&str>, Option<&str>)> = input
        .get("resources")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|entry| {
                    let field = |name: &str| entry.get(name).and_then(Value::as_str);
                    (field("type"), field("ARN").or(field("ARNPrefix")))
                })
                .collect()
        })
        .unwrap_or_default();
    let resources: Vec<(Option<&str>, Option<&str>)> = attributes
        .resources
        .iter()
        .map(|resource| {
            (
                resource.resource_type.as_deref(),
                resource.resource_name.as_deref(),
            )
        })
        .collect();
    assert_eq!(resources, expected_resources, "{location}");

    let event_time = text("/eventTime").expect("events carry eventTime");
    let formatted = jiff::Timestamp::from_millisecond(record.event_time_ms)
        .expect("in range")
        .to_string();
    assert_eq!(formatted, event_time, "{location}");

    let index_values = attributes.index_values();
    for expected in [
        (FilterField::EventName, attributes.event_name.as_str()),
        (FilterField::EventId, attributes.event_id.as_str()),
        (FilterField::EventSource, attributes.event_source.as_str()),
        (FilterField::AwsRegion, record.region.as_str()),
    ] {
        assert!(index_values.contains(&expected), "{location}: {expected:?}");
    }
    if let Some(username) = username {
        assert!(
            index_values.contains(&(FilterField::Username, username)),
            "{location}"
        );
    }

    let stored: Value = serde_json::from_str(&record.json).expect("stored record is JSON");
    let stored_object = stored.as_object().expect("object");
    for (key, value) in input.as_object().expect("object") {
        assert_eq!(
            stored_object.get(key),
            Some(value),
            "{location}: {key} changed"
        );
    }
    assert_eq!(
        &EventRecord::from_stored(&record.json).expect("reads back"),
        record,
        "{location}"
    );
}

#[test]
fn every_corpus_event_loads_and_derives() {
    let root = corpus_dir();
    let context = IngestContext {
        account_id: "000000000000".to_owned(),
        region: "us-east-1".to_owned(),
    };
    let mut files = Vec::new();
    log_files(&root, &mut files);
    let mut events_per_set: BTreeMap<String, usize> = BTreeMap::new();
    let mut files_per_set: BTreeMap<String, usize> = BTreeMap::new();
    let mut inference_misses: BTreeSet<String> = BTreeSet::new();
    let mut usernames_by_type: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &files {
        let relative = path.strip_prefix(&root).expect("under root");
        let set = relative
            .components()
            .next()
            .expect("in a set")
            .as_os_str()
            .to_string_lossy()
            .into_owned();
        let location = relative.display().to_string();
        let bytes = std::fs::read(path).expect("corpus file is readable");
        let batch =
            parse_batch(&bytes, &context).unwrap_or_else(|error| panic!("{location}: {error}"));
        assert!(
            batch.failures.is_empty(),
            "{location}: {:?}",
            batch.failures
        );

        let decompressed = if opentrail_event::is_gzip(&bytes) {
            let mut text = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::MultiGzDecoder::new(&bytes[..]),
                &mut text,
            )
            .expect("gunzip");
            text
        } else {
            bytes
        };
        let whole: Value = serde_json::from_slice(&decompressed).expect("corpus file is JSON");
        let inputs: Vec<Value> = match whole {
            Value::Object(mut object) if object.contains_key("Records") => {
                match object.remove("Records") {
                    Some(Value::Array(records)) => records,
                    other => panic!("{location}: Records is {other:?}"),
                }
            }
            Value::Array(records) => records,
            single => vec![single],
        };
        assert_eq!(batch.records.len(), inputs.len(), "{location}");
        for ((index, record), input) in batch.records.iter().zip(&inputs) {
            check_event(input, record, &format!("{location}[{index}]"));
            if input.get("readOnly").and_then(Value::as_bool)
                != Some(infer_read_only(&record.attributes.event_name))
            {
                inference_misses.insert(record.attributes.event_name.clone());
            }
            let identity_type = input
                .pointer("/userIdentity/type")
                .and_then(Value::as_str)
                .unwrap_or("(none)");
            usernames_by_type
                .entry(identity_type.to_owned())
                .or_default()
                .insert(record.attributes.username.clone().unwrap_or_default());
        }
        *events_per_set.entry(set.clone()).or_default() += batch.records.len();
        *files_per_set.entry(set).or_default() += 1;
    }
    for (type_name, usernames) in &usernames_by_type {
        eprintln!(
            "{type_name}: {} distinct usernames, e.g. {:?}",
            usernames.len(),
            usernames.iter().take(3).collect::<Vec<_>>()
        );
    }
    let expected_events: BTreeMap<String, usize> = EXPECTED_EVENTS
        .iter()
        .map(|(set, count)| ((*set).to_owned(), *count))
        .collect();
    let expected_files: BTreeMap<String, usize> = EXPECTED_FILES
        .iter()
        .map(|(set, count)| ((*set).to_owned(), *count))
        .collect();
    assert_eq!(events_per_set, expected_events);
    assert_eq!(files_per_set, expected_files);
    let known: BTreeSet<String> = KNOWN_INFERENCE_MISSES
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    assert!(
        inference_misses.is_subset(&known),
        "readOnly inference misses: {inference_misses:?}"
    );
}
