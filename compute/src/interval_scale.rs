//! `interval * number`, `number * interval` and `interval / number`, as PostgreSQL computes them.
//!
//! DataFusion has no such operators (it refuses the plan), and applications write them often:
//! `now() - interval '1 day' * $1`. The SQL planner hands binary operators to [`ExprPlanner`]s
//! first; this one plans these three as `interval_scale(interval, factor)`, a function that
//! follows PostgreSQL's `interval_mul`: each field is scaled, and the fractions of months and of
//! days spill down into days (a month is 30 days) and into time, rounded to the microsecond.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Float64Array, IntervalMonthDayNanoArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, IntervalUnit};
use datafusion::common::{DFSchema, Result as DFResult, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::sql::sqlparser::ast::BinaryOperator;

use crate::error::{sqlstate, SqlError};
use crate::interval::PgInterval;

const INTERVAL: DataType = DataType::Interval(IntervalUnit::MonthDayNano);
const DAYS_PER_MONTH: f64 = 30.0;
const SECONDS_PER_DAY: f64 = 86_400.0;

/// Plans `interval * n`, `n * interval` and `interval / n` (see the module doc).
#[derive(Debug, Default)]
pub struct IntervalScalePlanner;

impl ExprPlanner for IntervalScalePlanner {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> DFResult<PlannerResult<RawBinaryExpr>> {
        let kind = |e: &Expr| match e.get_type(schema) {
            Ok(DataType::Interval(_)) => Some(true),
            Ok(t) if t.is_numeric() => Some(false),
            _ => None,
        };
        let (left, right) = (kind(&expr.left), kind(&expr.right));
        let scaled = match (&expr.op, left, right) {
            (BinaryOperator::Multiply, Some(true), Some(false)) => {
                Some((expr.left.clone(), expr.right.clone(), false))
            }
            (BinaryOperator::Multiply, Some(false), Some(true)) => {
                Some((expr.right.clone(), expr.left.clone(), false))
            }
            (BinaryOperator::Divide, Some(true), Some(false)) => {
                Some((expr.left.clone(), expr.right.clone(), true))
            }
            _ => None,
        };
        let Some((interval, factor, divide)) = scaled else {
            return Ok(PlannerResult::Original(expr));
        };
        let args = vec![
            interval.cast_to(&INTERVAL, schema)?,
            factor.cast_to(&DataType::Float64, schema)?,
        ];
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(IntervalScale::udf(divide), args),
        )))
    }
}

/// `interval_scale(interval, float8)`: the interval multiplied (or divided) by the factor.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalScale {
    divide: bool,
    signature: Signature,
}

impl IntervalScale {
    fn udf(divide: bool) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(IntervalScale {
            divide,
            signature: Signature::exact(vec![INTERVAL, DataType::Float64], Volatility::Immutable),
        }))
    }
}

/// Microsecond rounding, PostgreSQL's `TSROUND`.
fn round_micros(seconds: f64) -> f64 {
    (seconds * 1e6).round() / 1e6
}

/// `span * factor` as PostgreSQL's `interval_mul` computes it; `None` if it does not fit.
pub fn scale(span: PgInterval, factor: f64) -> Option<PgInterval> {
    let months = f64::from(span.months) * factor;
    let days = f64::from(span.days) * factor;
    if !months.is_finite() || !days.is_finite() || months.abs() >= 2.147_483_648e9 {
        return None;
    }
    let whole_months = months.trunc();
    let whole_days = days.trunc();
    let month_remainder_days = round_micros((months - whole_months) * DAYS_PER_MONTH);
    let mut seconds_remainder = round_micros(
        (days - whole_days + month_remainder_days - month_remainder_days.trunc()) * SECONDS_PER_DAY,
    );
    let mut result_days = whole_days + month_remainder_days.trunc();
    if seconds_remainder.abs() >= SECONDS_PER_DAY {
        let spilled = (seconds_remainder / SECONDS_PER_DAY).trunc();
        result_days += spilled;
        seconds_remainder -= spilled * SECONDS_PER_DAY;
    }
    let micros = (span.micros as f64 * factor + seconds_remainder * 1e6).round();
    if result_days.abs() >= 2.147_483_648e9 || !micros.is_finite() || micros.abs() >= 9.2e18 {
        return None;
    }
    Some(PgInterval {
        months: whole_months as i32,
        days: result_days as i32,
        micros: micros as i64,
    })
}

impl ScalarUDFImpl for IntervalScale {
    fn name(&self) -> &str {
        if self.divide {
            "interval_div"
        } else {
            "interval_mul"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(INTERVAL)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let intervals = cast(&arrays[0], &INTERVAL)?;
        let intervals = intervals
            .as_any()
            .downcast_ref::<IntervalMonthDayNanoArray>()
            .expect("cast to interval");
        let factors = cast(&arrays[1], &DataType::Float64)?;
        let factors = factors
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("cast to float8");
        let mut out = Vec::with_capacity(intervals.len());
        for i in 0..intervals.len() {
            if intervals.is_null(i) || factors.is_null(i) {
                out.push(None);
                continue;
            }
            let mut factor = factors.value(i);
            if self.divide {
                if factor == 0.0 {
                    return Err(
                        SqlError::new(sqlstate::DIVISION_BY_ZERO, "division by zero")
                            .into_datafusion(),
                    );
                }
                factor = 1.0 / factor;
            }
            let span = PgInterval::from_arrow(intervals.value(i));
            let scaled = scale(span, factor).ok_or_else(|| {
                SqlError::new(sqlstate::DATETIME_FIELD_OVERFLOW, "interval out of range")
                    .into_datafusion()
            })?;
            out.push(Some(scaled.to_arrow()));
        }
        let result: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(out));
        Ok(if all_scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&result, 0)?)
        } else {
            ColumnarValue::Array(result)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(months: i32, days: i32, micros: i64) -> PgInterval {
        PgInterval {
            months,
            days,
            micros,
        }
    }

    #[test]
    fn fractions_spill_down_as_postgres_spills_them() {
        const HOUR: i64 = 3_600_000_000;
        assert_eq!(scale(iv(0, 1, 0), 2.0), Some(iv(0, 2, 0)));
        // '1 mon' * 1.5 = '1 mon 15 days'; '1 day' * 1.5 = '1 day 12:00:00'.
        assert_eq!(scale(iv(1, 0, 0), 1.5), Some(iv(1, 15, 0)));
        assert_eq!(scale(iv(0, 1, 0), 1.5), Some(iv(0, 1, 12 * HOUR)));
        // '1 hour' * -2.5 = '-02:30:00'; '3 days' / 2 = '1 day 12:00:00'.
        assert_eq!(scale(iv(0, 0, HOUR), -2.5), Some(iv(0, 0, -5 * HOUR / 2)));
        assert_eq!(scale(iv(0, 3, 0), 0.5), Some(iv(0, 1, 12 * HOUR)));
        assert_eq!(scale(iv(i32::MAX, 0, 0), 2.0), None);
    }
}
