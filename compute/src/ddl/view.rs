//! CREATE [OR REPLACE] VIEW and DROP VIEW.

use bytes::Bytes;
use datafusion::sql::sqlparser::ast::ObjectName;

use super::{allocate_table_id, txn_view, DdlOutcome};
use crate::catalog::table_name_key;
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::names::table_name;
use crate::primary::Primary;
use crate::txn::Transaction;
use crate::views::{dependent_views, encode_view_def, view_def_key, ViewColumn, ViewDef};

/// A view to create, its query already planned by the session (which knows its columns and the
/// relations it reads).
pub struct NewView {
    pub schema: String,
    pub name: String,
    pub query: String,
    pub columns: Vec<ViewColumn>,
    pub depends_on: Vec<u64>,
    pub or_replace: bool,
}

/// Creates (or replaces) a view in `txn`. The name is locked until the transaction ends.
pub async fn create_view(
    primary: &Primary,
    txn: &mut Transaction,
    new: NewView,
) -> SqlResult<DdlOutcome> {
    super::schema::use_schema(primary, txn, &new.schema).await?;
    let name_key = table_name_key(txn.database(), &new.schema, &new.name);
    txn.lock(&name_key).await?;
    let existing = txn_view(primary, txn).get_view(&new.schema, &new.name)?;
    let id = match existing {
        Some(old) if new.or_replace => {
            check_replacement(&old, &new.columns)?;
            old.id
        }
        Some(_) => return Err(already_exists(&new.name)),
        None if txn_view(primary, txn).relation_exists(&new.schema, &new.name)? => {
            return Err(if new.or_replace {
                SqlError::new(
                    sqlstate::WRONG_OBJECT_TYPE,
                    format!("\"{}\" is not a view", new.name),
                )
            } else {
                already_exists(&new.name)
            });
        }
        None => allocate_table_id(primary, txn).await?,
    };
    if new.depends_on.contains(&id) {
        return Err(SqlError::new(
            sqlstate::INVALID_OBJECT_DEFINITION,
            format!(
                "infinite recursion detected in rules for relation \"{}\"",
                new.name
            ),
        ));
    }
    let def = ViewDef {
        id,
        database: txn.database().to_string(),
        schema: new.schema,
        name: new.name,
        query: new.query,
        columns: new.columns,
        depends_on: new.depends_on,
    };
    let def_key = view_def_key(id);
    txn.lock(&def_key).await?;
    txn.put(def_key, encode_view_def(&def));
    txn.put(name_key, Bytes::copy_from_slice(&id.to_be_bytes()));
    tracing::info!(view = %def.name, id, "created view");
    Ok(DdlOutcome {
        tag: "CREATE VIEW",
        notice: None,
        detail: None,
    })
}

fn already_exists(name: &str) -> SqlError {
    SqlError::new(
        sqlstate::DUPLICATE_TABLE,
        format!("relation \"{name}\" already exists"),
    )
}

/// PostgreSQL's rule for `CREATE OR REPLACE VIEW`: the new query keeps every old column, in
/// its place, with its name and type; it may only add columns at the end.
fn check_replacement(old: &ViewDef, columns: &[ViewColumn]) -> SqlResult<()> {
    if columns.len() < old.columns.len() {
        return Err(SqlError::new(
            sqlstate::INVALID_TABLE_DEFINITION,
            "cannot drop columns from view",
        ));
    }
    for (was, now) in old.columns.iter().zip(columns) {
        if was.name != now.name {
            return Err(SqlError::new(
                sqlstate::INVALID_TABLE_DEFINITION,
                format!(
                    "cannot change name of view column \"{}\" to \"{}\"",
                    was.name, now.name
                ),
            )
            .with_hint(
                "Use ALTER VIEW ... RENAME COLUMN ... to change name of view column instead.",
            ));
        }
        if (was.pg_type, was.typmod) != (now.pg_type, now.typmod) {
            return Err(SqlError::new(
                sqlstate::INVALID_TABLE_DEFINITION,
                format!(
                    "cannot change data type of view column \"{}\" from {} to {}",
                    was.name,
                    type_name(was),
                    type_name(now),
                ),
            ));
        }
    }
    Ok(())
}

fn type_name(column: &ViewColumn) -> String {
    crate::pg_catalog::format_type(i64::from(column.pg_type), Some(column.typmod))
        .unwrap_or_else(|| column.pg_type.to_string())
}

/// `DROP VIEW`: removes the definitions in `txn`; `CASCADE` drops the views that read them.
pub async fn drop_views(
    primary: &Primary,
    txn: &mut Transaction,
    names: &[ObjectName],
    if_exists: bool,
    cascade: bool,
) -> SqlResult<DdlOutcome> {
    let mut notices = Vec::new();
    for name in names {
        let (schema, view_name) = table_name(name)?;
        let name_key = table_name_key(txn.database(), &schema, &view_name);
        txn.lock(&name_key).await?;
        let catalog = txn_view(primary, txn);
        match catalog.get_view(&schema, &view_name)? {
            Some(def) => {
                notices.extend(
                    drop_dependents(primary, txn, def.id, &def.name, "view", cascade).await?,
                );
                remove_view(txn, &def).await?;
            }
            None => notices.push(super::not_dropped(
                &catalog, &schema, &view_name, "view", if_exists,
            )?),
        }
    }
    Ok(DdlOutcome::with_notices("DROP VIEW", notices))
}

/// The views that read relation `id` (a table or view of this `kind`): without `cascade`, an
/// error naming the first; with it, they are dropped (and the views reading them), and the
/// notices say so.
pub(crate) async fn drop_dependents(
    primary: &Primary,
    txn: &mut Transaction,
    id: u64,
    name: &str,
    kind: &str,
    cascade: bool,
) -> SqlResult<Vec<String>> {
    let mut dropped = Vec::new();
    let mut pending = vec![id];
    while let Some(relation) = pending.pop() {
        let dependents = dependent_views(&txn_view(primary, txn), relation);
        if let Some(first) = dependents.first() {
            if !cascade {
                return Err(SqlError::new(
                    sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
                    format!("cannot drop {kind} {name} because other objects depend on it"),
                )
                .with_detail(format!("view {} depends on {kind} {name}", first.name))
                .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
            }
        }
        for view in dependents {
            if view.id == id || dropped.iter().any(|(i, _)| *i == view.id) {
                continue;
            }
            remove_view(txn, &view).await?;
            pending.push(view.id);
            dropped.push((view.id, view.name.clone()));
        }
    }
    Ok(dropped
        .into_iter()
        .map(|(_, view)| format!("drop cascades to view {view}"))
        .collect())
}

/// Deletes a view's definition and name in `txn`.
pub(crate) async fn remove_view(txn: &mut Transaction, def: &ViewDef) -> SqlResult<()> {
    let def_key = view_def_key(def.id);
    let name_key = table_name_key(&def.database, &def.schema, &def.name);
    txn.lock(&def_key).await?;
    txn.lock(&name_key).await?;
    txn.delete(def_key);
    txn.delete(name_key);
    tracing::info!(view = %def.name, id = def.id, "dropped view");
    Ok(())
}
