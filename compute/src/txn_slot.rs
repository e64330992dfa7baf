//! How DataFusion operators find the transaction their statement runs in.
//!
//! Each session's DataFusion config carries one [`TxnSlot`] as an extension. The session puts a
//! transaction in it before running a statement; scans read at its snapshot, writes add to it,
//! and the session takes it out to commit. Operators look it up at execution time, not at
//! planning time, so a cached plan runs in whatever transaction is current.

use std::sync::{Arc, Mutex};

use datafusion::common::{DataFusionError, Result as DFResult};
use datafusion::prelude::SessionConfig;
use strata_core::Lsn;

use crate::error::SqlError;
use crate::txn::Transaction;

#[derive(Default)]
pub struct TxnSlot {
    txn: Mutex<Option<Transaction>>,
}

impl TxnSlot {
    pub fn put(&self, txn: Transaction) {
        *self.txn.lock().expect("txn slot lock") = Some(txn);
    }

    pub fn take(&self) -> Option<Transaction> {
        self.txn.lock().expect("txn slot lock").take()
    }

    /// Runs `f` on the current transaction.
    pub fn with<R>(&self, f: impl FnOnce(&mut Transaction) -> R) -> DFResult<R> {
        let mut guard = self.txn.lock().expect("txn slot lock");
        let txn = guard.as_mut().ok_or_else(no_transaction)?;
        Ok(f(txn))
    }

    pub fn snapshot(&self) -> DFResult<Lsn> {
        self.with(|t| t.snapshot())
    }
}

fn no_transaction() -> DataFusionError {
    SqlError::internal("statement is running outside a transaction").into_datafusion()
}

/// The session's slot, from a DataFusion config.
pub fn txn_slot(config: &SessionConfig) -> DFResult<Arc<TxnSlot>> {
    config.get_extension::<TxnSlot>().ok_or_else(no_transaction)
}
