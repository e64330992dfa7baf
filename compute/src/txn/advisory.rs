//! Advisory locks: locks on application-chosen numbers, as `pg_advisory_lock` and its relatives
//! take them (migration tools take one before they migrate).
//!
//! They live in the primary, next to row locks and in a lock table of their own (so an advisory
//! key never meets a storage key), owned by sessions: locks held by one session never conflict
//! with each other, whether taken for the session or for its transaction, as in PostgreSQL.
//! A session may take one lock several times; each take needs its own release. Session locks
//! last until released or until the session ends; transaction locks until the transaction ends
//! (a ROLLBACK TO a savepoint does not release them, unlike PostgreSQL). Waits that close a cycle
//! fail at once with 40P01, and a cancel request ends a wait with 57014.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use datafusion::common::HashMap;
use tokio::sync::Notify;

use super::locks::{LockMode, LockTable};
use crate::error::{sqlstate, SqlError, SqlResult};

/// An advisory lock's key: one `bigint`, or two `integer`s (PostgreSQL keeps the two forms
/// apart: `pg_advisory_lock(1)` and `pg_advisory_lock(0, 1)` are different locks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdvisoryKey {
    Big(i64),
    Pair(i32, i32),
}

impl AdvisoryKey {
    fn bytes(self) -> Bytes {
        let mut b = Vec::with_capacity(9);
        match self {
            AdvisoryKey::Big(k) => {
                b.push(1);
                b.extend_from_slice(&k.to_be_bytes());
            }
            AdvisoryKey::Pair(a, c) => {
                b.push(2);
                b.extend_from_slice(&a.to_be_bytes());
                b.extend_from_slice(&c.to_be_bytes());
            }
        }
        Bytes::from(b)
    }
}

/// How long an advisory lock lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Session,
    Transaction,
}

/// What one session holds: how many times it took each key in each mode and scope.
#[derive(Default)]
struct SessionHolds {
    counts: HashMap<(AdvisoryKey, LockMode, Scope), u32>,
    /// Woken by a cancel request for the session, to end a wait.
    cancel: Arc<Notify>,
}

impl SessionHolds {
    /// The strongest mode the session holds `key` in, if any.
    fn mode(&self, key: AdvisoryKey) -> Option<LockMode> {
        let held = |mode| {
            [Scope::Session, Scope::Transaction]
                .iter()
                .any(|&scope| self.counts.contains_key(&(key, mode, scope)))
        };
        if held(LockMode::Exclusive) {
            Some(LockMode::Exclusive)
        } else if held(LockMode::Shared) {
            Some(LockMode::Shared)
        } else {
            None
        }
    }
}

#[derive(Default)]
pub struct AdvisoryLocks {
    table: LockTable,
    sessions: Mutex<HashMap<i32, SessionHolds>>,
}

impl AdvisoryLocks {
    /// Takes `key` for session `pid`, waiting while another session holds it in a conflicting
    /// mode.
    pub async fn lock(
        &self,
        pid: i32,
        key: AdvisoryKey,
        mode: LockMode,
        scope: Scope,
    ) -> SqlResult<()> {
        let cancel = match self.take_if_held(pid, key, mode, scope) {
            Some(cancel) => cancel,
            None => return Ok(()),
        };
        let cancelled = cancel.notified();
        tokio::pin!(cancelled);
        cancelled.as_mut().enable();
        let bytes = key.bytes();
        tokio::select! {
            acquired = self.table.acquire(owner(pid), &bytes, mode) => { acquired?; }
            _ = cancelled => {
                return Err(SqlError::new(
                    sqlstate::QUERY_CANCELED,
                    "canceling statement due to user request",
                ));
            }
        }
        self.count(pid, key, mode, scope);
        Ok(())
    }

    /// Takes `key` for session `pid` if no other session holds it in a conflicting mode;
    /// returns whether it did.
    pub fn try_lock(&self, pid: i32, key: AdvisoryKey, mode: LockMode, scope: Scope) -> bool {
        if self.take_if_held(pid, key, mode, scope).is_none() {
            return true;
        }
        if self
            .table
            .try_acquire(owner(pid), &key.bytes(), mode)
            .is_none()
        {
            return false;
        }
        self.count(pid, key, mode, scope);
        true
    }

    /// Releases one session-scope take of `key` in `mode`; `false` if the session had none.
    pub fn unlock(&self, pid: i32, key: AdvisoryKey, mode: LockMode) -> bool {
        let mut sessions = self.sessions.lock().expect("advisory locks");
        let Some(holds) = sessions.get_mut(&pid) else {
            return false;
        };
        let Some(n) = holds.counts.get_mut(&(key, mode, Scope::Session)) else {
            return false;
        };
        *n -= 1;
        if *n == 0 {
            holds.counts.remove(&(key, mode, Scope::Session));
            self.settle(pid, key, holds);
        }
        true
    }

    /// Releases every take of session `pid` in `scope` (or in any scope, with `None`).
    pub fn release(&self, pid: i32, scope: Option<Scope>) {
        let mut sessions = self.sessions.lock().expect("advisory locks");
        let Some(holds) = sessions.get_mut(&pid) else {
            return;
        };
        let keys: Vec<AdvisoryKey> = holds
            .counts
            .keys()
            .filter(|(_, _, s)| scope.is_none_or(|scope| scope == *s))
            .map(|(k, _, _)| *k)
            .collect();
        holds
            .counts
            .retain(|(_, _, s), _| scope.is_some_and(|scope| scope != *s));
        for key in keys {
            self.settle(pid, key, holds);
        }
        if scope.is_none() {
            sessions.remove(&pid);
        }
    }

    /// Ends the wait session `pid` is in, if any (a cancel request).
    pub fn cancel_wait(&self, pid: i32) {
        if let Some(holds) = self.sessions.lock().expect("advisory locks").get(&pid) {
            holds.cancel.notify_waiters();
        }
    }

    /// Counts one more take when the session already holds `key` strongly enough; otherwise
    /// returns the session's cancel signal, for the caller to take the key in the table.
    fn take_if_held(
        &self,
        pid: i32,
        key: AdvisoryKey,
        mode: LockMode,
        scope: Scope,
    ) -> Option<Arc<Notify>> {
        let mut sessions = self.sessions.lock().expect("advisory locks");
        let holds = sessions.entry(pid).or_default();
        let enough = match holds.mode(key) {
            Some(LockMode::Exclusive) => true,
            Some(LockMode::Shared) => mode == LockMode::Shared,
            None => false,
        };
        if enough {
            *holds.counts.entry((key, mode, scope)).or_default() += 1;
            return None;
        }
        Some(holds.cancel.clone())
    }

    fn count(&self, pid: i32, key: AdvisoryKey, mode: LockMode, scope: Scope) {
        let mut sessions = self.sessions.lock().expect("advisory locks");
        *sessions
            .entry(pid)
            .or_default()
            .counts
            .entry((key, mode, scope))
            .or_default() += 1;
    }

    /// Makes the table hold `key` for the session in the mode its takes need now: released when
    /// none is left, shared again when only shared takes are.
    fn settle(&self, pid: i32, key: AdvisoryKey, holds: &SessionHolds) {
        let bytes = key.bytes();
        match holds.mode(key) {
            Some(LockMode::Exclusive) => {}
            Some(LockMode::Shared) => {
                self.table.release(owner(pid), std::slice::from_ref(&bytes));
                // Nobody else can hold it while this session held it exclusively.
                let _ = self.table.try_acquire(owner(pid), &bytes, LockMode::Shared);
            }
            None => self.table.release(owner(pid), std::slice::from_ref(&bytes)),
        }
    }
}

/// The lock table's owner for a session.
fn owner(pid: i32) -> u64 {
    u64::from(pid as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_conflict_and_takes_count() {
        let locks = AdvisoryLocks::default();
        let k = AdvisoryKey::Big(7);
        locks
            .lock(1, k, LockMode::Exclusive, Scope::Session)
            .await
            .unwrap();
        assert!(locks.try_lock(1, k, LockMode::Exclusive, Scope::Transaction));
        assert!(!locks.try_lock(2, k, LockMode::Shared, Scope::Session));
        // The transaction's take ends; the session's still holds the key.
        locks.release(1, Some(Scope::Transaction));
        assert!(!locks.try_lock(2, k, LockMode::Exclusive, Scope::Session));
        assert!(locks.unlock(1, k, LockMode::Exclusive));
        assert!(!locks.unlock(1, k, LockMode::Exclusive));
        assert!(locks.try_lock(2, k, LockMode::Exclusive, Scope::Session));
        // Different key forms are different locks.
        assert!(locks.try_lock(
            1,
            AdvisoryKey::Pair(0, 7),
            LockMode::Exclusive,
            Scope::Session
        ));
    }

    #[tokio::test]
    async fn shared_takes_share_and_downgrade() {
        let locks = AdvisoryLocks::default();
        let k = AdvisoryKey::Pair(1, 2);
        assert!(locks.try_lock(1, k, LockMode::Shared, Scope::Session));
        assert!(locks.try_lock(1, k, LockMode::Exclusive, Scope::Session));
        assert!(!locks.try_lock(2, k, LockMode::Shared, Scope::Session));
        assert!(locks.unlock(1, k, LockMode::Exclusive));
        assert!(locks.try_lock(2, k, LockMode::Shared, Scope::Session));
        assert!(!locks.try_lock(3, k, LockMode::Exclusive, Scope::Session));
        locks.release(1, None);
        locks.release(2, None);
        assert!(locks.try_lock(3, k, LockMode::Exclusive, Scope::Session));
    }

    #[tokio::test]
    async fn a_wait_ends_when_the_holder_lets_go_or_on_cancel() {
        let locks = Arc::new(AdvisoryLocks::default());
        let k = AdvisoryKey::Big(1);
        locks
            .lock(1, k, LockMode::Exclusive, Scope::Session)
            .await
            .unwrap();
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move { locks.lock(2, k, LockMode::Exclusive, Scope::Session).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        locks.release(1, None);
        waiter.await.unwrap().unwrap();

        let cancelled = {
            let locks = locks.clone();
            tokio::spawn(async move { locks.lock(3, k, LockMode::Shared, Scope::Session).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        locks.cancel_wait(3);
        let err = cancelled.await.unwrap().unwrap_err();
        assert_eq!(err.code, sqlstate::QUERY_CANCELED);
    }

    #[tokio::test]
    async fn a_cycle_of_waits_is_a_deadlock() {
        let locks = Arc::new(AdvisoryLocks::default());
        let (a, b) = (AdvisoryKey::Big(1), AdvisoryKey::Big(2));
        locks
            .lock(1, a, LockMode::Exclusive, Scope::Session)
            .await
            .unwrap();
        locks
            .lock(2, b, LockMode::Exclusive, Scope::Session)
            .await
            .unwrap();
        let first = {
            let locks = locks.clone();
            tokio::spawn(async move { locks.lock(1, b, LockMode::Exclusive, Scope::Session).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let err = locks
            .lock(2, a, LockMode::Exclusive, Scope::Session)
            .await
            .unwrap_err();
        assert_eq!(err.code, sqlstate::DEADLOCK_DETECTED);
        locks.release(2, None);
        first.await.unwrap().unwrap();
    }
}
