//! The scale PostgreSQL gives a numeric result, where DataFusion's decimal types differ.
//!
//! - A cast to a bare `numeric` (`x::numeric`, `CAST(x AS decimal)`) keeps the value's own
//!   scale: `2::numeric` is `2`, `'1.50'::numeric` is `1.50`, `1.50::numeric(10,2)::numeric`
//!   keeps `1.50`. DataFusion would cast to `decimal(38, 10)` and print `2.0000000000`. Such a
//!   cast becomes `strata_numeric(x)` before planning, whose type follows its argument's: an
//!   integer gets scale 0, a decimal keeps its type, a text literal its written scale. Other
//!   values (text columns, floats) become Strata's unconstrained numeric, which prints without
//!   trailing zeros (see `types::UNCONSTRAINED_NUMERIC_SCALE`).
//! - A quotient of decimals (`10::numeric / 4`) has at least 16 fraction digits, and the
//!   scale of either operand if larger, rounded half away from zero: `2.5000000000000000`, as
//!   PostgreSQL prints it. DataFusion's decimal division truncates, to a scale that depends on
//!   the operands' precision (`2.5000`). PostgreSQL picks the scale per value, to give at
//!   least 16 significant digits (so `2::numeric / 3` has 20 fraction digits there); one
//!   Arrow column has one scale, so Strata keeps 16, which is PostgreSQL's choice for a
//!   quotient from 1 to 9999 whose dividend's leading digits exceed the divisor's.
//! - `trunc(x, n)` of a decimal has scale `n` (`trunc(2.789, 1)` is `2.7`, not `2.700`), and
//!   `trunc(x)`, `ceil(x)` and `floor(x)` scale 0: after type coercion, the call is cast to
//!   that scale (`scale_of_rounding`).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Decimal128Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{i256, DataType, Decimal128Type, Field, FieldRef};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result as DFResult, ScalarValue};
use datafusion::logical_expr::expr::{BinaryExpr, Cast, ScalarFunction};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, Operator, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};

use crate::error::{sqlstate, SqlError, SqlResult};
use crate::types::{UNCONSTRAINED_NUMERIC, UNCONSTRAINED_NUMERIC_PRECISION};

/// What a cast to a bare `numeric` is rewritten to.
pub const NAME: &str = "strata_numeric";

/// The decimal type holding `text` (a numeric's output form) with its written scale.
fn literal_type(canonical: &str) -> SqlResult<DataType> {
    let unsigned = canonical.trim_start_matches('-');
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let int_digits = if int == "0" { 0 } else { int.len() };
    let precision = (int_digits + frac.len()).max(1);
    if precision > usize::from(UNCONSTRAINED_NUMERIC_PRECISION) {
        return Err(SqlError::new(
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            format!(
                "numeric value {canonical} has more than {UNCONSTRAINED_NUMERIC_PRECISION} digits"
            ),
        ));
    }
    Ok(DataType::Decimal128(precision as u8, frac.len() as i8))
}

/// The type `strata_numeric` gives a value of type `from` (`literal`: its text, if a literal).
fn target(from: &DataType, literal: Option<&str>) -> SqlResult<DataType> {
    Ok(match from {
        DataType::Int8 | DataType::UInt8 => DataType::Decimal128(3, 0),
        DataType::Int16 | DataType::UInt16 => DataType::Decimal128(5, 0),
        DataType::Int32 | DataType::UInt32 => DataType::Decimal128(10, 0),
        DataType::Int64 => DataType::Decimal128(19, 0),
        DataType::UInt64 => DataType::Decimal128(20, 0),
        DataType::Decimal128(..) => from.clone(),
        DataType::Boolean => {
            return Err(SqlError::new(
                sqlstate::CANNOT_COERCE,
                "cannot cast type boolean to numeric",
            ))
        }
        _ => match literal {
            Some(text) => literal_type(&crate::numeric_text::from_input(text)?)?,
            None => UNCONSTRAINED_NUMERIC,
        },
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct NumericCast {
    signature: Signature,
}

/// `strata_numeric(x)`.
pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(NumericCast {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

impl ScalarUDFImpl for NumericCast {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DFResult<DataType> {
        Err(datafusion::common::DataFusionError::Internal(
            "return_field_from_args gives the type".into(),
        ))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DFResult<FieldRef> {
        let literal = match args.scalar_arguments.first().copied().flatten() {
            Some(ScalarValue::Utf8(Some(text)) | ScalarValue::Utf8View(Some(text))) => {
                Some(text.as_str())
            }
            _ => None,
        };
        let to =
            target(args.arg_fields[0].data_type(), literal).map_err(SqlError::into_datafusion)?;
        Ok(Arc::new(Field::new(NAME, to, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let to = args.return_field.data_type();
        let values = args.args[0].to_array(args.number_rows)?;
        let values = match values.data_type() {
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
                read_texts(&values).map_err(SqlError::into_datafusion)?
            }
            // PostgreSQL reads a float's text to its type's digits (FLT_DIG, DBL_DIG):
            // `0.1::float4::numeric` is `0.1`, not `0.100000001490116`.
            DataType::Float32 => float_texts(&values, 6)?,
            DataType::Float64 => float_texts(&values, 15)?,
            _ => values,
        };
        Ok(ColumnarValue::Array(cast(&values, to)?))
    }
}

/// Floats as text with `digits` significant digits, read as numeric text (22P02 for NaN and
/// the infinities, which Strata's numeric cannot hold).
fn float_texts(values: &ArrayRef, digits: usize) -> DFResult<ArrayRef> {
    let floats = cast(values, &DataType::Float64)?;
    let texts: StringArray = floats
        .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
        .iter()
        .map(|v| v.map(|v| format!("{v:.*e}", digits - 1)))
        .collect();
    read_texts(&(Arc::new(texts) as ArrayRef)).map_err(SqlError::into_datafusion)
}

/// Text values in numeric's output form, as its input function reads them (22P02 otherwise).
fn read_texts(values: &ArrayRef) -> SqlResult<ArrayRef> {
    let values = cast(values, &DataType::Utf8)?;
    let texts = values.as_string::<i32>();
    let read: StringArray = texts
        .iter()
        .map(|text| text.map(crate::numeric_text::from_input).transpose())
        .collect::<SqlResult<_>>()?;
    Ok(Arc::new(read))
}

/// The fraction digits of a quotient (see the module doc).
const QUOTIENT_MIN_SCALE: i8 = 16;
/// A quotient's precision: one below the unconstrained numeric's, whose type prints without
/// trailing zeros, where a quotient keeps them (`2.5000000000000000`).
const QUOTIENT_PRECISION: u8 = UNCONSTRAINED_NUMERIC_PRECISION - 1;

/// What `a / b` of decimals (or a decimal and an integer) becomes after type coercion.
pub const DIVIDE: &str = "strata_numeric_divide";

/// `a / b` where a side is a decimal and neither is a float, as `strata_numeric_divide(a, b)`;
/// any other expression unchanged.
pub fn decimal_division(expr: Expr, schema: &DFSchema) -> DFResult<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Divide,
        right,
    }) = &expr
    else {
        return Ok(Transformed::no(expr));
    };
    let (l, r) = (left.get_type(schema)?, right.get_type(schema)?);
    let exact = |t: &DataType| t.is_integer() || matches!(t, DataType::Decimal128(..));
    let decimal = |t: &DataType| matches!(t, DataType::Decimal128(..));
    if !(exact(&l) && exact(&r) && (decimal(&l) || decimal(&r))) {
        return Ok(Transformed::no(expr));
    }
    let Expr::BinaryExpr(BinaryExpr { left, right, .. }) = expr else {
        unreachable!("matched above")
    };
    Ok(Transformed::yes(Expr::ScalarFunction(
        ScalarFunction::new_udf(Arc::new(divide_udf()), vec![*left, *right]),
    )))
}

/// The decimal type and scale an exact operand of type `t` divides as.
fn as_decimal(t: &DataType) -> DataType {
    match t {
        DataType::Decimal128(..) => t.clone(),
        other => target(other, None).unwrap_or(DataType::Decimal128(38, 0)),
    }
}

fn scale_of(t: &DataType) -> i8 {
    match t {
        DataType::Decimal128(_, s) => *s,
        _ => 0,
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct NumericDivide {
    signature: Signature,
}

/// `strata_numeric_divide(a, b)`.
pub fn divide_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(NumericDivide {
        signature: Signature::any(2, Volatility::Immutable),
    })
}

impl ScalarUDFImpl for NumericDivide {
    fn name(&self) -> &str {
        DIVIDE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DFResult<DataType> {
        // At most the precision (an operand of scale 38 divides at 37).
        let scale = args
            .iter()
            .map(|t| scale_of(&as_decimal(t)))
            .fold(QUOTIENT_MIN_SCALE, i8::max)
            .min(QUOTIENT_PRECISION as i8);
        Ok(DataType::Decimal128(QUOTIENT_PRECISION, scale))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let DataType::Decimal128(_, scale) = *args.return_field.data_type() else {
            unreachable!("return_type gives a decimal")
        };
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [a, b] =
            [&arrays[0], &arrays[1]].map(|array| cast(array, &as_decimal(array.data_type())));
        let (a, b) = (a?, b?);
        let shift = scale - scale_of(a.data_type()) + scale_of(b.data_type());
        let (a, b) = (
            a.as_primitive::<Decimal128Type>(),
            b.as_primitive::<Decimal128Type>(),
        );
        let quotients: Decimal128Array = a
            .iter()
            .zip(b.iter())
            .map(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => divide(a, b, shift).map(Some),
                _ => Ok(None),
            })
            .collect::<SqlResult<_>>()
            .map_err(SqlError::into_datafusion)?;
        let quotients = quotients.with_precision_and_scale(QUOTIENT_PRECISION, scale)?;
        Ok(ColumnarValue::Array(Arc::new(quotients)))
    }
}

/// `a × 10^shift / b`, rounded half away from zero; 22012 for a zero divisor, 22003 when the
/// quotient does not fit.
fn divide(a: i128, b: i128, shift: i8) -> SqlResult<i128> {
    if b == 0 {
        return Err(SqlError::new(
            sqlstate::DIVISION_BY_ZERO,
            "division by zero",
        ));
    }
    let overflow = || {
        SqlError::new(
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            "numeric field overflow",
        )
    };
    let ten = i256::from_i128(10);
    let (mut n, mut d) = (i256::from_i128(a), i256::from_i128(b));
    if shift >= 0 {
        n = n
            .checked_mul(ten.checked_pow(shift as u32).ok_or_else(overflow)?)
            .ok_or_else(overflow)?;
    } else {
        d = d
            .checked_mul(
                ten.checked_pow(u32::from(shift.unsigned_abs()))
                    .ok_or_else(overflow)?,
            )
            .ok_or_else(overflow)?;
    }
    let (q, r) = (n.wrapping_div(d), n.wrapping_rem(d));
    let twice_r = r.wrapping_abs().wrapping_mul(i256::from_i128(2));
    let q = if twice_r >= d.wrapping_abs() {
        if n.is_negative() == d.is_negative() {
            q.wrapping_add(i256::ONE)
        } else {
            q.wrapping_sub(i256::ONE)
        }
    } else {
        q
    };
    let max = ten.wrapping_pow(u32::from(QUOTIENT_PRECISION));
    if q.wrapping_abs() >= max {
        return Err(overflow());
    }
    Ok(q.as_i128())
}

/// `trunc(x [, n])`, `ceil(x)` or `floor(x)` of a decimal, cast to the scale PostgreSQL's
/// gives (see the module doc); any other expression unchanged.
pub fn scale_of_rounding(expr: Expr, schema: &DFSchema) -> DFResult<Transformed<Expr>> {
    let Expr::ScalarFunction(ScalarFunction { func, args }) = &expr else {
        return Ok(Transformed::no(expr));
    };
    let scale = match (func.name(), args.as_slice()) {
        ("ceil" | "floor" | "trunc", [_]) => 0,
        ("trunc", [_, digits]) => match integer_literal(digits) {
            Some(n) => n,
            None => return Ok(Transformed::no(expr)),
        },
        _ => return Ok(Transformed::no(expr)),
    };
    let DataType::Decimal128(precision, from_scale) = expr.get_type(schema)? else {
        return Ok(Transformed::no(expr));
    };
    let max = i64::from(UNCONSTRAINED_NUMERIC_PRECISION);
    let scale = scale.clamp(0, max - 1);
    if scale == i64::from(from_scale) {
        return Ok(Transformed::no(expr));
    }
    // A ceiling can carry into one more integer digit.
    let integer_digits = i64::from(precision) - i64::from(from_scale) + 1;
    let to_precision = (integer_digits + scale).clamp(scale + 1, max);
    let to = DataType::Decimal128(to_precision as u8, scale as i8);
    Ok(Transformed::yes(Expr::Cast(Cast::new(Box::new(expr), to))))
}

/// An integer literal's value, through the casts type coercion puts around it.
fn integer_literal(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Cast(Cast { expr, .. }) => integer_literal(expr),
        Expr::Literal(ScalarValue::Int64(Some(n)), _) => Some(*n),
        Expr::Literal(ScalarValue::Int32(Some(n)), _) => Some(i64::from(*n)),
        Expr::Literal(ScalarValue::Int16(Some(n)), _) => Some(i64::from(*n)),
        Expr::Literal(ScalarValue::Int8(Some(n)), _) => Some(i64::from(*n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotient_scale_fits_its_precision() {
        let divide = divide_udf();
        let of = |a: DataType, b: DataType| divide.return_type(&[a, b]).unwrap();
        assert_eq!(
            of(DataType::Decimal128(10, 2), DataType::Int32),
            DataType::Decimal128(QUOTIENT_PRECISION, 16)
        );
        assert_eq!(
            of(DataType::Int64, DataType::Decimal128(30, 20)),
            DataType::Decimal128(QUOTIENT_PRECISION, 20)
        );
        assert_eq!(
            of(DataType::Decimal128(38, 38), DataType::Int32),
            DataType::Decimal128(QUOTIENT_PRECISION, QUOTIENT_PRECISION as i8)
        );
    }

    #[test]
    fn quotients_round_half_away_from_zero() {
        // 10 / 4 at scale 16; 2 / 3 and -2 / 3 at scale 16; 1.5 / 0.25 (scales 1 and 2).
        assert_eq!(divide(10, 4, 16).unwrap(), 25_000_000_000_000_000);
        assert_eq!(divide(2, 3, 16).unwrap(), 6_666_666_666_666_667);
        assert_eq!(divide(-2, 3, 16).unwrap(), -6_666_666_666_666_667);
        assert_eq!(divide(15, 25, 16 - 1 + 2).unwrap(), 60_000_000_000_000_000);
        assert_eq!(
            divide(1, 0, 16).unwrap_err().code,
            sqlstate::DIVISION_BY_ZERO
        );
        assert_eq!(
            divide(i128::MAX / 10, 1, 16).unwrap_err().code,
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE
        );
    }

    #[test]
    fn types_follow_postgres_scale() {
        assert_eq!(
            target(&DataType::Int32, None).unwrap(),
            DataType::Decimal128(10, 0)
        );
        assert_eq!(
            target(&DataType::Decimal128(10, 2), None).unwrap(),
            DataType::Decimal128(10, 2)
        );
        assert_eq!(
            target(&DataType::Utf8, Some(" 1.50")).unwrap(),
            DataType::Decimal128(3, 2)
        );
        assert_eq!(
            target(&DataType::Utf8, Some("0.010")).unwrap(),
            DataType::Decimal128(3, 3)
        );
        assert_eq!(
            target(&DataType::Utf8, Some("2e3")).unwrap(),
            DataType::Decimal128(4, 0)
        );
        assert_eq!(
            target(&DataType::Float64, None).unwrap(),
            UNCONSTRAINED_NUMERIC
        );
        assert_eq!(
            target(&DataType::Utf8, Some("x")).unwrap_err().code,
            sqlstate::INVALID_TEXT_REPRESENTATION
        );
        assert_eq!(
            target(&DataType::Boolean, None).unwrap_err().code,
            sqlstate::CANNOT_COERCE
        );
    }
}
