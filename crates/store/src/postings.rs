//! Postings: the ascending rows of one term, as delta varints in chunks of 128 with a
//! table of each chunk's first row, so a cursor can skip to a row without decoding what
//! lies before it; or, when that is smaller, as a bitmap.
//!
//! ```text
//! more than 128:  count:varint ‖ (first_row:u32 ‖ data_offset:u32) × chunks ‖ deltas:varint …
//! up to 128:      count:varint ‖ first_row:varint ‖ deltas:varint …
//! bitmap:         0:varint ‖ count:varint ‖ first_row:varint ‖ words:u64 …
//! ```
//! A chunk's deltas start after its first row (which the table holds). Most terms (an IP
//! address, an ARN) have a handful of rows: they skip the table, which would cost more
//! than their rows. Terms that hold a large share of a segment's rows (its account,
//! region and lane, the read-only flag, a common event name) cost a byte per row as
//! deltas and an eighth of a byte per row of their span as a bitmap, where bit `i` of the
//! little-endian words is row `first_row + i`. A bitmap starts with a count of 0, which
//! no delta list has (empty lists are never written), and only segments of the format
//! that introduced it (`OTSEG004`) hold one.

use crate::codec::{ByteReader, PutBytes, u32_at};

const CHUNK: usize = 128;

/// Encodes strictly ascending rows, as deltas or as a bitmap, whichever is smaller.
pub(crate) fn encode(rows: &[u32], out: &mut Vec<u8>) {
    let start = out.len();
    encode_deltas(rows, out);
    let (Some(&first), Some(&last)) = (rows.first(), rows.last()) else {
        return;
    };
    let words = (last - first) as usize / 64 + 1;
    // The bitmap's header is at most 1 + 5 + 5 bytes.
    if words * 8 + 11 >= out.len() - start {
        return;
    }
    out.truncate(start);
    out.put_varint(0);
    out.put_varint(rows.len() as u64);
    out.put_varint(u64::from(first));
    let mut bits = vec![0u64; words];
    for row in rows {
        let offset = (row - first) as usize;
        bits[offset / 64] |= 1 << (offset % 64);
    }
    for word in bits {
        out.extend_from_slice(&word.to_le_bytes());
    }
}

fn encode_deltas(rows: &[u32], out: &mut Vec<u8>) {
    out.put_varint(rows.len() as u64);
    if rows.len() <= CHUNK {
        if let Some(first) = rows.first() {
            out.put_varint(u64::from(*first));
        }
        for pair in rows.windows(2) {
            out.put_varint(u64::from(pair[1] - pair[0]));
        }
        return;
    }
    let mut data = Vec::with_capacity(rows.len() * 2);
    let mut table = Vec::with_capacity(rows.len().div_ceil(CHUNK) * 8);
    for chunk in rows.chunks(CHUNK) {
        table.put_u32(chunk[0]);
        table.put_u32(data.len() as u32);
        for pair in chunk.windows(2) {
            data.put_varint(u64::from(pair[1] - pair[0]));
        }
    }
    out.extend_from_slice(&table);
    out.extend_from_slice(&data);
}

/// A forward cursor over encoded postings. Damaged input ends the list early rather than
/// panicking; the segment's checksums are what report damage.
pub(crate) struct PostingsCursor<'a> {
    count: usize,
    table: &'a [u8],
    data: &'a [u8],
    /// Index (into the whole list) of `current`.
    index: usize,
    current: Option<u32>,
    reader: ByteReader<'a>,
    /// Set for a bitmap list (and then `table` and `data` are unused).
    bitmap: Option<Bitmap<'a>>,
}

/// A bitmap list: bit `i` of the little-endian words is row `first + i`.
#[derive(Clone, Copy)]
struct Bitmap<'a> {
    words: &'a [u8],
    first: u32,
}

impl Bitmap<'_> {
    /// The first row at or after `from` in the list.
    fn next_from(&self, from: u32) -> Option<u32> {
        let offset = from.saturating_sub(self.first) as usize;
        let words = self.words.len() / 8;
        let mut index = offset / 64;
        let mut word = self.word(index)? & (u64::MAX << (offset % 64));
        loop {
            if word != 0 {
                let row =
                    u64::from(self.first) + (index as u64) * 64 + u64::from(word.trailing_zeros());
                return u32::try_from(row).ok();
            }
            index += 1;
            if index >= words {
                return None;
            }
            word = self.word(index)?;
        }
    }

    fn word(&self, index: usize) -> Option<u64> {
        let bytes = self.words.get(index * 8..index * 8 + 8)?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }
}

impl<'a> PostingsCursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> PostingsCursor<'a> {
        let mut reader = ByteReader::new(bytes);
        let count = reader.varint().unwrap_or(0) as usize;
        if count == 0 && !reader.is_empty() {
            return PostingsCursor::bitmap(reader, bytes);
        }
        if count <= CHUNK {
            let current = reader
                .varint()
                .ok()
                .and_then(|first| u32::try_from(first).ok());
            return PostingsCursor {
                count: if current.is_some() { count } else { 0 },
                table: &[],
                data: &[],
                index: 0,
                current,
                reader,
                bitmap: None,
            };
        }
        let table_len = count.div_ceil(CHUNK) * 8;
        let table = reader.take(table_len).unwrap_or(&[]);
        let data = &bytes[reader.position().min(bytes.len())..];
        let count = if table.len() == table_len { count } else { 0 };
        let mut cursor = PostingsCursor {
            count,
            table,
            data,
            index: 0,
            current: None,
            reader: ByteReader::new(&[]),
            bitmap: None,
        };
        cursor.enter_chunk(0);
        cursor
    }

    /// A list of one row, which a term table entry holds in place of its postings.
    pub(crate) fn only(row: u32) -> PostingsCursor<'a> {
        PostingsCursor {
            count: 1,
            table: &[],
            data: &[],
            index: 0,
            current: Some(row),
            reader: ByteReader::new(&[]),
            bitmap: None,
        }
    }

    /// After the leading 0 of a bitmap list.
    fn bitmap(mut reader: ByteReader<'a>, bytes: &'a [u8]) -> PostingsCursor<'a> {
        let (Ok(count), Ok(first)) = (reader.varint(), reader.varint()) else {
            return PostingsCursor::new(&[]);
        };
        let bitmap = Bitmap {
            words: &bytes[reader.position().min(bytes.len())..],
            first: u32::try_from(first).unwrap_or(u32::MAX),
        };
        let current = bitmap.next_from(bitmap.first);
        PostingsCursor {
            count: if current.is_some() { count as usize } else { 0 },
            table: &[],
            data: &[],
            index: 0,
            current,
            reader: ByteReader::new(&[]),
            bitmap: Some(bitmap),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub(crate) fn current(&self) -> Option<u32> {
        self.current
    }

    fn enter_chunk(&mut self, chunk: usize) {
        self.index = chunk * CHUNK;
        if self.index >= self.count {
            self.current = None;
            return;
        }
        let first = u32_at(self.table, chunk * 2);
        let offset = u32_at(self.table, chunk * 2 + 1).map(|offset| offset as usize);
        match (first, offset) {
            (Some(first), Some(offset)) if offset <= self.data.len() => {
                self.current = Some(first);
                self.reader = ByteReader::new(&self.data[offset..]);
            }
            _ => self.current = None,
        }
    }

    pub(crate) fn advance(&mut self) -> Option<u32> {
        let current = self.current?;
        self.index += 1;
        if let Some(bitmap) = self.bitmap {
            self.current = current
                .checked_add(1)
                .and_then(|next| bitmap.next_from(next));
            return self.current;
        }
        if self.index >= self.count {
            self.current = None;
        } else if self.index.is_multiple_of(CHUNK) {
            self.enter_chunk(self.index / CHUNK);
        } else {
            self.current = self
                .reader
                .varint()
                .ok()
                .and_then(|delta| u32::try_from(delta).ok())
                .and_then(|delta| current.checked_add(delta));
        }
        self.current
    }

    /// Moves to the first row at or after `target`; `None` past the end.
    pub(crate) fn seek(&mut self, target: u32) -> Option<u32> {
        let current = self.current?;
        if current >= target {
            return Some(current);
        }
        if let Some(bitmap) = self.bitmap {
            self.current = bitmap.next_from(target);
            return self.current;
        }
        // Jump to the last chunk whose first row is at or before the target.
        let chunk_now = self.index / CHUNK;
        let chunks = self.count.div_ceil(CHUNK);
        let (mut low, mut high) = (chunk_now, chunks);
        while high - low > 1 {
            let middle = (low + high) / 2;
            match u32_at(self.table, middle * 2) {
                Some(first) if first <= target => low = middle,
                _ => high = middle,
            }
        }
        if low > chunk_now {
            self.enter_chunk(low);
        }
        while let Some(row) = self.current {
            if row >= target {
                return Some(row);
            }
            self.advance();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_reads_back_and_seeks_land_on_the_next_row() {
        for count in [0usize, 1, 5, 127, 128, 129, 1_000, 10_000] {
            let rows: Vec<u32> = (0..count as u32).map(|i| i * 7 + (i % 3)).collect();
            let mut bytes = Vec::new();
            encode_deltas(&rows, &mut bytes);
            let mut cursor = PostingsCursor::new(&bytes);
            assert_eq!(cursor.len(), count);
            let mut decoded = Vec::new();
            while let Some(row) = cursor.current() {
                decoded.push(row);
                cursor.advance();
            }
            assert_eq!(decoded, rows);
            for target in [0u32, 1, 6, 7, 500, 896, 897, 5_000, 69_999, 80_000] {
                let mut cursor = PostingsCursor::new(&bytes);
                let expected = rows.iter().copied().find(|row| *row >= target);
                assert_eq!(
                    cursor.seek(target),
                    expected,
                    "count {count} target {target}"
                );
            }
        }
    }

    #[test]
    fn dense_lists_are_bitmaps_that_read_back_and_seek_like_deltas() {
        let lists: [Vec<u32>; 4] = [
            (0..20_000).collect(),
            (0..20_000)
                .filter(|row| row % 3 != 1)
                .map(|row| row + 77)
                .collect(),
            // Dense, with a long gap in the middle.
            (0..5_000).chain(60_000..65_000).collect(),
            (0..200u32).map(|row| row * 2).collect(),
        ];
        for rows in lists {
            let mut bytes = Vec::new();
            encode(&rows, &mut bytes);
            let mut deltas = Vec::new();
            encode_deltas(&rows, &mut deltas);
            assert_eq!(bytes[0], 0, "a bitmap");
            assert!(
                bytes.len() < deltas.len(),
                "{} against {} bytes",
                bytes.len(),
                deltas.len()
            );
            let mut cursor = PostingsCursor::new(&bytes);
            assert_eq!(cursor.len(), rows.len());
            let mut decoded = Vec::new();
            while let Some(row) = cursor.current() {
                decoded.push(row);
                cursor.advance();
            }
            assert_eq!(decoded, rows);
            for target in [
                0u32, 1, 76, 77, 78, 79, 4_999, 5_000, 30_000, 64_999, 65_000, 90_000,
            ] {
                let mut cursor = PostingsCursor::new(&bytes);
                let expected = rows.iter().copied().find(|row| *row >= target);
                assert_eq!(cursor.seek(target), expected, "target {target}");
                // And onwards from there, as a leapfrog continues.
                if let Some(found) = expected {
                    let next = rows.iter().copied().find(|row| *row > found);
                    assert_eq!(cursor.advance(), next);
                }
            }
        }
    }

    #[test]
    fn sparse_lists_stay_deltas() {
        let rows: Vec<u32> = (0..1_000).map(|row| row * 100).collect();
        let mut bytes = Vec::new();
        encode(&rows, &mut bytes);
        let mut deltas = Vec::new();
        encode_deltas(&rows, &mut deltas);
        assert_eq!(bytes, deltas);
    }

    #[test]
    fn damaged_postings_end_early_instead_of_panicking() {
        let mut bitmap = Vec::new();
        encode(&(0..5_000).collect::<Vec<u32>>(), &mut bitmap);
        assert_eq!(bitmap[0], 0);
        for cut in 0..bitmap.len() {
            let mut cursor = PostingsCursor::new(&bitmap[..cut]);
            let mut steps = 0;
            while cursor.current().is_some() && steps < 10_000 {
                cursor.advance();
                steps += 1;
            }
        }
        let rows: Vec<u32> = (0..300).map(|row| row * 10).collect();
        let mut bytes = Vec::new();
        encode(&rows, &mut bytes);
        for cut in 0..bytes.len() {
            let mut cursor = PostingsCursor::new(&bytes[..cut]);
            let mut steps = 0;
            while cursor.current().is_some() && steps < 1_000 {
                cursor.advance();
                steps += 1;
            }
        }
    }
}
