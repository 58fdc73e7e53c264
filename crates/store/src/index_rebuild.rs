//! Rebuilding the lookup index from the log.
//!
//! The index is derived data: every entry follows from a log record. When a store opens
//! with an index written in another key layout (see `keys::INDEX_FORMAT`), the old entries
//! are dropped and the log is replayed into the current layout before the writer starts,
//! so an upgrade never needs a re-import.

use crate::engine::{Shared, StoreError, decode_log_value};
use crate::keys::{self, seq_from_key, seq_key};
use crate::writer::stored_record_and_index_keys;

/// Entries per batch while rebuilding: bounds the memory of one batch.
const REBUILD_BATCH_ENTRIES: usize = 20_000;

pub(crate) fn rebuild_index_if_stale(shared: &Shared) -> Result<(), StoreError> {
    let stored_format = shared
        .meta
        .get(keys::META_INDEX_FORMAT)
        .map_err(|error| shared.engine_error(error))?
        .and_then(|bytes| seq_from_key(&bytes));
    if stored_format == Some(keys::INDEX_FORMAT) {
        return Ok(());
    }
    let has_events = shared.log.first_key_value().is_some();
    if has_events {
        tracing::info!(
            from_format = ?stored_format,
            to_format = keys::INDEX_FORMAT,
            "rebuilding the lookup index from the log"
        );
        remove_all_index_entries(shared)?;
        index_whole_log(shared)?;
    }
    let mut batch = shared
        .database
        .batch()
        .durability(Some(fjall::PersistMode::SyncAll));
    batch.insert(
        &shared.meta,
        keys::META_INDEX_FORMAT,
        &seq_key(keys::INDEX_FORMAT)[..],
    );
    batch.commit().map_err(|error| shared.engine_error(error))
}

fn remove_all_index_entries(shared: &Shared) -> Result<(), StoreError> {
    loop {
        let mut batch = shared.database.batch();
        let mut removed = 0;
        for guard in shared.index.iter().take(REBUILD_BATCH_ENTRIES) {
            let key = guard.key().map_err(|error| shared.engine_error(error))?;
            batch.remove(&shared.index, key);
            removed += 1;
        }
        if removed == 0 {
            return Ok(());
        }
        batch.commit().map_err(|error| shared.engine_error(error))?;
    }
}

fn index_whole_log(shared: &Shared) -> Result<(), StoreError> {
    let mut next_seq = 0u64;
    loop {
        let mut batch = shared.database.batch();
        let mut entries = 0;
        let mut last_seq = None;
        for guard in shared.log.range(seq_key(next_seq)..) {
            let (seq, value) = shared.log_entry(guard)?;
            let (_, json) = decode_log_value(seq, &value)?;
            let (_, index_keys) = stored_record_and_index_keys(shared, seq, json)?;
            for index_key in index_keys {
                batch.insert(&shared.index, &index_key[..], &[][..]);
                entries += 1;
            }
            last_seq = Some(seq);
            if entries >= REBUILD_BATCH_ENTRIES {
                break;
            }
        }
        let Some(last_seq) = last_seq else {
            return Ok(());
        };
        batch.commit().map_err(|error| shared.engine_error(error))?;
        next_seq = last_seq.saturating_add(1);
    }
}
