//! The pageserver's read caches, shared by every timeline.
//!
//! A read of a layer block goes, fastest first:
//! 1. **hot**: the block, decompressed, in a foyer in-memory cache (`block_cache_bytes`);
//! 2. **warm**: a `pread` of the layer file on local disk;
//! 3. **cold**: a download of the layer file from object storage, after which it is warm.
//!
//! Local layer files are kept under a disk budget (`layer_cache_bytes`): when resident files
//! exceed it, the least recently read ones are deleted (evicted) and come back from object
//! storage the next time a read needs them. A reader that still holds an evicted file open
//! keeps reading it (the file is unlinked, not truncated).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use foyer::{Cache, CacheBuilder};
use tracing::info;

use crate::layer_file::LayerFile;

/// A block of one layer: the layer's cache id and the block index.
pub(crate) type BlockKey = (u64, u32);

/// Hit and miss counters, for tests and operators.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CacheStats {
    pub block_hits: u64,
    pub block_misses: u64,
    pub downloads: u64,
    pub evictions: u64,
}

pub(crate) struct LayerCache {
    blocks: Cache<BlockKey, Bytes>,
    disk_budget: u64,
    next_id: AtomicU64,
    /// Every layer file of every timeline (dropped layers fall out as their `Weak` dies).
    files: Mutex<Vec<Weak<LayerFile>>>,
    block_hits: AtomicU64,
    block_misses: AtomicU64,
    downloads: AtomicU64,
    evictions: AtomicU64,
    /// A logical clock for "least recently read".
    clock: AtomicU64,
}

impl std::fmt::Debug for LayerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerCache")
            .field("disk_budget", &self.disk_budget)
            .field("stats", &self.stats())
            .finish()
    }
}

impl LayerCache {
    pub fn new(block_cache_bytes: u64, layer_cache_bytes: u64) -> Arc<Self> {
        let blocks = CacheBuilder::new(
            usize::try_from(block_cache_bytes)
                .unwrap_or(usize::MAX)
                .max(1),
        )
        .with_weighter(|_key: &BlockKey, block: &Bytes| block.len() + 64)
        .build();
        Arc::new(Self {
            blocks,
            disk_budget: layer_cache_bytes,
            next_id: AtomicU64::new(1),
            files: Mutex::new(Vec::new()),
            block_hits: AtomicU64::new(0),
            block_misses: AtomicU64::new(0),
            downloads: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            clock: AtomicU64::new(0),
        })
    }

    /// A new id for a layer: its blocks are cached under it.
    pub fn file_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The block, from memory, or `load`ed (and then kept in memory).
    pub fn block<E>(
        &self,
        key: BlockKey,
        load: impl FnOnce() -> Result<Bytes, E>,
    ) -> Result<Bytes, E> {
        if let Some(hit) = self.blocks.get(&key) {
            self.block_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit.value().clone());
        }
        self.block_misses.fetch_add(1, Ordering::Relaxed);
        let block = load()?;
        self.blocks.insert(key, block.clone());
        Ok(block)
    }

    /// Drops every cached block (tests and benchmarks use it to measure warm reads).
    #[cfg(test)]
    pub fn clear_blocks(&self) {
        self.blocks.clear();
    }

    /// The current tick of the "recently read" clock.
    pub fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// Tracks a layer file for the disk budget.
    pub fn register(&self, file: &Arc<LayerFile>) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        files.retain(|f| f.strong_count() > 0);
        files.push(Arc::downgrade(file));
    }

    pub fn note_download(&self) {
        self.downloads.fetch_add(1, Ordering::Relaxed);
    }

    /// Evicts the least recently read local layer files until the resident ones fit the disk
    /// budget. Files being opened or downloaded right now are skipped.
    pub async fn enforce_budget(&self) {
        let mut resident: Vec<Arc<LayerFile>> = {
            let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
            files
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|f| f.is_on_disk())
                .collect()
        };
        let mut total: u64 = resident.iter().map(|f| f.desc().size).sum();
        if total <= self.disk_budget {
            return;
        }
        resident.sort_by_key(|f| f.last_read());
        for file in resident {
            if total <= self.disk_budget {
                break;
            }
            if file.evict().await {
                total -= file.desc().size;
                self.evictions.fetch_add(1, Ordering::Relaxed);
                info!(layer = %file.desc().name, "evicted local layer file (disk budget)");
            }
        }
    }

    /// Evicts every local layer file (benchmarks use it to measure cold reads).
    #[cfg(test)]
    pub async fn evict_all(&self) {
        let files: Vec<Arc<LayerFile>> = {
            let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
            files.iter().filter_map(Weak::upgrade).collect()
        };
        for file in files {
            file.evict().await;
        }
    }

    /// Bytes of local layer files.
    #[cfg(test)]
    pub fn resident_bytes(&self) -> u64 {
        let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        files
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|f| f.is_on_disk())
            .map(|f| f.desc().size)
            .sum()
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            block_hits: self.block_hits.load(Ordering::Relaxed),
            block_misses: self.block_misses.load(Ordering::Relaxed),
            downloads: self.downloads.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }
}
