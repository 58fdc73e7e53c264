//! Trino forms CloudTrail Lake samples use, over events in a real store: `count_if`,
//! `max_by` / `min_by`, `regexp_extract`, `if`, lateral `CROSS JOIN UNNEST` and a field
//! after a call or a subscript.

use opentrail_lake::LakeError;

use crate::support::*;

/// Three S3 calls and a console sign-in: resources lists of two, one, none and absent,
/// errors on two of them, user agents of two shapes.
fn store_with_calls(dir: &std::path::Path) -> opentrail_store::Store {
    let store = open_store(dir);
    let bucket =
        r#"{"type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::logs","accountId":"111122223333"}"#;
    let object = r#"{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::logs/a.txt"}"#;
    let json = format!(
        "[{},{},{},{}]",
        event_with(
            "e1",
            "GetObject",
            "2026-11-01T10:00:00Z",
            ACCOUNT,
            &format!(
                r#","userAgent":"aws-cli/2.15.0 Python/3.11","resources":[{bucket},{object}]"#
            ),
        ),
        event_with(
            "e2",
            "GetObject",
            "2026-11-01T10:05:00Z",
            ACCOUNT,
            &format!(
                r#","userAgent":"Boto3/1.34.0","errorCode":"AccessDenied","resources":[{bucket}]"#
            ),
        ),
        event_with(
            "e3",
            "PutObject",
            "2026-11-01T10:01:00Z",
            ACCOUNT,
            r#","userAgent":"console.amazonaws.com","errorCode":"NoSuchBucket","resources":[]"#,
        ),
        event_with(
            "e4",
            "ConsoleLogin",
            "2026-11-01T09:00:00Z",
            ACCOUNT,
            r#","additionalEventData":{"MFAUsed":"No"}"#,
        ),
    );
    append(&store, records(&json));
    store
}

async fn query(store: &opentrail_store::Store, sql: &str) -> Vec<Vec<String>> {
    rows(&lake(store), sql, &[events_table()])
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_if_max_by_and_min_by_count_and_pick_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_calls(dir.path());
    let grouped = "SELECT eventname, count_if(errorcode IS NOT NULL) AS failed, count(*) AS calls, \
                   max_by(eventid, eventtime) AS latest, min_by(eventid, eventtime) AS earliest \
                   FROM events GROUP BY eventname ORDER BY eventname";
    assert_eq!(
        query(&store, grouped).await,
        [
            ["ConsoleLogin", "0", "1", "e4", "e4"],
            ["GetObject", "1", "2", "e2", "e1"],
            ["PutObject", "1", "1", "e3", "e3"],
        ]
    );
    // Over every row (readonly is inferred for the two Get calls); a NULL key is skipped (e1
    // and e4 have no errorCode); FILTER applies.
    let whole = "SELECT count_if(errorcode IS NOT NULL), count_if(readonly), \
                 max_by(eventid, errorcode), min_by(eventid, errorcode), \
                 count_if(errorcode IS NOT NULL) FILTER (WHERE eventname = 'PutObject') \
                 FROM events";
    assert_eq!(query(&store, whole).await, [["2", "2", "e3", "e2", "1"]]);
    // No rows: zero and NULL, as in Trino.
    let empty = "SELECT count_if(errorcode IS NOT NULL), max_by(eventid, eventtime) \
                 FROM events WHERE eventname = 'nothing'";
    assert_eq!(query(&store, empty).await, [["0", ""]]);
    // As window functions.
    let windowed = "SELECT eventid, count_if(errorcode IS NOT NULL) OVER (PARTITION BY eventname), \
                    max_by(eventid, eventtime) OVER (PARTITION BY eventname) \
                    FROM events ORDER BY eventid";
    assert_eq!(
        query(&store, windowed).await,
        [
            ["e1", "1", "e2"],
            ["e2", "1", "e2"],
            ["e3", "1", "e3"],
            ["e4", "0", "e4"],
        ]
    );
    // Over a sliding frame, rows leave the count: e4, e1, e3, e2 by time.
    let sliding = "SELECT eventid, count_if(errorcode IS NOT NULL) OVER \
                   (ORDER BY eventtime ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) \
                   FROM events ORDER BY eventtime";
    assert_eq!(
        query(&store, sliding).await,
        [["e4", "0"], ["e1", "0"], ["e3", "1"], ["e2", "2"]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_if_over_many_groups_counts_each_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let events = (0..3_000)
        .map(|index| {
            event(
                &format!("e{index}"),
                if index % 3 == 0 {
                    "PutObject"
                } else {
                    "GetObject"
                },
                &format!("2026-11-01T10:{:02}:{:02}Z", (index / 60) % 60, index % 60),
                ACCOUNT,
                &format!("user{}", index % 1_000),
            )
        })
        .collect();
    append(&store, events);
    // 1,000 users with three calls each (e{n}, e{n+1000}, e{n+2000}), one a PutObject.
    let sql = "SELECT count(*), sum(puts), min(puts), max(puts) FROM (\
               SELECT useridentity.username, count_if(eventname = 'PutObject') AS puts \
               FROM events GROUP BY useridentity.username)";
    assert_eq!(query(&store, sql).await, [["1000", "1000", "1", "1"]]);
    // user0's calls: e0 at 10:00:00, e1000 at 10:16:40, e2000 at 10:33:20.
    let sql = "SELECT max_by(eventid, eventtime), min_by(eventid, eventtime) FROM events \
               WHERE useridentity.username = 'user0'";
    assert_eq!(query(&store, sql).await, [["e2000", "e0"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regexp_extract_answers_the_first_match_or_its_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_calls(dir.path());
    let sql = "SELECT eventid, regexp_extract(useragent, '[0-9]+\\.[0-9]+'), \
               regexp_extract(useragent, '^([A-Za-z0-9-]+)/([0-9.]+)', 1), \
               regexp_extract(useragent, '^([A-Za-z0-9-]+)/([0-9.]+)', 2) \
               FROM events ORDER BY eventid";
    assert_eq!(
        query(&store, sql).await,
        [
            ["e1", "2.15", "aws-cli", "2.15.0"],
            ["e2", "1.34", "Boto3", "1.34.0"],
            ["e3", "", "", ""],
            ["e4", "", "", ""],
        ]
    );
    let counted = "SELECT regexp_extract(useragent, '^[^/]+') AS agent, count(*) FROM events \
                   WHERE regexp_extract(useragent, '^[^/]+') IS NOT NULL \
                   GROUP BY 1 ORDER BY 1";
    assert_eq!(
        query(&store, counted).await,
        [
            ["Boto3", "1"],
            ["aws-cli", "1"],
            ["console.amazonaws.com", "1"],
        ]
    );
    for (sql, message) in [
        (
            "SELECT regexp_extract(useragent, '(a)', 2) FROM events",
            "no group 2",
        ),
        (
            "SELECT regexp_extract(useragent, '(') FROM events",
            "invalid pattern",
        ),
    ] {
        match rows(&lake(&store), sql, &[events_table()]).await {
            Err(LakeError::Execution(reason)) => assert!(reason.contains(message), "{reason}"),
            other => panic!("{sql}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_takes_one_branch_as_a_case_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_calls(dir.path());
    let sql = "SELECT eventid, if(errorcode IS NULL, 'ok', errorcode), \
               if(eventname = 'GetObject', 1), if(eventname = 'GetObject', 1, 2.5) \
               FROM events ORDER BY eventid";
    assert_eq!(
        query(&store, sql).await,
        [
            ["e1", "ok", "1", "1.0"],
            ["e2", "AccessDenied", "1", "1.0"],
            ["e3", "NoSuchBucket", "", "2.5"],
            ["e4", "ok", "", "2.5"],
        ]
    );
    // The branch not taken is not evaluated: no division by zero.
    let lazy = "SELECT if(n = 0, NULL, 10 / n) FROM (VALUES (0), (5)) AS v(n) ORDER BY n";
    assert_eq!(query(&store, lazy).await, [[""], ["2"]]);
    let counted = "SELECT sum(if(errorcode IS NOT NULL, 1, 0)) FROM events";
    assert_eq!(query(&store, counted).await, [["2"]]);
    let grouped = "SELECT if(errorcode IS NULL, 'ok', 'failed') AS outcome, count(*) FROM events \
                   GROUP BY if(errorcode IS NULL, 'ok', 'failed') ORDER BY outcome";
    assert_eq!(query(&store, grouped).await, [["failed", "2"], ["ok", "2"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_join_unnest_gives_one_row_per_resource() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_calls(dir.path());
    let listed = "SELECT eventid, r.type, r.arn, t.r.accountid FROM events \
                  CROSS JOIN UNNEST(resources) AS t(r) ORDER BY eventid, r.arn";
    let expected = [
        ["e1", "AWS::S3::Bucket", "arn:aws:s3:::logs", "111122223333"],
        ["e1", "AWS::S3::Object", "arn:aws:s3:::logs/a.txt", ""],
        ["e2", "AWS::S3::Bucket", "arn:aws:s3:::logs", "111122223333"],
    ];
    assert_eq!(query(&store, listed).await, expected);
    // The comma form, an aliased table, and the rows still whole after sealing.
    store.flush_tables().expect("seal");
    let comma = "SELECT e.eventid, r.type, r.arn, r.accountid FROM events e, \
                 UNNEST(e.resources) AS t(r) ORDER BY 1, 3";
    assert_eq!(query(&store, comma).await, expected);
    let by_type = "SELECT r.type, count(*) AS n, count(DISTINCT eventid) FROM events \
                   CROSS JOIN UNNEST(resources) AS t(r) \
                   WHERE eventtime >= timestamp '2026-11-01 10:00:00' \
                   GROUP BY r.type ORDER BY n DESC, r.type";
    assert_eq!(
        query(&store, by_type).await,
        [["AWS::S3::Bucket", "2", "2"], ["AWS::S3::Object", "1", "1"]]
    );
    let joined_on = "SELECT eventid FROM events JOIN UNNEST(resources) AS t(r) \
                     ON r.type = 'AWS::S3::Object'";
    assert_eq!(query(&store, joined_on).await, [["e1"]]);
    // Inside a subquery, and twice in one query.
    let nested = "SELECT count(*) FROM events WHERE eventid IN (\
                  SELECT eventid FROM events CROSS JOIN UNNEST(resources) AS t(r) \
                  WHERE r.accountid = '111122223333')";
    assert_eq!(query(&store, nested).await, [["2"]]);
    let twice = "SELECT count(*) FROM events CROSS JOIN UNNEST(resources) AS a(x) \
                 CROSS JOIN UNNEST(resources) AS b(y)";
    assert_eq!(query(&store, twice).await, [["5"]]);
    // A data store limited to one account is a view; it unnests the same.
    let mine = mine_table();
    let scoped = "SELECT count(*) FROM mine CROSS JOIN UNNEST(resources) AS t(r)";
    assert_eq!(
        rows(&lake(&store), scoped, &[mine]).await.expect("scoped"),
        [["3"]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_after_a_call_or_a_subscript_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_calls(dir.path());
    let sql = "SELECT eventid, element_at(resources, 1).arn, element_at(resources, -1).TYPE, \
               resources[1].accountid, 'f(x).arn' \
               FROM events WHERE element_at(resources, 1).type = 'AWS::S3::Bucket' \
               ORDER BY eventid";
    assert_eq!(
        query(&store, sql).await,
        [
            [
                "e1",
                "arn:aws:s3:::logs",
                "AWS::S3::Object",
                "111122223333",
                "f(x).arn"
            ],
            [
                "e2",
                "arn:aws:s3:::logs",
                "AWS::S3::Bucket",
                "111122223333",
                "f(x).arn"
            ],
        ]
    );
}
