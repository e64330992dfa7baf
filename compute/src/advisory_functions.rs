//! `pg_advisory_lock` and its relatives: the SQL face of [`crate::txn::advisory`].
//!
//! Each takes a `bigint` key or two `integer` keys, is strict (a NULL key takes nothing and
//! gives NULL) and works row by row, as in PostgreSQL. A function that waits blocks its worker
//! thread (see [`block_on_worker`]); a cancel request or a deadlock ends the wait.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result as DFResult;
use datafusion::logical_expr::{ScalarUDF, Volatility};

use crate::error::{sqlstate, SqlError};
use crate::pg_catalog::functions::{
    block_on_worker, function_with, ints, sql_error, void_function,
};
use crate::pg_catalog::CatalogHandle;
use crate::txn::advisory::{AdvisoryKey, Scope};
use crate::txn::LockMode;

/// The advisory lock functions, bound to one session.
pub fn all(h: &CatalogHandle) -> Vec<ScalarUDF> {
    use LockMode::{Exclusive, Shared};
    use Scope::{Session, Transaction};
    let mut functions = Vec::new();
    for (name, try_name, mode, scope) in [
        (
            "pg_advisory_lock",
            "pg_try_advisory_lock",
            Exclusive,
            Session,
        ),
        (
            "pg_advisory_lock_shared",
            "pg_try_advisory_lock_shared",
            Shared,
            Session,
        ),
        (
            "pg_advisory_xact_lock",
            "pg_try_advisory_xact_lock",
            Exclusive,
            Transaction,
        ),
        (
            "pg_advisory_xact_lock_shared",
            "pg_try_advisory_xact_lock_shared",
            Shared,
            Transaction,
        ),
    ] {
        functions.push(void_function(
            Volatility::Volatile,
            name,
            &[1, 2],
            h,
            move |h, args, rows| {
                let keys = keys(args, rows)?;
                let mut out = Vec::with_capacity(rows);
                for key in keys {
                    out.push(match key {
                        Some(key) => {
                            let (pid, once) = taker(h, scope)?;
                            let locks = &h.primary.txns.advisory;
                            block_on_worker(locks.lock(pid, key, mode, scope))
                                .map_err(sql_error)?;
                            if once {
                                locks.release(pid, Some(scope));
                            }
                            Some("")
                        }
                        None => None,
                    });
                }
                Ok(Arc::new(StringArray::from(out)) as ArrayRef)
            },
        ));
        functions.push(function_with(
            Volatility::Volatile,
            try_name,
            &[1, 2],
            DataType::Boolean,
            h,
            move |h, args, rows| {
                let mut out = Vec::with_capacity(rows);
                for key in keys(args, rows)? {
                    out.push(match key {
                        Some(key) => {
                            let (pid, once) = taker(h, scope)?;
                            let locks = &h.primary.txns.advisory;
                            let taken = locks.try_lock(pid, key, mode, scope);
                            if once {
                                locks.release(pid, Some(scope));
                            }
                            Some(taken)
                        }
                        None => None,
                    });
                }
                Ok(Arc::new(BooleanArray::from(out)) as ArrayRef)
            },
        ));
    }
    for (name, mode) in [
        ("pg_advisory_unlock", Exclusive),
        ("pg_advisory_unlock_shared", Shared),
    ] {
        functions.push(function_with(
            Volatility::Volatile,
            name,
            &[1, 2],
            DataType::Boolean,
            h,
            move |h, args, rows| {
                let pid = h.pid.load(Ordering::Relaxed);
                let out: Vec<Option<bool>> = keys(args, rows)?
                    .into_iter()
                    .map(|key| key.map(|key| h.primary.txns.advisory.unlock(pid, key, mode)))
                    .collect();
                Ok(Arc::new(BooleanArray::from(out)) as ArrayRef)
            },
        ));
    }
    functions.push(void_function(
        Volatility::Volatile,
        "pg_advisory_unlock_all",
        &[0],
        h,
        |h, _args, rows| {
            let pid = h.pid.load(Ordering::Relaxed);
            h.primary.txns.advisory.release(pid, Some(Scope::Session));
            Ok(Arc::new(StringArray::from(vec![Some(""); rows])) as ArrayRef)
        },
    ));
    functions
}

/// The session taking a lock in `scope`, and whether the take ends with the statement.
///
/// A transaction-scope lock is noted on the session's transaction, which releases it when it
/// ends. A statement that reads outside any transaction (a query in autocommit) would end such a
/// lock at once: it is only waited for, or tried, and released.
fn taker(h: &CatalogHandle, scope: Scope) -> DFResult<(i32, bool)> {
    let pid = h.pid.load(Ordering::Relaxed);
    if scope == Scope::Session {
        return Ok((pid, false));
    }
    if h.slot.with_optional(|txn| txn.is_none()) {
        return Ok((pid, true));
    }
    h.slot.with(|txn| txn.hold_advisory_locks_of(pid))?;
    Ok((pid, false))
}

/// The key of each row: one `bigint` argument, or two `integer`s; `None` where one is NULL.
fn keys(args: &[ArrayRef], rows: usize) -> DFResult<Vec<Option<AdvisoryKey>>> {
    match args {
        [key] => Ok(ints(key)?
            .into_iter()
            .map(|k| k.map(AdvisoryKey::Big))
            .collect()),
        [a, b] => {
            let (a, b) = (ints(a)?, ints(b)?);
            let int = |v: i64| {
                i32::try_from(v).map_err(|_| {
                    sql_error(SqlError::new(
                        sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                        "integer out of range",
                    ))
                })
            };
            a.into_iter()
                .zip(b)
                .map(|pair| match pair {
                    (Some(a), Some(b)) => Ok(Some(AdvisoryKey::Pair(int(a)?, int(b)?))),
                    _ => Ok(None),
                })
                .collect()
        }
        _ => Ok(vec![None; rows]),
    }
}
