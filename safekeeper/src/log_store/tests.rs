use std::fs;
use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use openraft::{CommittedLeaderId, EntryPayload};
use strata_core::TimelineId;

use super::*;
use crate::types::{Batch, Request, Txn};

fn entry(term: u64, index: u64) -> Entry {
    let payload = if index.is_multiple_of(3) {
        EntryPayload::Blank
    } else {
        EntryPayload::Normal(Request::Batch(Batch {
            commit_time_micros: index as i64,
            txns: vec![Txn {
                timeline: TimelineId::from_bytes([7; 16]),
                generation: 1,
                mutations: Bytes::from(vec![index as u8; 100 + index as usize]),
            }],
        }))
    };
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
        payload,
    }
}

fn entries(term: u64, range: std::ops::Range<u64>) -> Vec<Entry> {
    range.map(|i| entry(term, i)).collect()
}

fn small_segments() -> LogStoreConfig {
    LogStoreConfig {
        segment_bytes: 1024,
        cache_bytes: 0,
        replication_batch_bytes: 4096,
    }
}

async fn open(dir: &Path, config: LogStoreConfig) -> (LogStore, MetaFlusher) {
    LogStore::open(dir, config).unwrap()
}

async fn close(store: LogStore, flusher: MetaFlusher) {
    drop(store);
    flusher.finish().await;
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

fn read_all(store: &LogStore) -> Vec<Entry> {
    store.reader().read_range(0, u64::MAX, usize::MAX).unwrap()
}

#[tokio::test]
async fn appends_read_back_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    for config in [LogStoreConfig::default(), small_segments()] {
        let dir = tempfile::tempdir_in(dir.path()).unwrap();
        let (mut store, flusher) = open(dir.path(), config).await;
        assert!(store.is_pristine());
        store.append(entries(1, 0..40)).await.unwrap();
        store.append(entries(2, 40..60)).await.unwrap();
        assert_eq!(
            read_all(&store),
            [entries(1, 0..40), entries(2, 40..60)].concat()
        );
        let some = store.reader().read_range(10, 20, usize::MAX).unwrap();
        assert_eq!(some, entries(1, 10..20));
        // A byte limit still returns at least one entry.
        assert_eq!(store.reader().read_range(10, 20, 1).unwrap().len(), 1);
        // Appends must continue the log.
        assert!(matches!(
            store.append(entries(2, 61..62)).await,
            Err(LogStoreError::NotContiguous { .. })
        ));
        store.save_vote(Vote::new(2, 1)).await.unwrap();
        close(store, flusher).await;

        let (store, flusher) = open(dir.path(), config).await;
        assert!(!store.is_pristine());
        assert_eq!(store.meta().vote, Some(Vote::new(2, 1)));
        assert_eq!(
            read_all(&store),
            [entries(1, 0..40), entries(2, 40..60)].concat()
        );
        assert_eq!(store.reader().last_log_id(), Some(entry(2, 59).log_id));
        close(store, flusher).await;
    }
}

#[tokio::test]
async fn segments_roll_at_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, flusher) = open(dir.path(), small_segments()).await;
    for i in 0..30 {
        store.append(vec![entry(1, i)]).await.unwrap();
    }
    let files = segment_files(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    assert_eq!(
        files[0].file_name().unwrap(),
        segment::file_name(0).as_str()
    );
    close(store, flusher).await;
    let (store, flusher) = open(dir.path(), small_segments()).await;
    assert_eq!(read_all(&store), entries(1, 0..30));
    close(store, flusher).await;
}

#[tokio::test]
async fn truncate_removes_the_tail_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, flusher) = open(dir.path(), small_segments()).await;
    for i in 0..30 {
        store.append(vec![entry(1, i)]).await.unwrap();
    }
    store.truncate(12).await.unwrap();
    assert_eq!(read_all(&store), entries(1, 0..12));
    assert_eq!(store.reader().last_log_id(), Some(entry(1, 11).log_id));
    // A new leader's entries replace the removed ones.
    store.append(entries(3, 12..20)).await.unwrap();
    // Truncating past the end changes nothing.
    store.truncate(50).await.unwrap();
    close(store, flusher).await;

    let (mut store, flusher) = open(dir.path(), small_segments()).await;
    assert_eq!(
        read_all(&store),
        [entries(1, 0..12), entries(3, 12..20)].concat()
    );
    // Truncating everything leaves an empty log that accepts index 0 again.
    store.truncate(0).await.unwrap();
    assert!(read_all(&store).is_empty());
    assert_eq!(store.reader().last_log_id(), None);
    assert!(segment_files(dir.path()).is_empty());
    store.append(entries(4, 0..3)).await.unwrap();
    close(store, flusher).await;
    let (store, flusher) = open(dir.path(), small_segments()).await;
    assert_eq!(read_all(&store), entries(4, 0..3));
    close(store, flusher).await;
}

#[tokio::test]
async fn purge_drops_the_head_and_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, flusher) = open(dir.path(), small_segments()).await;
    for i in 0..30 {
        store.append(vec![entry(1, i)]).await.unwrap();
    }
    let before = segment_files(dir.path()).len();
    store.purge(entry(1, 14).log_id).await.unwrap();
    assert!(segment_files(dir.path()).len() < before);
    assert_eq!(store.reader().first_index(), 15);
    assert_eq!(read_all(&store), entries(1, 15..30));
    assert_eq!(store.reader().last_purged(), Some(entry(1, 14).log_id));
    close(store, flusher).await;

    let (mut store, flusher) = open(dir.path(), small_segments()).await;
    assert_eq!(store.reader().first_index(), 15);
    assert_eq!(read_all(&store), entries(1, 15..30));
    // Purging beyond the last entry (after a snapshot was installed) empties the log, and the
    // log continues after the purge point.
    store.purge(entry(2, 40).log_id).await.unwrap();
    assert!(read_all(&store).is_empty());
    assert_eq!(store.reader().last_log_id(), Some(entry(2, 40).log_id));
    store.append(entries(2, 41..45)).await.unwrap();
    close(store, flusher).await;

    let (store, flusher) = open(dir.path(), small_segments()).await;
    assert_eq!(store.reader().first_index(), 41);
    assert_eq!(read_all(&store), entries(2, 41..45));
    close(store, flusher).await;
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, flusher) = open(dir.path(), LogStoreConfig::default()).await;
    store.append(entries(1, 0..10)).await.unwrap();
    close(store, flusher).await;
    // Opening cuts the zeros written ahead: the file ends with the last frame.
    let (store, flusher) = open(dir.path(), LogStoreConfig::default()).await;
    close(store, flusher).await;
    let last = segment_files(dir.path()).pop().unwrap();
    let clean_len = fs::metadata(&last).unwrap().len();

    // Garbage after the last frame, as a crash mid-append leaves it.
    let mut file = fs::OpenOptions::new().append(true).open(&last).unwrap();
    file.write_all(&[0xab; 37]).unwrap();
    drop(file);
    let (mut store, flusher) = open(dir.path(), LogStoreConfig::default()).await;
    assert_eq!(read_all(&store), entries(1, 0..10));
    assert_eq!(fs::metadata(&last).unwrap().len(), clean_len);
    store.append(entries(1, 10..12)).await.unwrap();
    close(store, flusher).await;
    let (store, flusher) = open(dir.path(), LogStoreConfig::default()).await;
    close(store, flusher).await;

    // A frame cut in half loses only that frame.
    let len = fs::metadata(&last).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 20)
        .unwrap();
    let (store, flusher) = open(dir.path(), LogStoreConfig::default()).await;
    assert_eq!(read_all(&store), entries(1, 0..11));
    close(store, flusher).await;
}

/// The segment being appended to grows in steps of zeros, so that most fsyncs write no inode;
/// the zeros never stay between segments and never survive a restart.
#[tokio::test]
async fn zeros_are_written_ahead_and_never_left_between_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, flusher) = open(dir.path(), LogStoreConfig::default()).await;
    store.append(entries(1, 0..3)).await.unwrap();
    let last = segment_files(dir.path()).pop().unwrap();
    let grown = fs::metadata(&last).unwrap().len();
    assert!(grown >= ZERO_AHEAD_BYTES, "zeros ahead: {grown} bytes");
    // Appends within the zeros leave the length alone.
    store.append(entries(1, 3..6)).await.unwrap();
    assert_eq!(fs::metadata(&last).unwrap().len(), grown);
    close(store, flusher).await;
    let (mut store, flusher) = open(dir.path(), LogStoreConfig::default()).await;
    assert_eq!(read_all(&store), entries(1, 0..6));
    assert!(fs::metadata(&last).unwrap().len() < grown, "cut on open");
    store.append(entries(1, 6..8)).await.unwrap();
    close(store, flusher).await;
    let (store, flusher) = open(dir.path(), LogStoreConfig::default()).await;
    assert_eq!(read_all(&store), entries(1, 0..8));
    close(store, flusher).await;

    // With small segments, every segment left behind ends with its last frame.
    let dir = tempfile::tempdir().unwrap();
    let (mut store, flusher) = open(dir.path(), small_segments()).await;
    for i in 0..30 {
        store.append(vec![entry(1, i)]).await.unwrap();
    }
    let files = segment_files(dir.path());
    assert!(files.len() > 2, "segments rolled: {files:?}");
    for path in &files[..files.len() - 1] {
        let (_, end) = segment::scan(&fs::File::open(path).unwrap()).unwrap();
        assert_eq!(end, segment::ScanEnd::Clean, "{}", path.display());
    }
    let (_, end) = segment::scan(&fs::File::open(files.last().unwrap()).unwrap()).unwrap();
    assert!(matches!(end, segment::ScanEnd::Zeros { .. }), "{end:?}");
    close(store, flusher).await;
    let (store, flusher) = open(dir.path(), small_segments()).await;
    assert_eq!(read_all(&store).len(), 30);
    close(store, flusher).await;
}

#[tokio::test]
async fn damage_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, flusher) = open(dir.path(), small_segments()).await;
    for i in 0..30 {
        store.append(vec![entry(1, i)]).await.unwrap();
    }
    // Damage under a running store is caught when the frame is read.
    let first = segment_files(dir.path())[0].clone();
    let mut raw = fs::read(&first).unwrap();
    let pos = (MAGIC_LEN + segment::FRAME_HEADER_LEN + 2) as usize;
    raw[pos] ^= 0x55;
    fs::write(&first, &raw).unwrap();
    store.reader().clear_cache();
    assert!(matches!(
        store.reader().read_range(0, 1, usize::MAX),
        Err(LogStoreError::Corrupt(_))
    ));
    close(store, flusher).await;
    // And a damaged sealed segment refuses to open: it is not a torn tail.
    assert!(matches!(
        LogStore::open(dir.path(), small_segments()),
        Err(LogStoreError::Corrupt(_))
    ));
}
