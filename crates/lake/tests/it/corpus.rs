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

/// The corpus in a store at `dir`, half sealed (Parquet and segment records) and half
/// still in the head, and its records as JSON.
fn corpus_store(dir: &std::path::Path) -> (opentrail_store::Store, Vec<Value>) {
    let mut records = corpus_records();
    let parsed: Vec<Value> = records
        .iter()
        .map(|record| serde_json::from_str(&record.json).expect("stored json"))
        .collect();
    let store = open_store(dir);
    let rest = records.split_off(records.len() / 2);
    append(&store, records);
    store.flush_tables().expect("seal");
    append(&store, rest);
    (store, parsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_queries_over_the_corpus_agree_with_counts_over_its_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, parsed) = corpus_store(dir.path());
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

/// Trino forms (lateral UNNEST, count_if, max_by, regexp_extract, if, a field after a call)
/// over the corpus, against counts made from the files' JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trino_forms_over_the_corpus_agree_with_counts_over_its_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, parsed) = corpus_store(dir.path());
    let lake = lake(&store);
    let tables = [events_table()];
    let as_rows = |counts: Vec<(Option<String>, u64)>| -> Vec<Vec<String>> {
        counts
            .into_iter()
            .map(|(key, count)| vec![key.unwrap_or_default(), count.to_string()])
            .collect()
    };

    // Resources by type, one row per element of each event's list.
    let mut by_type: BTreeMap<(bool, String), u64> = BTreeMap::new();
    for resource in parsed
        .iter()
        .filter_map(|record| record.get("resources").and_then(Value::as_array))
        .flatten()
    {
        let kind = resource.get("type").and_then(Value::as_str);
        *by_type
            .entry((kind.is_none(), kind.unwrap_or_default().to_owned()))
            .or_default() += 1;
    }
    assert!(
        by_type.len() > 5,
        "the corpus has resources of several types"
    );
    let expected = as_rows(
        by_type
            .into_iter()
            .map(|((_, kind), count)| (Some(kind), count))
            .collect(),
    );
    let found = rows(
        &lake,
        "SELECT r.type, count(*) FROM events CROSS JOIN UNNEST(resources) AS t(r) \
         GROUP BY r.type ORDER BY r.type",
        &tables,
    )
    .await
    .expect("resources by type");
    assert_eq!(found, expected);

    // Failed calls per service, and the same total through `if`.
    let mut failures: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for record in &parsed {
        let source = text(record, &["eventSource"])
            .unwrap_or_default()
            .to_owned();
        let entry = failures.entry(source).or_default();
        entry.0 += u64::from(text(record, &["errorCode"]).is_some());
        entry.1 += 1;
    }
    let expected: Vec<Vec<String>> = failures
        .iter()
        .map(|(source, (failed, calls))| {
            vec![source.clone(), failed.to_string(), calls.to_string()]
        })
        .collect();
    let found = rows(
        &lake,
        "SELECT eventSource, count_if(errorCode IS NOT NULL), count(*) FROM events \
         GROUP BY eventSource ORDER BY eventSource",
        &tables,
    )
    .await
    .expect("failures per service");
    assert_eq!(found, expected);
    let failed: u64 = failures.values().map(|(failed, _)| failed).sum();
    let found = rows(
        &lake,
        "SELECT sum(if(errorCode IS NULL, 0, 1)) FROM events",
        &tables,
    )
    .await
    .expect("failures through if");
    assert_eq!(found, [[failed.to_string()]]);

    // The latest call of each service is one at the service's latest time.
    let found = rows(
        &lake,
        "SELECT count(*), count_if(e.eventtime = latest.at) FROM (\
           SELECT eventSource, max_by(eventID, eventTime) AS id, max(eventTime) AS at \
           FROM events GROUP BY eventSource) latest \
         JOIN events e ON e.eventid = latest.id AND e.eventsource = latest.eventsource",
        &tables,
    )
    .await
    .expect("latest per service");
    let services = failures.len().to_string();
    assert_eq!(found, [[services.clone(), services]]);

    // Clients by user agent product: the leading name before a `/`.
    let mut by_product: BTreeMap<String, u64> = BTreeMap::new();
    for agent in parsed
        .iter()
        .filter_map(|record| text(record, &["userAgent"]))
    {
        let Some((product, _)) = agent.split_once('/') else {
            continue;
        };
        let is_name = product.starts_with(|c: char| c.is_ascii_alphabetic())
            && product
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        if is_name {
            *by_product.entry(product.to_owned()).or_default() += 1;
        }
    }
    assert!(by_product.len() > 3, "the corpus has several clients");
    let expected = as_rows(
        by_product
            .into_iter()
            .map(|(product, count)| (Some(product), count))
            .collect(),
    );
    let found = rows(
        &lake,
        "SELECT regexp_extract(userAgent, '^([A-Za-z][A-Za-z0-9-]*)/', 1) AS product, count(*) \
         FROM events WHERE regexp_extract(userAgent, '^([A-Za-z][A-Za-z0-9-]*)/', 1) IS NOT NULL \
         GROUP BY 1 ORDER BY 1",
        &tables,
    )
    .await
    .expect("clients");
    assert_eq!(found, expected);

    // Events whose first resource has an ARN.
    let with_arn = parsed
        .iter()
        .filter(|record| {
            record
                .get("resources")
                .and_then(|resources| resources.get(0))
                .and_then(|first| first.get("ARN"))
                .is_some_and(Value::is_string)
        })
        .count();
    assert!(with_arn > 0, "the corpus has resources with an ARN");
    let found = rows(
        &lake,
        "SELECT count(element_at(resources, 1).arn) FROM events",
        &tables,
    )
    .await
    .expect("first resources");
    assert_eq!(found, [[with_arn.to_string()]]);
}
