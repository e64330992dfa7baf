//! `strata checkpoint`: makes object storage hold everything a running system has committed,
//! so that the bucket alone can bring it back (every local directory is disposable after it).
//!
//! The safekeepers go first: they upload every committed transaction not offloaded yet and a
//! checkpoint of their replicated state, which is all a recovery needs. Then the pageserver
//! freezes and uploads what it ingested, so a recovery replays less WAL.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use strata_core::TimelineId;
use strata_proto::pageserver::pageserver_client::PageserverClient;
use strata_proto::safekeeper::safekeeper_client::SafekeeperClient;
use tonic::transport::Endpoint;

use crate::up::RuntimeInfo;

/// How long one component may take to upload before the checkpoint gives up on it.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Args, Debug, Clone)]
pub struct CheckpointArgs {
    /// The data directory of the running `strata up`.
    #[arg(long, env = "STRATA_DATA_DIR", default_value = "./.strata")]
    pub data_dir: PathBuf,
}

/// What a checkpoint made durable in object storage.
#[derive(Debug, Clone, Copy)]
pub struct Checkpointed {
    /// Every committed transaction up to this LSN is in the offloaded WAL.
    pub wal_lsn: u64,
    /// The main branch's layers in object storage cover it up to this LSN.
    pub layers_lsn: u64,
}

/// `strata checkpoint`.
pub async fn run(args: CheckpointArgs) -> anyhow::Result<()> {
    let info = RuntimeInfo::read(&args.data_dir)?;
    // Every branch's timeline, from the control manifest.
    let store = strata_control::open_object_store(&info.object_store)?;
    let timelines: Vec<TimelineId> =
        match strata_control::ControlManifest::load(store.as_ref()).await? {
            // `main` first: its LSN is the one reported.
            Some(m) => {
                let mut branches = m.branches.clone();
                branches.sort_by_key(|b| b.name != strata_control::MAIN_BRANCH);
                branches.iter().map(|b| b.timeline_id).collect()
            }
            None => vec![info.main_timeline.parse()?],
        };
    let done = checkpoint(&info.safekeepers, Some(info.pageserver), &timelines).await?;
    println!(
        "Checkpoint done: object storage ({}) holds every commit up to LSN {} (layers up to LSN {}).",
        info.object_store, done.wal_lsn, done.layers_lsn
    );
    Ok(())
}

/// Offloads the safekeepers' WAL (any node can do it; the first that answers does), then,
/// with a pageserver, uploads its layers of each of `timelines`.
pub async fn checkpoint(
    safekeepers: &[SocketAddr],
    pageserver: Option<SocketAddr>,
    timelines: &[TimelineId],
) -> anyhow::Result<Checkpointed> {
    tracing::info!("checkpoint: offloading the safekeepers' WAL");
    let mut wal_lsn = None;
    let mut errors = Vec::new();
    for addr in safekeepers {
        let channel = endpoint(*addr)?.connect_lazy();
        let mut client = SafekeeperClient::new(channel);
        match client
            .checkpoint(strata_proto::safekeeper::CheckpointRequest {})
            .await
        {
            Ok(r) => {
                wal_lsn = Some(r.into_inner().offloaded_lsn);
                break;
            }
            Err(status) => errors.push(format!("{addr}: {}", status.message())),
        }
    }
    let Some(wal_lsn) = wal_lsn else {
        bail!("no safekeeper could offload its WAL: {}", errors.join("; "));
    };
    tracing::info!(lsn = wal_lsn, "checkpoint: WAL offloaded");
    let mut layers_lsn = 0;
    if let Some(addr) = pageserver {
        tracing::info!("checkpoint: uploading the pageserver's layers");
        let mut client = PageserverClient::new(endpoint(addr)?.connect_lazy());
        for timeline in timelines {
            let response = client
                .checkpoint(strata_proto::pageserver::CheckpointRequest {
                    timeline_id: timeline.to_string(),
                })
                .await
                .with_context(|| format!("pageserver {addr} could not checkpoint {timeline}"))?;
            if layers_lsn == 0 {
                layers_lsn = response.into_inner().remote_consistent_lsn;
            }
        }
        tracing::info!(lsn = layers_lsn, "checkpoint: layers uploaded");
    }
    Ok(Checkpointed {
        wal_lsn,
        layers_lsn,
    })
}

fn endpoint(addr: SocketAddr) -> anyhow::Result<Endpoint> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(UPLOAD_TIMEOUT))
}
