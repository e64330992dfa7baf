//! PostgreSQL's clock functions beside `now()`: `statement_timestamp()` and
//! `transaction_timestamp()` are `now()` under other names (DataFusion's `now()`, fixed for the
//! statement), and `clock_timestamp()` reads the clock on every call, so it changes within a
//! statement.

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
    ]
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
