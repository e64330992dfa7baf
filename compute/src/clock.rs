//! PostgreSQL's clock functions beside `now()`: `statement_timestamp()` and
//! `transaction_timestamp()` are `now()` under other names (DataFusion's `now()`, fixed for the
//! statement), and `clock_timestamp()` reads the clock on every call, so it changes within a
//! statement. `pg_sleep(seconds)` and `pg_sleep_for(interval)` wait without holding a worker
//! thread (DataFusion awaits async functions), so a cancel request ends them as it ends any
//! statement, by dropping it.

use std::sync::Arc;

use datafusion::arrow::array::TimestampMicrosecondArray;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result as DFResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// `now()` with its PostgreSQL aliases, and `clock_timestamp()`.
pub fn all(ctx: &SessionContext) -> Vec<ScalarUDF> {
    let now = ctx
        .state()
        .scalar_functions()
        .get("now")
        .expect("DataFusion registers now")
        .as_ref()
        .clone()
        .with_aliases(["statement_timestamp", "transaction_timestamp"]);
    vec![
        now,
        ScalarUDF::new_from_impl(ClockTimestamp {
            signature: Signature::exact(vec![], Volatility::Volatile),
        }),
        datafusion::logical_expr::async_udf::AsyncScalarUDF::new(Arc::new(Sleep {
            name: "pg_sleep",
            signature: Signature::uniform(1, vec![DataType::Float64], Volatility::Volatile),
        }))
        .into_scalar_udf(),
        datafusion::logical_expr::async_udf::AsyncScalarUDF::new(Arc::new(Sleep {
            name: "pg_sleep_for",
            signature: Signature::exact(
                vec![DataType::Interval(
                    datafusion::arrow::datatypes::IntervalUnit::MonthDayNano,
                )],
                Volatility::Volatile,
            ),
        }))
        .into_scalar_udf(),
    ]
}

/// `pg_sleep(seconds)` and `pg_sleep_for(interval)`: wait, then return `void`, once per row.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Sleep {
    name: &'static str,
    signature: Signature,
}

impl ScalarUDFImpl for Sleep {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(
        &self,
        _args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> DFResult<datafusion::arrow::datatypes::FieldRef> {
        Ok(Arc::new(crate::types::void_field(self.name)))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        Err(datafusion::common::DataFusionError::Internal(format!(
            "{} is awaited, not called",
            self.name
        )))
    }
}

#[async_trait::async_trait]
impl datafusion::logical_expr::async_udf::AsyncScalarUDFImpl for Sleep {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray, StringArray};
        use datafusion::arrow::datatypes::{Float64Type, IntervalMonthDayNanoType};
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let durations = &arrays[0];
        let mut out = Vec::with_capacity(args.number_rows);
        for row in 0..args.number_rows {
            let index = if durations.len() == 1 { 0 } else { row };
            if durations.is_null(index) {
                out.push(None);
                continue;
            }
            let seconds = match durations.data_type() {
                DataType::Interval(_) => {
                    let v = durations
                        .as_primitive::<IntervalMonthDayNanoType>()
                        .value(index);
                    // PostgreSQL counts a month as 30 days here, as `extract(epoch …)` does.
                    (f64::from(v.months) * 30.0 + f64::from(v.days)) * 86_400.0
                        + v.nanoseconds as f64 / 1e9
                }
                _ => durations.as_primitive::<Float64Type>().value(index),
            };
            if seconds > 0.0 && seconds.is_finite() {
                tokio::time::sleep(std::time::Duration::from_secs_f64(seconds)).await;
            }
            out.push(Some(""));
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ClockTimestamp {
    signature: Signature,
}

impl ScalarUDFImpl for ClockTimestamp {
    fn name(&self) -> &str {
        "clock_timestamp"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DFResult<DataType> {
        Ok(crate::types::SqlType::Timestamptz.arrow_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let times: TimestampMicrosecondArray = (0..args.number_rows)
            .map(|_| Some(chrono::Utc::now().timestamp_micros()))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(
            times.with_timezone(crate::types::UTC),
        )))
    }
}
