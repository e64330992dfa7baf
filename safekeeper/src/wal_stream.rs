//! `StreamWal`: the committed WAL of one timeline, from any LSN, served from the local log.
//!
//! A stream reads entries up to this node's applied index, keeps the accepted transactions of
//! its timeline (acceptance comes from the generation history, so it is right from any start
//! point) and sends them in chunks of about `chunk_bytes`. Each chunk says how far the stream
//! got (`committed_lsn`), and that position advances even when nothing of the timeline was
//! committed. When caught up it waits on the applied-index watch, sending an empty keepalive
//! chunk every `keepalive`.
//!
//! A transaction written in pieces (`Part` entries, then a `Joined` entry) is one record at the
//! `Joined` entry's LSN: the parts are read back from the log by index when the `Joined` entry is
//! reached. `Part` entries by themselves produce nothing.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use openraft::EntryPayload;
use strata_core::{Lsn, TimelineId};
use strata_proto::safekeeper::{WalChunk, WalRecord};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::Instrument;

use crate::log_store::{LogReader, LogStoreError};
use crate::remote_wal::{RemoteWal, RemoteWalError};
use crate::state_machine::SharedState;
use crate::types::{Entry, Joined, Request};

/// The records of the timeline in consecutive entries: each entry's index and its records.
type EntryRecords = Vec<(u64, Vec<WalRecord>)>;

/// Limits of one stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamConfig {
    pub chunk_bytes: usize,
    pub keepalive: Duration,
}

/// Entries read from the log at once (bounded in bytes too).
const READ_ENTRIES: u64 = 256;
const READ_BYTES: usize = 4 << 20;
/// Chunks buffered between the reader task and the client.
const CHUNKS_BUFFERED: usize = 4;
/// Protobuf framing of one record beside its mutations, roughly.
const RECORD_OVERHEAD: usize = 24;

type ChunkResult = Result<WalChunk, Status>;

/// Checks the start point and starts the reader task; the stream ends when the client goes
/// away or `cancel` fires.
pub(crate) fn start(
    timeline: TimelineId,
    start_lsn: Lsn,
    log: LogReader,
    remote: Option<Arc<RemoteWal>>,
    state: SharedState,
    config: StreamConfig,
    cancel: CancellationToken,
) -> Result<ReceiverStream<ChunkResult>, Status> {
    let first = log.first_index();
    if start_lsn.0 < first && remote.is_none() {
        return Err(out_of_range(start_lsn.0, first));
    }
    let (tx, rx) = mpsc::channel(CHUNKS_BUFFERED);
    let stream = WalStream {
        source: Source {
            timeline,
            log,
            remote,
            state,
        },
        next: start_lsn.0,
        config,
        cancel,
        tx,
    };
    let span = tracing::info_span!("stream_wal", %timeline, start_lsn = %start_lsn);
    tokio::spawn(stream.run().instrument(span));
    Ok(ReceiverStream::new(rx))
}

fn out_of_range(start: u64, first: u64) -> Status {
    Status::out_of_range(format!(
        "WAL before LSN {} is no longer kept here (requested {})",
        Lsn(first),
        Lsn(start)
    ))
}

struct WalStream {
    source: Source,
    /// The next log index to look at.
    next: u64,
    config: StreamConfig,
    cancel: CancellationToken,
    tx: mpsc::Sender<ChunkResult>,
}

impl WalStream {
    async fn run(mut self) {
        let mut applied = self.source.state.subscribe_applied();
        let mut last_sent = Instant::now();
        loop {
            let applied_end = *applied.borrow_and_update();
            if self.next < applied_end {
                match self.send_available(applied_end).await {
                    Ok(true) => last_sent = Instant::now(),
                    Ok(false) => {}
                    Err(Some(status)) => {
                        tracing::warn!(%status, "WAL stream failed");
                        let _ = self.tx.send(Err(status)).await;
                        return;
                    }
                    Err(None) => return,
                }
                continue;
            }
            tokio::select! {
                changed = applied.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep_until(last_sent + self.config.keepalive) => {
                    let committed = self.next.min(applied_end).saturating_sub(1);
                    if !self.send(Vec::new(), committed).await {
                        return;
                    }
                    last_sent = Instant::now();
                }
                _ = self.cancel.cancelled() => return,
                _ = self.tx.closed() => return,
            }
        }
    }

    /// Reads one slice of applied entries and sends what belongs to the timeline. Returns
    /// whether a chunk was sent; `Err(None)` means the stream is over (client gone, shutdown).
    async fn send_available(&mut self, applied_end: u64) -> Result<bool, Option<Status>> {
        let start = self.next;
        let end = applied_end.min(start + READ_ENTRIES);
        let entries = match self.source.read_cached(start, end) {
            Some(entries) => entries,
            None => {
                let source = self.source.clone();
                tokio::task::spawn_blocking(move || source.read(start, end))
                    .await
                    .map_err(|e| Some(Status::internal(format!("WAL read task: {e}"))))?
            }
        }
        .map_err(Some)?;
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let mut sent = false;
        for (index, entry_records) in entries {
            for record in entry_records {
                let size = record.mutations.len() + RECORD_OVERHEAD;
                if !records.is_empty() && bytes + size > self.config.chunk_bytes {
                    // Part of this entry may follow in the next chunk: only what precedes it
                    // is complete.
                    let chunk = std::mem::take(&mut records);
                    if !self.send(chunk, index.saturating_sub(1)).await {
                        return Err(None);
                    }
                    sent = true;
                    bytes = 0;
                }
                bytes += size;
                records.push(record);
            }
            self.next = index + 1;
        }
        if !records.is_empty() || self.next >= applied_end {
            if !self.send(records, self.next - 1).await {
                return Err(None);
            }
            sent = true;
        }
        Ok(sent)
    }

    /// Sends one chunk; false when the stream is over.
    async fn send(&self, records: Vec<WalRecord>, committed_lsn: u64) -> bool {
        let chunk = WalChunk {
            records,
            committed_lsn,
        };
        tokio::select! {
            sent = self.tx.send(Ok(chunk)) => sent.is_ok(),
            _ = self.cancel.cancelled() => false,
        }
    }
}

/// Where a stream reads from; moved into the blocking read task.
#[derive(Clone)]
struct Source {
    timeline: TimelineId,
    log: LogReader,
    /// Where entries below the local log's first index are read from, when configured.
    remote: Option<Arc<RemoteWal>>,
    state: SharedState,
}

impl Source {
    /// Entries `[start, end)` from the local log, or from the offloaded WAL for those the
    /// local log no longer (or never) held. Starts exactly at `start` or fails. Blocking.
    fn entries(&self, start: u64, end: u64) -> Result<Vec<Entry>, Status> {
        let first_local = self.log.first_index();
        if let Some(remote) = self.remote.as_ref().filter(|_| start < first_local) {
            return tokio::runtime::Handle::current()
                .block_on(remote.read_range(start, end.min(first_local)))
                .map_err(|e| match e {
                    RemoteWalError::Missing(_) => out_of_range(start, first_local),
                    RemoteWalError::Store(e) => Status::unavailable(format!(
                        "reading offloaded WAL at LSN {}: {e}",
                        Lsn(start)
                    )),
                    corrupt @ RemoteWalError::Corrupt { .. } => {
                        Status::data_loss(corrupt.to_string())
                    }
                });
        }
        self.log
            .read_range(start, end, READ_BYTES)
            .map_err(|e| read_status(e, start))
    }

    /// The records of the timeline in the entries `[start, end)`, entry by entry (at least the
    /// first entry; fewer than asked once about `READ_BYTES` of records were read). Blocking.
    fn read(&self, start: u64, end: u64) -> Result<EntryRecords, Status> {
        let entries = self.entries(start, end)?;
        self.records(start, entries)
    }

    /// What [`read`](Self::read) returns, when it needs no I/O: every entry is in the log's
    /// memory cache and none is a transaction joined from parts (which are read back). `None`
    /// otherwise. Not blocking.
    fn read_cached(&self, start: u64, end: u64) -> Option<Result<EntryRecords, Status>> {
        let entries = self.log.read_cached(start, end, READ_BYTES)?;
        let joined = |e: &Entry| matches!(&e.payload, EntryPayload::Normal(Request::Joined(_)));
        // Entries below the local log (offloaded) take the blocking path too.
        let starts_at_start = entries.first().is_some_and(|e| e.log_id.index == start);
        if !starts_at_start || entries.iter().any(joined) {
            return None;
        }
        Some(self.records(start, entries))
    }

    /// The records of `entries`, which were read from `start` on.
    fn records(&self, start: u64, entries: Vec<Entry>) -> Result<EntryRecords, Status> {
        match entries.first() {
            Some(e) if e.log_id.index == start => {}
            _ => return Err(out_of_range(start, self.log.first_index())),
        }
        let mut out = Vec::with_capacity(entries.len());
        let mut bytes = 0usize;
        for entry in entries {
            // A reassembled transaction can be large: what follows waits for the next read.
            if bytes >= READ_BYTES {
                break;
            }
            let index = entry.log_id.index;
            let records = self.accepted_records(entry)?;
            bytes += records.iter().map(|r| r.mutations.len()).sum::<usize>();
            out.push((index, records));
        }
        Ok(out)
    }

    /// The transactions of `entry` that belong to the timeline and were accepted.
    fn accepted_records(&self, entry: Entry) -> Result<Vec<WalRecord>, Status> {
        let lsn = Lsn(entry.log_id.index);
        let EntryPayload::Normal(request) = entry.payload else {
            return Ok(Vec::new());
        };
        match request {
            Request::Batch(batch) => {
                let commit_time_micros = batch.commit_time_micros;
                Ok(self.state.with_timeline(&self.timeline, |state| {
                    let Some(state) = state else {
                        return Vec::new();
                    };
                    batch
                        .txns
                        .into_iter()
                        .filter(|txn| {
                            txn.timeline == self.timeline && state.accepts(lsn, txn.generation)
                        })
                        .map(|txn| WalRecord {
                            lsn: lsn.0,
                            commit_time_micros,
                            mutations: txn.mutations,
                        })
                        .collect()
                }))
            }
            Request::Joined(joined)
                if joined.txn.timeline == self.timeline
                    && self.state.with_timeline(&self.timeline, |state| {
                        state.is_some_and(|state| state.accepts(lsn, joined.txn.generation))
                    }) =>
            {
                let commit_time_micros = joined.commit_time_micros;
                let mutations = self.reassemble(lsn, joined)?;
                Ok(vec![WalRecord {
                    lsn: lsn.0,
                    commit_time_micros,
                    mutations,
                }])
            }
            Request::Joined(_) | Request::Part(_) | Request::Register { .. } => Ok(Vec::new()),
        }
    }

    /// The mutations of the transaction whose `Joined` entry is at `lsn`: its parts, read back
    /// from the log, then its last piece. Never a truncated record: a part that is missing or
    /// is not this transaction's is an error.
    fn reassemble(&self, lsn: Lsn, joined: Joined) -> Result<bytes::Bytes, Status> {
        let txn = joined.txn;
        let mut pieces = Vec::with_capacity(joined.parts.len());
        for &index in &joined.parts {
            let found = if index < lsn.0 {
                self.entries(index, index + 1)?.pop()
            } else {
                None
            };
            match found {
                Some(Entry {
                    log_id,
                    payload: EntryPayload::Normal(Request::Part(part)),
                }) if log_id.index == index
                    && part.timeline == txn.timeline
                    && part.generation == txn.generation =>
                {
                    pieces.push(part.bytes);
                }
                None if index < self.log.first_index() => {
                    return Err(Status::out_of_range(format!(
                        "entry {index}, a part of the transaction at LSN {lsn}, is no longer \
                         kept here (the WAL starts at {})",
                        Lsn(self.log.first_index())
                    )));
                }
                _ => {
                    return Err(Status::internal(format!(
                        "entry {index} is not a part of the transaction at LSN {lsn}"
                    )));
                }
            }
        }
        let total = pieces.iter().map(|p| p.len()).sum::<usize>() + txn.mutations.len();
        let mut mutations = BytesMut::with_capacity(total);
        for piece in pieces {
            mutations.extend_from_slice(&piece);
        }
        mutations.extend_from_slice(&txn.mutations);
        Ok(mutations.freeze())
    }
}

fn read_status(e: LogStoreError, start: u64) -> Status {
    match e {
        LogStoreError::Purged { first, .. } => out_of_range(start, first),
        other => Status::internal(format!("reading the WAL: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use openraft::storage::RaftStateMachine;
    use openraft::CommittedLeaderId;
    use tokio_stream::StreamExt;

    use super::*;
    use crate::log_store::{LogStore, LogStoreConfig};
    use crate::state_machine::StateMachineStore;
    use crate::types::{Batch, LogId, Part, Txn};

    fn entry(index: u64, payload: EntryPayload<crate::types::TypeConfig>) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload,
        }
    }

    fn batch(index: u64, txns: &[(TimelineId, u32, &'static str)]) -> Entry {
        entry(
            index,
            EntryPayload::Normal(Request::Batch(Batch {
                commit_time_micros: 1000 + index as i64,
                txns: txns
                    .iter()
                    .map(|(timeline, generation, m)| Txn {
                        timeline: *timeline,
                        generation: *generation,
                        mutations: Bytes::from_static(m.as_bytes()),
                    })
                    .collect(),
            })),
        )
    }

    fn part(index: u64, timeline: TimelineId, generation: u32, bytes: &'static str) -> Entry {
        entry(
            index,
            EntryPayload::Normal(Request::Part(Part {
                timeline,
                generation,
                bytes: Bytes::from_static(bytes.as_bytes()),
            })),
        )
    }

    fn joined(
        index: u64,
        timeline: TimelineId,
        generation: u32,
        last: &'static str,
        parts: &[u64],
    ) -> Entry {
        entry(
            index,
            EntryPayload::Normal(Request::Joined(Joined {
                commit_time_micros: 1000 + index as i64,
                txn: Txn {
                    timeline,
                    generation,
                    mutations: Bytes::from_static(last.as_bytes()),
                },
                parts: parts.to_vec(),
            })),
        )
    }

    async fn next_result(stream: &mut ReceiverStream<ChunkResult>) -> ChunkResult {
        tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a chunk in time")
            .expect("stream open")
    }

    async fn next_chunk(stream: &mut ReceiverStream<ChunkResult>) -> WalChunk {
        next_result(stream).await.expect("no error")
    }

    /// The records of a stream until `committed_lsn` reaches `upto`.
    async fn records_upto(stream: &mut ReceiverStream<ChunkResult>, upto: u64) -> Vec<WalRecord> {
        let mut records = Vec::new();
        loop {
            let chunk = next_chunk(stream).await;
            records.extend(chunk.records);
            if chunk.committed_lsn >= upto {
                return records;
            }
        }
    }

    #[tokio::test]
    async fn streams_accepted_records_in_bounded_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, flusher) = LogStore::open(dir.path(), LogStoreConfig::default()).unwrap();
        let mut sm = StateMachineStore::open(dir.path()).unwrap();
        let tl = TimelineId::from_bytes([1; 16]);
        let other = TimelineId::from_bytes([2; 16]);
        let entries = vec![
            entry(0, EntryPayload::Blank),
            entry(1, EntryPayload::Normal(Request::Register { timeline: tl })),
            batch(2, &[(tl, 1, "a"), (other, 1, "x"), (tl, 1, "b")]),
            // Generation 0 and a generation that was never issued are refused.
            batch(3, &[(tl, 0, "refused"), (tl, 2, "refused")]),
            entry(4, EntryPayload::Blank),
        ];
        log.append(entries.clone()).await.unwrap();
        sm.apply(entries).await.unwrap();

        let config = StreamConfig {
            chunk_bytes: 1,
            keepalive: Duration::from_millis(50),
        };
        let cancel = CancellationToken::new();
        let mut stream = start(
            tl,
            Lsn(0),
            log.reader(),
            None,
            sm.shared(),
            config,
            cancel.clone(),
        )
        .unwrap();
        // One record per chunk; the first chunk cannot claim entry 2 complete.
        let c = next_chunk(&mut stream).await;
        assert_eq!(c.committed_lsn, 1);
        assert_eq!(c.records.len(), 1);
        assert_eq!(c.records[0].mutations, "a");
        assert_eq!(c.records[0].lsn, 2);
        assert_eq!(c.records[0].commit_time_micros, 1002);
        let c = next_chunk(&mut stream).await;
        assert_eq!(c.records.len(), 1);
        assert_eq!(c.records[0].mutations, "b");
        assert_eq!(c.committed_lsn, 4);

        // New entries of other timelines still move `committed_lsn`.
        let more = vec![batch(5, &[(other, 1, "y")])];
        log.append(more.clone()).await.unwrap();
        sm.apply(more).await.unwrap();
        let c = next_chunk(&mut stream).await;
        assert!(c.records.is_empty());
        assert_eq!(c.committed_lsn, 5);
        // Idle: keepalives.
        let c = next_chunk(&mut stream).await;
        assert!(c.records.is_empty());
        assert_eq!(c.committed_lsn, 5);

        // A stream from the middle agrees on acceptance.
        let mut late = start(
            tl,
            Lsn(3),
            log.reader(),
            None,
            sm.shared(),
            config,
            cancel.clone(),
        )
        .unwrap();
        let c = next_chunk(&mut late).await;
        assert!(c.records.is_empty());
        assert_eq!(c.committed_lsn, 5);

        // Shutdown ends streams.
        cancel.cancel();
        assert!(tokio::time::timeout(Duration::from_secs(10), async {
            while stream.next().await.is_some() {}
        })
        .await
        .is_ok());

        // Below the purge point there is nothing to stream.
        log.purge(LogId::new(CommittedLeaderId::new(1, 1), 2))
            .await
            .unwrap();
        let err = start(
            tl,
            Lsn(1),
            log.reader(),
            None,
            sm.shared(),
            config,
            CancellationToken::new(),
        )
        .unwrap_err();
        assert_eq!(err.code(), tonic::Code::OutOfRange);
        drop(log);
        flusher.finish().await;
    }

    #[tokio::test]
    async fn joined_transactions_are_reassembled_from_their_parts() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, flusher) = LogStore::open(dir.path(), LogStoreConfig::default()).unwrap();
        let mut sm = StateMachineStore::open(dir.path()).unwrap();
        let tl = TimelineId::from_bytes([1; 16]);
        let other = TimelineId::from_bytes([2; 16]);
        let entries = vec![
            entry(0, EntryPayload::Blank),
            entry(1, EntryPayload::Normal(Request::Register { timeline: tl })),
            entry(
                2,
                EntryPayload::Normal(Request::Register { timeline: other }),
            ),
            part(3, tl, 1, "hel"),
            // Other entries may come between the parts of a transaction.
            batch(4, &[(tl, 1, "small")]),
            part(5, tl, 1, "lo "),
            joined(6, tl, 1, "world", &[3, 5]),
            part(7, other, 1, "x"),
            joined(8, other, 1, "y", &[7]),
            // Parts whose `Joined` entry never made it (the leader died in between).
            part(9, tl, 1, "orphan"),
            // A generation never issued: refused, parts or not.
            part(10, tl, 7, "refused"),
            joined(11, tl, 7, "refused", &[10]),
            joined(12, tl, 1, "!", &[]),
        ];
        log.append(entries.clone()).await.unwrap();
        sm.apply(entries).await.unwrap();

        let config = StreamConfig {
            chunk_bytes: 1 << 20,
            keepalive: Duration::from_millis(50),
        };
        let (reader, shared) = (log.reader(), sm.shared());
        let open = |from: u64| {
            start(
                tl,
                Lsn(from),
                reader.clone(),
                None,
                shared.clone(),
                config,
                CancellationToken::new(),
            )
            .unwrap()
        };
        let summary = |records: Vec<WalRecord>| {
            records
                .into_iter()
                .map(|r| (r.lsn, r.commit_time_micros, r.mutations))
                .collect::<Vec<_>>()
        };
        let all = vec![
            (4, 1004, Bytes::from_static(b"small")),
            (6, 1006, Bytes::from_static(b"hello world")),
            (12, 1012, Bytes::from_static(b"!")),
        ];
        assert_eq!(summary(records_upto(&mut open(0), 12).await), all);
        // Starting after the parts, or at one of them, reads them back all the same.
        assert_eq!(summary(records_upto(&mut open(5), 12).await), all[1..]);
        assert_eq!(summary(records_upto(&mut open(6), 12).await), all[1..]);
        assert_eq!(summary(records_upto(&mut open(7), 12).await), all[2..]);
        // From disk too, not only from the entry cache.
        log.reader().clear_cache();
        assert_eq!(summary(records_upto(&mut open(0), 12).await), all);

        // A `Joined` entry naming an entry that is not its part fails the stream.
        let more = vec![
            joined(13, tl, 1, "bad", &[4]),
            joined(14, tl, 1, "bad", &[7]),
            joined(15, tl, 1, "bad", &[16]),
        ];
        log.append(more.clone()).await.unwrap();
        sm.apply(more).await.unwrap();
        for from in 13..=15 {
            let err = next_result(&mut open(from)).await.unwrap_err();
            assert_eq!(err.code(), tonic::Code::Internal, "{from}: {err}");
        }

        // A purged part is an error, never a truncated record.
        log.purge(LogId::new(CommittedLeaderId::new(1, 1), 3))
            .await
            .unwrap();
        let err = next_result(&mut open(6)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::OutOfRange, "{err}");
        drop(log);
        flusher.finish().await;
    }
}
