//! CHECK constraints: named boolean expressions every inserted or updated row must not make
//! false (NULL passes, as in PostgreSQL).
//!
//! The expression is kept as SQL text in the table definition and evaluated over the rows about
//! to be written (see `row_expr`).

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::execution::context::SessionContext;
use datafusion::sql::sqlparser::ast::{visit_expressions, Expr};
use serde::{Deserialize, Serialize};

use crate::catalog::TableDef;
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::names::normalize;
use crate::pg_encode::row_text;
use crate::row_expr::{table_batch, RowExpr};

/// A CHECK constraint of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckDef {
    pub name: String,
    /// The expression as SQL text.
    pub expr: String,
    /// Added `NOT VALID`: rows written before were not checked (until VALIDATE CONSTRAINT).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_valid: bool,
}

/// The name PostgreSQL gives an unnamed check: `<table>_<column>_check` when it reads one
/// column, `<table>_check` otherwise, with a number appended when that is taken.
pub fn default_check_name(
    table: &str,
    expr: &Expr,
    column_names: &[String],
    taken: &[CheckDef],
) -> String {
    let mut referenced = Vec::new();
    let _ = visit_expressions(expr, |e| {
        let ident = match e {
            Expr::Identifier(i) => Some(i),
            Expr::CompoundIdentifier(parts) => parts.last(),
            _ => None,
        };
        if let Some(name) = ident.map(normalize) {
            if column_names.contains(&name) && !referenced.contains(&name) {
                referenced.push(name);
            }
        }
        ControlFlow::<()>::Continue(())
    });
    let base = match referenced.as_slice() {
        [column] => format!("{table}_{column}_check"),
        _ => format!("{table}_check"),
    };
    let taken: HashSet<&str> = taken.iter().map(|c| c.name.as_str()).collect();
    if !taken.contains(base.as_str()) {
        return base;
    }
    (1..)
        .map(|n| format!("{base}{n}"))
        .find(|name| !taken.contains(name.as_str()))
        .expect("some numbered name is free")
}

/// Plans every check of a new table, so that a check naming an unknown column or of the wrong
/// type fails `CREATE TABLE` rather than the first INSERT.
pub fn validate(ctx: &SessionContext, def: &TableDef) -> SqlResult<()> {
    for check in &def.checks {
        let ty = RowExpr::plan(ctx, def, &check.expr)?.data_type().clone();
        if !matches!(ty, DataType::Boolean | DataType::Null) {
            return Err(SqlError::new(
                sqlstate::DATATYPE_MISMATCH,
                format!(
                    "argument of CHECK must be type boolean, not type {}",
                    crate::row_expr::type_name(&ty)
                ),
            ));
        }
    }
    Ok(())
}

/// Fails with 23514 if any row of `columns` (the table's columns, in order) makes a check false.
pub fn check_rows(ctx: &SessionContext, def: &TableDef, columns: &[ArrayRef]) -> SqlResult<()> {
    if def.checks.is_empty() || columns.first().is_none_or(|c| c.is_empty()) {
        return Ok(());
    }
    let batch = table_batch(def, columns)?;
    for check in &def.checks {
        let result = RowExpr::plan(ctx, def, &check.expr)?.evaluate(&batch)?;
        let result = cast(&result, &DataType::Boolean)?;
        let result = result.as_boolean();
        if let Some(row) = (0..result.len()).find(|&i| result.is_valid(i) && !result.value(i)) {
            return Err(violation(def, check, &batch, row));
        }
    }
    Ok(())
}

fn violation(def: &TableDef, check: &CheckDef, batch: &RecordBatch, row: usize) -> SqlError {
    let values = row_text(batch.columns(), row);
    SqlError::new(
        sqlstate::CHECK_VIOLATION,
        format!(
            "new row for relation \"{}\" violates check constraint \"{}\"",
            def.name, check.name
        ),
    )
    .with_detail(format!("Failing row contains ({values})."))
    .with_table(&def.schema, &def.name)
    .with_constraint(&check.name)
}
