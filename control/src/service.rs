//! The `strata.control.Control` gRPC service: the control plane's operations for the
//! `strata branch` and `strata endpoint` commands, errors mapped to status codes.

use std::sync::Arc;

use strata_proto::control::control_server::Control;
use strata_proto::control::{
    BranchInfo, CreateBranchRequest, DeleteBranchRequest, DeleteBranchResponse, EndpointInfo,
    ListBranchesRequest, ListBranchesResponse, ListEndpointsRequest, ListEndpointsResponse,
    RestoreBranchRequest, RestoreBranchResponse, StartEndpointRequest, StopEndpointRequest,
    StopEndpointResponse,
};
use tonic::{Request, Response, Status};

use crate::plane::ControlPlane;
use crate::ControlError;

pub struct ControlService {
    plane: Arc<ControlPlane>,
}

impl ControlService {
    pub fn new(plane: Arc<ControlPlane>) -> Self {
        Self { plane }
    }
}

impl From<ControlError> for Status {
    fn from(e: ControlError) -> Self {
        let message = e.to_string();
        match e {
            ControlError::NoSuchBranch(_) | ControlError::NoSuchEndpoint(_) => {
                Status::not_found(message)
            }
            ControlError::Exists(_) => Status::already_exists(message),
            ControlError::Refused(_) => Status::failed_precondition(message),
            ControlError::InvalidArgument(_) => Status::invalid_argument(message),
            ControlError::OutOfRange(_) => Status::out_of_range(message),
            ControlError::Storage(_) | ControlError::Launch(_) | ControlError::Conflict => {
                Status::unavailable(message)
            }
            _ => Status::internal(message),
        }
    }
}

/// Empty strings are how proto3 says "not given".
fn given(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

#[tonic::async_trait]
impl Control for ControlService {
    async fn create_branch(
        &self,
        request: Request<CreateBranchRequest>,
    ) -> Result<Response<BranchInfo>, Status> {
        let r = request.into_inner();
        let info = self
            .plane
            .create_branch(&r.name, given(&r.parent), &r.at)
            .await?;
        Ok(Response::new(info))
    }

    async fn list_branches(
        &self,
        request: Request<ListBranchesRequest>,
    ) -> Result<Response<ListBranchesResponse>, Status> {
        let branches = self
            .plane
            .list_branches(request.get_ref().with_sizes)
            .await?;
        Ok(Response::new(ListBranchesResponse { branches }))
    }

    async fn delete_branch(
        &self,
        request: Request<DeleteBranchRequest>,
    ) -> Result<Response<DeleteBranchResponse>, Status> {
        self.plane.delete_branch(&request.get_ref().name).await?;
        Ok(Response::new(DeleteBranchResponse {}))
    }

    async fn restore_branch(
        &self,
        request: Request<RestoreBranchRequest>,
    ) -> Result<Response<RestoreBranchResponse>, Status> {
        let r = request.into_inner();
        let (branch, backup) = self.plane.restore_branch(&r.name, &r.at).await?;
        Ok(Response::new(RestoreBranchResponse {
            branch: Some(branch),
            backup: Some(backup),
        }))
    }

    async fn start_endpoint(
        &self,
        request: Request<StartEndpointRequest>,
    ) -> Result<Response<EndpointInfo>, Status> {
        let r = request.into_inner();
        let info = self
            .plane
            .start_endpoint(&r.name, given(&r.branch), &r.at)
            .await?;
        Ok(Response::new(info))
    }

    async fn stop_endpoint(
        &self,
        request: Request<StopEndpointRequest>,
    ) -> Result<Response<StopEndpointResponse>, Status> {
        self.plane.stop_endpoint(&request.get_ref().name).await?;
        Ok(Response::new(StopEndpointResponse {}))
    }

    async fn list_endpoints(
        &self,
        _request: Request<ListEndpointsRequest>,
    ) -> Result<Response<ListEndpointsResponse>, Status> {
        let endpoints = self.plane.list_endpoints().await?;
        Ok(Response::new(ListEndpointsResponse { endpoints }))
    }
}

/// Serves the control plane's gRPC API on `listener` until `shutdown` is cancelled.
pub async fn serve_control(
    plane: Arc<ControlPlane>,
    listener: tokio::net::TcpListener,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(strata_proto::control::control_server::ControlServer::new(
            ControlService::new(plane),
        ))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown.cancelled_owned(),
        )
        .await
}
