//! Small files that must be replaced atomically: the Raft vote and pointers, the snapshot.
//!
//! A crash may leave the old version or the new one, never a mix: the new content is written to
//! a temporary file, fsync'd, renamed over the old one, and the directory is fsync'd so the
//! rename itself survives. Each file starts with a CRC-32C of its payload so that damage is an
//! error, not a silently wrong vote.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Why a durable file could not be read back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DurableFileError {
    #[error("I/O on {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path} is damaged (checksum mismatch or truncated)")]
    Corrupt { path: String },
}

/// Replaces `path` with `payload`, atomically and durably.
pub(crate) fn write_atomic(path: &Path, payload: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = File::create(&tmp)?;
        file.write_all(&crc32c::crc32c(payload).to_le_bytes())?;
        file.write_all(payload)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Reads what [`write_atomic`] wrote; `None` when the file does not exist.
pub(crate) fn read_checked(path: &Path) -> Result<Option<Vec<u8>>, DurableFileError> {
    let data = match fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(DurableFileError::Io {
                path: path.display().to_string(),
                source,
            })
        }
    };
    let corrupt = || DurableFileError::Corrupt {
        path: path.display().to_string(),
    };
    if data.len() < 4 {
        return Err(corrupt());
    }
    let (crc, payload) = data.split_at(4);
    let crc = u32::from_le_bytes(crc.try_into().expect("four bytes"));
    if crc32c::crc32c(payload) != crc {
        return Err(corrupt());
    }
    Ok(Some(payload.to_vec()))
}

/// Makes creations, renames and deletions in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta");
        assert!(read_checked(&path).unwrap().is_none());
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(read_checked(&path).unwrap().unwrap(), b"two");
        let mut raw = fs::read(&path).unwrap();
        raw[5] ^= 0xff;
        fs::write(&path, raw).unwrap();
        assert!(matches!(
            read_checked(&path),
            Err(DurableFileError::Corrupt { .. })
        ));
    }
}
