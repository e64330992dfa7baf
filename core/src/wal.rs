//! Committed WAL: logical redo, not page images.
//!
//! A transaction's writes travel from the compute to the safekeepers as one encoded
//! [`Mutation`] list; the safekeepers never look inside it, and the pageserver decodes it when it
//! ingests. The encoding ends with a CRC-32C so that a damaged record is an error, never data.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::Lsn;

/// One change to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    Put { key: Bytes, value: Bytes },
    Delete { key: Bytes },
}

impl Mutation {
    pub fn key(&self) -> &Bytes {
        match self {
            Mutation::Put { key, .. } | Mutation::Delete { key } => key,
        }
    }
}

/// One committed transaction (or a group-committed batch of them) of one timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    pub lsn: Lsn,
    /// Wall-clock commit time, microseconds since the Unix epoch; maps timestamps to LSNs.
    pub commit_time_micros: i64,
    pub mutations: Vec<Mutation>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WalDecodeError {
    #[error("WAL record is truncated")]
    Truncated,
    #[error("WAL record checksum mismatch")]
    Checksum,
    #[error("WAL record has unknown format version {0}")]
    Version(u8),
    #[error("WAL record has unknown mutation tag {0}")]
    Tag(u8),
}

const FORMAT_VERSION: u8 = 1;
const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;

/// Encodes a transaction's mutations: `version, count, (tag, key[, value])*, crc32c`, with
/// lengths as LEB128 varints.
pub fn encode_mutations(mutations: &[Mutation]) -> Bytes {
    let size: usize = mutations
        .iter()
        .map(|m| match m {
            Mutation::Put { key, value } => 11 + key.len() + value.len(),
            Mutation::Delete { key } => 6 + key.len(),
        })
        .sum();
    let mut buf = BytesMut::with_capacity(size + 16);
    buf.put_u8(FORMAT_VERSION);
    put_varint(&mut buf, mutations.len() as u64);
    for m in mutations {
        match m {
            Mutation::Put { key, value } => {
                buf.put_u8(TAG_PUT);
                put_varint(&mut buf, key.len() as u64);
                buf.put_slice(key);
                put_varint(&mut buf, value.len() as u64);
                buf.put_slice(value);
            }
            Mutation::Delete { key } => {
                buf.put_u8(TAG_DELETE);
                put_varint(&mut buf, key.len() as u64);
                buf.put_slice(key);
            }
        }
    }
    let crc = crc32c::crc32c(&buf);
    buf.put_u32_le(crc);
    buf.freeze()
}

/// Decodes what [`encode_mutations`] wrote. Keys and values share `data`'s buffer.
pub fn decode_mutations(data: &Bytes) -> Result<Vec<Mutation>, WalDecodeError> {
    if data.len() < 5 {
        return Err(WalDecodeError::Truncated);
    }
    let (body, crc) = data.split_at(data.len() - 4);
    let crc = u32::from_le_bytes(crc.try_into().expect("four bytes"));
    if crc32c::crc32c(body) != crc {
        return Err(WalDecodeError::Checksum);
    }
    let mut cur = data.slice(..data.len() - 4);
    let version = cur.get_u8();
    if version != FORMAT_VERSION {
        return Err(WalDecodeError::Version(version));
    }
    let count = get_varint(&mut cur)?;
    let mut out = Vec::with_capacity(count.min(1 << 20) as usize);
    for _ in 0..count {
        if !cur.has_remaining() {
            return Err(WalDecodeError::Truncated);
        }
        let tag = cur.get_u8();
        let key = get_bytes(&mut cur)?;
        match tag {
            TAG_PUT => {
                let value = get_bytes(&mut cur)?;
                out.push(Mutation::Put { key, value });
            }
            TAG_DELETE => out.push(Mutation::Delete { key }),
            other => return Err(WalDecodeError::Tag(other)),
        }
    }
    Ok(out)
}

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_varint(buf: &mut impl BufMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Reads an unsigned LEB128 varint.
pub fn get_varint(buf: &mut impl Buf) -> Result<u64, WalDecodeError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        if !buf.has_remaining() {
            return Err(WalDecodeError::Truncated);
        }
        let b = buf.get_u8();
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(WalDecodeError::Truncated)
}

fn get_bytes(cur: &mut Bytes) -> Result<Bytes, WalDecodeError> {
    let len = get_varint(cur)? as usize;
    if cur.remaining() < len {
        return Err(WalDecodeError::Truncated);
    }
    Ok(cur.split_to(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_round_trip() {
        let muts = vec![
            Mutation::Put {
                key: Bytes::from_static(b"k1"),
                value: Bytes::from(vec![7u8; 300]),
            },
            Mutation::Delete {
                key: Bytes::from_static(b"k2"),
            },
            Mutation::Put {
                key: Bytes::new(),
                value: Bytes::new(),
            },
        ];
        let enc = encode_mutations(&muts);
        assert_eq!(decode_mutations(&enc).unwrap(), muts);
        assert_eq!(decode_mutations(&encode_mutations(&[])).unwrap(), vec![]);
    }

    #[test]
    fn damage_is_detected() {
        let enc = encode_mutations(&[Mutation::Delete {
            key: Bytes::from_static(b"abc"),
        }]);
        let mut bad = enc.to_vec();
        bad[3] ^= 1;
        assert_eq!(
            decode_mutations(&Bytes::from(bad)),
            Err(WalDecodeError::Checksum)
        );
        assert_eq!(
            decode_mutations(&enc.slice(..3)),
            Err(WalDecodeError::Truncated)
        );
    }
}
