//! The write-ahead journal: the only synchronous write. Each head has one journal file,
//! named after the first seq it may hold; frames are appended as groups commit, with one
//! fdatasync per group, and the file is deleted once its head is sealed into a segment.
//!
//! ```text
//! frame   magic:u32 ‖ body_len:u32 ‖ crc32(body):u32 ‖ body
//! body    first_seq:u64 ‖ ingest_time_ms:i64 ‖ record_count:u32 ‖ stored bitmap
//!         ‖ block_count:u32 ‖ (dictionary_id:u32 ‖ raw_len:u32 ‖ records:u32 ‖ len:u32 ‖ bytes) × blocks
//! ```
//! The blocks are the caller's records, compressed before they reach the writer; the
//! bitmap says which of them were stored (the rest were duplicates), and the stored ones
//! have consecutive seqs from `first_seq`. A torn frame at the end of the newest file is a
//! write that was never acknowledged, and is cut off when the store opens.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::blocks::EncodedBlock;
use crate::codec::{ByteReader, PutBytes};
use crate::error::StoreError;

const FRAME_MAGIC: u32 = 0x314a_544f;
const FRAME_HEADER_LEN: usize = 12;
const JOURNAL_EXTENSION: &str = "journal";

/// A caller's records, compressed and ready for the writer to frame.
pub(crate) struct PreparedRecords {
    pub blocks: Vec<EncodedBlock>,
    /// Per record: (block, index within the block).
    pub places: Vec<(u32, u32)>,
}

/// One frame read back from a journal.
pub(crate) struct Frame {
    pub first_seq: u64,
    pub ingest_time_ms: i64,
    pub stored: Vec<bool>,
    pub blocks: Vec<EncodedBlock>,
    /// Where the frame starts in its file, for error messages.
    pub offset: u64,
}

/// Appends one frame to `out`.
pub(crate) fn encode_frame(
    out: &mut Vec<u8>,
    first_seq: u64,
    ingest_time_ms: i64,
    stored: &[bool],
    blocks: &[EncodedBlock],
) {
    let mut body = Vec::with_capacity(
        32 + stored.len() / 8
            + blocks
                .iter()
                .map(|block| block.bytes.len() + 16)
                .sum::<usize>(),
    );
    body.put_u64(first_seq);
    body.put_i64(ingest_time_ms);
    body.put_u32(stored.len() as u32);
    let mut bitmap = vec![0u8; stored.len().div_ceil(8)];
    for (index, _) in stored.iter().enumerate().filter(|(_, stored)| **stored) {
        bitmap[index / 8] |= 1 << (index % 8);
    }
    body.extend_from_slice(&bitmap);
    body.put_u32(blocks.len() as u32);
    for block in blocks {
        body.put_u32(block.dictionary_id);
        body.put_u32(block.raw_len);
        body.put_u32(block.record_count);
        body.put_u32(block.bytes.len() as u32);
        body.extend_from_slice(&block.bytes);
    }
    out.put_u32(FRAME_MAGIC);
    out.put_u32(body.len() as u32);
    out.put_u32(crc32fast::hash(&body));
    out.extend_from_slice(&body);
}

fn decode_body(body: &[u8], offset: u64) -> Option<Frame> {
    let mut reader = ByteReader::new(body);
    let first_seq = reader.u64().ok()?;
    let ingest_time_ms = reader.i64().ok()?;
    let record_count = reader.u32().ok()? as usize;
    let bitmap = reader.take(record_count.div_ceil(8)).ok()?;
    let stored = (0..record_count)
        .map(|index| bitmap[index / 8] & (1 << (index % 8)) != 0)
        .collect();
    let block_count = reader.u32().ok()? as usize;
    let mut blocks = Vec::with_capacity(block_count.min(4096));
    for _ in 0..block_count {
        let dictionary_id = reader.u32().ok()?;
        let raw_len = reader.u32().ok()?;
        let record_count = reader.u32().ok()?;
        let len = reader.u32().ok()? as usize;
        let bytes = reader.take(len).ok()?.to_vec();
        blocks.push(EncodedBlock {
            dictionary_id,
            raw_len,
            record_count,
            bytes,
        });
    }
    reader.is_empty().then_some(Frame {
        first_seq,
        ingest_time_ms,
        stored,
        blocks,
        offset,
    })
}

/// The frames of one journal file, and where the valid part ends.
pub(crate) struct ScannedJournal {
    pub frames: Vec<Frame>,
    pub valid_len: u64,
    pub file_len: u64,
}

/// Reads every complete frame; stops at the first frame that is torn or damaged.
pub(crate) fn scan(path: &Path) -> Result<ScannedJournal, StoreError> {
    let bytes = std::fs::read(path).map_err(|error| StoreError::io(path, error))?;
    let mut frames = Vec::new();
    let mut offset = 0usize;
    while bytes.len() - offset >= FRAME_HEADER_LEN {
        let mut header = ByteReader::new(&bytes[offset..offset + FRAME_HEADER_LEN]);
        let (Ok(magic), Ok(body_len), Ok(crc)) = (header.u32(), header.u32(), header.u32()) else {
            break;
        };
        let body_start = offset + FRAME_HEADER_LEN;
        let Some(body) = bytes.get(body_start..body_start + body_len as usize) else {
            break;
        };
        if magic != FRAME_MAGIC || crc32fast::hash(body) != crc {
            break;
        }
        let Some(frame) = decode_body(body, offset as u64) else {
            break;
        };
        frames.push(frame);
        offset = body_start + body_len as usize;
    }
    Ok(ScannedJournal {
        frames,
        valid_len: offset as u64,
        file_len: bytes.len() as u64,
    })
}

/// Cuts a journal back to its valid part (after a torn final write).
pub(crate) fn truncate(path: &Path, len: u64) -> Result<(), StoreError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|error| StoreError::io(path, error))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|error| StoreError::io(path, error))
}

pub(crate) fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.{JOURNAL_EXTENSION}")
}

/// The journal files in `dir` with the first seq their names give, oldest first.
pub(crate) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut journals = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|error| StoreError::io(dir, error))? {
        let path = entry.map_err(|error| StoreError::io(dir, error))?.path();
        if path.extension().is_none_or(|ext| ext != JOURNAL_EXTENSION) {
            continue;
        }
        let first_seq = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .and_then(|stem| stem.parse::<u64>().ok())
            .ok_or_else(|| {
                StoreError::corrupt(
                    "journal file name",
                    path.display().to_string(),
                    "expected <first seq>.journal",
                )
            })?;
        journals.push((first_seq, path));
    }
    journals.sort();
    Ok(journals)
}

/// The journal file the writer appends to.
pub(crate) struct JournalWriter {
    pub path: PathBuf,
    file: File,
    pub len: u64,
}

impl JournalWriter {
    /// Opens (creating) the journal file for a head starting at `first_seq`.
    pub(crate) fn open(dir: &Path, first_seq: u64) -> Result<JournalWriter, StoreError> {
        let path = dir.join(file_name(first_seq));
        let existed = path.exists();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|error| StoreError::io(&path, error))?;
        let len = file
            .metadata()
            .map_err(|error| StoreError::io(&path, error))?
            .len();
        if !existed {
            crate::files::sync_parent(&path)?;
        }
        Ok(JournalWriter { path, file, len })
    }

    /// Writes a group's frames and makes them durable with one fdatasync.
    ///
    /// When that fails (a full disk, an I/O error), the file is cut back to its last
    /// durable length and synced again, so the failed frames can never reappear at
    /// recovery and later frames follow good ones: the error is then
    /// [`StoreError::WriteRolledBack`] and the journal stays usable. Only when the cut
    /// fails too is the I/O error returned, and the journal must not be written again.
    pub(crate) fn append_durably(&mut self, frames: &[u8]) -> Result<(), StoreError> {
        let written = self
            .file
            .write_all(frames)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += frames.len() as u64;
                Ok(())
            }
            Err(error) => {
                let cause = StoreError::io(&self.path, error);
                match self
                    .file
                    .set_len(self.len)
                    .and_then(|()| self.file.sync_data())
                {
                    Ok(()) => Err(StoreError::WriteRolledBack(cause.to_string())),
                    Err(_) => Err(cause),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(byte: u8) -> EncodedBlock {
        EncodedBlock {
            dictionary_id: 0,
            raw_len: 3,
            record_count: 1,
            bytes: vec![byte; 3],
        }
    }

    #[test]
    fn frames_read_back_and_a_torn_tail_is_where_reading_stops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = JournalWriter::open(dir.path(), 1).expect("open");
        let mut bytes = Vec::new();
        encode_frame(&mut bytes, 1, 1_000, &[true, false, true], &[block(1)]);
        encode_frame(&mut bytes, 3, 2_000, &[true], &[block(2), block(3)]);
        writer.append_durably(&bytes).expect("append");
        let complete = writer.len;
        let mut torn = Vec::new();
        encode_frame(&mut torn, 4, 3_000, &[true], &[block(4)]);
        writer
            .append_durably(&torn[..torn.len() / 2])
            .expect("append torn");

        let scanned = scan(&writer.path).expect("scan");
        assert_eq!(scanned.valid_len, complete);
        assert_eq!(scanned.frames.len(), 2);
        assert_eq!(scanned.frames[0].stored, vec![true, false, true]);
        assert_eq!(scanned.frames[1].first_seq, 3);
        assert_eq!(scanned.frames[1].blocks, vec![block(2), block(3)]);
        assert_eq!(
            list(dir.path()).expect("list"),
            vec![(1, writer.path.clone())]
        );
    }
}
