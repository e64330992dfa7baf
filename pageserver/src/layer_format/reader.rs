//! Reads a layer file: the footer, block index and bloom filter once, then blocks on demand
//! with positioned reads, each verified against its CRC (and decompressed) before a single
//! entry is trusted.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use strata_core::Lsn;

use super::bloom::Bloom;
use super::{decode_entry, get_bytes, BlockIndexEntry, FileKind, Footer, CRC_LEN, FOOTER_LEN};
use crate::error::{PageserverError, Result};
use crate::in_memory_layer::Value;
use crate::layer_cache::LayerCache;
use crate::merge::Entry;
use crate::remote::RemoteStorage;
use strata_core::TimelineId;

/// What one file says about a key at a read LSN: `None` when it knows nothing, otherwise
/// the LSN of the version it holds and the value (`None`: deleted, or absent from an image).
pub(crate) type Found = Option<(Lsn, Value)>;

/// Where a layer file's bytes come from.
#[derive(Debug)]
enum Source {
    Local(File),
    /// Range reads of the layer's object. Readers run on blocking threads, so the async read
    /// is waited for with the runtime's handle.
    Remote {
        remote: RemoteStorage,
        timeline: TimelineId,
        handle: tokio::runtime::Handle,
    },
}

/// An open layer file with its block index and bloom filter in memory.
#[derive(Debug)]
pub(crate) struct LayerReader {
    name: String,
    source: Source,
    footer: Footer,
    index: Vec<BlockIndexEntry>,
    key_start: Bytes,
    key_end: Bytes,
    /// `None` for version 1 files, which have none.
    bloom: Option<Bloom>,
    /// The shared block cache and this file's id in it.
    cache: Option<(Arc<LayerCache>, u64)>,
}

impl LayerReader {
    /// Opens the file at `path` with its blocks cached in `cache` under `cache_id` (one id
    /// per layer, so cached blocks outlive an eviction of the local file).
    pub fn open_cached(
        path: &Path,
        name: &str,
        cache: &Arc<LayerCache>,
        cache_id: u64,
    ) -> Result<Self> {
        let mut reader = Self::open(path, name)?;
        reader.cache = Some((cache.clone(), cache_id));
        Ok(reader)
    }

    /// The id the file's blocks are cached under, if they are.
    pub fn cache_id(&self) -> Option<u64> {
        self.cache.as_ref().map(|(_, id)| *id)
    }

    /// Opens the object of layer `name` of `timeline` (`size` bytes, from the manifest) for
    /// range reads, reading its footer and index; blocks are cached in `cache`. Must run on a
    /// blocking thread of the runtime.
    pub fn open_remote(
        remote: RemoteStorage,
        timeline: TimelineId,
        name: &str,
        size: u64,
        cache: &Arc<LayerCache>,
        cache_id: u64,
    ) -> Result<Self> {
        let source = Source::Remote {
            remote,
            timeline,
            handle: tokio::runtime::Handle::current(),
        };
        let mut reader = Self::open_source(source, size, name)?;
        reader.cache = Some((cache.clone(), cache_id));
        Ok(reader)
    }

    /// Opens the file at `path`, checking its footer and index. `name` labels errors.
    pub fn open(path: &Path, name: &str) -> Result<Self> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        Self::open_source(Source::Local(file), size, name)
    }

    fn open_source(source: Source, size: u64, name: &str) -> Result<Self> {
        let what = format!("layer {name}");
        let bad = |detail: &str| PageserverError::corruption(&what, detail);
        if size < FOOTER_LEN as u64 {
            return Err(bad("file shorter than its footer"));
        }
        let footer_buf = read_at(&source, name, size - FOOTER_LEN as u64, FOOTER_LEN)?;
        let footer = Footer::decode(&footer_buf, &what)?;
        let index_end = footer
            .index_offset
            .checked_add(footer.index_len)
            .filter(|end| *end == size - FOOTER_LEN as u64)
            .ok_or_else(|| bad("index does not end at the footer"))?;
        if footer.index_len < CRC_LEN as u64 {
            return Err(bad("index too short"));
        }
        let index_len =
            usize::try_from(index_end - footer.index_offset).map_err(|_| bad("index too large"))?;
        let index_buf = read_at(&source, name, footer.index_offset, index_len)?;
        let (body, crc) = index_buf.split_at(index_buf.len() - CRC_LEN);
        if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err(bad("index checksum mismatch"));
        }
        let mut cur = Bytes::copy_from_slice(body);
        let mut index = Vec::with_capacity(footer.block_count as usize);
        for _ in 0..footer.block_count {
            let first_key = get_bytes(&mut cur).ok_or_else(|| bad("truncated index"))?;
            if cur.remaining() < 20 {
                return Err(bad("truncated index"));
            }
            let block = BlockIndexEntry {
                first_key,
                first_lsn: Lsn(cur.get_u64_le()),
                offset: cur.get_u64_le(),
                len: cur.get_u32_le(),
            };
            let block_end = block.offset + u64::from(block.len) + CRC_LEN as u64;
            if block_end > footer.index_offset {
                return Err(bad("block beyond the index"));
            }
            index.push(block);
        }
        let key_start = get_bytes(&mut cur).ok_or_else(|| bad("truncated key range"))?;
        let key_end = get_bytes(&mut cur).ok_or_else(|| bad("truncated key range"))?;
        let bloom = if footer.version >= 2 {
            if !cur.has_remaining() {
                return Err(bad("truncated bloom filter"));
            }
            let probes = cur.get_u8();
            let bits = get_bytes(&mut cur).ok_or_else(|| bad("truncated bloom filter"))?;
            Some(
                Bloom::from_parts(bits.to_vec(), probes)
                    .ok_or_else(|| bad("empty bloom filter"))?,
            )
        } else {
            None
        };
        Ok(Self {
            name: name.to_string(),
            source,
            footer,
            index,
            key_start,
            key_end,
            bloom,
            cache: None,
        })
    }

    pub fn is_image(&self) -> bool {
        self.footer.kind == FileKind::Image
    }

    pub fn lsn_range(&self) -> (Lsn, Lsn) {
        (self.footer.lsn_start, self.footer.lsn_end)
    }

    #[cfg(test)]
    pub fn key_range(&self) -> (&Bytes, &Bytes) {
        (&self.key_start, &self.key_end)
    }

    #[cfg(test)]
    pub fn entry_count(&self) -> u64 {
        self.footer.entry_count
    }

    #[cfg(test)]
    pub fn block_count(&self) -> usize {
        self.index.len()
    }

    #[cfg(test)]
    pub fn format_version(&self) -> u32 {
        self.footer.version
    }

    /// Block `i`, from the block cache or from the file.
    fn read_block(&self, i: usize) -> Result<Bytes> {
        match &self.cache {
            Some((cache, id)) => {
                let local = matches!(self.source, Source::Local(_));
                cache.block((*id, i as u32), local, || self.load_block(i))
            }
            None => self.load_block(i),
        }
    }

    /// Reads block `i` from the file, checks its CRC and decompresses it.
    fn load_block(&self, i: usize) -> Result<Bytes> {
        let block = &self.index[i];
        let mut buf = read_at(
            &self.source,
            &self.name,
            block.offset,
            block.len as usize + CRC_LEN,
        )?;
        let (body, crc) = buf.split_at(block.len as usize);
        if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err(self.block_error(i, "block checksum mismatch"));
        }
        if self.footer.version == 1 {
            buf.truncate(block.len as usize);
            return Ok(Bytes::from(buf));
        }
        lz4_flex::decompress_size_prepended(body)
            .map(Bytes::from)
            .map_err(|e| self.block_error(i, &format!("block does not decompress: {e}")))
    }

    /// Whether the file may hold `key` (its key range, then its bloom filter).
    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.key_start.as_ref() <= key
            && key <= self.key_end.as_ref()
            && self.bloom.as_ref().is_none_or(|b| b.may_contain(key))
    }

    fn block_error(&self, i: usize, detail: &str) -> PageserverError {
        PageserverError::corruption(format!("layer {} block {i}", self.name), detail)
    }

    /// The block holding the last entry at or before `(key, lsn)`, if any entry is.
    fn block_for(&self, key: &[u8], lsn: Lsn) -> Option<usize> {
        let after = self
            .index
            .partition_point(|b| (b.first_key.as_ref(), b.first_lsn) <= (key, lsn));
        after.checked_sub(1)
    }

    /// What this file says about `key` at `lsn`: for a delta, its newest version at or below
    /// `lsn`; for an image at or below `lsn`, the value, or absence if the key is in its
    /// range but not in the file.
    #[cfg(test)]
    pub fn get(&self, key: &[u8], lsn: Lsn) -> Result<Found> {
        let mut last_block = None;
        self.get_with(key, lsn, &mut last_block)
    }

    /// [`get`](Self::get) for many keys at once. Keys are looked up in sorted order so that
    /// keys sharing a block read it once.
    pub fn get_many(&self, keys: &[Bytes], lsn: Lsn) -> Result<Vec<Found>> {
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|a, b| keys[*a].cmp(&keys[*b]));
        let mut out = vec![None; keys.len()];
        let mut last_block = None;
        for i in order {
            out[i] = self.get_with(&keys[i], lsn, &mut last_block)?;
        }
        Ok(out)
    }

    fn get_with(
        &self,
        key: &[u8],
        lsn: Lsn,
        last_block: &mut Option<(usize, Bytes)>,
    ) -> Result<Found> {
        if lsn < self.footer.lsn_start
            || key < self.key_start.as_ref()
            || key > self.key_end.as_ref()
        {
            return Ok(None);
        }
        // An image knows every key of its range: a key it does not hold did not exist.
        let absent = self.is_image().then_some((self.footer.lsn_start, None));
        if !self.may_contain(key) {
            return Ok(absent);
        }
        let Some(i) = self.block_for(key, lsn) else {
            return Ok(absent);
        };
        let mut cur = match last_block {
            Some((cached, block)) if *cached == i => block.clone(),
            _ => {
                let block = self.read_block(i)?;
                *last_block = Some((i, block.clone()));
                block
            }
        };
        let mut found = absent;
        while let Some(entry) = decode_entry(&mut cur).map_err(|e| self.block_error(i, e))? {
            if (entry.key.as_ref(), entry.lsn) > (key, lsn) {
                break;
            }
            if entry.key == key {
                found = Some((entry.lsn, entry.value));
            }
        }
        Ok(found)
    }

    /// Entries with keys in `[start, end)` and LSN at most `max_lsn`, in `(key, lsn)` order.
    pub fn iter(self: Arc<Self>, start: Bytes, end: Option<Bytes>, max_lsn: Lsn) -> LayerIter {
        let block = self.block_for(&start, Lsn::ZERO).unwrap_or(0);
        LayerIter {
            reader: self,
            next_block: block,
            cur: Bytes::new(),
            cur_block: block,
            start,
            end,
            max_lsn,
            done: false,
        }
    }
}

/// `len` bytes at `offset` of the layer file.
fn read_at(source: &Source, name: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
    match source {
        Source::Local(file) => {
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, offset)?;
            Ok(buf)
        }
        Source::Remote {
            remote,
            timeline,
            handle,
        } => {
            let range = offset..offset + len as u64;
            let bytes = handle.block_on(remote.get_layer_range(*timeline, name, range))?;
            if bytes.len() != len {
                return Err(PageserverError::corruption(
                    format!("layer {name}"),
                    format!("object range read gave {} bytes, not {len}", bytes.len()),
                ));
            }
            Ok(bytes.to_vec())
        }
    }
}

/// A forward iterator over a key range of one layer file, reading one block at a time.
pub(crate) struct LayerIter {
    reader: Arc<LayerReader>,
    next_block: usize,
    cur_block: usize,
    cur: Bytes,
    start: Bytes,
    end: Option<Bytes>,
    max_lsn: Lsn,
    done: bool,
}

impl LayerIter {
    fn step(&mut self) -> Result<Option<Entry>> {
        loop {
            if !self.cur.has_remaining() {
                if self.next_block >= self.reader.index.len() {
                    return Ok(None);
                }
                self.cur_block = self.next_block;
                self.cur = self.reader.read_block(self.next_block)?;
                self.next_block += 1;
            }
            let Some(entry) = decode_entry(&mut self.cur)
                .map_err(|e| self.reader.block_error(self.cur_block, e))?
            else {
                continue;
            };
            if entry.key < self.start {
                continue;
            }
            if self.end.as_ref().is_some_and(|end| entry.key >= end) {
                return Ok(None);
            }
            if entry.lsn <= self.max_lsn {
                return Ok(Some(entry));
            }
        }
    }
}

impl Iterator for LayerIter {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
