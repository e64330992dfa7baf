//! Reads at an LSN: wait for ingest to reach `not_modified_since`, then search the layers
//! newest first (open layer, frozen layers, layer files), downloading layer files on demand,
//! then a branch's ancestor at the branch point for keys the branch never wrote.

use std::sync::Arc;

use bytes::Bytes;
use strata_core::Lsn;
use tokio::sync::mpsc;
use tracing::debug;

use crate::ancestry::{has_image_at, AncestorSource};
use crate::error::{PageserverError, Result};
use crate::in_memory_layer::{InMemoryLayerIter, Value};
use crate::layer_file::LayerFile;
use crate::layer_format::Found;
use crate::merge::{MergeIterator, Source};
use crate::timeline::{lock, Timeline};

/// A scan chunk is sent once it holds this many bytes or entries.
const SCAN_CHUNK_BYTES: usize = 1024 * 1024;
const SCAN_CHUNK_ENTRIES: usize = 1000;
/// Chunks buffered between the merge and the gRPC stream.
const SCAN_CHANNEL_CHUNKS: usize = 2;

/// Live `(key, value)` pairs in key order.
pub(crate) type ScanBatch = Vec<(Bytes, Bytes)>;

impl Timeline {
    /// Waits until `last_record_lsn >= lsn`, at most `wait_lsn_timeout`.
    pub(crate) async fn wait_lsn(&self, lsn: Lsn) -> Result<()> {
        let mut rx = self.last_record_lsn.subscribe();
        if *rx.borrow_and_update() >= lsn {
            return Ok(());
        }
        if self.ingest_stop.is_cancelled() {
            return Err(self.stopped_error());
        }
        let wait = async {
            tokio::select! {
                r = rx.wait_for(|l| *l >= lsn) => r.map(|_| ()).map_err(|_| PageserverError::ShuttingDown),
                _ = self.ingest_stop.cancelled() => Err(self.stopped_error()),
            }
        };
        match tokio::time::timeout(self.conf.wait_lsn_timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(PageserverError::WaitLsnTimeout {
                timeline: self.id,
                wanted: lsn,
                last_record_lsn: self.last_record_lsn(),
            }),
        }
    }

    /// Refuses reads below the GC cutoff: what they need may be gone. (A read that starts
    /// just before GC raises the cutoff still holds its layer snapshot; GC keeps a grace
    /// period before deleting, see `gc.rs`.) Refuses reads of a branch before it was created.
    pub(crate) fn check_gc_cutoff(&self, lsn: Lsn) -> Result<()> {
        let cutoff = lock(&self.manifest).gc_cutoff_lsn;
        if lsn < cutoff {
            return Err(PageserverError::BelowGcCutoff {
                timeline: self.id,
                wanted: lsn,
                cutoff,
            });
        }
        if lsn < self.start_lsn() {
            return Err(PageserverError::BeforeBranch {
                timeline: self.id,
                wanted: lsn,
                start: self.start_lsn(),
            });
        }
        Ok(())
    }

    /// The value of each key at `lsn` (`None`: absent or deleted), in request order.
    pub(crate) async fn get(
        &self,
        keys: &[Bytes],
        lsn: Lsn,
        not_modified_since: Lsn,
    ) -> Result<Vec<Option<Bytes>>> {
        check_lsns(lsn, not_modified_since)?;
        self.wait_lsn(not_modified_since).await?;
        let snapshot = self.layers_read().snapshot();
        // After the snapshot: GC raises the cutoff before it drops layers from the map.
        self.check_gc_cutoff(lsn)?;
        // `None`: not found yet; `Some(value)`: resolved by the newest layer holding a version.
        let mut found: Vec<Option<Value>> = vec![None; keys.len()];
        for layer in snapshot.in_memory.iter().filter(|l| l.start_lsn() <= lsn) {
            for (key, slot) in keys.iter().zip(found.iter_mut()) {
                if slot.is_none() {
                    *slot = layer.get(key, lsn);
                }
            }
        }
        // Files come newest `lsn_end` first. A version found at LSN `v` is final once the next
        // file ends at or below `v`: no file after it can hold a newer one.
        let mut best: Vec<Found> = vec![None; keys.len()];
        for file in snapshot.files.iter().rev() {
            let desc = file.desc();
            if desc.lsn_start > lsn {
                continue;
            }
            let open = |i: usize| {
                found[i].is_none() && best[i].as_ref().is_none_or(|(v, _)| *v < desc.lsn_end)
            };
            if (0..keys.len()).all(|i| !open(i)) {
                break;
            }
            let pending: Vec<usize> = (0..keys.len())
                .filter(|&i| open(i) && desc.contains_key(&keys[i]))
                .collect();
            if pending.is_empty() {
                continue;
            }
            let reader = file.reader(self.id, &self.remote, &self.shutdown).await?;
            // A delta the bloom filter rules out is skipped without a trip to a blocking
            // thread (an image must still answer "absent" for keys in its range).
            let mut pending = pending;
            if !reader.is_image() {
                pending.retain(|&i| reader.may_contain(&keys[i]));
                if pending.is_empty() {
                    continue;
                }
            }
            let wanted: Vec<Bytes> = pending.iter().map(|&i| keys[i].clone()).collect();
            let values =
                tokio::task::spawn_blocking(move || reader.get_many(&wanted, lsn)).await??;
            for (i, v) in pending.into_iter().zip(values) {
                if let Some((v_lsn, value)) = v {
                    if best[i].as_ref().is_none_or(|(b, _)| *b < v_lsn) {
                        best[i] = Some((v_lsn, value));
                    }
                }
            }
        }
        // `None`: this timeline never wrote the key (at or below `lsn`).
        let mut values: Vec<Option<Value>> = found
            .into_iter()
            .zip(best)
            .map(|(mem, file)| mem.or(file.map(|(_, v)| v)))
            .collect();
        if let Some(ancestor) = self
            .ancestor
            .as_ref()
            .filter(|_| !has_image_at(&snapshot.files, lsn))
        {
            let missing: Vec<usize> = (0..keys.len()).filter(|&i| values[i].is_none()).collect();
            if !missing.is_empty() {
                let wanted: Vec<Bytes> = missing.iter().map(|&i| keys[i].clone()).collect();
                let upstream = Box::pin(ancestor.timeline.get(
                    &wanted,
                    lsn.min(ancestor.lsn),
                    not_modified_since.min(ancestor.lsn),
                ))
                .await?;
                for (i, value) in missing.into_iter().zip(upstream) {
                    values[i] = Some(value);
                }
            }
        }
        Ok(values.into_iter().map(Option::flatten).collect())
    }

    /// Starts a scan of `[start, end)` at `lsn`, returning its chunks through a channel.
    /// Waiting, snapshotting and downloading happen before this returns, so those errors
    /// come back directly; errors while merging arrive in the channel.
    pub(crate) async fn scan(
        &self,
        start: Bytes,
        end: Option<Bytes>,
        lsn: Lsn,
        not_modified_since: Lsn,
        limit: Option<u64>,
    ) -> Result<mpsc::Receiver<Result<ScanBatch>>> {
        check_lsns(lsn, not_modified_since)?;
        if end.as_ref().is_some_and(|end| *end <= start) {
            let (_, rx) = mpsc::channel(1);
            return Ok(rx);
        }
        self.wait_lsn(not_modified_since).await?;
        let snapshot = self.layers_read().snapshot();
        // After the snapshot: GC raises the cutoff before it drops layers from the map.
        self.check_gc_cutoff(lsn)?;
        let mut sources: Vec<Source> = snapshot
            .in_memory
            .iter()
            .filter(|l| l.start_lsn() <= lsn)
            .map(|l| {
                Box::new(InMemoryLayerIter::new(
                    l.clone(),
                    start.clone(),
                    end.clone(),
                    lsn,
                )) as Source
            })
            .collect();
        let files: Vec<&Arc<LayerFile>> = snapshot
            .files
            .iter()
            .rev()
            .filter(|f| f.desc().lsn_start <= lsn && f.desc().overlaps(&start, end.as_deref()))
            .collect();
        for file in files {
            let reader = file.reader(self.id, &self.remote, &self.shutdown).await?;
            sources.push(Box::new(reader.iter(start.clone(), end.clone(), lsn)));
        }
        if let Some(ancestor) = self
            .ancestor
            .as_ref()
            .filter(|_| !has_image_at(&snapshot.files, lsn))
        {
            let at = lsn.min(ancestor.lsn);
            let upstream = Box::pin(ancestor.timeline.scan(
                start.clone(),
                end.clone(),
                at,
                not_modified_since.min(ancestor.lsn),
                None,
            ))
            .await?;
            sources.push(Box::new(AncestorSource::new(upstream, at)));
        }
        debug!(sources = sources.len(), "scan started");
        let (tx, rx) = mpsc::channel(SCAN_CHANNEL_CHUNKS);
        tokio::task::spawn_blocking(move || run_merge(sources, lsn, limit, tx));
        Ok(rx)
    }

    /// Collects a whole scan of the clients' key space; for tests.
    #[cfg(test)]
    pub(crate) async fn scan_all(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        lsn: Lsn,
        limit: Option<u64>,
    ) -> Result<ScanBatch> {
        // As the gRPC edge does: the pageserver's own keys are not the caller's.
        let meta = [strata_core::key::META_PREFIX];
        let end = Some(end.map_or(&meta[..], |e| e.min(&meta[..])));
        let mut rx = self
            .scan(
                Bytes::copy_from_slice(start),
                end.map(Bytes::copy_from_slice),
                lsn,
                Lsn::ZERO,
                limit,
            )
            .await?;
        let mut all = Vec::new();
        while let Some(batch) = rx.recv().await {
            all.extend(batch?);
        }
        Ok(all)
    }
}

fn check_lsns(lsn: Lsn, not_modified_since: Lsn) -> Result<()> {
    if not_modified_since > lsn {
        return Err(PageserverError::InvalidArgument(format!(
            "not_modified_since {not_modified_since} is above the read LSN {lsn}"
        )));
    }
    Ok(())
}

/// Runs the merge on a blocking thread, sending chunks until done, failed, or the receiver
/// goes away.
fn run_merge(
    sources: Vec<Source>,
    lsn: Lsn,
    limit: Option<u64>,
    tx: mpsc::Sender<Result<ScanBatch>>,
) {
    let merge = match MergeIterator::new(sources, lsn) {
        Ok(m) => m,
        Err(e) => {
            let _ = tx.blocking_send(Err(e));
            return;
        }
    };
    let mut remaining = limit.unwrap_or(u64::MAX);
    let mut batch = ScanBatch::new();
    let mut batch_bytes = 0;
    for item in merge {
        if remaining == 0 {
            break;
        }
        match item {
            Ok((k, v)) => {
                batch_bytes += k.len() + v.len();
                batch.push((k, v));
                remaining -= 1;
                if batch.len() >= SCAN_CHUNK_ENTRIES || batch_bytes >= SCAN_CHUNK_BYTES {
                    batch_bytes = 0;
                    if tx.blocking_send(Ok(std::mem::take(&mut batch))).is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(Ok(batch));
    }
}
