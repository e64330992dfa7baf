//! The pageserver's errors, and the gRPC status code each one becomes at the edge.

use strata_core::{Lsn, TimelineId};
use strata_proto::{OUT_OF_RANGE_BEFORE_START, OUT_OF_RANGE_REASON, OUT_OF_RANGE_RETENTION};

/// Everything that can go wrong inside the pageserver. The variant tells the caller what to do:
/// retry later (`WaitLsnTimeout`, `Remote`, `ShuttingDown`), fix the request
/// (`InvalidArgument`), or page an operator (`Corruption`, `Fenced`, `Io`).
#[derive(Debug, thiserror::Error)]
pub enum PageserverError {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    #[error(
        "timeline {timeline}: WAL ingest reached {last_record_lsn}, \
         not {wanted} within the wait timeout"
    )]
    WaitLsnTimeout {
        timeline: TimelineId,
        wanted: Lsn,
        last_record_lsn: Lsn,
    },

    /// The read asks for history that garbage collection may already have removed.
    #[error(
        "timeline {timeline}: LSN {wanted} is before the retained history, which starts at {cutoff}"
    )]
    BelowGcCutoff {
        timeline: TimelineId,
        wanted: Lsn,
        cutoff: Lsn,
    },

    /// The read asks a branch for a state before it was created.
    #[error("timeline {timeline}: LSN {wanted} is before the branch was created (at {start})")]
    BeforeBranch {
        timeline: TimelineId,
        wanted: Lsn,
        start: Lsn,
    },

    /// A point in time older than the history GC keeps.
    #[error("{0}")]
    TimeBeforeRetention(String),

    /// A point in time before the timeline has a state: before the branch was created, or
    /// before the first commit.
    #[error("{0}")]
    TimeBeforeStart(String),

    #[error("timeline {0} does not exist (it was deleted)")]
    NoSuchTimeline(TimelineId),

    #[error("timeline {0} already exists")]
    TimelineExists(TimelineId),

    /// Deleting a timeline that other branches read through.
    #[error("timeline {0} has branches; delete them first")]
    HasBranches(TimelineId),

    /// Another pageserver took the timeline over (published a manifest with a higher
    /// generation). This one must not ingest or upload for it any more.
    #[error("timeline {0} is owned by another pageserver (fenced by a newer generation)")]
    Fenced(TimelineId),

    /// A layer file or manifest failed its checksum or structure checks. Never answered as data.
    #[error("corrupt {what}: {detail}")]
    Corruption { what: String, detail: String },

    #[error("object storage: {0}")]
    Remote(#[from] object_store::Error),

    #[error("local I/O: {0}")]
    Io(#[from] std::io::Error),

    #[error("the pageserver is shutting down")]
    ShuttingDown,

    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),

    #[error("internal: {0}")]
    Internal(String),
}

impl PageserverError {
    pub(crate) fn corruption(what: impl Into<String>, detail: impl Into<String>) -> Self {
        PageserverError::Corruption {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

impl From<tokio::task::JoinError> for PageserverError {
    fn from(e: tokio::task::JoinError) -> Self {
        PageserverError::Internal(format!("background task failed: {e}"))
    }
}

impl From<PageserverError> for tonic::Status {
    fn from(e: PageserverError) -> Self {
        use tonic::Status;
        let message = e.to_string();
        match e {
            PageserverError::InvalidArgument(_) => Status::invalid_argument(message),
            PageserverError::BelowGcCutoff { .. } | PageserverError::TimeBeforeRetention(_) => {
                out_of_range(message, OUT_OF_RANGE_RETENTION)
            }
            PageserverError::BeforeBranch { .. } | PageserverError::TimeBeforeStart(_) => {
                out_of_range(message, OUT_OF_RANGE_BEFORE_START)
            }
            PageserverError::NoSuchTimeline(_) => Status::not_found(message),
            PageserverError::TimelineExists(_) => Status::already_exists(message),
            PageserverError::HasBranches(_) => Status::failed_precondition(message),
            PageserverError::WaitLsnTimeout { .. }
            | PageserverError::ShuttingDown
            | PageserverError::Remote(_)
            | PageserverError::Transport(_) => Status::unavailable(message),
            PageserverError::Fenced(_) => Status::failed_precondition(message),
            PageserverError::Corruption { .. } => Status::data_loss(message),
            PageserverError::Io(_) | PageserverError::Internal(_) => Status::internal(message),
        }
    }
}

fn out_of_range(message: String, reason: &'static str) -> tonic::Status {
    let mut status = tonic::Status::out_of_range(message);
    status.metadata_mut().insert(
        OUT_OF_RANGE_REASON,
        tonic::metadata::MetadataValue::from_static(reason),
    );
    status
}

pub(crate) type Result<T, E = PageserverError> = std::result::Result<T, E>;
