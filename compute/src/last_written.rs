//! The LSN of the last write to each key, as the primary knows it.
//!
//! Reads go to the pageserver at the transaction's snapshot LSN, but they need not wait until
//! the pageserver has ingested everything up to that LSN: only until it has ingested the last
//! write to what they read (`not_modified_since`, as Neon's compute does). The primary knows its
//! own writes, so it tracks the commit LSN per key it wrote, and per table for range reads.
//! A key it has no entry for was last written at or below `floor`: before this primary
//! registered, or by an entry forgotten to keep memory bounded.

// One entry per written key: hashed with DataFusion's fast default, not SipHash.
use datafusion::common::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use strata_core::key::TABLE_PREFIX;
use strata_core::Lsn;

/// Keys remembered at most; past this, everything is forgotten and the floor raised.
const MAX_KEYS: usize = 200_000;

#[derive(Debug)]
pub struct LastWritten {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    keys: HashMap<Bytes, Lsn>,
    /// Per region of the key space (one table's rows, or the catalog).
    regions: HashMap<Vec<u8>, Lsn>,
    floor: Lsn,
    max: Lsn,
}

/// The region a key belongs to: `t <table id>` for table data, its first byte otherwise.
fn region(key: &[u8]) -> &[u8] {
    if key.first() == Some(&TABLE_PREFIX) && key.len() >= 9 {
        &key[..9]
    } else {
        &key[..key.len().min(1)]
    }
}

impl LastWritten {
    /// Starts knowing only that nothing was written after `floor`.
    pub fn new(floor: Lsn) -> Self {
        Self {
            inner: Mutex::new(Inner {
                keys: HashMap::new(),
                regions: HashMap::new(),
                floor,
                max: floor,
            }),
        }
    }

    /// Records that `keys` were written by a commit at `lsn`.
    pub fn record<'a>(&self, keys: impl IntoIterator<Item = &'a Bytes>, lsn: Lsn) {
        let mut inner = self.inner.lock().expect("last-written lock");
        inner.max = inner.max.max(lsn);
        for key in keys {
            let r = region(key).to_vec();
            let entry = inner.regions.entry(r).or_insert(lsn);
            *entry = (*entry).max(lsn);
            inner.keys.insert(key.clone(), lsn);
        }
        if inner.keys.len() > MAX_KEYS {
            inner.floor = inner.max;
            inner.keys.clear();
        }
    }

    /// Forgets every key: all that is known now is that nothing was written after `lsn`. For
    /// a commit at or below `lsn` whose keys the primary does not know.
    pub fn forget_all(&self, lsn: Lsn) {
        let mut inner = self.inner.lock().expect("last-written lock");
        inner.floor = inner.floor.max(lsn);
        inner.max = inner.max.max(lsn);
        inner.keys.clear();
        inner.regions.clear();
    }

    /// The last write to `key`.
    pub fn for_key(&self, key: &Bytes) -> Lsn {
        let inner = self.inner.lock().expect("last-written lock");
        inner.keys.get(key).copied().unwrap_or(inner.floor)
    }

    /// The last write to any of `keys`.
    pub fn for_keys(&self, keys: &[Bytes]) -> Lsn {
        let inner = self.inner.lock().expect("last-written lock");
        keys.iter()
            .map(|k| inner.keys.get(k).copied().unwrap_or(inner.floor))
            .max()
            .unwrap_or(inner.floor)
    }

    /// The last write to any key in `[start, end)`.
    pub fn for_range(&self, start: &[u8], end: &[u8]) -> Lsn {
        let inner = self.inner.lock().expect("last-written lock");
        let r = region(start);
        let within_one_region = !end.is_empty() && r.len() > 1 && region(end) == r;
        if within_one_region {
            inner
                .regions
                .get(r)
                .copied()
                .unwrap_or(inner.floor)
                .max(inner.floor)
        } else {
            inner.max
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::key::{prefix_end, row_prefix};

    #[test]
    fn reads_wait_only_for_what_they_read() {
        let lw = LastWritten::new(Lsn(10));
        let mut a = row_prefix(1);
        a.push(1);
        let a = Bytes::from(a);
        let mut b = row_prefix(2);
        b.push(1);
        let b = Bytes::from(b);
        lw.record([&a], Lsn(20));
        lw.record([&b], Lsn(30));
        assert_eq!(lw.for_keys(std::slice::from_ref(&a)), Lsn(20));
        assert_eq!(lw.for_keys(&[Bytes::from_static(b"t-unknown")]), Lsn(10));
        assert_eq!(lw.for_keys(&[a, b]), Lsn(30));
        let p1 = row_prefix(1);
        assert_eq!(lw.for_range(&p1, &prefix_end(&p1).unwrap()), Lsn(20));
        let p3 = row_prefix(3);
        assert_eq!(lw.for_range(&p3, &prefix_end(&p3).unwrap()), Lsn(10));
        // A range across tables waits for everything.
        assert_eq!(
            lw.for_range(&p1, &prefix_end(&row_prefix(2)).unwrap()),
            Lsn(30)
        );
    }
}
