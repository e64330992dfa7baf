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

use std::collections::HashSet;

use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use strata_core::key::{index_prefix, prefix_end, row_prefix, KeyEncoder};

use crate::catalog::TableDef;
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::primary::Primary;
use crate::row_codec::RowEncoder;
use crate::txn::Transaction;

/// Unique probes looked up at once.
const PROBE_CONCURRENCY: usize = 32;

/// PostgreSQL's limit on identifier length (NAMEDATALEN - 1).
const MAX_IDENTIFIER_BYTES: usize = 63;

/// A secondary index of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDef {
    /// From the relation id counter, so it is also the index's oid.
    pub id: u64,
    pub name: String,
    /// Indexed column ids, in index order.
    pub columns: Vec<u32>,
    pub unique: bool,
    /// The index of a `UNIQUE` constraint (shown in `pg_constraint`, dropped with the
    /// constraint), rather than one made by `CREATE INDEX`.
    #[serde(default)]
    pub constraint: bool,
}

impl IndexDef {
    /// Positions (in the table's columns) of the indexed columns, in index order.
    pub fn column_positions(&self, def: &TableDef) -> Vec<usize> {
        def.column_positions(&self.columns)
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
    pub key: Bytes,
    /// The key without the row suffix, for a unique index whose values are all non-NULL.
    pub probe: Option<Bytes>,
}

/// The index entries of the rows of one batch.
pub struct IndexRows<'a> {
    def: &'a TableDef,
    enc: &'a RowEncoder<'a>,
    indexes: Vec<(&'a IndexDef, Vec<usize>)>,
    row_prefix_len: usize,
}

impl<'a> IndexRows<'a> {
    pub fn new(def: &'a TableDef, enc: &'a RowEncoder<'a>) -> Self {
        Self {
            def,
            enc,
            indexes: def
                .indexes
                .iter()
                .map(|i| (i, i.column_positions(def)))
                .collect(),
            row_prefix_len: row_prefix(def.id).len(),
        }
    }

    /// The row's entry in every index of the table, in index order.
    pub fn entries(&self, row: usize, row_key: &[u8]) -> Vec<Entry> {
        self.indexes
            .iter()
            .map(|(index, positions)| {
                let mut key = KeyEncoder::with_prefix(index_prefix(self.def.id, index.id));
                let any_null = self.enc.write_index_values(row, positions, &mut key);
                let probe =
                    (index.unique && !any_null).then(|| Bytes::copy_from_slice(key.as_slice()));
                let mut key = key.finish();
                key.extend_from_slice(&row_key[self.row_prefix_len..]);
                Entry {
                    key: Bytes::from(key),
                    probe,
                }
            })
            .collect()
    }

    /// The error for a row whose values of the `i`th index are taken.
    pub fn duplicate(&self, i: usize, row: usize) -> SqlError {
        let (index, positions) = &self.indexes[i];
        duplicate_error(
            self.def,
            index,
            format!(
                "Key {} already exists.",
                self.enc.describe_columns(row, positions)
            ),
        )
    }

    /// The error for rows that share values of the `i`th index while it is being built.
    pub fn duplicated(&self, i: usize, row: usize) -> SqlError {
        let (index, positions) = &self.indexes[i];
        SqlError::new(
            sqlstate::UNIQUE_VIOLATION,
            format!("could not create unique index \"{}\"", index.name),
        )
        .with_detail(format!(
            "Key {} is duplicated.",
            self.enc.describe_columns(row, positions)
        ))
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
    txn: &mut Transaction,
    def: &TableDef,
    index: &IndexDef,
    rows: &[(Vec<datafusion::arrow::array::ArrayRef>, Vec<Bytes>)],
) -> SqlResult<()> {
    let mut only = def.clone();
    only.indexes = vec![index.clone()];
    let mut seen: datafusion::common::HashSet<Bytes> = datafusion::common::HashSet::new();
    for (columns, keys) in rows {
        let enc = RowEncoder::try_new(&only, columns)?;
        let index_rows = IndexRows::new(&only, &enc);
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
            txn.put(entry.key, row_key.clone());
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
