//! One client session: parses SQL, plans it with DataFusion, runs it in a transaction.
//!
//! Statements are split in two. Queries and INSERT go to DataFusion, whose plans read and write
//! Strata tables through `StrataTable`; DDL and session commands (SET, SHOW) run here. Each
//! statement runs in its own transaction (autocommit): a write commits through the safekeepers
//! before its command tag is sent.

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{collect, displayable, execute_stream};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, ObjectType, Reset, Set, Statement, Value};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::bytea::{ByteaCastRule, ByteaIn};
use crate::catalog::{DEFAULT_DATABASE, DEFAULT_SCHEMA};
use crate::column_names::query_column_names;
use crate::ddl;
use crate::df_catalog::StrataCatalogProvider;
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::pg_encode::{result_columns, ResultColumn};
use crate::primary::Primary;
use crate::settings::Settings;
use crate::sql_rewrite::alias_duplicate_expressions;
use crate::txn_slot::TxnSlot;

/// A parsed (and, for DataFusion statements, planned) statement, ready to run any number of
/// times with different parameters.
#[derive(Clone)]
pub struct Prepared {
    pub statement: Statement,
    /// The logical plan of a statement DataFusion runs.
    pub plan: Option<LogicalPlan>,
    /// Result columns, for statements that return rows.
    pub columns: Option<Arc<Vec<ResultColumn>>>,
    /// Types DataFusion inferred for `$1`, `$2`, … (`None` where it could not tell).
    pub param_types: Vec<Option<DataType>>,
}

/// What running a statement produced.
pub enum Output {
    Rows {
        columns: Arc<Vec<ResultColumn>>,
        stream: SendableRecordBatchStream,
    },
    Command {
        tag: String,
        notice: Option<String>,
        parameter_status: Option<(String, String)>,
    },
}

impl Output {
    fn command(tag: impl Into<String>) -> Self {
        Output::Command {
            tag: tag.into(),
            notice: None,
            parameter_status: None,
        }
    }
}

pub struct Session {
    primary: Arc<Primary>,
    ctx: SessionContext,
    slot: Arc<TxnSlot>,
    settings: Mutex<Settings>,
}

impl Session {
    pub fn new(primary: Arc<Primary>, settings: Settings) -> Self {
        let slot = Arc::new(TxnSlot::default());
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
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.add_analyzer_rule(Arc::new(ByteaCastRule));
        ctx.register_udf(ByteaIn::udf().as_ref().clone());
        ctx.register_catalog(
            DEFAULT_DATABASE,
            Arc::new(StrataCatalogProvider::new(primary.clone())),
        );
        Self {
            primary,
            ctx,
            slot,
            settings: Mutex::new(settings),
        }
    }

    /// Replaces the session's settings (at startup, from what the client sent).
    pub fn replace_settings(&self, settings: Settings) {
        *self.settings.lock().expect("settings lock") = settings;
    }

    pub fn parse(&self, sql: &str) -> SqlResult<Vec<Statement>> {
        Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| SqlError::syntax(e.to_string()))
    }

    /// Plans a statement: result columns and parameter types, without running it.
    pub async fn prepare(&self, statement: Statement) -> SqlResult<Prepared> {
        let mut prepared = Prepared {
            statement,
            plan: None,
            columns: None,
            param_types: Vec::new(),
        };
        match &prepared.statement {
            Statement::Query(_) | Statement::Insert(_) => {
                let plan = self.logical_plan(&prepared.statement).await?;
                prepared.param_types = param_types(&plan)?;
                if matches!(prepared.statement, Statement::Query(_)) {
                    let names = query_column_names(&prepared.statement);
                    prepared.columns = Some(result_columns(plan.schema().as_arrow(), names));
                }
                prepared.plan = Some(plan);
            }
            Statement::Explain {
                statement, analyze, ..
            } => {
                if !matches!(
                    statement.as_ref(),
                    Statement::Query(_) | Statement::Insert(_)
                ) {
                    return Err(SqlError::unsupported(format!(
                        "EXPLAIN of {}",
                        statement_kind(statement)
                    )));
                }
                if *analyze && matches!(statement.as_ref(), Statement::Insert(_)) {
                    return Err(SqlError::unsupported("EXPLAIN ANALYZE of INSERT"));
                }
                let plan = self.logical_plan(statement).await?;
                prepared.param_types = param_types(&plan)?;
                prepared.plan = Some(plan);
                prepared.columns = Some(single_text_column("QUERY PLAN"));
            }
            Statement::ShowVariable { variable } => {
                let name = setting_name(variable);
                let (canonical, _) = self.settings.lock().expect("settings lock").get(&name)?;
                prepared.columns = Some(single_text_column(&canonical));
            }
            _ => {}
        }
        Ok(prepared)
    }

    async fn logical_plan(&self, statement: &Statement) -> SqlResult<LogicalPlan> {
        let mut statement = statement.clone();
        alias_duplicate_expressions(&mut statement);
        let state = self.ctx.state();
        Ok(state
            .statement_to_plan(DFStatement::Statement(Box::new(statement)))
            .await?)
    }

    /// Runs a prepared statement with parameter values for `$1`, `$2`, ….
    pub async fn execute(
        &self,
        prepared: &Prepared,
        params: Vec<ScalarValue>,
    ) -> SqlResult<Output> {
        match &prepared.statement {
            Statement::Query(_) => {
                let plan = bind(prepared, params)?;
                self.slot.put(self.primary.txns.begin_read_only());
                let physical = self.ctx.state().create_physical_plan(&plan).await?;
                let stream = execute_stream(physical, self.ctx.task_ctx())?;
                let columns = prepared
                    .columns
                    .clone()
                    .expect("queries have result columns");
                Ok(Output::Rows { columns, stream })
            }
            Statement::Insert(_) => {
                let plan = bind(prepared, params)?;
                self.slot.put(self.primary.txns.begin());
                let result = self.run_write(&plan).await;
                let txn = self.slot.take();
                let count = result?;
                if let Some(txn) = txn {
                    self.primary.txns.commit(txn).await?;
                }
                Ok(Output::command(format!("INSERT 0 {count}")))
            }
            Statement::Explain { analyze, .. } => {
                let plan = bind(prepared, params)?;
                self.slot.put(self.primary.txns.begin_read_only());
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
                ))
            }
            Statement::CreateTable(ct) => {
                let outcome = ddl::create_table(&self.primary, ct).await?;
                Ok(Output::Command {
                    tag: outcome.tag.into(),
                    notice: outcome.notice,
                    parameter_status: None,
                })
            }
            Statement::Drop {
                object_type: ObjectType::Table,
                if_exists,
                names,
                ..
            } => {
                let outcome = ddl::drop_tables(&self.primary, names, *if_exists).await?;
                Ok(Output::Command {
                    tag: outcome.tag.into(),
                    notice: outcome.notice,
                    parameter_status: None,
                })
            }
            Statement::Set(set) => self.set(set),
            Statement::ShowVariable { variable } => {
                let name = setting_name(variable);
                let (_, value) = self.settings.lock().expect("settings lock").get(&name)?;
                let columns = prepared.columns.clone().expect("SHOW has a result column");
                Ok(rows_output(
                    columns,
                    vec![Arc::new(StringArray::from(vec![value])) as ArrayRef],
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
            Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. } => Err(SqlError::unsupported(
                "transaction blocks (BEGIN/COMMIT/ROLLBACK)",
            )
            .with_hint("Every statement commits on its own (autocommit).")),
            other => Err(SqlError::unsupported(statement_kind(other))),
        }
    }

    /// Runs a write plan in the current transaction; returns the number of rows written.
    async fn run_write(&self, plan: &LogicalPlan) -> SqlResult<u64> {
        let physical = self.ctx.state().create_physical_plan(plan).await?;
        let batches = collect(physical, self.ctx.task_ctx()).await?;
        let count = batches
            .first()
            .and_then(|b| b.column(0).as_any().downcast_ref::<UInt64Array>())
            .map(|a| a.value(0))
            .unwrap_or(0);
        Ok(count)
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

/// Inferred types of `$1..$n`, in order.
fn param_types(plan: &LogicalPlan) -> SqlResult<Vec<Option<DataType>>> {
    let types = plan.get_parameter_types()?;
    let mut indexed: Vec<(usize, Option<DataType>)> = types
        .into_iter()
        .filter_map(|(name, t)| {
            name.strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .map(|n| (n, t))
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

/// The setting a `SHOW` names; `SHOW TIME ZONE` is PostgreSQL's two-word spelling of TimeZone.
fn setting_name(variable: &[datafusion::sql::sqlparser::ast::Ident]) -> String {
    let name = variable
        .iter()
        .map(|i| i.value.clone())
        .collect::<Vec<_>>()
        .join(" ");
    if name.eq_ignore_ascii_case("time zone") {
        "timezone".to_string()
    } else {
        name
    }
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

fn single_text_column(name: &str) -> Arc<Vec<ResultColumn>> {
    Arc::new(vec![ResultColumn::text(name)])
}

fn rows_output(columns: Arc<Vec<ResultColumn>>, arrays: Vec<ArrayRef>) -> Output {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, c.data_type.clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), arrays).expect("arrays match their columns");
    let stream = RecordBatchStreamAdapter::new(schema, futures::stream::iter(vec![Ok(batch)]));
    Output::Rows {
        columns,
        stream: Box::pin(stream),
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
