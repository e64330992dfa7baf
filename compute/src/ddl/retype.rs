//! `ALTER TABLE … ALTER COLUMN c [SET DATA] TYPE t [USING e]`: what the definition becomes.
//!
//! The rows are rewritten the way an UPDATE writes them: the new column is first added under a
//! temporary name, an UPDATE fills it from the old one (or from USING), then it takes the old
//! column's name and place and the old one goes (its values stay in the stored rows unread, as
//! after DROP COLUMN). Indexes on the column are built again over the new values.

use datafusion::sql::sqlparser::ast::{DataType as SqlDataType, Expr as SqlExpr};

use super::{column_type, compatible};
use crate::catalog::{CatalogView, ColumnDef, TableDef};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::indexes::IndexDef;
use crate::pg_catalog::quote_ident;
use crate::types::SqlType;

/// The steps of one column's change of type.
#[derive(Debug)]
pub struct Retype {
    /// The table with the new column added at the end, under `temporary`.
    pub staged: TableDef,
    pub temporary: String,
    /// The SQL each row's new value is computed by (USING's expression, or the column).
    pub value: String,
    /// The table once the new column has the old one's name and place, without the indexes
    /// that used the old column.
    pub finished: TableDef,
    /// The indexes to build again, as they were.
    pub indexes: Vec<IndexDef>,
    /// The column is part of the primary key: every row gets a new key.
    pub rekey: bool,
}

/// Plans the change of `column`'s type. Without USING the old values must convert to the new
/// type by an assignment cast, as in PostgreSQL (42804 otherwise).
pub fn retype_column(
    view: &CatalogView,
    def: &TableDef,
    column: &str,
    data_type: &SqlDataType,
    using: Option<&SqlExpr>,
) -> SqlResult<Retype> {
    let position = def
        .columns
        .iter()
        .position(|c| c.name == column)
        .ok_or_else(|| {
            SqlError::new(
                sqlstate::UNDEFINED_COLUMN,
                format!(
                    "column \"{column}\" of relation \"{}\" does not exist",
                    def.name
                ),
            )
        })?;
    let old = &def.columns[position];
    if let Some(dependent) = crate::generated::dependent(def, column) {
        return Err(SqlError::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            "cannot alter type of a column used by a generated column",
        )
        .with_detail(format!(
            "Column \"{column}\" is used by generated column \"{}\".",
            dependent.name
        )));
    }
    if old.generated.is_some() {
        return Err(SqlError::unsupported(
            "altering the type of a generated column",
        ));
    }
    let super::ColumnType {
        ty,
        serial,
        enum_type,
    } = column_type(data_type, view)?;
    if let Some(serial) = serial {
        return Err(SqlError::new(
            sqlstate::UNDEFINED_OBJECT,
            format!("type \"{}\" does not exist", serial.display_name()),
        ));
    }
    let unsupported = |what: &str| {
        SqlError::unsupported(format!(
            "changing the type of {what} (column \"{column}\" of relation \"{}\")",
            def.name
        ))
    };
    if old.identity.is_some() {
        return Err(unsupported("an identity column"));
    }
    if using.is_none() && !assignable(&old.ty, &ty) {
        let name = ty.display_name();
        return Err(SqlError::new(
            sqlstate::DATATYPE_MISMATCH,
            format!("column \"{column}\" cannot be cast automatically to type {name}"),
        )
        .with_hint(format!(
            "You might need to specify \"USING {}::{name}\".",
            quote_ident(column)
        )));
    }
    // A foreign key from or to the column must still be one (the values compare).
    for fk in def
        .foreign_keys
        .iter()
        .filter(|fk| fk.columns.contains(&old.id))
    {
        let parent = if fk.parent == def.id {
            std::sync::Arc::new(def.clone())
        } else {
            view.table_by_id(fk.parent)?
                .ok_or_else(|| SqlError::internal("a foreign key's table is missing"))?
        };
        let at = fk
            .columns
            .iter()
            .position(|c| *c == old.id)
            .expect("filtered");
        let referenced = &parent.columns[fk.referenced_positions(&parent)[at]];
        if !compatible(ty, referenced.ty) {
            return Err(incompatible(
                &fk.name,
                column,
                &referenced.name,
                ty,
                referenced.ty,
            ));
        }
    }
    for (child, fk) in crate::foreign_keys::referencing(view, def) {
        let referenced = fk.referenced_positions(def);
        if let Some(at) = referenced.iter().position(|&p| p == position) {
            let referencing = &child.columns[fk.column_positions(&child)[at]];
            if !compatible(referencing.ty, ty) {
                return Err(incompatible(
                    &fk.name,
                    &referencing.name,
                    column,
                    referencing.ty,
                    ty,
                ));
            }
        }
    }
    let id = def.next_column_id;
    let temporary = format!("strata_retype_{id}");
    let mut staged = def.clone();
    staged.columns.push(ColumnDef {
        id,
        name: temporary.clone(),
        ty,
        nullable: true,
        default: None,
        identity: None,
        enum_type: enum_type.clone(),
        generated: None,
    });
    staged.next_column_id += 1;
    let mut finished = def.clone();
    finished.next_column_id = staged.next_column_id;
    finished.columns[position] = ColumnDef {
        id,
        ty,
        enum_type,
        ..old.clone()
    };
    let remap = |ids: &mut Vec<u32>| {
        for c in ids.iter_mut().filter(|c| **c == old.id) {
            *c = id;
        }
    };
    for fk in &mut finished.foreign_keys {
        remap(&mut fk.columns);
        if fk.parent == def.id {
            remap(&mut fk.referenced_columns);
        }
    }
    let rekey = def.primary_key.contains(&old.id);
    let indexes = if rekey {
        // Every row moves to a new key, and every index is built again (see `rewrite_rows`).
        remap(&mut finished.primary_key);
        for index in &mut finished.indexes {
            remap(&mut index.columns);
        }
        Vec::new()
    } else {
        let (indexes, kept) = def
            .indexes
            .iter()
            .cloned()
            .partition(|i| i.reads(def, old.id));
        finished.indexes = kept;
        indexes
    };
    Ok(Retype {
        staged,
        temporary,
        value: using.map_or_else(|| quote_ident(column), |e| e.to_string()),
        finished,
        indexes,
        rekey,
    })
}

/// Whether PostgreSQL converts `from` to `to` in an assignment (its implicit and assignment
/// casts, and the I/O conversion to a string type every type has).
fn assignable(from: &SqlType, to: &SqlType) -> bool {
    use SqlType::*;
    let numeric = |t: &SqlType| matches!(t, Int2 | Int4 | Int8 | Float4 | Float8 | Numeric { .. });
    let datetime = |t: &SqlType| matches!(t, Date | Timestamp | Timestamptz);
    let json = |t: &SqlType| matches!(t, Json | Jsonb);
    if let (Array { element: a }, Array { element: b }) = (from, to) {
        return a == b || *b == crate::types::ArrayElement::Text;
    }
    std::mem::discriminant(from) == std::mem::discriminant(to)
        || matches!(to, Text | Varchar { .. } | Char { .. })
        || (numeric(from) && numeric(to))
        || (datetime(from) && datetime(to))
        || (json(from) && json(to))
        || (matches!(from, Interval) && matches!(to, Time))
        || (matches!(from, Time) && matches!(to, Interval))
        || (matches!(from, Timestamp | Timestamptz) && matches!(to, Time))
}

fn incompatible(fk: &str, a: &str, b: &str, a_ty: SqlType, b_ty: SqlType) -> SqlError {
    SqlError::new(
        sqlstate::DATATYPE_MISMATCH,
        format!(
            "foreign key constraint \"{fk}\" cannot be implemented: key columns \"{a}\" and \"{b}\" are of incompatible types: {} and {}",
            a_ty.display_name(),
            b_ty.display_name()
        ),
    )
}
