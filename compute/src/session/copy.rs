//! COPY on the session's side: `FROM STDIN` keeps its transaction open while the data arrives
//! (the client sends it after the statement), `TO STDOUT` runs a query and hands its rows on.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{CopySource, CopyTarget, Statement};

use super::{Output, Session};
use crate::catalog::TableDef;
use crate::copy::{CopyFormat, CopyInput, CopyOptions};
use crate::dml::{insert_batches, DmlContext, DmlError};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::names::{normalize, table_name};
use crate::pg_catalog::quote_ident;

/// Rows are inserted in batches of this many as they arrive.
const COPY_BATCH_ROWS: usize = 8192;

/// A `COPY … FROM STDIN` in progress.
pub(super) struct CopyIn {
    def: Arc<TableDef>,
    columns: Vec<usize>,
    input: CopyInput,
    count: u64,
    /// The first error; later data is ignored, and the error is reported at the end.
    error: Option<SqlError>,
    /// Autocommit: the COPY is its own transaction, which ends with it.
    implicit: bool,
}

impl Session {
    /// `COPY … FROM STDIN`: checks the statement and waits for the data.
    pub(super) fn start_copy_in(&self, statement: &Statement) -> SqlResult<Output> {
        let Statement::Copy {
            source:
                CopySource::Table {
                    table_name: name,
                    columns,
                },
            options,
            legacy_options,
            ..
        } = statement
        else {
            return Err(SqlError::unsupported("COPY FROM a query"));
        };
        let options = CopyOptions::from_statement(options, legacy_options)?;
        let (schema, table) = table_name(name)?;
        let def = self
            .table(&schema, &table)?
            .ok_or_else(|| SqlError::undefined_table(&table))?;
        let columns = target_columns(&def, columns)?;
        let implicit = !self.in_block();
        if implicit && !self.begin_implicit(std::slice::from_ref(statement)) {
            return Err(SqlError::internal("could not start the COPY's transaction"));
        }
        let n = columns.len();
        let binary = options.format == CopyFormat::Binary;
        *self.copy_in.lock().expect("copy lock") = Some(CopyIn {
            def,
            columns,
            input: CopyInput::new(options),
            count: 0,
            error: None,
            implicit,
        });
        Ok(Output::CopyIn { columns: n, binary })
    }

    /// A chunk of COPY data.
    pub async fn copy_data(&self, data: &[u8]) {
        let Some(mut copy) = self.copy_in.lock().expect("copy lock").take() else {
            return;
        };
        if copy.error.is_none() {
            if let Err(e) = copy.input.feed(data) {
                copy.error = Some(e);
            }
            if copy.error.is_none() && copy.input.rows() >= COPY_BATCH_ROWS {
                if let Err(e) = self.flush_copy(&mut copy).await {
                    copy.error = Some(e);
                }
            }
        }
        *self.copy_in.lock().expect("copy lock") = Some(copy);
    }

    /// The end of the data: inserts what is left; returns the number of rows copied.
    pub async fn copy_done(&self) -> SqlResult<u64> {
        let Some(mut copy) = self.copy_in.lock().expect("copy lock").take() else {
            return Err(SqlError::new(
                sqlstate::PROTOCOL_VIOLATION,
                "no COPY in progress",
            ));
        };
        if copy.error.is_none() {
            if let Err(e) = copy.input.finish() {
                copy.error = Some(e);
            }
        }
        if copy.error.is_none() {
            if let Err(e) = self.flush_copy(&mut copy).await {
                copy.error = Some(e);
            }
        }
        self.end_copy(copy.implicit, copy.error.is_none()).await?;
        match copy.error {
            None => Ok(copy.count),
            Some(e) => Err(e),
        }
    }

    /// The client gave up the COPY.
    pub async fn copy_fail(&self, message: &str) -> SqlError {
        let copy = self.copy_in.lock().expect("copy lock").take();
        if let Some(copy) = copy {
            let _ = self.end_copy(copy.implicit, false).await;
        }
        SqlError::new(
            sqlstate::QUERY_CANCELED,
            format!("COPY from stdin failed: {message}"),
        )
    }

    async fn end_copy(&self, implicit: bool, ok: bool) -> SqlResult<()> {
        if implicit {
            self.end_implicit(ok).await
        } else {
            if !ok {
                self.fail_block();
            }
            Ok(())
        }
    }

    async fn flush_copy(&self, copy: &mut CopyIn) -> SqlResult<()> {
        if copy.input.rows() == 0 {
            return Ok(());
        }
        let line = copy.input.line();
        let batch = copy
            .input
            .take_batch(&copy.def, &copy.columns)
            .map_err(|e| {
                let mut e = e;
                e.message = format!(
                    "{}\nCONTEXT: COPY {}, line {}",
                    e.message, copy.def.name, line
                );
                e
            })?;
        let d = DmlContext {
            primary: &self.primary,
            ctx: &self.ctx,
            slot: &self.slot,
        };
        match insert_batches(
            &d,
            &copy.def,
            vec![batch],
            &crate::upsert::OnConflictDo::Error,
            None,
            &[],
        )
        .await
        {
            Ok(outcome) => {
                copy.count += outcome.count;
                Ok(())
            }
            Err(DmlError::Sql(e)) => Err(e),
            Err(DmlError::Restart) => Err(SqlError::new(
                sqlstate::SERIALIZATION_FAILURE,
                "could not serialize access due to concurrent update",
            )),
        }
    }

    /// `COPY … TO STDOUT`: the rows of a table or a query.
    pub(super) async fn copy_out(&self, statement: &Statement) -> SqlResult<Output> {
        let Statement::Copy {
            source,
            to: true,
            target: CopyTarget::Stdout,
            options,
            legacy_options,
            ..
        } = statement
        else {
            return Err(SqlError::unsupported(
                "COPY to or from a file or program; use STDIN or STDOUT",
            ));
        };
        let options = CopyOptions::from_statement(options, legacy_options)?;
        let query = match source {
            CopySource::Query(q) => Statement::Query(q.clone()),
            CopySource::Table {
                table_name: name,
                columns,
            } => {
                let (schema, table) = table_name(name)?;
                let list = match self.table(&schema, &table)? {
                    // A table's generated columns are left out, as COPY FROM leaves them out.
                    Some(def) => target_columns(&def, columns)?
                        .into_iter()
                        .map(|p| quote_ident(&def.columns[p].name))
                        .collect::<Vec<_>>()
                        .join(", "),
                    None if columns.is_empty() => "*".to_string(),
                    None => columns
                        .iter()
                        .map(|c| quote_ident(&normalize(c)))
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                self.parse(&format!("SELECT {list} FROM {name}"))?.remove(0)
            }
        };
        let prepared = self.plan_statement(query).await?;
        let plan = prepared.plan.clone().expect("queries are planned");
        let physical = self.ctx.state().create_physical_plan(&plan).await?;
        let stream = datafusion::physical_plan::execute_stream(physical, self.ctx.task_ctx())?;
        let columns = prepared.columns.unwrap_or_default();
        Ok(Output::CopyOut {
            columns,
            stream,
            options,
        })
    }
}

/// Positions of the COPY's columns in the table (all of them when none are named).
fn target_columns(
    def: &TableDef,
    columns: &[datafusion::sql::sqlparser::ast::Ident],
) -> SqlResult<Vec<usize>> {
    // Generated columns are computed, never copied, as in PostgreSQL.
    if columns.is_empty() {
        return Ok((0..def.columns.len())
            .filter(|&i| def.columns[i].generated.is_none())
            .collect());
    }
    columns
        .iter()
        .map(|c| {
            let name = normalize(c);
            let position = def
                .columns
                .iter()
                .position(|col| col.name == name)
                .ok_or_else(|| {
                    SqlError::new(
                        sqlstate::UNDEFINED_COLUMN,
                        format!(
                            "column \"{name}\" of relation \"{}\" does not exist",
                            def.name
                        ),
                    )
                })?;
            if def.columns[position].generated.is_some() {
                return Err(SqlError::new(
                    sqlstate::INVALID_COLUMN_REFERENCE,
                    format!("column \"{name}\" is a generated column"),
                )
                .with_detail("Generated columns cannot be used in COPY."));
            }
            Ok(position)
        })
        .collect()
}
