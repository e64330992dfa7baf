use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_core::{Lsn, TimelineId};
use strata_proto::local::{self, LocalSafekeeper};
use strata_proto::safekeeper::safekeeper_client::SafekeeperClient as GrpcClient;
use strata_proto::safekeeper::{AppendWalRequest, RegisterPrimaryRequest};
use strata_proto::LEADER_METADATA_KEY;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use super::retry::{Backoff, RETRY_DEADLINE};
use super::{StorageError, MAX_MESSAGE_BYTES};

/// A transaction the safekeepers committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its commit LSN.
    pub lsn: Lsn,
    /// The branch's commit before it: appends running at once can return in any order, and
    /// this chain is the order in which they become visible.
    pub previous_lsn: Lsn,
}

/// Commits WAL through the safekeeper quorum.
///
/// Only the Raft leader accepts writes. The client remembers which node led last time, follows
/// the leader hint a follower answers with, and otherwise tries the nodes in turn until one
/// accepts or [`RETRY_DEADLINE`] passes. A node serving in this process (`strata up`) is
/// called directly rather than through its socket (see `strata_proto::local`).
///
/// Retrying an append whose first attempt may already have committed writes the same mutations
/// twice. That is harmless: the transaction's keys stay locked in the primary until the retry
/// returns, so nothing else can have written them in between, and a second `Put` of the same
/// value at a later LSN changes nothing a reader can see.
#[derive(Clone)]
pub struct SafekeeperClient {
    nodes: Arc<Vec<(String, GrpcClient<Channel>)>>,
    leader: Arc<AtomicUsize>,
    timeline: TimelineId,
}

/// The safekeeper a call goes to: in this process (`strata up`), called directly, or reached
/// through gRPC. Both give the same answers.
enum Node {
    Local(Arc<dyn LocalSafekeeper>),
    Remote(GrpcClient<Channel>),
}

impl SafekeeperClient {
    pub fn connect_lazy(addrs: &[String], timeline: TimelineId) -> Result<Self, StorageError> {
        if addrs.is_empty() {
            return Err(StorageError::Rpc("no safekeeper addresses given".into()));
        }
        let nodes = addrs
            .iter()
            .map(|addr| {
                let endpoint = Endpoint::from_shared(format!("http://{addr}"))
                    .map_err(|e| StorageError::Rpc(format!("bad safekeeper address {addr}: {e}")))?
                    .connect_timeout(Duration::from_secs(1))
                    .tcp_nodelay(true);
                let client = GrpcClient::new(endpoint.connect_lazy())
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES);
                Ok((addr.clone(), client))
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        Ok(Self {
            nodes: Arc::new(nodes),
            leader: Arc::new(AtomicUsize::new(0)),
            timeline,
        })
    }

    /// Registers this compute as the branch's primary; returns its generation and the LSN up to
    /// which the branch has committed WAL.
    pub async fn register_primary(&self, deadline: Duration) -> Result<(u32, Lsn), StorageError> {
        let request = RegisterPrimaryRequest {
            timeline_id: self.timeline.to_string(),
        };
        let resp = self
            .call_leader(deadline, |node| {
                let request = request.clone();
                async move {
                    match node {
                        Node::Local(service) => service.register_primary(request).await,
                        Node::Remote(mut client) => client
                            .register_primary(request)
                            .await
                            .map(tonic::Response::into_inner),
                    }
                }
            })
            .await?;
        Ok((resp.generation, Lsn(resp.commit_lsn)))
    }

    /// Appends one transaction's encoded mutations and waits until a majority has it.
    pub async fn append(
        &self,
        generation: u32,
        mutations: Bytes,
    ) -> Result<Appended, StorageError> {
        if mutations.len() > MAX_MESSAGE_BYTES - 1024 {
            return Err(StorageError::TooLarge(format!(
                "{} bytes of WAL in one transaction (the limit is {} MiB)",
                mutations.len(),
                MAX_MESSAGE_BYTES >> 20
            )));
        }
        let request = AppendWalRequest {
            timeline_id: self.timeline.to_string(),
            generation,
            mutations,
        };
        let resp = self
            .call_leader(RETRY_DEADLINE, |node| {
                let request = request.clone();
                async move {
                    match node {
                        Node::Local(service) => service.append_wal(request).await,
                        Node::Remote(mut client) => client
                            .append_wal(request)
                            .await
                            .map(tonic::Response::into_inner),
                    }
                }
            })
            .await
            .map_err(|e| match e {
                StorageError::Unavailable(msg) => StorageError::CommitUnknown(msg),
                other => other,
            })?;
        Ok(Appended {
            lsn: Lsn(resp.lsn),
            previous_lsn: Lsn(resp.previous_commit_lsn),
        })
    }

    async fn call_leader<T, F, Fut>(&self, deadline: Duration, call: F) -> Result<T, StorageError>
    where
        F: Fn(Node) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let mut backoff = Backoff::new(deadline);
        let mut last_error;
        // Hops made by following leader hints since the last backoff: stale hints could
        // otherwise send the client around in circles without ever waiting.
        let mut hops = 0;
        loop {
            let idx = self.leader.load(Ordering::Relaxed) % self.nodes.len();
            let (addr, client) = &self.nodes[idx];
            let node = match local::find::<dyn LocalSafekeeper>(addr) {
                Some(service) => Node::Local(service),
                None => Node::Remote(client.clone()),
            };
            match call(node).await {
                Ok(resp) => return Ok(resp),
                Err(status) => match status.code() {
                    Code::FailedPrecondition => {
                        return Err(StorageError::Fenced(status.message().to_string()))
                    }
                    Code::InvalidArgument | Code::OutOfRange => {
                        return Err(StorageError::Rpc(status.message().to_string()))
                    }
                    Code::ResourceExhausted if status.message().contains("message length") => {
                        return Err(StorageError::TooLarge(status.message().to_string()))
                    }
                    _ => {
                        last_error = format!("{addr}: {}", status.message());
                        let hinted = status
                            .metadata()
                            .get(LEADER_METADATA_KEY)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|hint| self.nodes.iter().position(|(a, _)| a == hint));
                        let next = hinted.unwrap_or((idx + 1) % self.nodes.len());
                        // Another caller may have moved on already; only move from where we were.
                        let _ = self.leader.compare_exchange(
                            idx,
                            next,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                        if hinted.is_some() && hinted != Some(idx) && hops < self.nodes.len() {
                            hops += 1;
                            continue;
                        }
                        hops = 0;
                        if !backoff.wait().await {
                            return Err(StorageError::Unavailable(format!(
                                "no safekeeper leader answered: {last_error}"
                            )));
                        }
                    }
                },
            }
        }
    }
}
