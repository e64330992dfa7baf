//! Three real safekeepers in-process, each on its own 127.0.0.1 listener and data directory,
//! driven through their gRPC API as computes and pageservers drive them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, ObjectStoreExt};
use strata_core::wal::{decode_mutations, encode_mutations, Mutation};
use strata_core::TimelineId;
use strata_faults::{FaultyObjectStore, Op};
use strata_proto::safekeeper::safekeeper_client::SafekeeperClient;
use strata_proto::safekeeper::{
    AppendWalRequest, AppendWalResponse, CheckpointRequest, RegisterPrimaryRequest,
    RegisterPrimaryResponse, StatusRequest, StatusResponse, StreamWalRequest, WalRecord,
};
use strata_proto::LEADER_METADATA_KEY;
use strata_safekeeper::{run, SafekeeperConfig, SafekeeperError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Status};

const WAIT: Duration = Duration::from_secs(20);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

struct RunningNode {
    cancel: CancellationToken,
    task: JoinHandle<Result<(), SafekeeperError>>,
}

/// Clients of the group, used the way a compute uses them: follow the leader hint, try the
/// next node when one is down.
struct Router {
    peers: BTreeMap<u64, String>,
    clients: std::sync::Mutex<HashMap<String, SafekeeperClient<Channel>>>,
}

/// A group of three safekeepers whose nodes can be stopped and restarted on the same address
/// and data directory.
struct Cluster {
    _root: tempfile::TempDir,
    dirs: BTreeMap<u64, PathBuf>,
    peers: BTreeMap<u64, String>,
    nodes: BTreeMap<u64, RunningNode>,
    router: Arc<Router>,
    /// Applied to every node's configuration.
    configure: fn(&mut SafekeeperConfig),
    /// Object storage given to every node.
    remote: Option<Arc<dyn ObjectStore>>,
}

impl Router {
    fn client_at(&self, addr: &str) -> SafekeeperClient<Channel> {
        let mut clients = self.clients.lock().unwrap();
        clients
            .entry(addr.to_string())
            .or_insert_with(|| {
                let channel = Channel::from_shared(format!("http://{addr}"))
                    .unwrap()
                    .connect_timeout(Duration::from_millis(500))
                    .connect_lazy();
                SafekeeperClient::new(channel)
                    .max_decoding_message_size(256 << 20)
                    .max_encoding_message_size(256 << 20)
            })
            .clone()
    }

    fn client(&self, id: u64) -> SafekeeperClient<Channel> {
        self.client_at(&self.peers[&id])
    }

    async fn status(&self, id: u64) -> Result<StatusResponse> {
        Ok(self.client(id).status(StatusRequest {}).await?.into_inner())
    }

    /// Calls the leader, following `UNAVAILABLE` + leader hints (as a compute does) until the
    /// deadline.
    async fn with_leader<T, F, Fut>(&self, mut call: F) -> Result<T, Status>
    where
        F: FnMut(SafekeeperClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let deadline = Instant::now() + WAIT;
        let running: Vec<String> = self.peers.values().cloned().collect();
        let mut next = 0usize;
        let mut target = running[0].clone();
        loop {
            match call(self.client_at(&target)).await {
                Ok(r) => return Ok(r.into_inner()),
                // A node that shuts down answers in-flight requests with an HTTP/2 GOAWAY, which
                // tonic reports as INTERNAL: as retryable as UNAVAILABLE.
                Err(s) if is_retryable(&s) && Instant::now() < deadline => {
                    target = match s
                        .metadata()
                        .get(LEADER_METADATA_KEY)
                        .and_then(|v| v.to_str().ok())
                    {
                        Some(hint) => hint.to_string(),
                        _ => {
                            next = (next + 1) % running.len();
                            running[next].clone()
                        }
                    };
                    sleep(Duration::from_millis(20)).await;
                }
                Err(s) => return Err(s),
            }
        }
    }

    async fn register(&self, timeline: TimelineId) -> Result<RegisterPrimaryResponse> {
        let request = RegisterPrimaryRequest {
            timeline_id: timeline.to_string(),
        };
        Ok(self
            .with_leader(|mut c| {
                let request = request.clone();
                async move { c.register_primary(request).await }
            })
            .await?)
    }

    async fn append(
        &self,
        timeline: TimelineId,
        generation: u32,
        mutations: Bytes,
    ) -> Result<AppendWalResponse, Status> {
        let request = AppendWalRequest {
            timeline_id: timeline.to_string(),
            generation,
            mutations,
        };
        self.with_leader(|mut c| {
            let request = request.clone();
            async move { c.append_wal(request).await }
        })
        .await
    }
}

/// Failures of a node that is shutting down (or of the connection to it). Appends go to a
/// follower only to learn the leader, which it refuses before proposing anything, so retrying
/// them cannot duplicate a record.
fn is_retryable(s: &Status) -> bool {
    matches!(s.code(), Code::Unavailable | Code::Cancelled)
        || (s.code() == Code::Internal
            && (s.message().contains("h2 protocol error")
                || s.message().contains("transport error")))
}

impl Cluster {
    async fn start() -> Result<Cluster> {
        Cluster::start_with(|_| {}).await
    }

    async fn start_with(configure: fn(&mut SafekeeperConfig)) -> Result<Cluster> {
        Cluster::start_full(configure, None).await
    }

    async fn start_full(
        configure: fn(&mut SafekeeperConfig),
        remote: Option<Arc<dyn ObjectStore>>,
    ) -> Result<Cluster> {
        init_tracing();
        let root = tempfile::tempdir()?;
        let mut listeners = BTreeMap::new();
        let mut peers = BTreeMap::new();
        let mut dirs = BTreeMap::new();
        for id in 1..=3u64 {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            peers.insert(id, listener.local_addr()?.to_string());
            dirs.insert(id, root.path().join(format!("sk-{id}")));
            listeners.insert(id, listener);
        }
        let router = Arc::new(Router {
            peers: peers.clone(),
            clients: std::sync::Mutex::new(HashMap::new()),
        });
        let mut cluster = Cluster {
            _root: root,
            dirs,
            peers,
            nodes: BTreeMap::new(),
            router,
            configure,
            remote,
        };
        for (id, listener) in listeners {
            cluster.spawn(id, listener);
        }
        Ok(cluster)
    }

    fn spawn(&mut self, id: u64, listener: TcpListener) {
        let mut config = SafekeeperConfig::new(id, self.dirs[&id].clone(), self.peers.clone());
        (self.configure)(&mut config);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(config, listener, self.remote.clone(), cancel.clone()));
        self.nodes.insert(id, RunningNode { cancel, task });
    }

    async fn stop(&mut self, id: u64) -> Result<()> {
        let node = self.nodes.remove(&id).context("node is not running")?;
        node.cancel.cancel();
        timeout(WAIT, node.task)
            .await
            .context("node did not stop in time")??
            .context("node stopped with an error")?;
        Ok(())
    }

    async fn restart(&mut self, id: u64) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        let listener = loop {
            match TcpListener::bind(&self.peers[&id]).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    tracing::info!(error = %e, "address not free yet");
                    sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.spawn(id, listener);
        Ok(())
    }

    /// Waits until a running node reports itself leader.
    async fn wait_leader(&self) -> Result<u64> {
        let deadline = Instant::now() + WAIT;
        loop {
            for id in self.nodes.keys() {
                if let Ok(s) = self.status(*id).await {
                    if s.leader_id == *id {
                        return Ok(*id);
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("no leader within {WAIT:?}");
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    fn client(&self, id: u64) -> SafekeeperClient<Channel> {
        self.router.client(id)
    }

    async fn status(&self, id: u64) -> Result<StatusResponse> {
        self.router.status(id).await
    }

    async fn register(&self, timeline: TimelineId) -> Result<RegisterPrimaryResponse> {
        self.router.register(timeline).await
    }

    async fn append(
        &self,
        timeline: TimelineId,
        generation: u32,
        mutations: Bytes,
    ) -> Result<AppendWalResponse, Status> {
        self.router.append(timeline, generation, mutations).await
    }

    async fn stop_all(&mut self) -> Result<()> {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await?;
        }
        Ok(())
    }

    /// Streams `timeline` from `node` until `committed_lsn` reaches `upto`.
    async fn stream(&self, node: u64, timeline: TimelineId, upto: u64) -> Result<Vec<WalRecord>> {
        self.stream_from(node, timeline, 0, upto).await
    }

    /// Streams `timeline` from `node`, from `start`, until `committed_lsn` reaches `upto`.
    async fn stream_from(
        &self,
        node: u64,
        timeline: TimelineId,
        start: u64,
        upto: u64,
    ) -> Result<Vec<WalRecord>> {
        let mut client = self.client(node);
        let mut stream = client
            .stream_wal(StreamWalRequest {
                timeline_id: timeline.to_string(),
                start_lsn: start,
            })
            .await?
            .into_inner();
        let mut records = Vec::new();
        let mut committed = 0;
        timeout(WAIT, async {
            while let Some(chunk) = stream.message().await? {
                anyhow::ensure!(chunk.committed_lsn >= committed, "committed_lsn went back");
                committed = chunk.committed_lsn;
                records.extend(chunk.records);
                if committed >= upto {
                    return Ok(());
                }
            }
            bail!("stream ended at {committed}")
        })
        .await
        .with_context(|| format!("node {node} did not stream up to {upto} (got {committed})"))??;
        Ok(records)
    }
}

fn txn(tag: &str, i: usize) -> Bytes {
    encode_mutations(&[Mutation::Put {
        key: Bytes::from(format!("{tag}-{i:05}")),
        value: Bytes::from(vec![i as u8; 16]),
    }])
}

fn key_of(record: &WalRecord) -> String {
    let mutations = decode_mutations(&record.mutations).expect("valid mutations");
    String::from_utf8(mutations[0].key().to_vec()).expect("utf8 key")
}

fn assert_ordered(records: &[WalRecord]) {
    for w in records.windows(2) {
        assert!(w[0].lsn <= w[1].lsn, "records out of LSN order");
        if w[0].lsn < w[1].lsn {
            assert!(w[0].commit_time_micros < w[1].commit_time_micros);
        } else {
            assert_eq!(w[0].commit_time_micros, w[1].commit_time_micros);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_stream_in_order_and_registration_fences() -> Result<()> {
    let mut cluster = Cluster::start().await?;
    cluster.wait_leader().await?;
    let tl = TimelineId::generate();

    let first = cluster.register(tl).await?;
    assert_eq!(first.generation, 1);
    let mut acked = Vec::new();
    for i in 0..100 {
        let r = cluster.append(tl, 1, txn("p1", i)).await?;
        assert!(r.lsn > first.commit_lsn);
        acked.push(r);
    }
    assert!(acked.windows(2).all(|w| w[0].lsn < w[1].lsn));
    assert!(acked
        .windows(2)
        .all(|w| w[0].commit_time_micros < w[1].commit_time_micros));

    // Every node streams exactly these records, with the LSNs the appends returned.
    let last = acked.last().unwrap().lsn;
    for node in 1..=3 {
        let records = cluster.stream(node, tl, last).await?;
        assert_eq!(records.len(), 100, "node {node}");
        for (i, (record, ack)) in records.iter().zip(&acked).enumerate() {
            assert_eq!(key_of(record), format!("p1-{i:05}"));
            assert_eq!(record.lsn, ack.lsn);
            assert_eq!(record.commit_time_micros, ack.commit_time_micros);
        }
    }

    // A follower refuses writes and names the leader. Leadership may have moved during the
    // appends on a loaded machine (an election timeout is 1.5-3 s), so the leader is looked up
    // again here, and again after the call: the hint names the leader of that moment.
    let leader = cluster.wait_leader().await?;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let err = cluster
        .client(follower)
        .append_wal(AppendWalRequest {
            timeline_id: tl.to_string(),
            generation: 1,
            mutations: txn("p1", 999),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    let hint = err
        .metadata()
        .get(LEADER_METADATA_KEY)
        .context("leader hint")?;
    let leader_after = cluster.wait_leader().await?;
    assert!(
        [&cluster.peers[&leader], &cluster.peers[&leader_after]]
            .contains(&&hint.to_str()?.to_string()),
        "hint {hint:?} names neither leader {leader} nor {leader_after}"
    );
    let err = cluster
        .client(follower)
        .register_primary(RegisterPrimaryRequest {
            timeline_id: tl.to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);

    // A second primary fences the first.
    let second = cluster.register(tl).await?;
    assert_eq!(second.generation, 2);
    assert!(second.commit_lsn > last);
    let err = cluster.append(tl, 1, txn("stale", 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // A generation never issued reaches the log and is refused when applied.
    let err = cluster.append(tl, 7, txn("stale", 1)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // Unregistered timelines and generation 0 are refused too.
    let err = cluster
        .append(TimelineId::generate(), 0, txn("stale", 2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = cluster
        .client(leader)
        .append_wal(AppendWalRequest {
            timeline_id: "not-a-timeline".into(),
            generation: 1,
            mutations: txn("stale", 3),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let mut newer = Vec::new();
    for i in 0..10 {
        newer.push(cluster.append(tl, 2, txn("p2", i)).await?);
    }
    let last = newer.last().unwrap().lsn;
    for node in 1..=3 {
        let records = cluster.stream(node, tl, last).await?;
        let keys: Vec<String> = records.iter().map(key_of).collect();
        assert_eq!(records.len(), 110, "node {node}: {keys:?}");
        assert!(keys.iter().all(|k| !k.starts_with("stale")));
        assert_eq!(keys[100], "p2-00000");
        assert_ordered(&records);
    }
    cluster.stop_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_are_group_committed() -> Result<()> {
    let mut cluster = Cluster::start().await?;
    cluster.wait_leader().await?;
    let tl = TimelineId::generate();
    let generation = cluster.register(tl).await?.generation;

    let mut tasks = Vec::new();
    for i in 0..200 {
        let router = cluster.router.clone();
        tasks.push(tokio::spawn(async move {
            router.append(tl, generation, txn("g", i)).await
        }));
    }
    let mut acks = Vec::new();
    for task in tasks {
        acks.push(task.await??);
    }
    let lsns: BTreeSet<u64> = acks.iter().map(|a| a.lsn).collect();
    tracing::info!(entries = lsns.len(), "200 concurrent appends committed");
    assert!(
        lsns.len() <= 100,
        "200 concurrent appends took {} Raft entries",
        lsns.len()
    );
    // Transactions sharing an entry share its commit time.
    let mut times = HashMap::new();
    for a in &acks {
        assert_eq!(
            *times.entry(a.lsn).or_insert(a.commit_time_micros),
            a.commit_time_micros
        );
    }

    let last = *lsns.last().unwrap();
    let records = cluster.stream(1, tl, last).await?;
    assert_eq!(records.len(), 200);
    assert_ordered(&records);
    let streamed: BTreeSet<String> = records.iter().map(key_of).collect();
    assert_eq!(streamed.len(), 200);

    cluster.stop_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_follower_catches_up_and_a_full_restart_loses_nothing() -> Result<()> {
    let mut cluster = Cluster::start().await?;
    let leader = cluster.wait_leader().await?;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let tl = TimelineId::generate();
    let generation = cluster.register(tl).await?.generation;

    // A primary appends without pause while a follower is stopped and restarted.
    let (acks_tx, mut acks_rx) = tokio::sync::mpsc::unbounded_channel();
    let stop_appending = CancellationToken::new();
    let appender = {
        let router = cluster.router.clone();
        let stop = stop_appending.clone();
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.is_cancelled() {
                let ack = router.append(tl, generation, txn("f", i)).await?;
                let _ = acks_tx.send((ack, i));
                i += 1;
            }
            anyhow::Ok(i)
        })
    };
    let mut acked = Vec::new();
    let appender = std::sync::Arc::new(tokio::sync::Mutex::new(Some(appender)));
    let mut wait_acks = async |n: usize, acked: &mut Vec<(AppendWalResponse, usize)>| {
        while acked.len() < n {
            let ack = timeout(WAIT, acks_rx.recv())
                .await
                .context("appends stalled")?;
            let Some(ack) = ack else {
                // Say why the appender stopped.
                let task = appender.lock().await.take();
                let why = match task {
                    Some(t) => format!("{:?}", t.await),
                    None => "unknown".into(),
                };
                bail!("appender stopped: {why}");
            };
            acked.push(ack);
        }
        anyhow::Ok(())
    };
    wait_acks(30, &mut acked).await?;
    cluster.stop(follower).await?;
    // Two of three suffice.
    wait_acks(80, &mut acked).await?;
    cluster.restart(follower).await?;
    wait_acks(100, &mut acked).await?;
    stop_appending.cancel();
    let task = appender.lock().await.take().context("appender gone")?;
    let total = task.await??;
    wait_acks(total, &mut acked).await?;
    // The restarted follower catches up with the leader.
    let deadline = Instant::now() + WAIT;
    loop {
        let lead = cluster.status(leader).await?;
        if let Ok(s) = cluster.status(follower).await {
            if s.applied_index >= lead.applied_index && s.applied_index > 0 {
                break;
            }
        }
        if Instant::now() > deadline {
            bail!("node {follower} did not catch up");
        }
        sleep(Duration::from_millis(50)).await;
    }
    let last = acked.last().unwrap().0.lsn;
    let expect = |records: &[WalRecord]| {
        let keys: Vec<String> = records.iter().map(key_of).collect();
        let want: Vec<String> = acked.iter().map(|(_, i)| format!("f-{i:05}")).collect();
        assert_eq!(keys, want);
        for (record, (ack, _)) in records.iter().zip(&acked) {
            assert_eq!(record.lsn, ack.lsn);
        }
    };
    expect(&cluster.stream(follower, tl, last).await?);

    // Stop everything and start again from the data directories.
    cluster.stop_all().await?;
    for id in 1..=3 {
        cluster.restart(id).await?;
    }
    cluster.wait_leader().await?;
    for node in 1..=3 {
        expect(&cluster.stream(node, tl, last).await?);
    }
    // And the group still takes writes from the same primary.
    let after = cluster.append(tl, generation, txn("f", 100)).await?;
    assert!(after.lsn > last);
    cluster.stop_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_leader_takes_over_when_the_leader_stops() -> Result<()> {
    let mut cluster = Cluster::start().await?;
    let old_leader = cluster.wait_leader().await?;
    let tl = TimelineId::generate();
    let generation = cluster.register(tl).await?.generation;
    let mut acked = Vec::new();
    for i in 0..20 {
        acked.push(cluster.append(tl, generation, txn("l", i)).await?);
    }

    cluster.stop(old_leader).await?;
    let new_leader = cluster.wait_leader().await?;
    assert_ne!(new_leader, old_leader);
    // Appends succeed again, found through the leader hint; the generation survived.
    for i in 20..40 {
        acked.push(cluster.append(tl, generation, txn("l", i)).await?);
    }
    let last = acked.last().unwrap().lsn;
    let records = cluster.stream(new_leader, tl, last).await?;
    let streamed: Vec<(u64, String)> = records.iter().map(|r| (r.lsn, key_of(r))).collect();
    for (i, ack) in acked.iter().enumerate() {
        assert!(
            streamed.contains(&(ack.lsn, format!("l-{i:05}"))),
            "acknowledged record {i} at {} is missing",
            ack.lsn
        );
    }
    assert_ordered(&records);

    // The old leader comes back as a follower and serves the same WAL.
    cluster.restart(old_leader).await?;
    let again = cluster.stream(old_leader, tl, last).await?;
    assert_eq!(
        again.iter().map(key_of).collect::<Vec<_>>(),
        records.iter().map(key_of).collect::<Vec<_>>()
    );
    cluster.stop_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_records_replicate_and_stream() -> Result<()> {
    let mut cluster = Cluster::start().await?;
    cluster.wait_leader().await?;
    let tl = TimelineId::generate();
    let generation = cluster.register(tl).await?.generation;

    // About the size of a 100,000-row INSERT, a few at once: over the batch limit together.
    let big = |i: u8| {
        encode_mutations(&[Mutation::Put {
            key: Bytes::from(format!("big-{i}")),
            value: Bytes::from(vec![i; 10 << 20]),
        }])
    };
    let mut tasks = Vec::new();
    for i in 0..3u8 {
        let router = cluster.router.clone();
        let mutations = big(i);
        tasks.push(tokio::spawn(async move {
            router.append(tl, generation, mutations).await
        }));
    }
    let mut last = 0;
    for task in tasks {
        last = last.max(task.await??.lsn);
    }
    let small = cluster.append(tl, generation, txn("after", 0)).await?;
    assert!(small.lsn > last);
    for node in 1..=3 {
        let records = cluster.stream(node, tl, small.lsn).await?;
        assert_eq!(records.len(), 4, "node {node}");
        let mut bigs: Vec<&WalRecord> = records[..3].iter().collect();
        bigs.sort_by_key(|r| key_of(r));
        for (i, record) in bigs.iter().enumerate() {
            assert_eq!(record.mutations, big(i as u8));
        }
    }
    cluster.stop_all().await
}

/// A transaction far over `max_entry_bytes` (as a large COPY is) is written as bounded parts and
/// a joined entry while small appends go on, and streams back as one record at its LSN.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transactions_over_the_entry_limit_are_split_and_stream_whole() -> Result<()> {
    const MAX_ENTRY: usize = 64 << 10;
    let mut cluster = Cluster::start_with(|config| {
        config.max_entry_bytes = MAX_ENTRY;
        config.replication_batch_bytes = MAX_ENTRY;
    })
    .await?;
    cluster.wait_leader().await?;
    let tl = TimelineId::generate();
    let generation = cluster.register(tl).await?.generation;

    // Many rows, like a COPY: not a multiple of the entry limit.
    let big = |tag: &str, rows: usize| {
        let mutations: Vec<Mutation> = (0..rows)
            .map(|i| Mutation::Put {
                key: Bytes::from(format!("{tag}-{i:07}")),
                value: Bytes::from(format!("row {i} of {tag}, padded {:>64}", i * 7919)),
            })
            .collect();
        encode_mutations(&mutations)
    };
    let bigs = [big("bigA", 40_000), big("bigB", 15_000)];
    assert!(bigs[0].len() > 3 << 20, "{} bytes", bigs[0].len());
    let mut big_tasks = Vec::new();
    for mutations in bigs.clone() {
        let router = cluster.router.clone();
        big_tasks.push(tokio::spawn(async move {
            router.append(tl, generation, mutations).await
        }));
    }
    let mut small_tasks = Vec::new();
    for i in 0..60 {
        let router = cluster.router.clone();
        small_tasks.push(tokio::spawn(async move {
            if i % 20 == 0 {
                sleep(Duration::from_millis(10 * i as u64)).await;
            }
            router.append(tl, generation, txn("s", i)).await
        }));
    }
    // A large transaction of a generation never issued is refused like a small one.
    let refused = cluster
        .append(tl, 7, big("stale", 2_000))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let mut big_acks = Vec::new();
    for task in big_tasks {
        big_acks.push(task.await??);
    }
    let mut small_acks = Vec::new();
    for task in small_tasks {
        small_acks.push(task.await??);
    }
    let last = big_acks
        .iter()
        .chain(&small_acks)
        .map(|a| a.lsn)
        .max()
        .unwrap();
    // The log holds at least one entry per piece.
    let leader = cluster.wait_leader().await?;
    let pieces: usize = bigs.iter().map(|b| b.len().div_ceil(MAX_ENTRY)).sum();
    assert!(cluster.status(leader).await?.last_log_index >= pieces as u64);

    let check = |node: u64, records: &[WalRecord]| {
        assert_eq!(records.len(), 62, "node {node}");
        assert_ordered(records);
        for (mutations, ack) in bigs.iter().zip(&big_acks) {
            let at: Vec<&WalRecord> = records.iter().filter(|r| r.lsn == ack.lsn).collect();
            assert_eq!(at.len(), 1, "node {node}: one record at LSN {}", ack.lsn);
            assert_eq!(at[0].commit_time_micros, ack.commit_time_micros);
            assert!(
                at[0].mutations == *mutations,
                "node {node}: big record differs"
            );
        }
        for (i, ack) in small_acks.iter().enumerate() {
            assert!(
                records
                    .iter()
                    .any(|r| r.lsn == ack.lsn && key_of(r) == format!("s-{i:05}")),
                "node {node}: small record {i} at {} is missing",
                ack.lsn
            );
        }
    };
    for node in 1..=3 {
        check(node, &cluster.stream(node, tl, last).await?);
    }
    // Reassembled from the segment files after a full restart, too.
    cluster.stop_all().await?;
    for id in 1..=3 {
        cluster.restart(id).await?;
    }
    cluster.wait_leader().await?;
    for node in 1..=3 {
        check(node, &cluster.stream(node, tl, last).await?);
    }
    cluster.stop_all().await
}

/// Every node's disk is lost after a checkpoint: the group starts again from object storage
/// alone, streams every offloaded transaction (split ones included) with its original LSN from
/// the bucket, keeps the timeline's generation history, and new commits continue after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_that_lost_every_disk_recovers_from_object_storage() -> Result<()> {
    const MAX_ENTRY: usize = 64 << 10;
    let bucket = tempfile::tempdir()?;
    let remote: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(bucket.path())?);
    let configure = |config: &mut SafekeeperConfig| {
        config.max_entry_bytes = MAX_ENTRY;
        config.replication_batch_bytes = MAX_ENTRY;
        // Small objects, so the leader's background offload seals several of them.
        config.offload_bytes = 16 << 10;
        config.offload_timeout = Duration::from_millis(400);
    };
    let mut cluster = Cluster::start_full(configure, Some(remote.clone())).await?;
    cluster.wait_leader().await?;
    let tl = TimelineId::generate();
    let generation = cluster.register(tl).await?.generation;
    let mut acks = Vec::new();
    for i in 0..200 {
        acks.push(cluster.append(tl, generation, txn("a", i)).await?);
    }
    // One transaction over the entry limit: parts, then a joined entry.
    let big: Vec<Mutation> = (0..6_000)
        .map(|i| Mutation::Put {
            key: Bytes::from(format!("big-{i:07}")),
            value: Bytes::from(format!("row {i:>40}")),
        })
        .collect();
    let big = encode_mutations(&big);
    assert!(big.len() > 3 * MAX_ENTRY);
    let big_ack = cluster.append(tl, generation, big.clone()).await?;

    // The background offload reaches the last commit without being asked.
    let deadline = Instant::now() + WAIT;
    loop {
        let offloaded = list_wal_objects(&remote).await?;
        if offloaded.iter().any(|(_, last)| *last >= big_ack.lsn) {
            assert!(offloaded.len() > 2, "{offloaded:?}");
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "not offloaded: {offloaded:?}");
        sleep(Duration::from_millis(100)).await;
    }
    // More commits, then a checkpoint from a follower: any node can take it.
    for i in 200..220 {
        acks.push(cluster.append(tl, generation, txn("a", i)).await?);
    }
    let last = acks.last().unwrap().lsn;
    let leader = cluster.wait_leader().await?;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    // A commit needs only a quorum, so this follower may not hold the last entries yet: it
    // offloads what it has, and reaches `last` once replication catches it up.
    let deadline = Instant::now() + WAIT;
    let checkpoint = loop {
        let checkpoint = cluster
            .client(follower)
            .checkpoint(CheckpointRequest {})
            .await?
            .into_inner();
        if checkpoint.offloaded_lsn >= last {
            break checkpoint;
        }
        anyhow::ensure!(Instant::now() < deadline, "{checkpoint:?} < {last}");
        sleep(Duration::from_millis(100)).await;
    };

    cluster.stop_all().await?;
    for dir in cluster.dirs.values() {
        std::fs::remove_dir_all(dir)?;
    }
    for id in 1..=3 {
        cluster.restart(id).await?;
    }
    cluster.wait_leader().await?;
    let status = cluster.status(follower).await?;
    anyhow::ensure!(
        status.applied_index >= checkpoint.offloaded_lsn,
        "{status:?}"
    );

    // Everything streams back from the bucket, with its original LSN.
    for node in 1..=3 {
        let records = cluster.stream(node, tl, last).await?;
        assert_eq!(records.len(), 221, "node {node}");
        assert_ordered(&records);
        for (i, ack) in acks.iter().enumerate() {
            let record = records.iter().find(|r| r.lsn == ack.lsn).unwrap();
            assert_eq!(key_of(record), format!("a-{i:05}"));
        }
        let joined = records.iter().find(|r| r.lsn == big_ack.lsn).unwrap();
        assert!(
            joined.mutations == big,
            "node {node}: the split transaction differs"
        );
    }
    // The generation history survived: a new primary registers above the old one, which is
    // then fenced, and commits continue after the recovered past.
    let registered = cluster.register(tl).await?;
    assert_eq!(registered.generation, generation + 1);
    assert!(registered.commit_lsn > last);
    let stale = cluster
        .append(tl, generation, txn("stale", 0))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);
    let next = cluster
        .append(tl, registered.generation, txn("after", 0))
        .await?;
    assert!(next.lsn > registered.commit_lsn);
    let records = cluster.stream(1, tl, next.lsn).await?;
    assert_eq!(records.len(), 222);
    assert_eq!(key_of(records.last().unwrap()), "after-00000");
    Ok(())
}

async fn list_wal_objects(remote: &Arc<dyn ObjectStore>) -> Result<Vec<(u64, u64)>> {
    use futures::TryStreamExt;
    let listed: Vec<_> = remote
        .list(Some(&object_store::path::Path::from(
            strata_core::layout::SAFEKEEPER_WAL_DIR,
        )))
        .try_collect()
        .await?;
    let mut ranges: Vec<(u64, u64)> = listed
        .iter()
        .filter_map(|m| {
            m.location
                .filename()
                .and_then(strata_core::layout::parse_safekeeper_wal_object)
        })
        .collect();
    ranges.sort_unstable();
    Ok(ranges)
}

/// With object storage failing, commits go on (the safekeepers hold the WAL), a checkpoint
/// says it failed, and once the store is back the leader's offload drains the backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commits_go_on_while_object_storage_fails_and_the_backlog_drains() -> Result<()> {
    let bucket = tempfile::tempdir()?;
    let local: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(bucket.path())?);
    let faulty = Arc::new(FaultyObjectStore::new(local.clone()));
    let configure = |config: &mut SafekeeperConfig| {
        config.offload_bytes = 4 << 10;
        config.offload_timeout = Duration::from_millis(300);
    };
    let remote: Arc<dyn ObjectStore> = faulty.clone();
    let cluster = Cluster::start_full(configure, Some(remote)).await?;
    cluster.wait_leader().await?;
    faulty.fail_next(Op::Write, u64::MAX);
    faulty.fail_next(Op::List, u64::MAX);

    let tl = TimelineId::generate();
    let generation = cluster.register(tl).await?.generation;
    let mut last = 0;
    for i in 0..150 {
        last = cluster.append(tl, generation, txn("down", i)).await?.lsn;
    }
    let deadline = Instant::now() + WAIT;
    while faulty.failed(Op::Write) + faulty.failed(Op::List) == 0 {
        anyhow::ensure!(Instant::now() < deadline, "the offload never tried");
        sleep(Duration::from_millis(50)).await;
    }
    let refused = cluster
        .client(1)
        .checkpoint(CheckpointRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(list_wal_objects(&local).await?.is_empty());

    faulty.fail_next(Op::Write, 0);
    faulty.fail_next(Op::List, 0);
    let deadline = Instant::now() + WAIT;
    loop {
        let objects = list_wal_objects(&local).await?;
        if objects.iter().any(|(_, l)| *l >= last) {
            // Consecutive and complete from the start of the log.
            let mut next = 0;
            for (first, l) in &objects {
                anyhow::ensure!(*first <= next, "gap before {first}: {objects:?}");
                next = next.max(l + 1);
            }
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "backlog not drained: {objects:?}"
        );
        sleep(Duration::from_millis(100)).await;
    }
    let records = cluster.stream(2, tl, last).await?;
    assert_eq!(records.len(), 150);
    Ok(())
}

/// WAL that is offloaded and covered by the pageserver's uploaded layers (the manifest's
/// `disk_consistent_lsn`) leaves every node's disk; streams still read it, from the bucket,
/// also after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offloaded_wal_covered_by_layers_is_trimmed_from_local_disks() -> Result<()> {
    let bucket = tempfile::tempdir()?;
    let remote: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(bucket.path())?);
    let configure = |config: &mut SafekeeperConfig| {
        config.segment_bytes = 2 << 10;
        config.offload_bytes = 4 << 10;
        config.offload_timeout = Duration::from_millis(200);
        config.wal_trim_interval = Duration::from_millis(200);
    };
    let mut cluster = Cluster::start_full(configure, Some(remote.clone())).await?;
    cluster.wait_leader().await?;
    let tl = TimelineId::generate();
    let generation = cluster.register(tl).await?.generation;
    let mut lsns = Vec::new();
    for i in 0..200 {
        lsns.push(cluster.append(tl, generation, txn("t", i)).await?.lsn);
    }
    let last = *lsns.last().unwrap();
    let deadline = Instant::now() + WAIT;
    while !list_wal_objects(&remote)
        .await?
        .iter()
        .any(|(_, l)| *l >= last)
    {
        anyhow::ensure!(Instant::now() < deadline, "not offloaded");
        sleep(Duration::from_millis(100)).await;
    }
    // Offloaded, but no layers cover it yet: every node keeps its whole log.
    sleep(Duration::from_millis(800)).await;
    for id in 1..=3 {
        assert_eq!(cluster.status(id).await?.first_log_index, 0, "node {id}");
    }
    let segments = |id: u64| -> Result<usize> {
        Ok(std::fs::read_dir(cluster.dirs[&id].join("wal"))?
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            })
            .count())
    };
    let before = segments(1)?;

    // The pageserver publishes a manifest covering half of it.
    let covered = lsns[99];
    let manifest =
        strata_core::layout::manifest_version(&strata_core::layout::timeline_manifest_dir(tl), 1);
    remote
        .put(
            &object_store::path::Path::from(manifest),
            format!(r#"{{"version": 1, "disk_consistent_lsn": {covered}, "layers": []}}"#).into(),
        )
        .await?;
    let deadline = Instant::now() + WAIT;
    for id in 1..=3 {
        loop {
            let first = cluster.status(id).await?.first_log_index;
            if first == covered + 1 {
                break;
            }
            anyhow::ensure!(first <= covered + 1, "node {id} trimmed too much: {first}");
            anyhow::ensure!(Instant::now() < deadline, "node {id} not trimmed: {first}");
            sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(segments(1)? < before, "no segment file was removed");
    for node in 1..=3 {
        let records = cluster.stream(node, tl, last).await?;
        assert_eq!(records.len(), 200, "node {node}");
        assert_ordered(&records);
    }
    // After a restart the trimmed log stays trimmed and still streams whole.
    cluster.stop(2).await?;
    cluster.restart(2).await?;
    cluster.wait_leader().await?;
    assert_eq!(cluster.status(2).await?.first_log_index, covered + 1);
    assert_eq!(cluster.stream(2, tl, last).await?.len(), 200);
    Ok(())
}

/// A manifest of the pageserver's, as far as the safekeepers read it.
async fn put_manifest(
    remote: &Arc<dyn ObjectStore>,
    timeline: TimelineId,
    version: u64,
    disk_consistent_lsn: u64,
    gc_cutoff_lsn: u64,
) -> Result<()> {
    let dir = strata_core::layout::timeline_manifest_dir(timeline);
    let name = strata_core::layout::manifest_version(&dir, version);
    let body = format!(
        r#"{{"version": {version}, "disk_consistent_lsn": {disk_consistent_lsn}, "gc_cutoff_lsn": {gc_cutoff_lsn}, "layers": []}}"#
    );
    remote
        .put(&object_store::path::Path::from(name), body.into())
        .await?;
    Ok(())
}

async fn list_state_objects(remote: &Arc<dyn ObjectStore>) -> Result<Vec<String>> {
    use futures::TryStreamExt;
    let prefix = object_store::path::Path::from(strata_core::layout::SAFEKEEPER_STATE_DIR);
    let mut names: Vec<String> = remote
        .list(Some(&prefix))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await?;
    names.sort();
    Ok(names)
}

#[tokio::test]
async fn offloaded_wal_below_every_gc_cutoff_and_the_newest_state_leaves_the_bucket() -> Result<()>
{
    let bucket = tempfile::tempdir()?;
    let remote: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(bucket.path())?);
    let configure = |config: &mut SafekeeperConfig| {
        config.offload_bytes = 2 << 10;
        config.offload_timeout = Duration::from_millis(200);
        config.wal_trim_interval = Duration::from_millis(200);
    };
    let mut cluster = Cluster::start_full(configure, Some(remote.clone())).await?;
    let leader = cluster.wait_leader().await?;
    let tl = TimelineId::generate();
    let generation = cluster.register(tl).await?.generation;
    let mut lsns = Vec::new();
    for i in 0..100 {
        lsns.push(cluster.append(tl, generation, txn("t", i)).await?.lsn);
    }
    cluster
        .client(leader)
        .checkpoint(CheckpointRequest {})
        .await?;
    for i in 100..200 {
        lsns.push(cluster.append(tl, generation, txn("t", i)).await?.lsn);
    }
    cluster
        .client(leader)
        .checkpoint(CheckpointRequest {})
        .await?;
    let last = *lsns.last().unwrap();
    let before = list_wal_objects(&remote).await?;
    assert!(before.len() > 4, "{before:?}");
    assert_eq!(list_state_objects(&remote).await?.len(), 2);

    // Layers cover everything, but nothing is below the pageserver's GC cutoff yet.
    put_manifest(&remote, tl, 1, last, 0).await?;
    sleep(Duration::from_millis(800)).await;
    assert_eq!(list_wal_objects(&remote).await?, before);

    // The cutoff moves to the middle: what lies wholly below it goes, and the older state.
    let cutoff = lsns[99];
    put_manifest(&remote, tl, 2, last, cutoff).await?;
    let deadline = Instant::now() + WAIT;
    loop {
        let now = list_wal_objects(&remote).await?;
        if now.iter().all(|(_, l)| *l > cutoff) {
            assert!(now.len() < before.len(), "{now:?}");
            assert_eq!(
                now.first().unwrap().0,
                before.iter().find(|(_, l)| *l > cutoff).unwrap().0
            );
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "not deleted: {now:?}");
        sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(list_state_objects(&remote).await?.len(), 1);

    // The bucket alone still brings the group back, and everything above the cutoff streams.
    cluster.stop_all().await?;
    for dir in cluster.dirs.values() {
        std::fs::remove_dir_all(dir)?;
    }
    for id in 1..=3 {
        cluster.restart(id).await?;
    }
    cluster.wait_leader().await?;
    let records = cluster.stream_from(1, tl, cutoff + 1, last).await?;
    assert_eq!(records.len(), 100);
    assert_ordered(&records);
    let next = cluster
        .append(tl, cluster.register(tl).await?.generation, txn("after", 0))
        .await?;
    assert!(next.lsn > last);
    Ok(())
}
