use datafusion::arrow::util::display::array_value_to_string;
use futures_util::StreamExt;
use opentrail_event::{EventRecord, IngestContext, parse_batch};
use opentrail_lake::{Lake, LakeError, LakeOptions, LakeTable, QueryRun, TableScope};
use opentrail_store::{Store, StoreOptions};

pub const ACCOUNT: &str = "111122223333";
pub const OTHER_ACCOUNT: &str = "444455556666";
pub const EDS_ID: &str = "0b7f3c2e-51c6-4d18-8dec-3c7f7e5e3f8a";

pub fn open_store(dir: &std::path::Path) -> Store {
    Store::open(dir, StoreOptions::default()).expect("store opens")
}

pub fn lake(store: &Store) -> Lake {
    Lake::new(store.clone(), LakeOptions::default()).expect("lake")
}

/// Every account's events, under the name `events`.
pub fn events_table() -> LakeTable {
    LakeTable {
        name: "events".into(),
        scope: TableScope::default(),
    }
}

/// Only `ACCOUNT`'s events, under the name `mine`.
pub fn mine_table() -> LakeTable {
    LakeTable {
        name: "mine".into(),
        scope: TableScope {
            account_id: Some(ACCOUNT.into()),
            ..TableScope::default()
        },
    }
}

pub fn records(json: &str) -> Vec<EventRecord> {
    let context = IngestContext {
        account_id: ACCOUNT.into(),
        region: "us-east-1".into(),
    };
    let batch = parse_batch(json.as_bytes(), &context).expect("test batch parses");
    assert!(batch.failures.is_empty(), "{:?}", batch.failures);
    batch
        .records
        .into_iter()
        .map(|(_, record)| record)
        .collect()
}

/// A record with `extra` members (each starting with a comma) before its end.
pub fn event_with(id: &str, name: &str, time: &str, account: &str, extra: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventID":"{id}","eventName":"{name}","eventSource":"s3.amazonaws.com","eventTime":"{time}","awsRegion":"us-east-1","recipientAccountId":"{account}","eventCategory":"Management","userIdentity":{{"type":"IAMUser","userName":"alice","arn":"arn:aws:iam::{account}:user/alice"}}{extra}}}"#
    )
}

pub fn event(id: &str, name: &str, time: &str, account: &str, user: &str) -> EventRecord {
    let json = format!(
        r#"{{"eventVersion":"1.08","eventID":"{id}","eventName":"{name}","eventSource":"s3.amazonaws.com","eventTime":"{time}","awsRegion":"us-east-1","recipientAccountId":"{account}","readOnly":true,"userIdentity":{{"type":"IAMUser","userName":"{user}","arn":"arn:aws:iam::{account}:user/{user}"}}}}"#
    );
    records(&json).remove(0)
}

pub fn append(store: &Store, records: Vec<EventRecord>) {
    store.append(records).expect("append");
}

/// The rows of a query, each value as text (empty for null).
pub async fn rows(
    lake: &Lake,
    sql: &str,
    tables: &[LakeTable],
) -> Result<Vec<Vec<String>>, LakeError> {
    let run = lake.start(sql, tables).await?;
    collect_rows(run).await.map_err(|error| match error {
        Failure::Lake(error) => error,
        Failure::Engine(error) => lake.classify(error),
    })
}

pub enum Failure {
    Lake(LakeError),
    Engine(datafusion::common::DataFusionError),
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Lake(error) => write!(formatter, "{error}"),
            Failure::Engine(error) => write!(formatter, "{error}"),
        }
    }
}

pub async fn collect_rows(mut run: QueryRun) -> Result<Vec<Vec<String>>, Failure> {
    let mut found = Vec::new();
    while let Some(batch) = run.stream.next().await {
        let batch = batch.map_err(Failure::Engine)?;
        for row in 0..batch.num_rows() {
            let values = batch
                .columns()
                .iter()
                .map(|column| {
                    array_value_to_string(column, row).map_err(|error| Failure::Lake(error.into()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            found.push(values);
        }
    }
    Ok(found)
}
