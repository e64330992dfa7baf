//! Layer files: immutable, sorted `(key, lsn) → value` entries. A delta file holds every
//! version of its keys in an LSN range; an image file holds every live key of its key range at
//! one LSN (`lsn_start == lsn_end`), so a key in its range but missing from it did not exist.
//!
//! ```text
//! file   := block* index footer
//! block  := lz4(entry*) crc32c:u32le                  (~block_size bytes of entries before
//!                                                      compression; the CRC covers the stored bytes)
//! entry  := key_len:varint key lsn:u64le kind:u8 [value_len:varint value]
//!           kind 1 = put (value follows), 2 = tombstone
//! index  := (first_key_len:varint first_key first_lsn:u64le offset:u64le len:u32le)*block_count
//!           min_key_len:varint min_key max_key_len:varint max_key
//!           bloom_probes:u8 bloom_len:varint bloom_bits crc32c:u32le
//! footer := index_offset:u64le index_len:u64le entry_count:u64le lsn_start:u64le lsn_end:u64le
//!           block_count:u32le format_version:u32le file_kind:u32le crc32c:u32le magic:u64le
//!           file_kind 0 = delta, 1 = image
//! ```
//!
//! `lz4` is an LZ4 block with its uncompressed length prepended (`lz4_flex`'s
//! `compress_prepend_size`). Entries are sorted by `(key, lsn)`; a key's versions may continue
//! into the next block. A block's `len` excludes its CRC; `index_len` includes the index CRC;
//! the footer CRC covers the 52 bytes before it. Because the index names each block's first
//! `(key, lsn)`, a point read at `(key, lsn)` touches exactly one block: the last one starting
//! at or before it, and none at all when the bloom filter rules the key out.
//!
//! Version 1 files (uncompressed blocks, no bloom filter, always delta, the footer CRC at byte
//! 48 over the 48 bytes before it) are still read.

mod bloom;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

use bytes::{Buf, BufMut, Bytes};
use strata_core::wal::{get_varint, put_varint};
use strata_core::Lsn;

use crate::error::{PageserverError, Result};
use crate::merge::Entry;

pub(crate) use reader::{Found, LayerReader};
pub(crate) use writer::LayerWriter;

const MAGIC: u64 = u64::from_le_bytes(*b"STRATADL");
const FORMAT_VERSION: u32 = 2;
const FOOTER_LEN: usize = 64;
const CRC_LEN: usize = 4;
const KIND_PUT: u8 = 1;
const KIND_TOMBSTONE: u8 = 2;

/// Where a block lives and which `(key, lsn)` it starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BlockIndexEntry {
    first_key: Bytes,
    first_lsn: Lsn,
    offset: u64,
    len: u32,
}

/// What a layer file holds; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Delta,
    Image,
}

/// The fixed-size tail of a layer file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Footer {
    index_offset: u64,
    index_len: u64,
    entry_count: u64,
    lsn_start: Lsn,
    lsn_end: Lsn,
    block_count: u32,
    /// 1 or 2; see the module documentation.
    version: u32,
    kind: FileKind,
}

impl Footer {
    /// Encodes a current-version footer.
    fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut buf = Vec::with_capacity(FOOTER_LEN);
        buf.put_u64_le(self.index_offset);
        buf.put_u64_le(self.index_len);
        buf.put_u64_le(self.entry_count);
        buf.put_u64_le(self.lsn_start.0);
        buf.put_u64_le(self.lsn_end.0);
        buf.put_u32_le(self.block_count);
        buf.put_u32_le(FORMAT_VERSION);
        buf.put_u32_le(match self.kind {
            FileKind::Delta => 0,
            FileKind::Image => 1,
        });
        let crc = crc32c::crc32c(&buf);
        buf.put_u32_le(crc);
        buf.put_u64_le(MAGIC);
        buf.try_into().expect("footer layout is 64 bytes")
    }

    fn decode(mut buf: &[u8], what: &str) -> Result<Footer> {
        let bad = |detail: &str| PageserverError::corruption(what, detail);
        if buf.len() != FOOTER_LEN {
            return Err(bad("short footer"));
        }
        if u64::from_le_bytes(buf[56..64].try_into().expect("8 bytes")) != MAGIC {
            return Err(bad("bad magic: not a Strata layer file"));
        }
        let word = |at: usize| u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
        let version = word(44);
        // Version 1 has its CRC right after the version; version 2 puts the file kind first.
        let crc_at = match version {
            1 => 48,
            2 => 52,
            _ => return Err(bad(&format!("unknown format version {version}"))),
        };
        if crc32c::crc32c(&buf[..crc_at]) != word(crc_at) {
            return Err(bad("footer checksum mismatch"));
        }
        let kind = match (version, word(48)) {
            (1, _) | (2, 0) => FileKind::Delta,
            (2, 1) => FileKind::Image,
            (_, other) => return Err(bad(&format!("unknown file kind {other}"))),
        };
        Ok(Footer {
            index_offset: buf.get_u64_le(),
            index_len: buf.get_u64_le(),
            entry_count: buf.get_u64_le(),
            lsn_start: Lsn(buf.get_u64_le()),
            lsn_end: Lsn(buf.get_u64_le()),
            block_count: buf.get_u32_le(),
            version,
            kind,
        })
    }
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_varint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// Reads a length-prefixed byte string as a slice of `cur`'s buffer.
fn get_bytes(cur: &mut Bytes) -> Option<Bytes> {
    let len = usize::try_from(get_varint(cur).ok()?).ok()?;
    (cur.remaining() >= len).then(|| cur.split_to(len))
}

fn encode_entry(buf: &mut Vec<u8>, key: &[u8], lsn: Lsn, value: Option<&[u8]>) {
    put_bytes(buf, key);
    buf.put_u64_le(lsn.0);
    match value {
        Some(v) => {
            buf.put_u8(KIND_PUT);
            put_bytes(buf, v);
        }
        None => buf.put_u8(KIND_TOMBSTONE),
    }
}

/// Decodes the next entry of a block (whose CRC was already checked); `None` at its end.
fn decode_entry(cur: &mut Bytes) -> std::result::Result<Option<Entry>, &'static str> {
    if !cur.has_remaining() {
        return Ok(None);
    }
    let key = get_bytes(cur).ok_or("truncated key")?;
    if cur.remaining() < 9 {
        return Err("truncated entry");
    }
    let lsn = Lsn(cur.get_u64_le());
    let value = match cur.get_u8() {
        KIND_PUT => Some(get_bytes(cur).ok_or("truncated value")?),
        KIND_TOMBSTONE => None,
        _ => return Err("unknown entry kind"),
    };
    Ok(Some(Entry { key, lsn, value }))
}
