//! The lookup index is derived from the log: a store whose index was written in an older
//! layout (or lost its entries) rebuilds it on open and answers lookups as before.

use opentrail_event::FilterField;
use opentrail_store::LookupQuery;

use crate::support::{ACCOUNT, REGION, all_ids, event, open, records};

fn lookups(store: &opentrail_store::Store) -> Vec<Vec<String>> {
    let mut results = Vec::new();
    for filters in [
        vec![],
        vec![(FilterField::EventName, "DeleteTable".to_owned())],
        vec![
            (FilterField::Username, "alice".to_owned()),
            (FilterField::EventName, "PutItem".to_owned()),
        ],
    ] {
        let mut query = LookupQuery::new(Some(ACCOUNT.into()), Some(REGION.into()), 3);
        query.filters = filters;
        results.push(all_ids(store, query));
    }
    results
}

#[test]
fn an_index_in_an_older_layout_is_rebuilt_from_the_log_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let batch: Vec<String> = (0..40)
        .map(|i| {
            let name = if i % 4 == 0 { "DeleteTable" } else { "PutItem" };
            event(
                &format!("e-{i:02}"),
                name,
                &format!("2024-05-01T10:{i:02}:00Z"),
            )
        })
        .collect();
    let before = {
        let store = open(dir.path());
        store.append(records(&batch.join("\n"))).expect("append");
        lookups(&store)
    };
    assert_eq!(before[1].len(), 10, "the lookups find events: {before:?}");

    // What an older version leaves behind: no layout marker and entries in another layout.
    {
        let database = fjall::Database::builder(dir.path().join("engine"))
            .open()
            .expect("engine opens");
        let meta = database
            .keyspace("meta", fjall::KeyspaceCreateOptions::default)
            .expect("meta");
        let index = database
            .keyspace("index", fjall::KeyspaceCreateOptions::default)
            .expect("index");
        meta.remove("index_format").expect("remove marker");
        let stale: Vec<Vec<u8>> = index
            .iter()
            .step_by(2)
            .map(|guard| guard.key().expect("key").to_vec())
            .collect();
        for key in stale {
            index.remove(key).expect("remove entry");
        }
        index
            .insert(b"stale entry of an older layout".to_vec(), Vec::<u8>::new())
            .expect("insert");
        database
            .persist(fjall::PersistMode::SyncAll)
            .expect("persist");
    }

    let store = open(dir.path());
    assert_eq!(lookups(&store), before);
}
