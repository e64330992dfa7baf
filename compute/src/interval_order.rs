//! Interval comparisons and ORDER BY as PostgreSQL does them.
//!
//! PostgreSQL compares intervals by their span, a month counting as 30 days and a day as 24
//! hours (`interval '1 day' < interval '25 hours'`, `'1 month' = '30 days'`). Arrow compares
//! `Interval(MonthDayNano)` field by field. This analyzer rule puts `strata_interval_span(…)` on
//! both sides of every comparison of two intervals and under every ORDER BY of an interval.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Decimal128Array};
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNanoType, IntervalUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result as DFResult};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use crate::interval::PgInterval;

const INTERVAL: DataType = DataType::Interval(IntervalUnit::MonthDayNano);
/// The span in microseconds: at most 2^31 months of 30 days, in 38 digits with room to spare.
const SPAN: DataType = DataType::Decimal128(38, 0);

#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalSpan {
    signature: Signature,
}

fn span_udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(IntervalSpan {
        signature: Signature::exact(vec![INTERVAL], Volatility::Immutable),
    }))
}

impl ScalarUDFImpl for IntervalSpan {
    fn name(&self) -> &str {
        "strata_interval_span"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DFResult<DataType> {
        Ok(SPAN)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let spans: Decimal128Array = arrays[0]
            .as_primitive::<IntervalMonthDayNanoType>()
            .iter()
            .map(|v| v.map(|v| PgInterval::from_arrow(v).span_micros()))
            .collect();
        let spans = spans.with_precision_and_scale(38, 0)?;
        Ok(ColumnarValue::Array(Arc::new(spans) as ArrayRef))
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct IntervalOrderRule;

fn is_interval(expr: &Expr, schema: &DFSchema) -> bool {
    matches!(expr.get_type(schema), Ok(t) if t == INTERVAL)
}

fn span(udf: &Arc<ScalarUDF>, expr: Expr) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(udf.clone(), vec![expr]))
}

impl AnalyzerRule for IntervalOrderRule {
    fn name(&self) -> &str {
        "strata_interval_order"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DFResult<LogicalPlan> {
        let udf = span_udf();
        crate::expr_rules::rewrite_expressions(
            plan,
            // A sort key that is an interval sorts by its span.
            |key, schema| is_interval(key, schema).then(|| span(&udf, key.clone())),
            |e, schema| match e {
                Expr::BinaryExpr(BinaryExpr { left, op, right })
                    if matches!(
                        op,
                        Operator::Eq
                            | Operator::NotEq
                            | Operator::Lt
                            | Operator::LtEq
                            | Operator::Gt
                            | Operator::GtEq
                    ) && is_interval(&left, schema)
                        && is_interval(&right, schema) =>
                {
                    Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr {
                        left: Box::new(span(&udf, *left)),
                        op,
                        right: Box::new(span(&udf, *right)),
                    })))
                }
                other => Ok(Transformed::no(other)),
            },
        )
    }
}
