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
    attrdef_oid, check_oid, foreign_key_oid, pk_index_oid, sequence_oid, table_indexes, table_oid,
    Snapshot, BTREE_AM, DATABASE_OWNER_ROLE, HEAP_AM, OWNER_ROLE, PG_CATALOG_NAMESPACE,
};
use super::types::{builtin_type, BuiltinType, BUILTIN_TYPES};
use crate::catalog::{ColumnDef, SequenceDef, TableDef};

/// Column types of catalog tables. Oids are int8 in Strata (PostgreSQL's unsigned 4 bytes),
/// described to clients as oids.
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
    Timestamptz,
}

impl Ty {
    /// What a row that does not name a column of this type holds there.
    fn default_value(self) -> V {
        match self {
            Ty::Bool => V::B(false),
            Ty::I16 | Ty::I32 | Ty::Oid => V::I(0),
            Ty::F32 => V::F(0.0),
            Ty::Text | Ty::I16s | Ty::Oids | Ty::Texts | Ty::Timestamptz => V::Null,
        }
    }

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
            Ty::Timestamptz => DataType::Timestamp(
                datafusion::arrow::datatypes::TimeUnit::Microsecond,
                Some(Arc::from(crate::types::UTC)),
            ),
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
            (V::I(i), Ty::Timestamptz) => {
                ScalarValue::TimestampMicrosecond(Some(*i), Some(Arc::from(crate::types::UTC)))
            }
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

#[rustfmt::skip]
const PG_NAMESPACE: Columns = &[
    ("oid", Oid), ("nspname", Text), ("nspowner", Oid), ("nspacl", Texts),
];
#[rustfmt::skip]
const PG_CLASS: Columns = &[
    ("oid", Oid), ("relname", Text), ("relnamespace", Oid), ("reltype", Oid), ("reloftype", Oid),
    ("relowner", Oid), ("relam", Oid), ("relfilenode", Oid), ("reltablespace", Oid),
    ("relpages", I32), ("reltuples", F32), ("relallvisible", I32), ("reltoastrelid", Oid),
    ("relhasindex", Bool), ("relisshared", Bool), ("relpersistence", Text), ("relkind", Text),
    ("relnatts", I16), ("relchecks", I16), ("relhasrules", Bool), ("relhastriggers", Bool),
    ("relhassubclass", Bool), ("relrowsecurity", Bool), ("relforcerowsecurity", Bool),
    ("relispopulated", Bool), ("relreplident", Text), ("relispartition", Bool),
    ("relrewrite", Oid), ("relacl", Texts), ("reloptions", Texts), ("relpartbound", Text),
];
#[rustfmt::skip]
const PG_ATTRIBUTE: Columns = &[
    ("attrelid", Oid), ("attname", Text), ("atttypid", Oid), ("attstattarget", I32),
    ("attlen", I16), ("attnum", I16), ("attndims", I32), ("attcacheoff", I32), ("atttypmod", I32),
    ("attbyval", Bool), ("attalign", Text), ("attstorage", Text), ("attcompression", Text),
    ("attnotnull", Bool), ("atthasdef", Bool), ("atthasmissing", Bool), ("attidentity", Text),
    ("attgenerated", Text), ("attisdropped", Bool), ("attislocal", Bool), ("attinhcount", I32),
    ("attcollation", Oid), ("attacl", Texts), ("attoptions", Texts),
];
#[rustfmt::skip]
const PG_TYPE: Columns = &[
    ("oid", Oid), ("typname", Text), ("typnamespace", Oid), ("typowner", Oid), ("typlen", I16),
    ("typbyval", Bool), ("typtype", Text), ("typcategory", Text), ("typispreferred", Bool),
    ("typisdefined", Bool), ("typdelim", Text), ("typrelid", Oid), ("typsubscript", Text),
    ("typelem", Oid), ("typarray", Oid), ("typinput", Text), ("typoutput", Text),
    ("typreceive", Text), ("typsend", Text), ("typmodin", Text), ("typmodout", Text),
    ("typalign", Text), ("typstorage", Text), ("typnotnull", Bool), ("typbasetype", Oid),
    ("typtypmod", I32), ("typndims", I32), ("typcollation", Oid), ("typdefault", Text),
    ("typacl", Texts),
];
#[rustfmt::skip]
const PG_INDEX: Columns = &[
    ("indexrelid", Oid), ("indrelid", Oid), ("indnatts", I16), ("indnkeyatts", I16),
    ("indisunique", Bool), ("indnullsnotdistinct", Bool), ("indisprimary", Bool),
    ("indisexclusion", Bool), ("indimmediate", Bool), ("indisclustered", Bool),
    ("indisvalid", Bool), ("indcheckxmin", Bool), ("indisready", Bool), ("indislive", Bool),
    ("indisreplident", Bool), ("indkey", I16s), ("indcollation", Oids), ("indclass", Oids),
    ("indoption", I16s), ("indexprs", Text), ("indpred", Text),
];
#[rustfmt::skip]
const PG_CONSTRAINT: Columns = &[
    ("oid", Oid), ("conname", Text), ("connamespace", Oid), ("contype", Text),
    ("condeferrable", Bool), ("condeferred", Bool), ("convalidated", Bool), ("conrelid", Oid),
    ("contypid", Oid), ("conindid", Oid), ("conparentid", Oid), ("confrelid", Oid),
    ("confupdtype", Text), ("confdeltype", Text), ("confmatchtype", Text), ("conislocal", Bool),
    ("coninhcount", I32), ("connoinherit", Bool), ("conkey", I16s), ("confkey", I16s),
    ("conbin", Text),
];
#[rustfmt::skip]
const PG_DATABASE: Columns = &[
    ("oid", Oid), ("datname", Text), ("datdba", Oid), ("encoding", I32), ("datlocprovider", Text),
    ("datistemplate", Bool), ("datallowconn", Bool), ("datconnlimit", I32), ("dattablespace", Oid),
    ("datcollate", Text), ("datctype", Text), ("daticulocale", Text), ("datcollversion", Text),
    ("datacl", Texts),
];
#[rustfmt::skip]
const PG_ROLES: Columns = &[
    ("oid", Oid), ("rolname", Text), ("rolsuper", Bool), ("rolinherit", Bool),
    ("rolcreaterole", Bool), ("rolcreatedb", Bool), ("rolcanlogin", Bool),
    ("rolreplication", Bool), ("rolconnlimit", I32), ("rolpassword", Text),
    ("rolvaliduntil", Text), ("rolbypassrls", Bool), ("rolconfig", Texts),
];
#[rustfmt::skip]
const PG_USER: Columns = &[
    ("usename", Text), ("usesysid", Oid), ("usecreatedb", Bool), ("usesuper", Bool),
    ("userepl", Bool), ("usebypassrls", Bool), ("passwd", Text), ("valuntil", Text),
    ("useconfig", Texts),
];
#[rustfmt::skip]
const PG_AM: Columns = &[
    ("oid", Oid), ("amname", Text), ("amhandler", Text), ("amtype", Text),
];
#[rustfmt::skip]
const PG_ATTRDEF: Columns = &[
    ("oid", Oid), ("adrelid", Oid), ("adnum", I16), ("adbin", Text),
];
#[rustfmt::skip]
const PG_COLLATION: Columns = &[
    ("oid", Oid), ("collname", Text), ("collnamespace", Oid), ("collowner", Oid),
    ("collprovider", Text), ("collisdeterministic", Bool), ("collencoding", I32),
    ("collcollate", Text), ("collctype", Text),
];
#[rustfmt::skip]
const PG_DESCRIPTION: Columns = &[
    ("objoid", Oid), ("classoid", Oid), ("objsubid", I32), ("description", Text),
];
#[rustfmt::skip]
const PG_SETTINGS: Columns = &[
    ("name", Text), ("setting", Text), ("unit", Text), ("category", Text), ("short_desc", Text),
    ("extra_desc", Text), ("context", Text), ("vartype", Text), ("source", Text),
    ("min_val", Text), ("max_val", Text), ("enumvals", Texts), ("boot_val", Text),
    ("reset_val", Text), ("sourcefile", Text), ("sourceline", I32), ("pending_restart", Bool),
];
#[rustfmt::skip]
const PG_PROC: Columns = &[
    ("oid", Oid), ("proname", Text), ("pronamespace", Oid), ("proowner", Oid), ("prolang", Oid),
    ("prokind", Text), ("proretset", Bool), ("pronargs", I16), ("prorettype", Oid),
    ("proargtypes", Oids), ("proargnames", Texts), ("prosrc", Text),
];
#[rustfmt::skip]
const PG_TABLESPACE: Columns = &[
    ("oid", Oid), ("spcname", Text), ("spcowner", Oid), ("spcacl", Texts), ("spcoptions", Texts),
];
#[rustfmt::skip]
const PG_INHERITS: Columns = &[
    ("inhrelid", Oid), ("inhparent", Oid), ("inhseqno", I32), ("inhdetachpending", Bool),
];
#[rustfmt::skip]
const PG_POLICY: Columns = &[
    ("oid", Oid), ("polname", Text), ("polrelid", Oid), ("polcmd", Text), ("polpermissive", Bool),
    ("polroles", Oids), ("polqual", Text), ("polwithcheck", Text),
];
#[rustfmt::skip]
const PG_RANGE: Columns = &[
    ("rngtypid", Oid), ("rngsubtype", Oid), ("rngmultitypid", Oid), ("rngcollation", Oid),
    ("rngsubopc", Oid), ("rngcanonical", Text), ("rngsubdiff", Text),
];
#[rustfmt::skip]
const PG_STATISTIC_EXT: Columns = &[
    ("oid", Oid), ("stxrelid", Oid), ("stxname", Text), ("stxnamespace", Oid), ("stxowner", Oid),
    ("stxstattarget", I32), ("stxkeys", I16s), ("stxkind", Texts),
];
#[rustfmt::skip]
const PG_PUBLICATION: Columns = &[
    ("oid", Oid), ("pubname", Text), ("pubowner", Oid), ("puballtables", Bool),
    ("pubinsert", Bool), ("pubupdate", Bool), ("pubdelete", Bool), ("pubtruncate", Bool),
    ("pubviaroot", Bool),
];
#[rustfmt::skip]
const PG_PUBLICATION_REL: Columns = &[
    ("oid", Oid), ("prpubid", Oid), ("prrelid", Oid), ("prqual", Text), ("prattrs", I16s),
];
#[rustfmt::skip]
const PG_PUBLICATION_NAMESPACE: Columns = &[
    ("oid", Oid), ("pnpubid", Oid), ("pnnspid", Oid),
];
#[rustfmt::skip]
const PG_TRIGGER: Columns = &[
    ("oid", Oid), ("tgrelid", Oid), ("tgparentid", Oid), ("tgname", Text), ("tgfoid", Oid),
    ("tgtype", I16), ("tgenabled", Text), ("tgisinternal", Bool), ("tgconstraint", Oid),
];
#[rustfmt::skip]
const PG_EXTENSION: Columns = &[
    ("oid", Oid), ("extname", Text), ("extowner", Oid), ("extnamespace", Oid),
    ("extrelocatable", Bool), ("extversion", Text),
];
#[rustfmt::skip]
const PG_ENUM: Columns = &[
    ("oid", Oid), ("enumtypid", Oid), ("enumsortorder", F32), ("enumlabel", Text),
];
#[rustfmt::skip]
const PG_SEQUENCE: Columns = &[
    ("seqrelid", Oid), ("seqtypid", Oid), ("seqstart", Oid), ("seqincrement", Oid),
    ("seqmax", Oid), ("seqmin", Oid), ("seqcache", Oid), ("seqcycle", Bool),
];
#[rustfmt::skip]
const PG_DEPEND: Columns = &[
    ("classid", Oid), ("objid", Oid), ("objsubid", I32), ("refclassid", Oid), ("refobjid", Oid),
    ("refobjsubid", I32), ("deptype", Text),
];
#[rustfmt::skip]
const PG_TABLES: Columns = &[
    ("schemaname", Text), ("tablename", Text), ("tableowner", Text), ("tablespace", Text),
    ("hasindexes", Bool), ("hasrules", Bool), ("hastriggers", Bool), ("rowsecurity", Bool),
];
#[rustfmt::skip]
const PG_INDEXES: Columns = &[
    ("schemaname", Text), ("tablename", Text), ("indexname", Text), ("tablespace", Text),
    ("indexdef", Text),
];
#[rustfmt::skip]
const PG_PREPARED_STATEMENTS: Columns = &[
    ("name", Text), ("statement", Text), ("prepare_time", Timestamptz),
    ("parameter_types", Texts), ("from_sql", Bool),
];
#[rustfmt::skip]
const PG_VIEWS: Columns = &[
    ("schemaname", Text), ("viewname", Text), ("viewowner", Text), ("definition", Text),
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
    ("pg_range", PG_RANGE),
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
    ("pg_prepared_statements", PG_PREPARED_STATEMENTS),
];

pub fn columns_of(name: &str) -> Option<Columns> {
    TABLES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

/// Whether some catalog table has an array column of this name (`indkey`, `polroles`, …).
pub fn is_array_column(name: &str) -> bool {
    TABLES.iter().any(|(_, columns)| {
        columns
            .iter()
            .any(|(n, ty)| *n == name && matches!(ty, Ty::I16s | Ty::Oids | Ty::Texts))
    })
}

pub fn schema_of(columns: Columns) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, ty)| match ty {
                // Described as PostgreSQL's oid (int8 to Arrow): clients decode it as an oid,
                // and `array_agg` of it is an oid[] (asyncpg can read no other array type
                // before it has introspected one).
                Ty::Oid => {
                    crate::types::pg_typed_field(name, ty.data_type(), &pgwire::api::Type::OID)
                }
                _ => Field::new(*name, ty.data_type(), true),
            })
            .collect::<Vec<_>>(),
    ))
}

/// One catalog row, by column name. A column the row does not name holds its type's default:
/// false, 0, or NULL for text and arrays (what PostgreSQL has there for objects without the
/// feature the column describes).
pub type Row = Vec<(&'static str, V)>;

/// A catalog table's contents as one batch; a row naming a column the table lacks is a bug
/// caught here rather than a silently missing value.
pub fn batch(columns: Columns, rows: Vec<Row>) -> DFResult<RecordBatch> {
    for row in &rows {
        if let Some((name, _)) = row
            .iter()
            .find(|(n, _)| !columns.iter().any(|(c, _)| c == n))
        {
            return datafusion::common::internal_err!("catalog row names no column {name}");
        }
    }
    let arrays = columns
        .iter()
        .map(|(name, ty)| -> DFResult<ArrayRef> {
            if rows.is_empty() {
                return Ok(new_empty_array(&ty.data_type()));
            }
            let values = rows
                .iter()
                .map(|row| match row.iter().find(|(n, _)| n == name) {
                    Some((_, v)) => v.scalar(*ty),
                    None => ty.default_value().scalar(*ty),
                })
                .collect::<DFResult<Vec<_>>>()?;
            ScalarValue::iter_to_array(values)
        })
        .collect::<DFResult<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema_of(columns), arrays)?)
}

/// The rows of `pg_catalog.<name>`.
#[rustfmt::skip]
pub fn rows(name: &str, snap: &Snapshot) -> Vec<Row> {
    let owner = V::I(OWNER_ROLE);
    match name {
        "pg_namespace" => snap
            .namespaces
            .iter()
            .map(|(oid, name)| {
                let owner = if name == "public" { V::I(DATABASE_OWNER_ROLE) } else { owner.clone() };
                vec![("oid", V::I(*oid)), ("nspname", s(name)), ("nspowner", owner)]
            })
            .collect(),
        "pg_class" => snap
            .tables
            .iter()
            .flat_map(|t| {
                let referenced = snap
                    .tables
                    .iter()
                    .any(|o| o.foreign_keys.iter().any(|fk| fk.parent == t.id));
                pg_class(snap, t, referenced)
            })
            .chain(snap.sequences.iter().map(|q| sequence_class(snap, q)))
            .chain(snap.views.iter().map(|v| view_class(snap, v)))
            .collect(),
        "pg_attrdef" => snap
            .tables
            .iter()
            .flat_map(|t| {
                // A generated column's expression is its default here, as in PostgreSQL.
                t.columns.iter().enumerate().filter(|(_, c)| c.identity.is_none()).filter_map(|(i, c)| {
                    let text = match (&c.generated, &c.default) {
                        (Some(g), _) => g.clone(),
                        (None, Some(d)) => snap.default_text(c, d),
                        (None, None) => return None,
                    };
                    Some(vec![
                        ("oid", V::I(attrdef_oid(t, c.id))), ("adrelid", V::I(table_oid(t))),
                        ("adnum", V::I(i as i64 + 1)), ("adbin", s(text)),
                    ])
                })
            })
            .collect(),
        "pg_sequence" => snap
            .sequences
            .iter()
            .map(|q| vec![
                ("seqrelid", V::I(sequence_oid(q))), ("seqtypid", V::I(q.ty.pg_type().oid().into())),
                ("seqstart", V::I(q.start)), ("seqincrement", V::I(q.increment)),
                ("seqmax", V::I(q.max)), ("seqmin", V::I(q.min)), ("seqcache", V::I(q.cache)),
                ("seqcycle", V::B(q.cycle)),
            ])
            .collect(),
        // Sequences owned by a column: `a`uto for serial, `i`nternal for identity.
        "pg_depend" => snap
            .sequences
            .iter()
            .filter_map(|q| {
                let (table, column) = q.owned_by?;
                let t = snap.table_by_oid(table as i64)?;
                let (num, col) = t.columns.iter().enumerate().find(|(_, c)| c.id == column)?;
                Some(vec![
                    ("classid", V::I(1259)), ("objid", V::I(sequence_oid(q))), ("objsubid", V::I(0)),
                    ("refclassid", V::I(1259)), ("refobjid", V::I(table as i64)),
                    ("refobjsubid", V::I(num as i64 + 1)),
                    ("deptype", s(if col.identity.is_some() { "i" } else { "a" })),
                ])
            })
            .collect(),
        "pg_attribute" => snap
            .tables
            .iter()
            .flat_map(|t| pg_attribute(t))
            .chain(snap.views.iter().flat_map(|v| view_attributes(v)))
            .collect(),
        "pg_prepared_statements" => snap
            .prepared
            .iter()
            .map(|(name, p)| vec![
                ("name", s(name)), ("statement", s(&p.statement)),
                ("prepare_time", V::I(p.prepare_time)),
                ("parameter_types", V::L(p.parameter_types.iter().map(s).collect())),
            ])
            .collect(),
        "pg_views" => snap
            .views
            .iter()
            .map(|v| vec![
                ("schemaname", s(&v.schema)), ("viewname", s(&v.name)),
                ("viewowner", s(&snap.user)),
                ("definition", snap.view_definition(v.id as i64).map_or(V::Null, s)),
            ])
            .collect(),
        "pg_description" => snap
            .descriptions()
            .into_iter()
            .map(|(object, catalog, sub, text)| vec![
                ("objoid", V::I(object)), ("classoid", V::I(catalog)), ("objsubid", V::I(sub)),
                ("description", s(text)),
            ])
            .collect(),
        "pg_type" => BUILTIN_TYPES
            .iter()
            .map(pg_type)
            .chain(snap.enum_types.iter().map(|e| vec![
                ("oid", V::I(e.id as i64)), ("typname", s(&e.name)),
                ("typnamespace", V::I(snap.namespace_oid(&e.schema))),
                ("typowner", V::I(OWNER_ROLE)), ("typlen", V::I(4)), ("typbyval", V::B(true)),
                ("typtype", s("e")), ("typcategory", s("E")), ("typisdefined", V::B(true)),
                ("typdelim", s(",")), ("typsubscript", s("-")),
                ("typinput", s("enum_in")), ("typoutput", s("enum_out")),
                ("typreceive", s("enum_recv")), ("typsend", s("enum_send")),
                ("typmodin", s("-")), ("typmodout", s("-")), ("typalign", s("i")),
                ("typstorage", s("p")), ("typtypmod", V::I(-1)),
            ]))
            .collect(),
        // Each label's oid: the type's oid in the high bits, the label's place in the low.
        "pg_enum" => snap
            .enum_types
            .iter()
            .flat_map(|e| e.labels.iter().enumerate().map(move |(i, label)| vec![
                ("oid", V::I(((e.id as i64) << 16) + i as i64)), ("enumtypid", V::I(e.id as i64)),
                ("enumsortorder", V::F(i as f32 + 1.0)), ("enumlabel", s(label)),
            ]))
            .collect(),
        "pg_index" => snap
            .indexes()
            .map(|i| {
                let keys = V::I(i.keys.len() as i64);
                let all = V::I((i.keys.len() + i.include.len()) as i64);
                vec![
                    ("indexrelid", V::I(i.oid)), ("indrelid", V::I(table_oid(i.table))),
                    ("indnatts", all), ("indnkeyatts", keys), ("indisunique", V::B(i.unique)),
                    ("indisprimary", V::B(i.primary)), ("indimmediate", V::B(true)),
                    ("indisvalid", V::B(true)), ("indisready", V::B(true)),
                    ("indislive", V::B(true)),
                    ("indkey", V::L(i.attnums().into_iter().map(V::I).collect())),
                    ("indpred", i.predicate.map_or(V::Null, s)),
                    ("indnullsnotdistinct", V::B(i.nulls_not_distinct)),
                ]
            })
            .collect(),
        "pg_indexes" => snap
            .indexes()
            .map(|i| {
                let definition = snap.index_definition(i.oid, 0, false);
                vec![
                    ("schemaname", s(&i.table.schema)), ("tablename", s(&i.table.name)),
                    ("indexname", s(&i.name)),
                    ("indexdef", definition.map_or(V::Null, V::S)),
                ]
            })
            .collect(),
        "pg_constraint" => snap
            .tables
            .iter()
            .flat_map(|t| {
                t.checks.iter().enumerate().map(move |(i, c)| vec![
                    ("oid", V::I(check_oid(t, i))), ("conname", s(&c.name)),
                    ("connamespace", V::I(snap.namespace_oid(&t.schema))), ("contype", s("c")),
                    ("convalidated", V::B(!c.not_valid)), ("conrelid", V::I(table_oid(t))),
                    ("confupdtype", s(" ")), ("confdeltype", s(" ")), ("confmatchtype", s(" ")),
                    ("conislocal", V::B(true)), ("conbin", s(&c.expr)),
                ])
            })
            .chain(snap.tables.iter().flat_map(|t| {
                t.foreign_keys.iter().enumerate().filter_map(move |(i, fk)| {
                    let parent = snap.table_by_oid(fk.parent as i64)?;
                    let attnums = |positions: Vec<usize>| {
                        V::L(positions.iter().map(|p| V::I(*p as i64 + 1)).collect())
                    };
                    Some(vec![
                        ("oid", V::I(foreign_key_oid(t, i))), ("conname", s(&fk.name)),
                        ("connamespace", V::I(snap.namespace_oid(&t.schema))), ("contype", s("f")),
                        ("condeferrable", V::B(fk.deferrable)), ("condeferred", V::B(fk.initially_deferred)),
                        ("convalidated", V::B(!fk.not_valid)), ("conrelid", V::I(table_oid(t))),
                        ("conindid", V::I(match fk.referenced_index(parent).ok().flatten() {
                            Some(index) => index.id as i64,
                            None => pk_index_oid(parent),
                        })),
                        ("confrelid", V::I(table_oid(parent))),
                        ("confupdtype", s(fk.on_update.code())), ("confdeltype", s(fk.on_delete.code())), ("confmatchtype", s("s")),
                        ("conislocal", V::B(true)), ("connoinherit", V::B(true)),
                        ("conkey", attnums(fk.column_positions(t))),
                        ("confkey", attnums(fk.referenced_positions(parent))),
                    ])
                })
            }))
            .chain(snap.indexes().filter_map(|i| {
                let oid = i.constraint_oid?;
                let t = i.table;
                Some(vec![
                    ("oid", V::I(oid)), ("conname", s(&i.name)),
                    ("connamespace", V::I(snap.namespace_oid(&t.schema))),
                    ("contype", s(if i.primary { "p" } else { "u" })),
                    ("convalidated", V::B(true)), ("conrelid", V::I(table_oid(t))),
                    ("conindid", V::I(i.oid)), ("confupdtype", s(" ")),
                    ("confdeltype", s(" ")), ("confmatchtype", s(" ")),
                    ("conislocal", V::B(true)), ("connoinherit", V::B(true)),
                    ("conkey", V::L(i.attnums().into_iter().map(V::I).collect())),
                ])
            }))
            .collect(),
        "pg_database" => snap.databases.iter().map(|d| vec![
            ("oid", V::I(d.id as i64)), ("datname", s(&d.name)), ("datdba", owner.clone()),
            ("encoding", V::I(6)), ("datlocprovider", s("c")), ("datallowconn", V::B(true)),
            ("datconnlimit", V::I(-1)), ("dattablespace", V::I(1663)), ("datcollate", s("C")),
            ("datctype", s("C")),
        ]).collect(),
        "pg_roles" => vec![vec![
            ("oid", owner), ("rolname", s(&snap.user)), ("rolsuper", V::B(true)),
            ("rolinherit", V::B(true)), ("rolcreaterole", V::B(true)),
            ("rolcreatedb", V::B(true)), ("rolcanlogin", V::B(true)),
            ("rolreplication", V::B(true)), ("rolconnlimit", V::I(-1)),
            ("rolpassword", s("********")), ("rolbypassrls", V::B(true)),
        ]],
        "pg_user" => vec![vec![
            ("usename", s(&snap.user)), ("usesysid", owner), ("usecreatedb", V::B(true)),
            ("usesuper", V::B(true)), ("userepl", V::B(true)), ("usebypassrls", V::B(true)),
            ("passwd", s("********")),
        ]],
        "pg_am" => [(HEAP_AM, "heap", "heap_tableam_handler", "t"), (BTREE_AM, "btree", "bthandler", "i")]
            .into_iter()
            .map(|(oid, name, handler, kind)| {
                vec![("oid", V::I(oid)), ("amname", s(name)), ("amhandler", s(handler)), ("amtype", s(kind))]
            })
            .collect(),
        "pg_collation" => [(100, "default", "d", None), (950, "C", "c", Some("C")), (951, "POSIX", "c", Some("POSIX"))]
            .into_iter()
            .map(|(oid, name, provider, locale)| {
                let locale = locale.map_or(V::Null, s);
                vec![
                    ("oid", V::I(oid)), ("collname", s(name)),
                    ("collnamespace", V::I(PG_CATALOG_NAMESPACE)), ("collowner", owner.clone()),
                    ("collprovider", s(provider)), ("collisdeterministic", V::B(true)),
                    ("collencoding", V::I(-1)), ("collcollate", locale.clone()),
                    ("collctype", locale),
                ]
            })
            .collect(),
        "pg_settings" => snap
            .settings
            .iter()
            .map(|(name, value)| {
                vec![
                    ("name", s(name)), ("setting", s(value)), ("category", s("Strata")),
                    ("context", s("user")), ("vartype", s("string")), ("source", s("default")),
                    ("boot_val", s(value)), ("reset_val", s(value)),
                ]
            })
            .collect(),
        "pg_tablespace" => [(1663, "pg_default"), (1664, "pg_global")]
            .into_iter()
            .map(|(oid, name)| vec![("oid", V::I(oid)), ("spcname", s(name)), ("spcowner", owner.clone())])
            .collect(),
        "pg_tables" => snap
            .tables
            .iter()
            .map(|t| {
                vec![
                    ("schemaname", s(&t.schema)), ("tablename", s(&t.name)),
                    ("tableowner", s(&snap.user)), ("hasindexes", V::B(!table_indexes(t).is_empty())),
                ]
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A table's `pg_class` row, and its primary-key index's. `referenced`: some foreign key
/// references the table. PostgreSQL enforces foreign keys with triggers on both tables, and psql
/// lists them only where `relhastriggers` says so.
#[rustfmt::skip]
fn pg_class(snap: &Snapshot, t: &TableDef, referenced: bool) -> Vec<Row> {
    let relation = |oid: i64, name: String, am: i64, kind: &str, natts: usize, tuples: f32| {
        vec![
            ("oid", V::I(oid)), ("relname", s(name)), ("relnamespace", V::I(snap.namespace_oid(&t.schema))),
            ("relowner", V::I(OWNER_ROLE)), ("relam", V::I(am)), ("relfilenode", V::I(oid)),
            ("reltuples", V::F(tuples)), ("relpersistence", s("p")), ("relkind", s(kind)),
            ("relnatts", V::I(natts as i64)), ("relispopulated", V::B(true)),
        ]
    };
    let indexes = table_indexes(t);
    let mut table = relation(table_oid(t), t.name.clone(), HEAP_AM, "r", t.columns.len(), -1.0);
    table.extend([
        ("relhasindex", V::B(!indexes.is_empty())), ("relreplident", s("d")),
        ("relchecks", V::I(t.checks.len() as i64)),
        ("relhastriggers", V::B(referenced || !t.foreign_keys.is_empty())),
    ]);
    let mut rows = vec![table];
    for i in indexes {
        let mut index = relation(i.oid, i.name.clone(), BTREE_AM, "i", i.keys.len() + i.include.len(), 0.0);
        index.push(("relreplident", s("n")));
        rows.push(index);
    }
    rows
}

/// A sequence's `pg_class` row.
#[rustfmt::skip]
fn sequence_class(snap: &Snapshot, q: &SequenceDef) -> Row {
    vec![
        ("oid", V::I(sequence_oid(q))), ("relname", s(&q.name)),
        ("relnamespace", V::I(snap.namespace_oid(&q.schema))), ("relowner", V::I(OWNER_ROLE)),
        ("relfilenode", V::I(sequence_oid(q))), ("relpersistence", s("p")), ("relkind", s("S")),
        ("relnatts", V::I(3)), ("relispopulated", V::B(true)), ("relreplident", s("n")),
    ]
}

/// A view's `pg_class` row.
#[rustfmt::skip]
fn view_class(snap: &Snapshot, v: &crate::views::ViewDef) -> Row {
    vec![
        ("oid", V::I(v.id as i64)), ("relname", s(&v.name)),
        ("relnamespace", V::I(snap.namespace_oid(&v.schema))), ("relowner", V::I(OWNER_ROLE)),
        ("relpersistence", s("p")), ("relkind", s("v")), ("relnatts", V::I(v.columns.len() as i64)),
        ("relispopulated", V::B(true)), ("relreplident", s("n")), ("reltuples", V::F(-1.0)),
    ]
}

/// A view's `pg_attribute` rows.
#[rustfmt::skip]
fn view_attributes(v: &crate::views::ViewDef) -> Vec<Row> {
    v.columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let ty = i64::from(c.pg_type);
            let len = builtin_type(ty).map_or(-1, |t| t.len);
            let collatable = builtin_type(ty).is_some_and(|t| t.category == "S");
            vec![
                ("attrelid", V::I(v.id as i64)), ("attname", s(&c.name)), ("atttypid", V::I(ty)),
                ("attstattarget", V::I(-1)), ("attlen", V::I(len.into())),
                ("attnum", V::I(i as i64 + 1)), ("attcacheoff", V::I(-1)),
                ("atttypmod", V::I(c.typmod.into())), ("attbyval", V::B(by_value(len))),
                ("attalign", s(alignment(len))), ("attstorage", s(storage(ty, len))),
                ("attcompression", s("")), ("attidentity", s("")), ("attgenerated", s("")),
                ("attislocal", V::B(true)), ("attcollation", V::I(if collatable { 100 } else { 0 })),
            ]
        })
        .collect()
}

/// A table's `pg_attribute` rows, and its primary-key index's.
#[rustfmt::skip]
fn pg_attribute(t: &TableDef) -> Vec<Row> {
    let attribute = |relid: i64, num: usize, col: &ColumnDef| {
        let ty = i64::from(col.ty.pg_type().oid());
        let len = builtin_type(ty).map_or(-1, |t| t.len);
        let collatable = builtin_type(ty).is_some_and(|t| t.category == "S");
        vec![
            ("attrelid", V::I(relid)), ("attname", s(&col.name)), ("atttypid", V::I(ty)),
            ("attstattarget", V::I(-1)), ("attlen", V::I(len.into())), ("attnum", V::I(num as i64)),
            ("attcacheoff", V::I(-1)), ("atttypmod", V::I(col.ty.typmod().into())),
            ("attbyval", V::B(by_value(len))), ("attalign", s(alignment(len))),
            ("attstorage", s(storage(ty, len))), ("attcompression", s("")),
            ("attnotnull", V::B(!col.nullable)),
            ("atthasdef", V::B(
                col.default.is_some() && col.identity.is_none() || col.generated.is_some()
            )),
            ("attidentity", s(col.identity.map_or("", |i| i.code()))),
            ("attgenerated", s(if col.generated.is_some() { "s" } else { "" })),
            ("attislocal", V::B(true)),
            ("attcollation", V::I(if collatable { 100 } else { 0 })),
        ]
    };
    let mut rows: Vec<Row> =
        t.columns.iter().enumerate().map(|(i, c)| attribute(table_oid(t), i + 1, c)).collect();
    // An index's columns have no default and are not identity columns.
    for index in table_indexes(t) {
        for (n, column) in index.key_columns().into_iter().enumerate() {
            let column = ColumnDef { default: None, identity: None, generated: None, ..column };
            rows.push(attribute(index.oid, n + 1, &column));
        }
    }
    rows
}

#[rustfmt::skip]
fn pg_type(t: &BuiltinType) -> Row {
    let array = t.category == "A";
    vec![
        ("oid", V::I(t.oid)), ("typname", s(t.name)), ("typnamespace", V::I(PG_CATALOG_NAMESPACE)),
        ("typowner", V::I(OWNER_ROLE)), ("typlen", V::I(t.len.into())),
        ("typbyval", V::B(by_value(t.len))), ("typtype", s("b")), ("typcategory", s(t.category)),
        ("typisdefined", V::B(true)), ("typdelim", s(",")),
        ("typsubscript", s(if array { "array_subscript_handler" } else { "-" })),
        ("typelem", V::I(t.element)), ("typarray", V::I(t.array)),
        ("typinput", s(format!("{}in", t.name))), ("typoutput", s(format!("{}out", t.name))),
        ("typreceive", s(format!("{}recv", t.name))), ("typsend", s(format!("{}send", t.name))),
        ("typmodin", s("-")), ("typmodout", s("-")), ("typalign", s(alignment(t.len))),
        ("typstorage", s(storage(t.oid, t.len))), ("typtypmod", V::I(-1)),
        ("typcollation", V::I(if t.category == "S" { 100 } else { 0 })),
    ]
}

/// Whether values of a type of this length are passed by value.
fn by_value(len: i16) -> bool {
    matches!(len, 1 | 2 | 4 | 8)
}

fn alignment(len: i16) -> &'static str {
    match len {
        8 => "d",
        2 => "s",
        1 => "c",
        _ => "i",
    }
}

/// `typstorage`: plain for fixed-length types; `numeric` is kept inline (main), every other
/// variable-length type may move out of line (extended).
fn storage(oid: i64, len: i16) -> &'static str {
    const NUMERIC: i64 = 1700;
    match (oid, len) {
        (_, 1..) => "p",
        (NUMERIC, _) => "m",
        _ => "x",
    }
}
