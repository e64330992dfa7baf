//! The on-disk format of WAL segment files.
//!
//! A segment is named after the index of its first entry (`00000000000000000042.seg`, zero
//! padded so a listing sorts by index) and holds:
//!
//! ```text
//! magic "STRWAL01"
//! frame*   where frame = payload length: u32 LE | CRC-32C of payload: u32 LE | payload
//! ```
//!
//! The payload is the postcard encoding of the openraft entry, which begins with its log id, so
//! a scan learns every entry's index and term without decoding the transactions.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;

use crate::types::{Entry, LogId};

pub(crate) const MAGIC: &[u8; 8] = b"STRWAL01";
pub(crate) const MAGIC_LEN: u64 = MAGIC.len() as u64;
pub(crate) const FRAME_HEADER_LEN: u64 = 8;
/// A frame longer than this is garbage, not an entry (a batch is at most a few tens of MiB).
const MAX_PAYLOAD_LEN: u32 = 1 << 30;

pub(crate) fn file_name(first_index: u64) -> String {
    format!("{first_index:020}.seg")
}

pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

/// Appends the frame of `entry` to `buf` and returns the payload length.
pub(crate) fn encode_frame(entry: &Entry, buf: &mut Vec<u8>) -> Result<u32, postcard::Error> {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; FRAME_HEADER_LEN as usize]);
    let mut buf_out = std::mem::take(buf);
    buf_out = postcard::to_extend(entry, buf_out)?;
    *buf = buf_out;
    let payload_len = buf.len() - start - FRAME_HEADER_LEN as usize;
    let len = u32::try_from(payload_len).map_err(|_| postcard::Error::SerializeBufferFull)?;
    let crc = crc32c::crc32c(&buf[start + FRAME_HEADER_LEN as usize..]);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(len)
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    #[error("frame at offset {offset}: {reason}")]
    Damaged { offset: u64, reason: &'static str },
}

/// Reads and verifies the frame at `offset` whose payload is `len` bytes long.
pub(crate) fn read_frame(file: &File, offset: u64, len: u32) -> Result<Entry, FrameError> {
    let mut buf = vec![0u8; FRAME_HEADER_LEN as usize + len as usize];
    file.read_exact_at(&mut buf, offset)?;
    let damaged = |reason| FrameError::Damaged { offset, reason };
    let stored_len = u32::from_le_bytes(buf[0..4].try_into().expect("four bytes"));
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("four bytes"));
    if stored_len != len {
        return Err(damaged("length differs from the index"));
    }
    let payload = &buf[FRAME_HEADER_LEN as usize..];
    if crc32c::crc32c(payload) != crc {
        return Err(damaged("checksum mismatch"));
    }
    postcard::from_bytes(payload).map_err(|_| damaged("undecodable entry"))
}

/// One valid frame found by [`scan`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScannedFrame {
    pub offset: u64,
    pub len: u32,
    pub log_id: LogId,
}

/// How a scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// The file ends exactly after the last valid frame.
    Clean,
    /// From `offset` on the file holds no valid frame: a torn write or damage.
    Invalid { offset: u64, reason: &'static str },
    /// The frames end at `offset`, where a zeroed frame header begins: the zeros written ahead
    /// of appends (a real frame's payload is never empty, so its header is never all zeros).
    Zeros { offset: u64, reason: &'static str },
}

/// Reads a whole segment, verifying every frame, and reports where valid data stops.
pub(crate) fn scan(file: &File) -> io::Result<(Vec<ScannedFrame>, ScanEnd)> {
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut frames = Vec::new();
    let mut magic = [0u8; MAGIC.len()];
    if file_len < MAGIC_LEN {
        return Ok((
            frames,
            ScanEnd::Invalid {
                offset: 0,
                reason: "no segment header",
            },
        ));
    }
    reader.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Ok((
            frames,
            ScanEnd::Invalid {
                offset: 0,
                reason: "bad segment magic",
            },
        ));
    }
    let mut offset = MAGIC_LEN;
    let mut payload = Vec::new();
    loop {
        if offset == file_len {
            return Ok((frames, ScanEnd::Clean));
        }
        let invalid = |reason| ScanEnd::Invalid { offset, reason };
        if file_len - offset < FRAME_HEADER_LEN {
            return Ok((frames, invalid("truncated frame header")));
        }
        let mut header = [0u8; FRAME_HEADER_LEN as usize];
        reader.read_exact(&mut header)?;
        let len = u32::from_le_bytes(header[0..4].try_into().expect("four bytes"));
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("four bytes"));
        if len == 0 && crc == 0 {
            return Ok((
                frames,
                ScanEnd::Zeros {
                    offset,
                    reason: "zeros after the frames",
                },
            ));
        }
        if len > MAX_PAYLOAD_LEN {
            return Ok((frames, invalid("implausible frame length")));
        }
        if file_len - offset - FRAME_HEADER_LEN < u64::from(len) {
            return Ok((frames, invalid("truncated frame payload")));
        }
        payload.resize(len as usize, 0);
        reader.read_exact(&mut payload)?;
        if crc32c::crc32c(&payload) != crc {
            return Ok((frames, invalid("checksum mismatch")));
        }
        // The entry starts with its log id: decode only that.
        let Ok((log_id, _)) = postcard::take_from_bytes::<LogId>(&payload) else {
            return Ok((frames, invalid("undecodable log id")));
        };
        frames.push(ScannedFrame {
            offset,
            len,
            log_id,
        });
        offset += FRAME_HEADER_LEN + u64::from(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    #[test]
    fn file_names_sort_and_parse() {
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert!(file_name(9) < file_name(10));
        assert_eq!(parse_file_name("42.seg"), None);
        assert_eq!(parse_file_name(&file_name(1).replace(".seg", ".tmp")), None);
    }

    #[test]
    fn frames_round_trip_and_scan() {
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(3, 1), 7),
            payload: EntryPayload::Blank,
        };
        let mut buf = MAGIC.to_vec();
        let len = encode_frame(&entry, &mut buf).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(7));
        std::fs::write(&path, &buf).unwrap();
        let file = File::open(&path).unwrap();
        let read = read_frame(&file, MAGIC_LEN, len).unwrap();
        assert_eq!(read.log_id, entry.log_id);
        let (frames, end) = scan(&file).unwrap();
        assert_eq!(end, ScanEnd::Clean);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].log_id, entry.log_id);
    }
}
