//! `generate_series` in `FROM`, including over columns of an enclosing query.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl};
use datafusion::common::{plan_err, Result as DFResult, ScalarValue};
use datafusion::datasource::{MemTable, TableProvider, ViewTable};
use datafusion::functions_nested::expr_fn::gen_series;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{lit, Expr, LogicalPlanBuilder};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;

use crate::error::{sqlstate, SqlError};
use crate::interval::PgInterval;
use crate::types::UTC;

/// DataFusion's `generate_series` table function evaluates its bounds while planning, so they
/// must be constants. PostgreSQL also lets them name columns of an enclosing query (psql's `\d`
/// does, in `generate_series(0, array_upper(pr.prattrs, 1))`). Such a call becomes a plan of its
/// own: one row holding the series as an array, unnested. The built-in function serves every
/// call with constant bounds.
#[derive(Debug)]
pub struct GenerateSeries {
    builtin: Arc<dyn TableFunctionImpl>,
}

pub const NAME: &str = "generate_series";

impl GenerateSeries {
    pub fn new() -> Self {
        Self {
            builtin: datafusion::functions_table::generate_series()
                .function()
                .clone(),
        }
    }
}

impl TableFunctionImpl for GenerateSeries {
    fn call_with_args(&self, args: TableFunctionArgs) -> DFResult<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if let Some(series) = time_series(exprs)? {
            return Ok(series);
        }
        if !exprs.iter().any(|e| e.contains_outer()) {
            // The built-in takes only int64 integer bounds; a bound computed by a function
            // returning int4 (`array_upper(…, 1)`, folded while planning) is widened.
            let widened: Vec<datafusion::logical_expr::Expr> = exprs
                .iter()
                .map(|e| match e {
                    datafusion::logical_expr::Expr::Literal(v, meta)
                        if v.data_type().is_integer() && !v.is_null() =>
                    {
                        v.cast_to(&datafusion::arrow::datatypes::DataType::Int64)
                            .map(|v| datafusion::logical_expr::Expr::Literal(v, meta.clone()))
                            .unwrap_or_else(|_| e.clone())
                    }
                    other => other.clone(),
                })
                .collect();
            return self
                .builtin
                .call_with_args(TableFunctionArgs::new(&widened, args.session()));
        }
        let (start, stop, step) = match exprs {
            [start, stop] => (start, stop, lit(1i64)),
            [start, stop, step] => (start, stop, step.clone()),
            _ => return plan_err!("generate_series takes two or three arguments"),
        };
        let series = gen_series(start.clone(), stop.clone(), step).alias(NAME);
        let plan = LogicalPlanBuilder::empty(true)
            .project(vec![series])?
            .unnest_column(NAME)?
            .build()?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

/// `generate_series(start, stop, step)` over dates or timestamps, as PostgreSQL runs it: a date
/// is a `timestamptz` at midnight (the function has no date form), a text literal takes the type
/// of the other bound, and each value is the previous one plus `step` (so a month step from
/// January 31 goes on from February's last day). `None` when the bounds are not times; constant
/// bounds only (a series over an enclosing query's columns takes the generic path).
fn time_series(exprs: &[Expr]) -> DFResult<Option<Arc<dyn TableProvider>>> {
    let [start, stop, step] = exprs else {
        return Ok(None);
    };
    let constant = |e: &Expr| -> DFResult<Option<ScalarValue>> {
        let simplified =
            ExprSimplifier::new(SimplifyContext::builder().build()).simplify(e.clone())?;
        Ok(match simplified {
            Expr::Literal(v, _) => Some(v),
            _ => None,
        })
    };
    let (Some(start), Some(stop), Some(step)) =
        (constant(start)?, constant(stop)?, constant(step)?)
    else {
        return Ok(None);
    };
    let time_zone = |v: &ScalarValue| match v.data_type() {
        DataType::Date32 | DataType::Date64 => Some(Some(Arc::<str>::from(UTC))),
        DataType::Timestamp(_, tz) => Some(tz.map(|_| Arc::<str>::from(UTC))),
        _ => None,
    };
    let Some(zone) = time_zone(&start).or_else(|| time_zone(&stop)) else {
        return Ok(None);
    };
    let target = DataType::Timestamp(TimeUnit::Microsecond, zone.clone());
    let micros = |v: &ScalarValue| -> DFResult<Option<i64>> {
        match v.cast_to(&target)? {
            ScalarValue::TimestampMicrosecond(m, _) => Ok(m),
            _ => Ok(None),
        }
    };
    let step = match step {
        ScalarValue::IntervalMonthDayNano(v) => v.map(PgInterval::from_arrow),
        ScalarValue::Utf8(Some(text)) | ScalarValue::Utf8View(Some(text)) => {
            Some(crate::interval::parse(&text).map_err(SqlError::into_datafusion)?)
        }
        ScalarValue::Utf8(None) | ScalarValue::Utf8View(None) | ScalarValue::Null => None,
        _ => return Ok(None),
    };
    let mut values: Vec<i64> = Vec::new();
    if let (Some(start), Some(stop), Some(step)) = (micros(&start)?, micros(&stop)?, step) {
        let span = step.months as i128 * 30 * 86_400_000_000
            + step.days as i128 * 86_400_000_000
            + step.micros as i128;
        if span == 0 {
            return Err(SqlError::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                "step size cannot equal zero",
            )
            .into_datafusion());
        }
        let mut current = start;
        while (span > 0 && current <= stop) || (span < 0 && current >= stop) {
            values.push(current);
            current = match add_interval(current, step) {
                Some(next) => next,
                None => break,
            };
        }
    }
    let array = TimestampMicrosecondArray::from(values).with_timezone_opt(zone);
    let schema = Arc::new(Schema::new(vec![Field::new(NAME, target, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(array)])?;
    Ok(Some(Arc::new(MemTable::try_new(
        schema,
        vec![vec![batch]],
    )?)))
}

/// A timestamp (UTC microseconds) plus an interval: months, then days, then microseconds, as
/// PostgreSQL adds them (in UTC, the only time zone sessions have).
fn add_interval(micros: i64, step: PgInterval) -> Option<i64> {
    let at = chrono::DateTime::from_timestamp_micros(micros)?.naive_utc();
    let at = match step.months {
        m if m >= 0 => at.checked_add_months(chrono::Months::new(m as u32))?,
        m => at.checked_sub_months(chrono::Months::new(m.unsigned_abs()))?,
    };
    let at = at.checked_add_signed(chrono::TimeDelta::days(step.days.into()))?;
    at.and_utc().timestamp_micros().checked_add(step.micros)
}
