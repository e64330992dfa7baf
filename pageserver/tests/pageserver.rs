//! The pageserver through its public surface: `run()` on port 0, a gRPC client, and a fake
//! safekeeper that serves `StreamWal` from a script (the real quorum is exercised by the
//! end-to-end tests of the whole system).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;
use strata_core::wal::{encode_mutations, Mutation};
use strata_core::TimelineId;
use strata_pageserver::{run, PageserverConfig, PageserverError};
use strata_proto::pageserver::pageserver_client::PageserverClient;
use strata_proto::pageserver::{GetRequest, ScanRequest, TimelineStatusRequest};
use strata_proto::safekeeper::safekeeper_server::{Safekeeper, SafekeeperServer};
use strata_proto::safekeeper::{
    AppendWalRequest, AppendWalResponse, CheckpointRequest, CheckpointResponse,
    RegisterPrimaryRequest, RegisterPrimaryResponse, StatusRequest, StatusResponse,
    StreamWalRequest, WalChunk, WalRecord,
};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

// ---------------------------------------------------------------------------------------------
// A fake safekeeper: committed WAL is a list of records; StreamWal sends what is at or above
// the requested LSN, then whatever is committed later.

#[derive(Clone, Default)]
struct Committed {
    records: Vec<WalRecord>,
    committed_lsn: u64,
}

#[derive(Clone)]
struct FakeSafekeeper {
    wal: watch::Sender<Committed>,
    /// `start_lsn` of every StreamWal request received.
    requests: Arc<Mutex<Vec<u64>>>,
    /// Close each stream after this many chunks (to force reconnects).
    chunks_per_stream: Option<usize>,
}

impl FakeSafekeeper {
    fn new(chunks_per_stream: Option<usize>) -> Self {
        Self {
            wal: watch::Sender::new(Committed::default()),
            requests: Arc::default(),
            chunks_per_stream,
        }
    }

    /// Commits records (LSN, raw mutation bytes) and moves `committed_lsn` to `committed`.
    fn commit_raw(&self, records: Vec<(u64, Bytes)>, committed: u64) {
        self.wal.send_modify(|c| {
            c.records
                .extend(records.into_iter().map(|(lsn, mutations)| WalRecord {
                    lsn,
                    commit_time_micros: 0,
                    mutations,
                }));
            c.committed_lsn = c.committed_lsn.max(committed);
        });
    }

    fn commit(&self, lsn: u64, mutations: &[Mutation]) {
        self.commit_raw(vec![(lsn, encode_mutations(mutations))], lsn);
    }

    fn requests(&self) -> Vec<u64> {
        self.requests.lock().unwrap().clone()
    }

    async fn serve(self) -> (SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(SafekeeperServer::new(self))
                .serve_with_incoming_shutdown(
                    TcpListenerStream::new(listener),
                    token.cancelled_owned(),
                )
                .await
                .unwrap();
        });
        (addr, stop)
    }
}

#[tonic::async_trait]
impl Safekeeper for FakeSafekeeper {
    async fn register_primary(
        &self,
        _: Request<RegisterPrimaryRequest>,
    ) -> Result<Response<RegisterPrimaryResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn append_wal(
        &self,
        _: Request<AppendWalRequest>,
    ) -> Result<Response<AppendWalResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    type StreamWalStream = ReceiverStream<Result<WalChunk, Status>>;

    async fn stream_wal(
        &self,
        request: Request<StreamWalRequest>,
    ) -> Result<Response<Self::StreamWalStream>, Status> {
        let start = request.into_inner().start_lsn;
        self.requests.lock().unwrap().push(start);
        let mut wal = self.wal.subscribe();
        let limit = self.chunks_per_stream.unwrap_or(usize::MAX);
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut sent_upto = start.saturating_sub(1);
            let mut chunks = 0;
            loop {
                let now = wal.borrow_and_update().clone();
                if now.committed_lsn > sent_upto {
                    let records: Vec<WalRecord> = now
                        .records
                        .iter()
                        .filter(|r| r.lsn > sent_upto && r.lsn <= now.committed_lsn)
                        .cloned()
                        .collect();
                    let chunk = WalChunk {
                        records,
                        committed_lsn: now.committed_lsn,
                    };
                    if tx.send(Ok(chunk)).await.is_err() {
                        return;
                    }
                    sent_upto = now.committed_lsn;
                    chunks += 1;
                    if chunks >= limit {
                        return;
                    }
                }
                if wal.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn checkpoint(
        &self,
        _: Request<CheckpointRequest>,
    ) -> Result<Response<CheckpointResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

// ---------------------------------------------------------------------------------------------
// A pageserver under test.

struct Pageserver {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<Result<(), PageserverError>>,
    _data: TempDir,
}

impl Pageserver {
    async fn start(config: PageserverConfig, store: Arc<dyn ObjectStore>) -> Self {
        let data = tempfile::tempdir().unwrap();
        let config = PageserverConfig {
            data_dir: data.path().to_path_buf(),
            ..config
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(config, listener, store, stop.clone()));
        Self {
            addr,
            stop,
            task,
            _data: data,
        }
    }

    async fn client(&self) -> PageserverClient<Channel> {
        PageserverClient::connect(format!("http://{}", self.addr))
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn config(safekeepers: Vec<String>) -> PageserverConfig {
    PageserverConfig {
        safekeepers,
        checkpoint_distance: 256 * 1024,
        block_size: 4096,
        wait_lsn_timeout: Duration::from_secs(60),
        remote_retry_initial_backoff: Duration::from_millis(5),
        ..PageserverConfig::default()
    }
}

fn bucket() -> (TempDir, Arc<dyn ObjectStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    (dir, store)
}

fn key(i: u64) -> Bytes {
    Bytes::from(format!("row-{i:08}"))
}

fn value(i: u64, lsn: u64) -> Bytes {
    Bytes::from(format!(
        "value of {i} at {lsn}: {}",
        "v".repeat((i % 97) as usize)
    ))
}

fn put(i: u64, lsn: u64) -> Mutation {
    Mutation::Put {
        key: key(i),
        value: value(i, lsn),
    }
}

/// Scans `[start, end)` at `lsn`, returning the pairs and the number of chunks.
async fn scan(
    client: &mut PageserverClient<Channel>,
    timeline: TimelineId,
    start: Bytes,
    end: Bytes,
    lsn: u64,
    not_modified_since: u64,
    limit: u64,
) -> Result<(Vec<(Bytes, Bytes)>, usize), Status> {
    let mut stream = client
        .scan(ScanRequest {
            timeline_id: timeline.to_string(),
            lsn,
            not_modified_since,
            start,
            end,
            limit,
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        assert_eq!(chunk.keys.len(), chunk.values.len());
        chunks += 1;
        out.extend(chunk.keys.into_iter().zip(chunk.values));
    }
    Ok((out, chunks))
}

async fn get(
    client: &mut PageserverClient<Channel>,
    timeline: TimelineId,
    keys: Vec<Bytes>,
    lsn: u64,
    not_modified_since: u64,
) -> Result<Vec<Option<Bytes>>, Status> {
    let response = client
        .get(GetRequest {
            timeline_id: timeline.to_string(),
            lsn,
            not_modified_since,
            keys,
        })
        .await?
        .into_inner();
    Ok(response.values.into_iter().map(|v| v.value).collect())
}

/// Writes rows 0..3000 at LSNs 1..=30 (100 rows per record), then rewrites every third row
/// at LSN 40 and deletes every tenth at LSN 50.
fn write_rows(sk: &FakeSafekeeper) {
    for lsn in 1..=30u64 {
        let rows: Vec<Mutation> = ((lsn - 1) * 100..lsn * 100).map(|i| put(i, lsn)).collect();
        sk.commit(lsn, &rows);
    }
    let rewrites: Vec<Mutation> = (0..3000).step_by(3).map(|i| put(i, 40)).collect();
    sk.commit(40, &rewrites);
    let deletes: Vec<Mutation> = (0..3000)
        .step_by(10)
        .map(|i| Mutation::Delete { key: key(i) })
        .collect();
    sk.commit(50, &deletes);
}

/// What row `i` holds at `lsn` after [`write_rows`].
fn expected(i: u64, lsn: u64) -> Option<Bytes> {
    let written = i / 100 + 1;
    if lsn >= 50 && i.is_multiple_of(10) {
        None
    } else if lsn >= 40 && i.is_multiple_of(3) {
        Some(value(i, 40))
    } else if lsn >= written {
        Some(value(i, written))
    } else {
        None
    }
}

/// Checks Get and Scan at several LSNs against [`expected`].
async fn check_rows(client: &mut PageserverClient<Channel>, timeline: TimelineId) {
    for lsn in [0u64, 1, 15, 30, 45, 50, u64::MAX] {
        let keys: Vec<Bytes> = (0..3000).step_by(7).map(key).collect();
        let got = get(client, timeline, keys, lsn, 0).await.unwrap();
        let want: Vec<_> = (0..3000).step_by(7).map(|i| expected(i, lsn)).collect();
        assert_eq!(got, want, "get at {lsn}");

        let (rows, _) = scan(client, timeline, key(1234), key(2345), lsn, 0, 0)
            .await
            .unwrap();
        let want: Vec<_> = (1234..2345)
            .filter_map(|i| expected(i, lsn).map(|v| (key(i), v)))
            .collect();
        assert_eq!(rows, want, "scan at {lsn}");
    }
}

async fn status(
    client: &mut PageserverClient<Channel>,
    timeline: TimelineId,
) -> strata_proto::pageserver::TimelineStatusResponse {
    client
        .timeline_status(TimelineStatusRequest {
            timeline_id: timeline.to_string(),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn manifest_versions(store: &Arc<dyn ObjectStore>, timeline: TimelineId) -> Vec<Path> {
    let prefix = Path::from(format!("timelines/{timeline}/manifest"));
    store
        .list(Some(&prefix))
        .map(|m| m.unwrap().location)
        .collect()
        .await
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_scan_and_status_over_grpc() {
    let (_bucket, store) = bucket();
    let sk = FakeSafekeeper::new(None);
    let (sk_addr, _sk_stop) = sk.clone().serve().await;
    let ps = Pageserver::start(config(vec![sk_addr.to_string()]), store.clone()).await;
    let mut client = ps.client().await;
    let timeline = TimelineId::generate();

    write_rows(&sk);
    // The first read attaches the timeline and waits until WAL up to 50 is ingested.
    let got = get(&mut client, timeline, vec![key(1), key(3), key(10)], 50, 50)
        .await
        .unwrap();
    assert_eq!(got, vec![expected(1, 50), expected(3, 50), None]);
    check_rows(&mut client, timeline).await;

    // A whole-table scan arrives in several chunks.
    let (rows, chunks) = scan(&mut client, timeline, Bytes::new(), Bytes::new(), 50, 50, 0)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2700);
    assert!(chunks > 1, "{chunks} chunks");
    assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
    let (rows, _) = scan(&mut client, timeline, key(5), Bytes::new(), 50, 0, 25)
        .await
        .unwrap();
    assert_eq!(rows.len(), 25);
    assert_eq!(rows[0].0, key(5));

    // The ingested WAL is frozen into a layer file in the background: wait for it.
    let mut s = status(&mut client, timeline).await;
    for _ in 0..200 {
        if s.layer_count >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        s = status(&mut client, timeline).await;
    }
    assert_eq!(s.last_record_lsn, 50);
    assert!(s.layer_count >= 1, "{s:?}");
    assert!(s.remote_consistent_lsn <= s.disk_consistent_lsn);
    assert!(s.disk_consistent_lsn <= s.last_record_lsn);

    // Bad requests.
    let err = get(&mut client, timeline, vec![key(1)], 5, 6)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = client
        .timeline_status(TimelineStatusRequest {
            timeline_id: "not-a-timeline".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let (rows, _) = scan(&mut client, timeline, key(9), key(1), 50, 0, 0)
        .await
        .unwrap();
    assert!(rows.is_empty());

    ps.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_time_out_when_wal_does_not_arrive() {
    let (_bucket, store) = bucket();
    let sk = FakeSafekeeper::new(None);
    let (sk_addr, _sk_stop) = sk.clone().serve().await;
    let ps = Pageserver::start(
        PageserverConfig {
            wait_lsn_timeout: Duration::from_millis(200),
            ..config(vec![sk_addr.to_string()])
        },
        store,
    )
    .await;
    let mut client = ps.client().await;
    let timeline = TimelineId::generate();

    let err = get(&mut client, timeline, vec![key(1)], 5, 5)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    let err = scan(&mut client, timeline, Bytes::new(), Bytes::new(), 5, 5, 0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    // Reads that need no WAL are answered at once, from an empty timeline.
    let got = get(&mut client, timeline, vec![key(1)], 5, 0)
        .await
        .unwrap();
    assert_eq!(got, vec![None]);

    // Once WAL arrives, waiting reads succeed; WAL that does not decode stops ingest rather
    // than being applied.
    sk.commit(1, &[put(1, 1)]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut got = get(&mut client, timeline, vec![key(1)], 1, 1).await;
    while matches!(&got, Err(s) if s.code() == Code::Unavailable) {
        assert!(tokio::time::Instant::now() < deadline, "WAL never ingested");
        got = get(&mut client, timeline, vec![key(1)], 1, 1).await;
    }
    assert_eq!(got.unwrap(), vec![Some(value(1, 1))]);
    sk.commit_raw(vec![(2, Bytes::from_static(b"garbage!"))], 2);
    sk.commit(3, &[put(1, 3)]);
    let err = get(&mut client, timeline, vec![key(1)], 3, 3)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(status(&mut client, timeline).await.last_record_lsn, 1);

    ps.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_reconnects_from_the_last_ingested_lsn() {
    let (_bucket, store) = bucket();
    // Two safekeepers sharing one WAL, each closing its stream after one chunk.
    let a = FakeSafekeeper::new(Some(1));
    let b = FakeSafekeeper {
        requests: Arc::default(),
        ..a.clone()
    };
    let (a_addr, _a_stop) = a.clone().serve().await;
    let (b_addr, _b_stop) = b.clone().serve().await;
    let ps = Pageserver::start(config(vec![a_addr.to_string(), b_addr.to_string()]), store).await;
    let mut client = ps.client().await;
    let timeline = TimelineId::generate();

    for lsn in 1..=5u64 {
        a.commit(lsn * 10, &[put(lsn, lsn * 10)]);
        let got = get(&mut client, timeline, vec![key(lsn)], lsn * 10, lsn * 10)
            .await
            .unwrap();
        assert_eq!(got, vec![Some(value(lsn, lsn * 10))]);
    }
    let mut starts = a.requests();
    starts.extend(b.requests());
    starts.sort();
    // Every reconnect asked for the WAL right after what was already ingested.
    assert_eq!(starts[0], 1);
    for lsn in 1..5u64 {
        assert!(starts.contains(&(lsn * 10 + 1)), "{starts:?}");
    }
    assert!(!a.requests().is_empty() && !b.requests().is_empty());
    ps.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_uploads_everything_and_a_new_pageserver_serves_it_from_the_bucket() {
    let (_bucket, store) = bucket();
    let sk = FakeSafekeeper::new(None);
    let (sk_addr, sk_stop) = sk.clone().serve().await;
    let timeline = TimelineId::generate();
    {
        let ps = Pageserver::start(config(vec![sk_addr.to_string()]), store.clone()).await;
        let mut client = ps.client().await;
        write_rows(&sk);
        get(&mut client, timeline, vec![], 50, 50).await.unwrap();
        ps.stop().await;
    }
    assert!(!manifest_versions(&store, timeline).await.is_empty());
    // The safekeepers are gone and the local cache is new: everything must come from the
    // bucket.
    sk_stop.cancel();
    let ps = Pageserver::start(config(Vec::new()), store.clone()).await;
    let mut client = ps.client().await;
    let s = status(&mut client, timeline).await;
    assert_eq!(s.last_record_lsn, 50);
    assert_eq!(s.remote_consistent_lsn, 50);
    check_rows(&mut client, timeline).await;
    ps.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_attach_once() {
    let (_bucket, store) = bucket();
    let ps = Pageserver::start(config(Vec::new()), store.clone()).await;
    let timeline = TimelineId::generate();
    let mut reads = Vec::new();
    for _ in 0..16 {
        let mut client = ps.client().await;
        reads.push(tokio::spawn(async move {
            get(&mut client, timeline, vec![key(1)], 0, 0).await
        }));
    }
    for r in reads {
        assert_eq!(r.await.unwrap().unwrap(), vec![None]);
    }
    // One attach: one manifest version (the ownership claim), until shutdown publishes.
    assert_eq!(manifest_versions(&store, timeline).await.len(), 1);
    ps.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Three real safekeepers: the pageserver ingests what a primary commits through them, and
// fails over when the safekeeper it streams from stops.

mod real_safekeepers {
    use std::collections::BTreeMap;

    use strata_proto::safekeeper::safekeeper_client::SafekeeperClient;
    use strata_proto::LEADER_METADATA_KEY;
    use strata_safekeeper::SafekeeperConfig;

    use super::*;

    const DEADLINE: Duration = Duration::from_secs(60);

    struct Quorum {
        _root: TempDir,
        addrs: Vec<String>,
        nodes: Vec<Option<(CancellationToken, JoinHandle<()>)>>,
    }

    impl Quorum {
        async fn start() -> Self {
            let root = tempfile::tempdir().unwrap();
            let mut listeners = Vec::new();
            let mut peers = BTreeMap::new();
            for id in 1..=3u64 {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                peers.insert(id, listener.local_addr().unwrap().to_string());
                listeners.push((id, listener));
            }
            let mut nodes = Vec::new();
            for (id, listener) in listeners {
                let config =
                    SafekeeperConfig::new(id, root.path().join(format!("sk-{id}")), peers.clone());
                let stop = CancellationToken::new();
                let token = stop.clone();
                let task = tokio::spawn(async move {
                    strata_safekeeper::run(config, listener, None, token)
                        .await
                        .unwrap();
                });
                nodes.push(Some((stop, task)));
            }
            Self {
                _root: root,
                addrs: peers.into_values().collect(),
                nodes,
            }
        }

        async fn stop(&mut self, index: usize) {
            if let Some((stop, task)) = self.nodes[index].take() {
                stop.cancel();
                task.await.unwrap();
            }
        }

        /// Calls the leader as a compute does: follow `x-strata-leader` hints, else try the
        /// next running node, until the deadline.
        async fn call<T, F, Fut>(&self, mut call: F) -> T
        where
            F: FnMut(SafekeeperClient<Channel>) -> Fut,
            Fut: std::future::Future<Output = Result<Response<T>, Status>>,
        {
            let running: Vec<&String> = self
                .addrs
                .iter()
                .zip(&self.nodes)
                .filter(|(_, n)| n.is_some())
                .map(|(a, _)| a)
                .collect();
            let deadline = tokio::time::Instant::now() + DEADLINE;
            let mut target = running[0].clone();
            let mut next = 0;
            loop {
                let client = Channel::from_shared(format!("http://{target}"))
                    .unwrap()
                    .connect_timeout(Duration::from_millis(500))
                    .connect_lazy();
                match call(SafekeeperClient::new(client)).await {
                    Ok(r) => return r.into_inner(),
                    Err(s) if s.code() == Code::Unavailable => {
                        assert!(tokio::time::Instant::now() < deadline, "no leader: {s}");
                        target = match s.metadata().get(LEADER_METADATA_KEY) {
                            Some(hint) => hint.to_str().unwrap().to_string(),
                            None => {
                                next = (next + 1) % running.len();
                                running[next].clone()
                            }
                        };
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(s) => panic!("safekeeper call failed: {s}"),
                }
            }
        }

        async fn register(&self, timeline: TimelineId) -> u32 {
            let request = RegisterPrimaryRequest {
                timeline_id: timeline.to_string(),
            };
            self.call(|mut c| {
                let request = request.clone();
                async move { c.register_primary(request).await }
            })
            .await
            .generation
        }

        async fn append(&self, timeline: TimelineId, generation: u32, m: &[Mutation]) -> u64 {
            let request = AppendWalRequest {
                timeline_id: timeline.to_string(),
                generation,
                mutations: encode_mutations(m),
            };
            self.call(|mut c| {
                let request = request.clone();
                async move { c.append_wal(request).await }
            })
            .await
            .lsn
        }
    }

    /// Appends transactions `range` (each rewrites a few rows, every seventh deletes one),
    /// returning the last commit LSN.
    async fn append_batch(
        quorum: &Quorum,
        timeline: TimelineId,
        generation: u32,
        range: std::ops::Range<u64>,
        model: &mut BTreeMap<Bytes, Bytes>,
    ) -> u64 {
        let mut last = 0;
        for tx in range {
            let mut muts = Vec::new();
            for j in 0..3 {
                let i = (tx * 13 + j * 101) % 200;
                if (tx + j).is_multiple_of(7) {
                    model.remove(&key(i));
                    muts.push(Mutation::Delete { key: key(i) });
                } else {
                    model.insert(key(i), value(i, tx));
                    muts.push(put(i, tx));
                }
            }
            last = quorum.append(timeline, generation, &muts).await;
        }
        last
    }

    async fn check(
        client: &mut PageserverClient<Channel>,
        timeline: TimelineId,
        lsn: u64,
        model: &BTreeMap<Bytes, Bytes>,
    ) {
        let (rows, _) = scan(client, timeline, Bytes::new(), Bytes::new(), lsn, lsn, 0)
            .await
            .unwrap();
        let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(rows, want);
        let keys: Vec<Bytes> = (0..200).map(key).collect();
        let got = get(client, timeline, keys.clone(), lsn, lsn).await.unwrap();
        let want: Vec<_> = keys.iter().map(|k| model.get(k).cloned()).collect();
        assert_eq!(got, want);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ingests_from_three_real_safekeepers_and_fails_over() {
        let (_bucket, store) = bucket();
        let mut quorum = Quorum::start().await;
        let timeline = TimelineId::generate();
        let generation = quorum.register(timeline).await;
        let mut model = BTreeMap::new();

        let ps = Pageserver::start(config(quorum.addrs.clone()), store.clone()).await;
        let mut client = ps.client().await;
        let lsn = append_batch(&quorum, timeline, generation, 0..30, &mut model).await;
        check(&mut client, timeline, lsn, &model).await;

        // The receiver streams from the first safekeeper; stopping it forces a reconnect to
        // another, from the last ingested LSN + 1.
        quorum.stop(0).await;
        let lsn = append_batch(&quorum, timeline, generation, 30..60, &mut model).await;
        check(&mut client, timeline, lsn, &model).await;

        // A new pageserver with an empty cache: layers from the bucket, the rest from the WAL.
        ps.stop().await;
        let lsn = append_batch(&quorum, timeline, generation, 60..80, &mut model).await;
        let ps = Pageserver::start(config(quorum.addrs.clone()), store).await;
        let mut client = ps.client().await;
        check(&mut client, timeline, lsn, &model).await;
        ps.stop().await;
        quorum.stop(1).await;
        quorum.stop(2).await;
    }
}
