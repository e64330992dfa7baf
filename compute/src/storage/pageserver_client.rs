use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use strata_core::{Lsn, TimelineId};
use strata_proto::local::{self, LocalPageserver};
use strata_proto::pageserver::pageserver_client::PageserverClient as GrpcClient;
use strata_proto::pageserver::{GetRequest, LeaseLsnRequest, LsnAtRequest, ScanChunk, ScanRequest};
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use super::retry::{is_transient, Backoff, RETRY_DEADLINE};
use super::{StorageError, MAX_MESSAGE_BYTES};

/// Reads a timeline from the pageserver at an LSN.
///
/// Calls retry while the pageserver is unreachable (it may be restarting: its state is a cache
/// and comes back from object storage), up to [`RETRY_DEADLINE`].
#[derive(Clone, Debug)]
pub struct PageserverClient {
    client: GrpcClient<Channel>,
    /// The address `client` connects to, under which an in-process pageserver registers.
    addr: Arc<str>,
    timeline: TimelineId,
}

impl PageserverClient {
    pub fn connect_lazy(addr: &str, timeline: TimelineId) -> Result<Self, StorageError> {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| StorageError::Rpc(format!("bad pageserver address {addr}: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(2))
            .tcp_nodelay(true);
        let client = GrpcClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(Self {
            client,
            addr: addr.into(),
            timeline,
        })
    }

    pub fn timeline(&self) -> TimelineId {
        self.timeline
    }

    /// The values of `keys` at `lsn`, in order; `None` for keys without a value. The caller
    /// promises that none of the keys changed after `not_modified_since` (clamped to `lsn`), so
    /// the pageserver need only have ingested that far.
    pub async fn get(
        &self,
        keys: Vec<Bytes>,
        lsn: Lsn,
        not_modified_since: Lsn,
    ) -> Result<Vec<Option<Bytes>>, StorageError> {
        let expected = keys.len();
        let request = GetRequest {
            timeline_id: self.timeline.to_string(),
            lsn: lsn.0,
            not_modified_since: not_modified_since.min(lsn).0,
            keys,
        };
        let mut backoff = Backoff::new(RETRY_DEADLINE);
        loop {
            // A pageserver in this process (`strata up`) is called directly.
            let answer = match local::find::<dyn LocalPageserver>(&self.addr) {
                Some(pageserver) => pageserver.get(request.clone()).await,
                None => self
                    .client
                    .clone()
                    .get(request.clone())
                    .await
                    .map(tonic::Response::into_inner),
            };
            match answer {
                Ok(resp) => {
                    let values: Vec<Option<Bytes>> =
                        resp.values.into_iter().map(|v| v.value).collect();
                    if values.len() != expected {
                        return Err(StorageError::Corrupt(format!(
                            "asked for {expected} keys, got {} values",
                            values.len()
                        )));
                    }
                    return Ok(values);
                }
                Err(status) if is_transient(&status) && backoff.wait().await => {
                    tracing::debug!(%status, "pageserver get failed, retrying");
                }
                Err(status) => return Err(status_error(status)),
            }
        }
    }

    /// Live entries with `start <= key < end` (no end: to the end of the key space) at `lsn`,
    /// none of which changed after `not_modified_since`. A stream broken mid-way is resumed after
    /// the last key received.
    pub async fn scan(
        &self,
        start: Bytes,
        end: Option<Bytes>,
        lsn: Lsn,
        not_modified_since: Lsn,
        limit: Option<usize>,
    ) -> Result<ScanStream, StorageError> {
        let mut stream = ScanStream {
            client: self.clone(),
            end: end.unwrap_or_default(),
            lsn,
            not_modified_since: not_modified_since.min(lsn),
            remaining: limit.map(|l| l as u64),
            next_start: start,
            inner: None,
            done: false,
            opening: None,
        };
        if limit == Some(0) {
            stream.done = true;
            return Ok(stream);
        }
        stream.inner = Some(stream.open(stream.next_start.clone()).await?);
        Ok(stream)
    }

    /// The LSN of the last commit at or before `micros` (microseconds since the Unix epoch),
    /// counting every commit up to `not_modified_since`; and when that commit happened.
    pub async fn lsn_at(
        &self,
        micros: i64,
        not_modified_since: Lsn,
    ) -> Result<(Lsn, i64), StorageError> {
        let request = LsnAtRequest {
            timeline_id: self.timeline.to_string(),
            timestamp_micros: micros,
            not_modified_since: not_modified_since.0,
        };
        let mut backoff = Backoff::new(RETRY_DEADLINE);
        loop {
            match self.client.clone().lsn_at(request.clone()).await {
                Ok(resp) => {
                    let resp = resp.into_inner();
                    return Ok((Lsn(resp.lsn), resp.commit_time_micros));
                }
                Err(status) if is_transient(&status) && backoff.wait().await => {}
                Err(status) => return Err(status_error(status)),
            }
        }
    }

    /// Holds the pageserver's garbage collection back from `lsn` for `seconds`.
    pub async fn lease(&self, lsn: Lsn, seconds: u64) -> Result<(), StorageError> {
        let request = LeaseLsnRequest {
            timeline_id: self.timeline.to_string(),
            lsn: lsn.0,
            seconds,
        };
        let mut backoff = Backoff::new(RETRY_DEADLINE);
        loop {
            match self.client.clone().lease_lsn(request.clone()).await {
                Ok(_) => return Ok(()),
                Err(status) if is_transient(&status) && backoff.wait().await => {}
                Err(status) => return Err(status_error(status)),
            }
        }
    }

    async fn open_scan(
        &self,
        start: Bytes,
        end: Bytes,
        lsn: Lsn,
        not_modified_since: Lsn,
        limit: u64,
    ) -> Result<tonic::Streaming<ScanChunk>, StorageError> {
        let request = ScanRequest {
            timeline_id: self.timeline.to_string(),
            lsn: lsn.0,
            not_modified_since: not_modified_since.0,
            start,
            end,
            limit,
        };
        let mut backoff = Backoff::new(RETRY_DEADLINE);
        loop {
            match self.client.clone().scan(request.clone()).await {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(status) if is_transient(&status) && backoff.wait().await => {
                    tracing::debug!(%status, "pageserver scan failed, retrying");
                }
                Err(status) => return Err(status_error(status)),
            }
        }
    }
}

fn status_error(status: tonic::Status) -> StorageError {
    match status.code() {
        Code::OutOfRange => {
            let reason = status
                .metadata()
                .get(strata_proto::OUT_OF_RANGE_REASON)
                .and_then(|v| v.to_str().ok());
            let message = status.message().to_string();
            if reason == Some(strata_proto::OUT_OF_RANGE_BEFORE_START) {
                StorageError::BeforeStart(message)
            } else {
                StorageError::SnapshotTooOld(message)
            }
        }
        Code::DataLoss => StorageError::Corrupt(status.message().to_string()),
        Code::Unavailable | Code::DeadlineExceeded => {
            StorageError::Unavailable(status.message().to_string())
        }
        _ => StorageError::Rpc(format!("{}: {}", status.code(), status.message())),
    }
}

type OpenFuture = Pin<
    Box<dyn std::future::Future<Output = Result<tonic::Streaming<ScanChunk>, StorageError>> + Send>,
>;

/// Chunks of `(keys, values)` of a range scan, in key order.
pub struct ScanStream {
    client: PageserverClient,
    end: Bytes,
    lsn: Lsn,
    not_modified_since: Lsn,
    remaining: Option<u64>,
    next_start: Bytes,
    inner: Option<tonic::Streaming<ScanChunk>>,
    opening: Option<OpenFuture>,
    done: bool,
}

impl ScanStream {
    fn open(&self, start: Bytes) -> OpenFuture {
        let client = self.client.clone();
        let (end, lsn, nms, limit) = (
            self.end.clone(),
            self.lsn,
            self.not_modified_since,
            self.remaining.unwrap_or(0),
        );
        Box::pin(async move { client.open_scan(start, end, lsn, nms, limit).await })
    }
}

impl Stream for ScanStream {
    type Item = Result<ScanChunk, StorageError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(opening) = this.opening.as_mut() {
                match opening.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(s)) => {
                        this.opening = None;
                        this.inner = Some(s);
                    }
                    Poll::Ready(Err(e)) => {
                        this.done = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
            let Some(inner) = this.inner.as_mut() else {
                this.done = true;
                return Poll::Ready(None);
            };
            match inner.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    if chunk.keys.len() != chunk.values.len() {
                        this.done = true;
                        return Poll::Ready(Some(Err(StorageError::Corrupt(
                            "scan chunk has unequal keys and values".into(),
                        ))));
                    }
                    if let Some(last) = chunk.keys.last() {
                        // The smallest key after `last`: resume point if the stream breaks.
                        let mut next = last.to_vec();
                        next.push(0);
                        this.next_start = Bytes::from(next);
                    }
                    if let Some(rem) = this.remaining.as_mut() {
                        *rem = rem.saturating_sub(chunk.keys.len() as u64);
                        if *rem == 0 {
                            this.done = true;
                        }
                    }
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Poll::Ready(Some(Err(status))) if is_transient(&status) => {
                    tracing::debug!(%status, "scan stream broke, resuming");
                    this.inner = None;
                    this.opening = Some(this.open(this.next_start.clone()));
                }
                Poll::Ready(Some(Err(status))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(status_error(status))));
                }
            }
        }
    }
}
