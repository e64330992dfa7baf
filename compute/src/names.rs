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

/// `(schema, name)` of a table name, which may be qualified with `public` (or the database).
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
        [schema, table] | [_, schema, table] => {
            if schema != DEFAULT_SCHEMA {
                return Err(SqlError::new(
                    sqlstate::INVALID_SCHEMA_NAME,
                    format!("schema \"{schema}\" does not exist"),
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
/// name one: `s`, `public.s`, `"S"`.
pub fn relation_name_in_text(text: &str) -> SqlResult<(String, String)> {
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
    table_name(&name)
}
