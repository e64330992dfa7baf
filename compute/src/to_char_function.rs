//! `to_char(value, template)` as PostgreSQL formats: a timestamp, timestamptz or date by
//! PostgreSQL's template patterns (`YYYY-MM-DD HH24:MI:SS`, `Mon`, `Day`, `FM`, `TH`, quoted
//! text), and a number by its digit patterns (`9`, `0`, `.`, `,`, `D`, `G`, `S`, `MI`, `PL`,
//! `SG`, `PR`, `FM`). DataFusion's own `to_char` reads chrono's `%Y` patterns and would print a
//! PostgreSQL template back unchanged. Timestamps with a time zone print in UTC, the session's
//! only time zone.

use std::sync::Arc;

use chrono::{Datelike, NaiveDateTime, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::Result as DFResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::error::{sqlstate, SqlError, SqlResult};

#[derive(Debug, PartialEq, Eq, Hash)]
struct ToChar {
    signature: Signature,
}

pub fn all() -> Vec<ScalarUDF> {
    vec![ScalarUDF::new_from_impl(ToChar {
        signature: Signature::any(2, Volatility::Stable),
    })]
}

impl ScalarUDFImpl for ToChar {
    fn name(&self) -> &str {
        "to_char"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        to_char(&arrays[0], &arrays[1])
            .map(ColumnarValue::Array)
            .map_err(SqlError::into_datafusion)
    }
}

fn to_char(values: &ArrayRef, templates: &ArrayRef) -> SqlResult<ArrayRef> {
    let templates = datafusion::arrow::compute::cast(templates, &DataType::Utf8)?;
    let templates = templates.as_string::<i32>();
    let rows = values.len();
    let template = |i: usize| (!templates.is_null(i)).then(|| templates.value(i));
    let out: StringArray = match values.data_type() {
        DataType::Null => (0..rows).map(|_| None::<String>).collect(),
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => {
            let micros = datafusion::arrow::compute::cast(
                values,
                &DataType::Timestamp(TimeUnit::Microsecond, None),
            )?;
            let micros =
                micros.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
            (0..rows)
                .map(|i| {
                    if micros.is_null(i) {
                        return Ok(None);
                    }
                    let Some(t) = template(i) else {
                        return Ok(None);
                    };
                    let at = chrono::DateTime::from_timestamp_micros(micros.value(i))
                        .ok_or_else(|| {
                            SqlError::new(
                                sqlstate::DATETIME_FIELD_OVERFLOW,
                                "timestamp out of range",
                            )
                        })?
                        .naive_utc();
                    Ok(Some(format_datetime(&at, t)))
                })
                .collect::<SqlResult<_>>()?
        }
        number if number.is_numeric() => {
            // Every number as its exact decimal text: floats by their shortest round-trip text.
            let text = crate::pg_encode::text_column(values)?;
            let text = text.as_string::<i32>();
            (0..rows)
                .map(|i| match (text.is_null(i), template(i)) {
                    (false, Some(t)) => format_number(text.value(i), t).map(Some),
                    _ => Ok(None),
                })
                .collect::<SqlResult<_>>()?
        }
        other => {
            return Err(SqlError::new(
                sqlstate::UNDEFINED_FUNCTION,
                format!(
                    "function to_char({}, unknown) does not exist",
                    crate::types::pg_type_of_arrow(other).name()
                ),
            ))
        }
    };
    Ok(Arc::new(out))
}

pub(crate) const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
pub(crate) const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The datetime patterns, longest first where one begins another.
const PATTERNS: &[&str] = &[
    "Y,YYY", "YYYY", "YYY", "YY", "Y", "IYYY", "IYY", "IY", "HH24", "HH12", "HH", "MI", "SSSS",
    "SS", "MS", "US", "A.M.", "a.m.", "P.M.", "p.m.", "AM", "am", "PM", "pm", "MONTH", "Month",
    "month", "MON", "Mon", "mon", "MM", "DAY", "Day", "day", "DY", "Dy", "dy", "DDD", "DD", "D",
    "ID", "IW", "WW", "W", "Q", "CC", "J", "TZ", "tz", "OF",
];

/// `1st`, `2nd`, `3rd`, `4th`, `11th`.
fn ordinal_suffix(n: i64, upper: bool) -> &'static str {
    let suffix = match (n % 100, n % 10) {
        (11..=13, _) => "th",
        (_, 1) => "st",
        (_, 2) => "nd",
        (_, 3) => "rd",
        _ => "th",
    };
    match (upper, suffix) {
        (false, s) => s,
        (true, "st") => "ST",
        (true, "nd") => "ND",
        (true, "rd") => "RD",
        (true, _) => "TH",
    }
}

/// A name as the pattern's case asks (`MONTH`, `Month`, `month`), padded to 9 unless FM.
fn name(full: &str, pattern: &str, short: bool, fill: bool) -> String {
    let text: String = if short {
        full.chars().take(3).collect()
    } else {
        full.to_string()
    };
    let cased = if pattern.chars().all(|c| c.is_ascii_uppercase()) {
        text.to_uppercase()
    } else if pattern.chars().all(|c| c.is_ascii_lowercase()) {
        text.to_lowercase()
    } else {
        text
    };
    if short || fill {
        cased
    } else {
        format!("{cased:<9}")
    }
}

/// Formats a timestamp by a PostgreSQL datetime template.
pub fn format_datetime(at: &NaiveDateTime, template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while !rest.is_empty() {
        // FM (fill mode) applies to the pattern right after it.
        let fill = rest.starts_with("FM") || rest.starts_with("fm");
        if fill {
            rest = &rest[2..];
        }
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            out.push_str(&quoted[..end]);
            rest = quoted.get(end + 1..).unwrap_or("");
            continue;
        }
        if let Some(escaped) = rest.strip_prefix('\\') {
            let mut chars = escaped.chars();
            if let Some(c) = chars.next() {
                out.push(c);
            }
            rest = chars.as_str();
            continue;
        }
        // Names and meridiem markers are matched by case (`Month`, `MONTH`); the numeric
        // patterns in any case (`yyyy`, `dd`, `hh24`).
        let upper = rest
            .get(..rest.len().min(5))
            .unwrap_or(rest)
            .to_ascii_uppercase();
        let pattern = PATTERNS.iter().find(|p| rest.starts_with(**p)).or_else(|| {
            PATTERNS
                .iter()
                .filter(|p| {
                    p.chars().any(|c| c.is_ascii_digit())
                        || p.chars().all(|c| {
                            matches!(
                                c,
                                'Y' | 'M'
                                    | 'D'
                                    | 'H'
                                    | 'I'
                                    | 'S'
                                    | 'U'
                                    | 'Q'
                                    | 'W'
                                    | 'C'
                                    | 'J'
                                    | ','
                            )
                        })
                })
                .filter(|p| !matches!(**p, "MON" | "DAY" | "DY"))
                .find(|p| upper.starts_with(**p))
        });
        let Some(pattern) = pattern else {
            let mut chars = rest.chars();
            out.extend(chars.next());
            rest = chars.as_str();
            continue;
        };
        rest = &rest[pattern.len()..];
        let number = |n: i64, width: usize| {
            if fill {
                n.to_string()
            } else {
                format!("{n:0width$}")
            }
        };
        let hour12 = match at.hour() % 12 {
            0 => 12,
            h => h,
        };
        let (value, numeric): (String, Option<i64>) = match *pattern {
            "Y,YYY" => {
                let y = i64::from(at.year());
                (format!("{},{:03}", y / 1000, y % 1000), None)
            }
            "YYYY" => (number(i64::from(at.year()), 4), Some(i64::from(at.year()))),
            "YYY" => (number(i64::from(at.year()) % 1000, 3), None),
            "YY" => (number(i64::from(at.year()) % 100, 2), None),
            "Y" => (number(i64::from(at.year()) % 10, 1), None),
            "IYYY" => (number(i64::from(at.iso_week().year()), 4), None),
            "IYY" => (number(i64::from(at.iso_week().year()) % 1000, 3), None),
            "IY" => (number(i64::from(at.iso_week().year()) % 100, 2), None),
            "HH24" => (number(i64::from(at.hour()), 2), Some(i64::from(at.hour()))),
            "HH12" | "HH" => (number(i64::from(hour12), 2), Some(i64::from(hour12))),
            "MI" => (
                number(i64::from(at.minute()), 2),
                Some(i64::from(at.minute())),
            ),
            "SS" => (
                number(i64::from(at.second()), 2),
                Some(i64::from(at.second())),
            ),
            "SSSS" => {
                let s = i64::from(at.num_seconds_from_midnight());
                (s.to_string(), Some(s))
            }
            "MS" => (number(i64::from(at.nanosecond() / 1_000_000), 3), None),
            "US" => (number(i64::from(at.nanosecond() / 1_000), 6), None),
            "AM" | "PM" => ((if at.hour() < 12 { "AM" } else { "PM" }).into(), None),
            "am" | "pm" => ((if at.hour() < 12 { "am" } else { "pm" }).into(), None),
            "A.M." | "P.M." => ((if at.hour() < 12 { "A.M." } else { "P.M." }).into(), None),
            "a.m." | "p.m." => ((if at.hour() < 12 { "a.m." } else { "p.m." }).into(), None),
            "MONTH" | "Month" | "month" => (
                name(MONTHS[at.month0() as usize], pattern, false, fill),
                None,
            ),
            "MON" | "Mon" | "mon" => (
                name(MONTHS[at.month0() as usize], pattern, true, fill),
                None,
            ),
            "MM" => (
                number(i64::from(at.month()), 2),
                Some(i64::from(at.month())),
            ),
            "DAY" | "Day" | "day" => (
                name(
                    DAYS[at.weekday().num_days_from_sunday() as usize],
                    pattern,
                    false,
                    fill,
                ),
                None,
            ),
            "DY" | "Dy" | "dy" => (
                name(
                    DAYS[at.weekday().num_days_from_sunday() as usize],
                    pattern,
                    true,
                    fill,
                ),
                None,
            ),
            "DDD" => (
                number(i64::from(at.ordinal()), 3),
                Some(i64::from(at.ordinal())),
            ),
            "DD" => (number(i64::from(at.day()), 2), Some(i64::from(at.day()))),
            "D" => {
                let d = i64::from(at.weekday().num_days_from_sunday()) + 1;
                (d.to_string(), Some(d))
            }
            "ID" => {
                let d = i64::from(at.weekday().number_from_monday());
                (d.to_string(), Some(d))
            }
            "IW" => {
                let w = i64::from(at.iso_week().week());
                (number(w, 2), Some(w))
            }
            "WW" => {
                let w = i64::from(at.ordinal0() / 7 + 1);
                (number(w, 2), Some(w))
            }
            "W" => {
                let w = i64::from(at.day0() / 7 + 1);
                (w.to_string(), Some(w))
            }
            "Q" => {
                let q = i64::from(at.month0() / 3 + 1);
                (q.to_string(), Some(q))
            }
            "CC" => {
                let y = i64::from(at.year());
                let c = if y > 0 { (y + 99) / 100 } else { y / 100 - 1 };
                (number(c, 2), Some(c))
            }
            "J" => {
                // Julian day: days since 4714-11-24 BC (proleptic Gregorian).
                let j = i64::from(at.num_days_from_ce()) + 1_721_425;
                (j.to_string(), Some(j))
            }
            "TZ" => ("UTC".into(), None),
            "tz" => ("utc".into(), None),
            "OF" => ("+00".into(), None),
            _ => (String::new(), None),
        };
        out.push_str(&value);
        // TH / th after a number: its ordinal suffix.
        if let Some(n) = numeric {
            if let Some(after) = rest.strip_prefix("TH") {
                out.push_str(ordinal_suffix(n, true));
                rest = after;
            } else if let Some(after) = rest.strip_prefix("th") {
                out.push_str(ordinal_suffix(n, false));
                rest = after;
            }
        }
    }
    out
}

/// One element of a number template.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum NumToken {
    Nine,
    Zero,
    Point,
    Group,
    Sign,
    Minus,
    Plus,
    SignBoth,
    Literal(char),
}

/// Formats a number (its exact decimal text) by a PostgreSQL numeric template.
pub fn format_number(value: &str, template: &str) -> SqlResult<String> {
    let mut tokens = Vec::new();
    let mut fill = false;
    let mut angle = false;
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        let upper = rest.to_ascii_uppercase();
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            tokens.extend(quoted[..end].chars().map(NumToken::Literal));
            rest = quoted.get(end + 1..).unwrap_or("");
            continue;
        }
        let (token, len) = if upper.starts_with("FM") {
            fill = true;
            rest = &rest[2..];
            continue;
        } else if upper.starts_with("PR") {
            angle = true;
            rest = &rest[2..];
            continue;
        } else if upper.starts_with("MI") {
            (NumToken::Minus, 2)
        } else if upper.starts_with("PL") {
            (NumToken::Plus, 2)
        } else if upper.starts_with("SG") {
            (NumToken::SignBoth, 2)
        } else if upper.starts_with("EEEE") || upper.starts_with('V') {
            return Err(SqlError::unsupported("to_char number patterns EEEE and V"));
        } else {
            let token = match c {
                '9' => NumToken::Nine,
                '0' => NumToken::Zero,
                '.' | 'D' | 'd' => NumToken::Point,
                ',' | 'G' | 'g' => NumToken::Group,
                'S' | 's' => NumToken::Sign,
                other => NumToken::Literal(other),
            };
            (token, c.len_utf8())
        };
        tokens.push(token);
        rest = &rest[len..];
    }
    let point = tokens.iter().position(|t| *t == NumToken::Point);
    let is_digit = |t: &NumToken| matches!(t, NumToken::Nine | NumToken::Zero);
    let int_positions = tokens[..point.unwrap_or(tokens.len())]
        .iter()
        .filter(|t| is_digit(t))
        .count();
    let frac_tokens: Vec<NumToken> = point.map_or(Vec::new(), |p| {
        tokens[p + 1..].iter().copied().filter(is_digit).collect()
    });
    // Round the value to the template's fractional digits.
    let negative = value.starts_with('-');
    let rounded = round_decimal(value.trim_start_matches(['-', '+']), frac_tokens.len());
    let (int_part, frac_part) = rounded.split_once('.').unwrap_or((rounded.as_str(), ""));
    let int_part = int_part.trim_start_matches('0');
    let negative = negative && (int_part.chars().chain(frac_part.chars()).any(|c| c != '0'));
    let overflow = int_part.len() > int_positions;
    // The integer digits, right-aligned to the template's digit positions.
    let first_zero = tokens[..point.unwrap_or(tokens.len())]
        .iter()
        .filter(|t| is_digit(t))
        .position(|t| *t == NumToken::Zero);
    let mut int_digits: Vec<Option<char>> = Vec::with_capacity(int_positions);
    for position in 0..int_positions {
        let from_right = int_positions - position;
        let digit = int_part.chars().rev().nth(from_right - 1);
        let padded_zero = first_zero.is_some_and(|z| position >= z);
        // A value below 1 keeps one 0 before the point only when the template has no
        // fractional digits (PostgreSQL prints `0` for 0 with `999`, `.50` with `9.99`).
        let last_needed =
            position + 1 == int_positions && int_part.is_empty() && frac_tokens.is_empty();
        int_digits.push(match digit {
            Some(d) => Some(d),
            None if padded_zero || last_needed => Some('0'),
            None => None,
        });
    }
    // An S before the digits, like the sign PostgreSQL always reserves a place for, floats to
    // just before the first digit; PR's angle brackets do too. MI, PL, SG and a trailing S stay
    // where they are written.
    let first_digit = tokens
        .iter()
        .position(|t| is_digit(t) || *t == NumToken::Point)
        .unwrap_or(tokens.len());
    let leading_s = tokens[..first_digit].contains(&NumToken::Sign);
    let anchored_sign = tokens
        .iter()
        .any(|t| matches!(t, NumToken::Minus | NumToken::SignBoth))
        || (tokens.contains(&NumToken::Sign) && !leading_s);
    let floating: Option<(&str, &str)> = if angle {
        Some(("<", " "))
    } else if leading_s {
        Some(("-", "+"))
    } else if anchored_sign {
        None
    } else {
        Some(("-", " "))
    };
    let float_sign = |out: &mut String| {
        if let Some((minus, plus)) = floating {
            match (negative, fill) {
                (true, _) => out.push_str(minus),
                (false, false) => out.push_str(plus),
                (false, true) if plus == "+" => out.push('+'),
                (false, true) => {}
            }
        }
    };
    let mut out = String::new();
    let mut digit_index = 0;
    let mut frac_index = 0;
    let mut sign_pending = true;
    let mut after_point = false;
    for token in &tokens {
        match token {
            NumToken::Nine | NumToken::Zero if !after_point => {
                let digit = if overflow {
                    Some('#')
                } else {
                    int_digits[digit_index]
                };
                digit_index += 1;
                match digit {
                    Some(d) => {
                        if sign_pending {
                            float_sign(&mut out);
                            sign_pending = false;
                        }
                        out.push(d);
                    }
                    None if !fill => out.push(' '),
                    None => {}
                }
            }
            NumToken::Nine | NumToken::Zero => {
                let digit = if overflow {
                    '#'
                } else {
                    frac_part.chars().nth(frac_index).unwrap_or('0')
                };
                frac_index += 1;
                out.push(digit);
            }
            NumToken::Point => {
                if sign_pending {
                    float_sign(&mut out);
                    sign_pending = false;
                }
                after_point = true;
                out.push('.');
            }
            NumToken::Group => {
                if !sign_pending {
                    out.push(',');
                } else if !fill {
                    out.push(' ');
                }
            }
            NumToken::Sign if leading_s => {}
            NumToken::Sign | NumToken::SignBoth => out.push(if negative { '-' } else { '+' }),
            NumToken::Minus => match (negative, fill) {
                (true, _) => out.push('-'),
                (false, false) => out.push(' '),
                (false, true) => {}
            },
            NumToken::Plus => match (negative, fill) {
                (false, _) => out.push('+'),
                (true, false) => out.push(' '),
                (true, true) => {}
            },
            NumToken::Literal(c) => out.push(*c),
        }
    }
    if sign_pending {
        float_sign(&mut out);
    }
    if fill {
        // FM drops the fractional 9s' trailing zeros.
        if let Some(p) = point {
            let trailing_nines = tokens[p + 1..]
                .iter()
                .rev()
                .take_while(|t| **t == NumToken::Nine)
                .count();
            let mut removed = 0;
            while removed < trailing_nines && out.ends_with('0') {
                out.pop();
                removed += 1;
            }
        }
    }
    if angle {
        match (negative, fill) {
            (true, _) => out.push('>'),
            (false, false) => out.push(' '),
            (false, true) => {}
        }
    }
    Ok(out)
}

/// A decimal text rounded half away from zero to `scale` fractional digits.
fn round_decimal(text: &str, scale: usize) -> String {
    let (int_part, frac_part) = text.split_once('.').unwrap_or((text, ""));
    let mut digits: Vec<u8> = int_part
        .bytes()
        .chain(frac_part.bytes().chain(std::iter::repeat(b'0')).take(scale))
        .map(|b| b - b'0')
        .collect();
    if frac_part.as_bytes().get(scale).is_some_and(|b| *b >= b'5') {
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, 1);
                break;
            }
            i -= 1;
            if digits[i] == 9 {
                digits[i] = 0;
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let text: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
    let split = text.len() - scale;
    if scale == 0 {
        text
    } else {
        format!("{}.{}", &text[..split], &text[split..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_format_as_postgres_does() {
        let at = chrono::NaiveDate::from_ymd_opt(2024, 1, 2)
            .unwrap()
            .and_hms_micro_opt(15, 4, 5, 123_456)
            .unwrap();
        assert_eq!(
            format_datetime(&at, "YYYY-MM-DD HH24:MI:SS"),
            "2024-01-02 15:04:05"
        );
        assert_eq!(
            format_datetime(&at, "HH12:MI AM, Day Month"),
            "03:04 PM, Tuesday   January  "
        );
        assert_eq!(
            format_datetime(&at, "FMDay, FMDDth \"of\" Mon YYYY"),
            "Tuesday, 2nd of Jan 2024"
        );
        assert_eq!(format_datetime(&at, "MS US Q IW"), "123 123456 1 01");
    }

    #[test]
    fn numbers_format_as_postgres_does() {
        let cases = [
            ("1234.5", "FM9999.00", "1234.50"),
            ("42", "000", " 042"),
            ("1234.5", "9999.99", " 1234.50"),
            ("-1234.5", "9999.99", "-1234.50"),
            ("12", "9999", "   12"),
            ("-12", "9999", "  -12"),
            ("12345", "999", " ###"),
            ("1234567.891", "9,999,999.99", " 1,234,567.89"),
            ("0", "999", "   0"),
            ("0.5", "9.99", "  .50"),
            ("1234.5", "FM9999.99", "1234.5"),
            ("-5", "S999", "  -5"),
            ("5", "S999", "  +5"),
            ("-485", "S999", "-485"),
            ("-5", "999PR", "  <5>"),
            ("5", "999MI", "  5 "),
            ("-5", "999MI", "  5-"),
            ("-5", "MI999", "-  5"),
            ("5", "PL999", "+   5"),
            ("5", "SG999", "+  5"),
            ("-5", "FM999MI", "5-"),
            ("0.5", "0.99", " 0.50"),
            ("-0.5", "9.99", " -.50"),
            ("1234", "FM9999.99", "1234."),
            ("0", "9.99", "  .00"),
            ("12", "FM0000", "0012"),
            ("-12", "0000", "-0012"),
            ("1.999", "9.99", " 2.00"),
            ("485", "\"Total:\" 999", "Total:  485"),
            ("1234567.891", "FM9G999G999D00", "1,234,567.89"),
            ("12.5", "99.9", " 12.5"),
            ("100", "FM999", "100"),
            ("-0.1", "FM9.9", "-.1"),
        ];
        for (value, template, want) in cases {
            assert_eq!(
                format_number(value, template).unwrap(),
                want,
                "{value} {template}"
            );
        }
    }
}
