//! Every event of the real corpus loads, and every lookup attribute agrees with a
//! brute-force scan of the same files.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use opentrail_event::{EventRecord, FilterField, IngestContext, parse_batch};
use opentrail_store::{AppendOutcome, LookupQuery};

type Match = (i64, u64, String);

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/cloudtrail")
}

fn corpus_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("corpus dir")
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|entry| entry.path());
    for entry in entries {
        let path = entry.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if path.is_dir() {
            corpus_files(&path, out);
        } else if name.ends_with(".json")
            || name.ends_with(".json.gz")
            || name.ends_with(".json.cloudtrail")
        {
            out.push(path);
        }
    }
}

#[test]
fn corpus_loads_and_every_attribute_lookup_equals_brute_force() {
    let mut files = Vec::new();
    corpus_files(&corpus_dir(), &mut files);
    assert!(
        files.len() > 4_000,
        "corpus found at {}",
        corpus_dir().display()
    );
    let context = IngestContext {
        account_id: "000000000000".into(),
        region: "us-east-1".into(),
    };
    let mut all_records: Vec<EventRecord> = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).expect("read corpus file");
        let batch = parse_batch(&bytes, &context)
            .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        assert!(
            batch.failures.is_empty(),
            "{}: {:?}",
            file.display(),
            batch.failures
        );
        all_records.extend(batch.records.into_iter().map(|(_, record)| record));
    }
    assert!(
        all_records.len() > 33_000,
        "loaded {} events",
        all_records.len()
    );

    let dir = tempfile::tempdir().expect("tempdir");
    // Small heads, so loading seals several segments; no background merges.
    let store = opentrail_store::Store::open(
        dir.path(),
        opentrail_store::StoreOptions {
            seal_events_max: 5_000,
            merge_events_below: 0,
            ..opentrail_store::StoreOptions::default()
        },
    )
    .expect("store opens");
    let mut stored: Vec<(u64, EventRecord)> = Vec::new();
    for chunk in all_records.chunks(1_000) {
        let outcomes = store.append(chunk.to_vec()).expect("append");
        for (record, outcome) in chunk.iter().zip(outcomes) {
            if let AppendOutcome::Stored { seq } = outcome {
                stored.push((seq, record.clone()));
            }
        }
    }

    // Brute force: for each (field, value), the matching events newest first.
    // (field, value) -> [(event time, seq, account/eventID)] of the matching events.
    let mut expected: HashMap<(FilterField, String), Vec<Match>> = HashMap::new();
    for (seq, record) in &stored {
        if record.attributes.event_category == "Insight" {
            continue;
        }
        let mut values = record.attributes.index_values();
        values.sort();
        values.dedup();
        for (field, value) in values {
            expected
                .entry((field, value.to_owned()))
                .or_default()
                .push((
                    record.event_time_ms,
                    *seq,
                    format!("{}/{}", record.account_id, record.event_id),
                ));
        }
    }
    // While events are still in heads (and some already sealed by size), once every
    // head is sealed, once the segments are settled, and once they are merged (and
    // settled again).
    check_lookups_equal_brute_force(&store, &expected, "after loading");
    store.flush_tables().expect("seal");
    assert!(
        store.stats().expect("stats").segments > 2,
        "several segments"
    );
    check_lookups_equal_brute_force(&store, &expected, "after sealing");
    store.settle().expect("settle");
    assert_eq!(store.stats().expect("stats").unsettled_segments, 0);
    check_lookups_equal_brute_force(&store, &expected, "after settling");
    store.compact().expect("merge");
    assert_eq!(store.stats().expect("stats").segments, 1, "merged into one");
    check_lookups_equal_brute_force(&store, &expected, "after merging");
    store.settle().expect("settle the merged segment");
    check_lookups_equal_brute_force(&store, &expected, "after the merged segment settled");
}

fn check_lookups_equal_brute_force(
    store: &opentrail_store::Store,
    expected: &HashMap<(FilterField, String), Vec<Match>>,
    phase: &str,
) {
    let mut checked_per_field: BTreeMap<FilterField, usize> = BTreeMap::new();
    let mut keys: Vec<&(FilterField, String)> = expected.keys().collect();
    keys.sort();
    for key in keys {
        let count = checked_per_field.entry(key.0).or_default();
        // Every value for low-cardinality fields; a spread of values for the rest.
        if *count >= 150 {
            continue;
        }
        *count += 1;
        let mut want = expected[key].clone();
        want.sort_by_key(|&(time, seq, _)| std::cmp::Reverse((time, seq)));
        let want: Vec<String> = want.into_iter().map(|(_, _, id)| id).collect();
        let mut query = LookupQuery::new(None, None, 50);
        query.filters = vec![key.clone()];
        let mut got = Vec::new();
        loop {
            let page = store.lookup(&query).expect("lookup");
            got.extend(
                page.events
                    .iter()
                    .map(|e| format!("{}/{}", e.record.account_id, e.record.event_id)),
            );
            match page.next {
                Some(cursor) => query.cursor = Some(cursor),
                None => break,
            }
        }
        assert_eq!(got, want, "{phase}: lookup {:?}={:?}", key.0, key.1);
    }
    for field in [
        FilterField::EventId,
        FilterField::EventName,
        FilterField::ReadOnly,
        FilterField::Username,
        FilterField::ResourceType,
        FilterField::ResourceName,
        FilterField::EventSource,
        FilterField::AccessKeyId,
    ] {
        assert!(
            checked_per_field.get(&field).copied().unwrap_or(0) > 0,
            "{field:?} was checked"
        );
    }
}
