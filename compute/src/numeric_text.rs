//! A number's text as PostgreSQL's `numeric` reads and prints it: `1.50` keeps its two
//! fraction digits, `1e3` prints as `1000`, `-0` as `0`, and `1.0` equals `1`.
//!
//! Used for the numbers in `jsonb` (PostgreSQL keeps each as a numeric; serde_json, with
//! `arbitrary_precision`, hands over each number's text) and for text cast to a bare `numeric`,
//! whose scale is the one written.

use crate::error::{sqlstate, SqlError, SqlResult};

/// numeric's bounds: digits before the decimal point (`NUMERIC_WEIGHT_MAX`) and after it
/// (`NUMERIC_DSCALE_MAX`).
const MAX_INTEGER_DIGITS: i64 = 131_072;
const MAX_SCALE: i64 = 16_383;

/// A json number taken apart: `0.digits × 10^point`, with `scale` digits after the decimal point
/// when printed.
struct Decimal<'a> {
    negative: bool,
    /// The digits as written before and after the decimal point.
    int: &'a str,
    frac: &'a str,
    point: i64,
    scale: i64,
}

impl<'a> Decimal<'a> {
    /// Reads a number in json's grammar (which the caller has checked); 22003 beyond
    /// numeric's range, as PostgreSQL says.
    fn parse(text: &'a str) -> SqlResult<Self> {
        let overflow = || {
            SqlError::new(
                sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                "value overflows numeric format",
            )
        };
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, "0"),
        };
        let exponent: i64 = exponent
            .trim_start_matches('+')
            .parse()
            .ok()
            .filter(|e: &i64| e.abs() < i64::from(i32::MAX / 2))
            .ok_or_else(overflow)?;
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let number = Self {
            negative,
            int,
            frac,
            point: int.len() as i64 + exponent,
            scale: (frac.len() as i64 - exponent).max(0),
        };
        let (_, _, integer_digits) = number.value_key();
        if integer_digits > MAX_INTEGER_DIGITS || number.scale > MAX_SCALE {
            return Err(overflow());
        }
        Ok(number)
    }

    /// The `i`-th significant digit, `'0'` outside the written ones.
    fn digit(&self, i: i64) -> u8 {
        let (int, frac) = (self.int.as_bytes(), self.frac.as_bytes());
        match usize::try_from(i) {
            Ok(i) if i < int.len() => int[i],
            Ok(i) if i - int.len() < frac.len() => frac[i - int.len()],
            _ => b'0',
        }
    }

    fn is_zero(&self) -> bool {
        self.int.bytes().chain(self.frac.bytes()).all(|b| b == b'0')
    }

    /// numeric's output: no exponent, no leading zeros, `scale` fraction digits, no `-0`.
    fn to_numeric_text(&self) -> String {
        let mut out = String::new();
        if self.negative && !self.is_zero() {
            out.push('-');
        }
        // A zero's exponent can be anything, so its integer part is not spelled out.
        let integer_digits = if self.is_zero() { 0 } else { self.point.max(0) };
        let int: String = (0..integer_digits)
            .map(|i| self.digit(i) as char)
            .skip_while(|&c| c == '0')
            .collect();
        out.push_str(if int.is_empty() { "0" } else { &int });
        if self.scale > 0 {
            out.push('.');
            out.extend((self.point..self.point + self.scale).map(|i| self.digit(i) as char));
        }
        out
    }

    /// The value without its display scale: sign, the digits without leading and trailing
    /// zeros, and where the point falls among them (the count of integer digits, when
    /// positive). Equal numbers have equal keys.
    fn value_key(&self) -> (bool, String, i64) {
        if self.is_zero() {
            return (false, String::new(), 0);
        }
        let all = format!("{}{}", self.int, self.frac);
        let leading = all.len() - all.trim_start_matches('0').len();
        let significant = all.trim_matches('0').to_string();
        (self.negative, significant, self.point - leading as i64)
    }
}

/// A json number's text as numeric prints it; 22003 beyond numeric's range.
pub fn canonical(text: &str) -> SqlResult<String> {
    Ok(Decimal::parse(text)?.to_numeric_text())
}

/// Text as `numeric`'s input function reads it (surrounding blanks, a `+`, `.5`, `5.` and an
/// exponent), in numeric's output form with the scale written; 22P02 for anything else,
/// including `NaN` and the infinities, which Strata's numeric cannot hold.
pub fn from_input(text: &str) -> SqlResult<String> {
    let invalid = || {
        SqlError::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type numeric: \"{text}\""),
        )
    };
    let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let unsigned = trimmed.strip_prefix(['+', '-']).unwrap_or(trimmed);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    if int.len() + frac.len() == 0 || !digits(int) || !digits(frac) || !exponent_ok {
        return Err(invalid());
    }
    let sign = if trimmed.starts_with('-') { "-" } else { "" };
    let int = if int.is_empty() { "0" } else { int };
    let frac = if frac.is_empty() {
        String::new()
    } else {
        format!(".{frac}")
    };
    let exponent = exponent.map(|e| format!("e{e}")).unwrap_or_default();
    canonical(&format!("{sign}{int}{frac}{exponent}"))
}

/// Whether two json numbers are equal as numerics (`1.0` and `1e0` equal `1`).
pub fn equal(a: &str, b: &str) -> bool {
    match (Decimal::parse(a), Decimal::parse(b)) {
        (Ok(a), Ok(b)) => a.value_key() == b.value_key(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_postgres_numeric() {
        // Expected values from PostgreSQL 15's `select 'x'::jsonb`.
        for (input, expected) in [
            ("1.50", "1.50"),
            ("1e3", "1000"),
            ("1E+3", "1000"),
            ("1.5e1", "15"),
            ("1.50e1", "15.0"),
            ("1e-2", "0.01"),
            ("1.0e-2", "0.010"),
            ("-0", "0"),
            ("-0.0", "0.0"),
            ("0.00", "0.00"),
            ("-12.5e-3", "-0.0125"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
            ("0.1e1", "1"),
            ("25e-1", "2.5"),
        ] {
            assert_eq!(canonical(input).unwrap(), expected, "{input}");
        }
        // numeric's range, as PostgreSQL 15 draws it.
        assert_eq!(canonical("1e131071").unwrap().len(), 131_072);
        assert_eq!(canonical("0e200000").unwrap(), "0");
        assert_eq!(canonical("0e1000000000").unwrap(), "0");
        for overflow in [
            "1e131072",
            "1e-16384",
            "1.5e-16383",
            "0.0e-16383",
            "1e2147483647",
        ] {
            assert_eq!(
                canonical(overflow).unwrap_err().code,
                sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                "{overflow}"
            );
        }
    }

    #[test]
    fn input_reads_what_numeric_in_reads() {
        for (input, expected) in [
            (" 1.50 ", "1.50"),
            ("+5", "5"),
            (".5", "0.5"),
            ("5.", "5"),
            ("-007.10", "-7.10"),
            ("2E2", "200"),
            ("1.5e-1", "0.15"),
        ] {
            assert_eq!(from_input(input).unwrap(), expected, "{input}");
        }
        for bad in ["", ".", "abc", "1.2.3", "1e", "NaN", "- 1", "1e+"] {
            assert_eq!(
                from_input(bad).unwrap_err().code,
                sqlstate::INVALID_TEXT_REPRESENTATION,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(equal("1", "1.0"));
        assert!(equal("1e2", "100.00"));
        assert!(equal("0.5", "5e-1"));
        assert!(equal("-0", "0.0"));
        assert!(!equal("1", "-1"));
        assert!(!equal("1", "10"));
        assert!(!equal("0.1", "0.01"));
    }
}
