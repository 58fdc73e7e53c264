//! Converts a store of the previous format (an LSM key per event and attribute, in
//! fjall, under `engine/`) into segments, keeping every event's seq, ingest time and
//! exact JSON, every consumer cursor and the retention floor.
//!
//! It runs when `Store::open` finds `engine/` and no `FORMAT` file. Writing `FORMAT` is
//! the commit point: a conversion interrupted before it leaves the old engine untouched,
//! and the next open clears the partial output and starts over.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use crate::error::StoreError;
use crate::files;
use crate::layout::{FORMAT_FILE_NAME, JOURNAL_DIR, SEGMENTS_DIR, V1_ENGINE_DIR};
use crate::meta::{Meta, MetaState, STORE_FORMAT};
use crate::segment::{self, InputRow, RecordSource, SegmentInput};
use crate::stored_record::parse_stored;
use crate::terms;

/// Events per migrated segment (held in memory while it is written).
const EVENTS_PER_SEGMENT: usize = 200_000;
const V1_META_EXPIRED_THROUGH: &str = "expired_through";
const V1_META_CURSOR_PREFIX: &str = "cursor/";

pub(crate) fn migrate_v1(dir: &Path) -> Result<(), StoreError> {
    let engine_dir = dir.join(V1_ENGINE_DIR);
    let failed = |detail: String| StoreError::Migration {
        path: dir.to_path_buf(),
        detail,
    };
    tracing::info!(path = %dir.display(), "converting the event store to the segment format");
    // Output of an earlier, interrupted conversion.
    for folder in [SEGMENTS_DIR, JOURNAL_DIR, "dicts"] {
        let path = dir.join(folder);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|error| StoreError::io(&path, error))?;
        }
    }
    files::remove_if_present(&dir.join(crate::meta::META_FILE_NAME))?;
    let segments_dir = dir.join(SEGMENTS_DIR);
    std::fs::create_dir_all(&segments_dir).map_err(|error| StoreError::io(&segments_dir, error))?;

    let database = fjall::Database::builder(&engine_dir)
        .open()
        .map_err(|error| failed(format!("opening {}: {error}", engine_dir.display())))?;
    let keyspace = |name: &str| {
        database
            .keyspace(name, fjall::KeyspaceCreateOptions::default)
            .map_err(|error| failed(format!("opening keyspace {name}: {error}")))
    };
    let log = keyspace("log")?;
    let meta = keyspace("meta")?;

    let mut state = MetaState {
        format: STORE_FORMAT,
        ..MetaState::default()
    };
    for guard in meta.iter() {
        let (key, value) = guard
            .into_inner()
            .map_err(|error| failed(format!("reading metadata: {error}")))?;
        let number = <[u8; 8]>::try_from(&value[..]).ok().map(u64::from_be_bytes);
        let key = String::from_utf8_lossy(&key).into_owned();
        if key == V1_META_EXPIRED_THROUGH {
            state.expired_through_seq = number.unwrap_or(0);
        } else if let Some(consumer) = key.strip_prefix(V1_META_CURSOR_PREFIX)
            && let Some(cursor) = number
        {
            state.cursors.insert(consumer.to_owned(), cursor);
        }
    }

    let mut chunk: Vec<(u64, i64, String)> = Vec::with_capacity(EVENTS_PER_SEGMENT);
    let mut migrated = 0u64;
    let mut next_covers_first = state.expired_through_seq + 1;
    for guard in log.iter() {
        let (key, value) = guard
            .into_inner()
            .map_err(|error| failed(format!("reading the log: {error}")))?;
        let seq = <[u8; 8]>::try_from(&key[..])
            .map(u64::from_be_bytes)
            .map_err(|_| failed(format!("log key of {} bytes", key.len())))?;
        let (ingest_time_ms, json) = decode_v1_log_value(seq, &value)?;
        chunk.push((seq, ingest_time_ms, json));
        if chunk.len() == EVENTS_PER_SEGMENT {
            migrated += write_segment(&segments_dir, &mut next_covers_first, &mut chunk)?;
            tracing::info!(events = migrated, "converted");
        }
    }
    migrated += write_segment(&segments_dir, &mut next_covers_first, &mut chunk)?;
    drop((log, meta, database));

    Meta::create(dir, state)?;
    files::write_atomically(&dir.join(FORMAT_FILE_NAME), b"opentrail-store 2\n")?;
    std::fs::remove_dir_all(&engine_dir).map_err(|error| StoreError::io(&engine_dir, error))?;
    files::sync_dir(dir)?;
    tracing::info!(events = migrated, "event store converted");
    Ok(())
}

/// Writes the chunk as one segment; returns how many events it held.
fn write_segment(
    segments_dir: &Path,
    next_covers_first: &mut u64,
    chunk: &mut Vec<(u64, i64, String)>,
) -> Result<u64, StoreError> {
    let Some(&(last_seq, _, _)) = chunk.last() else {
        return Ok(0);
    };
    let mut rows = Vec::with_capacity(chunk.len());
    let mut terms_rows: HashMap<u64, Vec<u32>> = HashMap::new();
    let mut scopes = BTreeSet::new();
    for (input_row, (seq, ingest_time_ms, json)) in chunk.iter().enumerate() {
        let record = parse_stored(
            json.as_bytes(),
            &format_args!("previous-format log seq {seq}"),
        )?;
        rows.push(InputRow {
            seq: *seq,
            event_time_ms: record.event_time_ms,
            ingest_time_ms: *ingest_time_ms,
            id_hash: terms::id_hash(&record.account_id, &record.event_id),
        });
        for term in terms::terms_of(&record) {
            terms_rows.entry(term).or_default().push(input_row as u32);
        }
        scopes.insert(terms::scope_of(&record));
    }
    let covers_first = (*next_covers_first).min(chunk[0].0);
    let input = SegmentInput {
        covers_first,
        covers_last: last_seq,
        rows,
        terms: terms_rows.into_iter().collect(),
        scopes,
    };
    let path = segments_dir.join(segment::file_name(covers_first, last_seq));
    struct ChunkRecords<'a>(&'a [(u64, i64, String)]);
    impl RecordSource for ChunkRecords<'_> {
        fn record(&mut self, input_row: usize) -> Result<Vec<u8>, StoreError> {
            Ok(self.0[input_row].2.as_bytes().to_vec())
        }
    }
    // Nothing else runs during a migration: its seals take a second thread throughout.
    segment::build(&path, &input, &mut ChunkRecords(chunk), None, None, &true)?;
    let count = chunk.len() as u64;
    chunk.clear();
    *next_covers_first = last_seq + 1;
    Ok(count)
}

/// The previous format's log value: ingest time ‖ crc32 ‖ JSON (big-endian).
fn decode_v1_log_value(seq: u64, value: &[u8]) -> Result<(i64, String), StoreError> {
    let corrupt = |detail: String| {
        StoreError::corrupt(
            "previous-format log record",
            format!("log seq {seq}"),
            detail,
        )
    };
    if value.len() < 12 {
        return Err(corrupt(format!("{} bytes, header needs 12", value.len())));
    }
    let (header, json) = value.split_at(12);
    let ingest_time_ms = i64::from_be_bytes(header[..8].try_into().unwrap_or_default());
    let crc = u32::from_be_bytes(header[8..].try_into().unwrap_or_default());
    if crc32fast::hash(json) != crc {
        return Err(corrupt("checksum mismatch".into()));
    }
    let json = String::from_utf8(json.to_vec())
        .map_err(|error| corrupt(format!("invalid UTF-8: {error}")))?;
    Ok((ingest_time_ms, json))
}
