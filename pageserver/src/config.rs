//! The pageserver's configuration: one struct, every field with a default, so that `strata up`
//! can start a pageserver with nothing but a data directory and the safekeepers' addresses.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a pageserver runs. Durations (de)serialize as human text ("10m", "250ms").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PageserverConfig {
    /// Local cache directory. Everything in it is disposable: layer files come back from object
    /// storage and the rest is replayed from the safekeepers' WAL.
    pub data_dir: PathBuf,
    /// `host:port` (or `http://host:port`) of the safekeepers to stream WAL from. Empty means
    /// no WAL ingest (reads serve what object storage holds).
    pub safekeepers: Vec<String>,
    /// Bytes in the open in-memory layer before it is frozen and written as a layer file.
    pub checkpoint_distance: u64,
    /// An open layer older than this is flushed even if small, so that idle timelines still
    /// reach object storage and let the safekeepers trim their WAL.
    #[serde(with = "humantime_serde")]
    pub checkpoint_timeout: Duration,
    /// How long a read waits for ingest to reach its `not_modified_since` before answering
    /// UNAVAILABLE.
    #[serde(with = "humantime_serde")]
    pub wait_lsn_timeout: Duration,
    /// Target size of a layer file block: the unit of reads and of checksums.
    pub block_size: usize,
    /// Frozen layers that may wait for upload before ingest stalls. Memory for unflushed WAL
    /// is bounded by about `checkpoint_distance × (max_frozen_layers + 1)`.
    pub max_frozen_layers: usize,
    /// Layer files at least this large are uploaded with a multipart upload.
    pub multipart_threshold: u64,
    /// First wait between retries of a failed object-store call; doubles up to the maximum.
    #[serde(with = "humantime_serde")]
    pub remote_retry_initial_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub remote_retry_max_backoff: Duration,
    /// Memory for decompressed layer blocks (the hot tier of reads), shared by all timelines.
    pub block_cache_bytes: u64,
    /// Local disk for layer blocks read from object storage (the block cache's disk tier,
    /// in `<data_dir>/block-cache`).
    pub block_disk_cache_bytes: u64,
    /// Disk budget for the layer files this pageserver wrote: beyond it the least recently
    /// read are deleted, and their blocks are read from object storage from then on.
    pub layer_cache_bytes: u64,
    /// L0 files (one per flush) that trigger a compaction into L1 files.
    pub compaction_threshold: usize,
    /// Target size of L1 and image files written by compaction.
    pub compaction_target_size: u64,
    /// Rounds of L1 files above the newest image that trigger writing new images of the
    /// whole key space.
    pub image_creation_threshold: usize,
    /// Ingest stalls while L0 files waiting for compaction hold this many bytes, so reads
    /// never have to cross an unbounded pile of them. Stalls are counted.
    pub l0_stall_bytes: u64,
    /// How often compaction looks for work even without a flush to prompt it.
    #[serde(with = "humantime_serde")]
    pub compaction_period: Duration,
    /// History kept for reads in the past: GC removes only what no read within this window
    /// (and no branch or lease) can need.
    #[serde(with = "humantime_serde")]
    pub pitr_window: Duration,
    /// How often GC runs.
    #[serde(with = "humantime_serde")]
    pub gc_period: Duration,
    /// Attempts for an object-store call that a client waits on (attach, layer download)
    /// before the read fails with UNAVAILABLE. Uploads retry until they succeed.
    pub remote_read_attempts: u32,
}

impl Default for PageserverConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".strata/pageserver"),
            safekeepers: Vec::new(),
            checkpoint_distance: 64 * 1024 * 1024,
            checkpoint_timeout: Duration::from_secs(600),
            wait_lsn_timeout: Duration::from_secs(60),
            block_size: 32 * 1024,
            max_frozen_layers: 2,
            multipart_threshold: 32 * 1024 * 1024,
            remote_retry_initial_backoff: Duration::from_millis(100),
            remote_retry_max_backoff: Duration::from_secs(10),
            remote_read_attempts: 5,
            block_cache_bytes: 256 * 1024 * 1024,
            block_disk_cache_bytes: 4 * 1024 * 1024 * 1024,
            layer_cache_bytes: 16 * 1024 * 1024 * 1024,
            compaction_threshold: 10,
            compaction_target_size: 128 * 1024 * 1024,
            image_creation_threshold: 3,
            l0_stall_bytes: 2 * 1024 * 1024 * 1024,
            compaction_period: Duration::from_secs(20),
            pitr_window: Duration::from_secs(7 * 24 * 3600),
            gc_period: Duration::from_secs(3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_human_text() {
        let config: PageserverConfig =
            serde_json::from_str(r#"{"checkpoint_timeout": "90s", "wait_lsn_timeout": "250ms"}"#)
                .unwrap();
        assert_eq!(config.checkpoint_timeout, Duration::from_secs(90));
        assert_eq!(config.wait_lsn_timeout, Duration::from_millis(250));
        assert_eq!(config.checkpoint_distance, 64 * 1024 * 1024);
        let text = serde_json::to_string(&config).unwrap();
        let back: PageserverConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, config);
    }
}
