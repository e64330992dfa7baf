//! The Raft pointers kept next to the log: vote, committed log id, last purged log id.
//!
//! All three live in one small file (`raft_meta`) replaced atomically on every change.
//! The vote and the purge point are written before the call returns: losing a vote could let a
//! node vote twice in a term, and losing the purge point would make purged entries reappear.
//! The committed log id only tells a restarting node how far it may re-apply its own log before
//! the leader tells it again, so it is written in the background, coalesced, off the commit path;
//! after a crash it may lag slightly, which is safe (it only ever names a committed entry).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::durable_file;
use crate::log_store::LogStoreError;
use crate::types::{LogId, Vote};

const FILE_NAME: &str = "raft_meta";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RaftMeta {
    pub vote: Option<Vote>,
    pub committed: Option<LogId>,
    pub last_purged: Option<LogId>,
}

/// Owns the `raft_meta` file of one node.
pub(crate) struct MetaStore {
    path: PathBuf,
    current: Arc<Mutex<RaftMeta>>,
    /// Serializes writers, so that the file on disk always ends as the latest state.
    write_lock: Arc<tokio::sync::Mutex<()>>,
    committed_tx: watch::Sender<u64>,
}

/// The background task that persists the committed log id. Await [`MetaFlusher::finish`] after
/// the store is dropped, so that a restart in the same process never races the last write.
pub(crate) struct MetaFlusher {
    task: JoinHandle<()>,
}

impl MetaFlusher {
    pub(crate) async fn finish(self) {
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "raft meta flusher task failed");
        }
    }
}

impl MetaStore {
    /// Loads the file in `dir` (absent means a pristine node) and starts the flusher.
    pub(crate) fn open(dir: &Path) -> Result<(MetaStore, MetaFlusher), LogStoreError> {
        let path = dir.join(FILE_NAME);
        let meta = match durable_file::read_checked(&path)? {
            Some(bytes) => postcard::from_bytes(&bytes).map_err(|e| {
                LogStoreError::Corrupt(format!("{}: undecodable: {e}", path.display()))
            })?,
            None => RaftMeta::default(),
        };
        let (committed_tx, committed_rx) = watch::channel(0);
        let store = MetaStore {
            path,
            current: Arc::new(Mutex::new(meta)),
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
            committed_tx,
        };
        let task = tokio::spawn(flush_committed(
            committed_rx,
            store.path.clone(),
            store.current.clone(),
            store.write_lock.clone(),
        ));
        Ok((store, MetaFlusher { task }))
    }

    pub(crate) fn get(&self) -> RaftMeta {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) async fn save_vote(&self, vote: Vote) -> Result<(), LogStoreError> {
        self.update(|m| m.vote = Some(vote));
        persist(&self.path, &self.current, &self.write_lock).await
    }

    pub(crate) async fn save_last_purged(&self, log_id: LogId) -> Result<(), LogStoreError> {
        self.update(|m| m.last_purged = Some(log_id));
        persist(&self.path, &self.current, &self.write_lock).await
    }

    /// Makes a pristine node start after `last` in one durable write: `last` is purged and
    /// committed, and the vote is `vote`. Used when a node is recovered from object storage.
    pub(crate) async fn seed(&self, vote: Vote, last: LogId) -> Result<(), LogStoreError> {
        self.update(|m| {
            m.vote = Some(vote);
            m.committed = Some(last);
            m.last_purged = Some(last);
        });
        persist(&self.path, &self.current, &self.write_lock).await
    }

    /// Records the committed log id and asks the flusher to persist it soon.
    pub(crate) fn save_committed(&self, committed: Option<LogId>) {
        self.update(|m| m.committed = committed);
        self.committed_tx.send_modify(|v| *v += 1);
    }

    fn update(&self, f: impl FnOnce(&mut RaftMeta)) {
        f(&mut self.current.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

async fn flush_committed(
    mut changes: watch::Receiver<u64>,
    path: PathBuf,
    current: Arc<Mutex<RaftMeta>>,
    write_lock: Arc<tokio::sync::Mutex<()>>,
) {
    // `changed` still reports a change made just before the store was dropped, so the last
    // committed id is written before the task ends.
    while changes.changed().await.is_ok() {
        if let Err(e) = persist(&path, &current, &write_lock).await {
            tracing::warn!(error = %e, "could not persist the committed log id");
        }
        // Under steady load the committed id changes with every commit. Writing it each time
        // (write, fsync, rename, fsync of the directory) competes with the WAL's own fsyncs for
        // the disk and shows up in the commit latency tail; lagging a little is safe.
        tokio::time::sleep(COMMITTED_FLUSH_INTERVAL).await;
    }
}

/// The committed log id is persisted at most this often.
const COMMITTED_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Writes the latest state. Holding `write_lock` across the write means the last writer to
/// finish wrote the newest state.
async fn persist(
    path: &Path,
    current: &Mutex<RaftMeta>,
    write_lock: &tokio::sync::Mutex<()>,
) -> Result<(), LogStoreError> {
    let _guard = write_lock.lock().await;
    let meta = current
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let bytes = postcard::to_allocvec(&meta)
        .map_err(|e| LogStoreError::Corrupt(format!("cannot encode raft meta: {e}")))?;
    let path_buf = path.to_path_buf();
    tokio::task::spawn_blocking(move || durable_file::write_atomic(&path_buf, &bytes))
        .await
        .map_err(|e| LogStoreError::io("writing raft meta", std::io::Error::other(e)))?
        .map_err(|e| LogStoreError::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    #[tokio::test]
    async fn vote_committed_and_purged_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let vote = Vote::new(4, 2);
        let committed = LogId::new(CommittedLeaderId::new(4, 2), 17);
        {
            let (store, flusher) = MetaStore::open(dir.path()).unwrap();
            assert_eq!(store.get(), RaftMeta::default());
            store.save_vote(vote).await.unwrap();
            store.save_committed(Some(committed));
            store.save_last_purged(committed).await.unwrap();
            drop(store);
            flusher.finish().await;
        }
        let (store, flusher) = MetaStore::open(dir.path()).unwrap();
        let meta = store.get();
        assert_eq!(meta.vote, Some(vote));
        assert_eq!(meta.committed, Some(committed));
        assert_eq!(meta.last_purged, Some(committed));
        drop(store);
        flusher.finish().await;
    }
}
