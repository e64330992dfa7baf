//! Clients for the two storage services a compute talks to: safekeepers (commits) and the
//! pageserver (reads).

mod pageserver_client;
mod retry;
mod safekeeper_client;

pub use pageserver_client::{PageserverClient, ScanStream};
pub use safekeeper_client::{Appended, SafekeeperClient};

/// What went wrong talking to storage, sorted by what the caller can do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// A newer primary registered for this branch; this compute must not commit anymore.
    #[error("this compute is no longer the primary of its branch: {0}")]
    Fenced(String),
    /// The commit may or may not have happened (the quorum stopped answering mid-commit).
    #[error("could not confirm the commit: {0}")]
    CommitUnknown(String),
    #[error("transaction too large: {0}")]
    TooLarge(String),
    /// Storage did not answer in time; retrying later may work.
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("storage returned corrupt data: {0}")]
    Corrupt(String),
    /// A read in the past that garbage collection has removed.
    #[error("{0}")]
    SnapshotTooOld(String),
    /// A read in the past before the branch existed (or before its first commit).
    #[error("{0}")]
    BeforeStart(String),
    #[error("storage request failed: {0}")]
    Rpc(String),
}

/// Largest gRPC message a compute sends or accepts: one large transaction's WAL.
pub(crate) const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;
