//! Every change to a timeline's layer set (a flush, a compaction, GC) becomes visible the same
//! way: a new manifest version, created only if absent, computed from the one before under a
//! lock so that concurrent changes never overwrite each other.

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::{PageserverError, Result};
use crate::manifest::{self, Manifest, PublishOutcome};
use crate::timeline::{lock, Timeline};

impl Timeline {
    /// Publishes the next manifest version: the current one with `edit` applied. If another
    /// pageserver has published a newer generation we are fenced and nothing changes.
    pub(crate) async fn publish_manifest(
        &self,
        edit: impl Fn(&mut Manifest),
        cancel: &CancellationToken,
    ) -> Result<Manifest> {
        let _publishing = self.publish_lock.lock().await;
        let mut next = lock(&self.manifest).clone();
        next.version += 1;
        edit(&mut next);
        loop {
            match manifest::publish(&self.remote, &next, None, cancel).await? {
                PublishOutcome::Published => {
                    info!(
                        version = next.version,
                        disk_consistent_lsn = %next.disk_consistent_lsn,
                        layers = next.layers.len(),
                        "published manifest"
                    );
                    *lock(&self.manifest) = next.clone();
                    return Ok(next);
                }
                PublishOutcome::Conflict(latest) if latest.generation > self.generation => {
                    self.set_fenced(latest.generation);
                    return Err(PageserverError::Fenced(self.id));
                }
                PublishOutcome::Conflict(latest) if latest == next => {
                    // An earlier attempt of ours succeeded although its answer was lost.
                    *lock(&self.manifest) = next.clone();
                    return Ok(next);
                }
                PublishOutcome::Conflict(latest) => {
                    warn!(
                        version = next.version,
                        latest_version = latest.version,
                        latest_generation = latest.generation,
                        "manifest version taken by our own generation; publishing after it"
                    );
                    next.version = latest.version + 1;
                }
            }
        }
    }
}
