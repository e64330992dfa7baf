//! Compaction keeps reads cheap as layer files pile up.
//!
//! - **L0 → L1.** Every flush adds an L0 file that may hold any key, so a point read would
//!   look into each of them. Once `compaction_threshold` L0 files wait, they are merged into
//!   L1 files: the same versions, split by key into files of about `compaction_target_size`
//!   that do not overlap, so a key lives in one L1 file per compaction.
//! - **Images.** Once `image_creation_threshold` rounds of L1 files lie above the newest
//!   image, the whole key space is written as image files at the newest LSN the files cover:
//!   a read at or above it stops at the image, and GC may drop the history below it.
//!
//! Each step writes and uploads its files, publishes one manifest that swaps the inputs for
//! the outputs, and only then deletes the replaced files, locally and in object storage.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_core::Lsn;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::ancestry::{has_image_at, AncestorSource};
use crate::error::{PageserverError, Result};
use crate::layer_cache::LayerCache;
use crate::layer_desc::{LayerDesc, LayerKind};
use crate::layer_file::LayerFile;
use crate::layer_format::{LayerReader, LayerWriter};
use crate::layer_map::sort_layers;
use crate::merge::{Entry, MergeIterator, Source};
use crate::timeline::{Timeline, WeakTimeline};

/// What one round of compaction did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompactionOutcome {
    pub l0_compacted: usize,
    pub l1_written: usize,
    /// `Some(lsn)` when images of the whole key space were written at `lsn`.
    pub image_lsn: Option<Lsn>,
    pub images_written: usize,
}

/// A file written by compaction, not yet uploaded.
type Written = (LayerDesc, PathBuf, Arc<LayerReader>);

impl Timeline {
    /// The background loop: compacts after flushes (and every `period`), then runs GC when
    /// it is due. Failures are logged and retried on the next round.
    pub(crate) async fn compaction_loop(
        timeline: WeakTimeline,
        requested: Arc<Notify>,
        stop: CancellationToken,
        period: Duration,
    ) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = requested.notified() => {}
                _ = tokio::time::sleep(period) => {}
            }
            let Some(timeline) = timeline.upgrade() else {
                return;
            };
            let result = match timeline.compact(&stop).await {
                Ok(_) => timeline.gc_if_due(&stop).await.map(|_| ()),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {}
                Err(PageserverError::ShuttingDown | PageserverError::Fenced(_)) => return,
                Err(e) => {
                    error!(error = %e, "compaction or GC failed; will retry");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(timeline.conf.remote_retry_max_backoff) => {}
                    }
                }
            }
        }
    }

    /// One round: L0 → L1 when enough L0 files wait, then images when enough rounds of L1
    /// files lie above the newest image.
    pub(crate) async fn compact(&self, cancel: &CancellationToken) -> Result<CompactionOutcome> {
        let _compacting = self.compaction_lock.lock().await;
        let mut outcome = CompactionOutcome::default();
        let l0: Vec<Arc<LayerFile>> = self
            .layers_read()
            .files
            .iter()
            .filter(|f| f.desc().kind == LayerKind::L0)
            .cloned()
            .collect();
        // Also below the threshold when L0 bytes stall ingest: compaction is what unstalls it.
        let stalling = *self.l0_bytes.borrow() >= self.conf.l0_stall_bytes;
        if l0.len() >= self.conf.compaction_threshold.max(2) || (stalling && !l0.is_empty()) {
            outcome.l0_compacted = l0.len();
            outcome.l1_written = self.compact_l0(l0, cancel).await?;
        }
        if self.l1_rounds_above_newest_image() >= self.conf.image_creation_threshold.max(1) {
            let (lsn, written) = self.create_images(cancel).await?;
            outcome.image_lsn = Some(lsn);
            outcome.images_written = written;
        }
        Ok(outcome)
    }

    /// Distinct LSN ranges of L1 files (one per L0 compaction) above the newest image.
    fn l1_rounds_above_newest_image(&self) -> usize {
        let files = self.layers_read().files.clone();
        let newest_image = files
            .iter()
            .filter(|f| f.desc().kind == LayerKind::Image)
            .map(|f| f.desc().lsn_end)
            .max();
        let mut rounds: Vec<(Lsn, Lsn)> = files
            .iter()
            .map(|f| f.desc())
            .filter(|d| d.kind == LayerKind::L1 && newest_image.is_none_or(|i| d.lsn_end > i))
            .map(|d| (d.lsn_start, d.lsn_end))
            .collect();
        rounds.sort();
        rounds.dedup();
        rounds.len()
    }

    /// Merges `inputs` (every L0 file) into non-overlapping L1 files over their LSN range.
    async fn compact_l0(
        &self,
        inputs: Vec<Arc<LayerFile>>,
        cancel: &CancellationToken,
    ) -> Result<usize> {
        let lsn_start = inputs
            .iter()
            .map(|f| f.desc().lsn_start)
            .min()
            .expect("inputs");
        let lsn_end = inputs
            .iter()
            .map(|f| f.desc().lsn_end)
            .max()
            .expect("inputs");
        let mut sources: Vec<Source> = Vec::with_capacity(inputs.len());
        for file in inputs.iter().rev() {
            let reader = file.reader(self.id, &self.remote, &self.shutdown).await?;
            sources.push(Box::new(reader.iter(Bytes::new(), None, Lsn::MAX)));
        }
        let plan = SplitWriter {
            dir: self.layer_dir.clone(),
            kind: LayerKind::L1,
            lsn_start,
            lsn_end,
            block_size: self.conf.block_size,
            target_size: self.conf.compaction_target_size,
            generation: self.generation,
            cache: self.cache.clone(),
        };
        let written = tokio::task::spawn_blocking(move || {
            plan.write(MergeIterator::new(sources, Lsn::MAX)?.versions())
        })
        .await??;
        let count = written.len();
        let l0 = inputs.len();
        self.swap_layers(inputs, written, None, cancel).await?;
        info!(
            l0,
            l1 = count,
            %lsn_start,
            %lsn_end,
            "compacted L0 layers into L1"
        );
        Ok(count)
    }

    /// Writes every live key at the newest LSN the layer files cover as image files.
    async fn create_images(&self, cancel: &CancellationToken) -> Result<(Lsn, usize)> {
        let files = self.layers_read().files.clone();
        let lsn = files
            .iter()
            .map(|f| f.desc().lsn_end)
            .max()
            .ok_or_else(|| PageserverError::Internal("no layer files to image".into()))?;
        let mut sources: Vec<Source> = Vec::new();
        for file in files.iter().rev().filter(|f| f.desc().lsn_start <= lsn) {
            let reader = file.reader(self.id, &self.remote, &self.shutdown).await?;
            sources.push(Box::new(reader.iter(Bytes::new(), None, lsn)));
        }
        // A branch's first image takes in its ancestor's keys, so that reads at or above it
        // never need the ancestor (see `ancestry.rs`).
        if let Some(ancestor) = self
            .ancestor
            .as_ref()
            .filter(|_| !has_image_at(&files, lsn))
        {
            let at = lsn.min(ancestor.lsn);
            let upstream = ancestor
                .timeline
                .scan(Bytes::new(), None, at, at, None)
                .await?;
            sources.push(Box::new(AncestorSource::new(upstream, at)));
        }
        let plan = SplitWriter {
            dir: self.layer_dir.clone(),
            kind: LayerKind::Image,
            lsn_start: lsn,
            lsn_end: lsn,
            block_size: self.conf.block_size,
            target_size: self.conf.compaction_target_size,
            generation: self.generation,
            cache: self.cache.clone(),
        };
        let written = tokio::task::spawn_blocking(move || {
            let live = MergeIterator::new(sources, lsn)?.map(|item| {
                item.map(|(key, value)| Entry {
                    key,
                    lsn,
                    value: Some(value),
                })
            });
            plan.write(live)
        })
        .await??;
        let count = written.len();
        drop(files);
        self.swap_layers(Vec::new(), written, Some(lsn), cancel)
            .await?;
        info!(%lsn, files = count, "wrote image layers of the whole key space");
        Ok((lsn, count))
    }

    /// Uploads `written`, publishes a manifest with them in place of `replaced` (and `image_lsn`
    /// noted), updates the layer map, then deletes the replaced files.
    async fn swap_layers(
        &self,
        replaced: Vec<Arc<LayerFile>>,
        written: Vec<Written>,
        image_lsn: Option<Lsn>,
        cancel: &CancellationToken,
    ) -> Result<()> {
        for (desc, path, _) in &written {
            self.remote
                .upload_layer(self.id, path, &desc.name, desc.size, cancel)
                .await?;
        }
        let removed: Vec<String> = replaced.iter().map(|f| f.desc().name.clone()).collect();
        let added: Vec<LayerDesc> = written.iter().map(|(d, _, _)| d.clone()).collect();
        self.publish_manifest(
            |m| {
                m.layers.retain(|l| !removed.contains(&l.name));
                m.layers.extend(added.iter().cloned());
                sort_layers(&mut m.layers, |d| d);
                if let Some(lsn) = image_lsn {
                    m.image_lsns.push(lsn);
                }
            },
            cancel,
        )
        .await?;
        let files: Vec<Arc<LayerFile>> = written
            .into_iter()
            .map(|(desc, path, reader)| LayerFile::resident(desc, path, reader, &self.cache))
            .collect();
        {
            let mut map = self.layers_write();
            map.replace(&removed, files);
            self.l0_bytes.send_replace(map.l0_bytes());
        }
        self.delete_layers(replaced).await;
        self.cache.enforce_budget().await;
        Ok(())
    }

    /// Deletes layers no published manifest of ours names any more: the local copy, then the
    /// object. Layers a read still holds (a scan that took its snapshot before the swap) are
    /// deleted in the background once it lets go, or after `DELETE_GRACE` at the latest. A
    /// failure, or a stop before then, only leaves garbage behind, which GC sweeps later.
    pub(crate) async fn delete_layers(&self, layers: Vec<Arc<LayerFile>>) {
        let (idle, mut busy): (Vec<_>, Vec<_>) = layers.into_iter().partition(|f| !f.in_use());
        for file in idle {
            delete_layer(&self.remote, self.id, &self.layer_dir, file.desc()).await;
        }
        if busy.is_empty() {
            return;
        }
        let (remote, id, dir) = (self.remote.clone(), self.id, self.layer_dir.clone());
        let started = tokio::time::Instant::now();
        tokio::spawn(async move {
            while !busy.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let expired = started.elapsed() >= DELETE_GRACE;
                let (idle, still): (Vec<_>, Vec<_>) =
                    busy.into_iter().partition(|f| expired || !f.in_use());
                for file in idle {
                    delete_layer(&remote, id, &dir, file.desc()).await;
                }
                busy = still;
            }
        });
    }
}

/// How long a replaced layer waits for the reads that still use it.
const DELETE_GRACE: Duration = Duration::from_secs(3600);

async fn delete_layer(
    remote: &crate::remote::RemoteStorage,
    timeline: strata_core::TimelineId,
    dir: &std::path::Path,
    desc: &LayerDesc,
) {
    if let Err(e) = tokio::fs::remove_file(dir.join(&desc.name)).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            warn!(layer = %desc.name, error = %e, "could not remove a replaced local layer");
        }
    }
    if let Err(e) = remote.delete_layer(timeline, &desc.name).await {
        warn!(layer = %desc.name, error = %e, "could not delete a replaced layer object");
    }
}

/// Writes a sorted stream of entries as layer files of about `target_size` bytes each, cut
/// only between keys so that the files' key ranges do not overlap.
struct SplitWriter {
    dir: PathBuf,
    kind: LayerKind,
    lsn_start: Lsn,
    lsn_end: Lsn,
    block_size: usize,
    target_size: u64,
    generation: u64,
    cache: Arc<LayerCache>,
}

impl SplitWriter {
    fn write(self, entries: impl Iterator<Item = Result<Entry>>) -> Result<Vec<Written>> {
        let mut done = Vec::new();
        let mut writer: Option<LayerWriter> = None;
        let mut last_key: Option<Bytes> = None;
        for entry in entries {
            let entry = entry?;
            let new_key = last_key.as_ref() != Some(&entry.key);
            if new_key
                && writer
                    .as_ref()
                    .is_some_and(|w| w.written_bytes() >= self.target_size)
            {
                done.push(self.finish(writer.take().expect("checked"))?);
            }
            let w = match &mut writer {
                Some(w) => w,
                None => writer.insert(LayerWriter::with_kind(
                    &self.dir,
                    self.kind,
                    self.lsn_start,
                    self.lsn_end,
                    self.block_size,
                )?),
            };
            w.add(&entry.key, entry.lsn, entry.value.as_deref())?;
            last_key = Some(entry.key);
        }
        if let Some(w) = writer.filter(|w| !w.is_empty()) {
            done.push(self.finish(w)?);
        }
        Ok(done)
    }

    fn finish(&self, writer: LayerWriter) -> Result<Written> {
        let (desc, path) = writer.finish(self.generation)?;
        let reader =
            LayerReader::open_cached(&path, &desc.name, &self.cache, self.cache.file_id())?;
        Ok((desc, path, Arc::new(reader)))
    }
}
