//! The safekeepers' WAL in object storage: stretches of the committed Raft log offloaded as
//! immutable objects, and checkpoints of the replicated state. With them a group whose every
//! disk was lost starts again from the bucket alone ([`RemoteWal::recover`]), and any node
//! serves WAL it does not keep locally ([`RemoteWal::read_range`]).
//!
//! ```text
//! safekeepers/wal/<first>-<last>   postcard(Vec<Entry>): the entries first..=last, in order
//! safekeepers/state/<index>        postcard(AppliedState): the state after entry `index`
//! ```
//!
//! Every body is followed by its crc32c (u32, little-endian) and an 8-byte magic, checked on
//! read: a damaged object is an error, never a wrong state. Objects are created with
//! `PutMode::Create`. Committed entries never change, so two nodes that offload the same
//! entries write the same bytes and the second one's `AlreadyExists` is success; objects of
//! different nodes may overlap, and readers take each entry once.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use strata_core::{layout, TimelineId};

use crate::state_machine::AppliedState;
use crate::types::Entry;

const WAL_MAGIC: &[u8; 8] = b"STRATAWL";
const STATE_MAGIC: &[u8; 8] = b"STRATASS";
const TRAILER_LEN: usize = 4 + 8;

/// Why object storage could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RemoteWalError {
    #[error("object storage: {0}")]
    Store(#[from] object_store::Error),
    #[error("object {object} is damaged: {detail}")]
    Corrupt { object: String, detail: String },
    #[error("the offloaded WAL has no entry {0}")]
    Missing(u64),
}

type Result<T> = std::result::Result<T, RemoteWalError>;

/// One offloaded object, decoded.
struct WalObject {
    first: u64,
    last: u64,
    entries: Vec<Entry>,
}

/// Access to the offloaded WAL and the state checkpoints.
pub(crate) struct RemoteWal {
    store: Arc<dyn ObjectStore>,
    /// The `(first, last)` of every WAL object, as last listed, sorted.
    listing: Mutex<Vec<(u64, u64)>>,
    /// The object read last: a stream reads its entries one slice at a time.
    last_read: Mutex<Option<Arc<WalObject>>>,
}

impl RemoteWal {
    pub(crate) fn new(store: Arc<dyn ObjectStore>) -> Self {
        RemoteWal {
            store,
            listing: Mutex::new(Vec::new()),
            last_read: Mutex::new(None),
        }
    }

    /// Every WAL object's `(first, last)`, sorted by `first`.
    pub(crate) async fn list_wal(&self) -> Result<Vec<(u64, u64)>> {
        let objects = self
            .list_names(
                layout::SAFEKEEPER_WAL_DIR,
                layout::parse_safekeeper_wal_object,
            )
            .await?;
        *self.listing.lock().unwrap_or_else(PoisonError::into_inner) = objects.clone();
        Ok(objects)
    }

    /// Uploads consecutive committed entries as one object.
    pub(crate) async fn put_wal(&self, entries: &[Entry]) -> Result<()> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        let name = layout::safekeeper_wal_object(first.log_id.index, last.log_id.index);
        let body = postcard::to_allocvec(entries).map_err(|e| RemoteWalError::Corrupt {
            object: name.clone(),
            detail: format!("cannot encode: {e}"),
        })?;
        self.create(&name, seal(body, WAL_MAGIC)).await
    }

    /// Uploads a checkpoint of the replicated state (nothing when nothing was applied).
    pub(crate) async fn put_state(&self, state: &AppliedState) -> Result<()> {
        let Some(last) = state.last_applied else {
            return Ok(());
        };
        let name = layout::safekeeper_state_object(last.index);
        let body = postcard::to_allocvec(state).map_err(|e| RemoteWalError::Corrupt {
            object: name.clone(),
            detail: format!("cannot encode: {e}"),
        })?;
        self.create(&name, seal(body, STATE_MAGIC)).await
    }

    async fn create(&self, name: &str, bytes: Bytes) -> Result<()> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&Path::from(name), PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The newest state checkpoint, if any.
    async fn latest_state(&self) -> Result<Option<AppliedState>> {
        let Some(&newest) = self.list_states().await?.last() else {
            return Ok(None);
        };
        let location = Path::from(layout::safekeeper_state_object(newest));
        let bytes = self.store.get(&location).await?.bytes().await?;
        let object = location.to_string();
        let body = unseal(&bytes, STATE_MAGIC, &object)?;
        postcard::from_bytes(body)
            .map(Some)
            .map_err(|e| RemoteWalError::Corrupt {
                object,
                detail: format!("undecodable: {e}"),
            })
    }

    async fn get_wal(&self, first: u64, last: u64) -> Result<Arc<WalObject>> {
        if let Some(cached) = self
            .last_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|o| o.first == first && o.last == last)
        {
            return Ok(cached.clone());
        }
        let name = layout::safekeeper_wal_object(first, last);
        let bytes = self.get_bytes(&name).await?;
        let body = unseal(&bytes, WAL_MAGIC, &name)?;
        let entries: Vec<Entry> =
            postcard::from_bytes(body).map_err(|e| RemoteWalError::Corrupt {
                object: name.clone(),
                detail: format!("undecodable: {e}"),
            })?;
        let consecutive = entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.log_id.index == first + i as u64);
        if !consecutive || entries.len() as u64 != last - first + 1 {
            return Err(RemoteWalError::Corrupt {
                object: name,
                detail: "entries do not match the name".into(),
            });
        }
        let object = Arc::new(WalObject {
            first,
            last,
            entries,
        });
        *self
            .last_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(object.clone());
        Ok(object)
    }

    /// The object holding entry `index` that reaches furthest, looking at the cached listing
    /// first and listing again when it has none.
    async fn object_with(&self, index: u64) -> Result<Option<(u64, u64)>> {
        let find = |objects: &[(u64, u64)]| {
            objects
                .iter()
                .filter(|(first, last)| *first <= index && index <= *last)
                .max_by_key(|(_, last)| *last)
                .copied()
        };
        let cached = find(&self.listing.lock().unwrap_or_else(PoisonError::into_inner));
        match cached {
            Some(found) => Ok(Some(found)),
            None => Ok(find(&self.list_wal().await?)),
        }
    }

    /// Offloaded entries `[start, end)`, starting exactly at `start`, from one object (so
    /// possibly fewer than asked). `Missing` when no object holds `start`.
    pub(crate) async fn read_range(&self, start: u64, end: u64) -> Result<Vec<Entry>> {
        let (first, last) = self
            .object_with(start)
            .await?
            .ok_or(RemoteWalError::Missing(start))?;
        let object = self.get_wal(first, last).await?;
        let from = (start - object.first) as usize;
        let to = (end.min(object.last + 1) - object.first) as usize;
        Ok(object.entries[from..to.max(from)].to_vec())
    }

    /// What the newest manifest of `timeline` says about the LSNs the pageserver covers and
    /// still serves; zeros when it has none.
    pub(crate) async fn manifest_coverage(&self, timeline: TimelineId) -> Result<ManifestCoverage> {
        let dir = layout::timeline_manifest_dir(timeline);
        let versions = self
            .list_names(&dir, layout::parse_manifest_version)
            .await?;
        let Some(&version) = versions.last() else {
            return Ok(ManifestCoverage::default());
        };
        let name = layout::manifest_version(&dir, version);
        let bytes = self.get_bytes(&name).await?;
        serde_json::from_slice::<ManifestCoverage>(&bytes).map_err(|e| RemoteWalError::Corrupt {
            object: name,
            detail: format!("not a manifest: {e}"),
        })
    }

    /// Indexes of the state checkpoints in the bucket, ascending.
    pub(crate) async fn list_states(&self) -> Result<Vec<u64>> {
        self.list_names(layout::SAFEKEEPER_STATE_DIR, layout::parse_manifest_version)
            .await
    }

    /// What `parse` makes of the names of the objects under `dir`, sorted; names it rejects
    /// are skipped.
    async fn list_names<T: Ord>(&self, dir: &str, parse: fn(&str) -> Option<T>) -> Result<Vec<T>> {
        let mut listing = self.store.list(Some(&Path::from(dir)));
        let mut parsed = Vec::new();
        while let Some(meta) = listing.next().await {
            if let Some(item) = meta?.location.filename().and_then(parse) {
                parsed.push(item);
            }
        }
        parsed.sort_unstable();
        Ok(parsed)
    }

    /// Deletes the WAL objects whose entries all lie at or below `upto` and the state
    /// checkpoints older than `keep_state`. Returns how many objects went.
    pub(crate) async fn delete_below(&self, upto: u64, keep_state: u64) -> Result<usize> {
        let mut deleted = 0;
        for (first, last) in self.list_wal().await? {
            if last <= upto {
                self.delete(&layout::safekeeper_wal_object(first, last))
                    .await?;
                deleted += 1;
            }
        }
        for index in self.list_states().await? {
            if index < keep_state {
                self.delete(&layout::safekeeper_state_object(index)).await?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    async fn get_bytes(&self, name: &str) -> Result<Bytes> {
        Ok(self.store.get(&Path::from(name)).await?.bytes().await?)
    }

    async fn delete(&self, name: &str) -> Result<()> {
        match self.store.delete(&Path::from(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The replicated state after the last offloaded entry: the newest checkpoint, then every
    /// offloaded entry after it applied in order. `None` when the bucket holds neither.
    pub(crate) async fn recover(&self) -> Result<Option<AppliedState>> {
        let checkpoint = self.latest_state().await?;
        let objects = self.list_wal().await?;
        if checkpoint.is_none() && objects.is_empty() {
            return Ok(None);
        }
        let mut state = checkpoint.unwrap_or_default();
        let mut next = state.last_applied.map_or(0, |l| l.index + 1);
        loop {
            let covering = objects
                .iter()
                .filter(|(first, last)| *first <= next && next <= *last)
                .max_by_key(|(_, last)| *last);
            let Some(&(first, last)) = covering else {
                if let Some((first, _)) = objects.iter().find(|(first, _)| *first > next) {
                    return Err(RemoteWalError::Corrupt {
                        object: layout::SAFEKEEPER_WAL_DIR.into(),
                        detail: format!(
                            "entries {next} to {} are missing",
                            first.saturating_sub(1)
                        ),
                    });
                }
                break;
            };
            let object = self.get_wal(first, last).await?;
            for entry in object.entries.iter().skip((next - first) as usize) {
                state.apply_entry(entry.clone());
            }
            next = last + 1;
        }
        Ok(Some(state))
    }
}

/// The fields of a pageserver manifest the safekeepers read (see its format).
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ManifestCoverage {
    /// Every record at or below it is in uploaded layers.
    pub disk_consistent_lsn: u64,
    /// The pageserver's GC cutoff: no read goes below it any more.
    #[serde(default)]
    pub gc_cutoff_lsn: u64,
    /// A deleted timeline needs no WAL kept for it.
    #[serde(default)]
    pub deleted: bool,
}

/// `body`, its crc32c and `magic`.
fn seal(body: Vec<u8>, magic: &[u8; 8]) -> Bytes {
    let crc = crc32c::crc32c(&body);
    let mut out = BytesMut::with_capacity(body.len() + TRAILER_LEN);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(magic);
    out.freeze()
}

/// The body of a sealed object, after checking its magic and checksum.
fn unseal<'a>(bytes: &'a [u8], magic: &[u8; 8], object: &str) -> Result<&'a [u8]> {
    let corrupt = |detail: &str| RemoteWalError::Corrupt {
        object: object.to_string(),
        detail: detail.to_string(),
    };
    if bytes.len() < TRAILER_LEN || &bytes[bytes.len() - 8..] != magic {
        return Err(corrupt("bad magic (truncated or not a WAL object)"));
    }
    let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
    let crc = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes"));
    if crc32c::crc32c(body) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(body)
}
