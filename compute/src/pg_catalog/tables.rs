//! The `pg_catalog` tables: their columns (those clients read, with PostgreSQL's names and
//! types) and their rows, computed from a [`Snapshot`] when a query reads them.
//!
//! Tables for features Strata does not have (policies, publications, inheritance, extended
//! statistics, …) exist with their columns and no rows, so that client queries joining them
//! plan and answer as they do on a PostgreSQL without those objects.

use std::sync::Arc;

use datafusion::arrow::array::{new_empty_array, ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{Result as DFResult, ScalarValue};

use super::snapshot::{
    namespace_oid, pk_constraint_oid, pk_index_oid, table_oid, Snapshot, BTREE_AM, DATABASE_OID,
    HEAP_AM, NAMESPACES, OWNER_ROLE, PG_CATALOG_NAMESPACE,
};
use super::types::BUILTIN_TYPES;

/// Column types of catalog tables. Oids are int8 in Strata (PostgreSQL's unsigned 4 bytes).
#[derive(Clone, Copy)]
pub enum Ty {
    Bool,
    I16,
    I32,
    Oid,
    F32,
    Text,
    I16s,
    Oids,
    Texts,
}

impl Ty {
    fn data_type(self) -> DataType {
        let list = |t: DataType| DataType::List(Arc::new(Field::new("item", t, true)));
        match self {
            Ty::Bool => DataType::Boolean,
            Ty::I16 => DataType::Int16,
            Ty::I32 => DataType::Int32,
            Ty::Oid => DataType::Int64,
            Ty::F32 => DataType::Float32,
            Ty::Text => DataType::Utf8,
            Ty::I16s => list(DataType::Int16),
            Ty::Oids => list(DataType::Int64),
            Ty::Texts => list(DataType::Utf8),
        }
    }
}

/// A value in a catalog row, converted to the column's type.
#[derive(Clone)]
pub enum V {
    Null,
    B(bool),
    I(i64),
    F(f32),
    S(String),
    L(Vec<V>),
}

fn s(v: impl Into<String>) -> V {
    V::S(v.into())
}

impl V {
    fn scalar(&self, ty: Ty) -> DFResult<ScalarValue> {
        Ok(match (self, ty) {
            (V::Null, _) => ScalarValue::try_from(&ty.data_type())?,
            (V::B(b), Ty::Bool) => ScalarValue::Boolean(Some(*b)),
            (V::I(i), Ty::I16) => ScalarValue::Int16(Some(*i as i16)),
            (V::I(i), Ty::I32) => ScalarValue::Int32(Some(*i as i32)),
            (V::I(i), Ty::Oid) => ScalarValue::Int64(Some(*i)),
            (V::F(f), Ty::F32) => ScalarValue::Float32(Some(*f)),
            (V::S(s), Ty::Text) => ScalarValue::Utf8(Some(s.clone())),
            (V::L(items), Ty::I16s | Ty::Oids | Ty::Texts) => {
                let element = match ty {
                    Ty::I16s => Ty::I16,
                    Ty::Oids => Ty::Oid,
                    _ => Ty::Text,
                };
                let values = items
                    .iter()
                    .map(|v| v.scalar(element))
                    .collect::<DFResult<Vec<_>>>()?;
                ScalarValue::List(ScalarValue::new_list_nullable(
                    &values,
                    &element.data_type(),
                ))
            }
            _ => return datafusion::common::internal_err!("catalog value does not fit its column"),
        })
    }
}

type Columns = &'static [(&'static str, Ty)];

use Ty::*;

const PG_NAMESPACE: Columns = &[
    ("oid", Oid),
    ("nspname", Text),
    ("nspowner", Oid),
    ("nspacl", Texts),
];
const PG_CLASS: Columns = &[
    ("oid", Oid),
    ("relname", Text),
    ("relnamespace", Oid),
    ("reltype", Oid),
    ("reloftype", Oid),
    ("relowner", Oid),
    ("relam", Oid),
    ("relfilenode", Oid),
    ("reltablespace", Oid),
    ("relpages", I32),
    ("reltuples", F32),
    ("relallvisible", I32),
    ("reltoastrelid", Oid),
    ("relhasindex", Bool),
    ("relisshared", Bool),
    ("relpersistence", Text),
    ("relkind", Text),
    ("relnatts", I16),
    ("relchecks", I16),
    ("relhasrules", Bool),
    ("relhastriggers", Bool),
    ("relhassubclass", Bool),
    ("relrowsecurity", Bool),
    ("relforcerowsecurity", Bool),
    ("relispopulated", Bool),
    ("relreplident", Text),
    ("relispartition", Bool),
    ("relrewrite", Oid),
    ("relacl", Texts),
    ("reloptions", Texts),
    ("relpartbound", Text),
];
const PG_ATTRIBUTE: Columns = &[
    ("attrelid", Oid),
    ("attname", Text),
    ("atttypid", Oid),
    ("attstattarget", I32),
    ("attlen", I16),
    ("attnum", I16),
    ("attndims", I32),
    ("attcacheoff", I32),
    ("atttypmod", I32),
    ("attbyval", Bool),
    ("attalign", Text),
    ("attstorage", Text),
    ("attcompression", Text),
    ("attnotnull", Bool),
    ("atthasdef", Bool),
    ("atthasmissing", Bool),
    ("attidentity", Text),
    ("attgenerated", Text),
    ("attisdropped", Bool),
    ("attislocal", Bool),
    ("attinhcount", I32),
    ("attcollation", Oid),
    ("attacl", Texts),
    ("attoptions", Texts),
];
const PG_TYPE: Columns = &[
    ("oid", Oid),
    ("typname", Text),
    ("typnamespace", Oid),
    ("typowner", Oid),
    ("typlen", I16),
    ("typbyval", Bool),
    ("typtype", Text),
    ("typcategory", Text),
    ("typispreferred", Bool),
    ("typisdefined", Bool),
    ("typdelim", Text),
    ("typrelid", Oid),
    ("typsubscript", Text),
    ("typelem", Oid),
    ("typarray", Oid),
    ("typinput", Text),
    ("typoutput", Text),
    ("typreceive", Text),
    ("typsend", Text),
    ("typmodin", Text),
    ("typmodout", Text),
    ("typalign", Text),
    ("typstorage", Text),
    ("typnotnull", Bool),
    ("typbasetype", Oid),
    ("typtypmod", I32),
    ("typndims", I32),
    ("typcollation", Oid),
    ("typdefault", Text),
    ("typacl", Texts),
];
const PG_INDEX: Columns = &[
    ("indexrelid", Oid),
    ("indrelid", Oid),
    ("indnatts", I16),
    ("indnkeyatts", I16),
    ("indisunique", Bool),
    ("indnullsnotdistinct", Bool),
    ("indisprimary", Bool),
    ("indisexclusion", Bool),
    ("indimmediate", Bool),
    ("indisclustered", Bool),
    ("indisvalid", Bool),
    ("indcheckxmin", Bool),
    ("indisready", Bool),
    ("indislive", Bool),
    ("indisreplident", Bool),
    ("indkey", I16s),
    ("indcollation", Oids),
    ("indclass", Oids),
    ("indoption", I16s),
    ("indexprs", Text),
    ("indpred", Text),
];
const PG_CONSTRAINT: Columns = &[
    ("oid", Oid),
    ("conname", Text),
    ("connamespace", Oid),
    ("contype", Text),
    ("condeferrable", Bool),
    ("condeferred", Bool),
    ("convalidated", Bool),
    ("conrelid", Oid),
    ("contypid", Oid),
    ("conindid", Oid),
    ("conparentid", Oid),
    ("confrelid", Oid),
    ("confupdtype", Text),
    ("confdeltype", Text),
    ("confmatchtype", Text),
    ("conislocal", Bool),
    ("coninhcount", I32),
    ("connoinherit", Bool),
    ("conkey", I16s),
    ("confkey", I16s),
    ("conbin", Text),
];
const PG_DATABASE: Columns = &[
    ("oid", Oid),
    ("datname", Text),
    ("datdba", Oid),
    ("encoding", I32),
    ("datlocprovider", Text),
    ("datistemplate", Bool),
    ("datallowconn", Bool),
    ("datconnlimit", I32),
    ("dattablespace", Oid),
    ("datcollate", Text),
    ("datctype", Text),
    ("daticulocale", Text),
    ("datcollversion", Text),
    ("datacl", Texts),
];
const PG_ROLES: Columns = &[
    ("oid", Oid),
    ("rolname", Text),
    ("rolsuper", Bool),
    ("rolinherit", Bool),
    ("rolcreaterole", Bool),
    ("rolcreatedb", Bool),
    ("rolcanlogin", Bool),
    ("rolreplication", Bool),
    ("rolconnlimit", I32),
    ("rolpassword", Text),
    ("rolvaliduntil", Text),
    ("rolbypassrls", Bool),
    ("rolconfig", Texts),
];
const PG_USER: Columns = &[
    ("usename", Text),
    ("usesysid", Oid),
    ("usecreatedb", Bool),
    ("usesuper", Bool),
    ("userepl", Bool),
    ("usebypassrls", Bool),
    ("passwd", Text),
    ("valuntil", Text),
    ("useconfig", Texts),
];
const PG_AM: Columns = &[
    ("oid", Oid),
    ("amname", Text),
    ("amhandler", Text),
    ("amtype", Text),
];
const PG_ATTRDEF: Columns = &[
    ("oid", Oid),
    ("adrelid", Oid),
    ("adnum", I16),
    ("adbin", Text),
];
const PG_COLLATION: Columns = &[
    ("oid", Oid),
    ("collname", Text),
    ("collnamespace", Oid),
    ("collowner", Oid),
    ("collprovider", Text),
    ("collisdeterministic", Bool),
    ("collencoding", I32),
    ("collcollate", Text),
    ("collctype", Text),
];
const PG_DESCRIPTION: Columns = &[
    ("objoid", Oid),
    ("classoid", Oid),
    ("objsubid", I32),
    ("description", Text),
];
const PG_SETTINGS: Columns = &[
    ("name", Text),
    ("setting", Text),
    ("unit", Text),
    ("category", Text),
    ("short_desc", Text),
    ("extra_desc", Text),
    ("context", Text),
    ("vartype", Text),
    ("source", Text),
    ("min_val", Text),
    ("max_val", Text),
    ("enumvals", Texts),
    ("boot_val", Text),
    ("reset_val", Text),
    ("sourcefile", Text),
    ("sourceline", I32),
    ("pending_restart", Bool),
];
const PG_PROC: Columns = &[
    ("oid", Oid),
    ("proname", Text),
    ("pronamespace", Oid),
    ("proowner", Oid),
    ("prolang", Oid),
    ("prokind", Text),
    ("proretset", Bool),
    ("pronargs", I16),
    ("prorettype", Oid),
    ("proargtypes", Oids),
    ("proargnames", Texts),
    ("prosrc", Text),
];
const PG_TABLESPACE: Columns = &[
    ("oid", Oid),
    ("spcname", Text),
    ("spcowner", Oid),
    ("spcacl", Texts),
    ("spcoptions", Texts),
];
const PG_INHERITS: Columns = &[
    ("inhrelid", Oid),
    ("inhparent", Oid),
    ("inhseqno", I32),
    ("inhdetachpending", Bool),
];
const PG_POLICY: Columns = &[
    ("oid", Oid),
    ("polname", Text),
    ("polrelid", Oid),
    ("polcmd", Text),
    ("polpermissive", Bool),
    ("polroles", Oids),
    ("polqual", Text),
    ("polwithcheck", Text),
];
const PG_STATISTIC_EXT: Columns = &[
    ("oid", Oid),
    ("stxrelid", Oid),
    ("stxname", Text),
    ("stxnamespace", Oid),
    ("stxowner", Oid),
    ("stxstattarget", I32),
    ("stxkeys", I16s),
    ("stxkind", Texts),
];
const PG_PUBLICATION: Columns = &[
    ("oid", Oid),
    ("pubname", Text),
    ("pubowner", Oid),
    ("puballtables", Bool),
    ("pubinsert", Bool),
    ("pubupdate", Bool),
    ("pubdelete", Bool),
    ("pubtruncate", Bool),
    ("pubviaroot", Bool),
];
const PG_PUBLICATION_REL: Columns = &[
    ("oid", Oid),
    ("prpubid", Oid),
    ("prrelid", Oid),
    ("prqual", Text),
    ("prattrs", I16s),
];
const PG_PUBLICATION_NAMESPACE: Columns = &[("oid", Oid), ("pnpubid", Oid), ("pnnspid", Oid)];
const PG_TRIGGER: Columns = &[
    ("oid", Oid),
    ("tgrelid", Oid),
    ("tgparentid", Oid),
    ("tgname", Text),
    ("tgfoid", Oid),
    ("tgtype", I16),
    ("tgenabled", Text),
    ("tgisinternal", Bool),
    ("tgconstraint", Oid),
];
const PG_EXTENSION: Columns = &[
    ("oid", Oid),
    ("extname", Text),
    ("extowner", Oid),
    ("extnamespace", Oid),
    ("extrelocatable", Bool),
    ("extversion", Text),
];
const PG_ENUM: Columns = &[
    ("oid", Oid),
    ("enumtypid", Oid),
    ("enumsortorder", F32),
    ("enumlabel", Text),
];
const PG_SEQUENCE: Columns = &[
    ("seqrelid", Oid),
    ("seqtypid", Oid),
    ("seqstart", Oid),
    ("seqincrement", Oid),
    ("seqmax", Oid),
    ("seqmin", Oid),
    ("seqcache", Oid),
    ("seqcycle", Bool),
];
const PG_DEPEND: Columns = &[
    ("classid", Oid),
    ("objid", Oid),
    ("objsubid", I32),
    ("refclassid", Oid),
    ("refobjid", Oid),
    ("refobjsubid", I32),
    ("deptype", Text),
];
const PG_TABLES: Columns = &[
    ("schemaname", Text),
    ("tablename", Text),
    ("tableowner", Text),
    ("tablespace", Text),
    ("hasindexes", Bool),
    ("hasrules", Bool),
    ("hastriggers", Bool),
    ("rowsecurity", Bool),
];
const PG_INDEXES: Columns = &[
    ("schemaname", Text),
    ("tablename", Text),
    ("indexname", Text),
    ("tablespace", Text),
    ("indexdef", Text),
];
const PG_VIEWS: Columns = &[
    ("schemaname", Text),
    ("viewname", Text),
    ("viewowner", Text),
    ("definition", Text),
];

/// Every `pg_catalog` table, by name.
pub const TABLES: &[(&str, Columns)] = &[
    ("pg_am", PG_AM),
    ("pg_attrdef", PG_ATTRDEF),
    ("pg_attribute", PG_ATTRIBUTE),
    ("pg_class", PG_CLASS),
    ("pg_collation", PG_COLLATION),
    ("pg_constraint", PG_CONSTRAINT),
    ("pg_database", PG_DATABASE),
    ("pg_depend", PG_DEPEND),
    ("pg_description", PG_DESCRIPTION),
    ("pg_enum", PG_ENUM),
    ("pg_extension", PG_EXTENSION),
    ("pg_index", PG_INDEX),
    ("pg_indexes", PG_INDEXES),
    ("pg_inherits", PG_INHERITS),
    ("pg_namespace", PG_NAMESPACE),
    ("pg_policy", PG_POLICY),
    ("pg_proc", PG_PROC),
    ("pg_publication", PG_PUBLICATION),
    ("pg_publication_namespace", PG_PUBLICATION_NAMESPACE),
    ("pg_publication_rel", PG_PUBLICATION_REL),
    ("pg_roles", PG_ROLES),
    ("pg_sequence", PG_SEQUENCE),
    ("pg_settings", PG_SETTINGS),
    ("pg_statistic_ext", PG_STATISTIC_EXT),
    ("pg_tables", PG_TABLES),
    ("pg_tablespace", PG_TABLESPACE),
    ("pg_trigger", PG_TRIGGER),
    ("pg_type", PG_TYPE),
    ("pg_user", PG_USER),
    ("pg_views", PG_VIEWS),
];

pub fn columns_of(name: &str) -> Option<Columns> {
    TABLES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

pub fn schema_of(columns: Columns) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, ty)| Field::new(*name, ty.data_type(), true))
            .collect::<Vec<_>>(),
    ))
}

/// A catalog table's contents as one batch.
pub fn batch(columns: Columns, rows: Vec<Vec<V>>) -> DFResult<RecordBatch> {
    let schema = schema_of(columns);
    let arrays = columns
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| -> DFResult<ArrayRef> {
            if rows.is_empty() {
                return Ok(new_empty_array(&ty.data_type()));
            }
            let values = rows
                .iter()
                .map(|row| row.get(i).unwrap_or(&V::Null).scalar(*ty))
                .collect::<DFResult<Vec<_>>>()?;
            ScalarValue::iter_to_array(values)
        })
        .collect::<DFResult<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema, arrays)?)
}

/// The rows of `pg_catalog.<name>` (columns in the order of its definition; trailing columns
/// left out of a row are NULL).
pub fn rows(name: &str, snap: &Snapshot) -> Vec<Vec<V>> {
    let owner = V::I(OWNER_ROLE);
    match name {
        "pg_namespace" => NAMESPACES
            .iter()
            .map(|(oid, name)| vec![V::I(*oid), s(*name), owner.clone()])
            .collect(),
        "pg_class" => pg_class(snap),
        "pg_attribute" => pg_attribute(snap),
        "pg_type" => BUILTIN_TYPES
            .iter()
            .map(|t| {
                let byval = matches!(t.len, 1 | 2 | 4 | 8);
                vec![
                    V::I(t.oid),
                    s(t.name),
                    V::I(PG_CATALOG_NAMESPACE),
                    owner.clone(),
                    V::I(t.len.into()),
                    V::B(byval),
                    s("b"),
                    s(t.category),
                    V::B(false),
                    V::B(true),
                    s(","),
                    V::I(0),
                    s(if t.category == "A" {
                        "array_subscript_handler"
                    } else {
                        "-"
                    }),
                    V::I(t.element),
                    V::I(t.array),
                    s(format!("{}in", t.name)),
                    s(format!("{}out", t.name)),
                    s(format!("{}recv", t.name)),
                    s(format!("{}send", t.name)),
                    s("-"),
                    s("-"),
                    s(if t.len == 8 {
                        "d"
                    } else if t.len == 2 {
                        "s"
                    } else if t.len == 1 {
                        "c"
                    } else {
                        "i"
                    }),
                    s(if t.len > 0 { "p" } else { "x" }),
                    V::B(false),
                    V::I(0),
                    V::I(-1),
                    V::I(0),
                    V::I(if matches!(t.category, "S") { 100 } else { 0 }),
                ]
            })
            .collect(),
        "pg_index" => snap
            .tables
            .iter()
            .filter(|t| !t.primary_key.is_empty())
            .map(|t| {
                let keys: Vec<V> = t
                    .primary_key_indexes()
                    .iter()
                    .map(|i| V::I(*i as i64 + 1))
                    .collect();
                let n = keys.len() as i64;
                vec![
                    V::I(pk_index_oid(t)),
                    V::I(table_oid(t)),
                    V::I(n),
                    V::I(n),
                    V::B(true),
                    V::B(false),
                    V::B(true),
                    V::B(false),
                    V::B(true),
                    V::B(false),
                    V::B(true),
                    V::B(false),
                    V::B(true),
                    V::B(true),
                    V::B(false),
                    V::L(keys),
                ]
            })
            .collect(),
        "pg_indexes" => snap
            .tables
            .iter()
            .filter(|t| !t.primary_key.is_empty())
            .map(|t| {
                vec![
                    s(&t.schema),
                    s(&t.name),
                    s(t.primary_key_name()),
                    V::Null,
                    snap.index_definition(pk_index_oid(t), false)
                        .map_or(V::Null, V::S),
                ]
            })
            .collect(),
        "pg_constraint" => snap
            .tables
            .iter()
            .filter(|t| !t.primary_key.is_empty())
            .map(|t| {
                let keys = t
                    .primary_key_indexes()
                    .iter()
                    .map(|i| V::I(*i as i64 + 1))
                    .collect();
                vec![
                    V::I(pk_constraint_oid(t)),
                    s(t.primary_key_name()),
                    V::I(namespace_oid(&t.schema)),
                    s("p"),
                    V::B(false),
                    V::B(false),
                    V::B(true),
                    V::I(table_oid(t)),
                    V::I(0),
                    V::I(pk_index_oid(t)),
                    V::I(0),
                    V::I(0),
                    s(" "),
                    s(" "),
                    s(" "),
                    V::B(true),
                    V::I(0),
                    V::B(true),
                    V::L(keys),
                ]
            })
            .collect(),
        "pg_database" => vec![vec![
            V::I(DATABASE_OID),
            s(snap.database()),
            owner.clone(),
            V::I(6),
            s("c"),
            V::B(false),
            V::B(true),
            V::I(-1),
            V::I(1663),
            s("C"),
            s("C"),
        ]],
        "pg_roles" => vec![vec![
            owner.clone(),
            s(&snap.user),
            V::B(true),
            V::B(true),
            V::B(true),
            V::B(true),
            V::B(true),
            V::B(true),
            V::I(-1),
            s("********"),
            V::Null,
            V::B(true),
        ]],
        "pg_user" => vec![vec![
            s(&snap.user),
            owner.clone(),
            V::B(true),
            V::B(true),
            V::B(true),
            V::B(true),
            s("********"),
        ]],
        "pg_am" => vec![
            vec![V::I(HEAP_AM), s("heap"), s("heap_tableam_handler"), s("t")],
            vec![V::I(BTREE_AM), s("btree"), s("bthandler"), s("i")],
        ],
        "pg_collation" => vec![
            vec![
                V::I(100),
                s("default"),
                V::I(PG_CATALOG_NAMESPACE),
                owner.clone(),
                s("d"),
                V::B(true),
                V::I(-1),
            ],
            vec![
                V::I(950),
                s("C"),
                V::I(PG_CATALOG_NAMESPACE),
                owner.clone(),
                s("c"),
                V::B(true),
                V::I(-1),
                s("C"),
                s("C"),
            ],
            vec![
                V::I(951),
                s("POSIX"),
                V::I(PG_CATALOG_NAMESPACE),
                owner.clone(),
                s("c"),
                V::B(true),
                V::I(-1),
                s("POSIX"),
                s("POSIX"),
            ],
        ],
        "pg_settings" => snap
            .settings
            .iter()
            .map(|(name, value)| {
                vec![
                    s(name),
                    s(value),
                    V::Null,
                    s("Strata"),
                    V::Null,
                    V::Null,
                    s("user"),
                    s("string"),
                    s("default"),
                    V::Null,
                    V::Null,
                    V::Null,
                    s(value),
                    s(value),
                    V::Null,
                    V::Null,
                    V::B(false),
                ]
            })
            .collect(),
        "pg_tablespace" => vec![
            vec![V::I(1663), s("pg_default"), owner.clone()],
            vec![V::I(1664), s("pg_global"), owner.clone()],
        ],
        "pg_tables" => snap
            .tables
            .iter()
            .map(|t| {
                vec![
                    s(&t.schema),
                    s(&t.name),
                    s(&snap.user),
                    V::Null,
                    V::B(!t.primary_key.is_empty()),
                    V::B(false),
                    V::B(false),
                    V::B(false),
                ]
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn pg_class(snap: &Snapshot) -> Vec<Vec<V>> {
    let mut rows = Vec::new();
    for t in &snap.tables {
        let has_pk = !t.primary_key.is_empty();
        let oid = table_oid(t);
        rows.push(vec![
            V::I(oid),
            s(&t.name),
            V::I(namespace_oid(&t.schema)),
            V::I(0),
            V::I(0),
            V::I(OWNER_ROLE),
            V::I(HEAP_AM),
            V::I(oid),
            V::I(0),
            V::I(0),
            V::F(-1.0),
            V::I(0),
            V::I(0),
            V::B(has_pk),
            V::B(false),
            s("p"),
            s("r"),
            V::I(t.columns.len() as i64),
            V::I(0),
            V::B(false),
            V::B(false),
            V::B(false),
            V::B(false),
            V::B(false),
            V::B(true),
            s("d"),
            V::B(false),
            V::I(0),
        ]);
        if has_pk {
            let index = pk_index_oid(t);
            rows.push(vec![
                V::I(index),
                s(t.primary_key_name()),
                V::I(namespace_oid(&t.schema)),
                V::I(0),
                V::I(0),
                V::I(OWNER_ROLE),
                V::I(BTREE_AM),
                V::I(index),
                V::I(0),
                V::I(0),
                V::F(0.0),
                V::I(0),
                V::I(0),
                V::B(false),
                V::B(false),
                s("p"),
                s("i"),
                V::I(t.primary_key.len() as i64),
                V::I(0),
                V::B(false),
                V::B(false),
                V::B(false),
                V::B(false),
                V::B(false),
                V::B(true),
                s("n"),
                V::B(false),
                V::I(0),
            ]);
        }
    }
    rows
}

fn pg_attribute(snap: &Snapshot) -> Vec<Vec<V>> {
    let mut rows = Vec::new();
    let attribute = |relid: i64, num: usize, col: &crate::catalog::ColumnDef| {
        let ty = col.ty.pg_type();
        let len = super::types::builtin_type(i64::from(ty.oid())).map_or(-1, |t| t.len);
        vec![
            V::I(relid),
            s(&col.name),
            V::I(i64::from(ty.oid())),
            V::I(-1),
            V::I(len.into()),
            V::I(num as i64),
            V::I(0),
            V::I(-1),
            V::I(col.ty.typmod().into()),
            V::B(matches!(len, 1 | 2 | 4 | 8)),
            s(match len {
                8 => "d",
                2 => "s",
                1 => "c",
                _ => "i",
            }),
            s(if len > 0 { "p" } else { "x" }),
            s(""),
            V::B(!col.nullable),
            V::B(false),
            V::B(false),
            s(""),
            s(""),
            V::B(false),
            V::B(true),
            V::I(0),
            V::I(if len > 0 || matches!(ty.oid(), 17) {
                0
            } else {
                100
            }),
        ]
    };
    for t in &snap.tables {
        for (i, col) in t.columns.iter().enumerate() {
            rows.push(attribute(table_oid(t), i + 1, col));
        }
        if !t.primary_key.is_empty() {
            for (n, i) in t.primary_key_indexes().into_iter().enumerate() {
                rows.push(attribute(pk_index_oid(t), n + 1, &t.columns[i]));
            }
        }
    }
    rows
}
