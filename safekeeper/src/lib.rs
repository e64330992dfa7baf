//! Strata safekeepers: a Raft quorum (openraft) whose log is the WAL.
//!
//! A primary compute registers for its timeline ([`run`] serves `RegisterPrimary`) and receives a
//! generation; its commits (`AppendWal`) are group-committed by the leader into one Raft entry,
//! fsync'd on a majority before they are acknowledged. The LSN of a record is the index of the
//! Raft entry holding it. Any node streams the committed WAL of a timeline (`StreamWal`) from
//! its local log. See `docs/safekeeper.md`.
//!
//! Map of the crate:
//! - [`config`](SafekeeperConfig): one serde struct with defaults for a loopback group.
//! - `node`: [`run`], the wiring and the orderly shutdown.
//! - `log_store`: the WAL segment files, openraft's `RaftLogStorage`.
//! - `state_machine`: generations per timeline, snapshots.
//! - `group_commit`: the batcher behind `AppendWal`.
//! - `wal_stream`: `StreamWal`, from the local log or the offloaded WAL.
//! - `remote_wal` / `offload`: the WAL and state checkpoints in object storage, uploads, and
//!   recovery of a group from the bucket alone.
//! - `service` / `raft_service` / `network`: the gRPC faces.

mod config;
mod durable_file;
mod error;
mod group_commit;
mod log_store;
mod network;
mod node;
mod offload;
mod raft_service;
#[cfg(test)]
mod raft_tests;
mod remote_wal;
mod service;
mod state_machine;
mod types;
mod wal_stream;

pub use config::SafekeeperConfig;
pub use error::SafekeeperError;
pub use node::run;
