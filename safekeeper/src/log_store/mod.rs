//! The Raft log, which is the WAL: segment files under `<data_dir>/wal/`.
//!
//! Only an index lives in memory (entry index -> segment, offset, length) plus a byte-bounded
//! cache of recent entries, which serves replication and WAL streaming without touching disk.
//! Appends are fsync'd before openraft hears they are flushed: a commit is acknowledged only
//! once a majority has it on disk. On open every frame is verified; a torn tail of the last
//! segment (a crash mid-write) is cut off, damage anywhere else is an error.
//!
//! Writers (append, truncate, purge) are serialized by openraft, which owns the [`LogStore`].
//! Readers ([`LogReader`]) run concurrently: they hold the index's read lock while they read a
//! frame, and truncate/purge take the write lock, so a reader never sees a half-removed entry.

mod meta;
mod raft_impl;
pub(crate) mod segment;

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub(crate) use meta::{MetaFlusher, MetaStore, RaftMeta};
use segment::{ScanEnd, MAGIC, MAGIC_LEN};

use crate::durable_file::{self, DurableFileError};
use crate::types::{Entry, LogId, Vote};

/// Why the log could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LogStoreError {
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("corrupt WAL: {0}")]
    Corrupt(String),
    #[error("entry {index} was purged (first retained index is {first})")]
    Purged { index: u64, first: u64 },
    #[error("append of entry {got} does not follow the last entry (expected {expected})")]
    NotContiguous { expected: u64, got: u64 },
    #[error("encoding entry {index}: {source}")]
    Encode { index: u64, source: postcard::Error },
}

impl LogStoreError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        LogStoreError::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<DurableFileError> for LogStoreError {
    fn from(e: DurableFileError) -> Self {
        match e {
            DurableFileError::Io { path, source } => LogStoreError::io(path, source),
            DurableFileError::Corrupt { .. } => LogStoreError::Corrupt(e.to_string()),
        }
    }
}

/// Sizes of the log store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogStoreConfig {
    /// A segment is sealed and a new one started once it reaches this size.
    pub segment_bytes: u64,
    /// Recent entries kept decoded in memory.
    pub cache_bytes: usize,
    /// At most this many bytes of entries per replication RPC (at least one entry).
    pub replication_batch_bytes: usize,
}

impl Default for LogStoreConfig {
    fn default() -> Self {
        LogStoreConfig {
            segment_bytes: 64 << 20,
            cache_bytes: 64 << 20,
            replication_batch_bytes: 4 << 20,
        }
    }
}

/// Where one entry lives.
#[derive(Debug, Clone, Copy)]
struct Location {
    /// First index of the segment (its key in [`Index::segments`]).
    segment: u64,
    /// Offset of the frame header.
    offset: u64,
    /// Payload length.
    len: u32,
}

struct Segment {
    path: PathBuf,
    file: File,
}

/// Everything readers need, behind one lock.
struct Index {
    segments: BTreeMap<u64, Arc<Segment>>,
    /// Bytes written to the last segment.
    active_len: u64,
    /// The length of the last segment's file: `active_len`, then zeros written ahead of the
    /// appends (see [`ZERO_AHEAD_BYTES`]).
    active_file_len: u64,
    /// Locations of the retained entries, `first_index` first.
    locations: VecDeque<Location>,
    first_index: u64,
    last_log_id: Option<LogId>,
    last_purged: Option<LogId>,
    cache: BTreeMap<u64, Entry>,
    cache_bytes: usize,
}

impl Index {
    fn next_index(&self) -> u64 {
        self.first_index + self.locations.len() as u64
    }

    fn location(&self, index: u64) -> Option<Location> {
        let offset = index.checked_sub(self.first_index)?;
        self.locations.get(usize::try_from(offset).ok()?).copied()
    }

    fn read(&self, index: u64) -> Result<Entry, LogStoreError> {
        if let Some(entry) = self.cache.get(&index) {
            return Ok(entry.clone());
        }
        let Some(loc) = self.location(index) else {
            return Err(LogStoreError::Purged {
                index,
                first: self.first_index,
            });
        };
        let segment = self.segments.get(&loc.segment).ok_or_else(|| {
            LogStoreError::Corrupt(format!("segment {} of entry {index} is gone", loc.segment))
        })?;
        let entry = segment::read_frame(&segment.file, loc.offset, loc.len).map_err(|e| {
            LogStoreError::Corrupt(format!("entry {index} in {}: {e}", segment.path.display()))
        })?;
        if entry.log_id.index != index {
            return Err(LogStoreError::Corrupt(format!(
                "{} holds entry {} where entry {index} belongs",
                segment.path.display(),
                entry.log_id.index
            )));
        }
        Ok(entry)
    }

    fn cache_insert(&mut self, entry: Entry, size: usize, limit: usize) {
        self.cache.insert(entry.log_id.index, entry);
        self.cache_bytes += size;
        while self.cache_bytes > limit {
            let Some((index, _)) = self.cache.pop_first() else {
                break;
            };
            self.cache_bytes = self
                .cache_bytes
                .saturating_sub(self.location(index).map_or(0, |l| l.len as usize));
        }
    }

    fn cache_remove(&mut self, range: impl Iterator<Item = u64>) {
        for index in range {
            if self.cache.remove(&index).is_some() {
                let size = self.location(index).map_or(0, |l| l.len as usize);
                self.cache_bytes = self.cache_bytes.saturating_sub(size);
            }
        }
    }
}

struct Shared {
    dir: PathBuf,
    config: LogStoreConfig,
    index: RwLock<Index>,
}

impl Shared {
    fn read_index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_index(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads entries; cheap to clone, usable from any task.
#[derive(Clone)]
pub(crate) struct LogReader {
    shared: Arc<Shared>,
}

impl LogReader {
    /// Entries with index in `[start, end)` that are present, stopping once `max_bytes` of
    /// payload were read (always at least one entry when one is present).
    pub(crate) fn read_range(
        &self,
        start: u64,
        end: u64,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, LogStoreError> {
        self.collect(start, end, max_bytes, |index, i| index.read(i).map(Some))
            .map(|entries| entries.expect("reading from disk never declines"))
    }

    /// What [`read_range`](Self::read_range) returns, when every entry it would return is in
    /// the memory cache; `None` when one would be read from disk. Does no I/O, so async code
    /// calls it directly: the entries replication and streaming read are nearly always the
    /// newest, still cached, and a blocking task for each read would cost thread hand-offs.
    pub(crate) fn read_cached(&self, start: u64, end: u64, max_bytes: usize) -> Option<Vec<Entry>> {
        self.collect(start, end, max_bytes, |index, i| {
            Ok(index.cache.get(&i).cloned())
        })
        .ok()
        .flatten()
    }

    /// The entries of `[start, end)` as `get` gives them, up to `max_bytes`; `None` as soon
    /// as `get` declines one.
    fn collect(
        &self,
        start: u64,
        end: u64,
        max_bytes: usize,
        mut get: impl FnMut(&Index, u64) -> Result<Option<Entry>, LogStoreError>,
    ) -> Result<Option<Vec<Entry>>, LogStoreError> {
        let index = self.shared.read_index();
        let start = start.max(index.first_index);
        let end = end.min(index.next_index());
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for i in start..end {
            let Some(entry) = get(&index, i)? else {
                return Ok(None);
            };
            out.push(entry);
            bytes += index.location(i).map_or(0, |l| l.len as usize);
            if bytes >= max_bytes {
                break;
            }
        }
        Ok(Some(out))
    }

    /// The first index still in the log: everything below was purged.
    pub(crate) fn first_index(&self) -> u64 {
        self.shared.read_index().first_index
    }

    pub(crate) fn last_log_id(&self) -> Option<LogId> {
        self.shared.read_index().last_log_id
    }

    pub(crate) fn last_purged(&self) -> Option<LogId> {
        self.shared.read_index().last_purged
    }

    pub(crate) fn replication_batch_bytes(&self) -> usize {
        self.shared.config.replication_batch_bytes
    }

    /// Drops cached entries so the next reads go to disk (tests of on-disk damage).
    #[cfg(test)]
    pub(crate) fn clear_cache(&self) {
        let mut index = self.shared.write_index();
        index.cache.clear();
        index.cache_bytes = 0;
    }
}

/// The writable log, owned by openraft.
pub(crate) struct LogStore {
    reader: LogReader,
    meta: MetaStore,
}

/// A segment an append created: its first index and the open file.
type CreatedSegment = (u64, Arc<Segment>);

/// How far ahead of its appends the last segment is filled with zeros.
///
/// An append that makes a file longer must also write the file's inode for `fdatasync` to
/// return, a second I/O waited for in series with the data's; overwriting bytes that are
/// already there needs no inode write. So the segment being appended to grows in steps of
/// zeros: one append in so many pays for the inode (and for writing the zeros), the others
/// write data only, which made each fsync about half as long on ext4. A segment is cut to its
/// frames before the next one starts, and a restart cuts the last one, so zeros never stay
/// between segments; the scan of a segment stops at the first zeroed frame header (a real
/// frame's payload is never empty).
const ZERO_AHEAD_BYTES: u64 = 1 << 20;

/// One piece of an append: bytes for one segment.
struct SegmentWrite {
    segment: u64,
    create: bool,
    offset: u64,
    buf: Vec<u8>,
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, verifying every segment.
    pub(crate) fn open(
        dir: &Path,
        config: LogStoreConfig,
    ) -> Result<(LogStore, MetaFlusher), LogStoreError> {
        fs::create_dir_all(dir)
            .map_err(|e| LogStoreError::io(format!("creating {}", dir.display()), e))?;
        // The directory's own entry must survive a crash too.
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            durable_file::sync_dir(parent)
                .map_err(|e| LogStoreError::io(format!("fsync {}", parent.display()), e))?;
        }
        let (meta, flusher) = MetaStore::open(dir)?;
        let last_purged = meta.get().last_purged;
        let index = load_index(dir, last_purged)?;
        tracing::info!(
            dir = %dir.display(),
            first_index = index.first_index,
            next_index = index.next_index(),
            segments = index.segments.len(),
            "opened WAL"
        );
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            config,
            index: RwLock::new(index),
        });
        Ok((
            LogStore {
                reader: LogReader { shared },
                meta,
            },
            flusher,
        ))
    }

    pub(crate) fn reader(&self) -> LogReader {
        self.reader.clone()
    }

    pub(crate) fn meta(&self) -> RaftMeta {
        self.meta.get()
    }

    /// True when this node has never taken part in the group: no vote, no entry, nothing purged.
    pub(crate) fn is_pristine(&self) -> bool {
        let meta = self.meta.get();
        meta.vote.is_none() && meta.last_purged.is_none() && self.reader.last_log_id().is_none()
    }

    pub(crate) async fn save_vote(&self, vote: Vote) -> Result<(), LogStoreError> {
        self.meta.save_vote(vote).await
    }

    pub(crate) fn save_committed(&self, committed: Option<LogId>) {
        self.meta.save_committed(committed)
    }

    /// Appends `entries` (which must follow the last entry) and fsyncs them.
    pub(crate) async fn append(&mut self, entries: Vec<Entry>) -> Result<(), LogStoreError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let shared = &self.reader.shared;
        let (mut segment, mut offset, mut have_segment, expected, file_len) = {
            let index = shared.read_index();
            let last = index.segments.last_key_value().map(|(k, _)| *k);
            (
                last.unwrap_or(0),
                index.active_len,
                last.is_some(),
                index.next_index(),
                index.active_file_len,
            )
        };
        // The segment appended to so far, and where its frames end, if it is left behind.
        let mut left_behind: Option<(u64, u64)> = None;
        if first.log_id.index != expected {
            return Err(LogStoreError::NotContiguous {
                expected,
                got: first.log_id.index,
            });
        }
        // Plan the writes: which bytes go where, rolling segments at the size limit.
        let mut writes: Vec<SegmentWrite> = Vec::new();
        let mut placed: Vec<(Location, usize)> = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let index = entry.log_id.index;
            if index != expected + i as u64 {
                return Err(LogStoreError::NotContiguous {
                    expected: expected + i as u64,
                    got: index,
                });
            }
            let roll = !have_segment || offset >= shared.config.segment_bytes;
            if roll {
                // Only the segment this append started in can have zeros after its frames.
                if have_segment && !writes.iter().any(|w| w.create) {
                    left_behind = Some((segment, offset));
                }
                segment = index;
                have_segment = true;
                writes.push(SegmentWrite {
                    segment,
                    create: true,
                    offset: 0,
                    buf: MAGIC.to_vec(),
                });
                offset = MAGIC_LEN;
            } else if writes.is_empty() {
                writes.push(SegmentWrite {
                    segment,
                    create: false,
                    offset,
                    buf: Vec::new(),
                });
            }
            let write = writes.last_mut().expect("a write was just pushed");
            let frame_offset = offset;
            let len = segment::encode_frame(entry, &mut write.buf)
                .map_err(|source| LogStoreError::Encode { index, source })?;
            offset += segment::FRAME_HEADER_LEN + u64::from(len);
            placed.push((
                Location {
                    segment,
                    offset: frame_offset,
                    len,
                },
                len as usize,
            ));
        }
        // Write and fsync off the async threads.
        let (existing, trim) = {
            let index = shared.read_index();
            let existing: Option<Arc<Segment>> = writes
                .first()
                .filter(|w| !w.create)
                .and_then(|w| index.segments.get(&w.segment).cloned());
            let trim = left_behind
                .filter(|(_, frames_end)| *frames_end < file_len)
                .and_then(|(seg, frames_end)| {
                    index.segments.get(&seg).map(|s| (s.clone(), frames_end))
                });
            (existing, trim)
        };
        let dir = shared.dir.clone();
        let (created, file_len) = tokio::task::spawn_blocking(move || {
            write_segments(&dir, writes, existing, trim, file_len)
        })
        .await
        .map_err(|e| LogStoreError::io("WAL write task", io::Error::other(e)))??;
        // Publish: from here on readers see the entries.
        let limit = shared.config.cache_bytes;
        let mut index = shared.write_index();
        for seg in created {
            index.segments.insert(seg.0, seg.1);
        }
        index.active_len = offset;
        index.active_file_len = file_len;
        for (entry, (loc, size)) in entries.into_iter().zip(placed) {
            index.last_log_id = Some(entry.log_id);
            index.locations.push_back(loc);
            index.cache_insert(entry, size, limit);
        }
        Ok(())
    }

    /// Removes every entry with index `>= since` (conflicting entries of a deposed leader).
    pub(crate) async fn truncate(&mut self, since: u64) -> Result<(), LogStoreError> {
        let shared = self.reader.shared.clone();
        tokio::task::spawn_blocking(move || truncate_blocking(&shared, since))
            .await
            .map_err(|e| LogStoreError::io("WAL truncate task", io::Error::other(e)))?
    }

    /// Makes this pristine log start after `last` (recovery from object storage): the entries
    /// up to `last` count as purged and committed, the next append is `last.index + 1`, and
    /// `vote` is this node's vote (the term of `last`, so a new leader's term is higher).
    pub(crate) async fn seed(&mut self, vote: Vote, last: LogId) -> Result<(), LogStoreError> {
        debug_assert!(self.is_pristine());
        self.meta.seed(vote, last).await?;
        let shared = self.reader.shared.clone();
        tokio::task::spawn_blocking(move || purge_blocking(&shared, last))
            .await
            .map_err(|e| LogStoreError::io("WAL seed task", io::Error::other(e)))?
    }

    /// Removes every entry with index `<= upto.index`; `upto` may lie beyond the last entry
    /// (after a snapshot was installed), and the next append then continues after it.
    pub(crate) async fn purge(&mut self, upto: LogId) -> Result<(), LogStoreError> {
        if self
            .reader
            .last_purged()
            .is_some_and(|p| p.index >= upto.index)
        {
            return Ok(());
        }
        // Durable first: if we crash before the files are gone, they are skipped on open.
        self.meta.save_last_purged(upto).await?;
        let shared = self.reader.shared.clone();
        tokio::task::spawn_blocking(move || purge_blocking(&shared, upto))
            .await
            .map_err(|e| LogStoreError::io("WAL purge task", io::Error::other(e)))?
    }
}

/// Performs the planned writes, then fsyncs data (and the directory for new segments). The
/// last segment written to is filled with zeros up to [`ZERO_AHEAD_BYTES`] past its frames
/// when the writes reach its end. `trim` is a segment left behind by this append, and where
/// its frames end: its zeros are cut off, durably, before the next segment is created.
/// `file_len` is the length of the first write's file when it existed; returns the created
/// segments and the length of the last segment's file.
fn write_segments(
    dir: &Path,
    writes: Vec<SegmentWrite>,
    existing: Option<Arc<Segment>>,
    trim: Option<(Arc<Segment>, u64)>,
    mut file_len: u64,
) -> Result<(Vec<CreatedSegment>, u64), LogStoreError> {
    if let Some((segment, frames_end)) = trim {
        segment
            .file
            .set_len(frames_end)
            .and_then(|()| segment.file.sync_all())
            .map_err(|e| LogStoreError::io(format!("trimming {}", segment.path.display()), e))?;
    }
    let mut created = Vec::new();
    let last = writes.len().saturating_sub(1);
    for (n, write) in writes.into_iter().enumerate() {
        let segment = if write.create {
            let path = dir.join(segment::file_name(write.segment));
            // `truncate`: a file of this name can only hold bytes no index points to.
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(|e| LogStoreError::io(format!("creating {}", path.display()), e))?;
            let seg = Arc::new(Segment { path, file });
            created.push((write.segment, seg.clone()));
            file_len = 0;
            seg
        } else {
            existing.clone().ok_or_else(|| {
                LogStoreError::Corrupt(format!("active segment {} is missing", write.segment))
            })?
        };
        let written = |e| LogStoreError::io(format!("writing {}", segment.path.display()), e);
        segment
            .file
            .write_all_at(&write.buf, write.offset)
            .map_err(written)?;
        let end = write.offset + write.buf.len() as u64;
        if n == last && end > file_len.saturating_sub(segment::FRAME_HEADER_LEN) {
            // Room for at least a zeroed frame header after the frames, so a scan stops there.
            let ahead = end.next_multiple_of(ZERO_AHEAD_BYTES) + ZERO_AHEAD_BYTES - end;
            let zeros = vec![0u8; usize::try_from(ahead).expect("a MiB fits in usize")];
            segment.file.write_all_at(&zeros, end).map_err(written)?;
            file_len = end + ahead;
        } else {
            file_len = file_len.max(end);
        }
        segment
            .file
            .sync_data()
            .map_err(|e| LogStoreError::io(format!("fsync {}", segment.path.display()), e))?;
    }
    if !created.is_empty() {
        durable_file::sync_dir(dir)
            .map_err(|e| LogStoreError::io(format!("fsync {}", dir.display()), e))?;
    }
    Ok((created, file_len))
}

fn truncate_blocking(shared: &Shared, since: u64) -> Result<(), LogStoreError> {
    let mut index = shared.write_index();
    let since = since.max(index.first_index);
    if since >= index.next_index() {
        return Ok(());
    }
    let cut = index
        .location(since)
        .expect("since is within the retained range");
    // Later segments go first, newest first, so a crash never leaves a hole.
    let later: Vec<u64> = index
        .segments
        .range(cut.segment + 1..)
        .map(|(k, _)| *k)
        .rev()
        .collect();
    for key in later {
        if let Some(seg) = index.segments.remove(&key) {
            remove_file(&seg.path)?;
        }
    }
    let seg = index
        .segments
        .get(&cut.segment)
        .cloned()
        .ok_or_else(|| LogStoreError::Corrupt(format!("segment {} is missing", cut.segment)))?;
    if cut.offset <= MAGIC_LEN {
        index.segments.remove(&cut.segment);
        remove_file(&seg.path)?;
    } else {
        seg.file
            .set_len(cut.offset)
            .and_then(|()| seg.file.sync_all())
            .map_err(|e| LogStoreError::io(format!("truncating {}", seg.path.display()), e))?;
    }
    durable_file::sync_dir(&shared.dir)
        .map_err(|e| LogStoreError::io(format!("fsync {}", shared.dir.display()), e))?;

    let end = index.next_index();
    index.cache_remove(since..end);
    let keep = (since - index.first_index) as usize;
    index.locations.truncate(keep);
    // Every segment but the last is cut to its frames, and the last was cut just above.
    index.active_len = match index.segments.last_key_value() {
        Some((_, seg)) => seg
            .file
            .metadata()
            .map_err(|e| LogStoreError::io(format!("stat {}", seg.path.display()), e))?
            .len(),
        None => 0,
    };
    index.active_file_len = index.active_len;
    index.last_log_id = if since > index.first_index {
        Some(index.read(since - 1)?.log_id)
    } else {
        index.last_purged
    };
    tracing::info!(since, "truncated WAL");
    Ok(())
}

fn purge_blocking(shared: &Shared, upto: LogId) -> Result<(), LogStoreError> {
    let mut index = shared.write_index();
    let keep_from = upto.index + 1;
    let end = index.next_index();
    let first = index.first_index;
    index.cache_remove(first..keep_from.min(end));
    while index.first_index < keep_from && !index.locations.is_empty() {
        index.locations.pop_front();
        index.first_index += 1;
    }
    if index.locations.is_empty() {
        index.first_index = index.first_index.max(keep_from);
    }
    // A segment can go once every entry in it is purged: for all but the last segment that is
    // when the next segment starts at or before `keep_from`.
    let keys: Vec<u64> = index.segments.keys().copied().collect();
    let all_gone = index.locations.is_empty();
    for (i, key) in keys.iter().enumerate() {
        let removable = match keys.get(i + 1) {
            Some(next) => *next <= keep_from,
            None => all_gone,
        };
        if removable {
            if let Some(seg) = index.segments.remove(key) {
                remove_file(&seg.path)?;
            }
        }
    }
    if index.segments.is_empty() {
        index.active_len = 0;
        index.active_file_len = 0;
    }
    index.last_purged = Some(upto);
    if index.locations.is_empty() && index.last_log_id.is_none_or(|l| l.index < upto.index) {
        index.last_log_id = Some(upto);
    }
    durable_file::sync_dir(&shared.dir)
        .map_err(|e| LogStoreError::io(format!("fsync {}", shared.dir.display()), e))?;
    tracing::info!(upto = upto.index, "purged WAL");
    Ok(())
}

fn remove_file(path: &Path) -> Result<(), LogStoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogStoreError::io(format!("removing {}", path.display()), e)),
    }
}

/// Scans every segment and rebuilds the index.
fn load_index(dir: &Path, last_purged: Option<LogId>) -> Result<Index, LogStoreError> {
    let mut names: Vec<(u64, PathBuf)> = Vec::new();
    let listing = fs::read_dir(dir)
        .map_err(|e| LogStoreError::io(format!("listing {}", dir.display()), e))?;
    for item in listing {
        let item = item.map_err(|e| LogStoreError::io(format!("listing {}", dir.display()), e))?;
        let name = item.file_name();
        if let Some(first) = name.to_str().and_then(segment::parse_file_name) {
            names.push((first, item.path()));
        }
    }
    names.sort();
    let first_retained = last_purged.map_or(0, |p| p.index + 1);
    let mut index = Index {
        segments: BTreeMap::new(),
        active_len: 0,
        active_file_len: 0,
        locations: VecDeque::new(),
        first_index: first_retained,
        last_log_id: last_purged,
        last_purged,
        cache: BTreeMap::new(),
        cache_bytes: 0,
    };
    let count = names.len();
    for (i, (first, path)) in names.into_iter().enumerate() {
        let is_last = i + 1 == count;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| LogStoreError::io(format!("opening {}", path.display()), e))?;
        let (frames, end) = segment::scan(&file)
            .map_err(|e| LogStoreError::io(format!("reading {}", path.display()), e))?;
        let mut file_len = file
            .metadata()
            .map_err(|e| LogStoreError::io(format!("stat {}", path.display()), e))?
            .len();
        if let ScanEnd::Invalid { offset, reason } | ScanEnd::Zeros { offset, reason } = end {
            if !is_last {
                return Err(LogStoreError::Corrupt(format!(
                    "{} at offset {offset}: {reason}",
                    path.display()
                )));
            }
            if matches!(end, ScanEnd::Zeros { .. }) {
                // Zeros written ahead of the appends; anything a torn write left among them
                // goes too.
                tracing::debug!(segment = %path.display(), offset, "cutting off zeros after the WAL");
            } else {
                tracing::warn!(
                    segment = %path.display(),
                    offset,
                    reason,
                    dropped_bytes = file_len - offset,
                    "cutting off the torn tail of the WAL"
                );
            }
            if !frames.is_empty() {
                file.set_len(offset)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| LogStoreError::io(format!("truncating {}", path.display()), e))?;
                file_len = offset;
            }
        }
        let fully_purged = frames
            .last()
            .is_none_or(|f| f.log_id.index < first_retained);
        if fully_purged {
            // Created just before a crash, emptied by a torn tail, or purged before a crash
            // let us delete it: either way nothing in it is part of the log.
            remove_file(&path)?;
            durable_file::sync_dir(dir)
                .map_err(|e| LogStoreError::io(format!("fsync {}", dir.display()), e))?;
            continue;
        }
        for (n, frame) in frames.iter().enumerate() {
            let idx = frame.log_id.index;
            if idx != first + n as u64 {
                return Err(LogStoreError::Corrupt(format!(
                    "{} holds entry {idx} at position {n}",
                    path.display()
                )));
            }
            if idx < first_retained {
                continue;
            }
            if idx != index.next_index() {
                return Err(LogStoreError::Corrupt(format!(
                    "{}: entry {idx} does not follow entry {}",
                    path.display(),
                    index.next_index().wrapping_sub(1)
                )));
            }
            index.locations.push_back(Location {
                segment: first,
                offset: frame.offset,
                len: frame.len,
            });
            index.last_log_id = Some(frame.log_id);
        }
        index
            .segments
            .insert(first, Arc::new(Segment { path, file }));
        index.active_len = file_len;
        index.active_file_len = file_len;
    }
    Ok(index)
}

#[cfg(test)]
mod tests;
