use std::path::{Path, PathBuf};

use opentrail_event::{EventRecord, FilterField, IngestContext, parse_batch};
use opentrail_store::{LookupQuery, Store, StoreOptions};

pub const ACCOUNT: &str = "111122223333";
pub const REGION: &str = "us-east-1";

pub fn context() -> IngestContext {
    IngestContext {
        account_id: ACCOUNT.into(),
        region: REGION.into(),
    }
}

/// Parses records that the test knows are valid.
pub fn records(json: &str) -> Vec<EventRecord> {
    let batch = parse_batch(json.as_bytes(), &context()).expect("test batch parses");
    assert!(
        batch.failures.is_empty(),
        "test records are valid: {:?}",
        batch.failures
    );
    batch
        .records
        .into_iter()
        .map(|(_, record)| record)
        .collect()
}

/// A minimal valid record.
pub fn event(event_id: &str, event_name: &str, event_time: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventID":"{event_id}","eventName":"{event_name}","eventSource":"dynamodb.amazonaws.com","eventTime":"{event_time}","awsRegion":"{REGION}","recipientAccountId":"{ACCOUNT}","userIdentity":{{"type":"IAMUser","userName":"alice","arn":"arn:aws:iam::{ACCOUNT}:user/alice","accessKeyId":"AKIAALICE"}}}}"#
    )
}

pub fn open(dir: &Path) -> Store {
    Store::open(dir, StoreOptions::default()).expect("store opens")
}

/// Every event id a query returns, following cursors to the end.
pub fn all_ids(store: &Store, mut query: LookupQuery) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let page = store.lookup(&query).expect("lookup");
        ids.extend(
            page.events
                .iter()
                .map(|event| event.record.event_id.clone()),
        );
        match page.next {
            Some(cursor) => query.cursor = Some(cursor),
            None => return ids,
        }
    }
}

/// Records varied like real ones (names, callers, addresses, request parameters, random
/// ids), so compression levels differ on them as they do on real trails.
pub fn varied_batch(first: usize, count: usize) -> String {
    const NAMES: [&str; 6] = [
        "GetObject",
        "PutObject",
        "AssumeRole",
        "DescribeInstances",
        "ListBuckets",
        "Decrypt",
    ];
    (first..first + count)
        .map(|n| {
            let name = NAMES[n % NAMES.len()];
            let user = format!("user-{}", n % 37);
            let id = format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", n.wrapping_mul(2_654_435_761) as u32, n % 65_536, n % 4_096, (n * 7) % 4_096, n.wrapping_mul(40_503) as u64 * 97);
            format!(
                r#"{{"eventVersion":"1.08","eventID":"{id}","eventName":"{name}","eventSource":"s3.amazonaws.com","eventTime":"2024-05-01T10:{:02}:{:02}Z","awsRegion":"{REGION}","recipientAccountId":"{ACCOUNT}","sourceIPAddress":"10.{}.{}.{}","userAgent":"aws-cli/2.15.{} Python/3.11","requestParameters":{{"bucketName":"bucket-{}","key":"logs/{n}/part-{}.gz"}},"userIdentity":{{"type":"IAMUser","userName":"{user}","arn":"arn:aws:iam::{ACCOUNT}:user/{user}","accessKeyId":"AKIA{:016X}"}}}}"#,
                (n / 60) % 60,
                n % 60,
                n % 7,
                n % 251,
                n % 13,
                n % 40,
                n % 11,
                n % 5,
                (n % 37) * 1_000_003,
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every id of a few lookups over `varied_batch` records, each following its cursors to
/// the end.
pub fn varied_lookups(store: &Store) -> Vec<Vec<String>> {
    [
        (FilterField::EventName, "AssumeRole"),
        (FilterField::Username, "user-5"),
        (FilterField::AccessKeyId, "AKIA00000000004C4B4F"),
    ]
    .into_iter()
    .map(|(field, value)| {
        let mut query = LookupQuery::new(Some(ACCOUNT.into()), Some(REGION.into()), 50);
        query.filters.push((field, value.to_owned()));
        all_ids(store, query)
    })
    .collect()
}

/// Unpacks a store fixture (`tests/fixtures/NAME/store.tar.gz`) into `into`; its path.
pub fn unpack_store_fixture(name: &str, into: &Path) -> PathBuf {
    let archive = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .join("store.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("xzf")
        .arg(archive)
        .arg("-C")
        .arg(into)
        .status()
        .expect("run tar");
    assert!(status.success(), "tar unpacks the fixture");
    into.join("store")
}
