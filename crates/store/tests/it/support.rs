use std::path::Path;

use opentrail_event::{EventRecord, IngestContext, parse_batch};
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
