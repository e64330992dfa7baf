//! The timelines this pageserver serves. A timeline is attached on first use; concurrent
//! first requests share one attach.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use strata_core::TimelineId;
use tokio::sync::OnceCell;

use crate::config::PageserverConfig;
use crate::error::{PageserverError, Result};
use crate::layer_cache::LayerCache;
use crate::remote::RemoteStorage;
use crate::timeline::{lock, Timeline};

type Slot = Arc<OnceCell<Arc<Timeline>>>;

pub(crate) struct TimelineManager {
    conf: Arc<PageserverConfig>,
    remote: RemoteStorage,
    cache: Arc<LayerCache>,
    timelines: Mutex<HashMap<TimelineId, Slot>>,
    closed: AtomicBool,
}

impl TimelineManager {
    /// Opens the shared read caches (the block cache's disk tier lives in
    /// `<data_dir>/block-cache`).
    pub async fn open(conf: Arc<PageserverConfig>, remote: RemoteStorage) -> Result<Self> {
        let cache = LayerCache::open(
            &conf.data_dir.join("block-cache"),
            conf.block_cache_bytes,
            conf.block_disk_cache_bytes,
            conf.layer_cache_bytes,
        )
        .await?;
        Ok(Self {
            conf,
            remote,
            cache,
            timelines: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        })
    }

    /// The timeline, attaching it (and starting its WAL receiver) if this is its first use.
    /// A failed attach is not remembered: the next request tries again.
    pub async fn get(&self, id: TimelineId) -> Result<Arc<Timeline>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PageserverError::ShuttingDown);
        }
        let slot = lock(&self.timelines).entry(id).or_default().clone();
        slot.get_or_try_init(|| async {
            if self.closed.load(Ordering::Acquire) {
                return Err(PageserverError::ShuttingDown);
            }
            let timeline = Timeline::attach(
                id,
                self.conf.clone(),
                self.remote.clone(),
                self.cache.clone(),
            )
            .await?;
            timeline.start_wal_receiver(self.conf.safekeepers.clone());
            Ok(timeline)
        })
        .await
        .cloned()
    }

    /// Shuts every timeline down (flushing and uploading what each ingested), including those
    /// whose attach was in flight.
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        let slots: Vec<Slot> = lock(&self.timelines).values().cloned().collect();
        let shutdowns = slots.into_iter().map(|slot| async move {
            // Waits for an attach in flight; initializes nothing new.
            let attached = slot
                .get_or_try_init(|| async {
                    Err::<Arc<Timeline>, _>(PageserverError::ShuttingDown)
                })
                .await;
            if let Ok(timeline) = attached {
                timeline.shutdown().await;
            }
        });
        futures::future::join_all(shutdowns).await;
        self.cache.close().await;
    }
}
