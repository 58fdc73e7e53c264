//! Postings: the ascending rows of one term, as delta varints in chunks of 128 with a
//! table of each chunk's first row, so a cursor can skip to a row without decoding what
//! lies before it.
//!
//! ```text
//! more than 128:  count:varint ‖ (first_row:u32 ‖ data_offset:u32) × chunks ‖ deltas:varint …
//! up to 128:      count:varint ‖ first_row:varint ‖ deltas:varint …
//! ```
//! A chunk's deltas start after its first row (which the table holds). Most terms (an IP
//! address, an ARN) have a handful of rows: they skip the table, which would cost more
//! than their rows.

use crate::codec::{ByteReader, PutBytes, u32_at};

const CHUNK: usize = 128;

/// Encodes strictly ascending rows.
pub(crate) fn encode(rows: &[u32], out: &mut Vec<u8>) {
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
}

impl<'a> PostingsCursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> PostingsCursor<'a> {
        let mut reader = ByteReader::new(bytes);
        let count = reader.varint().unwrap_or(0) as usize;
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
        };
        cursor.enter_chunk(0);
        cursor
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
            encode(&rows, &mut bytes);
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
    fn damaged_postings_end_early_instead_of_panicking() {
        let rows: Vec<u32> = (0..300).collect();
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
