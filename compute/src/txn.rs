//! Transactions in the primary: snapshots, write sets, conflict detection and commit.
//!
//! Concurrency control lives in the primary, in memory (DESIGN.md). A transaction reads at the
//! LSN of the last commit the primary knew when it began (its snapshot) and buffers its writes.
//! At commit, the primary checks every written key against the keys other transactions committed
//! after that snapshot or are committing right now (first committer wins), locks them, appends one
//! WAL record to the safekeepers, and only then makes the commit visible.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use strata_core::wal::{encode_mutations, Mutation};
use strata_core::Lsn;

use crate::error::{sqlstate, SqlError, SqlResult};
use crate::last_written::LastWritten;
use crate::storage::SafekeeperClient;

/// Commits remembered per key are pruned once no running transaction can conflict with them;
/// pruning walks the whole map, so it runs every this many commits.
const PRUNE_EVERY_COMMITS: u64 = 256;

/// Why a key is written, which decides the error a conflict on it becomes.
#[derive(Debug, Clone)]
pub enum WriteKind {
    /// A new row: a concurrent write of the same key is a duplicate key (23505).
    Insert {
        constraint: String,
        key_description: String,
    },
    /// A change to an existing key (catalog updates): a concurrent write is a serialization
    /// failure (40001).
    Update,
}

#[derive(Debug, Clone)]
pub struct Write {
    /// `None` deletes the key.
    pub value: Option<Bytes>,
    pub kind: WriteKind,
}

/// One transaction: its snapshot and its buffered writes.
pub struct Transaction {
    manager: Arc<TxnManager>,
    id: u64,
    snapshot: Lsn,
    writes: BTreeMap<Bytes, Write>,
    /// Read-only transactions never commit, so their snapshot need not hold back pruning.
    read_only: bool,
}

impl Transaction {
    /// The LSN this transaction reads at.
    pub fn snapshot(&self) -> Lsn {
        self.snapshot
    }

    pub fn write(&self, key: &[u8]) -> Option<&Write> {
        self.writes.get(key)
    }

    pub fn put(&mut self, key: Bytes, value: Bytes, kind: WriteKind) {
        self.writes.insert(
            key,
            Write {
                value: Some(value),
                kind,
            },
        );
    }

    pub fn delete(&mut self, key: Bytes, kind: WriteKind) {
        self.writes.insert(key, Write { value: None, kind });
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.read_only {
            self.manager.release_snapshot(self.snapshot);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyState {
    /// A transaction with this id is committing a write to the key.
    Pending(u64),
    /// The last write to the key committed at this LSN.
    Committed(Lsn),
}

#[derive(Debug, Default)]
struct State {
    /// Every committed transaction is at or below this LSN; new transactions read here.
    last_commit_lsn: Lsn,
    keys: HashMap<Bytes, KeyState>,
    /// Snapshots of running transactions (with a count each).
    active: BTreeMap<Lsn, usize>,
    commits_since_prune: u64,
}

/// The primary's transaction manager.
pub struct TxnManager {
    safekeepers: SafekeeperClient,
    generation: u32,
    state: Mutex<State>,
    next_txn_id: AtomicU64,
    next_row_id: AtomicU64,
    last_written: LastWritten,
}

impl TxnManager {
    /// `generation` is this primary's fencing generation; `commit_lsn` the branch's last commit
    /// when it registered.
    pub fn new(safekeepers: SafekeeperClient, generation: u32, commit_lsn: Lsn) -> Arc<Self> {
        Arc::new(Self {
            safekeepers,
            generation,
            state: Mutex::new(State {
                last_commit_lsn: commit_lsn,
                ..State::default()
            }),
            next_txn_id: AtomicU64::new(1),
            // Hidden row ids are unique across primaries: each starts a fresh range under its
            // own generation.
            next_row_id: AtomicU64::new(u64::from(generation) << 40),
            last_written: LastWritten::new(commit_lsn),
        })
    }

    /// The LSN of the last commit this primary knows of.
    pub fn last_commit_lsn(&self) -> Lsn {
        self.state.lock().expect("txn state lock").last_commit_lsn
    }

    /// Starts a transaction that may write.
    pub fn begin(self: &Arc<Self>) -> Transaction {
        let mut st = self.state.lock().expect("txn state lock");
        let snapshot = st.last_commit_lsn;
        *st.active.entry(snapshot).or_default() += 1;
        self.transaction(snapshot, false)
    }

    /// Starts a transaction that only reads.
    pub fn begin_read_only(self: &Arc<Self>) -> Transaction {
        let snapshot = self.last_commit_lsn();
        self.transaction(snapshot, true)
    }

    fn transaction(self: &Arc<Self>, snapshot: Lsn, read_only: bool) -> Transaction {
        Transaction {
            manager: self.clone(),
            id: self.next_txn_id.fetch_add(1, Ordering::Relaxed),
            snapshot,
            writes: BTreeMap::new(),
            read_only,
        }
    }

    /// The LSN of the last write to keys this primary tracks (see [`LastWritten`]).
    pub fn last_written(&self) -> &LastWritten {
        &self.last_written
    }

    /// A row id for a table without a primary key.
    pub fn next_row_id(&self) -> u64 {
        self.next_row_id.fetch_add(1, Ordering::Relaxed)
    }

    fn release_snapshot(&self, snapshot: Lsn) {
        let mut st = self.state.lock().expect("txn state lock");
        if let Some(count) = st.active.get_mut(&snapshot) {
            *count -= 1;
            if *count == 0 {
                st.active.remove(&snapshot);
            }
        }
    }

    /// Commits `txn`: returns its commit LSN, or `None` when it wrote nothing.
    pub async fn commit(&self, txn: Transaction) -> SqlResult<Option<Lsn>> {
        if txn.writes.is_empty() {
            return Ok(None);
        }
        if txn.read_only {
            return Err(SqlError::new(
                sqlstate::READ_ONLY_SQL_TRANSACTION,
                "cannot execute a write in a read-only transaction",
            ));
        }
        self.lock_keys(&txn)?;
        let mutations: Vec<Mutation> = txn
            .writes
            .iter()
            .map(|(key, w)| match &w.value {
                Some(value) => Mutation::Put {
                    key: key.clone(),
                    value: value.clone(),
                },
                None => Mutation::Delete { key: key.clone() },
            })
            .collect();
        let result = self
            .safekeepers
            .append(self.generation, encode_mutations(&mutations))
            .await;
        let mut st = self.state.lock().expect("txn state lock");
        match result {
            Ok((lsn, _commit_time)) => {
                for key in txn.writes.keys() {
                    st.keys.insert(key.clone(), KeyState::Committed(lsn));
                }
                // Before the commit becomes visible: a reader that sees it must also wait for it.
                self.last_written.record(txn.writes.keys(), lsn);
                st.last_commit_lsn = st.last_commit_lsn.max(lsn);
                st.commits_since_prune += 1;
                if st.commits_since_prune >= PRUNE_EVERY_COMMITS {
                    prune(&mut st);
                }
                Ok(Some(lsn))
            }
            Err(e) => {
                for key in txn.writes.keys() {
                    if st.keys.get(key) == Some(&KeyState::Pending(txn.id)) {
                        st.keys.remove(key);
                    }
                }
                tracing::warn!(error = %e, "commit failed");
                Err(e.into())
            }
        }
    }

    /// First committer wins: fails if another transaction committed one of `txn`'s keys after
    /// its snapshot or is committing one now; otherwise marks them all as being committed.
    fn lock_keys(&self, txn: &Transaction) -> SqlResult<()> {
        let mut st = self.state.lock().expect("txn state lock");
        for (key, write) in &txn.writes {
            let conflict = match st.keys.get(key) {
                Some(KeyState::Pending(other)) => *other != txn.id,
                Some(KeyState::Committed(lsn)) => *lsn > txn.snapshot,
                None => false,
            };
            if conflict {
                return Err(conflict_error(write));
            }
        }
        for key in txn.writes.keys() {
            st.keys.insert(key.clone(), KeyState::Pending(txn.id));
        }
        Ok(())
    }
}

/// Forgets commits that no running or future transaction can conflict with: those at or below
/// every running transaction's snapshot.
fn prune(st: &mut State) {
    let horizon = st
        .active
        .keys()
        .next()
        .copied()
        .unwrap_or(st.last_commit_lsn)
        .min(st.last_commit_lsn);
    st.keys.retain(|_, state| match state {
        KeyState::Pending(_) => true,
        KeyState::Committed(lsn) => *lsn > horizon,
    });
    st.commits_since_prune = 0;
}

fn conflict_error(write: &Write) -> SqlError {
    match &write.kind {
        WriteKind::Insert {
            constraint,
            key_description,
        } => SqlError::new(
            sqlstate::UNIQUE_VIOLATION,
            format!("duplicate key value violates unique constraint \"{constraint}\""),
        )
        .with_detail(format!("Key {key_description} already exists.")),
        WriteKind::Update => SqlError::new(
            sqlstate::SERIALIZATION_FAILURE,
            "could not serialize access due to concurrent update",
        ),
    }
}
