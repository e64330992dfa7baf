//! The control plane of one deployment: which branches exist (the control manifest in object
//! storage), which endpoints serve them, and which of those have a compute running now.
//!
//! A branch is created on the pageserver as a timeline that reads through to its parent at the
//! branch point (no data is copied), then recorded in the manifest. Every branch has a
//! read-write primary endpoint named like the branch; read-only endpoints pinned at an LSN are
//! recorded in the manifest too. Computes are started on demand, when a connection names their
//! endpoint (see [`Router`]), by a [`ComputeLauncher`] the deployment provides.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use object_store::ObjectStore;
use strata_core::{Lsn, TimelineId};
use strata_proto::control::{BranchInfo, EndpointInfo};
use strata_proto::pageserver::pageserver_client::PageserverClient;
use strata_proto::pageserver::{
    CommitAtRequest, CreateTimelineRequest, DeleteTimelineRequest, LogicalSizeRequest, LsnAtRequest,
};
use strata_proto::safekeeper::safekeeper_client::SafekeeperClient;
use strata_proto::safekeeper::StatusRequest;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tracing::{info, warn};

use crate::manifest::{Branch, ControlManifest, EndpointSpec, MAIN_BRANCH};
use crate::point::Point;
use crate::proxy::{Route, RouteError, Router};
use crate::ControlError;

/// A running compute, as a [`ComputeLauncher`] started it.
pub struct Compute {
    /// Where it accepts PostgreSQL connections.
    pub addr: SocketAddr,
    /// Cancelling it stops the compute; `task` ends when it has stopped.
    pub stop: CancellationToken,
    pub task: JoinHandle<()>,
    /// For a compute in the proxy's process: where the proxy hands it client sockets, so that
    /// their bytes are not relayed (see [`crate::proxy`]).
    pub handoff: Option<tokio::sync::mpsc::Sender<crate::proxy::HandedConnection>>,
}

/// Starts computes: in-process tasks on a laptop, pods on Kubernetes.
#[async_trait]
pub trait ComputeLauncher: Send + Sync + 'static {
    /// Starts the read-write primary of `timeline`, or with `pinned` a read-only compute that
    /// reads `timeline` at that LSN.
    async fn launch(&self, timeline: TimelineId, pinned: Option<Lsn>) -> Result<Compute, String>;
}

/// Where the deployment's services are.
#[derive(Debug, Clone)]
pub struct PlaneConfig {
    /// The proxy's address: connection strings point there.
    pub front: SocketAddr,
    /// `host:port` of the pageserver and of every safekeeper.
    pub pageserver: String,
    pub safekeepers: Vec<String>,
}

pub struct ControlPlane {
    store: Arc<dyn ObjectStore>,
    config: PlaneConfig,
    pageserver: PageserverClient<Channel>,
    safekeepers: Vec<SafekeeperClient<Channel>>,
    launcher: Arc<dyn ComputeLauncher>,
    /// Running computes by endpoint name. Held while a compute starts, so that two
    /// connections to a sleeping endpoint start one compute, and while idle computes are
    /// suspended, so that none is stopped under a connection being routed to it.
    running: tokio::sync::Mutex<HashMap<String, Compute>>,
    /// Open connections per endpoint and when the last one closed.
    activity: Arc<std::sync::Mutex<HashMap<String, Activity>>>,
    /// Serializes branch changes (each reads the manifest, asks the pageserver, writes it).
    changes: tokio::sync::Mutex<()>,
}

fn channel(addr: &str) -> Result<Channel, ControlError> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| ControlError::InvalidArgument(format!("bad address {addr}: {e}")))?
        .connect_timeout(std::time::Duration::from_secs(2))
        .connect_lazy())
}

fn storage_error(status: tonic::Status) -> ControlError {
    let message = status.message().to_string();
    match status.code() {
        tonic::Code::OutOfRange => ControlError::OutOfRange(message),
        tonic::Code::AlreadyExists => ControlError::Exists(message),
        tonic::Code::FailedPrecondition => ControlError::Refused(message),
        _ => ControlError::Storage(format!("{}: {message}", status.code())),
    }
}

fn rfc3339(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros).map_or_else(String::new, |t| t.to_rfc3339())
}

/// Branch and endpoint names: what fits in a connection option and a file name.
fn check_name(what: &str, name: &str) -> Result<(), ControlError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ControlError::InvalidArgument(format!(
            "invalid {what} name {name:?}: use 1 to 63 letters, digits, '_' or '-'"
        )))
    }
}

impl ControlPlane {
    pub async fn new(
        store: Arc<dyn ObjectStore>,
        config: PlaneConfig,
        launcher: Arc<dyn ComputeLauncher>,
    ) -> Result<Arc<Self>, ControlError> {
        ControlManifest::load_or_init(store.as_ref()).await?;
        let pageserver = PageserverClient::new(channel(&config.pageserver)?);
        let safekeepers = config
            .safekeepers
            .iter()
            .map(|a| channel(a).map(SafekeeperClient::new))
            .collect::<Result<_, _>>()?;
        Ok(Arc::new(Self {
            store,
            config,
            pageserver,
            safekeepers,
            launcher,
            running: Default::default(),
            activity: Default::default(),
            changes: Default::default(),
        }))
    }

    async fn manifest(&self) -> Result<ControlManifest, ControlError> {
        ControlManifest::load_or_init(self.store.as_ref()).await
    }

    /// How a client reaches an endpoint: the front port, naming the endpoint in `options`
    /// (which libpq, pgjdbc, node-postgres and asyncpg all pass to the server).
    pub fn connection_string(&self, endpoint: &str) -> String {
        format!(
            "postgres://postgres@{}:{}/postgres?options=endpoint%3D{endpoint}",
            self.config.front.ip(),
            self.config.front.port()
        )
    }

    /// The newest committed LSN of the deployment (every timeline shares one WAL order).
    async fn commit_lsn(&self) -> Result<Lsn, ControlError> {
        let mut best = None;
        let mut last_error = None;
        for sk in &self.safekeepers {
            match sk.clone().status(StatusRequest {}).await {
                Ok(s) => best = best.max(Some(s.into_inner().committed_index)),
                Err(e) => last_error = Some(e),
            }
        }
        match (best, last_error) {
            (Some(lsn), _) => Ok(Lsn(lsn)),
            (None, Some(e)) => Err(storage_error(e)),
            (None, None) => Err(ControlError::Storage("no safekeepers configured".into())),
        }
    }

    /// The LSN `at` stands for on `timeline` (empty: the latest commit).
    async fn resolve(&self, timeline: TimelineId, at: &str) -> Result<Lsn, ControlError> {
        let head = self.commit_lsn().await?;
        match Point::parse(at)? {
            None => Ok(head),
            Some(Point::Lsn(lsn)) if lsn > head => Err(ControlError::OutOfRange(format!(
                "LSN {lsn} is in the future (the latest commit is at {head})"
            ))),
            Some(Point::Lsn(lsn)) => Ok(lsn),
            Some(Point::Time(micros)) => {
                let resp = self
                    .pageserver
                    .clone()
                    .lsn_at(LsnAtRequest {
                        timeline_id: timeline.to_string(),
                        timestamp_micros: micros,
                        not_modified_since: head.0,
                    })
                    .await
                    .map_err(storage_error)?;
                Ok(Lsn(resp.into_inner().lsn))
            }
        }
    }

    /// When the last commit at or below `lsn` of `timeline` happened, if any.
    async fn commit_time(&self, timeline: TimelineId, lsn: Lsn) -> Option<String> {
        let resp = self
            .pageserver
            .clone()
            .commit_at(CommitAtRequest {
                timeline_id: timeline.to_string(),
                lsn: lsn.0,
            })
            .await
            .ok()?
            .into_inner();
        resp.found.then(|| rfc3339(resp.commit_time_micros))
    }

    fn info(&self, b: &Branch, logical_size: u64) -> BranchInfo {
        BranchInfo {
            name: b.name.clone(),
            timeline_id: b.timeline_id.to_string(),
            parent: b.parent.clone().unwrap_or_default(),
            branch_lsn: b.ancestor_lsn.map(|l| l.to_string()).unwrap_or_default(),
            branch_time: b.branch_time.clone().unwrap_or_default(),
            created_at: b.created_at.clone(),
            logical_size,
            connection_string: self.connection_string(&b.name),
        }
    }

    /// Creates branch `name` from `parent` (default `main`) at `at` (default: the latest
    /// commit). Copies nothing: the new timeline reads through to its parent.
    pub async fn create_branch(
        &self,
        name: &str,
        parent: Option<&str>,
        at: &str,
    ) -> Result<BranchInfo, ControlError> {
        check_name("branch", name)?;
        let _changing = self.changes.lock().await;
        let manifest = self.manifest().await?;
        if manifest.branch(name).is_ok() || manifest.endpoints.iter().any(|e| e.name == name) {
            return Err(ControlError::Exists(format!("branch or endpoint {name:?}")));
        }
        let parent = manifest.branch(parent.unwrap_or(MAIN_BRANCH))?.clone();
        let lsn = self.resolve(parent.timeline_id, at).await?;
        let timeline = TimelineId::generate();
        self.pageserver
            .clone()
            .create_timeline(CreateTimelineRequest {
                timeline_id: timeline.to_string(),
                ancestor_timeline_id: parent.timeline_id.to_string(),
                ancestor_lsn: lsn.0,
            })
            .await
            .map_err(storage_error)?;
        let branch = Branch {
            name: name.to_string(),
            timeline_id: timeline,
            parent: Some(parent.name.clone()),
            ancestor_lsn: Some(lsn),
            created_at: Utc::now().to_rfc3339(),
            branch_time: self.commit_time(parent.timeline_id, lsn).await,
        };
        ControlManifest::update(self.store.as_ref(), |m| {
            m.branches.push(branch.clone());
            Ok(())
        })
        .await?;
        info!(branch = name, parent = %parent.name, %lsn, %timeline, "created branch");
        Ok(self.info(&branch, 0))
    }

    /// Every branch, parents before their children. With `sizes`, each branch's logical size
    /// (a scan of its live data at the latest LSN: slow on large branches).
    pub async fn list_branches(&self, sizes: bool) -> Result<Vec<BranchInfo>, ControlError> {
        let manifest = self.manifest().await?;
        let head = if sizes {
            self.commit_lsn().await?
        } else {
            Lsn::ZERO
        };
        let mut out = Vec::new();
        for b in tree_order(&manifest.branches) {
            let size = if sizes {
                self.pageserver
                    .clone()
                    .logical_size(LogicalSizeRequest {
                        timeline_id: b.timeline_id.to_string(),
                        not_modified_since: head.0,
                    })
                    .await
                    .map_err(storage_error)?
                    .into_inner()
                    .bytes
            } else {
                0
            };
            out.push(self.info(b, size));
        }
        Ok(out)
    }

    /// Deletes a branch without children: its endpoints stop, its timeline and data go.
    pub async fn delete_branch(&self, name: &str) -> Result<(), ControlError> {
        if name == MAIN_BRANCH {
            return Err(ControlError::Refused(
                "the main branch cannot be deleted".into(),
            ));
        }
        let _changing = self.changes.lock().await;
        let manifest = self.manifest().await?;
        let branch = manifest.branch(name)?.clone();
        let children: Vec<&str> = manifest
            .branches
            .iter()
            .filter(|b| b.parent.as_deref() == Some(name))
            .map(|b| b.name.as_str())
            .collect();
        if !children.is_empty() {
            return Err(ControlError::Refused(format!(
                "branch {name:?} has branches ({}); delete them first",
                children.join(", ")
            )));
        }
        let endpoints: Vec<String> = std::iter::once(name.to_string())
            .chain(
                manifest
                    .endpoints
                    .iter()
                    .filter(|e| e.branch == name)
                    .map(|e| e.name.clone()),
            )
            .collect();
        // No compute may start for the branch while it goes: routing waits on this lock.
        let mut running = self.running.lock().await;
        let computes: Vec<Compute> = endpoints.iter().filter_map(|e| running.remove(e)).collect();
        stop_all(computes).await;
        match self
            .pageserver
            .clone()
            .delete_timeline(DeleteTimelineRequest {
                timeline_id: branch.timeline_id.to_string(),
            })
            .await
        {
            // Deleted by an earlier attempt that did not get to update the manifest.
            Err(s) if s.code() == tonic::Code::NotFound => {}
            other => {
                other.map_err(storage_error)?;
            }
        }
        ControlManifest::update(self.store.as_ref(), |m| {
            m.branches.retain(|b| b.name != name);
            m.endpoints.retain(|e| e.branch != name);
            Ok(())
        })
        .await?;
        drop(running);
        info!(branch = name, "deleted branch");
        Ok(())
    }

    /// Resets branch `name` to its state at `at`. The state it had is kept as a new branch
    /// (`<name>_old_<time>`, returned second), which its existing children and read-only
    /// endpoints now hang off: nothing is lost by a restore.
    pub async fn restore_branch(
        &self,
        name: &str,
        at: &str,
    ) -> Result<(BranchInfo, BranchInfo), ControlError> {
        if at.trim().is_empty() {
            return Err(ControlError::InvalidArgument(
                "restore needs a point: --at TIMESTAMP or LSN".into(),
            ));
        }
        let _changing = self.changes.lock().await;
        let manifest = self.manifest().await?;
        let old = manifest.branch(name)?.clone();
        let lsn = self.resolve(old.timeline_id, at).await?;
        let backup_name =
            format!("{name}_old_{}", Utc::now().format("%Y%m%dT%H%M%S%.3f")).replace('.', "_");
        let timeline = TimelineId::generate();
        self.pageserver
            .clone()
            .create_timeline(CreateTimelineRequest {
                timeline_id: timeline.to_string(),
                ancestor_timeline_id: old.timeline_id.to_string(),
                ancestor_lsn: lsn.0,
            })
            .await
            .map_err(storage_error)?;
        let backup = Branch {
            name: backup_name.clone(),
            ..old.clone()
        };
        let restored = Branch {
            name: name.to_string(),
            timeline_id: timeline,
            parent: Some(backup_name.clone()),
            ancestor_lsn: Some(lsn),
            created_at: Utc::now().to_rfc3339(),
            branch_time: self.commit_time(old.timeline_id, lsn).await,
        };
        // The branch's primary moves to the new timeline: its compute stops in the same step as
        // the manifest changes (routing waits on this lock), and the next connection starts
        // one on the new timeline.
        let mut running = self.running.lock().await;
        ControlManifest::update(self.store.as_ref(), |m| {
            for b in &mut m.branches {
                if b.parent.as_deref() == Some(name) {
                    b.parent = Some(backup_name.clone());
                }
            }
            for e in &mut m.endpoints {
                if e.branch == name {
                    e.branch = backup_name.clone();
                }
            }
            m.branches.retain(|b| b.name != name);
            m.branches.push(backup.clone());
            m.branches.push(restored.clone());
            Ok(())
        })
        .await?;
        let primary = running.remove(name);
        drop(running);
        stop_all(primary.into_iter().collect()).await;
        info!(branch = name, %lsn, backup = %backup_name, "restored branch");
        Ok((self.info(&restored, 0), self.info(&backup, 0)))
    }

    /// Starts an endpoint's compute (if it is not running). With `at`, creates a read-only
    /// endpoint `name` on `branch` pinned at that point first; without, `name` is a branch and
    /// its primary starts.
    pub async fn start_endpoint(
        &self,
        name: &str,
        branch: Option<&str>,
        at: &str,
    ) -> Result<EndpointInfo, ControlError> {
        if !at.trim().is_empty() {
            check_name("endpoint", name)?;
            let _changing = self.changes.lock().await;
            let manifest = self.manifest().await?;
            if manifest.branch(name).is_ok() || manifest.endpoints.iter().any(|e| e.name == name) {
                return Err(ControlError::Exists(format!("branch or endpoint {name:?}")));
            }
            let branch = manifest.branch(branch.unwrap_or(MAIN_BRANCH))?.clone();
            let lsn = self.resolve(branch.timeline_id, at).await?;
            let spec = EndpointSpec {
                name: name.to_string(),
                branch: branch.name.clone(),
                lsn,
            };
            ControlManifest::update(self.store.as_ref(), |m| {
                m.endpoints.push(spec.clone());
                Ok(())
            })
            .await?;
        }
        self.ensure_running(name).await?;
        self.list_endpoints()
            .await?
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| ControlError::NoSuchEndpoint(name.to_string()))
    }

    /// Stops an endpoint's compute; the next connection to it starts one again.
    pub async fn stop_endpoint(&self, name: &str) -> Result<(), ControlError> {
        let manifest = self.manifest().await?;
        if manifest.branch(name).is_err() && !manifest.endpoints.iter().any(|e| e.name == name) {
            return Err(ControlError::NoSuchEndpoint(name.to_string()));
        }
        self.stop_compute(name).await;
        Ok(())
    }

    /// Every endpoint: each branch's primary, then the read-only ones.
    pub async fn list_endpoints(&self) -> Result<Vec<EndpointInfo>, ControlError> {
        let manifest = self.manifest().await?;
        let running = self.running.lock().await;
        let state = |name: &str| match running.get(name) {
            Some(c) if !c.task.is_finished() => (true, c.addr.to_string()),
            _ => (false, String::new()),
        };
        let mut out = Vec::new();
        for b in tree_order(&manifest.branches) {
            let (running, addr) = state(&b.name);
            out.push(EndpointInfo {
                name: b.name.clone(),
                branch: b.name.clone(),
                kind: "primary".into(),
                lsn: String::new(),
                running,
                compute_address: addr,
                connection_string: self.connection_string(&b.name),
            });
        }
        for e in &manifest.endpoints {
            let (running, addr) = state(&e.name);
            out.push(EndpointInfo {
                name: e.name.clone(),
                branch: e.branch.clone(),
                kind: "read-only".into(),
                lsn: e.lsn.to_string(),
                running,
                compute_address: addr,
                connection_string: self.connection_string(&e.name),
            });
        }
        Ok(out)
    }

    /// The address of the endpoint's compute, starting it if it is not running.
    pub async fn ensure_running(&self, name: &str) -> Result<SocketAddr, ControlError> {
        let mut running = self.running.lock().await;
        self.start_locked(&mut running, name).await
    }

    /// A connection to the endpoint: its compute's address (started if need be), and a guard
    /// that counts the connection as open until dropped.
    pub async fn connect(&self, name: &str) -> Result<Route, ControlError> {
        let mut running = self.running.lock().await;
        let addr = self.start_locked(&mut running, name).await?;
        let handoff = running.get(name).and_then(|c| c.handoff.clone());
        // Counted under the `running` lock: the suspender checks under it too.
        let mut activity = lock(&self.activity);
        activity.entry(name.to_string()).or_default().connections += 1;
        Ok(Route {
            addr,
            guard: Some(Box::new(ConnectionGuard {
                activity: self.activity.clone(),
                endpoint: name.to_string(),
            })),
            handoff,
        })
    }

    /// Stops the computes of endpoints that have had no connection for `after` (scale to
    /// zero); the next connection starts them again. Runs until `stop`.
    pub async fn suspend_idle(&self, after: Duration, stop: CancellationToken) {
        let tick = (after / 2).clamp(Duration::from_millis(100), Duration::from_secs(10));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
            }
            let idle: Vec<(String, Compute)> = {
                let mut running = self.running.lock().await;
                let activity = lock(&self.activity);
                let names: Vec<String> = running
                    .keys()
                    .filter(|name| {
                        activity
                            .get(*name)
                            .is_none_or(|a| a.connections == 0 && a.since.elapsed() >= after)
                    })
                    .cloned()
                    .collect();
                names
                    .into_iter()
                    .filter_map(|n| running.remove(&n).map(|c| (n, c)))
                    .collect()
            };
            for (name, compute) in idle {
                compute.stop.cancel();
                let _ = compute.task.await;
                info!(endpoint = %name, idle_for = ?after, "suspended idle compute");
            }
        }
    }

    async fn start_locked(
        &self,
        running: &mut HashMap<String, Compute>,
        name: &str,
    ) -> Result<SocketAddr, ControlError> {
        if let Some(c) = running.get(name) {
            if !c.task.is_finished() {
                return Ok(c.addr);
            }
            warn!(endpoint = name, "compute had stopped; starting a new one");
        }
        let manifest = self.manifest().await?;
        let (timeline, pinned) = match manifest.endpoints.iter().find(|e| e.name == name) {
            Some(spec) => (manifest.branch(&spec.branch)?.timeline_id, Some(spec.lsn)),
            None => match manifest.branch(name) {
                Ok(b) => (b.timeline_id, None),
                Err(_) => return Err(ControlError::NoSuchEndpoint(name.to_string())),
            },
        };
        let compute = self
            .launcher
            .launch(timeline, pinned)
            .await
            .map_err(ControlError::Launch)?;
        let addr = compute.addr;
        info!(endpoint = name, %timeline, ?pinned, %addr, "started compute");
        running.insert(name.to_string(), compute);
        // A compute just started counts as just used.
        lock(&self.activity)
            .entry(name.to_string())
            .or_default()
            .since = Instant::now();
        Ok(addr)
    }

    async fn stop_compute(&self, name: &str) {
        let compute = self.running.lock().await.remove(name);
        stop_all(compute.into_iter().collect()).await;
    }

    /// Stops every compute.
    pub async fn shutdown(&self) {
        let computes: Vec<Compute> = self.running.lock().await.drain().map(|(_, c)| c).collect();
        stop_all(computes).await;
    }

    /// Every branch's timeline (for checkpoints).
    pub async fn timelines(&self) -> Result<Vec<TimelineId>, ControlError> {
        Ok(self
            .manifest()
            .await?
            .branches
            .iter()
            .map(|b| b.timeline_id)
            .collect())
    }
}

/// Stops computes and waits until they have stopped.
async fn stop_all(computes: Vec<Compute>) {
    for c in &computes {
        c.stop.cancel();
    }
    for c in computes {
        let addr = c.addr;
        let _ = c.task.await;
        info!(%addr, "stopped compute");
    }
}

/// Connections of one endpoint.
struct Activity {
    connections: usize,
    /// When the count last changed (or the compute started).
    since: Instant,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            connections: 0,
            since: Instant::now(),
        }
    }
}

/// Counts one open connection; dropped when the connection ends.
struct ConnectionGuard {
    activity: Arc<std::sync::Mutex<HashMap<String, Activity>>>,
    endpoint: String,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut activity = lock(&self.activity);
        if let Some(a) = activity.get_mut(&self.endpoint) {
            a.connections = a.connections.saturating_sub(1);
            a.since = Instant::now();
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Branches with every parent before its children (depth first, names in order).
fn tree_order(branches: &[Branch]) -> Vec<&Branch> {
    fn visit<'a>(parent: Option<&str>, all: &'a [Branch], out: &mut Vec<&'a Branch>) {
        let mut children: Vec<&Branch> = all
            .iter()
            .filter(|b| b.parent.as_deref() == parent)
            .collect();
        children.sort_by(|a, b| a.name.cmp(&b.name));
        for c in children {
            out.push(c);
            visit(Some(&c.name), all, out);
        }
    }
    let mut out = Vec::new();
    visit(None, branches, &mut out);
    out
}

#[async_trait]
impl Router for ControlPlane {
    async fn route(
        &self,
        endpoint: Option<&str>,
        _database: Option<&str>,
    ) -> Result<Route, RouteError> {
        let name = endpoint.unwrap_or(MAIN_BRANCH);
        self.connect(name).await.map_err(|e| match e {
            ControlError::NoSuchEndpoint(_) => RouteError::new(
                "3D000",
                format!("endpoint \"{name}\" does not exist (see `strata endpoint list`)"),
            ),
            other => RouteError::new(
                "57P03",
                format!("endpoint \"{name}\" cannot start: {other}"),
            ),
        })
    }

    async fn cancel_targets(&self) -> Vec<SocketAddr> {
        self.running
            .lock()
            .await
            .values()
            .filter(|c| !c.task.is_finished())
            .map(|c| c.addr)
            .collect()
    }
}
