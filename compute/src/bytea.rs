//! PostgreSQL's `bytea` input: text like `'\x0102'` is hex, anything else is the escape format.
//!
//! DataFusion casts text to binary by taking the text's bytes; PostgreSQL decodes it. The
//! `PgCastRule` analyzer rule (`pg_casts.rs`), which runs after DataFusion's type coercion,
//! replaces every text-to-binary cast (explicit `::bytea` or implicit, as in an INSERT into a
//! bytea column) with the [`ByteaIn`] function.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result as DFResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::error::{sqlstate, SqlError};

/// Decodes PostgreSQL `bytea` input text.
pub fn decode_bytea(text: &str) -> Result<Vec<u8>, SqlError> {
    let invalid = || {
        SqlError::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            "invalid input syntax for type bytea",
        )
    };
    if let Some(hex) = text.strip_prefix("\\x") {
        let mut out = Vec::with_capacity(hex.len() / 2);
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if !digits.len().is_multiple_of(2) {
            return Err(SqlError::new(
                sqlstate::INVALID_TEXT_REPRESENTATION,
                "invalid hexadecimal data: odd number of digits",
            ));
        }
        for pair in digits.chunks(2) {
            let s = std::str::from_utf8(pair).map_err(|_| invalid())?;
            out.push(u8::from_str_radix(s, 16).map_err(|_| {
                SqlError::new(
                    sqlstate::INVALID_TEXT_REPRESENTATION,
                    format!("invalid hexadecimal digit: \"{s}\""),
                )
            })?);
        }
        return Ok(out);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
            && bytes[i + 1] <= b'3'
        {
            out.push(
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0'),
            );
            i += 4;
        } else {
            return Err(invalid());
        }
    }
    Ok(out)
}

/// `byteain(text) -> bytea`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ByteaIn {
    signature: Signature,
}

impl ByteaIn {
    pub fn udf() -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(ByteaIn {
            signature: Signature::string(1, Volatility::Immutable),
        }))
    }
}

impl ScalarUDFImpl for ByteaIn {
    fn name(&self) -> &str {
        "byteain"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Binary)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let decode = |s: &str| decode_bytea(s).map_err(SqlError::into_datafusion);
        match &args.args[0] {
            ColumnarValue::Scalar(v) => {
                let text = match v {
                    ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => {
                        s.clone()
                    }
                    other => {
                        return Err(DataFusionError::Internal(format!("byteain of {other:?}")))
                    }
                };
                Ok(ColumnarValue::Scalar(ScalarValue::Binary(
                    text.map(|s| decode(&s)).transpose()?,
                )))
            }
            ColumnarValue::Array(array) => {
                let strings: ArrayRef = cast(array, &DataType::Utf8)?;
                let strings = strings.as_string::<i32>();
                let mut out =
                    BinaryBuilder::with_capacity(strings.len(), strings.value_data().len());
                for i in 0..strings.len() {
                    if strings.is_null(i) {
                        out.append_null();
                    } else {
                        out.append_value(decode(strings.value(i))?);
                    }
                }
                Ok(ColumnarValue::Array(Arc::new(out.finish())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_byteain() {
        assert_eq!(decode_bytea("\\x0102ff").unwrap(), vec![1, 2, 255]);
        assert_eq!(decode_bytea("\\xDE AD").unwrap(), vec![0xde, 0xad]);
        assert_eq!(decode_bytea("abc").unwrap(), b"abc");
        assert_eq!(
            decode_bytea("a\\\\b\\001").unwrap(),
            vec![b'a', b'\\', b'b', 1]
        );
        assert_eq!(
            decode_bytea("\\x0").unwrap_err().code,
            sqlstate::INVALID_TEXT_REPRESENTATION
        );
        assert_eq!(
            decode_bytea("\\q").unwrap_err().code,
            sqlstate::INVALID_TEXT_REPRESENTATION
        );
    }
}
