//! openraft's storage traits over [`LogStore`] and [`LogReader`].

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogState, OptionalSend, RaftLogReader, StorageIOError};

use super::{LogReader, LogStore, LogStoreError};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

fn range_bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

fn read_error(e: LogStoreError) -> StorageError {
    StorageIOError::read_logs(AnyError::new(&e)).into()
}

impl LogReader {
    async fn read_blocking(
        &self,
        start: u64,
        end: u64,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        if let Some(entries) = self.read_cached(start, end, max_bytes) {
            return Ok(entries);
        }
        let reader = self.clone();
        tokio::task::spawn_blocking(move || reader.read_range(start, end, max_bytes))
            .await
            .map_err(|e| read_error(LogStoreError::io("WAL read task", io::Error::other(e))))?
            .map_err(read_error)
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = range_bounds(&range);
        self.read_blocking(start, end, usize::MAX).await
    }

    /// Bounded in bytes, so that one replication RPC stays well inside the heartbeat timeout
    /// and the message size limit.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        let max = self.replication_batch_bytes();
        self.read_blocking(start, end, max).await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.reader.try_get_log_entries(range).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        Ok(LogState {
            last_purged_log_id: self.reader.last_purged(),
            last_log_id: self.reader.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        LogStore::save_vote(self, *vote)
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.meta().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        LogStore::save_committed(self, committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.meta().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        // `LogStore::append` returns only after the fsync, so "readable" and "flushed" coincide.
        // This matters beyond the callback: openraft 0.9 answers a leader's AppendEntries as soon
        // as `append` returns, so returning before the fsync would let a follower acknowledge
        // entries it could still lose.
        match LogStore::append(self, entries).await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "WAL append failed");
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(AnyError::new(&e)).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        LogStore::truncate(self, log_id.index)
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        LogStore::purge(self, log_id)
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }
}
