//! FOREIGN KEY constraints that reference a table's primary key, enforced immediately: NO
//! ACTION / RESTRICT, and on delete of the referenced row or on a change of its key, CASCADE or
//! SET NULL.
//!
//! A referencing row's key values become the referenced row's storage key, so checking that the
//! referenced row exists is a point read. The referencing transaction locks that key until it
//! ends, so the referenced row cannot be deleted under it. A referenced row being deleted (or
//! its key changed) is checked against the referencing table's rows as the statement sees them.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::common::ScalarValue;
use serde::{Deserialize, Serialize};
use strata_core::key::row_prefix;

use crate::catalog::{CatalogView, TableDef};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::pg_catalog::quote_ident;
use crate::primary::Primary;
use crate::txn::{LockOutcome, Transaction};

/// A foreign key of a table: its columns reference the primary key of `parent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKeyDef {
    pub name: String,
    /// Referencing column ids, in the order of the parent's primary-key columns.
    pub columns: Vec<u32>,
    /// The referenced table's id.
    pub parent: u64,
    /// What deleting a referenced row does to the rows referencing it.
    #[serde(default, skip_serializing_if = "FkAction::is_no_action")]
    pub on_delete: FkAction,
    /// What changing a referenced row's key does to the rows referencing it.
    #[serde(default, skip_serializing_if = "FkAction::is_no_action")]
    pub on_update: FkAction,
}

/// `ON DELETE` / `ON UPDATE`: what happens to referencing rows when the row they reference is
/// deleted, or its key changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FkAction {
    /// The delete fails while rows reference it (NO ACTION; RESTRICT behaves the same when
    /// constraints are checked immediately, as Strata's are).
    #[default]
    NoAction,
    Restrict,
    /// The referencing rows are deleted too (ON DELETE), or take the new key (ON UPDATE).
    Cascade,
    /// The referencing columns are set to NULL.
    SetNull,
}

impl FkAction {
    fn is_no_action(&self) -> bool {
        *self == FkAction::NoAction
    }

    /// `pg_constraint.confdeltype`.
    pub fn code(self) -> &'static str {
        match self {
            FkAction::NoAction => "a",
            FkAction::Restrict => "r",
            FkAction::Cascade => "c",
            FkAction::SetNull => "n",
        }
    }

    /// The clause `pg_get_constraintdef` appends for `event` (`UPDATE`, `DELETE`; nothing for
    /// NO ACTION).
    pub fn clause(self, event: &str) -> String {
        let action = match self {
            FkAction::NoAction => return String::new(),
            FkAction::Restrict => "RESTRICT",
            FkAction::Cascade => "CASCADE",
            FkAction::SetNull => "SET NULL",
        };
        format!(" ON {event} {action}")
    }

    /// Whether the referencing rows change with the referenced one (rather than stop it).
    pub fn acts(self) -> bool {
        matches!(self, FkAction::Cascade | FkAction::SetNull)
    }
}

impl ForeignKeyDef {
    /// Positions (in the table's columns) of the referencing columns.
    pub fn column_positions(&self, def: &TableDef) -> Vec<usize> {
        def.column_positions(&self.columns)
    }
}

/// The storage keys of the parent rows that `columns` (a table's columns, in order) reference
/// through `fk`, with the row each came from; rows with a NULL in the key reference nothing
/// (MATCH SIMPLE). `None` for a value the parent's key type cannot hold (no row has it).
pub fn referenced_keys(
    def: &TableDef,
    parent: &TableDef,
    fk: &ForeignKeyDef,
    columns: &[ArrayRef],
) -> SqlResult<Vec<(usize, Option<Bytes>)>> {
    let positions = fk.column_positions(def);
    let parent_types: Vec<_> = parent
        .primary_key_indexes()
        .into_iter()
        .map(|i| parent.columns[i].ty)
        .collect();
    let arrays = positions
        .iter()
        .zip(&parent_types)
        .map(|(&p, ty)| Ok(cast(&columns[p], &ty.arrow_type())?))
        .collect::<SqlResult<Vec<_>>>()?;
    let rows = columns.first().map_or(0, |c| c.len());
    let mut out = Vec::new();
    for row in 0..rows {
        if arrays.iter().any(|a| a.is_null(row)) {
            continue;
        }
        let mut key = row_prefix(parent.id);
        let mut representable = true;
        for (array, ty) in arrays.iter().zip(&parent_types) {
            let value = ScalarValue::try_from_array(array, row)?;
            match crate::key_range::encode(*ty, &value) {
                Some(bytes) => key.extend_from_slice(&bytes),
                None => representable = false,
            }
        }
        out.push((row, representable.then(|| Bytes::from(key))));
    }
    Ok(out)
}

/// Checks that every row of `columns` (being written to `def` in `txn`) references existing
/// rows, locking the referenced keys until `txn` ends.
pub async fn check_references(
    primary: &Primary,
    txn: &mut Transaction,
    def: &TableDef,
    columns: &[ArrayRef],
) -> SqlResult<()> {
    for fk in &def.foreign_keys {
        let parent = parent_of(primary, txn, def, fk)?;
        let mut checked = HashSet::new();
        for (row, key) in referenced_keys(def, &parent, fk, columns)? {
            let Some(key) = key else {
                return Err(not_present(def, &parent, fk, columns, row));
            };
            if !checked.insert(key.clone()) {
                continue;
            }
            let lsn = match txn.lock(&key).await? {
                LockOutcome::Current => txn.snapshot(),
                // Committed after the snapshot, and now locked: the latest value is stable.
                LockOutcome::ChangedSinceSnapshot => primary.txns.last_commit_lsn(),
            };
            let exists =
                crate::dml::existing(primary, txn, std::slice::from_ref(&key), lsn).await?;
            if !exists[0] {
                return Err(not_present(def, &parent, fk, columns, row));
            }
        }
    }
    Ok(())
}

fn parent_of(
    primary: &Primary,
    txn: &Transaction,
    def: &TableDef,
    fk: &ForeignKeyDef,
) -> SqlResult<Arc<TableDef>> {
    if fk.parent == def.id {
        return Ok(Arc::new(def.clone()));
    }
    let view = CatalogView::of(&primary.catalog, txn);
    view.table_by_id(fk.parent)?
        .ok_or_else(|| SqlError::internal(format!("foreign key {} has no table", fk.name)))
}

fn not_present(
    def: &TableDef,
    parent: &TableDef,
    fk: &ForeignKeyDef,
    columns: &[ArrayRef],
    row: usize,
) -> SqlError {
    SqlError::new(
        sqlstate::FOREIGN_KEY_VIOLATION,
        format!(
            "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
            def.name, fk.name
        ),
    )
    .with_detail(format!(
        "Key ({})=({}) is not present in table \"{}\".",
        column_names(def, fk),
        row_values(def, fk, columns, row),
        parent.name
    ))
    .with_table(&def.schema, &def.name)
    .with_constraint(&fk.name)
}

fn column_names(def: &TableDef, fk: &ForeignKeyDef) -> String {
    fk.column_positions(def)
        .iter()
        .map(|&p| quote_ident(&def.columns[p].name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn row_values(def: &TableDef, fk: &ForeignKeyDef, columns: &[ArrayRef], row: usize) -> String {
    let referencing: Vec<ArrayRef> = fk
        .column_positions(def)
        .iter()
        .map(|&p| columns[p].clone())
        .collect();
    crate::pg_encode::row_text(&referencing, row)
}

/// The foreign keys (with their tables, in any schema) that reference `parent`.
pub fn referencing(view: &CatalogView, parent: &TableDef) -> Vec<(Arc<TableDef>, ForeignKeyDef)> {
    view.schemas()
        .iter()
        .flat_map(|s| view.tables(&s.name))
        .flat_map(|t| {
            t.foreign_keys
                .iter()
                .filter(|fk| fk.parent == parent.id)
                .map(|fk| (t.clone(), fk.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Fails with 23503 if a row of `child` (read in `batches`: its referencing columns, in the
/// order of `fk.columns`) references one of `removed` (storage keys of parent rows being deleted
/// or re-keyed); `describe` names a removed key for the message.
pub fn check_not_referenced(
    parent: &TableDef,
    child: &TableDef,
    fk: &ForeignKeyDef,
    batches: &[RecordBatch],
    removed: &HashSet<Bytes>,
    describe: impl Fn(&Bytes) -> String,
) -> SqlResult<()> {
    let positions = fk.column_positions(child);
    for batch in batches {
        // Lay the referencing columns out where `referenced_keys` expects them.
        let mut columns: Vec<ArrayRef> = child
            .columns
            .iter()
            .map(|c| datafusion::arrow::array::new_null_array(&c.ty.arrow_type(), batch.num_rows()))
            .collect();
        for (i, &p) in positions.iter().enumerate() {
            columns[p] = batch.column(i).clone();
        }
        for (_, key) in referenced_keys(child, parent, fk, &columns)? {
            if let Some(key) = key.filter(|k| removed.contains(k)) {
                return Err(SqlError::new(
                    sqlstate::FOREIGN_KEY_VIOLATION,
                    format!(
                        "update or delete on table \"{}\" violates foreign key constraint \"{}\" on table \"{}\"",
                        parent.name, fk.name, child.name
                    ),
                )
                .with_detail(format!(
                    "Key {} is still referenced from table \"{}\".",
                    describe(&key),
                    child.name
                ))
                .with_table(&child.schema, &child.name)
                .with_constraint(&fk.name));
            }
        }
    }
    Ok(())
}

/// The SELECT that reads a child table's referencing columns (rows with a NULL in them never
/// reference anything).
pub fn referencing_rows_query(child: &TableDef, fk: &ForeignKeyDef) -> String {
    let columns: Vec<String> = fk
        .column_positions(child)
        .iter()
        .map(|&p| format!("\"{}\"", child.columns[p].name.replace('"', "\"\"")))
        .collect();
    format!(
        "SELECT DISTINCT {} FROM \"{}\".\"{}\" WHERE {}",
        columns.join(", "),
        child.schema.replace('"', "\"\""),
        child.name.replace('"', "\"\""),
        columns
            .iter()
            .map(|c| format!("{c} IS NOT NULL"))
            .collect::<Vec<_>>()
            .join(" AND ")
    )
}
