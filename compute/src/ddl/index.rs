//! CREATE INDEX, DROP INDEX and UNIQUE constraints: an index is part of its table's definition,
//! and its name claims a relation name (indexes, tables and sequences share one namespace).

use bytes::Bytes;
use datafusion::arrow::array::ArrayRef;
use datafusion::sql::sqlparser::ast::{
    CreateIndex, Expr as SqlExpr, IndexColumn, IndexType, NullsDistinctOption, ObjectName,
    UniqueConstraint,
};

use super::{allocate_table_id, replace_table_def, DdlOutcome};
use crate::catalog::{table_def_key, table_name_key, CatalogView, TableDef};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::indexes::{choose_name, IndexDef};
use crate::names::{normalize, table_name};
use crate::primary::Primary;
use crate::txn::Transaction;

/// An index to add to a table, as a statement asked for it.
#[derive(Debug, Clone)]
pub struct NewIndex {
    pub name: Option<String>,
    pub columns: Vec<String>,
    pub unique: bool,
    /// Made by a UNIQUE constraint (named `<table>_<columns>_key`) rather than CREATE INDEX.
    pub constraint: bool,
    pub if_not_exists: bool,
}

/// Every row of a table, as `(columns in table order, row keys)` batches: what an index is built
/// from.
pub type TableRows = Vec<(Vec<ArrayRef>, Vec<Bytes>)>;

impl NewIndex {
    /// The index `CREATE INDEX` asks for, and the table it is on. What Strata's ordered indexes
    /// cannot be (partial, expression, covering, other access methods) is refused with 0A000;
    /// operator classes and storage parameters only tune PostgreSQL's own structures and are
    /// accepted.
    pub fn from_create_index(stmt: &CreateIndex) -> SqlResult<(ObjectName, NewIndex)> {
        match &stmt.using {
            None | Some(IndexType::BTree) | Some(IndexType::Hash) => {}
            Some(other) => {
                return Err(SqlError::unsupported(format!(
                    "index access method {other}"
                )))
            }
        }
        if stmt.predicate.is_some() {
            return Err(SqlError::unsupported(
                "partial indexes (CREATE INDEX … WHERE)",
            ));
        }
        if !stmt.include.is_empty() {
            return Err(SqlError::unsupported("CREATE INDEX … INCLUDE"));
        }
        if stmt.nulls_distinct == Some(false) {
            return Err(SqlError::unsupported("NULLS NOT DISTINCT"));
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
                columns: column_names(&stmt.columns)?,
                unique: stmt.unique,
                constraint: false,
                if_not_exists: stmt.if_not_exists,
            },
        ))
    }

    /// The index of a `UNIQUE` constraint (column or table form); `name` is the constraint's.
    pub fn from_unique(c: &UniqueConstraint, name: Option<String>) -> SqlResult<NewIndex> {
        if c.nulls_distinct == NullsDistinctOption::NotDistinct {
            return Err(SqlError::unsupported("NULLS NOT DISTINCT"));
        }
        if c.characteristics.and_then(|c| c.deferrable) == Some(true) {
            return Err(SqlError::unsupported("DEFERRABLE unique constraints"));
        }
        Ok(NewIndex {
            name: c.name.as_ref().map(normalize).or(name),
            columns: column_names(&c.columns)?,
            unique: true,
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

/// Adds `new` to the table `def` in `txn` and writes its entries for `rows` (every row of the
/// table as `txn` sees it; none for a table being created).
pub async fn add_index(
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
    let positions = new
        .columns
        .iter()
        .map(|name| {
            def.columns
                .iter()
                .position(|c| &c.name == name)
                .ok_or_else(|| {
                    SqlError::new(
                        sqlstate::UNDEFINED_COLUMN,
                        format!("column \"{name}\" does not exist"),
                    )
                })
        })
        .collect::<SqlResult<Vec<_>>>()?;
    for &p in &positions {
        def.columns[p].ty.check_indexable(&def.columns[p].name)?;
    }
    let name = match new.name {
        Some(name) => name,
        None => choose_name(
            &def.name,
            &new.columns,
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
        columns: positions.iter().map(|&p| def.columns[p].id).collect(),
        unique: new.unique,
        constraint: new.constraint,
    };
    let mut changed = def.as_ref().clone();
    changed.indexes.push(index.clone());
    crate::indexes::build(txn, &changed, &index, rows)?;
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
