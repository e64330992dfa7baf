//! Row locks held by transactions until they end, as PostgreSQL holds row locks.
//!
//! A transaction locks every key it writes (and every row it reads `FOR UPDATE`). A second
//! transaction that wants the same key waits until the first commits or aborts; then it sees the
//! first one's result (a concurrent insert of the same key becomes a duplicate-key error, as in
//! PostgreSQL, instead of both succeeding). Waits form a graph; a wait that would close a cycle is
//! a deadlock and fails at once with 40P01.

// Keyed by storage keys, one entry per locked key: hashed with DataFusion's fast default.
use datafusion::common::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::error::{sqlstate, SqlError};

#[derive(Default)]
pub(crate) struct LockTable {
    inner: Mutex<LockState>,
}

/// How a key is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockMode {
    /// Alone: what a write of the key takes.
    Exclusive,
    /// Together with other shared holders: what writers take on a table's definition, so that
    /// DDL (which locks it exclusively) waits for them and they wait for it.
    Shared,
}

/// Who holds a key.
#[derive(Default)]
struct Holders {
    exclusive: Option<u64>,
    shared: Vec<u64>,
    /// Woken when a holder lets go.
    released: Arc<Notify>,
}

impl Holders {
    fn holds(&self, txn: u64) -> bool {
        self.exclusive == Some(txn) || self.shared.contains(&txn)
    }

    /// Gives `txn` the key in `mode` (nothing blocks it); returns whether it is newly held.
    fn grant(&mut self, txn: u64, mode: LockMode) -> bool {
        let newly = !self.holds(txn);
        match mode {
            LockMode::Exclusive => {
                self.shared.retain(|t| *t != txn);
                self.exclusive = Some(txn);
            }
            LockMode::Shared if newly => self.shared.push(txn),
            LockMode::Shared => {}
        }
        newly
    }

    /// A transaction `txn` must wait for before it gets the key in `mode`, if any.
    fn blocker(&self, txn: u64, mode: LockMode) -> Option<u64> {
        match self.exclusive {
            Some(owner) if owner != txn => return Some(owner),
            Some(_) => return None,
            None => {}
        }
        match mode {
            LockMode::Shared => None,
            LockMode::Exclusive => self.shared.iter().copied().find(|t| *t != txn),
        }
    }
}

#[derive(Default)]
struct LockState {
    owners: HashMap<Bytes, Holders>,
    /// Waiting transaction → the transaction it waits for.
    waits_for: HashMap<u64, u64>,
}

/// Removes a transaction's wait edge when its wait ends, however it ends (cancelled included).
struct WaitGuard<'a> {
    table: &'a LockTable,
    txn: u64,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.table
            .inner
            .lock()
            .expect("lock table")
            .waits_for
            .remove(&self.txn);
    }
}

impl LockTable {
    /// Locks `key` for `txn` in `mode`, waiting while other transactions hold it in a mode that
    /// conflicts. Returns `true` if the key was newly locked by `txn` (the caller must release
    /// it), `false` if `txn` already held it (a shared lock is then made exclusive if asked).
    pub(crate) async fn acquire(
        &self,
        txn: u64,
        key: &Bytes,
        mode: LockMode,
    ) -> Result<bool, SqlError> {
        loop {
            let (owner, released) = {
                let mut st = self.inner.lock().expect("lock table");
                let holders = st.owners.entry(key.clone()).or_default();
                match holders.blocker(txn, mode) {
                    None => return Ok(holders.grant(txn, mode)),
                    Some(owner) => (owner, holders.released.clone()),
                }
            };
            {
                let mut st = self.inner.lock().expect("lock table");
                if st.would_deadlock(txn, owner) {
                    return Err(SqlError::new(sqlstate::DEADLOCK_DETECTED, "deadlock detected").with_detail(format!(
                        "Transaction {txn} waits for transaction {owner}, which waits for transaction {txn}."
                    )));
                }
                st.waits_for.insert(txn, owner);
            }
            let _guard = WaitGuard { table: self, txn };
            let notified = released.notified();
            tokio::pin!(notified);
            // Registered before the state is looked at again, so a release in between wakes us.
            notified.as_mut().enable();
            // Only while the key's holders are still the ones whose release we wait for: when
            // the last holder lets go, the entry (and its `Notify`) is removed, and a holder
            // that takes the key after that gets a new entry, whose release would never reach
            // us. Then the loop looks again, and waits on the new entry.
            let still_blocked = self
                .inner
                .lock()
                .expect("lock table")
                .owners
                .get(key)
                .is_some_and(|h| {
                    h.blocker(txn, mode).is_some() && Arc::ptr_eq(&h.released, &released)
                });
            if still_blocked {
                notified.await;
            }
        }
    }

    /// Locks `key` for `txn` in `mode` if no other transaction holds it in a conflicting mode:
    /// `None` when it would have to wait, else whether it was newly locked (as [`acquire`]).
    ///
    /// [`acquire`]: LockTable::acquire
    pub(crate) fn try_acquire(&self, txn: u64, key: &Bytes, mode: LockMode) -> Option<bool> {
        let mut st = self.inner.lock().expect("lock table");
        if st
            .owners
            .get(key)
            .is_some_and(|h| h.blocker(txn, mode).is_some())
        {
            return None;
        }
        Some(st.owners.entry(key.clone()).or_default().grant(txn, mode))
    }

    /// Releases `keys`, which `txn` holds, and wakes their waiters.
    pub(crate) fn release(&self, txn: u64, keys: &[Bytes]) {
        if keys.is_empty() {
            return;
        }
        let mut st = self.inner.lock().expect("lock table");
        for key in keys {
            let Some(holders) = st.owners.get_mut(key) else {
                continue;
            };
            if !holders.holds(txn) {
                continue;
            }
            if holders.exclusive == Some(txn) {
                holders.exclusive = None;
            }
            holders.shared.retain(|t| *t != txn);
            holders.released.notify_waiters();
            if holders.exclusive.is_none() && holders.shared.is_empty() {
                st.owners.remove(key);
            }
        }
    }
}

impl LockState {
    /// Whether `txn` waiting for `owner` closes a cycle of waits.
    fn would_deadlock(&self, txn: u64, owner: u64) -> bool {
        let mut current = owner;
        for _ in 0..=self.waits_for.len() {
            if current == txn {
                return true;
            }
            match self.waits_for.get(&current) {
                Some(next) => current = *next,
                None => return false,
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// Many transactions taking one key in turn, on several threads: every wait ends. A waiter
    /// used to miss its wake-up when the key's last holder let go (removing the key's entry)
    /// and another transaction took the key (a new entry) between the waiter's look at the
    /// holders and its registration for their release; TPC-B with eight clients hung on it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn contended_waits_all_end() {
        let table = Arc::new(LockTable::default());
        let mut tasks = Vec::new();
        for txn in 1..=8u64 {
            let table = table.clone();
            tasks.push(tokio::spawn(async move {
                for round in 0..3_000u64 {
                    let id = txn + 100 * round;
                    table
                        .acquire(id, &key("k"), LockMode::Exclusive)
                        .await
                        .unwrap();
                    tokio::task::yield_now().await;
                    table.release(id, &[key("k")]);
                }
            }));
        }
        let all = futures::future::join_all(tasks);
        let done = tokio::time::timeout(Duration::from_secs(60), all).await;
        assert!(done.is_ok(), "a waiter was never woken");
    }

    #[tokio::test]
    async fn a_second_locker_waits_for_the_release() {
        let table = Arc::new(LockTable::default());
        assert!(table
            .acquire(1, &key("a"), LockMode::Exclusive)
            .await
            .unwrap());
        assert!(!table
            .acquire(1, &key("a"), LockMode::Exclusive)
            .await
            .unwrap());
        let t = table.clone();
        let waiter =
            tokio::spawn(async move { t.acquire(2, &key("a"), LockMode::Exclusive).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        table.release(1, &[key("a")]);
        assert!(tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap());
    }

    #[tokio::test]
    async fn a_cycle_of_waits_is_a_deadlock() {
        let table = Arc::new(LockTable::default());
        table
            .acquire(1, &key("a"), LockMode::Exclusive)
            .await
            .unwrap();
        table
            .acquire(2, &key("b"), LockMode::Exclusive)
            .await
            .unwrap();
        let t = table.clone();
        let one_waits =
            tokio::spawn(async move { t.acquire(1, &key("b"), LockMode::Exclusive).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let err = table
            .acquire(2, &key("a"), LockMode::Exclusive)
            .await
            .unwrap_err();
        assert_eq!(err.code, sqlstate::DEADLOCK_DETECTED);
        table.release(2, &[key("b")]);
        assert!(one_waits.await.unwrap().unwrap());
    }

    #[tokio::test]
    async fn shared_holders_share_and_an_exclusive_locker_waits_for_all() {
        let table = Arc::new(LockTable::default());
        assert!(table.acquire(1, &key("t"), LockMode::Shared).await.unwrap());
        assert!(table.acquire(2, &key("t"), LockMode::Shared).await.unwrap());
        assert!(!table.acquire(2, &key("t"), LockMode::Shared).await.unwrap());
        let t = table.clone();
        let ddl = tokio::spawn(async move { t.acquire(3, &key("t"), LockMode::Exclusive).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        table.release(1, &[key("t")]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!ddl.is_finished(), "one shared holder is left");
        table.release(2, &[key("t")]);
        assert!(ddl.await.unwrap().unwrap());
        // Now a shared locker waits for the exclusive holder.
        let t = table.clone();
        let writer = tokio::spawn(async move { t.acquire(4, &key("t"), LockMode::Shared).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!writer.is_finished());
        table.release(3, &[key("t")]);
        assert!(writer.await.unwrap().unwrap());
        // A lone shared holder can make its lock exclusive.
        assert!(!table
            .acquire(4, &key("t"), LockMode::Exclusive)
            .await
            .unwrap());
        table.release(4, &[key("t")]);
        assert!(table.inner.lock().unwrap().owners.is_empty());
    }

    #[tokio::test]
    async fn a_cancelled_wait_leaves_no_edge() {
        let table = Arc::new(LockTable::default());
        table
            .acquire(1, &key("a"), LockMode::Exclusive)
            .await
            .unwrap();
        let t = table.clone();
        let waiter =
            tokio::spawn(async move { t.acquire(2, &key("a"), LockMode::Exclusive).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        waiter.abort();
        let _ = waiter.await;
        assert!(table.inner.lock().unwrap().waits_for.is_empty());
    }
}
