//! `make_interval(years, months, weeks, days, hours, mins, secs)`, every argument defaulting to
//! 0 and each nameable (`make_interval(days => 3)`, as applications write it; the older `:=`
//! form is not read). A call is first made positional with its defaults filled in
//! ([`positional`], run with the statement rewrites), so the function itself always takes seven
//! arguments.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, IntervalMonthDayNanoArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, IntervalMonthDayNano};
use datafusion::common::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Value,
};

use crate::error::{sqlstate, SqlError};
use crate::names::normalize;

const NAME: &str = "make_interval";

/// The parameters, in order.
const PARAMETERS: [&str; 7] = ["years", "months", "weeks", "days", "hours", "mins", "secs"];

pub fn udf() -> ScalarUDF {
    let mut types = vec![DataType::Int64; 6];
    types.push(DataType::Float64);
    ScalarUDF::new_from_impl(MakeInterval {
        signature: Signature::exact(types, Volatility::Immutable),
    })
}

/// Makes a `make_interval` call positional: named arguments go to their parameter's place and
/// every parameter not given is 0. A call with an unknown name is left for the planner to
/// refuse.
pub fn positional(expr: &mut Expr) {
    let Expr::Function(function) = expr else {
        return;
    };
    let is_make_interval = function
        .name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .is_some_and(|i| normalize(i) == NAME);
    let FunctionArguments::List(list) = &mut function.args else {
        return;
    };
    if !is_make_interval || list.args.len() > PARAMETERS.len() {
        return;
    }
    let mut values: Vec<Option<Expr>> = vec![None; PARAMETERS.len()];
    for (i, arg) in list.args.iter().enumerate() {
        match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => values[i] = Some(e.clone()),
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            }
            | FunctionArg::ExprNamed {
                name: Expr::Identifier(name),
                arg: FunctionArgExpr::Expr(e),
                ..
            } => match PARAMETERS.iter().position(|p| *p == normalize(name)) {
                Some(p) => values[p] = Some(e.clone()),
                None => return,
            },
            _ => return,
        }
    }
    list.args = values
        .into_iter()
        .map(|v| {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(
                v.unwrap_or_else(|| Expr::value(Value::Number("0".into(), false))),
            ))
        })
        .collect();
}

fn out_of_range() -> DataFusionError {
    SqlError::new(sqlstate::DATETIME_FIELD_OVERFLOW, "interval out of range").into_datafusion()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct MakeInterval {
    signature: Signature,
}

impl ScalarUDFImpl for MakeInterval {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DFResult<DataType> {
        Ok(crate::types::SqlType::Interval.arrow_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let ints: Vec<_> = arrays[..6]
            .iter()
            .map(|a| cast(a, &DataType::Int64))
            .collect::<Result<_, _>>()?;
        let secs = cast(&arrays[6], &DataType::Float64)?;
        let ints: Vec<_> = ints.iter().map(|a| a.as_primitive::<Int64Type>()).collect();
        let secs = secs.as_primitive::<Float64Type>();
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            if ints.iter().any(|a| a.is_null(row)) || secs.is_null(row) {
                out.push(None);
                continue;
            }
            let [years, months, weeks, days, hours, mins] =
                std::array::from_fn(|i| ints[i].value(row));
            let months = years.checked_mul(12).and_then(|y| y.checked_add(months));
            let days = weeks.checked_mul(7).and_then(|w| w.checked_add(days));
            let micros = (hours as f64 * 3_600e6) + (mins as f64 * 60e6) + secs.value(row) * 1e6;
            let (Some(months), Some(days)) = (
                months.and_then(|m| i32::try_from(m).ok()),
                days.and_then(|d| i32::try_from(d).ok()),
            ) else {
                return Err(out_of_range());
            };
            if !micros.is_finite() || micros.abs() >= i64::MAX as f64 / 1000.0 {
                return Err(out_of_range());
            }
            out.push(Some(IntervalMonthDayNano::new(
                months,
                days,
                micros.round() as i64 * 1000,
            )));
        }
        Ok(ColumnarValue::Array(Arc::new(
            out.into_iter().collect::<IntervalMonthDayNanoArray>(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut statements = crate::sql_rewrite::parse_sql(&format!("SELECT {sql}")).unwrap();
        let datafusion::sql::sqlparser::ast::Statement::Query(q) = &mut statements[0] else {
            panic!()
        };
        let datafusion::sql::sqlparser::ast::SetExpr::Select(s) = q.body.as_mut() else {
            panic!()
        };
        let datafusion::sql::sqlparser::ast::SelectItem::UnnamedExpr(e) = &mut s.projection[0]
        else {
            panic!()
        };
        positional(e);
        e.to_string()
    }

    #[test]
    fn named_arguments_take_their_places() {
        assert_eq!(
            rewritten("make_interval(days => 3, hours => 2)"),
            "make_interval(0, 0, 0, 3, 2, 0, 0)"
        );
        assert_eq!(
            rewritten("make_interval(1, 2)"),
            "make_interval(1, 2, 0, 0, 0, 0, 0)"
        );
        assert_eq!(
            rewritten("make_interval(nope => 1)"),
            "make_interval(nope => 1)"
        );
    }
}
