//! `information_schema`: the SQL-standard views of the catalog, computed like `pg_catalog`.

use super::snapshot::{table_indexes, Snapshot};
use super::tables::{Row, Ty::*, V};
use super::types::format_type;
use crate::catalog::{ColumnDef, TableDef};
use crate::indexes::IndexKey;

type Columns = &'static [(&'static str, super::tables::Ty)];

#[rustfmt::skip]
const TABLES: Columns = &[
    ("table_catalog", Text), ("table_schema", Text), ("table_name", Text), ("table_type", Text),
    ("self_referencing_column_name", Text), ("reference_generation", Text),
    ("user_defined_type_catalog", Text), ("user_defined_type_schema", Text),
    ("user_defined_type_name", Text), ("is_insertable_into", Text), ("is_typed", Text),
    ("commit_action", Text),
];
#[rustfmt::skip]
const COLUMNS: Columns = &[
    ("table_catalog", Text), ("table_schema", Text), ("table_name", Text), ("column_name", Text),
    ("ordinal_position", I32), ("column_default", Text), ("is_nullable", Text),
    ("data_type", Text), ("character_maximum_length", I32), ("character_octet_length", I32),
    ("numeric_precision", I32), ("numeric_precision_radix", I32), ("numeric_scale", I32),
    ("datetime_precision", I32), ("interval_type", Text), ("interval_precision", I32),
    ("character_set_catalog", Text), ("character_set_schema", Text), ("character_set_name", Text),
    ("collation_catalog", Text), ("collation_schema", Text), ("collation_name", Text),
    ("domain_catalog", Text), ("domain_schema", Text), ("domain_name", Text),
    ("udt_catalog", Text), ("udt_schema", Text), ("udt_name", Text), ("is_identity", Text),
    ("identity_generation", Text), ("is_generated", Text), ("generation_expression", Text),
    ("is_updatable", Text),
];
#[rustfmt::skip]
const SCHEMATA: Columns = &[
    ("catalog_name", Text), ("schema_name", Text), ("schema_owner", Text),
    ("default_character_set_catalog", Text), ("default_character_set_schema", Text),
    ("default_character_set_name", Text), ("sql_path", Text),
];
#[rustfmt::skip]
const TABLE_CONSTRAINTS: Columns = &[
    ("constraint_catalog", Text), ("constraint_schema", Text), ("constraint_name", Text),
    ("table_catalog", Text), ("table_schema", Text), ("table_name", Text),
    ("constraint_type", Text), ("is_deferrable", Text), ("initially_deferred", Text),
    ("enforced", Text), ("nulls_distinct", Text),
];
#[rustfmt::skip]
const KEY_COLUMN_USAGE: Columns = &[
    ("constraint_catalog", Text), ("constraint_schema", Text), ("constraint_name", Text),
    ("table_catalog", Text), ("table_schema", Text), ("table_name", Text), ("column_name", Text),
    ("ordinal_position", I32), ("position_in_unique_constraint", I32),
];
#[rustfmt::skip]
const VIEWS: Columns = &[
    ("table_catalog", Text), ("table_schema", Text), ("table_name", Text),
    ("view_definition", Text), ("check_option", Text), ("is_updatable", Text),
    ("is_insertable_into", Text),
];
#[rustfmt::skip]
const SEQUENCES: Columns = &[
    ("sequence_catalog", Text), ("sequence_schema", Text), ("sequence_name", Text),
    ("data_type", Text), ("numeric_precision", I32), ("numeric_precision_radix", I32),
    ("numeric_scale", I32), ("start_value", Text), ("minimum_value", Text),
    ("maximum_value", Text), ("increment", Text), ("cycle_option", Text),
];

pub const INFORMATION_SCHEMA_TABLES: &[(&str, Columns)] = &[
    ("columns", COLUMNS),
    ("key_column_usage", KEY_COLUMN_USAGE),
    ("schemata", SCHEMATA),
    ("sequences", SEQUENCES),
    ("table_constraints", TABLE_CONSTRAINTS),
    ("tables", TABLES),
    ("views", VIEWS),
];

pub fn columns_of(name: &str) -> Option<Columns> {
    INFORMATION_SCHEMA_TABLES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
}

fn s(v: impl Into<String>) -> V {
    V::S(v.into())
}

fn int(v: Option<i64>) -> V {
    v.map_or(V::Null, V::I)
}

pub fn rows(name: &str, snap: &Snapshot) -> Vec<Row> {
    let db = snap.database();
    match name {
        "tables" => snap
            .tables
            .iter()
            .map(|t| {
                vec![
                    ("table_catalog", s(db)),
                    ("table_schema", s(&t.schema)),
                    ("table_name", s(&t.name)),
                    ("table_type", s("BASE TABLE")),
                    ("is_insertable_into", s("YES")),
                    ("is_typed", s("NO")),
                ]
            })
            .chain(snap.views.iter().map(|v| {
                vec![
                    ("table_catalog", s(db)),
                    ("table_schema", s(&v.schema)),
                    ("table_name", s(&v.name)),
                    ("table_type", s("VIEW")),
                    ("is_insertable_into", s("NO")),
                    ("is_typed", s("NO")),
                ]
            }))
            .collect(),
        "views" => snap
            .views
            .iter()
            .map(|v| {
                vec![
                    ("table_catalog", s(db)),
                    ("table_schema", s(&v.schema)),
                    ("table_name", s(&v.name)),
                    (
                        "view_definition",
                        snap.view_definition(v.id as i64).map_or(V::Null, s),
                    ),
                    ("check_option", s("NONE")),
                    ("is_updatable", s("NO")),
                    ("is_insertable_into", s("NO")),
                ]
            })
            .collect(),
        "columns" => snap
            .tables
            .iter()
            .flat_map(|t| {
                t.columns
                    .iter()
                    .enumerate()
                    .map(move |(i, c)| column(snap, t, i + 1, c))
            })
            .chain(
                snap.views
                    .iter()
                    .flat_map(|v| (1..=v.columns.len()).map(move |i| view_column(db, v, i))),
            )
            .collect(),
        "sequences" => snap
            .sequences
            .iter()
            .map(|q| {
                let bits = match q.ty {
                    crate::types::SqlType::Int2 => 16,
                    crate::types::SqlType::Int4 => 32,
                    _ => 64,
                };
                vec![
                    ("sequence_catalog", s(db)),
                    ("sequence_schema", s(&q.schema)),
                    ("sequence_name", s(&q.name)),
                    ("data_type", s(q.ty.display_name())),
                    ("numeric_precision", V::I(bits)),
                    ("numeric_precision_radix", V::I(2)),
                    ("numeric_scale", V::I(0)),
                    ("start_value", s(q.start.to_string())),
                    ("minimum_value", s(q.min.to_string())),
                    ("maximum_value", s(q.max.to_string())),
                    ("increment", s(q.increment.to_string())),
                    ("cycle_option", s(if q.cycle { "YES" } else { "NO" })),
                ]
            })
            .collect(),
        "schemata" => snap
            .namespaces
            .iter()
            .map(|(_, name)| {
                vec![
                    ("catalog_name", s(db)),
                    ("schema_name", s(name)),
                    ("schema_owner", s(&snap.user)),
                ]
            })
            .collect(),
        "table_constraints" => snap
            .tables
            .iter()
            .flat_map(|t| {
                let checks = t.checks.iter().map(|c| (c.name.clone(), "CHECK"));
                let foreign = t
                    .foreign_keys
                    .iter()
                    .map(|f| (f.name.clone(), "FOREIGN KEY"));
                let keys = table_indexes(t)
                    .into_iter()
                    .filter(|i| i.constraint_oid.is_some())
                    .map(|i| (i.name, if i.primary { "PRIMARY KEY" } else { "UNIQUE" }));
                checks
                    .chain(foreign)
                    .chain(keys)
                    .map(|(name, kind)| table_constraint(db, t, name, kind))
                    .collect::<Vec<_>>()
            })
            .collect(),
        "key_column_usage" => snap
            .indexes()
            .filter(|i| i.constraint_oid.is_some())
            .flat_map(|index| {
                let t = index.table;
                index
                    .keys
                    .iter()
                    .filter_map(|key| match key {
                        IndexKey::Column(p) => Some(*p),
                        IndexKey::Expression(_) => None,
                    })
                    .enumerate()
                    .map(|(i, p)| {
                        vec![
                            ("constraint_catalog", s(db)),
                            ("constraint_schema", s(&t.schema)),
                            ("constraint_name", s(&index.name)),
                            ("table_catalog", s(db)),
                            ("table_schema", s(&t.schema)),
                            ("table_name", s(&t.name)),
                            ("column_name", s(&t.columns[p].name)),
                            ("ordinal_position", V::I(i as i64 + 1)),
                        ]
                    })
                    .collect::<Vec<_>>()
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// One `information_schema.table_constraints` row.
fn table_constraint(db: &str, t: &TableDef, name: String, kind: &str) -> Row {
    vec![
        ("constraint_catalog", s(db)),
        ("constraint_schema", s(&t.schema)),
        ("constraint_name", s(name)),
        ("table_catalog", s(db)),
        ("table_schema", s(&t.schema)),
        ("table_name", s(&t.name)),
        ("constraint_type", s(kind)),
        ("is_deferrable", s("NO")),
        ("initially_deferred", s("NO")),
        ("enforced", s("YES")),
    ]
}

/// One column's `information_schema.columns` row.
fn column(snap: &Snapshot, t: &TableDef, position: usize, c: &ColumnDef) -> Row {
    let db = snap.database();
    let mut row = vec![
        ("table_catalog", s(db)),
        ("table_schema", s(&t.schema)),
        ("table_name", s(&t.name)),
        ("column_name", s(&c.name)),
        ("ordinal_position", V::I(position as i64)),
        ("is_nullable", s(if c.nullable { "YES" } else { "NO" })),
    ];
    match &c.enum_type {
        // A user-defined type is named by its udt columns.
        Some(e) => row.extend(column_type(db, 25, -1).into_iter().map(|(k, v)| match k {
            "data_type" => (k, s("USER-DEFINED")),
            "character_octet_length" => (k, V::Null),
            "udt_schema" => (k, s(&e.schema)),
            "udt_name" => (k, s(&e.name)),
            _ => (k, v),
        })),
        None => row.extend(column_type(
            db,
            i64::from(c.ty.pg_type().oid()),
            c.ty.typmod(),
        )),
    }
    row.extend([
        (
            "column_default",
            match (&c.default, c.identity) {
                (Some(d), None) => s(snap.default_text(c, d)),
                _ => V::Null,
            },
        ),
        (
            "is_identity",
            s(if c.identity.is_some() { "YES" } else { "NO" }),
        ),
        (
            "identity_generation",
            match c.identity {
                Some(crate::catalog::Identity::Always) => s("ALWAYS"),
                Some(crate::catalog::Identity::ByDefault) => s("BY DEFAULT"),
                None => V::Null,
            },
        ),
        (
            "is_generated",
            s(if c.generated.is_some() {
                "ALWAYS"
            } else {
                "NEVER"
            }),
        ),
        (
            "generation_expression",
            c.generated
                .as_deref()
                .map_or(V::Null, |g| s(crate::row_expr::deparsed(g))),
        ),
        ("is_updatable", s("YES")),
    ]);
    row
}

/// A view's column: nullable, without a default.
fn view_column(db: &str, v: &crate::views::ViewDef, position: usize) -> Row {
    let c = &v.columns[position - 1];
    let mut row = vec![
        ("table_catalog", s(db)),
        ("table_schema", s(&v.schema)),
        ("table_name", s(&v.name)),
        ("column_name", s(&c.name)),
        ("ordinal_position", V::I(position as i64)),
        ("is_nullable", s("YES")),
        ("is_identity", s("NO")),
        ("is_generated", s("NEVER")),
        ("is_updatable", s("NO")),
    ];
    row.extend(column_type(db, i64::from(c.pg_type), c.typmod));
    row
}

/// The type columns of an `information_schema.columns` row.
fn column_type(db: &str, oid: i64, typmod: i32) -> Vec<(&'static str, V)> {
    let data_type = match oid {
        1043 => "character varying".to_string(),
        1042 => "character".to_string(),
        _ => format_type(oid, None).unwrap_or_else(|| "text".into()),
    };
    let char_len = matches!(oid, 1042 | 1043)
        .then(|| i64::from(typmod - 4))
        .filter(|n| *n >= 0);
    let octet_len = char_len
        .map(|n| n * 4)
        .or(matches!(oid, 25 | 1042 | 1043).then_some(1_073_741_824));
    let (precision, radix, scale) = match oid {
        21 => (Some(16), Some(2), Some(0)),
        23 => (Some(32), Some(2), Some(0)),
        20 => (Some(64), Some(2), Some(0)),
        700 => (Some(24), Some(2), None),
        701 => (Some(53), Some(2), None),
        1700 if typmod >= 0 => (
            Some(i64::from((typmod - 4) >> 16)),
            Some(10),
            Some(i64::from((typmod - 4) & 0xffff)),
        ),
        1700 => (None, Some(10), None),
        _ => (None, None, None),
    };
    let datetime_precision = match oid {
        1082 => Some(0),
        1114 | 1184 => Some(6),
        _ => None,
    };
    let udt = super::types::builtin_type(oid).map_or("text", |t| t.name);
    vec![
        ("data_type", s(data_type)),
        ("character_maximum_length", int(char_len)),
        ("character_octet_length", int(octet_len)),
        ("numeric_precision", int(precision)),
        ("numeric_precision_radix", int(radix)),
        ("numeric_scale", int(scale)),
        ("datetime_precision", int(datetime_precision)),
        ("udt_catalog", s(db)),
        ("udt_schema", s("pg_catalog")),
        ("udt_name", s(udt)),
    ]
}
