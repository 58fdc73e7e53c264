//! Sample-style queries over the real CloudTrail corpus, each against a count made here
//! independently from the files' JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use opentrail_event::{EventRecord, IngestContext, parse_batch};
use serde_json::Value;

use crate::support::*;

const CORPUS_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/cloudtrail"
);

/// Every corpus record once per (account, eventID), as the store keeps them.
fn corpus_records() -> Vec<EventRecord> {
    // Listed as `opentrail import` lists a folder.
    let listing = opentrail_import::list_local_files(&[PathBuf::from(CORPUS_DIR)])
        .unwrap_or_else(|error| panic!("corpus at {CORPUS_DIR}: {error}"));
    let files: Vec<PathBuf> = listing.files.into_iter().map(|file| file.path).collect();
    assert!(files.len() > 4_000, "corpus found at {CORPUS_DIR}");
    let context = IngestContext {
        account_id: "000000000000".into(),
        region: "us-east-1".into(),
    };
    let mut seen = BTreeSet::new();
    let mut records = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).expect("read corpus file");
        let batch = parse_batch(&bytes, &context)
            .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        for (_, record) in batch.records {
            if seen.insert((record.account_id.clone(), record.event_id.clone())) {
                records.push(record);
            }
        }
    }
    records
}

fn text<'a>(record: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(record, |value, key| value.get(key))
        .and_then(Value::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_queries_over_the_corpus_agree_with_counts_over_its_files() {
    let records = corpus_records();
    let parsed: Vec<Value> = records
        .iter()
        .map(|record| serde_json::from_str(&record.json).expect("stored json"))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let half = records.len() / 2;
    let mut records = records;
    let rest = records.split_off(half);
    append(&store, records);
    // Half sealed (Parquet and segment records), half still in the head.
    store.flush_tables().expect("seal");
    append(&store, rest);
    let lake = lake(&store);
    let tables = [events_table()];

    // Top API calls by count.
    let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
    for record in &parsed {
        *by_name
            .entry(text(record, &["eventName"]).unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    let mut expected: Vec<(String, u64)> = by_name.into_iter().collect();
    expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    expected.truncate(10);
    let found = rows(
        &lake,
        "SELECT eventName, COUNT(*) AS calls FROM events \
         GROUP BY eventName ORDER BY calls DESC, eventName LIMIT 10",
        &tables,
    )
    .await
    .expect("top calls");
    let expected_rows: Vec<Vec<String>> = expected
        .iter()
        .map(|(name, count)| vec![name.clone(), count.to_string()])
        .collect();
    assert_eq!(found, expected_rows);

    // Failed calls by errorCode and principal.
    // Keyed as SQL orders them: NULL after every value.
    let mut failures: BTreeMap<(String, bool, String), u64> = BTreeMap::new();
    for record in &parsed {
        if let Some(code) = text(record, &["errorCode"]) {
            let principal = text(record, &["userIdentity", "arn"]);
            *failures
                .entry((
                    code.to_owned(),
                    principal.is_none(),
                    principal.unwrap_or_default().to_owned(),
                ))
                .or_default() += 1;
        }
    }
    let found = rows(
        &lake,
        "SELECT errorCode, userIdentity.arn, COUNT(*) FROM events \
         WHERE errorCode IS NOT NULL GROUP BY errorCode, userIdentity.arn \
         ORDER BY errorCode, userIdentity.arn",
        &tables,
    )
    .await
    .expect("failures");
    let expected_rows: Vec<Vec<String>> = failures
        .iter()
        .map(|((code, _, arn), count)| vec![code.clone(), arn.clone(), count.to_string()])
        .collect();
    assert!(expected_rows.len() > 10, "the corpus has failed calls");
    assert_eq!(found, expected_rows);

    // Console sign-ins without MFA.
    let without_mfa = parsed
        .iter()
        .filter(|record| {
            text(record, &["eventName"]) == Some("ConsoleLogin")
                && text(record, &["additionalEventData", "MFAUsed"]) == Some("No")
        })
        .count();
    let found = rows(
        &lake,
        "SELECT count(*) FROM events WHERE eventName = 'ConsoleLogin' \
         AND additionalEventData['MFAUsed'] = 'No'",
        &tables,
    )
    .await
    .expect("console logins");
    assert_eq!(found, [[without_mfa.to_string()]]);

    // Data events on one bucket.
    let bucket = "bucket-of-the-data-events";
    let bucket = parsed
        .iter()
        .filter(|record| text(record, &["eventName"]) == Some("GetObject"))
        .find_map(|record| text(record, &["requestParameters", "bucketName"]))
        .unwrap_or(bucket)
        .to_owned();
    let on_bucket = parsed
        .iter()
        .filter(|record| {
            text(record, &["eventCategory"]) == Some("Data")
                && text(record, &["requestParameters", "bucketName"]) == Some(bucket.as_str())
        })
        .count();
    assert!(on_bucket > 0, "the corpus has data events on {bucket}");
    let found = rows(
        &lake,
        &format!(
            "SELECT count(*) FROM events WHERE eventCategory = 'Data' \
             AND requestParameters['bucketName'] = '{bucket}'"
        ),
        &tables,
    )
    .await
    .expect("bucket");
    assert_eq!(found, [[on_bucket.to_string()]]);
}
