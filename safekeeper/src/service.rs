//! `strata.safekeeper.Safekeeper`: what computes and pageservers call.
//!
//! Error codes are the contract with clients:
//! - `UNAVAILABLE`: this node is not the leader (the leader's address is in the
//!   `x-strata-leader` metadata entry when known), the leader changed under the write, or the
//!   node is shutting down. Retry against the hinted leader.
//! - `FAILED_PRECONDITION`: the append's generation is not the timeline's (a newer primary
//!   registered, or the caller never registered). The caller is fenced; it must not retry.
//! - `OUT_OF_RANGE`: `StreamWal` from an LSN this node no longer keeps.
//! - `INVALID_ARGUMENT`: a malformed timeline id.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use openraft::error::{ClientWriteError, RaftError};
use strata_core::{Lsn, TimelineId};
use strata_proto::safekeeper::safekeeper_server::Safekeeper;
use strata_proto::safekeeper::{
    AppendWalRequest, AppendWalResponse, CheckpointRequest, CheckpointResponse,
    RegisterPrimaryRequest, RegisterPrimaryResponse, StatusRequest, StatusResponse,
    StreamWalRequest,
};
use strata_proto::LEADER_METADATA_KEY;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::group_commit::{AppendError, GroupCommit};
use crate::log_store::LogReader;
use crate::offload::Offloader;
use crate::remote_wal::RemoteWal;
use crate::state_machine::SharedState;
use crate::types::{Raft, Request as RaftRequest, Response as RaftResponse, Txn};
use crate::wal_stream::{self, StreamConfig};

pub(crate) struct SafekeeperService {
    pub node_id: u64,
    pub raft: Raft,
    pub state: SharedState,
    pub log: LogReader,
    /// The offloaded WAL, when object storage is configured.
    pub remote: Option<Arc<RemoteWal>>,
    pub offloader: Option<Arc<Offloader>>,
    pub group_commit: Arc<GroupCommit>,
    pub peers: Arc<BTreeMap<u64, String>>,
    pub stream: StreamConfig,
    pub shutdown: CancellationToken,
}

fn parse_timeline(s: &str) -> Result<TimelineId, Status> {
    s.parse()
        .map_err(|e| Status::invalid_argument(format!("{e}")))
}

impl SafekeeperService {
    fn current_leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// `UNAVAILABLE`, naming the leader's address when it is known.
    fn not_leader(&self, leader: Option<u64>) -> Status {
        let addr = leader
            .filter(|l| *l != self.node_id)
            .and_then(|l| self.peers.get(&l));
        let mut status = match (leader, addr) {
            (Some(id), Some(addr)) => {
                Status::unavailable(format!("not the leader; the leader is node {id} at {addr}"))
            }
            _ => Status::unavailable("not the leader; no leader is known yet"),
        };
        if let Some(value) = addr.and_then(|a| MetadataValue::try_from(a.as_str()).ok()) {
            status.metadata_mut().insert(LEADER_METADATA_KEY, value);
        }
        status
    }

    fn ensure_leader(&self) -> Result<(), Status> {
        match self.current_leader() {
            Some(leader) if leader == self.node_id => Ok(()),
            other => Err(self.not_leader(other)),
        }
    }

    fn fenced(timeline: &TimelineId, generation: u32) -> Status {
        Status::failed_precondition(format!(
            "primary fenced: generation {generation} is not the current generation of timeline \
             {timeline} (a newer primary registered, or this one never did)"
        ))
    }

    fn append_error(&self, timeline: &TimelineId, generation: u32, e: AppendError) -> Status {
        match e {
            AppendError::Fenced => Self::fenced(timeline, generation),
            AppendError::NotLeader { leader } => self.not_leader(leader),
            AppendError::Unknown(msg) => Status::unavailable(format!(
                "leadership changed under the write; its outcome is unknown: {msg}"
            )),
            AppendError::ShuttingDown => Status::unavailable("the safekeeper is shutting down"),
        }
    }

    async fn register(
        &self,
        timeline: TimelineId,
    ) -> Result<Response<RegisterPrimaryResponse>, Status> {
        self.ensure_leader()?;
        let write = self.raft.client_write(RaftRequest::Register { timeline });
        let result = tokio::select! {
            result = write => result,
            _ = self.shutdown.cancelled() => {
                return Err(Status::unavailable("the safekeeper is shutting down"));
            }
        };
        match result {
            Ok(response) => match response.data {
                RaftResponse::Registered { generation } => {
                    let commit_lsn = Lsn(response.log_id.index);
                    tracing::info!(%timeline, generation, %commit_lsn, "registered primary");
                    Ok(Response::new(RegisterPrimaryResponse {
                        generation,
                        commit_lsn: commit_lsn.0,
                    }))
                }
                other => Err(Status::internal(format!(
                    "unexpected apply result {other:?}"
                ))),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(self.not_leader(forward.leader_id))
            }
            Err(e) => Err(Status::unavailable(format!("registration failed: {e}"))),
        }
    }

    async fn append(
        &self,
        timeline: TimelineId,
        generation: u32,
        mutations: Bytes,
    ) -> Result<Response<AppendWalResponse>, Status> {
        self.ensure_leader()?;
        // Early refusal of what is certainly stale; the verdict that counts is made when the
        // batch is applied.
        let current = self
            .state
            .with_timeline(&timeline, |t| t.map_or(0, |t| t.current_generation()));
        if generation == 0 || generation < current {
            return Err(Self::fenced(&timeline, generation));
        }
        let txn = Txn {
            timeline,
            generation,
            mutations,
        };
        match self.group_commit.append(txn).await {
            Ok(committed) => Ok(Response::new(AppendWalResponse {
                lsn: committed.lsn.0,
                commit_time_micros: committed.commit_time_micros,
                previous_commit_lsn: committed.previous_lsn.0,
            })),
            Err(e) => Err(self.append_error(&timeline, generation, e)),
        }
    }
}

#[tonic::async_trait]
impl Safekeeper for SafekeeperService {
    async fn register_primary(
        &self,
        request: Request<RegisterPrimaryRequest>,
    ) -> Result<Response<RegisterPrimaryResponse>, Status> {
        let timeline = parse_timeline(&request.get_ref().timeline_id)?;
        self.register(timeline)
            .instrument(tracing::info_span!("register_primary", %timeline))
            .await
    }

    async fn append_wal(
        &self,
        request: Request<AppendWalRequest>,
    ) -> Result<Response<AppendWalResponse>, Status> {
        let request = request.into_inner();
        let timeline = parse_timeline(&request.timeline_id)?;
        let generation = request.generation;
        self.append(timeline, generation, request.mutations)
            .instrument(tracing::debug_span!("append_wal", %timeline, generation))
            .await
    }

    type StreamWalStream = ReceiverStream<Result<strata_proto::safekeeper::WalChunk, Status>>;

    async fn stream_wal(
        &self,
        request: Request<StreamWalRequest>,
    ) -> Result<Response<Self::StreamWalStream>, Status> {
        let request = request.into_inner();
        let timeline = parse_timeline(&request.timeline_id)?;
        let stream = wal_stream::start(
            timeline,
            Lsn(request.start_lsn),
            self.log.clone(),
            self.remote.clone(),
            self.state.clone(),
            self.stream,
            self.shutdown.clone(),
        )?;
        Ok(Response::new(stream))
    }

    async fn checkpoint(
        &self,
        _request: Request<CheckpointRequest>,
    ) -> Result<Response<CheckpointResponse>, Status> {
        let Some(offloader) = &self.offloader else {
            return Err(Status::failed_precondition(
                "this safekeeper has no object store to offload its WAL to",
            ));
        };
        let offloaded = offloader.offload(true).await.map_err(|e| {
            tracing::warn!(error = %e, "checkpoint failed");
            Status::unavailable(format!("checkpoint failed: {e}"))
        })?;
        Ok(Response::new(CheckpointResponse {
            offloaded_lsn: offloaded,
        }))
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let metrics = self.raft.metrics().borrow().clone();
        let applied = metrics.last_applied.map_or(0, |l| l.index);
        let committed = self
            .raft
            .with_raft_state(|st| st.committed.map(|c| c.index))
            .await
            .map_err(|e| Status::unavailable(format!("raft is not running: {e}")))?
            .unwrap_or(applied);
        Ok(Response::new(StatusResponse {
            node_id: self.node_id,
            leader_id: metrics.current_leader.unwrap_or(0),
            term: metrics.current_term,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            committed_index: committed,
            applied_index: applied,
            first_log_index: self.log.first_index(),
        }))
    }
}
