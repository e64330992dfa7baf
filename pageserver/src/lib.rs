//! The Strata pageserver: ingests committed WAL from the safekeepers, keeps it in an in-memory
//! layer, writes immutable layer files, uploads them to object storage and publishes a
//! manifest per timeline, and serves `Get`/`Scan` at any LSN over gRPC.
//!
//! Object storage is the durable truth; the local data directory is a cache. See
//! `docs/pageserver.md` for the file format, fencing and the ingest, flush and read paths.

mod ancestry;
mod commit_time;
mod compaction;
mod config;
mod error;
mod flush;
mod gc;
mod in_memory_layer;
mod layer_cache;
mod layer_desc;
mod layer_file;
mod layer_format;
mod layer_map;
mod manifest;
mod merge;
mod publish;
mod read_path;
mod remote;
mod server;
mod service;
mod timeline;
mod timeline_manager;
mod wal_receiver;

#[cfg(test)]
mod branch_tests;
#[cfg(test)]
mod compaction_tests;
#[cfg(test)]
mod read_latency;
#[cfg(test)]
mod test_util;
#[cfg(test)]
mod timeline_tests;

pub use config::PageserverConfig;
pub use error::PageserverError;
pub use server::run;
