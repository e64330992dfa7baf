//! `to_date(text, template)` and `to_timestamp(text, template)`: text read by a PostgreSQL
//! datetime template (`'YYYY-MM-DD HH24:MI:SS'`), where DataFusion's functions of those names
//! read chrono's `%Y` patterns and fail on PostgreSQL's. `to_timestamp` of one argument (seconds
//! since 1970) stays DataFusion's.
//!
//! Read as PostgreSQL reads without `FX`: numeric fields (`YYYY`, `MM`, `DD`, `HH24`, `HH12`,
//! `HH`, `MI`, `SS`, `MS`, `US`, `DDD`, `YY`) take up to their width in digits, month and day
//! names match in any case (`Month`, `Mon`; day names are read and ignored), `AM`/`PM` set the
//! half of the day, `FM` is accepted, quoted text and separators skip as many characters, and
//! blanks are skipped. Fields not given default to year 1, January, day 1, midnight. The
//! patterns not read (`IYYY`, `IW`, `J`, `TZ`, `FX`, …) are 0A000.

use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use datafusion::arrow::array::{Array, AsArray, Date32Array, TimestampMicrosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result as DFResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use crate::error::{sqlstate, SqlError, SqlResult};
use crate::to_char_function::{DAYS, MONTHS};
use crate::types::SqlType;

/// The patterns read, longest first where one begins another, matched in any case.
const PATTERNS: &[&str] = &[
    "YYYY", "YYY", "YY", "HH24", "HH12", "HH", "MI", "SS", "MS", "US", "A.M.", "P.M.", "AM", "PM",
    "MONTH", "MON", "MM", "DAY", "DY", "DDD", "DD",
];

/// PostgreSQL's patterns that are not read here (0A000 rather than a wrong date), checked
/// after `PATTERNS`.
const UNREAD: &[&str] = &[
    "Y,YYY", "IYYY", "IYY", "IY", "SSSS", "IW", "ID", "CC", "TZ", "OF", "FX", "WW", "W", "J", "Q",
    "D", "I",
];

#[derive(Default)]
struct Fields {
    year: Option<i32>,
    month: Option<u32>,
    day: Option<u32>,
    day_of_year: Option<u32>,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
    pm: Option<bool>,
}

fn bad_value(value: &str, pattern: &str) -> SqlError {
    SqlError::new(
        sqlstate::INVALID_DATETIME_FORMAT,
        format!("invalid value \"{value}\" for \"{pattern}\""),
    )
}

fn no_such_name(value: &str, pattern: &str) -> SqlError {
    bad_value(value, pattern)
        .with_detail("The given value did not match any of the allowed values for this field.")
}

/// Reads `text` by `template` into a date and time (see the module doc).
pub fn parse_datetime(text: &str, template: &str) -> SqlResult<NaiveDateTime> {
    let mut fields = Fields::default();
    let mut input = text;
    let mut rest = template;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("FM").or_else(|| rest.strip_prefix("fm")) {
            rest = after;
            continue;
        }
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            let skip = quoted[..end].chars().count();
            input = input.get(char_offset(input, skip)..).unwrap_or("");
            rest = quoted.get(end + 1..).unwrap_or("");
            continue;
        }
        let upper = rest
            .get(..rest.len().min(5))
            .unwrap_or(rest)
            .to_ascii_uppercase();
        let pattern = PATTERNS.iter().find(|p| upper.starts_with(**p));
        if let (None, Some(unread)) = (pattern, UNREAD.iter().find(|p| upper.starts_with(**p))) {
            return Err(SqlError::unsupported(format!(
                "the template pattern {unread} in to_date and to_timestamp"
            )));
        }
        let Some(pattern) = pattern else {
            // A separator or other character of the template: skips one of the input's
            // (blanks skip all blanks).
            let c = rest.chars().next().expect("rest is not empty");
            rest = &rest[c.len_utf8()..];
            if c.is_whitespace() {
                input = input.trim_start();
            } else if let Some(next) = input.chars().next() {
                if !next.is_ascii_alphanumeric() || next == c {
                    input = &input[next.len_utf8()..];
                }
            }
            continue;
        };
        // Errors name the pattern as the template writes it (`Mon`).
        let written = &rest[..pattern.len()];
        rest = &rest[pattern.len()..];
        input = input.trim_start();
        match *pattern {
            "MONTH" | "MON" => {
                let (month, len) = name_at(input, &MONTHS, *pattern == "MON")
                    .ok_or_else(|| no_such_name(word(input), written))?;
                fields.month = Some(month as u32 + 1);
                input = &input[len..];
            }
            "DAY" | "DY" => {
                let (_, len) = name_at(input, &DAYS, *pattern == "DY")
                    .ok_or_else(|| no_such_name(word(input), written))?;
                input = &input[len..];
            }
            "AM" | "PM" | "A.M." | "P.M." => {
                let taken = input.get(..pattern.len()).unwrap_or(input);
                let pm = match taken.to_ascii_uppercase().as_str() {
                    "AM" | "A.M." => false,
                    "PM" | "P.M." => true,
                    _ => return Err(no_such_name(taken, written)),
                };
                fields.pm = Some(pm);
                input = &input[taken.len()..];
            }
            _ => {
                let width = match *pattern {
                    "YYYY" => 4,
                    "YYY" | "DDD" | "MS" => 3,
                    "US" => 6,
                    _ => 2,
                };
                let digits = input
                    .bytes()
                    .take(width)
                    .take_while(u8::is_ascii_digit)
                    .count();
                // A year may run past four digits when nothing follows it directly.
                let digits = if *pattern == "YYYY" && rest.is_empty() {
                    input.bytes().take_while(u8::is_ascii_digit).count()
                } else {
                    digits
                };
                let taken = &input[..digits];
                let n: u32 = taken.parse().map_err(|_| {
                    bad_value(word(input), written).with_detail("Value must be an integer.")
                })?;
                input = &input[digits..];
                match *pattern {
                    "YYYY" => fields.year = Some(n as i32),
                    "YYY" => fields.year = Some(2000 + n as i32),
                    // PostgreSQL's two-digit years: 70 and later are 19xx.
                    "YY" => fields.year = Some(if n < 70 { 2000 } else { 1900 } + n as i32),
                    "MM" => fields.month = Some(n),
                    "DD" => fields.day = Some(n),
                    "DDD" => fields.day_of_year = Some(n),
                    "HH24" | "HH12" | "HH" => fields.hour = n,
                    "MI" => fields.minute = n,
                    "SS" => fields.second = n,
                    // Milliseconds and microseconds as written: `.5` is 500 ms.
                    "MS" => fields.micros = n * 10u32.pow(3 - digits as u32) * 1000,
                    "US" => fields.micros = n * 10u32.pow(6 - digits as u32),
                    _ => unreachable!("every numeric pattern is listed"),
                }
            }
        }
    }
    fields.resolve(text)
}

impl Fields {
    fn resolve(self, text: &str) -> SqlResult<NaiveDateTime> {
        let out_of_range = || {
            SqlError::new(
                sqlstate::DATETIME_FIELD_OVERFLOW,
                format!("date/time field value out of range: \"{text}\""),
            )
        };
        let year = self.year.unwrap_or(1);
        let date = match self.day_of_year {
            Some(day) if self.month.is_none() && self.day.is_none() => {
                NaiveDate::from_yo_opt(year, day)
            }
            _ => NaiveDate::from_ymd_opt(year, self.month.unwrap_or(1), self.day.unwrap_or(1)),
        }
        .ok_or_else(out_of_range)?;
        let hour = match self.pm {
            Some(pm) if (1..=12).contains(&self.hour) => self.hour % 12 + if pm { 12 } else { 0 },
            Some(_) => {
                return Err(SqlError::new(
                    sqlstate::INVALID_DATETIME_FORMAT,
                    format!("hour \"{}\" is invalid for the 12-hour clock", self.hour),
                ))
            }
            None => self.hour,
        };
        let time = NaiveTime::from_hms_micro_opt(hour, self.minute, self.second, self.micros)
            .ok_or_else(out_of_range)?;
        Ok(date.and_time(time))
    }
}

/// The byte offset of the `n`-th character of `s` (its length past the end).
fn char_offset(s: &str, n: usize) -> usize {
    s.char_indices().nth(n).map_or(s.len(), |(i, _)| i)
}

/// The letters at the start of `s`, for an error message.
fn word(s: &str) -> &str {
    let end = s
        .char_indices()
        .find(|(_, c)| !c.is_alphanumeric())
        .map_or(s.len(), |(i, _)| i);
    if end == 0 {
        s.get(..char_offset(s, 1)).unwrap_or(s)
    } else {
        &s[..end]
    }
}

/// Which of `names` starts `s` (any case; its first three letters when `short`), and how many
/// bytes it takes.
fn name_at(s: &str, names: &[&str], short: bool) -> Option<(usize, usize)> {
    names.iter().enumerate().find_map(|(i, name)| {
        let name = if short { &name[..3] } else { name };
        let head = s.get(..name.len())?;
        head.eq_ignore_ascii_case(name).then_some((i, name.len()))
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ReadDatetime {
    name: &'static str,
    signature: Signature,
}

/// `to_date(text, text)` and `to_timestamp(text, text)` (one-argument `to_timestamp` is passed
/// to DataFusion's, kept as `inner`).
pub fn all(inner_to_timestamp: Arc<ScalarUDF>) -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(ReadDatetime {
            name: "to_date",
            signature: Signature::any(2, Volatility::Stable),
        }),
        ScalarUDF::new_from_impl(ToTimestamp {
            inner: inner_to_timestamp,
            signature: Signature::one_of(
                vec![TypeSignature::Any(1), TypeSignature::Any(2)],
                Volatility::Stable,
            ),
        }),
    ]
}

impl ScalarUDFImpl for ReadDatetime {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Date32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let read = read_all(&args)?;
        let dates: Date32Array = read
            .into_iter()
            .map(|at| at.map(|at| (at.date() - NaiveDate::default()).num_days() as i32))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(dates)))
    }
}

/// Each row's text read by its template.
fn read_all(args: &ScalarFunctionArgs) -> DFResult<Vec<Option<NaiveDateTime>>> {
    let arrays = ColumnarValue::values_to_arrays(&args.args)?;
    let texts = cast(&arrays[0], &DataType::Utf8)?;
    let templates = cast(&arrays[1], &DataType::Utf8)?;
    let (texts, templates) = (texts.as_string::<i32>(), templates.as_string::<i32>());
    (0..texts.len())
        .map(|i| {
            if texts.is_null(i) || templates.is_null(i) {
                return Ok(None);
            }
            parse_datetime(texts.value(i), templates.value(i))
                .map(Some)
                .map_err(SqlError::into_datafusion)
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ToTimestamp {
    inner: Arc<ScalarUDF>,
    signature: Signature,
}

impl ScalarUDFImpl for ToTimestamp {
    fn name(&self) -> &str {
        "to_timestamp"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DFResult<DataType> {
        match args {
            [_, _] => Ok(SqlType::Timestamptz.arrow_type()),
            _ => self.inner.return_type(args),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        if args.args.len() != 2 {
            return self.inner.invoke_with_args(args);
        }
        let read = read_all(&args)?;
        let micros: TimestampMicrosecondArray = read
            .into_iter()
            .map(|at| at.map(|at| at.and_utc().timestamp_micros()))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(
            micros.with_timezone(crate::types::UTC),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, template: &str) -> String {
        match parse_datetime(text, template) {
            Ok(at) => at.to_string(),
            Err(e) => panic!("{text:?} by {template:?}: {}", e.message),
        }
    }

    #[test]
    fn reads_postgres_templates() {
        assert_eq!(at("2024-02-03", "YYYY-MM-DD"), "2024-02-03 00:00:00");
        assert_eq!(
            at("03/02/2024 14:05:06", "DD/MM/YYYY HH24:MI:SS"),
            "2024-02-03 14:05:06"
        );
        assert_eq!(
            at("3 Feb 2024 2:05 PM", "DD Mon YYYY HH12:MI AM"),
            "2024-02-03 14:05:00"
        );
        assert_eq!(at("20240203", "YYYYMMDD"), "2024-02-03 00:00:00");
        assert_eq!(
            at("Saturday, February 3, 2024", "FMDay, FMMonth FMDD, YYYY"),
            "2024-02-03 00:00:00"
        );
        assert_eq!(at("2024-034", "YYYY-DDD"), "2024-02-03 00:00:00");
        assert_eq!(
            at("2024-02-03 10:00:00.25", "YYYY-MM-DD HH24:MI:SS.MS"),
            "2024-02-03 10:00:00.250"
        );
        assert_eq!(at("99-1-2", "YY-MM-DD"), "1999-01-02 00:00:00");
    }

    #[test]
    fn bad_input_is_a_postgres_error() {
        let code = |t: &str, f: &str| parse_datetime(t, f).unwrap_err().code;
        assert_eq!(
            code("2024-13-01", "YYYY-MM-DD"),
            sqlstate::DATETIME_FIELD_OVERFLOW
        );
        assert_eq!(
            code("2024-xx-01", "YYYY-MM-DD"),
            sqlstate::INVALID_DATETIME_FORMAT
        );
        assert_eq!(
            code("3 Foo 2024", "DD Mon YYYY"),
            sqlstate::INVALID_DATETIME_FORMAT
        );
        assert_eq!(
            code("13:00 PM", "HH12:MI AM"),
            sqlstate::INVALID_DATETIME_FORMAT
        );
    }
}
