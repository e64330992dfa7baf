//! Named prepared statements of one connection, as PostgreSQL keeps them: a name is taken once
//! (Parse of a taken name is 42P05), and `DEALLOCATE name` / `DEALLOCATE ALL` free names so they
//! can be prepared again. Drivers rely on this: psycopg sends `DEALLOCATE ALL` after a ROLLBACK
//! and prepares its statements again under the same names.
//!
//! The statements themselves live in pgwire's portal store; this keeps the names, which that
//! store cannot list.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::{sqlstate, SqlError, SqlResult};

/// What a `DEALLOCATE` removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deallocate {
    All,
    Named(String),
}

impl Deallocate {
    /// The target of `DEALLOCATE [PREPARE] name|ALL` as parsed (`ALL` arrives as a name).
    pub fn from_ident(name: &datafusion::sql::sqlparser::ast::Ident) -> Self {
        if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
            Deallocate::All
        } else if name.quote_style.is_none() {
            Deallocate::Named(name.value.to_lowercase())
        } else {
            Deallocate::Named(name.value.clone())
        }
    }

    pub fn tag(&self) -> &'static str {
        match self {
            Deallocate::All => "DEALLOCATE ALL",
            Deallocate::Named(_) => "DEALLOCATE",
        }
    }
}

#[derive(Debug, Default)]
pub struct NamedStatements {
    names: Mutex<BTreeMap<String, NamedStatement>>,
}

/// What `pg_prepared_statements` shows of a named statement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamedStatement {
    /// The SQL text as the client sent it.
    pub statement: String,
    /// When it was prepared, in microseconds since the Unix epoch.
    pub prepare_time: i64,
    /// Its parameters' types, as `format_type` prints them.
    pub parameter_types: Vec<String>,
}

impl NamedStatements {
    /// Takes `name` for a statement being parsed; the unnamed statement (`""`) is always free.
    pub fn take(&self, name: &str) -> SqlResult<()> {
        if name.is_empty() {
            return Ok(());
        }
        let mut names = self.names.lock().expect("names lock");
        if names.contains_key(name) {
            return Err(SqlError::new(
                sqlstate::DUPLICATE_PREPARED_STATEMENT,
                format!("prepared statement \"{name}\" already exists"),
            ));
        }
        names.insert(name.to_string(), NamedStatement::default());
        Ok(())
    }

    /// Records what a statement that took `name` is, once it parsed.
    pub fn describe(&self, name: &str, statement: NamedStatement) {
        if let Some(entry) = self.names.lock().expect("names lock").get_mut(name) {
            *entry = statement;
        }
    }

    /// Every named statement, by name.
    pub fn list(&self) -> Vec<(String, NamedStatement)> {
        self.names
            .lock()
            .expect("names lock")
            .iter()
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect()
    }

    /// Frees a name (Close of a statement); freeing a free name is not an error, as in Close.
    pub fn free(&self, name: &str) {
        self.names.lock().expect("names lock").remove(name);
    }

    /// The names a `DEALLOCATE` frees, which the caller removes from the statement store.
    pub fn deallocate(&self, what: &Deallocate) -> SqlResult<Vec<String>> {
        let mut names = self.names.lock().expect("names lock");
        match what {
            Deallocate::All => Ok(std::mem::take(&mut *names).into_keys().collect()),
            Deallocate::Named(name) => {
                if names.remove(name).is_some() {
                    Ok(vec![name.clone()])
                } else {
                    Err(SqlError::new(
                        sqlstate::INVALID_SQL_STATEMENT_NAME,
                        format!("prepared statement \"{name}\" does not exist"),
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_taken_once_until_deallocated() {
        let named = NamedStatements::default();
        named.take("s1").unwrap();
        named.take("").unwrap();
        named.take("").unwrap();
        assert_eq!(
            named.take("s1").unwrap_err().code,
            sqlstate::DUPLICATE_PREPARED_STATEMENT
        );
        assert_eq!(
            named
                .deallocate(&Deallocate::Named("nope".into()))
                .unwrap_err()
                .code,
            sqlstate::INVALID_SQL_STATEMENT_NAME
        );
        named.take("s2").unwrap();
        assert_eq!(
            named.deallocate(&Deallocate::Named("s1".into())).unwrap(),
            vec!["s1".to_string()]
        );
        named.take("s1").unwrap();
        assert_eq!(named.deallocate(&Deallocate::All).unwrap().len(), 2);
        named.take("s2").unwrap();
    }
}
