use opentrail_event::FilterField;
use opentrail_store::{AppendOutcome, EventLane, LookupQuery};

use crate::support::{ACCOUNT, REGION, all_ids, event, open, records};

fn query() -> LookupQuery {
    LookupQuery::new(Some(ACCOUNT.into()), Some(REGION.into()), 50)
}

#[test]
fn appended_event_is_found_immediately_by_every_attribute() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let json = r#"{"eventVersion":"1.08","eventID":"e-1","eventName":"DeleteTable","eventSource":"dynamodb.amazonaws.com",
        "eventTime":"2024-05-01T10:00:00Z","awsRegion":"us-east-1","recipientAccountId":"111122223333","readOnly":false,
        "sourceIPAddress":"203.0.113.7","errorCode":"ResourceInUseException",
        "userIdentity":{"type":"IAMUser","userName":"alice","arn":"arn:aws:iam::111122223333:user/alice","accessKeyId":"AKIAALICE","invokedBy":"cloudformation.amazonaws.com"},
        "resources":[{"ARN":"arn:aws:dynamodb:us-east-1:111122223333:table/orders","type":"AWS::DynamoDB::Table"}]}"#;
    let appended = records(&json.replace('\n', " "));
    let attributes = appended[0].attributes.clone();
    store.append(appended).expect("append");

    let values = attributes.index_values();
    assert!(values.len() >= 14, "every attribute is indexed: {values:?}");
    for (field, value) in values {
        let mut q = query();
        q.filters = vec![(field, value.to_owned())];
        assert_eq!(
            all_ids(&store, q),
            vec!["e-1"],
            "lookup by {field:?}={value}"
        );
    }
}

#[test]
fn duplicates_are_not_stored_twice_and_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let batch = format!(
        "{}\n{}",
        event("dup-1", "PutItem", "2024-01-01T00:00:00Z"),
        event("dup-1", "PutItem", "2024-01-01T00:00:00Z")
    );
    let outcomes = store.append(records(&batch)).expect("append");
    let AppendOutcome::Stored { seq } = outcomes[0] else {
        panic!("first is stored: {outcomes:?}")
    };
    assert_eq!(outcomes[1], AppendOutcome::Duplicate { seq });
    let again = store
        .append(records(&event("dup-1", "PutItem", "2024-01-01T00:00:00Z")))
        .expect("append");
    assert_eq!(again, vec![AppendOutcome::Duplicate { seq }]);
    assert_eq!(all_ids(&store, query()), vec!["dup-1"]);
    assert_eq!(store.stats().expect("stats").last_seq, seq);
}

#[test]
fn same_event_id_in_two_accounts_is_two_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let first = event("shared-id", "PutItem", "2024-01-01T00:00:00Z");
    let second = first.replace(ACCOUNT, "999988887777");
    let outcomes = store
        .append(records(&format!("{first}\n{second}")))
        .expect("append");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, AppendOutcome::Stored { .. })),
        "{outcomes:?}"
    );
}

#[test]
fn results_are_newest_first_with_a_stable_tiebreak_and_time_bounds_are_inclusive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let batch = [
        event("a", "Op", "2024-01-01T00:00:01Z"),
        event("b", "Op", "2024-01-01T00:00:03Z"),
        event("c", "Op", "2024-01-01T00:00:02Z"),
        event("d", "Op", "2024-01-01T00:00:02Z"),
    ]
    .join("\n");
    store.append(records(&batch)).expect("append");
    assert_eq!(all_ids(&store, query()), vec!["b", "d", "c", "a"]);

    let mut ranged = query();
    ranged.start_time_ms = Some(1_704_067_201_000);
    ranged.end_time_ms = Some(1_704_067_202_000);
    assert_eq!(all_ids(&store, ranged), vec!["d", "c", "a"]);
}

#[test]
fn several_filters_combine_with_and() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut lines = Vec::new();
    for i in 0..300 {
        let name = if i % 3 == 0 { "DeleteTable" } else { "GetItem" };
        let mut line = event(
            &format!("id-{i}"),
            name,
            &format!("2024-01-01T00:{:02}:{:02}Z", i / 60, i % 60),
        );
        if i % 5 == 0 {
            line = line.replace("alice", "bob");
        }
        lines.push(line);
    }
    store.append(records(&lines.join("\n"))).expect("append");
    let mut q = query();
    q.limit = 7;
    q.filters = vec![
        (FilterField::EventName, "DeleteTable".into()),
        (FilterField::Username, "bob".into()),
    ];
    let ids = all_ids(&store, q);
    let expected: Vec<String> = (0..300)
        .rev()
        .filter(|i| i % 15 == 0)
        .map(|i| format!("id-{i}"))
        .collect();
    assert_eq!(ids, expected);
}

#[test]
fn pages_never_repeat_or_skip_while_ingest_continues() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let initial: Vec<String> = (0..120)
        .map(|i| {
            event(
                &format!("old-{i}"),
                "Op",
                &format!("2024-01-01T01:{:02}:{:02}Z", i / 60, i % 60),
            )
        })
        .collect();
    store.append(records(&initial.join("\n"))).expect("append");

    let mut q = query();
    q.limit = 25;
    let mut seen = Vec::new();
    let mut round = 0;
    loop {
        let page = store.lookup(&q).expect("lookup");
        seen.extend(page.events.iter().map(|e| e.record.event_id.clone()));
        // Newer and older events keep arriving between pages.
        let newer = event(&format!("new-{round}"), "Op", "2024-06-01T00:00:00Z");
        let older = event(&format!("older-{round}"), "Op", "2023-06-01T00:00:00Z");
        store
            .append(records(&format!("{newer}\n{older}")))
            .expect("append");
        round += 1;
        match page.next {
            Some(cursor) => q.cursor = Some(cursor),
            None => break,
        }
    }
    let old_seen: Vec<&String> = seen.iter().filter(|id| id.starts_with("old-")).collect();
    let expected: Vec<String> = (0..120).rev().map(|i| format!("old-{i}")).collect();
    assert_eq!(
        old_seen,
        expected.iter().collect::<Vec<_>>(),
        "every pre-existing event once, in order"
    );
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no duplicates across pages");
    assert!(
        !seen.iter().any(|id| id.starts_with("new-")),
        "events newer than the first page never appear behind it"
    );
}

#[test]
fn accounts_and_regions_are_isolated_and_all_accounts_merge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mine = event("mine", "Op", "2024-01-01T00:00:01Z");
    let theirs = event("theirs", "Op", "2024-01-01T00:00:02Z").replace(ACCOUNT, "222233334444");
    let elsewhere =
        event("elsewhere", "Op", "2024-01-01T00:00:03Z").replace("\"us-east-1\"", "\"eu-west-1\"");
    store
        .append(records(&[mine, theirs, elsewhere].join("\n")))
        .expect("append");

    assert_eq!(all_ids(&store, query()), vec!["mine"]);
    let every_account = LookupQuery::new(None, Some(REGION.into()), 1);
    assert_eq!(all_ids(&store, every_account), vec!["theirs", "mine"]);
    let everywhere = LookupQuery::new(None, None, 2);
    assert_eq!(
        all_ids(&store, everywhere),
        vec!["elsewhere", "theirs", "mine"]
    );
}

#[test]
fn insight_events_only_appear_when_asked_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let insight = r#"{"eventVersion":"1.07","eventID":"insight-1","eventTime":"2024-01-01T00:00:00Z","awsRegion":"us-east-1","eventType":"AwsCloudTrailInsight","recipientAccountId":"111122223333","eventCategory":"Insight","eventName":"PutObject","eventSource":"s3.amazonaws.com","insightDetails":{"state":"Start"}}"#;
    store
        .append(records(&format!(
            "{insight}\n{}",
            event("normal", "Op", "2024-01-01T00:00:00Z")
        )))
        .expect("append");
    assert_eq!(all_ids(&store, query()), vec!["normal"]);
    let mut insights = query();
    insights.lane = EventLane::Insight;
    assert_eq!(all_ids(&store, insights), vec!["insight-1"]);
}

#[test]
fn concurrent_appends_all_land_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for b in 0..10 {
                    let batch: Vec<String> = (0..20)
                        .map(|i| event(&format!("t{t}-b{b}-{i}"), "Op", "2024-01-01T00:00:00Z"))
                        .collect();
                    store.append(records(&batch.join("\n"))).expect("append");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("writer thread");
    }
    let mut ids = all_ids(&store, query());
    assert_eq!(ids.len(), 8 * 10 * 20);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8 * 10 * 20);
    assert_eq!(store.stats().expect("stats").last_seq, 1600);
}

#[test]
fn reopened_store_keeps_events_cursors_and_sequence() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        store
            .append(records(&event("keep", "Op", "2024-01-01T00:00:00Z")))
            .expect("append");
        store.save_cursor("parquet", 1).expect("cursor");
    }
    let store = open(dir.path());
    assert_eq!(all_ids(&store, query()), vec!["keep"]);
    assert_eq!(store.load_cursor("parquet").expect("cursor"), 1);
    let outcomes = store
        .append(records(&event("next", "Op", "2024-01-01T00:00:00Z")))
        .expect("append");
    assert_eq!(outcomes, vec![AppendOutcome::Stored { seq: 2 }]);
    let log = store.read_log(0, 10).expect("log");
    assert_eq!(
        log.iter().map(|entry| entry.seq).collect::<Vec<_>>(),
        vec![1, 2]
    );
}

#[test]
fn a_second_process_cannot_open_the_same_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _store = open(dir.path());
    let second = opentrail_store::Store::open(dir.path(), Default::default());
    assert!(
        matches!(second, Err(opentrail_store::StoreError::Locked { .. })),
        "{:?}",
        second.err()
    );
}
