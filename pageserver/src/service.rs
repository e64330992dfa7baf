//! The `strata.pageserver.Pageserver` gRPC service: validates requests, finds (attaching if
//! needed) the timeline, and maps errors to status codes.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use strata_core::{Lsn, TimelineId};
use strata_proto::pageserver::pageserver_server::Pageserver;
use strata_proto::pageserver::{
    CheckpointRequest, CheckpointResponse, GetRequest, GetResponse, OptionalValue, ScanChunk,
    ScanRequest, TimelineStatusRequest, TimelineStatusResponse,
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
        let id: TimelineId = id.parse().map_err(|e: strata_core::ParseTimelineIdError| {
            Status::invalid_argument(e.to_string())
        })?;
        self.timelines.get(id).await.map_err(log_status)
    }
}

/// Logs server-side failures where they are handled (here, at the edge) and converts them.
fn log_status(e: PageserverError) -> Status {
    match &e {
        PageserverError::InvalidArgument(_)
        | PageserverError::WaitLsnTimeout { .. }
        | PageserverError::BelowGcCutoff { .. } => {}
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
        let end = (!req.end.is_empty()).then_some(req.end);
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
}
