//! Writes a layer file from entries given in `(key, lsn)` order.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use strata_core::Lsn;

use super::bloom::Bloom;
use super::{encode_entry, put_bytes, BlockIndexEntry, FileKind, Footer, CRC_LEN};
use crate::error::{PageserverError, Result};
use crate::layer_desc::{LayerDesc, LayerKind};

/// Streams entries into compressed blocks on disk, then appends the index (with the bloom
/// filter) and footer. The file is
/// written under a temporary name and renamed only once complete and fsync'd, so a crash
/// never leaves a half-written file under a layer name.
pub(crate) struct LayerWriter {
    kind: LayerKind,
    dir: PathBuf,
    tmp_path: PathBuf,
    file: BufWriter<File>,
    block_size: usize,
    block: Vec<u8>,
    block_first: Option<(Bytes, Lsn)>,
    offset: u64,
    index: Vec<BlockIndexEntry>,
    entry_count: u64,
    last: Option<(Bytes, Lsn)>,
    min_key: Option<Bytes>,
    /// One hash per distinct key, for the bloom filter.
    key_hashes: Vec<u64>,
    lsn_start: Lsn,
    lsn_end: Lsn,
    /// Bytes of entries before compression.
    raw_bytes: u64,
}

impl LayerWriter {
    /// Starts a delta layer for records with `lsn_start <= lsn <= lsn_end`, in directory `dir`.
    pub fn try_new(dir: &Path, lsn_start: Lsn, lsn_end: Lsn, block_size: usize) -> Result<Self> {
        Self::with_kind(dir, LayerKind::L0, lsn_start, lsn_end, block_size)
    }

    /// Starts a layer of any kind; an image layer has `lsn_start == lsn_end` and no
    /// tombstones.
    pub fn with_kind(
        dir: &Path,
        kind: LayerKind,
        lsn_start: Lsn,
        lsn_end: Lsn,
        block_size: usize,
    ) -> Result<Self> {
        if kind == LayerKind::Image && lsn_start != lsn_end {
            return Err(PageserverError::Internal(
                "an image layer is at a single LSN".into(),
            ));
        }
        fs::create_dir_all(dir)?;
        // Unique among concurrent writers of one directory (flush and compaction).
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp_path = dir.join(format!("{:016X}-{:016X}-{n}.tmp", lsn_start.0, lsn_end.0));
        let file = File::create(&tmp_path)?;
        Ok(Self {
            kind,
            dir: dir.to_path_buf(),
            tmp_path,
            file: BufWriter::with_capacity(256 * 1024, file),
            block_size: block_size.max(1),
            block: Vec::with_capacity(block_size + 1024),
            block_first: None,
            offset: 0,
            index: Vec::new(),
            entry_count: 0,
            last: None,
            min_key: None,
            key_hashes: Vec::new(),
            lsn_start,
            lsn_end,
            raw_bytes: 0,
        })
    }

    /// Appends one version; `value` `None` is a tombstone. Entries must come in strictly
    /// increasing `(key, lsn)` order, inside the layer's LSN range.
    pub fn add(&mut self, key: &Bytes, lsn: Lsn, value: Option<&[u8]>) -> Result<()> {
        if lsn < self.lsn_start || lsn > self.lsn_end {
            return Err(PageserverError::Internal(format!(
                "entry at {lsn} outside layer LSN range {}..={}",
                self.lsn_start, self.lsn_end
            )));
        }
        if let Some((last_key, last_lsn)) = &self.last {
            if (last_key, *last_lsn) >= (key, lsn) {
                return Err(PageserverError::Internal(
                    "layer entries out of (key, lsn) order".into(),
                ));
            }
        }
        if self.block_first.is_none() {
            self.block_first = Some((key.clone(), lsn));
        }
        if self.kind == LayerKind::Image && value.is_none() {
            return Err(PageserverError::Internal(
                "an image layer holds no tombstones".into(),
            ));
        }
        if self.min_key.is_none() {
            self.min_key = Some(key.clone());
        }
        if self
            .last
            .as_ref()
            .is_none_or(|(last_key, _)| last_key != key)
        {
            self.key_hashes.push(Bloom::hash(key));
        }
        encode_entry(&mut self.block, key, lsn, value);
        self.entry_count += 1;
        self.last = Some((key.clone(), lsn));
        if self.block.len() >= self.block_size {
            self.finish_block()?;
        }
        Ok(())
    }

    /// Whether no entry was added yet.
    pub fn is_empty(&self) -> bool {
        self.entry_count == 0
    }

    /// Bytes written so far, to cut files at a target size: the compressed blocks plus the
    /// open block at an assumed 2:1 compression (it is compressed only when it is finished).
    pub fn written_bytes(&self) -> u64 {
        self.offset + self.block.len() as u64 / 2
    }

    fn finish_block(&mut self) -> Result<()> {
        let Some((first_key, first_lsn)) = self.block_first.take() else {
            return Ok(());
        };
        self.raw_bytes += self.block.len() as u64;
        let stored = lz4_flex::compress_prepend_size(&self.block);
        let len = u32::try_from(stored.len())
            .map_err(|_| PageserverError::Internal("a single layer block exceeds 4 GiB".into()))?;
        let crc = crc32c::crc32c(&stored);
        self.file.write_all(&stored)?;
        self.file.write_all(&crc.to_le_bytes())?;
        self.index.push(BlockIndexEntry {
            first_key,
            first_lsn,
            offset: self.offset,
            len,
        });
        self.offset += u64::from(len) + CRC_LEN as u64;
        self.block.clear();
        Ok(())
    }

    /// Writes the index and footer, fsyncs, and renames the file to its layer name.
    /// `generation` is the writer's ownership generation, part of the name.
    pub fn finish(mut self, generation: u64) -> Result<(LayerDesc, PathBuf)> {
        self.finish_block()?;
        let (Some(min_key), Some((max_key, _))) = (self.min_key.take(), self.last.take()) else {
            return Err(PageserverError::Internal(
                "refusing to write an empty layer file".into(),
            ));
        };
        let mut index = Vec::new();
        for block in &self.index {
            put_bytes(&mut index, &block.first_key);
            index.extend_from_slice(&block.first_lsn.0.to_le_bytes());
            index.extend_from_slice(&block.offset.to_le_bytes());
            index.extend_from_slice(&block.len.to_le_bytes());
        }
        put_bytes(&mut index, &min_key);
        put_bytes(&mut index, &max_key);
        let bloom = Bloom::build(&self.key_hashes);
        index.push(bloom.probes());
        put_bytes(&mut index, bloom.bits());
        let crc = crc32c::crc32c(&index);
        index.extend_from_slice(&crc.to_le_bytes());
        let footer = Footer {
            index_offset: self.offset,
            index_len: index.len() as u64,
            entry_count: self.entry_count,
            lsn_start: self.lsn_start,
            lsn_end: self.lsn_end,
            block_count: u32::try_from(self.index.len())
                .map_err(|_| PageserverError::Internal("too many blocks".into()))?,
            version: super::FORMAT_VERSION,
            kind: match self.kind {
                LayerKind::Image => FileKind::Image,
                LayerKind::L0 | LayerKind::L1 => FileKind::Delta,
            },
        };
        self.file.write_all(&index)?;
        self.file.write_all(&footer.encode())?;
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        let size = file.metadata()?.len();
        drop(file);

        let name = LayerDesc::layer_name(
            self.kind,
            &min_key,
            &max_key,
            self.lsn_start,
            self.lsn_end,
            generation,
        );
        let path = self.dir.join(&name);
        fs::rename(&self.tmp_path, &path)?;
        File::open(&self.dir)?.sync_all()?;
        tracing::debug!(
            layer = %name,
            raw_bytes = self.raw_bytes,
            size,
            "layer file written"
        );
        let desc = LayerDesc {
            name,
            kind: self.kind,
            key_start: min_key,
            key_end: max_key,
            lsn_start: self.lsn_start,
            lsn_end: self.lsn_end,
            size,
        };
        Ok((desc, path))
    }
}
