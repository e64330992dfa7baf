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
}
