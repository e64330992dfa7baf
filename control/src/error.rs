#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("object storage: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("invalid object store URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("control manifest {path} is corrupt: {reason}")]
    CorruptManifest { path: String, reason: String },
    #[error("branch {0:?} does not exist")]
    NoSuchBranch(String),
    #[error("another writer updated the control manifest concurrently; retry")]
    Conflict,
    #[error("endpoint {0:?} does not exist")]
    NoSuchEndpoint(String),
    #[error("{0} already exists")]
    Exists(String),
    /// The request is well formed but the state does not allow it.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// A point in time or LSN the branch cannot be read at.
    #[error("{0}")]
    OutOfRange(String),
    /// The pageserver or safekeepers failed or could not be reached.
    #[error("storage: {0}")]
    Storage(String),
    #[error("cannot start a compute: {0}")]
    Launch(String),
}
