//! One timeline on this pageserver: attach (take ownership from the manifest), WAL ingest into
//! the open in-memory layer, freezing, status and shutdown. Flushing lives in `flush.rs` and
//! reads in `read_path.rs`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use bytes::Bytes;
use strata_core::key::COMMIT_TIME_KEY;
use strata_core::wal::{Mutation, WalRecord};
use strata_core::{Lsn, TimelineId};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{error, info, info_span, warn, Instrument};

use crate::commit_time;
use crate::config::PageserverConfig;
use crate::error::{PageserverError, Result};
use crate::layer_cache::LayerCache;
use crate::layer_desc::LayerKind;
use crate::layer_file::LayerFile;
use crate::layer_map::LayerMap;
use crate::manifest::{self, Manifest, PublishOutcome};
use crate::remote::RemoteStorage;
use crate::wal_receiver;

/// How many times attach retries when another pageserver publishes the same manifest version
/// at the same moment.
const ATTACH_RACE_ATTEMPTS: u32 = 5;

/// What `TimelineStatus` reports, plus counters for tests and operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TimelineStatus {
    pub last_record_lsn: Lsn,
    pub disk_consistent_lsn: Lsn,
    pub remote_consistent_lsn: Lsn,
    pub layer_count: u64,
    pub frozen_layers: usize,
    pub ingest_stalls: u64,
    /// L0 files waiting for compaction, their bytes, and ingest stalls they caused.
    pub l0_layers: usize,
    pub l0_bytes: u64,
    pub l0_stalls: u64,
    pub gc_cutoff_lsn: Lsn,
    pub generation: u64,
    pub fenced: bool,
}

/// The timeline a branch reads through to, and the LSN it reads it at.
pub(crate) struct AncestorLink {
    pub timeline: Arc<Timeline>,
    pub lsn: Lsn,
}

pub(crate) struct Timeline {
    pub(crate) id: TimelineId,
    /// Where keys this timeline never wrote are read (`None` for a root timeline).
    pub(crate) ancestor: Option<AncestorLink>,
    pub(crate) conf: Arc<PageserverConfig>,
    pub(crate) remote: RemoteStorage,
    /// Block cache and local-disk budget, shared with the other timelines.
    pub(crate) cache: Arc<LayerCache>,
    /// Local cache directory for this timeline's layer files.
    pub(crate) layer_dir: PathBuf,
    pub(crate) generation: u64,
    pub(crate) layers: RwLock<LayerMap>,
    /// Highest LSN ingested; reads wait on it.
    pub(crate) last_record_lsn: watch::Sender<Lsn>,
    pub(crate) disk_consistent_lsn: AtomicU64,
    /// `disk_consistent_lsn` of the newest manifest we published.
    pub(crate) remote_consistent_lsn: watch::Sender<Lsn>,
    /// The newest manifest we published (our ownership claim and the layer list).
    pub(crate) manifest: Mutex<Manifest>,
    /// Number of frozen layers; ingest waits for it to drop below `max_frozen_layers`.
    pub(crate) frozen_count: watch::Sender<usize>,
    /// Serializes ingest, so that freezes fall between WAL chunks.
    pub(crate) ingest_lock: tokio::sync::Mutex<()>,
    /// Serializes flushing, so frozen layers are written and published in LSN order.
    pub(crate) flush_lock: tokio::sync::Mutex<()>,
    pub(crate) flush_requested: Arc<Notify>,
    /// Serializes manifest changes (flush, compaction, GC): each starts from the last one.
    pub(crate) publish_lock: tokio::sync::Mutex<()>,
    /// One compaction or GC at a time.
    pub(crate) compaction_lock: tokio::sync::Mutex<()>,
    pub(crate) compaction_requested: Arc<Notify>,
    /// Bytes of L0 files; ingest waits for it to drop below `l0_stall_bytes`.
    pub(crate) l0_bytes: watch::Sender<u64>,
    pub(crate) l0_stalls: AtomicU64,
    /// LSN leases: GC keeps what reads at each LSN need until its expiry.
    pub(crate) leases: Mutex<std::collections::BTreeMap<Lsn, std::time::Instant>>,
    /// When GC last ran, so the compaction loop runs it every `gc_period`.
    pub(crate) last_gc: Mutex<std::time::Instant>,
    pub(crate) fenced: AtomicBool,
    pub(crate) ingest_stalls: AtomicU64,
    /// Cancelled when the timeline shuts down: stops downloads for reads.
    pub(crate) shutdown: CancellationToken,
    /// Child of `shutdown`, also cancelled when fenced: stops WAL ingest and LSN waits.
    pub(crate) ingest_stop: CancellationToken,
    /// Stops the background flush loop (shutdown then flushes in the foreground).
    pub(crate) flush_stop: CancellationToken,
    /// Stops compaction and GC (at shutdown, before the final flush, and when fenced).
    pub(crate) compaction_stop: CancellationToken,
    flush_task: Mutex<Option<AbortOnDropHandle<()>>>,
    compaction_task: Mutex<Option<AbortOnDropHandle<()>>>,
    receiver_task: Mutex<Option<AbortOnDropHandle<()>>>,
}

impl std::fmt::Debug for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeline").field("id", &self.id).finish()
    }
}

impl Timeline {
    /// Takes ownership of a timeline: loads its newest manifest (none = a new, empty
    /// timeline), publishes the next version with `generation + 1` (fencing any earlier
    /// owner), and starts the flush loop. The WAL receiver is started separately. A branch
    /// needs its ancestor timeline, attached first (`ancestor`, which must be the one its
    /// manifest names).
    pub(crate) async fn attach(
        id: TimelineId,
        conf: Arc<PageserverConfig>,
        remote: RemoteStorage,
        cache: Arc<LayerCache>,
        ancestor: Option<Arc<Timeline>>,
    ) -> Result<Arc<Timeline>> {
        let span = info_span!("timeline", timeline_id = %id);
        let manifest = Self::take_ownership(id, &remote)
            .instrument(span.clone())
            .await?;
        let ancestor = match (manifest.ancestor, ancestor) {
            (None, None) => None,
            (Some(a), Some(timeline)) if timeline.id == a.timeline_id => Some(AncestorLink {
                timeline,
                lsn: a.lsn,
            }),
            (named, given) => {
                return Err(PageserverError::Internal(format!(
                    "timeline {id}: manifest names ancestor {named:?}, attach was given {:?}",
                    given.map(|t| t.id)
                )))
            }
        };
        let layer_dir = conf
            .data_dir
            .join("timelines")
            .join(id.to_string())
            .join("layers");
        tokio::fs::create_dir_all(&layer_dir).await?;
        remove_unknown_local_files(&layer_dir, &manifest).await?;
        let files = manifest
            .layers
            .iter()
            .map(|desc| LayerFile::new(desc.clone(), &layer_dir, &cache))
            .collect();
        let lsn = manifest.disk_consistent_lsn;
        let layers = LayerMap::new(lsn.next(), files);
        let l0_bytes = layers.l0_bytes();
        let shutdown = CancellationToken::new();
        let timeline = Arc::new(Timeline {
            id,
            ancestor,
            layer_dir,
            generation: manifest.generation,
            layers: RwLock::new(layers),
            last_record_lsn: watch::Sender::new(lsn),
            disk_consistent_lsn: AtomicU64::new(lsn.0),
            remote_consistent_lsn: watch::Sender::new(lsn),
            manifest: Mutex::new(manifest),
            frozen_count: watch::Sender::new(0),
            ingest_lock: tokio::sync::Mutex::new(()),
            flush_lock: tokio::sync::Mutex::new(()),
            flush_requested: Arc::new(Notify::new()),
            publish_lock: tokio::sync::Mutex::new(()),
            compaction_lock: tokio::sync::Mutex::new(()),
            compaction_requested: Arc::new(Notify::new()),
            l0_bytes: watch::Sender::new(l0_bytes),
            l0_stalls: AtomicU64::new(0),
            leases: Mutex::new(Default::default()),
            last_gc: Mutex::new(std::time::Instant::now()),
            fenced: AtomicBool::new(false),
            ingest_stalls: AtomicU64::new(0),
            ingest_stop: shutdown.child_token(),
            flush_stop: shutdown.child_token(),
            compaction_stop: shutdown.child_token(),
            shutdown,
            flush_task: Mutex::new(None),
            compaction_task: Mutex::new(None),
            receiver_task: Mutex::new(None),
            conf,
            remote,
            cache,
        });
        let task = tokio::spawn(
            Self::flush_loop(
                Arc::downgrade(&timeline),
                timeline.flush_requested.clone(),
                timeline.flush_stop.clone(),
                timeline.conf.checkpoint_timeout,
            )
            .instrument(span.clone()),
        );
        *lock(&timeline.flush_task) = Some(AbortOnDropHandle::new(task));
        let task = tokio::spawn(
            Self::compaction_loop(
                Arc::downgrade(&timeline),
                timeline.compaction_requested.clone(),
                timeline.compaction_stop.clone(),
                timeline.conf.compaction_period,
            )
            .instrument(span.clone()),
        );
        *lock(&timeline.compaction_task) = Some(AbortOnDropHandle::new(task));
        span.in_scope(|| {
            info!(
                generation = timeline.generation,
                disk_consistent_lsn = %lsn,
                layers = timeline.layers_read().files.len(),
                "attached timeline"
            )
        });
        Ok(timeline)
    }

    async fn take_ownership(id: TimelineId, remote: &RemoteStorage) -> Result<Manifest> {
        let cancel = CancellationToken::new();
        for _ in 0..ATTACH_RACE_ATTEMPTS {
            let latest = manifest::load_latest(remote, id, &cancel)
                .await?
                .unwrap_or_else(|| Manifest::empty(id));
            if latest.deleted {
                return Err(PageserverError::NoSuchTimeline(id));
            }
            let next = Manifest {
                version: latest.version + 1,
                generation: latest.generation + 1,
                ..latest
            };
            let attempts = Some(remote.read_attempts());
            match manifest::publish(remote, &next, attempts, &cancel).await? {
                PublishOutcome::Published => return Ok(next),
                PublishOutcome::Conflict(other) => warn!(
                    version = next.version,
                    other_generation = other.generation,
                    "another pageserver published a manifest while we attached; retrying"
                ),
            }
        }
        Err(PageserverError::Internal(format!(
            "could not take ownership of timeline {id}: manifest publish kept racing"
        )))
    }

    /// Starts streaming WAL from the safekeepers, from `last_record_lsn + 1`.
    pub(crate) fn start_wal_receiver(self: &Arc<Self>, safekeepers: Vec<String>) {
        if safekeepers.is_empty() {
            warn!(timeline_id = %self.id, "no safekeepers configured: not ingesting WAL");
            return;
        }
        let task = tokio::spawn(
            wal_receiver::run(Arc::downgrade(self), safekeepers, self.ingest_stop.clone())
                .instrument(info_span!("wal_receiver", timeline_id = %self.id)),
        );
        *lock(&self.receiver_task) = Some(AbortOnDropHandle::new(task));
    }

    pub(crate) fn layers_read(&self) -> std::sync::RwLockReadGuard<'_, LayerMap> {
        self.layers.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn layers_write(&self) -> std::sync::RwLockWriteGuard<'_, LayerMap> {
        self.layers.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The first LSN this timeline has a state at: its branch point (0 for a root timeline).
    pub(crate) fn start_lsn(&self) -> Lsn {
        self.ancestor.as_ref().map_or(Lsn::ZERO, |a| a.lsn)
    }

    pub(crate) fn last_record_lsn(&self) -> Lsn {
        *self.last_record_lsn.borrow()
    }

    pub(crate) fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::Acquire)
    }

    /// Called when a manifest of a newer generation is found: stop ingesting and uploading.
    pub(crate) fn set_fenced(&self, newer_generation: u64) {
        if !self.fenced.swap(true, Ordering::AcqRel) {
            error!(
                timeline_id = %self.id,
                our_generation = self.generation,
                newer_generation,
                "timeline taken over by another pageserver: stopped ingest and uploads"
            );
        }
        self.ingest_stop.cancel();
        self.flush_stop.cancel();
        self.compaction_stop.cancel();
    }

    /// Applies one chunk of committed WAL, as the WAL receiver does: every mutation of every
    /// record above `last_record_lsn` goes into the open layer, then `last_record_lsn` moves
    /// to `committed_lsn` (or the highest record, if above). Records at or below
    /// `last_record_lsn` were ingested before (a resent stream) and are skipped. The open
    /// layer is frozen only here, between chunks, so one LSN never straddles two layers.
    pub(crate) async fn ingest(&self, records: &[WalRecord], committed_lsn: Lsn) -> Result<()> {
        self.wait_for_flush_capacity().await?;
        let guard = self.ingest_lock.lock().await;
        if self.ingest_stop.is_cancelled() {
            return Err(self.stopped_error());
        }
        let last = self.last_record_lsn();
        let open = self.layers_read().open.clone();
        let mut new_last = last.max(committed_lsn);
        for record in records.iter().filter(|r| r.lsn > last) {
            open.note_commit_time(record.commit_time_micros);
            open.put(
                Bytes::from_static(COMMIT_TIME_KEY),
                record.lsn,
                Some(commit_time::encode(record.commit_time_micros, record.lsn)),
            );
            for m in &record.mutations {
                match m {
                    Mutation::Put { key, value } => {
                        open.put(key.clone(), record.lsn, Some(value.clone()))
                    }
                    Mutation::Delete { key } => open.put(key.clone(), record.lsn, None),
                }
            }
            new_last = new_last.max(record.lsn);
        }
        if new_last > last {
            self.last_record_lsn.send_replace(new_last);
        }
        if open.size() >= self.conf.checkpoint_distance {
            self.freeze(&guard);
        }
        Ok(())
    }

    /// Ingest stalls while `max_frozen_layers` frozen layers wait for upload, so memory stays
    /// bounded when object storage is slow or down, and while L0 files hold `l0_stall_bytes`,
    /// so reads never cross an unbounded pile of them. Stalls are counted.
    async fn wait_for_flush_capacity(&self) -> Result<()> {
        self.wait_for_compaction_capacity().await?;
        let max = self.conf.max_frozen_layers.max(1);
        let mut rx = self.frozen_count.subscribe();
        if *rx.borrow_and_update() < max {
            return Ok(());
        }
        let stalls = self.ingest_stalls.fetch_add(1, Ordering::Relaxed) + 1;
        warn!(timeline_id = %self.id, stalls, "ingest stalled: frozen layers wait for upload");
        tokio::select! {
            r = rx.wait_for(|n| *n < max) => r.map(|_| ()).map_err(|_| PageserverError::ShuttingDown),
            _ = self.ingest_stop.cancelled() => Err(self.stopped_error()),
        }
    }

    async fn wait_for_compaction_capacity(&self) -> Result<()> {
        let max = self.conf.l0_stall_bytes;
        let mut rx = self.l0_bytes.subscribe();
        if *rx.borrow_and_update() < max {
            return Ok(());
        }
        let stalls = self.l0_stalls.fetch_add(1, Ordering::Relaxed) + 1;
        warn!(timeline_id = %self.id, stalls, "ingest stalled: L0 layers wait for compaction");
        self.compaction_requested.notify_one();
        tokio::select! {
            r = rx.wait_for(|n| *n < max) => r.map(|_| ()).map_err(|_| PageserverError::ShuttingDown),
            _ = self.ingest_stop.cancelled() => Err(self.stopped_error()),
        }
    }

    pub(crate) fn stopped_error(&self) -> PageserverError {
        if self.is_fenced() {
            PageserverError::Fenced(self.id)
        } else {
            PageserverError::ShuttingDown
        }
    }

    /// Freezes the open layer at `last_record_lsn`. The ingest lock guard proves no chunk is
    /// half applied.
    pub(crate) fn freeze(&self, _ingest: &tokio::sync::MutexGuard<'_, ()>) -> bool {
        let lsn = self.last_record_lsn();
        let mut map = self.layers_write();
        if !map.freeze(lsn) {
            return false;
        }
        self.frozen_count.send_replace(map.frozen.len());
        drop(map);
        self.flush_requested.notify_one();
        true
    }

    pub(crate) fn status(&self) -> TimelineStatus {
        let map = self.layers_read();
        TimelineStatus {
            last_record_lsn: self.last_record_lsn(),
            disk_consistent_lsn: Lsn(self.disk_consistent_lsn.load(Ordering::Acquire)),
            remote_consistent_lsn: *self.remote_consistent_lsn.borrow(),
            layer_count: map.files.len() as u64,
            frozen_layers: map.frozen.len(),
            ingest_stalls: self.ingest_stalls.load(Ordering::Relaxed),
            l0_layers: map
                .files
                .iter()
                .filter(|f| f.desc().kind == LayerKind::L0)
                .count(),
            l0_bytes: map.l0_bytes(),
            l0_stalls: self.l0_stalls.load(Ordering::Relaxed),
            gc_cutoff_lsn: lock(&self.manifest).gc_cutoff_lsn,
            generation: self.generation,
            fenced: self.is_fenced(),
        }
    }

    /// Freezes everything ingested so far and flushes it: returns the LSN up to which a
    /// published manifest now covers the timeline. Uploads retry until they succeed.
    pub(crate) async fn checkpoint(&self) -> Result<Lsn> {
        let target = {
            let guard = self.ingest_lock.lock().await;
            if self.ingest_stop.is_cancelled() {
                return Err(self.stopped_error());
            }
            self.freeze(&guard);
            self.last_record_lsn()
        };
        self.flush_frozen_layers(&self.shutdown).await?;
        let covered = *self.remote_consistent_lsn.borrow();
        info!(timeline_id = %self.id, %target, %covered, "checkpoint done");
        Ok(covered)
    }

    /// Stops the WAL receiver, then freezes and flushes everything ingested, so that object
    /// storage holds it all (unless fenced: then nothing more is uploaded).
    pub(crate) async fn shutdown(&self) {
        self.stop_background_tasks().await;
        if !self.is_fenced() {
            {
                let guard = self.ingest_lock.lock().await;
                self.freeze(&guard);
            }
            // Retries until it succeeds: a clean stop leaves object storage holding everything
            // ingested. Dropping the `run` future aborts it (the WAL is still on the
            // safekeepers, so nothing is lost).
            if let Err(e) = self.flush_frozen_layers(&CancellationToken::new()).await {
                error!(timeline_id = %self.id, error = %e, "final flush failed");
            }
        }
        self.shutdown.cancel();
        info!(timeline_id = %self.id, status = ?self.status(), "timeline shut down");
    }

    /// Stops ingest and every background task, uploading nothing more: the timeline is
    /// about to be deleted.
    pub(crate) async fn stop_for_delete(&self) {
        self.stop_background_tasks().await;
        self.shutdown.cancel();
    }

    async fn stop_background_tasks(&self) {
        self.ingest_stop.cancel();
        let receiver = lock(&self.receiver_task).take();
        if let Some(task) = receiver {
            let _ = task.await;
        }
        self.compaction_stop.cancel();
        let compactor = lock(&self.compaction_task).take();
        if let Some(task) = compactor {
            let _ = task.await;
        }
        self.flush_stop.cancel();
        let flusher = lock(&self.flush_task).take();
        if let Some(task) = flusher {
            let _ = task.await;
        }
    }
}

/// Locks a mutex, ignoring poisoning: the data it guards stays consistent across panics.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Files in the local layer directory that the manifest does not name are leftovers (of a
/// crash, a fenced owner, or an interrupted write or download): the cache drops them.
async fn remove_unknown_local_files(dir: &PathBuf, manifest: &Manifest) -> Result<()> {
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name();
        let known = name
            .to_str()
            .is_some_and(|n| manifest.layers.iter().any(|l| l.name == n));
        if !known {
            info!(file = ?name, "removing local file not named by the manifest");
            tokio::fs::remove_file(entry.path()).await?;
        }
    }
    Ok(())
}

/// A weak handle for background tasks, so a dropped timeline stops them (they are aborted
/// when the timeline, which owns their handles, is dropped).
pub(crate) type WeakTimeline = Weak<Timeline>;
