//! CREATE DATABASE and DROP DATABASE, and which databases have sessions.
//!
//! A database is one catalog key. Every name key of the catalog carries its database, so a
//! database's schemas and relations are its own: a session sees only the database it connected
//! to. Dropping a database deletes the definitions and names of everything in it; the rows of
//! its tables are left unreachable, as after DROP TABLE.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::DdlOutcome;
use crate::catalog::{
    database_key, encode_database_def, schema_key, DatabaseDef, DEFAULT_DATABASE,
};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::primary::Primary;
use crate::txn::Transaction;

/// How many sessions are connected to each database (DROP DATABASE refuses while any are).
#[derive(Debug, Default)]
pub struct Connections {
    counts: Mutex<HashMap<String, usize>>,
}

impl Connections {
    /// Counts a session connected to `database` until the returned guard is dropped.
    pub fn enter(self: &Arc<Self>, database: &str) -> ConnectionGuard {
        *self
            .counts
            .lock()
            .expect("connections lock")
            .entry(database.to_string())
            .or_default() += 1;
        ConnectionGuard {
            connections: self.clone(),
            database: database.to_string(),
        }
    }

    fn count(&self, database: &str) -> usize {
        self.counts
            .lock()
            .expect("connections lock")
            .get(database)
            .copied()
            .unwrap_or(0)
    }
}

/// A session's place in [`Connections`].
#[derive(Debug)]
pub struct ConnectionGuard {
    connections: Arc<Connections>,
    database: String,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut counts = self.connections.counts.lock().expect("connections lock");
        if let Some(n) = counts.get_mut(&self.database) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.database);
            }
        }
    }
}

/// The error for a session that names a database that does not exist.
pub fn missing(name: &str) -> SqlError {
    SqlError::new(
        sqlstate::INVALID_CATALOG_NAME,
        format!("database \"{name}\" does not exist"),
    )
}

pub async fn create_database(
    primary: &Primary,
    txn: &mut Transaction,
    name: &str,
    if_not_exists: bool,
) -> SqlResult<DdlOutcome> {
    let key = database_key(name);
    txn.lock(&key).await?;
    if primary.catalog.database(name).is_some() {
        return DdlOutcome::already_exists(
            "CREATE DATABASE",
            "database",
            name,
            if_not_exists,
            sqlstate::DUPLICATE_DATABASE,
        );
    }
    let id = super::allocate_table_id(primary, txn).await?;
    let def = DatabaseDef {
        id,
        name: name.to_string(),
    };
    txn.put(key, encode_database_def(&def));
    tracing::info!(database = %name, id, "created database");
    Ok(DdlOutcome {
        tag: "CREATE DATABASE",
        notice: None,
        detail: None,
    })
}

pub async fn drop_database(
    primary: &Primary,
    connections: &Connections,
    txn: &mut Transaction,
    name: &str,
    if_exists: bool,
) -> SqlResult<DdlOutcome> {
    if name == txn.database() {
        return Err(SqlError::new(
            sqlstate::OBJECT_IN_USE,
            "cannot drop the currently open database",
        ));
    }
    if name == DEFAULT_DATABASE {
        return Err(SqlError::unsupported("dropping database postgres"));
    }
    let key = database_key(name);
    txn.lock(&key).await?;
    if primary.catalog.database(name).is_none() {
        if if_exists {
            return Ok(DdlOutcome::with_notice(
                "DROP DATABASE",
                format!("database \"{name}\" does not exist, skipping"),
            ));
        }
        return Err(missing(name));
    }
    let others = connections.count(name);
    if others > 0 {
        let sessions = if others == 1 { "session" } else { "sessions" };
        return Err(SqlError::new(
            sqlstate::OBJECT_IN_USE,
            format!("database \"{name}\" is being accessed by other users"),
        )
        .with_detail(format!(
            "There {} {others} other {sessions} using the database.",
            if others == 1 { "is" } else { "are" }
        )));
    }
    // Everything goes, so nothing is checked for dependents: each definition is removed as its
    // own DROP removes it.
    let contents = primary.catalog.database_contents(name);
    for table in &contents.tables {
        super::remove_table(txn, table).await?;
    }
    for sequence in &contents.sequences {
        super::sequence::remove_sequence(txn, sequence).await?;
    }
    for view in &contents.views {
        super::view::remove_view(txn, view).await?;
    }
    let schemas = contents.schemas.iter().map(|s| schema_key(name, s));
    for key in schemas.chain([key]) {
        txn.lock(&key).await?;
        txn.delete(key);
    }
    tracing::info!(
        database = %name,
        tables = contents.tables.len(),
        "dropped database"
    );
    Ok(DdlOutcome {
        tag: "DROP DATABASE",
        notice: None,
        detail: None,
    })
}
