//! `format(formatstr, args…)`, as PostgreSQL's: `%s` (the value's text), `%I` (an identifier,
//! quoted if needed), `%L` (a literal, quoted; `NULL` for NULL) and `%%`, each with an optional
//! position (`%2$s`), `-` flag and width (`%-10s`, `%*s`, `%*3$s`). Values are printed as
//! PostgreSQL prints them (`1.50`, `t`, `{1,2}`). And `quote_ident`, `quote_literal` and
//! `quote_nullable`, which quote as `%I` and `%L` do.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result as DFResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use crate::error::{sqlstate, SqlError};
use crate::pg_catalog::quote_ident;

pub fn all() -> Vec<ScalarUDF> {
    let quote = |name| {
        ScalarUDF::new_from_impl(Quote {
            name,
            signature: Signature::any(1, Volatility::Immutable),
        })
    };
    vec![
        ScalarUDF::new_from_impl(Format {
            signature: Signature::one_of(
                vec![TypeSignature::Any(1), TypeSignature::VariadicAny],
                Volatility::Stable,
            ),
        }),
        quote("quote_ident"),
        quote("quote_literal"),
        quote("quote_nullable"),
    ]
}

/// `quote_ident(text)`, `quote_literal(any)` and `quote_nullable(any)`: a value quoted as
/// `format`'s `%I` and `%L` quote it (`quote_nullable` gives `NULL` for NULL, where the others
/// give NULL).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Quote {
    name: &'static str,
    signature: Signature,
}

impl ScalarUDFImpl for Quote {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let texts = crate::pg_encode::text_column(&arrays[0]).map_err(SqlError::into_datafusion)?;
        let texts = texts.as_string::<i32>();
        let quoted: StringArray = (0..args.number_rows)
            .map(|row| {
                let value = (!arrays[0].is_null(row) && arrays[0].data_type() != &DataType::Null)
                    .then(|| texts.value(row));
                match (self.name, value) {
                    ("quote_ident", v) => v.map(quote_ident),
                    ("quote_nullable", None) => Some("NULL".to_string()),
                    (_, v) => v.map(quote_literal),
                }
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(quoted)))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Format {
    signature: Signature,
}

impl ScalarUDFImpl for Format {
    fn name(&self) -> &str {
        "format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let formats = cast(&arrays[0], &DataType::Utf8)?;
        let formats = formats.as_string::<i32>();
        let texts = arrays[1..]
            .iter()
            .map(|a| crate::pg_encode::text_column(a).map_err(SqlError::into_datafusion))
            .collect::<DFResult<Vec<ArrayRef>>>()?;
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            if formats.is_null(row) {
                out.push(None);
                continue;
            }
            let values: Vec<Option<&str>> = texts
                .iter()
                .map(|t| {
                    let t = t.as_string::<i32>();
                    (!t.is_null(row)).then(|| t.value(row))
                })
                .collect();
            out.push(Some(
                format(formats.value(row), &values).map_err(SqlError::into_datafusion)?,
            ));
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

fn invalid(message: impl Into<String>) -> SqlError {
    SqlError::new(sqlstate::INVALID_PARAMETER_VALUE, message)
}

/// Formats one row: `values` are the arguments' texts (`None` for NULL).
fn format(spec: &str, values: &[Option<&str>]) -> Result<String, SqlError> {
    let chars: Vec<char> = spec.chars().collect();
    let mut out = String::new();
    let mut next_arg = 0usize;
    let mut i = 0;
    let unterminated = || invalid("unterminated format() type specifier");
    while i < chars.len() {
        if chars[i] != '%' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        i += 1;
        if chars.get(i) == Some(&'%') {
            out.push('%');
            i += 1;
            continue;
        }
        // An optional `n$` position, then flags, then a width (`n`, `*` or `*n$`).
        let number = |i: &mut usize| {
            let start = *i;
            while chars.get(*i).is_some_and(char::is_ascii_digit) {
                *i += 1;
            }
            (*i > start).then(|| chars[start..*i].iter().collect::<String>())
        };
        let position = |digits: String| -> Result<usize, SqlError> {
            match digits.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n - 1),
                _ => Err(invalid(
                    "format specifies argument 0, but arguments are numbered from 1",
                )),
            }
        };
        let mut arg = None;
        let mut width: Option<i64> = None;
        let mut left = false;
        let save = i;
        if let Some(digits) = number(&mut i) {
            if chars.get(i) == Some(&'$') {
                arg = Some(position(digits)?);
                i += 1;
            } else {
                i = save;
            }
        }
        while chars.get(i) == Some(&'-') {
            left = true;
            i += 1;
        }
        if chars.get(i) == Some(&'*') {
            i += 1;
            let from = match number(&mut i) {
                Some(digits) if chars.get(i) == Some(&'$') => {
                    i += 1;
                    position(digits)?
                }
                Some(_) => return Err(unterminated()),
                None => {
                    next_arg += 1;
                    next_arg - 1
                }
            };
            let value = values
                .get(from)
                .ok_or_else(|| invalid("too few arguments for format()"))?;
            width = match value {
                Some(v) => Some(
                    v.parse::<i64>()
                        .map_err(|_| invalid("width argument must be an integer"))?,
                ),
                None => None,
            };
        } else if let Some(digits) = number(&mut i) {
            width = Some(
                digits
                    .parse()
                    .map_err(|_| invalid("number is out of range"))?,
            );
        }
        let Some(&kind) = chars.get(i) else {
            return Err(unterminated());
        };
        i += 1;
        let index = match arg {
            Some(n) => n,
            None => {
                next_arg += 1;
                next_arg - 1
            }
        };
        if !matches!(kind, 's' | 'I' | 'L') {
            return Err(
                invalid(format!("unrecognized format() type specifier \"{kind}\""))
                    .with_hint("For a single \"%\" use \"%%\"."),
            );
        }
        let value = *values
            .get(index)
            .ok_or_else(|| invalid("too few arguments for format()"))?;
        next_arg = index + 1;
        let text = match (kind, value) {
            ('s', v) => v.unwrap_or("").to_string(),
            ('I', Some(v)) => quote_ident(v),
            ('I', None) => {
                return Err(SqlError::new(
                    sqlstate::NULL_VALUE_NOT_ALLOWED,
                    "null values cannot be formatted as an SQL identifier",
                ))
            }
            (_, Some(v)) => quote_literal(v),
            (_, None) => "NULL".to_string(),
        };
        // A negative width pads on the right, as the `-` flag does.
        let (width, left) = match width {
            Some(w) if w < 0 => (w.unsigned_abs() as usize, true),
            Some(w) => (w as usize, left),
            None => (0, left),
        };
        let pad = width.saturating_sub(text.chars().count());
        if left {
            out.push_str(&text);
            out.extend(std::iter::repeat_n(' ', pad));
        } else {
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(&text);
        }
    }
    Ok(out)
}

/// PostgreSQL's `quote_literal`: single quotes doubled, and an `E` prefix with doubled
/// backslashes when there are backslashes.
fn quote_literal(value: &str) -> String {
    let quoted = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

#[cfg(test)]
mod tests {
    use super::format;

    #[test]
    fn formats_as_postgresql() {
        let f = |spec: &str, values: &[Option<&str>]| format(spec, values).unwrap();
        assert_eq!(f("%s-%s", &[Some("1"), Some("a")]), "1-a");
        assert_eq!(f("%2$s %1$s %s", &[Some("a"), Some("b")]), "b a b");
        assert_eq!(f("[%5s|%-5s]", &[Some("ab"), Some("cd")]), "[   ab|cd   ]");
        assert_eq!(f("[%*s]", &[Some("-4"), Some("x")]), "[x   ]");
        assert_eq!(f("%I.%I", &[Some("s"), Some("My Table")]), "s.\"My Table\"");
        assert_eq!(f("%L %L", &[Some("it's"), None]), "'it''s' NULL");
        assert_eq!(f("%L", &[Some("a\\b")]), "E'a\\\\b'");
        assert_eq!(f("100%% %s", &[None]), "100% ");
        assert!(format("%s %s", &[Some("a")]).is_err());
        assert!(format("%x", &[Some("a")]).is_err());
        assert!(format("%I", &[None]).is_err());
    }
}
