//! The pgwire edge: one [`ConnectionHandler`] per client connection.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::execution::SendableRecordBatchStream;
use futures::{stream, Sink, SinkExt, StreamExt};
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
    ServerParameterProvider, StartupHandler,
};
use pgwire::api::copy::{send_copy_in_response, send_copy_out_response, CopyHandler};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{
    send_describe_response, send_execution_response, send_query_response, send_ready_for_query,
    ExtendedQueryHandler, SimpleQueryHandler,
};
use pgwire::api::results::{
    CopyResponse, DescribeResponse, FieldFormat, FieldInfo, QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::PgWireConnectionState;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionHandle, ConnectionManager, PgWireServerHandlers,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type, DEFAULT_NAME, METADATA_DATABASE,
    METADATA_USER,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::data::DataRow;
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Close, CloseComplete, Describe, Execute, Parse, ParseComplete,
    TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};
use pgwire::messages::response::{EmptyQueryResponse, NoticeResponse};
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::ParameterStatus;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use crate::copy::{format_row, CopyFormat, CopyOptions};
use crate::deferred_flush::DeferredFlush;
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::named_statements::{Deallocate, NamedStatement};
use crate::params::decode_param;
use crate::pg_encode::{encode_batch, field_infos, text_values, ResultColumn};
use crate::primary::Primary;
use crate::session::{Notice, Output, Prepared, Session};
use crate::settings::Settings;
use crate::types::{arrow_type_of_pg, pg_type_of_field};

/// What every connection of one compute shares.
pub struct Server {
    primary: Arc<Primary>,
    cancels: Arc<ConnectionManager>,
    /// Each connected session's cancel signal by backend pid (see [`CancelRequests`]).
    query_cancels: Arc<QueryCancels>,
    pids: RandomPidSecretKeyGenerator,
}

type QueryCancels = std::sync::Mutex<HashMap<i32, Arc<tokio::sync::watch::Sender<u64>>>>;

/// Takes a session's cancel signal out of [`Server::query_cancels`] when its connection ends.
struct QueryCancelGuard {
    pid: i32,
    query_cancels: Arc<QueryCancels>,
}

impl Drop for QueryCancelGuard {
    fn drop(&mut self) {
        self.query_cancels
            .lock()
            .expect("query cancels lock")
            .remove(&self.pid);
    }
}

impl Server {
    pub fn new(primary: Arc<Primary>) -> Arc<Self> {
        Arc::new(Self {
            primary,
            cancels: Arc::new(ConnectionManager::new()),
            query_cancels: Arc::default(),
            pids: RandomPidSecretKeyGenerator::default(),
        })
    }

    pub fn connection(self: &Arc<Self>) -> ConnectionHandlers {
        let session = Arc::new(Session::new(self.primary.clone(), Settings::default()));
        ConnectionHandlers {
            handler: Arc::new(ConnectionHandler {
                server: self.clone(),
                parser: Arc::new(StrataQueryParser {
                    session: session.clone(),
                }),
                session,
            }),
        }
    }
}

pub struct ConnectionHandlers {
    handler: Arc<ConnectionHandler>,
}

impl PgWireServerHandlers for ConnectionHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.handler.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.handler.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.handler.clone()
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.handler.clone()
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        Arc::new(CancelRequests {
            cancels: self.handler.server.cancels.clone(),
            query_cancels: self.handler.server.query_cancels.clone(),
            primary: self.handler.server.primary.clone(),
        })
    }
}

/// Cancels the running statement of the connection a CancelRequest names: what pgwire does
/// (the statement's future is dropped while it is planned or run), rows still being computed
/// as they are sent (the session's signal, which [`row_stream`] watches: pgwire's cancel point
/// ends before the rows are sent), and a wait inside a function, which holds its worker thread
/// (`pg_advisory_lock`).
struct CancelRequests {
    cancels: Arc<ConnectionManager>,
    query_cancels: Arc<QueryCancels>,
    primary: Arc<Primary>,
}

#[async_trait::async_trait]
impl pgwire::api::cancel::CancelHandler for CancelRequests {
    async fn on_cancel_request(&self, request: pgwire::messages::cancel::CancelRequest) {
        // The pid and secret key must both match before anything is cancelled.
        if self.cancels.cancel(request.pid, &request.secret_key).await {
            let signal = self
                .query_cancels
                .lock()
                .expect("query cancels lock")
                .get(&request.pid)
                .cloned();
            if let Some(signal) = signal {
                signal.send_modify(|count| *count += 1);
            }
            self.primary.txns.advisory.cancel_wait(request.pid);
        }
    }
}

pub struct ConnectionHandler {
    server: Arc<Server>,
    session: Arc<Session>,
    parser: Arc<StrataQueryParser>,
}

impl ConnectionHandler {
    /// The response to a statement's output, in either protocol: rows in the formats the client
    /// asked for (by column), a command tag after its notice and parameter status, or a COPY.
    async fn respond<C>(
        &self,
        client: &mut C,
        output: Output,
        format: impl Fn(usize) -> FieldFormat,
    ) -> PgWireResult<Response>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Ok(match output {
            Output::Rows {
                columns,
                stream,
                tag,
            } => {
                let formats = (0..columns.len()).map(format).collect();
                Response::Query(query_response(
                    &columns,
                    stream,
                    formats,
                    tag,
                    self.session.clone(),
                ))
            }
            Output::Command {
                tag,
                notice,
                parameter_status,
            } => {
                send_side_messages(client, notice, parameter_status).await?;
                Response::Execution(Tag::new(&tag))
            }
            Output::CopyIn { columns, binary } => Response::CopyIn(CopyResponse::new(
                i8::from(binary),
                columns,
                stream::empty(),
            )),
            Output::CopyOut {
                columns,
                stream,
                options,
            } => Response::CopyOut(copy_out_response(columns, stream, options)),
        })
    }

    /// `DEALLOCATE name|ALL`: frees the names and drops the statements from the store.
    fn deallocate<C>(&self, client: &C, what: &Deallocate) -> SqlResult<Output>
    where
        C: ClientPortalStore,
        C::PortalStore: PortalStore,
    {
        let names = self
            .session
            .named_statements()
            .deallocate(what)
            .inspect_err(|_| self.session.fail_block())?;
        for name in &names {
            client.portal_store().rm_statement(name);
        }
        self.session.forget_prepared(&names);
        Ok(Output::command(what.tag()))
    }
}

/// A Describe answer that says NoData exactly when the statement returns no rows.
struct Described {
    parameters: Option<Vec<Type>>,
    fields: Vec<FieldInfo>,
    no_data: bool,
}

impl DescribeResponse for Described {
    fn parameters(&self) -> Option<&[Type]> {
        self.parameters.as_deref()
    }

    fn fields(&self) -> &[FieldInfo] {
        &self.fields
    }

    fn no_data() -> Self {
        Described {
            parameters: None,
            fields: Vec::new(),
            no_data: true,
        }
    }

    fn is_no_data(&self) -> bool {
        self.no_data
    }
}

/// The target of a `DEALLOCATE` statement, if it is one.
fn deallocation(statement: &datafusion::sql::sqlparser::ast::Statement) -> Option<Deallocate> {
    match statement {
        datafusion::sql::sqlparser::ast::Statement::Deallocate { name, .. } => {
            Some(Deallocate::from_ident(name))
        }
        _ => None,
    }
}

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message,
    )))
}

struct ReportedParameters(Vec<(String, String)>);

impl ServerParameterProvider for ReportedParameters {
    fn server_parameters<C: ClientInfo>(&self, _client: &C) -> Option<HashMap<String, String>> {
        Some(self.0.iter().cloned().collect())
    }
}

#[async_trait]
impl StartupHandler for ConnectionHandler {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let PgWireFrontendMessage::Startup(startup) = message else {
            return Ok(());
        };
        protocol_negotiation(client, &startup).await?;
        save_startup_parameters_to_metadata(client, &startup);
        let user = client
            .metadata()
            .get(METADATA_USER)
            .cloned()
            .unwrap_or_else(|| "postgres".into());
        let database = client
            .metadata()
            .get(METADATA_DATABASE)
            .cloned()
            .unwrap_or_else(|| user.clone());
        if self.server.primary.catalog.database(&database).is_none() {
            let missing = crate::ddl::database::missing(&database);
            return Err(fatal(missing.code, missing.message));
        }
        client
            .session_extensions()
            .insert(self.server.primary.connections.enter(&database));
        self.session.set_database(&database);
        let settings = Settings::for_startup(&user, startup.parameters.iter())
            .map_err(|e| fatal(e.code, e.message))?;
        let reported = settings.reported();
        self.session.replace_settings(settings);

        let (pid, secret) = self.server.pids.generate(client);
        client.set_pid_and_secret_key(pid, secret.clone());
        self.session.set_pid(pid);
        let (handle, guard) = self.server.cancels.register(pid, secret);
        client
            .session_extensions()
            .insert::<Arc<ConnectionHandle>>(handle);
        client.session_extensions().insert(guard);
        self.server
            .query_cancels
            .lock()
            .expect("query cancels lock")
            .insert(pid, self.session.cancel_signal());
        client
            .session_extensions()
            .insert(Arc::new(QueryCancelGuard {
                pid,
                query_cancels: self.server.query_cancels.clone(),
            }));
        finish_authentication(client, &ReportedParameters(reported)).await?;
        tracing::debug!(%user, addr = %client.socket_addr(), "session started");
        Ok(())
    }
}

/// COPY TO output: one CopyData message per row, in the COPY's format (binary: the first
/// one starts with the header; `CopyResponse` adds the trailer).
fn copy_out_response(
    columns: Arc<Vec<ResultColumn>>,
    stream: SendableRecordBatchStream,
    options: CopyOptions,
) -> CopyResponse {
    let binary = options.format == CopyFormat::Binary;
    let formats = vec![FieldFormat::Binary; columns.len()];
    let mut header = binary.then(crate::copy_binary::output_header);
    let n = columns.len();
    let data = stream.flat_map(move |batch| {
        let batch = batch.map_err(SqlError::from);
        let messages: SqlResult<Vec<CopyData>> = if binary {
            batch
                .and_then(|b| encode_batch(&b, &columns, &formats))
                .map(|rows| {
                    rows.iter()
                        .map(|row| {
                            let mut out = header.take().unwrap_or_default();
                            crate::copy_binary::output_tuple(row, &mut out);
                            CopyData::new(out.freeze())
                        })
                        .collect()
                })
        } else {
            batch.and_then(|b| text_values(&b)).map(|rows| {
                rows.iter()
                    .map(|row| CopyData::new(bytes::Bytes::from(format_row(row, &options))))
                    .collect()
            })
        };
        let messages: Vec<PgWireResult<CopyData>> = match messages {
            Ok(messages) => messages.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e.into())],
        };
        stream::iter(messages)
    });
    CopyResponse::new(i8::from(binary), n, data)
}

#[async_trait]
impl CopyHandler for ConnectionHandler {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.session.copy_data(&copy_data.data).await;
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let result = guard(self.session.copy_done()).await;
        client.set_transaction_status(self.session.transaction_status());
        let copied = result?;
        client
            .send(PgWireBackendMessage::CommandComplete(
                Tag::new("COPY").with_rows(copied as usize).into(),
            ))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let error = self.session.copy_fail(&fail.message).await;
        client.set_transaction_status(self.session.transaction_status());
        error.into()
    }
}

/// Runs statement work, turning a panic into an error for the statement.
async fn guard<T>(work: impl std::future::Future<Output = SqlResult<T>>) -> SqlResult<T> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .unwrap_or_else(|p| Err(crate::error::panic_error(p)))
}

/// Sends the NOTICE or WARNING and the ParameterStatus a command produced.
async fn send_side_messages<C>(
    client: &mut C,
    notice: Option<Notice>,
    status: Option<(String, String)>,
) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if let Some(notice) = notice {
        // A statement on several objects has one notice per line (`DROP TABLE IF EXISTS a, b`),
        // sent one by one as PostgreSQL does; a detail belongs to the last.
        let lines: Vec<&str> = notice.message.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            let mut info =
                ErrorInfo::new(notice.severity.into(), notice.code.into(), line.to_string());
            if i + 1 == lines.len() {
                info.detail = notice.detail.clone();
            }
            client
                .feed(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(
                    info,
                )))
                .await?;
        }
    }
    if let Some((name, value)) = status {
        client
            .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                name, value,
            )))
            .await?;
    }
    Ok(())
}

/// DataRows of a result, encoded batch by batch as the client reads them.
///
/// Rows are computed as they are sent, so a query can fail after it started sending; that fails
/// the session's transaction block, as any error does. A cancel request or the statement's
/// `statement_timeout` ends the rows with 57014 the same way.
fn row_stream(
    stream: SendableRecordBatchStream,
    columns: Arc<Vec<ResultColumn>>,
    formats: Vec<FieldFormat>,
    session: Arc<Session>,
) -> impl futures::Stream<Item = PgWireResult<DataRow>> + Send {
    // Watched between batches, not rows: computing a batch is where a statement waits.
    let interrupted = Box::pin(session.interrupted());
    let batches = stream::unfold(Some((stream, interrupted)), |state| async move {
        let (mut batches, mut interrupted) = state?;
        tokio::select! {
            biased;
            e = &mut interrupted => Some((Err(e), None)),
            batch = batches.next() => batch.map(|batch| {
                (batch.map_err(SqlError::from), Some((batches, interrupted)))
            }),
        }
    });
    batches.flat_map(move |batch| {
        let rows: Vec<PgWireResult<DataRow>> =
            match batch.and_then(|b| encode_batch(&b, &columns, &formats)) {
                Ok(rows) => rows.into_iter().map(Ok).collect(),
                Err(e) => {
                    session.fail_block();
                    vec![Err(e.into())]
                }
            };
        stream::iter(rows)
    })
}

fn query_response(
    columns: &Arc<Vec<ResultColumn>>,
    stream: SendableRecordBatchStream,
    formats: Vec<FieldFormat>,
    tag: &str,
    session: Arc<Session>,
) -> QueryResponse {
    let fields = Arc::new(field_infos(columns, &formats));
    let mut response = QueryResponse::new(
        fields,
        row_stream(stream, columns.clone(), formats, session),
    );
    response.set_command_tag(tag);
    response
}

#[async_trait]
impl SimpleQueryHandler for ConnectionHandler {
    /// As pgwire's default, except that the transaction status sent with ReadyForQuery is the
    /// session's own (pgwire's bookkeeping cannot return from a failed block to an open one,
    /// which ROLLBACK TO SAVEPOINT does).
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        if query.query.chars().all(|c| c == ';' || c.is_whitespace()) {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
        } else {
            let cancel = match client.session_extensions().get::<Arc<ConnectionHandle>>() {
                Some(handle) => Some(handle.start_query().await),
                None => None,
            };
            // The whole query string is one statement for `statement_timeout`.
            self.session.start_statement();
            let cancel = async move {
                match cancel {
                    Some(cancel) => {
                        let _ = cancel.await;
                    }
                    None => std::future::pending().await,
                }
            };
            let responses = tokio::select! {
                r = SimpleQueryHandler::do_query(self, client, &query.query) => r?,
                _ = cancel => {
                    self.session.abort_implicit();
                    vec![Response::Error(Box::new(SqlError::new(sqlstate::QUERY_CANCELED, "canceling statement due to user request").to_error_info()))]
                }
                e = self.session.timed_out() => {
                    self.session.abort_implicit();
                    vec![Response::Error(Box::new(e.to_error_info()))]
                }
            };
            for response in responses {
                match response {
                    Response::Query(results) => send_query_response(client, results, true).await?,
                    Response::Execution(tag) => send_execution_response(client, tag).await?,
                    Response::Error(e) => {
                        client
                            .feed(PgWireBackendMessage::ErrorResponse((*e).into()))
                            .await?
                    }
                    Response::EmptyQuery => {
                        client
                            .feed(PgWireBackendMessage::EmptyQueryResponse(
                                EmptyQueryResponse::new(),
                            ))
                            .await?
                    }
                    Response::CopyIn(result) => {
                        send_copy_in_response(client, result).await?;
                        client.set_state(PgWireConnectionState::CopyInProgress(false));
                    }
                    Response::CopyOut(result) => send_copy_out_response(client, result).await?,
                    _ => {
                        return Err(
                            SqlError::internal("unexpected response to a simple query").into()
                        )
                    }
                }
            }
        }
        if matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
            // The copy handler answers once the data has arrived.
            return Ok(());
        }
        client.set_state(PgWireConnectionState::ReadyForQuery);
        let status = self.session.transaction_status();
        client.set_transaction_status(status);
        send_ready_for_query(client, status).await
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let fast = guard(async { Ok(self.session.run_fast_simple(query).await) }).await;
        if let Some(result) = fast.transpose().map(|r| r.and_then(|inner| inner)) {
            return Ok(vec![match result {
                Ok(output) => self.respond(client, output, |_| FieldFormat::Text).await?,
                Err(e) => Response::Error(Box::new(e.to_error_info())),
            }]);
        }
        let statements = match self.session.parse(query) {
            Ok(s) => s,
            Err(e) => return Ok(vec![Response::Error(Box::new(e.to_error_info()))]),
        };
        let several = statements.len() > 1;
        // Like PostgreSQL, several statements in one query string form one implicit transaction
        // (unless they manage transactions themselves).
        let implicit = several && self.session.begin_implicit(&statements);
        let mut responses = Vec::with_capacity(statements.len());
        let mut failed = false;
        for statement in statements {
            let deallocate = deallocation(&statement);
            let result = guard(async {
                let prepared = self.session.prepare(statement).await?;
                match &deallocate {
                    Some(what) => self.deallocate(client, what),
                    None => self.session.execute(&prepared, Vec::new()).await,
                }
            })
            .await;
            match result {
                // Later statements of the same query must not run before this one's rows are
                // read, so a multi-statement query reads each result in full.
                Ok(Output::Rows {
                    columns,
                    stream,
                    tag,
                }) if several => {
                    let formats = vec![FieldFormat::Text; columns.len()];
                    let rows: Vec<PgWireResult<DataRow>> = row_stream(
                        stream,
                        columns.clone(),
                        formats.clone(),
                        self.session.clone(),
                    )
                    .collect()
                    .await;
                    if let Some(Err(e)) = rows.iter().find(|r| r.is_err()) {
                        let info = match e {
                            PgWireError::UserError(info) => (**info).clone_info(),
                            other => SqlError::internal(other.to_string()).to_error_info(),
                        };
                        responses.push(Response::Error(Box::new(info)));
                        failed = true;
                        break;
                    }
                    let fields = Arc::new(field_infos(&columns, &formats));
                    let mut response = QueryResponse::new(fields, stream::iter(rows));
                    response.set_command_tag(tag);
                    responses.push(Response::Query(response));
                }
                Ok(output) => {
                    responses.push(self.respond(client, output, |_| FieldFormat::Text).await?)
                }
                Err(e) => {
                    responses.push(Response::Error(Box::new(e.to_error_info())));
                    failed = true;
                    break;
                }
            }
        }
        if implicit {
            if let Err(e) = self.session.end_implicit(!failed).await {
                responses.push(Response::Error(Box::new(e.to_error_info())));
            }
        }
        Ok(responses)
    }
}

trait CloneInfo {
    fn clone_info(&self) -> ErrorInfo;
}

impl CloneInfo for ErrorInfo {
    fn clone_info(&self) -> ErrorInfo {
        let mut info = ErrorInfo::new(
            self.severity.clone(),
            self.code.clone(),
            self.message.clone(),
        );
        info.detail = self.detail.clone();
        info.hint = self.hint.clone();
        info.schema = self.schema.clone();
        info.table = self.table.clone();
        info.column = self.column.clone();
        info.constraint = self.constraint.clone();
        info
    }
}

/// Parses and plans statements of the extended protocol at Parse time, as PostgreSQL does, so
/// that Describe can answer with parameter and result types.
pub struct StrataQueryParser {
    session: Arc<Session>,
}

#[async_trait]
impl QueryParser for StrataQueryParser {
    type Statement = Arc<Prepared>;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = self.session.parse(sql)?;
        if statements.len() > 1 {
            return Err(SqlError::syntax(
                "cannot insert multiple commands into a prepared statement",
            )
            .into());
        }
        let Some(statement) = statements.pop() else {
            return Ok(None);
        };
        Ok(Some(Arc::new(
            guard(self.session.prepare(statement)).await?,
        )))
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        Ok(stmt
            .param_types
            .iter()
            .map(|t| t.as_ref().map_or(Type::TEXT, |f| pg_type_of_field(f).0))
            .collect())
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let Some(columns) = &stmt.columns else {
            return Ok(Vec::new());
        };
        let formats: Vec<FieldFormat> = (0..columns.len())
            .map(|i| {
                column_format
                    .map(|f| f.format_for(i))
                    .unwrap_or(FieldFormat::Text)
            })
            .collect();
        Ok(field_infos(columns, &formats))
    }
}

fn bind_params(portal: &Portal<Arc<Prepared>>) -> SqlResult<Vec<datafusion::common::ScalarValue>> {
    let prepared = &portal.statement.statement;
    let declared = &portal.statement.parameter_types;
    let expected = prepared.param_types.len();
    if portal.parameters.len() != expected {
        return Err(SqlError::new(
            sqlstate::PROTOCOL_VIOLATION,
            format!(
                "bind message supplies {} parameters, but prepared statement requires {expected}",
                portal.parameters.len()
            ),
        ));
    }
    portal
        .parameters
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let inferred = prepared.param_types[i].as_ref();
            // Undeclared, a parameter has the type ParameterDescription announced (a uuid
            // parameter's binary form is 16 bytes, though Arrow binds it as text).
            let declared = declared
                .get(i)
                .and_then(|t| t.clone())
                .filter(|t| arrow_type_of_pg(t).is_some() || *t != Type::UNKNOWN)
                .or_else(|| inferred.map(|f| pg_type_of_field(f).0));
            decode_param(
                raw.as_ref(),
                portal.parameter_format.is_binary(i),
                inferred.map(|f| f.data_type()),
                declared.as_ref(),
            )
        })
        .collect()
}

#[async_trait]
impl ExtendedQueryHandler for ConnectionHandler {
    type Statement = Arc<Prepared>;
    type QueryParser = StrataQueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    /// As pgwire's default, but a named statement's name must be free (42P05 otherwise), as in
    /// PostgreSQL, rather than silently replacing the statement that has it.
    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message
            .name
            .clone()
            .unwrap_or_else(|| DEFAULT_NAME.to_owned());
        if name != DEFAULT_NAME {
            self.session.named_statements().take(&name)?;
        }
        let parsed = StoredStatement::parse(client, &message, self.query_parser()).await;
        match parsed {
            Ok(Some(stmt)) => {
                if name != DEFAULT_NAME {
                    // A type the client declared, else the one Strata inferred.
                    let parameter_types = stmt
                        .statement
                        .param_types
                        .iter()
                        .enumerate()
                        .map(|(i, f)| {
                            let declared = message
                                .type_oids
                                .get(i)
                                .filter(|oid| **oid != 0)
                                .and_then(|oid| Type::from_oid(*oid));
                            let (t, typmod) = match declared {
                                Some(t) => (t, -1),
                                None => f.as_ref().map_or((Type::TEXT, -1), pg_type_of_field),
                            };
                            crate::pg_catalog::format_type(i64::from(t.oid()), Some(typmod))
                                .unwrap_or_else(|| t.name().to_string())
                        })
                        .collect();
                    self.session.named_statements().describe(
                        &name,
                        NamedStatement {
                            statement: message.query.clone(),
                            prepare_time: chrono::Utc::now().timestamp_micros(),
                            parameter_types,
                        },
                    );
                }
                client.portal_store().put_statement(Arc::new(stmt))
            }
            Ok(None) => client.portal_store().put_empty_statement(&name),
            Err(e) => {
                self.session.named_statements().free(&name);
                return Err(e);
            }
        }
        client
            .feed(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_close<C>(&self, client: &mut C, message: Close) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if message.target_type == TARGET_TYPE_BYTE_STATEMENT {
            self.session
                .named_statements()
                .free(message.name.as_deref().unwrap_or(DEFAULT_NAME));
        }
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        match message.target_type {
            TARGET_TYPE_BYTE_STATEMENT => client.portal_store().rm_statement(name),
            TARGET_TYPE_BYTE_PORTAL => client.portal_store().rm_portal(name),
            _ => {}
        }
        client
            .feed(PgWireBackendMessage::CloseComplete(CloseComplete::new()))
            .await?;
        Ok(())
    }

    /// As pgwire's default, except that a statement without a result (an INSERT, a SET) is
    /// described with NoData, as PostgreSQL does, even when it has parameters: pgjdbc takes an
    /// empty RowDescription for a query and reports batch update counts of 0.
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let (parameters, fields) = match message.target_type {
            TARGET_TYPE_BYTE_STATEMENT => match client.portal_store().get_statement(name) {
                Some(Entry::Value(stmt)) => {
                    let described = self.do_describe_statement(client, &stmt).await?;
                    let returns_rows = stmt.statement.columns.is_some();
                    (
                        Some(described.parameters.clone()),
                        returns_rows.then(|| described.fields.clone()),
                    )
                }
                Some(Entry::Empty) => (Some(Vec::new()), None),
                None => return Err(PgWireError::StatementNotFound(name.to_owned())),
            },
            TARGET_TYPE_BYTE_PORTAL => match client.portal_store().get_portal(name) {
                Some(Entry::Value(portal)) => {
                    let described = self.do_describe_portal(client, &portal).await?;
                    let returns_rows = portal.statement.statement.columns.is_some();
                    (None, returns_rows.then(|| described.fields.clone()))
                }
                Some(Entry::Empty) => (None, None),
                None => return Err(PgWireError::PortalNotFound(name.to_owned())),
            },
            other => return Err(PgWireError::InvalidTargetType(other)),
        };
        let described = Described {
            parameters,
            no_data: fields.is_none(),
            fields: fields.unwrap_or_default(),
        };
        send_describe_response(&mut DeferredFlush::new(client), &described).await?;
        Ok(())
    }

    /// As pgwire's default, then the transaction status is set from the session (see
    /// `on_query`); Sync reports it.
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.session.start_statement();
        let result = self
            ._on_execute(&mut DeferredFlush::new(client), message)
            .await;
        client.set_transaction_status(self.session.transaction_status());
        result
    }

    /// As pgwire's default, with BindComplete left for Sync to write out (see
    /// [`DeferredFlush`]).
    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement_name = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal_name = message.portal_name.as_deref().unwrap_or(DEFAULT_NAME);
        match client.portal_store().get_statement(statement_name) {
            Some(Entry::Value(statement)) => {
                let portal = Portal::try_new(&message, statement)?;
                client.portal_store().put_portal(Arc::new(portal));
            }
            Some(Entry::Empty) if message.parameters.is_empty() => {
                client.portal_store().put_empty_portal(portal_name)
            }
            Some(Entry::Empty) => {
                return Err(SqlError::new(
                    sqlstate::PROTOCOL_VIOLATION,
                    format!(
                        "bind message supplies {} parameters, but prepared statement \"{statement_name}\" requires 0",
                        message.parameters.len()
                    ),
                )
                .into())
            }
            None => return Err(PgWireError::StatementNotFound(statement_name.to_owned())),
        }
        client
            .feed(PgWireBackendMessage::BindComplete(BindComplete::new()))
            .await?;
        Ok(())
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let params = bind_params(portal)?;
        let prepared = &portal.statement.statement;
        let output = match deallocation(&prepared.statement) {
            Some(what) => self.deallocate(client, &what),
            None => {
                let timed_out = self.session.timed_out();
                tokio::select! {
                    output = guard(self.session.execute(prepared, params)) => output,
                    e = timed_out => {
                        self.session.abort_implicit();
                        Err(e)
                    }
                }
            }
        };
        let output = output?;
        self.respond(client, output, |i| {
            portal.result_column_format.format_for(i)
        })
        .await
    }
}
