//! A bounded cache of decompressed record blocks, shared by lookups and log readers.
//! Consumers read the log in seq order and pages cluster in time, so consecutive reads
//! mostly hit the block the previous one decompressed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::blocks::DecodedBlock;
use crate::error::StoreError;

/// (source id, block index): heads and segments each get a process-wide source id.
pub(crate) type BlockKey = (u64, u32);

pub(crate) struct BlockCache {
    budget_bytes: usize,
    entries: Mutex<CacheEntries>,
    tick: AtomicU64,
}

#[derive(Default)]
struct CacheEntries {
    blocks: HashMap<BlockKey, (Arc<DecodedBlock>, u64)>,
    bytes: usize,
}

impl BlockCache {
    pub(crate) fn new(budget_bytes: u64) -> BlockCache {
        BlockCache {
            budget_bytes: usize::try_from(budget_bytes).unwrap_or(usize::MAX),
            entries: Mutex::new(CacheEntries::default()),
            tick: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheEntries> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn contains(&self, key: &BlockKey) -> bool {
        self.lock().blocks.contains_key(key)
    }

    pub(crate) fn get_or_load(
        &self,
        key: BlockKey,
        load: impl FnOnce() -> Result<DecodedBlock, StoreError>,
    ) -> Result<Arc<DecodedBlock>, StoreError> {
        let tick = self.tick.fetch_add(1, Ordering::Relaxed);
        if let Some((block, used)) = self.lock().blocks.get_mut(&key) {
            *used = tick;
            return Ok(block.clone());
        }
        // Decompress outside the lock: readers of other blocks are not held up.
        let block = Arc::new(load()?);
        let mut entries = self.lock();
        entries.bytes += block.size_bytes();
        if let Some((replaced, _)) = entries.blocks.insert(key, (block.clone(), tick)) {
            entries.bytes -= replaced.size_bytes();
        }
        while entries.bytes > self.budget_bytes && entries.blocks.len() > 1 {
            // Evict the least recently used eighth: one scan pays for many evictions.
            let mut ages: Vec<(u64, BlockKey)> = entries
                .blocks
                .iter()
                .map(|(key, (_, used))| (*used, *key))
                .collect();
            ages.sort_unstable();
            for (_, key) in ages.iter().take((ages.len() / 8).max(1)) {
                if let Some((evicted, _)) = entries.blocks.remove(key) {
                    entries.bytes -= evicted.size_bytes();
                }
            }
        }
        Ok(block)
    }

    /// Forgets every block of a source that no longer exists (a sealed head, a merged
    /// or expired segment).
    pub(crate) fn forget_source(&self, source: u64) {
        let mut entries = self.lock();
        let mut freed = 0;
        entries.blocks.retain(|(block_source, _), (block, _)| {
            let keep = *block_source != source;
            if !keep {
                freed += block.size_bytes();
            }
            keep
        });
        entries.bytes -= freed;
    }
}
