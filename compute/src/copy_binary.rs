//! COPY's binary format (`COPY … (FORMAT binary)`, `COPY … BINARY`): PostgreSQL's PGCOPY
//! stream, which asyncpg's `copy_records_to_table` and psycopg's binary copies send.
//!
//! The stream is a header (an 11-byte signature, a flags word, a header extension), then one
//! tuple per row (a 16-bit field count, then each field as a 32-bit length, -1 for NULL, and
//! that many bytes in the type's binary send format), then a trailer (a field count of -1).
//! A field's bytes are exactly a bind parameter's binary value, so they are decoded as
//! parameters are; a tuple is a DataRow's body, so output reuses the DataRow encoder.

use bytes::{BufMut, Bytes, BytesMut};
use datafusion::arrow::array::RecordBatch;
use datafusion::common::ScalarValue;

use crate::catalog::TableDef;
use crate::error::{sqlstate, SqlError, SqlResult};

/// The 11 bytes every binary COPY stream starts with.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// The flags bit saying that each tuple carries an oid (PostgreSQL before 12).
const FLAG_WITH_OIDS: u32 = 1 << 16;

/// One row of binary COPY input: each field's bytes, or NULL.
pub type BinaryRow = Vec<Option<Bytes>>;

fn bad_format(message: impl Into<String>) -> SqlError {
    SqlError::new(sqlstate::BAD_COPY_FILE_FORMAT, message)
}

/// Splits binary COPY input into rows as it arrives (in chunks that split it anywhere).
#[derive(Default)]
pub struct BinaryCopyParser {
    pending: BytesMut,
    header_done: bool,
    /// The trailer was seen: the rest is ignored.
    ended: bool,
    /// Tuples read, for error messages.
    tuples: u64,
}

impl BinaryCopyParser {
    /// The tuple being read, counted from 1 (PostgreSQL's "line" of a binary COPY).
    pub fn line(&self) -> u64 {
        self.tuples + 1
    }

    /// Rows completed by `data`.
    pub fn feed(&mut self, data: &[u8]) -> SqlResult<Vec<BinaryRow>> {
        self.pending.extend_from_slice(data);
        let mut rows = Vec::new();
        if !self.header_done && !self.header()? {
            return Ok(rows);
        }
        while !self.ended {
            match self.tuple()? {
                Some(Some(row)) => rows.push(row),
                Some(None) => self.ended = true,
                None => break,
            }
        }
        if self.ended {
            self.pending.clear();
        }
        Ok(rows)
    }

    /// The end of the input: it must have ended with the trailer, after whole tuples.
    pub fn finish(&mut self) -> SqlResult<()> {
        if !self.header_done && self.pending.is_empty() {
            return Err(bad_format("COPY file signature not recognized"));
        }
        if !self.ended {
            return Err(bad_format("unexpected EOF in COPY data"));
        }
        Ok(())
    }

    /// Reads the header once it has all arrived; false while it has not.
    fn header(&mut self) -> SqlResult<bool> {
        let fixed = SIGNATURE.len() + 8;
        if self.pending.len() < SIGNATURE.len() {
            return Ok(false);
        }
        if &self.pending[..SIGNATURE.len()] != SIGNATURE {
            return Err(bad_format("COPY file signature not recognized"));
        }
        if self.pending.len() < fixed {
            return Ok(false);
        }
        let word = |at: usize| {
            u32::from_be_bytes(self.pending[at..at + 4].try_into().expect("four bytes"))
        };
        let flags = word(SIGNATURE.len());
        if flags & FLAG_WITH_OIDS != 0 {
            return Err(bad_format("invalid COPY file header (WITH OIDS)"));
        }
        if flags & 0xffff_0000 & !FLAG_WITH_OIDS != 0 {
            return Err(bad_format(
                "unrecognized critical flags in COPY file header",
            ));
        }
        let extension = word(SIGNATURE.len() + 4) as usize;
        if self.pending.len() < fixed + extension {
            return Ok(false);
        }
        let _ = self.pending.split_to(fixed + extension);
        self.header_done = true;
        Ok(true)
    }

    /// The next tuple: `Some(None)` for the trailer, `None` while it has not all arrived.
    fn tuple(&mut self) -> SqlResult<Option<Option<BinaryRow>>> {
        let buf = &self.pending[..];
        let Some(count) = buf.first_chunk::<2>().map(|b| i16::from_be_bytes(*b)) else {
            return Ok(None);
        };
        if count == -1 {
            return Ok(Some(None));
        }
        let count = usize::try_from(count)
            .map_err(|_| bad_format(format!("row field count is {count}, expected a count")))?;
        // Find the tuple's end before taking it, so that a partial tuple waits for more data.
        let mut at = 2;
        let mut fields = Vec::with_capacity(count);
        for _ in 0..count {
            let Some(len) = buf
                .get(at..at + 4)
                .map(|b| i32::from_be_bytes(b.try_into().expect("four bytes")))
            else {
                return Ok(None);
            };
            at += 4;
            if len < 0 {
                fields.push(None);
                continue;
            }
            let len = len as usize;
            if buf.len() < at + len {
                return Ok(None);
            }
            fields.push(Some((at, len)));
            at += len;
        }
        let tuple = self.pending.split_to(at).freeze();
        self.tuples += 1;
        Ok(Some(Some(
            fields
                .into_iter()
                .map(|f| f.map(|(start, len)| tuple.slice(start..start + len)))
                .collect(),
        )))
    }
}

/// Binary rows for `columns` (positions in the table) as a batch of the table's columns;
/// columns not listed are NULL.
pub fn binary_rows_to_batch(
    def: &TableDef,
    columns: &[usize],
    rows: &[BinaryRow],
) -> SqlResult<RecordBatch> {
    if let Some(row) = rows.iter().find(|r| r.len() != columns.len()) {
        return Err(bad_format(format!(
            "row field count is {}, expected {}",
            row.len(),
            columns.len()
        )));
    }
    crate::copy::batch_of_columns(def, columns, rows.len(), |i, column| {
        let arrow = column.ty.arrow_type();
        let pg = column.ty.pg_type();
        let values =
            rows.iter()
                .map(|row| {
                    crate::params::decode_param(row[i].as_ref(), true, Some(&arrow), Some(&pg))
                        .map_err(|e| match e.code {
                            sqlstate::INVALID_BINARY_REPRESENTATION => {
                                SqlError::new(e.code, "incorrect binary data format")
                            }
                            _ => e,
                        })
                })
                .collect::<SqlResult<Vec<ScalarValue>>>()?;
        Ok(if values.is_empty() {
            datafusion::arrow::array::new_empty_array(&arrow)
        } else {
            ScalarValue::iter_to_array(values)?
        })
    })
}

/// The header of a binary COPY output stream: signature, no flags, no extension.
pub fn output_header() -> BytesMut {
    let mut header = BytesMut::with_capacity(SIGNATURE.len() + 8);
    header.put_slice(SIGNATURE);
    header.put_u32(0);
    header.put_u32(0);
    header
}

/// One tuple of binary COPY output from a DataRow encoded in binary: its field count, then its
/// fields, which are laid out as a tuple's are.
pub fn output_tuple(row: &pgwire::messages::data::DataRow, out: &mut BytesMut) {
    out.put_i16(row.field_count);
    out.put_slice(&row.data);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(rows: &[Vec<Option<&[u8]>>]) -> Vec<u8> {
        let mut out = output_header().to_vec();
        for row in rows {
            out.extend_from_slice(&(row.len() as i16).to_be_bytes());
            for field in row {
                match field {
                    Some(bytes) => {
                        out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                        out.extend_from_slice(bytes);
                    }
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    #[test]
    fn rows_split_anywhere_are_read_whole() {
        let data = stream(&[
            vec![Some(&7i32.to_be_bytes()), Some(b"seven"), None],
            vec![Some(&8i32.to_be_bytes()), Some(b""), Some(b"x")],
        ]);
        for chunk in [1, 3, 7, data.len()] {
            let mut parser = BinaryCopyParser::default();
            let mut rows = Vec::new();
            for piece in data.chunks(chunk) {
                rows.extend(parser.feed(piece).unwrap());
            }
            parser.finish().unwrap();
            assert_eq!(rows.len(), 2, "chunks of {chunk}");
            assert_eq!(rows[0][1].as_deref(), Some(&b"seven"[..]));
            assert_eq!(rows[0][2], None);
            assert_eq!(rows[1][1].as_deref(), Some(&b""[..]));
        }
    }

    #[test]
    fn bad_streams_are_refused() {
        let mut parser = BinaryCopyParser::default();
        let err = parser.feed(b"1\tone\n and more text").unwrap_err();
        assert_eq!(err.code, sqlstate::BAD_COPY_FILE_FORMAT);

        let mut data = stream(&[vec![Some(b"abc")]]);
        data.truncate(data.len() - 2);
        let mut parser = BinaryCopyParser::default();
        assert_eq!(parser.feed(&data).unwrap().len(), 1);
        assert_eq!(
            parser.finish().unwrap_err().message,
            "unexpected EOF in COPY data"
        );
    }
}
