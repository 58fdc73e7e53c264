//! Immutable segments: a sealed head (or several merged segments) in one file, written
//! once and never changed, so it can live in a local directory or an object store.
//!
//! Rows are sorted newest first (event time, then seq, both descending), the order pages
//! are served in: postings list rows ascending, so a lookup reads a term's postings from
//! the front and stops after its page, and a time range is a range of rows.
//!
//! ```text
//! "OTSEG008" ‖ record blocks … ‖ sections … ‖ section table ‖ table_len:u32 ‖ "OTSEGEND"
//!
//! section          content
//! meta             covers_first:u64 ‖ covers_last:u64 ‖ rows:u32 ‖ min/max event time:i64
//!                  ‖ min/max ingest time:i64 ‖ scopes (count, then account, region, lane)
//!                  [‖ settled level:u8, once the settler recompressed the blocks]
//! dictionary       the zstd dictionary the blocks use (empty: none)
//! block_table      (offset:u64 ‖ len:u32 ‖ raw_len:u32 ‖ first_row:u32 ‖ crc32:u32) × blocks
//! times            event_time_ms per row (a packed column, see `packed.rs`)
//! seqs             seq − covers_first per row (packed)
//! row_of_seq       row per seq of covers_first..=covers_last, −1 where none (packed)
//! ingest_runs      (seq − covers_first:u32 ‖ ingest_time_ms:i64) × runs (ingest time is
//!                  constant within a group commit and never decreases with seq)
//! terms            (fingerprint:u32 ‖ entry:u32) × terms, sorted by fingerprint, the
//!                  term's low 32 bits; entry is the offset of its postings, or with the
//!                  top bit set its only row (before OTSEG006: term:u64 ‖ offset:u32)
//! postings         each term's rows: delta varints, Elias-Fano chunks or a bitmap (see
//!                  `postings.rs`)
//! ids              every row's id fingerprint, the low half of xxh3(account, eventID),
//!                  with its row, sorted and bit-packed in buckets (see `id_table.rs`;
//!                  OTSEG005: (fingerprint:u32 ‖ row:u32) × rows; before: the whole
//!                  hash, as a u64)
//! bloom            a Bloom filter over xxh3 of the fingerprints (before OTSEG005: the
//!                  hashes): split-block since OTSEG008, classic before (see `bloom.rs`)
//! record_of_row    empty, or (`OTSEG007`) each row's record number in the blocks
//!                  (packed): the blocks are then the head's journal blocks as they were,
//!                  in seq order, and a block table entry's first_row is the number of its
//!                  first record (see "Kept journal blocks" below)
//! section table    (offset:u64 ‖ len:u64 ‖ crc32:u32) × sections
//! ```
//! Every section and every block has a CRC, checked when the segment opens (sections) or
//! is read (blocks), so damage is reported with the file and offset, never served.
//!
//! Kept journal blocks: a seal copies the head's blocks (compressed on the request
//! threads for the journal, zstd-1 without id packing) into the segment as they are and
//! maps each row to its record, instead of decompressing every record and compressing it
//! again in row order. That rewrite was about a quarter of the server's CPU per event
//! during a bulk ingest; the settler does it instead, on idle CPU, with id packing and
//! zstd-12 (`write_settled`), and leaves an empty `record_of_row`. Blocks may also hold
//! records that are not rows (duplicates in a batch, rows retention skipped); nothing
//! points at them and the settled copy drops them.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::blocks::{self, BlockEncoder, DecodedBlock, Dictionaries, Dictionary};
use crate::codec::{ByteReader, PutBytes, i64_at, u32_at, u64_at};
use crate::columns::HeadColumns;
use crate::error::StoreError;
use crate::files;
use crate::id_table::PackedIds;
use crate::packed::{self, Packed};
use crate::postings::{self, PostingsCursor};
use crate::query::{EventLane, Position, PositionBounds, Scope};

/// Written at the start of every new segment. `OTSEG008` keeps a split-block Bloom
/// filter, one cache line per probe; `OTSEG007` adds `record_of_row`, so a
/// seal can keep the journal's blocks; `OTSEG006` keys the term table by 32-bit
/// fingerprints and keeps a term's only row in its entry, packs the id table and adds
/// Elias-Fano postings (~10 bytes/event less); `OTSEG005` keyed the id table by 32-bit
/// fingerprints (4 bytes/event less), `OTSEG004` added bitmap postings (`postings.rs`).
/// Segments of `OTSEG003` to `OTSEG007` read as before, and an older release refuses the
/// new ones rather than misreading them.
const HEAD_MAGIC: &[u8; 8] = b"OTSEG008";
/// Before the split-block Bloom filter: the classic one, otherwise the same layout.
const HEAD_MAGIC_CLASSIC_BLOOM: &[u8; 8] = b"OTSEG007";
/// Before `record_of_row`: one section fewer, blocks always in row order.
const HEAD_MAGIC_ROW_ORDERED: &[u8; 8] = b"OTSEG006";
const HEAD_MAGIC_HASH_TERMS: &[u8; 8] = b"OTSEG005";
const HEAD_MAGIC_HASH_IDS: &[u8; 8] = b"OTSEG004";
const HEAD_MAGIC_BEFORE_BITMAPS: &[u8; 8] = b"OTSEG003";
const TAIL_MAGIC: &[u8; 8] = b"OTSEGEND";
pub(crate) const SEGMENT_EXTENSION: &str = "seg";
/// In the seq → row column: a seq of the range that holds no event (it expired first).
const NO_ROW: i64 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
enum Section {
    Meta,
    Dictionary,
    BlockTable,
    Times,
    Seqs,
    RowOfSeq,
    IngestRuns,
    Terms,
    Postings,
    Ids,
    Bloom,
    RecordOfRow,
}
const SECTION_COUNT: usize = 12;

/// Whether a segment of this magic packs its id table and keys its terms by 32-bit
/// fingerprints, as every one since `OTSEG006` does.
fn packs_ids_and_keys_terms_by_fingerprint(magic: &[u8]) -> bool {
    [HEAD_MAGIC, HEAD_MAGIC_CLASSIC_BLOOM, HEAD_MAGIC_ROW_ORDERED]
        .iter()
        .any(|known| magic == known.as_slice())
}

/// How many sections a segment of this magic has: `record_of_row` came with `OTSEG007`.
fn section_count(magic: &[u8]) -> usize {
    if magic == HEAD_MAGIC || magic == HEAD_MAGIC_CLASSIC_BLOOM {
        SECTION_COUNT
    } else {
        SECTION_COUNT - 1
    }
}
const BLOCK_ENTRY_LEN: usize = 24;

/// How a segment's id table and Bloom filter key an event's id hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IdKeys {
    /// Before `OTSEG005`: the whole 64-bit hash (12-byte entries).
    Hashes,
    /// `OTSEG005`: the hash's low 32 bits (8-byte entries). A segment holds far fewer
    /// than 2^32 rows, so a fingerprint rarely matches another id's, and every match is
    /// confirmed against the stored record anyway (`Shared::find_id`).
    Fingerprints,
    /// The same fingerprints, bit-packed in buckets (`id_table.rs`): under 5 bytes.
    PackedFingerprints,
}

impl IdKeys {
    fn of_magic(magic: &[u8]) -> IdKeys {
        if packs_ids_and_keys_terms_by_fingerprint(magic) {
            IdKeys::PackedFingerprints
        } else if magic == HEAD_MAGIC_HASH_TERMS {
            IdKeys::Fingerprints
        } else {
            IdKeys::Hashes
        }
    }

    /// The length of a table entry, for the tables of whole entries.
    fn entry_len(self) -> Option<usize> {
        match self {
            IdKeys::Hashes => Some(12),
            IdKeys::Fingerprints => Some(8),
            IdKeys::PackedFingerprints => None,
        }
    }

    /// What the id table holds for `id_hash`. A merge reads keys back as hashes
    /// ([`Segment::id_entries`]), and a fingerprint's fingerprint is itself.
    fn key(self, id_hash: u64) -> u64 {
        match self {
            IdKeys::Hashes => id_hash,
            IdKeys::Fingerprints | IdKeys::PackedFingerprints => u64::from(id_hash as u32),
        }
    }

    /// What the Bloom filter holds for a key: its double hashing needs 64 well-mixed bits.
    fn bloom_key(self, key: u64) -> u64 {
        match self {
            IdKeys::Hashes => key,
            IdKeys::Fingerprints | IdKeys::PackedFingerprints => {
                xxhash_rust::xxh3::xxh3_64(&(key as u32).to_le_bytes())
            }
        }
    }
}

/// An id hash with the key the Bloom filters of fingerprint tables hold for it, made once
/// per dedup check rather than once per segment probed.
pub(crate) struct IdProbe {
    hash: u64,
    fingerprint_key: u64,
}

impl IdProbe {
    pub(crate) fn new(hash: u64) -> IdProbe {
        let keys = IdKeys::PackedFingerprints;
        IdProbe {
            hash,
            fingerprint_key: keys.bloom_key(keys.key(hash)),
        }
    }

    /// The key a segment's split-block filter, and a dedup group's, holds for the id.
    pub(crate) fn fingerprint_key(&self) -> u64 {
        self.fingerprint_key
    }
}

/// How a segment's term table keys a term, and where a term's rows are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TermKeys {
    /// Before `OTSEG006`: the whole 64-bit term and its postings' offset (12 bytes).
    Hashes,
    /// The term's low 32 bits and its postings' offset or only row (8 bytes). Terms that
    /// share a fingerprint share one list: lookups re-check every candidate's attributes,
    /// so that costs reads, never a wrong answer. Most terms (an ARN, an address, a key
    /// id) have one row in a segment, which the entry holds in place of an offset.
    Fingerprints,
}

/// Where a term table entry's rows are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TermRows {
    Postings { offset: usize },
    Only(u32),
}

/// Marks an entry that holds its term's only row rather than an offset.
const ONLY_ROW: u32 = 1 << 31;

impl TermKeys {
    fn of_magic(magic: &[u8]) -> TermKeys {
        if packs_ids_and_keys_terms_by_fingerprint(magic) {
            TermKeys::Fingerprints
        } else {
            TermKeys::Hashes
        }
    }

    fn entry_len(self) -> usize {
        match self {
            TermKeys::Hashes => 12,
            TermKeys::Fingerprints => 8,
        }
    }

    /// What the table holds for `term`. A merge reads keys back as terms
    /// ([`Segment::all_postings`]), and a fingerprint's fingerprint is itself.
    fn key(self, term: u64) -> u64 {
        match self {
            TermKeys::Hashes => term,
            TermKeys::Fingerprints => u64::from(term as u32),
        }
    }

    fn key_at(self, table: &[u8], index: usize) -> Option<u64> {
        let entry = table.get(index * self.entry_len()..)?;
        match self {
            TermKeys::Hashes => u64_at(entry, 0),
            TermKeys::Fingerprints => u32_at(entry, 0).map(u64::from),
        }
    }

    fn rows_at(self, table: &[u8], index: usize) -> Option<TermRows> {
        let entry = table.get(index * self.entry_len()..)?;
        Some(match self {
            TermKeys::Hashes => TermRows::Postings {
                offset: u32_at(entry.get(8..)?, 0)? as usize,
            },
            TermKeys::Fingerprints => {
                let word = u32_at(entry.get(4..)?, 0)?;
                if word & ONLY_ROW != 0 {
                    TermRows::Only(word & !ONLY_ROW)
                } else {
                    TermRows::Postings {
                        offset: word as usize,
                    }
                }
            }
        })
    }
}

const RUN_ENTRY_LEN: usize = 12;

/// What a segment is built from: rows in any order, and each term's rows.
pub(crate) struct SegmentInput {
    pub covers_first: u64,
    pub covers_last: u64,
    pub rows: Vec<InputRow>,
    /// (term, input row indexes in any order).
    pub terms: Vec<(u64, Vec<u32>)>,
    pub scopes: BTreeSet<Scope>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct InputRow {
    pub seq: u64,
    pub event_time_ms: i64,
    pub ingest_time_ms: i64,
    pub id_hash: u64,
}

/// Gives the record JSON of an input row.
pub(crate) trait RecordSource {
    fn record(&mut self, input_row: usize) -> Result<Vec<u8>, StoreError>;
}

/// An even spread of a source's first `count` records to train a dictionary on; empty
/// when there are too few for a useful one.
pub(crate) fn training_sample(
    records: &mut dyn RecordSource,
    count: usize,
) -> Result<Vec<Vec<u8>>, StoreError> {
    if count < blocks::TRAINING_RECORDS_MIN {
        return Ok(Vec::new());
    }
    let stride = (count / blocks::TRAINING_SAMPLE_RECORDS).max(1);
    (0..count)
        .step_by(stride)
        .map(|row| records.record(row))
        .collect()
}

pub(crate) fn file_name(covers_first: u64, covers_last: u64) -> String {
    format!("{covers_first:020}-{covers_last:020}.{SEGMENT_EXTENSION}")
}

/// Parses `<first>-<last>.seg`.
pub(crate) fn parse_file_name(path: &Path) -> Option<(u64, u64)> {
    if path.extension()? != SEGMENT_EXTENSION {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    let (first, last) = stem.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

/// Writes a segment file to `path` (through a temporary file, fsynced and renamed, so a
/// crash never leaves a half-written segment under the final name). A failed build
/// removes what it wrote: on a full disk, its partial files would keep the space taken.
pub(crate) fn build(
    path: &Path,
    input: &SegmentInput,
    records: &mut dyn RecordSource,
    made_columns: Option<HeadColumns>,
    fallback_dictionary: Option<Arc<Dictionary>>,
    second_thread: &dyn SecondThread,
) -> Result<Option<Arc<Dictionary>>, StoreError> {
    let built = write_files(
        path,
        input,
        records,
        made_columns,
        fallback_dictionary,
        second_thread,
    );
    if built.is_err() {
        remove_leftovers(path);
    }
    built
}

fn write_files(
    path: &Path,
    input: &SegmentInput,
    records: &mut dyn RecordSource,
    made_columns: Option<HeadColumns>,
    fallback_dictionary: Option<Arc<Dictionary>>,
    second_thread: &dyn SecondThread,
) -> Result<Option<Arc<Dictionary>>, StoreError> {
    let row_count = input.rows.len();
    debug_assert!(input.covers_first <= input.covers_last);
    debug_assert!(
        input
            .rows
            .iter()
            .all(|row| (input.covers_first..=input.covers_last).contains(&row.seq)),
        "every row's seq lies in the segment's range"
    );
    let order = RowOrder::newest_first(input);

    // A dictionary trained on this segment's own records, when it has enough of them.
    let sample = training_sample(records, row_count)?;
    let trained =
        blocks::Dictionary::train(sample.iter().map(|record| record.as_slice())).map(Arc::new);
    drop(sample);
    let dictionary = trained.clone().or(fallback_dictionary);

    let temporary = files::temporary_sibling(path);
    let mut out = CountingWriter::create(&temporary)?;
    out.write(HEAD_MAGIC)?;
    let columns_path = crate::columns::path_for_segment(path);
    let columns = match made_columns {
        Some(made) => Columns::Made(made, columns_path),
        None => Columns::FromRecords(crate::columns::ColumnsWriter::create(&columns_path)?),
    };
    let block_table = write_records(
        &mut out,
        input,
        records,
        columns,
        &order,
        dictionary.as_deref(),
        second_thread,
    )?;
    write_sections(
        out,
        path,
        input,
        &order,
        dictionary.as_deref(),
        &block_table,
        &[],
    )?;
    Ok(trained)
}

/// Writes the sections after the record blocks and the section table, then puts the
/// fsynced file in place under its final name.
fn write_sections(
    mut out: CountingWriter<'_>,
    path: &Path,
    input: &SegmentInput,
    order: &RowOrder,
    dictionary: Option<&Dictionary>,
    block_table: &[u8],
    record_of_row: &[u8],
) -> Result<(), StoreError> {
    let temporary = out.path;
    // Sections, in the order `open` reads them.
    let mut sections: Vec<(u64, u64, u32)> = Vec::with_capacity(SECTION_COUNT);
    out.section(&meta_section(input), &mut sections)?;
    out.section(
        dictionary.map_or(&[][..], |dictionary| &dictionary.raw),
        &mut sections,
    )?;
    out.section(block_table, &mut sections)?;
    let times: Vec<i64> = order
        .input_rows
        .iter()
        .map(|&input_row| input.rows[input_row as usize].event_time_ms)
        .collect();
    out.section(&packed::encode(&times), &mut sections)?;
    drop(times);
    let seqs: Vec<i64> = order
        .input_rows
        .iter()
        .map(|&input_row| (input.rows[input_row as usize].seq - input.covers_first) as i64)
        .collect();
    out.section(&packed::encode(&seqs), &mut sections)?;
    drop(seqs);
    let (row_of_seq, ingest_runs) = seq_sections(input, order);
    out.section(&row_of_seq, &mut sections)?;
    drop(row_of_seq);
    out.section(&ingest_runs, &mut sections)?;
    let (term_table, postings_section) = postings_sections(path, input, order)?;
    out.section(&term_table, &mut sections)?;
    out.section(&postings_section, &mut sections)?;
    drop(postings_section);
    let (ids_section, bloom) = id_sections(input, order);
    out.section(&ids_section, &mut sections)?;
    out.section(&bloom, &mut sections)?;
    out.section(record_of_row, &mut sections)?;
    out.finish_table(&sections)?;
    let file = out
        .inner
        .into_inner()
        .map_err(|error| StoreError::io(temporary, error.into_error()))?;
    file.sync_all()
        .map_err(|error| StoreError::io(temporary, error))?;
    drop(file);
    std::fs::rename(temporary, path).map_err(|error| StoreError::io(path, error))?;
    files::sync_parent(path)?;
    Ok(())
}

/// Writes a head's segment to `path` keeping its journal blocks as they are (see "Kept
/// journal blocks" above), with the columns the head made as its rows arrived. `places`
/// holds each input row's (block, index); every block is compressed with `dictionary`
/// (or with none). A failed build removes what it wrote, as [`build`] does.
pub(crate) fn build_keeping_blocks(
    path: &Path,
    input: &SegmentInput,
    blocks: &[Arc<blocks::EncodedBlock>],
    places: &[(u32, u32)],
    columns: HeadColumns,
    dictionary: Option<&Dictionary>,
) -> Result<(), StoreError> {
    debug_assert_eq!(places.len(), input.rows.len());
    debug_assert!(blocks.iter().all(|block| {
        block.dictionary_id == dictionary.map_or(blocks::NO_DICTIONARY, |dictionary| dictionary.id)
    }));
    let write = || {
        let order = RowOrder::newest_first(input);
        // In place before the segment is, so a segment never lacks them.
        columns.write_file(&crate::columns::path_for_segment(path))?;
        let temporary = files::temporary_sibling(path);
        let mut out = CountingWriter::create(&temporary)?;
        out.write(HEAD_MAGIC)?;
        let mut first_records = Vec::with_capacity(blocks.len());
        let mut block_table = Vec::with_capacity(blocks.len() * BLOCK_ENTRY_LEN);
        let mut records = 0u32;
        for block in blocks {
            first_records.push(records);
            write_block(&mut out, block, records, &mut block_table)?;
            records += block.record_count;
        }
        let record_of_row: Vec<i64> = order
            .input_rows
            .iter()
            .map(|&input_row| {
                let (block, index) = places[input_row as usize];
                i64::from(first_records[block as usize] + index)
            })
            .collect();
        write_sections(
            out,
            path,
            input,
            &order,
            dictionary,
            &block_table,
            &packed::encode(&record_of_row),
        )
    };
    let built = write();
    if built.is_err() {
        remove_leftovers(path);
    }
    built
}

/// What a failed build may have left: the temporary segment and its columns.
fn remove_leftovers(path: &Path) {
    let columns = crate::columns::path_for_segment(path);
    for leftover in [
        files::temporary_sibling(path),
        files::temporary_sibling(&columns),
        columns,
    ] {
        let _ = std::fs::remove_file(leftover);
    }
}

/// Writes `segment` again to `temporary` (fsynced, not renamed) with its record blocks
/// compressed again at [`blocks::Effort::Settled`] (see [`write_settled_blocks`]); rows
/// keep their numbers, so the other sections are copied as they are, but for the meta
/// section with the settled level added and, for kept journal blocks, the new dictionary
/// and an empty `record_of_row`. The Parquet columns beside it are not touched. Returns
/// `false`, with nothing left behind, when `go_on` (asked before each block or batch of
/// rows) says to stop.
pub(crate) fn write_settled(
    segment: &Segment,
    dictionaries: &Dictionaries,
    temporary: &Path,
    go_on: &dyn Fn() -> bool,
) -> Result<bool, StoreError> {
    let written = write_settled_file(segment, dictionaries, temporary, go_on);
    if !matches!(written, Ok(true)) {
        let _ = std::fs::remove_file(temporary);
    }
    written
}

fn write_settled_file(
    segment: &Segment,
    dictionaries: &Dictionaries,
    temporary: &Path,
    go_on: &dyn Fn() -> bool,
) -> Result<bool, StoreError> {
    // Kept journal blocks are written again in row order, with a dictionary trained on
    // the segment's own records (a seal that keeps blocks trains none).
    let in_row_order = segment.keeps_journal_blocks();
    let trained = if in_row_order {
        let mut records = SegmentRows::new(segment, dictionaries);
        let sample = training_sample(&mut records, segment.rows as usize)?;
        blocks::Dictionary::train(sample.iter().map(|record| record.as_slice())).map(Arc::new)
    } else {
        None
    };
    let dictionary = trained.clone().or_else(|| segment.dictionary(dictionaries));
    let mut out = CountingWriter::create(temporary)?;
    // The sections are copied as they are, so the copy keeps the original's format.
    out.write(&segment.map[..HEAD_MAGIC.len()])?;
    let Some(block_table) = write_settled_blocks(
        segment,
        dictionaries,
        dictionary.as_deref(),
        &mut out,
        go_on,
    )?
    else {
        return Ok(false);
    };
    let mut sections: Vec<(u64, u64, u32)> = Vec::with_capacity(SECTION_COUNT);
    for index in 0..section_count(&segment.map[..HEAD_MAGIC.len()]) {
        let original = &segment.map[segment.sections[index].clone()];
        if index == Section::Meta as usize {
            // A segment settled before (at another level) ends in its old level.
            let unsettled_len = original.len() - usize::from(segment.settled_level != 0);
            let mut meta = original[..unsettled_len].to_vec();
            meta.put_u8(blocks::Effort::Settled.level() as u8);
            out.section(&meta, &mut sections)?;
        } else if index == Section::BlockTable as usize {
            out.section(&block_table, &mut sections)?;
        } else if in_row_order && index == Section::Dictionary as usize {
            let raw = dictionary
                .as_ref()
                .map_or(&[][..], |dictionary| &dictionary.raw);
            out.section(raw, &mut sections)?;
        } else if in_row_order && index == Section::RecordOfRow as usize {
            out.section(&[], &mut sections)?;
        } else {
            out.section(original, &mut sections)?;
        }
    }
    out.finish_table(&sections)?;
    // The copy read every index page of the mapping.
    segment.release_pages();
    let file = out
        .inner
        .into_inner()
        .map_err(|error| StoreError::io(temporary, error.into_error()))?;
    file.sync_all()
        .map_err(|error| StoreError::io(temporary, error))?;
    if let Some(trained) = trained {
        // New journal blocks use it too when theirs is missing or old (see
        // `JOURNAL_DICTIONARY_REFRESH`).
        dictionaries.refresh(trained)?;
    }
    Ok(true)
}

/// Writes a segment's blocks again at the settled level; returns the block table, or
/// `None` when `go_on` said to stop. Kept journal blocks are written in row order into
/// new blocks; any other segment's are recompressed block for block, so every row stays
/// in its block.
fn write_settled_blocks(
    segment: &Segment,
    dictionaries: &Dictionaries,
    dictionary: Option<&Dictionary>,
    out: &mut CountingWriter<'_>,
    go_on: &dyn Fn() -> bool,
) -> Result<Option<Vec<u8>>, StoreError> {
    if segment.keeps_journal_blocks() {
        let mut records = SegmentRows::new(segment, dictionaries);
        let mut record_blocks = RecordBlocks::new(dictionary, blocks::Effort::Settled, out);
        let mut batch = Vec::with_capacity(PIPELINE_BATCH_ROWS);
        for row in 0..segment.rows as usize {
            batch.push(records.record(row)?);
            if batch.len() == PIPELINE_BATCH_ROWS || row + 1 == segment.rows as usize {
                if !go_on() {
                    return Ok(None);
                }
                record_blocks.push_batch(&batch)?;
                batch.clear();
            }
        }
        return record_blocks.finish().map(Some);
    }
    let mut encoder = BlockEncoder::new(dictionary, blocks::Effort::Settled);
    let mut block_table = Vec::with_capacity(segment.section(Section::BlockTable).len());
    for block in 0..segment.block_count() as u32 {
        if !go_on() {
            return Ok(None);
        }
        let Some(entry) = segment.block_entry(block) else {
            return Err(corrupt_at(
                &segment.path,
                segment.sections[Section::BlockTable as usize].start,
                format!("block table entry {block} cut short"),
            ));
        };
        encoder.push_block(&segment.decode_block(block, dictionaries)?)?;
        for encoded in encoder.take_finished() {
            write_block(out, &encoded, entry.first_row, &mut block_table)?;
        }
    }
    Ok(Some(block_table))
}

/// A segment's records by row, through a small cache of decoded blocks.
struct SegmentRows<'a> {
    segment: &'a Segment,
    dictionaries: &'a Dictionaries,
    cache: blocks::BlockLru,
}

impl<'a> SegmentRows<'a> {
    fn new(segment: &'a Segment, dictionaries: &'a Dictionaries) -> SegmentRows<'a> {
        SegmentRows {
            segment,
            dictionaries,
            cache: blocks::BlockLru::default(),
        }
    }
}

impl RecordSource for SegmentRows<'_> {
    fn record(&mut self, row: usize) -> Result<Vec<u8>, StoreError> {
        let (segment, dictionaries) = (self.segment, self.dictionaries);
        let (block, index) = segment.block_of_row(row as u32).ok_or_else(|| {
            StoreError::corrupt(
                "segment",
                segment.path.display().to_string(),
                format!("no block holds row {row}"),
            )
        })?;
        self.cache.record((0, block), index, || {
            segment.decode_block(block, dictionaries)
        })
    }
}

/// The segment's row order (newest first: the order pages are served in) and its inverse.
struct RowOrder {
    /// The input row at each segment row.
    input_rows: Vec<u32>,
    /// The segment row of each input row.
    segment_row_of_input: Vec<u32>,
}

impl RowOrder {
    fn newest_first(input: &SegmentInput) -> RowOrder {
        let row_count = input.rows.len();
        let mut input_rows: Vec<u32> = (0..row_count as u32).collect();
        input_rows.sort_unstable_by_key(|&input_row| {
            let row = &input.rows[input_row as usize];
            Position {
                event_time_ms: row.event_time_ms,
                seq: row.seq,
            }
        });
        let mut segment_row_of_input = vec![0u32; row_count];
        for (segment_row, &input_row) in input_rows.iter().enumerate() {
            segment_row_of_input[input_row as usize] = segment_row as u32;
        }
        RowOrder {
            input_rows,
            segment_row_of_input,
        }
    }
}

/// Whether a seal or merge hands its record blocks (id packing and zstd, the largest part
/// of a seal) to a second thread, asked before each batch of rows.
pub(crate) trait SecondThread {
    /// Whether the next batch of rows goes to the second thread.
    fn wanted(&self) -> bool;
    /// `rows` went to the second thread.
    fn used(&self, _rows: usize) {}
}

/// Always or never: for a migration (nothing else runs) and for tests.
impl SecondThread for bool {
    fn wanted(&self) -> bool {
        *self
    }
}

/// Writes the record blocks in row order, as they fill up, and the Parquet columns beside
/// the segment (in place before the segment is, so a segment never lacks them): those a
/// head made as its rows arrived, or else columns made here, in row order, from the
/// records. Returns the block table.
///
/// This thread reads the records (and parses them, for columns made here); the record
/// blocks of each batch of rows are packed, compressed and written either here or, while `second_thread` wants,
/// on a second thread, so a seal can use both cores while appends wait for it and keeps
/// to one otherwise. Batches are written in order either way: one goes on this thread
/// only once the second has written every batch handed to it, so both ways write the
/// same bytes.
fn write_records(
    out: &mut CountingWriter<'_>,
    input: &SegmentInput,
    records: &mut dyn RecordSource,
    mut columns: Columns,
    order: &RowOrder,
    dictionary: Option<&Dictionary>,
    second_thread: &dyn SecondThread,
) -> Result<Vec<u8>, StoreError> {
    let segment_path = out.path.to_path_buf();
    // Reads a row's record (adding it to the columns made here); hands it on for blocks.
    let mut read_row = |input_row: u32| -> Result<Vec<u8>, StoreError> {
        let row = &input.rows[input_row as usize];
        let record = records.record(input_row as usize)?;
        let Columns::FromRecords(columns) = &mut columns else {
            return Ok(record);
        };
        let parsed =
            crate::stored_record::parse_stored_owned(record, &format_args!("seq {}", row.seq))?;
        columns.push(row.seq, row.ingest_time_ms, &parsed)?;
        Ok(parsed.json.into_bytes())
    };
    let blocks = std::sync::Mutex::new(RecordBlocks::new(dictionary, blocks::Effort::Segment, out));
    // Batches handed to the second thread and not yet written.
    let queued = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let (to_helper, batches) =
            std::sync::mpsc::sync_channel::<Vec<Vec<u8>>>(PIPELINE_BATCHES_QUEUED);
        let (blocks, queued) = (&blocks, &queued);
        let helper = std::thread::Builder::new()
            .name("store-blocks".into())
            .spawn_scoped(scope, move || {
                for batch in batches {
                    let written = lock_blocks(blocks).push_batch(&batch);
                    queued.fetch_sub(1, std::sync::atomic::Ordering::Release);
                    written?;
                }
                Ok::<(), StoreError>(())
            })
            .map_err(|error| StoreError::io(Path::new("<segment blocks thread>"), error))?;
        let mut read_all = || -> Result<(), StoreError> {
            let mut batch = Vec::with_capacity(PIPELINE_BATCH_ROWS);
            let last = order.input_rows.len().saturating_sub(1);
            for (segment_row, &input_row) in order.input_rows.iter().enumerate() {
                batch.push(read_row(input_row)?);
                if batch.len() < PIPELINE_BATCH_ROWS && segment_row != last {
                    continue;
                }
                let full = std::mem::replace(&mut batch, Vec::with_capacity(PIPELINE_BATCH_ROWS));
                let helper_busy = queued.load(std::sync::atomic::Ordering::Acquire) > 0;
                if helper_busy || second_thread.wanted() {
                    second_thread.used(full.len());
                    queued.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                    if to_helper.send(full).is_err() {
                        // The second thread stopped on an error, reported below.
                        return Ok(());
                    }
                } else {
                    lock_blocks(blocks).push_batch(&full)?;
                }
            }
            Ok(())
        };
        let read = read_all();
        drop(to_helper);
        let helped = helper.join().map_err(|_| {
            StoreError::corrupt(
                "segment",
                segment_path.display().to_string(),
                "the thread writing its record blocks panicked".to_string(),
            )
        })?;
        // The second thread's own error first: it is why reading stopped early.
        helped?;
        read
    })?;
    let blocks = blocks
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    debug_assert_eq!(blocks.next_row as usize, order.input_rows.len());
    let block_table = blocks.finish()?;
    match columns {
        Columns::FromRecords(columns) => columns.finish()?,
        Columns::Made(columns, path) => columns.write_file(&path)?,
    }
    Ok(block_table)
}

/// A segment's columns: a head's, made as its rows arrived (and the path they go to), or
/// made during the build.
enum Columns {
    Made(HeadColumns, PathBuf),
    FromRecords(crate::columns::ColumnsWriter),
}

fn lock_blocks<'m, 'd, 'o, 'p>(
    blocks: &'m std::sync::Mutex<RecordBlocks<'d, 'o, 'p>>,
) -> std::sync::MutexGuard<'m, RecordBlocks<'d, 'o, 'p>> {
    blocks
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Rows handed to the second thread at a time, and how many such batches may wait for
/// it: per-row hand-offs would cost a wake-up each.
const PIPELINE_BATCH_ROWS: usize = 64;
const PIPELINE_BATCHES_QUEUED: usize = 8;

/// A segment's record blocks as they are written: the encoder, the file, the block table
/// and the segment row the next record takes.
struct RecordBlocks<'d, 'o, 'p> {
    encoder: BlockEncoder<'d>,
    out: &'o mut CountingWriter<'p>,
    block_first_rows: Vec<u32>,
    block_table: Vec<u8>,
    next_row: u32,
}

impl<'d, 'o, 'p> RecordBlocks<'d, 'o, 'p> {
    fn new(
        dictionary: Option<&'d Dictionary>,
        effort: blocks::Effort,
        out: &'o mut CountingWriter<'p>,
    ) -> RecordBlocks<'d, 'o, 'p> {
        RecordBlocks {
            encoder: BlockEncoder::new(dictionary, effort),
            out,
            block_first_rows: Vec::new(),
            block_table: Vec::new(),
            next_row: 0,
        }
    }

    /// Adds the next rows' records, writing any block they fill.
    fn push_batch(&mut self, records: &[Vec<u8>]) -> Result<(), StoreError> {
        for record in records {
            let (_, index) = self.encoder.push(record)?;
            if index == 0 {
                self.block_first_rows.push(self.next_row);
            }
            self.next_row += 1;
            let finished = self.encoder.take_finished();
            write_blocks(
                self.out,
                finished,
                &self.block_first_rows,
                &mut self.block_table,
            )?;
        }
        Ok(())
    }

    /// Writes the last block; returns the block table.
    fn finish(self) -> Result<Vec<u8>, StoreError> {
        let RecordBlocks {
            encoder,
            out,
            block_first_rows,
            mut block_table,
            ..
        } = self;
        write_blocks(out, encoder.finish()?, &block_first_rows, &mut block_table)?;
        Ok(block_table)
    }
}

/// Writes finished blocks, adding each to the block table with the row it starts at.
fn write_blocks(
    out: &mut CountingWriter<'_>,
    finished: Vec<blocks::EncodedBlock>,
    block_first_rows: &[u32],
    block_table: &mut Vec<u8>,
) -> Result<(), StoreError> {
    for block in finished {
        let first_row = block_first_rows[block_table.len() / BLOCK_ENTRY_LEN];
        write_block(out, &block, first_row, block_table)?;
    }
    Ok(())
}

/// The seq range, row count, time bounds and scopes.
fn meta_section(input: &SegmentInput) -> Vec<u8> {
    let mut meta = Vec::new();
    meta.put_u64(input.covers_first);
    meta.put_u64(input.covers_last);
    meta.put_u32(input.rows.len() as u32);
    let times = || input.rows.iter().map(|row| row.event_time_ms);
    let ingests = || input.rows.iter().map(|row| row.ingest_time_ms);
    meta.put_i64(times().min().unwrap_or(0));
    meta.put_i64(times().max().unwrap_or(0));
    meta.put_i64(ingests().min().unwrap_or(0));
    meta.put_i64(ingests().max().unwrap_or(0));
    meta.put_varint(input.scopes.len() as u64);
    for scope in &input.scopes {
        meta.put_bytes(scope.account_id.as_bytes());
        meta.put_bytes(scope.region.as_bytes());
        meta.put_u8(scope.lane as u8);
    }
    meta
}

/// seq → row (packed; `NO_ROW` for a seq the segment covers but holds no event of), and
/// the runs of equal ingest time in seq order.
fn seq_sections(input: &SegmentInput, order: &RowOrder) -> (Vec<u8>, Vec<u8>) {
    let span = (input.covers_last + 1 - input.covers_first) as usize;
    let mut row_of_seq = vec![NO_ROW; span];
    let mut by_seq: Vec<u32> = (0..input.rows.len() as u32).collect();
    by_seq.sort_unstable_by_key(|&input_row| input.rows[input_row as usize].seq);
    let mut runs = Vec::new();
    let mut last_ingest = None;
    for &input_row in &by_seq {
        let row = &input.rows[input_row as usize];
        let offset = (row.seq - input.covers_first) as usize;
        row_of_seq[offset] = i64::from(order.segment_row_of_input[input_row as usize]);
        if last_ingest != Some(row.ingest_time_ms) {
            runs.put_u32(offset as u32);
            runs.put_i64(row.ingest_time_ms);
            last_ingest = Some(row.ingest_time_ms);
        }
    }
    (packed::encode(&row_of_seq), runs)
}

/// The term table (sorted terms, each with its postings' offset) and the postings.
fn postings_sections(
    path: &Path,
    input: &SegmentInput,
    order: &RowOrder,
) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
    let keys = TermKeys::Fingerprints;
    let mut terms: Vec<(u64, &Vec<u32>)> = input
        .terms
        .iter()
        .map(|(term, rows)| (keys.key(*term), rows))
        .collect();
    terms.sort_unstable_by_key(|(key, _)| *key);
    let mut term_table = Vec::with_capacity(terms.len() * keys.entry_len());
    let mut postings_section = Vec::new();
    let mut mapped = Vec::new();
    // Terms that share a fingerprint become one list.
    for same_key in terms.chunk_by(|left, right| left.0 == right.0) {
        mapped.clear();
        for (_, input_rows) in same_key {
            mapped.extend(
                input_rows
                    .iter()
                    .map(|&input_row| order.segment_row_of_input[input_row as usize]),
            );
        }
        mapped.sort_unstable();
        mapped.dedup();
        term_table.put_u32(same_key[0].0 as u32);
        match mapped[..] {
            [only] if only < ONLY_ROW => term_table.put_u32(only | ONLY_ROW),
            _ => {
                let offset = u32::try_from(postings_section.len())
                    .ok()
                    .filter(|offset| *offset < ONLY_ROW)
                    .ok_or_else(|| {
                        StoreError::corrupt(
                            "segment",
                            path.display().to_string(),
                            "postings past 2 GiB: segment_events_max is too large",
                        )
                    })?;
                term_table.put_u32(offset);
                postings::encode(&mapped, &mut postings_section);
            }
        }
    }
    Ok((term_table, postings_section))
}

/// The id table (sorted id fingerprints, each with its row) and its Bloom filter.
fn id_sections(input: &SegmentInput, order: &RowOrder) -> (Vec<u8>, Vec<u8>) {
    let keys = IdKeys::PackedFingerprints;
    let mut ids: Vec<(u32, u32)> = input
        .rows
        .iter()
        .enumerate()
        .map(|(input_row, row)| {
            (
                keys.key(row.id_hash) as u32,
                order.segment_row_of_input[input_row],
            )
        })
        .collect();
    ids.sort_unstable();
    let ids_section = crate::id_table::encode(&ids, input.rows.len() as u32);
    let bloom = crate::bloom::build_split_block(
        ids.iter()
            .map(|(fingerprint, _)| keys.bloom_key(u64::from(*fingerprint))),
    );
    (ids_section, bloom)
}

/// A segment damage report: the file and the byte offset where it was found.
fn corrupt_at(path: &Path, offset: usize, detail: String) -> StoreError {
    StoreError::corrupt(
        "segment",
        format!("{} at byte {offset}", path.display()),
        detail,
    )
}

/// Checks the magic numbers and the section table at the end of a segment, and every
/// section's CRC; returns where each section lies.
fn section_table(map: &[u8], path: &Path) -> Result<[Range<usize>; SECTION_COUNT], StoreError> {
    let corrupt = |offset: usize, detail: String| corrupt_at(path, offset, detail);
    let len = map.len();
    if len < HEAD_MAGIC.len() + 12
        || ![
            HEAD_MAGIC,
            HEAD_MAGIC_CLASSIC_BLOOM,
            HEAD_MAGIC_ROW_ORDERED,
            HEAD_MAGIC_HASH_TERMS,
            HEAD_MAGIC_HASH_IDS,
            HEAD_MAGIC_BEFORE_BITMAPS,
        ]
        .iter()
        .any(|magic| &map[..8] == magic.as_slice())
        || &map[len - 8..] != TAIL_MAGIC
    {
        return Err(corrupt(
            0,
            "missing segment magic (not a segment, or cut short)".into(),
        ));
    }
    let table_len =
        u32::from_le_bytes(map[len - 12..len - 8].try_into().unwrap_or_default()) as usize;
    let count = section_count(&map[..8]);
    if table_len != count * 20 || table_len + 12 > len {
        return Err(corrupt(
            len - 12,
            format!("section table of {table_len} bytes"),
        ));
    }
    let table_start = len - 12 - table_len;
    let mut reader = ByteReader::new(&map[table_start..len - 12]);
    // Sections an older format lacks stay empty.
    let mut sections: [Range<usize>; SECTION_COUNT] = std::array::from_fn(|_| 0..0);
    for (index, section) in sections.iter_mut().take(count).enumerate() {
        let entry = table_start + index * 20;
        let (Ok(offset), Ok(section_len), Ok(crc)) = (reader.u64(), reader.u64(), reader.u32())
        else {
            return Err(corrupt(entry, "section table cut short".into()));
        };
        let (offset, section_len) = (offset as usize, section_len as usize);
        let end = offset
            .checked_add(section_len)
            .filter(|end| *end <= table_start);
        let Some(end) = end else {
            return Err(corrupt(
                entry,
                format!("section {index} lies outside the file"),
            ));
        };
        if crc32fast::hash(&map[offset..end]) != crc {
            return Err(corrupt(
                offset,
                format!("section {index} fails its checksum"),
            ));
        }
        *section = offset..end;
    }
    Ok(sections)
}

/// The meta section: the seq range, row count, time bounds and scopes.
struct SegmentMeta {
    covers_first: u64,
    covers_last: u64,
    rows: u32,
    min_time_ms: i64,
    max_time_ms: i64,
    max_ingest_ms: i64,
    scopes: Vec<Scope>,
    /// The zstd level the settler recompressed the blocks at; 0 until it has.
    settled_level: u8,
}

impl SegmentMeta {
    /// Reads what [`meta_section`] wrote; an error means the section was cut short.
    fn read(bytes: &[u8]) -> Result<SegmentMeta, crate::codec::Truncated> {
        let mut meta = ByteReader::new(bytes);
        let covers_first = meta.u64()?;
        let covers_last = meta.u64()?;
        let rows = meta.u32()?;
        let min_time_ms = meta.i64()?;
        let max_time_ms = meta.i64()?;
        // The oldest ingest time: the ingest runs answer it, so it is only skipped here.
        let _min_ingest_ms = meta.i64()?;
        let max_ingest_ms = meta.i64()?;
        let scope_count = meta.varint()?;
        let mut scopes = Vec::new();
        for _ in 0..scope_count {
            let account = meta.bytes()?;
            let region = meta.bytes()?;
            let lane = match meta.u8()? {
                1 => EventLane::Insight,
                _ => EventLane::Standard,
            };
            scopes.push(Scope {
                account_id: String::from_utf8_lossy(account).into_owned(),
                region: String::from_utf8_lossy(region).into_owned(),
                lane,
            });
        }
        // Absent in segments the settler has not rewritten (and in older releases').
        let settled_level = meta.u8().unwrap_or(0);
        Ok(SegmentMeta {
            covers_first,
            covers_last,
            rows,
            min_time_ms,
            max_time_ms,
            max_ingest_ms,
            scopes,
            settled_level,
        })
    }
}

fn write_block(
    out: &mut CountingWriter<'_>,
    block: &blocks::EncodedBlock,
    first_row: u32,
    table: &mut Vec<u8>,
) -> Result<(), StoreError> {
    table.put_u64(out.written);
    table.put_u32(block.bytes.len() as u32);
    table.put_u32(block.raw_len);
    table.put_u32(first_row);
    table.put_u32(crc32fast::hash(&block.bytes));
    out.write(&block.bytes)
}

struct CountingWriter<'p> {
    inner: BufWriter<File>,
    written: u64,
    path: &'p Path,
}

impl<'p> CountingWriter<'p> {
    fn create(path: &'p Path) -> Result<CountingWriter<'p>, StoreError> {
        let file = File::create(path).map_err(|error| StoreError::io(path, error))?;
        Ok(CountingWriter {
            inner: BufWriter::with_capacity(1 << 20, file),
            written: 0,
            path,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.inner
            .write_all(bytes)
            .map_err(|error| StoreError::io(self.path, error))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn section(
        &mut self,
        bytes: &[u8],
        sections: &mut Vec<(u64, u64, u32)>,
    ) -> Result<(), StoreError> {
        sections.push((self.written, bytes.len() as u64, crc32fast::hash(bytes)));
        self.write(bytes)
    }

    /// The section table and the tail magic, after every section.
    fn finish_table(&mut self, sections: &[(u64, u64, u32)]) -> Result<(), StoreError> {
        let mut table = Vec::with_capacity(sections.len() * 20 + 12);
        for (offset, len, crc) in sections {
            table.put_u64(*offset);
            table.put_u64(*len);
            table.put_u32(*crc);
        }
        table.put_u32((sections.len() * 20) as u32);
        table.extend_from_slice(TAIL_MAGIC);
        self.write(&table)
    }
}

/// An open segment: its file mapped into memory, sections checked.
pub(crate) struct Segment {
    pub path: PathBuf,
    /// A process-wide id for the block cache.
    pub id: u64,
    map: memmap2::Mmap,
    /// The same file, for reading record blocks.
    file: File,
    sections: [Range<usize>; SECTION_COUNT],
    pub covers_first: u64,
    pub covers_last: u64,
    pub rows: u32,
    pub min_time_ms: i64,
    pub max_time_ms: i64,
    pub max_ingest_ms: i64,
    pub scopes: Vec<Scope>,
    settled_level: u8,
    dictionary_id: u32,
    id_keys: IdKeys,
    term_keys: TermKeys,
    /// Whether the Bloom filter is split-block (`OTSEG008`) or classic.
    split_block_bloom: bool,
}

impl Segment {
    /// Opens a segment and checks every section's CRC.
    pub(crate) fn open(
        path: &Path,
        id: u64,
        dictionaries: &Dictionaries,
    ) -> Result<Segment, StoreError> {
        let file = File::open(path).map_err(|error| StoreError::io(path, error))?;
        // SAFETY: segment files are immutable once renamed into place; nothing in this
        // process writes to them, and the store's lock keeps other OpenTrail processes out.
        #[allow(unsafe_code)]
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|error| StoreError::io(path, error))?;
        let corrupt = |offset: usize, detail: String| corrupt_at(path, offset, detail);
        let sections = section_table(&map, path)?;
        let id_keys = IdKeys::of_magic(&map[..8]);
        let term_keys = TermKeys::of_magic(&map[..8]);
        let split_block_bloom = &map[..8] == HEAD_MAGIC.as_slice();
        let meta_range = sections[Section::Meta as usize].clone();
        let SegmentMeta {
            covers_first,
            covers_last,
            rows,
            min_time_ms,
            max_time_ms,
            max_ingest_ms,
            scopes,
            settled_level,
        } = SegmentMeta::read(&map[meta_range.clone()])
            .map_err(|_| corrupt(meta_range.start, "meta section cut short".into()))?;
        let dictionary_bytes = &map[sections[Section::Dictionary as usize].clone()];
        let dictionary_id = if dictionary_bytes.is_empty() {
            blocks::NO_DICTIONARY
        } else {
            let dictionary = Arc::new(Dictionary::new(dictionary_bytes.to_vec()));
            let id = dictionary.id;
            dictionaries.register(dictionary);
            id
        };
        let segment = Segment {
            path: path.to_path_buf(),
            id,
            map,
            file,
            sections,
            covers_first,
            covers_last,
            rows,
            min_time_ms,
            max_time_ms,
            max_ingest_ms,
            scopes,
            settled_level,
            dictionary_id,
            id_keys,
            term_keys,
            split_block_bloom,
        };
        segment.check_section_lengths()?;
        // Checking the CRCs brought every index page into this process's resident set;
        // lookups need a few of them. Drop them from the mapping (they stay in the page
        // cache), or RSS would count every segment ever opened: 1 GB of a 2 GB peak during
        // a 10M ingest.
        segment.release_pages();
        Ok(segment)
    }

    /// The id table and the packed columns hold as many entries as the meta section says,
    /// and the term table whole entries.
    fn check_section_lengths(&self) -> Result<(), StoreError> {
        let terms_bytes = self.section(Section::Terms).len();
        if !terms_bytes.is_multiple_of(self.term_keys.entry_len()) {
            return Err(corrupt_at(
                &self.path,
                self.sections[Section::Terms as usize].start,
                format!(
                    "term table of {terms_bytes} bytes, not a whole number of {}-byte entries",
                    self.term_keys.entry_len()
                ),
            ));
        }
        let ids = self.section(Section::Ids);
        let ids_fit = match self.id_keys.entry_len() {
            Some(entry_len) => ids.len() == self.rows as usize * entry_len,
            None => PackedIds::parse(ids, self.rows as usize).is_some(),
        };
        if !ids_fit {
            return Err(corrupt_at(
                &self.path,
                self.sections[Section::Ids as usize].start,
                format!(
                    "id table of {} bytes does not fit {} rows",
                    ids.len(),
                    self.rows
                ),
            ));
        }
        let span = self
            .covers_last
            .saturating_add(1)
            .saturating_sub(self.covers_first) as usize;
        let mut columns = vec![
            (Section::Times, self.rows as usize),
            (Section::Seqs, self.rows as usize),
            (Section::RowOfSeq, span),
        ];
        if self.keeps_journal_blocks() {
            columns.push((Section::RecordOfRow, self.rows as usize));
        }
        for (section, values) in columns {
            let found = Packed::parse(self.section(section)).map(|column| column.len());
            if found != Some(values) {
                return Err(corrupt_at(
                    &self.path,
                    self.sections[section as usize].start,
                    format!("column {section:?} holds {found:?} values, expected {values}"),
                ));
            }
        }
        Ok(())
    }

    /// Drops this segment's pages from the process's mapping after a pass that read much
    /// of it (opening, merging). They stay in the page cache, and fault back in when read.
    #[allow(unsafe_code)] // madvise on our own read-only mapping; see SAFETY below.
    pub(crate) fn release_pages(&self) {
        // SAFETY: the mapping is read-only and the file immutable, so the dropped pages
        // read back unchanged from the file.
        if let Err(error) = unsafe {
            self.map
                .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
        } {
            tracing::debug!(%error, path = %self.path.display(), "madvise(DONTNEED) failed");
        }
    }

    /// Bytes of this segment's mapping present in the process's page tables: index pages
    /// lookups faulted in, which count in its RSS until released. Read from
    /// `/proc/self/pagemap` (`pagemap` opened once by the caller); 0 where that fails.
    #[cfg(target_os = "linux")]
    pub(crate) fn mapped_resident_bytes(&self, pagemap: &File) -> u64 {
        use std::os::unix::fs::FileExt;
        // Bit 63 of a pagemap entry: the page is present (readable without privileges).
        const PRESENT: u64 = 1 << 63;
        const ENTRY_LEN: usize = 8;
        // SAFETY: sysconf has no preconditions.
        #[allow(unsafe_code)]
        let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            page if page > 0 => page as usize,
            _ => return 0,
        };
        let first_page = self.map.as_ptr() as usize / page;
        let pages = self.map.len().div_ceil(page);
        let mut entries = vec![0u8; pages * ENTRY_LEN];
        if pagemap
            .read_exact_at(&mut entries, (first_page * ENTRY_LEN) as u64)
            .is_err()
        {
            return 0;
        }
        let present = entries
            .chunks_exact(ENTRY_LEN)
            .filter(|entry| {
                let entry: [u8; ENTRY_LEN] = (*entry).try_into().unwrap_or_default();
                u64::from_ne_bytes(entry) & PRESENT != 0
            })
            .count();
        (present * page) as u64
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn mapped_resident_bytes(&self, _pagemap: &File) -> u64 {
        0
    }

    /// Adds this segment's bytes, split by what they hold, to `space` (columns aside).
    pub(crate) fn add_space(&self, space: &mut crate::values::SpaceByPart) {
        let len = |section: Section| self.sections[section as usize].len() as u64;
        let blocks = self.sections[Section::Meta as usize].start - HEAD_MAGIC.len();
        space.records += blocks as u64
            + len(Section::BlockTable)
            + len(Section::Dictionary)
            + len(Section::RecordOfRow);
        space.postings += len(Section::Terms) + len(Section::Postings);
        space.ids += len(Section::Ids) + len(Section::Bloom);
        let framing = self.map.len() as u64
            - blocks as u64
            - self
                .sections
                .iter()
                .map(|range| range.len() as u64)
                .sum::<u64>();
        space.positions += len(Section::Meta)
            + len(Section::Times)
            + len(Section::Seqs)
            + len(Section::RowOfSeq)
            + len(Section::IngestRuns)
            + framing;
    }

    fn section(&self, section: Section) -> &[u8] {
        &self.map[self.sections[section as usize].clone()]
    }

    /// Whether the blocks are the journal's, as a seal kept them (until the settler
    /// rewrites them in row order).
    pub(crate) fn keeps_journal_blocks(&self) -> bool {
        !self.section(Section::RecordOfRow).is_empty()
    }

    /// The number of a row's record in the blocks, counted from the first block's first:
    /// the row itself, unless the blocks are the journal's.
    pub(crate) fn record_number(&self, row: u32) -> Option<u32> {
        if row >= self.rows {
            return None;
        }
        if !self.keeps_journal_blocks() {
            return Some(row);
        }
        self.column(Section::RecordOfRow)
            .and_then(|records| records.get(row as usize))
            .and_then(|number| u32::try_from(number).ok())
    }

    /// Whether the settler has recompressed this segment's blocks at its level.
    pub(crate) fn is_settled(&self) -> bool {
        i32::from(self.settled_level) >= blocks::Effort::Settled.level()
    }

    pub(crate) fn dictionary(&self, dictionaries: &Dictionaries) -> Option<Arc<Dictionary>> {
        dictionaries.get(self.dictionary_id)
    }

    /// A column section, checked at open to parse with the right length.
    fn column(&self, section: Section) -> Option<Packed<'_>> {
        Packed::parse(self.section(section))
    }

    pub(crate) fn position(&self, row: u32) -> Position {
        let time = self
            .column(Section::Times)
            .and_then(|times| times.get(row as usize));
        let seq_offset = self
            .column(Section::Seqs)
            .and_then(|seqs| seqs.get(row as usize));
        Position {
            event_time_ms: time.unwrap_or(i64::MIN),
            seq: self.covers_first
                + seq_offset
                    .and_then(|offset| u64::try_from(offset).ok())
                    .unwrap_or(0),
        }
    }

    pub(crate) fn seq(&self, row: u32) -> u64 {
        self.position(row).seq
    }

    /// The ingest time of the event at `seq`.
    pub(crate) fn ingest_time_ms(&self, seq: u64) -> i64 {
        let offset = seq.saturating_sub(self.covers_first) as u32;
        // The last run starting at or before the offset.
        let after = self.count_runs_while(|start, _| start <= offset);
        self.run(after.saturating_sub(1))
            .map_or(self.max_ingest_ms, |(_, ingest)| ingest)
    }

    /// The newest seq this segment holds that was ingested before `cutoff_ms`.
    pub(crate) fn last_seq_ingested_before(&self, cutoff_ms: i64) -> Option<u64> {
        // Ingest times never decrease with seq: the runs before the cutoff are a prefix.
        let expired_runs = self.count_runs_while(|_, ingest| ingest < cutoff_ms);
        if expired_runs == 0 {
            return None;
        }
        match self.run(expired_runs) {
            Some((next_start, _)) => Some(self.covers_first + u64::from(next_start) - 1),
            None => Some(self.covers_last),
        }
    }

    /// Ingest run `index`: (seq − covers_first where it starts, its ingest time).
    fn run(&self, index: usize) -> Option<(u32, i64)> {
        let entry = self
            .section(Section::IngestRuns)
            .get(index * RUN_ENTRY_LEN..(index + 1) * RUN_ENTRY_LEN)?;
        Some((u32_at(entry, 0)?, i64_at(&entry[4..], 0)?))
    }

    /// How many leading runs satisfy `holds`, which must be true for a prefix of them.
    fn count_runs_while(&self, holds: impl Fn(u32, i64) -> bool) -> usize {
        let (mut low, mut high) = (0, self.section(Section::IngestRuns).len() / RUN_ENTRY_LEN);
        while low < high {
            let middle = (low + high) / 2;
            match self.run(middle) {
                Some((start, ingest)) if holds(start, ingest) => low = middle + 1,
                _ => high = middle,
            }
        }
        low
    }

    pub(crate) fn row_of_seq(&self, seq: u64) -> Option<u32> {
        let offset = usize::try_from(seq.checked_sub(self.covers_first)?).ok()?;
        self.column(Section::RowOfSeq)?
            .get(offset)
            .filter(|row| *row != NO_ROW)
            .and_then(|row| u32::try_from(row).ok())
    }

    /// The first row at or after `position` in newest-first order.
    pub(crate) fn first_row_from(&self, position: Position) -> u32 {
        let (mut low, mut high) = (0u32, self.rows);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.position(middle) < position {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }

    pub(crate) fn postings(&self, term: u64) -> Option<PostingsCursor<'_>> {
        let keys = self.term_keys;
        let table = self.section(Section::Terms);
        let count = table.len() / keys.entry_len();
        let key = keys.key(term);
        let (mut low, mut high) = (0usize, count);
        while low < high {
            let middle = (low + high) / 2;
            match keys.key_at(table, middle) {
                Some(found) if found < key => low = middle + 1,
                _ => high = middle,
            }
        }
        if low >= count || keys.key_at(table, low) != Some(key) {
            return None;
        }
        self.term_cursor(low)
    }

    /// The rows of the term table's entry at `index`.
    fn term_cursor(&self, index: usize) -> Option<PostingsCursor<'_>> {
        let keys = self.term_keys;
        let table = self.section(Section::Terms);
        let postings = self.section(Section::Postings);
        let start = match keys.rows_at(table, index)? {
            TermRows::Only(row) => return Some(PostingsCursor::only(row)),
            TermRows::Postings { offset } => offset,
        };
        // A list ends where the next entry's list starts; entries in between hold their
        // only row.
        let count = table.len() / keys.entry_len();
        let end = (index + 1..count)
            .find_map(|next| match keys.rows_at(table, next) {
                Some(TermRows::Postings { offset }) => Some(offset),
                _ => None,
            })
            .unwrap_or(postings.len());
        postings.get(start..end).map(PostingsCursor::new)
    }

    /// Every (term key, postings) pair, in key order: whole terms before `OTSEG006`,
    /// fingerprints since, which a new segment's table reduces to the same fingerprints.
    pub(crate) fn all_postings(&self) -> impl Iterator<Item = (u64, PostingsCursor<'_>)> + '_ {
        let keys = self.term_keys;
        let table = self.section(Section::Terms);
        (0..table.len() / keys.entry_len())
            .filter_map(move |index| Some((keys.key_at(table, index)?, self.term_cursor(index)?)))
    }

    /// Every (id key, row) pair: whole hashes before `OTSEG005`, fingerprints since, which
    /// a new segment's table reduces to the same fingerprints.
    pub(crate) fn id_entries(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        // One of the two is empty: a table is packed or of whole entries.
        let packed = self
            .packed_ids()
            .into_iter()
            .flat_map(PackedIds::entries)
            .map(|(fingerprint, row)| (u64::from(fingerprint), row));
        let whole = (0..self.whole_id_count()).filter_map(|index| self.id_entry(index));
        packed.chain(whole)
    }

    /// The Bloom key of every event's id, as a dedup group (`id_groups.rs`) holds them:
    /// `None` for a segment keyed by whole hashes, or whose id table does not list as many
    /// entries as the segment has rows (a group must hold every event it covers).
    pub(crate) fn id_group_keys(&self) -> Option<impl Iterator<Item = u64> + '_> {
        let keys = self.id_keys;
        let complete = match keys {
            IdKeys::Hashes => false,
            IdKeys::PackedFingerprints => self.packed_ids().is_some(),
            IdKeys::Fingerprints => self.whole_id_count() == self.rows as usize,
        };
        complete.then(|| self.id_entries().map(move |(key, _)| keys.bloom_key(key)))
    }

    /// The entries of an id table of whole entries (0 for a packed one).
    fn whole_id_count(&self) -> usize {
        self.id_keys
            .entry_len()
            .map_or(0, |entry_len| self.section(Section::Ids).len() / entry_len)
    }

    /// The packed id table, in a segment that has one.
    fn packed_ids(&self) -> Option<PackedIds<'_>> {
        if self.id_keys != IdKeys::PackedFingerprints {
            return None;
        }
        PackedIds::parse(self.section(Section::Ids), self.rows as usize)
    }

    /// The (key, row) of the entry at `index` of an id table of whole entries.
    fn id_entry(&self, index: usize) -> Option<(u64, u32)> {
        let entry_len = self.id_keys.entry_len()?;
        let entry = self
            .section(Section::Ids)
            .get(index * entry_len..(index + 1) * entry_len)?;
        let key = match self.id_keys {
            IdKeys::Hashes => u64_at(entry, 0)?,
            _ => u64::from(u32_at(entry, 0)?),
        };
        Some((key, u32_at(&entry[entry_len - 4..], 0)?))
    }

    /// Starts loading what [`Segment::may_contain_id`] will read for `probe`.
    pub(crate) fn prefetch_id(&self, probe: &IdProbe) {
        if self.split_block_bloom {
            crate::bloom::prefetch_split_block(self.section(Section::Bloom), probe.fingerprint_key);
        }
    }

    pub(crate) fn may_contain_id(&self, probe: &IdProbe) -> bool {
        let filter = self.section(Section::Bloom);
        match (self.id_keys, self.split_block_bloom) {
            (IdKeys::Hashes, _) => crate::bloom::may_contain(filter, probe.hash),
            (_, true) => crate::bloom::may_contain_split_block(filter, probe.fingerprint_key),
            (_, false) => crate::bloom::may_contain(filter, probe.fingerprint_key),
        }
    }

    /// Rows whose id hash (or fingerprint) is `id_hash`'s (to be confirmed against their
    /// records).
    pub(crate) fn rows_with_id(&self, id_hash: u64) -> Vec<u32> {
        let key = self.id_keys.key(id_hash);
        if self.id_keys == IdKeys::PackedFingerprints {
            return self
                .packed_ids()
                .map_or_else(Vec::new, |ids| ids.rows_with(key as u32));
        }
        let count = self.whole_id_count();
        let key_at = |index: usize| self.id_entry(index).map_or(u64::MAX, |(key, _)| key);
        let (mut low, mut high) = (0usize, count);
        while low < high {
            let middle = (low + high) / 2;
            if key_at(middle) < key {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        (low..count)
            .map_while(|index| self.id_entry(index).filter(|(found, _)| *found == key))
            .map(|(_, row)| row)
            .collect()
    }

    pub(crate) fn block_count(&self) -> usize {
        self.section(Section::BlockTable).len() / BLOCK_ENTRY_LEN
    }

    /// (block, index within it) of a row.
    pub(crate) fn block_of_row(&self, row: u32) -> Option<(u32, u32)> {
        let record = self.record_number(row)?;
        let count = self.block_count();
        let table = self.section(Section::BlockTable);
        // The number of a block's first record (its first row, in row-ordered blocks).
        let first_record_of =
            |block: usize| u32_at(&table[block * BLOCK_ENTRY_LEN + 16..], 0).unwrap_or(u32::MAX);
        let (mut low, mut high) = (0usize, count);
        while high - low > 1 {
            let middle = (low + high) / 2;
            if first_record_of(middle) <= record {
                low = middle;
            } else {
                high = middle;
            }
        }
        if count == 0 {
            return None;
        }
        Some((low as u32, record.checked_sub(first_record_of(low))?))
    }

    fn block_entry(&self, block: u32) -> Option<BlockEntry> {
        let table = self.section(Section::BlockTable);
        let entry = block as usize * BLOCK_ENTRY_LEN;
        let mut reader = ByteReader::new(table.get(entry..entry + BLOCK_ENTRY_LEN)?);
        let (Ok(offset), Ok(len), Ok(raw_len), Ok(first_row), Ok(crc)) = (
            reader.u64(),
            reader.u32(),
            reader.u32(),
            reader.u32(),
            reader.u32(),
        ) else {
            return None;
        };
        Some(BlockEntry {
            offset,
            len,
            raw_len,
            first_row,
            crc,
        })
    }

    /// Starts reading a block from disk without waiting for it: a page's blocks are read
    /// one after another by `pread`, and on a cold cache each would otherwise wait for
    /// the disk in turn. A hint only; errors are of no consequence.
    pub(crate) fn prefetch_block(&self, block: u32) {
        if let Some(entry) = self.block_entry(block)
            && entry.offset as usize + entry.len as usize <= self.map.len()
        {
            let _ = self.map.advise_range(
                memmap2::Advice::WillNeed,
                entry.offset as usize,
                entry.len as usize,
            );
        }
    }

    /// Reads, checks and decompresses one block.
    pub(crate) fn decode_block(
        &self,
        block: u32,
        dictionaries: &Dictionaries,
    ) -> Result<DecodedBlock, StoreError> {
        let location = || format!("{} block {block}", self.path.display());
        let Some(BlockEntry {
            offset,
            len,
            raw_len,
            crc,
            ..
        }) = self.block_entry(block)
        else {
            return Err(StoreError::corrupt("segment", location(), "no such block"));
        };
        let range = offset as usize..offset as usize + len as usize;
        if range.end > self.map.len() {
            return Err(StoreError::corrupt(
                "segment",
                location(),
                "block lies outside the file",
            ));
        }
        // Read, not mapped: consumers read every block of the log once, and mapped pages
        // would all stay in the process's resident set (2 GB of segments during a 10M
        // ingest, read by the archive consumer). The index sections stay mapped.
        let mut bytes = vec![0u8; range.len()];
        std::os::unix::fs::FileExt::read_exact_at(&self.file, &mut bytes, offset)
            .map_err(|error| StoreError::io(&self.path, error))?;
        let bytes = bytes.as_slice();
        if crc32fast::hash(bytes) != crc {
            return Err(StoreError::corrupt(
                "segment",
                format!(
                    "{} at byte {} (block {block})",
                    self.path.display(),
                    range.start
                ),
                "record block fails its checksum",
            ));
        }
        blocks::decode_block(dictionaries, self.dictionary_id, raw_len, bytes, &location)
    }
}

/// One entry of a segment's block table.
struct BlockEntry {
    offset: u64,
    len: u32,
    raw_len: u32,
    first_row: u32,
    crc: u32,
}

/// Row candidates of one segment for a lookup: up to `limit` rows matching every term,
/// within `bounds`, accepted by `visible`, newest first.
pub(crate) fn top_matches(
    segment: &Segment,
    terms: &[u64],
    bounds: &PositionBounds,
    limit: usize,
    visible: &dyn Fn(u32, Position) -> bool,
) -> Vec<(Position, u32)> {
    let mut cursors: Vec<PostingsCursor<'_>> = Vec::with_capacity(terms.len());
    for term in terms {
        match segment.postings(*term) {
            Some(cursor) => cursors.push(cursor),
            None => return Vec::new(),
        }
    }
    cursors.sort_by_key(|cursor| cursor.len());
    let mut found = Vec::new();
    let mut candidate = segment.first_row_from(bounds.first);
    'rows: while found.len() < limit && candidate < segment.rows {
        // Leapfrog: every cursor moves to the candidate or past it.
        let mut agreeing = 0;
        let mut turn = 0;
        while agreeing < cursors.len() {
            let Some(row) = cursors[turn].seek(candidate) else {
                break 'rows;
            };
            if row == candidate {
                agreeing += 1;
            } else {
                candidate = row;
                agreeing = 1;
            }
            turn = (turn + 1) % cursors.len();
        }
        if candidate >= segment.rows {
            break;
        }
        let position = segment.position(candidate);
        if position > bounds.last {
            break;
        }
        if visible(candidate, position) {
            found.push((position, candidate));
        }
        candidate += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use opentrail_event::{EventRecord, FilterField, IngestContext, parse_batch};

    use crate::{AppendOutcome, EventLane, LookupQuery, Store, StoreOptions};

    const ACCOUNT: &str = "111122223333";

    /// Two values whose hashes share their low 32 bits, the fingerprint a segment keeps
    /// (a birthday search: about 80k tries).
    fn two_with_one_fingerprint(prefix: &str, hash: impl Fn(&str) -> u64) -> (String, String) {
        let mut seen: HashMap<u32, String> = HashMap::new();
        let mut n = 0u64;
        loop {
            let value = format!("{prefix}{n}");
            if let Some(other) = seen.insert(hash(&value) as u32, value.clone()) {
                return (other, value);
            }
            n += 1;
        }
    }

    /// A store that merges and settles only when told to.
    fn store_without_background_work(dir: &std::path::Path) -> Store {
        let options = StoreOptions {
            merge_events_below: 0,
            settle: false,
            ..StoreOptions::default()
        };
        Store::open(dir, options).expect("store opens")
    }

    fn record(event_id: &str) -> Vec<EventRecord> {
        named_record(event_id, "GetObject")
    }

    fn named_record(event_id: &str, event_name: &str) -> Vec<EventRecord> {
        let json = format!(
            r#"{{"eventVersion":"1.08","eventID":"{event_id}","eventName":"{event_name}","eventSource":"s3.amazonaws.com","eventTime":"2024-05-01T10:00:00Z","awsRegion":"us-east-1","recipientAccountId":"{ACCOUNT}"}}"#
        );
        let context = IngestContext {
            account_id: ACCOUNT.into(),
            region: "us-east-1".into(),
        };
        let batch = parse_batch(json.as_bytes(), &context).expect("parses");
        batch
            .records
            .into_iter()
            .map(|(_, record)| record)
            .collect()
    }

    fn found_id(store: &Store, event_id: &str) -> Option<String> {
        store
            .get_event(ACCOUNT, event_id)
            .expect("get_event")
            .map(|event| event.record.event_id)
    }

    #[test]
    fn ids_that_share_a_fingerprint_are_told_apart_by_their_records() {
        let (first, second) =
            two_with_one_fingerprint("collide-", |id| crate::terms::id_hash(ACCOUNT, id));
        assert_ne!(
            crate::terms::id_hash(ACCOUNT, &first),
            crate::terms::id_hash(ACCOUNT, &second)
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store_without_background_work(dir.path());
        store.append(record(&first)).expect("append");
        store.flush_tables().expect("seal");

        // The segment's fingerprint matches; the record it points at does not.
        assert_eq!(found_id(&store, &second), None);
        let outcomes = store.append(record(&second)).expect("append");
        assert!(matches!(outcomes[..], [AppendOutcome::Stored { .. }]));
        store.flush_tables().expect("seal");
        store.compact().expect("merge");

        // One segment now holds both under the same fingerprint.
        assert_eq!(store.stats().expect("stats").segments, 1);
        assert_eq!(found_id(&store, &first), Some(first.clone()));
        assert_eq!(found_id(&store, &second), Some(second.clone()));
        for id in [&first, &second] {
            let outcomes = store.append(record(id)).expect("append");
            assert!(matches!(outcomes[..], [AppendOutcome::Duplicate { .. }]));
        }
    }

    /// The ids of every event named `event_name`, through LookupEvents' path.
    fn ids_named(store: &Store, event_name: &str) -> Vec<String> {
        let query = LookupQuery {
            account_id: Some(ACCOUNT.into()),
            region: Some("us-east-1".into()),
            lane: EventLane::Standard,
            filters: vec![(FilterField::EventName, event_name.into())],
            start_time_ms: None,
            end_time_ms: None,
            limit: 50,
            cursor: None,
        };
        let mut ids: Vec<String> = store
            .lookup(&query)
            .expect("lookup")
            .events
            .into_iter()
            .map(|event| event.record.event_id)
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn terms_that_share_a_fingerprint_are_told_apart_by_their_records() {
        let (first, second) = two_with_one_fingerprint("Collide", |name| {
            crate::terms::term(FilterField::EventName, name)
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store_without_background_work(dir.path());
        // One segment where each name has one row, the entry's own.
        store.append(named_record("a-1", &first)).expect("append");
        store.append(named_record("b-1", &second)).expect("append");
        store.flush_tables().expect("seal");
        assert_eq!(ids_named(&store, &first), ["a-1"]);
        assert_eq!(ids_named(&store, &second), ["b-1"]);

        // A second segment where the shared list has several rows, then both merged.
        for id in ["a-2", "a-3"] {
            store.append(named_record(id, &first)).expect("append");
        }
        store.append(named_record("b-2", &second)).expect("append");
        store.flush_tables().expect("seal");
        assert_eq!(ids_named(&store, &first), ["a-1", "a-2", "a-3"]);
        assert_eq!(ids_named(&store, &second), ["b-1", "b-2"]);
        store.compact().expect("merge");
        assert_eq!(store.stats().expect("stats").segments, 1);
        assert_eq!(ids_named(&store, &first), ["a-1", "a-2", "a-3"]);
        assert_eq!(ids_named(&store, &second), ["b-1", "b-2"]);
        assert!(ids_named(&store, "GetObject").is_empty());
    }

    /// Records held in memory, the way a head hands them to a seal.
    struct InMemoryRecords(Vec<String>);

    impl super::RecordSource for InMemoryRecords {
        fn record(&mut self, input_row: usize) -> Result<Vec<u8>, crate::StoreError> {
            Ok(self.0[input_row].clone().into_bytes())
        }
    }

    /// Builds one segment from `records` (seq 1 on, event times out of order) with
    /// `second_thread` and any `made_columns`; returns the segment file's and the columns
    /// file's bytes.
    fn built_files(
        dir: &std::path::Path,
        records: &[String],
        made_columns: Option<crate::columns::HeadColumns>,
        second_thread: &dyn super::SecondThread,
    ) -> (Vec<u8>, Vec<u8>) {
        let rows = (0..records.len())
            .map(|row| super::InputRow {
                seq: row as u64 + 1,
                // Newest first is not input order, so rows are reordered on the way.
                event_time_ms: 1_700_000_000_000 + ((row * 7_919) % records.len()) as i64,
                ingest_time_ms: 1_700_000_000_000 + row as i64,
                id_hash: crate::terms::id_hash(ACCOUNT, &format!("id-{row}")),
            })
            .collect();
        let input = super::SegmentInput {
            covers_first: 1,
            covers_last: records.len() as u64,
            rows,
            terms: vec![(42, (0..records.len() as u32).step_by(3).collect())],
            scopes: Default::default(),
        };
        let path = dir.join(super::file_name(1, records.len() as u64));
        let mut source = InMemoryRecords(records.to_vec());
        super::build(
            &path,
            &input,
            &mut source,
            made_columns,
            None,
            second_thread,
        )
        .expect("segment builds");
        let columns = crate::columns::path_for_segment(&path);
        (
            std::fs::read(&path).expect("segment file"),
            std::fs::read(&columns).expect("columns file"),
        )
    }

    /// Wants the second thread for runs of batches and not for others, as appends that
    /// wait and stop would.
    struct Intermittent {
        asked: std::cell::Cell<usize>,
        rows_used: std::cell::Cell<usize>,
    }

    impl super::SecondThread for Intermittent {
        fn wanted(&self) -> bool {
            let asked = self.asked.get();
            self.asked.set(asked + 1);
            (asked / 3) % 2 == 1
        }
        fn used(&self, rows: usize) {
            self.rows_used.set(self.rows_used.get() + rows);
        }
    }

    #[test]
    fn a_seal_writes_the_same_files_whichever_thread_writes_its_blocks() {
        // Enough records for a trained dictionary, many blocks and a partial last batch.
        let records: Vec<String> = (0..3_001)
            .map(|row| {
                let record = named_record(&format!("id-{row}"), &format!("Call{}", row % 37));
                record[0].json.clone()
            })
            .collect();
        let built = |second_thread: &dyn super::SecondThread| {
            let dir = tempfile::tempdir().expect("temp dir");
            built_files(dir.path(), &records, None, second_thread)
        };
        let on_one = built(&false);
        assert!(
            on_one.0.len() > crate::blocks::BLOCK_RAW_BYTES,
            "many blocks"
        );
        assert!(built(&true) == on_one, "all blocks on the second thread");
        let intermittent = Intermittent {
            asked: Default::default(),
            rows_used: Default::default(),
        };
        assert!(built(&intermittent) == on_one, "blocks on either thread");
        let rows_used = intermittent.rows_used.get();
        assert!(
            rows_used > 0 && rows_used < records.len(),
            "{rows_used} rows on the second thread"
        );
    }

    /// A record with every column filled, most of them varying with `row`.
    fn record_with_every_column(row: usize) -> EventRecord {
        let error = if row.is_multiple_of(5) {
            r#","errorCode":"AccessDenied""#
        } else {
            ""
        };
        let json = format!(
            r#"{{"eventVersion":"1.08","eventID":"id-{row}","eventName":"Call{name}","eventSource":"svc{source}.amazonaws.com","eventTime":"2024-05-01T10:{minute:02}:00Z","awsRegion":"us-east-{region}","recipientAccountId":"{ACCOUNT}","eventCategory":"Management","readOnly":{read_only},"sourceIPAddress":"10.0.0.{ip}","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::{ACCOUNT}:user/u{user}","userName":"u{user}","accessKeyId":"AKIA{user:016}","invokedBy":"svc{source}.amazonaws.com"}}{error}}}"#,
            name = row % 37,
            source = row % 3,
            minute = (row * 7) % 60,
            region = 1 + row % 2,
            read_only = row.is_multiple_of(2),
            ip = row % 250,
            user = row % 11,
        );
        let context = IngestContext {
            account_id: ACCOUNT.into(),
            region: "us-east-1".into(),
        };
        let mut batch = parse_batch(json.as_bytes(), &context).expect("parses");
        batch.records.remove(0).1
    }

    /// Every record of the log, as (seq, JSON), in seq order.
    fn whole_log(store: &Store) -> Vec<(u64, String)> {
        let mut log: Vec<(u64, String)> = Vec::new();
        loop {
            let after = log.last().map_or(0, |(seq, _)| *seq);
            let page = store.read_log(after, 1_000).expect("read_log");
            if page.is_empty() {
                return log;
            }
            log.extend(page.into_iter().map(|entry| (entry.seq, entry.json)));
        }
    }

    /// What a user reads back: the log, a page of every event name, and events by id.
    fn every_answer(store: &Store, rows: usize) -> (Vec<(u64, String)>, Vec<Vec<String>>) {
        let pages = (0..37)
            .map(|name| ids_named(store, &format!("Call{name}")))
            .collect();
        for row in (0..rows).step_by(97) {
            assert_eq!(
                found_id(store, &format!("id-{row}")),
                Some(format!("id-{row}"))
            );
        }
        (whole_log(store), pages)
    }

    #[test]
    fn a_seal_keeps_the_journal_blocks_and_the_settler_writes_them_again_in_row_order() {
        const FIRST_ROWS: usize = 1_500;
        const ROWS: usize = 4_500;
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store_without_background_work(dir.path());
        // A first segment, settled: the settler trains the dictionary the journal's blocks
        // then use.
        store
            .append((0..FIRST_ROWS).map(record_with_every_column).collect())
            .expect("append");
        store.flush_tables().expect("seal");
        store.settle().expect("settle");
        let journal_dictionary = store.shared.dictionaries.current().map(|d| d.id);
        assert!(journal_dictionary.is_some());
        for first in (FIRST_ROWS..ROWS).step_by(500) {
            let mut batch: Vec<EventRecord> =
                (first..first + 500).map(record_with_every_column).collect();
            // Stored once, but its block holds it twice: a record that is not a row.
            batch.push(record_with_every_column(first));
            store.append(batch).expect("append");
        }
        store.flush_tables().expect("seal");
        let kept = store.shared.sources().segments[1].clone();
        assert!(
            kept.keeps_journal_blocks(),
            "the seal kept the journal's blocks"
        );
        assert_eq!(Some(kept.dictionary_id), journal_dictionary);
        assert_eq!(kept.rows as usize, ROWS - FIRST_ROWS);
        // Event times are not in seq order, so neither are the rows' records.
        assert!((0..kept.rows).any(|row| kept.record_number(row) != Some(row)));
        let (log, pages) = every_answer(&store, ROWS);
        assert_eq!(log.len(), ROWS);
        for (index, (seq, json)) in log.iter().enumerate() {
            assert_eq!(*seq, index as u64 + 1);
            assert!(
                json.contains(&format!(r#""eventID":"id-{index}""#)),
                "{json}"
            );
        }
        assert!(pages.iter().all(|page| page.len() == 50));
        assert_eq!(store.verify().expect("verify"), ROWS as u64);
        let records_before = store.space_by_part().records;

        store.settle().expect("settle");
        let settled = store.shared.sources().segments[1].clone();
        assert!(settled.is_settled() && !settled.keeps_journal_blocks());
        assert!((0..settled.rows).all(|row| settled.record_number(row) == Some(row)));
        assert_eq!(every_answer(&store, ROWS), (log.clone(), pages.clone()));
        assert_eq!(store.verify().expect("verify"), ROWS as u64);
        assert!(store.space_by_part().records < records_before);
        // The segment has its own dictionary; the journal keeps its fresh one, so the head
        // that fills meanwhile holds blocks of one dictionary and its seal keeps them.
        assert_ne!(Some(settled.dictionary_id), journal_dictionary);
        assert_eq!(
            store.shared.dictionaries.current().map(|d| d.id),
            journal_dictionary
        );

        drop(store);
        let store = store_without_background_work(dir.path());
        assert_eq!(every_answer(&store, ROWS), (log, pages));

        // A settle while a head fills: the head's blocks still share one dictionary, so
        // its seal keeps them (adopting the settler's dictionary made it a rewrite).
        let append_rows = |rows: std::ops::Range<usize>| {
            store
                .append(rows.map(record_with_every_column).collect())
                .expect("append")
        };
        append_rows(ROWS..ROWS + 500);
        store.flush_tables().expect("seal");
        append_rows(ROWS + 500..ROWS + 750);
        store.settle().expect("settle");
        append_rows(ROWS + 750..ROWS + 1_000);
        store.flush_tables().expect("seal");
        let segments = store.shared.sources().segments;
        assert!(segments[2].is_settled());
        assert!(segments[3].keeps_journal_blocks());
        assert_eq!(Some(segments[3].dictionary_id), journal_dictionary);
        assert_eq!(whole_log(&store).len(), ROWS + 1_000);
    }

    /// A dictionary adopted part-way through a load's first head: that head's older
    /// blocks are compressed again with it, so its seal keeps the blocks too, and so does
    /// every later one. (A rewrite that adopted its own dictionary made the next head mix
    /// two as well, and so on: every seal of the load was a rewrite.)
    #[test]
    fn every_seal_keeps_blocks_when_the_first_dictionary_is_adopted_during_a_load() {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = StoreOptions {
            seal_events_max: 3_000,
            merge_events_below: 0,
            settle: false,
            ..StoreOptions::default()
        };
        let store = Store::open(dir.path(), options).expect("store opens");
        let mut adopted = None;
        for first in (0..30_000).step_by(500) {
            if first == 1_500 {
                let sample: Vec<String> = (0..1_500)
                    .map(|row| record_with_every_column(row).json)
                    .collect();
                let trained =
                    crate::blocks::Dictionary::train(sample.iter().map(|json| json.as_bytes()))
                        .expect("trained");
                adopted = Some(trained.id);
                store
                    .shared
                    .dictionaries
                    .adopt(std::sync::Arc::new(trained))
                    .expect("adopt");
            }
            store
                .append((first..first + 500).map(record_with_every_column).collect())
                .expect("append");
            std::thread::sleep(std::time::Duration::from_millis(30));
        }
        store.flush_tables().expect("seal");
        let segments = store.shared.sources().segments;
        let kept = segments
            .iter()
            .filter(|segment| segment.keeps_journal_blocks())
            .count();
        assert!(segments.len() >= 9, "{} segments", segments.len());
        assert_eq!(
            kept,
            segments.len(),
            "every segment kept the journal's blocks"
        );
        assert!(
            segments
                .iter()
                .all(|segment| Some(segment.dictionary_id) == adopted),
            "the blocks from before the dictionary were compressed again with it"
        );
        let log = whole_log(&store);
        assert_eq!(log.len(), 30_000);
        for (index, (seq, json)) in log.iter().enumerate() {
            assert_eq!(*seq, index as u64 + 1);
            assert!(
                json.contains(&format!(r#""eventID":"id-{index}""#)),
                "{json}"
            );
        }
        assert_eq!(store.verify().expect("verify"), 30_000);
    }

    /// Every row of a Parquet file, each column as text, in seq order.
    fn parquet_rows(bytes: Vec<u8>) -> Vec<Vec<String>> {
        use arrow_array::Array;
        use arrow_array::cast::AsArray;
        use arrow_array::types::{TimestampMillisecondType, UInt64Type};
        use arrow_schema::DataType;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("columns.parquet");
        std::fs::write(&path, bytes).expect("write");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&path).expect("open"),
        )
        .expect("a Parquet file")
        .build()
        .expect("reader");
        let mut rows = Vec::new();
        for batch in reader {
            let batch = batch.expect("batch");
            for row in 0..batch.num_rows() {
                let cell = |column: &arrow_array::ArrayRef| -> String {
                    if column.is_null(row) {
                        return "null".into();
                    }
                    match column.data_type() {
                        DataType::Utf8 => column.as_string::<i32>().value(row).to_owned(),
                        DataType::Boolean => column.as_boolean().value(row).to_string(),
                        DataType::UInt64 => {
                            column.as_primitive::<UInt64Type>().value(row).to_string()
                        }
                        DataType::Timestamp(..) => column
                            .as_primitive::<TimestampMillisecondType>()
                            .value(row)
                            .to_string(),
                        other => panic!("unexpected column type {other}"),
                    }
                };
                rows.push(batch.columns().iter().map(cell).collect::<Vec<String>>());
            }
        }
        let seq = batch_column_index("seq");
        rows.sort_by_key(|row| row[seq].parse::<u64>().expect("a seq"));
        rows
    }

    fn batch_column_index(name: &str) -> usize {
        crate::columns::schema().index_of(name).expect("a column")
    }

    #[test]
    fn a_heads_columns_made_as_rows_arrive_hold_what_columns_made_from_its_records_hold() {
        // More rows than one batch of the columns encoder.
        let records: Vec<EventRecord> = (0..20_000).map(record_with_every_column).collect();
        let texts: Vec<String> = records.iter().map(|record| record.json.clone()).collect();
        let dir = tempfile::tempdir().expect("temp dir");
        let (segment, from_records) = built_files(dir.path(), &texts, None, &false);

        let mut made = crate::columns::HeadColumns::new().expect("columns");
        // As `built_files` numbers rows: seq from 1, ingest times a millisecond apart.
        for (row, record) in records.iter().enumerate() {
            made.push(row as u64 + 1, 1_700_000_000_000 + row as i64, record)
                .expect("push");
        }
        assert!(made.memory_bytes() > 0);
        let dir = tempfile::tempdir().expect("temp dir");
        let (segment_with_made, from_head) = built_files(dir.path(), &texts, Some(made), &false);

        assert!(
            segment_with_made == segment,
            "the segment file does not change"
        );
        // Made as rows arrived, the columns keep seq order, not the segment's row order.
        assert!(from_head != from_records, "the head's columns were used");
        let (from_records, from_head) = (parquet_rows(from_records), parquet_rows(from_head));
        assert_eq!(from_head.len(), records.len());
        assert_eq!(from_head, from_records);
        let errors = batch_column_index("errorcode");
        assert_eq!(from_head[0][errors], "AccessDenied");
        assert_eq!(from_head[1][errors], "null");
        assert_eq!(from_head[1][batch_column_index("username")], "u1");
    }
}
