//! A layer file named by the manifest: read from the local file this pageserver wrote while
//! it has it, else from the object in object storage by range (see `layer_cache.rs`). Local
//! files are evicted when they exceed the disk budget; they are only a cache of the objects.

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

/// One historic layer of a timeline. Opening it happens under a lock, so concurrent readers
/// share one open.
#[derive(Debug)]
pub(crate) struct LayerFile {
    desc: LayerDesc,
    local_path: PathBuf,
    reader: tokio::sync::Mutex<Option<Arc<LayerReader>>>,
    /// Whether the local copy exists (counts against the disk budget). Set at creation only:
    /// once evicted, the layer is read from object storage.
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

    /// Whether anything but its caller holds this layer or its open reader: a read that took
    /// a snapshot, or a scan still merging it.
    pub fn in_use(self: &Arc<Self>) -> bool {
        Arc::strong_count(self) > 1
            || self.reader.try_lock().map_or(true, |slot| {
                slot.as_ref().is_some_and(|r| Arc::strong_count(r) > 1)
            })
    }

    pub fn last_read(&self) -> u64 {
        self.last_read.load(Ordering::Relaxed)
    }

    /// The open layer: the local file if this pageserver has it (and it checks out), else
    /// the object in object storage, read by range.
    pub async fn reader(
        &self,
        timeline: TimelineId,
        remote: &RemoteStorage,
        _cancel: &CancellationToken,
    ) -> Result<Arc<LayerReader>> {
        self.last_read.store(self.cache.tick(), Ordering::Relaxed);
        let mut slot = self.reader.lock().await;
        if let Some(reader) = slot.as_ref() {
            return Ok(reader.clone());
        }
        if self.is_on_disk() {
            match self.open_local().await {
                Ok(reader) => {
                    *slot = Some(reader.clone());
                    return Ok(reader);
                }
                Err(e) => {
                    warn!(
                        layer = %self.desc.name,
                        error = %e,
                        "local layer copy unusable, reading the object instead"
                    );
                    self.on_disk.store(false, Ordering::Release);
                }
            }
        }
        let reader = self.open_remote(timeline, remote).await?;
        self.cache.note_remote_open();
        *slot = Some(reader.clone());
        Ok(reader)
    }

    /// Deletes the local copy unless a read is opening it right now. Readers holding the open
    /// file keep reading it; the next read opens the object instead. Returns whether it was
    /// evicted.
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

    async fn open_local(&self) -> Result<Arc<LayerReader>> {
        let path = self.local_path.clone();
        let name = self.desc.name.clone();
        let cache = self.cache.clone();
        let id = self.cache_id;
        let reader =
            tokio::task::spawn_blocking(move || LayerReader::open_cached(&path, &name, &cache, id))
                .await??;
        self.check(reader)
    }

    async fn open_remote(
        &self,
        timeline: TimelineId,
        remote: &RemoteStorage,
    ) -> Result<Arc<LayerReader>> {
        let remote = remote.clone();
        let name = self.desc.name.clone();
        let size = self.desc.size;
        let cache = self.cache.clone();
        let id = self.cache_id;
        let reader = tokio::task::spawn_blocking(move || {
            LayerReader::open_remote(remote, timeline, &name, size, &cache, id)
        })
        .await??;
        self.check(reader)
    }

    /// The file must cover the LSNs the manifest says it does.
    fn check(&self, reader: LayerReader) -> Result<Arc<LayerReader>> {
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
