//! Identifiers as PostgreSQL resolves them: unquoted names fold to lower case.

use datafusion::sql::sqlparser::ast::{Ident, ObjectName};

use crate::catalog::DEFAULT_SCHEMA;
use crate::error::{sqlstate, SqlError, SqlResult};

pub fn normalize(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// `(schema, name)` of a relation name, which may be qualified with a schema (and the
/// database). An unqualified name is in `public`: names in other schemas were qualified before
/// the statement got here (see `search_path`).
pub fn table_name(name: &ObjectName) -> SqlResult<(String, String)> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| {
            p.as_ident()
                .map(normalize)
                .ok_or_else(|| SqlError::syntax(format!("invalid name {name}")))
        })
        .collect::<SqlResult<_>>()?;
    match parts.as_slice() {
        [table] => Ok((DEFAULT_SCHEMA.to_string(), table.clone())),
        [schema, table] => Ok((schema.clone(), table.clone())),
        [database, schema, table] => {
            if database != crate::catalog::DEFAULT_DATABASE {
                return Err(SqlError::new(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    format!("cross-database references are not implemented: {name}"),
                ));
            }
            Ok((schema.clone(), table.clone()))
        }
        _ => Err(SqlError::syntax(format!(
            "improper qualified name (too many dotted names): {name}"
        ))),
    }
}

/// `(schema, name)` of a relation named in a string, as `nextval('s')` and `'t'::regclass`
/// name one: `s`, `public.s`, `"S"`. The schema is `None` when the text names none: the caller
/// looks the name up along the search path.
pub fn relation_name_in_text(text: &str) -> SqlResult<(Option<String>, String)> {
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    let name = datafusion::sql::sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_object_name(false))
        .map_err(|_| {
            SqlError::new(
                sqlstate::INVALID_TEXT_REPRESENTATION,
                format!("invalid name syntax: \"{text}\""),
            )
        })?;
    let written_schema = name.0.len() > 1;
    let (schema, relation) = table_name(&name)?;
    Ok((written_schema.then_some(schema), relation))
}
