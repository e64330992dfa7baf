//! Generated columns (`GENERATED ALWAYS AS (expr) STORED`): the value is computed from the other
//! columns of the row each time a row is inserted or updated, and stored like any other value.
//! A statement may not give one a value of its own (428C9), only `DEFAULT`.

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::execution::context::SessionContext;

use crate::catalog::{ColumnDef, TableDef};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::row_expr::{expression_names, table_batch, RowExpr};

/// Checks the generation expressions of a new table or column as PostgreSQL does: each must
/// plan over the table's columns, be immutable and read no generated column.
pub fn validate(ctx: &SessionContext, def: &TableDef) -> SqlResult<()> {
    for column in def.columns.iter().filter(|c| c.generated.is_some()) {
        let sql = column
            .generated
            .as_deref()
            .expect("filtered to generated columns");
        if let Some(other) = expression_names(sql).into_iter().find(|name| {
            def.columns
                .iter()
                .any(|c| &c.name == name && c.generated.is_some())
        }) {
            return Err(SqlError::new(
                sqlstate::INVALID_OBJECT_DEFINITION,
                format!("cannot use generated column \"{other}\" in column generation expression"),
            )
            .with_detail("A generated column cannot reference another generated column."));
        }
        let planned = RowExpr::plan(ctx, def, sql)?;
        planned
            .require_immutable("column generation expression")
            .map_err(|e| match e.code {
                sqlstate::INVALID_OBJECT_DEFINITION => SqlError::new(
                    sqlstate::INVALID_OBJECT_DEFINITION,
                    "generation expression is not immutable",
                ),
                _ => e,
            })?;
    }
    Ok(())
}

/// Computes every generated column of `columns` (the table's columns, in order, for a batch of
/// rows about to be written) from the others.
pub fn compute(ctx: &SessionContext, def: &TableDef, columns: &mut [ArrayRef]) -> SqlResult<()> {
    if !def.columns.iter().any(|c| c.generated.is_some()) || columns.is_empty() {
        return Ok(());
    }
    let batch = table_batch(def, columns)?;
    for (position, column) in def.columns.iter().enumerate() {
        if let Some(sql) = &column.generated {
            let values = RowExpr::plan(ctx, def, sql)?.evaluate(&batch)?;
            columns[position] = crate::text_input::cast_array(&values, &column.ty.arrow_type())?;
        }
    }
    Ok(())
}

/// `batch` (of the table's columns) with its generated columns computed.
pub fn compute_batch(
    ctx: &SessionContext,
    def: &TableDef,
    batch: RecordBatch,
) -> SqlResult<RecordBatch> {
    if !def.columns.iter().any(|c| c.generated.is_some()) {
        return Ok(batch);
    }
    let mut columns = batch.columns().to_vec();
    compute(ctx, def, &mut columns)?;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// The error for a statement that gives a generated column a value.
pub fn not_default(column: &ColumnDef, update: bool) -> SqlError {
    let message = if update {
        format!("column \"{}\" can only be updated to DEFAULT", column.name)
    } else {
        format!(
            "cannot insert a non-DEFAULT value into column \"{}\"",
            column.name
        )
    };
    SqlError::new(sqlstate::GENERATED_ALWAYS, message)
        .with_detail(format!("Column \"{}\" is a generated column.", column.name))
}

/// The generated column, if any, whose expression reads the column `name`: what keeps it from
/// being dropped or retyped.
pub fn dependent<'a>(def: &'a TableDef, name: &str) -> Option<&'a ColumnDef> {
    def.columns.iter().find(|c| {
        c.name != name
            && c.generated
                .as_deref()
                .is_some_and(|sql| expression_names(sql).iter().any(|n| n == name))
    })
}
