//! One safekeeper node: storage, openraft, the batcher and both gRPC services, wired together
//! and torn down in order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use openraft::error::{InitializeError, RaftError};
use openraft::BasicNode;
use strata_proto::local::{self, LocalSafekeeper};
use strata_proto::raft::raft_server::RaftServer;
use strata_proto::safekeeper::safekeeper_server::SafekeeperServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{SafekeeperConfig, MAX_MESSAGE_BYTES};
use crate::error::SafekeeperError;
use crate::group_commit::{GroupCommit, GroupCommitConfig};
use crate::log_store::{LogReader, LogStore};
use crate::network::{NetworkFactory, HTTP2_WINDOW_BYTES};
use crate::offload::Offloader;
use crate::raft_service::RaftService;
use crate::remote_wal::{RemoteWal, RemoteWalError};
use crate::service::SafekeeperService;
use crate::state_machine::{AppliedState, SharedState, StateMachineStore};
use crate::types::{Raft, Vote};
use crate::wal_stream::StreamConfig;

/// Runs a safekeeper on `listener` until `shutdown` fires, then stops cleanly: the gRPC server
/// drains, the batcher stops, openraft shuts down and the last Raft meta write completes.
///
/// Serves `strata.safekeeper.Safekeeper` and `strata.raft.Raft` on the one listener. A node
/// whose storage is pristine initializes the group with every peer as a voter.
///
/// With `remote` (object storage) the committed WAL is offloaded there, WAL this node does not
/// keep is streamed from there, and a node whose storage is pristine while the bucket holds WAL
/// starts from the bucket's state instead of initializing a new group: a group whose every
/// disk was lost comes back with every offloaded transaction, and its LSNs continue.
pub async fn run(
    config: SafekeeperConfig,
    listener: TcpListener,
    remote: Option<Arc<dyn ObjectStore>>,
    shutdown: CancellationToken,
) -> Result<(), SafekeeperError> {
    config.validate()?;
    let span = tracing::info_span!("safekeeper", node_id = config.node_id);
    run_node(config, listener, remote, shutdown)
        .instrument(span)
        .await
}

async fn run_node(
    config: SafekeeperConfig,
    listener: TcpListener,
    remote: Option<Arc<dyn ObjectStore>>,
    shutdown: CancellationToken,
) -> Result<(), SafekeeperError> {
    let node_id = config.node_id;
    let local_addr = listener
        .local_addr()
        .map_err(|source| SafekeeperError::Io {
            path: "listener".into(),
            source,
        })?;
    let peers: Arc<BTreeMap<u64, String>> = Arc::new(if config.peers.is_empty() {
        BTreeMap::from([(node_id, local_addr.to_string())])
    } else {
        config.peers.clone()
    });
    std::fs::create_dir_all(&config.data_dir).map_err(|source| SafekeeperError::Io {
        path: config.data_dir.display().to_string(),
        source,
    })?;

    let remote = remote.map(|store| Arc::new(RemoteWal::new(store)));
    let (mut log_store, meta_flusher) =
        LogStore::open(&config.data_dir.join("wal"), config.log_store())?;
    let mut state_machine = StateMachineStore::open(&config.data_dir)?;
    let mut pristine = log_store.is_pristine();
    if let Some(remote) = remote.as_ref().filter(|_| pristine) {
        let recovered = match recover(remote).await {
            Ok(recovered) => recovered,
            Err(e) => {
                meta_flusher.finish().await;
                return Err(e);
            }
        };
        if let Some(state) = recovered {
            if let Some(last) = state.last_applied {
                state_machine.seed(&state).await?;
                let vote = Vote::new(last.leader_id.term, last.leader_id.node_id);
                log_store.seed(vote, last).await?;
                pristine = false;
                tracing::info!(
                    last_lsn = last.index,
                    timelines = state.wal.timelines.len(),
                    "recovered from object storage: the log continues after the offloaded WAL"
                );
            }
        }
    }
    let log_reader = log_store.reader();
    let state = state_machine.shared();
    let network = NetworkFactory::new(peers.clone(), config.connect_timeout);
    let raft = match Raft::new(
        node_id,
        Arc::new(config.raft()?),
        network,
        log_store,
        state_machine,
    )
    .await
    {
        Ok(raft) => raft,
        Err(e) => {
            meta_flusher.finish().await;
            return Err(SafekeeperError::Raft(e.to_string()));
        }
    };

    let offloader = remote.as_ref().map(|remote| {
        Arc::new(Offloader::new(
            node_id,
            remote.clone(),
            log_reader.clone(),
            state.clone(),
            config.offload(),
        ))
    });
    let result = serve(
        &config,
        &peers,
        pristine,
        raft.clone(),
        Storage {
            state,
            log: log_reader,
            remote,
            offloader,
        },
        listener,
        shutdown,
    )
    .await;

    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "openraft did not shut down cleanly");
    }
    drop(raft);
    meta_flusher.finish().await;
    tracing::info!(%local_addr, "safekeeper stopped");
    result
}

/// What the services read besides Raft.
struct Storage {
    state: SharedState,
    log: LogReader,
    remote: Option<Arc<RemoteWal>>,
    offloader: Option<Arc<Offloader>>,
}

/// The state after the bucket's offloaded WAL; a few attempts, since a node must not guess
/// whether it is new or recovering.
async fn recover(remote: &RemoteWal) -> Result<Option<AppliedState>, SafekeeperError> {
    let mut attempt = 1;
    loop {
        match remote.recover().await {
            Ok(state) => return Ok(state),
            Err(e @ RemoteWalError::Store(_)) if attempt < RECOVER_ATTEMPTS => {
                tracing::warn!(attempt, error = %e, "reading the offloaded WAL failed, retrying");
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                attempt += 1;
            }
            Err(e) => {
                return Err(SafekeeperError::Storage(format!(
                    "cannot read the offloaded WAL from object storage: {e}"
                )))
            }
        }
    }
}

const RECOVER_ATTEMPTS: u32 = 5;

async fn serve(
    config: &SafekeeperConfig,
    peers: &Arc<BTreeMap<u64, String>>,
    pristine: bool,
    raft: Raft,
    storage: Storage,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), SafekeeperError> {
    let Storage {
        state,
        log,
        remote,
        offloader,
    } = storage;
    let node_id = config.node_id;
    if pristine {
        let members: BTreeMap<u64, BasicNode> = peers
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect();
        match raft.initialize(members).await {
            Ok(()) => tracing::info!(voters = peers.len(), "initialized the safekeeper group"),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                tracing::info!("the group is already initialized");
            }
            Err(e) => return Err(SafekeeperError::Raft(format!("initialize: {e}"))),
        }
    }

    // Cancelled with `shutdown`, and also when the server stops for any other reason.
    let internal = shutdown.child_token();
    let (group_commit, batcher) = GroupCommit::start(
        raft.clone(),
        state.clone(),
        GroupCommitConfig {
            max_batch_bytes: config.max_batch_bytes,
            max_entry_bytes: config.max_entry_bytes,
            max_pending_bytes: config.max_pending_bytes,
            max_batches_in_flight: config.max_batches_in_flight,
        },
        internal.clone(),
    );
    let offload_task = offloader
        .clone()
        .map(|o| tokio::spawn(o.run(raft.clone(), internal.clone())));
    let service = SafekeeperService {
        node_id,
        raft: raft.clone(),
        state,
        log,
        remote,
        offloader,
        group_commit: group_commit.clone(),
        peers: peers.clone(),
        stream: StreamConfig {
            chunk_bytes: config.stream_chunk_bytes,
            keepalive: config.stream_keepalive,
        },
        shutdown: internal.clone(),
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(%addr, pristine, "safekeeper serving");
    let service = Arc::new(service);
    // Computes and peers in this process call these directly (see `strata_proto::local`);
    // they are withdrawn as soon as the server stops.
    let served_at = || {
        [addr.clone()]
            .into_iter()
            .chain(peers.get(&node_id).cloned())
    };
    let local_service = local::register(served_at(), service.clone() as Arc<dyn LocalSafekeeper>);
    let local_raft = local::register(served_at(), Arc::new(raft.clone()));
    let span = tracing::Span::current();
    let served = tonic::transport::Server::builder()
        .initial_stream_window_size(HTTP2_WINDOW_BYTES)
        .initial_connection_window_size(HTTP2_WINDOW_BYTES)
        .trace_fn(
            move |request| tracing::info_span!(parent: &span, "rpc", path = %request.uri().path()),
        )
        .add_service(
            SafekeeperServer::from_arc(service)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            RaftServer::new(RaftService::new(raft))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(
            // Small request/response messages must not wait for delayed ACKs (Nagle).
            TcpListenerStream::new(listener).map(|conn| {
                conn.inspect(|s| {
                    let _ = s.set_nodelay(true);
                })
            }),
            async move {
                shutdown.cancelled().await;
                drop((local_service, local_raft));
            },
        )
        .await;
    internal.cancel();
    if let Some(task) = offload_task {
        let _ = task.await;
    }
    if let Err(e) = batcher.await {
        tracing::warn!(error = %e, "group commit task failed");
    }
    tracing::info!(stalls = group_commit.stalls(), "group commit stopped");
    served.map_err(SafekeeperError::from)
}
