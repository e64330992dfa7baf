//! Raft traffic to peers over gRPC (`strata.raft.Raft`), openraft's own messages encoded with
//! postcard.
//!
//! One lazily connected channel per peer, shared by every openraft client of that peer. A peer
//! that cannot be reached is reported as `Unreachable`, so openraft backs off from it instead of
//! stalling the leader.
//!
//! A peer running in this process (`strata up` runs all three) is called directly, through the
//! Raft handle it registered in `strata_proto::local`: the same messages and answers, without
//! encoding them or passing them through sockets.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use strata_proto::local;
use strata_proto::raft::raft_client::RaftClient;
use strata_proto::raft::RaftMessage;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use crate::config::MAX_MESSAGE_BYTES;
use crate::types::{Raft, TypeConfig};

/// HTTP/2 flow-control windows large enough that a multi-MiB entry is not throttled.
pub(crate) const HTTP2_WINDOW_BYTES: u32 = 16 << 20;

/// Encodes an openraft message for `RaftMessage.payload`.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Bytes, postcard::Error> {
    postcard::to_allocvec(value).map(Bytes::from)
}

pub(crate) fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(payload)
}

/// A lazily connecting channel to `addr` ("host:port").
pub(crate) fn channel(addr: &str, connect_timeout: Duration) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad peer address {addr:?}: {e}"))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .initial_stream_window_size(HTTP2_WINDOW_BYTES)
        .initial_connection_window_size(HTTP2_WINDOW_BYTES);
    Ok(endpoint.connect_lazy())
}

/// Creates openraft's per-peer clients.
pub(crate) struct NetworkFactory {
    /// Addresses from the configuration; they win over those recorded in the membership, so
    /// that a restart with corrected addresses works.
    peers: Arc<BTreeMap<u64, String>>,
    connect_timeout: Duration,
    channels: HashMap<u64, (String, Channel)>,
}

impl NetworkFactory {
    pub(crate) fn new(peers: Arc<BTreeMap<u64, String>>, connect_timeout: Duration) -> Self {
        NetworkFactory {
            peers,
            connect_timeout,
            channels: HashMap::new(),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        let addr = self.peers.get(&target).unwrap_or(&node.addr).clone();
        let client = match self.channels.get(&target) {
            Some((known, channel)) if *known == addr => Ok(channel.clone()),
            _ => channel(&addr, self.connect_timeout).inspect(|channel| {
                self.channels
                    .insert(target, (addr.clone(), channel.clone()));
            }),
        }
        .map(|channel| {
            RaftClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES)
        });
        PeerClient {
            target,
            addr,
            client,
        }
    }
}

/// openraft's client of one peer.
pub(crate) struct PeerClient {
    target: u64,
    addr: String,
    client: Result<RaftClient<Channel>, String>,
}

#[derive(Debug, Clone, Copy)]
enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

type RpcError<E = openraft::error::Infallible> = RPCError<u64, BasicNode, RaftError<u64, E>>;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

// openraft's error type is large; it is what its trait returns, so boxing would not help.
#[allow(clippy::result_large_err)]
impl PeerClient {
    fn client<E: std::error::Error>(&self) -> Result<RaftClient<Channel>, RpcError<E>> {
        self.client
            .clone()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&TransportError(e))))
    }

    fn status_error<E: std::error::Error>(&self, status: tonic::Status) -> RpcError<E> {
        let err = TransportError(format!("peer {}: {status}", self.target));
        match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                RPCError::Unreachable(Unreachable::new(&err))
            }
            _ => RPCError::Network(NetworkError::new(&err)),
        }
    }

    fn codec_error<E: std::error::Error>(&self, e: postcard::Error) -> RpcError<E> {
        RPCError::Network(NetworkError::new(&e))
    }

    /// The peer's Raft handle, when it serves in this process.
    fn local_peer(&self) -> Option<Arc<Raft>> {
        local::find::<Raft>(&self.addr)
    }

    /// A local peer's answer, as `call` reports the same answer received over gRPC.
    fn local_result<T, E>(&self, result: Result<T, RaftError<u64, E>>) -> Result<T, RpcError<E>>
    where
        E: std::error::Error,
    {
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    /// Sends one message and decodes the peer's `Result`.
    async fn call<Req, Resp, E>(&mut self, rpc: Rpc, request: &Req) -> Result<Resp, RpcError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let payload = encode(request).map_err(|e| self.codec_error(e))?;
        let mut client = self.client()?;
        let message = RaftMessage { payload };
        let response = match rpc {
            Rpc::AppendEntries => client.append_entries(message).await,
            Rpc::Vote => client.vote(message).await,
            Rpc::InstallSnapshot => client.install_snapshot(message).await,
        }
        .map_err(|s| self.status_error(s))?;
        let result: Result<Resp, RaftError<u64, E>> =
            decode(&response.into_inner().payload).map_err(|e| self.codec_error(e))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcError> {
        match self.local_peer() {
            Some(peer) => self.local_result(peer.append_entries(rpc).await),
            None => self.call(Rpc::AppendEntries, &rpc).await,
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcError<InstallSnapshotError>> {
        match self.local_peer() {
            Some(peer) => self.local_result(peer.install_snapshot(rpc).await),
            None => self.call(Rpc::InstallSnapshot, &rpc).await,
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RpcError> {
        match self.local_peer() {
            Some(peer) => self.local_result(peer.vote(rpc).await),
            None => self.call(Rpc::Vote, &rpc).await,
        }
    }

    /// Retry an unreachable peer a few times a second: it may be restarting.
    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(Duration::from_millis(250)))
    }
}
