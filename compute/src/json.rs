//! `json` and `jsonb`: stored as text, and the functions behind `::json`, `::jsonb`, `->`, `->>`
//! and `@>`.
//!
//! A `json` value keeps the text it was given (validated). A `jsonb` value is stored in
//! PostgreSQL's output form: object keys in jsonb order (shorter first, then bytewise),
//! duplicates resolved to the last, `", "` and `": "` separators. RowDescription announces the
//! PostgreSQL type through the field metadata of columns and of these functions' results.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use serde_json::Value;

use crate::error::{sqlstate, SqlError, SqlResult};
use crate::types::SqlType;

/// What `x::json`, `x::jsonb`, `a -> b`, `a ->> b`, `a @> b` are rewritten to.
pub const JSON_CAST: &str = "strata_json";
pub const JSONB_CAST: &str = "strata_jsonb";
pub const GET: &str = "strata_json_get";
pub const GET_TEXT: &str = "strata_json_get_text";
pub const CONTAINS: &str = "strata_jsonb_contains";

/// Parses a json text; `22P02` as PostgreSQL's `json_in` says otherwise.
pub fn parse(text: &str, ty: SqlType) -> SqlResult<Value> {
    serde_json::from_str(text).map_err(|e| {
        SqlError::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type {}", ty.display_name()),
        )
        .with_detail(format!("{e}"))
    })
}

/// The stored form of a `json` (validated, as given) or `jsonb` (normalized) value.
pub fn stored_text(text: &str, ty: SqlType) -> SqlResult<String> {
    let value = parse(text, ty)?;
    Ok(match ty {
        SqlType::Jsonb => jsonb_text(&value),
        _ => text.to_string(),
    })
}

/// A value in jsonb's output form.
pub fn jsonb_text(value: &Value) -> String {
    let mut out = String::new();
    write_jsonb(value, &mut out);
    out
}

fn write_jsonb(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_jsonb(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push_str(": ");
                write_jsonb(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// jsonb containment (`@>`): every key and element of `b` is in `a`, recursively; a scalar
/// contains only itself.
fn contains(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => b
            .iter()
            .all(|(k, vb)| a.get(k).is_some_and(|va| contains(va, vb))),
        (Value::Array(a), Value::Array(b)) => {
            b.iter().all(|vb| a.iter().any(|va| contains(va, vb)))
        }
        // An array contains a scalar it holds at its top level.
        (Value::Array(a), scalar) if !scalar.is_object() => a.iter().any(|va| va == scalar),
        (a, b) => a == b,
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonFunction {
    name: &'static str,
    signature: Signature,
}

pub fn all() -> Vec<ScalarUDF> {
    [
        (JSON_CAST, 1),
        (JSONB_CAST, 1),
        (GET, 2),
        (GET_TEXT, 2),
        (CONTAINS, 2),
    ]
    .into_iter()
    .map(|(name, arity)| {
        ScalarUDF::new_from_impl(JsonFunction {
            name,
            signature: Signature::any(arity, Volatility::Immutable),
        })
    })
    .collect()
}

/// Whether a field holds jsonb (else json or text).
fn is_jsonb(field: &Field) -> bool {
    crate::types::pg_type_of_field(field).0 == pgwire::api::Type::JSONB
}

impl ScalarUDFImpl for JsonFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DFResult<DataType> {
        Ok(if self.name == CONTAINS {
            DataType::Boolean
        } else {
            DataType::Utf8
        })
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DFResult<FieldRef> {
        let ty = match self.name {
            CONTAINS => return Ok(Arc::new(Field::new(self.name, DataType::Boolean, true))),
            GET_TEXT => return Ok(Arc::new(Field::new(self.name, DataType::Utf8, true))),
            JSON_CAST => SqlType::Json,
            JSONB_CAST => SqlType::Jsonb,
            _ if is_jsonb(&args.arg_fields[0]) => SqlType::Jsonb,
            _ => SqlType::Json,
        };
        Ok(Arc::new(ty.named_field(self.name)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let jsonb = args.arg_fields.first().is_some_and(|f| is_jsonb(f));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let out: ArrayRef = match self.name {
            JSON_CAST | JSONB_CAST => {
                let ty = if self.name == JSON_CAST {
                    SqlType::Json
                } else {
                    SqlType::Jsonb
                };
                Arc::new(
                    texts(&arrays[0])?
                        .iter()
                        .map(|v| v.map(|t| stored_text(t, ty)).transpose())
                        .collect::<SqlResult<StringArray>>()
                        .map_err(|e| e.into_datafusion())?,
                )
            }
            GET | GET_TEXT => get(&arrays[0], &arrays[1], self.name == GET_TEXT, jsonb)?,
            _ => {
                let a = texts(&arrays[0])?;
                let b = texts(&arrays[1])?;
                Arc::new(
                    a.iter()
                        .zip(b.iter())
                        .map(|(a, b)| match (a, b) {
                            (Some(a), Some(b)) => {
                                let a = parse(a, SqlType::Jsonb)?;
                                let b = parse(b, SqlType::Jsonb)?;
                                Ok(Some(contains(&a, &b)))
                            }
                            _ => Ok(None),
                        })
                        .collect::<SqlResult<BooleanArray>>()
                        .map_err(|e| e.into_datafusion())?,
                )
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

fn texts(array: &ArrayRef) -> DFResult<StringArray> {
    Ok(cast(array, &DataType::Utf8)?.as_string::<i32>().clone())
}

/// `doc -> key` (an object's field by text key, an array's element by integer index, negative
/// from the end) as json, or with `as_text` (`->>`) as text: a string unquoted, `null` as NULL.
fn get(docs: &ArrayRef, keys: &ArrayRef, as_text: bool, jsonb: bool) -> DFResult<ArrayRef> {
    let docs = texts(docs)?;
    let by_index = keys.data_type().is_integer();
    let keys = texts(keys)?;
    let mut out = Vec::with_capacity(docs.len());
    for i in 0..docs.len() {
        if docs.is_null(i) || keys.is_null(i) {
            out.push(None);
            continue;
        }
        let doc: Value = serde_json::from_str(docs.value(i))
            .map_err(|e| DataFusionError::Execution(format!("stored json does not parse: {e}")))?;
        let key = keys.value(i);
        let found = match (&doc, by_index) {
            (Value::Array(items), true) => key.parse::<i64>().ok().and_then(|n| {
                let n = if n < 0 { items.len() as i64 + n } else { n };
                usize::try_from(n).ok().and_then(|n| items.get(n))
            }),
            (Value::Object(map), false) => map.get(key),
            _ => None,
        };
        out.push(found.and_then(|v| match v {
            Value::Null if as_text => None,
            Value::String(s) if as_text => Some(s.clone()),
            v if jsonb || as_text => Some(jsonb_text(v)),
            v => Some(v.to_string()),
        }));
    }
    Ok(Arc::new(StringArray::from(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonb_prints_as_postgres_does() {
        let v: Value =
            serde_json::from_str(r#"{"bb": [1, {"z":null,"a":true}], "a": "x", "ccc": 1.5}"#)
                .unwrap();
        assert_eq!(
            jsonb_text(&v),
            r#"{"a": "x", "bb": [1, {"a": true, "z": null}], "ccc": 1.5}"#
        );
        assert_eq!(
            stored_text("nope", SqlType::Jsonb).unwrap_err().code,
            sqlstate::INVALID_TEXT_REPRESENTATION
        );
    }

    #[test]
    fn containment_follows_jsonb_rules() {
        let v = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        assert!(contains(
            &v(r#"{"a": 1, "b": [1, 2, 3]}"#),
            &v(r#"{"b": [3]}"#)
        ));
        assert!(!contains(&v(r#"{"a": 1}"#), &v(r#"{"a": 2}"#)));
        assert!(contains(&v(r#"[1, 2, [3]]"#), &v(r#"[[3], 1]"#)));
        assert!(contains(&v(r#"["x", "y"]"#), &v(r#""x""#)));
        assert!(!contains(&v(r#"{"a": {"b": 1}}"#), &v(r#"{"b": 1}"#)));
    }
}
