//! Strata's gRPC contracts, generated from the `.proto` files in `proto/`.
//!
//! `bytes` fields are [`bytes::Bytes`], so keys, values and WAL pass through without copies.

pub mod safekeeper {
    tonic::include_proto!("strata.safekeeper");
}

pub mod pageserver {
    tonic::include_proto!("strata.pageserver");
}

pub mod control {
    tonic::include_proto!("strata.control");
}

pub mod raft {
    tonic::include_proto!("strata.raft");
}

pub mod local;

/// Metadata key with which a safekeeper that is not the Raft leader names the leader's address.
pub const LEADER_METADATA_KEY: &str = "x-strata-leader";

/// Metadata key of the pageserver's `OUT_OF_RANGE` answers, saying which past is out of reach:
/// [`OUT_OF_RANGE_RETENTION`] (garbage collection removed it) or [`OUT_OF_RANGE_BEFORE_START`]
/// (the timeline did not exist yet, or had no commit).
pub const OUT_OF_RANGE_REASON: &str = "x-strata-out-of-range";
pub const OUT_OF_RANGE_RETENTION: &str = "retention";
pub const OUT_OF_RANGE_BEFORE_START: &str = "before-start";
