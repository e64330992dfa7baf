//! INSERT, UPDATE and DELETE: finding the rows with DataFusion, writing them in the transaction.
//!
//! Each statement first *reads*: the rows to insert come from DataFusion's own INSERT plan (so
//! column lists, casts and defaults are DataFusion's), and the rows to update or delete from a
//! SELECT that Strata builds from the statement (over the table's keyed variant, which also
//! yields each row's storage key). Joins, subqueries and `UPDATE … FROM` / `DELETE … USING` are
//! therefore just SQL. Then it *writes*: each key is locked, checked and written into the
//! transaction's write set, and RETURNING is computed from the rows written.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{cast, cast_with_options, filter_record_batch, CastOptions};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{DmlStatement, LogicalPlan};
use datafusion::physical_plan::collect;
use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, Delete, Expr as SqlExpr, FromTable, Ident, ObjectName,
    ObjectNamePart, Query, SelectItem, SetExpr, Statement, TableFactor, Update,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::catalog::{table_def_key, CatalogView, TableDef};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::foreign_keys::{DeferredCheck, FkAction, ForeignKeyDef};
use crate::indexes::{Entry, IndexRows};
use crate::names::{normalize, table_name};
use crate::primary::Primary;
use crate::row_codec::RowEncoder;
use crate::table::{KEYED_SUFFIX, KEY_COLUMN};
use crate::txn::{Isolation, LockOutcome, Transaction};
use crate::txn_slot::TxnSlot;
use crate::upsert::{Arbiter, OnConflictDo};
use strata_core::key::{index_prefix, KeyEncoder};

/// Why a statement did not finish.
pub enum DmlError {
    Sql(SqlError),
    /// At READ COMMITTED, a row the statement read was changed by a transaction that committed
    /// meanwhile: the statement must run again on a new snapshot.
    Restart,
}

impl From<SqlError> for DmlError {
    fn from(e: SqlError) -> Self {
        DmlError::Sql(e)
    }
}

impl From<datafusion::arrow::error::ArrowError> for DmlError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        DmlError::Sql(e.into())
    }
}

impl From<datafusion::common::DataFusionError> for DmlError {
    fn from(e: datafusion::common::DataFusionError) -> Self {
        DmlError::Sql(e.into())
    }
}

pub type DmlResult<T> = Result<T, DmlError>;

/// The outcome of a DML statement: rows affected, and the RETURNING rows if it had a clause.
pub struct DmlOutcome {
    pub count: u64,
    pub returning: Option<Vec<RecordBatch>>,
}

/// What a DML statement needs from its session.
pub struct DmlContext<'a> {
    pub primary: &'a Arc<Primary>,
    pub ctx: &'a SessionContext,
    pub slot: &'a TxnSlot,
}

impl DmlContext<'_> {
    /// The table a name in the statement refers to.
    fn table(&self, name: &ObjectName) -> SqlResult<Arc<TableDef>> {
        let (schema, table) = table_name(name)?;
        self.resolved_table(&schema, &table)
    }

    /// The table of an already resolved (case-exact) name.
    fn resolved_table(&self, schema: &str, table: &str) -> SqlResult<Arc<TableDef>> {
        self.slot
            .with_catalog(&self.primary.catalog, |view| view.get(schema, table))?
            .ok_or_else(|| SqlError::undefined_table(table))
    }

    async fn run(&self, plan: &LogicalPlan) -> SqlResult<Vec<RecordBatch>> {
        let physical = self.ctx.state().create_physical_plan(plan).await?;
        Ok(collect(physical, self.ctx.task_ctx()).await?)
    }

    /// Runs `write` on the transaction, taken out of the slot while it locks and writes.
    async fn write<T>(
        &self,
        write: impl AsyncFnOnce(&mut Transaction) -> DmlResult<T>,
    ) -> DmlResult<T> {
        let mut txn = self
            .slot
            .take()
            .ok_or_else(|| SqlError::internal("no transaction for a write"))?;
        let result = write(&mut txn).await;
        self.slot.put(txn);
        result
    }
}

fn serialization_failure() -> SqlError {
    SqlError::new(
        sqlstate::SERIALIZATION_FAILURE,
        "could not serialize access due to concurrent update",
    )
}

/// What to do when a row changed after the statement's snapshot.
fn on_changed(txn: &Transaction) -> DmlError {
    match txn.isolation() {
        Isolation::ReadCommitted => DmlError::Restart,
        Isolation::RepeatableRead | Isolation::Serializable => {
            DmlError::Sql(serialization_failure())
        }
    }
}

/// Before a statement writes rows of `def`: locks the table's definition key shared until the
/// transaction ends, so DDL on the table waits for the transaction and the statement waits for
/// DDL in progress. A definition changed after the statement's snapshot means the statement was
/// planned against an old one: it restarts (READ COMMITTED) or fails (40001).
pub(crate) async fn lock_table_for_write(
    primary: &Primary,
    txn: &mut Transaction,
    def: &TableDef,
) -> DmlResult<()> {
    let outcome = txn.lock_shared(&table_def_key(def.id)).await?;
    let current = CatalogView::of(&primary.catalog, txn).table_by_id(def.id)?;
    // The definition the statement was planned with is usually the very one the catalog holds.
    let planned_with_current = current
        .as_deref()
        .is_some_and(|c| std::ptr::eq(c, def) || c == def);
    if outcome == LockOutcome::ChangedSinceSnapshot || !planned_with_current {
        return Err(on_changed(txn));
    }
    Ok(())
}

/// PostgreSQL's error for a row whose primary key is taken.
pub(crate) fn duplicate(def: &TableDef, enc: &RowEncoder, row: usize) -> SqlError {
    SqlError::new(
        sqlstate::UNIQUE_VIOLATION,
        format!(
            "duplicate key value violates unique constraint \"{}\"",
            def.primary_key_name()
        ),
    )
    .with_detail(format!("Key {} already exists.", enc.describe_key(row)))
    .with_table(&def.schema, &def.name)
    .with_constraint(def.primary_key_name())
}

/// Which of `keys` exist, as `txn` sees them: its own writes first, then committed data (read
/// at `lsn`).
pub(crate) async fn existing(
    primary: &Primary,
    txn: &Transaction,
    keys: &[Bytes],
    lsn: strata_core::Lsn,
) -> SqlResult<Vec<bool>> {
    let mut out: Vec<Option<bool>> = keys
        .iter()
        .map(|k| txn.write(k).map(|w| w.is_some()))
        .collect();
    let remote: Vec<Bytes> = keys
        .iter()
        .zip(&out)
        .filter(|(_, o)| o.is_none())
        .map(|(k, _)| k.clone())
        .collect();
    if !remote.is_empty() {
        let mut values = primary.read(remote, lsn).await?.into_iter();
        for o in out.iter_mut().filter(|o| o.is_none()) {
            *o = Some(values.next().flatten().is_some());
        }
    }
    Ok(out.into_iter().map(|o| o.unwrap_or(false)).collect())
}

// ---------------------------------------------------------------------------------------------
// INSERT

/// `INSERT`: `plan` is DataFusion's plan of the statement (with ON CONFLICT and RETURNING
/// removed), whose input yields the rows in the table's column order.
pub async fn insert(
    d: &DmlContext<'_>,
    plan: &LogicalPlan,
    on_conflict: &OnConflictDo,
    returning: Option<&[SelectItem]>,
    params: &[ScalarValue],
) -> DmlResult<DmlOutcome> {
    let LogicalPlan::Dml(DmlStatement {
        input, table_name, ..
    }) = plan
    else {
        return Err(SqlError::internal("INSERT did not plan as an insert").into());
    };
    let def = d.resolved_table(
        table_name
            .schema()
            .unwrap_or(crate::catalog::DEFAULT_SCHEMA),
        table_name.table(),
    )?;
    let batches = d.run(input).await?;
    insert_batches(d, &def, batches, on_conflict, returning, params).await
}

/// Inserts rows (batches of the table's columns, in order) into the transaction: the write half
/// of INSERT, and all of COPY FROM.
pub async fn insert_batches(
    d: &DmlContext<'_>,
    def: &Arc<TableDef>,
    batches: Vec<RecordBatch>,
    on_conflict: &OnConflictDo,
    returning: Option<&[SelectItem]>,
    params: &[ScalarValue],
) -> DmlResult<DmlOutcome> {
    let def = def.clone();
    let upsert = match on_conflict {
        OnConflictDo::Update(u) => Some(u.as_ref()),
        _ => None,
    };
    // Rows that conflict on the arbiter of an ON CONFLICT DO UPDATE: (batch, row).
    let mut to_update: Vec<(usize, usize)> = Vec::new();
    let batches = batches
        .into_iter()
        .map(|b| crate::generated::compute_batch(d.ctx, &def, b))
        .collect::<SqlResult<Vec<_>>>()?;
    for batch in &batches {
        crate::checks::check_rows(d.ctx, &def, batch.columns())?;
    }
    let has_pk = !def.primary_key.is_empty();
    let primary = d.primary;
    let written = d
        .write(async |txn| {
            lock_table_for_write(primary, txn, &def).await?;
            let mut written = Vec::new();
            let mut seen: datafusion::common::HashSet<Bytes> = datafusion::common::HashSet::new();
            for (batch_index, batch) in batches.iter().enumerate() {
                let enc = RowEncoder::try_new(&def, batch.columns())?;
                let rows = batch.num_rows();
                let mut keys = Vec::with_capacity(rows);
                for row in 0..rows {
                    enc.check_constraints(row)?;
                    keys.push(enc.key(row, || primary.txns.next_row_id()));
                }
                let mut keep = vec![true; rows];
                if has_pk {
                    // Lock every key; a key committed by someone else meanwhile is read at the
                    // latest LSN (it is locked, so that is stable) to tell whether it exists.
                    let mut changed = Vec::with_capacity(rows);
                    for key in &keys {
                        changed.push(txn.lock(key).await? == LockOutcome::ChangedSinceSnapshot);
                    }
                    let at_snapshot: Vec<Bytes> = keys
                        .iter()
                        .zip(&changed)
                        .filter(|(_, c)| !**c)
                        .map(|(k, _)| k.clone())
                        .collect();
                    let at_latest: Vec<Bytes> = keys
                        .iter()
                        .zip(&changed)
                        .filter(|(_, c)| **c)
                        .map(|(k, _)| k.clone())
                        .collect();
                    let mut exists_snapshot = existing(primary, txn, &at_snapshot, txn.snapshot())
                        .await?
                        .into_iter();
                    let latest = primary.txns.last_commit_lsn();
                    let mut exists_latest = existing(primary, txn, &at_latest, latest)
                        .await?
                        .into_iter();
                    for row in 0..rows {
                        let exists = if changed[row] {
                            exists_latest.next()
                        } else {
                            exists_snapshot.next()
                        };
                        let duplicate_here = !seen.insert(keys[row].clone());
                        if exists.unwrap_or(false) || duplicate_here {
                            match resolve(on_conflict, Arbiter::PrimaryKey, duplicate_here)? {
                                Resolution::Skip => keep[row] = false,
                                Resolution::Update => {
                                    keep[row] = false;
                                    to_update.push((batch_index, row));
                                }
                                Resolution::Fail => return Err(duplicate(&def, &enc, row).into()),
                            }
                        }
                    }
                }
                let index_rows = IndexRows::new(d.ctx, &def, &enc, batch.columns())?;
                let entries: Vec<Vec<Entry>> = if def.indexes.is_empty() {
                    Vec::new()
                } else {
                    keys.iter()
                        .enumerate()
                        .map(|(row, key)| index_rows.entries(row, key))
                        .collect()
                };
                if !entries.is_empty() {
                    let conflicts =
                        crate::indexes::check_new_rows(primary, txn, &entries, &keep).await?;
                    for c in conflicts {
                        let key = Arbiter::Index(def.indexes[c.index].id);
                        match resolve(on_conflict, key, c.within_statement)? {
                            Resolution::Skip => keep[c.row] = false,
                            Resolution::Update => {
                                keep[c.row] = false;
                                to_update.push((batch_index, c.row));
                            }
                            Resolution::Fail => {
                                return Err(index_rows.duplicate(c.index, c.row).into())
                            }
                        }
                    }
                }
                for (row, key) in keys.into_iter().enumerate() {
                    if keep[row] {
                        for entry in entries.get(row).into_iter().flatten() {
                            if let Some(entry_key) = &entry.key {
                                txn.put(entry_key.clone(), key.clone());
                            }
                        }
                        txn.put(key, enc.value(row));
                    }
                }
                let batch = if keep.iter().all(|k| *k) {
                    batch.clone()
                } else {
                    filter_record_batch(batch, &BooleanArray::from(keep))?
                };
                // After the rows are in the transaction, so a row may reference another row of
                // the same statement.
                crate::foreign_keys::check_references(primary, txn, &def, batch.columns()).await?;
                written.push(batch);
            }
            Ok(written)
        })
        .await?;
    let mut count = written.iter().map(|b| b.num_rows() as u64).sum();
    let mut returning = match returning {
        Some(items) => Some(evaluate_returning(d, &def, written, items, params).await?),
        None => None,
    };
    if let Some(upsert) = upsert {
        for (batch, row) in to_update {
            let update = upsert.update_for(&def, batches[batch].columns(), row)?;
            let outcome = Box::pin(run_update(d, &update, params)).await?;
            count += outcome.count;
            if let (Some(all), Some(rows)) = (returning.as_mut(), outcome.returning) {
                all.extend(rows);
            }
        }
    }
    Ok(DmlOutcome { count, returning })
}

/// What becomes of a proposed row that conflicts on a unique key.
enum Resolution {
    /// Not inserted (ON CONFLICT DO NOTHING).
    Skip,
    /// Not inserted; the row it conflicts with is updated (ON CONFLICT DO UPDATE).
    Update,
    /// 23505.
    Fail,
}

/// Resolves a conflict on `key`, the primary key or a unique index; `within_statement` when the
/// value was taken by an earlier row of the same statement.
fn resolve(
    on_conflict: &OnConflictDo,
    key: Arbiter,
    within_statement: bool,
) -> SqlResult<Resolution> {
    Ok(match on_conflict {
        OnConflictDo::Nothing { arbiter: None } => Resolution::Skip,
        OnConflictDo::Nothing { arbiter: Some(a) } if *a == key => Resolution::Skip,
        // PostgreSQL's error for two proposed rows of one DO UPDATE with the same key.
        OnConflictDo::Update(u) if u.arbiter == key && within_statement => {
            return Err(SqlError::new(
                sqlstate::CARDINALITY_VIOLATION,
                "ON CONFLICT DO UPDATE command cannot affect row a second time",
            )
            .with_hint(
                "Ensure that no rows proposed for insertion within the same command have duplicate constrained values.",
            ))
        }
        OnConflictDo::Update(u) if u.arbiter == key => Resolution::Update,
        _ => Resolution::Fail,
    })
}

/// Plans and runs an UPDATE Strata built (the update of an ON CONFLICT DO UPDATE).
async fn run_update(
    d: &DmlContext<'_>,
    statement: &Statement,
    params: &[ScalarValue],
) -> DmlResult<DmlOutcome> {
    let Statement::Update(update) = statement else {
        return Err(SqlError::internal("not an UPDATE").into());
    };
    let finder = update_finder(d, update)?;
    let plan = d
        .ctx
        .state()
        .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
            finder.query.clone(),
        )))
        .await?;
    let plan = if plan.get_parameter_types()?.is_empty() {
        plan
    } else {
        plan.with_param_values(params.to_vec())?
    };
    update_or_delete(d, &finder, &plan).await
}

/// RETURNING over rows written: the rows become a temporary table named like the target table,
/// and the clause is evaluated over it.
async fn evaluate_returning(
    d: &DmlContext<'_>,
    def: &TableDef,
    rows: Vec<RecordBatch>,
    items: &[SelectItem],
    params: &[ScalarValue],
) -> SqlResult<Vec<RecordBatch>> {
    let schema = def.arrow_schema();
    let rows: Vec<RecordBatch> = rows
        .into_iter()
        .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
        .collect::<Result<_, _>>()?;
    let table = MemTable::try_new(schema, vec![rows])?;
    // A context of its own: the session's catalog holds only Strata tables.
    let mut config = d.ctx.copied_config();
    config.options_mut().catalog.default_catalog = "datafusion".into();
    config
        .options_mut()
        .catalog
        .create_default_catalog_and_schema = true;
    let ctx = SessionContext::new_with_config(config);
    let temp = format!("returning_{}", def.id);
    ctx.register_table(temp.as_str(), Arc::new(table))?;
    let list: Vec<String> = items.iter().map(|i| i.to_string()).collect();
    let sql = format!(
        "SELECT {} FROM {temp} AS \"{}\"",
        list.join(", "),
        def.name.replace('"', "\"\"")
    );
    let df = ctx.sql(&sql).await?;
    let df = if params.is_empty() {
        df
    } else {
        df.with_param_values(params.to_vec())?
    };
    Ok(df.collect().await?)
}

// ---------------------------------------------------------------------------------------------
// UPDATE and DELETE

/// The SELECT that finds the rows of an UPDATE or DELETE. Its columns are: the storage key, the
/// table's columns (old values), one per SET assignment (new values), then the RETURNING items.
pub struct RowFinder {
    pub query: Statement,
    pub def: Arc<TableDef>,
    /// Table column position of each assignment, in SELECT order.
    pub assigned: Vec<usize>,
    pub returning: usize,
    /// Names of the RETURNING columns, as the client sees them.
    pub returning_names: Vec<String>,
    /// Parameter types known from `SET col = $n`.
    pub param_hints: HashMap<usize, datafusion::arrow::datatypes::Field>,
}

/// Builds the row-finding SELECT for an UPDATE.
pub fn update_finder(d: &DmlContext<'_>, update: &Update) -> SqlResult<RowFinder> {
    let (relation, alias) = target(&update.table.relation)?;
    if !update.table.joins.is_empty() {
        return Err(SqlError::unsupported("JOIN in the target of UPDATE"));
    }
    let def = d.table(&relation)?;
    let mut assigned = Vec::new();
    let mut new_values = Vec::new();
    let mut substitutions: HashMap<String, String> = HashMap::new();
    let mut param_hints = HashMap::new();
    for Assignment { target, value } in &update.assignments {
        let AssignmentTarget::ColumnName(name) = target else {
            return Err(SqlError::unsupported("assigning to a tuple of columns"));
        };
        let column = name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(normalize)
            .unwrap_or_default();
        let Some(position) = def.columns.iter().position(|c| c.name == column) else {
            return Err(SqlError::new(
                sqlstate::UNDEFINED_COLUMN,
                format!(
                    "column \"{column}\" of relation \"{}\" does not exist",
                    def.name
                ),
            ));
        };
        if assigned.contains(&position) {
            return Err(SqlError::syntax(format!(
                "multiple assignments to same column \"{column}\""
            )));
        }
        // A generated column may only be set to DEFAULT, which computes it again (as every
        // update of the row does).
        let value = match def.columns[position].generated.is_some() {
            true if crate::insert_defaults::is_default_keyword(value) => SqlExpr::Identifier(
                datafusion::sql::sqlparser::ast::Ident::with_quote('"', column.clone()),
            ),
            true => return Err(crate::generated::not_default(&def.columns[position], true)),
            false => value.clone(),
        };
        if let SqlExpr::Value(v) = &value {
            if let datafusion::sql::sqlparser::ast::Value::Placeholder(p) = &v.value {
                if let Some(n) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
                    param_hints.insert(n, def.columns[position].ty.param_field());
                }
            }
        }
        assigned.push(position);
        new_values.push(format!("({value})"));
        substitutions.insert(column, format!("({value})"));
    }
    // RETURNING sees generated columns as computed from the new values.
    let mut computed = HashMap::new();
    for column in def.columns.iter().filter(|c| c.generated.is_some()) {
        let expr = crate::row_expr::parse_expression(column.generated.as_deref().unwrap_or(""))?;
        let value = substitute(&expr, &substitutions)?;
        let ty = column.ty.display_name();
        computed.insert(column.name.clone(), format!("CAST(({value}) AS {ty})"));
    }
    substitutions.extend(computed);
    let returning = returning_items(update.returning.as_deref(), &def, &alias, &substitutions)?;
    let from = match &update.from {
        Some(datafusion::sql::sqlparser::ast::UpdateTableFromKind::BeforeSet(tables))
        | Some(datafusion::sql::sqlparser::ast::UpdateTableFromKind::AfterSet(tables)) => {
            tables.iter().map(|t| t.to_string()).collect::<Vec<_>>()
        }
        None => Vec::new(),
    };
    let mut items = old_columns(&def, &alias);
    items.extend(new_values);
    let (returning, returning_names): (Vec<String>, Vec<String>) = returning.into_iter().unzip();
    items.extend(returning.iter().cloned());
    let query = finder_query(&def, &alias, &items, &from, update.selection.as_ref())?;
    Ok(RowFinder {
        query,
        def,
        assigned,
        returning: returning.len(),
        returning_names,
        param_hints,
    })
}

/// Builds the row-finding SELECT for a DELETE (its columns: key, old columns, RETURNING items).
pub fn delete_finder(d: &DmlContext<'_>, delete: &Delete) -> SqlResult<RowFinder> {
    let tables = match &delete.from {
        FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
    };
    let [target_table] = tables.as_slice() else {
        return Err(SqlError::unsupported("DELETE from several tables"));
    };
    if !target_table.joins.is_empty() || !delete.tables.is_empty() {
        return Err(SqlError::unsupported("JOIN in the target of DELETE"));
    }
    let (relation, alias) = target(&target_table.relation)?;
    let def = d.table(&relation)?;
    let returning = returning_items(delete.returning.as_deref(), &def, &alias, &HashMap::new())?;
    let using: Vec<String> = delete
        .using
        .iter()
        .flatten()
        .map(|t| t.to_string())
        .collect();
    let mut items = old_columns(&def, &alias);
    let (returning, returning_names): (Vec<String>, Vec<String>) = returning.into_iter().unzip();
    items.extend(returning.iter().cloned());
    let query = finder_query(&def, &alias, &items, &using, delete.selection.as_ref())?;
    Ok(RowFinder {
        query,
        def,
        assigned: Vec::new(),
        returning: returning.len(),
        returning_names,
        param_hints: HashMap::new(),
    })
}

fn target(relation: &TableFactor) -> SqlResult<(ObjectName, String)> {
    let TableFactor::Table { name, alias, .. } = relation else {
        return Err(SqlError::unsupported(
            "this kind of UPDATE or DELETE target",
        ));
    };
    let (_, table) = table_name(name)?;
    let alias = alias.as_ref().map(|a| normalize(&a.name)).unwrap_or(table);
    Ok((name.clone(), alias))
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn old_columns(def: &TableDef, alias: &str) -> Vec<String> {
    def.columns
        .iter()
        .map(|c| format!("{}.{}", quote(alias), quote(&c.name)))
        .collect()
}

/// RETURNING items as `(expression, column name)`; with `substitutions`, references to assigned
/// columns are replaced by their new values (RETURNING sees the row as written).
fn returning_items(
    items: Option<&[SelectItem]>,
    def: &TableDef,
    alias: &str,
    substitutions: &HashMap<String, String>,
) -> SqlResult<Vec<(String, String)>> {
    let Some(items) = items else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                for c in &def.columns {
                    let value = substitutions
                        .get(&c.name)
                        .cloned()
                        .unwrap_or_else(|| format!("{}.{}", quote(alias), quote(&c.name)));
                    out.push((value, c.name.clone()));
                }
            }
            SelectItem::UnnamedExpr(e) => {
                let name = crate::column_names::figure_name(e).unwrap_or_else(|| "?column?".into());
                out.push((substitute(e, substitutions)?, name));
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                out.push((substitute(expr, substitutions)?, normalize(alias)))
            }
            other => return Err(SqlError::unsupported(format!("RETURNING {other}"))),
        }
    }
    Ok(out)
}

/// Replaces column references by the expressions that give their new values.
fn substitute(expr: &SqlExpr, substitutions: &HashMap<String, String>) -> SqlResult<String> {
    if substitutions.is_empty() {
        return Ok(expr.to_string());
    }
    let mut expr = expr.clone();
    let parsed: HashMap<&String, SqlExpr> = substitutions
        .iter()
        .map(|(k, v)| {
            Parser::new(&PostgreSqlDialect {})
                .try_with_sql(v)
                .and_then(|mut p| p.parse_expr())
                .map(|e| (k, e))
        })
        .collect::<Result<_, _>>()
        .map_err(|e| SqlError::syntax(e.to_string()))?;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(&mut expr, |e| {
        let name = match e {
            SqlExpr::Identifier(id) => Some(normalize(id)),
            SqlExpr::CompoundIdentifier(parts) => parts.last().map(normalize),
            _ => None,
        };
        if let Some(new) = name.and_then(|n| parsed.get(&n)) {
            *e = new.clone();
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    Ok(expr.to_string())
}

/// How `SELECT … FOR UPDATE / FOR SHARE` locks the rows it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLock {
    /// `FOR UPDATE`, `FOR NO KEY UPDATE`: alone, as a writer would.
    Update,
    /// `FOR SHARE`, `FOR KEY SHARE`: together with other sharers; writers wait.
    Share,
}

/// What to do about a row another transaction holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Wait for it.
    Block,
    /// `NOWAIT`: fail with 55P03.
    Fail,
    /// `SKIP LOCKED`: leave the row out.
    Skip,
}

/// How a `SELECT … FOR UPDATE | FOR SHARE` locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowLocking {
    pub mode: RowLock,
    pub wait: LockWait,
    /// With SKIP LOCKED, the query's literal `OFFSET` and `LIMIT`, applied to the rows locked
    /// (the query runs without them, so skipped rows are replaced by later ones).
    pub offset: usize,
    pub limit: Option<usize>,
}

/// `SELECT … FOR UPDATE | FOR SHARE` over one table, rewritten to also return each row's storage
/// key as its first column (over the table's keyed variant), so the rows it finds can be locked.
pub fn locking_query(d: &DmlContext<'_>, query: &Query) -> SqlResult<(Statement, RowLocking)> {
    use datafusion::sql::sqlparser::ast::{LimitClause, LockType, NonBlock};
    let unsupported = |what: &str| SqlError::unsupported(format!("SELECT … FOR UPDATE {what}"));
    let mut locking = RowLocking {
        mode: RowLock::Share,
        wait: LockWait::Block,
        offset: 0,
        limit: None,
    };
    for lock in &query.locks {
        match &lock.nonblock {
            Some(NonBlock::Nowait) => locking.wait = LockWait::Fail,
            Some(NonBlock::SkipLocked) => locking.wait = LockWait::Skip,
            None => {}
        }
        if lock.lock_type == LockType::Update {
            locking.mode = RowLock::Update;
        }
    }
    let mut query = query.clone();
    query.locks.clear();
    if locking.wait == LockWait::Skip {
        let literal = |e: &SqlExpr| match e {
            SqlExpr::Value(v) => match &v.value {
                datafusion::sql::sqlparser::ast::Value::Number(n, _) => n.parse::<usize>().ok(),
                _ => None,
            },
            _ => None,
        };
        if let Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) = &query.limit_clause
        {
            let limit_value = limit.as_ref().map(literal);
            let offset_value = offset.as_ref().map(|o| literal(&o.value));
            if limit_by.is_empty()
                && limit_value.is_none_or(|v| v.is_some())
                && offset_value.is_none_or(|v| v.is_some())
            {
                locking.limit = limit_value.flatten();
                locking.offset = offset_value.flatten().unwrap_or(0);
                query.limit_clause = None;
            } else {
                return Err(unsupported("SKIP LOCKED with a LIMIT that is not a number"));
            }
        }
    }
    let SetExpr::Select(select) = query.body.as_mut() else {
        return Err(unsupported("with a set operation"));
    };
    if select.distinct.is_some() {
        return Err(unsupported("with DISTINCT"));
    }
    if !matches!(&select.group_by, datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(e, _) if e.is_empty())
    {
        return Err(unsupported("with GROUP BY"));
    }
    let [from] = select.from.as_mut_slice() else {
        return Err(unsupported("over several tables"));
    };
    if !from.joins.is_empty() {
        return Err(unsupported("over a join"));
    }
    let TableFactor::Table { name, alias, .. } = &mut from.relation else {
        return Err(unsupported("over a subquery"));
    };
    let def = d.table(name)?;
    let alias_name = alias
        .as_ref()
        .map(|a| normalize(&a.name))
        .unwrap_or_else(|| def.name.clone());
    if alias.is_none() {
        *alias = Some(datafusion::sql::sqlparser::ast::TableAlias {
            explicit: true,
            name: Ident::with_quote('"', def.name.as_str()),
            columns: Vec::new(),
            at: None,
        });
    }
    *name = ObjectName(vec![
        ObjectNamePart::Identifier(Ident::with_quote('"', def.schema.as_str())),
        ObjectNamePart::Identifier(Ident::with_quote(
            '"',
            format!("{}{KEYED_SUFFIX}", def.name),
        )),
    ]);
    // The keyed variant has the key column too, which `*` must not return (it would also clash
    // with the key column added below): a wildcard becomes the table's own columns.
    select.projection = std::mem::take(&mut select.projection)
        .into_iter()
        .flat_map(|item| match item {
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => def
                .columns
                .iter()
                .map(|c| {
                    SelectItem::UnnamedExpr(SqlExpr::CompoundIdentifier(vec![
                        Ident::with_quote('"', alias_name.as_str()),
                        Ident::with_quote('"', c.name.as_str()),
                    ]))
                })
                .collect(),
            item => vec![item],
        })
        .collect();
    select.projection.insert(
        0,
        SelectItem::UnnamedExpr(SqlExpr::CompoundIdentifier(vec![
            Ident::with_quote('"', alias_name),
            Ident::with_quote('"', KEY_COLUMN),
        ])),
    );
    Ok((Statement::Query(Box::new(query)), locking))
}

/// The SELECT that reads every row of a table with its storage key: the key, then the columns.
pub fn all_rows_query(def: &TableDef) -> SqlResult<Statement> {
    finder_query(def, &def.name, &old_columns(def, &def.name), &[], None)
}

/// `SELECT <alias>.<key>, <items> FROM <keyed table> AS <alias>, <from…> WHERE <selection>`,
/// with the key column and keyed table named by position after parsing (SQL text cannot name
/// them).
fn finder_query(
    def: &TableDef,
    alias: &str,
    items: &[String],
    from: &[String],
    selection: Option<&SqlExpr>,
) -> SqlResult<Statement> {
    // Every item gets its own alias: DataFusion needs unique output names, and an expression
    // aliased to its own column name would lose the alias.
    let mut sql = format!("SELECT {}.strata_key_placeholder", quote(alias));
    for (i, item) in items.iter().enumerate() {
        sql.push_str(&format!(", {item} AS strata_item_{i}"));
    }
    sql.push_str(&format!(
        " FROM strata_table_placeholder AS {}",
        quote(alias)
    ));
    for f in from {
        sql.push_str(", ");
        sql.push_str(f);
    }
    if let Some(selection) = selection {
        sql.push_str(&format!(" WHERE {selection}"));
    }
    let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, &sql)
        .map_err(|e| SqlError::syntax(e.to_string()))?
        .remove(0);
    let Statement::Query(query) = &mut statement else {
        unreachable!("a SELECT parses as a query")
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        unreachable!("a plain SELECT")
    };
    if let Some(SelectItem::UnnamedExpr(SqlExpr::CompoundIdentifier(parts))) =
        select.projection.first_mut()
    {
        if let Some(last) = parts.last_mut() {
            *last = Ident::with_quote('"', KEY_COLUMN);
        }
    }
    if let TableFactor::Table { name, .. } = &mut select.from[0].relation {
        *name = ObjectName(vec![
            ObjectNamePart::Identifier(Ident::with_quote('"', def.schema.as_str())),
            ObjectNamePart::Identifier(Ident::with_quote(
                '"',
                format!("{}{KEYED_SUFFIX}", def.name),
            )),
        ]);
    }
    Ok(statement)
}

/// Runs an UPDATE (`finder.assigned` non-empty) or a DELETE from its planned row-finding SELECT.
pub async fn update_or_delete(
    d: &DmlContext<'_>,
    finder: &RowFinder,
    plan: &LogicalPlan,
) -> DmlResult<DmlOutcome> {
    let batches = d.run(plan).await?;
    apply_changes(d, finder, batches).await
}

/// Updates or deletes the rows `batches` found (each: storage key, old columns, new values of
/// the assigned columns, RETURNING items).
async fn apply_changes(
    d: &DmlContext<'_>,
    finder: &RowFinder,
    batches: Vec<RecordBatch>,
) -> DmlResult<DmlOutcome> {
    let def = finder.def.clone();
    let n = def.columns.len();
    let is_update = !finder.assigned.is_empty();
    let primary = d.primary;
    let rekeyed = check_not_referenced(d, &def, &finder.assigned, &batches).await?;
    let (count, returning) = d
        .write(async |txn| {
            lock_table_for_write(primary, txn, &def).await?;
            let mut count = 0u64;
            let mut returning = Vec::new();
            let mut done: HashSet<Bytes> = HashSet::new();
            for batch in &batches {
                let keys = batch.column(0).as_binary::<i32>();
                let rows = batch.num_rows();
                // Each target row once, even if a join found it several times.
                let mut keep = vec![true; rows];
                for (row, k) in keep.iter_mut().enumerate() {
                    *k = done.insert(Bytes::copy_from_slice(keys.value(row)));
                }
                let new_rows = if is_update {
                    let mut columns = new_row_values(batch, &def, &finder.assigned)?;
                    crate::generated::compute(d.ctx, &def, &mut columns)?;
                    Some(columns)
                } else {
                    None
                };
                if let Some(columns) = &new_rows {
                    crate::checks::check_rows(d.ctx, &def, columns)?;
                }
                let encoder = match &new_rows {
                    Some(columns) => Some(RowEncoder::try_new(&def, columns)?),
                    None => None,
                };
                let old_columns = &batch.columns()[1..=n];
                let old_encoder = if def.indexes.is_empty() {
                    None
                } else {
                    Some(RowEncoder::try_new(&def, old_columns)?)
                };
                let old_index_rows = match &old_encoder {
                    Some(enc) => Some(IndexRows::new(d.ctx, &def, enc, old_columns)?),
                    None => None,
                };
                let new_index_rows = match (&old_encoder, &encoder, &new_rows) {
                    (Some(_), Some(enc), Some(columns)) => {
                        Some(IndexRows::new(d.ctx, &def, enc, columns)?)
                    }
                    _ => None,
                };
                for (row, _) in keep.iter().enumerate().filter(|(_, k)| **k) {
                    let old_key = Bytes::copy_from_slice(keys.value(row));
                    if txn.lock(&old_key).await? == LockOutcome::ChangedSinceSnapshot {
                        return Err(on_changed(txn));
                    }
                    let old_entries = old_index_rows
                        .as_ref()
                        .map(|r| r.entries(row, &old_key))
                        .unwrap_or_default();
                    match &encoder {
                        None => {
                            for key in old_entries.into_iter().filter_map(|e| e.key) {
                                txn.delete(key);
                            }
                            txn.delete(old_key)
                        }
                        Some(enc) => {
                            enc.check_constraints(row)?;
                            // A row without a primary key keeps its hidden row id.
                            let new_key = if def.primary_key.is_empty() {
                                old_key.clone()
                            } else {
                                enc.key(row, || 0)
                            };
                            if new_key != old_key {
                                if txn.lock(&new_key).await? == LockOutcome::ChangedSinceSnapshot {
                                    return Err(on_changed(txn));
                                }
                                let exists = existing(
                                    primary,
                                    txn,
                                    std::slice::from_ref(&new_key),
                                    txn.snapshot(),
                                )
                                .await?;
                                if exists[0] || done.contains(&new_key) {
                                    return Err(duplicate(&def, enc, row).into());
                                }
                                txn.delete(old_key);
                            }
                            if let Some(index_rows) = &new_index_rows {
                                update_entries(
                                    primary,
                                    txn,
                                    index_rows,
                                    row,
                                    old_entries,
                                    &new_key,
                                )
                                .await?;
                            }
                            txn.put(new_key, enc.value(row));
                        }
                    }
                    count += 1;
                }
                if let Some(columns) = &new_rows {
                    if !def.foreign_keys.is_empty() {
                        let kept = filter_record_batch(
                            &RecordBatch::try_new(def.arrow_schema(), columns.clone())?,
                            &BooleanArray::from(keep.clone()),
                        )?;
                        crate::foreign_keys::check_references(primary, txn, &def, kept.columns())
                            .await?;
                    }
                }
                if finder.returning > 0 {
                    let start = 1 + n + finder.assigned.len();
                    let columns: Vec<ArrayRef> =
                        batch.columns()[start..start + finder.returning].to_vec();
                    let fields: Vec<_> = batch.schema().fields()[start..start + finder.returning]
                        .iter()
                        .map(|f| f.as_ref().clone())
                        .collect();
                    let out = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
                    returning.push(filter_record_batch(&out, &BooleanArray::from(keep))?);
                }
            }
            Ok((count, returning))
        })
        .await?;
    // ON UPDATE CASCADE / SET NULL: once the rows have their new keys, which the referencing
    // rows then reference.
    for (child, fk, keys) in rekeyed {
        let defaults = match fk.on_update {
            FkAction::SetDefault => referencing_defaults(d, &child, &fk).await?,
            _ => Vec::new(),
        };
        let action = match fk.on_update {
            FkAction::SetNull => ChildAction::SetNull,
            FkAction::SetDefault => ChildAction::SetDefault(&defaults),
            _ => ChildAction::SetKey(&keys),
        };
        Box::pin(act_on_referencing_rows(d, &def, &child, &fk, &keys, action)).await?;
    }
    Ok(DmlOutcome {
        count,
        returning: (finder.returning > 0).then_some(returning),
    })
}

/// Rows of a table that reference rows being given new keys, by ON UPDATE CASCADE or SET NULL:
/// the table, the foreign key, and each old key with the new key's values.
type Rekeyed = (
    Arc<TableDef>,
    ForeignKeyDef,
    HashMap<Bytes, Vec<ScalarValue>>,
);

/// What happens to the rows that reference a deleted or re-keyed row.
#[derive(Clone, Copy)]
enum ChildAction<'a> {
    Delete,
    SetNull,
    /// The referencing columns take these values (their defaults, in the order of the
    /// foreign key's columns).
    SetDefault(&'a [ScalarValue]),
    /// The referencing columns take the new key's values (old key → values, in the order of
    /// the referenced key's columns).
    SetKey(&'a HashMap<Bytes, Vec<ScalarValue>>),
}

/// Moves an updated row's index entries: each entry whose key changed is deleted and written
/// anew, after a unique index has checked the new values (when they changed).
async fn update_entries(
    primary: &Primary,
    txn: &mut Transaction,
    index_rows: &IndexRows<'_>,
    row: usize,
    old_entries: Vec<Entry>,
    new_key: &Bytes,
) -> DmlResult<()> {
    let new_entries = index_rows.entries(row, new_key);
    for (i, (old, new)) in old_entries.into_iter().zip(new_entries).enumerate() {
        if old.key == new.key {
            continue;
        }
        if let Some(key) = old.key {
            txn.delete(key);
        }
        if let Some(probe) = new.probe.filter(|p| old.probe.as_ref() != Some(p)) {
            let taken =
                crate::indexes::probes_taken(primary, txn, std::slice::from_ref(&probe)).await?;
            if taken[0] {
                return Err(index_rows.duplicate(i, row).into());
            }
        }
        if let Some(key) = new.key {
            txn.put(key, new_key.clone());
        }
    }
    Ok(())
}

/// Before rows of `def` are deleted or get a new primary key (`assigned` columns are updated;
/// none: DELETE): fails with 23503 if a row of a referencing table still references one of them,
/// and deletes (or sets NULL in) the referencing rows of ON DELETE CASCADE (SET NULL). Returns
/// the referencing rows that ON UPDATE CASCADE or SET NULL change once the new keys are written.
async fn check_not_referenced(
    d: &DmlContext<'_>,
    def: &Arc<TableDef>,
    assigned: &[usize],
    batches: &[RecordBatch],
) -> DmlResult<Vec<Rekeyed>> {
    let pk = def.primary_key_indexes();
    let is_update = !assigned.is_empty();
    // An UPDATE that changes no column of a key another table may reference (the primary key,
    // a unique index) needs no look at the catalog.
    let in_a_key = |c: &usize| {
        pk.contains(c)
            || def
                .indexes
                .iter()
                .any(|i| i.unique && i.is_plain() && i.column_positions(def).contains(c))
    };
    if is_update && !assigned.iter().any(in_a_key) {
        return Ok(Vec::new());
    }
    let (by_unique, referencing): (Vec<_>, Vec<_>) = d
        .slot
        .with_catalog(&d.primary.catalog, |view| {
            crate::foreign_keys::referencing(view, def)
        })
        .into_iter()
        .partition(|(_, fk)| fk.references_unique_index());
    for (child, fk) in by_unique {
        let removed = removed_unique_keys(def, &fk, assigned, batches)?;
        if !removed.is_empty() {
            let action = if is_update {
                fk.on_update
            } else {
                fk.on_delete
            };
            check_or_defer_not_referenced(d, def, &child, &fk, action, removed).await?;
        }
    }
    if is_update && !assigned.iter().any(|c| pk.contains(c)) {
        return Ok(Vec::new());
    }
    if referencing.is_empty() {
        return Ok(Vec::new());
    }
    let n = def.columns.len();
    let mut removed: HashMap<Bytes, String> = HashMap::new();
    let mut new_keys: HashMap<Bytes, Vec<ScalarValue>> = HashMap::new();
    for batch in batches {
        let keys = batch.column(0).as_binary::<i32>();
        let old = RowEncoder::try_new(def, &batch.columns()[1..=n])?;
        let new_columns = if is_update {
            Some(new_row_values(batch, def, assigned)?)
        } else {
            None
        };
        let new = match &new_columns {
            Some(columns) => Some(RowEncoder::try_new(def, columns)?),
            None => None,
        };
        for row in 0..batch.num_rows() {
            let key = Bytes::copy_from_slice(keys.value(row));
            if new.as_ref().is_some_and(|enc| enc.key(row, || 0) == key) {
                continue;
            }
            if let Some(columns) = &new_columns {
                let values = pk
                    .iter()
                    .map(|&c| ScalarValue::try_from_array(&columns[c], row))
                    .collect::<datafusion::common::Result<Vec<_>>>()?;
                new_keys.insert(key.clone(), values);
            }
            removed.insert(key, old.describe_key(row));
        }
    }
    if removed.is_empty() {
        return Ok(Vec::new());
    }
    let keys: HashSet<Bytes> = removed.keys().cloned().collect();
    let mut rekeyed = Vec::new();
    for (child, fk) in referencing {
        if is_update && fk.on_update.acts() {
            rekeyed.push((child, fk, new_keys.clone()));
            continue;
        }
        if !is_update && fk.on_delete.acts() {
            let defaults = match fk.on_delete {
                FkAction::SetDefault => referencing_defaults(d, &child, &fk).await?,
                _ => Vec::new(),
            };
            let action = match fk.on_delete {
                FkAction::SetNull => ChildAction::SetNull,
                FkAction::SetDefault => ChildAction::SetDefault(&defaults),
                _ => ChildAction::Delete,
            };
            let removed: HashMap<Bytes, Vec<ScalarValue>> =
                keys.iter().map(|k| (k.clone(), Vec::new())).collect();
            // Boxed: this recurses (through the children's own referencing rows).
            Box::pin(act_on_referencing_rows(
                d, def, &child, &fk, &removed, action,
            ))
            .await?;
            continue;
        }
        let action = if is_update {
            fk.on_update
        } else {
            fk.on_delete
        };
        check_or_defer_not_referenced(d, def, &child, &fk, action, removed.clone()).await?;
    }
    Ok(rekeyed)
}

/// NO ACTION or RESTRICT (`action`): fails with 23503 if a row of `child` references one of
/// `removed` (keys of `parent` rows as `fk` references them); NO ACTION leaves that check for
/// the end of the transaction when `fk` is deferred.
async fn check_or_defer_not_referenced(
    d: &DmlContext<'_>,
    parent: &TableDef,
    child: &Arc<TableDef>,
    fk: &ForeignKeyDef,
    action: FkAction,
    removed: HashMap<Bytes, String>,
) -> SqlResult<()> {
    if action != FkAction::NoAction || !d.slot.with(|t| t.is_deferred(fk))? {
        return referencing_rows_absent(d, parent, child, fk, &removed).await;
    }
    let check = DeferredCheck::NotReferenced {
        parent: parent.id,
        child: child.id,
        fk: fk.name.clone(),
        keys: removed,
    };
    d.slot.with(|t| t.defer(check))?;
    Ok(())
}

/// For a foreign key referencing a unique index of `def`: the probes (with the values
/// described) of the rows being deleted, or of those whose indexed values an UPDATE of
/// `assigned` changes. Rows with a NULL among the values are referenced by nothing.
fn removed_unique_keys(
    def: &TableDef,
    fk: &ForeignKeyDef,
    assigned: &[usize],
    batches: &[RecordBatch],
) -> SqlResult<HashMap<Bytes, String>> {
    let index = fk
        .referenced_index(def)?
        .expect("a foreign key referencing a unique index");
    let positions = index.column_positions(def);
    let is_update = !assigned.is_empty();
    let mut removed = HashMap::new();
    if is_update && !assigned.iter().any(|c| positions.contains(c)) {
        return Ok(removed);
    }
    let probe = |enc: &RowEncoder, row: usize| {
        let mut key = KeyEncoder::with_prefix(index_prefix(def.id, index.id));
        let any_null = enc.write_index_values(row, &positions, &mut key);
        (!any_null).then(|| Bytes::from(key.finish()))
    };
    let n = def.columns.len();
    for batch in batches {
        let old = RowEncoder::try_new(def, &batch.columns()[1..=n])?;
        let new_columns = match is_update {
            true => Some(new_row_values(batch, def, assigned)?),
            false => None,
        };
        let new = match &new_columns {
            Some(columns) => Some(RowEncoder::try_new(def, columns)?),
            None => None,
        };
        for row in 0..batch.num_rows() {
            let Some(old_probe) = probe(&old, row) else {
                continue;
            };
            if new
                .as_ref()
                .is_some_and(|enc| probe(enc, row).as_ref() == Some(&old_probe))
            {
                continue;
            }
            removed.insert(old_probe, old.describe_columns(row, &positions));
        }
    }
    Ok(removed)
}

/// Fails with 23503 if a row of `child` references (through `fk`) one of `removed`: storage
/// keys of `parent` rows, each with its key described for the message.
async fn referencing_rows_absent(
    d: &DmlContext<'_>,
    parent: &TableDef,
    child: &TableDef,
    fk: &ForeignKeyDef,
    removed: &HashMap<Bytes, String>,
) -> SqlResult<()> {
    let sql = crate::foreign_keys::referencing_rows_query(child, fk);
    let rows = sql_result(d, &sql).await?;
    let keys: HashSet<Bytes> = removed.keys().cloned().collect();
    crate::foreign_keys::check_not_referenced(parent, child, fk, &rows, &keys, |k| {
        removed.get(k).cloned().unwrap_or_default()
    })
}

/// ON DELETE / UPDATE SET DEFAULT: the defaults of `fk`'s columns of `child` (NULL for a
/// column without one), evaluated once for the statement.
async fn referencing_defaults(
    d: &DmlContext<'_>,
    child: &TableDef,
    fk: &ForeignKeyDef,
) -> SqlResult<Vec<ScalarValue>> {
    let positions = fk.column_positions(child);
    let defaults: Vec<String> = positions
        .iter()
        .map(|&p| {
            child.columns[p]
                .default
                .clone()
                .unwrap_or_else(|| "NULL".into())
        })
        .collect();
    let rows = sql_result(d, &format!("SELECT {}", defaults.join(", "))).await?;
    let batch = rows
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| SqlError::internal("defaults evaluated to no row"))?;
    (0..positions.len())
        .map(|i| Ok(ScalarValue::try_from_array(batch.column(i), 0)?))
        .collect()
}

/// The rows of a query Strata wrote itself, run in the statement's transaction.
async fn sql_result(d: &DmlContext<'_>, sql: &str) -> SqlResult<Vec<RecordBatch>> {
    let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .map_err(|e| SqlError::internal(e.to_string()))?
        .remove(0);
    let plan = d
        .ctx
        .state()
        .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
            statement,
        )))
        .await?;
    d.run(&plan).await
}

/// Runs foreign-key checks left for the end of the transaction (at COMMIT, or SET CONSTRAINTS
/// … IMMEDIATE). A check whose table or constraint was dropped since has nothing to check.
pub async fn run_deferred_checks(d: &DmlContext<'_>, checks: Vec<DeferredCheck>) -> SqlResult<()> {
    for check in checks {
        match check {
            DeferredCheck::References { table, fk, keys } => {
                let Some((def, fk)) = table_and_fk(d, table, &fk)? else {
                    continue;
                };
                let parent = d.slot.with_optional(|t| match t {
                    Some(txn) => crate::foreign_keys::parent_of(d.primary, txn, &def, &fk),
                    None => Err(SqlError::internal("no transaction for deferred checks")),
                })?;
                let missing = d
                    .write(async |txn| {
                        Ok(
                            crate::foreign_keys::references_missing(d.primary, txn, &fk, &keys)
                                .await?,
                        )
                    })
                    .await
                    .map_err(sql_error)?;
                if missing.is_empty() {
                    continue;
                }
                // A row written since may have dropped the reference (or been deleted): only a
                // reference some row still makes must exist.
                let missing: HashMap<Bytes, String> = missing.into_iter().collect();
                let candidates: HashSet<Bytes> = missing.keys().cloned().collect();
                let rows =
                    sql_result(d, &crate::foreign_keys::referencing_rows_query(&def, &fk)).await?;
                if let Some(key) =
                    crate::foreign_keys::first_referenced(&parent, &def, &fk, &rows, &candidates)?
                {
                    return Err(crate::foreign_keys::not_present(
                        &def,
                        &parent,
                        &fk,
                        &missing[&key],
                    ));
                }
            }
            DeferredCheck::NotReferenced {
                parent,
                child,
                fk,
                keys,
            } => {
                let Some((child, fk)) = table_and_fk(d, child, &fk)? else {
                    continue;
                };
                let Some(parent) = d
                    .slot
                    .with_catalog(&d.primary.catalog, |view| view.table_by_id(parent))?
                else {
                    continue;
                };
                // A key some row holds again by now is referenced legitimately.
                let candidates: Vec<Bytes> = keys.keys().cloned().collect();
                let exists = d
                    .write(async |txn| {
                        let lsn = txn.snapshot();
                        Ok(if fk.references_unique_index() {
                            crate::indexes::probes_taken(d.primary, txn, &candidates).await?
                        } else {
                            existing(d.primary, txn, &candidates, lsn).await?
                        })
                    })
                    .await
                    .map_err(sql_error)?;
                let removed: HashMap<Bytes, String> = candidates
                    .into_iter()
                    .zip(exists)
                    .filter(|(_, e)| !e)
                    .map(|(k, _)| {
                        let described = keys[&k].clone();
                        (k, described)
                    })
                    .collect();
                if !removed.is_empty() {
                    referencing_rows_absent(d, &parent, &child, &fk, &removed).await?;
                }
            }
        }
    }
    Ok(())
}

/// Checks outside a statement never restart: their reads are at the transaction's snapshot.
fn sql_error(e: DmlError) -> SqlError {
    match e {
        DmlError::Sql(e) => e,
        DmlError::Restart => serialization_failure(),
    }
}

/// A table by id and one of its foreign keys by name, if both still exist.
fn table_and_fk(
    d: &DmlContext<'_>,
    table: u64,
    fk: &str,
) -> SqlResult<Option<(Arc<TableDef>, ForeignKeyDef)>> {
    let def = d
        .slot
        .with_catalog(&d.primary.catalog, |view| view.table_by_id(table))?;
    Ok(def.and_then(|def| {
        let fk = def.foreign_keys.iter().find(|f| f.name == fk).cloned()?;
        Some((def, fk))
    }))
}

/// ON DELETE CASCADE / SET NULL and ON UPDATE CASCADE / SET NULL: deletes the rows of `child`
/// that reference one of `keys` (storage keys of `parent` rows being deleted or re-keyed), sets
/// their referencing columns to NULL, or to the new key's values, as a DELETE or UPDATE of those
/// rows would (their own referencing rows, checks and indexes included).
async fn act_on_referencing_rows(
    d: &DmlContext<'_>,
    parent: &TableDef,
    child: &Arc<TableDef>,
    fk: &ForeignKeyDef,
    keys: &HashMap<Bytes, Vec<ScalarValue>>,
    action: ChildAction<'_>,
) -> DmlResult<()> {
    let query = all_rows_query(child)?;
    let plan = d
        .ctx
        .state()
        .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
            query.clone(),
        )))
        .await?;
    let n = child.columns.len();
    let assigned = match action {
        ChildAction::Delete => Vec::new(),
        ChildAction::SetNull | ChildAction::SetDefault(_) | ChildAction::SetKey(_) => {
            fk.column_positions(child)
        }
    };
    let mut found = Vec::new();
    for batch in d.run(&plan).await? {
        let mut keep = vec![false; batch.num_rows()];
        // The old key each kept row references, in order.
        let mut referenced_by_kept = Vec::new();
        let referenced =
            crate::foreign_keys::referenced_keys(child, parent, fk, &batch.columns()[1..=n])?;
        for (row, key) in referenced {
            if let Some(key) = key.filter(|k| keys.contains_key(k)) {
                keep[row] = true;
                referenced_by_kept.push(key);
            }
        }
        let mut rows = filter_record_batch(&batch, &BooleanArray::from(keep))?;
        if rows.num_rows() == 0 {
            continue;
        }
        if !assigned.is_empty() {
            // The new values of the assigned columns follow the old columns.
            let mut fields: Vec<_> = rows.schema().fields().iter().cloned().collect();
            let mut columns = rows.columns().to_vec();
            for (i, &p) in assigned.iter().enumerate() {
                let ty = child.columns[p].ty.arrow_type();
                fields.push(Arc::new(datafusion::arrow::datatypes::Field::new(
                    format!("strata_new_{p}"),
                    ty.clone(),
                    true,
                )));
                columns.push(match action {
                    ChildAction::SetKey(new_keys) => {
                        let values = referenced_by_kept.iter().map(|k| new_keys[k][i].clone());
                        cast(&ScalarValue::iter_to_array(values)?, &ty)?
                    }
                    ChildAction::SetDefault(values) => {
                        cast(&values[i].to_array_of_size(rows.num_rows())?, &ty)?
                    }
                    _ => datafusion::arrow::array::new_null_array(&ty, rows.num_rows()),
                });
            }
            rows = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        }
        found.push(rows);
    }
    if found.is_empty() {
        return Ok(());
    }
    if let ChildAction::SetDefault(values) = action {
        // The defaults must not reference a row that is going: PostgreSQL checks them once the
        // statement is done, when that row is gone.
        let gone: HashSet<Bytes> = keys.keys().cloned().collect();
        crate::foreign_keys::check_values_not_among(parent, child, fk, values, &gone)?;
    }
    let finder = RowFinder {
        query,
        def: child.clone(),
        assigned,
        returning: 0,
        returning_names: Vec::new(),
        param_hints: HashMap::new(),
    };
    apply_changes(d, &finder, found).await?;
    Ok(())
}

/// The table's columns after an UPDATE: old values, with assigned ones replaced by the new
/// values cast to the column types (as PostgreSQL's assignment casts do).
fn new_row_values(
    batch: &RecordBatch,
    def: &TableDef,
    assigned: &[usize],
) -> SqlResult<Vec<ArrayRef>> {
    let n = def.columns.len();
    let mut columns: Vec<ArrayRef> = batch.columns()[1..=n].to_vec();
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    for (i, &position) in assigned.iter().enumerate() {
        let value = batch.column(1 + n + i);
        let target = def.columns[position].ty.arrow_type();
        columns[position] = if value.data_type() == &target {
            value.clone()
        } else if value.data_type() == &DataType::Null {
            datafusion::arrow::array::new_null_array(&target, value.len())
        } else if crate::text_input::needs_parser(&target) {
            crate::text_input::cast_array(value, &target)?
        } else {
            cast_with_options(value, &target, &options)?
        };
    }
    Ok(columns)
}
