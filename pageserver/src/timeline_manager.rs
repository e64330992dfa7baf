//! The timelines this pageserver serves. A timeline is attached on first use; concurrent
//! first requests share one attach.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use strata_core::{Lsn, TimelineId};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::PageserverConfig;
use crate::error::{PageserverError, Result};
use crate::layer_cache::LayerCache;
use crate::manifest::{self, Ancestor, BranchPoint, Manifest, PublishOutcome};
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

    /// The timeline, attaching it (and starting its WAL receiver) if this is its first use;
    /// a branch's ancestors are attached first. A failed attach is not remembered: the next
    /// request tries again.
    pub async fn get(&self, id: TimelineId) -> Result<Arc<Timeline>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PageserverError::ShuttingDown);
        }
        let slot = lock(&self.timelines).entry(id).or_default().clone();
        slot.get_or_try_init(|| async {
            if self.closed.load(Ordering::Acquire) {
                return Err(PageserverError::ShuttingDown);
            }
            let cancel = CancellationToken::new();
            let ancestor = match manifest::load_latest(&self.remote, id, &cancel).await? {
                Some(m) if m.deleted => return Err(PageserverError::NoSuchTimeline(id)),
                Some(Manifest {
                    ancestor: Some(a), ..
                }) => Some(Box::pin(self.get(a.timeline_id)).await?),
                _ => None,
            };
            let timeline = Timeline::attach(
                id,
                self.conf.clone(),
                self.remote.clone(),
                self.cache.clone(),
                ancestor,
            )
            .await?;
            timeline.start_wal_receiver(self.conf.safekeepers.clone());
            Ok(timeline)
        })
        .await
        .cloned()
    }

    /// Creates timeline `id` as a branch of `ancestor_id` at `lsn`, copying nothing: its
    /// first manifest names the ancestor, and the ancestor's manifest notes the branch point
    /// so that GC keeps what reads there need. Waits until the ancestor has ingested `lsn`.
    pub async fn create_branch(
        &self,
        id: TimelineId,
        ancestor_id: TimelineId,
        lsn: Lsn,
    ) -> Result<Arc<Timeline>> {
        let ancestor = self.get(ancestor_id).await?;
        ancestor.wait_lsn(lsn).await?;
        // Validates the point: after the ancestor's own start and its GC cutoff.
        ancestor.commit_at(lsn).await?;
        let cancel = CancellationToken::new();
        if manifest::load_latest(&self.remote, id, &cancel)
            .await?
            .is_some()
        {
            return Err(PageserverError::TimelineExists(id));
        }
        let point = Ancestor {
            timeline_id: ancestor_id,
            lsn,
        };
        // Held back first, so GC never passes the point while the branch is being made.
        ancestor
            .publish_manifest(
                |m| m.branch_points.push(BranchPoint { child: id, lsn }),
                &cancel,
            )
            .await?;
        let first = Manifest::branch(id, point);
        match manifest::publish(&self.remote, &first, None, &cancel).await? {
            PublishOutcome::Published => {}
            PublishOutcome::Conflict(_) => return Err(PageserverError::TimelineExists(id)),
        }
        info!(timeline_id = %id, ancestor = %ancestor_id, %lsn, "created branch");
        self.get(id).await
    }

    /// Deletes a timeline that no branch reads through: stops it (uploading nothing more),
    /// publishes a last manifest marked deleted, deletes its layer objects and local files,
    /// and releases its branch point on the ancestor.
    pub async fn delete(&self, id: TimelineId) -> Result<()> {
        let cancel = CancellationToken::new();
        match manifest::load_latest(&self.remote, id, &cancel).await? {
            None => return Err(PageserverError::NoSuchTimeline(id)),
            // A delete that stopped after its tombstone: finish it.
            Some(m) if m.deleted => {
                let slot = lock(&self.timelines).remove(&id);
                if let Some(timeline) = slot.as_ref().and_then(|s| s.get()) {
                    timeline.stop_for_delete().await;
                }
                return self.release_branch_point(id, m.ancestor).await;
            }
            Some(_) => {}
        }
        let timeline = self.get(id).await?;
        if !lock(&timeline.manifest).branch_points.is_empty() {
            return Err(PageserverError::HasBranches(id));
        }
        timeline.stop_for_delete().await;
        lock(&self.timelines).remove(&id);
        let tombstone = timeline
            .publish_manifest(
                |m| {
                    m.deleted = true;
                    m.layers.clear();
                },
                &cancel,
            )
            .await?;
        let files = std::mem::take(&mut timeline.layers_write().files);
        let files = Arc::try_unwrap(files).unwrap_or_else(|shared| shared.to_vec());
        timeline.delete_layers(files).await;
        let _ =
            tokio::fs::remove_dir_all(timeline.layer_dir.parent().unwrap_or(&timeline.layer_dir))
                .await;
        self.release_branch_point(id, tombstone.ancestor).await?;
        info!(timeline_id = %id, "deleted timeline");
        Ok(())
    }

    /// Drops deleted timeline `id`'s branch point from its ancestor, so that the ancestor's
    /// GC may pass it and the ancestor may be deleted.
    async fn release_branch_point(&self, id: TimelineId, ancestor: Option<Ancestor>) -> Result<()> {
        let Some(a) = ancestor else {
            return Ok(());
        };
        let parent = self.get(a.timeline_id).await?;
        if lock(&parent.manifest)
            .branch_points
            .iter()
            .any(|p| p.child == id)
        {
            parent
                .publish_manifest(
                    |m| m.branch_points.retain(|p| p.child != id),
                    &CancellationToken::new(),
                )
                .await?;
        }
        Ok(())
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
