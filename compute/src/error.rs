//! Errors of the compute, each carrying the PostgreSQL SQLSTATE that a client will see.
//!
//! Everything that can go wrong while running a statement ends up as a [`SqlError`]: its `code`
//! is what drivers and ORMs branch on (23505 unique violation, 40001 serialization failure, …),
//! so every error path picks the code PostgreSQL would send for the same situation.

use std::fmt;

use datafusion::arrow::error::ArrowError;
use datafusion::common::{DataFusionError, SchemaError};
use pgwire::error::{ErrorInfo, PgWireError};

use crate::storage::StorageError;

/// PostgreSQL error codes used by Strata (see PostgreSQL's errcodes appendix). Kept as one
/// table, including codes only some paths use yet.
#[allow(dead_code)]
pub mod sqlstate {
    pub const SUCCESSFUL_COMPLETION: &str = "00000";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    pub const NULL_VALUE_NOT_ALLOWED: &str = "22004";
    pub const STRING_DATA_RIGHT_TRUNCATION: &str = "22001";
    pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
    pub const INVALID_DATETIME_FORMAT: &str = "22007";
    pub const DATETIME_FIELD_OVERFLOW: &str = "22008";
    pub const DIVISION_BY_ZERO: &str = "22012";
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    pub const BAD_COPY_FILE_FORMAT: &str = "22P04";
    pub const INVALID_BINARY_REPRESENTATION: &str = "22P03";
    pub const NOT_NULL_VIOLATION: &str = "23502";
    pub const UNIQUE_VIOLATION: &str = "23505";
    pub const INVALID_COLUMN_REFERENCE: &str = "42P10";
    pub const CARDINALITY_VIOLATION: &str = "21000";
    pub const FOREIGN_KEY_VIOLATION: &str = "23503";
    pub const CHECK_VIOLATION: &str = "23514";
    pub const SEQUENCE_GENERATOR_LIMIT_EXCEEDED: &str = "2200H";
    pub const OBJECT_NOT_IN_PREREQUISITE_STATE: &str = "55000";
    pub const GENERATED_ALWAYS: &str = "428C9";
    pub const DEPENDENT_OBJECTS_STILL_EXIST: &str = "2BP01";
    pub const WRONG_OBJECT_TYPE: &str = "42809";
    pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const DEADLOCK_DETECTED: &str = "40P01";
    pub const IN_FAILED_SQL_TRANSACTION: &str = "25P02";
    pub const ACTIVE_SQL_TRANSACTION: &str = "25001";
    pub const NO_ACTIVE_SQL_TRANSACTION: &str = "25P01";
    pub const INVALID_SAVEPOINT_SPECIFICATION: &str = "3B001";
    pub const STATEMENT_COMPLETION_UNKNOWN: &str = "40003";
    pub const SYNTAX_ERROR: &str = "42601";
    pub const UNDEFINED_PARAMETER: &str = "42P02";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_OBJECT: &str = "42704";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const DUPLICATE_TABLE: &str = "42P07";
    pub const DUPLICATE_PREPARED_STATEMENT: &str = "42P05";
    pub const INVALID_SQL_STATEMENT_NAME: &str = "26000";
    pub const DUPLICATE_COLUMN: &str = "42701";
    pub const DUPLICATE_OBJECT: &str = "42710";
    pub const INVALID_FOREIGN_KEY: &str = "42830";
    pub const AMBIGUOUS_COLUMN: &str = "42702";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const CANNOT_COERCE: &str = "42846";
    pub const INVALID_TABLE_DEFINITION: &str = "42P16";
    pub const INVALID_OBJECT_DEFINITION: &str = "42P17";
    pub const GROUPING_ERROR: &str = "42803";
    pub const INVALID_SCHEMA_NAME: &str = "3F000";
    pub const INVALID_CATALOG_NAME: &str = "3D000";
    pub const DUPLICATE_SCHEMA: &str = "42P06";
    pub const DUPLICATE_DATABASE: &str = "42P04";
    pub const RESERVED_NAME: &str = "42939";
    pub const OBJECT_IN_USE: &str = "55006";
    pub const CANT_CHANGE_RUNTIME_PARAM: &str = "55P02";
    pub const LOCK_NOT_AVAILABLE: &str = "55P03";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    pub const QUERY_CANCELED: &str = "57014";
    pub const CANNOT_CONNECT_NOW: &str = "57P03";
    pub const SNAPSHOT_TOO_OLD: &str = "72000";
    pub const INTERNAL_ERROR: &str = "XX000";
    pub const DATA_CORRUPTED: &str = "XX001";
}

/// An error as a PostgreSQL client sees it: a SQLSTATE, a message, and optional detail and hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SqlError {
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// The object the error is about (schema, table, column, constraint), as PostgreSQL names
    /// it in the error's s/t/c/n fields; drivers read these (`diag.constraint_name`).
    pub object: Option<Box<ErrorObject>>,
}

/// The database object an error concerns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorObject {
    pub schema: Option<String>,
    pub table: Option<String>,
    pub column: Option<String>,
    pub constraint: Option<String>,
}

pub type SqlResult<T> = Result<T, SqlError>;

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl SqlError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
            hint: None,
            object: None,
        }
    }

    /// Names the table (and schema) the error concerns.
    pub fn with_table(mut self, schema: &str, table: &str) -> Self {
        let object = self.object.get_or_insert_with(Default::default);
        object.schema = Some(schema.to_string());
        object.table = Some(table.to_string());
        self
    }

    /// Names the constraint the error concerns.
    pub fn with_constraint(mut self, constraint: impl Into<String>) -> Self {
        self.object.get_or_insert_with(Default::default).constraint = Some(constraint.into());
        self
    }

    /// Names the column the error concerns.
    pub fn with_column(mut self, column: impl Into<String>) -> Self {
        self.object.get_or_insert_with(Default::default).column = Some(column.into());
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn syntax(message: impl Into<String>) -> Self {
        Self::new(sqlstate::SYNTAX_ERROR, message)
    }

    pub fn unsupported(what: impl fmt::Display) -> Self {
        Self::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!("{what} is not supported"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(sqlstate::INTERNAL_ERROR, message)
    }

    pub fn undefined_table(name: &str) -> Self {
        Self::new(
            sqlstate::UNDEFINED_TABLE,
            format!("relation \"{name}\" does not exist"),
        )
    }

    /// Wraps this error so it can travel through DataFusion's execution and come out intact.
    pub fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }

    pub fn to_error_info(&self) -> ErrorInfo {
        let mut info = ErrorInfo::new(
            "ERROR".to_owned(),
            self.code.to_owned(),
            self.message.clone(),
        );
        info.detail = self.detail.clone();
        info.hint = self.hint.clone();
        if let Some(object) = &self.object {
            info.schema = object.schema.clone();
            info.table = object.table.clone();
            info.column = object.column.clone();
            info.constraint = object.constraint.clone();
        }
        info
    }
}

impl From<SqlError> for PgWireError {
    fn from(e: SqlError) -> Self {
        PgWireError::UserError(Box::new(e.to_error_info()))
    }
}

impl From<StorageError> for SqlError {
    fn from(e: StorageError) -> Self {
        let code = match &e {
            StorageError::Fenced(_) => sqlstate::READ_ONLY_SQL_TRANSACTION,
            StorageError::CommitUnknown(_) => sqlstate::STATEMENT_COMPLETION_UNKNOWN,
            StorageError::TooLarge(_) => sqlstate::PROGRAM_LIMIT_EXCEEDED,
            StorageError::Unavailable(_) => sqlstate::CANNOT_CONNECT_NOW,
            StorageError::Corrupt(_) => sqlstate::DATA_CORRUPTED,
            StorageError::SnapshotTooOld(_) => sqlstate::SNAPSHOT_TOO_OLD,
            StorageError::BeforeStart(_) => sqlstate::DATETIME_FIELD_OVERFLOW,
            StorageError::Rpc(_) => sqlstate::INTERNAL_ERROR,
        };
        SqlError::new(code, e.to_string())
    }
}

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        from_datafusion(&e)
    }
}

impl From<ArrowError> for SqlError {
    fn from(e: ArrowError) -> Self {
        from_arrow(&e)
    }
}

/// Finds the most specific SQLSTATE for a DataFusion error. Errors raised by Strata's own
/// operators travel inside `External` and are returned unchanged.
fn from_datafusion(e: &DataFusionError) -> SqlError {
    match e {
        DataFusionError::External(inner) => {
            if let Some(sql) = inner.downcast_ref::<SqlError>() {
                return sql.clone();
            }
            if let Some(df) = inner.downcast_ref::<DataFusionError>() {
                return from_datafusion(df);
            }
            if let Some(arrow) = inner.downcast_ref::<ArrowError>() {
                return from_arrow(arrow);
            }
            SqlError::internal(inner.to_string())
        }
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            from_datafusion(inner)
        }
        DataFusionError::Shared(inner) => from_datafusion(inner),
        DataFusionError::Collection(errors) => match errors.first() {
            Some(first) => from_datafusion(first),
            None => SqlError::internal("unknown error"),
        },
        DataFusionError::ArrowError(arrow, _) => from_arrow(arrow),
        DataFusionError::SQL(parser, _) => SqlError::syntax(parser.to_string()),
        // A FROM item naming columns of the items before it (LATERAL, or a function over
        // another table's column) leaves an outer reference the planner cannot run.
        DataFusionError::NotImplemented(msg) if msg.contains("OuterReferenceColumn") => {
            SqlError::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                "a FROM item that refers to columns of other FROM items (LATERAL) is not \
                 supported yet",
            )
            .with_hint("Call a set-returning function in the SELECT list instead.")
        }
        DataFusionError::NotImplemented(msg) => {
            SqlError::new(sqlstate::FEATURE_NOT_SUPPORTED, msg.clone())
        }
        DataFusionError::SchemaError(schema, _) => from_schema(schema),
        DataFusionError::Plan(msg) => from_plan_message(msg),
        DataFusionError::Execution(msg) => from_execution_message(msg),
        DataFusionError::ResourcesExhausted(msg) => {
            SqlError::new("53200", format!("out of memory: {msg}"))
        }
        other => SqlError::internal(other.strip_backtrace()),
    }
}

fn from_schema(e: &SchemaError) -> SqlError {
    match e {
        SchemaError::FieldNotFound { field, .. } => SqlError::new(
            sqlstate::UNDEFINED_COLUMN,
            format!("column \"{}\" does not exist", field.name),
        ),
        SchemaError::AmbiguousReference { field } => SqlError::new(
            sqlstate::AMBIGUOUS_COLUMN,
            format!("column reference \"{}\" is ambiguous", field.name),
        ),
        SchemaError::DuplicateQualifiedField { .. }
        | SchemaError::DuplicateUnqualifiedField { .. } => {
            SqlError::new(sqlstate::DUPLICATE_COLUMN, e.to_string())
        }
    }
}

/// DataFusion reports most analysis errors as `Plan` with a message; recognise the ones that have
/// a precise PostgreSQL code.
fn from_plan_message(msg: &str) -> SqlError {
    if let Some(rest) = msg.strip_prefix("table '") {
        if let Some(name) = rest.strip_suffix("' not found") {
            // DataFusion names the table fully; PostgreSQL as written (a name in another
            // schema is qualified, one in `public` was most likely written bare).
            let parts: Vec<&str> = name.split('.').collect();
            let shown = match parts.as_slice() {
                [.., "public", table] => table.to_string(),
                [.., schema, table] => format!("{schema}.{table}"),
                _ => name.to_string(),
            };
            return SqlError::undefined_table(&shown);
        }
    }
    // DataFusion: "Invalid function 'f'.\nDid you mean 'g'?"; PostgreSQL names the function and
    // hints at casts (its argument types are not known here).
    if let Some(name) = msg
        .split_once("Invalid function '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(name, _)| name)
    {
        return SqlError::new(
            sqlstate::UNDEFINED_FUNCTION,
            format!("function {name} does not exist"),
        )
        .with_hint(
            "No function matches the given name and argument types. You might need to add \
             explicit type casts.",
        );
    }
    if msg.contains("No function matches") {
        return SqlError::new(sqlstate::UNDEFINED_FUNCTION, msg.to_string());
    }
    if msg.contains("Cannot infer common")
        || msg.contains("Cannot coerce")
        || msg.contains("type_coercion")
    {
        return SqlError::new(sqlstate::DATATYPE_MISMATCH, msg.to_string());
    }
    if msg.contains("Unsupported") || msg.contains("not supported") {
        return SqlError::new(sqlstate::FEATURE_NOT_SUPPORTED, msg.to_string());
    }
    SqlError::new(sqlstate::SYNTAX_ERROR, msg.to_string())
}

fn from_execution_message(msg: &str) -> SqlError {
    if msg.contains("Divide by zero") || msg.contains("division by zero") {
        return SqlError::new(sqlstate::DIVISION_BY_ZERO, "division by zero");
    }
    if msg.contains("overflow") {
        return SqlError::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, msg.to_string());
    }
    SqlError::internal(msg.to_string())
}

fn from_arrow(e: &ArrowError) -> SqlError {
    match e {
        ArrowError::DivideByZero => SqlError::new(sqlstate::DIVISION_BY_ZERO, "division by zero"),
        ArrowError::CastError(msg) | ArrowError::ParseError(msg) => {
            if msg.contains("too large") || msg.contains("overflow") || msg.contains("Overflow") {
                SqlError::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, msg.clone())
            } else {
                SqlError::new(sqlstate::INVALID_TEXT_REPRESENTATION, msg.clone())
            }
        }
        ArrowError::ComputeError(msg) if msg.contains("overflow") => {
            SqlError::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, msg.clone())
        }
        ArrowError::ArithmeticOverflow(msg) => {
            SqlError::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, msg.clone())
        }
        ArrowError::InvalidArgumentError(msg) if msg.contains("too large") => {
            SqlError::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, msg.clone())
        }
        ArrowError::ExternalError(inner) => {
            if let Some(sql) = inner.downcast_ref::<SqlError>() {
                return sql.clone();
            }
            SqlError::internal(inner.to_string())
        }
        other => SqlError::internal(other.to_string()),
    }
}

/// Turns a caught panic into an internal error, so that a bug ends one statement rather than the
/// whole connection.
pub fn panic_error(panic: Box<dyn std::any::Any + Send>) -> SqlError {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    tracing::error!(panic = %what, "statement panicked");
    SqlError::internal(format!("internal error: {what}"))
}

/// Errors that stop the compute from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    #[error("could not register as primary: {0}")]
    Register(StorageError),
    #[error("could not load the catalog: {0}")]
    Catalog(SqlError),
    /// A read-only compute's LSN is (or is about to be) below the pageserver's GC cutoff.
    #[error("cannot hold the pinned LSN: {0}")]
    Pinned(StorageError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
