//! Point statements without DataFusion.
//!
//! Planning a one-row query in DataFusion costs hundreds of microseconds, more than the whole
//! statement is worth. The statements OLTP applications (and pgbench) issue most are simple
//! enough to run directly: a SELECT of columns by primary key, an UPDATE of one row by primary
//! key, a single-row INSERT. They are recognised once per statement shape from the parsed SQL
//! ([`recognize`]); each execution is then a key encoding, a lock, a read and a write.
//!
//! Anything outside these shapes (joins, functions, casts, ranges, RETURNING, …) takes the
//! general path, with identical results: the fast path implements exactly the semantics of
//! the statements it accepts and nothing else.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, BinaryOperator, Expr, Insert, ObjectName, SelectItem, SetExpr,
    Statement, TableFactor, TableObject, UnaryOperator, Value as SqlValue,
};
use strata_core::key::row_prefix;

use crate::catalog::{CatalogView, TableDef};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::key_range::encode;
use crate::names::{normalize, table_name};
use crate::primary::Primary;
use crate::row_codec::{RowDecoder, RowEncoder};
use crate::txn::{Isolation, LockOutcome, Transaction};
use crate::types::{SqlType, UTC};

/// An expression of the fast path: what point statements put in keys and assignments.
#[derive(Debug, Clone)]
pub enum Value {
    Param(usize),
    Literal(ScalarValue),
    /// A column of the row being updated.
    Column(usize),
    Neg(Box<Value>),
    Add(Box<Value>, Box<Value>),
    Sub(Box<Value>, Box<Value>),
    Mul(Box<Value>, Box<Value>),
    /// `now()`, `CURRENT_TIMESTAMP`: the statement's start time.
    Now,
}

#[derive(Debug)]
pub enum FastKind {
    /// `SELECT <columns> FROM t WHERE <every primary-key column> = <value> …`
    Select {
        projection: Vec<usize>,
        key: Vec<Value>,
        /// The result's schema: the projected columns.
        schema: datafusion::arrow::datatypes::SchemaRef,
    },
    /// `UPDATE t SET <non-key column> = <value>, … WHERE <every primary-key column> = <value> …`
    Update {
        key: Vec<Value>,
        assignments: Vec<(usize, Value)>,
    },
    /// `INSERT INTO t [(<columns>)] VALUES (<value>, …)`
    Insert {
        columns: Vec<usize>,
        values: Vec<Value>,
    },
}

#[derive(Debug)]
pub struct FastPlan {
    pub table: Arc<TableDef>,
    pub kind: FastKind,
    /// Types of `$1`, `$2`, …, from the columns they are compared with or assigned to.
    pub param_types: Vec<Option<Field>>,
    /// A read in the past: the LSN it reads at (`table` is the definition then).
    pub as_of: Option<strata_core::Lsn>,
}

impl FastPlan {
    pub fn is_read_only(&self) -> bool {
        matches!(self.kind, FastKind::Select { .. })
    }
}

/// What a fast statement produced.
pub enum FastOutcome {
    Rows(RecordBatch),
    Count(u64),
}

/// The fast plan of `statement`, if it has one of the fast shapes.
pub fn recognize(statement: &Statement, view: &CatalogView) -> SqlResult<Option<FastPlan>> {
    let plan = match statement {
        Statement::Query(_) => recognize_select(statement, view)?,
        Statement::Update(_) => recognize_update(statement, view)?,
        Statement::Insert(insert) => recognize_insert(statement, insert, view)?,
        _ => None,
    };
    Ok(plan.map(|(table, kind)| {
        let mut param_types = Vec::new();
        let mut hint = |v: &Value, column: usize| {
            infer(v, table.columns[column].ty.param_field(), &mut param_types)
        };
        match &kind {
            FastKind::Select { key, .. } => key
                .iter()
                .zip(table.primary_key_indexes())
                .for_each(|(v, c)| hint(v, c)),
            FastKind::Update { key, assignments } => {
                key.iter()
                    .zip(table.primary_key_indexes())
                    .for_each(|(v, c)| hint(v, c));
                assignments.iter().for_each(|(c, v)| hint(v, *c));
            }
            FastKind::Insert { columns, values } => {
                columns.iter().zip(values).for_each(|(c, v)| hint(v, *c))
            }
        }
        FastPlan {
            table,
            kind,
            param_types,
            as_of: None,
        }
    }))
}

fn infer(v: &Value, ty: Field, types: &mut Vec<Option<Field>>) {
    match v {
        Value::Param(n) => {
            if types.len() < *n {
                types.resize(*n, None);
            }
            types[n - 1].get_or_insert(ty);
        }
        Value::Neg(x) => infer(x, ty, types),
        Value::Add(a, b) | Value::Sub(a, b) | Value::Mul(a, b) => {
            infer(a, ty.clone(), types);
            infer(b, ty, types);
        }
        _ => {}
    }
}

/// The target table of a single-table statement, with the name it goes by in the statement.
fn target(
    name: &ObjectName,
    alias: Option<&str>,
    view: &CatalogView,
) -> SqlResult<Option<(Arc<TableDef>, String)>> {
    // A name outside the user's schema (`pg_catalog.pg_class`) is never a fast statement.
    let Ok((schema, table)) = table_name(name) else {
        return Ok(None);
    };
    // A table read in the past: `view` is the catalog of that time.
    let table =
        crate::as_of::parse_as_of_name(&table).map_or(table.clone(), |(base, _)| base.to_string());
    if crate::pg_catalog::is_pg_catalog_table(&table) {
        return Ok(None);
    }
    Ok(view
        .get(&schema, &table)?
        .map(|def| (def, alias.map(str::to_string).unwrap_or(table))))
}

fn column_of(def: &TableDef, alias: &str, e: &Expr) -> Option<usize> {
    let name = match e {
        Expr::Identifier(id) => normalize(id),
        Expr::CompoundIdentifier(parts) if parts.len() == 2 && normalize(&parts[0]) == alias => {
            normalize(&parts[1])
        }
        _ => return None,
    };
    def.columns.iter().position(|c| c.name == name)
}

/// A fast-path expression; `columns` says whether column references are allowed (UPDATE).
fn value(def: &TableDef, alias: &str, e: &Expr, columns: bool) -> Option<Value> {
    Some(match e {
        Expr::Value(v) => match &v.value {
            SqlValue::Placeholder(p) => {
                Value::Param(p.strip_prefix('$')?.parse().ok().filter(|n| *n >= 1)?)
            }
            SqlValue::Number(n, _) => Value::Literal(number(n)?),
            SqlValue::SingleQuotedString(s) => Value::Literal(ScalarValue::Utf8(Some(s.clone()))),
            SqlValue::Boolean(b) => Value::Literal(ScalarValue::Boolean(Some(*b))),
            SqlValue::Null => Value::Literal(ScalarValue::Null),
            _ => return None,
        },
        Expr::Nested(inner) => value(def, alias, inner, columns)?,
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => Value::Neg(Box::new(value(def, alias, expr, columns)?)),
        Expr::BinaryOp { left, op, right } => {
            let (l, r) = (
                Box::new(value(def, alias, left, columns)?),
                Box::new(value(def, alias, right, columns)?),
            );
            match op {
                BinaryOperator::Plus => Value::Add(l, r),
                BinaryOperator::Minus => Value::Sub(l, r),
                BinaryOperator::Multiply => Value::Mul(l, r),
                _ => return None,
            }
        }
        Expr::Function(f) => {
            let name = f.name.to_string().to_ascii_lowercase();
            let no_args = matches!(
                &f.args,
                datafusion::sql::sqlparser::ast::FunctionArguments::None
            ) || matches!(&f.args, datafusion::sql::sqlparser::ast::FunctionArguments::List(l) if l.args.is_empty());
            if (name == "now" || name == "current_timestamp")
                && no_args
                && f.over.is_none()
                && f.filter.is_none()
            {
                Value::Now
            } else {
                return None;
            }
        }
        e if columns => Value::Column(column_of(def, alias, e)?),
        _ => return None,
    })
}

/// The value of a numeric literal, typed as PostgreSQL types it: an integer, or a numeric with the
/// literal's own scale (a float only in exponent notation).
pub fn number_literal(n: &str) -> Option<ScalarValue> {
    number(n)
}

fn number(n: &str) -> Option<ScalarValue> {
    if let Ok(i) = n.parse::<i64>() {
        return Some(ScalarValue::Int64(Some(i)));
    }
    // A numeric literal: as PostgreSQL, a decimal with the literal's own scale.
    if n.contains(['e', 'E']) {
        return n.parse::<f64>().ok().map(|f| ScalarValue::Float64(Some(f)));
    }
    let scale = n.split_once('.').map_or(0, |(_, f)| f.len());
    let digits: String = n.chars().filter(|c| *c != '.').collect();
    let v = digits.parse::<i128>().ok()?;
    (scale <= 38 && digits.len() <= 38).then(|| ScalarValue::Decimal128(Some(v), 38, scale as i8))
}

/// `WHERE pk1 = v1 AND pk2 = v2 …`, covering each primary-key column exactly once.
fn key_values(def: &TableDef, alias: &str, selection: Option<&Expr>) -> Option<Vec<Value>> {
    let pk = def.primary_key_indexes();
    if pk.is_empty() {
        return None;
    }
    let mut conjuncts = Vec::new();
    let mut stack = vec![selection?];
    while let Some(e) = stack.pop() {
        match e {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => {
                stack.push(right);
                stack.push(left);
            }
            Expr::Nested(inner) => stack.push(inner),
            other => conjuncts.push(other),
        }
    }
    let mut values: Vec<Option<Value>> = vec![None; pk.len()];
    for c in conjuncts {
        let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = c
        else {
            return None;
        };
        let (column, v) = match (column_of(def, alias, left), column_of(def, alias, right)) {
            (Some(col), None) => (col, value(def, alias, right, false)?),
            (None, Some(col)) => (col, value(def, alias, left, false)?),
            _ => return None,
        };
        let slot = pk.iter().position(|p| *p == column)?;
        if values[slot].is_some() {
            return None;
        }
        values[slot] = Some(v);
    }
    values.into_iter().collect()
}

/// Whether a statement prints exactly as `canonical`: then it has no clause beyond the ones the
/// fast path understood (ORDER BY, LIMIT, FOR UPDATE, RETURNING, … would all show).
fn is_exactly(statement: &Statement, canonical: String) -> bool {
    statement.to_string() == canonical
}

fn recognize_select(
    statement: &Statement,
    view: &CatalogView,
) -> SqlResult<Option<(Arc<TableDef>, FastKind)>> {
    let Statement::Query(q) = statement else {
        return Ok(None);
    };
    let SetExpr::Select(s) = q.body.as_ref() else {
        return Ok(None);
    };
    let [from] = s.from.as_slice() else {
        return Ok(None);
    };
    if !from.joins.is_empty() {
        return Ok(None);
    }
    let TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = &from.relation
    else {
        return Ok(None);
    };
    if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
        return Ok(None);
    }
    let Some((def, alias_name)) = target(
        name,
        alias.as_ref().map(|a| normalize(&a.name)).as_deref(),
        view,
    )?
    else {
        return Ok(None);
    };
    let mut projection = Vec::new();
    for item in &s.projection {
        match item {
            SelectItem::Wildcard(_) => projection.extend(0..def.columns.len()),
            SelectItem::UnnamedExpr(e) => match column_of(&def, &alias_name, e) {
                Some(c) => projection.push(c),
                None => return Ok(None),
            },
            _ => return Ok(None),
        }
    }
    let Some(key) = key_values(&def, &alias_name, s.selection.as_ref()) else {
        return Ok(None);
    };
    let items: Vec<String> = s.projection.iter().map(|i| i.to_string()).collect();
    let selection = s
        .selection
        .as_ref()
        .map(|e| e.to_string())
        .unwrap_or_default();
    if !is_exactly(
        statement,
        format!(
            "SELECT {} FROM {} WHERE {selection}",
            items.join(", "),
            from.relation
        ),
    ) {
        return Ok(None);
    }
    let schema = Arc::new(def.arrow_schema().project(&projection)?);
    Ok(Some((
        def,
        FastKind::Select {
            projection,
            key,
            schema,
        },
    )))
}

fn recognize_update(
    statement: &Statement,
    view: &CatalogView,
) -> SqlResult<Option<(Arc<TableDef>, FastKind)>> {
    let Statement::Update(u) = statement else {
        return Ok(None);
    };
    if !u.table.joins.is_empty() || u.from.is_some() || u.returning.is_some() {
        return Ok(None);
    }
    let TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = &u.table.relation
    else {
        return Ok(None);
    };
    let Some((def, alias_name)) = target(
        name,
        alias.as_ref().map(|a| normalize(&a.name)).as_deref(),
        view,
    )?
    else {
        return Ok(None);
    };
    if def.has_write_constraints() {
        return Ok(None);
    }
    let pk = def.primary_key_indexes();
    let mut assignments = Vec::new();
    for Assignment { target, value: v } in &u.assignments {
        let AssignmentTarget::ColumnName(column) = target else {
            return Ok(None);
        };
        let Some(name) = column.0.last().and_then(|p| p.as_ident()).map(normalize) else {
            return Ok(None);
        };
        let Some(c) = def.columns.iter().position(|col| col.name == name) else {
            return Ok(None);
        };
        if pk.contains(&c) || def.is_indexed(c) || assignments.iter().any(|(a, _)| *a == c) {
            return Ok(None);
        }
        let Some(v) = value(&def, &alias_name, v, true) else {
            return Ok(None);
        };
        assignments.push((c, v));
    }
    let Some(key) = key_values(&def, &alias_name, u.selection.as_ref()) else {
        return Ok(None);
    };
    let sets: Vec<String> = u.assignments.iter().map(|a| a.to_string()).collect();
    let selection = u
        .selection
        .as_ref()
        .map(|e| e.to_string())
        .unwrap_or_default();
    if !is_exactly(
        statement,
        format!(
            "UPDATE {} SET {} WHERE {selection}",
            u.table,
            sets.join(", ")
        ),
    ) {
        return Ok(None);
    }
    Ok(Some((def, FastKind::Update { key, assignments })))
}

fn recognize_insert(
    statement: &Statement,
    insert: &Insert,
    view: &CatalogView,
) -> SqlResult<Option<(Arc<TableDef>, FastKind)>> {
    if insert.on.is_some() || insert.returning.is_some() || insert.table_alias.is_some() {
        return Ok(None);
    }
    let TableObject::TableName(name) = &insert.table else {
        return Ok(None);
    };
    let Some(source) = &insert.source else {
        return Ok(None);
    };
    let SetExpr::Values(values) = source.body.as_ref() else {
        return Ok(None);
    };
    let [row] = values.rows.as_slice() else {
        return Ok(None);
    };
    let Some((def, alias)) = target(name, None, view)? else {
        return Ok(None);
    };
    if def.has_write_constraints() || !def.indexes.is_empty() {
        return Ok(None);
    }
    let columns: Vec<usize> = if insert.columns.is_empty() {
        (0..def.columns.len()).collect()
    } else {
        let mut cols = Vec::new();
        for c in &insert.columns {
            let name = c.0.last().and_then(|p| p.as_ident()).map(normalize);
            match name.and_then(|n| def.columns.iter().position(|col| col.name == n)) {
                Some(i) if !cols.contains(&i) => cols.push(i),
                _ => return Ok(None),
            }
        }
        cols
    };
    if row.len() != columns.len() {
        return Ok(None);
    }
    // Defaults and identity columns are applied by the planned path.
    if def.columns.iter().enumerate().any(|(i, c)| {
        (c.default.is_some() && !columns.contains(&i))
            || (c.identity.is_some() && columns.contains(&i))
    }) {
        return Ok(None);
    }
    let Some(values) = row
        .iter()
        .map(|e| value(&def, &alias, e, false))
        .collect::<Option<Vec<_>>>()
    else {
        return Ok(None);
    };
    let list = if insert.columns.is_empty() {
        String::new()
    } else {
        format!(
            " ({})",
            insert
                .columns
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    if !is_exactly(statement, format!("INSERT INTO {name}{list} {source}")) {
        return Ok(None);
    }
    Ok(Some((def, FastKind::Insert { columns, values })))
}

// ---------------------------------------------------------------------------------------------
// Execution

/// Evaluates a value for a column of type `ty` (PostgreSQL's assignment semantics: computed in
/// the column's type, overflow is an error).
fn eval(
    v: &Value,
    ty: &DataType,
    row: &[ScalarValue],
    params: &[ScalarValue],
    now: i64,
) -> SqlResult<ScalarValue> {
    let as_type = |s: ScalarValue| -> SqlResult<ScalarValue> {
        if s.is_null() {
            return Ok(ScalarValue::try_from(ty)?);
        }
        if &s.data_type() == ty {
            return Ok(s);
        }
        if crate::text_input::needs_parser(ty) {
            return crate::text_input::cast_scalar(&s, ty);
        }
        s.cast_to(ty).map_err(|_| cast_error(&s, ty))
    };
    let overflow = |_| {
        SqlError::new(
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            "value out of range for its type",
        )
    };
    Ok(match v {
        Value::Param(n) => as_type(params.get(n - 1).cloned().ok_or_else(|| {
            SqlError::new(
                sqlstate::PROTOCOL_VIOLATION,
                format!("there is no parameter ${n}"),
            )
        })?)?,
        Value::Literal(l) => as_type(l.clone())?,
        Value::Column(c) => as_type(row.get(*c).cloned().unwrap_or(ScalarValue::Null))?,
        Value::Now => as_type(ScalarValue::TimestampMicrosecond(
            Some(now),
            Some(UTC.into()),
        ))?,
        Value::Neg(x) => {
            let x = eval(x, ty, row, params, now)?;
            if x.is_null() {
                x
            } else {
                x.arithmetic_negate().map_err(overflow)?
            }
        }
        Value::Add(a, b) | Value::Sub(a, b) | Value::Mul(a, b) => {
            let (a, b) = (
                eval(a, ty, row, params, now)?,
                eval(b, ty, row, params, now)?,
            );
            if a.is_null() || b.is_null() {
                ScalarValue::try_from(ty)?
            } else {
                match v {
                    Value::Add(..) => a.add_checked(&b),
                    Value::Sub(..) => a.sub_checked(&b),
                    _ => a.mul_checked(&b),
                }
                .map_err(overflow)?
            }
        }
    })
}

/// The storage key `key` names, or `None` if a key column is NULL (which matches no row).
/// The error PostgreSQL gives when a value does not convert to a column type: a number that does
/// not fit is out of range (22003), text that does not parse is invalid input (22P02).
fn cast_error(value: &ScalarValue, ty: &DataType) -> SqlError {
    let type_name = crate::types::pg_type_of_arrow(ty).name().to_string();
    if !matches!(
        value.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) {
        return match ty {
            DataType::Decimal128(p, s) => SqlError::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, "numeric field overflow")
                .with_detail(format!(
                    "A field with precision {p}, scale {s} must round to an absolute value less than 10^{}.",
                    i16::from(*p) - i16::from(*s)
                )),
            DataType::Int16 => SqlError::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, "smallint out of range"),
            DataType::Int32 => SqlError::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, "integer out of range"),
            DataType::Int64 => SqlError::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, "bigint out of range"),
            _ => SqlError::new(sqlstate::DATATYPE_MISMATCH, format!("cannot store {value} in a column of type {type_name}")),
        };
    }
    SqlError::new(
        sqlstate::INVALID_TEXT_REPRESENTATION,
        format!("invalid input syntax for type {type_name}: \"{value}\""),
    )
}

fn key_of(
    def: &TableDef,
    key: &[Value],
    params: &[ScalarValue],
    now: i64,
) -> SqlResult<Option<Bytes>> {
    let mut bytes = row_prefix(def.id);
    for (v, c) in key.iter().zip(def.primary_key_indexes()) {
        let ty = def.columns[c].ty;
        let value = eval(v, &ty.arrow_type(), &[], params, now)?;
        if value.is_null() {
            return Ok(None);
        }
        // char(n) keys are stored blank-padded,
        let value = match (ty, value) {
            (SqlType::Char { len }, ScalarValue::Utf8(Some(s))) => {
                ScalarValue::Utf8(Some(format!("{s:<width$}", width = len as usize)))
            }
            // uuid keys are stored in canonical form.
            (SqlType::Uuid, ScalarValue::Utf8(Some(s))) => {
                ScalarValue::Utf8(Some(crate::types::canonical_uuid(&s)?))
            }
            (_, value) => value,
        };
        let encoded = encode(ty, &value).ok_or_else(|| {
            SqlError::internal(format!("cannot encode {value} as {}", ty.display_name()))
        })?;
        bytes.extend_from_slice(&encoded);
    }
    Ok(Some(Bytes::from(bytes)))
}

pub(crate) fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// The row stored under `key` as `txn` sees it: its own write, else committed data at `lsn`.
async fn read_row(
    primary: &Primary,
    txn: &Transaction,
    key: &Bytes,
    lsn: strata_core::Lsn,
) -> SqlResult<Option<Bytes>> {
    if let Some(own) = txn.write(key) {
        return Ok(own.clone());
    }
    Ok(primary.read(vec![key.clone()], lsn).await?.pop().flatten())
}

fn decode(def: &TableDef, columns: &[usize], value: Option<&[u8]>) -> SqlResult<Vec<ArrayRef>> {
    // A column named twice (`SELECT id, * …`) is decoded once: the decoder reads each column in
    // one pass over the row.
    let repeats = columns
        .iter()
        .enumerate()
        .any(|(i, c)| columns[..i].contains(c));
    if repeats {
        let mut distinct: Vec<usize> = Vec::with_capacity(columns.len());
        for &c in columns {
            if !distinct.contains(&c) {
                distinct.push(c);
            }
        }
        let arrays = decode(def, &distinct, value)?;
        return Ok(columns
            .iter()
            .map(|c| arrays[distinct.iter().position(|d| d == c).expect("listed")].clone())
            .collect());
    }
    let defs: Vec<_> = columns.iter().map(|&c| &def.columns[c]).collect();
    let mut decoder = RowDecoder::new(&defs);
    if let Some(v) = value {
        decoder.append(v)?;
    }
    Ok(decoder.finish())
}

/// Locks the table for a write (see [`crate::dml::lock_table_for_write`]). The session checked
/// that the plan's definition was current just before; DDL that committed in between fails the
/// statement with 40001.
async fn lock_table(primary: &Primary, txn: &mut Transaction, def: &TableDef) -> SqlResult<()> {
    match crate::dml::lock_table_for_write(primary, txn, def).await {
        Ok(()) => Ok(()),
        Err(crate::dml::DmlError::Sql(e)) => Err(e),
        Err(crate::dml::DmlError::Restart) => Err(SqlError::new(
            sqlstate::SERIALIZATION_FAILURE,
            "could not serialize access due to concurrent schema change",
        )),
    }
}

/// Runs a fast plan in `txn`.
pub async fn execute(
    plan: &FastPlan,
    primary: &Primary,
    txn: &mut Transaction,
    params: &[ScalarValue],
) -> SqlResult<FastOutcome> {
    let def = &plan.table;
    let now = now_micros();
    match &plan.kind {
        FastKind::Select {
            projection,
            key,
            schema,
        } => {
            let value = match (key_of(def, key, params, now)?, plan.as_of) {
                (Some(key), None) => read_row(primary, txn, &key, txn.snapshot()).await?,
                // The past: what was committed then, without this transaction's writes.
                (Some(key), Some(lsn)) => primary.read(vec![key], lsn).await?.pop().flatten(),
                (None, _) => None,
            };
            let columns = decode(def, projection, value.as_deref())?;
            let options = datafusion::arrow::record_batch::RecordBatchOptions::new()
                .with_row_count(Some(usize::from(value.is_some())));
            Ok(FastOutcome::Rows(RecordBatch::try_new_with_options(
                schema.clone(),
                columns,
                &options,
            )?))
        }
        FastKind::Update { key, assignments } => {
            let Some(key) = key_of(def, key, params, now)? else {
                return Ok(FastOutcome::Count(0));
            };
            lock_table(primary, txn, def).await?;
            let lsn = match txn.lock(&key).await? {
                LockOutcome::Current => txn.snapshot(),
                // At READ COMMITTED PostgreSQL updates the row's newest version; the key is
                // locked now, so the latest commit is stable.
                LockOutcome::ChangedSinceSnapshot
                    if txn.isolation() == Isolation::ReadCommitted =>
                {
                    primary.txns.last_commit_lsn()
                }
                LockOutcome::ChangedSinceSnapshot => {
                    return Err(SqlError::new(
                        sqlstate::SERIALIZATION_FAILURE,
                        "could not serialize access due to concurrent update",
                    ))
                }
            };
            let Some(old) = read_row(primary, txn, &key, lsn).await? else {
                return Ok(FastOutcome::Count(0));
            };
            let all: Vec<usize> = (0..def.columns.len()).collect();
            let mut columns = decode(def, &all, Some(&old))?;
            let row: Vec<ScalarValue> = columns
                .iter()
                .map(|a| ScalarValue::try_from_array(a, 0))
                .collect::<Result<_, _>>()?;
            for (c, v) in assignments {
                let ty = def.columns[*c].ty.arrow_type();
                columns[*c] = eval(v, &ty, &row, params, now)?.to_array_of_size(1)?;
            }
            let encoder = RowEncoder::try_new(def, &columns)?;
            encoder.check_constraints(0)?;
            txn.put(key, encoder.value(0));
            Ok(FastOutcome::Count(1))
        }
        FastKind::Insert {
            columns: targets,
            values,
        } => {
            let mut columns: Vec<ArrayRef> = Vec::with_capacity(def.columns.len());
            for (c, column) in def.columns.iter().enumerate() {
                let ty = column.ty.arrow_type();
                let value = match targets.iter().position(|t| *t == c) {
                    Some(i) => eval(&values[i], &ty, &[], params, now)?,
                    None => ScalarValue::try_from(&ty)?,
                };
                columns.push(value.to_array_of_size(1)?);
            }
            let encoder = RowEncoder::try_new(def, &columns)?;
            encoder.check_constraints(0)?;
            lock_table(primary, txn, def).await?;
            let key = encoder.key(0, || primary.txns.next_row_id());
            if !def.primary_key.is_empty() {
                let lsn = match txn.lock(&key).await? {
                    LockOutcome::Current => txn.snapshot(),
                    LockOutcome::ChangedSinceSnapshot => primary.txns.last_commit_lsn(),
                };
                if read_row(primary, txn, &key, lsn).await?.is_some() {
                    return Err(crate::dml::duplicate(def, &encoder, 0));
                }
            }
            txn.put(key, encoder.value(0));
            Ok(FastOutcome::Count(1))
        }
    }
}
