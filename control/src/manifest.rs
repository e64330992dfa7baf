use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use strata_core::layout::{manifest_version, parse_manifest_version, CONTROL_MANIFEST_DIR};
use strata_core::{Lsn, TimelineId};

use crate::ControlError;

/// The branch every deployment starts with.
pub const MAIN_BRANCH: &str = "main";

/// A named timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branch {
    pub name: String,
    pub timeline_id: TimelineId,
    /// The branch this one was created from, and the LSN it was created at.
    pub parent: Option<String>,
    pub ancestor_lsn: Option<Lsn>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// When the last commit at `ancestor_lsn` happened (RFC 3339), if known.
    #[serde(default)]
    pub branch_time: Option<String>,
}

/// A read-only endpoint: a compute pinned at one LSN of a branch. (Every branch also has a
/// read-write primary endpoint, named like the branch, which needs no entry.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSpec {
    pub name: String,
    pub branch: String,
    pub lsn: Lsn,
}

/// The control plane's state, one version of `control/manifest/<version>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlManifest {
    #[serde(skip)]
    pub version: u64,
    pub branches: Vec<Branch>,
    #[serde(default)]
    pub endpoints: Vec<EndpointSpec>,
}

impl ControlManifest {
    pub fn branch(&self, name: &str) -> Result<&Branch, ControlError> {
        self.branches
            .iter()
            .find(|b| b.name == name)
            .ok_or_else(|| ControlError::NoSuchBranch(name.to_string()))
    }

    /// Loads the latest manifest, creating the first one (with a `main` branch) if the store has
    /// none. Two deployments starting on one empty bucket agree on one `main`: creation is
    /// "create if absent", and the loser reads the winner's manifest.
    pub async fn load_or_init(store: &dyn ObjectStore) -> Result<ControlManifest, ControlError> {
        if let Some(m) = Self::load(store).await? {
            return Ok(m);
        }
        let manifest = ControlManifest {
            version: 1,
            branches: vec![Branch {
                name: MAIN_BRANCH.to_string(),
                timeline_id: TimelineId::generate(),
                parent: None,
                ancestor_lsn: None,
                created_at: chrono::Utc::now().to_rfc3339(),
                branch_time: None,
            }],
            endpoints: Vec::new(),
        };
        match manifest.publish(store).await {
            Ok(()) => {
                tracing::info!(timeline = %manifest.branches[0].timeline_id, "created branch main");
                Ok(manifest)
            }
            Err(ControlError::Conflict) => Self::load(store).await?.ok_or(ControlError::Conflict),
            Err(e) => Err(e),
        }
    }

    /// Applies `change` to the latest manifest and publishes the result as the next version,
    /// starting over when another writer published first. Returns the published manifest and
    /// what `change` returned.
    pub async fn update<T>(
        store: &dyn ObjectStore,
        mut change: impl FnMut(&mut ControlManifest) -> Result<T, ControlError>,
    ) -> Result<(ControlManifest, T), ControlError> {
        loop {
            let mut next = Self::load_or_init(store).await?;
            let out = change(&mut next)?;
            next.version += 1;
            match next.publish(store).await {
                Ok(()) => return Ok((next, out)),
                Err(ControlError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The latest manifest, if any.
    pub async fn load(store: &dyn ObjectStore) -> Result<Option<ControlManifest>, ControlError> {
        let dir = Path::from(CONTROL_MANIFEST_DIR);
        let objects: Vec<_> = store.list(Some(&dir)).try_collect().await?;
        let latest = objects
            .iter()
            .filter_map(|o| {
                o.location
                    .filename()
                    .and_then(parse_manifest_version)
                    .map(|v| (v, &o.location))
            })
            .max_by_key(|(v, _)| *v);
        let Some((version, path)) = latest else {
            return Ok(None);
        };
        let bytes = store.get(path).await?.bytes().await?;
        let mut manifest: ControlManifest =
            serde_json::from_slice(&bytes).map_err(|e| ControlError::CorruptManifest {
                path: path.to_string(),
                reason: e.to_string(),
            })?;
        manifest.version = version;
        Ok(Some(manifest))
    }

    /// Writes this manifest as version `self.version`, failing with `Conflict` if that version
    /// exists already.
    pub async fn publish(&self, store: &dyn ObjectStore) -> Result<(), ControlError> {
        let path = Path::from(manifest_version(CONTROL_MANIFEST_DIR, self.version));
        let body = serde_json::to_vec_pretty(self).expect("manifests serialize");
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match store
            .put_opts(&path, PutPayload::from(Bytes::from(body)), opts)
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Err(ControlError::Conflict),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::local::LocalFileSystem;

    #[tokio::test]
    async fn main_is_created_once_and_survives_reload() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let first = ControlManifest::load_or_init(&store).await.unwrap();
        let again = ControlManifest::load_or_init(&store).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(again.version, 1);
        assert!(again.branch(MAIN_BRANCH).is_ok());
        assert!(matches!(
            again.branch("nope"),
            Err(ControlError::NoSuchBranch(_))
        ));
        // A second writer of the same version loses.
        assert!(matches!(
            first.publish(&store).await,
            Err(ControlError::Conflict)
        ));
    }
}
