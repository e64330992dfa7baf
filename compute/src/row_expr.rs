//! Expressions over one table's rows that a table definition keeps as SQL text: CHECK
//! constraints, index keys, partial-index predicates and generated columns. They are planned as a query's
//! expressions are (the same statement rewrites: `->>`, PostgreSQL casts, `SIMILAR TO`, …) and
//! evaluated by DataFusion over the batches of rows about to be written.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::DFSchema;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{Expr, ExprSchemable, Volatility};
use datafusion::optimizer::simplify_expressions::{ExprSimplifier, SimplifyContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, Expr as SqlExpr, Ident, SelectItem, SetExpr, Statement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::catalog::TableDef;
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::names::normalize;

/// One planned expression over a table's columns.
pub struct RowExpr {
    logical: Expr,
    physical: Arc<dyn PhysicalExpr>,
    data_type: DataType,
}

impl RowExpr {
    /// Plans `sql` over the columns of `def`.
    pub fn plan(ctx: &SessionContext, def: &TableDef, sql: &str) -> SqlResult<Self> {
        let rewritten = rewrite(sql)?;
        let df_schema = DFSchema::try_from(def.arrow_schema().as_ref().clone())?;
        let state = ctx.state();
        let logical = state.create_logical_expr(&rewritten, &df_schema)?;
        let data_type = logical.get_type(&df_schema)?;
        // Simplified as a query's expressions are: some functions (`coalesce`) only run as what
        // they simplify to.
        let simplified = ExprSimplifier::new(
            SimplifyContext::builder()
                .with_schema(Arc::new(df_schema.clone()))
                .build(),
        )
        .simplify(logical.clone())?;
        let physical = state.create_physical_expr(simplified, &df_schema)?;
        Ok(Self {
            logical,
            physical,
            data_type,
        })
    }

    pub fn data_type(&self) -> &DataType {
        &self.data_type
    }

    /// The expression's value for every row of `batch` (the table's columns, in order).
    pub fn evaluate(&self, batch: &RecordBatch) -> SqlResult<ArrayRef> {
        Ok(self
            .physical
            .evaluate(batch)?
            .into_array(batch.num_rows())?)
    }

    /// Fails as PostgreSQL does for an expression an index cannot be built on: one whose value
    /// may change for the same row (a function not immutable: `now()`, `random()`; 42P17), or
    /// one with an aggregate (42803) or a subquery (0A000). `what` names the place
    /// ("index expression", "index predicate").
    pub fn require_immutable(&self, what: &str) -> SqlResult<()> {
        let mut error = None;
        let _ = self.logical.apply(|e| {
            error = match e {
                Expr::ScalarFunction(f)
                    if f.func.signature().volatility != Volatility::Immutable =>
                {
                    Some(SqlError::new(
                        sqlstate::INVALID_OBJECT_DEFINITION,
                        format!("functions in {what} must be marked IMMUTABLE"),
                    ))
                }
                Expr::AggregateFunction(_) | Expr::WindowFunction(_) => Some(SqlError::new(
                    sqlstate::GROUPING_ERROR,
                    format!("aggregate functions are not allowed in {what}s"),
                )),
                Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) => Some(
                    SqlError::unsupported(format!("cannot use subquery in {what}")),
                ),
                _ => None,
            };
            Ok(match error {
                Some(_) => TreeNodeRecursion::Stop,
                None => TreeNodeRecursion::Continue,
            })
        });
        error.map_or(Ok(()), Err)
    }
}

/// The type of an expression's values as PostgreSQL names it in messages (`integer`).
pub fn type_name(t: &DataType) -> String {
    let pg = crate::types::pg_type_of_arrow(t);
    crate::pg_catalog::format_type(i64::from(pg.oid()), None).unwrap_or_else(|| pg.name().into())
}

/// The batch of `columns` (the table's columns, in order) that expressions read.
pub fn table_batch(def: &TableDef, columns: &[ArrayRef]) -> SqlResult<RecordBatch> {
    Ok(RecordBatch::try_new(def.arrow_schema(), columns.to_vec())?)
}

/// `sql` after the rewrites every statement gets before DataFusion plans it.
fn rewrite(sql: &str) -> SqlResult<String> {
    let mut statements = crate::sql_rewrite::parse_sql(&format!("SELECT {sql}"))
        .map_err(|e| SqlError::new(sqlstate::SYNTAX_ERROR, e))?;
    let [statement] = statements.as_mut_slice() else {
        return Err(SqlError::internal(format!("stored expression {sql}")));
    };
    crate::query_forms::rewrite(statement);
    crate::pg_catalog::rewrite_catalog_syntax(statement);
    let Statement::Query(query) = statement else {
        return Err(SqlError::internal(format!("stored expression {sql}")));
    };
    match query.body.as_ref() {
        SetExpr::Select(select) => match select.projection.as_slice() {
            [SelectItem::UnnamedExpr(expr)] => Ok(expr.to_string()),
            _ => Err(SqlError::internal(format!("stored expression {sql}"))),
        },
        _ => Err(SqlError::internal(format!("stored expression {sql}"))),
    }
}

/// A stored expression, parsed.
pub fn parse_expression(sql: &str) -> SqlResult<SqlExpr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::internal(format!("stored expression {sql}: {e}")))
}

/// A stored expression as PostgreSQL deparses one standing alone (a key in an index's list,
/// `information_schema.columns.generation_expression`): in parentheses unless it is a function
/// call.
pub fn deparsed(sql: &str) -> String {
    match parse_expression(sql) {
        Ok(SqlExpr::Function(_)) => sql.to_string(),
        _ => format!("({sql})"),
    }
}

/// The column names an expression mentions.
pub fn expression_names(sql: &str) -> Vec<String> {
    let Ok(mut expr) = parse_expression(sql) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let _ = visit_expressions_mut(&mut expr, |e| {
        match e {
            SqlExpr::Identifier(id) => names.push(normalize(id)),
            SqlExpr::CompoundIdentifier(parts) => names.extend(parts.last().map(normalize)),
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    names
}

/// An expression with the column `old` named `new`.
pub fn rename_in_expression(sql: &str, old: &str, new: &str) -> SqlResult<String> {
    let mut expr = parse_expression(sql)?;
    let renamed = if crate::pg_catalog::quote_ident(new) == new {
        Ident::new(new)
    } else {
        Ident::with_quote('"', new)
    };
    let _ = visit_expressions_mut(&mut expr, |e| {
        match e {
            SqlExpr::Identifier(id) if normalize(id) == old => *id = renamed.clone(),
            SqlExpr::CompoundIdentifier(parts) => {
                if let Some(last) = parts.last_mut().filter(|p| normalize(p) == old) {
                    *last = renamed.clone();
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(expr.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_get_the_statement_rewrites() {
        let rewritten = rewrite("(data ->> 'k') = 'x'").unwrap();
        assert!(!rewritten.contains("->>"), "{rewritten}");
        assert_eq!(rewrite("lower(email)").unwrap(), "lower(email)");
    }

    #[test]
    fn renames_reach_check_expressions() {
        assert_eq!(
            rename_in_expression("a > 0 AND t.a < b", "a", "x").unwrap(),
            "x > 0 AND t.x < b"
        );
        assert_eq!(expression_names("lo <= hi"), vec!["lo", "hi"]);
    }
}
