//! Which layers make up a timeline right now: the open in-memory layer, frozen in-memory
//! layers waiting to be flushed, and layer files. Readers take a snapshot (a few `Arc`
//! clones under a short read lock) and never hold the lock while they read.

use std::collections::VecDeque;
use std::sync::Arc;

use strata_core::Lsn;

use crate::in_memory_layer::InMemoryLayer;
use crate::layer_desc::{LayerDesc, LayerKind};
use crate::layer_file::LayerFile;

/// An in-memory layer that takes no more writes, and the last LSN it covers.
#[derive(Debug)]
pub(crate) struct FrozenLayer {
    pub mem: Arc<InMemoryLayer>,
    pub lsn_end: Lsn,
}

#[derive(Debug)]
pub(crate) struct LayerMap {
    pub open: Arc<InMemoryLayer>,
    /// Oldest first: flushed in this order.
    pub frozen: VecDeque<Arc<FrozenLayer>>,
    /// In [`sort_layers`] order. Copy-on-write, so a snapshot is one `Arc` clone.
    pub files: Arc<Vec<Arc<LayerFile>>>,
}

/// The order of layer files everywhere (layer map and manifest): by the end of their LSN
/// range, so that a reader walking backwards meets newer versions first.
pub(crate) fn sort_layers<T>(layers: &mut [T], desc: impl Fn(&T) -> &LayerDesc) {
    layers.sort_by(|a, b| {
        let (a, b) = (desc(a), desc(b));
        (a.lsn_end, a.lsn_start, &a.key_start).cmp(&(b.lsn_end, b.lsn_start, &b.key_start))
    });
}

/// A consistent view of the layers for one read.
pub(crate) struct LayerSnapshot {
    /// Open layer first, then frozen layers newest first.
    pub in_memory: Vec<Arc<InMemoryLayer>>,
    /// Oldest first; readers walk it in reverse.
    pub files: Arc<Vec<Arc<LayerFile>>>,
}

impl LayerMap {
    pub fn new(start_lsn: Lsn, mut files: Vec<Arc<LayerFile>>) -> Self {
        sort_layers(&mut files, |f| f.desc());
        Self {
            open: Arc::new(InMemoryLayer::new(start_lsn)),
            frozen: VecDeque::new(),
            files: Arc::new(files),
        }
    }

    pub fn snapshot(&self) -> LayerSnapshot {
        let mut in_memory = Vec::with_capacity(1 + self.frozen.len());
        in_memory.push(self.open.clone());
        in_memory.extend(self.frozen.iter().rev().map(|f| f.mem.clone()));
        LayerSnapshot {
            in_memory,
            files: self.files.clone(),
        }
    }

    /// Bytes of L0 files: what compaction has yet to merge, and what ingest backpressure
    /// bounds.
    pub fn l0_bytes(&self) -> u64 {
        self.files
            .iter()
            .filter(|f| f.desc().kind == LayerKind::L0)
            .map(|f| f.desc().size)
            .sum()
    }

    /// Swaps the files named `removed` for `added` (compaction and GC).
    pub fn replace(&mut self, removed: &[String], added: Vec<Arc<LayerFile>>) {
        let mut files: Vec<Arc<LayerFile>> = self
            .files
            .iter()
            .filter(|f| !removed.contains(&f.desc().name))
            .cloned()
            .chain(added)
            .collect();
        sort_layers(&mut files, |f| f.desc());
        self.files = Arc::new(files);
    }

    /// Freezes the open layer as covering LSNs up to `lsn_end` and opens a new one after it.
    /// Returns false (and changes nothing) when there is nothing to freeze: no entries and no
    /// LSN progress since the last freeze.
    pub fn freeze(&mut self, lsn_end: Lsn) -> bool {
        if self.open.is_empty() && lsn_end < self.open.start_lsn() {
            return false;
        }
        let next = Arc::new(InMemoryLayer::new(lsn_end.next()));
        let mem = std::mem::replace(&mut self.open, next);
        self.frozen
            .push_back(Arc::new(FrozenLayer { mem, lsn_end }));
        true
    }

    /// Replaces the oldest frozen layer (which must be `frozen`) by the file written from it
    /// (`None` when it held no entries).
    pub fn finish_flush(&mut self, frozen: &Arc<FrozenLayer>, file: Option<Arc<LayerFile>>) {
        let oldest = self.frozen.pop_front();
        assert!(
            oldest.as_ref().is_some_and(|f| Arc::ptr_eq(f, frozen)),
            "frozen layers are flushed oldest first, by one flusher"
        );
        if let Some(file) = file {
            self.replace(&[], vec![file]);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn freezing_opens_a_new_layer_after_the_frozen_one() {
        let mut map = LayerMap::new(Lsn(1), Vec::new());
        assert!(!map.freeze(Lsn(0)));
        map.open.put(Bytes::from_static(b"k"), Lsn(3), None);
        assert!(map.freeze(Lsn(5)));
        assert_eq!(map.open.start_lsn(), Lsn(6));
        // No entries, but LSN progress: still worth freezing (publishes the new LSN).
        assert!(map.freeze(Lsn(9)));
        assert!(!map.freeze(Lsn(9)));
        let snap = map.snapshot();
        assert_eq!(snap.in_memory.len(), 3);
        assert_eq!(snap.in_memory[1].start_lsn(), Lsn(6));
        let oldest = map.frozen.front().unwrap().clone();
        assert_eq!(oldest.lsn_end, Lsn(5));
        map.finish_flush(&oldest, None);
        assert_eq!(map.frozen.len(), 1);
    }
}
