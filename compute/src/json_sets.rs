//! The set-returning jsonb functions: `jsonb_array_elements`, `jsonb_array_elements_text`,
//! `jsonb_object_keys`, `jsonb_each` and `jsonb_each_text`.
//!
//! DataFusion has no set-returning scalar functions, but it expands `unnest(list)` into rows. So
//! each function is `unnest` of a list one scalar function computes (`strata_jsonb_set(x,
//! 'jsonb_each', 'keys')`): in a SELECT list (see `sql_rewrite::expand_set_returning`), and in
//! FROM, where `jsonb_each(x) AS e` becomes a derived table `(SELECT unnest(…) AS key,
//! unnest(…) AS value) AS e`, LATERAL so that `x` may name columns of the tables before it.
//! Two lists unnested in one SELECT run in lockstep, which keeps each key beside its value.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, ListBuilder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{Result as DFResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{Expr, Value as SqlValue};
use serde_json::Value;

use crate::error::{sqlstate, SqlError};
use crate::sql_rewrite::function_call;
use crate::types::SqlType;

/// The scalar function behind them: `strata_jsonb_set(value, function, part)`.
pub const NAME: &str = "strata_jsonb_set";

/// What part of the value a function lists.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Array elements, as jsonb.
    Elements,
    /// Array elements as text (strings without quotes, null as NULL).
    ElementsText,
    /// Object keys.
    Keys,
    /// Object values, as jsonb, in key order.
    Values,
    /// Object values as text.
    ValuesText,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Elements => "elements",
            Part::ElementsText => "elements_text",
            Part::Keys => "keys",
            Part::Values => "values",
            Part::ValuesText => "values_text",
        }
    }

    fn from_name(name: &str) -> Option<Part> {
        [
            Part::Elements,
            Part::ElementsText,
            Part::Keys,
            Part::Values,
            Part::ValuesText,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }

    /// Whether the values are jsonb (else text).
    fn is_jsonb(self) -> bool {
        matches!(self, Part::Elements | Part::Values)
    }
}

/// The columns a set-returning jsonb function returns: (name, parts), or `None` for another
/// function.
fn columns_of(function: &str) -> Option<&'static [(&'static str, Part)]> {
    Some(match function {
        "jsonb_array_elements" => &[("value", Part::Elements)],
        "jsonb_array_elements_text" => &[("value", Part::ElementsText)],
        "jsonb_object_keys" => &[("jsonb_object_keys", Part::Keys)],
        "jsonb_each" => &[("key", Part::Keys), ("value", Part::Values)],
        "jsonb_each_text" => &[("key", Part::Keys), ("value", Part::ValuesText)],
        _ => return None,
    })
}

/// `unnest(strata_jsonb_set(arg, function, part))`, typed jsonb where the part is.
fn column_expr(function: &str, part: Part, arg: Expr) -> Expr {
    let text = |s: &str| Expr::value(SqlValue::SingleQuotedString(s.to_string()));
    let list = function_call(NAME, vec![arg, text(function), text(part.name())]);
    let rows = function_call("unnest", vec![list]);
    if part.is_jsonb() {
        function_call(crate::json::JSONB_CAST, vec![rows])
    } else {
        rows
    }
}

/// A call in a SELECT list that returns one column: its rows as an expression.
pub fn select_list_rows(function: &str, args: &[Expr]) -> Option<Expr> {
    let [(_, part)] = columns_of(function)? else {
        return None;
    };
    let [arg] = args else {
        return None;
    };
    Some(column_expr(function, *part, arg.clone()))
}

/// A call in FROM: the SELECT list of the derived table that stands for it, each column named
/// as PostgreSQL names it.
pub fn from_clause_columns(function: &str, args: &[Expr]) -> Option<Vec<(String, Expr)>> {
    let columns = columns_of(function)?;
    let [arg] = args else {
        return None;
    };
    Some(
        columns
            .iter()
            .map(|(name, part)| (name.to_string(), column_expr(function, *part, arg.clone())))
            .collect(),
    )
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonbSet {
    signature: Signature,
}

pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(JsonbSet {
        signature: Signature::any(3, Volatility::Immutable),
    })
}

fn list_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

fn literal_text(arg: &ColumnarValue) -> DFResult<String> {
    match arg {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(s))) => Ok(s.clone()),
        _ => Err(datafusion::error::DataFusionError::Internal(format!(
            "{NAME} takes its function and part as text literals"
        ))),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
        _ => "a scalar",
    }
}

/// The items one value gives, as PostgreSQL's function gives them (22023 for the wrong kind).
fn items(value: &Value, function: &str, part: Part) -> Result<Vec<Option<String>>, SqlError> {
    let as_text = |v: &Value| match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(crate::json::jsonb_text(other)),
    };
    match (part, value) {
        (Part::Elements | Part::ElementsText, Value::Array(items)) => Ok(items
            .iter()
            .map(|v| match part {
                Part::Elements => Some(crate::json::jsonb_text(v)),
                _ => as_text(v),
            })
            .collect()),
        (Part::Elements | Part::ElementsText, other) => Err(SqlError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("cannot extract elements from {}", kind_of(other)),
        )),
        (_, Value::Object(map)) => {
            let entries = crate::json::jsonb_entries(map);
            Ok(entries
                .into_iter()
                .map(|(k, v)| match part {
                    Part::Keys => Some(k.clone()),
                    Part::Values => Some(crate::json::jsonb_text(v)),
                    _ => as_text(v),
                })
                .collect())
        }
        (_, other) => Err(SqlError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            match part {
                Part::Keys if function == "jsonb_object_keys" => {
                    format!("cannot call {function} on {}", kind_of(other))
                }
                _ => format!("cannot call {function} on a non-object"),
            },
        )),
    }
}

impl ScalarUDFImpl for JsonbSet {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DFResult<DataType> {
        Ok(list_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let function = literal_text(&args.args[1])?;
        let part_name = literal_text(&args.args[2])?;
        let part = Part::from_name(&part_name).ok_or_else(|| {
            datafusion::error::DataFusionError::Internal(format!("no json part {part_name}"))
        })?;
        let array = args.args[0].to_array(args.number_rows)?;
        let text = datafusion::arrow::compute::cast(&array, &DataType::Utf8)?;
        let mut lists = ListBuilder::new(StringBuilder::new());
        for value in text.as_string::<i32>().iter() {
            match value {
                // A NULL argument gives no rows.
                None => lists.append(true),
                Some(text) => {
                    let value = crate::json::parse(text, SqlType::Jsonb)
                        .map_err(SqlError::into_datafusion)?;
                    let items =
                        items(&value, &function, part).map_err(SqlError::into_datafusion)?;
                    for item in items {
                        lists.values().append_option(item);
                    }
                    lists.append(true);
                }
            }
        }
        let lists: ArrayRef = Arc::new(lists.finish());
        Ok(match &args.args[0] {
            ColumnarValue::Scalar(_) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&lists, 0)?)
            }
            ColumnarValue::Array(_) => ColumnarValue::Array(lists),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_follow_postgres() {
        let value: Value = serde_json::from_str(r#"{"bb": [1, "x"], "a": null}"#).unwrap();
        assert_eq!(
            items(&value, "jsonb_each", Part::Keys).unwrap(),
            vec![Some("a".into()), Some("bb".into())]
        );
        assert_eq!(
            items(&value, "jsonb_each_text", Part::ValuesText).unwrap(),
            vec![None, Some("[1, \"x\"]".into())]
        );
        let array: Value = serde_json::from_str(r#"[1, "a", {"b": 2}, null]"#).unwrap();
        assert_eq!(
            items(&array, "jsonb_array_elements_text", Part::ElementsText).unwrap(),
            vec![
                Some("1".into()),
                Some("a".into()),
                Some("{\"b\": 2}".into()),
                None
            ]
        );
        let e = items(&value, "jsonb_array_elements", Part::Elements).unwrap_err();
        assert_eq!(e.message, "cannot extract elements from an object");
        let e = items(&array, "jsonb_object_keys", Part::Keys).unwrap_err();
        assert_eq!(e.message, "cannot call jsonb_object_keys on an array");
    }
}
