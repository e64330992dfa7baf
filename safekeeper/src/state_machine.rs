//! The replicated state: per timeline, its generation history and last commit LSN.
//!
//! It lives in memory and is rebuilt on restart by re-applying the committed log (openraft does
//! that from the persisted committed log id), or loaded from the snapshot when one was taken.
//! Whether a transaction is accepted is decided here, from the log alone: a transaction counts
//! iff its generation equals its timeline's generation at its position in the log. The
//! generation history lets a WAL stream reach the same verdict for any entry it reads later.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, BasicNode, EntryPayload, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use strata_core::{Lsn, TimelineId};
use tokio::sync::watch;

use crate::durable_file;
use crate::error::SafekeeperError;
use crate::types::{Entry, LogId, Request, Response, StorageError, Txn, TypeConfig};

const SNAPSHOT_FILE: &str = "snapshot";

/// What the log says about one timeline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TimelineState {
    /// `(LSN of the Register entry, generation it started)`, ascending in both.
    pub generations: Vec<(Lsn, u32)>,
    /// LSN of the last accepted transaction (zero when none).
    pub last_commit_lsn: Lsn,
}

impl TimelineState {
    pub(crate) fn current_generation(&self) -> u32 {
        self.generations.last().map_or(0, |(_, g)| *g)
    }

    /// The generation in force for an entry at `lsn`: set by the last Register entry before it.
    pub(crate) fn generation_at(&self, lsn: Lsn) -> u32 {
        let i = self.generations.partition_point(|(at, _)| *at < lsn);
        if i == 0 {
            0
        } else {
            self.generations[i - 1].1
        }
    }

    /// Whether a transaction of `generation` in the entry at `lsn` is part of the timeline.
    /// Generation 0 never is: a primary must register first.
    pub(crate) fn accepts(&self, lsn: Lsn, generation: u32) -> bool {
        generation != 0 && generation == self.generation_at(lsn)
    }
}

/// The application state that snapshots carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WalState {
    pub timelines: BTreeMap<TimelineId, TimelineState>,
    /// Highest commit time of any applied batch, a floor for the next leader's clock.
    pub last_commit_time_micros: i64,
}

impl WalState {
    fn apply(&mut self, index: u64, request: Request) -> Response {
        let lsn = Lsn(index);
        match request {
            Request::Register { timeline } => {
                let state = self.timelines.entry(timeline).or_default();
                let generation = state.current_generation().saturating_add(1);
                state.generations.push((lsn, generation));
                Response::Registered { generation }
            }
            Request::Batch(batch) => {
                self.last_commit_time_micros =
                    self.last_commit_time_micros.max(batch.commit_time_micros);
                // Several transactions of one timeline in a batch share its LSN, so they share
                // the commit before it too.
                let mut before: HashMap<TimelineId, Lsn> = HashMap::new();
                let accepted = batch
                    .txns
                    .iter()
                    .map(|txn| {
                        let previous = *before
                            .entry(txn.timeline)
                            .or_insert_with(|| self.last_commit_lsn(&txn.timeline));
                        self.commit(lsn, txn).then_some(previous)
                    })
                    .collect();
                Response::Batch { accepted }
            }
            // A piece of a transaction that only counts once its `Joined` entry is applied.
            Request::Part(_) => Response::None,
            // A batch of one, whatever the size of the pieces before it.
            Request::Joined(joined) => {
                self.last_commit_time_micros =
                    self.last_commit_time_micros.max(joined.commit_time_micros);
                let previous = self.last_commit_lsn(&joined.txn.timeline);
                let accepted = vec![self.commit(lsn, &joined.txn).then_some(previous)];
                Response::Batch { accepted }
            }
        }
    }

    fn last_commit_lsn(&self, timeline: &TimelineId) -> Lsn {
        self.timelines
            .get(timeline)
            .map_or(Lsn::ZERO, |t| t.last_commit_lsn)
    }

    /// Judges one transaction of the entry at `lsn`, and records it when accepted.
    fn commit(&mut self, lsn: Lsn, txn: &Txn) -> bool {
        match self.timelines.get_mut(&txn.timeline) {
            Some(state) if state.accepts(lsn, txn.generation) => {
                state.last_commit_lsn = lsn;
                true
            }
            _ => false,
        }
    }
}

/// Everything applying the log produces: the application state, where it stands, and the
/// membership in force. It is what a snapshot and a state checkpoint in object storage carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AppliedState {
    pub last_applied: Option<LogId>,
    pub last_membership: StoredMembership<u64, BasicNode>,
    pub wal: WalState,
}

impl AppliedState {
    /// Applies one committed entry. The state machine and recovery from object storage both
    /// go through here, so they cannot disagree.
    pub(crate) fn apply_entry(&mut self, entry: Entry) -> Response {
        self.last_applied = Some(entry.log_id);
        match entry.payload {
            EntryPayload::Blank => Response::None,
            EntryPayload::Normal(request) => self.wal.apply(entry.log_id.index, request),
            EntryPayload::Membership(membership) => {
                self.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                Response::None
            }
        }
    }

    /// The snapshot of this state, as openraft installs it.
    pub(crate) fn to_snapshot_parts(
        &self,
    ) -> Result<(SnapshotMeta<u64, BasicNode>, Vec<u8>), postcard::Error> {
        let data = postcard::to_allocvec(&self.wal)?;
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index),
            None => "empty".to_string(),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.last_membership.clone(),
            snapshot_id,
        };
        Ok((meta, data))
    }
}

/// Read access to the state for the RPC handlers, and the applied index as a watch.
#[derive(Clone)]
pub(crate) struct SharedState {
    data: Arc<RwLock<AppliedState>>,
    /// One past the last applied index: entries `[0, applied_end)` are applied.
    applied_end: Arc<watch::Sender<u64>>,
}

impl SharedState {
    fn read(&self) -> RwLockReadGuard<'_, AppliedState> {
        self.data.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, AppliedState> {
        self.data.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the state of `timeline` (`None` when it was never registered).
    pub(crate) fn with_timeline<R>(
        &self,
        timeline: &TimelineId,
        f: impl FnOnce(Option<&TimelineState>) -> R,
    ) -> R {
        f(self.read().wal.timelines.get(timeline))
    }

    /// A copy of the whole applied state, consistent as of its `last_applied`.
    pub(crate) fn applied(&self) -> AppliedState {
        self.read().clone()
    }

    pub(crate) fn last_commit_time_micros(&self) -> i64 {
        self.read().wal.last_commit_time_micros
    }

    pub(crate) fn subscribe_applied(&self) -> watch::Receiver<u64> {
        self.applied_end.subscribe()
    }

    fn publish_applied(&self, last_applied: Option<LogId>) {
        let end = last_applied.map_or(0, |l| l.index + 1);
        self.applied_end.send_if_modified(|v| {
            let changed = *v != end;
            *v = end;
            changed
        });
    }
}

/// What is kept on disk for a snapshot.
#[derive(Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
}

impl StoredSnapshot {
    fn to_snapshot(&self) -> Snapshot<TypeConfig> {
        Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(Cursor::new(self.data.clone())),
        }
    }
}

/// The state machine given to openraft.
pub(crate) struct StateMachineStore {
    shared: SharedState,
    snapshots: SnapshotStore,
}

/// The current snapshot, shared between the state machine and its snapshot builder.
#[derive(Clone)]
struct SnapshotStore {
    path: PathBuf,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
}

impl SnapshotStore {
    fn get(&self) -> Option<StoredSnapshot> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn save(&self, snapshot: StoredSnapshot) -> Result<(), StorageError> {
        let signature = Some(snapshot.meta.signature());
        let bytes = postcard::to_allocvec(&snapshot)
            .map_err(|e| StorageIOError::write_snapshot(signature.clone(), AnyError::new(&e)))?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || durable_file::write_atomic(&path, &bytes))
            .await
            .map_err(|e| StorageIOError::write_snapshot(signature.clone(), AnyError::new(&e)))?
            .map_err(|e| StorageIOError::write_snapshot(signature, AnyError::new(&e)))?;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(snapshot);
        Ok(())
    }
}

impl StateMachineStore {
    /// An empty state machine, or the one in the snapshot kept in `dir`.
    pub(crate) fn open(dir: &Path) -> Result<StateMachineStore, SafekeeperError> {
        let path = dir.join(SNAPSHOT_FILE);
        let stored: Option<StoredSnapshot> = durable_file::read_checked(&path)
            .map_err(|e| SafekeeperError::Storage(e.to_string()))?
            .map(|bytes| postcard::from_bytes(&bytes))
            .transpose()
            .map_err(|e| SafekeeperError::Storage(format!("{}: {e}", path.display())))?;
        let data = match &stored {
            Some(s) => AppliedState {
                last_applied: s.meta.last_log_id,
                last_membership: s.meta.last_membership.clone(),
                wal: postcard::from_bytes(&s.data)
                    .map_err(|e| SafekeeperError::Storage(format!("{}: {e}", path.display())))?,
            },
            None => AppliedState::default(),
        };
        let applied_end = data.last_applied.map_or(0, |l| l.index + 1);
        Ok(StateMachineStore {
            shared: SharedState {
                data: Arc::new(RwLock::new(data)),
                applied_end: Arc::new(watch::channel(applied_end).0),
            },
            snapshots: SnapshotStore {
                path,
                current: Arc::new(Mutex::new(stored)),
            },
        })
    }

    pub(crate) fn shared(&self) -> SharedState {
        self.shared.clone()
    }

    /// Starts a pristine node from a state recovered from object storage: the state becomes
    /// this node's snapshot, exactly as if the leader had sent it.
    pub(crate) async fn seed(&mut self, state: &AppliedState) -> Result<(), SafekeeperError> {
        let (meta, data) = state
            .to_snapshot_parts()
            .map_err(|e| SafekeeperError::Storage(format!("encoding the recovered state: {e}")))?;
        self.install_snapshot(&meta, Box::new(Cursor::new(data)))
            .await
            .map_err(|e| SafekeeperError::Storage(e.to_string()))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<u64, BasicNode>), StorageError> {
        let data = self.shared.read();
        Ok((data.last_applied, data.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        let last_applied = {
            let mut data = self.shared.write();
            for entry in entries {
                responses.push(data.apply_entry(entry));
            }
            data.last_applied
        };
        self.shared.publish_applied(last_applied);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let wal: WalState = postcard::from_bytes(&data).map_err(|e| {
            StorageIOError::read_snapshot(Some(meta.signature()), AnyError::new(&e))
        })?;
        self.snapshots
            .save(StoredSnapshot {
                meta: meta.clone(),
                data,
            })
            .await?;
        {
            let mut current = self.shared.write();
            current.last_applied = meta.last_log_id;
            current.last_membership = meta.last_membership.clone();
            current.wal = wal;
        }
        tracing::info!(snapshot = %meta, "installed snapshot");
        self.shared.publish_applied(meta.last_log_id);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.snapshots.get().map(|s| s.to_snapshot()))
    }
}

/// Serializes the state machine as it is when the builder runs.
pub(crate) struct SnapshotBuilder {
    shared: SharedState,
    snapshots: SnapshotStore,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (meta, data) = self
            .shared
            .read()
            .to_snapshot_parts()
            .map_err(|e| StorageIOError::write_snapshot(None, AnyError::new(&e)))?;
        let stored = StoredSnapshot { meta, data };
        self.snapshots.save(stored.clone()).await?;
        tracing::info!(snapshot = %stored.meta, "built snapshot");
        Ok(stored.to_snapshot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Batch, Joined, Part};
    use bytes::Bytes;

    fn batch(timeline: TimelineId, generation: u32) -> Request {
        Request::Batch(Batch {
            commit_time_micros: 1,
            txns: vec![Txn {
                timeline,
                generation,
                mutations: Bytes::from_static(b"m"),
            }],
        })
    }

    #[test]
    fn accepted_transactions_name_their_timelines_previous_commit() {
        let (a, b) = (TimelineId::generate(), TimelineId::generate());
        let mut wal = WalState::default();
        wal.apply(1, Request::Register { timeline: a });
        wal.apply(2, Request::Register { timeline: b });
        assert_eq!(
            wal.apply(3, batch(a, 1)),
            Response::Batch {
                accepted: vec![Some(Lsn::ZERO)]
            }
        );
        let txn = |timeline, generation| Txn {
            timeline,
            generation,
            mutations: Bytes::from_static(b"m"),
        };
        // Two transactions of `a` in one entry both follow its commit at 3; `b` had none.
        let mixed = Request::Batch(Batch {
            commit_time_micros: 2,
            txns: vec![txn(a, 1), txn(b, 1), txn(a, 1), txn(b, 7)],
        });
        assert_eq!(
            wal.apply(4, mixed),
            Response::Batch {
                accepted: vec![Some(Lsn(3)), Some(Lsn::ZERO), Some(Lsn(3)), None]
            }
        );
        assert_eq!(
            wal.apply(5, batch(b, 1)),
            Response::Batch {
                accepted: vec![Some(Lsn(4))]
            }
        );
    }

    #[test]
    fn generations_fence_older_primaries() {
        let tl = TimelineId::generate();
        let mut wal = WalState::default();
        assert_eq!(
            wal.apply(1, batch(tl, 0)),
            Response::Batch {
                accepted: vec![None]
            }
        );
        assert_eq!(
            wal.apply(2, Request::Register { timeline: tl }),
            Response::Registered { generation: 1 }
        );
        assert_eq!(
            wal.apply(3, batch(tl, 1)),
            Response::Batch {
                accepted: vec![Some(Lsn::ZERO)]
            }
        );
        assert_eq!(
            wal.apply(4, Request::Register { timeline: tl }),
            Response::Registered { generation: 2 }
        );
        assert_eq!(
            wal.apply(5, batch(tl, 1)),
            Response::Batch {
                accepted: vec![None]
            }
        );
        let state = &wal.timelines[&tl];
        assert_eq!(state.last_commit_lsn, Lsn(3));
        // The history answers for any position, as a stream reading old entries needs.
        assert!(state.accepts(Lsn(3), 1));
        assert!(!state.accepts(Lsn(5), 1));
        assert!(state.accepts(Lsn(5), 2));
        assert!(!state.accepts(Lsn(2), 1));
        assert_eq!(state.generation_at(Lsn(1)), 0);
    }

    #[test]
    fn parts_change_nothing_and_joined_is_judged_like_a_batch_of_one() {
        let tl = TimelineId::generate();
        let mut wal = WalState::default();
        wal.apply(1, Request::Register { timeline: tl });
        let before = wal.clone();
        let part = |generation| {
            Request::Part(Part {
                timeline: tl,
                generation,
                bytes: Bytes::from_static(b"piece"),
            })
        };
        let joined = |commit_time_micros, generation, parts: Vec<u64>| {
            Request::Joined(Joined {
                commit_time_micros,
                txn: Txn {
                    timeline: tl,
                    generation,
                    mutations: Bytes::from_static(b"tail"),
                },
                parts,
            })
        };
        assert_eq!(wal.apply(2, part(1)), Response::None);
        assert_eq!(wal.apply(3, part(1)), Response::None);
        assert_eq!(wal, before);

        assert_eq!(
            wal.apply(4, joined(50, 1, vec![2, 3])),
            Response::Batch {
                accepted: vec![Some(Lsn::ZERO)]
            }
        );
        assert_eq!(wal.timelines[&tl].last_commit_lsn, Lsn(4));
        assert_eq!(wal.last_commit_time_micros, 50);

        // Fenced once a newer primary registered; the commit time still sets the floor.
        wal.apply(5, Request::Register { timeline: tl });
        wal.apply(6, part(1));
        assert_eq!(
            wal.apply(7, joined(60, 1, vec![6])),
            Response::Batch {
                accepted: vec![None]
            }
        );
        assert_eq!(wal.timelines[&tl].last_commit_lsn, Lsn(4));
        assert_eq!(wal.last_commit_time_micros, 60);
        // A timeline never registered refuses it too.
        let mut other = WalState::default();
        assert_eq!(
            other.apply(2, joined(1, 1, vec![1])),
            Response::Batch {
                accepted: vec![None]
            }
        );
    }
}
