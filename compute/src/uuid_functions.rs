//! The uuid functions: `x::uuid` (as `strata_uuid(x)`) and `gen_random_uuid()`.
//!
//! Both return a uuid's canonical text with the field metadata of a `uuid` column, so that
//! RowDescription announces type `uuid` and binary results carry the 16 bytes.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result as DFResult;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::types::{canonical_uuid, SqlType};

/// What `x::uuid` and `CAST(x AS uuid)` are rewritten to.
pub const CAST_NAME: &str = "strata_uuid";

#[derive(Debug, PartialEq, Eq, Hash)]
struct UuidFunction {
    name: &'static str,
    signature: Signature,
}

pub fn all() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(UuidFunction {
            name: CAST_NAME,
            signature: Signature::any(1, Volatility::Immutable),
        }),
        ScalarUDF::new_from_impl(UuidFunction {
            name: "gen_random_uuid",
            signature: Signature::nullary(Volatility::Volatile),
        }),
    ]
}

impl ScalarUDFImpl for UuidFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DFResult<FieldRef> {
        Ok(Arc::new(SqlType::Uuid.named_field(self.name)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let rows = args.number_rows;
        if self.name != CAST_NAME {
            let values: StringArray = (0..rows)
                .map(|_| Some(uuid::Uuid::new_v4().hyphenated().to_string()))
                .collect();
            return Ok(ColumnarValue::Array(Arc::new(values)));
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text = cast(&arrays[0], &DataType::Utf8)?;
        let values = text
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(canonical_uuid).transpose())
            .collect::<Result<StringArray, _>>()
            .map_err(|e| e.into_datafusion())?;
        Ok(ColumnarValue::Array(Arc::new(values) as ArrayRef))
    }
}
