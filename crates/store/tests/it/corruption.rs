//! Damage the files on disk and check the store either repairs a torn tail or reports
//! the corruption with its location; it never serves damaged data silently.

use std::path::{Path, PathBuf};

use opentrail_store::{LookupQuery, Store, StoreError};

use crate::support::{ACCOUNT, REGION, event, open, records};

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(Result::ok)
    {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The engine's write-ahead journal files: everything outside the per-keyspace tables.
fn journal_files(store_dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    files_under(&store_dir.join("engine"), &mut files);
    let mut journals: Vec<PathBuf> = files
        .into_iter()
        .filter(|path| !path.components().any(|c| c.as_os_str() == "keyspaces"))
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "jnl")
                || std::fs::metadata(path)
                    .map(|m| m.len() > 4096)
                    .unwrap_or(false)
        })
        .collect();
    journals.sort_by_key(|path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0));
    journals
}

fn append_events(store: &Store, prefix: &str, count: usize) {
    let lines: Vec<String> = (0..count)
        .map(|i| event(&format!("{prefix}-{i}"), "PutItem", "2024-01-01T00:00:00Z"))
        .collect();
    store.append(records(&lines.join("\n"))).expect("append");
}

fn read_everything(store: &Store) -> Result<usize, StoreError> {
    store.verify()?;
    let mut count = 0;
    let mut after = 0;
    loop {
        let entries = store.read_log(after, 500)?;
        let Some(last) = entries.last() else { break };
        after = last.seq;
        count += entries.len();
    }
    let mut query = LookupQuery::new(Some(ACCOUNT.into()), Some(REGION.into()), 50);
    loop {
        let page = store.lookup(&query)?;
        match page.next {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    Ok(count)
}

#[test]
fn a_torn_journal_tail_is_truncated_and_acknowledged_events_survive() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        append_events(&store, "kept", 200);
    }
    let journal = journal_files(dir.path()).pop().expect("a journal file");
    let mut bytes = std::fs::read(&journal).expect("read journal");
    // Half a write that never finished: garbage after the last complete batch.
    bytes.extend_from_slice(&[0x5a; 333]);
    std::fs::write(&journal, bytes).expect("write journal");

    let store = open(dir.path());
    assert_eq!(read_everything(&store).expect("reads"), 200);
    append_events(&store, "after", 10);
    assert_eq!(read_everything(&store).expect("reads"), 210);
}

#[test]
fn acknowledged_events_lost_from_the_journal_are_reported_not_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        for batch in 0..4 {
            append_events(&store, &format!("batch{batch}"), 100);
        }
    }
    let journal = journal_files(dir.path()).pop().expect("a journal file");
    // Journal files may be preallocated: cut at half of the bytes actually written.
    let bytes = std::fs::read(&journal).expect("read journal");
    let written = bytes
        .iter()
        .rposition(|&byte| byte != 0)
        .map_or(0, |last| last + 1);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .expect("open journal");
    file.set_len(written as u64 / 2).expect("truncate journal");
    drop(file);

    match Store::open(dir.path(), Default::default()) {
        Err(StoreError::Corrupt {
            location, detail, ..
        }) => {
            assert!(location.contains("engine"), "names where: {location}");
            assert!(detail.contains("acknowledged"), "says what: {detail}");
        }
        Err(other) => panic!("expected a corruption report, got {other}"),
        Ok(_) => panic!("a store that lost acknowledged events opened silently"),
    }
}

#[test]
fn flipped_bytes_in_a_table_file_are_detected_not_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        for batch in 0..5 {
            append_events(&store, &format!("batch{batch}"), 400);
        }
        store.flush_tables().expect("flush");
    }
    let mut files = Vec::new();
    files_under(&dir.path().join("engine").join("keyspaces"), &mut files);
    let table = files
        .into_iter()
        .filter(|path| path.components().any(|c| c.as_os_str() == "tables"))
        .max_by_key(|path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0))
        .expect("a table file");
    let mut bytes = std::fs::read(&table).expect("read table");
    let middle = bytes.len() / 3;
    for byte in &mut bytes[middle..middle + 64] {
        *byte ^= 0xA5;
    }
    std::fs::write(&table, bytes).expect("write table");

    let outcome =
        Store::open(dir.path(), Default::default()).and_then(|store| read_everything(&store));
    match outcome {
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.contains(dir.path().to_str().unwrap_or("engine"))
                    || message.contains("seq"),
                "names where: {message}"
            );
        }
        Ok(count) => panic!(
            "damaged table {} was served silently ({count} events)",
            table.display()
        ),
    }
}
