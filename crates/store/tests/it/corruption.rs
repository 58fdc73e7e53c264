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

/// The journal files, the largest last.
fn journal_files(store_dir: &Path) -> Vec<PathBuf> {
    let mut journals = Vec::new();
    files_under(&store_dir.join("journal"), &mut journals);
    journals.retain(|path| path.extension().is_some_and(|ext| ext == "journal"));
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
    let written = std::fs::metadata(&journal).expect("journal metadata").len();
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
            assert!(location.contains("journal"), "names where: {location}");
            assert!(detail.contains("acknowledged"), "says what: {detail}");
        }
        Err(other) => panic!("expected a corruption report, got {other}"),
        Ok(_) => panic!("a store that lost acknowledged events opened silently"),
    }
}

#[test]
fn flipped_bytes_in_a_segment_are_detected_and_reported_with_file_and_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        for batch in 0..5 {
            append_events(&store, &format!("batch{batch}"), 400);
        }
        store.flush_tables().expect("seal");
    }
    let mut files = Vec::new();
    files_under(&dir.path().join("segments"), &mut files);
    let segment = files
        .into_iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .max_by_key(|path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0))
        .expect("a segment file");
    let pristine = std::fs::read(&segment).expect("read segment");
    // Damage the record blocks (the first third) and, separately, the index sections
    // (the last part): both must be reported, never served.
    for at in [pristine.len() / 3, pristine.len() - 300] {
        let mut bytes = pristine.clone();
        for byte in &mut bytes[at..at + 16] {
            *byte ^= 0xA5;
        }
        std::fs::write(&segment, &bytes).expect("write segment");
        let outcome =
            Store::open(dir.path(), Default::default()).and_then(|store| read_everything(&store));
        match outcome {
            Err(StoreError::Corrupt { location, .. }) => {
                assert!(
                    location.contains(&segment.display().to_string()),
                    "names the file: {location}"
                );
                assert!(location.contains("byte"), "names the offset: {location}");
            }
            Err(other) => panic!("expected a corruption report, got {other}"),
            Ok(count) => panic!(
                "damaged segment {} was served silently ({count} events)",
                segment.display()
            ),
        }
    }
    std::fs::write(&segment, &pristine).expect("restore segment");
    let store = open(dir.path());
    assert_eq!(read_everything(&store).expect("reads"), 2_000);
}
