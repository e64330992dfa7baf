//! Casts whose result PostgreSQL defines differently from Arrow, replaced by functions that
//! produce PostgreSQL's: text to `bytea` reads the escape formats (`byteain`), an array to text
//! prints `{1,2}` (`array_out`), not Arrow's `[1, 2]`, an unconstrained numeric to text
//! has no trailing zeros (`numeric_out`), and floats, timestamps, dates, times and intervals
//! print as they do in results (`pg_encode::output_function`: `2024-01-05 10:00:00.5`, not
//! Arrow's `2024-01-05T10:00:00.500`). The scales of numeric results are set here too (see
//! `numeric_scale`).
//!
//! And a CASE keeps the PostgreSQL type its branches share: DataFusion types a CASE by its
//! Arrow type alone, so `CASE WHEN … THEN '{}'::json END` would be text, where PostgreSQL says
//! json. Such a CASE is wrapped in a cast to its own Arrow type whose field carries the
//! branches' type (a cast keeps its target field's metadata).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result as DFResult, ScalarValue};
use datafusion::logical_expr::expr::{Case, Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use crate::bytea::ByteaIn;
use crate::error::SqlError;
use crate::types::UNCONSTRAINED_NUMERIC;

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// The function that replaces a cast from `from` to `to`, and the type it returns.
fn replacement(from: &DataType, to: &DataType) -> Option<(Arc<ScalarUDF>, DataType)> {
    match (from, to) {
        (f, DataType::Binary | DataType::LargeBinary | DataType::BinaryView) if is_text(f) => {
            Some((ByteaIn::udf(), DataType::Binary))
        }
        // A constrained numeric keeps its scale, which Arrow prints too.
        (f, t) if is_text(t) && *f == UNCONSTRAINED_NUMERIC => {
            Some((TextOut::udf("numeric_out"), DataType::Utf8))
        }
        (DataType::Decimal128(..), _) => None,
        (f, t) if is_text(t) => {
            crate::pg_encode::output_function(f).map(|name| (TextOut::udf(name), DataType::Utf8))
        }
        _ => None,
    }
}

/// Replaces the casts PostgreSQL defines differently (see the module doc).
#[derive(Debug, Default)]
pub struct PgCastRule;

impl AnalyzerRule for PgCastRule {
    fn name(&self) -> &str {
        "strata_pg_casts"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DFResult<LogicalPlan> {
        crate::expr_rules::rewrite_expressions(
            plan,
            |_, _| None,
            |e, schema| match e {
                // `'2024-01-02 03:04'` compared with or cast to a timestamp (see `text_input`).
                Expr::Cast(Cast { expr, field })
                    if matches!(field.data_type(), DataType::Timestamp(..))
                        && matches!(
                            expr.as_ref(),
                            Expr::Literal(ScalarValue::Utf8(Some(_)), _)
                        ) =>
                {
                    let Expr::Literal(ScalarValue::Utf8(Some(text)), metadata) = *expr else {
                        unreachable!("matched above")
                    };
                    if let Some(special) = special_timestamp(&text, field.data_type()) {
                        return Ok(Transformed::yes(special));
                    }
                    let completed = crate::text_input::complete_timestamp_text(&text).into_owned();
                    let changed = completed != text;
                    let cast = Expr::Cast(Cast {
                        expr: Box::new(Expr::Literal(ScalarValue::Utf8(Some(completed)), metadata)),
                        field,
                    });
                    Ok(if changed {
                        Transformed::yes(cast)
                    } else {
                        Transformed::no(cast)
                    })
                }
                // `'Jan 5 2024'`, `'today'` or `'infinity'` compared with a date.
                Expr::Cast(Cast { expr, field })
                    if field.data_type() == &DataType::Date32
                        && matches!(
                            expr.as_ref(),
                            Expr::Literal(ScalarValue::Utf8(Some(_)), _)
                        ) =>
                {
                    let Expr::Literal(ScalarValue::Utf8(Some(text)), _) = expr.as_ref() else {
                        unreachable!("matched above")
                    };
                    Ok(
                        match crate::text_input::parse_value(text, &DataType::Date32) {
                            Ok(date) => Transformed::yes(Expr::Literal(date, None)),
                            Err(_) => Transformed::no(Expr::Cast(Cast { expr, field })),
                        },
                    )
                }
                Expr::Cast(Cast { expr, field }) => {
                    let Some((udf, returns)) = expr
                        .get_type(schema)
                        .ok()
                        .and_then(|from| replacement(&from, field.data_type()))
                    else {
                        return Ok(Transformed::no(Expr::Cast(Cast { expr, field })));
                    };
                    let converted = Expr::ScalarFunction(ScalarFunction::new_udf(udf, vec![*expr]));
                    Ok(Transformed::yes(if field.data_type() == &returns {
                        converted
                    } else {
                        Expr::Cast(Cast {
                            expr: Box::new(converted),
                            field,
                        })
                    }))
                }
                Expr::Case(case) => keep_case_type(case, schema),
                other => {
                    let rounded = crate::numeric_scale::scale_of_rounding(other, schema)?;
                    if rounded.transformed {
                        return Ok(rounded);
                    }
                    crate::numeric_scale::decimal_division(rounded.data, schema)
                }
            },
        )
    }
}

/// A special input (`'now'`, `'today'`, `'infinity'`, …) cast to timestamp type `target`: the
/// expression it stands for. `'epoch'` and other text are left to the cast.
fn special_timestamp(text: &str, target: &DataType) -> Option<Expr> {
    use crate::text_input::SpecialInput;
    use datafusion::functions::datetime::expr_fn;
    let special = SpecialInput::parse(text)?;
    if let Some(infinite) = crate::text_input::infinity_literal(text, target) {
        return Some(Expr::Literal(infinite, None));
    }
    let now = expr_fn::now();
    let value = match special {
        SpecialInput::Now => now,
        other => {
            let days = i32::try_from(other.days_from_today()?).ok()?;
            let day = Expr::Literal(ScalarValue::Utf8(Some("day".into())), None);
            Expr::BinaryExpr(datafusion::logical_expr::BinaryExpr::new(
                Box::new(expr_fn::date_trunc(day, now)),
                datafusion::logical_expr::Operator::Plus,
                Box::new(Expr::Literal(
                    ScalarValue::IntervalMonthDayNano(Some(
                        datafusion::arrow::datatypes::IntervalMonthDayNano::new(0, days, 0),
                    )),
                    None,
                )),
            ))
        }
    };
    Some(Expr::Cast(Cast::new(Box::new(value), target.clone())))
}

/// A CASE whose non-NULL results all carry the same PostgreSQL type in their field metadata,
/// cast to itself with that metadata (see the module doc).
fn keep_case_type(case: Case, schema: &DFSchema) -> DFResult<Transformed<Expr>> {
    let mut shared = None;
    let results = case
        .when_then_expr
        .iter()
        .map(|(_, then)| then.as_ref())
        .chain(case.else_expr.as_deref())
        .filter(|e| !is_null_literal(e));
    for result in results {
        let (_, field) = result.to_field(schema)?;
        let metadata = field.metadata();
        if metadata.is_empty() || shared.as_ref().is_some_and(|m| m != metadata) {
            return Ok(Transformed::no(Expr::Case(case)));
        }
        shared = Some(metadata.clone());
    }
    let case = Expr::Case(case);
    let Some(metadata) = shared else {
        return Ok(Transformed::no(case));
    };
    let (_, field) = case.to_field(schema)?;
    if field.metadata() == &metadata {
        return Ok(Transformed::no(case));
    }
    let field = field.as_ref().clone().with_metadata(metadata);
    Ok(Transformed::yes(Expr::Cast(Cast {
        expr: Box::new(case),
        field: Arc::new(field),
    })))
}

/// `NULL`, or `NULL` cast to a type (as type coercion leaves an ELSE NULL).
fn is_null_literal(expr: &Expr) -> bool {
    match expr {
        Expr::Literal(v, _) => v.is_null(),
        Expr::Cast(Cast { expr, .. }) | Expr::TryCast(TryCast { expr, .. }) => {
            is_null_literal(expr)
        }
        _ => false,
    }
}

/// A value as PostgreSQL prints it, where Arrow's cast to text differs: `array_out` prints
/// `{1,2}` (Arrow: `[1, 2]`), `numeric_out` an unconstrained numeric without trailing zeros.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TextOut {
    name: &'static str,
    signature: Signature,
}

impl TextOut {
    pub fn udf(name: &'static str) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(TextOut {
            name,
            signature: Signature::any(1, Volatility::Immutable),
        }))
    }
}

impl ScalarUDFImpl for TextOut {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text = crate::pg_encode::text_column(&arrays[0]).map_err(SqlError::into_datafusion)?;
        Ok(if scalar {
            ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&text, 0)?)
        } else {
            ColumnarValue::Array(text)
        })
    }
}
