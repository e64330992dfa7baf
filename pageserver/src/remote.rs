//! Object storage as the pageserver uses it: layer uploads and downloads, manifest versions,
//! all with retries and backoff, so a flaky store delays work but never loses it.

use std::future::Future;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use strata_core::{layout, TimelineId};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::PageserverConfig;
use crate::error::{PageserverError, Result};

/// Multipart uploads send parts of this size, a few at a time.
const MULTIPART_PART_SIZE: usize = 8 * 1024 * 1024;
const MULTIPART_CONCURRENCY: usize = 4;

/// How a create-if-absent write ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CreateOutcome {
    Created,
    AlreadyExists,
}

/// The object store plus the retry policy.
#[derive(Debug, Clone)]
pub(crate) struct RemoteStorage {
    store: Arc<dyn ObjectStore>,
    initial_backoff: Duration,
    max_backoff: Duration,
    read_attempts: u32,
    multipart_threshold: u64,
}

/// Errors worth retrying: anything but answers about the object itself or our credentials.
fn is_transient(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    !matches!(
        e,
        E::NotFound { .. }
            | E::AlreadyExists { .. }
            | E::Precondition { .. }
            | E::NotModified { .. }
            | E::NotSupported { .. }
            | E::NotImplemented { .. }
            | E::InvalidPath { .. }
            | E::PermissionDenied { .. }
            | E::Unauthenticated { .. }
            | E::UnknownConfigurationKey { .. }
    )
}

impl RemoteStorage {
    pub fn new(store: Arc<dyn ObjectStore>, config: &PageserverConfig) -> Self {
        Self {
            store,
            initial_backoff: config.remote_retry_initial_backoff,
            max_backoff: config.remote_retry_max_backoff,
            read_attempts: config.remote_read_attempts.max(1),
            multipart_threshold: config.multipart_threshold,
        }
    }

    /// Runs `op` until it succeeds, fails permanently, runs out of `attempts` (`None`: never),
    /// or `cancel` fires. Cancellation is checked between attempts, never inside one, so a
    /// caller always knows whether the last attempt completed.
    async fn retry<T, F, Fut>(
        &self,
        what: &str,
        attempts: Option<u32>,
        cancel: &CancellationToken,
        mut op: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut backoff = self.initial_backoff;
        let mut attempt = 0u32;
        loop {
            if cancel.is_cancelled() {
                return Err(PageserverError::ShuttingDown);
            }
            attempt += 1;
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let transient = match &e {
                        PageserverError::Remote(e) => is_transient(e),
                        PageserverError::Io(_) => true,
                        _ => false,
                    };
                    if !transient || attempts.is_some_and(|max| attempt >= max) {
                        return Err(e);
                    }
                    warn!(attempt, ?backoff, error = %e, "{what} failed, retrying");
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return Err(PageserverError::ShuttingDown),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }

    /// Uploads a local layer file, retrying until it succeeds or `cancel` fires.
    pub async fn upload_layer(
        &self,
        timeline: TimelineId,
        local: &FsPath,
        name: &str,
        size: u64,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let location = Path::from(layout::layer_object(timeline, name));
        self.retry("layer upload", None, cancel, || async {
            if size >= self.multipart_threshold {
                self.upload_multipart(local, &location).await
            } else {
                let data = tokio::fs::read(local).await?;
                self.store
                    .put(&location, PutPayload::from(data))
                    .await
                    .map(|_| ())
                    .map_err(Into::into)
            }
        })
        .await?;
        info!(layer = name, size, "uploaded layer");
        Ok(())
    }

    async fn upload_multipart(&self, local: &FsPath, location: &Path) -> Result<()> {
        let mut file = tokio::fs::File::open(local).await?;
        let upload = self.store.put_multipart(location).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_PART_SIZE);
        let mut buf = vec![0u8; MULTIPART_PART_SIZE];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e.into());
                }
            };
            if let Err(e) = writer.wait_for_capacity(MULTIPART_CONCURRENCY).await {
                let _ = writer.abort().await;
                return Err(e.into());
            }
            writer.write(&buf[..n]);
        }
        writer.finish().await?;
        Ok(())
    }

    /// Bytes `range` of a layer object (one block, or a footer and index), with the retries a
    /// read gets.
    pub async fn get_layer_range(
        &self,
        timeline: TimelineId,
        name: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes> {
        let location = Path::from(layout::layer_object(timeline, name));
        let cancel = CancellationToken::new();
        self.retry(
            "layer range read",
            Some(self.read_attempts),
            &cancel,
            || async { Ok(self.store.get_range(&location, range.clone()).await?) },
        )
        .await
    }

    /// Versions of a timeline's manifest present in the store, unordered.
    pub async fn list_manifest_versions(
        &self,
        timeline: TimelineId,
        cancel: &CancellationToken,
    ) -> Result<Vec<u64>> {
        let prefix = Path::from(layout::timeline_manifest_dir(timeline));
        self.retry(
            "manifest listing",
            Some(self.read_attempts),
            cancel,
            || async {
                let mut listing = self.store.list(Some(&prefix));
                let mut versions = Vec::new();
                while let Some(meta) = listing.next().await {
                    let meta = meta?;
                    if let Some(v) = meta
                        .location
                        .filename()
                        .and_then(layout::parse_manifest_version)
                    {
                        versions.push(v);
                    }
                }
                Ok(versions)
            },
        )
        .await
    }

    /// Reads one manifest version.
    pub async fn get_manifest(
        &self,
        timeline: TimelineId,
        version: u64,
        cancel: &CancellationToken,
    ) -> Result<Bytes> {
        let dir = layout::timeline_manifest_dir(timeline);
        let location = Path::from(layout::manifest_version(&dir, version));
        self.retry(
            "manifest read",
            Some(self.read_attempts),
            cancel,
            || async { Ok(self.store.get(&location).await?.bytes().await?) },
        )
        .await
    }

    /// Writes one manifest version if no object holds that version yet.
    pub async fn create_manifest(
        &self,
        timeline: TimelineId,
        version: u64,
        body: Bytes,
        attempts: Option<u32>,
        cancel: &CancellationToken,
    ) -> Result<CreateOutcome> {
        let dir = layout::timeline_manifest_dir(timeline);
        let location = Path::from(layout::manifest_version(&dir, version));
        self.retry("manifest publish", attempts, cancel, || async {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            match self
                .store
                .put_opts(&location, PutPayload::from(body.clone()), opts)
                .await
            {
                Ok(_) => Ok(CreateOutcome::Created),
                Err(object_store::Error::AlreadyExists { .. }) => Ok(CreateOutcome::AlreadyExists),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Deletes a layer object (absent counts as deleted), retrying a few times.
    pub async fn delete_layer(&self, timeline: TimelineId, name: &str) -> Result<()> {
        let location = Path::from(layout::layer_object(timeline, name));
        self.delete(&location).await
    }

    /// Deletes an object (absent counts as deleted), retrying a few times.
    pub async fn delete(&self, location: &Path) -> Result<()> {
        let cancel = CancellationToken::new();
        self.retry("delete", Some(self.read_attempts), &cancel, || async {
            match self.store.delete(location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Layer objects of a timeline: name and last modification time.
    pub async fn list_layers(
        &self,
        timeline: TimelineId,
        cancel: &CancellationToken,
    ) -> Result<Vec<(String, chrono::DateTime<chrono::Utc>)>> {
        let prefix = Path::from(layout::layer_object(timeline, ""));
        self.retry(
            "layer listing",
            Some(self.read_attempts),
            cancel,
            || async {
                let mut listing = self.store.list(Some(&prefix));
                let mut layers = Vec::new();
                while let Some(meta) = listing.next().await {
                    let meta = meta?;
                    if let Some(name) = meta.location.filename() {
                        layers.push((name.to_string(), meta.last_modified));
                    }
                }
                Ok(layers)
            },
        )
        .await
    }

    /// Deletes one manifest version.
    pub async fn delete_manifest(&self, timeline: TimelineId, version: u64) -> Result<()> {
        let dir = layout::timeline_manifest_dir(timeline);
        self.delete(&Path::from(layout::manifest_version(&dir, version)))
            .await
    }

    pub fn read_attempts(&self) -> u32 {
        self.read_attempts
    }
}
