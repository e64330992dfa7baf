//! Text into typed values as PostgreSQL's input functions read it, where Arrow's casts read
//! differently: `interval` (`'1 day 02:00:00'`), arrays (`'{1,2,3}'`, which Arrow would take
//! as a one-element list), timestamps given to the minute (`'2024-01-02 03:04'`) and dates in
//! forms other than ISO (`'Jan 5 2024'`, `'1/5/2024'`).
//!
//! Used for text parameters, for values assigned to columns (INSERT, UPDATE, the fast path) and
//! for casts, as `strata_input(x, 'type')` (what `x::interval` and `'{…}'::int[]` become).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result as DFResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::error::{sqlstate, SqlError, SqlResult};
use crate::pg_array::{self, Item};
use crate::types::pg_type_of_arrow;

/// What a cast to a type Arrow cannot read from text is rewritten to: `strata_input(x, 'type')`.
pub const INPUT_FUNCTION: &str = "strata_input";

/// Whether text becomes a `target` value through this module rather than an Arrow cast.
pub fn needs_parser(target: &DataType) -> bool {
    matches!(
        target,
        DataType::Interval(_)
            | DataType::List(_)
            | DataType::Time64(_)
            | DataType::Timestamp(..)
            | DataType::Date32
    )
}

/// The timestamp PostgreSQL reads `epoch` as, in every time zone.
const EPOCH_TIMESTAMP: &str = "1970-01-01 00:00:00+00:00";

/// PostgreSQL's special date and time inputs (any case, blanks around them). `now`, `today`,
/// `tomorrow` and `yesterday` are read in the session's time zone, which is always UTC here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecialInput {
    Epoch,
    Now,
    Today,
    Tomorrow,
    Yesterday,
    Infinity,
    NegInfinity,
}

impl SpecialInput {
    pub fn parse(text: &str) -> Option<Self> {
        let word = text.trim();
        // Every timestamp a COPY reads passes here: an ordinary one starts with a digit.
        if word.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        [
            ("epoch", Self::Epoch),
            ("now", Self::Now),
            ("today", Self::Today),
            ("tomorrow", Self::Tomorrow),
            ("yesterday", Self::Yesterday),
            ("infinity", Self::Infinity),
            ("+infinity", Self::Infinity),
            ("-infinity", Self::NegInfinity),
        ]
        .into_iter()
        .find_map(|(name, special)| word.eq_ignore_ascii_case(name).then_some(special))
    }

    /// The days from today of `today`, `tomorrow` and `yesterday`.
    pub fn days_from_today(self) -> Option<i64> {
        match self {
            Self::Today => Some(0),
            Self::Tomorrow => Some(1),
            Self::Yesterday => Some(-1),
            _ => None,
        }
    }

    /// The date `today`, `tomorrow`, `yesterday`, `now` or `epoch` reads as, in UTC.
    fn date(self) -> Option<chrono::NaiveDate> {
        let today = chrono::Utc::now().date_naive();
        match self {
            Self::Epoch => chrono::NaiveDate::from_ymd_opt(1970, 1, 1),
            Self::Now => Some(today),
            other => today.checked_add_signed(chrono::Duration::days(other.days_from_today()?)),
        }
    }

    /// The value as a timestamp or date of type `target`, for the two infinities.
    fn infinity(self, target: &DataType) -> Option<ScalarValue> {
        use crate::pg_text::{
            DATE_INFINITY, DATE_NEG_INFINITY, TIMESTAMP_INFINITY, TIMESTAMP_NEG_INFINITY,
        };
        let positive = match self {
            Self::Infinity => true,
            Self::NegInfinity => false,
            _ => return None,
        };
        let raw = match target {
            DataType::Date32 => ScalarValue::Int32(Some(if positive {
                DATE_INFINITY
            } else {
                DATE_NEG_INFINITY
            })),
            DataType::Timestamp(..) => ScalarValue::Int64(Some(if positive {
                TIMESTAMP_INFINITY
            } else {
                TIMESTAMP_NEG_INFINITY
            })),
            _ => return None,
        };
        raw.cast_to(target).ok()
    }
}

/// `value` (text) as a literal of `target`, a date or timestamp type, when it is `infinity`
/// or `-infinity`.
pub fn infinity_literal(text: &str, target: &DataType) -> Option<ScalarValue> {
    if !matches!(target, DataType::Date32 | DataType::Timestamp(..)) {
        return None;
    }
    SpecialInput::parse(text)?.infinity(target)
}

/// PostgreSQL reads `2024-02-28 12:00` as a timestamp (seconds may be left out); Arrow's cast
/// needs the seconds. A date and time given to the minute, followed by nothing, a zone or a
/// space, gets `:00`; any other text is returned as it is.
pub fn complete_timestamp_text(text: &str) -> std::borrow::Cow<'_, str> {
    match SpecialInput::parse(text) {
        Some(SpecialInput::Epoch) => return EPOCH_TIMESTAMP.into(),
        Some(SpecialInput::Now) => {
            return chrono::Utc::now()
                .format("%Y-%m-%d %H:%M:%S%.6f+00:00")
                .to_string()
                .into()
        }
        Some(special) => {
            if let Some(date) = special.date() {
                return format!("{} 00:00:00+00:00", date.format("%Y-%m-%d")).into();
            }
        }
        None => {}
    }
    let b = text.as_bytes();
    let start = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    let digits = |from: usize, n: usize| {
        b.get(from..from + n)
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    let date = start;
    if !(digits(date, 4)
        && b.get(date + 4) == Some(&b'-')
        && digits(date + 5, 2)
        && b.get(date + 7) == Some(&b'-')
        && digits(date + 8, 2)
        && matches!(b.get(date + 10), Some(b' ' | b'T' | b't')))
    {
        return text.into();
    }
    let hour = date + 11;
    let hour_len = if digits(hour, 2) {
        2
    } else if digits(hour, 1) {
        1
    } else {
        return text.into();
    };
    let colon = hour + hour_len;
    if b.get(colon) != Some(&b':') || !digits(colon + 1, 2) {
        return text.into();
    }
    let end = colon + 3;
    let seconds = match b.get(end) {
        None | Some(b'+' | b'-' | b' ' | b'Z' | b'z') => ":00",
        Some(b':') => "",
        _ => return text.into(),
    };
    if hour_len == 2 && seconds.is_empty() {
        return text.into();
    }
    // Arrow also wants two hour digits.
    let zero = if hour_len == 1 { "0" } else { "" };
    format!(
        "{}{zero}{}{seconds}{}",
        &text[..hour],
        &text[hour..end],
        &text[end..]
    )
    .into()
}

/// Date text in the forms PostgreSQL reads besides ISO `2024-01-05`, under its default
/// DateStyle (`ISO, MDY`): `1/5/2024`, `1-5-2024`, `2024/1/5`, `20240105`, `Jan 5 2024`,
/// `January 5, 2024`, `5 Jan 2024`, `2024-Jan-05`, `05-Jan-2024`, and the special inputs
/// `epoch`, `now`, `today`, `tomorrow` and `yesterday`; returned as ISO text, for Arrow's
/// cast. Any other text is returned as it is (`infinity` too, which [`parse_value`] reads).
pub fn complete_date_text(text: &str) -> std::borrow::Cow<'_, str> {
    use chrono::NaiveDate;
    const FORMATS: &[&str] = &[
        "%m/%d/%Y",
        "%m-%d-%Y",
        "%Y/%m/%d",
        "%b %d %Y",
        "%b %d, %Y",
        "%B %d %Y",
        "%B %d, %Y",
        "%d %b %Y",
        "%d %B %Y",
        "%Y-%b-%d",
        "%d-%b-%Y",
        "%b-%d-%Y",
    ];
    if let Some(date) = SpecialInput::parse(text).and_then(SpecialInput::date) {
        return date.format("%Y-%m-%d").to_string().into();
    }
    let trimmed = text.trim();
    let compact = || {
        let digits = |r: std::ops::Range<usize>| trimmed.get(r)?.parse::<u32>().ok();
        if trimmed.len() != 8 || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let year = i32::try_from(digits(0..4)?).ok()?;
        NaiveDate::from_ymd_opt(year, digits(4..6)?, digits(6..8)?)
    };
    compact()
        .or_else(|| {
            FORMATS
                .iter()
                .find_map(|f| NaiveDate::parse_from_str(trimmed, f).ok())
        })
        .map_or(text.into(), |date| {
            date.format("%Y-%m-%d").to_string().into()
        })
}

fn invalid_date(text: &str) -> SqlError {
    SqlError::new(
        sqlstate::INVALID_DATETIME_FORMAT,
        format!("invalid input syntax for type date: \"{text}\""),
    )
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// A text value as a value of `target`, as PostgreSQL's input function for the type reads it.
pub fn parse_value(text: &str, target: &DataType) -> SqlResult<ScalarValue> {
    if let Some(infinite) = infinity_literal(text, target) {
        return Ok(infinite);
    }
    match target {
        DataType::Interval(_) => {
            let v = crate::interval::parse(text)?.to_arrow();
            Ok(ScalarValue::IntervalMonthDayNano(Some(v)).cast_to(target)?)
        }
        DataType::List(element) => {
            let items = pg_array::parse(text)?;
            list_value(&items, element, text)
        }
        DataType::Time64(_) => ScalarValue::Utf8(Some(text.trim().to_string()))
            .cast_to(target)
            .map_err(|_| {
                SqlError::new(
                    sqlstate::INVALID_DATETIME_FORMAT,
                    format!("invalid input syntax for type time: \"{text}\""),
                )
            }),
        DataType::Timestamp(..) => {
            ScalarValue::Utf8(Some(complete_timestamp_text(text).into_owned()))
                .cast_to(target)
                .map_err(|_| invalid_input(target, text))
        }
        DataType::Date32 => ScalarValue::Utf8(Some(complete_date_text(text).into_owned()))
            .cast_to(target)
            .map_err(|_| invalid_date(text)),
        _ => ScalarValue::Utf8(Some(text.to_string()))
            .cast_to(target)
            .map_err(|_| invalid_input(target, text)),
    }
}

fn invalid_input(target: &DataType, text: &str) -> SqlError {
    SqlError::new(
        sqlstate::INVALID_TEXT_REPRESENTATION,
        format!(
            "invalid input syntax for type {}: \"{text}\"",
            crate::pg_catalog::format_type(i64::from(pg_type_of_arrow(target).oid()), None)
                .unwrap_or_else(|| pg_type_of_arrow(target).name().to_string())
        ),
    )
}

fn list_value(items: &[Item], element: &FieldRef, whole: &str) -> SqlResult<ScalarValue> {
    let values = items
        .iter()
        .map(|item| match (item, element.data_type()) {
            (Item::Element(None), t) => Ok(ScalarValue::try_from(t)?),
            (Item::Element(Some(_)), DataType::List(_)) => Err(SqlError::new(
                sqlstate::INVALID_TEXT_REPRESENTATION,
                format!("malformed array literal: \"{whole}\""),
            )),
            (Item::Element(Some(text)), t) => parse_value(text, t),
            (Item::Array(inner), DataType::List(f)) => list_value(inner, f, whole),
            // `{{1,2},{3,4}}` for a one-dimensional type: PostgreSQL keeps the dimensions; a
            // list of lists is not the column's type.
            (Item::Array(_), _) => Err(SqlError::unsupported(
                "multidimensional array values for a one-dimensional array type",
            )),
        })
        .collect::<SqlResult<Vec<_>>>()?;
    Ok(ScalarValue::List(ScalarValue::new_list(
        &values,
        element.data_type(),
        element.is_nullable(),
    )))
}

/// `array` converted to `target` as an assignment to a column of that type converts it: text
/// is read by the type's input function, anything else is cast (and a failing cast is an error,
/// not a NULL).
pub fn cast_array(array: &ArrayRef, target: &DataType) -> SqlResult<ArrayRef> {
    if array.data_type() == target {
        return Ok(array.clone());
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    // Timestamps and dates are completed as a column, then read by Arrow's vectorized parser
    // (COPY and multi-row INSERTs stay one cast, not a value at a time). ISO dates, the common
    // case, need no completion, and the cast is tried on them first. When some value still
    // does not cast, the per-value reading below names it.
    if is_text(array.data_type()) {
        let completed = match target {
            DataType::Timestamp(..) => cast_completed(array, target, complete_timestamp_text)?,
            DataType::Date32 => match cast_with_options(array, target, &options) {
                Ok(cast) => Some(cast),
                Err(_) => cast_completed(array, target, complete_date_text)?,
            },
            _ => None,
        };
        if let Some(cast) = completed {
            return Ok(cast);
        }
    }
    if is_text(array.data_type()) && needs_parser(target) {
        let text = datafusion::arrow::compute::cast(array, &DataType::Utf8)?;
        let values = text
            .as_string::<i32>()
            .iter()
            .map(|v| match v {
                Some(t) => parse_value(t, target),
                None => Ok(ScalarValue::try_from(target)?),
            })
            .collect::<SqlResult<Vec<_>>>()?;
        if values.is_empty() {
            return Ok(datafusion::arrow::array::new_empty_array(target));
        }
        return Ok(ScalarValue::iter_to_array(values)?);
    }
    Ok(cast_with_options(array, target, &options)?)
}

/// Text `array` with each value passed through `complete`, cast to `target` at once; `None`
/// when some value still does not cast.
fn cast_completed(
    array: &ArrayRef,
    target: &DataType,
    complete: fn(&str) -> std::borrow::Cow<'_, str>,
) -> SqlResult<Option<ArrayRef>> {
    let text = datafusion::arrow::compute::cast(array, &DataType::Utf8)?;
    let completed: datafusion::arrow::array::StringArray = text
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(complete))
        .collect();
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    Ok(cast_with_options(&completed, target, &options).ok())
}

/// [`cast_array`] for one value.
pub fn cast_scalar(value: &ScalarValue, target: &DataType) -> SqlResult<ScalarValue> {
    if &value.data_type() == target {
        return Ok(value.clone());
    }
    if value.is_null() {
        return Ok(ScalarValue::try_from(target)?);
    }
    let array = cast_array(&value.to_array()?, target)?;
    Ok(ScalarValue::try_from_array(&array, 0)?)
}

/// The Arrow type of a type named in SQL (`interval`, `int4[]`, `text[]`, `time`).
pub fn type_by_name(name: &str) -> Option<DataType> {
    let oid = crate::pg_catalog::type_oid_by_name(name)?;
    let ty = pgwire::api::Type::from_oid(u32::try_from(oid).ok()?)?;
    crate::types::arrow_type_of_pg(&ty)
}

/// `strata_input(value, 'type')`: `value` read as a value of column type `ty`.
pub fn input_call(
    value: datafusion::sql::sqlparser::ast::Expr,
    ty: crate::types::SqlType,
) -> datafusion::sql::sqlparser::ast::Expr {
    use datafusion::sql::sqlparser::ast::{Expr, Value};
    let type_name = match ty {
        crate::types::SqlType::Array { element } => {
            format!("{}[]", element.sql_type().pg_type().name())
        }
        other => other.pg_type().name().to_string(),
    };
    crate::sql_rewrite::function_call(
        INPUT_FUNCTION,
        vec![value, Expr::value(Value::SingleQuotedString(type_name))],
    )
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct InputFunction {
    signature: Signature,
}

pub fn all() -> Vec<ScalarUDF> {
    vec![ScalarUDF::new_from_impl(InputFunction {
        signature: Signature::any(2, Volatility::Immutable),
    })]
}

fn target_of(args: &ReturnFieldArgs) -> DFResult<DataType> {
    let name = match args.scalar_arguments.get(1).copied().flatten() {
        Some(ScalarValue::Utf8(Some(name))) => name.clone(),
        _ => {
            return Err(datafusion::common::DataFusionError::Internal(format!(
                "{INPUT_FUNCTION} needs a type name"
            )))
        }
    };
    type_by_name(&name).ok_or_else(|| {
        SqlError::new(
            sqlstate::UNDEFINED_OBJECT,
            format!("type \"{name}\" does not exist"),
        )
        .into_datafusion()
    })
}

impl ScalarUDFImpl for InputFunction {
    fn name(&self) -> &str {
        INPUT_FUNCTION
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
        Ok(Arc::new(Field::new(
            INPUT_FUNCTION,
            target_of(&args)?,
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let target = args.return_field.data_type().clone();
        let arrays = ColumnarValue::values_to_arrays(&args.args[..1])?;
        let values = if arrays[0].data_type() == &DataType::Null {
            datafusion::arrow::array::new_null_array(&target, arrays[0].len())
        } else {
            cast_array(&arrays[0], &target).map_err(|e| e.into_datafusion())?
        };
        Ok(ColumnarValue::Array(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::IntervalUnit;

    const INTERVAL_TYPE: DataType = DataType::Interval(IntervalUnit::MonthDayNano);

    #[test]
    fn minutes_get_seconds() {
        assert_eq!(
            complete_timestamp_text("2024-02-28 12:00"),
            "2024-02-28 12:00:00"
        );
        assert_eq!(
            complete_timestamp_text(" 2024-02-28T9:05+02"),
            " 2024-02-28T09:05:00+02"
        );
        assert_eq!(
            complete_timestamp_text("2024-02-28 9:05:07.5"),
            "2024-02-28 09:05:07.5"
        );
        assert_eq!(
            complete_timestamp_text("2024-02-28 12:00 UTC"),
            "2024-02-28 12:00:00 UTC"
        );
        assert_eq!(
            complete_timestamp_text("2024-02-28 12:00:01"),
            "2024-02-28 12:00:01"
        );
        assert_eq!(complete_timestamp_text("2024-02-28"), "2024-02-28");
        assert_eq!(complete_timestamp_text("nowhere"), "nowhere");
    }

    #[test]
    fn reads_dates_in_postgres_forms() {
        for text in [
            "2024-01-05",
            " 1/5/2024",
            "01-05-2024",
            "2024/1/5",
            "20240105",
            "Jan 5 2024",
            "jan 5, 2024",
            "January 5, 2024",
            "5 Jan 2024",
            "2024-Jan-05",
            "05-JAN-2024",
        ] {
            assert_eq!(complete_date_text(text).trim(), "2024-01-05", "{text}");
        }
        assert_eq!(complete_date_text("EPOCH"), "1970-01-01");
        assert_eq!(complete_timestamp_text(" Epoch "), EPOCH_TIMESTAMP);
        assert_eq!(complete_date_text("2/30/2024"), "2/30/2024", "no such day");
        let err = parse_value("Jan 45 2024", &DataType::Date32).unwrap_err();
        assert_eq!(err.code, sqlstate::INVALID_DATETIME_FORMAT);
    }

    #[test]
    fn reads_arrays_and_intervals_from_text() {
        let ints = DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true)));
        let v = parse_value("{1, NULL,3}", &ints).unwrap();
        assert_eq!(v.to_string(), "[1, , 3]");
        assert_eq!(
            parse_value("{1,x}", &ints).unwrap_err().code,
            sqlstate::INVALID_TEXT_REPRESENTATION
        );
        let v = parse_value("1 day 02:00:00", &INTERVAL_TYPE).unwrap();
        assert_eq!(
            crate::interval::text(crate::interval::PgInterval::from_arrow(match v {
                ScalarValue::IntervalMonthDayNano(Some(v)) => v,
                other => panic!("{other:?}"),
            })),
            "1 day 02:00:00"
        );
        let texts = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
        let array: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(vec![
            Some(r#"{a,"b c"}"#),
            None,
        ]));
        let lists = cast_array(&array, &texts).unwrap();
        assert_eq!(lists.len(), 2);
        assert!(lists.is_null(1));
    }
}
