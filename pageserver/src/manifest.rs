//! The timeline manifest: the one object that says which layer files make up a timeline.
//!
//! Manifests are never overwritten. Each change is a new version, created only if absent
//! (`PutMode::Create`, i.e. `If-None-Match: *`), and the current manifest is the highest
//! version. A pageserver owns a timeline by publishing a version with a higher `generation`
//! than any before it; an older owner's next publish then finds its version taken by a
//! manifest of a newer generation and knows it has been fenced.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strata_core::{Lsn, TimelineId};
use tokio_util::sync::CancellationToken;

use crate::error::{PageserverError, Result};
use crate::layer_desc::LayerDesc;
use crate::remote::{CreateOutcome, RemoteStorage};

const FORMAT_VERSION: u32 = 1;

/// Where a branch's history continues below its first LSN: the timeline it was created from,
/// and the LSN it was created at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ancestor {
    pub timeline_id: TimelineId,
    pub lsn: Lsn,
}

/// A branch created from this timeline (`child`), and the LSN it reads this one at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BranchPoint {
    pub child: TimelineId,
    pub lsn: Lsn,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub format_version: u32,
    /// This object's version; 0 only for the implicit manifest of a new timeline.
    pub version: u64,
    /// The owner's generation: a pageserver takes a timeline over by publishing `generation+1`.
    pub generation: u64,
    pub timeline_id: TimelineId,
    /// Every record at or below this LSN is in `layers`; WAL replay resumes after it.
    pub disk_consistent_lsn: Lsn,
    /// Layer files, oldest LSN range first.
    pub layers: Vec<LayerDesc>,
    /// The timeline this branch was created from: reads of keys this timeline never wrote
    /// continue there, at `ancestor.lsn`. `None` for a root timeline.
    pub ancestor: Option<Ancestor>,
    /// The branches created from this timeline, and where: GC keeps what reads at each of
    /// these LSNs need, for as long as the child exists.
    #[serde(default)]
    pub branch_points: Vec<BranchPoint>,
    /// Set on the last version of a deleted timeline: nothing may attach it, and the
    /// safekeepers stop keeping WAL for it.
    #[serde(default)]
    pub deleted: bool,
    /// LSNs at which image layers hold every live key of the timeline: what GC may keep
    /// instead of the history below. Ascending.
    #[serde(default)]
    pub image_lsns: Vec<Lsn>,
    /// Reads below this LSN are refused: GC may have removed what they need.
    #[serde(default)]
    pub gc_cutoff_lsn: Lsn,
    /// `(lsn, newest commit time at or below it)`, one per flush, ascending: maps a point in
    /// time to an LSN (microseconds since the Unix epoch). Trimmed below the GC cutoff.
    #[serde(default)]
    pub commit_times: Vec<(Lsn, i64)>,
}

impl Manifest {
    /// The manifest of a timeline that has never been written.
    pub fn empty(timeline_id: TimelineId) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            version: 0,
            generation: 0,
            timeline_id,
            disk_consistent_lsn: Lsn::ZERO,
            layers: Vec::new(),
            ancestor: None,
            branch_points: Vec::new(),
            deleted: false,
            image_lsns: Vec::new(),
            gc_cutoff_lsn: Lsn::ZERO,
            commit_times: Vec::new(),
        }
    }

    /// The first manifest of a branch of `ancestor`: no layers, WAL replay starting after the
    /// branch point.
    pub fn branch(timeline_id: TimelineId, ancestor: Ancestor) -> Self {
        Self {
            version: 1,
            disk_consistent_lsn: ancestor.lsn,
            ancestor: Some(ancestor),
            ..Self::empty(timeline_id)
        }
    }

    /// Notes that every record at or below `lsn` committed at or before `micros`.
    pub fn record_commit_time(&mut self, lsn: Lsn, micros: Option<i64>) {
        let Some(micros) = micros else {
            return;
        };
        match self.commit_times.last() {
            None => self.commit_times.push((lsn, micros)),
            // A running maximum, so times ascend with LSNs even if clocks step back.
            Some(&(l, t)) if l < lsn => self.commit_times.push((lsn, micros.max(t))),
            Some(_) => {}
        }
    }

    /// The highest recorded LSN whose records all committed at or before `micros`.
    pub fn lsn_at_time(&self, micros: i64) -> Option<Lsn> {
        self.commit_times
            .iter()
            .take_while(|(_, t)| *t <= micros)
            .last()
            .map(|(l, _)| *l)
    }

    fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec_pretty(self).expect("a manifest always serializes"))
    }

    fn parse(body: &[u8], timeline: TimelineId, version: u64) -> Result<Self> {
        let what = format!("manifest {timeline} version {version}");
        let m: Manifest = serde_json::from_slice(body)
            .map_err(|e| PageserverError::corruption(&what, e.to_string()))?;
        if m.format_version != FORMAT_VERSION {
            return Err(PageserverError::corruption(
                &what,
                format!("unknown format version {}", m.format_version),
            ));
        }
        if m.timeline_id != timeline || m.version != version {
            return Err(PageserverError::corruption(
                &what,
                format!("names timeline {} version {}", m.timeline_id, m.version),
            ));
        }
        Ok(m)
    }
}

/// Loads the newest manifest of a timeline, `None` when it has none.
pub(crate) async fn load_latest(
    remote: &RemoteStorage,
    timeline: TimelineId,
    cancel: &CancellationToken,
) -> Result<Option<Manifest>> {
    let versions = remote.list_manifest_versions(timeline, cancel).await?;
    let Some(latest) = versions.into_iter().max() else {
        return Ok(None);
    };
    let body = remote.get_manifest(timeline, latest, cancel).await?;
    Manifest::parse(&body, timeline, latest).map(Some)
}

/// How publishing a version ended.
#[derive(Debug)]
pub(crate) enum PublishOutcome {
    Published,
    /// Someone else created this version first; here is the newest manifest now.
    Conflict(Manifest),
}

/// Creates `manifest.version` unless it exists. `attempts` bounds retries of transient errors.
pub(crate) async fn publish(
    remote: &RemoteStorage,
    manifest: &Manifest,
    attempts: Option<u32>,
    cancel: &CancellationToken,
) -> Result<PublishOutcome> {
    let outcome = remote
        .create_manifest(
            manifest.timeline_id,
            manifest.version,
            manifest.to_bytes(),
            attempts,
            cancel,
        )
        .await?;
    match outcome {
        CreateOutcome::Created => Ok(PublishOutcome::Published),
        CreateOutcome::AlreadyExists => {
            let latest = load_latest(remote, manifest.timeline_id, cancel)
                .await?
                .ok_or_else(|| {
                    PageserverError::Internal(
                        "manifest version exists but no manifest is listed".into(),
                    )
                })?;
            Ok(PublishOutcome::Conflict(latest))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip_and_check_their_identity() {
        let id = TimelineId::generate();
        let mut m = Manifest::empty(id);
        m.version = 3;
        m.generation = 2;
        let body = m.to_bytes();
        assert_eq!(Manifest::parse(&body, id, 3).unwrap(), m);
        assert!(Manifest::parse(&body, id, 4).is_err());
        assert!(Manifest::parse(&body, TimelineId::generate(), 3).is_err());
        assert!(Manifest::parse(b"{", id, 3).is_err());
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("\"ancestor\": null"), "{text}");
    }
}
