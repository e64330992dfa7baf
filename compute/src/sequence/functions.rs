//! `nextval`, `currval`, `setval`, `lastval` and `pg_get_serial_sequence`.
//!
//! DataFusion calls scalar functions synchronously, but taking values from a committed
//! sequence may have to commit a reservation (an await on the safekeepers). The functions block
//! their worker thread for that with `block_in_place`, which the compute's multi-threaded
//! runtime allows; it happens once per reserved block of values, not per value.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result as DFResult, ScalarValue};
use datafusion::logical_expr::{ScalarUDF, Volatility};

use super::{check_bounds, next_values_in, set_in, SequenceState};
use crate::catalog::{CatalogView, SequenceDef};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::pg_catalog::functions::{arg, block_on_worker, function_with, ints, sql_error, texts};
use crate::pg_catalog::CatalogHandle;

/// What `currval` and `lastval` answer: the values this session took last.
#[derive(Debug, Default)]
pub struct SessionSequences {
    last_by_sequence: HashMap<u64, i64>,
    last: Option<(u64, i64)>,
}

impl SessionSequences {
    fn record(&mut self, id: u64, value: i64) {
        self.last_by_sequence.insert(id, value);
        self.last = Some((id, value));
    }
}

/// The sequence functions, bound to one session.
pub fn all(h: &CatalogHandle) -> Vec<ScalarUDF> {
    vec![
        function_with(
            Volatility::Volatile,
            "nextval",
            &[1],
            DataType::Int64,
            h,
            |h, args, rows| {
                let mut out = Vec::with_capacity(rows);
                for (def, n) in sequences_by_run(h, arg(args, 0)?, rows)? {
                    let values = next_values(h, &def, n).map_err(sql_error)?;
                    if let Some(&last) = values.last() {
                        h.sequence_values
                            .lock()
                            .expect("session sequences lock")
                            .record(def.id, last);
                    }
                    out.extend(values.into_iter().map(Some));
                }
                out.resize(rows, None);
                Ok(Arc::new(Int64Array::from(out)) as ArrayRef)
            },
        ),
        function_with(
            Volatility::Volatile,
            "currval",
            &[1],
            DataType::Int64,
            h,
            |h, args, rows| {
                let mut out = Vec::with_capacity(rows);
                for (def, n) in sequences_by_run(h, arg(args, 0)?, rows)? {
                    let value = h
                        .sequence_values
                        .lock()
                        .expect("session sequences lock")
                        .last_by_sequence
                        .get(&def.id)
                        .copied()
                        .ok_or_else(|| {
                            sql_error(SqlError::new(
                                sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                                format!(
                                    "currval of sequence \"{}\" is not yet defined in this session",
                                    def.name
                                ),
                            ))
                        })?;
                    out.extend(std::iter::repeat_n(Some(value), n));
                }
                out.resize(rows, None);
                Ok(Arc::new(Int64Array::from(out)) as ArrayRef)
            },
        ),
        function_with(
            Volatility::Volatile,
            "lastval",
            &[0],
            DataType::Int64,
            h,
            |h, _, rows| {
                let last = h
                    .sequence_values
                    .lock()
                    .expect("session sequences lock")
                    .last;
                let Some((_, value)) = last else {
                    return Err(sql_error(SqlError::new(
                        sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                        "lastval is not yet defined in this session",
                    )));
                };
                Ok(Arc::new(Int64Array::from(vec![value; rows])) as ArrayRef)
            },
        ),
        function_with(
            Volatility::Volatile,
            "setval",
            &[2, 3],
            DataType::Int64,
            h,
            |h, args, rows| {
                let values = ints(arg(args, 1)?)?;
                let called: Vec<Option<bool>> = match args.get(2) {
                    Some(a) => {
                        let a = cast(a, &DataType::Boolean)?;
                        datafusion::arrow::array::AsArray::as_boolean(&a)
                            .iter()
                            .collect()
                    }
                    None => vec![Some(true); rows],
                };
                let mut out = Vec::with_capacity(rows);
                let mut row = 0;
                for (def, n) in sequences_by_run(h, arg(args, 0)?, rows)? {
                    for _ in 0..n {
                        let value = values[row.min(values.len() - 1)];
                        let called = called[row.min(called.len() - 1)];
                        let (Some(value), Some(called)) = (value, called) else {
                            out.push(None);
                            row += 1;
                            continue;
                        };
                        check_bounds(&def, value).map_err(sql_error)?;
                        set_value(
                            h,
                            &def,
                            SequenceState {
                                last: value,
                                called,
                            },
                        )
                        .map_err(sql_error)?;
                        if called {
                            h.sequence_values
                                .lock()
                                .expect("session sequences lock")
                                .record(def.id, value);
                        }
                        out.push(Some(value));
                        row += 1;
                    }
                }
                out.resize(rows, None);
                Ok(Arc::new(Int64Array::from(out)) as ArrayRef)
            },
        ),
        function_with(
            Volatility::Stable,
            "pg_get_serial_sequence",
            &[2],
            DataType::Utf8,
            h,
            |h, args, rows| {
                let tables = texts(arg(args, 0)?)?;
                let columns = texts(arg(args, 1)?)?;
                let out = (0..rows)
                    .map(|i| match (&tables[i], &columns[i]) {
                        (Some(t), Some(c)) => serial_sequence(h, t, c),
                        _ => Ok(None),
                    })
                    .collect::<DFResult<Vec<_>>>()?;
                Ok(Arc::new(StringArray::from(out)) as ArrayRef)
            },
        ),
    ]
}

/// The sequence each of `rows` rows names (by name or oid), as runs of equal names: a constant
/// argument (an array of one value) is one run of every row, so `nextval` takes all the rows'
/// values at once.
fn sequences_by_run(
    h: &CatalogHandle,
    names: &ArrayRef,
    rows: usize,
) -> DFResult<Vec<(Arc<SequenceDef>, usize)>> {
    if names.len() == 1 {
        let value = ScalarValue::try_from_array(names, 0)?;
        if value.is_null() {
            return Ok(Vec::new());
        }
        return Ok(vec![(sequence_named(h, &value).map_err(sql_error)?, rows)]);
    }
    let mut runs: Vec<(ScalarValue, usize)> = Vec::new();
    for i in 0..names.len() {
        let value = ScalarValue::try_from_array(names, i)?;
        match runs.last_mut() {
            Some((last, n)) if *last == value => *n += 1,
            _ => runs.push((value, 1)),
        }
    }
    runs.into_iter()
        .filter(|(v, _)| !v.is_null())
        .map(|(v, n)| Ok((sequence_named(h, &v).map_err(sql_error)?, n)))
        .collect()
}

/// The sequence a `regclass` argument names: a name in text, or an oid.
fn sequence_named(h: &CatalogHandle, value: &ScalarValue) -> SqlResult<Arc<SequenceDef>> {
    h.slot.with_catalog(&h.primary.catalog, |view| {
        if let Some(text) = value_text(value) {
            if let Ok(oid) = text.parse::<u64>() {
                return by_oid(view, oid);
            }
            let (schema, name) = h.slot.search_path().resolve_text(view, &text)?;
            if let Some(def) = view.get_sequence(&schema, &name)? {
                return Ok(def);
            }
            if view.get(&schema, &name)?.is_some() {
                return Err(SqlError::new(
                    sqlstate::WRONG_OBJECT_TYPE,
                    format!("\"{name}\" is not a sequence"),
                ));
            }
            return Err(SqlError::undefined_table(&name));
        }
        match value.cast_to(&DataType::Int64) {
            Ok(ScalarValue::Int64(Some(oid))) => by_oid(view, oid as u64),
            _ => Err(SqlError::new(
                sqlstate::UNDEFINED_FUNCTION,
                format!("function nextval({}) does not exist", value.data_type()),
            )),
        }
    })
}

fn by_oid(view: &CatalogView, oid: u64) -> SqlResult<Arc<SequenceDef>> {
    view.sequence_by_id(oid)?.ok_or_else(|| {
        SqlError::new(
            sqlstate::UNDEFINED_TABLE,
            format!("could not open relation with OID {oid}"),
        )
    })
}

fn value_text(value: &ScalarValue) -> Option<String> {
    match value {
        ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => v.clone(),
        _ => None,
    }
}

/// Runs `f` on the session's transaction when the sequence is the transaction's own, else
/// returns `None`.
fn in_own_txn<T>(
    h: &CatalogHandle,
    function: &str,
    def: &SequenceDef,
    f: impl FnOnce(&mut crate::txn::Transaction) -> SqlResult<T>,
) -> SqlResult<Option<T>> {
    let own = h.slot.with_catalog(&h.primary.catalog, |view| {
        let txn = view.txn;
        if txn.is_some_and(|t| t.is_read_only()) {
            return Err(SqlError::new(
                sqlstate::READ_ONLY_SQL_TRANSACTION,
                format!("cannot execute {function}() in a read-only transaction"),
            ));
        }
        Ok(view.sequence_is_own(def.id))
    })?;
    if !own {
        return Ok(None);
    }
    h.slot
        .with(f)
        .map_err(|e| SqlError::internal(e.to_string()))?
        .map(Some)
}

fn next_values(h: &CatalogHandle, def: &Arc<SequenceDef>, n: usize) -> SqlResult<Vec<i64>> {
    if let Some(values) = in_own_txn(h, "nextval", def, |txn| next_values_in(txn, def, n))? {
        return Ok(values);
    }
    let primary = h.primary.clone();
    let def = def.clone();
    block_on_worker(async move { primary.sequences.next_values(&primary, &def, n).await })
}

fn set_value(h: &CatalogHandle, def: &Arc<SequenceDef>, state: SequenceState) -> SqlResult<()> {
    if in_own_txn(h, "setval", def, |txn| {
        set_in(txn, def, state);
        Ok(())
    })?
    .is_some()
    {
        return Ok(());
    }
    let primary = h.primary.clone();
    let def = def.clone();
    block_on_worker(async move { primary.sequences.set(&primary, &def, state).await })
}

/// `pg_get_serial_sequence(table, column)`: the sequence a serial or identity column owns,
/// schema-qualified, or NULL.
fn serial_sequence(h: &CatalogHandle, table: &str, column: &str) -> DFResult<Option<String>> {
    h.slot.with_catalog(&h.primary.catalog, |view| {
        let (schema, name) = h
            .slot
            .search_path()
            .resolve_text(view, table)
            .map_err(sql_error)?;
        let def = view
            .get(&schema, &name)
            .map_err(sql_error)?
            .ok_or_else(|| sql_error(SqlError::undefined_table(&name)))?;
        let col = def
            .columns
            .iter()
            .find(|c| c.name == column)
            .ok_or_else(|| {
                sql_error(SqlError::new(
                    sqlstate::UNDEFINED_COLUMN,
                    format!(
                        "column \"{column}\" of relation \"{}\" does not exist",
                        def.name
                    ),
                ))
            })?;
        Ok(view
            .sequences(&schema)
            .into_iter()
            .find(|s| s.owned_by == Some((def.id, col.id)))
            .map(|s| format!("{}.{}", s.schema, s.name)))
    })
}
