//! Fault injection for tests: [`FaultyObjectStore`] wraps any `object_store::ObjectStore` and
//! fails, delays and counts its calls on command, so every upload and download path can be
//! tested against a store that errors or is slow, and benchmarks can count requests.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// What kind of call an injected fault or a counter applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `put`, `put_opts`, multipart starts and copies (deletes pass through untouched).
    Write,
    /// `get`, `get_opts`, `get_ranges`, `head`.
    Read,
    /// `list` and `list_with_delimiter`.
    List,
}

#[derive(Default)]
struct Counter {
    calls: AtomicU64,
    fail_next: AtomicU64,
    failed: AtomicU64,
}

/// An object store that fails the next `n` calls of a kind with a transient error (as a
/// network failure or a 503 would), adds latency to every call, and counts calls.
pub struct FaultyObjectStore {
    inner: Arc<dyn ObjectStore>,
    writes: Counter,
    reads: Counter,
    lists: Counter,
    latency: Mutex<Duration>,
}

impl FaultyObjectStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        FaultyObjectStore {
            inner,
            writes: Counter::default(),
            reads: Counter::default(),
            lists: Counter::default(),
            latency: Mutex::new(Duration::ZERO),
        }
    }

    fn counter(&self, op: Op) -> &Counter {
        match op {
            Op::Write => &self.writes,
            Op::Read => &self.reads,
            Op::List => &self.lists,
        }
    }

    /// Fails the next `n` calls of `op` (`u64::MAX`: until told otherwise; 0: stop failing).
    pub fn fail_next(&self, op: Op, n: u64) {
        self.counter(op).fail_next.store(n, Ordering::SeqCst);
    }

    /// Calls of `op` that failed by injection so far.
    pub fn failed(&self, op: Op) -> u64 {
        self.counter(op).failed.load(Ordering::SeqCst)
    }

    /// Calls of `op` made so far, failed ones included.
    pub fn calls(&self, op: Op) -> u64 {
        self.counter(op).calls.load(Ordering::SeqCst)
    }

    /// Every call waits this long before it runs (zero: no delay).
    pub fn set_latency(&self, latency: Duration) {
        *self.latency.lock().unwrap_or_else(PoisonError::into_inner) = latency;
    }

    async fn enter(&self, op: Op, location: Option<&Path>) -> object_store::Result<()> {
        let latency = *self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        self.check(op, location)
    }

    fn check(&self, op: Op, location: Option<&Path>) -> object_store::Result<()> {
        let counter = self.counter(op);
        counter.calls.fetch_add(1, Ordering::SeqCst);
        let failing = counter
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            counter.failed.fetch_add(1, Ordering::SeqCst);
            let what = location.map_or_else(|| "(listing)".to_string(), |l| l.to_string());
            return Err(object_store::Error::Generic {
                store: "FaultyObjectStore",
                source: format!("injected {op:?} failure at {what}").into(),
            });
        }
        Ok(())
    }
}

impl fmt::Debug for FaultyObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyObjectStore({})", self.inner)
    }
}

impl fmt::Display for FaultyObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyObjectStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyObjectStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.enter(Op::Write, Some(location)).await?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.enter(Op::Write, Some(location)).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.enter(Op::Read, Some(location)).await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.enter(Op::Read, Some(location)).await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        // Listing is lazy; the fault (and the count) applies when it starts.
        match self.check(Op::List, prefix) {
            Ok(()) => self.inner.list(prefix),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.enter(Op::List, prefix).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.enter(Op::Write, Some(to)).await?;
        self.inner.copy_opts(from, to, options).await
    }
}
