//! The error of running a safekeeper.

use crate::log_store::LogStoreError;

/// Why a safekeeper could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum SafekeeperError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("I/O on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The local WAL or Raft state could not be read or is damaged.
    #[error("storage: {0}")]
    Storage(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl From<LogStoreError> for SafekeeperError {
    fn from(e: LogStoreError) -> Self {
        SafekeeperError::Storage(e.to_string())
    }
}
