//! `json_build_object(k1, v1, …)` and `jsonb_build_object`: an object from alternating keys and
//! values, each value converted as PostgreSQL's `to_json` converts it (numbers and booleans as
//! themselves, json as it is, arrays as json arrays, anything else as its text in a string).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::Result as DFResult;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};
use serde_json::Value;

use crate::error::{sqlstate, SqlError};
use crate::types::SqlType;

#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Style {
    /// `json_build_object`: `{"a" : 1, "b" : 2}`.
    Json,
    /// `jsonb_build_object`: jsonb's normalized form.
    Jsonb,
    /// A whole row as `row_to_json` prints it: `{"a":1,"b":2}` (see `session/row_values.rs`).
    Row,
}

/// The function a row value (`row_to_json(t)`, `json_agg(t)`) becomes: its column names and
/// values, alternating.
pub const ROW_TO_JSON: &str = "strata_row_to_json";

#[derive(Debug, PartialEq, Eq, Hash)]
struct BuildObject {
    style: Style,
    signature: Signature,
}

pub fn all() -> Vec<ScalarUDF> {
    [Style::Json, Style::Jsonb, Style::Row]
        .into_iter()
        .map(|style| {
            ScalarUDF::new_from_impl(BuildObject {
                style,
                signature: Signature::one_of(
                    vec![TypeSignature::Nullary, TypeSignature::VariadicAny],
                    Volatility::Stable,
                ),
            })
        })
        .collect()
}

impl BuildObject {
    fn sql_type(&self) -> SqlType {
        match self.style {
            Style::Jsonb => SqlType::Jsonb,
            Style::Json | Style::Row => SqlType::Json,
        }
    }
}

impl ScalarUDFImpl for BuildObject {
    fn name(&self) -> &str {
        match self.style {
            Style::Json => "json_build_object",
            Style::Jsonb => "jsonb_build_object",
            Style::Row => ROW_TO_JSON,
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DFResult<FieldRef> {
        Ok(Arc::new(self.sql_type().named_field(self.name())))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return Err(SqlError::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                "argument list must have even number of elements",
            )
            .with_hint(format!(
                "The arguments of {}() must consist of alternating keys and values.",
                self.name()
            ))
            .into_datafusion());
        }
        let rows = args.number_rows;
        let columns: Vec<Vec<Option<String>>> = args
            .args
            .iter()
            .zip(&args.arg_fields)
            .map(|(arg, field)| to_json(&arg.to_array(rows)?, field))
            .collect::<DFResult<_>>()?;
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let mut items = Vec::with_capacity(columns.len() / 2);
            for (i, pair) in columns.chunks(2).enumerate() {
                let Some(key) = &pair[0][row] else {
                    return Err(SqlError::new(
                        sqlstate::INVALID_PARAMETER_VALUE,
                        format!("argument {} cannot be null", 2 * i + 1),
                    )
                    .with_hint("Object keys should be text.")
                    .into_datafusion());
                };
                // A key is its value's text, whatever its type.
                let key = match serde_json::from_str::<Value>(key) {
                    Ok(Value::String(s)) => s,
                    _ => key.clone(),
                };
                let value = pair[1][row].as_deref().unwrap_or("null");
                items.push(match self.style {
                    Style::Row => format!("{}:{value}", Value::String(key)),
                    _ => format!("{} : {value}", Value::String(key)),
                });
            }
            out.push(Some(match self.style {
                Style::Json => format!("{{{}}}", items.join(", ")),
                Style::Row => format!("{{{}}}", items.join(",")),
                Style::Jsonb => {
                    crate::json::stored_text(&format!("{{{}}}", items.join(", ")), SqlType::Jsonb)
                        .map_err(SqlError::into_datafusion)?
                }
            }));
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// Each value of a column as json text, as `to_json` converts it (`None` for NULL).
pub(crate) fn to_json(array: &ArrayRef, field: &Field) -> DFResult<Vec<Option<String>>> {
    let json_typed = matches!(
        crate::types::pg_type_of_field(field).0,
        pgwire::api::Type::JSON | pgwire::api::Type::JSONB
    );
    let texts = crate::pg_encode::text_column(array).map_err(SqlError::into_datafusion)?;
    let texts = texts.as_string::<i32>();
    let lists = match array.data_type() {
        DataType::List(inner) => Some((array.as_list::<i32>(), inner.clone())),
        _ => None,
    };
    (0..array.len())
        .map(|i| {
            if array.is_null(i) || array.data_type() == &DataType::Null {
                return Ok(None);
            }
            let text = texts.value(i);
            Ok(Some(match array.data_type() {
                _ if json_typed => text.to_string(),
                DataType::Boolean => array.as_boolean().value(i).to_string(),
                // A number keeps its text (`1.50`); NaN and the infinities become strings.
                t if t.is_numeric() && text.parse::<f64>().is_ok_and(f64::is_finite) => {
                    text.to_string()
                }
                DataType::List(_) => {
                    let (lists, inner) = lists.as_ref().expect("a list array");
                    let items: Vec<String> = to_json(&lists.value(i), inner)?
                        .into_iter()
                        .map(|v| v.unwrap_or_else(|| "null".into()))
                        .collect();
                    format!("[{}]", items.join(","))
                }
                _ => Value::String(text.to_string()).to_string(),
            }))
        })
        .collect()
}
