//! Running one component per process, so a deployment can place them anywhere.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use strata_compute::ComputeConfig;
use strata_control::{open_object_store, ControlManifest};
use strata_core::TimelineId;
use strata_pageserver::PageserverConfig;
use strata_safekeeper::SafekeeperConfig;
use tokio::net::TcpListener;

use crate::shutdown;

#[derive(Args)]
pub struct SafekeeperArgs {
    /// This node's id in the group (1-based).
    #[arg(long, env = "STRATA_SAFEKEEPER_ID")]
    id: u64,
    /// Durable directory for this node's WAL.
    #[arg(long, env = "STRATA_DATA_DIR")]
    data_dir: PathBuf,
    /// Address to serve gRPC on.
    #[arg(long, env = "STRATA_LISTEN")]
    listen: SocketAddr,
    /// Every node of the group, this one included: `1=host:port,2=host:port,3=host:port`.
    #[arg(long, env = "STRATA_PEERS", value_delimiter = ',')]
    peers: Vec<String>,
    /// Where the committed WAL is offloaded (`s3://bucket/prefix` or a local directory), and
    /// where a node with empty storage recovers from. Without it the WAL stays local only.
    #[arg(long, env = "STRATA_OBJECT_STORE")]
    object_store: Option<String>,
}

pub async fn safekeeper(args: SafekeeperArgs) -> anyhow::Result<()> {
    let mut peers = BTreeMap::new();
    for peer in &args.peers {
        let (id, addr) = peer
            .split_once('=')
            .with_context(|| format!("peer {peer:?} is not ID=HOST:PORT"))?;
        peers.insert(
            id.parse::<u64>()
                .with_context(|| format!("bad peer id in {peer:?}"))?,
            addr.to_string(),
        );
    }
    if !peers.contains_key(&args.id) {
        bail!("--peers must include this node (id {})", args.id);
    }
    let config = SafekeeperConfig {
        node_id: args.id,
        data_dir: args.data_dir,
        peers,
        ..Default::default()
    };
    let remote = args
        .object_store
        .as_deref()
        .map(open_object_store)
        .transpose()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    strata_safekeeper::run(config, listener, remote, shutdown::on_signal()?).await?;
    Ok(())
}

#[derive(Args)]
pub struct PageserverArgs {
    /// Local cache directory (disposable).
    #[arg(long, env = "STRATA_DATA_DIR")]
    data_dir: PathBuf,
    /// Address to serve gRPC on.
    #[arg(long, env = "STRATA_LISTEN")]
    listen: SocketAddr,
    /// Safekeeper addresses: `host:port,host:port,…`.
    #[arg(long, env = "STRATA_SAFEKEEPERS", value_delimiter = ',')]
    safekeepers: Vec<String>,
    /// Where data lives durably: `s3://bucket/prefix` or a local directory.
    #[arg(long, env = "STRATA_OBJECT_STORE")]
    object_store: String,
}

pub async fn pageserver(args: PageserverArgs) -> anyhow::Result<()> {
    let remote = open_object_store(&args.object_store)?;
    let config = PageserverConfig {
        data_dir: args.data_dir,
        safekeepers: args.safekeepers,
        ..Default::default()
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    strata_pageserver::run(config, listener, remote, shutdown::on_signal()?).await?;
    Ok(())
}

#[derive(Args)]
pub struct ComputeArgs {
    /// Address to accept PostgreSQL connections on.
    #[arg(long, env = "STRATA_LISTEN")]
    listen: SocketAddr,
    /// Safekeeper addresses: `host:port,host:port,…`.
    #[arg(long, env = "STRATA_SAFEKEEPERS", value_delimiter = ',')]
    safekeepers: Vec<String>,
    /// Pageserver address: `host:port`.
    #[arg(long, env = "STRATA_PAGESERVER")]
    pageserver: String,
    /// The timeline to serve. Without it, the branch is looked up in the object store.
    #[arg(long, env = "STRATA_TIMELINE")]
    timeline: Option<TimelineId>,
    /// Where the control manifest lives, to look up --branch.
    #[arg(long, env = "STRATA_OBJECT_STORE")]
    object_store: Option<String>,
    /// The branch to serve.
    #[arg(long, env = "STRATA_BRANCH", default_value = strata_control::MAIN_BRANCH)]
    branch: String,
    /// MiB of committed rows kept in memory for point reads; 0 turns the cache off.
    #[arg(long, env = "STRATA_ROW_CACHE_MB", default_value_t = crate::up::DEFAULT_ROW_CACHE_MB)]
    row_cache_mb: usize,
}

pub async fn compute(args: ComputeArgs) -> anyhow::Result<()> {
    let timeline = match (args.timeline, &args.object_store) {
        (Some(t), _) => t,
        (None, Some(url)) => {
            let store = open_object_store(url)?;
            ControlManifest::load_or_init(store.as_ref())
                .await?
                .branch(&args.branch)?
                .timeline_id
        }
        (None, None) => bail!("give --timeline, or --object-store to look up --branch"),
    };
    let mut config = ComputeConfig::new(timeline, args.safekeepers, args.pageserver);
    config.row_cache_bytes = args.row_cache_mb << 20;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    strata_compute::run(config, listener, shutdown::on_signal()?).await?;
    Ok(())
}
