//! A layer file named by the manifest: present locally, or downloaded the first time a read
//! needs it. The local copy is only a cache of the object in object storage.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_core::TimelineId;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::error::{PageserverError, Result};
use crate::layer_desc::LayerDesc;
use crate::layer_format::LayerReader;
use crate::remote::RemoteStorage;

/// One historic layer of a timeline. Opening it (and downloading it first if needed) happens
/// once; concurrent readers wait for the same download.
#[derive(Debug)]
pub(crate) struct LayerFile {
    desc: LayerDesc,
    local_path: PathBuf,
    reader: OnceCell<Arc<LayerReader>>,
}

impl LayerFile {
    /// A layer known from the manifest; it may or may not be on local disk.
    pub fn new(desc: LayerDesc, local_dir: &Path) -> Self {
        let local_path = local_dir.join(&desc.name);
        Self {
            desc,
            local_path,
            reader: OnceCell::new(),
        }
    }

    /// A layer this pageserver just wrote and opened.
    pub fn resident(desc: LayerDesc, local_path: PathBuf, reader: Arc<LayerReader>) -> Self {
        Self {
            desc,
            local_path,
            reader: OnceCell::new_with(Some(reader)),
        }
    }

    pub fn desc(&self) -> &LayerDesc {
        &self.desc
    }

    /// The open file, downloading it first if the local copy is missing, of the wrong size,
    /// or damaged.
    pub async fn reader(
        &self,
        timeline: TimelineId,
        remote: &RemoteStorage,
        cancel: &CancellationToken,
    ) -> Result<Arc<LayerReader>> {
        self.reader
            .get_or_try_init(|| async {
                let local_size = tokio::fs::metadata(&self.local_path)
                    .await
                    .ok()
                    .map(|m| m.len());
                if local_size == Some(self.desc.size) {
                    match self.open().await {
                        Ok(reader) => return Ok(reader),
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
                self.open().await
            })
            .await
            .cloned()
    }

    async fn open(&self) -> Result<Arc<LayerReader>> {
        let path = self.local_path.clone();
        let name = self.desc.name.clone();
        let reader = tokio::task::spawn_blocking(move || LayerReader::open(&path, &name)).await??;
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
