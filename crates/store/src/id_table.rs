//! The packed id table of `OTSEG006` segments: each row's id fingerprint (the low 32 bits
//! of xxh3(account, eventID)) with the row, in under 5 bytes per event where a table of
//! (fingerprint:u32 ‖ row:u32) takes 8.
//!
//! ```text
//! bucket_bits:u8 ‖ row_bits:u8 ‖ bucket_starts:u32 × (2^bucket_bits + 1) ‖ entries
//! ```
//! Entries are sorted by (fingerprint, row). The top `bucket_bits` bits of a fingerprint
//! are its bucket, and bucket `b`'s entries are `bucket_starts[b]..bucket_starts[b + 1]`;
//! an entry is the fingerprint's other `32 − bucket_bits` bits, then its row in
//! `row_bits` bits, packed as [`crate::codec::BitWriter`] does. A bucket holds about 16
//! entries, so a probe reads two starts and scans a few bytes; every fingerprint keeps
//! all its 32 bits, so a merge carries them over as they are. For a segment of 300k rows:
//! 18 + 19 bits per entry and 0.2 bytes of starts, 4.8 bytes per event.

use crate::codec::{BitWriter, PutBytes, bits_at, u32_at};

/// About this many entries per bucket: the starts cost 4/16 of a byte per entry.
const ENTRIES_PER_BUCKET: usize = 16;
const BUCKET_BITS_MAX: u32 = 24;
const HEADER_LEN: usize = 2;

/// The table of `ids`, (fingerprint, row) pairs sorted ascending, every row below `rows`.
pub(crate) fn encode(ids: &[(u32, u32)], rows: u32) -> Vec<u8> {
    debug_assert!(ids.is_sorted());
    let bucket_bits = (ids.len() / ENTRIES_PER_BUCKET)
        .checked_ilog2()
        .unwrap_or(0)
        .min(BUCKET_BITS_MAX);
    let row_bits = rows
        .saturating_sub(1)
        .checked_ilog2()
        .map_or(1, |bits| bits + 1);
    let low_bits = 32 - bucket_bits;
    let mut out = Vec::with_capacity(
        HEADER_LEN + 4 * ((1 << bucket_bits) + 1) + ids.len() * (low_bits + row_bits) as usize / 8,
    );
    out.put_u8(bucket_bits as u8);
    out.put_u8(row_bits as u8);
    let mut next_entry = 0;
    for bucket in 0..=1u64 << bucket_bits {
        while next_entry < ids.len() && bucket_of(ids[next_entry].0, bucket_bits) < bucket {
            next_entry += 1;
        }
        out.put_u32(next_entry as u32);
    }
    let mut entries = BitWriter::default();
    for &(fingerprint, row) in ids {
        entries.push(fingerprint, low_bits);
        entries.push(row, row_bits);
    }
    out.extend_from_slice(&entries.finish());
    out
}

fn bucket_of(fingerprint: u32, bucket_bits: u32) -> u64 {
    u64::from(fingerprint) >> (32 - bucket_bits)
}

/// A packed id table read in place.
#[derive(Clone, Copy)]
pub(crate) struct PackedIds<'a> {
    bucket_bits: u32,
    row_bits: u32,
    starts: &'a [u8],
    entries: &'a [u8],
    len: usize,
}

impl<'a> PackedIds<'a> {
    /// The table of a segment of `len` rows; `None` when its size does not add up.
    pub(crate) fn parse(section: &'a [u8], len: usize) -> Option<PackedIds<'a>> {
        let (&[bucket_bits, row_bits], rest) = section.split_first_chunk::<HEADER_LEN>()?;
        let (bucket_bits, row_bits) = (u32::from(bucket_bits), u32::from(row_bits));
        if bucket_bits > BUCKET_BITS_MAX || !(1..=32).contains(&row_bits) {
            return None;
        }
        let starts_len = 4 * ((1usize << bucket_bits) + 1);
        let entries_len = (len * (32 - bucket_bits + row_bits) as usize).div_ceil(8);
        if rest.len() != starts_len + entries_len {
            return None;
        }
        let (starts, entries) = rest.split_at(starts_len);
        Some(PackedIds {
            bucket_bits,
            row_bits,
            starts,
            entries,
            len,
        })
    }

    fn entry_bits(&self) -> usize {
        (32 - self.bucket_bits + self.row_bits) as usize
    }

    /// The (low fingerprint bits, row) of the entry at `index`.
    fn low_and_row(&self, index: usize) -> (u32, u32) {
        let start = index * self.entry_bits();
        let low_bits = 32 - self.bucket_bits;
        (
            bits_at(self.entries, start, low_bits),
            bits_at(self.entries, start + low_bits as usize, self.row_bits),
        )
    }

    /// The entries of `bucket`, clamped to the table (damage ends a range early).
    fn bucket_range(&self, bucket: usize) -> std::ops::Range<usize> {
        let start = u32_at(self.starts, bucket).map_or(self.len, |start| start as usize);
        let end = u32_at(self.starts, bucket + 1).map_or(self.len, |end| end as usize);
        start.min(self.len)..end.min(self.len)
    }

    /// Every (fingerprint, row), in table order, bucket by bucket.
    pub(crate) fn entries(self) -> impl Iterator<Item = (u32, u32)> + 'a {
        (0..1usize << self.bucket_bits).flat_map(move |bucket| {
            let bucket_part = ((bucket as u64) << (32 - self.bucket_bits)) as u32;
            self.bucket_range(bucket).map(move |index| {
                let (low_part, row) = self.low_and_row(index);
                (bucket_part | low_part, row)
            })
        })
    }

    /// The rows whose fingerprint is `fingerprint`.
    pub(crate) fn rows_with(&self, fingerprint: u32) -> Vec<u32> {
        let bucket = bucket_of(fingerprint, self.bucket_bits) as usize;
        let wanted = fingerprint & (u32::MAX >> self.bucket_bits);
        self.bucket_range(bucket)
            .map(|index| self.low_and_row(index))
            .skip_while(|(low, _)| *low < wanted)
            .take_while(|(low, _)| *low == wanted)
            .map(|(_, row)| row)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (fingerprint, row) pairs from a small LCG, sorted, with some fingerprints shared.
    fn ids(count: u32) -> Vec<(u32, u32)> {
        let mut state = 7u64;
        let mut ids: Vec<(u32, u32)> = (0..count)
            .map(|row| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let fingerprint = (state >> 32) as u32;
                // Every tenth row shares the row before's fingerprint.
                (
                    if row % 10 == 9 {
                        fingerprint ^ 1
                    } else {
                        fingerprint
                    },
                    row,
                )
            })
            .collect();
        ids.extend([(0, count), (u32::MAX, count + 1), (u32::MAX, count + 2)]);
        ids.sort_unstable();
        ids
    }

    #[test]
    fn every_entry_reads_back_and_every_fingerprint_finds_exactly_its_rows() {
        for count in [0u32, 1, 15, 16, 100, 5_000, 70_000] {
            let ids = ids(count);
            let rows = count + 3;
            let table = encode(&ids, rows);
            let packed = PackedIds::parse(&table, ids.len()).expect("parses");
            let read: Vec<(u32, u32)> = packed.entries().collect();
            assert_eq!(read, ids, "{count} ids");
            for &(fingerprint, _) in ids.iter().step_by(7).chain(ids.last()) {
                let expected: Vec<u32> = ids
                    .iter()
                    .filter(|(other, _)| *other == fingerprint)
                    .map(|(_, row)| *row)
                    .collect();
                assert_eq!(packed.rows_with(fingerprint), expected);
                if !ids.iter().any(|(other, _)| *other == fingerprint ^ 0x100) {
                    assert!(packed.rows_with(fingerprint ^ 0x100).is_empty());
                }
            }
            if count >= 5_000 {
                assert!(table.len() < ids.len() * 6, "{} bytes", table.len());
            }
        }
    }

    #[test]
    fn a_table_whose_size_does_not_add_up_is_refused_and_damage_never_panics() {
        let ids = ids(1_000);
        let table = encode(&ids, 1_003);
        assert!(PackedIds::parse(&table[..table.len() - 1], ids.len()).is_none());
        assert!(PackedIds::parse(&table, ids.len() + 1).is_none());
        for at in (0..table.len()).step_by(3) {
            let mut damaged = table.clone();
            damaged[at] ^= 0x5a;
            if let Some(packed) = PackedIds::parse(&damaged, ids.len()) {
                let _ = packed.entries().count();
                let _ = packed.rows_with(ids[at % ids.len()].0);
            }
        }
    }
}
