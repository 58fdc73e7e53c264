//! SQL over a real store: Lake's column names and case rules, both read paths (segment
//! Parquet and records) agreeing, read-your-writes, account isolation, pruning by event
//! time, and the errors a user gets for what is not one SELECT or is too big.

mod corpus;
mod support;
mod trino;

use opentrail_event::EventRecord;
use opentrail_lake::{Lake, LakeError, LakeOptions, LakeTable, TableScope};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lake_query_runs_as_written_with_camel_case_names_and_an_unquoted_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    append(
        &store,
        vec![
            event("e1", "GetObject", "2026-11-01T10:00:00Z", ACCOUNT, "alice"),
            event("e2", "GetObject", "2026-11-01T10:01:00Z", ACCOUNT, "alice"),
            event("e3", "PutObject", "2026-11-01T10:02:00Z", ACCOUNT, "alice"),
            event("e4", "GetObject", "2026-11-01T10:03:00Z", ACCOUNT, "bob"),
        ],
    );
    let lake = lake(&store);
    let table = LakeTable {
        name: EDS_ID.into(),
        scope: TableScope::default(),
    };
    let sql = format!(
        "SELECT eventName, COUNT(*) AS n FROM {EDS_ID} \
         WHERE userIdentity.userName = 'alice' GROUP BY eventName ORDER BY eventName"
    );
    let rows = rows(&lake, &sql, &[table]).await.expect("query runs");
    assert_eq!(rows, [["GetObject", "2"], ["PutObject", "1"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_event_is_counted_by_the_next_query_and_sealing_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let lake = lake(&store);
    let tables = [events_table()];
    let count = "SELECT count(*) FROM events";
    assert_eq!(rows(&lake, count, &tables).await.expect("count"), [["0"]]);
    append(
        &store,
        vec![event(
            "e1",
            "GetObject",
            "2026-11-01T10:00:00Z",
            ACCOUNT,
            "alice",
        )],
    );
    assert_eq!(rows(&lake, count, &tables).await.expect("count"), [["1"]]);

    // The same columns, read from the head's records and then from the segment's Parquet.
    append(
        &store,
        [
            event_with(
                "e2",
                "ConsoleLogin",
                "2026-11-01T10:01:00Z",
                ACCOUNT,
                r#","errorCode":"AccessDenied","sourceIPAddress":"198.51.100.7""#,
            ),
            // No readOnly and no eventCategory: both are derived the same on both paths.
            r#"{"eventVersion":"1.05","eventID":"e3","eventName":"DescribeInstances","eventSource":"ec2.amazonaws.com","eventTime":"2026-11-01T10:02:00Z","awsRegion":"eu-west-1","recipientAccountId":"111122223333"}"#.to_owned(),
        ]
        .iter()
        .flat_map(|json| records(json))
        .collect(),
    );
    let every_column = format!(
        "SELECT {} FROM events ORDER BY eventid",
        opentrail_lake::SEGMENT_COLUMNS.join(", ")
    );
    let from_records = rows(&lake, &every_column, &tables).await.expect("head");
    store.flush_tables().expect("seal");
    let from_columns = rows(&lake, &every_column, &tables).await.expect("segment");
    assert_eq!(from_records, from_columns);
    assert_eq!(from_columns.len(), 3);
    let e3 = &from_columns[2];
    assert_eq!(e3[0], "e3");
    assert_eq!(
        e3[6], "Management",
        "eventcategory defaults as the store derives it"
    );
    assert_eq!(e3[7], "true", "readonly inferred from Describe*");
    assert_eq!(from_columns[1][9], "AccessDenied");
    assert_eq!(from_columns[1][8], "198.51.100.7");
    assert_eq!(rows(&lake, count, &tables).await.expect("count"), [["3"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_columns_read_as_lake_types() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    append(
        &store,
        records(&event_with(
            "e1",
            "AssumeRole",
            "2026-11-01T10:00:00Z",
            ACCOUNT,
            r#","requestParameters":{"roleArn":"arn:aws:iam::111122223333:role/ops","durationSeconds":900,"tags":[{"key":"a"}]},"resources":[{"ARN":"arn:aws:iam::111122223333:role/ops","accountId":"111122223333","type":"AWS::IAM::Role"}]"#,
        )),
    );
    let lake = lake(&store);
    let sql = "SELECT requestParameters['roleArn'], requestParameters['durationSeconds'], \
               requestParameters['tags'], resources[1]['type'], resources[1]['arn'], \
               userIdentity.sessionContext.sessionIssuer.userName, eventTime, \
               eventjson LIKE '%\"eventID\":\"e1\"%' \
               FROM events";
    let found = rows(&lake, sql, &[events_table()]).await.expect("query");
    assert_eq!(
        found,
        [[
            "arn:aws:iam::111122223333:role/ops",
            "900",
            r#"[{"key":"a"}]"#,
            "AWS::IAM::Role",
            "arn:aws:iam::111122223333:role/ops",
            "",
            "2026-11-01T10:00:00Z",
            "true",
        ]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_shows_only_its_account() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    append(
        &store,
        vec![
            event("e1", "GetObject", "2026-11-01T10:00:00Z", ACCOUNT, "alice"),
            event(
                "e2",
                "GetObject",
                "2026-11-01T10:00:00Z",
                OTHER_ACCOUNT,
                "mallory",
            ),
        ],
    );
    let lake = lake(&store);
    let mine = mine_table();
    let sql = "SELECT recipientAccountId, userIdentity.userName FROM mine";
    let unsealed = rows(&lake, sql, std::slice::from_ref(&mine))
        .await
        .expect("head");
    store.flush_tables().expect("seal");
    let sealed = rows(&lake, sql, std::slice::from_ref(&mine))
        .await
        .expect("segment");
    assert_eq!(unsealed, [[ACCOUNT, "alice"]]);
    assert_eq!(sealed, unsealed);
    let count = "SELECT count(*) FROM mine";
    assert_eq!(rows(&lake, count, &[mine]).await.expect("count"), [["1"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_on_event_time_reads_only_the_segments_of_that_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One segment per day: no merging of small segments.
    let options = opentrail_store::StoreOptions {
        merge_events_below: 0,
        ..opentrail_store::StoreOptions::default()
    };
    let store = opentrail_store::Store::open(dir.path(), options).expect("store");
    for (day, prefix) in [
        ("2026-10-01", "a"),
        ("2026-10-02", "b"),
        ("2026-10-03", "c"),
    ] {
        let events = (0..100)
            .map(|index| {
                event(
                    &format!("{prefix}{index}"),
                    "GetObject",
                    &format!("{day}T12:{:02}:00Z", index % 60),
                    ACCOUNT,
                    "alice",
                )
            })
            .collect();
        append(&store, events);
        store.flush_tables().expect("seal");
    }
    let lake = lake(&store);
    let sql = "SELECT count(*) FROM events \
               WHERE eventTime >= '2026-10-02 00:00:00' AND eventTime < timestamp '2026-10-03 00:00:00'";
    let run = lake.start(sql, &[events_table()]).await.expect("starts");
    let counters = std::sync::Arc::clone(&run.counters);
    let found = collect_rows(run).await.expect("runs");
    assert_eq!(found, [["100"]]);
    assert_eq!(
        counters
            .events_scanned
            .load(std::sync::atomic::Ordering::Relaxed),
        100,
        "one segment of three is read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_one_select_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let lake = lake(&store);
    let tables = [events_table()];
    for statement in [
        "DELETE FROM events",
        "INSERT INTO events VALUES (1)",
        "CREATE TABLE t AS SELECT 1",
        "DROP TABLE events",
        "SET datafusion.execution.batch_size = 1",
        "SELECT 1; SELECT 2",
        "",
    ] {
        match rows(&lake, statement, &tables).await {
            Err(LakeError::NotSelect(_)) => {}
            Err(LakeError::InvalidQuery(reason)) if statement.starts_with("DELETE") => {
                // Some dialects refuse DELETE on a table provider while planning.
                assert!(!reason.is_empty());
            }
            other => panic!("{statement:?}: {other:?}"),
        }
    }
    for invalid in [
        "SELEKT 1",
        "SELECT nosuchcolumn FROM events",
        "SELECT * FROM nosuchtable",
        "SELECT nosuchfunction(eventname) FROM events",
    ] {
        match rows(&lake, invalid, &tables).await {
            Err(LakeError::InvalidQuery(reason)) => assert!(!reason.is_empty()),
            other => panic!("{invalid:?}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_past_the_memory_limit_fails_and_the_next_query_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let events = (0..2_000)
        .map(|index| {
            event(
                &format!("e{index}"),
                "GetObject",
                "2026-11-01T10:00:00Z",
                ACCOUNT,
                "alice",
            )
        })
        .collect();
    append(&store, events);
    let lake = opentrail_lake::Lake::new(
        store.clone(),
        LakeOptions {
            memory_limit_bytes: 256 * 1024,
            ..LakeOptions::default()
        },
    )
    .expect("lake");
    let tables = [events_table()];
    // Every pair of records, sorted: the cross join must hold one side whole.
    let cartesian =
        "SELECT a.eventjson, b.eventjson FROM events a CROSS JOIN events b ORDER BY 1, 2 LIMIT 3";
    match rows(&lake, cartesian, &tables).await {
        Err(LakeError::MemoryLimit { limit_bytes, .. }) => assert_eq!(limit_bytes, 256 * 1024),
        other => panic!("{other:?}"),
    }
    let count = "SELECT count(*) FROM events";
    assert_eq!(
        rows(&lake, count, &tables).await.expect("count"),
        [["2000"]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trino_functions_from_lake_samples_run_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let json = format!(
        "[{}]",
        event_with(
            "e1",
            "ConsoleLogin",
            "2026-11-01T10:00:00Z",
            ACCOUNT,
            r#","additionalEventData":{"MFAUsed":"No"},"resources":[{"type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::first"},{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::first/key"}]"#,
        )
    );
    append(&store, records(&json));
    let lake = lake(&store);
    let sql = "SELECT element_at(additionaleventdata, 'MFAUsed') AS mfa, \
               element_at(additionaleventdata, 'missing') AS missing, \
               element_at(resources, -1)['arn'] AS last_arn, \
               json_extract_scalar(eventjson, '$.userIdentity.userName') AS user_name, \
               to_iso8601(date_add('hour', 2, eventtime)) AS later, \
               date_diff('minute', from_iso8601_timestamp('2026-11-01T09:00:00Z'), eventtime) AS minutes \
               FROM events WHERE element_at(additionaleventdata, 'MFAUsed') = 'No'";
    let rows = rows(&lake, sql, &[events_table()])
        .await
        .expect("query runs");
    assert_eq!(
        rows,
        [[
            "No",
            "",
            "arn:aws:s3:::first/key",
            "alice",
            "2026-11-01T12:00:00.000Z",
            "60"
        ]]
    );
}

/// A head large enough to be read by several partitions in seq ranges: every event is
/// counted once, as after sealing, including those of another account left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_head_read_in_parts_counts_every_event_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let lake = Lake::new(
        store.clone(),
        LakeOptions {
            target_partitions: 3,
            ..LakeOptions::default()
        },
    )
    .expect("lake");
    let names = ["GetObject", "PutObject", "ListBuckets", "DeleteObject"];
    let events = 50_003;
    let batch: Vec<EventRecord> = (0..events)
        .map(|index| {
            let account = if index % 10 == 0 {
                OTHER_ACCOUNT
            } else {
                ACCOUNT
            };
            let second = index % 3600;
            event(
                &format!("e{index}"),
                names[index % names.len()],
                &format!("2026-11-01T10:{:02}:{:02}Z", second / 60, second % 60),
                account,
                "alice",
            )
        })
        .collect();
    append(&store, batch);
    let tables = [mine_table()];
    let sql = "SELECT eventName, count(*) AS n, count(DISTINCT eventid) AS ids FROM mine \
               GROUP BY eventName ORDER BY eventName";
    let from_head = rows(&lake, sql, &tables).await.expect("head");
    let mut expected: Vec<Vec<String>> = names
        .iter()
        .map(|name| {
            let n = (0..events)
                .filter(|index| index % 10 != 0 && names[index % names.len()] == *name)
                .count();
            vec![(*name).to_owned(), n.to_string(), n.to_string()]
        })
        .collect();
    expected.sort();
    assert_eq!(from_head, expected);
    store.flush_tables().expect("seal");
    assert_eq!(rows(&lake, sql, &tables).await.expect("segment"), expected);
}

/// Segments read from their columns alone: a segment with another account's events or an
/// Insights record has its rows checked, one with neither is read whole, and the two give
/// the counts a user expects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_reads_hide_other_accounts_and_insights_only_where_a_segment_holds_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let insight = records(&format!(
        r#"{{"eventVersion":"1.08","eventID":"i1","eventName":"GetObject","eventSource":"s3.amazonaws.com","eventTime":"2026-11-01T10:05:00Z","awsRegion":"us-east-1","recipientAccountId":"{ACCOUNT}","eventType":"AwsCloudTrailInsight","eventCategory":"Insight","insightDetails":{{"state":"Start"}}}}"#
    ));
    let mut mixed = vec![
        event("e1", "GetObject", "2026-11-01T10:00:00Z", ACCOUNT, "alice"),
        event(
            "e2",
            "GetObject",
            "2026-11-01T10:00:00Z",
            OTHER_ACCOUNT,
            "bob",
        ),
    ];
    mixed.extend(insight);
    append(&store, mixed);
    store.flush_tables().expect("seal the mixed segment");
    append(
        &store,
        vec![
            event("e3", "PutObject", "2026-11-01T11:00:00Z", ACCOUNT, "alice"),
            event("e4", "PutObject", "2026-11-01T11:01:00Z", ACCOUNT, "alice"),
        ],
    );
    store.flush_tables().expect("seal the plain segment");
    let lake = lake(&store);
    let mine = mine_table();
    let by_name = |table: &str| {
        format!("SELECT eventName, count(*) FROM {table} GROUP BY eventName ORDER BY eventName")
    };
    assert_eq!(
        rows(&lake, &by_name("mine"), &[mine]).await.expect("mine"),
        [["GetObject", "1"], ["PutObject", "2"]]
    );
    assert_eq!(
        rows(&lake, &by_name("events"), &[events_table()])
            .await
            .expect("every account"),
        [["GetObject", "2"], ["PutObject", "2"]]
    );
}

/// A query that needs records (here `requestparameters`) over a sealed segment reads only
/// the records of the rows its filters on the segment's columns or postings let through, and answers
/// exactly as over the unsealed head and as without those filters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_reads_of_a_segment_are_narrowed_by_its_columns_and_postings_and_answer_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let batch: Vec<EventRecord> = (0..600)
        .flat_map(|index| {
            let (name, error) = match index % 100 {
                0 => ("DeleteBucket", r#","errorCode":"AccessDenied""#),
                1 => ("DeleteBucket", ""),
                _ => ("GetObject", ""),
            };
            let json = event_with(
                &format!("e{index:03}"),
                name,
                &format!("2026-11-01T10:{:02}:{:02}Z", index / 60, index % 60),
                ACCOUNT,
                &format!(
                    r#"{error},"requestParameters":{{"bucketName":"bucket-{index}"}},"sourceIPAddress":"198.51.100.{}""#,
                    index % 4
                ),
            );
            let json = json.replace(
                r#""userName":"alice""#,
                &format!(r#""userName":"alice","accessKeyId":"AKIA{}""#, index % 3),
            );
            match index {
                7 => records(&json.replace("alice", "carol")),
                _ => records(&json),
            }
        })
        .collect();
    append(&store, batch);
    let lake = lake(&store);
    let tables = [events_table()];
    let deleted = "SELECT eventid, requestParameters['bucketName'], errorCode FROM events \
                   WHERE eventName = 'DeleteBucket' AND eventTime < '2026-11-01 10:05:00' \
                   ORDER BY eventid";
    let mixed = "SELECT eventid FROM events \
                 WHERE (eventName = 'DeleteBucket' AND errorCode = 'AccessDenied') \
                 OR userIdentity.userName = 'carol' ORDER BY eventid";
    let in_list = "SELECT count(*), count(DISTINCT requestParameters['bucketName']) FROM events \
                   WHERE sourceIPAddress IN ('198.51.100.1', '198.51.100.2') \
                   AND eventName <> 'GetObject'";
    // userIdentity fields the segments' postings index (arn, accessKeyId), with one the
    // Parquet columns answer.
    let principal = "SELECT eventid, eventname FROM events \
                     WHERE userIdentity.arn = 'arn:aws:iam::111122223333:user/carol'";
    let key_of_alice = "SELECT eventid FROM events \
                        WHERE userIdentity.arn = 'arn:aws:iam::111122223333:user/alice' \
                        AND userIdentity.accessKeyId = 'AKIA1' AND eventName = 'DeleteBucket' \
                        ORDER BY eventid";
    let every_bucket = "SELECT requestParameters['bucketName'] FROM events";
    let queries = [deleted, mixed, in_list, principal, key_of_alice];
    let mut before_sealing = Vec::new();
    for sql in queries {
        before_sealing.push(rows(&lake, sql, &tables).await.expect("head"));
    }
    store.flush_tables().expect("seal");
    for (sql, expected) in queries.into_iter().zip(&before_sealing) {
        assert_eq!(
            &rows(&lake, sql, &tables).await.expect("segment"),
            expected,
            "{sql}"
        );
    }
    assert_eq!(
        before_sealing[0],
        [
            ["e000", "bucket-0", "AccessDenied"],
            ["e001", "bucket-1", ""],
            ["e100", "bucket-100", "AccessDenied"],
            ["e101", "bucket-101", ""],
            ["e200", "bucket-200", "AccessDenied"],
            ["e201", "bucket-201", ""],
        ]
    );
    let ids = |found: &[Vec<String>]| found.iter().map(|row| row[0].clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&before_sealing[1]),
        ["e000", "e007", "e100", "e200", "e300", "e400", "e500"]
    );
    // DeleteBucket at indices ≡ 0, 1 (mod 100); their IPs end in .0 and .1.
    assert_eq!(before_sealing[2], [["6", "6"]]);
    assert_eq!(before_sealing[3], [["e007", "GetObject"]]);
    // DeleteBucket indices whose remainder by 3 is 1.
    assert_eq!(ids(&before_sealing[4]), ["e001", "e100", "e301", "e400"]);

    // What a user sees in BytesScanned: the filtered query read a few records' bytes.
    let bytes_scanned = |sql: &'static str| {
        let lake = &lake;
        let tables = &tables;
        async move {
            let run = lake.start(sql, tables).await.expect("start");
            let counters = std::sync::Arc::clone(&run.counters);
            collect_rows(run).await.expect("rows");
            counters
                .bytes_scanned
                .load(std::sync::atomic::Ordering::Relaxed)
        }
    };
    let whole = bytes_scanned(every_bucket).await;
    // The postings' rows are cut to the query's time range too: half the deletions.
    let every_deletion = "SELECT eventid, requestParameters['bucketName'] FROM events \
                          WHERE eventName = 'DeleteBucket'";
    let (in_range, every) = (
        bytes_scanned(deleted).await,
        bytes_scanned(every_deletion).await,
    );
    assert!(in_range < every, "{in_range} against {every}");
    for (sql, matches) in [
        (deleted, 6),
        (in_list, 6),
        (principal, 1),
        (key_of_alice, 4),
    ] {
        let narrowed = bytes_scanned(sql).await;
        assert!(
            narrowed * 10 < whole,
            "{matches} records of 600 should cost far less than every record: \
             {narrowed} against {whole} bytes for {sql}"
        );
    }
}

/// Events the store's retention dropped are read from the Parquet archive the server moved
/// them to: each event once, whether it is only in the store, in both (archived a day
/// before retention, or at once with `archive_after_days = 0`) or only in the archive,
/// even while a merge's input lies beside its output, with its record as it was ingested.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_past_the_stores_retention_are_read_from_the_archive_each_once() {
    let now_ms = || {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock");
        i64::try_from(since_epoch.as_millis()).expect("ms")
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("store"));
    append(
        &store,
        vec![
            event("e1", "GetObject", "2026-11-01T10:00:00Z", ACCOUNT, "alice"),
            event("e2", "PutObject", "2026-11-01T10:01:00Z", ACCOUNT, "alice"),
            event(
                "e3",
                "GetObject",
                "2026-11-01T10:02:00Z",
                OTHER_ACCOUNT,
                "bob",
            ),
        ],
    );
    store.flush_tables().expect("seal e1–e3 into a segment");
    // Ingested after this instant, e4 outlives the others; archived with them all the same.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let between_ms = now_ms();
    std::thread::sleep(std::time::Duration::from_millis(20));
    append(
        &store,
        vec![event(
            "e4",
            "PutObject",
            "2026-11-02T10:00:00Z",
            ACCOUNT,
            "alice",
        )],
    );
    let archive_dir = dir.path().join("archive");
    let archiver = opentrail_archive::Archiver::open(
        store.clone(),
        &archive_dir,
        opentrail_archive::ArchiveOptions {
            seal_events_min: 1,
            seal_age_max: std::time::Duration::ZERO,
            ..opentrail_archive::ArchiveOptions::default()
        },
    )
    .expect("archiver");
    archiver.run_once().expect("archive the four events");
    // A merge's input beside its output, as between the merge's rename and its deletes:
    // the same rows under a narrower seq range in the same partition.
    let first_day = opentrail_archive::list_all_part_files(&archive_dir)
        .expect("part files")
        .into_iter()
        .find(|part| part.event_date == "2026-11-01")
        .expect("e1–e3's partition");
    std::fs::copy(
        &first_day.path,
        first_day
            .path
            .with_file_name(opentrail_archive::part_file_name(
                first_day.first_seq,
                first_day.last_seq - 1,
            )),
    )
    .expect("copy");
    let with_archive = Lake::new(
        store.clone(),
        LakeOptions {
            archive_dir: Some(archive_dir.clone()),
            ..LakeOptions::default()
        },
    )
    .expect("lake");
    let store_only = lake(&store);
    let mine = || [mine_table()];
    let by_name = "SELECT eventName, count(*) FROM mine GROUP BY eventName ORDER BY eventName";
    let expected = [["GetObject", "1"], ["PutObject", "2"]];
    let one_record = "SELECT eventjson FROM mine WHERE eventid = 'e1'";
    let ingested = rows(&with_archive, one_record, &mine())
        .await
        .expect("from the store");
    assert_eq!(
        rows(&with_archive, by_name, &mine())
            .await
            .expect("in both places"),
        expected
    );

    // Retention (90 days by default) when e1–e3 are past it and e4 is not.
    let day_ms = 24 * 3600 * 1000;
    let expired = store.expire(between_ms + 90 * day_ms).expect("expire");
    assert_eq!(expired.expired_through_seq, 3, "{expired:?}");
    assert_eq!(
        rows(&store_only, "SELECT eventid FROM mine", &mine())
            .await
            .expect("store only"),
        [["e4"]],
        "the store alone shows only what it kept"
    );
    assert_eq!(
        rows(&with_archive, by_name, &mine())
            .await
            .expect("with the archive"),
        expected,
        "each event once (e4 is in both), and not another account's"
    );
    let archived = rows(&with_archive, one_record, &mine())
        .await
        .expect("from the archive");
    let as_json = |found: &[Vec<String>]| -> serde_json::Value {
        serde_json::from_str(&found[0][0]).expect("eventjson is JSON")
    };
    assert_eq!(as_json(&archived), as_json(&ingested));
    assert_eq!(
        rows(
            &with_archive,
            "SELECT eventid FROM mine WHERE eventTime >= '2026-11-02 00:00:00'",
            &mine()
        )
        .await
        .expect("one day"),
        [["e4"]]
    );
}
