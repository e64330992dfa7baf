//! Transaction blocks: BEGIN, COMMIT, ROLLBACK, savepoints and SET TRANSACTION, with
//! PostgreSQL's warnings and errors for using them out of place.

use datafusion::sql::sqlparser::ast::{
    Ident, Set, Statement, TransactionAccessMode, TransactionIsolationLevel, TransactionMode,
};

use super::{Block, Output, Session};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::names::normalize;
use crate::txn::Isolation;

/// A NOTICE or WARNING sent before a command's result.
#[derive(Debug, Clone)]
pub struct Notice {
    pub severity: &'static str,
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
}

impl Notice {
    pub fn info(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: "NOTICE",
            code,
            message: message.into(),
            detail: None,
        }
    }

    pub fn with_detail(self, detail: Option<String>) -> Self {
        Self { detail, ..self }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: "WARNING",
            code,
            message: message.into(),
            detail: None,
        }
    }
}

fn with_notice(tag: &str, notice: Notice) -> Output {
    Output::Command {
        tag: tag.into(),
        notice: Some(notice),
        parameter_status: None,
    }
}

/// Isolation and access mode named by BEGIN or SET TRANSACTION.
fn modes(modes: &[TransactionMode]) -> (Option<Isolation>, Option<bool>) {
    let mut isolation = None;
    let mut read_only = None;
    for mode in modes {
        match mode {
            TransactionMode::IsolationLevel(level) => {
                isolation = Some(match level {
                    TransactionIsolationLevel::ReadUncommitted
                    | TransactionIsolationLevel::ReadCommitted => Isolation::ReadCommitted,
                    TransactionIsolationLevel::RepeatableRead
                    | TransactionIsolationLevel::Snapshot => Isolation::RepeatableRead,
                    TransactionIsolationLevel::Serializable => Isolation::Serializable,
                })
            }
            TransactionMode::AccessMode(TransactionAccessMode::ReadOnly) => read_only = Some(true),
            TransactionMode::AccessMode(TransactionAccessMode::ReadWrite) => {
                read_only = Some(false)
            }
        }
    }
    (isolation, read_only)
}

impl Session {
    /// Runs a transaction-control statement; `None` if `stmt` is not one.
    pub(super) async fn transaction_control(&self, stmt: &Statement) -> SqlResult<Option<Output>> {
        Ok(Some(match stmt {
            Statement::StartTransaction { modes: m, .. } => self.begin(m),
            Statement::Commit { .. } => self.end(true).await?,
            Statement::Rollback {
                savepoint: None, ..
            } => self.end(false).await?,
            Statement::Rollback {
                savepoint: Some(name),
                ..
            } => self.rollback_to(name)?,
            Statement::Savepoint { name } => self.savepoint(name)?,
            Statement::ReleaseSavepoint { name } => self.release(name)?,
            Statement::Set(Set::SetTransaction {
                modes: m,
                session: false,
                ..
            }) => self.set_transaction(m)?,
            Statement::Set(Set::SetTransaction {
                modes: m,
                session: true,
                ..
            }) => self.set_session_characteristics(m)?,
            _ => return Ok(None),
        }))
    }

    fn begin(&self, m: &[TransactionMode]) -> Output {
        let mut block = self.block.lock().expect("block lock");
        if block.is_some() {
            return with_notice(
                "BEGIN",
                Notice::warning(
                    sqlstate::ACTIVE_SQL_TRANSACTION,
                    "there is already a transaction in progress",
                ),
            );
        }
        let (isolation, read_only) = modes(m);
        let next = self.take_next_isolation();
        let isolation = isolation.unwrap_or(next);
        let read_only = read_only.unwrap_or(false);
        self.slot.put(
            self.primary
                .txns
                .begin(isolation, read_only)
                .in_database(self.slot.database()),
        );
        *block = Some(Block::default());
        Output::command("BEGIN")
    }

    /// COMMIT (`commit` true) or ROLLBACK of the block. COMMIT of a failed block rolls back.
    async fn end(&self, commit: bool) -> SqlResult<Output> {
        let block = self.block.lock().expect("block lock").take();
        let Some(block) = block else {
            let tag = if commit { "COMMIT" } else { "ROLLBACK" };
            return Ok(with_notice(
                tag,
                Notice::warning(
                    sqlstate::NO_ACTIVE_SQL_TRANSACTION,
                    "there is no transaction in progress",
                ),
            ));
        };
        let txn = self.slot.take();
        if !commit || block.failed {
            return Ok(Output::command("ROLLBACK"));
        }
        if let Some(txn) = txn {
            self.commit(txn).await?;
        }
        Ok(Output::command("COMMIT"))
    }

    fn savepoint(&self, name: &Ident) -> SqlResult<Output> {
        let mut block = self.block.lock().expect("block lock");
        let Some(block) = block.as_mut() else {
            return Err(SqlError::new(
                sqlstate::NO_ACTIVE_SQL_TRANSACTION,
                "SAVEPOINT can only be used in transaction blocks",
            ));
        };
        if block.failed {
            return Err(aborted());
        }
        let mark = self.slot.with(|t| t.mark()).map_err(SqlError::from)?;
        block.savepoints.push((normalize(name), mark));
        Ok(Output::command("SAVEPOINT"))
    }

    fn rollback_to(&self, name: &Ident) -> SqlResult<Output> {
        let mut block = self.block.lock().expect("block lock");
        let Some(block) = block.as_mut() else {
            return Err(SqlError::new(
                sqlstate::NO_ACTIVE_SQL_TRANSACTION,
                "ROLLBACK TO SAVEPOINT can only be used in transaction blocks",
            ));
        };
        let name = normalize(name);
        let Some(index) = block.savepoints.iter().rposition(|(n, _)| *n == name) else {
            return Err(no_savepoint(&name));
        };
        block.savepoints.truncate(index + 1);
        let mark = block.savepoints[index].1;
        self.slot
            .with(|t| t.rollback_to(mark))
            .map_err(SqlError::from)?;
        block.failed = false;
        Ok(Output::command("ROLLBACK"))
    }

    fn release(&self, name: &Ident) -> SqlResult<Output> {
        let mut block = self.block.lock().expect("block lock");
        let Some(block) = block.as_mut() else {
            return Err(SqlError::new(
                sqlstate::NO_ACTIVE_SQL_TRANSACTION,
                "RELEASE SAVEPOINT can only be used in transaction blocks",
            ));
        };
        if block.failed {
            return Err(aborted());
        }
        let name = normalize(name);
        let Some(index) = block.savepoints.iter().rposition(|(n, _)| *n == name) else {
            return Err(no_savepoint(&name));
        };
        block.savepoints.truncate(index);
        Ok(Output::command("RELEASE"))
    }

    /// `SET SESSION CHARACTERISTICS AS TRANSACTION …`: the defaults of later transactions.
    fn set_session_characteristics(&self, m: &[TransactionMode]) -> SqlResult<Output> {
        let (isolation, read_only) = modes(m);
        let mut settings = self.settings.lock().expect("settings lock");
        if let Some(i) = isolation {
            settings.set("default_transaction_isolation", i.name())?;
        }
        if let Some(r) = read_only {
            settings.set(
                "default_transaction_read_only",
                if r { "on" } else { "off" },
            )?;
        }
        Ok(Output::command("SET"))
    }

    fn set_transaction(&self, m: &[TransactionMode]) -> SqlResult<Output> {
        let (isolation, read_only) = modes(m);
        if !self.in_block() {
            return Ok(with_notice(
                "SET",
                Notice::warning(
                    sqlstate::NO_ACTIVE_SQL_TRANSACTION,
                    "SET TRANSACTION can only be used in transaction blocks",
                ),
            ));
        }
        let changed = self
            .slot
            .with(|t| {
                if t.has_writes() || t.statements() > 0 {
                    return false;
                }
                if let Some(i) = isolation {
                    t.set_isolation(i);
                }
                if let Some(r) = read_only {
                    t.set_read_only(r);
                }
                true
            })
            .map_err(SqlError::from)?;
        if !changed && isolation.is_some() {
            return Err(SqlError::new(
                sqlstate::ACTIVE_SQL_TRANSACTION,
                "SET TRANSACTION ISOLATION LEVEL must be called before any query",
            ));
        }
        Ok(Output::command("SET"))
    }
}

impl Session {
    /// Starts the implicit transaction of a query string of several statements, as PostgreSQL
    /// does. Returns `false` (and starts nothing) inside a block, or when the statements manage
    /// transactions themselves.
    pub fn begin_implicit(&self, statements: &[Statement]) -> bool {
        let controls = statements.iter().any(is_transaction_control);
        let mut block = self.block.lock().expect("block lock");
        if controls || block.is_some() {
            return false;
        }
        let isolation = self.take_next_isolation();
        self.slot.put(
            self.primary
                .txns
                .begin(isolation, false)
                .in_database(self.slot.database()),
        );
        *block = Some(Block {
            implicit: true,
            ..Block::default()
        });
        true
    }

    /// Whether statements run in a transaction block (BEGIN's, or a query string's implicit
    /// one), rather than each in its own transaction.
    pub(super) fn in_transaction_block(&self) -> bool {
        self.block.lock().expect("block lock").is_some()
    }

    /// Ends the implicit transaction: commits it if every statement succeeded.
    pub async fn end_implicit(&self, commit: bool) -> SqlResult<()> {
        let block = self.block.lock().expect("block lock").take();
        let txn = self.slot.take();
        match (block, txn) {
            (Some(b), Some(txn)) if commit && !b.failed => self.commit(txn).await,
            _ => Ok(()),
        }
    }

    /// A query was cancelled: an implicit transaction is rolled back, an explicit block fails.
    pub fn abort_implicit(&self) {
        let mut block = self.block.lock().expect("block lock");
        match block.as_mut() {
            Some(b) if b.implicit => {
                *block = None;
                drop(self.slot.take());
            }
            Some(b) => b.failed = true,
            None => {}
        }
    }
}

/// Statements that manage the transaction itself (allowed even when a block has failed).
pub(super) fn is_transaction_control(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
            | Statement::Set(Set::SetTransaction { .. })
    )
}

pub(super) fn aborted() -> SqlError {
    SqlError::new(
        sqlstate::IN_FAILED_SQL_TRANSACTION,
        "current transaction is aborted, commands ignored until end of transaction block",
    )
}

fn no_savepoint(name: &str) -> SqlError {
    SqlError::new(
        sqlstate::INVALID_SAVEPOINT_SPECIFICATION,
        format!("savepoint \"{name}\" does not exist"),
    )
}
