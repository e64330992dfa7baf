//! Bind parameters (`$1`, `$2`, …) from the wire into DataFusion values.

use bytes::Bytes;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use pgwire::api::Type;

use crate::error::{sqlstate, SqlError, SqlResult};
use crate::pg_text;
use crate::types::{arrow_type_of_pg, pg_type_of_arrow};

/// Decodes one parameter value.
///
/// `inferred` is the type DataFusion worked out for the parameter from the statement (the target
/// the value is converted to); `declared` is the type the client named in Parse, if any, which
/// tells how a binary value is laid out.
pub fn decode_param(
    raw: Option<&Bytes>,
    binary: bool,
    inferred: Option<&DataType>,
    declared: Option<&Type>,
) -> SqlResult<ScalarValue> {
    let target = inferred
        .cloned()
        .or_else(|| declared.and_then(arrow_type_of_pg))
        .unwrap_or(DataType::Utf8);
    let Some(raw) = raw else {
        return Ok(ScalarValue::try_from(&target)?);
    };
    let value = if binary {
        let wire_type = declared
            .cloned()
            .unwrap_or_else(|| pg_type_of_arrow(&target));
        decode_binary(&wire_type, raw)?
    } else {
        let text = std::str::from_utf8(raw).map_err(|_| {
            SqlError::new(
                sqlstate::INVALID_TEXT_REPRESENTATION,
                "invalid byte sequence for encoding \"UTF8\"",
            )
        })?;
        if target == DataType::Binary {
            return Ok(ScalarValue::Binary(Some(decode_bytea_text(text)?)));
        }
        if let Some(value) = integer(text, &target) {
            return Ok(value);
        }
        if crate::text_input::needs_parser(&target) {
            return crate::text_input::parse_value(text, &target);
        }
        ScalarValue::Utf8(Some(text.to_string()))
    };
    if value.data_type() == target {
        return Ok(value);
    }
    value
        .cast_to(&target)
        .map_err(|_| invalid_input(&target, raw))
}

/// An integer parameter in text, read directly: the commonest parameter of all (a key), and the
/// general path (text, then a cast) costs more than the point read it feeds. `None` for
/// anything else, and for text that is not a plain integer of the type, which the general
/// path then reports.
fn integer(text: &str, target: &DataType) -> Option<ScalarValue> {
    let n: i64 = text.trim().parse().ok()?;
    match target {
        DataType::Int64 => Some(ScalarValue::Int64(Some(n))),
        DataType::Int32 => Some(ScalarValue::Int32(Some(i32::try_from(n).ok()?))),
        DataType::Int16 => Some(ScalarValue::Int16(Some(i16::try_from(n).ok()?))),
        _ => None,
    }
}

/// A type's name as PostgreSQL's messages print it (`integer`, not `int4`).
fn type_name(target: &DataType) -> String {
    let t = pg_type_of_arrow(target);
    crate::pg_catalog::format_type(i64::from(t.oid()), None).unwrap_or_else(|| t.name().into())
}

fn invalid_input(target: &DataType, raw: &[u8]) -> SqlError {
    SqlError::new(
        sqlstate::INVALID_TEXT_REPRESENTATION,
        format!(
            "invalid input syntax for type {}: \"{}\"",
            type_name(target),
            String::from_utf8_lossy(raw)
        ),
    )
}

fn decode_bytea_text(text: &str) -> SqlResult<Vec<u8>> {
    let bad = || {
        SqlError::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            "invalid hexadecimal data",
        )
    };
    match text.strip_prefix("\\x") {
        Some(hex) if hex.len() % 2 == 0 => (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad()))
            .collect(),
        Some(_) => Err(bad()),
        None => Ok(text.as_bytes().to_vec()),
    }
}

fn bad_binary(t: &Type) -> SqlError {
    SqlError::new(
        sqlstate::INVALID_BINARY_REPRESENTATION,
        format!(
            "incorrect binary data format in bind parameter of type {}",
            t.name()
        ),
    )
}

fn decode_binary(t: &Type, raw: &[u8]) -> SqlResult<ScalarValue> {
    if let Some(element) = crate::types::element_type_of(t) {
        return decode_binary_array(&element, raw).ok_or_else(|| bad_binary(t))?;
    }
    decode_binary_scalar(t, raw)
}

fn decode_binary_scalar(t: &Type, raw: &[u8]) -> SqlResult<ScalarValue> {
    let bad = || bad_binary(t);
    fn fixed<const N: usize>(raw: &[u8]) -> Option<[u8; N]> {
        raw.try_into().ok()
    }
    Ok(match *t {
        Type::BOOL => ScalarValue::Boolean(Some(fixed::<1>(raw).ok_or_else(bad)?[0] != 0)),
        Type::INT2 => ScalarValue::Int16(Some(i16::from_be_bytes(fixed(raw).ok_or_else(bad)?))),
        Type::INT4 => ScalarValue::Int32(Some(i32::from_be_bytes(fixed(raw).ok_or_else(bad)?))),
        Type::INT8 => ScalarValue::Int64(Some(i64::from_be_bytes(fixed(raw).ok_or_else(bad)?))),
        Type::FLOAT4 => ScalarValue::Float32(Some(f32::from_be_bytes(fixed(raw).ok_or_else(bad)?))),
        Type::FLOAT8 => ScalarValue::Float64(Some(f64::from_be_bytes(fixed(raw).ok_or_else(bad)?))),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            ScalarValue::Utf8(Some(String::from_utf8(raw.to_vec()).map_err(|_| bad())?))
        }
        Type::BYTEA => ScalarValue::Binary(Some(raw.to_vec())),
        // jsonb's binary form is a version byte (1) and the text.
        Type::JSONB => match raw.split_first() {
            Some((1, text)) => {
                ScalarValue::Utf8(Some(String::from_utf8(text.to_vec()).map_err(|_| bad())?))
            }
            _ => return Err(bad()),
        },
        Type::JSON => ScalarValue::Utf8(Some(String::from_utf8(raw.to_vec()).map_err(|_| bad())?)),
        Type::UUID => ScalarValue::Utf8(Some(
            uuid::Uuid::from_bytes(fixed::<16>(raw).ok_or_else(bad)?)
                .hyphenated()
                .to_string(),
        )),
        Type::DATE => ScalarValue::Date32(Some(
            pg_text::date_from_pg(i32::from_be_bytes(fixed(raw).ok_or_else(bad)?))
                .ok_or_else(bad)?,
        )),
        Type::TIMESTAMP => ScalarValue::TimestampMicrosecond(
            Some(
                pg_text::timestamp_from_pg(i64::from_be_bytes(fixed(raw).ok_or_else(bad)?))
                    .ok_or_else(bad)?,
            ),
            None,
        ),
        Type::TIMESTAMPTZ => ScalarValue::TimestampMicrosecond(
            Some(
                pg_text::timestamp_from_pg(i64::from_be_bytes(fixed(raw).ok_or_else(bad)?))
                    .ok_or_else(bad)?,
            ),
            Some(crate::types::UTC.into()),
        ),
        Type::TIME => {
            ScalarValue::Time64Microsecond(Some(i64::from_be_bytes(fixed(raw).ok_or_else(bad)?)))
        }
        Type::INTERVAL => {
            let raw: [u8; 16] = fixed(raw).ok_or_else(bad)?;
            let v = crate::interval::PgInterval {
                micros: i64::from_be_bytes(raw[..8].try_into().expect("8 bytes")),
                days: i32::from_be_bytes(raw[8..12].try_into().expect("4 bytes")),
                months: i32::from_be_bytes(raw[12..].try_into().expect("4 bytes")),
            };
            ScalarValue::IntervalMonthDayNano(Some(v.to_arrow()))
        }
        Type::OID => ScalarValue::Int64(Some(i64::from(u32::from_be_bytes(
            fixed(raw).ok_or_else(bad)?,
        )))),
        Type::NUMERIC => {
            let (text, scale) = numeric_from_binary(raw).ok_or_else(bad)?;
            let precision = 38u8;
            ScalarValue::Utf8(Some(text))
                .cast_to(&DataType::Decimal128(precision, scale.min(38) as i8))
                .map_err(|_| bad())?
        }
        _ => {
            return Err(SqlError::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!("binary parameters of type {} are not supported", t.name()),
            ))
        }
    })
}

/// A one-dimensional binary array: dimension count, has-nulls flag, element type, (length,
/// lower bound) per dimension, then each element with its length (-1 for NULL). `None` if
/// malformed; an element that does not decode is that element's error.
fn decode_binary_array(element: &Type, raw: &[u8]) -> Option<SqlResult<ScalarValue>> {
    let mut cur = raw;
    let int = |cur: &mut &[u8]| -> Option<i32> {
        let (head, rest) = cur.split_first_chunk::<4>()?;
        *cur = rest;
        Some(i32::from_be_bytes(*head))
    };
    let dims = int(&mut cur)?;
    let _has_nulls = int(&mut cur)?;
    let element_oid = int(&mut cur)? as u32;
    let element = Type::from_oid(element_oid).unwrap_or_else(|| element.clone());
    let count = match dims {
        0 => 0,
        1 => {
            let count = int(&mut cur)?;
            let _lower_bound = int(&mut cur)?;
            usize::try_from(count).ok()?
        }
        _ => {
            return Some(Err(SqlError::unsupported(
                "multidimensional array parameters",
            )))
        }
    };
    let target = arrow_type_of_pg(&element)?;
    let mut values = Vec::with_capacity(count);
    for _ in 0..count {
        let len = int(&mut cur)?;
        let value = if len < 0 {
            ScalarValue::try_from(&target).ok()?
        } else {
            let (bytes, rest) = cur.split_at_checked(len as usize)?;
            cur = rest;
            match decode_binary(&element, bytes).and_then(|v| Ok(v.cast_to(&target)?)) {
                Ok(v) => v,
                Err(e) => return Some(Err(e)),
            }
        };
        values.push(value);
    }
    if !cur.is_empty() {
        return None;
    }
    Some(Ok(ScalarValue::List(ScalarValue::new_list(
        &values, &target, true,
    ))))
}

/// A binary `numeric` as decimal text and its display scale.
fn numeric_from_binary(raw: &[u8]) -> Option<(String, u16)> {
    if raw.len() < 8 {
        return None;
    }
    let ndigits = i16::from_be_bytes([raw[0], raw[1]]) as usize;
    let weight = i16::from_be_bytes([raw[2], raw[3]]) as i32;
    let sign = u16::from_be_bytes([raw[4], raw[5]]);
    let dscale = u16::from_be_bytes([raw[6], raw[7]]);
    if raw.len() != 8 + 2 * ndigits || sign == 0xC000 {
        return None;
    }
    let digits: Vec<i16> = raw[8..]
        .chunks(2)
        .map(|c| i16::from_be_bytes([c[0], c[1]]))
        .collect();
    let mut int_part = String::new();
    let mut frac_part = String::new();
    // Digit i has weight `weight - i` (in base-10000 places).
    for place in (0..=weight.max(0)).rev() {
        let idx = weight - place;
        let d = if idx >= 0 && (idx as usize) < ndigits {
            digits[idx as usize]
        } else {
            0
        };
        int_part.push_str(&format!("{d:04}"));
    }
    let frac_places = (i32::from(dscale) + 3) / 4;
    for place in 1..=frac_places {
        let idx = weight + place;
        let d = if idx >= 0 && (idx as usize) < ndigits {
            digits[idx as usize]
        } else {
            0
        };
        frac_part.push_str(&format!("{d:04}"));
    }
    frac_part.truncate(dscale as usize);
    let int_part = int_part.trim_start_matches('0');
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    text.push_str(if int_part.is_empty() { "0" } else { int_part });
    if !frac_part.is_empty() {
        text.push('.');
        text.push_str(&frac_part);
    }
    Some((text, dscale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn text_params_convert_to_the_inferred_type() {
        let v = decode_param(
            Some(&Bytes::from_static(b"42")),
            false,
            Some(&DataType::Int32),
            None,
        )
        .unwrap();
        assert_eq!(v, ScalarValue::Int32(Some(42)));
        let e = decode_param(
            Some(&Bytes::from_static(b"x")),
            false,
            Some(&DataType::Int32),
            None,
        )
        .unwrap_err();
        assert_eq!(e.code, sqlstate::INVALID_TEXT_REPRESENTATION);
        let v = decode_param(None, false, Some(&DataType::Int64), None).unwrap();
        assert_eq!(v, ScalarValue::Int64(None));
        let v = decode_param(
            Some(&Bytes::from_static(b"\\x00ff")),
            false,
            Some(&DataType::Binary),
            None,
        )
        .unwrap();
        assert_eq!(v, ScalarValue::Binary(Some(vec![0, 255])));
    }

    #[test]
    fn binary_params_follow_the_declared_type() {
        let raw = Bytes::copy_from_slice(&7i64.to_be_bytes());
        let v = decode_param(Some(&raw), true, Some(&DataType::Int32), Some(&Type::INT8)).unwrap();
        assert_eq!(v, ScalarValue::Int32(Some(7)));
        let mut buf = BytesMut::new();
        crate::pg_encode::numeric_binary(-12345, 2, &mut buf);
        assert_eq!(
            numeric_from_binary(&buf).unwrap(),
            ("-123.45".to_string(), 2)
        );
        let mut buf = BytesMut::new();
        crate::pg_encode::numeric_binary(5, 3, &mut buf);
        assert_eq!(numeric_from_binary(&buf).unwrap(), ("0.005".to_string(), 3));
    }
}
