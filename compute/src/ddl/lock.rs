//! `LOCK [TABLE] name [, …] [IN mode MODE] [NOWAIT]`, inside a transaction block.
//!
//! Writers of a table hold a shared lock on its definition until they end, and DDL an
//! exclusive one (`dml::lock_table_for_write`, `lock_for_rebuild`), so PostgreSQL's modes map
//! onto those two: the modes that let writers in (ACCESS SHARE, ROW SHARE, ROW EXCLUSIVE) take
//! the shared lock and keep DDL out; the stronger ones (SHARE and above) take the exclusive lock
//! and keep writers and DDL out until the transaction ends. Two SHARE holders therefore wait for
//! each other, where PostgreSQL lets both in. Readers never wait: they read their snapshot, where
//! PostgreSQL's ACCESS EXCLUSIVE would also hold back SELECT.

use datafusion::sql::sqlparser::ast::{Lock, LockTableMode};

use crate::catalog::{table_def_key, CatalogView};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::names::table_name;
use crate::primary::Primary;
use crate::txn::Transaction;

pub async fn lock_tables(primary: &Primary, txn: &mut Transaction, lock: &Lock) -> SqlResult<()> {
    // PostgreSQL's default mode is ACCESS EXCLUSIVE.
    let shared = matches!(
        lock.lock_mode,
        Some(LockTableMode::AccessShare | LockTableMode::RowShare | LockTableMode::RowExclusive)
    );
    for target in &lock.tables {
        let (schema, name) = table_name(&target.name)?;
        let Some(def) = CatalogView::of(&primary.catalog, txn).get(&schema, &name)? else {
            return Err(SqlError::undefined_table(&name));
        };
        let key = table_def_key(def.id);
        if lock.nowait {
            if txn.try_lock(&key, shared)?.is_none() {
                return Err(SqlError::new(
                    sqlstate::LOCK_NOT_AVAILABLE,
                    format!("could not obtain lock on relation \"{name}\""),
                ));
            }
        } else if shared {
            txn.lock_shared(&key).await?;
        } else {
            txn.lock(&key).await?;
        }
    }
    Ok(())
}
