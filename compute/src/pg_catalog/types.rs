//! The built-in types as `pg_type` lists them, and `format_type`.

/// One row of `pg_type`: (oid, name, length, category, array type oid, element type oid).
pub struct BuiltinType {
    pub oid: i64,
    pub name: &'static str,
    pub len: i16,
    pub category: &'static str,
    pub array: i64,
    pub element: i64,
}

const fn t(
    oid: i64,
    name: &'static str,
    len: i16,
    category: &'static str,
    array: i64,
    element: i64,
) -> BuiltinType {
    BuiltinType {
        oid,
        name,
        len,
        category,
        array,
        element,
    }
}

/// The types Strata stores or computes, and their array types.
pub const BUILTIN_TYPES: &[BuiltinType] = &[
    t(16, "bool", 1, "B", 1000, 0),
    t(17, "bytea", -1, "U", 1001, 0),
    t(18, "char", 1, "Z", 1002, 0),
    t(19, "name", 64, "S", 1003, 0),
    t(20, "int8", 8, "N", 1016, 0),
    t(21, "int2", 2, "N", 1005, 0),
    t(22, "int2vector", -1, "A", 1006, 21),
    t(23, "int4", 4, "N", 1007, 0),
    t(25, "text", -1, "S", 1009, 0),
    t(26, "oid", 4, "N", 1028, 0),
    t(30, "oidvector", -1, "A", 1013, 26),
    t(700, "float4", 4, "N", 1021, 0),
    t(701, "float8", 8, "N", 1022, 0),
    t(705, "unknown", -2, "X", 0, 0),
    t(1042, "bpchar", -1, "S", 1014, 0),
    t(1043, "varchar", -1, "S", 1015, 0),
    t(1082, "date", 4, "D", 1182, 0),
    t(1114, "timestamp", 8, "D", 1115, 0),
    t(1184, "timestamptz", 8, "D", 1185, 0),
    t(1083, "time", 8, "D", 1183, 0),
    t(1186, "interval", 16, "T", 1187, 0),
    t(1700, "numeric", -1, "N", 1231, 0),
    t(2205, "regclass", 4, "N", 2210, 0),
    t(2950, "uuid", 16, "U", 2951, 0),
    t(114, "json", -1, "U", 199, 0),
    t(3802, "jsonb", -1, "U", 3807, 0),
    t(2206, "regtype", 4, "N", 2211, 0),
    t(1000, "_bool", -1, "A", 0, 16),
    t(1001, "_bytea", -1, "A", 0, 17),
    t(1002, "_char", -1, "A", 0, 18),
    t(1003, "_name", -1, "A", 0, 19),
    t(1005, "_int2", -1, "A", 0, 21),
    t(1007, "_int4", -1, "A", 0, 23),
    t(1009, "_text", -1, "A", 0, 25),
    t(1014, "_bpchar", -1, "A", 0, 1042),
    t(1015, "_varchar", -1, "A", 0, 1043),
    t(1016, "_int8", -1, "A", 0, 20),
    t(1021, "_float4", -1, "A", 0, 700),
    t(1022, "_float8", -1, "A", 0, 701),
    t(1028, "_oid", -1, "A", 0, 26),
    t(1182, "_date", -1, "A", 0, 1082),
    t(1115, "_timestamp", -1, "A", 0, 1114),
    t(1185, "_timestamptz", -1, "A", 0, 1184),
    t(1183, "_time", -1, "A", 0, 1083),
    t(1187, "_interval", -1, "A", 0, 1186),
    t(1231, "_numeric", -1, "A", 0, 1700),
    t(2951, "_uuid", -1, "A", 0, 2950),
    t(199, "_json", -1, "A", 0, 114),
    t(3807, "_jsonb", -1, "A", 0, 3802),
];

pub fn builtin_type(oid: i64) -> Option<&'static BuiltinType> {
    BUILTIN_TYPES.iter().find(|t| t.oid == oid)
}

/// The oid of the array type of `element`.
pub fn builtin_array_oid(element: i64) -> Option<i64> {
    builtin_type(element).map(|t| t.array).filter(|a| *a != 0)
}

/// The element type's oid of an array type (not of `int2vector` or `oidvector`).
pub fn builtin_array_element(array: i64) -> Option<i64> {
    builtin_type(array)
        .filter(|t| t.category == "A" && t.name.starts_with('_'))
        .map(|t| t.element)
}

/// The oid of a type named as SQL names it (`integer`, `int4`, `pg_catalog.text`, `text[]`).
pub fn type_oid_by_name(name: &str) -> Option<i64> {
    let name = name
        .trim()
        .trim_start_matches("pg_catalog.")
        .to_ascii_lowercase();
    if let Some(element) = name.strip_suffix("[]") {
        let element = type_oid_by_name(element)?;
        return builtin_array_oid(element);
    }
    let canonical = match name.as_str() {
        "boolean" => "bool",
        "smallint" => "int2",
        "integer" | "int" => "int4",
        "bigint" => "int8",
        "real" => "float4",
        "double precision" => "float8",
        "character varying" => "varchar",
        "character" => "bpchar",
        "decimal" => "numeric",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "time without time zone" => "time",
        other => other,
    };
    BUILTIN_TYPES
        .iter()
        .find(|t| t.name == canonical)
        .map(|t| t.oid)
}

/// `format_type(oid, typmod)`: a type as `\d` prints it.
pub fn format_type(oid: i64, typmod: Option<i32>) -> Option<String> {
    let typmod = typmod.filter(|m| *m >= 0);
    let ty = builtin_type(oid)?;
    if ty.category == "A" && ty.element != 0 && ty.name.starts_with('_') {
        return format_type(ty.element, typmod).map(|e| format!("{e}[]"));
    }
    Some(match (ty.name, typmod) {
        ("bool", _) => "boolean".into(),
        ("int2", _) => "smallint".into(),
        ("int4", _) => "integer".into(),
        ("int8", _) => "bigint".into(),
        ("float4", _) => "real".into(),
        ("float8", _) => "double precision".into(),
        ("char", _) => "\"char\"".into(),
        ("varchar", Some(m)) => format!("character varying({})", m - 4),
        ("varchar", None) => "character varying".into(),
        ("bpchar", Some(m)) => format!("character({})", m - 4),
        ("bpchar", None) => "bpchar".into(),
        ("numeric", Some(m)) => format!("numeric({},{})", (m - 4) >> 16, (m - 4) & 0xffff),
        ("timestamp", _) => "timestamp without time zone".into(),
        ("timestamptz", _) => "timestamp with time zone".into(),
        ("time", _) => "time without time zone".into(),
        (name, _) => name.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_types_as_postgres_does() {
        assert_eq!(format_type(23, Some(-1)).unwrap(), "integer");
        assert_eq!(
            format_type(1043, Some(24)).unwrap(),
            "character varying(20)"
        );
        assert_eq!(
            format_type(1700, Some((10 << 16 | 2) + 4)).unwrap(),
            "numeric(10,2)"
        );
        assert_eq!(format_type(1007, None).unwrap(), "integer[]");
        assert_eq!(type_oid_by_name("pg_catalog.int4"), Some(23));
        assert_eq!(type_oid_by_name("integer"), Some(23));
        assert_eq!(type_oid_by_name("text[]"), Some(1009));
        assert_eq!(type_oid_by_name("hstore"), None);
    }
}
