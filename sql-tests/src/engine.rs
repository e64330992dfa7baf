use async_trait::async_trait;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use tokio_postgres::{NoTls, SimpleQueryMessage};

/// A statement that failed: its SQLSTATE and message, which `.slt` files match on.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SqlFailure {
    pub code: Option<String>,
    pub message: String,
}

impl From<tokio_postgres::Error> for SqlFailure {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => SqlFailure {
                code: Some(db.code().code().to_string()),
                message: db.message().to_string(),
            },
            None => SqlFailure {
                code: None,
                message: e.to_string(),
            },
        }
    }
}

/// Runs `.slt` statements over the simple query protocol, so values come back as the server's
/// own text output (which is what Strata must match PostgreSQL on).
pub struct PgWireDb {
    client: tokio_postgres::Client,
    engine: &'static str,
    connection: tokio::task::JoinHandle<()>,
}

impl PgWireDb {
    pub async fn connect(url: &str, engine: &'static str) -> Result<Self, SqlFailure> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            client,
            engine,
            connection,
        })
    }
}

#[async_trait]
impl AsyncDB for PgWireDb {
    type Error = SqlFailure;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlFailure> {
        let messages = self.client.simple_query(sql).await?;
        let mut columns = None;
        let mut rows = Vec::new();
        let mut affected = 0;
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(cols) => columns = Some(cols.len()),
                SimpleQueryMessage::Row(row) => {
                    columns.get_or_insert(row.len());
                    rows.push(
                        (0..row.len())
                            .map(|i| match row.get(i) {
                                None => "NULL".to_string(),
                                Some("") => "(empty)".to_string(),
                                Some(v) => v.to_string(),
                            })
                            .collect(),
                    );
                }
                SimpleQueryMessage::CommandComplete(n) => affected = n,
                _ => {}
            }
        }
        Ok(match columns {
            Some(n) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            },
            None => DBOutput::StatementComplete(affected),
        })
    }

    async fn shutdown(&mut self) {
        self.connection.abort();
    }

    fn engine_name(&self) -> &str {
        self.engine
    }

    fn error_sql_state(err: &SqlFailure) -> Option<String> {
        err.code.clone()
    }
}
