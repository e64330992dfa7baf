//! CREATE SEQUENCE, DROP SEQUENCE, and the sequences serial and identity columns own.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::sql::sqlparser::ast::{
    DataType as SqlDataType, Expr as SqlExpr, ObjectName, SequenceOptions,
};

use super::{allocate_table_id, DdlOutcome};
use crate::catalog::{
    encode_sequence_def, sequence_def_key, sequence_state_key, table_name_key, CatalogView,
    ColumnDef, SequenceDef, TableDef,
};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::names::{normalize, table_name};
use crate::primary::Primary;
use crate::sequence::SequenceState;
use crate::txn::Transaction;
use crate::types::SqlType;

/// What a sequence is to be: its name, type, options and owner, before it has an id.
pub struct NewSequence {
    pub schema: String,
    pub name: String,
    pub ty: SqlType,
    pub options: Vec<SequenceOptions>,
    pub owned_by: Option<(u64, u32)>,
}

/// `CREATE SEQUENCE`.
#[allow(clippy::too_many_arguments)]
pub async fn create_sequence(
    primary: &Primary,
    txn: &mut Transaction,
    name: &ObjectName,
    if_not_exists: bool,
    data_type: Option<&SqlDataType>,
    options: &[SequenceOptions],
    owned_by: Option<&ObjectName>,
) -> SqlResult<DdlOutcome> {
    let (schema, name) = table_name(name)?;
    txn.lock(&table_name_key(txn.database(), &schema, &name))
        .await?;
    let view = CatalogView::of(&primary.catalog, txn);
    if view.relation_exists(&schema, &name)? {
        return DdlOutcome::already_exists(
            "CREATE SEQUENCE",
            "relation",
            &name,
            if_not_exists,
            sqlstate::DUPLICATE_TABLE,
        );
    }
    let ty = match data_type {
        None => SqlType::Int8,
        Some(t) => match SqlType::from_sql(t)? {
            t @ (SqlType::Int2 | SqlType::Int4 | SqlType::Int8) => t,
            _ => {
                return Err(SqlError::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    "sequence type must be smallint, integer, or bigint",
                ))
            }
        },
    };
    let owned_by = match owned_by {
        None => None,
        Some(o) => owner(&view, o)?,
    };
    add_sequence(
        primary,
        txn,
        NewSequence {
            schema,
            name,
            ty,
            options: options.to_vec(),
            owned_by,
        },
    )
    .await?;
    Ok(DdlOutcome {
        tag: "CREATE SEQUENCE",
        notice: None,
        detail: None,
    })
}

/// `OWNED BY table.column` (or `NONE`): the owning table and column ids.
fn owner(view: &CatalogView, name: &ObjectName) -> SqlResult<Option<(u64, u32)>> {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(normalize))
        .collect();
    if parts.len() == 1 && parts[0] == "none" {
        return Ok(None);
    }
    let Some((column, table)) = parts.split_last() else {
        return Err(SqlError::syntax(format!("invalid OWNED BY {name}")));
    };
    if table.is_empty() {
        return Err(
            SqlError::new(sqlstate::INVALID_PARAMETER_VALUE, "invalid OWNED BY option")
                .with_hint("Specify OWNED BY table.column or OWNED BY NONE."),
        );
    }
    let table_name_parts = ObjectName::from(
        table
            .iter()
            .map(|p| datafusion::sql::sqlparser::ast::Ident::with_quote('"', p))
            .collect::<Vec<_>>(),
    );
    let (schema, table) = table_name(&table_name_parts)?;
    let def = view
        .get(&schema, &table)?
        .ok_or_else(|| SqlError::undefined_table(&table))?;
    let col = def
        .columns
        .iter()
        .find(|c| &c.name == column)
        .ok_or_else(|| {
            SqlError::new(
                sqlstate::UNDEFINED_COLUMN,
                format!("column \"{column}\" of relation \"{table}\" does not exist"),
            )
        })?;
    Ok(Some((def.id, col.id)))
}

/// Writes a new sequence (definition, name and initial state) into `txn`.
pub async fn add_sequence(
    primary: &Primary,
    txn: &mut Transaction,
    new: NewSequence,
) -> SqlResult<SequenceDef> {
    super::schema::use_schema(primary, txn, &new.schema).await?;
    let id = allocate_table_id(primary, txn).await?;
    let def = sequence_def(id, txn.database(), new)?;
    let name_key = table_name_key(txn.database(), &def.schema, &def.name);
    let state_key = sequence_state_key(id);
    txn.lock(&name_key).await?;
    txn.lock(&state_key).await?;
    txn.put(name_key, Bytes::copy_from_slice(&id.to_be_bytes()));
    txn.put(sequence_def_key(id), encode_sequence_def(&def));
    txn.put(state_key, SequenceState::initial(&def).encode());
    tracing::info!(sequence = %def.name, id, "created sequence");
    Ok(def)
}

/// The definition PostgreSQL's defaults and `options` give.
fn sequence_def(id: u64, database: &str, new: NewSequence) -> SqlResult<SequenceDef> {
    let (type_min, type_max) = match new.ty {
        SqlType::Int2 => (i16::MIN as i64, i16::MAX as i64),
        SqlType::Int4 => (i32::MIN as i64, i32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    };
    let mut increment = 1;
    let (mut min, mut max, mut start, mut cache, mut cycle) = (None, None, None, 1, false);
    for option in &new.options {
        match option {
            SequenceOptions::IncrementBy(e, _) => increment = option_value(e, "INCREMENT")?,
            SequenceOptions::MinValue(e) => {
                min = e
                    .as_ref()
                    .map(|e| option_value(e, "MINVALUE"))
                    .transpose()?
            }
            SequenceOptions::MaxValue(e) => {
                max = e
                    .as_ref()
                    .map(|e| option_value(e, "MAXVALUE"))
                    .transpose()?
            }
            SequenceOptions::StartWith(e, _) => start = Some(option_value(e, "START")?),
            SequenceOptions::Cache(e) => cache = option_value(e, "CACHE")?,
            // sqlparser marks `NO CYCLE` as true.
            SequenceOptions::Cycle(no) => cycle = !*no,
        }
    }
    if increment == 0 {
        return Err(invalid("INCREMENT must not be zero"));
    }
    let min = min.unwrap_or(if increment > 0 { 1 } else { type_min });
    let max = max.unwrap_or(if increment > 0 { type_max } else { -1 });
    let type_name = new.ty.display_name();
    for (what, v) in [("MINVALUE", min), ("MAXVALUE", max)] {
        if v < type_min || v > type_max {
            return Err(invalid(format!(
                "{what} ({v}) is out of range for sequence data type {type_name}"
            )));
        }
    }
    if min >= max {
        return Err(invalid(format!(
            "MINVALUE ({min}) must be less than MAXVALUE ({max})"
        )));
    }
    let start = start.unwrap_or(if increment > 0 { min } else { max });
    if start < min {
        return Err(invalid(format!(
            "START value ({start}) cannot be less than MINVALUE ({min})"
        )));
    }
    if start > max {
        return Err(invalid(format!(
            "START value ({start}) cannot be greater than MAXVALUE ({max})"
        )));
    }
    if cache < 1 {
        return Err(invalid(format!(
            "CACHE ({cache}) must be greater than zero"
        )));
    }
    Ok(SequenceDef {
        id,
        database: database.to_string(),
        schema: new.schema,
        name: new.name,
        ty: new.ty,
        start,
        increment,
        min,
        max,
        cache,
        cycle,
        owned_by: new.owned_by,
    })
}

fn invalid(message: impl Into<String>) -> SqlError {
    SqlError::new(sqlstate::INVALID_PARAMETER_VALUE, message)
}

/// A sequence option's integer (a literal, possibly negative).
fn option_value(e: &SqlExpr, what: &str) -> SqlResult<i64> {
    e.to_string()
        .replace(' ', "")
        .parse()
        .map_err(|_| SqlError::syntax(format!("{what} must be an integer, not {e}")))
}

/// A name for the sequence a serial or identity column owns: `<table>_<column>_seq`, or with a
/// number appended when that is taken (as PostgreSQL picks it).
pub fn owned_sequence_name(
    view: &CatalogView,
    schema: &str,
    table: &str,
    column: &str,
) -> SqlResult<String> {
    let base = format!("{table}_{column}_seq");
    if !view.relation_exists(schema, &base)? {
        return Ok(base);
    }
    for n in 1.. {
        let candidate = format!("{base}{n}");
        if !view.relation_exists(schema, &candidate)? {
            return Ok(candidate);
        }
    }
    unreachable!("some numbered name is free")
}

/// `DROP SEQUENCE`.
pub async fn drop_sequences(
    primary: &Primary,
    txn: &mut Transaction,
    names: &[ObjectName],
    if_exists: bool,
    cascade: bool,
) -> SqlResult<DdlOutcome> {
    let mut notices = Vec::new();
    for name in names {
        let (schema, seq) = table_name(name)?;
        txn.lock(&table_name_key(txn.database(), &schema, &seq))
            .await?;
        let view = CatalogView::of(&primary.catalog, txn);
        match view.get_sequence(&schema, &seq)? {
            Some(def) => {
                let dependents = dependent_defaults(&view, &def);
                drop_dependent_defaults(txn, &def, dependents, cascade).await?;
                remove_sequence(txn, &def).await?
            }
            None => notices.push(super::not_dropped(
                &view, &schema, &seq, "sequence", if_exists,
            )?),
        }
    }
    Ok(DdlOutcome::with_notices("DROP SEQUENCE", notices))
}

/// Refuses to drop a sequence that column defaults call (2BP01), unless `cascade`: then those
/// defaults are dropped. An identity column's sequence is never dropped on its own.
async fn drop_dependent_defaults(
    txn: &mut Transaction,
    def: &SequenceDef,
    dependents: Vec<(Arc<TableDef>, ColumnDef)>,
    cascade: bool,
) -> SqlResult<()> {
    if let Some((table, column)) = dependents.iter().find(|(_, c)| c.identity.is_some()) {
        return Err(SqlError::new(
            sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
            format!(
                "cannot drop sequence {} because column {} of table {} requires it",
                def.name, column.name, table.name
            ),
        )
        .with_hint(format!(
            "You can drop column {} of table {} instead.",
            column.name, table.name
        )));
    }
    if !cascade && !dependents.is_empty() {
        let detail = dependents
            .iter()
            .map(|(t, c)| {
                format!(
                    "default value for column {} of table {} depends on sequence {}",
                    c.name, t.name, def.name
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        return Err(SqlError::new(
            sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
            format!(
                "cannot drop sequence {} because other objects depend on it",
                def.name
            ),
        )
        .with_detail(detail)
        .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
    }
    for (table, column) in dependents {
        let mut changed = table.as_ref().clone();
        if let Some(c) = changed.columns.iter_mut().find(|c| c.id == column.id) {
            c.default = None;
        }
        super::replace_table_def(txn, &changed).await?;
    }
    Ok(())
}

/// The columns whose default calls `nextval` of this sequence, with their tables.
fn dependent_defaults(
    view: &CatalogView,
    def: &SequenceDef,
) -> Vec<(
    std::sync::Arc<crate::catalog::TableDef>,
    crate::catalog::ColumnDef,
)> {
    let call = nextval_default(&def.schema, &def.name);
    view.tables(&def.schema)
        .into_iter()
        .flat_map(|t| {
            t.columns
                .iter()
                .filter(|c| c.default.as_deref() == Some(call.as_str()))
                .map(|c| (t.clone(), c.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The default of a column whose values come from the sequence `schema.name`, as PostgreSQL
/// prints it: qualified unless the sequence is in `public`.
pub fn nextval_default(schema: &str, name: &str) -> String {
    let quoted = crate::pg_catalog::quote_ident(name);
    let qualified = if schema == crate::catalog::DEFAULT_SCHEMA {
        quoted
    } else {
        format!("{}.{quoted}", crate::pg_catalog::quote_ident(schema))
    };
    format!("nextval('{}'::regclass)", qualified.replace('\'', "''"))
}

/// Deletes a sequence's name, definition and state in `txn`.
pub async fn remove_sequence(txn: &mut Transaction, def: &SequenceDef) -> SqlResult<()> {
    let name_key = table_name_key(&def.database, &def.schema, &def.name);
    for key in [
        name_key,
        sequence_def_key(def.id),
        sequence_state_key(def.id),
    ] {
        txn.lock(&key).await?;
        txn.delete(key);
    }
    tracing::info!(sequence = %def.name, id = def.id, "dropped sequence");
    Ok(())
}
