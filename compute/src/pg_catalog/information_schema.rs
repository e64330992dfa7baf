//! `information_schema`: the SQL-standard views of the catalog, computed like `pg_catalog`.

use super::snapshot::{Snapshot, NAMESPACES};
use super::tables::{Ty::*, V};
use super::types::format_type;

type Columns = &'static [(&'static str, super::tables::Ty)];

const TABLES: Columns = &[
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("table_type", Text),
    ("self_referencing_column_name", Text),
    ("reference_generation", Text),
    ("user_defined_type_catalog", Text),
    ("user_defined_type_schema", Text),
    ("user_defined_type_name", Text),
    ("is_insertable_into", Text),
    ("is_typed", Text),
    ("commit_action", Text),
];
const COLUMNS: Columns = &[
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("column_name", Text),
    ("ordinal_position", I32),
    ("column_default", Text),
    ("is_nullable", Text),
    ("data_type", Text),
    ("character_maximum_length", I32),
    ("character_octet_length", I32),
    ("numeric_precision", I32),
    ("numeric_precision_radix", I32),
    ("numeric_scale", I32),
    ("datetime_precision", I32),
    ("interval_type", Text),
    ("interval_precision", I32),
    ("character_set_catalog", Text),
    ("character_set_schema", Text),
    ("character_set_name", Text),
    ("collation_catalog", Text),
    ("collation_schema", Text),
    ("collation_name", Text),
    ("domain_catalog", Text),
    ("domain_schema", Text),
    ("domain_name", Text),
    ("udt_catalog", Text),
    ("udt_schema", Text),
    ("udt_name", Text),
    ("is_identity", Text),
    ("identity_generation", Text),
    ("is_generated", Text),
    ("generation_expression", Text),
    ("is_updatable", Text),
];
const SCHEMATA: Columns = &[
    ("catalog_name", Text),
    ("schema_name", Text),
    ("schema_owner", Text),
    ("default_character_set_catalog", Text),
    ("default_character_set_schema", Text),
    ("default_character_set_name", Text),
    ("sql_path", Text),
];
const TABLE_CONSTRAINTS: Columns = &[
    ("constraint_catalog", Text),
    ("constraint_schema", Text),
    ("constraint_name", Text),
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("constraint_type", Text),
    ("is_deferrable", Text),
    ("initially_deferred", Text),
    ("enforced", Text),
    ("nulls_distinct", Text),
];
const KEY_COLUMN_USAGE: Columns = &[
    ("constraint_catalog", Text),
    ("constraint_schema", Text),
    ("constraint_name", Text),
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("column_name", Text),
    ("ordinal_position", I32),
    ("position_in_unique_constraint", I32),
];
const VIEWS: Columns = &[
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("view_definition", Text),
    ("check_option", Text),
    ("is_updatable", Text),
    ("is_insertable_into", Text),
];
const SEQUENCES: Columns = &[
    ("sequence_catalog", Text),
    ("sequence_schema", Text),
    ("sequence_name", Text),
    ("data_type", Text),
    ("numeric_precision", I32),
    ("numeric_precision_radix", I32),
    ("numeric_scale", I32),
    ("start_value", Text),
    ("minimum_value", Text),
    ("maximum_value", Text),
    ("increment", Text),
    ("cycle_option", Text),
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

pub fn rows(name: &str, snap: &Snapshot) -> Vec<Vec<V>> {
    let db = snap.database();
    match name {
        "tables" => snap
            .tables
            .iter()
            .map(|t| {
                vec![
                    s(db),
                    s(&t.schema),
                    s(&t.name),
                    s("BASE TABLE"),
                    V::Null,
                    V::Null,
                    V::Null,
                    V::Null,
                    V::Null,
                    s("YES"),
                    s("NO"),
                    V::Null,
                ]
            })
            .collect(),
        "columns" => snap
            .tables
            .iter()
            .flat_map(|t| {
                t.columns.iter().enumerate().map(move |(i, c)| {
                    let oid = i64::from(c.ty.pg_type().oid());
                    let typmod = c.ty.typmod();
                    let data_type = match oid {
                        1043 => "character varying".to_string(),
                        1042 => "character".to_string(),
                        _ => format_type(oid, None).unwrap_or_else(|| "text".into()),
                    };
                    let char_len = matches!(oid, 1042 | 1043)
                        .then(|| i64::from(typmod - 4))
                        .filter(|n| *n >= 0);
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
                    let datetime_precision = matches!(oid, 1082 | 1114 | 1184)
                        .then_some(if oid == 1082 { 0 } else { 6 });
                    let udt = super::types::builtin_type(oid).map_or("text", |t| t.name);
                    vec![
                        s(db),
                        s(&t.schema),
                        s(&t.name),
                        s(&c.name),
                        V::I(i as i64 + 1),
                        V::Null,
                        s(if c.nullable { "YES" } else { "NO" }),
                        s(data_type),
                        int(char_len),
                        int(char_len
                            .map(|n| n * 4)
                            .or(matches!(oid, 25 | 1042 | 1043).then_some(1_073_741_824))),
                        int(precision),
                        int(radix),
                        int(scale),
                        int(datetime_precision),
                        V::Null,
                        V::Null,
                        V::Null,
                        V::Null,
                        V::Null,
                        V::Null,
                        V::Null,
                        V::Null,
                        V::Null,
                        V::Null,
                        V::Null,
                        s(db),
                        s("pg_catalog"),
                        s(udt),
                        s("NO"),
                        V::Null,
                        s("NEVER"),
                        V::Null,
                        s("YES"),
                    ]
                })
            })
            .collect(),
        "schemata" => NAMESPACES
            .iter()
            .map(|(_, name)| vec![s(db), s(*name), s(&snap.user)])
            .collect(),
        "table_constraints" => snap
            .tables
            .iter()
            .filter(|t| !t.primary_key.is_empty())
            .map(|t| {
                vec![
                    s(db),
                    s(&t.schema),
                    s(t.primary_key_name()),
                    s(db),
                    s(&t.schema),
                    s(&t.name),
                    s("PRIMARY KEY"),
                    s("NO"),
                    s("NO"),
                    s("YES"),
                    V::Null,
                ]
            })
            .collect(),
        "key_column_usage" => snap
            .tables
            .iter()
            .flat_map(|t| {
                Snapshot::key_columns(t)
                    .into_iter()
                    .enumerate()
                    .map(move |(i, c)| {
                        vec![
                            s(db),
                            s(&t.schema),
                            s(t.primary_key_name()),
                            s(db),
                            s(&t.schema),
                            s(&t.name),
                            s(c),
                            V::I(i as i64 + 1),
                            V::Null,
                        ]
                    })
            })
            .collect(),
        _ => Vec::new(),
    }
}
