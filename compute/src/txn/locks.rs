//! Row locks held by transactions until they end, as PostgreSQL holds row locks.
//!
//! A transaction locks every key it writes (and every row it reads `FOR UPDATE`). A second
//! transaction that wants the same key waits until the first commits or aborts; then it sees the
//! first one's result (a concurrent insert of the same key becomes a duplicate-key error, as in
//! PostgreSQL, instead of both succeeding). Waits form a graph; a wait that would close a cycle is
//! a deadlock and fails at once with 40P01.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::error::{sqlstate, SqlError};

#[derive(Default)]
pub(crate) struct LockTable {
    inner: Mutex<LockState>,
}

#[derive(Default)]
struct LockState {
    /// Key → (owning transaction, woken when the lock is released).
    owners: HashMap<Bytes, (u64, Arc<Notify>)>,
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
    /// Locks `key` for `txn`, waiting while another transaction holds it. Returns `true` if the
    /// lock was newly taken (the caller must release it), `false` if `txn` already held it.
    pub(crate) async fn acquire(&self, txn: u64, key: &Bytes) -> Result<bool, SqlError> {
        loop {
            let notify = {
                let mut st = self.inner.lock().expect("lock table");
                let owner = match st.owners.get(key) {
                    None => {
                        st.owners
                            .insert(key.clone(), (txn, Arc::new(Notify::new())));
                        return Ok(true);
                    }
                    Some((owner, _)) if *owner == txn => return Ok(false),
                    Some((owner, notify)) => (*owner, notify.clone()),
                };
                if st.would_deadlock(txn, owner.0) {
                    return Err(SqlError::new(sqlstate::DEADLOCK_DETECTED, "deadlock detected").with_detail(format!(
                        "Transaction {txn} waits for transaction {}, which waits for transaction {txn}.",
                        owner.0
                    )));
                }
                st.waits_for.insert(txn, owner.0);
                owner.1
            };
            let _guard = WaitGuard { table: self, txn };
            let notified = notify.notified();
            tokio::pin!(notified);
            // Registered before the state is looked at again, so a release in between wakes us.
            notified.as_mut().enable();
            let still_held = self
                .inner
                .lock()
                .expect("lock table")
                .owners
                .get(key)
                .is_some_and(|(o, _)| *o != txn);
            if still_held {
                notified.await;
            }
        }
    }

    /// Releases `keys`, which `txn` holds, and wakes their waiters.
    pub(crate) fn release(&self, txn: u64, keys: &[Bytes]) {
        if keys.is_empty() {
            return;
        }
        let mut st = self.inner.lock().expect("lock table");
        for key in keys {
            if st.owners.get(key).is_some_and(|(o, _)| *o == txn) {
                if let Some((_, notify)) = st.owners.remove(key) {
                    notify.notify_waiters();
                }
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

    #[tokio::test]
    async fn a_second_locker_waits_for_the_release() {
        let table = Arc::new(LockTable::default());
        assert!(table.acquire(1, &key("a")).await.unwrap());
        assert!(!table.acquire(1, &key("a")).await.unwrap());
        let t = table.clone();
        let waiter = tokio::spawn(async move { t.acquire(2, &key("a")).await });
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
        table.acquire(1, &key("a")).await.unwrap();
        table.acquire(2, &key("b")).await.unwrap();
        let t = table.clone();
        let one_waits = tokio::spawn(async move { t.acquire(1, &key("b")).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let err = table.acquire(2, &key("a")).await.unwrap_err();
        assert_eq!(err.code, sqlstate::DEADLOCK_DETECTED);
        table.release(2, &[key("b")]);
        assert!(one_waits.await.unwrap().unwrap());
    }

    #[tokio::test]
    async fn a_cancelled_wait_leaves_no_edge() {
        let table = Arc::new(LockTable::default());
        table.acquire(1, &key("a")).await.unwrap();
        let t = table.clone();
        let waiter = tokio::spawn(async move { t.acquire(2, &key("a")).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        waiter.abort();
        let _ = waiter.await;
        assert!(table.inner.lock().unwrap().waits_for.is_empty());
    }
}
