//! ALTER TABLE on columns and names: ADD / DROP / RENAME COLUMN, ALTER COLUMN SET / DROP NOT
//! NULL and DEFAULT, RENAME TO.
//!
//! Row values are tagged with column ids, so adding or dropping a column changes only the
//! definition: a new column reads as NULL in rows written before it (the session then fills a
//! default with an UPDATE), and a dropped column's values are skipped by every reader.

use bytes::Bytes;
use datafusion::sql::sqlparser::ast::{ColumnDef as SqlColumnDef, ColumnOption, SequenceOptions};

use super::{
    check_generated_default, column_type, default_text, generation_option, identity_option,
    owned_sequence, replace_table_def,
};
use crate::catalog::{table_def_key, table_name_key, CatalogView, ColumnDef, TableDef};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::names::normalize;
use crate::primary::Primary;
use crate::row_expr::{expression_names, rename_in_expression};
use crate::txn::Transaction;
use crate::types::SqlType;

/// A column to add, and what the session must do after the definition is written.
pub struct AddedColumn {
    pub def: TableDef,
    pub name: String,
    /// The default to fill existing rows with.
    pub default: Option<String>,
    /// Whether existing rows must be checked for NULLs (NOT NULL without a default).
    pub check_not_null: bool,
    /// Whether a UNIQUE constraint was asked for (the session builds its index).
    pub unique: bool,
    /// Whether it is to be the primary key (the session rewrites the rows under it).
    pub primary_key: bool,
    /// serial or identity: the type and options of the sequence the column owns, which the
    /// session creates (and fills the older rows from).
    pub sequence: Option<(SqlType, Vec<SequenceOptions>)>,
}

fn undefined_column(table: &str, column: &str) -> SqlError {
    SqlError::new(
        sqlstate::UNDEFINED_COLUMN,
        format!("column \"{column}\" of relation \"{table}\" does not exist"),
    )
}

fn position(def: &TableDef, column: &str) -> SqlResult<usize> {
    def.columns
        .iter()
        .position(|c| c.name == column)
        .ok_or_else(|| undefined_column(&def.name, column))
}

/// `ADD COLUMN`: `None` when the column exists and `IF NOT EXISTS` was given.
pub fn add_column(
    view: &crate::catalog::CatalogView,
    def: &TableDef,
    column: &SqlColumnDef,
    if_not_exists: bool,
) -> SqlResult<Option<AddedColumn>> {
    let name = normalize(&column.name);
    if def.columns.iter().any(|c| c.name == name) {
        if if_not_exists {
            return Ok(None);
        }
        return Err(SqlError::new(
            sqlstate::DUPLICATE_COLUMN,
            format!(
                "column \"{name}\" of relation \"{}\" already exists",
                def.name
            ),
        ));
    }
    let super::ColumnType {
        ty,
        serial,
        enum_type,
    } = column_type(&column.data_type, view)?;
    let mut nullable = serial.is_none();
    let mut default = None;
    let mut unique = false;
    let mut primary_key = false;
    let mut identity = None;
    let mut generated = None;
    let mut sequence_options = Vec::new();
    for option in &column.options {
        if let Some((kind, options)) = identity_option(&option.option) {
            identity = Some(kind);
            sequence_options = options;
            nullable = false;
            continue;
        }
        if let Some(expr) = generation_option(&option.option) {
            generated = Some(expr?);
            continue;
        }
        match &option.option {
            ColumnOption::Null => {}
            ColumnOption::NotNull => nullable = false,
            ColumnOption::Default(expr) => default = Some(default_text(expr)),
            ColumnOption::Unique(_) => unique = true,
            // A second primary key is refused by `add_primary_key`, which the session calls.
            ColumnOption::PrimaryKey(_) => {
                primary_key = true;
                nullable = false;
            }
            other => {
                return Err(SqlError::unsupported(format!(
                    "column option {other} in ADD COLUMN"
                )))
            }
        }
    }
    let owns = owned_sequence(
        &name,
        &def.name,
        ty,
        serial.is_some(),
        identity.is_some(),
        &default,
    )?;
    let sequence = owns.then_some((ty, sequence_options));
    check_generated_default(&name, &def.name, &default, &generated)?;
    let mut changed = def.clone();
    changed.columns.push(ColumnDef {
        id: def.next_column_id,
        name: name.clone(),
        ty,
        nullable,
        default: default.clone(),
        identity,
        enum_type,
        generated: generated.clone(),
    });
    changed.next_column_id += 1;
    // Rows written before a generated column get its value as an `UPDATE … SET c = DEFAULT`
    // computes it.
    let default = match generated {
        Some(_) => Some("DEFAULT".to_string()),
        None => default,
    };
    Ok(Some(AddedColumn {
        def: changed,
        name,
        check_not_null: !nullable && default.is_none() && sequence.is_none(),
        default,
        unique,
        primary_key,
        sequence,
    }))
}

/// `DROP COLUMN`: the column goes, and with it the indexes, CHECK constraints and foreign keys
/// that use it (as in PostgreSQL). Returns the new definition and the indexes removed, or
/// `None` when the column does not exist and `IF EXISTS` was given.
pub fn drop_column(
    def: &TableDef,
    column: &str,
    if_exists: bool,
) -> SqlResult<Option<(TableDef, Vec<crate::indexes::IndexDef>)>> {
    let Some(position) = def.columns.iter().position(|c| c.name == column) else {
        if if_exists {
            return Ok(None);
        }
        return Err(undefined_column(&def.name, column));
    };
    let id = def.columns[position].id;
    if def.primary_key.contains(&id) {
        return Err(SqlError::unsupported(
            "dropping a column of the primary key",
        ));
    }
    if def.columns.len() == 1 {
        return Err(SqlError::unsupported("dropping the last column of a table"));
    }
    if let Some(dependent) = crate::generated::dependent(def, column) {
        return Err(SqlError::new(
            sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
            format!(
                "cannot drop column {column} of table {} because other objects depend on it",
                def.name
            ),
        )
        .with_detail(format!(
            "column {} of table {} depends on column {column} of table {}",
            dependent.name, def.name, def.name
        ))
        .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
    }
    let mut changed = def.clone();
    let (dropped, kept): (Vec<_>, Vec<_>) =
        changed.indexes.drain(..).partition(|i| i.reads(def, id));
    changed.columns.remove(position);
    changed.indexes = kept;
    changed.foreign_keys.retain(|f| !f.columns.contains(&id));
    changed
        .checks
        .retain(|c| !expression_names(&c.expr).iter().any(|n| n == column));
    Ok(Some((changed, dropped)))
}

/// `RENAME COLUMN a TO b`; CHECK expressions naming the column follow it.
pub fn rename_column(def: &TableDef, old: &str, new: &str) -> SqlResult<TableDef> {
    let position = position(def, old)?;
    if def.columns.iter().any(|c| c.name == new) {
        return Err(SqlError::new(
            sqlstate::DUPLICATE_COLUMN,
            format!(
                "column \"{new}\" of relation \"{}\" already exists",
                def.name
            ),
        ));
    }
    let mut changed = def.clone();
    changed.columns[position].name = new.to_string();
    for check in &mut changed.checks {
        check.expr = rename_in_expression(&check.expr, old, new)?;
    }
    for column in &mut changed.columns {
        if let Some(generated) = &mut column.generated {
            *generated = rename_in_expression(generated, old, new)?;
        }
    }
    for index in &mut changed.indexes {
        for expression in &mut index.expressions {
            expression.sql = rename_in_expression(&expression.sql, old, new)?;
        }
        if let Some(predicate) = &mut index.predicate {
            *predicate = rename_in_expression(predicate, old, new)?;
        }
    }
    Ok(changed)
}

/// `ALTER COLUMN c SET NOT NULL | DROP NOT NULL | SET DEFAULT e | DROP DEFAULT`. Returns the new
/// definition and whether existing rows must be checked for NULLs.
pub fn alter_column(
    def: &TableDef,
    column: &str,
    op: &datafusion::sql::sqlparser::ast::AlterColumnOperation,
) -> SqlResult<(TableDef, bool)> {
    use datafusion::sql::sqlparser::ast::AlterColumnOperation as Op;
    let position = position(def, column)?;
    let mut changed = def.clone();
    let col = &mut changed.columns[position];
    let mut check_not_null = false;
    match op {
        Op::SetNotNull => {
            check_not_null = col.nullable;
            col.nullable = false;
        }
        Op::DropNotNull => {
            if def.primary_key.contains(&col.id) {
                return Err(SqlError::new(
                    sqlstate::INVALID_TABLE_DEFINITION,
                    format!("column \"{column}\" is in a primary key"),
                ));
            }
            if col.identity.is_some() {
                return Err(SqlError::new(
                    sqlstate::INVALID_TABLE_DEFINITION,
                    format!(
                        "column \"{column}\" of relation \"{}\" is an identity column",
                        def.name
                    ),
                ));
            }
            col.nullable = true;
        }
        Op::SetDefault { value } => {
            if col.identity.is_some() {
                return Err(SqlError::new(
                    sqlstate::SYNTAX_ERROR,
                    format!(
                        "column \"{column}\" of relation \"{}\" is an identity column",
                        def.name
                    ),
                ));
            }
            col.default = Some(default_text(value));
        }
        Op::DropDefault => {
            if col.identity.is_none() {
                col.default = None;
            }
        }
        other => {
            return Err(SqlError::unsupported(format!("ALTER COLUMN … {other}")));
        }
    }
    Ok((changed, check_not_null))
}

/// `RENAME TO new`: the table keeps its id, its name key moves.
pub async fn rename_table(
    primary: &Primary,
    txn: &mut Transaction,
    def: &TableDef,
    new: &str,
) -> SqlResult<()> {
    let old_key = table_name_key(txn.database(), &def.schema, &def.name);
    let new_key = table_name_key(txn.database(), &def.schema, new);
    txn.lock(&old_key).await?;
    txn.lock(&new_key).await?;
    txn.lock(&table_def_key(def.id)).await?;
    let view = CatalogView::of(&primary.catalog, txn);
    if view.relation_exists(&def.schema, new)? {
        return Err(SqlError::new(
            sqlstate::DUPLICATE_TABLE,
            format!("relation \"{new}\" already exists"),
        ));
    }
    let mut changed = def.clone();
    changed.name = new.to_string();
    replace_table_def(txn, &changed).await?;
    txn.delete(old_key);
    txn.put(new_key, Bytes::copy_from_slice(&def.id.to_be_bytes()));
    Ok(())
}
