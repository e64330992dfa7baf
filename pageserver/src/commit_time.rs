//! Timestamp ↔ LSN. At every WAL record's LSN, ingest writes the record's commit time and LSN
//! under [`COMMIT_TIME_KEY`], so the key's value at LSN `L` says when the newest commit at or
//! below `L` happened. Commit times ascend with LSNs (the safekeeper leader stamps them as it
//! appends), so "the last commit at or before time T" is a binary search over LSNs, each probe
//! an ordinary versioned read that reaches through ancestors like any other, and which GC
//! trims exactly as it trims the data the answer would be used to read.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use chrono::DateTime;
use strata_core::key::COMMIT_TIME_KEY;
use strata_core::Lsn;

use crate::error::{PageserverError, Result};
use crate::timeline::{lock, Timeline};

/// The value stored at a record's LSN: its commit time (microseconds since the Unix epoch)
/// and its LSN.
pub(crate) fn encode(micros: i64, lsn: Lsn) -> Bytes {
    let mut b = BytesMut::with_capacity(16);
    b.put_i64(micros);
    b.put_u64(lsn.0);
    b.freeze()
}

fn decode(mut value: Bytes) -> Result<Commit> {
    if value.len() != 16 {
        return Err(PageserverError::corruption(
            "commit time entry",
            format!("{} bytes, expected 16", value.len()),
        ));
    }
    Ok(Commit {
        micros: value.get_i64(),
        lsn: Lsn(value.get_u64()),
    })
}

/// One commit: when it happened and at which LSN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Commit {
    pub micros: i64,
    pub lsn: Lsn,
}

/// A time for messages, as RFC 3339.
fn show(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros).map_or_else(|| micros.to_string(), |t| t.to_rfc3339())
}

impl Timeline {
    /// The newest commit at or below `lsn` on this timeline or its ancestors (`None`: none).
    pub(crate) async fn commit_at(&self, lsn: Lsn) -> Result<Option<Commit>> {
        let key = Bytes::from_static(COMMIT_TIME_KEY);
        let value = self.get(&[key], lsn, lsn).await?.pop().flatten();
        value.map(decode).transpose()
    }

    /// The LSN of the last commit at or before `micros`: reading there shows the database as
    /// it was at that moment. Waits until ingest reaches `not_modified_since` first, so every
    /// commit the caller has seen is counted. Times before the branch was created, before its
    /// first commit, or before the retained history are errors.
    pub(crate) async fn lsn_at_time(&self, micros: i64, not_modified_since: Lsn) -> Result<Commit> {
        self.wait_lsn(not_modified_since).await?;
        let head = self.last_record_lsn();
        let start = self.start_lsn().max(lock(&self.manifest).gc_cutoff_lsn);
        let first = self.commit_at(start).await?;
        let (mut lo, mut hi) = (start, head.max(start));
        match first {
            // The state at `start` is at or before `micros`: search upwards from it.
            Some(c) if c.micros <= micros => {}
            _ if start > self.start_lsn() => {
                return Err(PageserverError::TimeBeforeRetention(format!(
                    "{} is before the retained history of this branch (garbage collection \
                     removed what is older than LSN {start})",
                    show(micros)
                )))
            }
            _ if self.ancestor.is_some() => {
                return Err(PageserverError::TimeBeforeStart(format!(
                    "{} is before this branch was created (at LSN {start})",
                    show(micros)
                )))
            }
            // A root timeline read from LSN 0 (an empty database): the search below finds
            // its first commit, or reports that there is none early enough.
            _ => {}
        }
        // Narrow with the flush-grained times the manifest keeps.
        for &(lsn, t) in &lock(&self.manifest).commit_times {
            if lsn >= lo && lsn <= hi {
                if t <= micros {
                    lo = lo.max(lsn);
                } else {
                    hi = hi.min(lsn);
                }
            }
        }
        // Invariant: the state at `lo` is at or before `micros` (or `lo` is 0 on a root
        // timeline, checked below); find the greatest such LSN up to `hi`.
        while lo < hi {
            let mid = Lsn(lo.0 + (hi.0 - lo.0).div_ceil(2));
            match self.commit_at(mid).await? {
                Some(c) if c.micros > micros => hi = Lsn(mid.0 - 1),
                _ => lo = mid,
            }
        }
        match self.commit_at(lo).await? {
            Some(c) if c.micros <= micros => Ok(self.clamp(c)),
            _ => Err(PageserverError::TimeBeforeStart(format!(
                "{} is before the first commit of this database",
                show(micros)
            ))),
        }
    }

    /// A commit found through the ancestor lies below this branch's start; the branch's
    /// state at its start is the same one.
    fn clamp(&self, c: Commit) -> Commit {
        Commit {
            lsn: c.lsn.max(self.start_lsn()),
            micros: c.micros,
        }
    }
}
