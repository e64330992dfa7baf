//! What the system catalogs show, taken once per query from the session's catalog view.

use std::sync::{Arc, Mutex};

use crate::catalog::{ColumnDef, SequenceDef, TableDef};
use crate::indexes::{IndexDef, IndexKey, EXPRESSION_KEY};
use crate::primary::Primary;
use crate::settings::Settings;
use crate::txn_slot::TxnSlot;

pub const PG_CATALOG_NAMESPACE: i64 = 11;
pub const PUBLIC_NAMESPACE: i64 = 2200;
/// The one role: the bootstrap superuser's oid, named after the connected user.
pub const OWNER_ROLE: i64 = 10;
/// `pg_database_owner`, the role that owns `public` in PostgreSQL 15.
pub const DATABASE_OWNER_ROLE: i64 = 6171;
pub const HEAP_AM: i64 = 2;
pub const BTREE_AM: i64 = 403;
/// A table's oid is its table id (from 16384 up); its primary-key index and constraint get
/// oids in ranges of their own, so that every oid names one object.
const INDEX_OID_BASE: i64 = 1 << 30;
const CONSTRAINT_OID_BASE: i64 = 2 << 30;
/// Column defaults (`pg_attrdef`): one per (table, column).
const ATTRDEF_OID_BASE: i64 = 3 << 30;
/// CHECK constraints: one per (table, position among its checks).
const CHECK_OID_BASE: i64 = 4 << 30;
/// FOREIGN KEY constraints: one per (table, position among its foreign keys).
const FOREIGN_KEY_OID_BASE: i64 = 5 << 30;

pub fn table_oid(def: &TableDef) -> i64 {
    def.id as i64
}

pub fn pk_index_oid(def: &TableDef) -> i64 {
    INDEX_OID_BASE + def.id as i64
}

pub fn pk_constraint_oid(def: &TableDef) -> i64 {
    CONSTRAINT_OID_BASE + def.id as i64
}

/// A sequence's oid is its id (sequences and tables share the id counter).
pub fn sequence_oid(def: &SequenceDef) -> i64 {
    def.id as i64
}

pub fn attrdef_oid(def: &TableDef, column_id: u32) -> i64 {
    ATTRDEF_OID_BASE + ((def.id as i64) << 12) + i64::from(column_id)
}

pub fn check_oid(def: &TableDef, position: usize) -> i64 {
    CHECK_OID_BASE + ((def.id as i64) << 12) + position as i64
}

pub fn foreign_key_oid(def: &TableDef, position: usize) -> i64 {
    FOREIGN_KEY_OID_BASE + ((def.id as i64) << 12) + position as i64
}

/// A UNIQUE constraint's oid: its index's id is unique among relations, so it is offset like a
/// primary-key constraint's.
pub fn unique_constraint_oid(index: &IndexDef) -> i64 {
    CONSTRAINT_OID_BASE + index.id as i64
}

/// One index of a table as the catalogs show it: the primary key's, or a secondary one.
pub struct IndexInfo<'a> {
    pub table: &'a TableDef,
    pub oid: i64,
    pub name: String,
    /// The keys, in index order.
    pub keys: Vec<IndexKey<'a>>,
    /// Positions of the `INCLUDE` columns.
    pub include: Vec<usize>,
    /// A partial index's predicate.
    pub predicate: Option<&'a str>,
    pub unique: bool,
    /// `NULLS NOT DISTINCT`.
    pub nulls_not_distinct: bool,
    pub primary: bool,
    /// The constraint the index belongs to (primary key or UNIQUE), if any.
    pub constraint_oid: Option<i64>,
}

impl IndexInfo<'_> {
    /// Attribute numbers (1-based) of the indexed columns, `INCLUDE` ones last; 0 for an
    /// expression (`pg_index.indkey`).
    pub fn attnums(&self) -> Vec<i64> {
        self.keys
            .iter()
            .map(|key| match key {
                IndexKey::Column(p) => *p as i64 + 1,
                IndexKey::Expression(_) => 0,
            })
            .chain(self.include.iter().map(|p| *p as i64 + 1))
            .collect()
    }

    /// One key as `pg_get_indexdef` prints it: a quoted column name or the expression, in
    /// parentheses (`in_list`) unless it is a function call.
    fn key_text(&self, key: &IndexKey, in_list: bool) -> String {
        match key {
            IndexKey::Column(p) => quote_ident(&self.table.columns[*p].name),
            IndexKey::Expression(e) if in_list => e.listed(),
            IndexKey::Expression(e) => e.sql.clone(),
        }
    }

    /// The keys joined as `pg_get_indexdef` lists them: `a, "B", lower(c)`.
    pub fn column_list(&self) -> String {
        self.keys
            .iter()
            .map(|key| self.key_text(key, true))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The column of the index's `pg_attribute` rows for each key: the table's column, or one
    /// named and typed as PostgreSQL names an expression's.
    pub fn key_columns(&self) -> Vec<ColumnDef> {
        self.keys
            .iter()
            .map(|key| match key {
                IndexKey::Column(p) => self.table.columns[*p].clone(),
                IndexKey::Expression(e) => ColumnDef {
                    id: EXPRESSION_KEY,
                    name: e.column_name(),
                    ty: e.ty,
                    nullable: true,
                    default: None,
                    identity: None,
                    enum_type: None,
                    generated: None,
                },
            })
            .chain(self.include.iter().map(|&p| self.table.columns[p].clone()))
            .collect()
    }
}

/// A table's indexes: its primary key's first, then the others in creation order.
pub fn table_indexes(t: &TableDef) -> Vec<IndexInfo<'_>> {
    let primary = (!t.primary_key.is_empty()).then(|| IndexInfo {
        table: t,
        oid: pk_index_oid(t),
        name: t.primary_key_name(),
        keys: t
            .primary_key_indexes()
            .into_iter()
            .map(IndexKey::Column)
            .collect(),
        include: Vec::new(),
        predicate: None,
        unique: true,
        nulls_not_distinct: false,
        primary: true,
        constraint_oid: Some(pk_constraint_oid(t)),
    });
    primary
        .into_iter()
        .chain(t.indexes.iter().map(|i| IndexInfo {
            table: t,
            oid: i.id as i64,
            name: i.name.clone(),
            keys: i.keys(t),
            include: t.column_positions(&i.include),
            predicate: i.predicate.as_deref(),
            unique: i.unique,
            nulls_not_distinct: i.nulls_not_distinct,
            primary: false,
            constraint_oid: i.constraint.then(|| unique_constraint_oid(i)),
        }))
        .collect()
}

/// Oids of the system catalogs that clients name in `'pg_class'::regclass` (PostgreSQL's own).
const SYSTEM_RELATIONS: &[(&str, i64)] = &[
    ("pg_type", 1247),
    ("pg_attribute", 1249),
    ("pg_proc", 1255),
    ("pg_class", 1259),
    ("pg_database", 1262),
    ("pg_attrdef", 2604),
    ("pg_constraint", 2606),
    ("pg_description", 2609),
    ("pg_index", 2610),
    ("pg_namespace", 2615),
];

/// How catalog tables and functions reach the session's catalog and settings.
#[derive(Debug, Clone)]
pub struct CatalogHandle {
    pub primary: Arc<Primary>,
    pub slot: Arc<TxnSlot>,
    pub settings: Arc<Mutex<Settings>>,
    /// The backend process id the client was given (`pg_backend_pid()`).
    pub pid: Arc<std::sync::atomic::AtomicI32>,
    /// The sequence values this session took (`currval`, `lastval`).
    pub sequence_values: Arc<Mutex<crate::sequence::functions::SessionSequences>>,
    /// The connection's named prepared statements (`pg_prepared_statements`).
    pub prepared: Arc<crate::named_statements::NamedStatements>,
}

/// The user tables the session sees, and its settings.
pub struct Snapshot {
    /// The session's database.
    pub database: Arc<str>,
    /// Every database.
    pub databases: Vec<crate::catalog::DatabaseDef>,
    /// Every schema: (oid, name).
    pub namespaces: Vec<(i64, String)>,
    /// The schemas of the search path that exist, in order.
    pub search_path: Vec<String>,
    pub tables: Vec<Arc<TableDef>>,
    pub sequences: Vec<Arc<SequenceDef>>,
    pub views: Vec<Arc<crate::views::ViewDef>>,
    pub enum_types: Vec<Arc<crate::enums::EnumTypeDef>>,
    /// `COMMENT ON` texts by target (see `comments`).
    pub comments: std::collections::HashMap<crate::comments::CommentTarget, String>,
    pub prepared: Vec<(String, crate::named_statements::NamedStatement)>,
    pub settings: Vec<(String, String)>,
    pub user: String,
}

/// A column default as `pg_get_expr` prints it: PostgreSQL shows a string literal with the cast
/// to the column's type it gets (`'x'::text`, `'2024-01-01'::date`); other expressions as written.
fn default_text(type_name: impl FnOnce() -> String, default: &str) -> String {
    let literal = default.len() >= 2
        && default.starts_with('\'')
        && default.ends_with('\'')
        && !default[1..default.len() - 1]
            .replace("''", "")
            .contains('\'');
    if literal {
        format!("{default}::{}", type_name())
    } else {
        default.to_string()
    }
}

impl CatalogHandle {
    /// The schemas of the session's search path that exist, in order.
    pub fn search_path(&self) -> Vec<String> {
        let path = self.slot.search_path();
        self.slot
            .with_catalog(&self.primary.catalog, |view| path.existing(view))
    }

    pub fn snapshot(&self) -> Snapshot {
        let path = self.slot.search_path();
        let (namespaces, search_path, tables, sequences, views, enum_types, comments) =
            self.slot.with_catalog(&self.primary.catalog, |view| {
                let schemas = view.schemas();
                let mut tables = Vec::new();
                let mut sequences = Vec::new();
                let mut views = Vec::new();
                let mut enum_types = Vec::new();
                for schema in &schemas {
                    tables.extend(view.tables(&schema.name));
                    sequences.extend(view.sequences(&schema.name));
                    views.extend(view.views(&schema.name));
                    enum_types.extend(view.enum_types(&schema.name));
                }
                let namespaces = schemas
                    .into_iter()
                    .map(|s| (s.oid as i64, s.name))
                    .collect();
                (
                    namespaces,
                    path.existing(view),
                    tables,
                    sequences,
                    views,
                    enum_types,
                    view.comments(),
                )
            });
        let settings = self.settings.lock().expect("settings lock");
        let user = settings
            .get("session_authorization")
            .map(|(_, v)| v)
            .unwrap_or_else(|_| "postgres".into());
        Snapshot {
            database: self.slot.database(),
            databases: self.primary.catalog.databases(),
            namespaces,
            search_path,
            tables,
            sequences,
            views,
            enum_types,
            comments,
            prepared: self.prepared.list(),
            settings: settings.all(),
            user,
        }
    }
}

impl Snapshot {
    pub fn database(&self) -> &str {
        &self.database
    }

    /// A column default as `pg_get_expr` prints it (see [`default_text`]). A sequence in
    /// `nextval('s.q'::regclass)` is named bare when the search path finds it, as PostgreSQL
    /// prints a `regclass`.
    pub fn default_text(&self, column: &crate::catalog::ColumnDef, default: &str) -> String {
        let sequence = default
            .strip_prefix("nextval('")
            .and_then(|d| d.strip_suffix("'::regclass)"))
            .map(|name| name.replace("''", "'"));
        if let Some(text) = sequence {
            if let Ok((Some(schema), name)) = crate::names::relation_name_in_text(&text) {
                if self.is_visible(&schema, &name) {
                    return crate::ddl::sequence::nextval_default(
                        crate::catalog::DEFAULT_SCHEMA,
                        &name,
                    );
                }
            }
        }
        let type_name = || {
            self.type_name(i64::from(column.ty.pg_type().oid()), None)
                .unwrap_or_else(|| column.ty.display_name())
        };
        default_text(type_name, default)
    }

    /// `pg_description`'s rows: (object oid, catalog oid, sub-id, text) of each comment whose
    /// object exists, a column's comment at the column's position.
    pub fn descriptions(&self) -> Vec<(i64, i64, i64, String)> {
        let mut rows: Vec<_> = self
            .comments
            .iter()
            .filter_map(|(&(object, catalog, sub_id), text)| {
                let oid = object as i64;
                let sub = match (catalog, sub_id) {
                    (_, 0) => {
                        let exists = match catalog {
                            crate::comments::PG_CLASS => self.relation_name(oid).is_some(),
                            crate::comments::PG_NAMESPACE => {
                                self.namespaces.iter().any(|(o, _)| *o == oid)
                            }
                            _ => self.enum_types.iter().any(|e| e.id == object),
                        };
                        exists.then_some(0)?
                    }
                    (_, column) => {
                        let table = self.table_by_oid(oid)?;
                        let position = table.columns.iter().position(|c| c.id == column)?;
                        position as i64 + 1
                    }
                };
                Some((oid, i64::from(catalog), sub, text.clone()))
            })
            .collect();
        rows.sort();
        rows
    }

    /// `format_type(oid, typmod)`: a built-in type, or an enum type (named with its schema
    /// when the search path does not find it, as PostgreSQL names it).
    pub fn type_name(&self, oid: i64, typmod: Option<i32>) -> Option<String> {
        super::types::format_type(oid, typmod).or_else(|| {
            let e = self.enum_types.iter().find(|e| e.id as i64 == oid)?;
            Some(if self.search_path.contains(&e.schema) {
                quote_ident(&e.name)
            } else {
                format!("{}.{}", quote_ident(&e.schema), quote_ident(&e.name))
            })
        })
    }

    /// The oid of a schema the snapshot lists.
    pub fn namespace_oid(&self, schema: &str) -> i64 {
        self.namespace_by_name(schema).unwrap_or(PUBLIC_NAMESPACE)
    }

    pub fn namespace_by_name(&self, schema: &str) -> Option<i64> {
        self.namespaces
            .iter()
            .find(|(_, name)| name == schema)
            .map(|(oid, _)| *oid)
    }

    /// `pg_table_is_visible(oid)`: whether the relation is found by its unqualified name.
    /// System catalogs (and oids of nothing) are visible.
    pub fn relation_is_visible(&self, oid: i64) -> bool {
        let schema_and_name = self
            .table_by_oid(oid)
            .map(|t| (&t.schema, &t.name))
            .or_else(|| self.view_by_oid(oid).map(|v| (&v.schema, &v.name)))
            .or_else(|| {
                self.sequences
                    .iter()
                    .find(|q| sequence_oid(q) == oid)
                    .map(|q| (&q.schema, &q.name))
            });
        if let Some((schema, name)) = schema_and_name {
            return self.is_visible(schema, name);
        }
        match self.index_by_oid(oid) {
            Some(index) => self.is_visible(&index.table.schema, &index.name),
            None => true,
        }
    }

    /// Whether an unqualified `name` finds the relation of `schema` (`pg_table_is_visible`):
    /// the schema is on the search path and no schema before it has a relation of that name.
    pub fn is_visible(&self, schema: &str, name: &str) -> bool {
        for s in &self.search_path {
            if s == schema {
                return true;
            }
            let taken = self.tables.iter().any(|t| t.schema == *s && t.name == name)
                || self.views.iter().any(|v| v.schema == *s && v.name == name)
                || self
                    .sequences
                    .iter()
                    .any(|q| q.schema == *s && q.name == name)
                || self
                    .indexes()
                    .any(|i| i.table.schema == *s && i.name == name);
            if taken {
                return false;
            }
        }
        schema == "pg_catalog"
    }

    pub fn view_by_oid(&self, oid: i64) -> Option<&Arc<crate::views::ViewDef>> {
        self.views.iter().find(|v| v.id as i64 == oid)
    }

    /// `pg_get_viewdef`: the view's query, as PostgreSQL prints it (a leading space, a final
    /// semicolon), though not re-indented as PostgreSQL's deparser does.
    pub fn view_definition(&self, oid: i64) -> Option<String> {
        self.view_by_oid(oid).map(|v| format!(" {};", v.query))
    }

    pub fn table_by_oid(&self, oid: i64) -> Option<&Arc<TableDef>> {
        self.tables.iter().find(|t| table_oid(t) == oid)
    }

    /// Every index of every table.
    pub fn indexes(&self) -> impl Iterator<Item = IndexInfo<'_>> {
        self.tables.iter().flat_map(|t| table_indexes(t))
    }

    pub fn index_by_oid(&self, oid: i64) -> Option<IndexInfo<'_>> {
        self.indexes().find(|i| i.oid == oid)
    }

    /// The name of a relation (table or index) by oid, as `oid::regclass` prints it.
    pub fn relation_name(&self, oid: i64) -> Option<String> {
        if let Some((name, _)) = SYSTEM_RELATIONS.iter().find(|(_, o)| *o == oid) {
            return Some(name.to_string());
        }
        let (schema, name) = if let Some(t) = self.table_by_oid(oid) {
            (t.schema.clone(), t.name.clone())
        } else if let Some(v) = self.view_by_oid(oid) {
            (v.schema.clone(), v.name.clone())
        } else if let Some(q) = self.sequences.iter().find(|q| sequence_oid(q) == oid) {
            (q.schema.clone(), q.name.clone())
        } else {
            let index = self.index_by_oid(oid)?;
            (index.table.schema.clone(), index.name)
        };
        Some(if self.is_visible(&schema, &name) {
            quote_ident(&name)
        } else {
            format!("{}.{}", quote_ident(&schema), quote_ident(&name))
        })
    }

    /// The oid of a type named as SQL names it: a built-in type, or an enum type (looked up
    /// along the search path when unqualified).
    pub fn type_oid(&self, name: &str) -> Option<i64> {
        if let Some(oid) = super::types::type_oid_by_name(name) {
            return Some(oid);
        }
        let (schema, type_name) = crate::names::relation_name_in_text(name).ok()?;
        let schemas = match schema {
            Some(schema) => vec![schema],
            None => self.search_path.clone(),
        };
        schemas.iter().find_map(|schema| {
            self.enum_types
                .iter()
                .find(|e| e.schema == *schema && e.name == type_name)
                .map(|e| e.id as i64)
        })
    }

    /// The oid of a relation named as SQL names it (`t`, `s.t`, `"T"`, an index name,
    /// `pg_class`): an unqualified name is looked up along the search path.
    pub fn relation_oid(&self, name: &str) -> Option<i64> {
        let name = name.trim();
        let system = name.strip_prefix("pg_catalog.").unwrap_or(name);
        if let Some((_, oid)) = SYSTEM_RELATIONS.iter().find(|(n, _)| *n == system) {
            return Some(*oid);
        }
        let (schema, relation) = crate::names::relation_name_in_text(name).ok()?;
        let schemas = match schema {
            Some(schema) => vec![schema],
            None => self.search_path.clone(),
        };
        schemas.iter().find_map(|schema| {
            let here = |s: &String, n: &String| s == schema && *n == relation;
            self.sequences
                .iter()
                .find(|q| here(&q.schema, &q.name))
                .map(|q| sequence_oid(q))
                .or_else(|| {
                    self.tables
                        .iter()
                        .find(|t| here(&t.schema, &t.name))
                        .map(|t| table_oid(t))
                })
                .or_else(|| {
                    self.views
                        .iter()
                        .find(|v| here(&v.schema, &v.name))
                        .map(|v| v.id as i64)
                })
                .or_else(|| {
                    self.indexes()
                        .find(|i| here(&i.table.schema, &i.name))
                        .map(|i| i.oid)
                })
        })
    }

    /// `pg_get_indexdef` of an index; `pretty` leaves out the schema of a table on the search
    /// path, as PostgreSQL's pretty form does.
    /// `pg_get_indexdef(oid, column, pretty)`: with a column number above 0, that column's
    /// definition (its name) alone.
    pub fn index_definition(&self, oid: i64, column: i64, pretty: bool) -> Option<String> {
        let index = self.index_by_oid(oid)?;
        if column > 0 {
            let key = index.keys.get(usize::try_from(column - 1).ok()?)?;
            return Some(index.key_text(key, false));
        }
        let t = index.table;
        let table = if pretty {
            quote_ident(&t.name)
        } else {
            format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.name))
        };
        Some(format!(
            "CREATE {}INDEX {} ON {table} USING btree ({}){}{}{}",
            if index.unique { "UNIQUE " } else { "" },
            quote_ident(&index.name),
            index.column_list(),
            match index.include.is_empty() {
                true => String::new(),
                false => format!(
                    " INCLUDE ({})",
                    index
                        .include
                        .iter()
                        .map(|&p| quote_ident(&t.columns[p].name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            if index.nulls_not_distinct {
                " NULLS NOT DISTINCT"
            } else {
                ""
            },
            // The pretty form leaves out the parentheses, as PostgreSQL's does.
            match (index.predicate, pretty) {
                (None, _) => String::new(),
                (Some(p), true) => format!(" WHERE {p}"),
                (Some(p), false) => format!(" WHERE ({p})"),
            }
        ))
    }

    /// `pg_get_constraintdef` of a constraint. `pretty` (its second argument, which psql's `\d`
    /// passes) leaves out the parentheses PostgreSQL otherwise puts around a check's expression.
    pub fn constraint_definition(&self, oid: i64, pretty: bool) -> Option<String> {
        for t in &self.tables {
            for (i, check) in t.checks.iter().enumerate() {
                if check_oid(t, i) == oid {
                    let not_valid = if check.not_valid { " NOT VALID" } else { "" };
                    return Some(if pretty {
                        format!("CHECK ({}){not_valid}", check.expr)
                    } else {
                        format!("CHECK (({})){not_valid}", check.expr)
                    });
                }
            }
        }
        for t in &self.tables {
            for (i, fk) in t.foreign_keys.iter().enumerate() {
                if foreign_key_oid(t, i) == oid {
                    let parent = self.table_by_oid(fk.parent as i64)?;
                    let columns = fk
                        .column_positions(t)
                        .iter()
                        .map(|&p| quote_ident(&t.columns[p].name))
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Some(format!(
                        "FOREIGN KEY ({columns}) REFERENCES {}({}){}{}{}{}",
                        quote_ident(&parent.name),
                        fk.referenced_positions(parent)
                            .iter()
                            .map(|&p| quote_ident(&parent.columns[p].name))
                            .collect::<Vec<_>>()
                            .join(", "),
                        fk.on_update.clause("UPDATE"),
                        fk.on_delete.clause("DELETE"),
                        fk.deferrable_clause(),
                        if fk.not_valid { " NOT VALID" } else { "" }
                    ));
                }
            }
        }
        let index = self.indexes().find(|i| i.constraint_oid == Some(oid))?;
        let kind = if index.primary {
            "PRIMARY KEY"
        } else {
            "UNIQUE"
        };
        let nulls = if index.nulls_not_distinct {
            " NULLS NOT DISTINCT"
        } else {
            ""
        };
        Some(format!("{kind}{nulls} ({})", index.column_list()))
    }
}

/// An identifier as PostgreSQL quotes it in generated SQL: only when it must be.
pub fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}
