//! The open in-memory layer: where ingested WAL lands before it is written to a layer file.
//!
//! A lock-free skip list keyed by `(key, lsn)`, so the WAL receiver inserts while readers read,
//! and a frozen layer iterates in exactly the order the layer file wants.

use std::ops::Bound;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;
use strata_core::Lsn;
use tokio::time::Instant;

use crate::merge::Entry;

/// Bytes charged per entry on top of key and value, for the skip-list node and the `Bytes`
/// handles, so that tiny entries still count towards `checkpoint_distance`.
const ENTRY_OVERHEAD: u64 = 64;

/// One version of one key: `None` is a tombstone (the key was deleted at that LSN).
pub(crate) type Value = Option<Bytes>;

/// WAL records with LSNs from `start_lsn` on, held in memory. Written only by the ingest path
/// (which is serialized per timeline); immutable once frozen.
#[derive(Debug)]
pub(crate) struct InMemoryLayer {
    start_lsn: Lsn,
    created: Instant,
    entries: SkipMap<(Bytes, Lsn), Value>,
    size: AtomicU64,
    /// Newest commit time of the records in the layer (microseconds since the Unix epoch;
    /// `i64::MIN` when none): the manifest keeps it to map times to LSNs.
    newest_commit_micros: AtomicI64,
}

impl InMemoryLayer {
    pub fn new(start_lsn: Lsn) -> Self {
        Self {
            start_lsn,
            created: Instant::now(),
            entries: SkipMap::new(),
            size: AtomicU64::new(0),
            newest_commit_micros: AtomicI64::new(i64::MIN),
        }
    }

    /// Notes the commit time of a record applied to this layer.
    pub fn note_commit_time(&self, micros: i64) {
        self.newest_commit_micros
            .fetch_max(micros, Ordering::Relaxed);
    }

    /// The newest commit time noted, if any.
    pub fn newest_commit_micros(&self) -> Option<i64> {
        let t = self.newest_commit_micros.load(Ordering::Relaxed);
        (t != i64::MIN).then_some(t)
    }

    pub fn start_lsn(&self) -> Lsn {
        self.start_lsn
    }

    pub fn created(&self) -> Instant {
        self.created
    }

    /// Approximate memory held, in bytes.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Records one version. A second write of the same key at the same LSN (two transactions of
    /// one group-commit batch) replaces the first, as applying them in order would.
    pub fn put(&self, key: Bytes, lsn: Lsn, value: Value) {
        let bytes = key.len() as u64 + value.as_ref().map_or(0, |v| v.len() as u64);
        self.size
            .fetch_add(bytes + ENTRY_OVERHEAD, Ordering::Relaxed);
        self.entries.insert((key, lsn), value);
    }

    /// The newest version of `key` at or below `lsn`: `None` when this layer has none,
    /// `Some(None)` when that version is a tombstone.
    pub fn get(&self, key: &Bytes, lsn: Lsn) -> Option<Value> {
        let lo = (key.clone(), Lsn::ZERO);
        let hi = (key.clone(), lsn);
        self.entries
            .range(lo..=hi)
            .next_back()
            .map(|e| e.value().clone())
    }

    /// The first entry after `after` (or from `start`), if it is below `end`. Used by
    /// [`InMemoryLayerIter`], which owns nothing of the map between calls.
    fn next_entry(&self, after: &Bound<(Bytes, Lsn)>, end: Option<&Bytes>) -> Option<Entry> {
        let e = self.entries.lower_bound(after.as_ref())?;
        let (key, lsn) = e.key();
        if end.is_some_and(|end| key >= end) {
            return None;
        }
        Some(Entry {
            key: key.clone(),
            lsn: *lsn,
            value: e.value().clone(),
        })
    }

    /// Every entry in `(key, lsn)` order: what a layer file is written from.
    pub fn iter(&self) -> impl Iterator<Item = Entry> + '_ {
        self.entries.iter().map(|e| Entry {
            key: e.key().0.clone(),
            lsn: e.key().1,
            value: e.value().clone(),
        })
    }
}

/// Walks the entries of an in-memory layer with keys in `[start, end)` and LSN at most
/// `max_lsn`. It re-seeks the skip list for every entry instead of borrowing it, so a scan can
/// hold it across chunk boundaries without pinning anything but the layer's `Arc`.
pub(crate) struct InMemoryLayerIter {
    layer: std::sync::Arc<InMemoryLayer>,
    after: Bound<(Bytes, Lsn)>,
    end: Option<Bytes>,
    max_lsn: Lsn,
}

impl InMemoryLayerIter {
    pub fn new(
        layer: std::sync::Arc<InMemoryLayer>,
        start: Bytes,
        end: Option<Bytes>,
        max_lsn: Lsn,
    ) -> Self {
        Self {
            layer,
            after: Bound::Included((start, Lsn::ZERO)),
            end,
            max_lsn,
        }
    }
}

impl Iterator for InMemoryLayerIter {
    type Item = crate::error::Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let entry = self.layer.next_entry(&self.after, self.end.as_ref())?;
            self.after = Bound::Excluded((entry.key.clone(), entry.lsn));
            if entry.lsn <= self.max_lsn {
                return Some(Ok(entry));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn newest_version_at_or_below_the_lsn_wins() {
        let layer = InMemoryLayer::new(Lsn(10));
        layer.put(b("a"), Lsn(10), Some(b("a10")));
        layer.put(b("a"), Lsn(20), Some(b("a20")));
        layer.put(b("a"), Lsn(30), None);
        layer.put(b("b"), Lsn(20), Some(b("b20")));
        // Same key, same LSN (group commit): the later write wins.
        layer.put(b("b"), Lsn(20), Some(b("b20'")));

        assert_eq!(layer.get(&b("a"), Lsn(9)), None);
        assert_eq!(layer.get(&b("a"), Lsn(10)), Some(Some(b("a10"))));
        assert_eq!(layer.get(&b("a"), Lsn(29)), Some(Some(b("a20"))));
        assert_eq!(layer.get(&b("a"), Lsn(30)), Some(None));
        assert_eq!(layer.get(&b("b"), Lsn::MAX), Some(Some(b("b20'"))));
        assert_eq!(layer.get(&b("c"), Lsn::MAX), None);
        assert_eq!(layer.len(), 4);
        assert!(layer.size() > 0);
    }

    #[test]
    fn iterates_a_range_below_an_lsn() {
        let layer = Arc::new(InMemoryLayer::new(Lsn(1)));
        for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
            layer.put(b(k), Lsn(1), Some(b(k)));
            layer.put(b(k), Lsn(5 + i as u64), None);
        }
        let got: Vec<_> = InMemoryLayerIter::new(layer.clone(), b("b"), Some(b("d")), Lsn(6))
            .map(|e| {
                let e = e.unwrap();
                (e.key, e.lsn, e.value)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (b("b"), Lsn(1), Some(b("b"))),
                (b("b"), Lsn(6), None),
                (b("c"), Lsn(1), Some(b("c"))),
            ]
        );
        assert_eq!(layer.iter().count(), 8);
    }
}
