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
