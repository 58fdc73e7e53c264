//! Each column holds the right value with the right type, read back with the parquet
//! crate's own Arrow reader.

use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampMillisecondType, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use opentrail_archive::{arrow_schema, list_all_part_files, read_part_file};

use crate::support::*;

const RUN_INSTANCES: &str = r#"{
  "eventVersion":"1.11",
  "userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLEROLEID1234:AWSCloudFormation",
    "arn":"arn:aws:sts::111122223333:assumed-role/cfn-deploy-role/AWSCloudFormation",
    "accountId":"111122223333","accessKeyId":"ASIAEXAMPLEKEY000001",
    "sessionContext":{"sessionIssuer":{"type":"Role","principalId":"AROAEXAMPLEROLEID1234",
        "arn":"arn:aws:iam::111122223333:role/cfn-deploy-role","accountId":"111122223333","userName":"cfn-deploy-role"},
      "attributes":{"creationDate":"2025-03-04T10:15:02Z","mfaAuthenticated":"false"}},
    "invokedBy":"cloudformation.amazonaws.com"},
  "eventTime":"2025-03-04T10:15:09Z","eventSource":"ec2.amazonaws.com","eventName":"RunInstances",
  "awsRegion":"us-east-1","sourceIPAddress":"cloudformation.amazonaws.com","userAgent":"cloudformation.amazonaws.com",
  "requestParameters":{"instancesSet":{"items":[{"imageId":"ami-0abcdef1234567890","minCount":1,"maxCount":1}]},
    "instanceType":"t3.micro","monitoring":{"enabled":false}},
  "responseElements":{"reservationId":"r-0123456789abcdef0","ownerId":"111122223333"},
  "requestID":"5b7a9c1e-2f3d-4a6b-8c9d-0e1f2a3b4c5d","eventID":"0f4c2d8e-9a1b-4c3d-8e7f-6a5b4c3d2e1f",
  "readOnly":false,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111122223333",
  "eventCategory":"Management",
  "tlsDetails":{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"ec2.us-east-1.amazonaws.com"},
  "resources":[{"ARN":"arn:aws:ec2:us-east-1:111122223333:instance/i-0123456789abcdef0","accountId":"111122223333","type":"AWS::EC2::Instance"}],
  "sessionCredentialFromConsole":"true",
  "addendum":{"reason":"DELIVERY_DELAY","originalEventID":"0f4c2d8e"},
  "vendorFutureField":{"nested":[1,2,3]}
}"#;

const FAILED_GET: &str = r#"{"eventVersion":"1.08","eventTime":"2025-03-04T23:59:59.250Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","readOnly":true,"errorCode":"AccessDenied","errorMessage":"Access Denied","requestParameters":null,"responseElements":null,"additionalEventData":{"bytesTransferredIn":0},"eventID":"e2","userIdentity":{"type":"IAMUser","userName":"bob"}}"#;

fn text(batch: &RecordBatch, column: &str, row: usize) -> Option<String> {
    let array = batch
        .column_by_name(column)
        .unwrap_or_else(|| panic!("column {column}"));
    (!array.is_null(row)).then(|| array.as_string::<i32>().value(row).to_owned())
}

fn flag(batch: &RecordBatch, column: &str, row: usize) -> Option<bool> {
    let array = batch
        .column_by_name(column)
        .unwrap_or_else(|| panic!("column {column}"));
    (!array.is_null(row)).then(|| array.as_boolean().value(row))
}

fn millis(batch: &RecordBatch, column: &str, row: usize) -> i64 {
    let array = batch
        .column_by_name(column)
        .unwrap_or_else(|| panic!("column {column}"));
    array.as_primitive::<TimestampMillisecondType>().value(row)
}

fn json(batch: &RecordBatch, column: &str, row: usize) -> Option<serde_json::Value> {
    text(batch, column, row).map(|text| serde_json::from_str(&text).expect("JSON column parses"))
}

fn original(json: &str) -> serde_json::Value {
    serde_json::from_str(json).expect("test JSON parses")
}

#[test]
fn archived_rows_hold_every_field_with_its_type_and_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    let before_ms = now_ms();
    append(&store, records(&format!("[{RUN_INSTANCES},{FAILED_GET}]")));
    let archive_dir = dir.path().join("archive");
    let archiver = open_archiver(&store, &archive_dir, eager_options());
    let report = archiver.run_once().expect("seal");
    let sealed = report.sealed.expect("a seal happened");
    assert_eq!(
        (sealed.first_seq, sealed.last_seq, sealed.events),
        (1, 2, 2)
    );
    assert_eq!(report.pending_events, 0);

    let files = list_all_part_files(&archive_dir).expect("files");
    assert_eq!(files.len(), 1, "both events are on 2025-03-04: {files:?}");
    let batches = read_batches(&files[0].path);
    assert_eq!(batches.len(), 1);
    let batch = &batches[0];
    assert_eq!(
        batch.schema(),
        arrow_schema(),
        "the file carries the documented schema"
    );
    assert_eq!(
        batch
            .schema()
            .field_with_name("eventtime")
            .expect("eventtime")
            .data_type(),
        &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
    );
    assert_eq!(batch.num_rows(), 2);

    // Row 0: the rich record.
    assert_eq!(text(batch, "eventversion", 0).as_deref(), Some("1.11"));
    assert_eq!(text(batch, "eventname", 0).as_deref(), Some("RunInstances"));
    assert_eq!(
        text(batch, "eventsource", 0).as_deref(),
        Some("ec2.amazonaws.com")
    );
    assert_eq!(text(batch, "awsregion", 0).as_deref(), Some("us-east-1"));
    assert_eq!(
        text(batch, "sourceipaddress", 0).as_deref(),
        Some("cloudformation.amazonaws.com")
    );
    assert_eq!(
        text(batch, "useragent", 0).as_deref(),
        Some("cloudformation.amazonaws.com")
    );
    assert_eq!(
        text(batch, "requestid", 0).as_deref(),
        Some("5b7a9c1e-2f3d-4a6b-8c9d-0e1f2a3b4c5d")
    );
    assert_eq!(
        text(batch, "eventid", 0).as_deref(),
        Some("0f4c2d8e-9a1b-4c3d-8e7f-6a5b4c3d2e1f")
    );
    assert_eq!(text(batch, "eventtype", 0).as_deref(), Some("AwsApiCall"));
    assert_eq!(
        text(batch, "eventcategory", 0).as_deref(),
        Some("Management")
    );
    assert_eq!(
        text(batch, "recipientaccountid", 0).as_deref(),
        Some("111122223333")
    );
    assert_eq!(
        text(batch, "sessioncredentialfromconsole", 0).as_deref(),
        Some("true")
    );
    assert_eq!(text(batch, "errorcode", 0), None);
    assert_eq!(flag(batch, "readonly", 0), Some(false));
    assert_eq!(flag(batch, "managementevent", 0), Some(true));
    assert_eq!(millis(batch, "eventtime", 0), 1_741_083_309_000);
    assert_eq!(
        text(batch, "useridentity_type", 0).as_deref(),
        Some("AssumedRole")
    );
    assert_eq!(
        text(batch, "useridentity_principalid", 0).as_deref(),
        Some("AROAEXAMPLEROLEID1234:AWSCloudFormation")
    );
    assert_eq!(
        text(batch, "useridentity_arn", 0).as_deref(),
        Some("arn:aws:sts::111122223333:assumed-role/cfn-deploy-role/AWSCloudFormation")
    );
    assert_eq!(
        text(batch, "useridentity_accountid", 0).as_deref(),
        Some("111122223333")
    );
    assert_eq!(
        text(batch, "useridentity_accesskeyid", 0).as_deref(),
        Some("ASIAEXAMPLEKEY000001")
    );
    assert_eq!(
        text(batch, "useridentity_username", 0),
        None,
        "AssumedRole identities have no userName"
    );
    assert_eq!(
        text(batch, "useridentity_invokedby", 0).as_deref(),
        Some("cloudformation.amazonaws.com")
    );
    let record = original(RUN_INSTANCES);
    for (column, member) in [
        ("useridentity", "userIdentity"),
        ("requestparameters", "requestParameters"),
        ("responseelements", "responseElements"),
        ("tlsdetails", "tlsDetails"),
        ("resources", "resources"),
        ("addendum", "addendum"),
    ] {
        assert_eq!(
            json(batch, column, 0).as_ref(),
            Some(&record[member]),
            "{column}"
        );
    }
    assert_eq!(
        json(batch, "extra", 0),
        Some(serde_json::json!({"vendorFutureField": {"nested": [1, 2, 3]}})),
        "unknown fields are kept"
    );
    let seqs = batch
        .column_by_name("seq")
        .expect("seq")
        .as_primitive::<UInt64Type>();
    assert_eq!((seqs.value(0), seqs.value(1)), (1, 2));
    let ingest_ms = millis(batch, "ingesttime", 0);
    assert!(
        ingest_ms >= before_ms && ingest_ms <= now_ms(),
        "ingest time is the log's"
    );

    // Row 1: a failed call with sub-second time and null members.
    assert_eq!(millis(batch, "eventtime", 1), 1_741_132_799_250);
    assert_eq!(flag(batch, "readonly", 1), Some(true));
    assert_eq!(flag(batch, "managementevent", 1), None);
    assert_eq!(text(batch, "errorcode", 1).as_deref(), Some("AccessDenied"));
    assert_eq!(
        text(batch, "errormessage", 1).as_deref(),
        Some("Access Denied")
    );
    assert_eq!(
        text(batch, "requestparameters", 1),
        None,
        "JSON null is SQL NULL"
    );
    assert_eq!(text(batch, "responseelements", 1), None);
    assert_eq!(
        json(batch, "additionaleventdata", 1),
        Some(serde_json::json!({"bytesTransferredIn": 0}))
    );
    assert_eq!(
        text(batch, "useridentity_username", 1).as_deref(),
        Some("bob")
    );
    // Normalisation appended awsRegion and recipientAccountId from the ingest context.
    assert_eq!(text(batch, "awsregion", 1).as_deref(), Some(REGION));
    assert_eq!(
        text(batch, "recipientaccountid", 1).as_deref(),
        Some(ACCOUNT)
    );

    // Both rows rebuild into exactly the records the log holds.
    let stored = store.read_log(0, 10).expect("read log");
    let rebuilt = read_part_file(&files[0].path).expect("read back");
    assert_eq!(rebuilt.len(), stored.len());
    for (rebuilt, entry) in rebuilt.iter().zip(&stored) {
        assert_eq!(rebuilt.seq, entry.seq);
        assert_eq!(rebuilt.ingest_time_ms, entry.ingest_time_ms);
        assert_eq!(
            serde_json::Value::Object(rebuilt.record.clone()),
            original(&entry.json)
        );
    }
}

#[test]
fn part_files_record_their_ingest_range_and_schema_version_in_the_footer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    append(
        &store,
        records(&event("a", "PutItem", "2024-05-01T00:00:00Z")),
    );
    let archive_dir = dir.path().join("archive");
    open_archiver(&store, &archive_dir, eager_options())
        .run_once()
        .expect("seal");
    let entry = store.read_log(0, 1).expect("log").remove(0);
    let files = list_all_part_files(&archive_dir).expect("files");
    let summary = opentrail_archive::read_part_file_summary(&files[0].path).expect("footer");
    assert_eq!(summary.rows, 1);
    assert_eq!(summary.ingest_time_min_ms, entry.ingest_time_ms);
    assert_eq!(summary.ingest_time_max_ms, entry.ingest_time_ms);
    assert_eq!(summary.schema_version, opentrail_archive::SCHEMA_VERSION);
}
