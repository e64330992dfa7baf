//! Preparing a statement: parsing is done; this plans what DataFusion runs and works out result
//! columns and parameter types, so the extended protocol can describe a statement before it runs.

use std::sync::Arc;

use datafusion::arrow::datatypes::Field;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{OnInsert, SelectItem, Statement};

use super::Session;
use crate::column_names::query_column_names;
use crate::dml::{delete_finder, update_finder, DmlContext, RowFinder};
use crate::error::{SqlError, SqlResult};
use crate::fast_path::{self, FastKind, FastPlan};
use crate::names::table_name;
use crate::pg_encode::{result_columns, ResultColumn};
use crate::sql_rewrite::alias_duplicate_expressions;

/// What kind of work a prepared statement is.
#[derive(Clone)]
pub enum Kind {
    /// A query; `plan` is its plan.
    Query,
    /// An INSERT; `plan` is DataFusion's INSERT plan (without ON CONFLICT and RETURNING).
    Insert {
        on_conflict: crate::upsert::OnConflictDo,
        returning: Option<Vec<SelectItem>>,
    },
    /// `SELECT … FOR UPDATE / FOR SHARE`; `plan` is the query's plan with each row's storage key
    /// as a first column (see `dml::locking_query`).
    Locking(crate::dml::RowLocking),
    /// An UPDATE or DELETE; `plan` is the plan of the SELECT that finds its rows.
    UpdateOrDelete(Arc<RowFinder>),
    /// EXPLAIN [ANALYZE] of a query; `plan` is the query's plan.
    Explain { analyze: bool },
    /// A point statement run without DataFusion (see `fast_path`).
    Fast(Arc<FastPlan>),
    /// Everything run from the statement itself (DDL, transaction control, SET, SHOW).
    Other,
}

/// A parsed and planned statement, ready to run any number of times with different parameters.
#[derive(Clone)]
pub struct Prepared {
    /// The statement with its relation names qualified along the search path.
    pub statement: Statement,
    /// The statement as written, when qualifying changed it: it is planned again from this.
    pub unqualified: Option<Arc<Statement>>,
    /// The session's search-path generation when it was planned.
    pub path_generation: u64,
    pub kind: Kind,
    pub plan: Option<LogicalPlan>,
    /// Result columns, for statements that return rows.
    pub columns: Option<Arc<Vec<ResultColumn>>>,
    /// Types of `$1`, `$2`, … (`None` where they could not be inferred).
    pub param_types: Vec<Option<Field>>,
    /// The catalog the plan was made against: a statement run after DDL is planned again.
    pub catalog: crate::catalog::CatalogStamp,
    /// The session's `strata.as_of` when it was planned: a statement run after it changed is
    /// planned again.
    pub as_of: Option<strata_core::Lsn>,
}

impl Prepared {
    /// The statement as written, to plan again.
    pub fn source(&self) -> &Statement {
        self.unqualified.as_deref().unwrap_or(&self.statement)
    }
}

/// The LSN of the tables a statement reads in the past (`FOR SYSTEM_TIME AS OF`, resolved),
/// when they all read one.
fn past_read(statement: &Statement) -> Option<strata_core::Lsn> {
    let mut lsns = Vec::new();
    let _ = datafusion::sql::sqlparser::ast::visit_relations(statement, |name| {
        if let Some(last) = name.0.last().and_then(|p| p.as_ident()) {
            if let Some((_, lsn)) = crate::as_of::parse_as_of_name(&last.value) {
                lsns.push(lsn);
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    lsns.dedup();
    match lsns.as_slice() {
        [lsn] => Some(*lsn),
        _ => None,
    }
}

pub(super) fn single_text_column(name: &str) -> Arc<Vec<ResultColumn>> {
    Arc::new(vec![ResultColumn::text(name)])
}

impl Session {
    /// The catalog this session would plan against now.
    pub(super) fn catalog_stamp(&self) -> crate::catalog::CatalogStamp {
        self.slot
            .with_catalog(&self.primary.catalog, |view| view.stamp())
    }

    /// The fast plan of a statement, if it is a point statement: against the catalog of the
    /// past for a point read in the past, else against the catalog the transaction sees.
    ///
    /// Returns a boxed future built here, so that callers' futures (every statement's) hold a
    /// pointer rather than this one's state: in debug builds a future is built on the stack.
    fn recognize_fast<'a>(
        &'a self,
        prepared: &'a Prepared,
    ) -> futures::future::BoxFuture<'a, SqlResult<Option<FastPlan>>> {
        Box::pin(self.recognize_fast_inner(prepared))
    }

    async fn recognize_fast_inner(&self, prepared: &Prepared) -> SqlResult<Option<FastPlan>> {
        match past_read(&prepared.statement).or(prepared.as_of) {
            Some(lsn) => {
                let past = self.primary.catalog_at(lsn).await?;
                let view = crate::catalog::CatalogView {
                    committed: &past,
                    txn: None,
                    database: self.slot.database_name(),
                };
                Ok(fast_path::recognize(&prepared.statement, &view)?
                    .filter(|p| p.is_read_only())
                    .map(|p| FastPlan {
                        as_of: Some(lsn),
                        ..p
                    }))
            }
            None => self.slot.with_catalog(&self.primary.catalog, |view| {
                fast_path::recognize(&prepared.statement, view)
            }),
        }
    }

    /// Plans a statement: result columns and parameter types, without running it.
    ///
    /// Boxed, like [`Session::recognize_fast`]: planning's future is large, and every caller
    /// (running, re-planning, ALTER TABLE's internal statements) would otherwise carry it on the
    /// stack, which in debug builds nests deep enough to overflow a worker thread's.
    pub(super) fn plan_statement(
        &self,
        statement: Statement,
    ) -> futures::future::BoxFuture<'_, SqlResult<Prepared>> {
        Box::pin(self.plan_statement_inner(statement))
    }

    async fn plan_statement_inner(&self, mut statement: Statement) -> SqlResult<Prepared> {
        crate::sql_rewrite::unqualify_returning(&mut statement);
        let path_generation = self.slot.path_generation();
        let path = self.slot.search_path();
        let (statement, unqualified) =
            match self.slot.with_catalog(&self.primary.catalog, |view| {
                path.qualified(&statement, view)
            })? {
                Some(qualified) => (qualified, Some(Arc::new(statement))),
                None => (statement, None),
            };
        let statement = self.resolve_time_travel(statement).await?;
        self.slot.with_catalog(&self.primary.catalog, |view| {
            crate::views::reject_writes_to_views(&statement, view)
        })?;
        let mut prepared = Prepared {
            statement,
            unqualified,
            path_generation,
            kind: Kind::Other,
            plan: None,
            columns: None,
            param_types: Vec::new(),
            catalog: self.catalog_stamp(),
            as_of: self.slot.as_of(),
        };
        let fast = self.recognize_fast(&prepared).await?;
        if let Some(plan) = fast {
            if let FastKind::Select { projection, .. } = &plan.kind {
                let schema = plan.table.arrow_schema().project(projection)?;
                prepared.columns = Some(result_columns(
                    &schema,
                    query_column_names(&prepared.statement),
                ));
            }
            prepared.param_types = plan.param_types.clone();
            prepared.kind = Kind::Fast(Arc::new(plan));
            return Ok(prepared);
        }
        match &prepared.statement {
            Statement::Query(q) if !q.locks.is_empty() => {
                let expanded = self.expand_wildcards(&prepared.statement).await;
                let q = match &expanded {
                    Some(Statement::Query(expanded)) => expanded,
                    _ => q,
                };
                let mut unlocked = q.clone();
                unlocked.locks.clear();
                let described = self.logical_plan(&Statement::Query(unlocked)).await?;
                prepared.param_types = param_types(&described)?;
                let names = query_column_names(expanded.as_ref().unwrap_or(&prepared.statement));
                prepared.columns = Some(result_columns(&self.result_schema(&described), names));
                let (locking, how) = {
                    let d = DmlContext {
                        primary: &self.primary,
                        ctx: &self.ctx,
                        slot: &self.slot,
                    };
                    crate::dml::locking_query(&d, q)?
                };
                prepared.plan = Some(self.logical_plan(&locking).await?);
                prepared.kind = Kind::Locking(how);
            }
            Statement::Query(_) => {
                let rows = self.expand_row_values(&prepared.statement).await;
                let with_rows = rows.as_ref().unwrap_or(&prepared.statement);
                let expanded = self.expand_wildcards(with_rows).await;
                let statement = expanded.as_ref().unwrap_or(with_rows);
                let plan = self.logical_plan(statement).await?;
                prepared.param_types = param_types(&plan)?;
                let names = query_column_names(statement);
                prepared.columns = Some(result_columns(&self.result_schema(&plan), names));
                prepared.kind = Kind::Query;
                prepared.plan = Some(plan);
            }
            Statement::Insert(insert) => {
                let mut bare = insert.clone();
                let returning = bare.returning.take();
                let on = bare.on.take();
                // DataFusion plans no alias on an INSERT target; only ON CONFLICT uses it.
                bare.table_alias = None;
                let mut on_conflict = crate::upsert::OnConflictDo::Error;
                if let datafusion::sql::sqlparser::ast::TableObject::TableName(name) = &insert.table
                {
                    let (schema, table) = table_name(name)?;
                    let Some(def) = self.table(&schema, &table)? else {
                        return Err(SqlError::undefined_table(&table));
                    };
                    crate::insert_defaults::fill_defaults(&mut bare, &def)?;
                    crate::insert_defaults::typed_text_literals(&mut bare, &def)?;
                    match on {
                        None => {}
                        Some(OnInsert::OnConflict(c)) => {
                            let target = match &insert.table_alias {
                                Some(alias) => format!("{name} AS {}", alias.alias),
                                None => name.to_string(),
                            };
                            on_conflict =
                                crate::upsert::resolve(&def, &c, target, returning.clone())?;
                        }
                        Some(other) => return Err(SqlError::unsupported(other)),
                    }
                }
                let plan = self.logical_plan(&Statement::Insert(bare)).await?;
                prepared.param_types = param_types(&plan)?;
                if let (
                    Some(items),
                    datafusion::sql::sqlparser::ast::TableObject::TableName(table),
                ) = (&returning, &insert.table)
                {
                    prepared.columns = Some(self.returning_columns(table, items).await?);
                }
                prepared.kind = Kind::Insert {
                    on_conflict,
                    returning,
                };
                prepared.plan = Some(plan);
            }
            Statement::Update(_) | Statement::Delete(_) => {
                let finder = {
                    let d = DmlContext {
                        primary: &self.primary,
                        ctx: &self.ctx,
                        slot: &self.slot,
                    };
                    match &prepared.statement {
                        Statement::Update(u) => update_finder(&d, u)?,
                        Statement::Delete(d2) => delete_finder(&d, d2)?,
                        _ => unreachable!("matched above"),
                    }
                };
                let plan = self.logical_plan(&finder.query).await?;
                let mut types = param_types(&plan)?;
                for (&n, t) in &finder.param_hints {
                    if types.len() < n {
                        types.resize(n, None);
                    }
                    types[n - 1].get_or_insert_with(|| t.clone());
                }
                prepared.param_types = types;
                if finder.returning > 0 {
                    let schema = self.result_schema(&plan);
                    let all = schema.fields().len();
                    let returning =
                        schema.project(&((all - finder.returning)..all).collect::<Vec<_>>())?;
                    prepared.columns = Some(result_columns(
                        &returning,
                        Some(finder.returning_names.clone()),
                    ));
                }
                prepared.kind = Kind::UpdateOrDelete(Arc::new(finder));
                prepared.plan = Some(plan);
            }
            Statement::Explain {
                statement, analyze, ..
            } => {
                if !matches!(statement.as_ref(), Statement::Query(_))
                    && (*analyze || !matches!(statement.as_ref(), Statement::Insert(_)))
                {
                    return Err(SqlError::unsupported(format!(
                        "EXPLAIN of {}",
                        super::statement_kind(statement)
                    )));
                }
                let plan = self.logical_plan(statement).await?;
                prepared.param_types = param_types(&plan)?;
                prepared.plan = Some(plan);
                prepared.columns = Some(single_text_column("QUERY PLAN"));
                prepared.kind = Kind::Explain { analyze: *analyze };
            }
            Statement::ShowVariable { variable } => {
                let name = super::setting_name(variable);
                let canonical = self.show(&name)?.0;
                prepared.columns = Some(single_text_column(&canonical));
            }
            // EXECUTE returns what the statement it runs returns (a Describe says so).
            Statement::Execute { .. } => {
                if let Some(inner) = self.executed_by(&prepared.statement) {
                    prepared.columns = inner.columns.clone();
                }
            }
            _ => {}
        }
        Ok(prepared)
    }

    pub(super) async fn logical_plan(&self, statement: &Statement) -> SqlResult<LogicalPlan> {
        let mut statement = statement.clone();
        let path = self.slot.search_path();
        let enum_types = self.slot.with_catalog(&self.primary.catalog, |view| {
            crate::views::expand_views(&mut statement, view)?;
            crate::enums::rewrite_enum_casts(&mut statement, view, &path)?;
            SqlResult::Ok(crate::enums::types_by_id(view))
        })?;
        alias_duplicate_expressions(&mut statement);
        crate::query_forms::rewrite(&mut statement);
        crate::json_agg::rewrite_json_aggregates(&mut statement);
        crate::pg_catalog::rewrite_catalog_syntax(&mut statement);
        let state = self.ctx.state();
        let plan = state
            .statement_to_plan(DFStatement::Statement(Box::new(statement)))
            .await?;
        let plan = crate::cast_parameters::type_cast_parameters(plan)?;
        let plan = crate::enums::order_by_declaration(plan, &enum_types)?;
        Ok(crate::int_literals::narrow_integer_literals(plan)?)
    }

    /// The schema of what `plan` returns, as it runs: after DataFusion's analyzer (type
    /// coercion can change a column's type, as in `SELECT 1 UNION SELECT 3000000000`). A plan
    /// the analyzer cannot take yet (an untyped parameter) is described as planned.
    pub(super) fn result_schema(&self, plan: &LogicalPlan) -> datafusion::arrow::datatypes::Schema {
        let state = self.ctx.state();
        match state
            .analyzer()
            .execute_and_check(plan.clone(), state.config_options(), |_, _| {})
        {
            Ok(analyzed) => analyzed.schema().as_arrow().clone(),
            Err(_) => plan.schema().as_arrow().clone(),
        }
    }

    /// The result columns of `RETURNING items` for an INSERT into `table`.
    async fn returning_columns(
        &self,
        table: &datafusion::sql::sqlparser::ast::ObjectName,
        items: &[SelectItem],
    ) -> SqlResult<Arc<Vec<ResultColumn>>> {
        let list: Vec<String> = items.iter().map(|i| i.to_string()).collect();
        let (_, name) = table_name(table)?;
        let sql = format!(
            "SELECT {} FROM {table} AS \"{}\"",
            list.join(", "),
            name.replace('"', "\"\"")
        );
        let mut statements = self.parse(&sql)?;
        let plan = self.logical_plan(&statements.remove(0)).await?;
        let names = query_column_names(&self.parse(&sql)?.remove(0));
        Ok(result_columns(&self.result_schema(&plan), names))
    }
}

/// Inferred types of `$1..$n`, in order.
pub(super) fn param_types(plan: &LogicalPlan) -> SqlResult<Vec<Option<Field>>> {
    let types = plan.get_parameter_fields()?;
    let mut indexed: Vec<(usize, Option<Field>)> = types
        .into_iter()
        .filter_map(|(name, t)| {
            name.strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .map(|n| (n, t.map(|f| f.as_ref().clone())))
        })
        .collect();
    indexed.sort_by_key(|(n, _)| *n);
    let count = indexed.last().map_or(0, |(n, _)| *n);
    let mut out = vec![None; count];
    for (n, t) in indexed {
        if n >= 1 {
            out[n - 1] = t;
        }
    }
    Ok(out)
}
