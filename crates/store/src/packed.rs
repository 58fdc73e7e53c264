//! A column of integers with random access in little space: chunks of 64 values, each
//! stored as its first value plus zigzag-varint deltas from one value to the next. Event
//! times of newest-first rows, their seqs, and the seq → row map are all nearly monotonic,
//! so most deltas take one byte instead of eight or four.
//!
//! ```text
//! count:u32 ‖ (first value:i64 ‖ data offset:u32) × chunks ‖ deltas:zigzag varint …
//! ```

use crate::codec::{ByteReader, PutBytes, i64_at, u32_at};

const CHUNK: usize = 64;
const TABLE_ENTRY_LEN: usize = 12;

pub(crate) fn encode(values: &[i64]) -> Vec<u8> {
    let mut table = Vec::with_capacity(values.len().div_ceil(CHUNK) * TABLE_ENTRY_LEN);
    let mut data = Vec::with_capacity(values.len() * 2);
    for chunk in values.chunks(CHUNK) {
        table.put_i64(chunk[0]);
        table.put_u32(data.len() as u32);
        for pair in chunk.windows(2) {
            data.put_varint(zigzag(pair[1].wrapping_sub(pair[0])));
        }
    }
    let mut out = Vec::with_capacity(4 + table.len() + data.len());
    out.put_u32(values.len() as u32);
    out.extend_from_slice(&table);
    out.extend_from_slice(&data);
    out
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// A read view of an encoded column.
#[derive(Clone, Copy)]
pub(crate) struct Packed<'a> {
    count: usize,
    table: &'a [u8],
    data: &'a [u8],
}

impl<'a> Packed<'a> {
    /// `None` when the bytes cannot be a column (the caller reports where).
    pub(crate) fn parse(bytes: &'a [u8]) -> Option<Packed<'a>> {
        let mut reader = ByteReader::new(bytes);
        let count = reader.u32().ok()? as usize;
        let table = reader.take(count.div_ceil(CHUNK) * TABLE_ENTRY_LEN).ok()?;
        let data = &bytes[reader.position()..];
        Some(Packed { count, table, data })
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub(crate) fn get(&self, index: usize) -> Option<i64> {
        if index >= self.count {
            return None;
        }
        let chunk = index / CHUNK;
        let entry = &self.table[chunk * TABLE_ENTRY_LEN..];
        let mut value = i64_at(entry, 0)?;
        let offset = u32_at(&entry[8..], 0)? as usize;
        let mut reader = ByteReader::new(self.data.get(offset..)?);
        for _ in 0..index % CHUNK {
            value = value.wrapping_add(unzigzag(reader.varint().ok()?));
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_reads_back_whatever_its_order() {
        let mut state = 7u64;
        let mut random = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for count in [0usize, 1, 63, 64, 65, 1_000] {
            let descending: Vec<i64> = (0..count as i64)
                .map(|i| 1_700_000_000_000 - i * 3)
                .collect();
            let scattered: Vec<i64> = (0..count).map(|_| random() as i64).collect();
            let with_gaps: Vec<i64> = (0..count as i64)
                .map(|i| if i % 5 == 0 { -1 } else { i })
                .collect();
            for values in [descending, scattered, with_gaps] {
                let bytes = encode(&values);
                let packed = Packed::parse(&bytes).expect("parses");
                assert_eq!(packed.len(), count);
                for (index, value) in values.iter().enumerate() {
                    assert_eq!(packed.get(index), Some(*value));
                }
                assert_eq!(packed.get(count), None);
            }
        }
        let monotonic: Vec<i64> = (0..64_000).map(|i| 1_700_000_000_000 - i).collect();
        assert!(
            encode(&monotonic).len() < 64_000 * 2,
            "about a byte per value"
        );
    }

    #[test]
    fn cut_short_columns_are_refused_or_read_as_absent() {
        let bytes = encode(&(0..200).collect::<Vec<i64>>());
        for cut in 0..bytes.len() {
            if let Some(packed) = Packed::parse(&bytes[..cut]) {
                for index in 0..packed.len() {
                    let _ = packed.get(index);
                }
            }
        }
    }
}
