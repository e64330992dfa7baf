//! Row values and primary keys, to and from Arrow.
//!
//! A row value is `version, (tag, payload)*` where `tag = column_id << 3 | wire` (a varint) and
//! `wire` says how long the payload is, so a reader can skip columns it does not know (dropped
//! ones) and treat columns missing from the value (NULLs, or columns added later) as NULL.
//! Entries are written in ascending column id, which lets decoding walk value and projection
//! together.
//!
//! A row key is the table's row prefix followed by the memcomparable encoding of the primary-key
//! columns, so a range of primary-key values is a range of keys.

use std::sync::Arc;

use bytes::{Buf, Bytes};
use datafusion::arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, BooleanArray, BooleanBuilder, Date32Array,
    Date32Builder, Decimal128Array, Decimal128Builder, Float32Array, Float32Builder, Float64Array,
    Float64Builder, Int16Array, Int16Builder, Int32Array, Int32Builder, Int64Array, Int64Builder,
    IntervalMonthDayNanoArray, IntervalMonthDayNanoBuilder, ListArray, StringArray, StringBuilder,
    Time64MicrosecondArray, Time64MicrosecondBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use strata_core::key::{row_prefix, KeyEncoder};
use strata_core::wal::{get_varint, put_varint};

use crate::catalog::{ColumnDef, TableDef};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::types::{SqlType, UTC};

const ROW_FORMAT_VERSION: u8 = 1;

const WIRE_1: u64 = 1;
const WIRE_2: u64 = 2;
const WIRE_4: u64 = 3;
const WIRE_8: u64 = 4;
const WIRE_16: u64 = 5;
const WIRE_LEN: u64 = 6;

/// Typed views of one batch's columns, made once per batch so that per-row work is a match and an
/// index, not a downcast.
enum ColumnReader {
    Bool(BooleanArray),
    I16(Int16Array),
    I32(Int32Array),
    I64(Int64Array),
    F32(Float32Array),
    F64(Float64Array),
    Dec(Decimal128Array),
    Str(StringArray),
    Bin(BinaryArray),
    Date(Date32Array),
    Ts(TimestampMicrosecondArray),
    Time(Time64MicrosecondArray),
    Interval(IntervalMonthDayNanoArray),
    /// An array column: the lists, and a reader of all their elements.
    List(ListArray, Box<ColumnReader>),
}

impl ColumnReader {
    fn new(ty: SqlType, array: &ArrayRef) -> SqlResult<Self> {
        let target = ty.arrow_type();
        let array = crate::text_input::cast_array(array, &target)?;
        let any = array.as_any();
        macro_rules! take {
            ($t:ty, $v:ident) => {
                ColumnReader::$v(
                    any.downcast_ref::<$t>()
                        .expect("cast to the column type")
                        .clone(),
                )
            };
        }
        Ok(match ty {
            SqlType::Bool => take!(BooleanArray, Bool),
            SqlType::Int2 => take!(Int16Array, I16),
            SqlType::Int4 => take!(Int32Array, I32),
            SqlType::Int8 => take!(Int64Array, I64),
            SqlType::Float4 => take!(Float32Array, F32),
            SqlType::Float8 => take!(Float64Array, F64),
            SqlType::Numeric { .. } => take!(Decimal128Array, Dec),
            SqlType::Text
            | SqlType::Varchar { .. }
            | SqlType::Char { .. }
            | SqlType::Uuid
            | SqlType::Json
            | SqlType::Jsonb
            | SqlType::Enum { .. } => take!(StringArray, Str),
            SqlType::Bytea => take!(BinaryArray, Bin),
            SqlType::Date => take!(Date32Array, Date),
            SqlType::Timestamp | SqlType::Timestamptz => take!(TimestampMicrosecondArray, Ts),
            SqlType::Time => take!(Time64MicrosecondArray, Time),
            SqlType::Interval => take!(IntervalMonthDayNanoArray, Interval),
            SqlType::Array { element } => {
                let lists = any
                    .downcast_ref::<ListArray>()
                    .expect("cast to the column type");
                let values = ColumnReader::new(element.sql_type(), lists.values())?;
                ColumnReader::List(lists.clone(), Box::new(values))
            }
        })
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            ColumnReader::Bool(a) => a.is_null(row),
            ColumnReader::I16(a) => a.is_null(row),
            ColumnReader::I32(a) => a.is_null(row),
            ColumnReader::I64(a) => a.is_null(row),
            ColumnReader::F32(a) => a.is_null(row),
            ColumnReader::F64(a) => a.is_null(row),
            ColumnReader::Dec(a) => a.is_null(row),
            ColumnReader::Str(a) => a.is_null(row),
            ColumnReader::Bin(a) => a.is_null(row),
            ColumnReader::Date(a) => a.is_null(row),
            ColumnReader::Ts(a) => a.is_null(row),
            ColumnReader::Time(a) => a.is_null(row),
            ColumnReader::Interval(a) => a.is_null(row),
            ColumnReader::List(a, _) => a.is_null(row),
        }
    }

    fn write_value(&self, row: usize, buf: &mut Vec<u8>, column_id: u32) {
        let tag = |wire: u64| (u64::from(column_id) << 3) | wire;
        match self {
            ColumnReader::Bool(a) => {
                put_varint(buf, tag(WIRE_1));
                buf.push(u8::from(a.value(row)));
            }
            ColumnReader::I16(a) => {
                put_varint(buf, tag(WIRE_2));
                buf.extend_from_slice(&a.value(row).to_le_bytes());
            }
            ColumnReader::I32(a) => {
                put_varint(buf, tag(WIRE_4));
                buf.extend_from_slice(&a.value(row).to_le_bytes());
            }
            ColumnReader::Date(a) => {
                put_varint(buf, tag(WIRE_4));
                buf.extend_from_slice(&a.value(row).to_le_bytes());
            }
            ColumnReader::F32(a) => {
                put_varint(buf, tag(WIRE_4));
                buf.extend_from_slice(&a.value(row).to_le_bytes());
            }
            ColumnReader::I64(a) => {
                put_varint(buf, tag(WIRE_8));
                buf.extend_from_slice(&a.value(row).to_le_bytes());
            }
            ColumnReader::Ts(a) => {
                put_varint(buf, tag(WIRE_8));
                buf.extend_from_slice(&a.value(row).to_le_bytes());
            }
            ColumnReader::F64(a) => {
                put_varint(buf, tag(WIRE_8));
                buf.extend_from_slice(&a.value(row).to_le_bytes());
            }
            ColumnReader::Dec(a) => {
                put_varint(buf, tag(WIRE_16));
                buf.extend_from_slice(&a.value(row).to_le_bytes());
            }
            ColumnReader::Str(a) => {
                let v = a.value(row).as_bytes();
                put_varint(buf, tag(WIRE_LEN));
                put_varint(buf, v.len() as u64);
                buf.extend_from_slice(v);
            }
            ColumnReader::Bin(a) => {
                let v = a.value(row);
                put_varint(buf, tag(WIRE_LEN));
                put_varint(buf, v.len() as u64);
                buf.extend_from_slice(v);
            }
            ColumnReader::Time(a) => {
                put_varint(buf, tag(WIRE_8));
                buf.extend_from_slice(&a.value(row).to_le_bytes());
            }
            ColumnReader::Interval(a) => {
                let v = crate::interval::PgInterval::from_arrow(a.value(row));
                put_varint(buf, tag(WIRE_16));
                buf.extend_from_slice(&v.months.to_le_bytes());
                buf.extend_from_slice(&v.days.to_le_bytes());
                buf.extend_from_slice(&v.micros.to_le_bytes());
            }
            ColumnReader::List(..) => {
                let v = self.list_payload(row);
                put_varint(buf, tag(WIRE_LEN));
                put_varint(buf, v.len() as u64);
                buf.extend_from_slice(&v);
            }
        }
    }

    /// An array value: the element count, then each element as a value entry with column id 0
    /// (tag 0 for a NULL element).
    fn list_payload(&self, row: usize) -> Vec<u8> {
        let ColumnReader::List(lists, values) = self else {
            unreachable!("list_payload of a list column")
        };
        let offsets = lists.value_offsets();
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        let mut payload = Vec::new();
        put_varint(&mut payload, (end - start) as u64);
        for i in start..end {
            if values.is_null(i) {
                put_varint(&mut payload, 0);
            } else {
                values.write_value(i, &mut payload, 0);
            }
        }
        payload
    }

    fn write_key(&self, row: usize, key: &mut KeyEncoder) {
        match self {
            ColumnReader::Bool(a) => key.bool(a.value(row)),
            ColumnReader::I16(a) => key.i16(a.value(row)),
            ColumnReader::I32(a) => key.i32(a.value(row)),
            ColumnReader::I64(a) => key.i64(a.value(row)),
            ColumnReader::F32(a) => key.f32(a.value(row)),
            ColumnReader::F64(a) => key.f64(a.value(row)),
            ColumnReader::Dec(a) => key.i128(a.value(row)),
            ColumnReader::Str(a) => key.str(a.value(row)),
            ColumnReader::Bin(a) => key.bytes(a.value(row)),
            ColumnReader::Date(a) => key.i32(a.value(row)),
            ColumnReader::Ts(a) => key.i64(a.value(row)),
            ColumnReader::Time(a) => key.i64(a.value(row)),
            // Equal intervals (`1 month`, `30 days`) are one key, as in PostgreSQL's btree.
            ColumnReader::Interval(a) => {
                key.i128(crate::interval::PgInterval::from_arrow(a.value(row)).span_micros())
            }
            // Arrays are refused as key and index columns; equal arrays still make equal keys.
            ColumnReader::List(..) => key.bytes(&self.list_payload(row)),
        };
    }

    /// Length in characters of a text value, for `varchar(n)` checks.
    /// The text of a text column's value.
    fn str(&self, row: usize) -> Option<&str> {
        match self {
            ColumnReader::Str(a) => Some(a.value(row)),
            _ => None,
        }
    }

    fn char_len(&self, row: usize) -> Option<usize> {
        match self {
            ColumnReader::Str(a) => Some(a.value(row).chars().count()),
            _ => None,
        }
    }

    /// The value as PostgreSQL would print it in an error's DETAIL.
    fn display(&self, row: usize) -> String {
        match self {
            ColumnReader::Bool(a) => if a.value(row) { "t" } else { "f" }.to_string(),
            ColumnReader::I16(a) => a.value(row).to_string(),
            ColumnReader::I32(a) => a.value(row).to_string(),
            ColumnReader::I64(a) => a.value(row).to_string(),
            ColumnReader::F32(a) => a.value(row).to_string(),
            ColumnReader::F64(a) => a.value(row).to_string(),
            ColumnReader::Dec(a) => a.value_as_string(row),
            ColumnReader::Str(a) => a.value(row).to_string(),
            ColumnReader::Bin(a) => format!("\\x{}", hex(a.value(row))),
            ColumnReader::Date(a) => a
                .value_as_date(row)
                .map(|d| d.to_string())
                .unwrap_or_default(),
            ColumnReader::Ts(a) => a
                .value_as_datetime(row)
                .map(|d| d.to_string())
                .unwrap_or_default(),
            ColumnReader::Time(a) => crate::interval::time_text(a.value(row)),
            ColumnReader::Interval(a) => {
                crate::interval::text(crate::interval::PgInterval::from_arrow(a.value(row)))
            }
            ColumnReader::List(a, _) => {
                crate::pg_encode::row_text(&[Arc::new(a.clone()) as ArrayRef], row)
            }
        }
    }
}

/// `char(n)` values as PostgreSQL stores them: padded with blanks to `n` characters, and with
/// trailing blanks beyond `n` removed (longer values are refused by the length check).
fn blank_pad(array: &ArrayRef, len: usize) -> SqlResult<ArrayRef> {
    let strings = cast(array, &DataType::Utf8)?;
    let strings = strings
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("cast to Utf8");
    let padded: StringArray = strings
        .iter()
        .map(|v| {
            v.map(|s| {
                let chars = s.chars().count();
                if chars < len {
                    format!("{s}{}", " ".repeat(len - chars))
                } else if chars > len && s.chars().skip(len).all(|c| c == ' ') {
                    s.chars().take(len).collect()
                } else {
                    s.to_string()
                }
            })
        })
        .collect();
    Ok(Arc::new(padded))
}

/// Text values as canonical uuids; anything else is `22P02`, as PostgreSQL's `uuid_in` says.
fn canonical_uuids(array: &ArrayRef) -> SqlResult<ArrayRef> {
    let strings = cast(array, &DataType::Utf8)?;
    let strings = datafusion::arrow::array::AsArray::as_string::<i32>(&strings);
    let canonical = strings
        .iter()
        .map(|v| v.map(crate::types::canonical_uuid).transpose())
        .collect::<SqlResult<StringArray>>()?;
    Ok(Arc::new(canonical))
}

/// Text values as stored json or jsonb (see `json`); not json is `22P02`.
fn stored_json(array: &ArrayRef, ty: SqlType) -> SqlResult<ArrayRef> {
    let strings = cast(array, &DataType::Utf8)?;
    let stored = datafusion::arrow::array::AsArray::as_string::<i32>(&strings)
        .iter()
        .map(|v| v.map(|t| crate::json::stored_text(t, ty)).transpose())
        .collect::<SqlResult<StringArray>>()?;
    Ok(Arc::new(stored))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Turns the rows of one batch into keys and values for a table.
pub struct RowEncoder<'a> {
    def: &'a TableDef,
    readers: Vec<ColumnReader>,
    /// Positions of the columns in ascending column id (value order).
    value_order: Vec<usize>,
    pk: Vec<usize>,
}

impl<'a> RowEncoder<'a> {
    /// `columns[i]` holds the values of `def.columns[i]`.
    pub fn try_new(def: &'a TableDef, columns: &[ArrayRef]) -> SqlResult<Self> {
        let readers = def
            .columns
            .iter()
            .zip(columns)
            .map(|(col, array)| match col.ty {
                SqlType::Char { len } => {
                    ColumnReader::new(col.ty, &blank_pad(array, len as usize)?)
                }
                SqlType::Uuid => ColumnReader::new(col.ty, &canonical_uuids(array)?),
                SqlType::Json | SqlType::Jsonb => {
                    ColumnReader::new(col.ty, &stored_json(array, col.ty)?)
                }
                _ => ColumnReader::new(col.ty, array),
            })
            .collect::<SqlResult<Vec<_>>>()?;
        let mut value_order: Vec<usize> = (0..def.columns.len()).collect();
        value_order.sort_by_key(|i| def.columns[*i].id);
        Ok(Self {
            def,
            readers,
            value_order,
            pk: def.primary_key_indexes(),
        })
    }

    /// Checks NOT NULL and length limits, as PostgreSQL does before it stores a row.
    pub fn check_constraints(&self, row: usize) -> SqlResult<()> {
        for (col, reader) in self.def.columns.iter().zip(&self.readers) {
            if reader.is_null(row) {
                if !col.nullable {
                    return Err(SqlError::new(
                        sqlstate::NOT_NULL_VIOLATION,
                        format!(
                            "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                            col.name, self.def.name
                        ),
                    )
                    .with_table(&self.def.schema, &self.def.name)
                    .with_column(&col.name));
                }
                continue;
            }
            if let Some(enum_type) = &col.enum_type {
                if let Some(label) = reader.str(row) {
                    enum_type.check(label)?;
                }
            }
            if let SqlType::Varchar { max_len: Some(max) } | SqlType::Char { len: max } = col.ty {
                if reader.char_len(row).is_some_and(|len| len > max as usize) {
                    return Err(SqlError::new(
                        sqlstate::STRING_DATA_RIGHT_TRUNCATION,
                        format!("value too long for type {}", col.ty.display_name()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The row's key; `row_id` is used when the table has no primary key.
    pub fn key(&self, row: usize, row_id: impl FnOnce() -> u64) -> Bytes {
        let mut key = KeyEncoder::with_prefix(row_prefix(self.def.id));
        if self.pk.is_empty() {
            key.u64(row_id());
        } else {
            for &i in &self.pk {
                self.readers[i].write_key(row, &mut key);
            }
        }
        Bytes::from(key.finish())
    }

    pub fn value(&self, row: usize) -> Bytes {
        let mut buf = Vec::with_capacity(16 + 8 * self.readers.len());
        buf.push(ROW_FORMAT_VERSION);
        for &i in &self.value_order {
            let reader = &self.readers[i];
            if !reader.is_null(row) {
                reader.write_value(row, &mut buf, self.def.columns[i].id);
            }
        }
        Bytes::from(buf)
    }

    /// Appends the key encodings of the columns at `positions`, each tagged as NULL or not (index
    /// columns may be NULL). Returns whether any of them was NULL.
    pub fn write_index_values(
        &self,
        row: usize,
        positions: &[usize],
        key: &mut KeyEncoder,
    ) -> bool {
        let mut any_null = false;
        for &i in positions {
            any_null |= write_tagged(&self.readers[i], row, key);
        }
        any_null
    }

    /// The value of the column at `position` as a duplicate-key DETAIL shows it.
    pub fn describe_value(&self, row: usize, position: usize) -> String {
        describe_value(&self.readers[position], row)
    }

    /// `(a, b)=(1, x)`: the primary key of a row as PostgreSQL shows it in a duplicate-key DETAIL.
    pub fn describe_key(&self, row: usize) -> String {
        self.describe_columns(row, &self.pk)
    }

    /// `(a, b)=(1, x)` for the columns at `positions`.
    pub fn describe_columns(&self, row: usize, positions: &[usize]) -> String {
        let names: Vec<_> = positions
            .iter()
            .map(|&i| self.def.columns[i].name.as_str())
            .collect();
        let values: Vec<_> = positions
            .iter()
            .map(|&i| self.describe_value(row, i))
            .collect();
        format!("({})=({})", names.join(", "), values.join(", "))
    }
}

/// Values computed from a batch's rows (an index expression's), to be written into keys as a
/// column of that type would be.
pub struct KeyValues(ColumnReader);

impl KeyValues {
    pub fn try_new(ty: SqlType, values: &ArrayRef) -> SqlResult<Self> {
        ColumnReader::new(ty, values).map(Self)
    }

    /// Appends the row's value, tagged as NULL or not. Returns whether it was NULL.
    pub fn write(&self, row: usize, key: &mut KeyEncoder) -> bool {
        write_tagged(&self.0, row, key)
    }

    /// The row's value as a duplicate-key DETAIL shows it.
    pub fn describe(&self, row: usize) -> String {
        describe_value(&self.0, row)
    }
}

/// Appends a value's key encoding tagged as NULL or not; returns whether it was NULL.
fn write_tagged(reader: &ColumnReader, row: usize, key: &mut KeyEncoder) -> bool {
    if reader.is_null(row) {
        key.null();
        true
    } else {
        key.not_null();
        reader.write_key(row, key);
        false
    }
}

fn describe_value(reader: &ColumnReader, row: usize) -> String {
    if reader.is_null(row) {
        "null".to_string()
    } else {
        reader.display(row)
    }
}

/// An Arrow builder for one column type.
enum ColumnBuilder {
    Bool(BooleanBuilder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Dec(Decimal128Builder, u8, i8),
    Str(StringBuilder),
    Bin(BinaryBuilder),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder, bool),
    Time(Time64MicrosecondBuilder),
    Interval(IntervalMonthDayNanoBuilder),
    List {
        field: FieldRef,
        offsets: Vec<i32>,
        valid: Vec<bool>,
        values: Box<ColumnBuilder>,
    },
}

impl ColumnBuilder {
    fn new(ty: SqlType) -> Self {
        match ty {
            SqlType::Bool => ColumnBuilder::Bool(BooleanBuilder::new()),
            SqlType::Int2 => ColumnBuilder::I16(Int16Builder::new()),
            SqlType::Int4 => ColumnBuilder::I32(Int32Builder::new()),
            SqlType::Int8 => ColumnBuilder::I64(Int64Builder::new()),
            SqlType::Float4 => ColumnBuilder::F32(Float32Builder::new()),
            SqlType::Float8 => ColumnBuilder::F64(Float64Builder::new()),
            SqlType::Numeric {
                precision, scale, ..
            } => ColumnBuilder::Dec(Decimal128Builder::new(), precision, scale),
            SqlType::Text
            | SqlType::Varchar { .. }
            | SqlType::Char { .. }
            | SqlType::Uuid
            | SqlType::Json
            | SqlType::Jsonb
            | SqlType::Enum { .. } => ColumnBuilder::Str(StringBuilder::new()),
            SqlType::Bytea => ColumnBuilder::Bin(BinaryBuilder::new()),
            SqlType::Date => ColumnBuilder::Date(Date32Builder::new()),
            SqlType::Timestamp => ColumnBuilder::Ts(TimestampMicrosecondBuilder::new(), false),
            SqlType::Timestamptz => ColumnBuilder::Ts(TimestampMicrosecondBuilder::new(), true),
            SqlType::Time => ColumnBuilder::Time(Time64MicrosecondBuilder::new()),
            SqlType::Interval => ColumnBuilder::Interval(IntervalMonthDayNanoBuilder::new()),
            SqlType::Array { element } => {
                let DataType::List(field) = ty.arrow_type() else {
                    unreachable!("an array column is an Arrow list")
                };
                ColumnBuilder::List {
                    field,
                    offsets: vec![0],
                    valid: Vec::new(),
                    values: Box::new(ColumnBuilder::new(element.sql_type())),
                }
            }
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::I16(b) => b.append_null(),
            ColumnBuilder::I32(b) => b.append_null(),
            ColumnBuilder::I64(b) => b.append_null(),
            ColumnBuilder::F32(b) => b.append_null(),
            ColumnBuilder::F64(b) => b.append_null(),
            ColumnBuilder::Dec(b, ..) => b.append_null(),
            ColumnBuilder::Str(b) => b.append_null(),
            ColumnBuilder::Bin(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Ts(b, _) => b.append_null(),
            ColumnBuilder::Time(b) => b.append_null(),
            ColumnBuilder::Interval(b) => b.append_null(),
            ColumnBuilder::List { offsets, valid, .. } => {
                offsets.push(*offsets.last().expect("offsets start with 0"));
                valid.push(false);
            }
        }
    }

    /// Appends a payload of the given wire type; a mismatch means the value is corrupt.
    fn append(&mut self, wire: u64, p: &[u8]) -> SqlResult<()> {
        fn arr<const N: usize>(p: &[u8]) -> [u8; N] {
            p.try_into().expect("payload length checked by wire type")
        }
        let ok = match (self, wire) {
            (ColumnBuilder::Bool(b), WIRE_1) => {
                b.append_value(p[0] != 0);
                true
            }
            (ColumnBuilder::I16(b), WIRE_2) => {
                b.append_value(i16::from_le_bytes(arr(p)));
                true
            }
            (ColumnBuilder::I32(b), WIRE_4) => {
                b.append_value(i32::from_le_bytes(arr(p)));
                true
            }
            (ColumnBuilder::Date(b), WIRE_4) => {
                b.append_value(i32::from_le_bytes(arr(p)));
                true
            }
            (ColumnBuilder::F32(b), WIRE_4) => {
                b.append_value(f32::from_le_bytes(arr(p)));
                true
            }
            (ColumnBuilder::I64(b), WIRE_8) => {
                b.append_value(i64::from_le_bytes(arr(p)));
                true
            }
            (ColumnBuilder::Ts(b, _), WIRE_8) => {
                b.append_value(i64::from_le_bytes(arr(p)));
                true
            }
            (ColumnBuilder::F64(b), WIRE_8) => {
                b.append_value(f64::from_le_bytes(arr(p)));
                true
            }
            (ColumnBuilder::Dec(b, ..), WIRE_16) => {
                b.append_value(i128::from_le_bytes(arr(p)));
                true
            }
            (ColumnBuilder::Str(b), WIRE_LEN) => match std::str::from_utf8(p) {
                Ok(s) => {
                    b.append_value(s);
                    true
                }
                Err(_) => false,
            },
            (ColumnBuilder::Bin(b), WIRE_LEN) => {
                b.append_value(p);
                true
            }
            (ColumnBuilder::Time(b), WIRE_8) => {
                b.append_value(i64::from_le_bytes(arr(p)));
                true
            }
            (ColumnBuilder::Interval(b), WIRE_16) => {
                b.append_value(
                    crate::interval::PgInterval {
                        months: i32::from_le_bytes(arr(&p[..4])),
                        days: i32::from_le_bytes(arr(&p[4..8])),
                        micros: i64::from_le_bytes(arr(&p[8..])),
                    }
                    .to_arrow(),
                );
                true
            }
            (
                ColumnBuilder::List {
                    offsets,
                    valid,
                    values,
                    ..
                },
                WIRE_LEN,
            ) => {
                let mut cur = p;
                let count = get_varint(&mut cur).map_err(|_| corrupt("truncated array"))?;
                for _ in 0..count {
                    let tag = get_varint(&mut cur).map_err(|_| corrupt("truncated array"))?;
                    let wire = tag & 7;
                    if wire == 0 {
                        values.append_null();
                    } else {
                        values.append(wire, read_payload(&mut cur, wire)?)?;
                    }
                }
                let end = offsets.last().expect("offsets start with 0") + count as i32;
                offsets.push(end);
                valid.push(true);
                cur.is_empty()
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(corrupt("a column value does not match its type"))
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::I16(b) => Arc::new(b.finish()),
            ColumnBuilder::I32(b) => Arc::new(b.finish()),
            ColumnBuilder::I64(b) => Arc::new(b.finish()),
            ColumnBuilder::F32(b) => Arc::new(b.finish()),
            ColumnBuilder::F64(b) => Arc::new(b.finish()),
            ColumnBuilder::Dec(b, p, s) => Arc::new(
                b.finish()
                    .with_precision_and_scale(*p, *s)
                    .expect("precision and scale validated at CREATE TABLE"),
            ),
            ColumnBuilder::Str(b) => Arc::new(b.finish()),
            ColumnBuilder::Bin(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Ts(b, tz) => {
                let a = b.finish();
                if *tz {
                    Arc::new(a.with_timezone(UTC))
                } else {
                    Arc::new(a)
                }
            }
            ColumnBuilder::Time(b) => Arc::new(b.finish()),
            ColumnBuilder::Interval(b) => Arc::new(b.finish()),
            ColumnBuilder::List {
                field,
                offsets,
                valid,
                values,
            } => {
                let offsets =
                    OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0])));
                let nulls = NullBuffer::from(std::mem::take(valid));
                Arc::new(ListArray::new(
                    field.clone(),
                    offsets,
                    values.finish(),
                    Some(nulls),
                ))
            }
        }
    }
}

/// The payload of a value entry of wire type `wire`, taken from the front of `cur`.
fn read_payload<'a>(cur: &mut &'a [u8], wire: u64) -> SqlResult<&'a [u8]> {
    let len = match wire {
        WIRE_1 => 1,
        WIRE_2 => 2,
        WIRE_4 => 4,
        WIRE_8 => 8,
        WIRE_16 => 16,
        WIRE_LEN => get_varint(cur).map_err(|_| corrupt("truncated length"))? as usize,
        _ => return Err(corrupt("unknown wire type")),
    };
    if cur.len() < len {
        return Err(corrupt("truncated payload"));
    }
    let (payload, rest) = cur.split_at(len);
    *cur = rest;
    Ok(payload)
}

fn corrupt(what: &str) -> SqlError {
    SqlError::new(
        sqlstate::DATA_CORRUPTED,
        format!("corrupt row value: {what}"),
    )
}

/// Decodes row values into Arrow arrays for a projection of a table's columns.
pub struct RowDecoder {
    /// (column id, output position), sorted by column id.
    wanted: Vec<(u32, usize)>,
    builders: Vec<ColumnBuilder>,
    rows: usize,
}

impl RowDecoder {
    /// Decodes `columns` (in output order).
    pub fn new(columns: &[&ColumnDef]) -> Self {
        let mut wanted: Vec<(u32, usize)> =
            columns.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
        wanted.sort_unstable();
        Self {
            wanted,
            builders: columns.iter().map(|c| ColumnBuilder::new(c.ty)).collect(),
            rows: 0,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn append(&mut self, value: &[u8]) -> SqlResult<()> {
        self.rows += 1;
        if self.wanted.is_empty() {
            return Ok(());
        }
        let mut cur = value;
        match cur.first() {
            Some(&ROW_FORMAT_VERSION) => cur.advance(1),
            Some(v) => return Err(corrupt(&format!("unknown format version {v}"))),
            None => return Err(corrupt("empty value")),
        }
        let mut next = 0;
        while cur.has_remaining() {
            let tag = get_varint(&mut cur).map_err(|_| corrupt("truncated tag"))?;
            let (id, wire) = ((tag >> 3) as u32, tag & 7);
            let payload = read_payload(&mut cur, wire)?;
            while next < self.wanted.len() && self.wanted[next].0 < id {
                self.builders[self.wanted[next].1].append_null();
                next += 1;
            }
            if next < self.wanted.len() && self.wanted[next].0 == id {
                self.builders[self.wanted[next].1].append(wire, payload)?;
                next += 1;
            }
        }
        for &(_, out) in &self.wanted[next..] {
            self.builders[out].append_null();
        }
        Ok(())
    }

    /// The arrays built so far; the decoder starts empty again.
    pub fn finish(&mut self) -> Vec<ArrayRef> {
        self.rows = 0;
        self.builders.iter_mut().map(|b| b.finish()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{DEFAULT_DATABASE, DEFAULT_SCHEMA};
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int32Type;

    fn table() -> TableDef {
        let col = |id: u32, name: &str, ty, nullable| ColumnDef::new(id, name, ty, nullable);
        TableDef {
            id: 20000,
            database: DEFAULT_DATABASE.into(),
            schema: DEFAULT_SCHEMA.into(),
            name: "t".into(),
            columns: vec![
                col(1, "id", SqlType::Int4, false),
                col(2, "name", SqlType::Varchar { max_len: Some(5) }, true),
                col(
                    3,
                    "amount",
                    SqlType::Numeric {
                        precision: 10,
                        scale: 2,
                        constrained: true,
                    },
                    true,
                ),
                col(4, "data", SqlType::Bytea, true),
            ],
            primary_key: vec![1],
            next_column_id: 5,
            checks: Vec::new(),
            foreign_keys: Vec::new(),
            indexes: Vec::new(),
        }
    }

    fn batch() -> Vec<ArrayRef> {
        vec![
            Arc::new(Int32Array::from(vec![3, -1, 7])),
            Arc::new(StringArray::from(vec![Some("abc"), None, Some("toolong")])),
            Arc::new(
                Decimal128Array::from(vec![Some(12345), Some(-5), None])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
            Arc::new(BinaryArray::from(vec![
                Some(&b"\x00\x01"[..]),
                None,
                Some(&b""[..]),
            ])),
        ]
    }

    #[test]
    fn rows_round_trip_with_projection_and_nulls() {
        let def = table();
        let cols = batch();
        let enc = RowEncoder::try_new(&def, &cols).unwrap();
        let values: Vec<Bytes> = (0..3).map(|r| enc.value(r)).collect();
        // Project (data, id): out of column order, skipping two columns.
        let mut dec = RowDecoder::new(&[&def.columns[3], &def.columns[0]]);
        for v in &values {
            dec.append(v).unwrap();
        }
        let out = dec.finish();
        assert_eq!(out[1].as_primitive::<Int32Type>().values(), &[3, -1, 7]);
        let data = out[0].as_binary::<i32>();
        assert_eq!(data.value(0), b"\x00\x01");
        assert!(data.is_null(1));
        assert_eq!(data.value(2), b"");
        // A full projection restores every value.
        let all: Vec<&ColumnDef> = def.columns.iter().collect();
        let mut dec = RowDecoder::new(&all);
        for v in &values {
            dec.append(v).unwrap();
        }
        let out = dec.finish();
        for (a, b) in out.iter().zip(&cols) {
            assert_eq!(a.to_data(), b.to_data());
        }
    }

    #[test]
    fn constraints_and_keys() {
        let def = table();
        let cols = batch();
        let enc = RowEncoder::try_new(&def, &cols).unwrap();
        assert!(enc.check_constraints(0).is_ok());
        assert_eq!(
            enc.check_constraints(2).unwrap_err().code,
            sqlstate::STRING_DATA_RIGHT_TRUNCATION
        );
        // Keys sort like the primary key.
        assert!(enc.key(1, || 0) < enc.key(0, || 0));
        assert!(enc.key(0, || 0) < enc.key(2, || 0));
        assert_eq!(enc.describe_key(0), "(id)=(3)");
        let nulls: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(vec![None::<i32>])),
            Arc::new(StringArray::from(vec![None::<&str>])),
            Arc::new(
                Decimal128Array::from(vec![None::<i128>])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
            Arc::new(BinaryArray::from(vec![None::<&[u8]>])),
        ];
        let enc = RowEncoder::try_new(&def, &nulls).unwrap();
        assert_eq!(
            enc.check_constraints(0).unwrap_err().code,
            sqlstate::NOT_NULL_VIOLATION
        );
    }

    #[test]
    fn corrupt_values_are_errors() {
        let def = table();
        let mut dec = RowDecoder::new(&[&def.columns[0]]);
        assert!(dec.append(&[9]).is_err());
        assert!(dec.append(&[ROW_FORMAT_VERSION, (1 << 3) | 3, 1]).is_err());
    }
}
