//! Random interleavings of append, lookup, retention, seal, merge and reopen against a
//! simple in-memory model. Segments are tiny, so heads also rotate by size and the
//! background sealer merges at moments of its own choosing.

use std::collections::BTreeMap;
use std::time::Duration;

use opentrail_event::FilterField;
use opentrail_store::{LookupQuery, Store, StoreOptions};
use proptest::prelude::*;

use crate::support::{ACCOUNT, REGION, records};

#[derive(Debug, Clone)]
enum Operation {
    Append(Vec<(u8, u8, u8, i64)>),
    Lookup {
        name: Option<u8>,
        user: Option<u8>,
        page: usize,
        start: Option<i64>,
        end: Option<i64>,
    },
    Expire,
    Reopen,
    Seal,
    Merge,
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        4 => prop::collection::vec((0u8..40, 0u8..4, 0u8..3, 0i64..50), 1..12).prop_map(Operation::Append),
        4 => (prop::option::of(0u8..4), prop::option::of(0u8..3), 1usize..7, prop::option::of(0i64..50), prop::option::of(0i64..50))
            .prop_map(|(name, user, page, start, end)| Operation::Lookup { name, user, page, start, end }),
        1 => Just(Operation::Expire),
        1 => Just(Operation::Reopen),
        2 => Just(Operation::Seal),
        1 => Just(Operation::Merge),
    ]
}

#[derive(Clone)]
struct ModelEvent {
    name: u8,
    user: u8,
    time_s: i64,
    seq: u64,
    id: String,
}

const BASE_S: i64 = 1_700_000_000;
/// Model time units are ~5.5 hours apart, so a run spans many UTC days.
const TIME_UNIT_S: i64 = 20_000;

fn json(id: &str, name: u8, user: u8, time_s: i64) -> String {
    let time = jiff::Timestamp::from_second(BASE_S + time_s * TIME_UNIT_S).expect("valid time");
    format!(
        r#"{{"eventID":"{id}","eventName":"Op{name}","eventSource":"s3.amazonaws.com","eventTime":"{time}","recipientAccountId":"{ACCOUNT}","awsRegion":"{REGION}","userIdentity":{{"type":"IAMUser","userName":"user{user}"}}}}"#
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(operations in prop::collection::vec(operation(), 1..40)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = StoreOptions {
            retention: Duration::from_secs(3600),
            seal_events_max: 9,
            merge_events_below: 20,
            segment_events_max: 40,
            ..StoreOptions::default()
        };
        let mut store = Store::open(dir.path(), options.clone()).expect("open");
        let mut model: BTreeMap<String, ModelEvent> = BTreeMap::new();
        let mut last_seq = 0;
        for operation in operations {
            match operation {
                Operation::Append(events) => {
                    let batch: Vec<String> = events.iter().map(|(id, name, user, t)| json(&format!("id{id}"), *name, *user, *t)).collect();
                    let outcomes = store.append(records(&batch.join("\n"))).expect("append");
                    for ((id, name, user, t), outcome) in events.iter().zip(outcomes) {
                        let id = format!("id{id}");
                        match outcome {
                            opentrail_store::AppendOutcome::Stored { seq } => {
                                prop_assert!(!model.contains_key(&id), "stored twice: {}", id);
                                prop_assert_eq!(seq, last_seq + 1);
                                last_seq = seq;
                                model.insert(id.clone(), ModelEvent { name: *name, user: *user, time_s: *t, seq, id });
                            }
                            opentrail_store::AppendOutcome::Duplicate { seq } => {
                                prop_assert_eq!(model.get(&id).map(|e| e.seq), Some(seq));
                            }
                        }
                    }
                }
                Operation::Lookup { name, user, page, start, end } => {
                    let mut query = LookupQuery::new(Some(ACCOUNT.into()), Some(REGION.into()), page);
                    if let Some(name) = name { query.filters.push((FilterField::EventName, format!("Op{name}"))); }
                    if let Some(user) = user { query.filters.push((FilterField::Username, format!("user{user}"))); }
                    query.start_time_ms = start.map(|s| (BASE_S + s * TIME_UNIT_S) * 1000);
                    query.end_time_ms = end.map(|s| (BASE_S + s * TIME_UNIT_S) * 1000);
                    let mut expected: Vec<&ModelEvent> = model.values()
                        .filter(|e| name.is_none_or(|n| e.name == n))
                        .filter(|e| user.is_none_or(|u| e.user == u))
                        .filter(|e| start.is_none_or(|s| e.time_s >= s))
                        .filter(|e| end.is_none_or(|s| e.time_s <= s))
                        .collect();
                    expected.sort_by_key(|e| std::cmp::Reverse((e.time_s, e.seq)));
                    let expected: Vec<String> = expected.into_iter().map(|e| e.id.clone()).collect();
                    let mut actual = Vec::new();
                    loop {
                        let result = store.lookup(&query).expect("lookup");
                        prop_assert!(result.events.len() <= page);
                        actual.extend(result.events.iter().map(|e| e.record.event_id.clone()));
                        match result.next { Some(cursor) => query.cursor = Some(cursor), None => break }
                    }
                    prop_assert_eq!(actual, expected);
                }
                Operation::Expire => {
                    // An hour from now, everything appended so far has expired.
                    let later = jiff::Timestamp::now().as_millisecond() + 3_600_001;
                    let report = store.expire(later).expect("expire");
                    prop_assert_eq!(report.events_removed as usize, model.len());
                    model.clear();
                }
                Operation::Seal => store.flush_tables().expect("seal"),
                Operation::Merge => store.compact().expect("merge"),
                Operation::Reopen => {
                    drop(store);
                    store = Store::open(dir.path(), options.clone()).expect("reopen");
                    prop_assert_eq!(store.stats().expect("stats").last_seq, last_seq);
                }
            }
        }
    }
}
