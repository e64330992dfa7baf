//! Helpers for the crate's unit tests: configs, WAL records, a local bucket.

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;
use strata_core::wal::{Mutation, WalRecord};
use strata_core::Lsn;

use crate::config::PageserverConfig;

pub(crate) fn local_store(dir: &FsPath) -> Arc<dyn ObjectStore> {
    Arc::new(LocalFileSystem::new_with_prefix(dir).expect("bucket directory exists"))
}

/// Small layers and blocks and quick retries, so tests exercise many files and blocks fast.
pub(crate) fn test_config(data_dir: &FsPath) -> PageserverConfig {
    PageserverConfig {
        data_dir: data_dir.to_path_buf(),
        checkpoint_distance: 64 * 1024,
        checkpoint_timeout: Duration::from_secs(3600),
        wait_lsn_timeout: Duration::from_secs(30),
        block_size: 1024,
        remote_retry_initial_backoff: Duration::from_millis(5),
        remote_retry_max_backoff: Duration::from_millis(50),
        // Small caches, so that tests do not reserve gigabytes.
        block_cache_bytes: 4 * 1024 * 1024,
        block_disk_cache_bytes: 8 * 1024 * 1024,
        // Tests of compaction turn it on; the rest see every L0 file they flushed.
        compaction_threshold: usize::MAX,
        image_creation_threshold: usize::MAX,
        gc_period: Duration::from_secs(24 * 3600),
        ..PageserverConfig::default()
    }
}

pub(crate) fn key(i: u64) -> Bytes {
    Bytes::from(format!("key-{i:06}"))
}

pub(crate) fn put(k: Bytes, v: impl Into<Bytes>) -> Mutation {
    Mutation::Put {
        key: k,
        value: v.into(),
    }
}

pub(crate) fn del(k: Bytes) -> Mutation {
    Mutation::Delete { key: k }
}

pub(crate) fn record(lsn: u64, mutations: Vec<Mutation>) -> WalRecord {
    WalRecord {
        lsn: Lsn(lsn),
        commit_time_micros: 0,
        mutations,
    }
}

pub(crate) fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}
