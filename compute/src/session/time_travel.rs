//! Reads in the past: `FOR SYSTEM_TIME AS OF`, `SET strata.as_of`, `strata_lsn_at()`.
//!
//! A point in the past is an LSN (`'0/16B3748'`, or a plain number) or a time (any expression
//! that evaluates to a timestamp: `'2026-11-24 16:30:00+00'`, `now() - interval '5 minutes'`),
//! which the pageserver maps to the LSN of the last commit at or before it. Points are resolved
//! once, before planning; the pageserver is asked to hold its garbage collection back from
//! each for a while (an LSN lease), so a read that starts does not lose its history.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectNamePart,
    Statement, TableAlias, TableFactor, TableVersion, Value, VisitMut, VisitorMut,
};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use strata_core::Lsn;

use super::Session;
use crate::as_of::as_of_name;
use crate::error::{sqlstate, SqlError, SqlResult};

/// How long a resolved point holds the pageserver's GC back.
const LEASE_SECONDS: u64 = 600;

/// The function that maps a time to an LSN; its argument must be a constant.
pub const LSN_AT_FUNCTION: &str = "strata_lsn_at";

impl Session {
    /// Resolves every `FOR SYSTEM_TIME AS OF` and `strata_lsn_at(…)` of a statement: tables
    /// read in the past get internal names carrying their LSN, calls become LSN literals.
    ///
    /// Returns a boxed future built here, so that every statement's future holds a pointer
    /// rather than this one's state (in debug builds a future is built on the stack).
    pub(super) fn resolve_time_travel(
        &self,
        statement: Statement,
    ) -> futures::future::BoxFuture<'_, SqlResult<Statement>> {
        Box::pin(self.resolve_time_travel_inner(statement))
    }

    async fn resolve_time_travel_inner(&self, mut statement: Statement) -> SqlResult<Statement> {
        let mut found = Collect::default();
        let _ = statement.visit(&mut found);
        if found.points.is_empty() {
            return Ok(statement);
        }
        let mut lsns = Vec::with_capacity(found.points.len());
        for point in &found.points {
            lsns.push(self.resolve_point(point).await?);
        }
        let _ = statement.visit(&mut Apply {
            lsns: lsns.into_iter(),
        });
        Ok(statement)
    }

    /// The LSN a point in the past stands for, leased for a while.
    pub(super) async fn resolve_point(&self, point: &SqlExpr) -> SqlResult<Lsn> {
        let head = self.primary.txns.last_commit_lsn();
        let lsn = match literal_lsn(point) {
            Some(lsn) if lsn > head => {
                return Err(SqlError::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!("LSN {lsn} is in the future (the latest commit is at {head})"),
                ))
            }
            Some(lsn) => lsn,
            None => {
                let micros = self.evaluate_time(point).await?;
                let cache = &self.primary.points;
                match cache.lsn_at(micros) {
                    Some(lsn) => lsn,
                    None => {
                        let (lsn, _) = self.primary.pageserver.lsn_at(micros, head).await?;
                        // Final once `micros` is well in the past: later commits are stamped
                        // later (with room for clocks that disagree a little).
                        if micros < crate::fast_path::now_micros() - SETTLED.as_micros() as i64 {
                            cache.remember_lsn_at(micros, lsn);
                        }
                        lsn
                    }
                }
            }
        };
        if self.primary.points.needs_lease(lsn) {
            self.primary.pageserver.lease(lsn, LEASE_SECONDS).await?;
            self.primary.points.leased(lsn);
        }
        Ok(lsn)
    }

    /// Evaluates an expression to a point in time, in microseconds since the Unix epoch. A
    /// string literal is cast directly (as planning `SELECT '…'` would), anything else is
    /// planned and run.
    async fn evaluate_time(&self, expr: &SqlExpr) -> SqlResult<i64> {
        let target = DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()));
        if let SqlExpr::Value(v) = expr {
            if let Value::SingleQuotedString(s) = &v.value {
                if let Ok(ScalarValue::TimestampMicrosecond(Some(micros), _)) =
                    ScalarValue::Utf8(Some(s.clone())).cast_to(&target)
                {
                    return Ok(micros);
                }
            }
        }
        let bad = || {
            SqlError::new(
                sqlstate::INVALID_DATETIME_FORMAT,
                format!("{expr} is neither a timestamp nor an LSN"),
            )
            .with_hint(
                "Write a timestamp such as '2026-11-24 16:30:00+00' or an LSN such as '0/16B3748'.",
            )
        };
        let statement = self
            .parse(&format!("SELECT {expr}"))?
            .pop()
            .ok_or_else(bad)?;
        let plan = self.logical_plan(&statement).await?;
        let batches = self.ctx.execute_logical_plan(plan).await?.collect().await?;
        let value = match batches.first() {
            Some(b) if b.num_rows() == 1 && b.num_columns() == 1 => {
                ScalarValue::try_from_array(b.column(0), 0)?
            }
            _ => return Err(bad()),
        };
        match value.cast_to(&target) {
            Ok(ScalarValue::TimestampMicrosecond(Some(micros), _)) => Ok(micros),
            _ => Err(bad()),
        }
    }
}

/// An LSN written as one: `'0/16B3748'` or a plain number.
fn literal_lsn(expr: &SqlExpr) -> Option<Lsn> {
    match expr {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.parse::<Lsn>().ok(),
            Value::Number(n, _) => n.parse::<u64>().ok().map(Lsn),
            _ => None,
        },
        SqlExpr::Nested(inner) => literal_lsn(inner),
        _ => None,
    }
}

/// The argument of a `strata_lsn_at(…)` call, if `expr` is one.
fn lsn_at_argument(expr: &SqlExpr) -> Option<&SqlExpr> {
    let SqlExpr::Function(f) = expr else {
        return None;
    };
    if !f.name.to_string().eq_ignore_ascii_case(LSN_AT_FUNCTION) {
        return None;
    }
    match &f.args {
        FunctionArguments::List(list) if list.args.len() == 1 => match &list.args[0] {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        },
        _ => None,
    }
}

/// First pass: the points in the past, in visiting order.
#[derive(Default)]
struct Collect {
    points: Vec<SqlExpr>,
}

impl VisitorMut for Collect {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            version: Some(TableVersion::ForSystemTimeAsOf(point)),
            ..
        } = factor
        {
            self.points.push(point.clone());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut SqlExpr) -> ControlFlow<()> {
        if let Some(arg) = lsn_at_argument(expr) {
            self.points.push(arg.clone());
        }
        ControlFlow::Continue(())
    }
}

/// Second pass, in the same order: puts the resolved LSNs in.
struct Apply {
    lsns: std::vec::IntoIter<Lsn>,
}

impl VisitorMut for Apply {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            alias,
            version,
            ..
        } = factor
        {
            if matches!(version, Some(TableVersion::ForSystemTimeAsOf(_))) {
                let lsn = self.lsns.next().expect("one LSN per point");
                *version = None;
                if let Some(ObjectNamePart::Identifier(last)) = name.0.last_mut() {
                    if alias.is_none() {
                        // Columns stay qualified by the table's own name.
                        *alias = Some(TableAlias {
                            explicit: false,
                            name: last.clone(),
                            columns: Vec::new(),
                            at: None,
                        });
                    }
                    *last = Ident::with_quote('"', as_of_name(&last.value, lsn));
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut SqlExpr) -> ControlFlow<()> {
        if lsn_at_argument(expr).is_some() {
            let lsn = self.lsns.next().expect("one LSN per point");
            *expr = SqlExpr::value(Value::SingleQuotedString(lsn.to_string()));
        }
        ControlFlow::Continue(())
    }
}

/// What a compute remembers about points in the past, so that repeating a query in the past
/// does not repeat its round trips: timestamps already mapped to a final LSN, and LSNs leased
/// recently.
#[derive(Default)]
pub struct PointCache {
    lsn_at: Mutex<HashMap<i64, Lsn>>,
    leased: Mutex<HashMap<Lsn, Instant>>,
}

/// How far in the past a time must be for its LSN to be final.
const SETTLED: Duration = Duration::from_secs(5);

/// Entries kept in each map; a full map starts over.
const MAX_POINTS: usize = 4096;

impl PointCache {
    fn lsn_at(&self, micros: i64) -> Option<Lsn> {
        self.lsn_at
            .lock()
            .expect("points lock")
            .get(&micros)
            .copied()
    }

    fn remember_lsn_at(&self, micros: i64, lsn: Lsn) {
        let mut map = self.lsn_at.lock().expect("points lock");
        if map.len() >= MAX_POINTS {
            map.clear();
        }
        map.insert(micros, lsn);
    }

    /// Whether `lsn`'s lease is older than half its length (or absent).
    fn needs_lease(&self, lsn: Lsn) -> bool {
        let renew_after = Duration::from_secs(LEASE_SECONDS / 2);
        self.leased
            .lock()
            .expect("points lock")
            .get(&lsn)
            .is_none_or(|at| at.elapsed() >= renew_after)
    }

    fn leased(&self, lsn: Lsn) {
        let mut map = self.leased.lock().expect("points lock");
        if map.len() >= MAX_POINTS {
            map.clear();
        }
        map.insert(lsn, Instant::now());
    }
}
