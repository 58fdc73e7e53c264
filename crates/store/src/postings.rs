//! Postings: the ascending rows of one term, as delta varints in chunks of 128 with a
//! table of each chunk's first row, so a cursor can skip to a row without decoding what
//! lies before it; or, when that is smaller, as Elias-Fano chunks or a bitmap.
//!
//! ```text
//! more than 128:  count:varint ‖ (first_row:u32 ‖ data_offset:u32) × chunks ‖ deltas:varint …
//! up to 128:      count:varint ‖ first_row:varint ‖ deltas:varint …
//! bitmap:         0:varint ‖ count:varint ‖ first_row:varint ‖ words:u64 …
//! Elias-Fano:     0:varint ‖ 0:varint ‖ count:varint ‖ (first_row:u32 ‖ data_offset:u32)
//!                 × chunks ‖ (low_bits:u8 ‖ lows ‖ highs) × chunks
//! ```
//! A chunk's deltas start after its first row (which the table holds). Most terms (an IP
//! address, an ARN) have a handful of rows: they skip the table, which would cost more
//! than their rows. Terms that hold a large share of a segment's rows (its account,
//! region and lane, the read-only flag, a common event name) cost a byte per row as
//! deltas and an eighth of a byte per row of their span as a bitmap, where bit `i` of the
//! little-endian words is row `first_row + i`. A bitmap starts with a count of 0, which
//! no delta list has (empty lists are never written), and only segments of the format
//! that introduced it (`OTSEG004`) hold one.
//!
//! Between the two, lists whose gaps vary (an event name, a user's events) cost about
//! 1.3 bytes per row as deltas: a gap under 128 takes a byte, one up to 16k two.
//! Elias-Fano writes each of a chunk's offsets from its first row as `low_bits` low bits,
//! packed, and the rest in unary (bit `(offset >> low_bits) + i` of `highs` set for the
//! chunk's `i`-th offset), with `low_bits` ≈ log2 of the chunk's mean gap: 2 + log2(mean
//! gap) bits per row whatever the spread (6.96 against 9.08 bytes/event for the 10M
//! benchmark store's lists over 128 rows). It starts with a bitmap of no rows, which no
//! bitmap is, and only `OTSEG006` segments hold it.

use crate::codec::{BitWriter, ByteReader, PutBytes, bits_at, u32_at};

const CHUNK: usize = 128;

/// Encodes strictly ascending rows, as deltas, Elias-Fano chunks or a bitmap, whichever
/// is smallest.
pub(crate) fn encode(rows: &[u32], out: &mut Vec<u8>) {
    let start = out.len();
    encode_deltas(rows, out);
    let (Some(&first), Some(&last)) = (rows.first(), rows.last()) else {
        return;
    };
    if rows.len() > CHUNK {
        let mut elias_fano = Vec::new();
        encode_elias_fano(rows, &mut elias_fano);
        if elias_fano.len() < out.len() - start {
            out.truncate(start);
            out.extend_from_slice(&elias_fano);
        }
    }
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

/// `low_bits` for offsets up to `span` in a chunk of `offsets` of them: about log2 of the
/// mean gap, where Elias-Fano's size is least.
fn low_bits_for(span: u32, offsets: usize) -> u32 {
    match span / (offsets.max(1) as u32) {
        0 => 0,
        mean_gap => mean_gap.ilog2(),
    }
}

fn encode_elias_fano(rows: &[u32], out: &mut Vec<u8>) {
    out.put_varint(0);
    out.put_varint(0);
    out.put_varint(rows.len() as u64);
    let mut table = Vec::with_capacity(rows.len().div_ceil(CHUNK) * 8);
    let mut data = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(CHUNK) {
        let first = chunk[0];
        table.put_u32(first);
        table.put_u32(data.len() as u32);
        let offsets = &chunk[1..];
        let span = offsets.last().map_or(0, |last| last - first);
        let low_bits = low_bits_for(span, offsets.len());
        data.push(low_bits as u8);
        let mut lows = BitWriter::default();
        let mut highs: Vec<u8> = Vec::new();
        for (index, row) in offsets.iter().enumerate() {
            let offset = row - first;
            lows.push(offset & ((1u32 << low_bits) - 1), low_bits);
            let high = (offset >> low_bits) as usize + index;
            if highs.len() <= high / 8 {
                highs.resize(high / 8 + 1, 0);
            }
            highs[high / 8] |= 1 << (high % 8);
        }
        data.extend_from_slice(&lows.finish());
        data.extend_from_slice(&highs);
    }
    out.extend_from_slice(&table);
    out.extend_from_slice(&data);
}

/// The position of the first set bit of `bytes` at or after `start`.
fn next_set_bit(bytes: &[u8], start: usize) -> Option<usize> {
    let mut position = start;
    while position / 8 < bytes.len() {
        // 56 bits at a time: `bits_at` reads at most 32.
        let window = u64::from(bits_at(bytes, position, 28))
            | (u64::from(bits_at(bytes, position + 28, 28)) << 28);
        if window != 0 {
            return Some(position + window.trailing_zeros() as usize);
        }
        position += 56;
    }
    None
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
    /// For an Elias-Fano list, the current chunk's state (`reader` is then unused).
    elias_fano: Option<EliasFanoChunk<'a>>,
}

/// Where a cursor is in an Elias-Fano chunk.
#[derive(Clone, Copy)]
struct EliasFanoChunk<'a> {
    first: u32,
    low_bits: u32,
    lows: &'a [u8],
    highs: &'a [u8],
    /// Just past the set bit of the current offset in `highs`.
    next_high: usize,
}

impl EliasFanoChunk<'_> {
    /// The chunk's `index`-th offset's row (`index` ≥ 1: the first row is the table's).
    fn row(&mut self, index: usize) -> Option<u32> {
        let set = next_set_bit(self.highs, self.next_high)?;
        self.next_high = set + 1;
        let high = u32::try_from(set.checked_sub(index - 1)?).ok()?;
        let low = bits_at(
            self.lows,
            (index - 1) * self.low_bits as usize,
            self.low_bits,
        );
        let offset = high.checked_shl(self.low_bits)? | low;
        self.first.checked_add(offset)
    }
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
                elias_fano: None,
            };
        }
        PostingsCursor::chunked(reader, bytes, count, false)
    }

    /// After the count of a list of chunks: the chunk table, then the chunks.
    fn chunked(
        mut reader: ByteReader<'a>,
        bytes: &'a [u8],
        count: usize,
        elias_fano: bool,
    ) -> PostingsCursor<'a> {
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
            elias_fano: elias_fano.then_some(EliasFanoChunk {
                first: 0,
                low_bits: 0,
                lows: &[],
                highs: &[],
                next_high: 0,
            }),
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
            elias_fano: None,
        }
    }

    /// After the leading 0 of a bitmap list (or of an Elias-Fano one).
    fn bitmap(mut reader: ByteReader<'a>, bytes: &'a [u8]) -> PostingsCursor<'a> {
        let Ok(count) = reader.varint() else {
            return PostingsCursor::new(&[]);
        };
        if count == 0 {
            let Ok(count) = reader.varint() else {
                return PostingsCursor::new(&[]);
            };
            return PostingsCursor::chunked(reader, bytes, count as usize, true);
        }
        let Ok(first) = reader.varint() else {
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
            elias_fano: None,
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
                if self.elias_fano.is_some() {
                    self.elias_fano = self.elias_fano_chunk(chunk, first, offset);
                    if self.elias_fano.is_none() {
                        self.current = None;
                    }
                } else {
                    self.reader = ByteReader::new(&self.data[offset..]);
                }
            }
            _ => self.current = None,
        }
    }

    /// The Elias-Fano chunk at `offset` of the data; `None` when it is damaged.
    fn elias_fano_chunk(
        &self,
        chunk: usize,
        first: u32,
        offset: usize,
    ) -> Option<EliasFanoChunk<'a>> {
        let end = u32_at(self.table, chunk * 2 + 3).map_or(self.data.len(), |end| end as usize);
        let bytes = self.data.get(offset..end)?;
        let (&low_bits, rest) = bytes.split_first()?;
        let low_bits = u32::from(low_bits);
        if low_bits > 31 {
            return None;
        }
        let offsets = (self.count - chunk * CHUNK).min(CHUNK) - 1;
        let lows_len = (offsets * low_bits as usize).div_ceil(8);
        Some(EliasFanoChunk {
            first,
            low_bits,
            lows: rest.get(..lows_len)?,
            highs: rest.get(lows_len..)?,
            next_high: 0,
        })
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
        } else if let Some(chunk) = &mut self.elias_fano {
            self.current = chunk.row(self.index % CHUNK);
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
    use std::collections::BTreeSet;

    use super::*;

    /// `bytes` decode to `rows`, and a seek to each target lands on the first row at or
    /// after it, from where the cursor goes on to the next (as a leapfrog continues).
    fn assert_reads_back_and_seeks(
        bytes: &[u8],
        rows: &[u32],
        targets: impl IntoIterator<Item = u32>,
    ) {
        let cursor = PostingsCursor::new(bytes);
        assert_eq!(cursor.len(), rows.len());
        assert_eq!(every_row(cursor), rows);
        for target in targets {
            let mut cursor = PostingsCursor::new(bytes);
            let expected = rows.iter().copied().find(|row| *row >= target);
            assert_eq!(cursor.seek(target), expected, "target {target}");
            if let Some(found) = expected {
                let next = rows.iter().copied().find(|row| *row > found);
                assert_eq!(cursor.advance(), next);
            }
        }
    }

    /// Every row from the cursor's position on.
    fn every_row(mut cursor: PostingsCursor<'_>) -> Vec<u32> {
        let mut rows = Vec::new();
        while let Some(row) = cursor.current() {
            rows.push(row);
            cursor.advance();
        }
        rows
    }

    #[test]
    fn every_row_reads_back_and_seeks_land_on_the_next_row() {
        for count in [0usize, 1, 5, 127, 128, 129, 1_000, 10_000] {
            let rows: Vec<u32> = (0..count as u32).map(|i| i * 7 + (i % 3)).collect();
            let mut bytes = Vec::new();
            encode_deltas(&rows, &mut bytes);
            let cursor = PostingsCursor::new(&bytes);
            assert_eq!(cursor.len(), count);
            assert_eq!(every_row(cursor), rows);
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
            assert_reads_back_and_seeks(
                &bytes,
                &rows,
                [
                    0u32, 1, 76, 77, 78, 79, 4_999, 5_000, 30_000, 64_999, 65_000, 90_000,
                ],
            );
        }
    }

    /// Ascending rows whose gaps vary from 1 to ~`max_gap` (a small LCG, so the same every
    /// run), the lists Elias-Fano is for.
    fn rows_with_varied_gaps(count: usize, max_gap: u32, seed: u64) -> Vec<u32> {
        let mut state = seed;
        let mut row = 0u32;
        (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let gap = 1 + ((state >> 33) as u32 % max_gap) * ((state >> 20) as u32 % 3) / 2;
                row += gap;
                row
            })
            .collect()
    }

    #[test]
    fn lists_with_varied_gaps_are_elias_fano_that_reads_back_and_seeks_like_deltas() {
        for (count, max_gap, seed) in [
            (129, 300, 1),
            (1_000, 40, 2),
            (5_000, 3_000, 3),
            (777, 1, 4),
        ] {
            let rows = rows_with_varied_gaps(count, max_gap, seed);
            let mut bytes = Vec::new();
            encode(&rows, &mut bytes);
            let mut deltas = Vec::new();
            encode_deltas(&rows, &mut deltas);
            if max_gap > 1 {
                assert_eq!(bytes[..2], [0, 0], "Elias-Fano for gaps up to {max_gap}");
                assert!(
                    bytes.len() < deltas.len() * 9 / 10,
                    "{} against {}",
                    bytes.len(),
                    deltas.len()
                );
            }
            let last = *rows.last().expect("rows");
            let targets = (0..last + 10)
                .step_by(97)
                .chain([rows[127], rows[128], last]);
            assert_reads_back_and_seeks(&bytes, &rows, targets);
        }
    }

    #[test]
    fn elias_fano_takes_offsets_as_wide_as_a_row() {
        let rows = [0, 1, u32::MAX / 2, u32::MAX - 1]
            .into_iter()
            .chain((0..200).map(|row| u32::MAX - 1_000 + row * 3))
            .collect::<BTreeSet<u32>>()
            .into_iter()
            .collect::<Vec<u32>>();
        let mut bytes = Vec::new();
        encode_elias_fano(&rows, &mut bytes);
        let cursor = PostingsCursor::new(&bytes);
        assert_eq!(every_row(cursor), rows);
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
        let mut elias_fano = Vec::new();
        encode(&rows_with_varied_gaps(300, 500, 5), &mut elias_fano);
        assert_eq!(elias_fano[..2], [0, 0]);
        for cut in 0..elias_fano.len() {
            let mut damaged = elias_fano.clone();
            damaged[cut] ^= 0xa5;
            for bytes in [&elias_fano[..cut], &damaged[..]] {
                let mut cursor = PostingsCursor::new(bytes);
                let mut steps = 0;
                while cursor.current().is_some() && steps < 1_000 {
                    cursor.advance();
                    steps += 1;
                }
                let _ = PostingsCursor::new(bytes).seek(40_000);
            }
        }
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
