//! Values printed exactly as PostgreSQL prints them in text format (DateStyle ISO, TimeZone UTC).

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike};

/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (PostgreSQL's).
pub const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
pub const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// `'infinity'` and `'-infinity'` as timestamps: PostgreSQL stores them as the largest and
/// smallest values of the type, and so does Strata (in microseconds since the Unix epoch), so
/// that they sort after and before every other timestamp.
pub const TIMESTAMP_INFINITY: i64 = i64::MAX;
pub const TIMESTAMP_NEG_INFINITY: i64 = i64::MIN;
/// `'infinity'` and `'-infinity'` as dates (days since the Unix epoch).
pub const DATE_INFINITY: i32 = i32::MAX;
pub const DATE_NEG_INFINITY: i32 = i32::MIN;

/// A timestamp in PostgreSQL's binary form (microseconds since 2000-01-01); the infinities
/// are sent as they are, as PostgreSQL sends them.
pub fn timestamp_to_pg(micros: i64) -> i64 {
    match micros {
        TIMESTAMP_INFINITY | TIMESTAMP_NEG_INFINITY => micros,
        _ => micros - PG_EPOCH_MICROS,
    }
}

/// [`timestamp_to_pg`] undone: PostgreSQL's binary timestamp as microseconds since 1970.
pub fn timestamp_from_pg(pg_micros: i64) -> Option<i64> {
    match pg_micros {
        TIMESTAMP_INFINITY | TIMESTAMP_NEG_INFINITY => Some(pg_micros),
        _ => pg_micros.checked_add(PG_EPOCH_MICROS),
    }
}

/// A date in PostgreSQL's binary form (days since 2000-01-01), infinities as they are.
pub fn date_to_pg(days: i32) -> i32 {
    match days {
        DATE_INFINITY | DATE_NEG_INFINITY => days,
        _ => days - PG_EPOCH_DAYS,
    }
}

/// [`date_to_pg`] undone.
pub fn date_from_pg(pg_days: i32) -> Option<i32> {
    match pg_days {
        DATE_INFINITY | DATE_NEG_INFINITY => Some(pg_days),
        _ => pg_days.checked_add(PG_EPOCH_DAYS),
    }
}

/// `infinity` or `-infinity` for a value that is one of a type's two infinities.
fn infinity_text<T: PartialEq>(value: T, infinity: T, neg_infinity: T) -> Option<String> {
    if value == infinity {
        Some("infinity".into())
    } else if value == neg_infinity {
        Some("-infinity".into())
    } else {
        None
    }
}

pub fn bool_text(v: bool) -> &'static str {
    if v {
        "t"
    } else {
        "f"
    }
}

/// `float8out` with the default `extra_float_digits = 1`: the shortest text that reads back as
/// the same value, in fixed notation for decimal exponents in [-4, 15) and `1e+20`-style
/// scientific notation otherwise.
pub fn float8_text(v: f64) -> String {
    float_text(v, format!("{v:e}"), 15)
}

/// `float4out`: as [`float8_text`] with single precision, fixed notation for exponents in [-4, 6).
pub fn float4_text(v: f32) -> String {
    float_text(f64::from(v), format!("{v:e}"), 6)
}

fn float_text(v: f64, scientific: String, fixed_below: i32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust prints the shortest round-trip digits as `-1.2345e-7`.
    let (mantissa, exp) = scientific.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if exp < -4 || exp >= fixed_below {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// A decimal with `scale` fractional digits. With `trim`, trailing fractional zeros are dropped
/// (Strata's unconstrained `numeric`, which has no declared scale to keep).
pub fn decimal_text(value: i128, scale: i8, trim: bool) -> String {
    let negative = value < 0;
    let digits = value.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + 3);
    if negative {
        out.push('-');
    }
    if scale <= 0 {
        out.push_str(&digits);
        for _ in 0..(-scale) {
            out.push('0');
        }
        return out;
    }
    let scale = scale as usize;
    let (int_part, frac_part) = if digits.len() > scale {
        let (i, f) = digits.split_at(digits.len() - scale);
        (i.to_string(), f.to_string())
    } else {
        (
            "0".to_string(),
            format!("{}{}", "0".repeat(scale - digits.len()), digits),
        )
    };
    out.push_str(&int_part);
    let frac = if trim {
        frac_part.trim_end_matches('0')
    } else {
        frac_part.as_str()
    };
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

pub fn bytea_text(v: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 + 2 * v.len());
    out.push_str("\\x");
    for b in v {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out
}

fn push_year(out: &mut String, year: i32) {
    // PostgreSQL has no year 0: 1 BC is year 0 in the proleptic calendar chrono uses.
    let shown = if year <= 0 { 1 - year } else { year };
    out.push_str(&format!("{shown:04}"));
}

fn push_date(out: &mut String, d: &NaiveDate) {
    push_year(out, d.year());
    out.push_str(&format!("-{:02}-{:02}", d.month(), d.day()));
}

fn bc_suffix(out: &mut String, year: i32) {
    if year <= 0 {
        out.push_str(" BC");
    }
}

pub fn date_text(days_since_unix_epoch: i32) -> Option<String> {
    if let Some(text) = infinity_text(days_since_unix_epoch, DATE_INFINITY, DATE_NEG_INFINITY) {
        return Some(text);
    }
    let d = DateTime::from_timestamp(i64::from(days_since_unix_epoch) * 86_400, 0)?.date_naive();
    let mut out = String::with_capacity(13);
    push_date(&mut out, &d);
    bc_suffix(&mut out, d.year());
    Some(out)
}

fn push_time(out: &mut String, t: &NaiveDateTime) {
    out.push_str(&format!(
        "{:02}:{:02}:{:02}",
        t.hour(),
        t.minute(),
        t.second()
    ));
    let micros = t.nanosecond() / 1_000;
    if micros > 0 {
        let frac = format!("{micros:06}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
}

/// `timestamp` (without time zone) from microseconds since the Unix epoch.
pub fn timestamp_text(micros: i64) -> Option<String> {
    if let Some(text) = infinity_text(micros, TIMESTAMP_INFINITY, TIMESTAMP_NEG_INFINITY) {
        return Some(text);
    }
    let t = DateTime::from_timestamp_micros(micros)?.naive_utc();
    let mut out = String::with_capacity(29);
    push_date(&mut out, &t.date());
    out.push(' ');
    push_time(&mut out, &t);
    bc_suffix(&mut out, t.year());
    Some(out)
}

/// `timestamptz` in the session time zone, which is UTC.
pub fn timestamptz_text(micros: i64) -> Option<String> {
    if let Some(text) = infinity_text(micros, TIMESTAMP_INFINITY, TIMESTAMP_NEG_INFINITY) {
        return Some(text);
    }
    let t = DateTime::from_timestamp_micros(micros)?.naive_utc();
    let mut out = String::with_capacity(32);
    push_date(&mut out, &t.date());
    out.push(' ');
    push_time(&mut out, &t);
    out.push_str("+00");
    bc_suffix(&mut out, t.year());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_postgres() {
        // Expected strings are what PostgreSQL 15 prints for these float8 values.
        let cases = [
            (1.0, "1"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (123.456, "123.456"),
            (1e14, "100000000000000"),
            (1e15, "1e+15"),
            (1e20, "1e+20"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (1.0 / 3.0, "0.3333333333333333"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (-0.0, "-0"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ];
        for (v, want) in cases {
            assert_eq!(float8_text(v), want, "{v}");
        }
        assert_eq!(float4_text(1.1), "1.1");
        assert_eq!(float4_text(100000.0), "100000");
        assert_eq!(float4_text(1000000.0), "1e+06");
        assert_eq!(float4_text(3.4028235e38), "3.4028235e+38");
    }

    #[test]
    fn decimals_keep_their_scale() {
        assert_eq!(decimal_text(12345, 2, false), "123.45");
        assert_eq!(decimal_text(-5, 2, false), "-0.05");
        assert_eq!(decimal_text(0, 2, false), "0.00");
        assert_eq!(decimal_text(100, 0, false), "100");
        assert_eq!(decimal_text(15_000, 4, true), "1.5");
        assert_eq!(decimal_text(20_000, 4, true), "2");
    }

    #[test]
    fn dates_and_times_are_iso() {
        assert_eq!(date_text(0).unwrap(), "1970-01-01");
        assert_eq!(date_text(19_723).unwrap(), "2024-01-01");
        assert_eq!(
            timestamp_text(1_704_067_200_000_000).unwrap(),
            "2024-01-01 00:00:00"
        );
        assert_eq!(
            timestamp_text(1_704_067_200_500_000).unwrap(),
            "2024-01-01 00:00:00.5"
        );
        assert_eq!(
            timestamptz_text(1_704_067_200_123_456).unwrap(),
            "2024-01-01 00:00:00.123456+00"
        );
        // 44 BC, as PostgreSQL writes it.
        let d = NaiveDate::from_ymd_opt(-43, 3, 15).unwrap();
        let days = (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32;
        assert_eq!(date_text(days).unwrap(), "0044-03-15 BC");
        assert_eq!(bytea_text(&[0, 0xab]), "\\x00ab");
    }
}
