//! What the Raft log carries: the openraft type configuration and the application entries.
//!
//! The log *is* the WAL: the LSN of a record is the Raft index of the entry that holds it, so
//! every safekeeper assigns the same LSN to the same transaction without any extra agreement.

use std::io::Cursor;

use bytes::Bytes;
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use strata_core::{Lsn, TimelineId};

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
    /// A piece of a transaction too large for one entry (see [`Joined`]). Applying it changes
    /// nothing, and by itself it is no part of any timeline's WAL.
    Part(Part),
    /// The end of a transaction written in pieces: its LSN is this entry's index and its
    /// mutations are the `parts` (in order), then `txn.mutations`.
    Joined(Joined),
}
// New variants go at the end: postcard encodes the variant index, and logs already written must
// still decode.

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Batch {
    /// Chosen by the leader when it formed the batch: wall clock, strictly increasing.
    pub commit_time_micros: i64,
    pub txns: Vec<Txn>,
}

/// A consecutive piece of the mutations of a transaction larger than `max_entry_bytes`.
/// The timeline and generation repeat the transaction's, so a reader can tell the parts of
/// different transactions apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Part {
    #[serde(with = "timeline_bytes")]
    pub timeline: TimelineId,
    pub generation: u32,
    #[serde(with = "bytes_serde")]
    pub bytes: Bytes,
}

/// A transaction whose mutations were written as `Part` entries before this one. It is judged
/// (accepted or fenced) as a batch of one at this entry's index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Joined {
    /// Chosen by the leader when it proposed this entry, from the same clock as batches.
    pub commit_time_micros: i64,
    /// `mutations` holds the last piece only.
    pub txn: Txn,
    /// Log indexes of the `Part` entries holding the earlier pieces, ascending, all below this
    /// entry's index.
    pub parts: Vec<u64>,
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
    /// Blank, membership and `Part` entries.
    None,
    Registered {
        generation: u32,
    },
    /// One verdict per transaction of the batch, in order (a `Joined` entry is a batch of one):
    /// for an accepted transaction, the LSN of its timeline's commit before this entry (the
    /// primary makes commits visible in this chain's order); `None` for a fenced one.
    Batch {
        accepted: Vec<Option<Lsn>>,
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

    #[test]
    fn parts_and_joined_round_trip_through_postcard() {
        let tl = TimelineId::generate();
        let part = Request::Part(Part {
            timeline: tl,
            generation: 2,
            bytes: Bytes::from(vec![7u8; 1000]),
        });
        let joined = Request::Joined(Joined {
            commit_time_micros: 43,
            txn: Txn {
                timeline: tl,
                generation: 2,
                mutations: Bytes::from_static(b"tail"),
            },
            parts: vec![5, 6, 9],
        });
        for req in [part, joined] {
            let enc = postcard::to_allocvec(&req).unwrap();
            assert_eq!(postcard::from_bytes::<Request>(&enc).unwrap(), req);
        }
    }

    /// Entries already on disk keep their meaning: the variant index is the first byte.
    #[test]
    fn variant_indexes_are_stable() {
        let tl = TimelineId::from_bytes([0; 16]);
        let txn = Txn {
            timeline: tl,
            generation: 1,
            mutations: Bytes::new(),
        };
        let first_byte = |req: Request| postcard::to_allocvec(&req).unwrap()[0];
        assert_eq!(first_byte(Request::Register { timeline: tl }), 0);
        assert_eq!(
            first_byte(Request::Batch(Batch {
                commit_time_micros: 0,
                txns: vec![txn.clone()],
            })),
            1
        );
        assert_eq!(
            first_byte(Request::Part(Part {
                timeline: tl,
                generation: 1,
                bytes: Bytes::new(),
            })),
            2
        );
        assert_eq!(
            first_byte(Request::Joined(Joined {
                commit_time_micros: 0,
                txn,
                parts: vec![],
            })),
            3
        );
    }
}
