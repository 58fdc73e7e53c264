//! Bloom filters over 64-bit id hashes: each segment keeps one, so checking an incoming
//! event for duplicates reads a segment's id table only when the filter says "maybe".
//!
//! New segments (`OTSEG008`) keep a split-block filter, the layout Parquet, Impala and
//! Kudu use: the hash picks one 32-byte block and sets one bit in each of its eight
//! words, so a probe reads one cache line. The dedup check probes every segment's filter
//! for every new event, and the classic filter's up to seven scattered reads made it
//! about a quarter of the writer's time at 10M events (BENCHMARKS.md, 7 Dec 2026). The
//! block count is not rounded to a power of two, so 10 bits per event cost 1.25 bytes,
//! where the classic filter's rounding made 1.7 on the benchmark's store.
//!
//! Older segments keep the classic filter (10 bits per event rounded up to a power of two,
//! 7 probes by double hashing, about 1% false positives), read by [`may_contain`].

const BITS_PER_ITEM: usize = 10;
const PROBES: u32 = 7;

/// The classic filter of segments before `OTSEG008`.
#[cfg(test)]
pub(crate) fn build(hashes: impl ExactSizeIterator<Item = u64>) -> Vec<u8> {
    let bits = (hashes.len() * BITS_PER_ITEM).max(64).next_power_of_two();
    let mut filter = vec![0u8; bits / 8];
    for hash in hashes {
        for bit in probes(hash, bits) {
            filter[bit / 8] |= 1 << (bit % 8);
        }
    }
    filter
}

/// Whether the classic filter may hold `hash`.
pub(crate) fn may_contain(filter: &[u8], hash: u64) -> bool {
    let bits = filter.len() * 8;
    if bits == 0 || !bits.is_power_of_two() {
        // A filter we cannot read says "maybe": the id table decides.
        return true;
    }
    probes(hash, bits).all(|bit| filter[bit / 8] & (1 << (bit % 8)) != 0)
}

/// Double hashing (Kirsch–Mitzenmacher) from the two halves of the hash.
fn probes(hash: u64, bits: usize) -> impl Iterator<Item = usize> {
    let low = hash as u32;
    let high = (hash >> 32) as u32 | 1;
    (0..PROBES).map(move |probe| (low.wrapping_add(probe.wrapping_mul(high)) as usize) & (bits - 1))
}

const BLOCK_BYTES: usize = 32;
const WORDS: usize = BLOCK_BYTES / 4;
/// The odd constants of Parquet's split-block filter: each spreads the hash's low half
/// over one word's 32 bits differently.
const SALTS: [u32; WORDS] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

/// A split-block filter of `hashes` (10 bits each, at least one block).
pub(crate) fn build_split_block(hashes: impl ExactSizeIterator<Item = u64>) -> Vec<u8> {
    let mut builder = SplitBlockBuilder::for_items(hashes.len());
    for hash in hashes {
        builder.insert(hash);
    }
    builder.finish()
}

/// Builds a split-block filter one hash at a time, for callers that know how many
/// hashes will come without holding them all (the dedup groups of `id_groups.rs`).
pub(crate) struct SplitBlockBuilder {
    words: Vec<u32>,
    blocks: usize,
}

/// Blocks of a split-block filter with room for `items` hashes at 10 bits each.
fn split_blocks_for(items: usize) -> usize {
    (items * BITS_PER_ITEM).div_ceil(BLOCK_BYTES * 8).max(1)
}

/// Bytes of the filter [`SplitBlockBuilder::for_items`] makes, known before it is built.
pub(crate) fn split_block_bytes(items: usize) -> usize {
    split_blocks_for(items) * BLOCK_BYTES
}

impl SplitBlockBuilder {
    /// Room for `items` hashes at 10 bits each.
    pub(crate) fn for_items(items: usize) -> SplitBlockBuilder {
        let blocks = split_blocks_for(items);
        SplitBlockBuilder {
            words: vec![0u32; blocks * WORDS],
            blocks,
        }
    }

    pub(crate) fn insert(&mut self, hash: u64) {
        let start = block_of(hash, self.blocks) * WORDS;
        for (word, bit) in self.words[start..start + WORDS]
            .iter_mut()
            .zip(block_mask(hash))
        {
            *word |= bit;
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.words
            .iter()
            .flat_map(|word| word.to_le_bytes())
            .collect()
    }
}

/// Whether the split-block filter may hold `hash`.
pub(crate) fn may_contain_split_block(filter: &[u8], hash: u64) -> bool {
    let Some(block) = split_block(filter, hash) else {
        // A filter we cannot read says "maybe": the id table decides.
        return true;
    };
    // Every word is tested without an early exit, which the compiler makes one vector
    // compare; the block is one cache line either way.
    let mut all_set = true;
    for (word, bit) in block.chunks_exact(4).zip(block_mask(hash)) {
        let word = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        all_set &= word & bit != 0;
    }
    all_set
}

/// Asks the CPU to start loading the block `hash` falls in. The dedup check probes every
/// segment's filter for one id; issued for all of them first, the cache misses overlap
/// instead of following one another.
pub(crate) fn prefetch_split_block(filter: &[u8], hash: u64) {
    let Some(block) = split_block(filter, hash) else {
        return;
    };
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: SSE is part of every x86_64 target, and a prefetch is a hint that reads
        // nothing the program sees: it cannot fault, even on an address it does not own
        // (this one is inside `filter`).
        #[allow(unsafe_code)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(block.as_ptr().cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = block;
}

/// The block of a split-block filter that `hash` falls in; `None` when `filter` is not
/// whole blocks.
fn split_block(filter: &[u8], hash: u64) -> Option<&[u8]> {
    let blocks = filter.len() / BLOCK_BYTES;
    if blocks == 0 || !filter.len().is_multiple_of(BLOCK_BYTES) {
        return None;
    }
    let start = block_of(hash, blocks) * BLOCK_BYTES;
    filter.get(start..start + BLOCK_BYTES)
}

/// The block a hash falls in: its high half scaled to the block count (multiply-shift, so
/// the count need not be a power of two).
fn block_of(hash: u64, blocks: usize) -> usize {
    (((hash >> 32) * blocks as u64) >> 32) as usize
}

/// One bit per word, chosen by the top five bits of the low half times the word's salt.
fn block_mask(hash: u64) -> [u32; WORDS] {
    let low = hash as u32;
    SALTS.map(|salt| 1u32 << (low.wrapping_mul(salt) >> 27))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(range: std::ops::Range<u64>) -> Vec<u64> {
        range
            .map(|i| xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()))
            .collect()
    }

    #[test]
    fn members_are_always_found_and_strangers_rarely() {
        let members = hashes(0..10_000);
        let filter = build(members.iter().copied());
        assert!(members.iter().all(|hash| may_contain(&filter, *hash)));
        let false_positives = hashes(10_000..20_000)
            .iter()
            .filter(|hash| may_contain(&filter, **hash))
            .count();
        assert!(false_positives < 300, "{false_positives} false positives");
    }

    #[test]
    fn a_split_block_filter_finds_every_member_and_few_strangers_in_less_space() {
        for members in [1, 7, 1_000, 100_000] {
            let member_hashes = hashes(0..members);
            let filter = build_split_block(member_hashes.iter().copied());
            assert!(
                member_hashes
                    .iter()
                    .all(|hash| may_contain_split_block(&filter, *hash)),
                "a member of {members} was not found"
            );
            let strangers = hashes(1 << 40..(1 << 40) + 100_000);
            let false_positives = strangers
                .iter()
                .filter(|hash| may_contain_split_block(&filter, **hash))
                .count();
            // 10 bits per member: about 1.2% false positives.
            assert!(
                false_positives < 2_000,
                "{false_positives} of 100,000 strangers passed a filter of {members}"
            );
            if members >= 1_000 {
                assert!(
                    filter.len() as u64 <= members * 10 / 8 + 32,
                    "{}",
                    filter.len()
                );
                assert!(filter.len() < build(member_hashes.iter().copied()).len());
            }
        }
    }

    #[test]
    fn a_filter_that_cannot_be_read_says_maybe() {
        assert!(may_contain_split_block(&[], 42));
        assert!(may_contain_split_block(&[0; 33], 42));
        assert!(!may_contain_split_block(&[0; 64], 42));
    }
}
