//! Record blocks: a few dozen records compressed together with zstd and a dictionary
//! trained on CloudTrail records.
//!
//! Small blocks keep a lookup's read small (one block per event returned); the dictionary
//! gives them the ratio of much larger ones (measured on the real corpus: 16 KiB blocks
//! with zstd-1 are 1/6.5 of the JSON alone and 1/10.7 with a 112 KiB dictionary; see
//! `../shared/crates.md`). Level 1: higher levels gain nothing once a dictionary is used.
//!
//! Random ids are packed out of the text first ([`crate::id_packing`]): a packed block is
//! a zstd frame of the text (with the dictionary) followed by the side stream of packed
//! ids as they are: random bytes that zstd would not shrink, and compressing them with
//! another context's parameters than the text's cost more than the packing saved.
//!
//! ```text
//! raw block      count:u32 ‖ end_offset:u32 × count ‖ record JSON bytes …
//! packed block   frame(count | PACKED:u32 ‖ side_len:u32 ‖ end_offset:u32 × count ‖ packed text)
//!                ‖ side stream (side_len bytes)
//! ```
//! `raw_len` in a block's header is always the raw (unpacked) block's length.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::codec::{ByteReader, PutBytes};
use crate::error::StoreError;
use crate::files;

/// Raw bytes gathered into one block before it is compressed.
pub(crate) const BLOCK_RAW_BYTES: usize = 32 * 1024;
/// How hard blocks are compressed, and whether their ids are packed. The journal is on
/// the request path: level 1, not packed (packing cost the append path 14% in
/// `opentrail-store-bench`). A seal keeps these blocks as they are until the settler
/// writes them again (`segment.rs`, "Kept journal blocks"). Merges write segments in the
/// background, kept for the whole retention: packed, then level 3. Level 5 made records
/// 10% smaller (store bench at 300k: 171.6 → 154.0 bytes/event) but, with the sealer
/// competing with ingest for the cores, cost 10% of the 10M HTTP
/// ingest and 14% of the import rate (BENCHMARKS.md, 5 Dec 2026). So the size is won
/// later, off the ingest's path: the settler (`settler.rs`) recompresses sealed segments
/// at level 12 on a thread at the lowest CPU priority. On 300k of the benchmark's records
/// in 32 KiB blocks with their own dictionary, level 3 → 9 took the records from 167.6
/// to 138.4 bytes/event at 113 MB/s, level 12 to 135.7 at 57 MB/s (level 19: 132.5 at
/// 4 MB/s). Only idle CPU pays for it, and decompression runs at the same speed whatever
/// the level. Segments settled at a lower level (9, before 6 Dec 2026) are settled again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effort {
    Journal,
    Segment,
    Settled,
}

impl Effort {
    pub(crate) fn level(self) -> i32 {
        match self {
            Effort::Journal => 1,
            Effort::Segment => 3,
            Effort::Settled => 12,
        }
    }
}
/// Dictionary size: the size measured in `../shared/crates.md`.
const DICTIONARY_BYTES: usize = 112 * 1024;
/// Bytes of records sampled to train a dictionary.
const TRAINING_SAMPLE_BYTES: usize = 4 << 20;
/// Fewer records than this train a poor dictionary; blocks then use the current one.
pub(crate) const TRAINING_RECORDS_MIN: usize = 1_000;
/// Records sampled, evenly spread, to train a dictionary.
pub(crate) const TRAINING_SAMPLE_RECORDS: usize = 4_000;
/// `0` in a block header: compressed without a dictionary.
pub(crate) const NO_DICTIONARY: u32 = 0;
/// Set in a block's record count when its ids are packed. Blocks written before packing
/// have counts far below it.
const PACKED: u32 = 1 << 31;

/// A compressed block as stored in journal frames and segment files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncodedBlock {
    pub dictionary_id: u32,
    pub raw_len: u32,
    pub record_count: u32,
    pub bytes: Vec<u8>,
}

/// A trained zstd dictionary, prepared for both directions.
pub(crate) struct Dictionary {
    pub id: u32,
    pub raw: Vec<u8>,
    journal_encoder: zstd::dict::EncoderDictionary<'static>,
    segment_encoder: zstd::dict::EncoderDictionary<'static>,
    decoder: zstd::dict::DecoderDictionary<'static>,
}

impl Dictionary {
    pub(crate) fn new(raw: Vec<u8>) -> Dictionary {
        // Never 0, which means "no dictionary".
        let id = (xxhash_rust::xxh3::xxh3_64(&raw) as u32).max(1);
        Dictionary {
            id,
            journal_encoder: zstd::dict::EncoderDictionary::copy(&raw, Effort::Journal.level()),
            segment_encoder: zstd::dict::EncoderDictionary::copy(&raw, Effort::Segment.level()),
            decoder: zstd::dict::DecoderDictionary::copy(&raw),
            raw,
        }
    }

    /// Trains a dictionary on a sample of `records`; `None` when there are too few.
    pub(crate) fn train<'a>(
        records: impl ExactSizeIterator<Item = &'a [u8]>,
    ) -> Option<Dictionary> {
        let count = records.len();
        if count < TRAINING_RECORDS_MIN {
            return None;
        }
        let mut sample = Vec::with_capacity(TRAINING_SAMPLE_BYTES.min(count * 1_600));
        let mut sizes = Vec::new();
        // An even spread over the records, until the sample budget is used.
        let stride = (count / TRAINING_SAMPLE_RECORDS).max(1);
        for record in records.step_by(stride) {
            // Blocks are compressed packed: the dictionary learns the packed text.
            let packed = crate::id_packing::pack(record, &[record.len() as u32]);
            let record = packed.as_ref().map_or(record, |packed| &packed.text[..]);
            if sample.len() + record.len() > TRAINING_SAMPLE_BYTES {
                break;
            }
            sample.extend_from_slice(record);
            sizes.push(record.len());
        }
        let raw = zstd::dict::from_continuous(&sample, &sizes, DICTIONARY_BYTES).ok()?;
        Some(Dictionary::new(raw))
    }
}

/// Every dictionary blocks may name: those trained here (persisted under `dicts/`
/// before any block uses them) and those that came inside segments.
pub(crate) struct Dictionaries {
    dir: PathBuf,
    known: RwLock<HashMap<u32, Arc<Dictionary>>>,
    /// With when it became current (for the one on disk at open: the open).
    current: RwLock<Option<(Arc<Dictionary>, std::time::Instant)>>,
}

/// How long the journal keeps a dictionary before it takes a fresher one from the settler.
/// Each change costs the seal of the head filling at the time extra work: that head holds
/// blocks of two dictionaries, and its older ones are compressed again with the newer.
/// What a fresher dictionary gains is a few bytes per event, and only until the settler
/// rewrites the blocks anyway.
const JOURNAL_DICTIONARY_REFRESH: std::time::Duration = std::time::Duration::from_secs(3_600);

impl Dictionaries {
    pub(crate) fn open(dir: PathBuf) -> Result<Dictionaries, StoreError> {
        std::fs::create_dir_all(&dir).map_err(|error| StoreError::io(&dir, error))?;
        let mut known = HashMap::new();
        let mut newest: Option<(std::time::SystemTime, Arc<Dictionary>)> = None;
        for entry in std::fs::read_dir(&dir).map_err(|error| StoreError::io(&dir, error))? {
            let entry = entry.map_err(|error| StoreError::io(&dir, error))?;
            let path = entry.path();
            if path.extension().is_none_or(|ext| ext != "zdict") {
                continue;
            }
            let raw = std::fs::read(&path).map_err(|error| StoreError::io(&path, error))?;
            let dictionary = Arc::new(Dictionary::new(raw));
            let expected_name = dictionary_file_name(dictionary.id);
            if path.file_name().and_then(|name| name.to_str()) != Some(expected_name.as_str()) {
                return Err(StoreError::corrupt(
                    "dictionary",
                    path.display().to_string(),
                    format!("content hashes to id {:08x}", dictionary.id),
                ));
            }
            let modified = entry
                .metadata()
                .and_then(|metadata| metadata.modified())
                .map_err(|error| StoreError::io(&path, error))?;
            if newest.as_ref().is_none_or(|(time, _)| modified > *time) {
                newest = Some((modified, dictionary.clone()));
            }
            known.insert(dictionary.id, dictionary);
        }
        Ok(Dictionaries {
            dir,
            known: RwLock::new(known),
            current: RwLock::new(
                newest.map(|(_, dictionary)| (dictionary, std::time::Instant::now())),
            ),
        })
    }

    /// The dictionary new blocks are compressed with.
    pub(crate) fn current(&self) -> Option<Arc<Dictionary>> {
        read_lock(&self.current)
            .as_ref()
            .map(|(dictionary, _)| dictionary.clone())
    }

    pub(crate) fn get(&self, id: u32) -> Option<Arc<Dictionary>> {
        read_lock(&self.known).get(&id).cloned()
    }

    /// Makes a dictionary known (for reading blocks that name it) without persisting it.
    pub(crate) fn register(&self, dictionary: Arc<Dictionary>) {
        write_lock(&self.known)
            .entry(dictionary.id)
            .or_insert(dictionary);
    }

    /// Persists a dictionary, then makes it the one new blocks use. Journal frames name
    /// it, so it must be on disk before the first frame that does.
    pub(crate) fn adopt(&self, dictionary: Arc<Dictionary>) -> Result<(), StoreError> {
        let path = self.dir.join(dictionary_file_name(dictionary.id));
        if !path.exists() {
            files::write_atomically(&path, &dictionary.raw)?;
        }
        self.register(dictionary.clone());
        *write_lock(&self.current) = Some((dictionary, std::time::Instant::now()));
        Ok(())
    }

    /// Adopts `dictionary` when there is none yet or the current one is older than
    /// [`JOURNAL_DICTIONARY_REFRESH`].
    pub(crate) fn refresh(&self, dictionary: Arc<Dictionary>) -> Result<(), StoreError> {
        let stale = read_lock(&self.current)
            .as_ref()
            .is_none_or(|(_, since)| since.elapsed() >= JOURNAL_DICTIONARY_REFRESH);
        if stale {
            self.adopt(dictionary)?;
        }
        Ok(())
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

fn dictionary_file_name(id: u32) -> String {
    format!("{id:08x}.zdict")
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

thread_local! {
    // One zstd context per thread, reused: creating one per call allocated and zeroed a
    // fresh workspace each time (ZSTD_createDCtx and page clearing were ~10% of the
    // store's threads in a profile of a bulk ingest).
    static COMPRESSION: std::cell::RefCell<zstd::zstd_safe::CCtx<'static>> =
        std::cell::RefCell::new(zstd::zstd_safe::CCtx::create());
    static DECOMPRESSION: std::cell::RefCell<zstd::zstd_safe::DCtx<'static>> =
        std::cell::RefCell::new(zstd::zstd_safe::DCtx::create());
}

/// Compresses `raw` into `out` (of at least its compress bound) with a prepared
/// dictionary, streamed without telling zstd the size. Given a size above 16 KiB, level
/// 3 copies the dictionary's hash tables (~384 KiB) into the context for every block;
/// with the size unknown it references them in place. On the benchmark's records in
/// 32 KiB blocks that compressed 1.5 times as fast at level 3, to within 0.1% of the size
/// (BENCHMARKS.md, 6 Dec 2026); level 1, the journal's, measured the same either way.
/// Blocks record their raw length themselves, so the frames need not.
fn compress_attached(
    context: &mut zstd::zstd_safe::CCtx<'static>,
    out: &mut Vec<u8>,
    raw: &[u8],
    dictionary: &zstd::zstd_safe::CDict<'static>,
) -> Result<usize, usize> {
    use zstd::zstd_safe::zstd_sys::ZSTD_EndDirective::{ZSTD_e_continue, ZSTD_e_end};
    use zstd::zstd_safe::{InBuffer, OutBuffer, ResetDirective};
    context.reset(ResetDirective::SessionAndParameters)?;
    context.ref_cdict(dictionary)?;
    let mut stream = || {
        let mut input = InBuffer::around(raw);
        let mut output = OutBuffer::around(out);
        // `continue` first, so the frame starts before zstd knows where the input ends.
        context.compress_stream2(&mut output, &mut input, ZSTD_e_continue)?;
        // An output of the compress bound takes the whole frame in one call.
        let left = context.compress_stream2(&mut output, &mut input, ZSTD_e_end)?;
        if left != 0 {
            use zstd::zstd_safe::zstd_sys::ZSTD_ErrorCode::ZSTD_error_dstSize_tooSmall;
            return Err((ZSTD_error_dstSize_tooSmall as usize).wrapping_neg());
        }
        Ok(output.pos())
    };
    let written = stream();
    // The context outlives the dictionary: it must not keep a reference to it.
    context.reset(ResetDirective::SessionAndParameters)?;
    written
}

fn zstd_error(what: &str, code: usize) -> std::io::Error {
    std::io::Error::other(format!("{what}: {}", zstd::zstd_safe::get_error_name(code)))
}

/// Packs records into blocks of about [`BLOCK_RAW_BYTES`] and compresses each.
pub(crate) struct BlockEncoder<'d> {
    dictionary_id: u32,
    dictionary: Option<&'d Dictionary>,
    effort: Effort,
    /// The dictionary prepared at [`Effort::Settled`]'s level: only the settler uses it,
    /// so it is prepared per encoder rather than kept with every dictionary.
    settled_encoder: Option<zstd::dict::EncoderDictionary<'static>>,
    raw: Vec<u8>,
    ends: Vec<u32>,
    /// Finished blocks not yet taken.
    blocks: Vec<EncodedBlock>,
    /// Blocks already taken by [`BlockEncoder::take_finished`].
    taken: u32,
    scratch: Vec<u8>,
}

impl<'d> BlockEncoder<'d> {
    pub(crate) fn new(dictionary: Option<&'d Dictionary>, effort: Effort) -> BlockEncoder<'d> {
        BlockEncoder {
            dictionary_id: dictionary.map_or(NO_DICTIONARY, |dictionary| dictionary.id),
            dictionary,
            effort,
            settled_encoder: dictionary
                .filter(|_| effort == Effort::Settled)
                .map(|dictionary| {
                    zstd::dict::EncoderDictionary::copy(&dictionary.raw, Effort::Settled.level())
                }),
            raw: Vec::with_capacity(BLOCK_RAW_BYTES * 2),
            ends: Vec::new(),
            blocks: Vec::new(),
            taken: 0,
            scratch: Vec::new(),
        }
    }

    /// Adds a record; returns (block index, index within the block) it went to.
    pub(crate) fn push(&mut self, record: &[u8]) -> Result<(u32, u32), StoreError> {
        if !self.ends.is_empty() && self.raw.len() + record.len() > BLOCK_RAW_BYTES {
            self.finish_block()?;
        }
        self.raw.extend_from_slice(record);
        self.ends.push(self.raw.len() as u32);
        Ok((
            self.taken + self.blocks.len() as u32,
            self.ends.len() as u32 - 1,
        ))
    }

    /// Adds a decoded block's records as one block of their own, however large: a
    /// segment's block table locates rows by block, so recompressing one keeps its blocks.
    pub(crate) fn push_block(&mut self, block: &DecodedBlock) -> Result<(), StoreError> {
        self.finish_block()?;
        for index in 0..block.len() {
            if let Some(record) = block.record(index) {
                self.raw.extend_from_slice(record);
                self.ends.push(self.raw.len() as u32);
            }
        }
        self.finish_block()
    }

    /// The blocks finished since the last call, so a long run of records can be written
    /// out as it goes instead of held in memory.
    pub(crate) fn take_finished(&mut self) -> Vec<EncodedBlock> {
        let finished = std::mem::take(&mut self.blocks);
        self.taken += finished.len() as u32;
        finished
    }

    fn finish_block(&mut self) -> Result<(), StoreError> {
        if self.ends.is_empty() {
            return Ok(());
        }
        let raw_len = 4 + 4 * self.ends.len() + self.raw.len();
        let packed = (self.effort != Effort::Journal)
            .then(|| crate::id_packing::pack(&self.raw, &self.ends))
            .flatten();
        let (count, ends, text) = match &packed {
            Some(packed) => (self.ends.len() as u32 | PACKED, &packed.ends, &packed.text),
            None => (self.ends.len() as u32, &self.ends, &self.raw),
        };
        let mut raw = Vec::with_capacity(raw_len);
        raw.put_u32(count);
        if let Some(packed) = &packed {
            raw.put_u32(packed.side.len() as u32);
        }
        for end in ends {
            raw.put_u32(*end);
        }
        raw.extend_from_slice(text);
        // Into a reused scratch buffer of the worst-case size, then copied out at its real
        // size: heads keep thousands of blocks, and a vector of the worst case's capacity
        // (about the raw size) would hold ~1.5 KB per event.
        self.scratch.clear();
        self.scratch
            .reserve(zstd::zstd_safe::compress_bound(raw.len()));
        let prepared = self.dictionary.and_then(|dictionary| match self.effort {
            Effort::Journal => Some(&dictionary.journal_encoder),
            Effort::Segment => Some(&dictionary.segment_encoder),
            Effort::Settled => self.settled_encoder.as_ref(),
        });
        let (effort, scratch) = (self.effort, &mut self.scratch);
        COMPRESSION
            .with(|context| {
                let mut context = context.borrow_mut();
                match prepared {
                    Some(prepared) => {
                        compress_attached(&mut context, scratch, &raw, prepared.as_cdict())
                    }
                    None => context.compress(scratch, &raw, effort.level()),
                }
            })
            .map_err(|code| {
                StoreError::io(
                    Path::new("<zstd compressor>"),
                    zstd_error("compressing", code),
                )
            })?;
        if let Some(packed) = &packed {
            self.scratch.extend_from_slice(&packed.side);
        }
        let bytes = self.scratch.clone();
        self.blocks.push(EncodedBlock {
            dictionary_id: self.dictionary_id,
            raw_len: raw_len as u32,
            record_count: self.ends.len() as u32,
            bytes,
        });
        self.raw.clear();
        self.ends.clear();
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<Vec<EncodedBlock>, StoreError> {
        self.finish_block()?;
        Ok(self.blocks)
    }
}

/// A decompressed block: its records by index.
pub(crate) struct DecodedBlock {
    raw: Vec<u8>,
    count: usize,
}

impl DecodedBlock {
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub(crate) fn record(&self, index: usize) -> Option<&[u8]> {
        if index >= self.count {
            return None;
        }
        let data_start = 4 + 4 * self.count;
        let end_at = |i: usize| crate::codec::u32_at(&self.raw[4..], i).map(|end| end as usize);
        let start = if index == 0 { 0 } else { end_at(index - 1)? };
        let end = end_at(index)?;
        self.raw.get(data_start + start..data_start + end)
    }

    pub(crate) fn size_bytes(&self) -> usize {
        self.raw.len()
    }
}

/// Decoded blocks a [`BlockLru`] keeps while records are reordered by time.
const SOURCE_BLOCKS_CACHED: usize = 256;

/// A small cache of decoded blocks, for a seal, merge or settle reading records out of
/// order. Keys are (source, block).
#[derive(Default)]
pub(crate) struct BlockLru {
    blocks: HashMap<(usize, u32), (DecodedBlock, u64)>,
    tick: u64,
}

impl BlockLru {
    pub(crate) fn record(
        &mut self,
        key: (usize, u32),
        index: u32,
        load: impl FnOnce() -> Result<DecodedBlock, StoreError>,
    ) -> Result<Vec<u8>, StoreError> {
        self.tick += 1;
        if !self.blocks.contains_key(&key) {
            if self.blocks.len() >= SOURCE_BLOCKS_CACHED
                && let Some(oldest) = self
                    .blocks
                    .iter()
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(key, _)| *key)
            {
                self.blocks.remove(&oldest);
            }
            self.blocks.insert(key, (load()?, self.tick));
        }
        let Some((block, used)) = self.blocks.get_mut(&key) else {
            return Err(StoreError::corrupt(
                "record block",
                format!("{key:?}"),
                "vanished from the cache",
            ));
        };
        *used = self.tick;
        block
            .record(index as usize)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                StoreError::corrupt(
                    "record block",
                    format!("{key:?}"),
                    format!("no record {index}"),
                )
            })
    }
}

/// Decompresses a block; `where_` names it in errors.
pub(crate) fn decode_block(
    dictionaries: &Dictionaries,
    dictionary_id: u32,
    raw_len: u32,
    compressed: &[u8],
    where_: &dyn Fn() -> String,
) -> Result<DecodedBlock, StoreError> {
    let corrupt = |detail: String| StoreError::corrupt("record block", where_(), detail);
    let dictionary = if dictionary_id == NO_DICTIONARY {
        None
    } else {
        Some(
            dictionaries
                .get(dictionary_id)
                .ok_or_else(|| corrupt(format!("names unknown dictionary {dictionary_id:08x}")))?,
        )
    };
    let does_not_decompress = |code: usize| {
        corrupt(format!(
            "does not decompress: {}",
            zstd::zstd_safe::get_error_name(code)
        ))
    };
    // A packed block's text frame is followed by its side stream.
    let text_frame_len =
        zstd::zstd_safe::find_frame_compressed_size(compressed).map_err(does_not_decompress)?;
    let (text_frame, side) = compressed.split_at(text_frame_len.min(compressed.len()));
    let mut raw = Vec::with_capacity(raw_len as usize);
    DECOMPRESSION
        .with(|context| {
            let mut context = context.borrow_mut();
            match &dictionary {
                Some(dictionary) => context.decompress_using_ddict(
                    &mut raw,
                    text_frame,
                    dictionary.decoder.as_ddict(),
                ),
                None => context.decompress(&mut raw, text_frame),
            }
        })
        .map_err(does_not_decompress)?;
    let packed_count = crate::codec::u32_at(&raw, 0).filter(|count| count & PACKED != 0);
    if let Some(packed_count) = packed_count {
        raw = unpack_block(packed_count & !PACKED, &raw, side, raw_len).map_err(corrupt)?;
    } else if !side.is_empty() {
        return Err(corrupt(format!("{} bytes after its frame", side.len())));
    }
    if raw.len() != raw_len as usize {
        return Err(corrupt(format!(
            "decompressed to {} bytes, header says {raw_len}",
            raw.len()
        )));
    }
    let mut reader = ByteReader::new(&raw);
    let count = reader
        .u32()
        .map_err(|_| corrupt("no record count".into()))? as usize;
    let table_end = 4usize.saturating_add(count.saturating_mul(4));
    if table_end > raw.len() {
        return Err(corrupt(format!("{count} records do not fit")));
    }
    let block = DecodedBlock { raw, count };
    let mut previous = 0usize;
    for index in 0..count {
        let end = crate::codec::u32_at(&block.raw[4..], index).unwrap_or(0) as usize;
        if end < previous || table_end + end > block.raw.len() {
            return Err(corrupt(format!("record {index} ends out of bounds")));
        }
        previous = end;
    }
    Ok(block)
}

/// The raw block of a packed one: `packed` is its decompressed text frame, `side` the
/// side stream after it.
fn unpack_block(count: u32, packed: &[u8], side: &[u8], raw_len: u32) -> Result<Vec<u8>, String> {
    let mut reader = ByteReader::new(packed);
    let header = || "packed header cut short".to_owned();
    reader.u32().map_err(|_| header())?;
    let side_len = reader.u32().map_err(|_| header())? as usize;
    let mut ends = Vec::with_capacity(count as usize);
    for _ in 0..count {
        ends.push(reader.u32().map_err(|_| header())?);
    }
    let text = packed.get(8 + 4 * count as usize..).ok_or_else(header)?;
    if side.len() != side_len {
        return Err(format!(
            "side stream of {} bytes, header says {side_len}",
            side.len()
        ));
    }
    let mut raw = Vec::with_capacity(raw_len as usize);
    raw.put_u32(count);
    raw.resize(4 + 4 * count as usize, 0);
    let mut unpacked_ends = Vec::with_capacity(count as usize);
    crate::id_packing::unpack(text, &ends, side, &mut raw, &mut unpacked_ends)?;
    // `unpack` appended after the table, so the ends are relative to the text's start.
    for (index, end) in unpacked_ends.iter().enumerate() {
        raw[4 + 4 * index..8 + 4 * index].copy_from_slice(&end.to_le_bytes());
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_records(count: usize) -> Vec<String> {
        (0..count)
            .map(|i| {
                format!(
                    r#"{{"eventVersion":"1.08","eventID":"{i:08}-aaaa","eventName":"PutObject","eventSource":"s3.amazonaws.com","userIdentity":{{"type":"IAMUser","userName":"user{}"}},"n":{i}}}"#,
                    i % 17
                )
            })
            .collect()
    }

    #[test]
    fn records_round_trip_with_and_without_a_dictionary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dictionaries = Dictionaries::open(dir.path().join("dicts")).expect("dicts");
        let records = sample_records(3_000);
        let trained =
            Dictionary::train(records.iter().map(|record| record.as_bytes())).expect("trained");
        for dictionary in [None, Some(&trained)] {
            let mut encoder = BlockEncoder::new(dictionary, Effort::Segment);
            let mut places = Vec::new();
            for record in &records {
                places.push(encoder.push(record.as_bytes()).expect("push"));
            }
            let blocks = encoder.finish().expect("finish");
            assert!(blocks.len() > 1, "several blocks");
            dictionaries
                .adopt(Arc::new(Dictionary::new(trained.raw.clone())))
                .expect("adopt");
            for (record, (block, index)) in records.iter().zip(places) {
                let block = &blocks[block as usize];
                let decoded = decode_block(
                    &dictionaries,
                    block.dictionary_id,
                    block.raw_len,
                    &block.bytes,
                    &|| "test".into(),
                )
                .expect("decodes");
                assert_eq!(decoded.record(index as usize), Some(record.as_bytes()));
            }
        }
        let reopened = Dictionaries::open(dir.path().join("dicts")).expect("reopen");
        assert_eq!(reopened.current().map(|d| d.id), Some(trained.id));
    }

    /// Records whose event and request ids pack.
    fn records_with_ids(count: usize) -> Vec<String> {
        (0..count)
            .map(|i| {
                format!(
                    r#"{{"eventID":"{:08x}-5447-4102-8081-{:012x}","requestID":"{:016X}","eventName":"GetObject","n":{i}}}"#,
                    i * 7919,
                    i * 104_729,
                    i * 1_299_709
                )
            })
            .collect()
    }

    #[test]
    fn packed_blocks_round_trip_and_a_damaged_side_stream_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dictionaries = Dictionaries::open(dir.path().join("dicts")).expect("dicts");
        let records = records_with_ids(2_000);
        let trained =
            Dictionary::train(records.iter().map(|record| record.as_bytes())).expect("trained");
        dictionaries
            .adopt(Arc::new(Dictionary::new(trained.raw.clone())))
            .expect("adopt");
        let decode = |block: &EncodedBlock| {
            decode_block(
                &dictionaries,
                block.dictionary_id,
                block.raw_len,
                &block.bytes,
                &|| "test".into(),
            )
        };
        for dictionary in [None, Some(&trained)] {
            let mut encoder = BlockEncoder::new(dictionary, Effort::Segment);
            let places: Vec<_> = records
                .iter()
                .map(|record| encoder.push(record.as_bytes()).expect("push"))
                .collect();
            let blocks = encoder.finish().expect("finish");
            // Every block has its ids after the text's frame.
            for block in &blocks {
                let text_frame =
                    zstd::zstd_safe::find_frame_compressed_size(&block.bytes).expect("a frame");
                assert!(text_frame + block.record_count as usize * (16 + 11) <= block.bytes.len());
            }
            for (record, (block, index)) in records.iter().zip(places) {
                let decoded = decode(&blocks[block as usize]).expect("decodes");
                assert_eq!(decoded.record(index as usize), Some(record.as_bytes()));
            }
            // (A flipped byte is the block CRC's to catch, in segments and journal frames.)
            let mut damaged = blocks[0].clone();
            damaged.bytes.pop();
            assert!(decode(&damaged).is_err(), "a cut side stream");
            damaged.bytes.extend_from_slice(&[0, 0]);
            assert!(decode(&damaged).is_err(), "a longer side stream");
        }
    }

    #[test]
    fn a_damaged_block_is_an_error_not_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dictionaries = Dictionaries::open(dir.path().to_path_buf()).expect("dicts");
        let mut encoder = BlockEncoder::new(None, Effort::Journal);
        for record in sample_records(10) {
            encoder.push(record.as_bytes()).expect("push");
        }
        let mut block = encoder.finish().expect("finish").remove(0);
        let middle = block.bytes.len() / 2;
        block.bytes[middle] ^= 0xff;
        block.bytes.truncate(middle + 1);
        let outcome = decode_block(
            &dictionaries,
            block.dictionary_id,
            block.raw_len,
            &block.bytes,
            &|| "here".into(),
        );
        assert!(outcome.is_err());
    }
}
