//! What the Raft log carries: the openraft type configuration and the application entries.
//!
//! The log *is* the WAL: the LSN of a record is the Raft index of the entry that holds it, so
//! every safekeeper assigns the same LSN to the same transaction without any extra agreement.

use std::io::Cursor;

use bytes::Bytes;
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use strata_core::TimelineId;

openraft::declare_raft_types!(
    /// The openraft types of the safekeeper group.
    pub(crate) TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// One log entry of the safekeeper group.
pub(crate) type Entry = openraft::Entry<TypeConfig>;
/// The position of an entry (term, leader and index).
pub(crate) type LogId = openraft::LogId<u64>;
pub(crate) type Vote = openraft::Vote<u64>;
pub(crate) type StorageError = openraft::StorageError<u64>;
pub(crate) type Raft = openraft::Raft<TypeConfig>;

/// The application payload of a Raft entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Request {
    /// A compute becomes the primary of a timeline: the timeline's generation goes up by one
    /// from this entry on, fencing every earlier primary.
    Register {
        #[serde(with = "timeline_bytes")]
        timeline: TimelineId,
    },
    /// Transactions group-committed together; they all share this entry's LSN.
    Batch(Batch),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Batch {
    /// Chosen by the leader when it formed the batch: wall clock, strictly increasing.
    pub commit_time_micros: i64,
    pub txns: Vec<Txn>,
}

/// One transaction as a primary sent it. Whether it counts is decided when the entry is applied,
/// from the generation history alone, so every node and every reader reaches the same verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Txn {
    #[serde(with = "timeline_bytes")]
    pub timeline: TimelineId,
    pub generation: u32,
    /// Encoded by `strata_core::wal::encode_mutations`; safekeepers never look inside.
    #[serde(with = "bytes_serde")]
    pub mutations: Bytes,
}

/// What applying an entry produced, returned to the proposer by `client_write`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Response {
    /// Blank and membership entries.
    None,
    Registered {
        generation: u32,
    },
    /// One verdict per transaction of the batch, in order.
    Batch {
        accepted: Vec<bool>,
    },
}

/// Timeline ids travel as their 16 raw bytes (their own serde form is 32 hex characters).
mod timeline_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    use strata_core::TimelineId;

    pub fn serialize<S: Serializer>(id: &TimelineId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(id.as_bytes())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TimelineId, D::Error> {
        let buf = serde_bytes::ByteBuf::deserialize(d)?;
        let bytes: [u8; 16] = buf
            .as_slice()
            .try_into()
            .map_err(|_| serde::de::Error::invalid_length(buf.len(), &"16 bytes"))?;
        Ok(TimelineId::from_bytes(bytes))
    }
}

/// `Bytes` as a serde byte string, without turning on the `bytes/serde` feature workspace-wide.
mod bytes_serde {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        Ok(Bytes::from(
            serde_bytes::ByteBuf::deserialize(d)?.into_vec(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_postcard() {
        let tl = TimelineId::generate();
        let req = Request::Batch(Batch {
            commit_time_micros: 42,
            txns: vec![Txn {
                timeline: tl,
                generation: 3,
                mutations: Bytes::from_static(b"abc"),
            }],
        });
        let enc = postcard::to_allocvec(&req).unwrap();
        assert_eq!(postcard::from_bytes::<Request>(&enc).unwrap(), req);
        let reg = Request::Register { timeline: tl };
        let enc = postcard::to_allocvec(&reg).unwrap();
        assert_eq!(postcard::from_bytes::<Request>(&enc).unwrap(), reg);
    }
}
