//! The SQL column types Strata stores, and how each maps to sqlparser, Arrow and PostgreSQL.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use datafusion::sql::sqlparser::ast::{
    ArrayElemTypeDef, CharacterLength, DataType as SqlDataType, ExactNumberInfo, TimezoneInfo,
};
use pgwire::api::Type;
use serde::{Deserialize, Serialize};

use crate::error::{sqlstate, SqlError, SqlResult};

/// Arrow's timezone for `timestamptz` values: instants, stored as UTC microseconds.
pub const UTC: &str = "+00:00";

/// Precision used for `numeric` declared without one. PostgreSQL's unconstrained numeric has no
/// fixed scale; Strata stores it as a 128-bit decimal with this scale and prints it without
/// trailing zeros.
pub const UNCONSTRAINED_NUMERIC_PRECISION: u8 = 38;
pub const UNCONSTRAINED_NUMERIC_SCALE: i8 = 16;
/// The Arrow type of an unconstrained numeric, whose values print without trailing zeros.
pub const UNCONSTRAINED_NUMERIC: DataType =
    DataType::Decimal128(UNCONSTRAINED_NUMERIC_PRECISION, UNCONSTRAINED_NUMERIC_SCALE);

/// A column type as declared in `CREATE TABLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SqlType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// `numeric(precision, scale)`; `constrained == false` for a bare `numeric`.
    Numeric {
        precision: u8,
        scale: i8,
        constrained: bool,
    },
    Text,
    /// `varchar(n)`; `None` for a bare `varchar`.
    Varchar {
        max_len: Option<u32>,
    },
    /// `char(n)`: blank-padded to `len` characters when stored.
    Char {
        len: u32,
    },
    Bytea,
    Date,
    Timestamp,
    Timestamptz,
    /// Stored as its canonical text (lower-case, hyphenated), which sorts as the 16 bytes do.
    Uuid,
    /// Stored as the text given, validated.
    Json,
    /// Stored as PostgreSQL prints it (see `json`).
    Jsonb,
    /// `time` (without time zone): microseconds since midnight.
    Time,
    /// Months, days and microseconds, kept apart as PostgreSQL keeps them (see `interval`).
    Interval,
    /// A one-dimensional array `element[]` (PostgreSQL does not enforce the dimensions a column
    /// declares either).
    Array {
        element: ArrayElement,
    },
    /// A type made by `CREATE TYPE … AS ENUM`, by oid: stored as the label's text (see
    /// `enums`).
    Enum {
        type_id: u64,
    },
}

/// The element types an array column can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArrayElement {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Text,
    Varchar,
    Date,
    Timestamp,
    Timestamptz,
}

impl ArrayElement {
    pub fn sql_type(self) -> SqlType {
        match self {
            ArrayElement::Bool => SqlType::Bool,
            ArrayElement::Int2 => SqlType::Int2,
            ArrayElement::Int4 => SqlType::Int4,
            ArrayElement::Int8 => SqlType::Int8,
            ArrayElement::Float4 => SqlType::Float4,
            ArrayElement::Float8 => SqlType::Float8,
            ArrayElement::Numeric => SqlType::Numeric {
                precision: UNCONSTRAINED_NUMERIC_PRECISION,
                scale: UNCONSTRAINED_NUMERIC_SCALE,
                constrained: false,
            },
            ArrayElement::Text => SqlType::Text,
            ArrayElement::Varchar => SqlType::Varchar { max_len: None },
            ArrayElement::Date => SqlType::Date,
            ArrayElement::Timestamp => SqlType::Timestamp,
            ArrayElement::Timestamptz => SqlType::Timestamptz,
        }
    }

    fn of(ty: SqlType) -> SqlResult<ArrayElement> {
        Ok(match ty {
            SqlType::Bool => ArrayElement::Bool,
            SqlType::Int2 => ArrayElement::Int2,
            SqlType::Int4 => ArrayElement::Int4,
            SqlType::Int8 => ArrayElement::Int8,
            SqlType::Float4 => ArrayElement::Float4,
            SqlType::Float8 => ArrayElement::Float8,
            SqlType::Numeric {
                constrained: false, ..
            } => ArrayElement::Numeric,
            SqlType::Text => ArrayElement::Text,
            SqlType::Varchar { max_len: None } => ArrayElement::Varchar,
            SqlType::Date => ArrayElement::Date,
            SqlType::Timestamp => ArrayElement::Timestamp,
            SqlType::Timestamptz => ArrayElement::Timestamptz,
            SqlType::Array { element } => element,
            other => {
                return Err(SqlError::unsupported(format!(
                    "arrays of {}",
                    other.display_name()
                )))
            }
        })
    }
}

impl SqlType {
    /// Maps a type name from a `CREATE TABLE` statement.
    pub fn from_sql(t: &SqlDataType) -> SqlResult<SqlType> {
        use SqlDataType as D;
        Ok(match t {
            D::Bool | D::Boolean => SqlType::Bool,
            D::SmallInt(_) | D::Int2(_) => SqlType::Int2,
            D::Int(_) | D::Integer(_) | D::Int4(_) => SqlType::Int4,
            D::BigInt(_) | D::Int8(_) => SqlType::Int8,
            D::Real | D::Float4 => SqlType::Float4,
            D::DoublePrecision | D::Float8 | D::Double(ExactNumberInfo::None) => SqlType::Float8,
            D::Float(info) => match info {
                ExactNumberInfo::Precision(p) if *p <= 24 => SqlType::Float4,
                _ => SqlType::Float8,
            },
            D::Numeric(info) | D::Decimal(info) | D::Dec(info) => numeric(info)?,
            D::Text | D::String(None) => SqlType::Text,
            D::Varchar(len) | D::CharacterVarying(len) | D::CharVarying(len) => SqlType::Varchar {
                max_len: varchar_len(len.as_ref())?,
            },
            D::Char(len) | D::Character(len) => SqlType::Char {
                len: varchar_len(len.as_ref())?.unwrap_or(1),
            },
            D::Bytea => SqlType::Bytea,
            D::Uuid => SqlType::Uuid,
            D::JSON => SqlType::Json,
            D::JSONB => SqlType::Jsonb,
            D::Date => SqlType::Date,
            D::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
                SqlType::Timestamp
            }
            D::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => SqlType::Timestamptz,
            D::Time(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => SqlType::Time,
            D::Interval {
                fields: None,
                precision: None,
            } => SqlType::Interval,
            D::Array(ArrayElemTypeDef::SquareBracket(element, _))
            | D::Array(ArrayElemTypeDef::AngleBracket(element)) => SqlType::Array {
                element: ArrayElement::of(SqlType::from_sql(element)?)?,
            },
            D::Custom(name, args) if args.is_empty() => {
                match name.to_string().to_ascii_lowercase().as_str() {
                    "timestamptz" => SqlType::Timestamptz,
                    "int2" => SqlType::Int2,
                    "int4" => SqlType::Int4,
                    "int8" => SqlType::Int8,
                    "float4" => SqlType::Float4,
                    "float8" => SqlType::Float8,
                    "bool" => SqlType::Bool,
                    "bpchar" => SqlType::Char { len: 1 },
                    "uuid" => SqlType::Uuid,
                    "json" => SqlType::Json,
                    "jsonb" => SqlType::Jsonb,
                    "interval" => SqlType::Interval,
                    "time" => SqlType::Time,
                    array if array.starts_with('_') => {
                        let element = parse_type_name(&array[1..])
                            .and_then(|t| SqlType::from_sql(&t).ok())
                            .ok_or_else(|| unknown_type(array))?;
                        SqlType::Array {
                            element: ArrayElement::of(element)?,
                        }
                    }
                    other => return Err(unknown_type(other)),
                }
            }
            other => {
                return Err(SqlError::new(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    format!("type {other} is not supported yet"),
                ))
            }
        })
    }

    /// The type whose column would hold values of the Arrow type `t`: what an index keeps of
    /// an expression's values (strings are text; `None` for a type no column has).
    pub fn of_arrow(t: &DataType) -> Option<SqlType> {
        Some(match t {
            DataType::Boolean => SqlType::Bool,
            DataType::Int16 => SqlType::Int2,
            DataType::Int32 => SqlType::Int4,
            DataType::Int64 => SqlType::Int8,
            DataType::Float32 => SqlType::Float4,
            DataType::Float64 => SqlType::Float8,
            DataType::Decimal128(precision, scale) => SqlType::Numeric {
                precision: *precision,
                scale: *scale,
                constrained: *t != UNCONSTRAINED_NUMERIC,
            },
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => SqlType::Text,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => SqlType::Bytea,
            DataType::Date32 => SqlType::Date,
            DataType::Timestamp(_, None) => SqlType::Timestamp,
            DataType::Timestamp(_, Some(_)) => SqlType::Timestamptz,
            DataType::Time64(_) => SqlType::Time,
            DataType::Interval(IntervalUnit::MonthDayNano) => SqlType::Interval,
            _ => return None,
        })
    }

    pub fn arrow_type(&self) -> DataType {
        match self {
            SqlType::Bool => DataType::Boolean,
            SqlType::Int2 => DataType::Int16,
            SqlType::Int4 => DataType::Int32,
            SqlType::Int8 => DataType::Int64,
            SqlType::Float4 => DataType::Float32,
            SqlType::Float8 => DataType::Float64,
            SqlType::Numeric {
                precision, scale, ..
            } => DataType::Decimal128(*precision, *scale),
            SqlType::Text
            | SqlType::Varchar { .. }
            | SqlType::Char { .. }
            | SqlType::Uuid
            | SqlType::Json
            | SqlType::Jsonb
            | SqlType::Enum { .. } => DataType::Utf8,
            SqlType::Bytea => DataType::Binary,
            SqlType::Date => DataType::Date32,
            SqlType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            SqlType::Timestamptz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from(UTC)))
            }
            SqlType::Time => DataType::Time64(TimeUnit::Microsecond),
            SqlType::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
            SqlType::Array { element } => list_of(element.sql_type().arrow_type()),
        }
    }

    pub fn pg_type(&self) -> Type {
        match self {
            SqlType::Bool => Type::BOOL,
            SqlType::Int2 => Type::INT2,
            SqlType::Int4 => Type::INT4,
            SqlType::Int8 => Type::INT8,
            SqlType::Float4 => Type::FLOAT4,
            SqlType::Float8 => Type::FLOAT8,
            SqlType::Numeric { .. } => Type::NUMERIC,
            SqlType::Text => Type::TEXT,
            SqlType::Varchar { .. } => Type::VARCHAR,
            SqlType::Char { .. } => Type::BPCHAR,
            SqlType::Bytea => Type::BYTEA,
            SqlType::Date => Type::DATE,
            SqlType::Timestamp => Type::TIMESTAMP,
            SqlType::Timestamptz => Type::TIMESTAMPTZ,
            SqlType::Uuid => Type::UUID,
            SqlType::Json => Type::JSON,
            SqlType::Jsonb => Type::JSONB,
            SqlType::Time => Type::TIME,
            SqlType::Interval => Type::INTERVAL,
            SqlType::Array { element } => {
                array_type_of(&element.sql_type().pg_type()).unwrap_or(Type::TEXT_ARRAY)
            }
            SqlType::Enum { type_id } => enum_pg_type(*type_id),
        }
    }

    /// Whether a column of this type can be part of a primary key or an index: arrays cannot
    /// yet (0A000).
    pub fn check_indexable(&self, column: &str) -> SqlResult<()> {
        match self {
            SqlType::Array { .. } => Err(SqlError::unsupported(format!(
                "array column \"{column}\" in a key or index"
            ))),
            _ => Ok(()),
        }
    }

    /// `pg_attribute.atttypmod`: what clients use to show `numeric(10,2)` or `varchar(20)`.
    pub fn typmod(&self) -> i32 {
        match self {
            SqlType::Numeric {
                precision,
                scale,
                constrained: true,
            } => ((i32::from(*precision) << 16) | i32::from(*scale as u8)) + 4,
            SqlType::Varchar { max_len: Some(n) } | SqlType::Char { len: n } => *n as i32 + 4,
            _ => -1,
        }
    }

    /// The Arrow field a parameter bound to a column of this type is: its type, and the
    /// PostgreSQL type ParameterDescription announces (a uuid parameter is text to Arrow).
    pub fn param_field(&self) -> datafusion::arrow::datatypes::Field {
        self.named_field("")
    }

    /// A nullable field of this type named `name`, carrying the PostgreSQL type (what a
    /// function returning this type announces).
    pub fn named_field(&self, name: &str) -> datafusion::arrow::datatypes::Field {
        datafusion::arrow::datatypes::Field::new(name, self.arrow_type(), true)
            .with_metadata(self.field_metadata())
    }

    /// Arrow field metadata recording the PostgreSQL type of a column (see [`pg_type_of_field`]).
    pub fn field_metadata(&self) -> std::collections::HashMap<String, String> {
        [
            (
                PG_OID_METADATA.to_string(),
                self.pg_type().oid().to_string(),
            ),
            (PG_TYPMOD_METADATA.to_string(), self.typmod().to_string()),
        ]
        .into()
    }

    /// The type's name as PostgreSQL prints it in messages and `\d`.
    pub fn display_name(&self) -> String {
        match self {
            SqlType::Bool => "boolean".into(),
            SqlType::Int2 => "smallint".into(),
            SqlType::Int4 => "integer".into(),
            SqlType::Int8 => "bigint".into(),
            SqlType::Float4 => "real".into(),
            SqlType::Float8 => "double precision".into(),
            SqlType::Numeric {
                precision,
                scale,
                constrained: true,
            } => {
                format!("numeric({precision},{scale})")
            }
            SqlType::Numeric { .. } => "numeric".into(),
            SqlType::Text => "text".into(),
            SqlType::Varchar { max_len: Some(n) } => format!("character varying({n})"),
            SqlType::Varchar { max_len: None } => "character varying".into(),
            SqlType::Char { len } => format!("character({len})"),
            SqlType::Bytea => "bytea".into(),
            SqlType::Date => "date".into(),
            SqlType::Timestamp => "timestamp without time zone".into(),
            SqlType::Timestamptz => "timestamp with time zone".into(),
            SqlType::Uuid => "uuid".into(),
            SqlType::Json => "json".into(),
            SqlType::Jsonb => "jsonb".into(),
            SqlType::Time => "time without time zone".into(),
            SqlType::Interval => "interval".into(),
            SqlType::Array { element } => format!("{}[]", element.sql_type().display_name()),
            // The name is in the catalog; messages about enum columns rarely need it.
            SqlType::Enum { type_id } => format!("enum type {type_id}"),
        }
    }
}

/// The PostgreSQL type of an enum type's values, by oid (the wire needs only the oid).
pub fn enum_pg_type(type_id: u64) -> Type {
    Type::new(
        format!("enum_{type_id}"),
        u32::try_from(type_id).unwrap_or(u32::MAX),
        postgres_types::Kind::Enum(Vec::new()),
        crate::catalog::DEFAULT_SCHEMA.to_string(),
    )
}

/// Whether an oid is a type made by `CREATE TYPE` (every built-in type's oid is lower).
pub fn is_user_type_oid(oid: u32) -> bool {
    u64::from(oid) >= crate::catalog::FIRST_TABLE_ID
}

fn numeric(info: &ExactNumberInfo) -> SqlResult<SqlType> {
    let (precision, scale) = match info {
        ExactNumberInfo::None => {
            return Ok(SqlType::Numeric {
                precision: UNCONSTRAINED_NUMERIC_PRECISION,
                scale: UNCONSTRAINED_NUMERIC_SCALE,
                constrained: false,
            })
        }
        ExactNumberInfo::Precision(p) => (*p, 0),
        ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s),
    };
    if !(1..=38).contains(&precision) {
        return Err(SqlError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("NUMERIC precision {precision} must be between 1 and 38"),
        ));
    }
    if scale < 0 || scale as u64 > precision {
        return Err(SqlError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("NUMERIC scale {scale} must be between 0 and precision {precision}"),
        ));
    }
    Ok(SqlType::Numeric {
        precision: precision as u8,
        scale: scale as i8,
        constrained: true,
    })
}

fn varchar_len(len: Option<&CharacterLength>) -> SqlResult<Option<u32>> {
    match len {
        None => Ok(None),
        Some(CharacterLength::IntegerLength { length, .. }) => {
            if *length == 0 || *length > 10_485_760 {
                return Err(SqlError::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!("length for type varchar must be between 1 and 10485760, got {length}"),
                ));
            }
            Ok(Some(*length as u32))
        }
        Some(CharacterLength::Max) => {
            Err(SqlError::syntax("VARCHAR(MAX) is not PostgreSQL syntax"))
        }
    }
}

fn parse_type_name(name: &str) -> Option<SqlDataType> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    datafusion::sql::sqlparser::parser::Parser::new(&PostgreSqlDialect {})
        .try_with_sql(name)
        .ok()?
        .parse_data_type()
        .ok()
}

/// Arrow's list of `element` values: what an array is to DataFusion.
pub fn list_of(element: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(element, true)))
}

/// The array type whose elements are `element` (`int4` → `int4[]`).
pub fn array_type_of(element: &Type) -> Option<Type> {
    let oid = crate::pg_catalog::builtin_array_oid(i64::from(element.oid()))?;
    Type::from_oid(u32::try_from(oid).ok()?)
}

/// The element type of an array type (`int4[]` → `int4`).
pub fn element_type_of(array: &Type) -> Option<Type> {
    let oid = crate::pg_catalog::builtin_array_element(i64::from(array.oid()))?;
    Type::from_oid(u32::try_from(oid).ok()?)
}

fn unknown_type(name: &str) -> SqlError {
    SqlError::new(
        sqlstate::UNDEFINED_OBJECT,
        format!("type \"{name}\" does not exist"),
    )
}

/// A nullable field of Arrow type `data_type` that carries the PostgreSQL type `pg` (for types
/// with no [`SqlType`], such as `oid`).
pub fn pg_typed_field(
    name: &str,
    data_type: DataType,
    pg: &Type,
) -> datafusion::arrow::datatypes::Field {
    datafusion::arrow::datatypes::Field::new(name, data_type, true).with_metadata(
        [
            (PG_OID_METADATA.to_string(), pg.oid().to_string()),
            (PG_TYPMOD_METADATA.to_string(), "-1".to_string()),
        ]
        .into(),
    )
}

pub const PG_OID_METADATA: &str = "strata.pg_oid";

/// The field of a function returning `void`: PostgreSQL prints its value as an empty string.
pub fn void_field(name: &str) -> datafusion::arrow::datatypes::Field {
    datafusion::arrow::datatypes::Field::new(
        name,
        datafusion::arrow::datatypes::DataType::Utf8,
        true,
    )
    .with_metadata([(PG_OID_METADATA.to_string(), Type::VOID.oid().to_string())].into())
}
const PG_TYPMOD_METADATA: &str = "strata.pg_typmod";

/// The PostgreSQL type and type modifier of a result column: the column's own type when it comes
/// straight from a table, otherwise the type its Arrow type maps to.
pub fn pg_type_of_field(field: &datafusion::arrow::datatypes::Field) -> (Type, i32) {
    let md = field.metadata();
    let declared = md
        .get(PG_OID_METADATA)
        .and_then(|oid| oid.parse::<u32>().ok())
        .and_then(Type::from_oid)
        .filter(|t| {
            arrow_type_of_pg(t).is_none_or(|a| {
                &a == field.data_type()
                    || *t == Type::VARCHAR
                    || *t == Type::BPCHAR
                    || *t == Type::UUID
                    || *t == Type::JSON
                    || *t == Type::JSONB
                    || (*t == Type::NUMERIC && is_declared_numeric(field))
            })
        });
    let declared = declared.or_else(|| {
        md.get(PG_OID_METADATA)
            .and_then(|oid| oid.parse::<u32>().ok())
            .filter(|oid| is_user_type_oid(*oid) && field.data_type() == &DataType::Utf8)
            .map(|oid| enum_pg_type(u64::from(oid)))
    });
    match declared {
        Some(t) => (
            t,
            md.get(PG_TYPMOD_METADATA)
                .and_then(|m| m.parse().ok())
                .unwrap_or(-1),
        ),
        None => (pg_type_of_arrow(field.data_type()), -1),
    }
}

/// Whether a decimal field is exactly the `numeric(p,s)` its metadata declares (a column read
/// as it is stored, not a value computed from one).
fn is_declared_numeric(field: &datafusion::arrow::datatypes::Field) -> bool {
    let Some(typmod) = field
        .metadata()
        .get(PG_TYPMOD_METADATA)
        .and_then(|m| m.parse::<i32>().ok())
        .filter(|m| *m >= 4)
    else {
        return false;
    };
    let m = typmod - 4;
    let (precision, scale) = ((m >> 16) as u8, (m & 0xffff) as u8 as i8);
    *field.data_type() == DataType::Decimal128(precision, scale)
}

/// The PostgreSQL type a computed Arrow column is reported as.
pub fn pg_type_of_arrow(t: &DataType) -> Type {
    match t {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => Type::INT8,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => Type::NUMERIC,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Type::TEXT,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => Type::BYTEA,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Time32(_) | DataType::Time64(_) => Type::TIME,
        DataType::Interval(_) | DataType::Duration(_) => Type::INTERVAL,
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            // A list of lists is a multidimensional array of the innermost type.
            let element = pg_type_of_arrow(f.data_type());
            if element_type_of(&element).is_some() {
                element
            } else {
                array_type_of(&element).unwrap_or(Type::TEXT_ARRAY)
            }
        }
        _ => Type::TEXT,
    }
}

/// The Arrow type a parameter of PostgreSQL type `t` is bound as.
pub fn arrow_type_of_pg(t: &Type) -> Option<DataType> {
    Some(match *t {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 | Type::OID => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::UNKNOWN
        | Type::UUID
        | Type::JSON
        | Type::JSONB => DataType::Utf8,
        Type::BYTEA => DataType::Binary,
        Type::DATE => DataType::Date32,
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from(UTC))),
        Type::NUMERIC => UNCONSTRAINED_NUMERIC,
        Type::TIME => DataType::Time64(TimeUnit::Microsecond),
        Type::INTERVAL => DataType::Interval(IntervalUnit::MonthDayNano),
        _ => list_of(arrow_type_of_pg(&element_type_of(t)?)?),
    })
}

/// A uuid in its canonical text form, from any of PostgreSQL's input forms (upper case, braces,
/// no hyphens): `22P02` otherwise.
pub fn canonical_uuid(text: &str) -> SqlResult<String> {
    uuid::Uuid::try_parse(text.trim())
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| {
            SqlError::new(
                sqlstate::INVALID_TEXT_REPRESENTATION,
                format!("invalid input syntax for type uuid: \"{text}\""),
            )
        })
}

/// The 16 bytes of a uuid's binary wire format, from its canonical text.
pub fn uuid_bytes(text: &str) -> SqlResult<[u8; 16]> {
    Ok(*uuid::Uuid::try_parse(text)
        .map_err(|_| SqlError::internal(format!("stored uuid {text:?} does not parse")))?
        .as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn parse_type(s: &str) -> SqlResult<SqlType> {
        let sql = format!("CREATE TABLE t (c {s})");
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, &sql)
            .unwrap()
            .remove(0);
        match stmt {
            datafusion::sql::sqlparser::ast::Statement::CreateTable(ct) => {
                SqlType::from_sql(&ct.columns[0].data_type)
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn maps_postgres_type_names() {
        assert_eq!(parse_type("smallint").unwrap(), SqlType::Int2);
        assert_eq!(parse_type("int").unwrap(), SqlType::Int4);
        assert_eq!(parse_type("integer").unwrap(), SqlType::Int4);
        assert_eq!(parse_type("int8").unwrap(), SqlType::Int8);
        assert_eq!(parse_type("real").unwrap(), SqlType::Float4);
        assert_eq!(parse_type("double precision").unwrap(), SqlType::Float8);
        assert_eq!(parse_type("float8").unwrap(), SqlType::Float8);
        assert_eq!(
            parse_type("numeric(10,2)").unwrap(),
            SqlType::Numeric {
                precision: 10,
                scale: 2,
                constrained: true
            }
        );
        assert_eq!(
            parse_type("varchar(20)").unwrap(),
            SqlType::Varchar { max_len: Some(20) }
        );
        assert_eq!(
            parse_type("character varying").unwrap(),
            SqlType::Varchar { max_len: None }
        );
        assert_eq!(parse_type("timestamp").unwrap(), SqlType::Timestamp);
        assert_eq!(parse_type("timestamptz").unwrap(), SqlType::Timestamptz);
        assert_eq!(
            parse_type("timestamp with time zone").unwrap(),
            SqlType::Timestamptz
        );
        assert_eq!(parse_type("bytea").unwrap(), SqlType::Bytea);
        assert_eq!(parse_type("boolean").unwrap(), SqlType::Bool);
        assert_eq!(parse_type("uuid").unwrap(), SqlType::Uuid);
        assert_eq!(
            canonical_uuid("{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}").unwrap(),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        );
        assert_eq!(
            canonical_uuid("a0eebc999c0b4ef8bb6d6bb9bd380a11").unwrap(),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        );
        assert_eq!(
            canonical_uuid("nope").unwrap_err().code,
            sqlstate::INVALID_TEXT_REPRESENTATION
        );
        assert_eq!(
            parse_type("numeric(50,2)").unwrap_err().code,
            sqlstate::INVALID_PARAMETER_VALUE
        );
        assert_eq!(
            SqlType::Numeric {
                precision: 10,
                scale: 2,
                constrained: true
            }
            .typmod(),
            655366
        );
    }
}
