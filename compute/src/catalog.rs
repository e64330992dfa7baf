//! The catalog: table definitions stored as keys in the timeline's own key space.
//!
//! Because the catalog is data, DDL commits through the same WAL as rows: it is durable,
//! replicated, and (later) readable at any past LSN. The primary keeps every definition in memory
//! and updates that copy only after a DDL transaction has committed.
//!
//! Keys (all under [`strata_core::key::CATALOG_PREFIX`]):
//! - `m T <table id:u64>`                 → the table definition (JSON)
//! - `m N <database> 0x00 <schema> 0x00 <name>` → the table id (claims the name, so two
//!   concurrent `CREATE TABLE`s of one name conflict at commit)
//! - `m C next_table_id`                   → the next table id to hand out (u64, big-endian)

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use strata_core::key::{prefix_end, CATALOG_PREFIX};

use crate::error::{SqlError, SqlResult};
use crate::types::SqlType;

/// The only database until `CREATE DATABASE` exists.
pub const DEFAULT_DATABASE: &str = "postgres";
/// The only schema until `CREATE SCHEMA` exists.
pub const DEFAULT_SCHEMA: &str = "public";
/// Table ids start here, leaving room below for system tables.
const FIRST_TABLE_ID: u64 = 16384;

/// One column of a table. Columns are identified by `id`, never by position, so that a row
/// written before a column was added or dropped still decodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub id: u32,
    pub name: String,
    #[serde(flatten)]
    pub ty: SqlType,
    pub nullable: bool,
}

/// A table as `CREATE TABLE` defined it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDef {
    pub id: u64,
    pub database: String,
    pub schema: String,
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// Column ids of the primary key, in key order. Empty: rows are keyed by a hidden row id.
    pub primary_key: Vec<u32>,
    pub next_column_id: u32,
}

impl TableDef {
    /// Positions (in `columns`) of the primary-key columns, in key order.
    pub fn primary_key_indexes(&self) -> Vec<usize> {
        self.primary_key
            .iter()
            .map(|id| {
                self.columns
                    .iter()
                    .position(|c| c.id == *id)
                    .expect("primary key column exists")
            })
            .collect()
    }

    /// Name of the primary-key constraint, as PostgreSQL names it by default.
    pub fn primary_key_name(&self) -> String {
        format!("{}_pkey", self.name)
    }

    /// The table as Arrow sees it. Each field carries its PostgreSQL type in its metadata, so
    /// that a result column read straight from a table is described as `varchar(20)` or
    /// `numeric(10,2)`, not just as text or numeric.
    ///
    /// Every field is nullable, NOT NULL columns included: DataFusion would otherwise reject a
    /// NULL while building a batch, before Strata can report PostgreSQL's not-null violation
    /// (23502), which the insert path checks itself.
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| {
                    Field::new(&c.name, c.ty.arrow_type(), true)
                        .with_metadata(c.ty.field_metadata())
                })
                .collect::<Vec<_>>(),
        ))
    }
}

/// Key of a table's definition.
pub fn table_def_key(table_id: u64) -> Bytes {
    let mut k = vec![CATALOG_PREFIX, b'T'];
    k.extend_from_slice(&table_id.to_be_bytes());
    Bytes::from(k)
}

/// The key range holding every table definition.
pub fn table_defs_range() -> (Bytes, Bytes) {
    let start = vec![CATALOG_PREFIX, b'T'];
    let end = prefix_end(&start).expect("prefix is not all 0xff");
    (Bytes::from(start), Bytes::from(end))
}

/// Key that claims a table name.
pub fn table_name_key(database: &str, schema: &str, name: &str) -> Bytes {
    let mut k = vec![CATALOG_PREFIX, b'N'];
    for (i, part) in [database, schema, name].iter().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(part.as_bytes());
    }
    Bytes::from(k)
}

/// Key of the table-id counter.
pub fn next_table_id_key() -> Bytes {
    let mut k = vec![CATALOG_PREFIX, b'C'];
    k.extend_from_slice(b"next_table_id");
    Bytes::from(k)
}

pub fn encode_table_def(def: &TableDef) -> Bytes {
    Bytes::from(serde_json::to_vec(def).expect("table definitions serialize"))
}

pub fn decode_table_def(value: &[u8]) -> SqlResult<TableDef> {
    serde_json::from_slice(value).map_err(|e| {
        SqlError::new(
            crate::error::sqlstate::DATA_CORRUPTED,
            format!("corrupt table definition: {e}"),
        )
    })
}

pub fn decode_next_table_id(value: Option<&[u8]>) -> SqlResult<u64> {
    match value {
        None => Ok(FIRST_TABLE_ID),
        Some(v) => v.try_into().map(u64::from_be_bytes).map_err(|_| {
            SqlError::new(
                crate::error::sqlstate::DATA_CORRUPTED,
                "corrupt table id counter",
            )
        }),
    }
}

/// The primary's in-memory copy of the committed catalog, shared by every session.
#[derive(Debug, Default)]
pub struct Catalog {
    tables: RwLock<Tables>,
}

#[derive(Debug, Default)]
struct Tables {
    by_id: HashMap<u64, Arc<TableDef>>,
    by_name: HashMap<(String, String), u64>,
}

impl Catalog {
    pub fn new(defs: impl IntoIterator<Item = TableDef>) -> Self {
        let catalog = Catalog::default();
        for def in defs {
            catalog.upsert(def);
        }
        catalog
    }

    pub fn get(&self, schema: &str, name: &str) -> Option<Arc<TableDef>> {
        let t = self.tables.read().expect("catalog lock");
        t.by_name
            .get(&(schema.to_string(), name.to_string()))
            .and_then(|id| t.by_id.get(id))
            .cloned()
    }

    pub fn table_names(&self, schema: &str) -> Vec<String> {
        let t = self.tables.read().expect("catalog lock");
        t.by_name
            .keys()
            .filter(|(s, _)| s == schema)
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// Adds or replaces (by id) a table definition.
    pub fn upsert(&self, def: TableDef) {
        let mut t = self.tables.write().expect("catalog lock");
        if let Some(old) = t.by_id.get(&def.id).cloned() {
            let name = (old.schema.clone(), old.name.clone());
            if t.by_name.get(&name) == Some(&def.id) {
                t.by_name.remove(&name);
            }
        }
        t.by_name
            .insert((def.schema.clone(), def.name.clone()), def.id);
        t.by_id.insert(def.id, Arc::new(def));
    }

    /// Removes a definition. Its name is freed only if it still names this table: a table
    /// rewritten under a new id (TRUNCATE) has its new definition applied first.
    pub fn remove(&self, id: u64) {
        let mut t = self.tables.write().expect("catalog lock");
        if let Some(old) = t.by_id.remove(&id) {
            let name = (old.schema.clone(), old.name.clone());
            if t.by_name.get(&name) == Some(&id) {
                t.by_name.remove(&name);
            }
        }
    }

    /// Applies a committed transaction's writes to catalog keys.
    pub fn apply(&self, writes: &[(Bytes, Option<Bytes>)]) -> SqlResult<()> {
        for (key, write) in writes {
            let Some(id) = table_id_of_def_key(key) else {
                continue;
            };
            match write {
                Some(value) => self.upsert(decode_table_def(value)?),
                None => self.remove(id),
            }
        }
        Ok(())
    }
}

/// The table id a table-definition key names.
fn table_id_of_def_key(key: &[u8]) -> Option<u64> {
    match key {
        [CATALOG_PREFIX, b'T', id @ ..] => id.try_into().ok().map(u64::from_be_bytes),
        _ => None,
    }
}

/// The whole catalog region of the key space.
pub fn catalog_range() -> (Bytes, Bytes) {
    let start = vec![CATALOG_PREFIX];
    let end = prefix_end(&start).expect("prefix is not all 0xff");
    (Bytes::from(start), Bytes::from(end))
}

/// The catalog as one transaction sees it: the committed catalog with the transaction's own
/// uncommitted DDL on top (its writes to catalog keys).
pub struct CatalogView<'a> {
    pub committed: &'a Catalog,
    pub txn: Option<&'a crate::txn::Transaction>,
}

impl CatalogView<'_> {
    pub fn get(&self, schema: &str, name: &str) -> SqlResult<Option<Arc<TableDef>>> {
        if let Some(txn) = self.txn {
            match txn.write(&table_name_key(DEFAULT_DATABASE, schema, name)) {
                Some(Some(id)) => {
                    let id = decode_next_table_id(Some(id))?;
                    return match txn.write(&table_def_key(id)) {
                        Some(Some(def)) => Ok(Some(Arc::new(decode_table_def(def)?))),
                        _ => Ok(self
                            .committed
                            .tables
                            .read()
                            .expect("catalog lock")
                            .by_id
                            .get(&id)
                            .cloned()),
                    };
                }
                Some(None) => return Ok(None),
                None => {}
            }
        }
        Ok(self.committed.get(schema, name))
    }

    pub fn table_names(&self, schema: &str) -> Vec<String> {
        let mut names: std::collections::BTreeSet<String> =
            self.committed.table_names(schema).into_iter().collect();
        if let Some(txn) = self.txn {
            let prefix = table_name_key(DEFAULT_DATABASE, schema, "");
            let end = prefix_end(&prefix).expect("prefix is not all 0xff");
            for (key, write) in txn.writes_in(&prefix, &end) {
                let name = String::from_utf8_lossy(&key[prefix.len()..]).to_string();
                match write {
                    Some(_) => names.insert(name),
                    None => names.remove(&name),
                };
            }
        }
        names.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_round_trip_and_keys_sort() {
        let def = TableDef {
            id: 16384,
            database: DEFAULT_DATABASE.into(),
            schema: DEFAULT_SCHEMA.into(),
            name: "t".into(),
            columns: vec![ColumnDef {
                id: 1,
                name: "a".into(),
                ty: SqlType::Int4,
                nullable: false,
            }],
            primary_key: vec![1],
            next_column_id: 2,
        };
        assert_eq!(decode_table_def(&encode_table_def(&def)).unwrap(), def);
        let (start, end) = table_defs_range();
        let key = table_def_key(16384);
        assert!(start <= key && key < end);
        assert!(
            !(start <= table_name_key("postgres", "public", "t")
                && table_name_key("postgres", "public", "t") < end)
        );
        assert_eq!(decode_next_table_id(None).unwrap(), FIRST_TABLE_ID);
    }
}
