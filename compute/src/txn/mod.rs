//! Transactions in the primary: snapshots, write sets, row locks and commit.
//!
//! Concurrency control lives in the primary, in memory (DESIGN.md). A transaction reads at a
//! snapshot (the LSN of the last commit the primary knew) and buffers its writes. Every key it
//! writes is locked until it ends ([`locks`]), which gives PostgreSQL's blocking behaviour for
//! concurrent writers of one row. When the lock is granted, the writer learns whether another
//! transaction committed that key after its snapshot:
//!
//! - at REPEATABLE READ this is a serialization failure (40001), as in PostgreSQL;
//! - at READ COMMITTED the statement starts again on a new snapshot, keeping its locks (PostgreSQL
//!   re-evaluates only the changed row; restarting the statement gives the same answers for
//!   single-statement logic, at the cost of redoing the statement).
//!
//! At commit the write set becomes one WAL record appended through the safekeepers; the commit
//! is visible to new transactions only after a majority has made it durable and every commit
//! below its LSN is visible, and only then are the locks released.

pub mod advisory;
mod locks;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use datafusion::common::HashMap;
use strata_core::wal::{encode_mutations, Mutation};
use strata_core::Lsn;
use tokio::sync::Notify;

use crate::error::{sqlstate, SqlError, SqlResult};
use crate::foreign_keys::{ConstraintModes, DeferredCheck, ForeignKeyDef};
use crate::last_written::LastWritten;
use crate::row_cache::RowCache;
use crate::storage::{Appended, SafekeeperClient};
pub use locks::LockMode;
use locks::LockTable;

/// Commits remembered per key are pruned once no running transaction can conflict with them;
/// pruning walks the whole map, so it runs every this many commits.
const PRUNE_EVERY_COMMITS: u64 = 256;

/// Isolation levels as PostgreSQL names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    ReadCommitted,
    RepeatableRead,
    /// Accepted, and given exactly REPEATABLE READ's guarantees (snapshot isolation with
    /// write-write conflict detection). Serializable snapshot isolation (read-write conflict
    /// tracking) is not implemented: write skew between two SERIALIZABLE transactions is possible.
    Serializable,
}

impl Isolation {
    pub fn name(&self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read committed",
            Isolation::RepeatableRead => "repeatable read",
            Isolation::Serializable => "serializable",
        }
    }

    pub fn parse(s: &str) -> Option<Isolation> {
        match s.trim().to_ascii_lowercase().replace('_', " ").as_str() {
            "read committed" | "read uncommitted" => Some(Isolation::ReadCommitted),
            "repeatable read" => Some(Isolation::RepeatableRead),
            "serializable" => Some(Isolation::Serializable),
            _ => None,
        }
    }

    fn per_statement_snapshot(&self) -> bool {
        *self == Isolation::ReadCommitted
    }
}

/// What a write lock found out about the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOutcome {
    /// Nobody committed the key after this statement's snapshot: what it read is current.
    Current,
    /// Another transaction committed the key after the snapshot.
    ChangedSinceSnapshot,
}

/// An entry of the write set: `None` deletes the key.
pub type Write = Option<Bytes>;

/// One transaction: its snapshots, buffered writes and locks.
pub struct Transaction {
    manager: Arc<TxnManager>,
    id: u64,
    isolation: Isolation,
    read_only: bool,
    /// Where reads of the current statement are made.
    snapshot: Lsn,
    /// The snapshot registered with the manager (so commits it may conflict with are kept).
    registered: Option<Lsn>,
    writes: BTreeMap<Bytes, Write>,
    /// Previous write-set entry of every key written, in order: savepoints and statement
    /// restarts roll back to a position in this log.
    undo: Vec<(Bytes, Option<Write>)>,
    locked: Vec<Bytes>,
    /// Statements run so far (SET TRANSACTION must come before the first).
    statements: usize,
    /// The database whose catalog the transaction's statements name relations in.
    database: Arc<str>,
    /// Foreign-key checks left for COMMIT (or SET CONSTRAINTS … IMMEDIATE), in order.
    /// Each with the number of checks deferred before it (what a [`Mark`] remembers).
    deferred: Vec<(usize, DeferredCheck)>,
    deferred_count: usize,
    /// What SET CONSTRAINTS said in this transaction.
    constraint_modes: ConstraintModes,
    /// The session whose transaction-scope advisory locks end with this transaction, once it
    /// took one.
    advisory_session: Option<i32>,
    /// How long a lock may be waited for (`lock_timeout`); `None`: as long as it takes.
    lock_timeout: Option<std::time::Duration>,
}

/// A position in a transaction to roll back to (savepoints, statement restarts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    undo: usize,
    deferred_count: usize,
}

impl Transaction {
    /// The transaction, naming relations in `database`'s catalog.
    pub fn in_database(mut self, database: Arc<str>) -> Self {
        self.database = database;
        self
    }

    /// The database whose catalog the transaction's statements name relations in.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The LSN the current statement reads at.
    pub fn snapshot(&self) -> Lsn {
        self.snapshot
    }

    /// This transaction's id (unique in this primary).
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Called before each statement of a block. As in PostgreSQL, the snapshot is taken by the
    /// first statement (not by BEGIN), and again by each statement at READ COMMITTED.
    pub fn begin_statement(&mut self) {
        if self.statements == 0 || self.isolation.per_statement_snapshot() {
            self.refresh_snapshot();
        }
        self.statements += 1;
    }

    pub fn statements(&self) -> usize {
        self.statements
    }

    /// Changes the isolation level (SET TRANSACTION, before the first statement).
    pub fn set_isolation(&mut self, isolation: Isolation) {
        self.isolation = isolation;
        self.refresh_snapshot();
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub fn set_read_only(&mut self, read_only: bool) {
        if read_only && self.registered.is_some() {
            if let Some(s) = self.registered.take() {
                self.manager.release_snapshot(s);
            }
        } else if !read_only && self.registered.is_none() {
            self.manager.reregister(&mut self.registered, self.snapshot);
        }
        self.read_only = read_only;
    }

    /// Moves the snapshot to the latest commit (a statement restart, or a new statement at READ
    /// COMMITTED).
    pub fn refresh_snapshot(&mut self) {
        let snapshot = self.manager.last_commit_lsn();
        self.snapshot = snapshot;
        if !self.read_only {
            self.manager.reregister(&mut self.registered, snapshot);
        }
    }

    /// The value this transaction wrote for `key`: `Some(None)` if it deleted it, `None` if it
    /// did not write it.
    pub fn write(&self, key: &[u8]) -> Option<&Write> {
        self.writes.get(key)
    }

    /// This transaction's writes in `[start, end)`, in key order.
    pub fn writes_in(&self, start: &[u8], end: &[u8]) -> Vec<(Bytes, Write)> {
        self.writes
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn has_writes(&self) -> bool {
        !self.writes.is_empty()
    }

    /// A read-only copy of what this transaction sees now (its snapshot, its writes so far),
    /// for work planned after the statement (a subquery run per row of a streamed result). It
    /// holds no locks and keeps no snapshot registered.
    pub fn read_view(&self) -> Transaction {
        Transaction {
            manager: self.manager.clone(),
            id: self.id,
            isolation: self.isolation,
            read_only: true,
            snapshot: self.snapshot,
            registered: None,
            writes: self.writes.clone(),
            undo: Vec::new(),
            locked: Vec::new(),
            statements: self.statements,
            database: self.database.clone(),
            deferred: Vec::new(),
            deferred_count: 0,
            constraint_modes: ConstraintModes::default(),
            advisory_session: None,
            lock_timeout: self.lock_timeout,
        }
    }

    /// Whether `fk`'s checks wait for the end of the transaction now.
    pub fn is_deferred(&self, fk: &ForeignKeyDef) -> bool {
        self.constraint_modes.is_deferred(fk)
    }

    /// Leaves a foreign-key check for the end of the transaction.
    pub fn defer(&mut self, check: DeferredCheck) {
        self.deferred.push((self.deferred_count, check));
        self.deferred_count += 1;
    }

    /// Takes the deferred checks `which` picks, leaving the others.
    pub fn take_deferred(&mut self, which: impl Fn(&DeferredCheck) -> bool) -> Vec<DeferredCheck> {
        let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deferred)
            .into_iter()
            .partition(|(_, c)| which(c));
        self.deferred = kept;
        taken.into_iter().map(|(_, c)| c).collect()
    }

    pub fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// SET CONSTRAINTS in this transaction.
    /// Notes that session `pid` took a transaction-scope advisory lock in this transaction,
    /// to be released when it ends.
    pub fn hold_advisory_locks_of(&mut self, pid: i32) {
        self.advisory_session = Some(pid);
    }

    pub fn constraint_modes(&mut self) -> &mut ConstraintModes {
        &mut self.constraint_modes
    }

    /// A position to roll back to (savepoints, statement restarts).
    pub fn mark(&self) -> Mark {
        Mark {
            undo: self.undo.len(),
            deferred_count: self.deferred_count,
        }
    }

    /// Undoes every write made after `mark`, and forgets the checks deferred since. Locks taken
    /// since stay held until the end.
    pub fn rollback_to(&mut self, mark: Mark) {
        self.deferred.retain(|(n, _)| *n < mark.deferred_count);
        let mark = mark.undo;
        while self.undo.len() > mark {
            let (key, previous) = self.undo.pop().expect("undo log longer than mark");
            match previous {
                Some(w) => self.writes.insert(key, w),
                None => self.writes.remove(&key),
            };
        }
    }

    /// Sets `lock_timeout` for the waits of this transaction's next statements.
    pub fn set_lock_timeout(&mut self, timeout: Option<std::time::Duration>) {
        self.lock_timeout = timeout;
    }

    /// Locks `key` for this transaction (waiting for another holder to finish) and reports
    /// whether another transaction committed it after this statement's snapshot.
    pub async fn lock(&mut self, key: &Bytes) -> SqlResult<LockOutcome> {
        self.lock_in(key, LockMode::Exclusive).await
    }

    /// Locks `key` shared with other shared holders (writers of a table share its definition's
    /// key; DDL takes it alone), and reports whether it changed after the snapshot.
    pub async fn lock_shared(&mut self, key: &Bytes) -> SqlResult<LockOutcome> {
        self.lock_in(key, LockMode::Shared).await
    }

    async fn lock_in(&mut self, key: &Bytes, mode: LockMode) -> SqlResult<LockOutcome> {
        if self.read_only {
            return Err(read_only_error());
        }
        let acquire = self.manager.locks.acquire(self.id, key, mode);
        let acquired = match self.lock_timeout {
            None => acquire.await?,
            Some(limit) => tokio::time::timeout(limit, acquire).await.map_err(|_| {
                SqlError::new(
                    sqlstate::LOCK_NOT_AVAILABLE,
                    "canceling statement due to lock timeout",
                )
            })??,
        };
        if acquired {
            self.locked.push(key.clone());
        }
        Ok(if self.manager.committed_after(key, self.snapshot) {
            LockOutcome::ChangedSinceSnapshot
        } else {
            LockOutcome::Current
        })
    }

    /// Locks `key` like [`lock`](Self::lock) or [`lock_shared`](Self::lock_shared) if that
    /// needs no wait; `None` if another transaction holds it (NOWAIT, SKIP LOCKED).
    pub fn try_lock(&mut self, key: &Bytes, shared: bool) -> SqlResult<Option<LockOutcome>> {
        if self.read_only {
            return Err(read_only_error());
        }
        let mode = if shared {
            LockMode::Shared
        } else {
            LockMode::Exclusive
        };
        match self.manager.locks.try_acquire(self.id, key, mode) {
            None => Ok(None),
            Some(newly) => {
                if newly {
                    self.locked.push(key.clone());
                }
                Ok(Some(if self.manager.committed_after(key, self.snapshot) {
                    LockOutcome::ChangedSinceSnapshot
                } else {
                    LockOutcome::Current
                }))
            }
        }
    }

    /// Whether another transaction committed a key in `[start, end)` after this statement's
    /// snapshot.
    pub fn changed_in_range_since_snapshot(&self, start: &[u8], end: &[u8]) -> bool {
        let st = self.manager.state.lock().expect("txn state lock");
        st.unknown_commits_upto > self.snapshot
            || st
                .recent_commits
                .iter()
                .any(|(k, lsn)| *lsn > self.snapshot && k.as_ref() >= start && k.as_ref() < end)
    }

    /// Buffers a write of a key this transaction has locked.
    pub fn put(&mut self, key: Bytes, value: Bytes) {
        self.set(key, Some(value));
    }

    /// Buffers a delete of a key this transaction has locked.
    pub fn delete(&mut self, key: Bytes) {
        self.set(key, None);
    }

    fn set(&mut self, key: Bytes, write: Write) {
        let previous = self.writes.insert(key.clone(), write);
        self.undo.push((key, previous));
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        self.manager.locks.release(self.id, &self.locked);
        if let Some(pid) = self.advisory_session {
            self.manager
                .advisory
                .release(pid, Some(advisory::Scope::Transaction));
        }
        if let Some(snapshot) = self.registered.take() {
            self.manager.release_snapshot(snapshot);
        }
    }
}

fn read_only_error() -> SqlError {
    SqlError::new(
        sqlstate::READ_ONLY_SQL_TRANSACTION,
        "cannot execute a write in a read-only transaction",
    )
}

#[derive(Debug, Default)]
struct State {
    /// Every committed transaction is at or below this LSN; new snapshots are taken here.
    last_commit_lsn: Lsn,
    /// LSN of the last commit of each recently written key.
    recent_commits: HashMap<Bytes, Lsn>,
    /// Snapshots of running transactions that may write (with a count each).
    active: BTreeMap<Lsn, usize>,
    commits_since_prune: u64,
    /// Commits at or below this LSN may have written keys this primary does not know of.
    unknown_commits_upto: Lsn,
    /// Numbers the appends sent to the safekeepers.
    next_append: u64,
    /// Appends sent and not yet returned.
    appending: BTreeSet<u64>,
    /// Commits returned and not yet visible, in LSN order.
    waiting: BTreeMap<Turn, Waiting>,
}

/// The primary's transaction manager.
pub struct TxnManager {
    safekeepers: SafekeeperClient,
    generation: u32,
    state: Mutex<State>,
    locks: LockTable,
    /// Advisory locks of the sessions (`pg_advisory_lock`).
    pub advisory: advisory::AdvisoryLocks,
    next_txn_id: AtomicU64,
    next_row_id: AtomicU64,
    last_written: LastWritten,
    /// Committed rows of hot keys; `None` on a read-only compute.
    row_cache: Option<RowCache>,
    /// Woken whenever a commit becomes visible or an append fails.
    published: Notify,
}

impl TxnManager {
    /// `generation` is this primary's fencing generation; `commit_lsn` the branch's last commit
    /// when it registered.
    pub fn new(
        safekeepers: SafekeeperClient,
        generation: u32,
        commit_lsn: Lsn,
        row_cache: Option<RowCache>,
    ) -> Arc<Self> {
        Arc::new(Self {
            safekeepers,
            generation,
            state: Mutex::new(State {
                last_commit_lsn: commit_lsn,
                ..State::default()
            }),
            locks: LockTable::default(),
            advisory: Default::default(),
            next_txn_id: AtomicU64::new(1),
            // Hidden row ids are unique across primaries: each starts a fresh range under its
            // own generation.
            next_row_id: AtomicU64::new(u64::from(generation) << 40),
            last_written: LastWritten::new(commit_lsn),
            row_cache,
            published: Notify::new(),
        })
    }

    /// The LSN of the last commit this primary knows of.
    pub fn last_commit_lsn(&self) -> Lsn {
        self.state.lock().expect("txn state lock").last_commit_lsn
    }

    /// The LSN of the last write to keys this primary tracks (see [`LastWritten`]).
    pub fn last_written(&self) -> &LastWritten {
        &self.last_written
    }

    /// The cache of committed rows (see [`RowCache`]), on a primary.
    pub fn row_cache(&self) -> Option<&RowCache> {
        self.row_cache.as_ref()
    }

    /// A row id for a table without a primary key.
    pub fn next_row_id(&self) -> u64 {
        self.next_row_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Starts a transaction.
    pub fn begin(self: &Arc<Self>, isolation: Isolation, read_only: bool) -> Transaction {
        let mut registered = None;
        let snapshot = self.last_commit_lsn();
        if !read_only {
            self.reregister(&mut registered, snapshot);
        }
        Transaction {
            manager: self.clone(),
            id: self.next_txn_id.fetch_add(1, Ordering::Relaxed),
            isolation,
            read_only,
            snapshot,
            registered,
            writes: BTreeMap::new(),
            undo: Vec::new(),
            locked: Vec::new(),
            statements: 0,
            database: Arc::from(crate::catalog::DEFAULT_DATABASE),
            deferred: Vec::new(),
            deferred_count: 0,
            constraint_modes: ConstraintModes::default(),
            advisory_session: None,
            lock_timeout: None,
        }
    }

    fn reregister(&self, registered: &mut Option<Lsn>, snapshot: Lsn) {
        let mut st = self.state.lock().expect("txn state lock");
        if let Some(old) = registered.take() {
            release(&mut st, old);
        }
        *st.active.entry(snapshot).or_default() += 1;
        *registered = Some(snapshot);
    }

    fn release_snapshot(&self, snapshot: Lsn) {
        release(&mut self.state.lock().expect("txn state lock"), snapshot);
    }

    fn committed_after(&self, key: &Bytes, snapshot: Lsn) -> bool {
        let st = self.state.lock().expect("txn state lock");
        st.unknown_commits_upto > snapshot
            || st
                .recent_commits
                .get(key)
                .is_some_and(|lsn| *lsn > snapshot)
    }

    /// Commits `txn`: returns its commit LSN, or `None` when it wrote nothing. `before_visible`
    /// runs once the commit is durable and before any new transaction can see it (the catalog is
    /// updated there, so that no statement sees rows of a table its catalog does not know yet).
    pub async fn commit(
        &self,
        txn: Transaction,
        before_visible: impl FnOnce(),
    ) -> SqlResult<Option<Lsn>> {
        if txn.writes.is_empty() {
            return Ok(None);
        }
        let mutations: Vec<Mutation> = txn
            .writes
            .iter()
            .map(|(key, w)| match w {
                Some(value) => Mutation::Put {
                    key: key.clone(),
                    value: value.clone(),
                },
                None => Mutation::Delete { key: key.clone() },
            })
            .collect();
        let mut append = InFlight::start(self);
        let appended = self
            .safekeepers
            .append(self.generation, encode_mutations(&mutations))
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "commit failed");
                SqlError::from(e)
            })?;
        let lsn = appended.lsn;
        append.returned(appended);
        let mut before_visible = Some(before_visible);
        loop {
            let published = self.published.notified();
            tokio::pin!(published);
            published.as_mut().enable();
            {
                let mut st = self.state.lock().expect("txn state lock");
                if let Some(gap) = append.take_turn(&mut st) {
                    self.publish(&mut st, &txn, lsn, gap);
                    if let Some(before_visible) = before_visible.take() {
                        before_visible();
                    }
                    st.last_commit_lsn = st.last_commit_lsn.max(lsn);
                    drop(st);
                    self.published.notify_waiters();
                    break;
                }
            }
            published.await;
        }
        // Dropping the transaction releases its locks, after the commit is visible.
        drop(txn);
        Ok(Some(lsn))
    }

    /// Records what the commit of `txn` at `lsn` wrote, before it becomes visible. `gap`: the
    /// branch has commits below `lsn` that this primary does not know the keys of.
    fn publish(&self, st: &mut State, txn: &Transaction, lsn: Lsn, gap: bool) {
        if gap {
            // An append retried after its first attempt committed, or a commit whose outcome
            // its transaction never learned: the keys are unknown, so nothing cached about
            // any key can be trusted, and every lock must treat its key as changed.
            tracing::warn!(%lsn, "a commit below this one is unknown to the primary");
            self.last_written.forget_all(lsn);
            if let Some(cache) = &self.row_cache {
                cache.clear();
            }
            st.unknown_commits_upto = lsn;
        }
        for key in txn.writes.keys() {
            st.recent_commits.insert(key.clone(), lsn);
        }
        // Before the commit becomes visible: a reader that sees it must also wait for it.
        self.last_written.record(txn.writes.keys(), lsn);
        if let Some(cache) = &self.row_cache {
            cache.committed(&txn.writes, lsn);
        }
        st.commits_since_prune += 1;
        if st.commits_since_prune >= PRUNE_EVERY_COMMITS {
            prune(st);
        }
    }
}

/// A commit durable in the safekeepers, waiting for its turn to become visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Turn {
    lsn: Lsn,
    append: u64,
}

/// A returned append's place in the order of visibility.
#[derive(Debug)]
struct Waiting {
    previous_lsn: Lsn,
    /// Appends numbered below this were sent before this one returned: any append sent later
    /// commits at a higher LSN.
    sent_before: u64,
}

/// One commit's append, from sending it until its commit is visible. Dropped early (the
/// statement was cancelled, the append failed), it takes itself out of the order, and waiting
/// commits are woken: one that waited for it will see a gap if it did commit.
struct InFlight<'a> {
    manager: &'a TxnManager,
    append: u64,
    turn: Option<Turn>,
}

impl<'a> InFlight<'a> {
    fn start(manager: &'a TxnManager) -> Self {
        let mut st = manager.state.lock().expect("txn state lock");
        let append = st.next_append;
        st.next_append += 1;
        st.appending.insert(append);
        Self {
            manager,
            append,
            turn: None,
        }
    }

    fn returned(&mut self, appended: Appended) {
        let mut st = self.manager.state.lock().expect("txn state lock");
        st.appending.remove(&self.append);
        let turn = Turn {
            lsn: appended.lsn,
            append: self.append,
        };
        let sent_before = st.next_append;
        st.waiting.insert(
            turn,
            Waiting {
                previous_lsn: appended.previous_lsn,
                sent_before,
            },
        );
        self.turn = Some(turn);
        drop(st);
        // A commit waiting for the appends sent before it may have waited for this one.
        self.manager.published.notify_waiters();
    }

    /// Whether the commit may become visible now; `Some(gap)` takes the turn.
    ///
    /// Commits become visible in LSN order, although concurrent appends return in any order:
    /// otherwise a snapshot could include a commit and miss one below it, whose keys the primary
    /// has not recorded yet. A commit waits until it is the lowest returned one and the commit
    /// before it (`previous_lsn`) is visible. If that commit is one this primary never learned
    /// of (see [`TxnManager::publish`]), it waits instead until every append sent before it
    /// returned: nothing else can make the gap visible, and what is sent later lands above it.
    fn take_turn(&mut self, st: &mut State) -> Option<bool> {
        let turn = self.turn?;
        let (lowest, waiting) = st.waiting.first_key_value()?;
        if *lowest != turn {
            return None;
        }
        let chained = st.last_commit_lsn >= waiting.previous_lsn;
        let none_outstanding = st
            .appending
            .first()
            .is_none_or(|oldest| *oldest >= waiting.sent_before);
        if !chained && !none_outstanding {
            return None;
        }
        st.waiting.pop_first();
        self.turn = None;
        Some(!chained)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut st = self.manager.state.lock().expect("txn state lock");
        let appending = st.appending.remove(&self.append);
        let waiting = self
            .turn
            .is_some_and(|turn| st.waiting.remove(&turn).is_some());
        drop(st);
        if appending || waiting {
            self.manager.published.notify_waiters();
        }
    }
}

fn release(st: &mut State, snapshot: Lsn) {
    if let Some(count) = st.active.get_mut(&snapshot) {
        *count -= 1;
        if *count == 0 {
            st.active.remove(&snapshot);
        }
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
    st.recent_commits.retain(|_, lsn| *lsn > horizon);
    st.commits_since_prune = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager() -> Arc<TxnManager> {
        let client = SafekeeperClient::connect_lazy(
            &["127.0.0.1:1".to_string()],
            strata_core::TimelineId::generate(),
        )
        .unwrap();
        TxnManager::new(client, 1, Lsn(10), None)
    }

    fn appended(lsn: u64, previous: u64) -> Appended {
        Appended {
            lsn: Lsn(lsn),
            previous_lsn: Lsn(previous),
        }
    }

    /// What `commit` does once it has the turn.
    fn take(m: &TxnManager, append: &mut InFlight<'_>) -> Option<bool> {
        let mut st = m.state.lock().unwrap();
        let lsn = append.turn.map(|t| t.lsn);
        let gap = append.take_turn(&mut st)?;
        st.last_commit_lsn = st.last_commit_lsn.max(lsn.unwrap());
        Some(gap)
    }

    #[tokio::test]
    async fn commits_become_visible_in_lsn_order() {
        let m = manager();
        let mut a = InFlight::start(&m);
        let mut b = InFlight::start(&m);
        // `b` returns first, but the commit before it (`a`, still on its way) is not visible.
        b.returned(appended(30, 20));
        assert_eq!(take(&m, &mut b), None);
        a.returned(appended(20, 10));
        assert_eq!(
            take(&m, &mut b),
            None,
            "only the lowest returned commit goes"
        );
        assert_eq!(take(&m, &mut a), Some(false));
        assert_eq!(take(&m, &mut b), Some(false));
        assert_eq!(m.last_commit_lsn(), Lsn(30));
    }

    #[tokio::test]
    async fn a_commit_the_primary_never_learned_of_is_a_gap() {
        let m = manager();
        // The commit at 40 is unknown (a retried append's first attempt): once every append
        // sent before 50 returned, 50 goes, telling that there is a gap.
        let d = InFlight::start(&m);
        let mut c = InFlight::start(&m);
        c.returned(appended(50, 40));
        assert_eq!(take(&m, &mut c), None, "d may be the commit at 40");
        drop(d);
        assert_eq!(take(&m, &mut c), Some(true));
        // An append sent after a commit returned lands above it: it is not waited for.
        let mut e = InFlight::start(&m);
        e.returned(appended(70, 60));
        let later = InFlight::start(&m);
        assert_eq!(take(&m, &mut e), Some(true));
        drop(later);
        assert_eq!(m.last_commit_lsn(), Lsn(70));
        // A commit whose append was given up on leaves the order.
        let mut f = InFlight::start(&m);
        let mut g = InFlight::start(&m);
        f.returned(appended(80, 70));
        g.returned(appended(90, 80));
        drop(f);
        assert_eq!(take(&m, &mut g), Some(true));
    }
}
