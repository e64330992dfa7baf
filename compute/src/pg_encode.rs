//! Arrow batches to PostgreSQL `DataRow`s, in text or binary format per column.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, DurationMicrosecondType, Float32Type, Float64Type,
    Int16Type, Int32Type, Int64Type, Int8Type, IntervalMonthDayNanoType, IntervalUnit,
    Time64MicrosecondType, TimeUnit, TimestampMicrosecondType, UInt16Type, UInt32Type, UInt64Type,
    UInt8Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::messages::data::DataRow;

use crate::error::{SqlError, SqlResult};
use crate::interval::PgInterval;
use crate::pg_text;
use crate::types::{pg_type_of_arrow, pg_type_of_field, UNCONSTRAINED_NUMERIC};

/// One result column as clients see it.
#[derive(Debug, Clone)]
pub struct ResultColumn {
    pub name: String,
    pub data_type: DataType,
    /// The PostgreSQL type and type modifier announced in RowDescription.
    pub pg_type: pgwire::api::Type,
    pub typmod: i32,
}

impl ResultColumn {
    pub fn text(name: &str) -> Self {
        Self {
            name: name.to_string(),
            data_type: DataType::Utf8,
            pg_type: pgwire::api::Type::TEXT,
            typmod: -1,
        }
    }
}

/// The RowDescription of a result.
pub fn field_infos(columns: &[ResultColumn], formats: &[FieldFormat]) -> Vec<FieldInfo> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let format = formats.get(i).copied().unwrap_or(FieldFormat::Text);
            let size = type_size(&c.pg_type);
            FieldInfo::new(c.name.clone(), None, None, c.pg_type.clone(), format)
                .with_type_size(size)
                .with_type_modifier(c.typmod)
        })
        .collect()
}

fn type_size(t: &pgwire::api::Type) -> i16 {
    use pgwire::api::Type;
    match *t {
        Type::BOOL => 1,
        Type::INT2 => 2,
        Type::INT4 | Type::FLOAT4 | Type::DATE | Type::OID => 4,
        Type::INT8 | Type::FLOAT8 | Type::TIMESTAMP | Type::TIMESTAMPTZ => 8,
        _ => -1,
    }
}

/// Encodes every row of a batch. A bug that panics while encoding becomes an error for this
/// query, not a dropped connection.
/// `described` are the result's columns as RowDescription announced them.
pub fn encode_batch(
    batch: &RecordBatch,
    described: &[ResultColumn],
    formats: &[FieldFormat],
) -> SqlResult<Vec<DataRow>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        encode_rows(batch, described, formats)
    }))
    .unwrap_or_else(|panic| Err(crate::error::panic_error(panic)))
}

fn encode_rows(
    batch: &RecordBatch,
    described: &[ResultColumn],
    formats: &[FieldFormat],
) -> SqlResult<Vec<DataRow>> {
    let columns: Vec<ColumnEncoder> = batch
        .columns()
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let format = formats.get(i).copied().unwrap_or(FieldFormat::Text);
            let uuid = described
                .get(i)
                .is_some_and(|c| c.pg_type == pgwire::api::Type::UUID);
            if uuid && format == FieldFormat::Binary && a.data_type() == &DataType::Utf8 {
                // A uuid is stored as its text; its binary form is the 16 bytes.
                return ColumnEncoder::new(&uuid_bytes(a)?, format);
            }
            let jsonb = described
                .get(i)
                .is_some_and(|c| c.pg_type == pgwire::api::Type::JSONB);
            if jsonb && format == FieldFormat::Binary && a.data_type() == &DataType::Utf8 {
                // jsonb's binary form is a version byte (1) and the text.
                return ColumnEncoder::new(&jsonb_binary(a), format);
            }
            let encoder = ColumnEncoder::new(a, format)?;
            let oids = described.get(i).is_some_and(|c| {
                matches!(
                    c.pg_type,
                    pgwire::api::Type::OID | pgwire::api::Type::OID_ARRAY
                )
            });
            Ok(if oids { encoder.of_oids() } else { encoder })
        })
        .collect::<SqlResult<_>>()?;
    let mut rows = Vec::with_capacity(batch.num_rows());
    let mut buf = BytesMut::with_capacity(64 * columns.len());
    for row in 0..batch.num_rows() {
        for col in &columns {
            col.write(row, &mut buf)?;
        }
        rows.push(DataRow::new(buf.split(), columns.len() as i16));
    }
    Ok(rows)
}

/// Every value of a batch in PostgreSQL's text format (`None` for NULL), row by row: what COPY
/// TO writes.
pub fn text_values(batch: &RecordBatch) -> SqlResult<Vec<Vec<Option<String>>>> {
    let columns: Vec<ColumnEncoder> = batch
        .columns()
        .iter()
        .map(|a| ColumnEncoder::new(a, FieldFormat::Text))
        .collect::<SqlResult<_>>()?;
    let mut buf = BytesMut::new();
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut values = Vec::with_capacity(columns.len());
        for col in &columns {
            buf.clear();
            col.write(row, &mut buf)?;
            let len = i32::from_be_bytes(buf[..4].try_into().expect("length prefix"));
            values.push((len >= 0).then(|| String::from_utf8_lossy(&buf[4..]).into_owned()));
        }
        rows.push(values);
    }
    Ok(rows)
}

/// The name of PostgreSQL's output function for values of `t` whose text, as PostgreSQL
/// prints it, is not what Arrow's cast to text gives (`{1,2}` for `[1, 2]`, `1e+20` for
/// `100000000000000000000`, `2024-01-05 10:00:00.5` for `2024-01-05T10:00:00.500`); a cast of
/// such a value to text goes through [`text_column`]. `None` where Arrow's text is right.
pub fn output_function(t: &DataType) -> Option<&'static str> {
    Some(match t {
        DataType::List(_) | DataType::LargeList(_) => "array_out",
        DataType::Decimal128(..) => "numeric_out",
        DataType::Float32 => "float4out",
        DataType::Float64 => "float8out",
        DataType::Date32 => "date_out",
        DataType::Timestamp(..) => "timestamp_out",
        DataType::Time64(_) => "time_out",
        DataType::Interval(_) | DataType::Duration(_) => "interval_out",
        _ => return None,
    })
}

/// A column in PostgreSQL's text format, as a text array (NULL stays NULL).
pub fn text_column(array: &ArrayRef) -> SqlResult<ArrayRef> {
    let encoder = ColumnEncoder::new(array, FieldFormat::Text)?;
    let mut buf = BytesMut::new();
    let mut out = datafusion::arrow::array::StringBuilder::with_capacity(array.len(), 0);
    for row in 0..array.len() {
        buf.clear();
        encoder.write(row, &mut buf)?;
        let len = i32::from_be_bytes(buf[..4].try_into().expect("length prefix"));
        if len < 0 {
            out.append_null();
        } else {
            out.append_value(String::from_utf8_lossy(&buf[4..]));
        }
    }
    Ok(std::sync::Arc::new(out.finish()))
}

/// One row of `columns` as PostgreSQL prints it in error details: `1, abc, null`.
pub fn row_text(columns: &[ArrayRef], row: usize) -> String {
    let slices = columns
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("c{i}"), c.slice(row, 1)));
    RecordBatch::try_from_iter(slices)
        .ok()
        .and_then(|b| text_values(&b).ok())
        .and_then(|rows| rows.into_iter().next())
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.unwrap_or_else(|| "null".into()))
        .collect::<Vec<_>>()
        .join(", ")
}

struct ColumnEncoder {
    array: ArrayRef,
    binary: bool,
    /// For types printed by Arrow's formatter (not yet mapped to a PostgreSQL type).
    fallback: Option<ArrayRef>,
    /// For an array column: the encoder of all its lists' elements.
    elements: Option<Box<ColumnEncoder>>,
    /// The values (int8 to Arrow) are PostgreSQL oids, 4 bytes in the binary format.
    oids: bool,
}

impl ColumnEncoder {
    fn new(array: &ArrayRef, format: FieldFormat) -> SqlResult<Self> {
        let supported = matches!(
            array.data_type(),
            DataType::Null
                | DataType::Boolean
                | DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::UInt64
                | DataType::Float32
                | DataType::Float64
                | DataType::Decimal128(..)
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView
                | DataType::Date32
                | DataType::Timestamp(..)
                | DataType::Time32(_)
                | DataType::Time64(_)
                | DataType::Interval(_)
                | DataType::Duration(_)
                | DataType::List(_)
                | DataType::LargeList(_)
        );
        let array = match array.data_type() {
            // One representation per family keeps the per-row code small.
            DataType::LargeUtf8 | DataType::Utf8View => cast(array, &DataType::Utf8)?,
            DataType::LargeBinary | DataType::BinaryView => cast(array, &DataType::Binary)?,
            DataType::Timestamp(unit, tz) if *unit != TimeUnit::Microsecond => {
                timestamp_micros(array, tz.clone())?
            }
            DataType::Time32(_) | DataType::Time64(TimeUnit::Nanosecond) => {
                cast(array, &DataType::Time64(TimeUnit::Microsecond))?
            }
            DataType::Interval(unit) if *unit != IntervalUnit::MonthDayNano => {
                cast(array, &DataType::Interval(IntervalUnit::MonthDayNano))?
            }
            DataType::Duration(unit) if *unit != TimeUnit::Microsecond => {
                cast(array, &DataType::Duration(TimeUnit::Microsecond))?
            }
            DataType::LargeList(f) => cast(array, &DataType::List(f.clone()))?,
            _ => array.clone(),
        };
        let elements = match array.data_type() {
            DataType::List(_) => Some(Box::new(ColumnEncoder::new(
                array.as_list::<i32>().values(),
                format,
            )?)),
            _ => None,
        };
        Ok(Self {
            fallback: (!supported).then(|| array.clone()),
            array,
            binary: format == FieldFormat::Binary,
            elements,
            oids: false,
        })
    }

    /// The encoder of a column (or array column) described as oids.
    fn of_oids(mut self) -> Self {
        self.oids = true;
        self.elements = self.elements.map(|e| Box::new(e.of_oids()));
        self
    }

    fn is_null(&self, row: usize) -> bool {
        self.array.data_type() == &DataType::Null || self.array.is_null(row)
    }

    /// The range of element positions of list `row`.
    fn element_range(&self, row: usize) -> std::ops::Range<usize> {
        let offsets = self.array.as_list::<i32>().value_offsets();
        offsets[row] as usize..offsets[row + 1] as usize
    }

    /// `{1,2,NULL}`, `{"a b",c}`, `{{1,2},{3,4}}`.
    fn write_array_text(&self, row: usize, buf: &mut BytesMut) -> SqlResult<()> {
        let elements = self
            .elements
            .as_ref()
            .expect("a list has an element encoder");
        let nested = elements.elements.is_some();
        buf.put_u8(b'{');
        let mut element = BytesMut::new();
        for (n, i) in self.element_range(row).enumerate() {
            if n > 0 {
                buf.put_u8(b',');
            }
            if elements.is_null(i) {
                buf.put_slice(b"NULL");
                continue;
            }
            element.clear();
            elements.write_text(i, &mut element)?;
            if nested {
                buf.put_slice(&element);
            } else {
                let text = String::from_utf8_lossy(&element);
                buf.put_slice(crate::pg_array::quote_element(&text).as_bytes());
            }
        }
        buf.put_u8(b'}');
        Ok(())
    }

    /// PostgreSQL's binary array: dimensions, a has-nulls flag, the element type, then each
    /// element with its length. One dimension only.
    fn write_array_binary(&self, row: usize, buf: &mut BytesMut) -> SqlResult<()> {
        let elements = self
            .elements
            .as_ref()
            .expect("a list has an element encoder");
        if elements.elements.is_some() {
            return Err(SqlError::unsupported(
                "binary output of multidimensional arrays",
            ));
        }
        let range = self.element_range(row);
        let has_nulls = range.clone().any(|i| elements.is_null(i));
        buf.put_i32(i32::from(!range.is_empty()));
        buf.put_i32(i32::from(has_nulls));
        buf.put_u32(if elements.oids {
            pgwire::api::Type::OID.oid()
        } else {
            pg_type_of_arrow(elements.array.data_type()).oid()
        });
        if !range.is_empty() {
            buf.put_i32(range.len() as i32);
            buf.put_i32(1);
        }
        for i in range {
            elements.write(i, buf)?;
        }
        Ok(())
    }

    fn write(&self, row: usize, buf: &mut BytesMut) -> SqlResult<()> {
        // A NullArray's nulls are logical only: `is_null` says false for it.
        if self.is_null(row) {
            buf.put_i32(-1);
            return Ok(());
        }
        let len_at = buf.len();
        buf.put_i32(0);
        if let Some(array) = &self.fallback {
            let options = FormatOptions::default();
            let formatter = ArrayFormatter::try_new(array.as_ref(), &options)?;
            buf.put_slice(formatter.value(row).to_string().as_bytes());
        } else if self.binary {
            self.write_binary(row, buf)?;
        } else {
            self.write_text(row, buf)?;
        }
        let len = (buf.len() - len_at - 4) as i32;
        buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    fn write_text(&self, row: usize, buf: &mut BytesMut) -> SqlResult<()> {
        let a = &self.array;
        let text: String = match a.data_type() {
            DataType::Boolean => pg_text::bool_text(a.as_boolean().value(row)).into(),
            DataType::Int8 => a.as_primitive::<Int8Type>().value(row).to_string(),
            DataType::Int16 => a.as_primitive::<Int16Type>().value(row).to_string(),
            DataType::Int32 => a.as_primitive::<Int32Type>().value(row).to_string(),
            DataType::Int64 => a.as_primitive::<Int64Type>().value(row).to_string(),
            DataType::UInt8 => a.as_primitive::<UInt8Type>().value(row).to_string(),
            DataType::UInt16 => a.as_primitive::<UInt16Type>().value(row).to_string(),
            DataType::UInt32 => a.as_primitive::<UInt32Type>().value(row).to_string(),
            DataType::UInt64 => a.as_primitive::<UInt64Type>().value(row).to_string(),
            DataType::Float32 => pg_text::float4_text(a.as_primitive::<Float32Type>().value(row)),
            DataType::Float64 => pg_text::float8_text(a.as_primitive::<Float64Type>().value(row)),
            t @ DataType::Decimal128(_, s) => pg_text::decimal_text(
                a.as_primitive::<Decimal128Type>().value(row),
                *s,
                *t == UNCONSTRAINED_NUMERIC,
            ),
            DataType::Utf8 => {
                buf.put_slice(a.as_string::<i32>().value(row).as_bytes());
                return Ok(());
            }
            DataType::Binary => pg_text::bytea_text(a.as_binary::<i32>().value(row)),
            DataType::Date32 => pg_text::date_text(a.as_primitive::<Date32Type>().value(row))
                .ok_or_else(|| out_of_range("date"))?,
            DataType::Timestamp(_, tz) => {
                let micros = a.as_primitive::<TimestampMicrosecondType>().value(row);
                match tz {
                    None => pg_text::timestamp_text(micros),
                    Some(_) => pg_text::timestamptz_text(micros),
                }
                .ok_or_else(|| out_of_range("timestamp"))?
            }
            DataType::Time64(_) => {
                crate::interval::time_text(a.as_primitive::<Time64MicrosecondType>().value(row))
            }
            DataType::Interval(_) => crate::interval::text(PgInterval::from_arrow(
                a.as_primitive::<IntervalMonthDayNanoType>().value(row),
            )),
            DataType::Duration(_) => crate::interval::text(PgInterval::from_duration_micros(
                a.as_primitive::<DurationMicrosecondType>().value(row),
            )),
            DataType::List(_) => return self.write_array_text(row, buf),
            DataType::Null => unreachable!("null arrays have only nulls"),
            other => return Err(SqlError::internal(format!("no text output for {other}"))),
        };
        buf.put_slice(text.as_bytes());
        Ok(())
    }

    /// Binary format of the PostgreSQL type the column is described as (see `pg_type_of_arrow`).
    fn write_binary(&self, row: usize, buf: &mut BytesMut) -> SqlResult<()> {
        let a = &self.array;
        match a.data_type() {
            DataType::Boolean => buf.put_u8(u8::from(a.as_boolean().value(row))),
            DataType::Int8 => buf.put_i16(i16::from(a.as_primitive::<Int8Type>().value(row))),
            DataType::UInt8 => buf.put_i16(i16::from(a.as_primitive::<UInt8Type>().value(row))),
            DataType::Int16 => buf.put_i16(a.as_primitive::<Int16Type>().value(row)),
            DataType::UInt16 => buf.put_i32(i32::from(a.as_primitive::<UInt16Type>().value(row))),
            DataType::Int32 => buf.put_i32(a.as_primitive::<Int32Type>().value(row)),
            DataType::UInt32 => buf.put_i64(i64::from(a.as_primitive::<UInt32Type>().value(row))),
            DataType::Int64 if self.oids => {
                let v = a.as_primitive::<Int64Type>().value(row);
                buf.put_u32(u32::try_from(v).map_err(|_| out_of_range("oid"))?)
            }
            DataType::Int64 => buf.put_i64(a.as_primitive::<Int64Type>().value(row)),
            DataType::UInt64 => {
                let v = a.as_primitive::<UInt64Type>().value(row);
                buf.put_i64(i64::try_from(v).map_err(|_| out_of_range("bigint"))?)
            }
            DataType::Float32 => buf.put_f32(a.as_primitive::<Float32Type>().value(row)),
            DataType::Float64 => buf.put_f64(a.as_primitive::<Float64Type>().value(row)),
            DataType::Decimal128(_, s) => {
                numeric_binary(a.as_primitive::<Decimal128Type>().value(row), *s, buf)
            }
            DataType::Utf8 => buf.put_slice(a.as_string::<i32>().value(row).as_bytes()),
            DataType::Binary => buf.put_slice(a.as_binary::<i32>().value(row)),
            DataType::Date32 => buf.put_i32(pg_text::date_to_pg(
                a.as_primitive::<Date32Type>().value(row),
            )),
            DataType::Timestamp(..) => buf.put_i64(pg_text::timestamp_to_pg(
                a.as_primitive::<TimestampMicrosecondType>().value(row),
            )),
            DataType::Time64(_) => {
                buf.put_i64(a.as_primitive::<Time64MicrosecondType>().value(row))
            }
            DataType::Interval(_) | DataType::Duration(_) => {
                let v = match a.data_type() {
                    DataType::Interval(_) => PgInterval::from_arrow(
                        a.as_primitive::<IntervalMonthDayNanoType>().value(row),
                    ),
                    _ => PgInterval::from_duration_micros(
                        a.as_primitive::<DurationMicrosecondType>().value(row),
                    ),
                };
                buf.put_i64(v.micros);
                buf.put_i32(v.days);
                buf.put_i32(v.months);
            }
            DataType::List(_) => self.write_array_binary(row, buf)?,
            DataType::Null => unreachable!("null arrays have only nulls"),
            other => return Err(SqlError::internal(format!("no binary output for {other}"))),
        }
        Ok(())
    }
}

fn out_of_range(what: &str) -> SqlError {
    SqlError::new(
        crate::error::sqlstate::DATETIME_FIELD_OVERFLOW,
        format!("{what} out of range"),
    )
}

/// PostgreSQL's binary `numeric`: digit count, weight, sign and display scale, then base-10000
/// digits, most significant first, aligned so that the decimal point falls between digits.
pub fn numeric_binary(value: i128, scale: i8, buf: &mut BytesMut) {
    let scale = scale.max(0) as usize;
    let digits = value.unsigned_abs().to_string();
    let (int_part, frac_part) = if digits.len() > scale {
        digits.split_at(digits.len() - scale)
    } else {
        ("", digits.as_str())
    };
    let frac_part = format!("{}{}", "0".repeat(scale - frac_part.len()), frac_part);
    // Integer part grouped from the right, fraction grouped from the left.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let int_digits = format!("{}{}", "0".repeat(int_pad), int_part);
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let frac_digits = format!("{}{}", frac_part, "0".repeat(frac_pad));
    let group = |s: &str| -> Vec<i16> {
        s.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap().parse().unwrap())
            .collect()
    };
    let mut groups = group(&int_digits);
    let mut weight = groups.len() as i16 - 1;
    groups.extend(group(&frac_digits));
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    buf.put_i16(groups.len() as i16);
    buf.put_i16(weight);
    buf.put_u16(if value < 0 { 0x4000 } else { 0 });
    buf.put_u16(scale as u16);
    for g in groups {
        buf.put_i16(g);
    }
}

fn jsonb_binary(array: &ArrayRef) -> ArrayRef {
    let mut bytes = datafusion::arrow::array::BinaryBuilder::new();
    for value in array.as_string::<i32>() {
        match value {
            Some(text) => {
                let mut v = Vec::with_capacity(text.len() + 1);
                v.push(1);
                v.extend_from_slice(text.as_bytes());
                bytes.append_value(v);
            }
            None => bytes.append_null(),
        }
    }
    Arc::new(bytes.finish())
}

fn uuid_bytes(array: &ArrayRef) -> SqlResult<ArrayRef> {
    let mut bytes = datafusion::arrow::array::BinaryBuilder::new();
    for value in array.as_string::<i32>() {
        match value {
            Some(text) => bytes.append_value(crate::types::uuid_bytes(text)?),
            None => bytes.append_null(),
        }
    }
    Ok(Arc::new(bytes.finish()))
}

/// Keeps the schema's column names and types for a result.
pub fn result_columns(
    schema: &datafusion::arrow::datatypes::Schema,
    names: Option<Vec<String>>,
) -> Arc<Vec<ResultColumn>> {
    let names = names.filter(|n| n.len() == schema.fields().len());
    Arc::new(
        schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let (pg_type, typmod) = pg_type_of_field(f);
                ResultColumn {
                    name: names
                        .as_ref()
                        .map(|n| n[i].clone())
                        .unwrap_or_else(|| f.name().clone()),
                    data_type: f.data_type().clone(),
                    pg_type,
                    typmod,
                }
            })
            .collect(),
    )
}

/// A timestamp array in another unit as microseconds, its infinities kept as infinities (a
/// plain cast would scale `i64::MAX` nanoseconds to a date in 2262).
fn timestamp_micros(array: &ArrayRef, tz: Option<Arc<str>>) -> SqlResult<ArrayRef> {
    let scaled = cast(
        array,
        &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
    )?;
    let raw = cast(array, &DataType::Int64)?;
    let micros: datafusion::arrow::array::TimestampMicrosecondArray = raw
        .as_primitive::<Int64Type>()
        .iter()
        .zip(scaled.as_primitive::<TimestampMicrosecondType>().iter())
        .map(|(raw, scaled)| match raw {
            Some(v @ (pg_text::TIMESTAMP_INFINITY | pg_text::TIMESTAMP_NEG_INFINITY)) => Some(v),
            _ => scaled,
        })
        .collect();
    Ok(Arc::new(micros.with_timezone_opt(tz)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(value: i128, scale: i8) -> Vec<u8> {
        let mut buf = BytesMut::new();
        numeric_binary(value, scale, &mut buf);
        buf.to_vec()
    }

    #[test]
    fn binary_numeric_matches_postgres() {
        // SELECT numeric_send(123.45::numeric(10,2)) = \x0002 0000 0000 0002 007b 1194
        assert_eq!(
            numeric(12345, 2),
            vec![0, 2, 0, 0, 0, 0, 0, 2, 0, 0x7b, 0x11, 0x94]
        );
        // 0.00 → \x0000 0000 0000 0002
        assert_eq!(numeric(0, 2), vec![0, 0, 0, 0, 0, 0, 0, 2]);
        // -10000 → \x0001 0001 4000 0000 0001
        assert_eq!(numeric(-10000, 0), vec![0, 1, 0, 1, 0x40, 0, 0, 0, 0, 1]);
        // 0.05 → \x0001 ffff 0000 0002 01f4
        assert_eq!(
            numeric(5, 2),
            vec![0, 1, 0xff, 0xff, 0, 0, 0, 2, 0x01, 0xf4]
        );
    }
}
