//! `strata up`: the whole system in one process, on loopback ports.
//!
//! Three safekeepers, a pageserver, the control plane, the proxy, and computes run as tasks of
//! this process but talk to each other over real gRPC and PostgreSQL connections on loopback,
//! exactly as separate processes would. Clients connect to the proxy (the front port), which
//! starts the compute of the endpoint a connection names (`options=endpoint=NAME`; `main` by
//! default) on demand. Stopping (SIGINT/SIGTERM) goes in dependency order: the proxy and the
//! computes stop taking queries, the pageserver flushes and uploads what it ingested, then the
//! safekeepers stop.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};
use strata_compute::ComputeConfig;
use strata_control::{
    open_object_store, serve_control, serve_proxy, Compute, ComputeLauncher, ControlManifest,
    ControlPlane, PlaneConfig, Router, MAIN_BRANCH,
};
use strata_core::{Lsn, TimelineId};
use strata_pageserver::PageserverConfig;
use strata_safekeeper::SafekeeperConfig;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{checkpoint, shutdown};

const SAFEKEEPERS: u64 = 3;

#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    /// Where everything lives: objects/ (the object store, unless --object-store is given),
    /// safekeeper-N/ and pageserver/.
    #[arg(long, env = "STRATA_DATA_DIR", default_value = "./.strata")]
    pub data_dir: PathBuf,
    /// Port for PostgreSQL clients (0 picks a free one).
    #[arg(long, env = "STRATA_PORT", default_value_t = 55432)]
    pub port: u16,
    /// Address to accept PostgreSQL clients on. Loopback by default: there is no password.
    #[arg(long, env = "STRATA_LISTEN_ADDR", default_value = "127.0.0.1")]
    pub listen_addr: IpAddr,
    /// Object store for durable data: `s3://bucket/prefix` (configured by the AWS_* environment
    /// variables, AWS_ENDPOINT_URL included) or a local directory. Default: <data-dir>/objects.
    #[arg(long, env = "STRATA_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// Stop an endpoint's compute after this many seconds without connections (scale to
    /// zero); the next connection starts it again. 0 keeps computes running.
    #[arg(long, env = "STRATA_SUSPEND_AFTER", default_value_t = 300)]
    pub suspend_after: u64,
    /// MiB of committed rows each primary compute keeps in memory for point reads; 0 turns
    /// the cache off.
    #[arg(long, env = "STRATA_ROW_CACHE_MB", default_value_t = DEFAULT_ROW_CACHE_MB)]
    pub row_cache_mb: usize,
}

/// The compute's row cache size unless configured.
pub const DEFAULT_ROW_CACHE_MB: usize = strata_compute::DEFAULT_ROW_CACHE_BYTES >> 20;

impl UpArgs {
    /// Defaults for a data directory, on a free port.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            port: 0,
            listen_addr: [127, 0, 0, 1].into(),
            object_store: None,
            suspend_after: 300,
            row_cache_mb: DEFAULT_ROW_CACHE_MB,
        }
    }
}

/// Where the running system can be reached; written to `<data-dir>/up.json` while it runs, for
/// other `strata` commands and for scripts.
#[derive(Serialize, Deserialize)]
pub struct RuntimeInfo {
    pub pid: u32,
    pub postgres: SocketAddr,
    pub pageserver: SocketAddr,
    pub safekeepers: Vec<SocketAddr>,
    pub object_store: String,
    pub main_timeline: String,
    /// The control plane's gRPC API (`strata branch`, `strata endpoint`).
    pub control: SocketAddr,
}

impl RuntimeInfo {
    /// What the `strata up` running on `data_dir` wrote about itself.
    pub fn read(data_dir: &Path) -> anyhow::Result<RuntimeInfo> {
        let path = data_dir.join("up.json");
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "cannot read {} (is `strata up --data-dir {}` running?)",
                path.display(),
                data_dir.display()
            )
        })?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not what `strata up` writes", path.display()))
    }
}

/// A running system (see [`start`]).
pub struct Running {
    /// Where PostgreSQL clients connect.
    pub postgres: SocketAddr,
    info_path: PathBuf,
    failed: CancellationToken,
    /// The proxy and the control plane's API.
    front: (CancellationToken, Vec<JoinHandle<()>>),
    plane: Arc<ControlPlane>,
    pageserver: (CancellationToken, JoinHandle<()>),
    safekeepers: (CancellationToken, Vec<JoinHandle<()>>),
    safekeeper_addrs: Vec<SocketAddr>,
    timeline: TimelineId,
    _lock: File,
}

/// Starts the whole system: returns once every component is started (the compute accepts
/// connections when it has registered with the safekeepers and loaded its catalog).
pub async fn start(args: UpArgs) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create data directory {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    let lock = lock_data_dir(&data_dir)?;

    let object_store_url = args
        .object_store
        .clone()
        .unwrap_or_else(|| data_dir.join("objects").display().to_string());
    let remote = open_object_store(&object_store_url)?;
    let manifest = ControlManifest::load_or_init(remote.as_ref())
        .await
        .context("cannot read or create the control manifest")?;
    let timeline = manifest.branch(MAIN_BRANCH)?.timeline_id;

    let loopback: IpAddr = [127, 0, 0, 1].into();
    let mut sk_listeners = Vec::new();
    let mut peers = BTreeMap::new();
    for id in 1..=SAFEKEEPERS {
        let listener = TcpListener::bind((loopback, 0)).await?;
        peers.insert(id, listener.local_addr()?.to_string());
        sk_listeners.push((id, listener));
    }
    let ps_listener = TcpListener::bind((loopback, 0)).await?;
    let control_listener = TcpListener::bind((loopback, 0)).await?;
    let pg_listener = TcpListener::bind((args.listen_addr, args.port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{} (is another server using it? pass --port)",
                args.listen_addr, args.port
            )
        })?;
    let info = RuntimeInfo {
        pid: std::process::id(),
        postgres: pg_listener.local_addr()?,
        pageserver: ps_listener.local_addr()?,
        safekeepers: sk_listeners
            .iter()
            .map(|(_, l)| l.local_addr())
            .collect::<Result<_, _>>()?,
        object_store: object_store_url.clone(),
        main_timeline: timeline.to_string(),
        control: control_listener.local_addr()?,
    };

    let failed = CancellationToken::new();
    let sk_stop = CancellationToken::new();
    let mut safekeepers = Vec::new();
    for (id, listener) in sk_listeners {
        let config = SafekeeperConfig {
            node_id: id,
            data_dir: data_dir.join(format!("safekeeper-{id}")),
            peers: peers.clone(),
            ..Default::default()
        };
        let token = sk_stop.clone();
        let remote = Some(remote.clone());
        safekeepers.push(spawn("safekeeper", &failed, async move {
            strata_safekeeper::run(config, listener, remote, token)
                .await
                .map_err(Into::into)
        }));
    }
    let ps_config = PageserverConfig {
        data_dir: data_dir.join("pageserver"),
        safekeepers: peers.values().cloned().collect(),
        ..Default::default()
    };
    let ps_stop = CancellationToken::new();
    let (token, ps_remote) = (ps_stop.clone(), remote.clone());
    let pageserver = spawn("pageserver", &failed, async move {
        strata_pageserver::run(ps_config, ps_listener, ps_remote, token)
            .await
            .map_err(Into::into)
    });
    let launcher = Arc::new(InProcessComputes {
        safekeepers: peers.values().cloned().collect(),
        pageserver: info.pageserver.to_string(),
        row_cache_bytes: args.row_cache_mb << 20,
    });
    let plane = ControlPlane::new(
        remote.clone(),
        PlaneConfig {
            front: info.postgres,
            pageserver: info.pageserver.to_string(),
            safekeepers: peers.values().cloned().collect(),
        },
        launcher,
    )
    .await
    .context("cannot start the control plane")?;
    // `main` is what a connection without an endpoint gets: started now, not on the first
    // connection.
    plane.ensure_running(MAIN_BRANCH).await?;
    let front_stop = CancellationToken::new();
    let router: Arc<dyn Router> = plane.clone();
    let token = front_stop.clone();
    let proxy = spawn("proxy", &failed, async move {
        serve_proxy(pg_listener, router, token)
            .await
            .map_err(Into::into)
    });
    let (token, control_plane) = (front_stop.clone(), plane.clone());
    let control = spawn("control", &failed, async move {
        serve_control(control_plane, control_listener, token)
            .await
            .map_err(Into::into)
    });
    let mut front_tasks = vec![proxy, control];
    if args.suspend_after > 0 {
        let (token, control_plane) = (front_stop.clone(), plane.clone());
        let after = std::time::Duration::from_secs(args.suspend_after);
        front_tasks.push(tokio::spawn(async move {
            control_plane.suspend_idle(after, token).await
        }));
    }

    let info_path = data_dir.join("up.json");
    std::fs::write(&info_path, serde_json::to_vec_pretty(&info)?)?;
    tracing::info!(data_dir = %data_dir.display(), object_store = %object_store_url, "strata is up");
    Ok(Running {
        postgres: info.postgres,
        info_path,
        failed,
        front: (front_stop, front_tasks),
        plane,
        pageserver: (ps_stop, pageserver),
        safekeepers: (sk_stop, safekeepers),
        safekeeper_addrs: info.safekeepers.clone(),
        timeline,
        _lock: lock,
    })
}

impl Running {
    /// Resolves when a component stopped on its own (it failed).
    pub async fn failed(&self) {
        self.failed.cancelled().await
    }

    /// Stops in dependency order: the compute stops taking queries, the pageserver flushes and
    /// uploads what it ingested, the safekeepers offload their WAL (a checkpoint), then they
    /// stop. After a clean stop the bucket alone holds everything.
    pub async fn stop(self) {
        self.front.0.cancel();
        for task in self.front.1 {
            let _ = task.await;
        }
        self.plane.shutdown().await;
        self.pageserver.0.cancel();
        let _ = self.pageserver.1.await;
        match checkpoint::checkpoint(&self.safekeeper_addrs, None, &[self.timeline]).await {
            Ok(done) => tracing::info!(lsn = done.wal_lsn, "WAL offloaded"),
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "could not offload the WAL; it stays on the safekeepers' disks"
            ),
        }
        self.safekeepers.0.cancel();
        for sk in self.safekeepers.1 {
            let _ = sk.await;
        }
        let _ = std::fs::remove_file(&self.info_path);
    }
}

/// `strata up`: starts everything, stays in the foreground until SIGINT or SIGTERM.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let stop = shutdown::on_signal()?;
    let running = start(args).await?;
    println!(
        "Strata is running. Connect with:\n  psql postgres://postgres@{}:{}/postgres",
        running.postgres.ip(),
        running.postgres.port()
    );
    let crashed = tokio::select! {
        _ = stop.cancelled() => false,
        _ = running.failed() => true,
    };
    running.stop().await;
    if crashed {
        anyhow::bail!("a component stopped unexpectedly; see the log above");
    }
    tracing::info!("strata stopped");
    Ok(())
}

/// Runs a component; when it ends (it should only end when asked to), `failed` is cancelled so
/// that the rest stops too.
fn spawn(
    name: &'static str,
    failed: &CancellationToken,
    component: impl Future<Output = anyhow::Result<()>> + Send + 'static,
) -> JoinHandle<()> {
    let failed = failed.clone();
    tokio::spawn(async move {
        if let Err(e) = component.await {
            tracing::error!(
                component = name,
                error = format!("{e:#}"),
                "component failed"
            );
        }
        failed.cancel();
    })
}

/// Keeps a second `strata up` off the same data directory.
fn lock_data_dir(dir: &Path) -> anyhow::Result<File> {
    let file = File::create(dir.join(".lock"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(_) => anyhow::bail!("another strata process is using {}", dir.display()),
    }
}

/// Connections handed from the proxy to a compute that it has not taken up yet.
const HANDOFF_QUEUE: usize = 128;

/// Starts computes as tasks of this process, each on its own loopback port.
struct InProcessComputes {
    safekeepers: Vec<String>,
    pageserver: String,
    row_cache_bytes: usize,
}

#[async_trait::async_trait]
impl ComputeLauncher for InProcessComputes {
    async fn launch(&self, timeline: TimelineId, pinned: Option<Lsn>) -> Result<Compute, String> {
        let listener = TcpListener::bind((IpAddr::from([127, 0, 0, 1]), 0))
            .await
            .map_err(|e| format!("cannot listen on loopback: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let mut config =
            ComputeConfig::new(timeline, self.safekeepers.clone(), self.pageserver.clone());
        config.pinned = pinned;
        config.row_cache_bytes = self.row_cache_bytes;
        let stop = CancellationToken::new();
        let token = stop.clone();
        // A compute that fails is logged and started again by the next connection to its
        // endpoint; it does not take the rest of the system down.
        // The proxy runs in this process too: it hands client sockets to the compute instead
        // of relaying their bytes.
        let (handoff, handed) = tokio::sync::mpsc::channel(HANDOFF_QUEUE);
        let task = tokio::spawn(async move {
            if let Err(e) =
                strata_compute::run_with_handoff(config, listener, Some(handed), token).await
            {
                tracing::error!(%timeline, error = format!("{e:#}"), "compute failed");
            }
        });
        Ok(Compute {
            addr,
            stop,
            task,
            handoff: Some(handoff),
        })
    }
}
