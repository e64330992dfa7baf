//! `date + interval` and `date - interval`, which PostgreSQL computes as timestamps:
//! `'2024-01-31'::date + interval '1 month'` is `2024-02-29 00:00:00`, and
//! `date - interval '2 hours'` keeps its hours. DataFusion keeps a date (dropping any hours), so
//! the date is made a timestamp first. Done as the SQL planner plans the operator, before type
//! coercion, so that a comparison with the result coerces to the timestamp.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{DFSchema, Result as DFResult};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::sql::sqlparser::ast::BinaryOperator;

/// Plans a date plus or minus an interval over a timestamp (see the module doc).
#[derive(Debug, Default)]
pub struct DateIntervalPlanner;

impl ExprPlanner for DateIntervalPlanner {
    fn plan_binary_op(
        &self,
        mut expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> DFResult<PlannerResult<RawBinaryExpr>> {
        let type_of = |e: &Expr| e.get_type(schema).ok();
        let interval = |t: &Option<DataType>| matches!(t, Some(DataType::Interval(_)));
        let date = |t: &Option<DataType>| matches!(t, Some(DataType::Date32));
        let (left, right) = (type_of(&expr.left), type_of(&expr.right));
        let timestamp = DataType::Timestamp(TimeUnit::Microsecond, None);
        match expr.op {
            BinaryOperator::Plus | BinaryOperator::Minus if date(&left) && interval(&right) => {
                expr.left = expr.left.cast_to(&timestamp, schema)?;
            }
            BinaryOperator::Plus if interval(&left) && date(&right) => {
                expr.right = expr.right.cast_to(&timestamp, schema)?;
            }
            _ => {}
        }
        Ok(PlannerResult::Original(expr))
    }
}
