//! Turning frozen in-memory layers into layer files in object storage: write the file, fsync,
//! upload, publish a manifest naming it, and only then drop the frozen layer from memory.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::error::{PageserverError, Result};
use crate::layer_desc::LayerDesc;
use crate::layer_file::LayerFile;
use crate::layer_format::{LayerReader, LayerWriter};
use crate::layer_map::FrozenLayer;
use crate::timeline::{Timeline, WeakTimeline};

/// Bounds for how often the flush loop checks the open layer's age.
const MIN_TICK: Duration = Duration::from_millis(10);
const MAX_TICK: Duration = Duration::from_secs(10);

impl Timeline {
    /// The background loop: flushes frozen layers when asked, and freezes an open layer that
    /// has grown older than `checkpoint_timeout`.
    pub(crate) async fn flush_loop(
        timeline: WeakTimeline,
        requested: Arc<Notify>,
        stop: CancellationToken,
        checkpoint_timeout: Duration,
    ) {
        let mut tick = tokio::time::interval((checkpoint_timeout / 4).clamp(MIN_TICK, MAX_TICK));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = requested.notified() => {}
                _ = tick.tick() => {}
            }
            let Some(timeline) = timeline.upgrade() else {
                return;
            };
            timeline.freeze_if_old().await;
            match timeline.flush_frozen_layers(&stop).await {
                Ok(()) => {}
                Err(PageserverError::ShuttingDown) => return,
                Err(PageserverError::Fenced(_)) => return,
                Err(e) => error!(error = %e, "flush failed; will retry"),
            }
        }
    }

    /// Freezes the open layer if it holds entries older than `checkpoint_timeout`. Skips the
    /// check when ingest is busy: it may be stalled waiting for this very loop to flush.
    ///
    /// An idle timeline (a branch nobody writes to) is frozen empty as well once WAL of other
    /// timelines has gone by: its next manifest then covers that WAL, so the safekeepers may
    /// trim it. That costs one manifest per `checkpoint_timeout` at most.
    pub(crate) async fn freeze_if_old(&self) {
        let Ok(guard) = self.ingest_lock.try_lock() else {
            return;
        };
        let open = self.layers_read().open.clone();
        let passed_by = open.is_empty() && self.last_record_lsn() >= open.start_lsn();
        if (!open.is_empty() || passed_by)
            && open.created().elapsed() >= self.conf.checkpoint_timeout
        {
            info!(
                size = open.size(),
                "checkpoint timeout: freezing the open layer"
            );
            self.freeze(&guard);
        }
    }

    /// Flushes every frozen layer, oldest first. Returns `Fenced` when another pageserver owns
    /// the timeline, and `ShuttingDown` when `cancel` fires during a retry.
    pub(crate) async fn flush_frozen_layers(&self, cancel: &CancellationToken) -> Result<()> {
        let _flushing = self.flush_lock.lock().await;
        loop {
            if self.is_fenced() {
                return Err(PageserverError::Fenced(self.id));
            }
            let Some(frozen) = self.layers_read().frozen.front().cloned() else {
                return Ok(());
            };
            self.flush_one(&frozen, cancel).await?;
        }
    }

    async fn flush_one(&self, frozen: &Arc<FrozenLayer>, cancel: &CancellationToken) -> Result<()> {
        let file = if frozen.mem.is_empty() {
            None
        } else {
            let (desc, path, reader) = self.write_layer(frozen, cancel).await?;
            self.disk_consistent_lsn
                .fetch_max(frozen.lsn_end.0, Ordering::AcqRel);
            self.remote
                .upload_layer(self.id, &path, &desc.name, desc.size, cancel)
                .await?;
            Some(LayerFile::resident(desc, path, reader, &self.cache))
        };
        let new_layer = file.as_ref().map(|f| f.desc().clone());
        let lsn_end = frozen.lsn_end;
        let commit_time = frozen.mem.newest_commit_micros();
        self.publish_manifest(
            |next| {
                next.layers.extend(new_layer.clone());
                next.disk_consistent_lsn = lsn_end;
                next.record_commit_time(lsn_end, commit_time);
            },
            cancel,
        )
        .await?;
        self.disk_consistent_lsn
            .fetch_max(frozen.lsn_end.0, Ordering::AcqRel);
        {
            let mut map = self.layers_write();
            map.finish_flush(frozen, file);
            self.frozen_count.send_replace(map.frozen.len());
            self.l0_bytes.send_replace(map.l0_bytes());
        }
        self.remote_consistent_lsn.send_replace(frozen.lsn_end);
        self.compaction_requested.notify_one();
        self.cache.enforce_budget().await;
        Ok(())
    }

    /// Writes the frozen layer to a local file, retrying local I/O errors (a full disk may
    /// drain) until `cancel` fires.
    async fn write_layer(
        &self,
        frozen: &Arc<FrozenLayer>,
        cancel: &CancellationToken,
    ) -> Result<(LayerDesc, std::path::PathBuf, Arc<LayerReader>)> {
        let mut backoff = self.conf.remote_retry_initial_backoff;
        loop {
            let frozen = frozen.clone();
            let dir = self.layer_dir.clone();
            let block_size = self.conf.block_size;
            let generation = self.generation;
            let cache = self.cache.clone();
            let written = tokio::task::spawn_blocking(move || {
                let mem = &frozen.mem;
                let mut writer =
                    LayerWriter::try_new(&dir, mem.start_lsn(), frozen.lsn_end, block_size)?;
                for entry in mem.iter() {
                    writer.add(&entry.key, entry.lsn, entry.value.as_deref())?;
                }
                let (desc, path) = writer.finish(generation)?;
                let reader = LayerReader::open_cached(&path, &desc.name, &cache, cache.file_id())?;
                Ok::<_, PageserverError>((desc, path, Arc::new(reader)))
            })
            .await?;
            match written {
                Ok(w) => {
                    info!(layer = %w.0.name, size = w.0.size, "wrote layer file");
                    return Ok(w);
                }
                Err(PageserverError::Io(e)) => {
                    warn!(error = %e, ?backoff, "writing a layer file failed; retrying")
                }
                Err(e) => return Err(e),
            }
            tokio::select! {
                _ = cancel.cancelled() => return Err(PageserverError::ShuttingDown),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.conf.remote_retry_max_backoff);
        }
    }
}
