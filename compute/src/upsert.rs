//! `INSERT … ON CONFLICT (target) DO UPDATE SET … [WHERE …]`.
//!
//! The INSERT writes the rows that conflict with nothing; each row that conflicts on the
//! *arbiter* (the primary key or the unique index the target names) becomes an UPDATE of the row
//! it conflicts with: `UPDATE t SET … WHERE <arbiter columns> = <the proposed values> [AND
//! <condition>]`, where `EXCLUDED.c` is replaced by the proposed row's value of `c`. The UPDATE is
//! ordinary DML, so locks, checks, indexes and RETURNING work as for any UPDATE.

use std::ops::ControlFlow;

use datafusion::arrow::array::ArrayRef;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Expr as DFExpr;
use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, Assignment, ConflictTarget, Expr as SqlExpr, OnConflict,
    OnConflictAction, SelectItem, Statement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::catalog::TableDef;
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::names::normalize;
use crate::pg_catalog::quote_ident;

/// What an INSERT does with a row that conflicts with an existing one.
#[derive(Debug, Clone, Default)]
pub enum OnConflictDo {
    /// Fail with 23505.
    #[default]
    Error,
    /// Skip the row (`DO NOTHING`): one that conflicts on the arbiter the target names, or on
    /// any unique key when there is no target.
    Nothing { arbiter: Option<Arbiter> },
    /// Update the existing row (`DO UPDATE`).
    Update(std::sync::Arc<Upsert>),
}

/// The unique key an `ON CONFLICT DO UPDATE` arbitrates on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arbiter {
    PrimaryKey,
    /// A unique index, by id.
    Index(u64),
}

/// A resolved `ON CONFLICT … DO UPDATE`.
#[derive(Debug, Clone)]
pub struct Upsert {
    pub arbiter: Arbiter,
    /// Positions of the arbiter's columns in the table.
    arbiter_columns: Vec<usize>,
    assignments: Vec<Assignment>,
    selection: Option<SqlExpr>,
    /// The target as the INSERT named it (`schema.table AS alias`).
    target: String,
    returning: Option<Vec<SelectItem>>,
}

/// Resolves an INSERT's ON CONFLICT clause against the table.
pub fn resolve(
    def: &TableDef,
    on_conflict: &OnConflict,
    target: String,
    returning: Option<Vec<SelectItem>>,
) -> SqlResult<OnConflictDo> {
    let arbiter = on_conflict
        .conflict_target
        .as_ref()
        .map(|t| arbiter(def, t))
        .transpose()?;
    let update = match &on_conflict.action {
        OnConflictAction::DoNothing => {
            return Ok(OnConflictDo::Nothing {
                arbiter: arbiter.map(|(a, _)| a),
            })
        }
        OnConflictAction::DoUpdate(update) => update,
    };
    let Some((arbiter, arbiter_columns)) = arbiter else {
        return Err(SqlError::syntax(
            "ON CONFLICT DO UPDATE requires inference specification or constraint name",
        )
        .with_hint("For example, ON CONFLICT (column_name)."));
    };
    Ok(OnConflictDo::Update(std::sync::Arc::new(Upsert {
        arbiter,
        arbiter_columns,
        assignments: update.assignments.clone(),
        selection: update.selection.clone(),
        target,
        returning,
    })))
}

/// The unique key a conflict target names, and the positions of its columns: the primary key
/// or a plain unique index whose columns are the target's (in any order), or the constraint
/// named.
fn arbiter(def: &TableDef, target: &ConflictTarget) -> SqlResult<(Arbiter, Vec<usize>)> {
    let no_match = || {
        SqlError::new(
            sqlstate::INVALID_COLUMN_REFERENCE,
            "there is no unique or exclusion constraint matching the ON CONFLICT specification",
        )
    };
    let pk = def.primary_key_indexes();
    Ok(match target {
        ConflictTarget::Columns(columns) => {
            let mut positions = columns
                .iter()
                .map(|c| {
                    let name = normalize(c);
                    def.columns
                        .iter()
                        .position(|col| col.name == name)
                        .ok_or_else(|| {
                            SqlError::new(
                                sqlstate::UNDEFINED_COLUMN,
                                format!("column \"{name}\" does not exist"),
                            )
                        })
                })
                .collect::<SqlResult<Vec<_>>>()?;
            positions.sort_unstable();
            let same = |mut of: Vec<usize>| {
                of.sort_unstable();
                of == positions
            };
            if !pk.is_empty() && same(pk.clone()) {
                (Arbiter::PrimaryKey, pk)
            } else {
                let index = def
                    .indexes
                    .iter()
                    .find(|i| i.unique && i.is_plain() && same(i.column_positions(def)))
                    .ok_or_else(no_match)?;
                (Arbiter::Index(index.id), index.column_positions(def))
            }
        }
        ConflictTarget::OnConstraint(name) => {
            let name = name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(normalize)
                .unwrap_or_default();
            if !pk.is_empty() && name == def.primary_key_name() {
                (Arbiter::PrimaryKey, pk)
            } else {
                let index = def
                    .indexes
                    .iter()
                    .find(|i| i.unique && i.is_plain() && i.name == name)
                    .ok_or_else(|| {
                        SqlError::new(
                            sqlstate::UNDEFINED_OBJECT,
                            format!(
                                "constraint \"{name}\" for table \"{}\" does not exist",
                                def.name
                            ),
                        )
                    })?;
                (Arbiter::Index(index.id), index.column_positions(def))
            }
        }
    })
}

impl Upsert {
    /// The UPDATE of the existing row that the proposed row `row` of `columns` (the table's
    /// columns, in order) conflicts with.
    pub fn update_for(
        &self,
        def: &TableDef,
        columns: &[ArrayRef],
        row: usize,
    ) -> SqlResult<Statement> {
        let value = |position: usize| -> SqlResult<SqlExpr> {
            let scalar = ScalarValue::try_from_array(&columns[position], row)?;
            Ok(datafusion::sql::unparser::expr_to_sql(&DFExpr::Literal(
                scalar, None,
            ))?)
        };
        let excluded = |expr: &mut SqlExpr| -> SqlResult<()> {
            let mut failed = None;
            let _ = visit_expressions_mut(expr, |e| {
                if let SqlExpr::CompoundIdentifier(parts) = e {
                    if let [table, column] = parts.as_slice() {
                        if normalize(table) == "excluded" {
                            let name = normalize(column);
                            match def.columns.iter().position(|c| c.name == name) {
                                Some(p) => match value(p) {
                                    Ok(v) => *e = SqlExpr::Nested(Box::new(v)),
                                    Err(err) => failed = Some(err),
                                },
                                None => {
                                    failed = Some(SqlError::new(
                                        sqlstate::UNDEFINED_COLUMN,
                                        format!("column excluded.{name} does not exist"),
                                    ))
                                }
                            }
                        }
                    }
                }
                ControlFlow::<()>::Continue(())
            });
            failed.map_or(Ok(()), Err)
        };
        let mut sets = Vec::with_capacity(self.assignments.len());
        for assignment in &self.assignments {
            let mut value = assignment.value.clone();
            excluded(&mut value)?;
            sets.push(format!("{} = {value}", assignment.target));
        }
        let mut conditions = Vec::new();
        for &p in &self.arbiter_columns {
            conditions.push(format!(
                "{} = {}",
                quote_ident(&def.columns[p].name),
                value(p)?
            ));
        }
        if let Some(selection) = &self.selection {
            let mut selection = selection.clone();
            excluded(&mut selection)?;
            conditions.push(format!("({selection})"));
        }
        let mut sql = format!(
            "UPDATE {} SET {} WHERE {}",
            self.target,
            sets.join(", "),
            conditions.join(" AND ")
        );
        if let Some(items) = &self.returning {
            let items: Vec<String> = items.iter().map(|i| i.to_string()).collect();
            sql.push_str(&format!(" RETURNING {}", items.join(", ")));
        }
        Parser::parse_sql(&PostgreSqlDialect {}, &sql)
            .map_err(|e| SqlError::internal(format!("{sql}: {e}")))?
            .pop()
            .ok_or_else(|| SqlError::internal("empty ON CONFLICT update"))
    }
}
