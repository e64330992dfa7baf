//! `json_agg`, `jsonb_agg`, `json_object_agg` and `jsonb_object_agg`.
//!
//! Each is DataFusion's `array_agg` of its arguments (which brings `DISTINCT`, `ORDER BY`,
//! `FILTER` and window frames with it, and keeps NULLs and the values' PostgreSQL types), then a
//! scalar function that turns the collected arrays into json text, converting each value as
//! `to_json` does. A statement's calls are rewritten into that form before planning
//! ([`rewrite_json_aggregates`]); the result column keeps the aggregate's name.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result as DFResult;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArguments, Ident, ObjectName, Statement, VisitMut, VisitorMut,
};
use serde_json::Value;

use crate::error::{sqlstate, SqlError};
use crate::json_build::to_json;
use crate::types::SqlType;

/// Which aggregate a finishing function completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Array { jsonb: bool },
    Object { jsonb: bool },
}

impl Kind {
    fn of(name: &str) -> Option<Kind> {
        Some(match name {
            "json_agg" => Kind::Array { jsonb: false },
            "jsonb_agg" => Kind::Array { jsonb: true },
            "json_object_agg" => Kind::Object { jsonb: false },
            "jsonb_object_agg" => Kind::Object { jsonb: true },
            _ => return None,
        })
    }

    fn finisher(self) -> &'static str {
        match self {
            Kind::Array { jsonb: false } => "strata_json_agg_finish",
            Kind::Array { jsonb: true } => "strata_jsonb_agg_finish",
            Kind::Object { jsonb: false } => "strata_json_object_agg_finish",
            Kind::Object { jsonb: true } => "strata_jsonb_object_agg_finish",
        }
    }

    fn sql_type(self) -> SqlType {
        match self {
            Kind::Array { jsonb: true } | Kind::Object { jsonb: true } => SqlType::Jsonb,
            _ => SqlType::Json,
        }
    }
}

/// `json_agg(x …)` becomes `strata_json_agg_finish(array_agg(x …))`, and
/// `json_object_agg(k, v …)` becomes `strata_json_object_agg_finish(array_agg(k …),
/// array_agg(v …))`, each `array_agg` keeping the call's DISTINCT, ORDER BY, FILTER and OVER.
pub fn rewrite_json_aggregates(statement: &mut Statement) {
    struct Rewriter;
    impl VisitorMut for Rewriter {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            let Expr::Function(call) = expr else {
                return ControlFlow::Continue(());
            };
            let name = match call.name.0.as_slice() {
                [part] => part.as_ident().map(crate::names::normalize),
                _ => None,
            };
            let Some(kind) = name.as_deref().and_then(Kind::of) else {
                return ControlFlow::Continue(());
            };
            let FunctionArguments::List(list) = &call.args else {
                return ControlFlow::Continue(());
            };
            let collect = |arg: &FunctionArg| {
                let mut inner = call.clone();
                inner.name = ObjectName::from(vec![Ident::new("array_agg")]);
                if let FunctionArguments::List(l) = &mut inner.args {
                    l.args = vec![arg.clone()];
                }
                Expr::Function(inner)
            };
            // Whole rows (`json_agg(t)`, see `session/row_values.rs`) are laid out one per line;
            // the finisher is told so by a second argument.
            let is_row = |arg: &FunctionArg| {
                matches!(arg, FunctionArg::Unnamed(datafusion::sql::sqlparser::ast::FunctionArgExpr::Expr(Expr::Function(f)))
                    if f.name.to_string() == crate::json_build::ROW_TO_JSON)
            };
            let args = match (kind, list.args.as_slice()) {
                (Kind::Array { .. }, [x]) if is_row(x) => vec![
                    collect(x),
                    Expr::value(datafusion::sql::sqlparser::ast::Value::Boolean(true)),
                ],
                (Kind::Array { .. }, [x]) => vec![collect(x)],
                (Kind::Object { .. }, [k, v]) => vec![collect(k), collect(v)],
                // A wrong argument count is left for the planner to report.
                _ => return ControlFlow::Continue(()),
            };
            *expr = crate::sql_rewrite::function_call(kind.finisher(), args);
            ControlFlow::Continue(())
        }
    }
    let _ = statement.visit(&mut Rewriter);
}

/// The finishing functions.
pub fn all() -> Vec<ScalarUDF> {
    [
        Kind::Array { jsonb: false },
        Kind::Array { jsonb: true },
        Kind::Object { jsonb: false },
        Kind::Object { jsonb: true },
    ]
    .into_iter()
    .map(|kind| {
        // An array finisher takes a second argument when its values are whole rows.
        let arities = match kind {
            Kind::Array { .. } => vec![TypeSignature::Any(1), TypeSignature::Any(2)],
            Kind::Object { .. } => vec![TypeSignature::Any(2)],
        };
        ScalarUDF::new_from_impl(Finish {
            kind,
            signature: Signature::one_of(arities, Volatility::Immutable),
        })
    })
    .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Finish {
    kind: Kind,
    signature: Signature,
}

impl ScalarUDFImpl for Finish {
    fn name(&self) -> &str {
        self.kind.finisher()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DFResult<FieldRef> {
        Ok(Arc::new(self.kind.sql_type().named_field(self.name())))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let fields = &args.arg_fields;
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            out.push(match self.kind {
                Kind::Array { jsonb } => list_at(&arrays[0], &fields[0], row)?
                    .map(|(values, field)| json_array(&values, &field, jsonb, arrays.len() == 2))
                    .transpose()?,
                Kind::Object { jsonb } => {
                    let keys = list_at(&arrays[0], &fields[0], row)?;
                    match (keys, list_at(&arrays[1], &fields[1], row)?) {
                        (Some(keys), Some(values)) => Some(json_object(keys, values, jsonb)?),
                        _ => None,
                    }
                }
            });
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// The values `array_agg` collected for `row`, or `None` for no rows; with their field, which
/// carries their PostgreSQL type (`array_agg` types its list, `field`, as an array of it).
fn list_at(
    array: &ArrayRef,
    field: &FieldRef,
    row: usize,
) -> DFResult<Option<(ArrayRef, FieldRef)>> {
    match array.data_type() {
        DataType::List(item) => {
            let item = match (
                field.metadata().is_empty(),
                crate::types::pg_type_of_field(field).0,
            ) {
                (false, array_type) => match crate::types::element_type_of(&array_type) {
                    Some(element) => Arc::new(crate::types::pg_typed_field(
                        item.name(),
                        item.data_type().clone(),
                        &element,
                    )),
                    None => item.clone(),
                },
                (true, _) => item.clone(),
            };
            let lists = array.as_list::<i32>();
            Ok((!lists.is_null(row)).then(|| (lists.value(row), item)))
        }
        DataType::Null => Ok(None),
        other => Err(SqlError::internal(format!("json aggregate over {other}")).into_datafusion()),
    }
}

fn json_array(values: &ArrayRef, field: &FieldRef, jsonb: bool, rows: bool) -> DFResult<String> {
    let items: Vec<String> = to_json(values, field)?
        .into_iter()
        .map(|v| v.unwrap_or_else(|| "null".into()))
        .collect();
    if !jsonb {
        // PostgreSQL starts each array or row element after the first on a new line.
        let separator = if rows || matches!(values.data_type(), DataType::List(_)) {
            ", \n "
        } else {
            ", "
        };
        return Ok(format!("[{}]", items.join(separator)));
    }
    let parsed = items
        .iter()
        .map(|t| crate::json::parse(t, SqlType::Jsonb))
        .collect::<Result<Vec<_>, _>>()
        .map_err(SqlError::into_datafusion)?;
    Ok(crate::json::jsonb_text(&Value::Array(parsed)))
}

fn json_object(
    (keys, _): (ArrayRef, FieldRef),
    (values, value_field): (ArrayRef, FieldRef),
    jsonb: bool,
) -> DFResult<String> {
    let key_texts = crate::pg_encode::text_column(&keys).map_err(SqlError::into_datafusion)?;
    let key_texts = key_texts.as_string::<i32>();
    let values = to_json(&values, &value_field)?;
    let mut entries = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        if keys.is_null(i) || keys.data_type() == &DataType::Null {
            return Err(SqlError::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                "field name must not be null",
            )
            .into_datafusion());
        }
        let key = key_texts.value(i).to_string();
        entries.push((key, value.unwrap_or_else(|| "null".into())));
    }
    if !jsonb {
        let fields: Vec<String> = entries
            .iter()
            .map(|(k, v)| format!("{} : {v}", Value::String(k.clone())))
            .collect();
        return Ok(format!("{{ {} }}", fields.join(", ")));
    }
    let mut map = serde_json::Map::new();
    for (k, v) in entries {
        let v = crate::json::parse(&v, SqlType::Jsonb).map_err(SqlError::into_datafusion)?;
        map.insert(k, v);
    }
    Ok(crate::json::jsonb_text(&Value::Object(map)))
}
