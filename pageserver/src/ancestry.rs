//! Branches read through to their ancestor: a key a branch never wrote has the value its
//! ancestor had at the branch point. This module holds the two pieces both reads and image
//! creation need: whether a read must look at the ancestor at all, and a merge source that
//! feeds an ancestor's scan into a branch's merge.

use std::sync::Arc;

use strata_core::Lsn;
use tokio::sync::mpsc;

use crate::error::Result;
use crate::layer_desc::LayerKind;
use crate::layer_file::LayerFile;
use crate::merge::Entry;
use crate::read_path::ScanBatch;

/// Whether `files` hold an image set at or below `lsn`. Images of a branch are written with
/// its ancestor's keys merged in, so a read that meets one never needs the ancestor; and GC
/// may have dropped the branch's own tombstones below it, so it must not look there either.
/// (An image set joins the layer map in one step, so one image file means the whole set.)
pub(crate) fn has_image_at(files: &[Arc<LayerFile>], lsn: Lsn) -> bool {
    files
        .iter()
        .any(|f| f.desc().kind == LayerKind::Image && f.desc().lsn_start <= lsn)
}

/// An ancestor's scan as a merge source: its live entries, each at the LSN the ancestor was
/// read at (below every LSN of the branch itself, so the branch's own versions win).
///
/// It waits for the ancestor's chunks with `blocking_recv`, so it must be iterated on a
/// blocking thread, as every merge is.
pub(crate) struct AncestorSource {
    rx: mpsc::Receiver<Result<ScanBatch>>,
    batch: std::vec::IntoIter<(bytes::Bytes, bytes::Bytes)>,
    lsn: Lsn,
    failed: bool,
}

impl AncestorSource {
    pub fn new(rx: mpsc::Receiver<Result<ScanBatch>>, lsn: Lsn) -> Self {
        Self {
            rx,
            batch: Vec::new().into_iter(),
            lsn,
            failed: false,
        }
    }
}

impl Iterator for AncestorSource {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            if let Some((key, value)) = self.batch.next() {
                return Some(Ok(Entry {
                    key,
                    lsn: self.lsn,
                    value: Some(value),
                }));
            }
            match self.rx.blocking_recv()? {
                Ok(batch) => self.batch = batch.into_iter(),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
