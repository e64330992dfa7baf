//! PostgreSQL's `interval`: its text input (every form `interval_in` takes that applications
//! write) and its output in the default `IntervalStyle` (`postgres`).
//!
//! An interval is three separate fields, as in PostgreSQL: months, days and microseconds. Arrow's
//! `Interval(MonthDayNano)` has the same shape (with nanoseconds), so values computed by
//! DataFusion (`now() - interval '1 day'`) and values stored in a column are one type.

use datafusion::arrow::datatypes::IntervalMonthDayNano;

use crate::error::{sqlstate, SqlError, SqlResult};

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;
/// PostgreSQL's rule for comparing and spilling months: a month is 30 days.
const DAYS_PER_MONTH: i64 = 30;

/// An interval as PostgreSQL keeps it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PgInterval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

impl PgInterval {
    pub fn from_arrow(v: IntervalMonthDayNano) -> Self {
        Self {
            months: v.months,
            days: v.days,
            micros: v.nanoseconds.div_euclid(1_000),
        }
    }

    pub fn to_arrow(self) -> IntervalMonthDayNano {
        IntervalMonthDayNano::new(self.months, self.days, self.micros * 1_000)
    }

    /// The interval's length with months as 30 days and days as 24 hours: the value PostgreSQL
    /// compares and indexes intervals by (`'1 month' = '30 days'` is true).
    pub fn span_micros(self) -> i128 {
        (i128::from(self.months) * i128::from(DAYS_PER_MONTH) + i128::from(self.days))
            * i128::from(MICROS_PER_DAY)
            + i128::from(self.micros)
    }

    /// A duration (what subtracting two timestamps gives) as PostgreSQL's `timestamp - timestamp`
    /// shows it: whole days, and the rest as time.
    pub fn from_duration_micros(micros: i64) -> Self {
        Self {
            months: 0,
            days: (micros / MICROS_PER_DAY) as i32,
            micros: micros % MICROS_PER_DAY,
        }
    }
}

fn invalid(text: &str) -> SqlError {
    SqlError::new(
        sqlstate::INVALID_DATETIME_FORMAT,
        format!("invalid input syntax for type interval: \"{text}\""),
    )
}

fn out_of_range(text: &str) -> SqlError {
    SqlError::new(
        sqlstate::DATETIME_FIELD_OVERFLOW,
        format!("interval field value out of range: \"{text}\""),
    )
}

/// Accumulates fields in wide integers, then checks they fit.
#[derive(Default)]
struct Fields {
    months: i64,
    days: i64,
    micros: i128,
}

impl Fields {
    /// Adds `value` of `unit`, spilling a fraction into the smaller fields as PostgreSQL does
    /// (`1.5 months` is 1 month 15 days, `1.5 days` is 1 day 12 hours).
    fn add(&mut self, value: f64, unit: Unit) {
        match unit {
            Unit::Micros(per) => self.micros += (value * per as f64).round() as i128,
            Unit::Days(per) => {
                let days = value * per as f64;
                self.days += days.trunc() as i64;
                self.micros += (days.fract() * MICROS_PER_DAY as f64).round() as i128;
            }
            Unit::Months(per) => {
                let months = value * per as f64;
                // Fractions of a year are whole months; fractions of a month spill into days.
                if per >= 12 {
                    self.months += months.round() as i64;
                    return;
                }
                self.months += months.trunc() as i64;
                self.add(months.fract() * DAYS_PER_MONTH as f64, Unit::Days(1));
            }
        }
    }

    fn finish(self, text: &str) -> SqlResult<PgInterval> {
        Ok(PgInterval {
            months: i32::try_from(self.months).map_err(|_| out_of_range(text))?,
            days: i32::try_from(self.days).map_err(|_| out_of_range(text))?,
            micros: i64::try_from(self.micros).map_err(|_| out_of_range(text))?,
        })
    }

    fn negate(&mut self) {
        self.months = -self.months;
        self.days = -self.days;
        self.micros = -self.micros;
    }
}

#[derive(Clone, Copy)]
enum Unit {
    Micros(i64),
    Days(i64),
    Months(i64),
}

fn unit(word: &str) -> Option<Unit> {
    Some(match word {
        "microsecond" | "microseconds" | "us" | "usec" | "usecs" | "useconds" => Unit::Micros(1),
        "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" | "mseconds" => {
            Unit::Micros(1_000)
        }
        "second" | "seconds" | "s" | "sec" | "secs" => Unit::Micros(MICROS_PER_SECOND),
        "minute" | "minutes" | "m" | "min" | "mins" => Unit::Micros(MICROS_PER_MINUTE),
        "hour" | "hours" | "h" | "hr" | "hrs" => Unit::Micros(MICROS_PER_HOUR),
        "day" | "days" | "d" => Unit::Days(1),
        "week" | "weeks" | "w" => Unit::Days(7),
        "month" | "months" | "mon" | "mons" => Unit::Months(1),
        "year" | "years" | "y" | "yr" | "yrs" => Unit::Months(12),
        "decade" | "decades" | "dec" | "decs" => Unit::Months(120),
        "century" | "centuries" | "c" | "cent" => Unit::Months(1_200),
        "millennium" | "millennia" | "mil" | "mils" => Unit::Months(12_000),
        _ => return None,
    })
}

/// Parses an interval as PostgreSQL's `interval_in` does for the forms applications use:
/// `1 day 2 hours`, `1.5 days`, `-1 mon +3 days`, `04:05:06.7`, `1 12:00`, `2 weeks ago`,
/// `@ 1 minute`, `1-2` (years-months), ISO 8601 `P1Y2M3DT4H5M6S`, and a bare number of seconds.
/// Anything else is `22007`.
pub fn parse(text: &str) -> SqlResult<PgInterval> {
    let lower = text.trim().to_ascii_lowercase();
    let body = lower.strip_prefix('@').unwrap_or(&lower).trim();
    if body.is_empty() {
        return Err(invalid(text));
    }
    let mut fields = Fields::default();
    if let Some(iso) = body.strip_prefix('p') {
        parse_iso(iso, &mut fields).ok_or_else(|| invalid(text))?;
        return fields.finish(text);
    }
    let tokens = tokens(body);
    let mut i = 0;
    let mut ago = false;
    let mut any = false;
    while i < tokens.len() {
        let token = tokens[i];
        i += 1;
        if token == "ago" {
            ago = true;
            continue;
        }
        if ago {
            return Err(invalid(text));
        }
        if token.contains(':') {
            fields.micros += time_field(token).ok_or_else(|| invalid(text))?;
            any = true;
            continue;
        }
        if let Some((years, months)) = year_month(token) {
            fields.months += years * 12 + months;
            any = true;
            continue;
        }
        let value: f64 = token.parse().map_err(|_| invalid(text))?;
        if !value.is_finite() {
            return Err(invalid(text));
        }
        match tokens.get(i).and_then(|w| unit(w)) {
            Some(unit) => {
                i += 1;
                fields.add(value, unit);
            }
            // A number before a time is days (`1 12:00`); alone, it is seconds.
            None if tokens.get(i).is_some_and(|t| t.contains(':')) => {
                fields.add(value, Unit::Days(1))
            }
            None => fields.add(value, Unit::Micros(MICROS_PER_SECOND)),
        }
        any = true;
    }
    if !any {
        return Err(invalid(text));
    }
    if ago {
        fields.negate();
    }
    fields.finish(text)
}

/// Splits `1day -2 hours` into `1`, `day`, `-2`, `hours`: numbers and words, also when written
/// together.
fn tokens(body: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for word in body.split(|c: char| c.is_whitespace() || c == ',') {
        if word.is_empty() {
            continue;
        }
        // `1day`: a number glued to its unit.
        let split = word
            .char_indices()
            .skip(1)
            .find(|(_, c)| c.is_ascii_alphabetic())
            .map(|(i, _)| i)
            .filter(|&i| {
                word[..i]
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+'))
            });
        match split {
            Some(i) => {
                out.push(&word[..i]);
                out.push(&word[i..]);
            }
            None => out.push(word),
        }
    }
    out
}

/// `[-+]h:m[:s[.f]]` in microseconds.
fn time_field(token: &str) -> Option<i128> {
    let (negative, digits) = match token.as_bytes().first()? {
        b'-' => (true, &token[1..]),
        b'+' => (false, &token[1..]),
        _ => (false, token),
    };
    let parts: Vec<&str> = digits.split(':').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let hours: i128 = parts[0].parse().ok()?;
    let minutes: i128 = parts[1].parse().ok()?;
    if !(0..60).contains(&minutes) {
        return None;
    }
    let seconds: f64 = match parts.get(2) {
        Some(s) if s.chars().all(|c| c.is_ascii_digit() || c == '.') => s.parse().ok()?,
        Some(_) => return None,
        None => 0.0,
    };
    if seconds >= 60.0 {
        return None;
    }
    let micros = (hours * 60 + minutes) * i128::from(MICROS_PER_MINUTE)
        + (seconds * MICROS_PER_SECOND as f64).round() as i128;
    Some(if negative { -micros } else { micros })
}

/// The SQL-standard `years-months` form (`1-2`).
fn year_month(token: &str) -> Option<(i64, i64)> {
    let (negative, body) = match token.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, token.strip_prefix('+').unwrap_or(token)),
    };
    let (years, months) = body.split_once('-')?;
    let (years, months): (i64, i64) = (years.parse().ok()?, months.parse().ok()?);
    if !(0..12).contains(&months) {
        return None;
    }
    Some(if negative {
        (-years, -months)
    } else {
        (years, months)
    })
}

/// ISO 8601 durations after the `P`: `1Y2M3W4DT5H6M7.5S`.
fn parse_iso(body: &str, fields: &mut Fields) -> Option<()> {
    let mut in_time = false;
    let mut number = String::new();
    let mut any = false;
    for c in body.chars() {
        match c {
            't' if number.is_empty() && !in_time => in_time = true,
            '0'..='9' | '.' | '-' | '+' => number.push(c),
            designator => {
                let value: f64 = number.parse().ok()?;
                number.clear();
                let unit = match (in_time, designator) {
                    (false, 'y') => Unit::Months(12),
                    (false, 'm') => Unit::Months(1),
                    (false, 'w') => Unit::Days(7),
                    (false, 'd') => Unit::Days(1),
                    (true, 'h') => Unit::Micros(MICROS_PER_HOUR),
                    (true, 'm') => Unit::Micros(MICROS_PER_MINUTE),
                    (true, 's') => Unit::Micros(MICROS_PER_SECOND),
                    _ => return None,
                };
                fields.add(value, unit);
                any = true;
            }
        }
    }
    (number.is_empty() && any).then_some(())
}

/// An interval as PostgreSQL prints it with `IntervalStyle = postgres`:
/// `1 year 2 mons 3 days 04:05:06.789`, `-1 mons +3 days`, `00:00:00`.
pub fn text(v: PgInterval) -> String {
    let mut out = String::new();
    let mut is_before = false;
    let part = |out: &mut String, value: i64, unit: &str, is_before: &mut bool| {
        if value == 0 {
            return;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        if *is_before && value > 0 {
            out.push('+');
        }
        out.push_str(&format!(
            "{value} {unit}{}",
            if value != 1 { "s" } else { "" }
        ));
        *is_before = value < 0;
    };
    let months = i64::from(v.months);
    part(&mut out, months / 12, "year", &mut is_before);
    part(&mut out, months % 12, "mon", &mut is_before);
    part(&mut out, i64::from(v.days), "day", &mut is_before);
    if out.is_empty() || v.micros != 0 {
        if !out.is_empty() {
            out.push(' ');
        }
        let micros = v.micros.unsigned_abs();
        if v.micros < 0 {
            out.push('-');
        } else if is_before {
            out.push('+');
        }
        let (hours, rest) = (
            micros / MICROS_PER_HOUR as u64,
            micros % MICROS_PER_HOUR as u64,
        );
        let (minutes, rest) = (
            rest / MICROS_PER_MINUTE as u64,
            rest % MICROS_PER_MINUTE as u64,
        );
        let (seconds, fraction) = (
            rest / MICROS_PER_SECOND as u64,
            rest % MICROS_PER_SECOND as u64,
        );
        out.push_str(&format!("{hours:02}:{minutes:02}:{seconds:02}"));
        if fraction > 0 {
            out.push('.');
            out.push_str(format!("{fraction:06}").trim_end_matches('0'));
        }
    }
    out
}

/// `time` (without time zone) from microseconds since midnight: `12:34:56.5`.
pub fn time_text(micros: i64) -> String {
    let (seconds, fraction) = (
        micros.div_euclid(MICROS_PER_SECOND),
        micros.rem_euclid(MICROS_PER_SECOND),
    );
    let mut out = format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    if fraction > 0 {
        out.push('.');
        out.push_str(format!("{fraction:06}").trim_end_matches('0'));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(input: &str) -> String {
        text(parse(input).unwrap())
    }

    #[test]
    fn parses_and_prints_as_postgres_does() {
        // Each pair is (input, what PostgreSQL 15 prints for `interval 'input'`).
        for (input, printed) in [
            ("1 day 2 hours", "1 day 02:00:00"),
            (
                "1 year 2 months 3 days 04:05:06.789",
                "1 year 2 mons 3 days 04:05:06.789",
            ),
            ("-1 month 3 days 00:00:01.5", "-1 mons +3 days 00:00:01.5"),
            ("-3 days", "-3 days"),
            ("90 minutes", "01:30:00"),
            ("36 hours", "36:00:00"),
            ("1.5 days", "1 day 12:00:00"),
            ("1.5 months", "1 mon 15 days"),
            ("1.5 years", "1 year 6 mons"),
            ("2 weeks ago", "-14 days"),
            ("@ 1 minute", "00:01:00"),
            ("1 12:00", "1 day 12:00:00"),
            ("-02:00:00", "-02:00:00"),
            ("-1 day +02:00:00", "-1 days +02:00:00"),
            ("1-2", "1 year 2 mons"),
            ("P1Y2M3DT4H5M6S", "1 year 2 mons 3 days 04:05:06"),
            ("0", "00:00:00"),
            ("10", "00:00:10"),
            ("1day", "1 day"),
            ("250 ms", "00:00:00.25"),
            ("1 decade", "10 years"),
            ("-1 year -2 mons", "-1 years -2 mons"),
        ] {
            assert_eq!(round_trip(input), printed, "{input}");
        }
        for bad in [
            "",
            "abc",
            "1 fortnight",
            "1 day ago 2 hours",
            "12:60",
            "P1X",
        ] {
            assert_eq!(
                parse(bad).unwrap_err().code,
                sqlstate::INVALID_DATETIME_FORMAT,
                "{bad}"
            );
        }
    }

    #[test]
    fn months_compare_as_thirty_days() {
        assert_eq!(
            parse("1 month").unwrap().span_micros(),
            parse("30 days").unwrap().span_micros()
        );
        assert_eq!(
            text(PgInterval::from_duration_micros(
                31 * MICROS_PER_DAY + 10 * MICROS_PER_HOUR
            )),
            "31 days 10:00:00"
        );
        assert_eq!(time_text(45_296_500_000), "12:34:56.5");
    }
}
