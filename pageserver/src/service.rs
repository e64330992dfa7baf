//! The `strata.pageserver.Pageserver` gRPC service: validates requests, finds (attaching if
//! needed) the timeline, and maps errors to status codes.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use strata_core::key::META_PREFIX;
use strata_core::{Lsn, TimelineId};
use strata_proto::pageserver::pageserver_server::Pageserver;
use strata_proto::pageserver::{
    CheckpointRequest, CheckpointResponse, CommitAtRequest, CommitAtResponse,
    CreateTimelineRequest, CreateTimelineResponse, DeleteTimelineRequest, DeleteTimelineResponse,
    GetRequest, GetResponse, LeaseLsnRequest, LeaseLsnResponse, LogicalSizeRequest,
    LogicalSizeResponse, LsnAtRequest, LsnAtResponse, OptionalValue, ScanChunk, ScanRequest,
    TimelineStatusRequest, TimelineStatusResponse,
};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};
use tracing::{instrument, warn};

use crate::error::PageserverError;
use crate::timeline::Timeline;
use crate::timeline_manager::TimelineManager;

pub(crate) struct PageserverService {
    timelines: Arc<TimelineManager>,
}

impl PageserverService {
    pub fn new(timelines: Arc<TimelineManager>) -> Self {
        Self { timelines }
    }

    async fn timeline(&self, id: &str) -> Result<Arc<Timeline>, Status> {
        self.timelines.get(parse_id(id)?).await.map_err(log_status)
    }
}

/// Where a scan a client asked for ends: never past the keys the pageserver keeps for itself
/// (an empty `end` means the end of the clients' key space).
fn user_end(end: Bytes) -> Bytes {
    let meta = Bytes::from_static(&[META_PREFIX]);
    if end.is_empty() || end > meta {
        meta
    } else {
        end
    }
}

fn parse_id(id: &str) -> Result<TimelineId, Status> {
    id.parse()
        .map_err(|e: strata_core::ParseTimelineIdError| Status::invalid_argument(e.to_string()))
}

/// Logs server-side failures where they are handled (here, at the edge) and converts them.
fn log_status(e: PageserverError) -> Status {
    match &e {
        PageserverError::InvalidArgument(_)
        | PageserverError::WaitLsnTimeout { .. }
        | PageserverError::BelowGcCutoff { .. }
        | PageserverError::BeforeBranch { .. }
        | PageserverError::TimeBeforeRetention(_)
        | PageserverError::TimeBeforeStart(_)
        | PageserverError::NoSuchTimeline(_)
        | PageserverError::TimelineExists(_)
        | PageserverError::HasBranches(_) => {}
        _ => warn!(error = %e, "request failed"),
    }
    e.into()
}

type ScanStream = Pin<Box<dyn Stream<Item = Result<ScanChunk, Status>> + Send>>;

#[tonic::async_trait]
impl Pageserver for PageserverService {
    #[instrument(skip_all, fields(timeline_id = %request.get_ref().timeline_id, lsn = request.get_ref().lsn))]
    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let req = request.into_inner();
        let timeline = self.timeline(&req.timeline_id).await?;
        let values = timeline
            .get(&req.keys, Lsn(req.lsn), Lsn(req.not_modified_since))
            .await
            .map_err(log_status)?;
        Ok(Response::new(GetResponse {
            values: values
                .into_iter()
                .map(|value| OptionalValue { value })
                .collect(),
        }))
    }

    type ScanStream = ScanStream;

    #[instrument(skip_all, fields(timeline_id = %request.get_ref().timeline_id, lsn = request.get_ref().lsn))]
    async fn scan(&self, request: Request<ScanRequest>) -> Result<Response<ScanStream>, Status> {
        let req = request.into_inner();
        let timeline = self.timeline(&req.timeline_id).await?;
        let end = Some(user_end(req.end));
        let limit = (req.limit != 0).then_some(req.limit);
        let rx = timeline
            .scan(
                req.start,
                end,
                Lsn(req.lsn),
                Lsn(req.not_modified_since),
                limit,
            )
            .await
            .map_err(log_status)?;
        let stream = ReceiverStream::new(rx).map(|batch| {
            let batch = batch.map_err(log_status)?;
            let (keys, values): (Vec<Bytes>, Vec<Bytes>) = batch.into_iter().unzip();
            Ok(ScanChunk { keys, values })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn timeline_status(
        &self,
        request: Request<TimelineStatusRequest>,
    ) -> Result<Response<TimelineStatusResponse>, Status> {
        let timeline = self.timeline(&request.get_ref().timeline_id).await?;
        let s = timeline.status();
        Ok(Response::new(TimelineStatusResponse {
            last_record_lsn: s.last_record_lsn.0,
            disk_consistent_lsn: s.disk_consistent_lsn.0,
            remote_consistent_lsn: s.remote_consistent_lsn.0,
            layer_count: s.layer_count,
        }))
    }

    #[instrument(skip_all, fields(timeline_id = %request.get_ref().timeline_id))]
    async fn checkpoint(
        &self,
        request: Request<CheckpointRequest>,
    ) -> Result<Response<CheckpointResponse>, Status> {
        let timeline = self.timeline(&request.get_ref().timeline_id).await?;
        let lsn = timeline.checkpoint().await.map_err(log_status)?;
        Ok(Response::new(CheckpointResponse {
            remote_consistent_lsn: lsn.0,
        }))
    }

    #[instrument(skip_all, fields(timeline_id = %request.get_ref().timeline_id))]
    async fn create_timeline(
        &self,
        request: Request<CreateTimelineRequest>,
    ) -> Result<Response<CreateTimelineResponse>, Status> {
        let req = request.into_inner();
        self.timelines
            .create_branch(
                parse_id(&req.timeline_id)?,
                parse_id(&req.ancestor_timeline_id)?,
                Lsn(req.ancestor_lsn),
            )
            .await
            .map_err(log_status)?;
        Ok(Response::new(CreateTimelineResponse {}))
    }

    #[instrument(skip_all, fields(timeline_id = %request.get_ref().timeline_id))]
    async fn delete_timeline(
        &self,
        request: Request<DeleteTimelineRequest>,
    ) -> Result<Response<DeleteTimelineResponse>, Status> {
        let id = parse_id(&request.get_ref().timeline_id)?;
        self.timelines.delete(id).await.map_err(log_status)?;
        Ok(Response::new(DeleteTimelineResponse {}))
    }

    async fn lsn_at(
        &self,
        request: Request<LsnAtRequest>,
    ) -> Result<Response<LsnAtResponse>, Status> {
        let req = request.into_inner();
        let timeline = self.timeline(&req.timeline_id).await?;
        let commit = timeline
            .lsn_at_time(req.timestamp_micros, Lsn(req.not_modified_since))
            .await
            .map_err(log_status)?;
        Ok(Response::new(LsnAtResponse {
            lsn: commit.lsn.0,
            commit_time_micros: commit.micros,
        }))
    }

    async fn commit_at(
        &self,
        request: Request<CommitAtRequest>,
    ) -> Result<Response<CommitAtResponse>, Status> {
        let req = request.into_inner();
        let timeline = self.timeline(&req.timeline_id).await?;
        let commit = timeline.commit_at(Lsn(req.lsn)).await.map_err(log_status)?;
        Ok(Response::new(CommitAtResponse {
            found: commit.is_some(),
            commit_lsn: commit.map_or(0, |c| c.lsn.0),
            commit_time_micros: commit.map_or(0, |c| c.micros),
        }))
    }

    async fn lease_lsn(
        &self,
        request: Request<LeaseLsnRequest>,
    ) -> Result<Response<LeaseLsnResponse>, Status> {
        let req = request.into_inner();
        let timeline = self.timeline(&req.timeline_id).await?;
        timeline
            .lease_lsn(Lsn(req.lsn), std::time::Duration::from_secs(req.seconds))
            .map_err(log_status)?;
        Ok(Response::new(LeaseLsnResponse {}))
    }

    async fn logical_size(
        &self,
        request: Request<LogicalSizeRequest>,
    ) -> Result<Response<LogicalSizeResponse>, Status> {
        let req = request.into_inner();
        let timeline = self.timeline(&req.timeline_id).await?;
        timeline
            .wait_lsn(Lsn(req.not_modified_since))
            .await
            .map_err(log_status)?;
        let lsn = timeline.last_record_lsn();
        let mut rx = timeline
            .scan(Bytes::new(), Some(user_end(Bytes::new())), lsn, lsn, None)
            .await
            .map_err(log_status)?;
        let mut bytes = 0u64;
        while let Some(batch) = rx.recv().await {
            let batch = batch.map_err(log_status)?;
            bytes += batch
                .iter()
                .map(|(k, v)| (k.len() + v.len()) as u64)
                .sum::<u64>();
        }
        Ok(Response::new(LogicalSizeResponse { lsn: lsn.0, bytes }))
    }
}
