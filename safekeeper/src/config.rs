//! How one safekeeper is configured.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::SafekeeperError;
use crate::log_store::LogStoreConfig;
use crate::offload::OffloadConfig;

/// The configuration of one safekeeper node. Every field has a default suited to a local
/// three-node group on loopback; `strata safekeeper` reads it from a file, env and flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SafekeeperConfig {
    /// This node's id in the group, 1-based.
    pub node_id: u64,
    /// This node's durable directory (WAL segments, Raft meta, snapshot).
    pub data_dir: PathBuf,
    /// The client-facing "host:port" of every node in the group by node id, this one included.
    /// Empty means a group of one: this node, at the address of its listener.
    pub peers: BTreeMap<u64, String>,

    /// How often the leader sends heartbeats. Also openraft's timeout for one AppendEntries RPC.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// A follower that hears no leader for a random time in this range starts an election.
    #[serde(with = "humantime_serde")]
    pub election_timeout_min: Duration,
    #[serde(with = "humantime_serde")]
    pub election_timeout_max: Duration,
    /// How long a peer connection may take to establish before the peer counts as unreachable.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,

    /// At most this many bytes of transactions go into one group-commit batch (one Raft entry);
    /// a single larger transaction still forms a batch of its own. Batches are also bounded by
    /// `max_entry_bytes`.
    pub max_batch_bytes: usize,
    /// The largest Raft entry the batcher writes, in bytes of mutations. A transaction larger
    /// than this is written as `Part` entries of at most this size and a closing `Joined` entry,
    /// so that every AppendEntries RPC (which openraft gives `heartbeat_interval` to finish)
    /// stays small whatever the size of a transaction.
    pub max_entry_bytes: usize,
    /// Appends waiting to be batched hold this many bytes at most; further appends wait.
    pub max_pending_bytes: usize,
    /// Batches proposed to Raft and not yet committed; the next batch forms meanwhile.
    pub max_batches_in_flight: usize,

    /// WAL segment files are rolled at this size.
    pub segment_bytes: u64,
    /// Recent log entries kept in memory for replication and streaming.
    pub entry_cache_bytes: usize,
    /// Bytes of entries sent in one AppendEntries RPC (at least one entry, so one RPC carries
    /// less than `replication_batch_bytes + max_entry_bytes` plus framing).
    pub replication_batch_bytes: usize,

    /// A `StreamWal` chunk holds about this many bytes of records (or one larger record).
    pub stream_chunk_bytes: usize,
    /// An idle `StreamWal` sends an empty chunk this often, so readers know it is alive.
    #[serde(with = "humantime_serde")]
    pub stream_keepalive: Duration,

    /// With an object store, the leader offloads the committed WAL in objects of about this
    /// many bytes.
    pub offload_bytes: usize,
    /// A committed tail smaller than `offload_bytes` is offloaded once it has waited this long.
    #[serde(with = "humantime_serde")]
    pub offload_timeout: Duration,
    /// How often each node drops local WAL that is offloaded and covered by every timeline's
    /// uploaded layers.
    #[serde(with = "humantime_serde")]
    pub wal_trim_interval: Duration,
}

/// gRPC messages up to this size are accepted and sent (one 100,000-row INSERT is ~10 MB).
pub(crate) const MAX_MESSAGE_BYTES: usize = 256 << 20;

impl Default for SafekeeperConfig {
    fn default() -> Self {
        SafekeeperConfig {
            node_id: 1,
            data_dir: PathBuf::from(".strata/safekeeper-1"),
            peers: BTreeMap::new(),
            // Generous for loopback, on purpose: openraft gives each AppendEntries one heartbeat
            // interval to finish, and a small machine running several nodes (and tests) at once
            // must not mistake a busy leader for a dead one. Failover takes about two seconds.
            heartbeat_interval: Duration::from_millis(250),
            election_timeout_min: Duration::from_millis(1500),
            election_timeout_max: Duration::from_millis(3000),
            connect_timeout: Duration::from_millis(500),
            max_batch_bytes: 4 << 20,
            max_entry_bytes: 4 << 20,
            max_pending_bytes: 64 << 20,
            max_batches_in_flight: 4,
            segment_bytes: 64 << 20,
            entry_cache_bytes: 64 << 20,
            replication_batch_bytes: 4 << 20,
            stream_chunk_bytes: 1 << 20,
            stream_keepalive: Duration::from_secs(1),
            offload_bytes: 16 << 20,
            offload_timeout: Duration::from_secs(600),
            wal_trim_interval: Duration::from_secs(60),
        }
    }
}

impl SafekeeperConfig {
    /// A node of a group, with default timing and limits.
    pub fn new(node_id: u64, data_dir: impl Into<PathBuf>, peers: BTreeMap<u64, String>) -> Self {
        SafekeeperConfig {
            node_id,
            data_dir: data_dir.into(),
            peers,
            ..SafekeeperConfig::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<(), SafekeeperError> {
        let invalid = |msg: String| Err(SafekeeperError::Config(msg));
        if self.node_id == 0 {
            return invalid("node_id must be at least 1".into());
        }
        if !self.peers.is_empty() && !self.peers.contains_key(&self.node_id) {
            return invalid(format!("peers does not name this node ({})", self.node_id));
        }
        if self.peers.contains_key(&0) {
            return invalid("node ids in peers must be at least 1".into());
        }
        if self.heartbeat_interval.is_zero()
            || self.election_timeout_min <= self.heartbeat_interval
            || self.election_timeout_max <= self.election_timeout_min
        {
            return invalid(format!(
                "need 0 < heartbeat_interval ({:?}) < election_timeout_min ({:?}) < election_timeout_max ({:?})",
                self.heartbeat_interval, self.election_timeout_min, self.election_timeout_max
            ));
        }
        if self.max_batch_bytes == 0
            || self.max_pending_bytes == 0
            || self.max_batches_in_flight == 0
        {
            return invalid("group-commit limits must be positive".into());
        }
        if self.max_entry_bytes == 0 || self.replication_batch_bytes == 0 {
            return invalid("max_entry_bytes and replication_batch_bytes must be positive".into());
        }
        // One AppendEntries RPC must fit in a gRPC message, with room for framing.
        if self
            .max_entry_bytes
            .saturating_add(self.replication_batch_bytes)
            > MAX_MESSAGE_BYTES / 2
        {
            return invalid(format!(
                "max_entry_bytes + replication_batch_bytes must be at most {} MiB",
                (MAX_MESSAGE_BYTES / 2) >> 20
            ));
        }
        if self.max_pending_bytes > u32::MAX as usize {
            return invalid("max_pending_bytes must fit in 32 bits".into());
        }
        if self.stream_keepalive.is_zero() {
            return invalid("stream_keepalive must be positive".into());
        }
        if self.offload_bytes == 0
            || self.offload_timeout.is_zero()
            || self.wal_trim_interval.is_zero()
        {
            return invalid(
                "offload_bytes, offload_timeout and wal_trim_interval must be positive".into(),
            );
        }
        Ok(())
    }

    pub(crate) fn offload(&self) -> OffloadConfig {
        OffloadConfig {
            bytes: self.offload_bytes,
            timeout: self.offload_timeout,
            trim_interval: self.wal_trim_interval,
        }
    }

    pub(crate) fn log_store(&self) -> LogStoreConfig {
        LogStoreConfig {
            segment_bytes: self.segment_bytes,
            cache_bytes: self.entry_cache_bytes,
            replication_batch_bytes: self.replication_batch_bytes,
        }
    }

    /// openraft's configuration: our timing; snapshots only on request and no automatic purge,
    /// because WAL may only be dropped once it is offloaded (not implemented yet).
    pub(crate) fn raft(&self) -> Result<openraft::Config, SafekeeperError> {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        openraft::Config {
            cluster_name: "strata-safekeepers".into(),
            heartbeat_interval: millis(self.heartbeat_interval),
            election_timeout_min: millis(self.election_timeout_min),
            election_timeout_max: millis(self.election_timeout_max),
            snapshot_policy: openraft::SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: u64::MAX,
            ..openraft::Config::default()
        }
        .validate()
        .map_err(|e| SafekeeperError::Config(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_parse_from_json() {
        SafekeeperConfig::default().validate().unwrap();
        SafekeeperConfig::default().raft().unwrap();
        let cfg: SafekeeperConfig = serde_json::from_str(
            r#"{"node_id": 2, "peers": {"1": "a:1", "2": "b:2"}, "heartbeat_interval": "50ms"}"#,
        )
        .unwrap();
        assert_eq!(cfg.node_id, 2);
        assert_eq!(cfg.heartbeat_interval, Duration::from_millis(50));
        cfg.validate().unwrap();
        let bad = SafekeeperConfig::new(3, "x", cfg.peers.clone());
        assert!(bad.validate().is_err());
    }

    #[test]
    fn entry_size_limits_are_validated() {
        let cfg: SafekeeperConfig = serde_json::from_str(r#"{"max_entry_bytes": 65536}"#).unwrap();
        assert_eq!(cfg.max_entry_bytes, 64 << 10);
        cfg.validate().unwrap();
        for bad in [
            SafekeeperConfig {
                max_entry_bytes: 0,
                ..SafekeeperConfig::default()
            },
            SafekeeperConfig {
                replication_batch_bytes: 0,
                ..SafekeeperConfig::default()
            },
            SafekeeperConfig {
                max_entry_bytes: MAX_MESSAGE_BYTES,
                ..SafekeeperConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
