//! `LIKE … ESCAPE 'c'` with an escape character other than backslash, which DataFusion does not
//! take: the pattern is rewritten to use backslash escapes, while planning when it is a literal
//! and by [`udf`] when it is a parameter or an expression (SQLAlchemy binds its patterns).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_string_array;
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};

/// The function the rewrite calls for a pattern that is not a literal.
pub const NAME: &str = "strata_like_pattern";

/// `pattern` under `escape` written with backslash escapes: the escape character before a
/// character becomes a backslash, and a backslash (literal under another escape) is escaped.
pub fn to_backslash_escapes(pattern: &str, escape: char) -> String {
    let mut converted = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == escape {
            converted.push('\\');
            converted.extend(chars.next());
        } else if c == '\\' {
            converted.push_str("\\\\");
        } else {
            converted.push(c);
        }
    }
    converted
}

/// `strata_like_pattern(pattern, escape)`.
pub fn udf() -> ScalarUDF {
    create_udf(
        NAME,
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let rows = args
                .iter()
                .find_map(|a| match a {
                    ColumnarValue::Array(a) => Some(a.len()),
                    ColumnarValue::Scalar(_) => None,
                })
                .unwrap_or(1);
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let patterns = as_string_array(&arrays[0])?;
            let escapes = as_string_array(&arrays[1])?;
            let out: StringArray = (0..rows)
                .map(|i| {
                    if patterns.is_null(i) || escapes.is_null(i) {
                        return None;
                    }
                    let escape = escapes.value(i).chars().next();
                    Some(match escape {
                        Some(e) => to_backslash_escapes(patterns.value(i), e),
                        None => patterns.value(i).to_string(),
                    })
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_backslash_escapes() {
        assert_eq!(to_backslash_escapes("pg^_%", '^'), "pg\\_%");
        assert_eq!(to_backslash_escapes("a\\b#%", '#'), "a\\\\b\\%");
        assert_eq!(to_backslash_escapes("x^^y", '^'), "x\\^y");
    }
}
