//! Offloading the committed WAL to object storage.
//!
//! The leader uploads the committed log in objects of about `offload_bytes` (sealed
//! stretches, like segments), and a smaller tail once it has waited `offload_timeout`. A
//! checkpoint (the `Checkpoint` RPC, `strata checkpoint`, a clean stop of `strata up`) uploads
//! everything applied so far, then a checkpoint of the replicated state: after it the bucket
//! alone holds every committed transaction. Only applied (hence committed) entries are ever
//! uploaded, so what any node uploads is the same.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::log_store::LogReader;
use crate::remote_wal::{ManifestCoverage, RemoteWal, RemoteWalError};
use crate::state_machine::SharedState;
use crate::types::Raft;

/// When to upload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OffloadConfig {
    /// Target size of one WAL object.
    pub bytes: usize,
    /// A smaller tail is uploaded once it has waited this long.
    pub timeout: Duration,
    /// How often each node looks for local WAL it may drop.
    pub trim_interval: Duration,
}

const MIN_TICK: Duration = Duration::from_millis(100);
const MAX_TICK: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Progress {
    /// The last offloaded index: `None` = not known yet (list the bucket), `Some(None)` =
    /// nothing offloaded.
    offloaded: Option<Option<u64>>,
    /// Since when entries have been waiting for an upload.
    pending_since: Option<Instant>,
}

pub(crate) struct Offloader {
    node_id: u64,
    remote: Arc<RemoteWal>,
    log: LogReader,
    state: SharedState,
    config: OffloadConfig,
    progress: Mutex<Progress>,
}

impl Offloader {
    pub(crate) fn new(
        node_id: u64,
        remote: Arc<RemoteWal>,
        log: LogReader,
        state: SharedState,
        config: OffloadConfig,
    ) -> Self {
        Offloader {
            node_id,
            remote,
            log,
            state,
            config,
            progress: Mutex::new(Progress::default()),
        }
    }

    /// Offloads while this node leads, and trims this node's log, until `cancel` fires.
    pub(crate) async fn run(self: Arc<Self>, raft: Raft, cancel: CancellationToken) {
        let period = (self.config.timeout / 4).clamp(MIN_TICK, MAX_TICK);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut trim_tick = tokio::time::interval(self.config.trim_interval);
        trim_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = trim_tick.tick() => {
                    // Every timeline's newest manifest, read once for both uses.
                    let coverage = match self.layer_coverage().await {
                        Ok(coverage) => coverage,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read the timelines' manifests; keeping the WAL");
                            continue;
                        }
                    };
                    self.trim(&raft, coverage.disk_consistent_lsn).await;
                    if raft.metrics().borrow().current_leader == Some(self.node_id) {
                        if let Err(e) = self.gc_bucket(coverage.gc_cutoff_lsn).await {
                            tracing::warn!(error = %e, "WAL GC in the bucket failed; retrying later");
                        }
                    }
                    continue;
                }
                _ = tick.tick() => {}
            }
            if raft.metrics().borrow().current_leader != Some(self.node_id) {
                // Another node uploads meanwhile: learn its progress from the bucket when
                // this node leads again.
                *self.progress.lock().await = Progress::default();
                continue;
            }
            if let Err(e) = self.offload(false).await {
                tracing::warn!(error = %e, "WAL offload failed; retrying later");
            }
        }
    }

    /// Uploads committed entries that are not in the bucket yet and returns the last
    /// offloaded index. With `checkpoint`, everything applied is uploaded and then a checkpoint
    /// of the state; without, only full objects and a tail that waited `timeout`.
    pub(crate) async fn offload(&self, checkpoint: bool) -> Result<u64, RemoteWalError> {
        let mut progress = self.progress.lock().await;
        let applied = self.state.applied();
        let Some(target) = applied.last_applied.map(|l| l.index) else {
            return Ok(0);
        };
        let done = match progress.offloaded {
            Some(done) => done,
            None => {
                let done = self.remote.list_wal().await?.iter().map(|o| o.1).max();
                progress.offloaded = Some(done);
                done
            }
        };
        let first_local = self.log.first_index();
        let mut next = done.map_or(0, |d| d + 1);
        if next < first_local {
            // Only after a recovery from the bucket (the local log starts after what it
            // held) or if the bucket lost objects; nothing local can fill the gap.
            if done.is_some() {
                tracing::warn!(
                    offloaded = next - 1,
                    first_local,
                    "entries between the bucket and the local log are not kept anywhere here"
                );
            }
            next = first_local;
        }
        let waited = progress
            .pending_since
            .is_some_and(|t| t.elapsed() >= self.config.timeout);
        let mut uploaded = 0usize;
        while next <= target {
            let log = self.log.clone();
            let max_bytes = self.config.bytes;
            let entries =
                tokio::task::spawn_blocking(move || log.read_range(next, target + 1, max_bytes))
                    .await
                    .map_err(|e| corrupt_local(format!("read task: {e}")))?
                    .map_err(|e| corrupt_local(e.to_string()))?;
            match entries.first() {
                Some(e) if e.log_id.index == next => {}
                _ => {
                    return Err(corrupt_local(format!(
                        "entry {next} is not in the local log"
                    )))
                }
            }
            let last = entries.last().map_or(next, |e| e.log_id.index);
            // The read stops early only once it holds `max_bytes`: a read that reaches the
            // target may be smaller than an object.
            let full = last < target;
            if !full && !checkpoint && !waited {
                // A tail smaller than an object: wait for more, or for the timeout.
                progress.pending_since.get_or_insert_with(Instant::now);
                break;
            }
            self.remote.put_wal(&entries).await?;
            uploaded += entries.len();
            progress.offloaded = Some(Some(last));
            next = last + 1;
        }
        if next > target {
            progress.pending_since = None;
        }
        if checkpoint {
            self.remote.put_state(&applied).await?;
        }
        if uploaded > 0 || checkpoint {
            tracing::info!(
                entries = uploaded,
                offloaded = next.saturating_sub(1),
                checkpoint,
                "offloaded WAL"
            );
        }
        Ok(next.saturating_sub(1))
    }
}

impl Offloader {
    /// The lowest `disk_consistent_lsn` and `gc_cutoff_lsn` over every timeline's newest
    /// manifest (`u64::MAX` each when there is no timeline).
    async fn layer_coverage(&self) -> Result<ManifestCoverage, RemoteWalError> {
        let mut lowest = ManifestCoverage {
            disk_consistent_lsn: u64::MAX,
            gc_cutoff_lsn: u64::MAX,
            deleted: false,
        };
        for timeline in self.state.applied().wal.timelines.into_keys() {
            let coverage = self.remote.manifest_coverage(timeline).await?;
            if coverage.deleted {
                continue;
            }
            lowest.disk_consistent_lsn =
                lowest.disk_consistent_lsn.min(coverage.disk_consistent_lsn);
            lowest.gc_cutoff_lsn = lowest.gc_cutoff_lsn.min(coverage.gc_cutoff_lsn);
        }
        Ok(lowest)
    }

    /// Drops the local log up to the last entry that is both offloaded and covered by the
    /// uploaded layers of every timeline (`covered`): a pageserver that falls behind reads it
    /// back from the bucket. openraft purges only what a snapshot covers, so one is built
    /// first.
    async fn trim(&self, raft: &Raft, covered: u64) {
        let offloaded = self
            .remote
            .list_wal()
            .await
            .map(|objects| objects.iter().map(|o| o.1).max());
        let upto = match offloaded.map(|o| o.map(|o| o.min(covered))) {
            Ok(Some(upto)) if upto > 0 && upto >= self.log.first_index() => upto,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell how much WAL to trim; keeping it");
                return;
            }
        };
        let snapshot = raft.metrics().borrow().snapshot;
        if snapshot.is_none_or(|s| s.index < upto) {
            if let Err(e) = raft.trigger().snapshot().await {
                tracing::warn!(error = %e, "cannot build a snapshot to trim the WAL");
                return;
            }
            let built = raft
                .wait(Some(MAX_TICK))
                .metrics(|m| m.snapshot.is_some_and(|s| s.index >= upto), "snapshot")
                .await;
            if let Err(e) = built {
                tracing::warn!(error = %e, "no snapshot to trim the WAL against");
                return;
            }
        }
        match raft.trigger().purge_log(upto).await {
            Ok(()) => tracing::info!(upto, "trimming the local WAL: offloaded and in layers"),
            Err(e) => tracing::warn!(error = %e, "cannot trim the WAL"),
        }
    }
}

impl Offloader {
    /// Deletes offloaded WAL no one can need: below the newest state checkpoint (recovery
    /// starts there) and below every timeline's GC cutoff (the pageserver reads nothing older,
    /// and its layers hold the history within the PITR window). Older state checkpoints go
    /// too. The leader does it, with `gc_cutoff` the lowest cutoff of all timelines; returns
    /// how many objects went.
    pub(crate) async fn gc_bucket(&self, gc_cutoff: u64) -> Result<usize, RemoteWalError> {
        let Some(&newest_state) = self.remote.list_states().await?.last() else {
            return Ok(0);
        };
        let upto = newest_state.min(gc_cutoff);
        let deleted = self.remote.delete_below(upto, newest_state).await?;
        if deleted > 0 {
            tracing::info!(
                upto,
                newest_state,
                deleted,
                "deleted offloaded WAL below the GC horizon"
            );
        }
        Ok(deleted)
    }
}

fn corrupt_local(detail: String) -> RemoteWalError {
    RemoteWalError::Corrupt {
        object: "local WAL".into(),
        detail,
    }
}
