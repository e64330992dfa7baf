//! How DataFusion operators and the catalog find the transaction a statement runs in.
//!
//! Each session's DataFusion config carries one [`TxnSlot`] as an extension. The session keeps
//! its current transaction there; table scans read at its snapshot and see its writes, and the
//! catalog shows its uncommitted DDL. Writers take the transaction out while they lock and write
//! (which awaits), and put it back.

use std::sync::{Arc, Mutex};

use datafusion::common::{DataFusionError, Result as DFResult};
use datafusion::prelude::SessionConfig;

use crate::error::SqlError;
use crate::txn::Transaction;

pub struct TxnSlot {
    txn: Mutex<Option<Transaction>>,
    /// `SET strata.as_of`: every table is read at this LSN, and writes are refused.
    as_of: Mutex<Option<strata_core::Lsn>>,
    /// The session's `search_path`, parsed.
    search_path: Mutex<Arc<crate::search_path::SearchPath>>,
    /// Bumped whenever `search_path` changes: statements planned before are planned again.
    path_generation: std::sync::atomic::AtomicU64,
    /// The database the session connected to: set once, at startup (`postgres` until then).
    database: std::sync::OnceLock<Arc<str>>,
    /// The session's `lock_timeout` as of its running statement, given to each transaction
    /// put here.
    lock_timeout: Mutex<Option<std::time::Duration>>,
}

impl Default for TxnSlot {
    fn default() -> Self {
        Self {
            txn: Mutex::default(),
            as_of: Mutex::default(),
            search_path: Mutex::default(),
            path_generation: Default::default(),
            database: std::sync::OnceLock::new(),
            lock_timeout: Mutex::default(),
        }
    }
}

impl std::fmt::Debug for TxnSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TxnSlot")
    }
}

impl TxnSlot {
    /// A slot that sees what this one sees now, for ever after: a read-only copy of the current
    /// transaction (see [`Transaction::read_view`]) and the same settings.
    pub fn read_view(&self) -> TxnSlot {
        let view = TxnSlot {
            txn: Mutex::new(
                self.txn
                    .lock()
                    .expect("txn slot lock")
                    .as_ref()
                    .map(Transaction::read_view),
            ),
            as_of: Mutex::new(self.as_of()),
            search_path: Mutex::new(self.search_path()),
            path_generation: self.path_generation().into(),
            database: std::sync::OnceLock::new(),
            lock_timeout: Mutex::default(),
        };
        if let Some(database) = self.database.get() {
            let _ = view.database.set(database.clone());
        }
        view
    }

    pub fn put(&self, mut txn: Transaction) {
        txn.set_lock_timeout(*self.lock_timeout.lock().expect("lock timeout lock"));
        *self.txn.lock().expect("txn slot lock") = Some(txn);
    }

    /// The longest a row or key lock may be waited for (`lock_timeout`), from now on, for the
    /// transaction here and those put here later.
    pub fn set_lock_timeout(&self, timeout: Option<std::time::Duration>) {
        *self.lock_timeout.lock().expect("lock timeout lock") = timeout;
        if let Some(txn) = self.txn.lock().expect("txn slot lock").as_mut() {
            txn.set_lock_timeout(timeout);
        }
    }

    pub fn take(&self) -> Option<Transaction> {
        self.txn.lock().expect("txn slot lock").take()
    }

    /// The LSN the session is pinned at (`SET strata.as_of`), if any.
    pub fn as_of(&self) -> Option<strata_core::Lsn> {
        *self.as_of.lock().expect("as_of lock")
    }

    pub fn set_as_of(&self, lsn: Option<strata_core::Lsn>) {
        *self.as_of.lock().expect("as_of lock") = lsn;
    }

    /// The database the session connected to.
    pub fn database_name(&self) -> &str {
        self.database
            .get()
            .map_or(crate::catalog::DEFAULT_DATABASE, |d| d)
    }

    /// The database the session connected to, to hand to a transaction.
    pub fn database(&self) -> Arc<str> {
        self.database
            .get()
            .cloned()
            .unwrap_or_else(|| Arc::from(crate::catalog::DEFAULT_DATABASE))
    }

    /// Sets the session's database, at startup; a session never changes database.
    pub fn set_database(&self, database: &str) {
        let _ = self.database.set(Arc::from(database));
    }

    pub fn search_path(&self) -> Arc<crate::search_path::SearchPath> {
        self.search_path.lock().expect("search path lock").clone()
    }

    /// Sets the search path; a change makes earlier plans stale.
    pub fn set_search_path(&self, path: crate::search_path::SearchPath) {
        let mut current = self.search_path.lock().expect("search path lock");
        if **current != path {
            *current = Arc::new(path);
            self.path_generation
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
    }

    pub fn path_generation(&self) -> u64 {
        self.path_generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Runs `f` on the current transaction.
    pub fn with<R>(&self, f: impl FnOnce(&mut Transaction) -> R) -> DFResult<R> {
        let mut guard = self.txn.lock().expect("txn slot lock");
        let txn = guard.as_mut().ok_or_else(no_transaction)?;
        Ok(f(txn))
    }

    /// Runs `f` on the catalog as the current transaction (if any) sees it: `committed` with the
    /// transaction's own DDL on top.
    pub fn with_catalog<R>(
        &self,
        committed: &crate::catalog::Catalog,
        f: impl FnOnce(&crate::catalog::CatalogView) -> R,
    ) -> R {
        self.with_optional(|txn| {
            f(&crate::catalog::CatalogView {
                committed,
                txn,
                database: self.database_name(),
            })
        })
    }

    /// Runs `f` on the current transaction, if there is one.
    pub fn with_optional<R>(&self, f: impl FnOnce(Option<&Transaction>) -> R) -> R {
        let guard = self.txn.lock().expect("txn slot lock");
        f(guard.as_ref())
    }
}

fn no_transaction() -> DataFusionError {
    SqlError::internal("statement is running outside a transaction").into_datafusion()
}

/// The session's slot, from a DataFusion config.
pub fn txn_slot(config: &SessionConfig) -> DFResult<Arc<TxnSlot>> {
    config.get_extension::<TxnSlot>().ok_or_else(no_transaction)
}
