//! A layer file named by the manifest: present locally, or downloaded the first time a read
//! needs it, and evicted again when local files exceed the disk budget (see `layer_cache.rs`).
//! The local copy is only a cache of the object in object storage.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use strata_core::TimelineId;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::error::{PageserverError, Result};
use crate::layer_cache::LayerCache;
use crate::layer_desc::LayerDesc;
use crate::layer_format::LayerReader;
use crate::remote::RemoteStorage;

/// One historic layer of a timeline. Opening it (and downloading it first if needed) happens
/// under a lock, so concurrent readers wait for the same download.
#[derive(Debug)]
pub(crate) struct LayerFile {
    desc: LayerDesc,
    local_path: PathBuf,
    reader: tokio::sync::Mutex<Option<Arc<LayerReader>>>,
    /// Whether the local copy exists (counts against the disk budget).
    on_disk: AtomicBool,
    /// The cache clock at the last read, for least-recently-read eviction.
    last_read: AtomicU64,
    /// The id this layer's blocks are cached under.
    cache_id: u64,
    cache: Arc<LayerCache>,
}

impl LayerFile {
    /// A layer known from the manifest; it may or may not be on local disk.
    pub fn new(desc: LayerDesc, local_dir: &Path, cache: &Arc<LayerCache>) -> Arc<Self> {
        let local_path = local_dir.join(&desc.name);
        let on_disk = std::fs::metadata(&local_path).is_ok_and(|m| m.len() == desc.size);
        Self::tracked(desc, local_path, None, on_disk, cache)
    }

    /// A layer this pageserver just wrote and opened.
    pub fn resident(
        desc: LayerDesc,
        local_path: PathBuf,
        reader: Arc<LayerReader>,
        cache: &Arc<LayerCache>,
    ) -> Arc<Self> {
        Self::tracked(desc, local_path, Some(reader), true, cache)
    }

    fn tracked(
        desc: LayerDesc,
        local_path: PathBuf,
        reader: Option<Arc<LayerReader>>,
        on_disk: bool,
        cache: &Arc<LayerCache>,
    ) -> Arc<Self> {
        let cache_id = reader
            .as_ref()
            .and_then(|r| r.cache_id())
            .unwrap_or_else(|| cache.file_id());
        let file = Arc::new(Self {
            cache_id,
            desc,
            local_path,
            reader: tokio::sync::Mutex::new(reader),
            on_disk: AtomicBool::new(on_disk),
            last_read: AtomicU64::new(cache.tick()),
            cache: cache.clone(),
        });
        cache.register(&file);
        file
    }

    pub fn desc(&self) -> &LayerDesc {
        &self.desc
    }

    pub fn is_on_disk(&self) -> bool {
        self.on_disk.load(Ordering::Acquire)
    }

    pub fn last_read(&self) -> u64 {
        self.last_read.load(Ordering::Relaxed)
    }

    /// The open file, downloading it first if the local copy is missing, of the wrong size,
    /// or damaged.
    pub async fn reader(
        &self,
        timeline: TimelineId,
        remote: &RemoteStorage,
        cancel: &CancellationToken,
    ) -> Result<Arc<LayerReader>> {
        self.last_read.store(self.cache.tick(), Ordering::Relaxed);
        let mut slot = self.reader.lock().await;
        if let Some(reader) = slot.as_ref() {
            return Ok(reader.clone());
        }
        let local_size = tokio::fs::metadata(&self.local_path)
            .await
            .ok()
            .map(|m| m.len());
        if local_size == Some(self.desc.size) {
            match self.open().await {
                Ok(reader) => {
                    self.on_disk.store(true, Ordering::Release);
                    *slot = Some(reader.clone());
                    return Ok(reader);
                }
                Err(e) => warn!(
                    layer = %self.desc.name,
                    error = %e,
                    "local layer copy unusable, downloading it again"
                ),
            }
        }
        remote
            .download_layer(
                timeline,
                &self.desc.name,
                &self.local_path,
                self.desc.size,
                cancel,
            )
            .await?;
        self.cache.note_download();
        let reader = self.open().await?;
        self.on_disk.store(true, Ordering::Release);
        *slot = Some(reader.clone());
        drop(slot);
        self.cache.enforce_budget().await;
        Ok(reader)
    }

    /// Deletes the local copy unless a read is opening it right now. Readers holding the open
    /// file keep reading it; the next read downloads it again. Returns whether it was evicted.
    pub async fn evict(&self) -> bool {
        let Ok(mut slot) = self.reader.try_lock() else {
            return false;
        };
        if !self.on_disk.swap(false, Ordering::AcqRel) {
            return false;
        }
        slot.take();
        if let Err(e) = tokio::fs::remove_file(&self.local_path).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                warn!(layer = %self.desc.name, error = %e, "could not evict a local layer file");
            }
        }
        true
    }

    async fn open(&self) -> Result<Arc<LayerReader>> {
        let path = self.local_path.clone();
        let name = self.desc.name.clone();
        let cache = self.cache.clone();
        let id = self.cache_id;
        let reader =
            tokio::task::spawn_blocking(move || LayerReader::open_cached(&path, &name, &cache, id))
                .await??;
        let expected = (self.desc.lsn_start, self.desc.lsn_end);
        if reader.lsn_range() != expected {
            return Err(PageserverError::corruption(
                format!("layer {}", self.desc.name),
                format!(
                    "file covers LSNs {:?}, manifest says {expected:?}",
                    reader.lsn_range()
                ),
            ));
        }
        Ok(Arc::new(reader))
    }
}
