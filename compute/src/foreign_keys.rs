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
use strata_core::key::{index_prefix, row_prefix, NOT_NULL_TAG};

use crate::catalog::{CatalogView, TableDef};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::indexes::IndexDef;
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
    /// `DEFERRABLE`: SET CONSTRAINTS may move its checks to the end of the transaction.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deferrable: bool,
    /// `INITIALLY DEFERRED`: its checks run at COMMIT unless SET CONSTRAINTS says otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub initially_deferred: bool,
    /// Added `NOT VALID`: rows written before were not checked (until VALIDATE CONSTRAINT).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_valid: bool,
    /// The parent's columns it references (ids, in the order of `columns`) when they are a
    /// unique index's rather than the primary key; empty: the primary key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referenced_columns: Vec<u32>,
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
    /// The referencing columns are set to their defaults (which must then reference a row).
    SetDefault,
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
            FkAction::SetDefault => "d",
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
            FkAction::SetDefault => "SET DEFAULT",
        };
        format!(" ON {event} {action}")
    }

    /// Whether the referencing rows change with the referenced one (rather than stop it).
    pub fn acts(self) -> bool {
        matches!(
            self,
            FkAction::Cascade | FkAction::SetNull | FkAction::SetDefault
        )
    }
}

impl ForeignKeyDef {
    /// `pg_get_constraintdef`'s suffix for deferrability (nothing for NOT DEFERRABLE).
    pub fn deferrable_clause(&self) -> &'static str {
        match (self.deferrable, self.initially_deferred) {
            (_, true) => " DEFERRABLE INITIALLY DEFERRED",
            (true, false) => " DEFERRABLE",
            (false, false) => "",
        }
    }

    /// The parent's unique index it references (whose entries' probes are the referenced
    /// keys); `None`: the parent's primary key (whose row keys are).
    pub fn referenced_index<'a>(&self, parent: &'a TableDef) -> SqlResult<Option<&'a IndexDef>> {
        if self.referenced_columns.is_empty() {
            return Ok(None);
        }
        parent
            .indexes
            .iter()
            .find(|i| i.unique && i.is_plain() && i.columns == self.referenced_columns)
            .map(Some)
            .ok_or_else(|| {
                SqlError::internal(format!(
                    "foreign key {} has no unique index to reference",
                    self.name
                ))
            })
    }

    /// Positions (in the parent's columns) of the referenced columns, in the order of
    /// `columns`.
    pub fn referenced_positions(&self, parent: &TableDef) -> Vec<usize> {
        if self.referenced_columns.is_empty() {
            parent.primary_key_indexes()
        } else {
            parent.column_positions(&self.referenced_columns)
        }
    }

    /// Whether its referenced keys are unique-index probes rather than row keys.
    pub fn references_unique_index(&self) -> bool {
        !self.referenced_columns.is_empty()
    }

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
    let parent_types: Vec<_> = fk
        .referenced_positions(parent)
        .into_iter()
        .map(|i| parent.columns[i].ty)
        .collect();
    let index = fk.referenced_index(parent)?;
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
        // A row key, or a unique index entry's probe (each value tagged non-NULL).
        let mut key = match index {
            None => row_prefix(parent.id),
            Some(index) => index_prefix(parent.id, index.id),
        };
        let mut representable = true;
        for (array, ty) in arrays.iter().zip(&parent_types) {
            let value = ScalarValue::try_from_array(array, row)?;
            match crate::key_range::encode(*ty, &value) {
                Some(bytes) => {
                    if index.is_some() {
                        key.push(NOT_NULL_TAG);
                    }
                    key.extend_from_slice(&bytes);
                }
                None => representable = false,
            }
        }
        out.push((row, representable.then(|| Bytes::from(key))));
    }
    Ok(out)
}

/// Checks that every row of `columns` (being written to `def` in `txn`) references existing
/// rows, locking the referenced keys until `txn` ends; a deferred foreign key leaves its check
/// for the end of the transaction.
pub async fn check_references(
    primary: &Primary,
    txn: &mut Transaction,
    def: &TableDef,
    columns: &[ArrayRef],
) -> SqlResult<()> {
    for fk in &def.foreign_keys {
        let parent = parent_of(primary, txn, def, fk)?;
        let mut checked = HashSet::new();
        let mut keys = Vec::new();
        for (row, key) in referenced_keys(def, &parent, fk, columns)? {
            let values = row_values(def, fk, columns, row);
            // A value the parent's key cannot hold is in no row, now or at COMMIT.
            let Some(key) = key else {
                return Err(not_present(def, &parent, fk, &values));
            };
            if checked.insert(key.clone()) {
                keys.push((key, values));
            }
        }
        if keys.is_empty() {
            continue;
        }
        if txn.is_deferred(fk) {
            txn.defer(DeferredCheck::References {
                table: def.id,
                fk: fk.name.clone(),
                keys,
            });
        } else {
            references_exist(primary, txn, def, &parent, fk, &keys).await?;
        }
    }
    Ok(())
}

/// Fails with 23503 unless each of `keys` (storage keys of `parent` rows, with the referencing
/// values for the message) is a row `txn` sees, locking each until `txn` ends.
pub async fn references_exist(
    primary: &Primary,
    txn: &mut Transaction,
    def: &TableDef,
    parent: &TableDef,
    fk: &ForeignKeyDef,
    keys: &[(Bytes, String)],
) -> SqlResult<()> {
    match references_missing(primary, txn, fk, keys).await?.first() {
        Some((_, values)) => Err(not_present(def, parent, fk, values)),
        None => Ok(()),
    }
}

/// Those of `keys` (keys of parent rows as `fk` references them, each with what it is paired
/// with) that are no row `txn` sees; the ones that are stay locked until `txn` ends, so they
/// cannot go.
pub async fn references_missing<T: Clone>(
    primary: &Primary,
    txn: &mut Transaction,
    fk: &ForeignKeyDef,
    keys: &[(Bytes, T)],
) -> SqlResult<Vec<(Bytes, T)>> {
    if fk.references_unique_index() {
        let probes: Vec<Bytes> = keys.iter().map(|(k, _)| k.clone()).collect();
        let taken = crate::indexes::probes_taken(primary, txn, &probes).await?;
        return Ok(keys
            .iter()
            .zip(taken)
            .filter(|(_, taken)| !taken)
            .map(|(k, _)| k.clone())
            .collect());
    }
    let mut missing = Vec::new();
    for (key, with) in keys {
        let lsn = match txn.lock(key).await? {
            LockOutcome::Current => txn.snapshot(),
            // Committed after the snapshot, and now locked: the latest value is stable.
            LockOutcome::ChangedSinceSnapshot => primary.txns.last_commit_lsn(),
        };
        let exists = crate::dml::existing(primary, txn, std::slice::from_ref(key), lsn).await?;
        if !exists[0] {
            missing.push((key.clone(), with.clone()));
        }
    }
    Ok(missing)
}

/// A foreign-key check left for the end of the transaction (DEFERRABLE INITIALLY DEFERRED, or
/// SET CONSTRAINTS … DEFERRED). Actions (CASCADE, SET NULL) and RESTRICT are never deferred.
#[derive(Debug, Clone)]
pub enum DeferredCheck {
    /// Rows written to table `table` referenced these keys through `fk`: each must exist at
    /// the end if a row of the table still references it (with the referencing values, for
    /// the message).
    References {
        table: u64,
        fk: String,
        keys: Vec<(Bytes, String)>,
    },
    /// Rows of table `parent` with these keys were deleted or given new keys: at the end, unless
    /// a row has the key again, no row of `child` may reference it (with the key described,
    /// for the message).
    NotReferenced {
        parent: u64,
        child: u64,
        fk: String,
        keys: std::collections::HashMap<Bytes, String>,
    },
}

impl DeferredCheck {
    /// The name of the foreign key it checks.
    pub fn constraint(&self) -> &str {
        match self {
            DeferredCheck::References { fk, .. } | DeferredCheck::NotReferenced { fk, .. } => fk,
        }
    }
}

/// What SET CONSTRAINTS has said in a transaction: for all deferrable constraints, and for
/// constraints by name (the later statement wins).
#[derive(Debug, Default, Clone)]
pub struct ConstraintModes {
    all: Option<bool>,
    named: std::collections::HashMap<String, bool>,
}

impl ConstraintModes {
    /// Whether `fk`'s checks wait for the end of the transaction.
    pub fn is_deferred(&self, fk: &ForeignKeyDef) -> bool {
        fk.deferrable
            && self
                .named
                .get(&fk.name)
                .copied()
                .or(self.all)
                .unwrap_or(fk.initially_deferred)
    }

    /// `SET CONSTRAINTS ALL DEFERRED | IMMEDIATE`.
    pub fn set_all(&mut self, deferred: bool) {
        self.all = Some(deferred);
        self.named.clear();
    }

    /// `SET CONSTRAINTS name DEFERRED | IMMEDIATE`.
    pub fn set(&mut self, name: &str, deferred: bool) {
        self.named.insert(name.to_string(), deferred);
    }
}

/// The table `fk` (of `def`) references.
pub(crate) fn parent_of(
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

pub(crate) fn not_present(
    def: &TableDef,
    parent: &TableDef,
    fk: &ForeignKeyDef,
    values: &str,
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
        values,
        parent.name
    ))
    .with_table(&def.schema, &def.name)
    .with_constraint(&fk.name)
}

/// 23503 if `values` (for `fk`'s columns of `def`, in order) reference one of `gone` (keys of
/// `parent` rows being deleted or re-keyed).
pub fn check_values_not_among(
    parent: &TableDef,
    def: &TableDef,
    fk: &ForeignKeyDef,
    values: &[ScalarValue],
    gone: &HashSet<Bytes>,
) -> SqlResult<()> {
    let mut columns: Vec<ArrayRef> = def
        .columns
        .iter()
        .map(|c| datafusion::arrow::array::new_null_array(&c.ty.arrow_type(), 1))
        .collect();
    for (value, &p) in values.iter().zip(&fk.column_positions(def)) {
        columns[p] = cast(&value.to_array_of_size(1)?, &def.columns[p].ty.arrow_type())?;
    }
    for (row, key) in referenced_keys(def, parent, fk, &columns)? {
        if key.is_some_and(|k| gone.contains(&k)) {
            return Err(not_present(
                def,
                parent,
                fk,
                &row_values(def, fk, &columns, row),
            ));
        }
    }
    Ok(())
}

/// 2BP01 if a foreign key references `table` through its unique index `index`, which cannot
/// go while one does; `what` names what was to be dropped, for the message.
pub fn require_index_unreferenced(
    view: &CatalogView,
    table: &TableDef,
    index: &IndexDef,
    what: &str,
) -> SqlResult<()> {
    let dependent = referencing(view, table)
        .into_iter()
        .find(|(_, fk)| index.is_plain() && fk.referenced_columns == index.columns);
    match dependent {
        None => Ok(()),
        Some((child, fk)) => Err(SqlError::new(
            sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
            format!("cannot drop {what} because other objects depend on it"),
        )
        .with_detail(format!(
            "constraint {} on table {} depends on index {}",
            fk.name, child.name, index.name
        ))
        .with_hint("Use DROP ... CASCADE to drop the dependent objects too.")),
    }
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
    match first_referenced(parent, child, fk, batches, removed)? {
        Some(key) => Err(SqlError::new(
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
        .with_constraint(&fk.name)),
        None => Ok(()),
    }
}

/// The first of `keys` (storage keys of `parent` rows) a row of `child` references, its rows
/// read in `batches` (their referencing columns, in the order of `fk.columns`).
pub fn first_referenced(
    parent: &TableDef,
    child: &TableDef,
    fk: &ForeignKeyDef,
    batches: &[RecordBatch],
    keys: &HashSet<Bytes>,
) -> SqlResult<Option<Bytes>> {
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
            if let Some(key) = key.filter(|k| keys.contains(k)) {
                return Ok(Some(key));
            }
        }
    }
    Ok(None)
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
