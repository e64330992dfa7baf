//! `json` and `jsonb`: stored as text, and the functions behind `::json`, `::jsonb`, `->`, `->>`,
//! `#>`, `#>>`, `@>`, `<@`, `?`, `?|`, `?&`, `jsonb_set`, `jsonb_typeof` / `json_typeof` and
//! `jsonb_pretty`.
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
    TypeSignature, Volatility,
};
use serde_json::Value;

use crate::error::{sqlstate, SqlError, SqlResult};
use crate::numeric_text;
use crate::types::SqlType;

/// What `x::json`, `x::jsonb`, `a -> b`, `a ->> b`, `a @> b` are rewritten to.
pub const JSON_CAST: &str = "strata_json";
pub const JSONB_CAST: &str = "strata_jsonb";
pub const GET: &str = "strata_json_get";
pub const GET_TEXT: &str = "strata_json_get_text";
pub const CONTAINS: &str = "strata_jsonb_contains";
pub const GET_PATH: &str = "strata_json_get_path";
pub const GET_PATH_TEXT: &str = "strata_json_get_path_text";
pub const EXISTS: &str = "strata_jsonb_exists";
pub const EXISTS_ANY: &str = "strata_jsonb_exists_any";
pub const EXISTS_ALL: &str = "strata_jsonb_exists_all";
/// `jsonb_set(target, path, new_value [, create_if_missing])`, called by its own name.
pub const SET: &str = "jsonb_set";
/// `jsonb_typeof(v)` and `json_typeof(v)`: `object`, `array`, `string`, `number`, `boolean`
/// or `null`.
pub const JSONB_TYPEOF: &str = "jsonb_typeof";
pub const JSON_TYPEOF: &str = "json_typeof";
pub const JSONB_ARRAY_LENGTH: &str = "jsonb_array_length";
pub const JSON_ARRAY_LENGTH: &str = "json_array_length";
/// `jsonb_pretty(v)`: indented by four spaces, as PostgreSQL's.
pub const PRETTY: &str = "jsonb_pretty";

/// Parses a json text; `22P02` as PostgreSQL's `json_in` says otherwise. A `jsonb` value's
/// numbers come back in numeric's output form (a `json` value keeps each number as written).
pub fn parse(text: &str, ty: SqlType) -> SqlResult<Value> {
    let mut value = read(text, ty)?;
    if ty == SqlType::Jsonb {
        numbers_as_numeric(&mut value)?;
    }
    Ok(value)
}

/// Parses a json text, its numbers as written (for a comparison, which reads numbers by value
/// and need not rewrite them).
fn read(text: &str, ty: SqlType) -> SqlResult<Value> {
    serde_json::from_str(text).map_err(|e| {
        SqlError::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type {}", ty.display_name()),
        )
        .with_detail(format!("{e}"))
    })
}

/// Rewrites every number in `value` as PostgreSQL's numeric prints it (`1e3` as `1000`).
fn numbers_as_numeric(value: &mut Value) -> SqlResult<()> {
    match value {
        Value::Number(n) => {
            let text = numeric_text::canonical(n.as_str())?;
            *n = text.parse().expect("numeric text is a json number");
        }
        Value::Array(items) => items.iter_mut().try_for_each(numbers_as_numeric)?,
        Value::Object(map) => map.values_mut().try_for_each(numbers_as_numeric)?,
        _ => {}
    }
    Ok(())
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
    write_jsonb(value, None, &mut out);
    out
}

/// Writes `value` as jsonb prints it: on one line (`pretty: None`), or as `jsonb_pretty` does,
/// each element on a line of its own indented by four spaces a level past `pretty`'s depth
/// (an empty container opens onto a new line too, as PostgreSQL's does).
fn write_jsonb(value: &Value, pretty: Option<usize>, out: &mut String) {
    let (open, close, items): (char, char, Vec<(Option<&String>, &Value)>) = match value {
        Value::Array(items) => ('[', ']', items.iter().map(|v| (None, v)).collect()),
        Value::Object(map) => (
            '{',
            '}',
            jsonb_entries(map)
                .into_iter()
                .map(|(k, v)| (Some(k), v))
                .collect(),
        ),
        scalar => return out.push_str(&scalar.to_string()),
    };
    let line = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"    ".repeat(depth));
    };
    out.push(open);
    for (i, (key, item)) in items.into_iter().enumerate() {
        match pretty {
            Some(depth) => {
                if i > 0 {
                    out.push(',');
                }
                line(out, depth + 1);
            }
            None if i > 0 => out.push_str(", "),
            None => {}
        }
        if let Some(key) = key {
            out.push_str(&Value::String(key.clone()).to_string());
            out.push_str(": ");
        }
        write_jsonb(item, pretty.map(|depth| depth + 1), out);
    }
    if let Some(depth) = pretty {
        line(out, depth);
    }
    out.push(close);
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
        (Value::Array(a), scalar) if !scalar.is_object() => {
            a.iter().any(|va| same_scalar(va, scalar))
        }
        (a, b) => same_scalar(a, b),
    }
}

/// Scalar equality as jsonb has it: numbers compare as numerics (`1.0` equals `1`).
fn same_scalar(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => numeric_text::equal(a.as_str(), b.as_str()),
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
        (GET_PATH, 2),
        (GET_PATH_TEXT, 2),
        (EXISTS, 2),
        (EXISTS_ANY, 2),
        (EXISTS_ALL, 2),
        (JSONB_TYPEOF, 1),
        (JSON_TYPEOF, 1),
        (JSONB_ARRAY_LENGTH, 1),
        (JSON_ARRAY_LENGTH, 1),
        (PRETTY, 1),
    ]
    .into_iter()
    .map(|(name, arity)| Signature::any(arity, Volatility::Immutable).with_name(name))
    .chain([Signature::one_of(
        vec![TypeSignature::Any(3), TypeSignature::Any(4)],
        Volatility::Immutable,
    )
    .with_name(SET)])
    .map(|(signature, name)| ScalarUDF::new_from_impl(JsonFunction { name, signature }))
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
        Ok(if returns_boolean(self.name) {
            DataType::Boolean
        } else {
            DataType::Utf8
        })
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DFResult<FieldRef> {
        let ty = match self.name {
            JSONB_ARRAY_LENGTH | JSON_ARRAY_LENGTH => {
                return Ok(Arc::new(Field::new(self.name, DataType::Int32, true)))
            }
            name if returns_boolean(name) => {
                return Ok(Arc::new(Field::new(self.name, DataType::Boolean, true)))
            }
            GET_TEXT | GET_PATH_TEXT | JSONB_TYPEOF | JSON_TYPEOF | PRETTY => {
                return Ok(Arc::new(Field::new(self.name, DataType::Utf8, true)))
            }
            JSON_CAST => SqlType::Json,
            JSONB_CAST | SET => SqlType::Jsonb,
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
            GET_PATH | GET_PATH_TEXT => {
                get_path(&arrays[0], &arrays[1], self.name == GET_PATH_TEXT, jsonb)?
            }
            EXISTS | EXISTS_ANY | EXISTS_ALL => exists(self.name, &arrays[0], &arrays[1])?,
            SET => set(&arrays)?,
            JSONB_ARRAY_LENGTH | JSON_ARRAY_LENGTH => Arc::new(
                texts(&arrays[0])?
                    .iter()
                    .map(|v| {
                        v.map(|t| array_length(&read(t, SqlType::Jsonb)?))
                            .transpose()
                    })
                    .collect::<SqlResult<datafusion::arrow::array::Int32Array>>()
                    .map_err(|e| e.into_datafusion())?,
            ),
            JSONB_TYPEOF | JSON_TYPEOF | PRETTY => {
                let name = self.name;
                Arc::new(
                    texts(&arrays[0])?
                        .iter()
                        .map(|v| {
                            v.map(|t| {
                                Ok(if name == PRETTY {
                                    let mut out = String::new();
                                    write_jsonb(&parse(t, SqlType::Jsonb)?, Some(0), &mut out);
                                    out
                                } else {
                                    type_name(&read(t, SqlType::Jsonb)?).to_string()
                                })
                            })
                            .transpose()
                        })
                        .collect::<SqlResult<StringArray>>()
                        .map_err(|e| e.into_datafusion())?,
                )
            }
            _ => {
                let a = texts(&arrays[0])?;
                let b = texts(&arrays[1])?;
                Arc::new(
                    a.iter()
                        .zip(b.iter())
                        .map(|(a, b)| match (a, b) {
                            (Some(a), Some(b)) => {
                                let a = read(a, SqlType::Jsonb)?;
                                let b = read(b, SqlType::Jsonb)?;
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

/// An object's entries in jsonb's order: shorter keys first, then bytewise.
pub(crate) fn jsonb_entries(map: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    entries
}

/// What `jsonb_typeof` says of a value.
/// `json_array_length`: the number of elements of an array; 22023 for anything else.
fn array_length(value: &Value) -> SqlResult<i32> {
    match value {
        Value::Array(items) => Ok(i32::try_from(items.len()).unwrap_or(i32::MAX)),
        Value::Object(_) => Err(SqlError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            "cannot get array length of a non-array",
        )),
        _ => Err(SqlError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            "cannot get array length of a scalar",
        )),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
    }
}

fn returns_boolean(name: &str) -> bool {
    matches!(name, CONTAINS | EXISTS | EXISTS_ANY | EXISTS_ALL)
}

/// Names a function's signature.
trait WithName {
    fn with_name(self, name: &'static str) -> (Signature, &'static str);
}

impl WithName for Signature {
    fn with_name(self, name: &'static str) -> (Signature, &'static str) {
        (self, name)
    }
}

fn stored(text: &str) -> DFResult<Value> {
    serde_json::from_str(text)
        .map_err(|e| DataFusionError::Execution(format!("stored json does not parse: {e}")))
}

/// The elements of a `text[]` argument (an array, or its text form `'{a,b}'`); NULL elements
/// are `None`.
fn text_arrays(array: &ArrayRef) -> DFResult<Vec<Option<Vec<Option<String>>>>> {
    let texts = crate::pg_encode::text_column(array).map_err(SqlError::into_datafusion)?;
    let texts = texts.as_string::<i32>();
    (0..texts.len())
        .map(|i| {
            if texts.is_null(i) {
                return Ok(None);
            }
            let items =
                crate::pg_array::parse(texts.value(i)).map_err(SqlError::into_datafusion)?;
            items
                .into_iter()
                .map(|item| match item {
                    crate::pg_array::Item::Element(e) => Ok(e),
                    crate::pg_array::Item::Array(_) => Err(SqlError::new(
                        sqlstate::INVALID_PARAMETER_VALUE,
                        "wrong number of array subscripts",
                    )
                    .into_datafusion()),
                })
                .collect::<DFResult<Vec<_>>>()
                .map(Some)
        })
        .collect()
}

/// An array's position for `step` (negative from the end), if it is an integer in range.
fn array_position(items: &[Value], step: &str) -> Option<usize> {
    let n = step.trim().parse::<i64>().ok()?;
    let n = if n < 0 { items.len() as i64 + n } else { n };
    usize::try_from(n).ok().filter(|n| *n < items.len())
}

/// The value at `path` in `doc`: object keys and array positions, one per step.
fn at_path<'a>(doc: &'a Value, path: &[Option<String>]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |value, step| {
        let step = step.as_deref()?;
        match value {
            Value::Object(map) => map.get(step),
            Value::Array(items) => array_position(items, step).map(|i| &items[i]),
            _ => None,
        }
    })
}

/// A json value as `->` (json or jsonb text) or `->>` (text: a string unquoted, null as NULL)
/// returns it.
fn output(v: &Value, as_text: bool, jsonb: bool) -> Option<String> {
    match v {
        Value::Null if as_text => None,
        Value::String(s) if as_text => Some(s.clone()),
        v if jsonb || as_text => Some(jsonb_text(v)),
        v => Some(v.to_string()),
    }
}

/// `doc #> path` as json, or with `as_text` (`#>>`) as text.
fn get_path(docs: &ArrayRef, paths: &ArrayRef, as_text: bool, jsonb: bool) -> DFResult<ArrayRef> {
    let docs = texts(docs)?;
    let paths = text_arrays(paths)?;
    let mut out = Vec::with_capacity(docs.len());
    for (i, path) in paths.iter().enumerate() {
        let (Some(path), false) = (path, docs.is_null(i)) else {
            out.push(None);
            continue;
        };
        let doc = stored(docs.value(i))?;
        out.push(at_path(&doc, path).and_then(|v| output(v, as_text, jsonb)));
    }
    Ok(Arc::new(StringArray::from(out)))
}

/// `doc ? key` (a top-level key, or a string element of a top-level array, or the string
/// itself), and `?|` / `?&` over a `text[]` of keys.
fn exists(name: &str, docs: &ArrayRef, keys: &ArrayRef) -> DFResult<ArrayRef> {
    let docs = texts(docs)?;
    let keys: Vec<Option<Vec<Option<String>>>> = if name == EXISTS {
        texts(keys)?
            .iter()
            .map(|k| k.map(|k| vec![Some(k.to_string())]))
            .collect()
    } else {
        text_arrays(keys)?
    };
    let has = |doc: &Value, key: &str| match doc {
        Value::Object(map) => map.contains_key(key),
        Value::Array(items) => items.iter().any(|v| v.as_str() == Some(key)),
        Value::String(s) => s == key,
        _ => false,
    };
    let mut out = Vec::with_capacity(docs.len());
    for (i, keys) in keys.iter().enumerate() {
        let (Some(keys), false) = (keys, docs.is_null(i)) else {
            out.push(None);
            continue;
        };
        let doc = stored(docs.value(i))?;
        // NULL keys of the array are ignored, as PostgreSQL ignores them.
        let mut present = keys.iter().flatten().map(|k| has(&doc, k));
        out.push(Some(if name == EXISTS_ALL {
            present.all(|p| p)
        } else {
            present.any(|p| p)
        }));
    }
    Ok(Arc::new(BooleanArray::from(out)))
}

/// `jsonb_set(target, path, new_value [, create_if_missing])`: `target` with the value at
/// `path` replaced, or added when only its last step is missing and `create_if_missing`.
fn set(arrays: &[ArrayRef]) -> DFResult<ArrayRef> {
    let docs = texts(&arrays[0])?;
    let paths = text_arrays(&arrays[1])?;
    let values = texts(&arrays[2])?;
    let create: Option<BooleanArray> = match arrays.get(3) {
        Some(a) => Some(cast(a, &DataType::Boolean)?.as_boolean().clone()),
        None => None,
    };
    let mut out = Vec::with_capacity(docs.len());
    for (i, path) in paths.iter().enumerate() {
        let create = match &create {
            Some(c) if c.is_null(i) => {
                out.push(None);
                continue;
            }
            Some(c) => c.value(i),
            None => true,
        };
        let (Some(path), false, false) = (path, docs.is_null(i), values.is_null(i)) else {
            out.push(None);
            continue;
        };
        if path.iter().any(Option::is_none) {
            return Err(SqlError::new(
                sqlstate::NULL_VALUE_NOT_ALLOWED,
                format!(
                    "path element at position {} is null",
                    path.iter().position(Option::is_none).unwrap_or(0) + 1
                ),
            )
            .into_datafusion());
        }
        let mut doc = stored(docs.value(i))?;
        let value = parse(values.value(i), SqlType::Jsonb).map_err(SqlError::into_datafusion)?;
        if matches!(doc, Value::Object(_) | Value::Array(_)) {
            set_at(&mut doc, path, value, create);
        }
        out.push(Some(jsonb_text(&doc)));
    }
    Ok(Arc::new(StringArray::from(out)))
}

fn set_at(doc: &mut Value, path: &[Option<String>], value: Value, create: bool) {
    let Some((step, rest)) = path.split_first() else {
        return;
    };
    let step = step.as_deref().unwrap_or_default();
    match doc {
        Value::Object(map) => {
            if rest.is_empty() {
                if create || map.contains_key(step) {
                    map.insert(step.to_string(), value);
                }
            } else if let Some(inner) = map.get_mut(step) {
                set_at(inner, rest, value, create);
            }
        }
        Value::Array(items) => match array_position(items, step) {
            Some(i) if rest.is_empty() => items[i] = value,
            Some(i) => set_at(&mut items[i], rest, value, create),
            // Past either end: added at that end.
            None if rest.is_empty() && create => match step.trim().parse::<i64>() {
                Ok(n) if n < 0 => items.insert(0, value),
                Ok(_) => items.push(value),
                Err(_) => {}
            },
            None => {}
        },
        _ => {}
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
        let doc = stored(docs.value(i))?;
        let key = keys.value(i);
        let found = match (&doc, by_index) {
            (Value::Array(items), true) => array_position(items, key).map(|i| &items[i]),
            (Value::Object(map), false) => map.get(key),
            _ => None,
        };
        out.push(found.and_then(|v| output(v, as_text, jsonb)));
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
