//! One client session: parses SQL, plans it with DataFusion, runs it in a transaction.
//!
//! Queries, INSERT, UPDATE and DELETE are planned by DataFusion over Strata tables; DDL and
//! session commands run here. Outside a transaction block each statement is its own transaction
//! (autocommit); `BEGIN` … `COMMIT` groups statements into one (see [`block`]).

mod alter;
mod block;
mod constraints;
mod copy;
mod create_table_as;
mod prepare;
mod row_values;
mod run;
mod sql_prepare;
mod time_travel;
mod views;
mod wildcards;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::sql::sqlparser::ast::{Ident, Statement};
use pgwire::messages::response::TransactionStatus;

use crate::bytea::ByteaIn;
use crate::catalog::{catalog_range, DEFAULT_DATABASE, DEFAULT_SCHEMA};
use crate::df_catalog::StrataCatalogProvider;
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::pg_catalog::CatalogHandle;
use crate::pg_encode::ResultColumn;
use crate::primary::Primary;
use crate::settings::Settings;
use crate::txn::{Isolation, Transaction};
use crate::txn_slot::TxnSlot;

pub use block::Notice;
pub use prepare::{Kind, Prepared};
pub use time_travel::PointCache;

/// What running a statement produced.
pub enum Output {
    Rows {
        columns: Arc<Vec<ResultColumn>>,
        stream: SendableRecordBatchStream,
        tag: &'static str,
    },
    Command {
        tag: String,
        notice: Option<Notice>,
        parameter_status: Option<(String, String)>,
    },
    /// `COPY … FROM STDIN`: the client sends the data next.
    CopyIn { columns: usize, binary: bool },
    /// `COPY … TO STDOUT`: these rows, in this format.
    CopyOut {
        columns: Arc<Vec<crate::pg_encode::ResultColumn>>,
        stream: SendableRecordBatchStream,
        options: crate::copy::CopyOptions,
    },
}

impl Output {
    pub(crate) fn command(tag: impl Into<String>) -> Self {
        Output::Command {
            tag: tag.into(),
            notice: None,
            parameter_status: None,
        }
    }
}

/// An explicit transaction block (BEGIN … COMMIT); its transaction lives in the slot.
#[derive(Debug, Default)]
struct Block {
    /// The implicit transaction of a multi-statement query string: it ends with the query.
    implicit: bool,
    /// A statement failed: everything but ROLLBACK is refused until the block ends.
    failed: bool,
    /// Savepoints, innermost last, with the transaction's undo position when each was set.
    savepoints: Vec<(String, crate::txn::Mark)>,
}

pub struct Session {
    primary: Arc<Primary>,
    ctx: SessionContext,
    slot: Arc<TxnSlot>,
    settings: Arc<Mutex<Settings>>,
    /// The backend process id the client was given, for `pg_backend_pid()`.
    pid: Arc<std::sync::atomic::AtomicI32>,
    block: Mutex<Option<Block>>,
    /// `SET TRANSACTION` (or BEGIN's) isolation for the next transaction, if not the default.
    next_isolation: Mutex<Option<Isolation>>,
    /// A `COPY … FROM STDIN` waiting for its data.
    copy_in: Mutex<Option<copy::CopyIn>>,
    /// Plans of simple-protocol queries by normalized text (`None`: not a fast statement).
    shapes: Mutex<HashMap<String, Option<Arc<Prepared>>>>,
    /// Counts the cancel requests for this session, so that a statement still computing its
    /// rows can see one arrive (see [`Session::cancelled`]).
    cancels: Arc<tokio::sync::watch::Sender<u64>>,
    /// When the running statement's `statement_timeout` ends it, if it has one.
    statement_deadline: Mutex<Option<tokio::time::Instant>>,
    /// The connection's named prepared statements.
    named: Arc<crate::named_statements::NamedStatements>,
    /// Statements prepared with SQL `PREPARE`, by name.
    sql_prepared: Mutex<HashMap<String, Arc<Prepared>>>,
}

/// Whether a statement changes data or schema (refused while the session reads the past).
fn writes_data(prepared: &Prepared) -> bool {
    match &prepared.kind {
        Kind::Query | Kind::Explain { .. } => false,
        Kind::Fast(plan) => !plan.is_read_only(),
        Kind::Insert { .. } | Kind::UpdateOrDelete(_) | Kind::Locking(_) => true,
        Kind::Other => !matches!(
            prepared.statement,
            Statement::Set(_)
                | Statement::ShowVariable { .. }
                | Statement::Reset(_)
                | Statement::Query(_)
                | Statement::Explain { .. }
                | Statement::Copy { to: true, .. }
                | Statement::Discard { .. }
                | Statement::Deallocate { .. }
                | Statement::Prepare { .. }
        ),
    }
}

/// Simple-protocol statement shapes remembered per session; the cache starts over when full.
const MAX_SHAPES: usize = 1024;

impl Session {
    pub fn new(primary: Arc<Primary>, settings: Settings) -> Self {
        let slot = Arc::new(TxnSlot::default());
        slot.set_as_of(primary.pinned);
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema(DEFAULT_DATABASE, DEFAULT_SCHEMA)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(false)
            .with_target_partitions(2)
            .with_extension(slot.clone());
        let options = config.options_mut();
        options.sql_parser.map_string_types_to_utf8view = false;
        options.sql_parser.enable_ident_normalization = true;
        // `1.5` is a numeric in PostgreSQL, not a float: 0.1 + 0.2 = 0.3.
        options.sql_parser.parse_float_as_decimal = true;
        options.execution.time_zone = Some("+00:00".to_string());
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(crate::ordered_scan::OrderedScan))
            .with_optimizer_rule(Arc::new(crate::subquery_apply::CorrelatedSubqueryApply))
            .with_query_planner(Arc::new(crate::subquery_apply::StrataQueryPlanner))
            .with_type_planner(Arc::new(crate::cast_parameters::OidTypePlanner))
            .build();
        let mut state = state;
        datafusion::execution::FunctionRegistry::register_expr_planner(
            &mut state,
            Arc::new(crate::interval_scale::IntervalScalePlanner),
        )
        .expect("registering an expression planner cannot fail");
        datafusion::execution::FunctionRegistry::register_expr_planner(
            &mut state,
            Arc::new(crate::date_interval::DateIntervalPlanner),
        )
        .expect("registering an expression planner cannot fail");
        let ctx = SessionContext::new_with_state(state);
        ctx.add_analyzer_rule(Arc::new(crate::int_arithmetic::CheckedIntegerArithmetic));
        ctx.add_analyzer_rule(Arc::new(crate::pg_casts::PgCastRule));
        ctx.add_analyzer_rule(Arc::new(crate::interval_order::IntervalOrderRule));
        ctx.add_analyzer_rule(Arc::new(crate::subquery_apply::UnboundedSubqueryApply));
        ctx.register_udf(ByteaIn::udf().as_ref().clone());
        ctx.register_udf(crate::like_escape::udf());
        ctx.register_udf(crate::numeric_scale::udf());
        ctx.register_udf(crate::enums::enum_input_function());
        for aggregate in crate::pg_aggregates::all() {
            ctx.register_udaf(aggregate);
        }
        // It rewrites `sum(x)` beside a DISTINCT aggregate into `sum(sum(x))`, which is not
        // the same type when `sum` of an integer widens it (int4 → int8 → numeric).
        ctx.remove_optimizer_rule(crate::pg_aggregates::SUM_SPLITTING_RULE);
        ctx.register_udtf(
            crate::series::NAME,
            Arc::new(crate::series::GenerateSeries::new()),
        );
        let settings = Arc::new(Mutex::new(settings));
        let pid = Arc::new(std::sync::atomic::AtomicI32::new(0));
        let named = Arc::new(crate::named_statements::NamedStatements::default());
        let handle = CatalogHandle {
            primary: primary.clone(),
            slot: slot.clone(),
            settings: settings.clone(),
            pid: pid.clone(),
            sequence_values: Default::default(),
            prepared: named.clone(),
        };
        for function in crate::pg_catalog::functions(&handle)
            .into_iter()
            .chain(crate::sequence::functions::all(&handle))
            .chain(crate::advisory_functions::all(&handle))
            .chain(crate::uuid_functions::all())
            .chain(crate::json::all())
            .chain([crate::json_sets::udf()])
            .chain(crate::json_build::all())
            .chain(crate::json_agg::all())
            .chain(crate::format_function::all())
            .chain(crate::age_function::all())
            .chain(crate::to_char_function::all())
            .chain(crate::to_date_function::all(
                ctx.state()
                    .scalar_functions()
                    .get("to_timestamp")
                    .cloned()
                    .expect("DataFusion registers to_timestamp"),
            ))
            .chain(crate::text_input::all())
            .chain(crate::clock::all(&ctx))
            .chain([crate::make_interval::udf()])
        {
            ctx.register_udf(function);
        }
        register_postgres_names(&ctx);
        ctx.register_catalog(
            DEFAULT_DATABASE,
            Arc::new(StrataCatalogProvider::new(handle)),
        );
        Self {
            primary,
            ctx,
            slot,
            settings,
            pid,
            block: Mutex::new(None),
            next_isolation: Mutex::new(None),
            copy_in: Mutex::new(None),
            shapes: Mutex::new(HashMap::new()),
            cancels: Arc::new(tokio::sync::watch::Sender::new(0)),
            statement_deadline: Mutex::new(None),
            named,
            sql_prepared: Mutex::new(HashMap::new()),
        }
    }

    /// The connection's named prepared statements (Parse, Close, DEALLOCATE).
    pub fn named_statements(&self) -> &crate::named_statements::NamedStatements {
        &self.named
    }

    /// The database the session connected to: its names are found in that database's catalog.
    pub fn set_database(&self, database: &str) {
        self.slot.set_database(database);
    }

    /// Where a cancel request for this session is signalled (the server finds it by pid).
    pub fn cancel_signal(&self) -> Arc<tokio::sync::watch::Sender<u64>> {
        self.cancels.clone()
    }

    /// Resolves once a cancel request arrives after this call; it never resolves otherwise.
    pub fn cancelled(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut requests = self.cancels.subscribe();
        async move {
            if requests.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Starts a statement's clock: its `statement_timeout`, if set, counts from now, and its
    /// lock waits are limited by `lock_timeout`.
    pub fn start_statement(&self) {
        let (timeout, lock_timeout) = {
            let settings = self.settings.lock().expect("settings lock");
            (settings.statement_timeout(), settings.lock_timeout())
        };
        *self.statement_deadline.lock().expect("deadline lock") =
            timeout.map(|t| tokio::time::Instant::now() + t);
        self.slot.set_lock_timeout(lock_timeout);
    }

    /// Resolves with 57014 once the running statement's `statement_timeout` has passed; never
    /// when it has none.
    pub fn timed_out(&self) -> impl std::future::Future<Output = SqlError> + Send + 'static {
        let deadline = *self.statement_deadline.lock().expect("deadline lock");
        async move {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
            SqlError::new(
                sqlstate::QUERY_CANCELED,
                "canceling statement due to statement timeout",
            )
        }
    }

    /// Resolves with the error that ends the running statement: a cancel request, or its
    /// `statement_timeout` passing (both 57014, with PostgreSQL's two messages).
    pub fn interrupted(&self) -> impl std::future::Future<Output = SqlError> + Send + 'static {
        let cancelled = self.cancelled();
        let timed_out = self.timed_out();
        async move {
            tokio::select! {
                () = cancelled => SqlError::new(
                    sqlstate::QUERY_CANCELED,
                    "canceling statement due to user request",
                ),
                e = timed_out => e,
            }
        }
    }

    /// Records the backend process id the client was given.
    pub fn set_pid(&self, pid: i32) {
        self.pid.store(pid, std::sync::atomic::Ordering::Relaxed);
    }

    /// Replaces the session's settings (at startup, from what the client sent).
    pub fn replace_settings(&self, settings: Settings) {
        self.slot
            .set_search_path(crate::search_path::SearchPath::from_settings(&settings));
        *self.settings.lock().expect("settings lock") = settings;
    }

    pub fn parse(&self, sql: &str) -> SqlResult<Vec<Statement>> {
        crate::sql_rewrite::parse_sql(sql).map_err(SqlError::syntax)
    }

    /// The transaction status ReadyForQuery reports.
    pub fn transaction_status(&self) -> TransactionStatus {
        match &*self.block.lock().expect("block lock") {
            None => TransactionStatus::Idle,
            Some(b) if b.failed => TransactionStatus::Error,
            Some(_) => TransactionStatus::Transaction,
        }
    }

    fn in_block(&self) -> bool {
        self.block.lock().expect("block lock").is_some()
    }

    /// The isolation of the transaction about to begin: `SET TRANSACTION`'s (used up), or the
    /// session default.
    fn take_next_isolation(&self) -> Isolation {
        self.next_isolation
            .lock()
            .expect("isolation lock")
            .take()
            .unwrap_or(self.default_isolation())
    }

    fn default_isolation(&self) -> Isolation {
        let configured = self
            .show("default_transaction_isolation")
            .map(|(_, v)| v)
            .unwrap_or_default();
        Isolation::parse(&configured).unwrap_or(Isolation::ReadCommitted)
    }

    /// Plans a statement: result columns and parameter types, without running it. Inside a
    /// transaction block, an error here fails the block, as any error does in PostgreSQL.
    pub async fn prepare(&self, statement: Statement) -> SqlResult<Prepared> {
        if !block::is_transaction_control(&statement) && self.block_failed() {
            return Err(block::aborted());
        }
        let result = self.plan_statement(statement).await;
        if result.is_err() {
            self.fail_block();
        }
        result
    }

    fn block_failed(&self) -> bool {
        self.block
            .lock()
            .expect("block lock")
            .as_ref()
            .is_some_and(|b| b.failed)
    }

    /// Marks an open transaction block failed (a statement in it failed).
    pub fn fail_block(&self) {
        if let Some(b) = self.block.lock().expect("block lock").as_mut() {
            b.failed = true;
        }
    }

    /// Runs a prepared statement with parameter values for `$1`, `$2`, ….
    pub async fn execute(
        &self,
        prepared: &Prepared,
        params: Vec<datafusion::common::ScalarValue>,
    ) -> SqlResult<Output> {
        if let Some(output) = self.transaction_control(&prepared.statement).await? {
            return Ok(output);
        }
        let writes = match &prepared.statement {
            // What EXECUTE runs decides; an unknown name fails later, with 26000.
            Statement::Execute { .. } => self
                .executed_by(&prepared.statement)
                .is_some_and(|inner| writes_data(&inner)),
            _ => writes_data(prepared),
        };
        if self.slot.as_of().is_some() && writes {
            return Err(SqlError::new(
                sqlstate::READ_ONLY_SQL_TRANSACTION,
                format!(
                    "cannot execute {} while reading the past",
                    statement_kind(&prepared.statement)
                ),
            )
            .with_hint(match self.primary.pinned {
                Some(lsn) => format!("This endpoint is read-only, pinned at LSN {lsn}."),
                None => "RESET strata.as_of returns the session to the present.".to_string(),
            }));
        }
        if let Statement::Copy { to: false, .. } = &prepared.statement {
            if self.block_failed() {
                return Err(block::aborted());
            }
            return self.start_copy_in(&prepared.statement);
        }
        if self.in_block() {
            if self.block_failed() {
                return Err(block::aborted());
            }
            let result = match self.slot.with(|t| t.begin_statement()) {
                Ok(()) => self.run(prepared, params).await,
                Err(e) => Err(e.into()),
            };
            if result.is_err() {
                self.fail_block();
            }
            return result;
        }
        // Autocommit: the statement is its own transaction.
        let writes = match &prepared.kind {
            Kind::Query | Kind::Explain { .. } => false,
            Kind::Fast(plan) => !plan.is_read_only(),
            _ => true,
        };
        let isolation = self.take_next_isolation();
        self.slot.put(
            self.primary
                .txns
                .begin(isolation, !writes)
                .in_database(self.slot.database()),
        );
        let result = self.run(prepared, params).await;
        let txn = self.slot.take();
        let output = result?;
        if let Some(txn) = txn {
            self.commit(txn).await?;
        }
        Ok(output)
    }

    /// Runs a simple-protocol query through the fast path if its shape is a fast statement: the
    /// query's literals become parameters of a plan made once per shape. `None` if the query
    /// is not one (the caller runs it as usual).
    pub async fn run_fast_simple(&self, sql: &str) -> Option<SqlResult<Output>> {
        if self.block_failed()
            || self.copy_in.lock().expect("copy lock").is_some()
            || self.slot.as_of().is_some()
        {
            return None;
        }
        let (normalized, literals) = crate::sql_rewrite::normalize_literals(sql)?;
        let cached = self
            .shapes
            .lock()
            .expect("shapes lock")
            .get(&normalized)
            .cloned();
        let prepared = match cached {
            Some(Some(p)) if self.still_current(&p) => p,
            Some(None) => return None,
            _ => {
                let prepared = match self.parse(&normalized) {
                    Ok(mut statements) if statements.len() == 1 => self
                        .plan_statement(statements.remove(0))
                        .await
                        .ok()
                        .filter(|p| {
                            matches!(p.kind, Kind::Fast(_)) && p.param_types.len() == literals.len()
                        }),
                    _ => None,
                }
                .map(Arc::new);
                let mut shapes = self.shapes.lock().expect("shapes lock");
                if shapes.len() >= MAX_SHAPES {
                    shapes.clear();
                }
                shapes.insert(normalized, prepared.clone());
                prepared?
            }
        };
        Some(self.execute(&prepared, literals).await)
    }

    /// Whether a cached plan still fits the catalog (see [`Session::fast_plan_current`]).
    fn still_current(&self, prepared: &Prepared) -> bool {
        if prepared.path_generation != self.slot.path_generation() {
            return false;
        }
        match &prepared.kind {
            Kind::Fast(plan) => self.fast_plan_current(plan),
            _ => true,
        }
    }

    /// Whether a fast plan's table is still the one the catalog names, unchanged: any change to
    /// its definition (a new id after TRUNCATE, columns, defaults, constraints) plans again.
    fn fast_plan_current(&self, plan: &crate::fast_path::FastPlan) -> bool {
        if plan.as_of.is_some() {
            // A definition of the past never changes.
            return true;
        }
        let current = self.slot.with_catalog(&self.primary.catalog, |view| {
            view.get(&plan.table.schema, &plan.table.name)
        });
        // The committed catalog hands out the same `Arc` until the definition changes.
        matches!(current, Ok(Some(c)) if Arc::ptr_eq(&c, &plan.table) || c == plan.table)
    }

    /// A table as the current transaction sees it.
    fn table(&self, schema: &str, table: &str) -> SqlResult<Option<Arc<crate::catalog::TableDef>>> {
        self.slot
            .with_catalog(&self.primary.catalog, |view| view.get(schema, table))
    }

    /// Commits, applying the transaction's DDL to the shared catalog before the commit becomes
    /// visible to other sessions.
    async fn commit(&self, mut txn: Transaction) -> SqlResult<()> {
        if txn.has_deferred() {
            txn = self.run_checks_at_commit(txn).await?;
        }
        let (start, end) = catalog_range();
        let ddl = txn.writes_in(&start, &end);
        let catalog = &self.primary.catalog;
        let sequences = &self.primary.sequences;
        let mut applied = Ok(());
        self.primary
            .txns
            .commit(txn, || {
                if !ddl.is_empty() {
                    applied = catalog.apply(&ddl);
                    for (key, _) in &ddl {
                        if let Some(id) = crate::catalog::id_of_def_key(key, b'S')
                            .or_else(|| crate::catalog::id_of_def_key(key, b'V'))
                        {
                            sequences.forget(id);
                        }
                    }
                }
            })
            .await?;
        if let Err(e) = applied {
            tracing::error!(error = %e, "committed DDL could not be applied to the catalog");
        }
        Ok(())
    }

    /// The value of a setting and its canonical name; `transaction_isolation` is the current
    /// transaction's.
    fn show(&self, name: &str) -> SqlResult<(String, String)> {
        if name.eq_ignore_ascii_case("transaction_isolation")
            || name.eq_ignore_ascii_case("transaction isolation level")
        {
            let current = self.slot.with_optional(|t| t.map(|t| t.isolation()));
            let isolation = current
                .or(*self.next_isolation.lock().expect("isolation lock"))
                .unwrap_or(self.default_isolation());
            return Ok(("transaction_isolation".into(), isolation.name().into()));
        }
        self.settings.lock().expect("settings lock").get(name)
    }
}

/// The setting a `SHOW` names. `SHOW TIME ZONE` and `SHOW TRANSACTION ISOLATION LEVEL` are
/// PostgreSQL's multi-word spellings; any other name of several parts is a dotted one
/// (`SHOW strata.as_of`).
fn setting_name(variable: &[Ident]) -> String {
    let words: Vec<&str> = variable.iter().map(|i| i.value.as_str()).collect();
    let spaced = words.join(" ");
    if spaced.eq_ignore_ascii_case("time zone") {
        "timezone".to_string()
    } else if spaced.eq_ignore_ascii_case("transaction isolation level") {
        spaced
    } else {
        words.join(".")
    }
}

/// The statement's name for "… is not supported" errors.
fn statement_kind(stmt: &Statement) -> String {
    let text = stmt.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    match words.as_slice() {
        [first, second] if matches!(*first, "CREATE" | "DROP" | "ALTER") => {
            format!("{first} {second}")
        }
        [first, ..] => first.to_string(),
        [] => "this statement".into(),
    }
}

/// DataFusion functions PostgreSQL knows under another name: `sign` is `signum`, `every` is
/// `bool_and`.
fn register_postgres_names(ctx: &SessionContext) {
    let state = ctx.state();
    if let Some(signum) = state.scalar_functions().get("signum") {
        ctx.register_udf(signum.as_ref().clone().with_aliases(["sign"]));
    }
    if let Some(bool_and) = state.aggregate_functions().get("bool_and") {
        ctx.register_udaf(bool_and.as_ref().clone().with_aliases(["every"]));
    }
}

impl Drop for Session {
    /// A session's advisory locks end with it, as a backend's do when it exits.
    fn drop(&mut self) {
        let pid = self.pid.load(std::sync::atomic::Ordering::Relaxed);
        self.primary.txns.advisory.release(pid, None);
    }
}
