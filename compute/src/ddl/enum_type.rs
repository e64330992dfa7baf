//! CREATE TYPE … AS ENUM, ALTER TYPE (ADD VALUE, RENAME TO) and DROP TYPE.
//!
//! Each column of an enum type keeps a copy of the type (see `ColumnDef::enum_type`), so a
//! change to the type rewrites the definitions of the tables that use it, in the same
//! transaction.

use datafusion::sql::sqlparser::ast::{
    AlterTypeAddValue, AlterTypeAddValuePosition, AlterTypeOperation, AlterTypeRename, Ident,
    ObjectName,
};

use super::{allocate_table_id, replace_table_def, txn_view, DdlOutcome};
use crate::catalog::TableDef;
use crate::enums::{encode_enum_type, enum_type_key, type_name_parts, EnumTypeDef};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::names::normalize;
use crate::primary::Primary;
use crate::txn::Transaction;
use crate::types::SqlType;

/// PostgreSQL's limit on a label's length (NAMEDATALEN - 1 bytes).
const MAX_LABEL_BYTES: usize = 63;

fn name_parts(name: &ObjectName) -> SqlResult<(String, String)> {
    type_name_parts(name).ok_or_else(|| SqlError::syntax(format!("invalid type name {name}")))
}

fn label(ident: &Ident) -> SqlResult<String> {
    let label = ident.value.clone();
    if label.len() > MAX_LABEL_BYTES {
        return Err(SqlError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("invalid enum label \"{label}\""),
        )
        .with_detail("Labels must be 63 bytes or less."));
    }
    Ok(label)
}

/// The types of PostgreSQL that `CREATE TYPE` may not take the name of.
fn is_builtin_type_name(name: &str) -> bool {
    crate::pg_catalog::type_oid_by_name(name).is_some()
}

/// `CREATE TYPE name AS ENUM (labels)`.
pub async fn create_enum_type(
    primary: &Primary,
    txn: &mut Transaction,
    name: &ObjectName,
    labels: &[Ident],
) -> SqlResult<DdlOutcome> {
    let (schema, type_name) = name_parts(name)?;
    super::schema::use_schema(primary, txn, &schema).await?;
    let key = enum_type_key(txn.database(), &schema, &type_name);
    txn.lock(&key).await?;
    let view = txn_view(primary, txn);
    // A table's row type has the table's name in PostgreSQL, so relations and types share it.
    if view.enum_type(&schema, &type_name)?.is_some()
        || view.relation_exists(&schema, &type_name)?
        || (schema == crate::catalog::DEFAULT_SCHEMA && is_builtin_type_name(&type_name))
    {
        return Err(SqlError::new(
            sqlstate::DUPLICATE_OBJECT,
            format!("type \"{type_name}\" already exists"),
        ));
    }
    let mut seen = Vec::with_capacity(labels.len());
    for ident in labels {
        let label = label(ident)?;
        if seen.contains(&label) {
            return Err(SqlError::new(
                sqlstate::UNIQUE_VIOLATION,
                "duplicate key value violates unique constraint \"pg_enum_typid_label_index\"",
            )
            .with_detail(format!(
                "Key (enumtypid, enumlabel)=(…, {label}) already exists."
            )));
        }
        seen.push(label);
    }
    let def = EnumTypeDef {
        id: allocate_table_id(primary, txn).await?,
        database: txn.database().to_string(),
        schema,
        name: type_name,
        labels: seen,
    };
    txn.put(key, encode_enum_type(&def));
    tracing::info!(r#type = %def.name, id = def.id, "created enum type");
    Ok(DdlOutcome {
        tag: "CREATE TYPE",
        notice: None,
        detail: None,
    })
}

/// The tables (of the type's database) with a column of enum type `id`.
fn tables_using(primary: &Primary, txn: &Transaction, id: u64) -> Vec<std::sync::Arc<TableDef>> {
    let view = txn_view(primary, txn);
    view.schemas()
        .iter()
        .flat_map(|s| view.tables(&s.name))
        .filter(|t| {
            t.columns
                .iter()
                .any(|c| c.ty == SqlType::Enum { type_id: id })
        })
        .collect()
}

/// Writes `def` and refreshes the copy every column of the type keeps.
async fn store(primary: &Primary, txn: &mut Transaction, def: &EnumTypeDef) -> SqlResult<()> {
    for table in tables_using(primary, txn, def.id) {
        let mut changed = table.as_ref().clone();
        for column in &mut changed.columns {
            if column.ty == (SqlType::Enum { type_id: def.id }) {
                column.enum_type = Some(Box::new(def.clone()));
            }
        }
        replace_table_def(txn, &changed).await?;
    }
    txn.put(
        enum_type_key(&def.database, &def.schema, &def.name),
        encode_enum_type(def),
    );
    Ok(())
}

fn missing(name: &str) -> SqlError {
    SqlError::new(
        sqlstate::UNDEFINED_OBJECT,
        format!("type \"{name}\" does not exist"),
    )
}

/// `ALTER TYPE name ADD VALUE [IF NOT EXISTS] 'label' [BEFORE | AFTER 'label']` and
/// `ALTER TYPE name RENAME TO new`.
pub async fn alter_enum_type(
    primary: &Primary,
    txn: &mut Transaction,
    name: &ObjectName,
    operation: &AlterTypeOperation,
) -> SqlResult<DdlOutcome> {
    let (schema, type_name) = name_parts(name)?;
    let key = enum_type_key(txn.database(), &schema, &type_name);
    txn.lock(&key).await?;
    let Some(old) = txn_view(primary, txn).enum_type(&schema, &type_name)? else {
        return Err(missing(&type_name));
    };
    let mut def = old.as_ref().clone();
    let outcome = |notice| DdlOutcome {
        tag: "ALTER TYPE",
        notice,
        detail: None,
    };
    match operation {
        AlterTypeOperation::AddValue(AlterTypeAddValue {
            if_not_exists,
            value,
            position,
        }) => {
            let new = label(value)?;
            if def.labels.contains(&new) {
                if *if_not_exists {
                    return Ok(outcome(Some(format!(
                        "enum label \"{new}\" already exists, skipping"
                    ))));
                }
                return Err(SqlError::new(
                    sqlstate::DUPLICATE_OBJECT,
                    format!("enum label \"{new}\" already exists"),
                ));
            }
            let at = match position {
                None => def.labels.len(),
                Some(
                    AlterTypeAddValuePosition::Before(neighbor)
                    | AlterTypeAddValuePosition::After(neighbor),
                ) => {
                    let index = def
                        .labels
                        .iter()
                        .position(|l| *l == neighbor.value)
                        .ok_or_else(|| {
                            SqlError::new(
                                sqlstate::INVALID_PARAMETER_VALUE,
                                format!("\"{}\" is not an existing enum label", neighbor.value),
                            )
                        })?;
                    match position {
                        Some(AlterTypeAddValuePosition::After(_)) => index + 1,
                        _ => index,
                    }
                }
            };
            def.labels.insert(at, new);
            store(primary, txn, &def).await?;
        }
        AlterTypeOperation::Rename(AlterTypeRename { new_name }) => {
            let new_name = normalize(new_name);
            let new_key = enum_type_key(txn.database(), &schema, &new_name);
            txn.lock(&new_key).await?;
            let view = txn_view(primary, txn);
            if view.enum_type(&schema, &new_name)?.is_some()
                || view.relation_exists(&schema, &new_name)?
            {
                return Err(SqlError::new(
                    sqlstate::DUPLICATE_OBJECT,
                    format!("type \"{new_name}\" already exists"),
                ));
            }
            txn.delete(key);
            def.name = new_name;
            store(primary, txn, &def).await?;
        }
        // Values are stored as their labels' text: renaming one would rewrite every row
        // holding it.
        AlterTypeOperation::RenameValue(_) => {
            return Err(SqlError::unsupported("ALTER TYPE … RENAME VALUE"))
        }
    }
    tracing::info!(r#type = %def.name, id = def.id, "altered enum type");
    Ok(outcome(None))
}

/// `DROP TYPE [IF EXISTS] name, …`: refused while a column has the type (2BP01).
pub async fn drop_enum_types(
    primary: &Primary,
    txn: &mut Transaction,
    names: &[ObjectName],
    if_exists: bool,
    cascade: bool,
) -> SqlResult<DdlOutcome> {
    let mut notices = Vec::new();
    for name in names {
        let (schema, type_name) = name_parts(name)?;
        let key = enum_type_key(txn.database(), &schema, &type_name);
        txn.lock(&key).await?;
        let Some(def) = txn_view(primary, txn).enum_type(&schema, &type_name)? else {
            if if_exists {
                notices.push(format!("type \"{type_name}\" does not exist, skipping"));
                continue;
            }
            return Err(missing(&type_name));
        };
        if let Some(table) = tables_using(primary, txn, def.id).first() {
            if cascade {
                return Err(SqlError::unsupported(
                    "DROP TYPE … CASCADE of a type that columns use",
                ));
            }
            let column = table
                .columns
                .iter()
                .find(|c| c.ty == (SqlType::Enum { type_id: def.id }))
                .map(|c| c.name.clone())
                .unwrap_or_default();
            return Err(SqlError::new(
                sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
                format!("cannot drop type {type_name} because other objects depend on it"),
            )
            .with_detail(format!(
                "column {column} of table {} depends on type {type_name}",
                table.name
            ))
            .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
        }
        txn.delete(key);
        tracing::info!(r#type = %def.name, id = def.id, "dropped enum type");
    }
    Ok(DdlOutcome::with_notices("DROP TYPE", notices))
}
