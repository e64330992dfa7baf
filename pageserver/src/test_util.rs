//! Helpers for the crate's unit tests: a fault-injecting object store, configs, WAL records.

use std::fmt;
use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use strata_core::wal::{Mutation, WalRecord};
use strata_core::Lsn;

use crate::config::PageserverConfig;

/// Wraps a store and fails the next `n` writes (puts and multipart starts) with a transient
/// error, counting the failures.
#[derive(Debug)]
pub(crate) struct FailingObjectStore {
    inner: Arc<dyn ObjectStore>,
    fail_next_puts: AtomicU64,
    failed_puts: AtomicU64,
}

impl FailingObjectStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            fail_next_puts: AtomicU64::new(0),
            failed_puts: AtomicU64::new(0),
        }
    }

    /// Fails the next `n` writes (`u64::MAX`: until told otherwise; 0: stop failing).
    pub fn fail_next_puts(&self, n: u64) {
        self.fail_next_puts.store(n, Ordering::SeqCst);
    }

    pub fn failed_puts(&self) -> u64 {
        self.failed_puts.load(Ordering::SeqCst)
    }

    fn maybe_fail(&self, location: &Path) -> object_store::Result<()> {
        let failing = self
            .fail_next_puts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            self.failed_puts.fetch_add(1, Ordering::SeqCst);
            return Err(object_store::Error::Generic {
                store: "FailingObjectStore",
                source: format!("injected failure writing {location}").into(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for FailingObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FailingObjectStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FailingObjectStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.maybe_fail(location)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.maybe_fail(location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

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
