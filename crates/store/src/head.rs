//! The in-memory head: the events since the last seal, with their postings, so a lookup
//! sees an event as soon as its append returns.
//!
//! Records stay in the compressed blocks their journal frame holds (about 1/8 of their
//! JSON); a row points into one. Rows are in seq order; their event times need not be
//! (imports, late events, concurrent producers), so `by_position` keeps every row in
//! newest-first order too, and a query walks it or sorts a short postings list, whichever
//! reads fewer rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use opentrail_event::EventRecord;

use crate::blocks::EncodedBlock;
use crate::columns::HeadColumns;
use crate::query::{Position, PositionBounds, Scope};
use crate::terms;

/// One stored event in the head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadRow {
    pub seq: u64,
    pub event_time_ms: i64,
    pub ingest_time_ms: i64,
    pub block: u32,
    pub index: u32,
    pub id_hash: u64,
}

/// Where a record of the head lives: its block (shared, immutable) and index in it.
#[derive(Clone)]
pub(crate) struct HeadRecordRef {
    pub block: Arc<EncodedBlock>,
    pub index: u32,
}

/// Terms and id hashes are already xxh3 hashes: hashing them again (std's SipHash) would
/// be the head's largest cost per event, so the maps use them as they are.
#[derive(Default, Clone, Copy)]
pub(crate) struct PrehashedKey(u64);

impl std::hash::Hasher for PrehashedKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `u64` keys; fold anything else in for safety.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

pub(crate) type PrehashedMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<PrehashedKey>>;

/// Per-row memory besides blocks and postings, for the head's byte count.
const ROW_OVERHEAD_BYTES: u64 = 104;
const POSTING_BYTES: u64 = 8;

pub(crate) struct Head {
    /// The first seq this head may hold; its journal file is named after it.
    pub first_seq: u64,
    pub journal_path: PathBuf,
    /// The head's id in the block cache.
    pub source_id: u64,
    pub created: Instant,
    pub blocks: Vec<Arc<EncodedBlock>>,
    pub rows: Vec<HeadRow>,
    /// Every row by its place in newest-first order.
    by_position: BTreeMap<Position, u32>,
    pub postings: PrehashedMap<Vec<u32>>,
    ids: PrehashedMap<u32>,
    /// Rows whose id hash another row already has (a real 64-bit collision, or a record
    /// stored before its duplicate could be seen); checked like `ids`.
    ids_overflow: Vec<(u64, u32)>,
    pub scopes: BTreeSet<Scope>,
    /// `scopes` by [`terms::scope_hash`], so a row's scope is found without building it.
    scopes_by_hash: PrehashedMap<Scope>,
    /// Reused for every row's terms.
    terms_scratch: Vec<u64>,
    /// The rows' Parquet columns, encoded as they arrive; `None` once a seal took them,
    /// or if encoding failed (the seal then parses the records for them).
    columns: Mutex<Option<HeadColumns>>,
    columns_bytes: u64,
    bytes: u64,
}

impl Head {
    pub(crate) fn new(first_seq: u64, journal_path: PathBuf, source_id: u64) -> Head {
        Head {
            first_seq,
            journal_path,
            source_id,
            created: Instant::now(),
            blocks: Vec::new(),
            rows: Vec::new(),
            by_position: BTreeMap::new(),
            postings: PrehashedMap::default(),
            ids: PrehashedMap::default(),
            ids_overflow: Vec::new(),
            scopes: BTreeSet::new(),
            scopes_by_hash: PrehashedMap::default(),
            terms_scratch: Vec::new(),
            columns: Mutex::new(
                HeadColumns::new()
                    .inspect_err(|error| {
                        tracing::warn!(%error, "a head's columns will be made when it is sealed");
                    })
                    .ok(),
            ),
            columns_bytes: 0,
            bytes: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Memory the head holds: compressed blocks, rows, postings and columns.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes + self.columns_bytes
    }

    /// Adds rows' columns (every row [`Head::push_row`] is given, in the same order).
    /// Takes `&self`, so the writer encodes them without keeping lookups out of the head;
    /// [`Head::count_columns_bytes`] then counts the memory they took. A failure only
    /// drops the columns, with a warning: the seal makes them from the records instead.
    pub(crate) fn push_columns<'r>(
        &self,
        rows: impl Iterator<Item = (u64, i64, &'r EventRecord)>,
    ) -> u64 {
        let mut columns = self
            .columns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(encoder) = columns.as_mut() else {
            return 0;
        };
        for (seq, ingest_time_ms, record) in rows {
            if let Err(error) = encoder.push(seq, ingest_time_ms, record) {
                tracing::warn!(%error, seq, "a head's columns will be made when it is sealed");
                *columns = None;
                return 0;
            }
        }
        encoder.memory_bytes() as u64
    }

    pub(crate) fn count_columns_bytes(&mut self, bytes: u64) {
        self.columns_bytes = bytes;
    }

    /// The columns of every row, if they are whole; a seal takes them once.
    pub(crate) fn take_columns(&self) -> Option<HeadColumns> {
        self.columns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            .filter(|columns| columns.rows() == self.rows.len())
    }

    /// The latest event time any row has.
    pub(crate) fn max_time_ms(&self) -> Option<i64> {
        self.by_position
            .keys()
            .next()
            .map(|newest| newest.event_time_ms)
    }

    /// The earliest event time any row has.
    pub(crate) fn min_time_ms(&self) -> Option<i64> {
        self.by_position
            .keys()
            .next_back()
            .map(|oldest| oldest.event_time_ms)
    }

    pub(crate) fn last_seq(&self) -> Option<u64> {
        self.rows.last().map(|row| row.seq)
    }

    /// Adds a frame's blocks; returns the index of the first, for rows to point into.
    pub(crate) fn add_blocks(&mut self, blocks: Vec<EncodedBlock>) -> u32 {
        let first = self.blocks.len() as u32;
        for block in blocks {
            self.bytes += block.bytes.len() as u64 + 32;
            self.blocks.push(Arc::new(block));
        }
        first
    }

    /// Adds a row for `record`, with its postings and its scope.
    pub(crate) fn push_row(&mut self, row: HeadRow, record: &EventRecord) {
        let row_index = self.rows.len() as u32;
        self.by_position.insert(
            Position {
                event_time_ms: row.event_time_ms,
                seq: row.seq,
            },
            row_index,
        );
        match self.ids.entry(row.id_hash) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(row_index);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.ids_overflow.push((row.id_hash, row_index))
            }
        }
        terms::terms_into(record, &mut self.terms_scratch);
        for term in &self.terms_scratch {
            self.postings.entry(*term).or_default().push(row_index);
        }
        let scope_hash = terms::scope_hash(record);
        let known = self
            .scopes_by_hash
            .get(&scope_hash)
            .is_some_and(|scope| terms::is_scope_of(scope, record));
        if !known {
            // New, or (rarely) sharing its hash with another: the set decides.
            let scope = terms::scope_of(record);
            self.scopes.insert(scope.clone());
            self.scopes_by_hash.entry(scope_hash).or_insert(scope);
        }
        self.bytes += ROW_OVERHEAD_BYTES + POSTING_BYTES * self.terms_scratch.len() as u64;
        self.rows.push(row);
    }

    /// Rows whose id hash is `id_hash` (to be confirmed against their records).
    pub(crate) fn rows_with_id(&self, id_hash: u64) -> impl Iterator<Item = u32> + '_ {
        self.ids.get(&id_hash).copied().into_iter().chain(
            self.ids_overflow
                .iter()
                .filter(move |(hash, _)| *hash == id_hash)
                .map(|(_, row)| *row),
        )
    }

    pub(crate) fn record_ref(&self, row: u32) -> Option<HeadRecordRef> {
        let row = self.rows.get(row as usize)?;
        Some(HeadRecordRef {
            block: self.blocks.get(row.block as usize)?.clone(),
            index: row.index,
        })
    }

    /// The row holding `seq`, if this head has it.
    pub(crate) fn row_of_seq(&self, seq: u64) -> Option<u32> {
        let first = self.rows.first()?.seq;
        let row = usize::try_from(seq.checked_sub(first)?).ok()?;
        // Rows hold consecutive seqs; fall back to a search should that ever not hold.
        match self.rows.get(row) {
            Some(found) if found.seq == seq => Some(row as u32),
            _ => self
                .rows
                .binary_search_by_key(&seq, |row| row.seq)
                .ok()
                .map(|row| row as u32),
        }
    }

    /// Up to `limit` rows matching every term, within `bounds`, that `visible` accepts,
    /// newest first.
    ///
    /// Two plans, whichever reads fewer rows: collect the shortest postings list's rows
    /// and sort them (a selective term), or walk rows newest first and probe every list
    /// (common terms: a page needs about `limit ÷ selectivity` steps).
    pub(crate) fn top_matches(
        &self,
        terms: &[u64],
        bounds: &PositionBounds,
        limit: usize,
        visible: &dyn Fn(&HeadRow) -> bool,
    ) -> Vec<(Position, u32)> {
        let mut lists: Vec<&[u32]> = Vec::with_capacity(terms.len());
        for term in terms {
            match self.postings.get(term) {
                Some(rows) => lists.push(rows),
                None => return Vec::new(),
            }
        }
        lists.sort_by_key(|rows| rows.len());
        let Some((driver, others)) = lists.split_first() else {
            return Vec::new();
        };
        let in_others = |row: u32| others.iter().all(|rows| rows.binary_search(&row).is_ok());
        let rows_total = self.rows.len().max(1) as f64;
        let selectivity: f64 = lists
            .iter()
            .map(|rows| rows.len() as f64 / rows_total)
            .product();
        let walk_steps = limit as f64 / selectivity.max(f64::MIN_POSITIVE);
        let mut found = Vec::with_capacity(limit);
        if walk_steps < driver.len() as f64 {
            for (position, &row_index) in self.by_position.range(bounds.first..=bounds.last) {
                if found.len() == limit {
                    break;
                }
                let row = &self.rows[row_index as usize];
                if driver.binary_search(&row_index).is_ok() && in_others(row_index) && visible(row)
                {
                    found.push((*position, row_index));
                }
            }
            return found;
        }
        for &row_index in driver.iter() {
            let row = &self.rows[row_index as usize];
            let position = Position {
                event_time_ms: row.event_time_ms,
                seq: row.seq,
            };
            if bounds.contains(position) && in_others(row_index) && visible(row) {
                found.push((position, row_index));
            }
        }
        found.sort_unstable();
        found.truncate(limit);
        found
    }
}

#[cfg(test)]
mod tests {
    use opentrail_event::{FilterField, IngestContext};

    use super::*;

    fn record(account_id: &str, region: &str, event_name: &str, insight: bool) -> EventRecord {
        let category = if insight {
            r#","eventCategory":"Insight""#
        } else {
            ""
        };
        let json = format!(
            r#"{{"eventTime":"2026-12-07T00:00:00Z","eventSource":"s3.amazonaws.com","eventName":"{event_name}","awsRegion":"{region}","recipientAccountId":"{account_id}"{category}}}"#
        );
        let context = IngestContext {
            account_id: account_id.to_owned(),
            region: region.to_owned(),
        };
        EventRecord::from_json_object(&json, &context).expect("a valid record")
    }

    #[test]
    fn rows_of_interleaved_scopes_list_each_scope_once_and_post_every_term() {
        let records = [
            record("111111111111", "us-east-1", "GetObject", false),
            record("222222222222", "us-east-1", "PutObject", false),
            record("111111111111", "eu-west-1", "GetObject", false),
            record("111111111111", "us-east-1", "GetObject", true),
        ];
        let mut head = Head::new(1, PathBuf::from("journal"), 0);
        for (index, record) in records.iter().cycle().take(12).enumerate() {
            let row = HeadRow {
                seq: index as u64 + 1,
                event_time_ms: record.event_time_ms,
                ingest_time_ms: 0,
                block: 0,
                index: index as u32,
                id_hash: index as u64,
            };
            head.push_row(row, record);
        }
        let scopes: BTreeSet<Scope> = records.iter().map(terms::scope_of).collect();
        assert_eq!(scopes.len(), 4);
        assert_eq!(head.scopes, scopes);
        let get_object = terms::term(FilterField::EventName, "GetObject");
        assert_eq!(
            head.postings[&get_object],
            vec![0, 2, 3, 4, 6, 7, 8, 10, 11]
        );
        for (index, record) in records.iter().enumerate() {
            for term in terms::terms_of(record) {
                assert!(head.postings[&term].contains(&(index as u32)));
            }
        }
    }
}
