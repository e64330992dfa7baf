//! Secondary indexes: `CREATE [UNIQUE] INDEX` and `UNIQUE` constraints.
//!
//! An index entry is one key in the table's part of the key space,
//! `t <table id> i <index id> (tag, value)* <row key suffix>`, whose value is the row's key. The
//! values are the indexed columns, memcomparable and tagged NULL or not; the suffix (the row key
//! without the table's row prefix) keeps entries of rows with equal values distinct, in
//! primary-key order. Entries are written in the same transaction as their rows, so at any
//! snapshot an index agrees with its table, and a transaction's own writes overlay both alike.
//!
//! A unique index checks a row's values (unless one is NULL: NULLs never conflict, as in
//! PostgreSQL) by locking the *probe*, the entry key without the suffix, then looking for any
//! entry under it in the latest committed state and the transaction's own writes. The lock makes
//! concurrent writers of one value wait for each other, so the second sees the first's row.
//!
//! A key may be an expression of the row (`lower(email)`), computed for each batch of written
//! rows, and an index may be partial (`WHERE deleted_at IS NULL`): a row its predicate does not
//! make true has no entry, so a unique partial index only keeps the rows it covers apart. Such
//! indexes serve uniqueness and are kept up to date; the planner reads only plain ones.

use std::collections::HashSet;

use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use strata_core::key::{index_prefix, prefix_end, row_prefix, KeyEncoder};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::execution::context::SessionContext;
use datafusion::sql::sqlparser::ast::Expr as SqlExpr;

use crate::catalog::TableDef;
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::names::normalize;
use crate::primary::Primary;
use crate::row_codec::{KeyValues, RowEncoder};
use crate::row_expr::{expression_names, table_batch, RowExpr};
use crate::txn::Transaction;
use crate::types::SqlType;

/// Unique probes looked up at once.
const PROBE_CONCURRENCY: usize = 32;

/// PostgreSQL's limit on identifier length (NAMEDATALEN - 1).
const MAX_IDENTIFIER_BYTES: usize = 63;

/// The column id of an index key that is an expression, as `pg_index.indkey` has 0 for one.
pub const EXPRESSION_KEY: u32 = 0;

/// A secondary index of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDef {
    /// From the relation id counter, so it is also the index's oid.
    pub id: u64,
    pub name: String,
    /// Key column ids, in index order; [`EXPRESSION_KEY`] where the key is an expression.
    pub columns: Vec<u32>,
    /// The keys that are expressions, in index order: one for each [`EXPRESSION_KEY`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expressions: Vec<IndexExpression>,
    /// `INCLUDE` column ids: shown by the catalog, not part of the entry key (a query reads the
    /// row an entry names for every column anyway).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<u32>,
    /// A partial index's `WHERE`, as SQL text: only the rows that make it true have an entry
    /// (and only they are checked against each other by a unique index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<String>,
    pub unique: bool,
    /// `NULLS NOT DISTINCT`: a unique index whose NULLs conflict like any value.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nulls_not_distinct: bool,
    /// The index of a `UNIQUE` constraint (shown in `pg_constraint`, dropped with the
    /// constraint), rather than one made by `CREATE INDEX`.
    #[serde(default)]
    pub constraint: bool,
}

/// An index key computed from each row (`CREATE INDEX … (lower(email))`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexExpression {
    /// The expression as SQL text.
    pub sql: String,
    /// The type of its values, as the index stores them.
    pub ty: SqlType,
}

impl IndexExpression {
    /// The expression as a list of keys shows it (`pg_get_indexdef`, a duplicate-key DETAIL):
    /// in parentheses unless it is a function call.
    pub fn listed(&self) -> String {
        crate::row_expr::deparsed(&self.sql)
    }

    /// The name of the index column, as PostgreSQL picks it (`FigureIndexColname`): a
    /// function's name, a column's name, or `expr`.
    pub fn column_name(&self) -> String {
        fn figure(e: &SqlExpr) -> Option<String> {
            match e {
                SqlExpr::Function(f) => f.name.0.last().and_then(|p| p.as_ident()).map(normalize),
                SqlExpr::Identifier(id) => Some(normalize(id)),
                SqlExpr::CompoundIdentifier(parts) => parts.last().map(normalize),
                SqlExpr::Nested(inner) => figure(inner),
                SqlExpr::Cast {
                    expr, data_type, ..
                } => figure(expr).or_else(|| Some(data_type.to_string().to_lowercase())),
                SqlExpr::Case { .. } => Some("case".into()),
                _ => None,
            }
        }
        crate::row_expr::parse_expression(&self.sql)
            .ok()
            .and_then(|e| figure(&e))
            .unwrap_or_else(|| "expr".into())
    }
}

/// One key of an index, as the table's definition resolves it.
pub enum IndexKey<'a> {
    /// The column at this position of the table.
    Column(usize),
    Expression(&'a IndexExpression),
}

impl IndexDef {
    /// Whether every key is a column and every row has an entry: an index that can answer a
    /// query on its columns, be an ON CONFLICT arbiter or back a foreign key.
    pub fn is_plain(&self) -> bool {
        self.expressions.is_empty() && self.predicate.is_none()
    }

    /// Positions (in the table's columns) of the indexed columns, in index order, of a plain
    /// index ([`IndexDef::is_plain`]).
    pub fn column_positions(&self, def: &TableDef) -> Vec<usize> {
        debug_assert!(self.expressions.is_empty(), "{} has expressions", self.name);
        def.column_positions(&self.columns)
    }

    /// The keys, in index order.
    pub fn keys<'a>(&'a self, def: &TableDef) -> Vec<IndexKey<'a>> {
        let mut expressions = self.expressions.iter();
        self.columns
            .iter()
            .map(|&id| match id {
                EXPRESSION_KEY => {
                    IndexKey::Expression(expressions.next().expect("one expression per key"))
                }
                id => IndexKey::Column(def.column_positions(&[id])[0]),
            })
            .collect()
    }

    /// Whether the index reads the column with id `id` (of `def`): as a key, in a key's
    /// expression or in its predicate. Writing the column rewrites the row's entry, and
    /// dropping it drops the index.
    pub fn reads(&self, def: &TableDef, id: u32) -> bool {
        if self.columns.contains(&id) || self.include.contains(&id) {
            return true;
        }
        let Some(column) = def.columns.iter().find(|c| c.id == id) else {
            return false;
        };
        self.expressions
            .iter()
            .map(|e| e.sql.as_str())
            .chain(self.predicate.as_deref())
            .any(|sql| expression_names(sql).contains(&column.name))
    }
}

/// The name PostgreSQL chooses for an unnamed index or constraint:
/// `<table>_<column>[_<column>…]_<suffix>`, shortened to 63 bytes, with a number appended when
/// `taken` says the name is in use.
pub fn choose_name(
    table: &str,
    columns: &[String],
    suffix: &str,
    taken: impl Fn(&str) -> bool,
) -> String {
    let base = format!("{table}_{}", columns.join("_"));
    (0..)
        .map(|n| {
            let tail = if n == 0 {
                format!("_{suffix}")
            } else {
                format!("_{suffix}{n}")
            };
            let mut head = base.clone();
            while head.len() + tail.len() > MAX_IDENTIFIER_BYTES {
                head.pop();
            }
            format!("{head}{tail}")
        })
        .find(|name| !taken(name))
        .expect("some numbered name is free")
}

/// One row's entry in one index.
pub struct Entry {
    /// `None` for a row a partial index leaves out.
    pub key: Option<Bytes>,
    /// The key without the row suffix, for a unique index whose values are all non-NULL (or
    /// that has NULLS NOT DISTINCT).
    pub probe: Option<Bytes>,
}

/// Where a key's values come from, for one batch.
enum KeySource {
    /// The table's column at this position.
    Column(usize),
    /// An expression's values, computed for the batch.
    Computed(KeyValues),
}

/// One index, ready to give the entries of one batch's rows.
struct BatchIndex<'a> {
    index: &'a IndexDef,
    keys: Vec<KeySource>,
    /// For a partial index, whether each row is in it (its predicate is true).
    included: Option<BooleanArray>,
}

/// The index entries of the rows of one batch.
pub struct IndexRows<'a> {
    def: &'a TableDef,
    enc: &'a RowEncoder<'a>,
    indexes: Vec<BatchIndex<'a>>,
    row_prefix_len: usize,
}

impl<'a> IndexRows<'a> {
    /// `enc` encodes `columns` (the table's columns, in order), from which expression keys and
    /// predicates are computed.
    pub fn new(
        ctx: &SessionContext,
        def: &'a TableDef,
        enc: &'a RowEncoder<'a>,
        columns: &[ArrayRef],
    ) -> SqlResult<Self> {
        let batch = match def.indexes.iter().all(IndexDef::is_plain) {
            true => None,
            false => Some(table_batch(def, columns)?),
        };
        let indexes = def
            .indexes
            .iter()
            .map(|index| {
                if index.is_plain() {
                    let keys = index.column_positions(def);
                    return Ok(BatchIndex {
                        index,
                        keys: keys.into_iter().map(KeySource::Column).collect(),
                        included: None,
                    });
                }
                let batch = batch.as_ref().expect("made for an index that is not plain");
                let keys = index
                    .keys(def)
                    .into_iter()
                    .map(|key| match key {
                        IndexKey::Column(p) => Ok(KeySource::Column(p)),
                        IndexKey::Expression(e) => {
                            let values = RowExpr::plan(ctx, def, &e.sql)?.evaluate(batch)?;
                            KeyValues::try_new(e.ty, &values).map(KeySource::Computed)
                        }
                    })
                    .collect::<SqlResult<Vec<_>>>()?;
                let included = match &index.predicate {
                    None => None,
                    Some(sql) => {
                        let values = RowExpr::plan(ctx, def, sql)?.evaluate(batch)?;
                        Some(cast(&values, &DataType::Boolean)?.as_boolean().clone())
                    }
                };
                Ok(BatchIndex {
                    index,
                    keys,
                    included,
                })
            })
            .collect::<SqlResult<Vec<_>>>()?;
        Ok(Self {
            def,
            enc,
            indexes,
            row_prefix_len: row_prefix(def.id).len(),
        })
    }

    /// The row's entry in every index of the table, in index order.
    pub fn entries(&self, row: usize, row_key: &[u8]) -> Vec<Entry> {
        self.indexes
            .iter()
            .map(|batch_index| {
                let index = batch_index.index;
                let left_out = batch_index
                    .included
                    .as_ref()
                    .is_some_and(|included| !(included.is_valid(row) && included.value(row)));
                if left_out {
                    return Entry {
                        key: None,
                        probe: None,
                    };
                }
                let mut key = KeyEncoder::with_prefix(index_prefix(self.def.id, index.id));
                let mut any_null = false;
                for source in &batch_index.keys {
                    any_null |= match source {
                        KeySource::Column(p) => {
                            self.enc
                                .write_index_values(row, std::slice::from_ref(p), &mut key)
                        }
                        KeySource::Computed(values) => values.write(row, &mut key),
                    };
                }
                let probe = (index.unique && (!any_null || index.nulls_not_distinct))
                    .then(|| Bytes::copy_from_slice(key.as_slice()));
                let mut key = key.finish();
                key.extend_from_slice(&row_key[self.row_prefix_len..]);
                Entry {
                    key: Some(Bytes::from(key)),
                    probe,
                }
            })
            .collect()
    }

    /// `(a, lower(b))=(1, x)`: the row's values of the `i`th index, as a DETAIL shows them.
    fn describe(&self, i: usize, row: usize) -> String {
        let batch_index = &self.indexes[i];
        let mut expressions = batch_index.index.expressions.iter();
        let (names, values): (Vec<String>, Vec<String>) = batch_index
            .keys
            .iter()
            .map(|source| match source {
                KeySource::Column(p) => (
                    self.def.columns[*p].name.clone(),
                    self.enc.describe_value(row, *p),
                ),
                KeySource::Computed(values) => (
                    expressions.next().map(|e| e.listed()).unwrap_or_default(),
                    values.describe(row),
                ),
            })
            .unzip();
        format!("({})=({})", names.join(", "), values.join(", "))
    }

    /// The error for a row whose values of the `i`th index are taken.
    pub fn duplicate(&self, i: usize, row: usize) -> SqlError {
        duplicate_error(
            self.def,
            self.indexes[i].index,
            format!("Key {} already exists.", self.describe(i, row)),
        )
    }

    /// The error for rows that share values of the `i`th index while it is being built.
    pub fn duplicated(&self, i: usize, row: usize) -> SqlError {
        let index = self.indexes[i].index;
        SqlError::new(
            sqlstate::UNIQUE_VIOLATION,
            format!("could not create unique index \"{}\"", index.name),
        )
        .with_detail(format!("Key {} is duplicated.", self.describe(i, row)))
        .with_table(&self.def.schema, &self.def.name)
        .with_constraint(&index.name)
    }
}

fn duplicate_error(def: &TableDef, index: &IndexDef, detail: String) -> SqlError {
    SqlError::new(
        sqlstate::UNIQUE_VIOLATION,
        format!(
            "duplicate key value violates unique constraint \"{}\"",
            index.name
        ),
    )
    .with_detail(detail)
    .with_table(&def.schema, &def.name)
    .with_constraint(&index.name)
}

/// Locks every probe (until `txn` ends) and says which are taken: by an entry among `txn`'s own
/// writes, or else by one committed. Committed entries are read at the latest commit, not at the
/// snapshot, as PostgreSQL's unique checks see every committed row; the lock keeps that stable.
pub async fn probes_taken(
    primary: &Primary,
    txn: &mut Transaction,
    probes: &[Bytes],
) -> SqlResult<Vec<bool>> {
    for probe in probes {
        txn.lock(probe).await?;
    }
    let latest = primary.txns.last_commit_lsn();
    let txn: &Transaction = txn;
    let lookups: Vec<_> = probes
        .iter()
        .map(|probe| probe_taken(primary, txn, probe.clone(), latest))
        .collect();
    stream::iter(lookups)
        .buffered(PROBE_CONCURRENCY)
        .try_collect()
        .await
}

async fn probe_taken(
    primary: &Primary,
    txn: &Transaction,
    probe: Bytes,
    latest: strata_core::Lsn,
) -> SqlResult<bool> {
    let end = Bytes::from(prefix_end(&probe).expect("probe is not all 0xff"));
    let own = txn.writes_in(&probe, &end);
    if own.iter().any(|(_, w)| w.is_some()) {
        return Ok(true);
    }
    let deleted: HashSet<Bytes> = own.into_iter().map(|(k, _)| k).collect();
    let not_modified_since = primary.txns.last_written().for_range(&probe, &end);
    let mut scan = primary
        .pageserver
        .scan(probe, Some(end), latest, not_modified_since, None)
        .await?;
    while let Some(chunk) = scan.next().await {
        if chunk?.keys.iter().any(|k| !deleted.contains(k)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A proposed row whose values of a unique index are taken.
pub struct Conflict {
    pub row: usize,
    /// Which of the table's indexes (position in `TableDef.indexes`).
    pub index: usize,
    /// Taken by an earlier row of the same statement, not by a row already there.
    pub within_statement: bool,
}

/// Unique-index checks for rows about to be inserted (`keep`: the rows still to be written).
/// Returns the rows whose values are taken, by a committed row, an earlier write of the
/// transaction or an earlier row of `rows`, with the first index they conflict on; the caller
/// fails, skips or updates them.
pub async fn check_new_rows(
    primary: &Primary,
    txn: &mut Transaction,
    entries: &[Vec<Entry>],
    keep: &[bool],
) -> SqlResult<Vec<Conflict>> {
    let probes: Vec<Bytes> = entries
        .iter()
        .zip(keep.iter())
        .filter(|(_, k)| **k)
        .flat_map(|(e, _)| e.iter().filter_map(|e| e.probe.clone()))
        .collect();
    if probes.is_empty() {
        return Ok(Vec::new());
    }
    let mut taken = probes_taken(primary, txn, &probes).await?.into_iter();
    let mut seen: datafusion::common::HashSet<Bytes> = datafusion::common::HashSet::new();
    let mut conflicts = Vec::new();
    for (row, row_entries) in entries.iter().enumerate() {
        if !keep[row] {
            continue;
        }
        let mut conflict = None;
        for (index, entry) in row_entries.iter().enumerate() {
            let Some(probe) = &entry.probe else { continue };
            let committed = taken.next().unwrap_or(false);
            if conflict.is_none() && (committed || seen.contains(probe)) {
                conflict = Some(Conflict {
                    row,
                    index,
                    within_statement: !committed,
                });
            }
        }
        match conflict {
            Some(c) => conflicts.push(c),
            None => seen.extend(row_entries.iter().filter_map(|e| e.probe.clone())),
        }
    }
    Ok(conflicts)
}

/// Writes every row's entries for `index` (a new index, or every index of a table rewritten
/// under a new id), failing with 23505 if a unique index would hold one value twice. `rows` are
/// every row of the table, as `(columns, row keys)`.
pub fn build(
    ctx: &SessionContext,
    txn: &mut Transaction,
    def: &TableDef,
    index: &IndexDef,
    rows: &[(Vec<ArrayRef>, Vec<Bytes>)],
) -> SqlResult<()> {
    let mut only = def.clone();
    only.indexes = vec![index.clone()];
    let mut seen: datafusion::common::HashSet<Bytes> = datafusion::common::HashSet::new();
    for (columns, keys) in rows {
        let enc = RowEncoder::try_new(&only, columns)?;
        let index_rows = IndexRows::new(ctx, &only, &enc, columns)?;
        for (row, row_key) in keys.iter().enumerate() {
            let entry = index_rows
                .entries(row, row_key)
                .into_iter()
                .next()
                .expect("one index");
            if let Some(probe) = entry.probe {
                if !seen.insert(probe) {
                    return Err(index_rows.duplicated(0, row));
                }
            }
            if let Some(key) = entry.key {
                txn.put(key, row_key.clone());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_chosen_as_postgres_chooses_them() {
        let taken = ["t_a_idx".to_string(), "t_a_idx1".to_string()];
        let is_taken = |n: &str| taken.iter().any(|t| t == n);
        assert_eq!(choose_name("t", &["b".into()], "idx", is_taken), "t_b_idx");
        assert_eq!(choose_name("t", &["a".into()], "idx", is_taken), "t_a_idx2");
        assert_eq!(
            choose_name("t", &["a".into(), "b".into()], "key", is_taken),
            "t_a_b_key"
        );
        let long = "x".repeat(70);
        let name = choose_name(&long, &["c".into()], "key", |_| false);
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("_key"));
    }
}
