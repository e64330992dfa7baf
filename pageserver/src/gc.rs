//! Garbage collection: removes what no read can need any more.
//!
//! The horizon is the newest LSN older than the PITR window (`pitr_window`, mapped to an LSN
//! through the manifest's commit times), held back by the branch points of the timeline's
//! children (kept in its manifest) and by LSN leases (kept in memory, for readers pinned in
//! the past). GC picks the newest complete image set at or below the horizon as the new
//! cutoff, and drops every layer whose versions all lie at or below it (except that image
//! set): a read at or above the cutoff finds everything it needs in the image and above.
//! Reads below the cutoff are refused from then on.
//!
//! Objects are deleted only after the manifest that dropped them is published; manifest
//! versions older than the last few, and layer objects that no manifest names (uploads of
//! a crash or of a fenced owner), are swept too.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use strata_core::Lsn;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::error::Result;
use crate::layer_desc::{LayerDesc, LayerKind};
use crate::timeline::{lock, Timeline};

/// Manifest versions kept below the current one, for operators looking back.
const MANIFEST_VERSIONS_KEPT: u64 = 10;
/// A layer object named by no manifest is deleted only once it is this old: younger ones
/// may be uploads whose manifest is still being published.
const ORPHAN_GRACE: Duration = Duration::from_secs(3600);

/// What one GC run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct GcOutcome {
    pub horizon: Lsn,
    pub cutoff: Lsn,
    pub layers_removed: usize,
    pub manifests_removed: usize,
    pub orphans_removed: usize,
}

impl Timeline {
    /// Runs GC if `gc_period` has passed since the last run (or since attach).
    pub(crate) async fn gc_if_due(&self, cancel: &CancellationToken) -> Result<Option<GcOutcome>> {
        if lock(&self.last_gc).elapsed() < self.conf.gc_period {
            return Ok(None);
        }
        let outcome = self.gc(cancel).await?;
        *lock(&self.last_gc) = std::time::Instant::now();
        Ok(Some(outcome))
    }

    /// The LSN below which no read can go: the oldest of the PITR window's start, every
    /// branch point on this timeline, and every live LSN lease.
    pub(crate) fn gc_horizon(&self) -> Lsn {
        let window = i64::try_from(self.conf.pitr_window.as_micros()).unwrap_or(i64::MAX);
        let manifest = lock(&self.manifest);
        let pitr = manifest
            .lsn_at_time(now_micros().saturating_sub(window))
            .unwrap_or(Lsn::ZERO);
        let branches = manifest.branch_points.iter().map(|b| b.lsn).min();
        let leases = self.oldest_lease();
        [Some(pitr), branches, leases]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(Lsn::ZERO)
    }

    /// Holds GC back from `lsn` for `duration` (a reader pinned in the past, a branch being
    /// created). Refused when GC has already passed it.
    pub(crate) fn lease_lsn(&self, lsn: Lsn, duration: Duration) -> Result<Instant> {
        self.check_gc_cutoff(lsn)?;
        let expires = Instant::now() + duration;
        let mut leases = lock(&self.leases);
        let entry = leases.entry(lsn).or_insert(expires);
        *entry = (*entry).max(expires);
        Ok(*entry)
    }

    /// The oldest LSN a live lease holds; expired leases are dropped.
    fn oldest_lease(&self) -> Option<Lsn> {
        let now = Instant::now();
        let mut leases = lock(&self.leases);
        leases.retain(|_, expires| *expires > now);
        leases.keys().next().copied()
    }

    /// One GC run; see the module documentation.
    pub(crate) async fn gc(&self, cancel: &CancellationToken) -> Result<GcOutcome> {
        let _exclusive = self.compaction_lock.lock().await;
        let horizon = self.gc_horizon();
        let current = lock(&self.manifest).clone();
        let mut outcome = GcOutcome {
            horizon,
            cutoff: current.gc_cutoff_lsn,
            ..GcOutcome::default()
        };
        let cutoff = current
            .image_lsns
            .iter()
            .copied()
            .filter(|l| *l <= horizon)
            .max();
        if let Some(cutoff) = cutoff.filter(|c| *c > current.gc_cutoff_lsn) {
            let dropped: Vec<LayerDesc> = current
                .layers
                .iter()
                .filter(|l| {
                    l.lsn_end <= cutoff && !(l.kind == LayerKind::Image && l.lsn_end == cutoff)
                })
                .cloned()
                .collect();
            let names: Vec<String> = dropped.iter().map(|l| l.name.clone()).collect();
            self.publish_manifest(
                |m| {
                    m.layers.retain(|l| !names.contains(&l.name));
                    m.gc_cutoff_lsn = cutoff;
                    m.image_lsns.retain(|l| *l >= cutoff);
                    // Keep the last sample at or below the cutoff: it dates the cutoff itself.
                    let keep_from = m.commit_times.iter().rposition(|(l, _)| *l <= cutoff);
                    if let Some(i) = keep_from {
                        m.commit_times.drain(..i);
                    }
                },
                cancel,
            )
            .await?;
            let files: Vec<_> = {
                let mut map = self.layers_write();
                let files = map
                    .files
                    .iter()
                    .filter(|f| names.contains(&f.desc().name))
                    .cloned()
                    .collect();
                map.replace(&names, Vec::new());
                files
            };
            outcome.cutoff = cutoff;
            outcome.layers_removed = dropped.len();
            self.delete_layers(files).await;
        }
        outcome.manifests_removed = self.sweep_manifests(cancel).await?;
        outcome.orphans_removed = self.sweep_orphans(cancel).await?;
        info!(?outcome, "GC done");
        Ok(outcome)
    }

    async fn sweep_manifests(&self, cancel: &CancellationToken) -> Result<usize> {
        let current = lock(&self.manifest).version;
        let old: Vec<u64> = self
            .remote
            .list_manifest_versions(self.id, cancel)
            .await?
            .into_iter()
            .filter(|v| v + MANIFEST_VERSIONS_KEPT < current)
            .collect();
        for v in &old {
            self.remote.delete_manifest(self.id, *v).await?;
        }
        Ok(old.len())
    }

    async fn sweep_orphans(&self, cancel: &CancellationToken) -> Result<usize> {
        let listed = self.remote.list_layers(self.id, cancel).await?;
        // Under the publish lock, so no manifest naming a listed object is being published.
        let _publishing = self.publish_lock.lock().await;
        let manifest = lock(&self.manifest).clone();
        let now = chrono::Utc::now();
        let mut removed = 0;
        for (name, modified) in listed {
            let named = manifest.layers.iter().any(|l| l.name == name);
            let age = (now - modified).to_std().unwrap_or_default();
            if !named && age >= ORPHAN_GRACE {
                self.remote.delete_layer(self.id, &name).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Now, in microseconds since the Unix epoch.
pub(crate) fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
