//! Running one prepared statement in the session's current transaction.

use crate::search_path::SearchPath;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{collect, displayable, execute_stream};
use datafusion::sql::sqlparser::ast::{
    AlterIndexOperation, Expr as SqlExpr, ObjectName, ObjectType, Reset, SchemaName, Set,
    Statement, UserDefinedTypeRepresentation, Value,
};

use super::block::Notice;
use super::prepare::{Kind, Prepared};
use super::{setting_name, statement_kind, Output, Session};
use crate::ddl;
use crate::dml::{self, DmlContext, DmlError, DmlOutcome};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::fast_path::{self, FastKind, FastOutcome, FastPlan};
use crate::pg_encode::ResultColumn;

/// How many times a READ COMMITTED statement restarts before it gives up with 40001.
const MAX_STATEMENT_RESTARTS: usize = 100;

impl Session {
    pub(super) async fn run(
        &self,
        prepared: &Prepared,
        params: Vec<ScalarValue>,
    ) -> SqlResult<Output> {
        let planned = matches!(
            prepared.kind,
            Kind::Query
                | Kind::Locking(_)
                | Kind::Insert { .. }
                | Kind::UpdateOrDelete(_)
                | Kind::Explain { .. }
        );
        let moved_in_time =
            prepared.as_of != self.slot.as_of() && !matches!(prepared.kind, Kind::Other);
        let path_changed = prepared.path_generation != self.slot.path_generation();
        if (planned && prepared.catalog != self.catalog_stamp()) || moved_in_time || path_changed {
            // DDL since the plan was made (a prepared statement outliving a schema change), the
            // session moved in time (`SET strata.as_of`) or changed its `search_path` since.
            let replanned = self.plan_statement(prepared.source().clone()).await?;
            return Box::pin(self.run(&replanned, params)).await;
        }
        match &prepared.kind {
            Kind::Locking(how) => self.run_locking(prepared, *how, params).await,
            Kind::Query => {
                let plan = bind(prepared, params)?;
                let physical = self.ctx.state().create_physical_plan(&plan).await?;
                let stream = execute_stream(physical, self.ctx.task_ctx())?;
                let columns = prepared
                    .columns
                    .clone()
                    .expect("queries have result columns");
                Ok(Output::Rows {
                    columns,
                    stream,
                    tag: "SELECT",
                })
            }
            Kind::Insert { .. } | Kind::UpdateOrDelete(_) => self.run_dml(prepared, params).await,
            Kind::Fast(plan) => self.run_fast(prepared, plan, params).await,
            Kind::Explain { analyze } => {
                let plan = bind(prepared, params)?;
                let physical = self.ctx.state().create_physical_plan(&plan).await?;
                if *analyze {
                    collect(physical.clone(), self.ctx.task_ctx()).await?;
                }
                let text = displayable(physical.as_ref()).indent(*analyze).to_string();
                let lines: Vec<&str> = text.lines().collect();
                let columns = prepared
                    .columns
                    .clone()
                    .expect("EXPLAIN has a result column");
                Ok(rows_output(
                    columns,
                    vec![Arc::new(StringArray::from(lines)) as ArrayRef],
                    "EXPLAIN",
                ))
            }
            Kind::Other => self.run_other(prepared).await,
        }
    }

    /// INSERT, UPDATE or DELETE; at READ COMMITTED a statement that met a row changed after its
    /// snapshot undoes its writes and runs again on a new snapshot.
    async fn run_dml(&self, prepared: &Prepared, params: Vec<ScalarValue>) -> SqlResult<Output> {
        let plan = bind(prepared, params.clone())?;
        let d = DmlContext {
            primary: &self.primary,
            ctx: &self.ctx,
            slot: &self.slot,
        };
        let mark = self.slot.with(|t| t.mark()).map_err(SqlError::from)?;
        for _ in 0..MAX_STATEMENT_RESTARTS {
            let result = match &prepared.kind {
                Kind::Insert {
                    on_conflict,
                    returning,
                } => dml::insert(&d, &plan, on_conflict, returning.as_deref(), &params).await,
                Kind::UpdateOrDelete(finder) => dml::update_or_delete(&d, finder, &plan).await,
                _ => unreachable!("only DML comes here"),
            };
            match result {
                Ok(outcome) => return Ok(self.dml_output(prepared, outcome)),
                Err(DmlError::Sql(e)) => return Err(e),
                Err(DmlError::Restart) => {
                    self.slot
                        .with(|t| {
                            t.rollback_to(mark);
                            t.refresh_snapshot();
                        })
                        .map_err(SqlError::from)?;
                    if prepared.catalog != self.catalog_stamp() {
                        // The table changed under the statement: plan it again.
                        return Box::pin(self.run(prepared, params)).await;
                    }
                }
            }
        }
        Err(SqlError::new(
            sqlstate::SERIALIZATION_FAILURE,
            "could not serialize access due to concurrent update",
        )
        .with_detail("The statement was restarted too many times because of concurrent updates."))
    }

    /// `SELECT … FOR UPDATE / FOR SHARE`: finds the rows, locks them until the transaction ends
    /// and returns them. A row another transaction changed after the snapshot makes the
    /// statement run again on a new snapshot (READ COMMITTED, where PostgreSQL returns the
    /// row's newest version) or fail with 40001 (REPEATABLE READ).
    async fn run_locking(
        &self,
        prepared: &Prepared,
        how: dml::RowLocking,
        params: Vec<ScalarValue>,
    ) -> SqlResult<Output> {
        let columns = prepared
            .columns
            .clone()
            .expect("queries have result columns");
        let shared = how.mode == dml::RowLock::Share;
        for _ in 0..MAX_STATEMENT_RESTARTS {
            let plan = bind(prepared, params.clone())?;
            let physical = self.ctx.state().create_physical_plan(&plan).await?;
            let batches = collect(physical, self.ctx.task_ctx()).await?;
            // Which rows to return (SKIP LOCKED leaves some out), or None to run again.
            let kept = self
                .with_txn(async |txn| {
                    let mut current = true;
                    let mut kept = Vec::with_capacity(batches.len());
                    let mut locked = 0usize;
                    for batch in &batches {
                        let keys = batch.column(0).as_binary::<i32>();
                        let mut keep = vec![false; batch.num_rows()];
                        for (row, k) in keep.iter_mut().enumerate() {
                            if how.limit.is_some_and(|l| locked >= how.offset + l) {
                                break;
                            }
                            let key = bytes::Bytes::copy_from_slice(keys.value(row));
                            let outcome = match how.wait {
                                dml::LockWait::Block if shared => {
                                    Some(txn.lock_shared(&key).await?)
                                }
                                dml::LockWait::Block => Some(txn.lock(&key).await?),
                                _ => txn.try_lock(&key, shared)?,
                            };
                            let Some(outcome) = outcome else {
                                if how.wait == dml::LockWait::Fail {
                                    return Err(SqlError::new(
                                        sqlstate::LOCK_NOT_AVAILABLE,
                                        "could not obtain lock on row",
                                    ));
                                }
                                continue;
                            };
                            current &= outcome == crate::txn::LockOutcome::Current;
                            *k = locked >= how.offset;
                            locked += 1;
                        }
                        kept.push(keep);
                    }
                    if current {
                        return Ok(Some(kept));
                    }
                    if txn.isolation() != crate::txn::Isolation::ReadCommitted {
                        return Err(SqlError::new(
                            sqlstate::SERIALIZATION_FAILURE,
                            "could not serialize access due to concurrent update",
                        ));
                    }
                    txn.refresh_snapshot();
                    Ok(None)
                })
                .await?;
            if let Some(kept) = kept {
                let rows = batches
                    .iter()
                    .zip(kept)
                    .map(|(b, keep)| {
                        let b = b.project(&(1..b.num_columns()).collect::<Vec<_>>())?;
                        datafusion::arrow::compute::filter_record_batch(
                            &b,
                            &datafusion::arrow::array::BooleanArray::from(keep),
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(Output::Rows {
                    columns,
                    stream: batches_stream(rows),
                    tag: "SELECT",
                });
            }
        }
        Err(SqlError::new(
            sqlstate::SERIALIZATION_FAILURE,
            "could not serialize access due to concurrent update",
        )
        .with_detail("The statement was restarted too many times because of concurrent updates."))
    }

    /// A point statement. Its plan names the table by id: if DDL replaced the table since (a
    /// TRUNCATE, a DROP and CREATE), the statement is planned again.
    async fn run_fast(
        &self,
        prepared: &Prepared,
        plan: &FastPlan,
        params: Vec<ScalarValue>,
    ) -> SqlResult<Output> {
        if !self.fast_plan_current(plan) {
            let replanned = self.plan_statement(prepared.source().clone()).await?;
            return Box::pin(self.run(&replanned, params)).await;
        }
        let primary = &self.primary;
        let outcome = self
            .with_txn(async |txn| fast_path::execute(plan, primary, txn, &params).await)
            .await?;
        Ok(match outcome {
            FastOutcome::Rows(batch) => Output::Rows {
                columns: prepared
                    .columns
                    .clone()
                    .expect("a fast SELECT has result columns"),
                stream: batches_stream(vec![batch]),
                tag: "SELECT",
            },
            FastOutcome::Count(n) => Output::command(match &plan.kind {
                FastKind::Insert { .. } => format!("INSERT 0 {n}"),
                _ => format!("UPDATE {n}"),
            }),
        })
    }

    fn dml_output(&self, prepared: &Prepared, outcome: DmlOutcome) -> Output {
        let verb = match &prepared.statement {
            Statement::Insert(_) => "INSERT 0",
            Statement::Update(_) => "UPDATE",
            _ => "DELETE",
        };
        match (outcome.returning, &prepared.columns) {
            (Some(batches), Some(columns)) => Output::Rows {
                columns: columns.clone(),
                stream: batches_stream(batches),
                tag: verb,
            },
            _ => Output::command(format!("{verb} {}", outcome.count)),
        }
    }

    /// Statements run from their syntax: DDL and session settings.
    async fn run_other(&self, prepared: &Prepared) -> SqlResult<Output> {
        match &prepared.statement {
            Statement::CreateTable(ct) if ct.query.is_some() => {
                let query = ct.query.as_ref().expect("checked");
                self.create_table_as(ct, query).await
            }
            Statement::CreateTable(ct) => {
                let outcome = self
                    .with_txn(async |txn| {
                        ddl::create_table(&self.ctx, &self.primary, txn, ct).await
                    })
                    .await?;
                let (schema, table) = crate::names::table_name(&ct.name)?;
                if let Some(def) = self.table(&schema, &table)? {
                    crate::checks::validate(&self.ctx, &def)?;
                    crate::generated::validate(&self.ctx, &def)?;
                }
                Ok(ddl_output(outcome))
            }
            Statement::Drop {
                object_type: ObjectType::Table,
                if_exists,
                names,
                cascade,
                ..
            } => {
                let outcome = self
                    .with_txn(async |txn| {
                        ddl::drop_tables(&self.primary, txn, names, *if_exists, *cascade).await
                    })
                    .await?;
                Ok(ddl_output(outcome))
            }
            Statement::CreateSequence {
                temporary,
                if_not_exists,
                name,
                data_type,
                sequence_options,
                owned_by,
            } => {
                if *temporary {
                    return Err(SqlError::unsupported("CREATE TEMPORARY SEQUENCE"));
                }
                let outcome = self
                    .with_txn(async |txn| {
                        ddl::sequence::create_sequence(
                            &self.primary,
                            txn,
                            name,
                            *if_not_exists,
                            data_type.as_ref(),
                            sequence_options,
                            owned_by.as_ref(),
                        )
                        .await
                    })
                    .await?;
                Ok(ddl_output(outcome))
            }
            Statement::Drop {
                object_type: ObjectType::Sequence,
                if_exists,
                names,
                cascade,
                ..
            } => {
                let outcome = self
                    .with_txn(async |txn| {
                        ddl::sequence::drop_sequences(
                            &self.primary,
                            txn,
                            names,
                            *if_exists,
                            *cascade,
                        )
                        .await
                    })
                    .await?;
                Ok(ddl_output(outcome))
            }
            Statement::CreateDatabase {
                db_name,
                if_not_exists,
                ..
            } => {
                let name = self.database_statement("CREATE DATABASE", db_name)?;
                // Boxed, as are the other schema and database statements: their futures are
                // large, and `run_other`'s (on the stack in debug builds) would grow by them.
                let outcome = Box::pin(self.with_txn(async |txn| {
                    ddl::database::create_database(&self.primary, txn, &name, *if_not_exists).await
                }))
                .await?;
                Ok(ddl_output(outcome))
            }
            Statement::Drop {
                object_type: ObjectType::Database,
                if_exists,
                names,
                ..
            } => {
                let [db_name] = names.as_slice() else {
                    return Err(SqlError::syntax("DROP DATABASE drops one database"));
                };
                let name = self.database_statement("DROP DATABASE", db_name)?;
                let connections = self.primary.connections.clone();
                let outcome = Box::pin(self.with_txn(async |txn| {
                    ddl::database::drop_database(
                        &self.primary,
                        &connections,
                        txn,
                        &name,
                        *if_exists,
                    )
                    .await
                }))
                .await?;
                Ok(ddl_output(outcome))
            }
            Statement::CreateSchema {
                schema_name,
                if_not_exists,
                ..
            } => {
                let name = match schema_name {
                    SchemaName::Simple(name) | SchemaName::NamedAuthorization(name, _) => {
                        match name.0.as_slice() {
                            [part] => part.as_ident().map(crate::names::normalize),
                            _ => None,
                        }
                        .ok_or_else(|| SqlError::syntax(format!("invalid schema name {name}")))?
                    }
                    SchemaName::UnnamedAuthorization(role) => crate::names::normalize(role),
                };
                let outcome = Box::pin(self.with_txn(async |txn| {
                    ddl::schema::create_schema(&self.primary, txn, &name, *if_not_exists).await
                }))
                .await?;
                Ok(ddl_output(outcome))
            }
            Statement::Drop {
                object_type: ObjectType::Schema,
                if_exists,
                names,
                cascade,
                ..
            } => {
                let outcome = Box::pin(self.with_txn(async |txn| {
                    ddl::schema::drop_schemas(&self.primary, txn, names, *if_exists, *cascade).await
                }))
                .await?;
                Ok(ddl_output(outcome))
            }
            Statement::CreateView(create) => self.create_view(create).await,
            Statement::CreateType {
                name,
                representation: Some(UserDefinedTypeRepresentation::Enum { labels }),
            } => {
                let outcome = Box::pin(self.with_txn(async |txn| {
                    ddl::enum_type::create_enum_type(&self.primary, txn, name, labels).await
                }))
                .await?;
                Ok(ddl_output(outcome))
            }
            Statement::CreateType { .. } => Err(SqlError::unsupported(
                "CREATE TYPE other than AS ENUM (composite, range and base types)",
            )),
            Statement::Comment {
                object_type,
                object_name,
                comment,
                ..
            } => {
                let outcome = Box::pin(self.with_txn(async |txn| {
                    ddl::comment::comment_on(
                        &self.primary,
                        txn,
                        object_type,
                        object_name,
                        comment.as_deref(),
                    )
                    .await
                }))
                .await?;
                Ok(ddl_output(outcome))
            }
            Statement::AlterType(alter) => {
                let outcome = Box::pin(self.with_txn(async |txn| {
                    ddl::enum_type::alter_enum_type(
                        &self.primary,
                        txn,
                        &alter.name,
                        &alter.operation,
                    )
                    .await
                }))
                .await?;
                Ok(ddl_output(outcome))
            }
            Statement::Drop {
                object_type: ObjectType::Type,
                if_exists,
                names,
                cascade,
                ..
            } => {
                let outcome = Box::pin(self.with_txn(async |txn| {
                    ddl::enum_type::drop_enum_types(&self.primary, txn, names, *if_exists, *cascade)
                        .await
                }))
                .await?;
                Ok(ddl_output(outcome))
            }
            Statement::Drop {
                object_type: ObjectType::View,
                if_exists,
                names,
                cascade,
                ..
            } => {
                let outcome = self
                    .with_txn(async |txn| {
                        ddl::view::drop_views(&self.primary, txn, names, *if_exists, *cascade).await
                    })
                    .await?;
                Ok(ddl_output(outcome))
            }
            Statement::AlterIndex {
                name,
                operation: AlterIndexOperation::RenameIndex { index_name },
            } => {
                let (schema, old) = crate::names::table_name(name)?;
                let (_, new) = crate::names::table_name(index_name)?;
                self.with_txn(async |txn| {
                    ddl::index::rename_index(&self.primary, txn, &schema, &old, &new).await
                })
                .await?;
                Ok(Output::command("ALTER INDEX"))
            }
            Statement::Lock(lock) => {
                if !self.in_transaction_block() {
                    return Err(SqlError::new(
                        sqlstate::NO_ACTIVE_SQL_TRANSACTION,
                        "LOCK TABLE can only be used in transaction blocks",
                    ));
                }
                self.with_txn(async |txn| ddl::lock::lock_tables(&self.primary, txn, lock).await)
                    .await?;
                Ok(Output::command("LOCK TABLE"))
            }
            Statement::CreateIndex(ci) => {
                let (table, new) = ddl::index::NewIndex::from_create_index(ci)?;
                let (schema, name) = crate::names::table_name(&table)?;
                Ok(ddl_output(self.add_index(&schema, &name, new).await?))
            }
            Statement::Drop {
                object_type: ObjectType::Index,
                if_exists,
                names,
                ..
            } => {
                let outcome = self
                    .with_txn(async |txn| {
                        ddl::index::drop_indexes(&self.primary, txn, names, *if_exists).await
                    })
                    .await?;
                Ok(ddl_output(outcome))
            }
            Statement::Truncate(t) => {
                let names: Vec<_> = t.table_names.iter().map(|t| t.name.clone()).collect();
                let outcome = self
                    .with_txn(async |txn| ddl::truncate(&self.primary, txn, &names).await)
                    .await?;
                Ok(ddl_output(outcome))
            }
            Statement::AlterTable(alter) => self.alter_table(alter).await,
            Statement::Copy { .. } => self.copy_out(&prepared.statement).await,
            // Nothing to vacuum or analyze: storage is immutable layers, and there are no
            // planner statistics yet. Accepted so that tools that run them work.
            Statement::Vacuum(_) => Ok(Output::command("VACUUM")),
            Statement::Analyze(_) => Ok(Output::command("ANALYZE")),
            Statement::Set(set) if is_as_of(set) => self.set_as_of(set).await,
            Statement::Set(set) if super::constraints::is_set_constraints(set) => {
                self.set_constraints(set).await
            }
            Statement::Set(set) => self.set(set),
            Statement::ShowVariable { variable } => {
                let (_, value) = self.show(&setting_name(variable))?;
                let columns = prepared.columns.clone().expect("SHOW has a result column");
                Ok(rows_output(
                    columns,
                    vec![Arc::new(StringArray::from(vec![value])) as ArrayRef],
                    "SHOW",
                ))
            }
            Statement::Reset(reset) => {
                let mut settings = self.settings.lock().expect("settings lock");
                let status = match &reset.reset {
                    Reset::ALL => {
                        settings.reset_all();
                        None
                    }
                    Reset::ConfigurationParameter(name) => settings.reset(&name.to_string())?,
                };
                if settings.get(AS_OF_SETTING)?.1.is_empty() {
                    self.slot.set_as_of(self.primary.pinned);
                }
                self.slot
                    .set_search_path(SearchPath::from_settings(&settings));
                let parameter_status = match status {
                    Some(name) => Some((name.clone(), settings.get(&name)?.1)),
                    None => None,
                };
                Ok(Output::Command {
                    tag: "RESET".into(),
                    notice: None,
                    parameter_status,
                })
            }
            Statement::Prepare {
                name,
                data_types,
                statement,
            } => {
                Box::pin(self.sql_prepare(
                    name,
                    data_types,
                    statement,
                    prepared.source().to_string(),
                ))
                .await
            }
            Statement::Execute {
                name: Some(name),
                parameters,
                immediate: false,
                into,
                using,
                ..
            } if into.is_empty() && using.is_empty() => {
                let name = match name.0.as_slice() {
                    [part] => part.as_ident().map(crate::names::normalize),
                    _ => None,
                }
                .ok_or_else(|| SqlError::syntax(format!("invalid statement name {name}")))?;
                Box::pin(self.sql_execute(&name, parameters)).await
            }
            other => Err(SqlError::unsupported(statement_kind(other))),
        }
    }

    /// `SET strata.as_of = <timestamp or LSN>`: every later read of the session sees the
    /// database as it was then, and writes are refused; `DEFAULT` or an empty value returns to
    /// the present (a read-only compute's pinned LSN). The point is resolved to an LSN now,
    /// once.
    async fn set_as_of(&self, set: &Set) -> SqlResult<Output> {
        let Set::SingleAssignment { values, .. } = set else {
            return Err(SqlError::unsupported(format!("{set}")));
        };
        let [point] = values.as_slice() else {
            return Err(SqlError::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                "SET strata.as_of takes one value: a timestamp or an LSN",
            ));
        };
        let text = setting_value(point).unwrap_or_else(|_| point.to_string());
        let present = text.is_empty() || text.eq_ignore_ascii_case("default");
        let lsn = if present {
            None
        } else {
            Some(self.resolve_point(point).await?)
        };
        // The present of a read-only compute is its pinned LSN.
        self.slot.set_as_of(lsn.or(self.primary.pinned));
        let mut settings = self.settings.lock().expect("settings lock");
        match lsn {
            Some(lsn) => settings.set(AS_OF_SETTING, &format!("{text} (LSN {lsn})"))?,
            None => settings.reset(AS_OF_SETTING)?,
        };
        Ok(Output::command("SET"))
    }

    /// Runs `f` on the current transaction, taken out of the slot while it awaits.
    pub(super) async fn with_txn<T>(
        &self,
        f: impl AsyncFnOnce(&mut crate::txn::Transaction) -> SqlResult<T>,
    ) -> SqlResult<T> {
        let mut txn = self
            .slot
            .take()
            .ok_or_else(|| SqlError::internal("no transaction for a statement"))?;
        let result = f(&mut txn).await;
        self.slot.put(txn);
        result
    }

    /// The database a CREATE or DROP DATABASE names; neither runs inside a transaction block,
    /// as in PostgreSQL.
    fn database_statement(&self, what: &str, name: &ObjectName) -> SqlResult<String> {
        if self.in_block() {
            return Err(SqlError::new(
                sqlstate::ACTIVE_SQL_TRANSACTION,
                format!("{what} cannot run inside a transaction block"),
            ));
        }
        match name.0.as_slice() {
            [part] => part.as_ident().map(crate::names::normalize),
            _ => None,
        }
        .ok_or_else(|| SqlError::syntax(format!("invalid database name {name}")))
    }

    fn set(&self, set: &Set) -> SqlResult<Output> {
        let Set::SingleAssignment {
            variable, values, ..
        } = set
        else {
            return Err(SqlError::unsupported(format!("{set}")));
        };
        let name = variable.to_string();
        let value = values
            .iter()
            .map(setting_value)
            .collect::<SqlResult<Vec<_>>>()?
            .join(", ");
        let mut settings = self.settings.lock().expect("settings lock");
        let reported = if value.eq_ignore_ascii_case("default") {
            settings.reset(&name)?
        } else {
            settings.set(&name, &value)?
        };
        self.slot
            .set_search_path(SearchPath::from_settings(&settings));
        let parameter_status = match reported {
            Some(canonical) => Some((canonical.clone(), settings.get(&canonical)?.1)),
            None => None,
        };
        Ok(Output::Command {
            tag: "SET".into(),
            notice: None,
            parameter_status,
        })
    }
}

pub(super) fn ddl_output(outcome: ddl::DdlOutcome) -> Output {
    Output::Command {
        tag: outcome.tag.into(),
        notice: outcome
            .notice
            .map(|n| Notice::info(sqlstate::SUCCESSFUL_COMPLETION, n).with_detail(outcome.detail)),
        parameter_status: None,
    }
}

fn bind(prepared: &Prepared, params: Vec<ScalarValue>) -> SqlResult<LogicalPlan> {
    let plan = prepared
        .plan
        .clone()
        .expect("DataFusion statements are planned");
    if params.is_empty() {
        return Ok(plan);
    }
    Ok(plan.with_param_values(ParamValues::from(params))?)
}

/// The setting that pins a session's reads in the past.
const AS_OF_SETTING: &str = "strata.as_of";

fn is_as_of(set: &Set) -> bool {
    matches!(set, Set::SingleAssignment { variable, .. } if variable.to_string().eq_ignore_ascii_case(AS_OF_SETTING))
}

fn setting_value(e: &SqlExpr) -> SqlResult<String> {
    match e {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Ok(s.clone()),
            Value::Number(n, _) => Ok(n.clone()),
            Value::Boolean(b) => Ok(if *b { "on" } else { "off" }.into()),
            other => Ok(other.to_string()),
        },
        SqlExpr::Identifier(id) => Ok(id.value.clone()),
        SqlExpr::UnaryOp { op, expr } => Ok(format!("{op}{}", setting_value(expr)?)),
        other => Err(SqlError::new(
            sqlstate::SYNTAX_ERROR,
            format!("invalid value for a setting: {other}"),
        )),
    }
}

fn batches_stream(batches: Vec<RecordBatch>) -> datafusion::execution::SendableRecordBatchStream {
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| Arc::new(Schema::empty()));
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::iter(batches.into_iter().map(Ok)),
    ))
}

fn rows_output(
    columns: Arc<Vec<ResultColumn>>,
    arrays: Vec<ArrayRef>,
    tag: &'static str,
) -> Output {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, c.data_type.clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema, arrays).expect("arrays match their columns");
    Output::Rows {
        columns,
        stream: batches_stream(vec![batch]),
        tag,
    }
}
