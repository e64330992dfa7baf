//! The pageserver's read caches, shared by every timeline.
//!
//! A read of a layer block goes, fastest first:
//! 1. **hot**: the block, decompressed, in the memory tier of a foyer hybrid cache
//!    (`block_cache_bytes`);
//! 2. **warm**: the same cache's local-disk tier (`block_disk_cache_bytes`), or a `pread` of
//!    the layer file if this pageserver wrote it and still has it;
//! 3. **cold**: a range read of just that block from object storage.
//!
//! Layer files this pageserver writes stay on local disk under a budget (`layer_cache_bytes`):
//! past it, the least recently read are deleted (evicted), and their blocks are read from
//! object storage from then on. A reader that still holds an evicted file open keeps reading
//! it (the file is unlinked, not truncated).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use std::path::Path;

use bytes::Bytes;
use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder,
    HybridCachePolicy, HybridCacheProperties, Location, PsyncIoEngineConfig,
};
use tracing::info;

use crate::error::{PageserverError, Result};
use crate::layer_file::LayerFile;

/// A block of one layer: the layer's cache id and the block index.
pub(crate) type BlockKey = (u64, u32);

/// The region size of foyer's disk tier (one file each): blocks larger than this stay in
/// memory only.
const DISK_REGION_BYTES: usize = 16 * 1024 * 1024;

fn cache_key((id, block): BlockKey) -> u128 {
    (u128::from(id) << 32) | u128::from(block)
}

/// Hit and miss counters, for tests and operators.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CacheStats {
    /// Blocks found in memory.
    pub block_hits: u64,
    /// Blocks found in the local-disk tier.
    pub block_disk_hits: u64,
    /// Blocks read from a layer file (local, or from object storage).
    pub block_misses: u64,
    /// Layers opened from object storage (footer and index read by range).
    pub remote_opens: u64,
    /// Local layer files evicted under the disk budget.
    pub evictions: u64,
}

pub(crate) struct LayerCache {
    blocks: HybridCache<u128, Bytes>,
    disk_budget: u64,
    next_id: AtomicU64,
    /// Every layer file of every timeline (dropped layers fall out as their `Weak` dies).
    files: Mutex<Vec<Weak<LayerFile>>>,
    block_hits: AtomicU64,
    block_disk_hits: AtomicU64,
    block_misses: AtomicU64,
    remote_opens: AtomicU64,
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
    /// Opens the caches; the disk tier lives in `dir`, which is emptied first (block ids are
    /// per process).
    pub async fn open(
        dir: &Path,
        block_cache_bytes: u64,
        block_disk_cache_bytes: u64,
        layer_cache_bytes: u64,
    ) -> Result<Arc<Self>> {
        match tokio::fs::remove_dir_all(dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        tokio::fs::create_dir_all(dir).await?;
        let foyer_error = |e: foyer::Error| PageserverError::Internal(format!("block cache: {e}"));
        let disk = usize::try_from(block_disk_cache_bytes)
            .unwrap_or(usize::MAX)
            .max(4 * DISK_REGION_BYTES);
        // One file per region: 16 MiB regions keep the descriptors few (256 for 4 GiB).
        let device = FsDeviceBuilder::new(dir)
            .with_capacity(disk)
            .build()
            .map_err(foyer_error)?;
        let blocks = HybridCacheBuilder::new()
            .with_name("strata-blocks")
            // Every block read from a file also goes to disk, so that a block evicted from
            // memory costs a disk read, not an object-store request.
            .with_policy(HybridCachePolicy::WriteOnInsertion)
            .memory(
                usize::try_from(block_cache_bytes)
                    .unwrap_or(usize::MAX)
                    .max(1),
            )
            .with_weighter(|_key: &u128, block: &Bytes| block.len() + 64)
            .storage()
            .with_io_engine_config(PsyncIoEngineConfig::new())
            .with_engine_config(BlockEngineConfig::new(device).with_block_size(DISK_REGION_BYTES))
            .build()
            .await
            .map_err(foyer_error)?;
        Ok(Arc::new(Self {
            blocks,
            disk_budget: layer_cache_bytes,
            next_id: AtomicU64::new(1),
            files: Mutex::new(Vec::new()),
            block_hits: AtomicU64::new(0),
            block_disk_hits: AtomicU64::new(0),
            block_misses: AtomicU64::new(0),
            remote_opens: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            clock: AtomicU64::new(0),
        }))
    }

    /// Flushes the memory tier's writes to disk and stops the disk tier.
    pub async fn close(&self) {
        if let Err(e) = self.blocks.close().await {
            tracing::warn!(error = %e, "closing the block cache failed");
        }
    }

    /// A new id for a layer: its blocks are cached under it.
    pub fn file_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The block: from memory, from the disk tier, or `load`ed (and then cached). A block
    /// of a `local` layer file is cached in memory only: the file already is its disk copy.
    /// Runs on a blocking thread: the disk tier is async and is waited for with the runtime's
    /// handle.
    pub fn block(
        &self,
        key: BlockKey,
        local: bool,
        load: impl FnOnce() -> Result<Bytes>,
    ) -> Result<Bytes> {
        let key = cache_key(key);
        if let Some(hit) = self.blocks.memory().get(&key) {
            self.block_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit.value().clone());
        }
        if !local {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                if let Ok(Some(hit)) = handle.block_on(self.blocks.get(&key)) {
                    self.block_disk_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(hit.value().clone());
                }
            }
        }
        self.block_misses.fetch_add(1, Ordering::Relaxed);
        let block = load()?;
        let location = if local {
            Location::InMem
        } else {
            Location::Default
        };
        self.blocks.insert_with_properties(
            key,
            block.clone(),
            HybridCacheProperties::default().with_location(location),
        );
        Ok(block)
    }

    /// Drops every cached block from memory (benchmarks use it to measure the disk tier).
    #[cfg(test)]
    pub fn clear_memory(&self) {
        self.blocks.memory().clear();
    }

    /// Drops every cached block, in memory and on disk.
    #[cfg(test)]
    pub async fn clear_blocks(&self) {
        self.blocks.clear().await.expect("clearing the block cache");
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

    pub fn note_remote_open(&self) {
        self.remote_opens.fetch_add(1, Ordering::Relaxed);
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
            block_disk_hits: self.block_disk_hits.load(Ordering::Relaxed),
            block_misses: self.block_misses.load(Ordering::Relaxed),
            remote_opens: self.remote_opens.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocks_come_from_memory_then_disk_then_the_loader() {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let defaults = crate::config::PageserverConfig::default();
        let opens = dirs.iter().map(|d| {
            LayerCache::open(
                d.path(),
                defaults.block_cache_bytes,
                defaults.block_disk_cache_bytes,
                defaults.layer_cache_bytes,
            )
        });
        let caches: Vec<_> = futures::future::join_all(opens)
            .await
            .into_iter()
            .collect::<Result<_>>()
            .unwrap();
        let cache = caches[0].clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let block = Bytes::from(vec![7u8; 1000]);
            let first = cache.block((1, 0), false, || Ok(block.clone())).unwrap();
            let again = cache
                .block((1, 0), false, || {
                    panic!("a cached block is not loaded again")
                })
                .unwrap();
            assert_eq!((first, again), (block.clone(), block));
            cache.stats()
        })
        .await
        .unwrap();
        assert_eq!((loaded.block_misses, loaded.block_hits), (1, 1));
        // Out of memory, the block is still on the disk tier (written when it was inserted).
        let cache = caches[0].clone();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        cache.clear_memory();
        let stats = tokio::task::spawn_blocking(move || {
            let block = cache
                .block((1, 0), false, || {
                    panic!("a block on the disk tier is not loaded again")
                })
                .unwrap();
            assert_eq!(block, Bytes::from(vec![7u8; 1000]));
            cache.stats()
        })
        .await
        .unwrap();
        assert_eq!(stats.block_disk_hits, 1);
        for cache in caches {
            cache.close().await;
        }
    }
}
