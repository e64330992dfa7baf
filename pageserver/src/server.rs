//! `run`: serve the gRPC API until shutdown, then flush everything to object storage.

use std::sync::Arc;

use strata_proto::local::{self, LocalPageserver};
use strata_proto::pageserver::pageserver_server::PageserverServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::PageserverConfig;
use crate::error::PageserverError;
use crate::remote::RemoteStorage;
use crate::service::PageserverService;
use crate::timeline_manager::TimelineManager;

/// gRPC messages may carry up to this many bytes (big Get batches, big values).
const MAX_MESSAGE_SIZE: usize = 256 * 1024 * 1024;

/// Serves the `strata.pageserver.Pageserver` gRPC service on `listener` until `shutdown` is
/// cancelled; then stops every timeline's WAL ingest, flushes and uploads what was ingested,
/// publishes the manifests, and returns. `remote` is the durable truth; `config.data_dir` is
/// only a cache.
pub async fn run(
    config: PageserverConfig,
    listener: TcpListener,
    remote: Arc<dyn object_store::ObjectStore>,
    shutdown: CancellationToken,
) -> Result<(), PageserverError> {
    tokio::fs::create_dir_all(&config.data_dir).await?;
    let addr = listener.local_addr()?;
    let remote = RemoteStorage::new(remote, &config);
    let timelines = Arc::new(TimelineManager::open(Arc::new(config), remote).await?);
    let service = Arc::new(PageserverService::new(timelines.clone()));
    // Computes in this process read through it directly (see `strata_proto::local`) until
    // shutdown begins.
    let local_service = local::register(
        [addr.to_string()],
        service.clone() as Arc<dyn LocalPageserver>,
    );
    let service = PageserverServer::from_arc(service)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);
    info!(%addr, "pageserver listening");
    // Stops on the caller's signal, or when the server fails, so that timelines are flushed
    // either way.
    let stop = shutdown.child_token();
    let served = async {
        let result = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                // Small request/response messages must not wait for delayed ACKs (Nagle).
                TcpListenerStream::new(listener).map(|conn| {
                    conn.inspect(|s| {
                        let _ = s.set_nodelay(true);
                    })
                }),
                stop.clone().cancelled_owned(),
            )
            .await;
        stop.cancel();
        result
    };
    // Timelines stop as soon as shutdown begins, so reads still waiting for WAL end at once
    // instead of holding the server's graceful stop for their whole wait timeout.
    let stopped = async {
        stop.cancelled().await;
        drop(local_service);
        info!("shutting down: flushing timelines");
        timelines.shutdown().await;
    };
    let (served, ()) = tokio::join!(served, stopped);
    served?;
    info!("pageserver stopped");
    Ok(())
}
