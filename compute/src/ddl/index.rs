//! CREATE INDEX, DROP INDEX and UNIQUE constraints: an index is part of its table's definition,
//! and its name claims a relation name (indexes, tables and sequences share one namespace).

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::execution::context::SessionContext;
use datafusion::sql::sqlparser::ast::{
    CreateIndex, Expr as SqlExpr, IndexColumn, IndexType, NullsDistinctOption, ObjectName,
    UniqueConstraint,
};

use super::{allocate_table_id, replace_table_def, DdlOutcome};
use crate::catalog::{table_def_key, table_name_key, CatalogView, ColumnDef, TableDef};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::indexes::{choose_name, IndexDef, IndexExpression, EXPRESSION_KEY};
use crate::names::{normalize, table_name};
use crate::primary::Primary;
use crate::row_expr::RowExpr;
use crate::txn::Transaction;
use crate::types::SqlType;

/// An index to add to a table, as a statement asked for it.
#[derive(Debug, Clone)]
pub struct NewIndex {
    pub name: Option<String>,
    pub keys: Vec<NewKey>,
    /// `INCLUDE` columns, by name.
    pub include: Vec<String>,
    /// A partial index's `WHERE`, as SQL text.
    pub predicate: Option<String>,
    pub unique: bool,
    /// `NULLS NOT DISTINCT`: NULLs conflict with each other.
    pub nulls_not_distinct: bool,
    /// Made by a UNIQUE constraint (named `<table>_<columns>_key`) rather than CREATE INDEX.
    pub constraint: bool,
    pub if_not_exists: bool,
}

/// One key of an index to add.
#[derive(Debug, Clone)]
pub enum NewKey {
    Column(String),
    /// An expression of the row, as SQL text.
    Expression(String),
}

impl NewKey {
    /// Keys that are all columns, by name.
    pub fn columns(names: Vec<String>) -> Vec<NewKey> {
        names.into_iter().map(NewKey::Column).collect()
    }
}

/// Every row of a table, as `(columns in table order, row keys)` batches: what an index is built
/// from.
pub type TableRows = Vec<(Vec<ArrayRef>, Vec<Bytes>)>;

impl NewIndex {
    /// The index `CREATE INDEX` asks for, and the table it is on. What Strata's ordered indexes
    /// cannot be (covering, other access methods) is refused with 0A000; operator classes and
    /// storage parameters only tune PostgreSQL's own structures and are accepted.
    pub fn from_create_index(stmt: &CreateIndex) -> SqlResult<(ObjectName, NewIndex)> {
        match &stmt.using {
            None | Some(IndexType::BTree) | Some(IndexType::Hash) => {}
            Some(other) => {
                return Err(SqlError::unsupported(format!(
                    "index access method {other}"
                )))
            }
        }
        let name = stmt
            .name
            .as_ref()
            .map(|n| table_name(n).map(|(_, name)| name))
            .transpose()?;
        Ok((
            stmt.table_name.clone(),
            NewIndex {
                name,
                keys: stmt.columns.iter().map(|c| key(&c.column.expr)).collect(),
                include: stmt.include.iter().map(normalize).collect(),
                predicate: stmt.predicate.as_ref().map(|p| unnested(p).to_string()),
                unique: stmt.unique,
                nulls_not_distinct: stmt.nulls_distinct == Some(false),
                constraint: false,
                if_not_exists: stmt.if_not_exists,
            },
        ))
    }

    /// The index of a `UNIQUE` constraint (column or table form); `name` is the constraint's.
    pub fn from_unique(c: &UniqueConstraint, name: Option<String>) -> SqlResult<NewIndex> {
        if c.characteristics.and_then(|c| c.deferrable) == Some(true) {
            return Err(SqlError::unsupported("DEFERRABLE unique constraints"));
        }
        Ok(NewIndex {
            name: c.name.as_ref().map(normalize).or(name),
            keys: NewKey::columns(column_names(&c.columns)?),
            include: Vec::new(),
            predicate: None,
            unique: true,
            nulls_not_distinct: c.nulls_distinct == NullsDistinctOption::NotDistinct,
            constraint: true,
            if_not_exists: false,
        })
    }
}

/// The column names of a key (index, UNIQUE or PRIMARY KEY); expressions are 0A000.
pub(crate) fn column_names(columns: &[IndexColumn]) -> SqlResult<Vec<String>> {
    columns
        .iter()
        .map(|c| match &c.column.expr {
            SqlExpr::Identifier(ident) => Ok(normalize(ident)),
            other => Err(SqlError::unsupported(format!("index expression {other}"))),
        })
        .collect()
}

/// An index key as `CREATE INDEX` writes it: a column name, alone or in parentheses, or an
/// expression.
fn key(expr: &SqlExpr) -> NewKey {
    match unnested(expr) {
        SqlExpr::Identifier(ident) => NewKey::Column(normalize(ident)),
        other => NewKey::Expression(other.to_string()),
    }
}

fn unnested(expr: &SqlExpr) -> &SqlExpr {
    match expr {
        SqlExpr::Nested(inner) => unnested(inner),
        other => other,
    }
}

/// The column of `def` named `name` (an index key or an `INCLUDE` column).
fn named_column<'a>(def: &'a TableDef, name: &str) -> SqlResult<&'a ColumnDef> {
    def.columns.iter().find(|c| c.name == name).ok_or_else(|| {
        SqlError::new(
            sqlstate::UNDEFINED_COLUMN,
            format!("column \"{name}\" does not exist"),
        )
    })
}

/// Adds `new` to the table `def` in `txn` and writes its entries for `rows` (every row of the
/// table as `txn` sees it; none for a table being created).
pub async fn add_index(
    ctx: &SessionContext,
    primary: &Primary,
    txn: &mut Transaction,
    def: &TableDef,
    new: NewIndex,
    rows: &TableRows,
) -> SqlResult<DdlOutcome> {
    let tag = if new.constraint {
        "ALTER TABLE"
    } else {
        "CREATE INDEX"
    };
    // The definition as it is now that it is locked (a concurrent change has committed).
    txn.lock(&table_def_key(def.id)).await?;
    let view = CatalogView::of(&primary.catalog, txn);
    let def = view
        .table_by_id(def.id)?
        .ok_or_else(|| SqlError::undefined_table(&def.name))?;
    let mut columns = Vec::with_capacity(new.keys.len());
    let mut expressions = Vec::new();
    let mut name_parts = Vec::with_capacity(new.keys.len());
    for key in &new.keys {
        match key {
            NewKey::Column(name) => {
                let column = named_column(&def, name)?;
                column.ty.check_indexable(&column.name)?;
                columns.push(column.id);
                name_parts.push(name.clone());
            }
            NewKey::Expression(sql) => {
                let planned = RowExpr::plan(ctx, &def, sql)?;
                planned.require_immutable("index expression")?;
                let ty = SqlType::of_arrow(planned.data_type()).ok_or_else(|| {
                    SqlError::unsupported(format!(
                        "an index expression of type {}",
                        planned.data_type()
                    ))
                })?;
                ty.check_indexable(sql)?;
                let expression = IndexExpression {
                    sql: sql.clone(),
                    ty,
                };
                columns.push(EXPRESSION_KEY);
                name_parts.push(expression.column_name());
                expressions.push(expression);
            }
        }
    }
    let include = new
        .include
        .iter()
        .map(|name| named_column(&def, name).map(|c| c.id))
        .collect::<SqlResult<Vec<_>>>()?;
    if let Some(sql) = &new.predicate {
        let planned = RowExpr::plan(ctx, &def, sql)?;
        planned.require_immutable("index predicate")?;
        if !matches!(planned.data_type(), DataType::Boolean | DataType::Null) {
            return Err(SqlError::new(
                sqlstate::DATATYPE_MISMATCH,
                format!(
                    "argument of WHERE must be type boolean, not type {}",
                    crate::row_expr::type_name(planned.data_type())
                ),
            ));
        }
    }
    let name = match new.name {
        Some(name) => name,
        None => choose_name(
            &def.name,
            &name_parts,
            if new.constraint { "key" } else { "idx" },
            |n| view.relation_exists(&def.schema, n).unwrap_or(true),
        ),
    };
    let name_key = table_name_key(txn.database(), &def.schema, &name);
    txn.lock(&name_key).await?;
    let view = CatalogView::of(&primary.catalog, txn);
    if view.relation_exists(&def.schema, &name)?
        || name == def.primary_key_name() && !def.primary_key.is_empty()
    {
        if new.if_not_exists {
            return Ok(DdlOutcome {
                tag,
                notice: Some(format!("relation \"{name}\" already exists, skipping")),
                detail: None,
            });
        }
        return Err(SqlError::new(
            sqlstate::DUPLICATE_TABLE,
            format!("relation \"{name}\" already exists"),
        ));
    }
    let id = allocate_table_id(primary, txn).await?;
    let index = IndexDef {
        id,
        name: name.clone(),
        columns,
        expressions,
        include,
        predicate: new.predicate,
        unique: new.unique,
        nulls_not_distinct: new.nulls_not_distinct,
        constraint: new.constraint,
    };
    let mut changed = def.as_ref().clone();
    changed.indexes.push(index.clone());
    crate::indexes::build(ctx, txn, &changed, &index, rows)?;
    replace_table_def(txn, &changed).await?;
    txn.put(name_key, Bytes::copy_from_slice(&id.to_be_bytes()));
    tracing::info!(table = %def.name, index = %name, id, "created index");
    Ok(DdlOutcome {
        tag,
        notice: None,
        detail: None,
    })
}

/// `DROP INDEX [IF EXISTS] name, …`. The entries stay in storage under the index's id, which is
/// never reused, as a dropped table's rows do.
pub async fn drop_indexes(
    primary: &Primary,
    txn: &mut Transaction,
    names: &[ObjectName],
    if_exists: bool,
) -> SqlResult<DdlOutcome> {
    let mut notices = Vec::new();
    for name in names {
        let (schema, index_name) = table_name(name)?;
        let name_key = table_name_key(txn.database(), &schema, &index_name);
        txn.lock(&name_key).await?;
        let view = CatalogView::of(&primary.catalog, txn);
        let Some((table, index)) = view.index(&schema, &index_name)? else {
            if let Some(t) = view
                .tables(&schema)
                .into_iter()
                .find(|t| !t.primary_key.is_empty() && t.primary_key_name() == index_name)
            {
                return Err(required_by_constraint(&index_name, &t.name));
            }
            if view.relation_exists(&schema, &index_name)? {
                return Err(SqlError::new(
                    sqlstate::WRONG_OBJECT_TYPE,
                    format!("\"{index_name}\" is not an index"),
                ));
            }
            if if_exists {
                notices.push(format!("index \"{index_name}\" does not exist, skipping"));
                continue;
            }
            return Err(SqlError::new(
                sqlstate::UNDEFINED_OBJECT,
                format!("index \"{index_name}\" does not exist"),
            ));
        };
        if index.constraint {
            return Err(required_by_constraint(&index_name, &table.name));
        }
        crate::foreign_keys::require_index_unreferenced(
            &view,
            &table,
            &index,
            &format!("index {index_name}"),
        )?;
        remove_index(txn, &table, &index).await?;
    }
    Ok(DdlOutcome::with_notices("DROP INDEX", notices))
}

/// `ALTER INDEX name RENAME TO new` (and `ALTER TABLE … RENAME CONSTRAINT` of a UNIQUE
/// constraint, whose index has its name): the index keeps its id and entries; the name it held
/// is freed and the new one claimed in the schema's relation names.
pub async fn rename_index(
    primary: &Primary,
    txn: &mut Transaction,
    schema: &str,
    name: &str,
    new: &str,
) -> SqlResult<()> {
    let old_key = table_name_key(txn.database(), schema, name);
    let new_key = table_name_key(txn.database(), schema, new);
    txn.lock(&old_key).await?;
    txn.lock(&new_key).await?;
    let view = CatalogView::of(&primary.catalog, txn);
    let Some((table, index)) = view.index(schema, name)? else {
        if view.relation_exists(schema, name)? {
            return Err(SqlError::new(
                sqlstate::WRONG_OBJECT_TYPE,
                format!("\"{name}\" is not an index"),
            ));
        }
        return Err(SqlError::new(
            sqlstate::UNDEFINED_TABLE,
            format!("relation \"{name}\" does not exist"),
        ));
    };
    // A primary key's index holds a relation name too, without a name key of its own.
    let pk_index_named =
        |t: &Arc<TableDef>| !t.primary_key.is_empty() && t.primary_key_name() == new;
    if view.relation_exists(schema, new)? || view.tables(schema).iter().any(pk_index_named) {
        return Err(SqlError::new(
            sqlstate::DUPLICATE_TABLE,
            format!("relation \"{new}\" already exists"),
        ));
    }
    txn.lock(&table_def_key(table.id)).await?;
    let mut changed = table.as_ref().clone();
    for i in changed.indexes.iter_mut().filter(|i| i.id == index.id) {
        i.name = new.to_string();
    }
    replace_table_def(txn, &changed).await?;
    txn.delete(old_key);
    txn.put(new_key, Bytes::copy_from_slice(&index.id.to_be_bytes()));
    tracing::info!(table = %table.name, index = %name, new = %new, "renamed index");
    Ok(())
}

/// Removes an index from its table's definition and frees its name.
pub async fn remove_index(
    txn: &mut Transaction,
    table: &TableDef,
    index: &IndexDef,
) -> SqlResult<()> {
    let mut changed = table.clone();
    changed.indexes.retain(|i| i.id != index.id);
    replace_table_def(txn, &changed).await?;
    let name_key = table_name_key(txn.database(), &table.schema, &index.name);
    txn.lock(&name_key).await?;
    txn.delete(name_key);
    tracing::info!(table = %table.name, index = %index.name, "dropped index");
    Ok(())
}

fn required_by_constraint(index: &str, table: &str) -> SqlError {
    SqlError::new(
        sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
        format!(
            "cannot drop index {index} because constraint {index} on table {table} requires it"
        ),
    )
    .with_hint(format!(
        "You can drop constraint {index} on table {table} instead."
    ))
}
