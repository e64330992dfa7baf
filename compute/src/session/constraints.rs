//! Deferred foreign-key checks: `SET CONSTRAINTS`, and running the checks a transaction left
//! for its end (at COMMIT, or when SET CONSTRAINTS makes their constraints immediate again).

use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, Ident, Set};

use super::{Notice, Output, Session};
use crate::catalog::TableDef;
use crate::dml::{self, DmlContext};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::foreign_keys::DeferredCheck;
use crate::names::normalize;
use crate::sql_rewrite::SET_CONSTRAINTS;
use crate::txn::Transaction;

/// Whether a SET is `SET CONSTRAINTS …` (as the parser's front end rewrites it).
pub(super) fn is_set_constraints(set: &Set) -> bool {
    matches!(set, Set::SingleAssignment { variable, values, .. }
        if variable.to_string().eq_ignore_ascii_case(SET_CONSTRAINTS) && values.len() >= 2)
}

/// The constraints a SET CONSTRAINTS names.
enum Named {
    All,
    /// `(schema, name)`; no schema: along the search path.
    Some(Vec<(Option<String>, String)>),
}

impl Session {
    /// `SET CONSTRAINTS { ALL | name [, …] } { DEFERRED | IMMEDIATE }`. Making constraints
    /// immediate runs the checks deferred for them so far, as PostgreSQL does.
    pub(super) async fn set_constraints(&self, set: &Set) -> SqlResult<Output> {
        let Set::SingleAssignment { values, .. } = set else {
            unreachable!("is_set_constraints checked the shape")
        };
        let (mode, names) = values.split_last().expect("a mode and names");
        let deferred = match unquoted(mode).as_deref() {
            Some("DEFERRED") => true,
            Some("IMMEDIATE") => false,
            _ => return Err(SqlError::syntax("syntax error at or near SET CONSTRAINTS")),
        };
        let named = match names {
            [only] if unquoted(only).as_deref() == Some("ALL") => Named::All,
            _ => Named::Some(
                names
                    .iter()
                    .map(constraint_name)
                    .collect::<SqlResult<_>>()?,
            ),
        };
        if !self.in_transaction_block() {
            return Ok(Output::Command {
                tag: "SET CONSTRAINTS".into(),
                notice: Some(Notice::warning(
                    sqlstate::NO_ACTIVE_SQL_TRANSACTION,
                    "SET CONSTRAINTS can only be used in transaction blocks",
                )),
                parameter_status: None,
            });
        }
        let constraints = match &named {
            Named::All => None,
            Named::Some(names) => Some(self.deferrable_constraints(names)?),
        };
        self.slot
            .with(|txn| {
                let modes = txn.constraint_modes();
                match &constraints {
                    None => modes.set_all(deferred),
                    Some(names) => names.iter().for_each(|n| modes.set(n, deferred)),
                }
            })
            .map_err(SqlError::from)?;
        if !deferred {
            self.run_deferred_checks(|check| {
                constraints
                    .as_ref()
                    .is_none_or(|names| names.iter().any(|n| n == check.constraint()))
            })
            .await?;
        }
        Ok(Output::command("SET CONSTRAINTS"))
    }

    /// Checks each named constraint exists and is deferrable; their names.
    fn deferrable_constraints(&self, names: &[(Option<String>, String)]) -> SqlResult<Vec<String>> {
        let path = self.slot.search_path();
        self.slot.with_catalog(&self.primary.catalog, |view| {
            let mut found = Vec::new();
            for (schema, name) in names {
                let schemas = match schema {
                    Some(s) => vec![s.clone()],
                    None => path.existing(view),
                };
                let tables: Vec<_> = schemas.iter().flat_map(|s| view.tables(s)).collect();
                let deferrable = tables.iter().find_map(|t| {
                    t.foreign_keys
                        .iter()
                        .find(|fk| &fk.name == name)
                        .map(|fk| fk.deferrable)
                });
                match deferrable {
                    Some(true) => found.push(name.clone()),
                    Some(false) => return Err(not_deferrable(name)),
                    None if tables.iter().any(|t| has_constraint(t, name)) => {
                        return Err(not_deferrable(name))
                    }
                    None => {
                        return Err(SqlError::new(
                            sqlstate::UNDEFINED_OBJECT,
                            format!("constraint \"{name}\" does not exist"),
                        ))
                    }
                }
            }
            Ok(found)
        })
    }

    /// Runs the deferred checks `which` picks on the transaction in the slot, which stays
    /// there whether they pass or not.
    pub(super) async fn run_deferred_checks(
        &self,
        which: impl Fn(&DeferredCheck) -> bool,
    ) -> SqlResult<()> {
        let checks = self
            .slot
            .with(|txn| txn.take_deferred(which))
            .map_err(SqlError::from)?;
        if checks.is_empty() {
            return Ok(());
        }
        let d = DmlContext {
            primary: &self.primary,
            ctx: &self.ctx,
            slot: &self.slot,
        };
        dml::run_deferred_checks(&d, checks).await
    }

    /// At COMMIT: runs every check `txn` deferred; gives it back if they pass.
    pub(super) async fn run_checks_at_commit(&self, txn: Transaction) -> SqlResult<Transaction> {
        self.slot.put(txn);
        let result = self.run_deferred_checks(|_| true).await;
        let txn = self
            .slot
            .take()
            .ok_or_else(|| SqlError::internal("deferred checks lost their transaction"))?;
        result.map(|()| txn)
    }
}

fn not_deferrable(name: &str) -> SqlError {
    SqlError::new(
        sqlstate::WRONG_OBJECT_TYPE,
        format!("constraint \"{name}\" is not deferrable"),
    )
}

/// Whether `table` has a constraint (primary key, unique, check) called `name`.
fn has_constraint(table: &TableDef, name: &str) -> bool {
    (!table.primary_key.is_empty() && table.primary_key_name() == name)
        || table.checks.iter().any(|c| c.name == name)
        || table.indexes.iter().any(|i| i.constraint && i.name == name)
}

/// An unquoted word, upper-cased (the rewrite made `ALL` and the mode such identifiers).
fn unquoted(e: &SqlExpr) -> Option<String> {
    match e {
        SqlExpr::Identifier(Ident {
            value,
            quote_style: None,
            ..
        }) => Some(value.to_uppercase()),
        _ => None,
    }
}

fn constraint_name(e: &SqlExpr) -> SqlResult<(Option<String>, String)> {
    match e {
        SqlExpr::Identifier(name) => Ok((None, normalize(name))),
        SqlExpr::CompoundIdentifier(parts) if parts.len() == 2 => {
            Ok((Some(normalize(&parts[0])), normalize(&parts[1])))
        }
        _ => Err(SqlError::syntax(format!("invalid constraint name {e}"))),
    }
}
