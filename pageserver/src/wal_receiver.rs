//! Streams committed WAL of one timeline from the safekeepers into the timeline.
//!
//! Any safekeeper can serve the stream. On an error or the end of a stream the receiver backs
//! off briefly and reconnects to the next safekeeper, from the last ingested LSN + 1. A record
//! that does not decode stops the receiver for the timeline: ingesting garbage would be worse
//! than stopping (reads then time out waiting, and the error is in the log).

use std::time::Duration;

use futures::StreamExt as _;
use strata_core::wal::{decode_mutations, WalDecodeError, WalRecord};
use strata_core::Lsn;
use strata_proto::local::{self, LocalSafekeeper, WalStream};
use strata_proto::safekeeper::safekeeper_client::SafekeeperClient;
use strata_proto::safekeeper::{StreamWalRequest, WalChunk};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tracing::{debug, error, info, warn};

use crate::error::PageserverError;
use crate::timeline::WeakTimeline;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const KEEPALIVE: Duration = Duration::from_secs(10);
const MAX_MESSAGE_SIZE: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
enum ReceiverError {
    #[error("connect: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("stream: {0}")]
    Stream(#[from] tonic::Status),
    #[error("WAL record at {lsn} does not decode: {source}")]
    Decode { lsn: Lsn, source: WalDecodeError },
    #[error("ingest: {0}")]
    Ingest(#[from] PageserverError),
}

/// Why a stream ended without an error.
enum StreamEnd {
    /// The safekeeper closed it; reconnect.
    Closed,
    /// We are done: cancelled, or the timeline is gone.
    Stop,
}

/// Runs until `cancel` fires, the timeline is dropped or fenced, or WAL fails to decode.
pub(crate) async fn run(
    timeline: WeakTimeline,
    safekeepers: Vec<String>,
    cancel: CancellationToken,
) {
    let mut next = 0usize;
    let mut backoff = MIN_BACKOFF;
    loop {
        let addr = &safekeepers[next % safekeepers.len()];
        next += 1;
        let mut progressed = false;
        match stream_from(&timeline, addr, &cancel, &mut progressed).await {
            Ok(StreamEnd::Stop) => return,
            Ok(StreamEnd::Closed) => info!(safekeeper = %addr, "WAL stream ended; reconnecting"),
            Err(e @ ReceiverError::Decode { .. }) => {
                error!(safekeeper = %addr, error = %e, "undecodable WAL: stopping ingest for this timeline");
                return;
            }
            Err(ReceiverError::Ingest(e)) => {
                info!(error = %e, "ingest stopped; WAL receiver exits");
                return;
            }
            Err(e) => {
                warn!(safekeeper = %addr, error = %e, "WAL stream failed; trying the next safekeeper")
            }
        }
        if progressed {
            backoff = MIN_BACKOFF;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn connect(addr: &str) -> Result<SafekeeperClient<Channel>, tonic::transport::Error> {
    let uri = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let channel = Endpoint::from_shared(uri)?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE)
        .keep_alive_timeout(KEEPALIVE)
        .connect()
        .await?;
    Ok(SafekeeperClient::new(channel).max_decoding_message_size(MAX_MESSAGE_SIZE))
}

async fn stream_from(
    timeline: &WeakTimeline,
    addr: &str,
    cancel: &CancellationToken,
    progressed: &mut bool,
) -> Result<StreamEnd, ReceiverError> {
    let (id, start_lsn) = match timeline.upgrade() {
        Some(t) => (t.id, t.last_record_lsn().next()),
        None => return Ok(StreamEnd::Stop),
    };
    let request = StreamWalRequest {
        timeline_id: id.to_string(),
        start_lsn: start_lsn.0,
    };
    let mut stream: WalStream = tokio::select! {
        _ = cancel.cancelled() => return Ok(StreamEnd::Stop),
        r = async {
            // A safekeeper in this process (`strata up`) hands its stream over directly.
            if let Some(safekeeper) = local::find::<dyn LocalSafekeeper>(addr) {
                return Ok::<_, ReceiverError>(safekeeper.stream_wal(request).await?);
            }
            let mut client = connect(addr).await?;
            Ok(Box::pin(client.stream_wal(request).await?.into_inner()) as WalStream)
        } => r?,
    };
    info!(safekeeper = %addr, %start_lsn, "streaming WAL");
    let mut held = HeldRecords::default();
    loop {
        let chunk = tokio::select! {
            _ = cancel.cancelled() => return Ok(StreamEnd::Stop),
            m = stream.next() => m.transpose()?,
        };
        let Some(chunk) = chunk else {
            return Ok(StreamEnd::Closed);
        };
        let (records, committed_lsn) = decode_chunk(chunk)?;
        let Some(timeline) = timeline.upgrade() else {
            return Ok(StreamEnd::Stop);
        };
        let complete = held.complete(records, committed_lsn);
        debug!(records = complete.len(), %committed_lsn, "ingesting WAL chunk");
        timeline.ingest(&complete, committed_lsn).await?;
        *progressed = true;
    }
}

/// Records of an LSN that is not complete yet.
///
/// A group-commit batch (one LSN) too large for one chunk arrives split over several: a chunk
/// may end with records whose LSN is above its `committed_lsn`, and the rest of that LSN comes
/// in the next chunk. Those records are held back until a chunk's `committed_lsn` covers them,
/// so that the timeline only ever ingests whole LSNs: its `last_record_lsn` never claims an LSN
/// it holds only part of, and no layer is frozen in the middle of one. After a reconnect, the
/// stream resumes at the held LSN and resends it whole, so dropping the held records is safe.
#[derive(Default)]
struct HeldRecords {
    records: Vec<WalRecord>,
}

impl HeldRecords {
    /// Takes this chunk's records; returns every held record whose LSN is now complete.
    fn complete(&mut self, records: Vec<WalRecord>, committed_lsn: Lsn) -> Vec<WalRecord> {
        self.records.extend(records);
        let split = self.records.partition_point(|r| r.lsn <= committed_lsn);
        let rest = self.records.split_off(split);
        std::mem::replace(&mut self.records, rest)
    }
}

fn decode_chunk(chunk: WalChunk) -> Result<(Vec<WalRecord>, Lsn), ReceiverError> {
    let records = chunk
        .records
        .into_iter()
        .map(|r| {
            let lsn = Lsn(r.lsn);
            decode_mutations(&r.mutations)
                .map(|mutations| WalRecord {
                    lsn,
                    commit_time_micros: r.commit_time_micros,
                    mutations,
                })
                .map_err(|source| ReceiverError::Decode { lsn, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((records, Lsn(chunk.committed_lsn)))
}

#[cfg(test)]
mod held_records_tests {
    use super::*;

    fn record(lsn: u64, n: u8) -> WalRecord {
        WalRecord {
            lsn: Lsn(lsn),
            commit_time_micros: 0,
            mutations: vec![strata_core::wal::Mutation::Delete {
                key: vec![n].into(),
            }],
        }
    }

    #[test]
    fn a_split_lsn_is_released_whole() {
        let mut held = HeldRecords::default();
        // Chunk 1: all of LSN 5, the first half of LSN 6.
        let out = held.complete(vec![record(5, 1), record(6, 2)], Lsn(5));
        assert_eq!(out.iter().map(|r| r.lsn.0).collect::<Vec<_>>(), vec![5]);
        // Chunk 2: the second half of LSN 6.
        let out = held.complete(vec![record(6, 3)], Lsn(6));
        assert_eq!(out, vec![record(6, 2), record(6, 3)]);
        assert!(held.complete(vec![], Lsn(7)).is_empty());
    }
}
