//! Timeline-level tests: WAL records fed straight into a timeline (as the WAL receiver does),
//! object_store's `LocalFileSystem` on a temporary directory as the bucket.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use strata_core::wal::{Mutation, WalRecord};
use strata_core::{layout, Lsn, TimelineId};
use strata_faults::{FaultyObjectStore, Op};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use crate::config::PageserverConfig;
use crate::error::PageserverError;
use crate::layer_cache::LayerCache;
use crate::manifest::Manifest;
use crate::remote::RemoteStorage;
use crate::test_util::*;
use crate::timeline::Timeline;

/// Every version of every key: the answer any read must give.
#[derive(Default)]
pub(crate) struct Model {
    versions: BTreeMap<(Bytes, Lsn), Option<Bytes>>,
}

impl Model {
    pub(crate) fn apply(&mut self, r: &WalRecord) {
        for m in &r.mutations {
            let value = match m {
                Mutation::Put { value, .. } => Some(value.clone()),
                Mutation::Delete { .. } => None,
            };
            self.versions.insert((m.key().clone(), r.lsn), value);
        }
    }

    /// What a branch created at `lsn` starts with: the versions at or below it.
    pub(crate) fn branch_at(&self, lsn: Lsn) -> Model {
        Model {
            versions: self
                .versions
                .iter()
                .filter(|((_, l), _)| *l <= lsn)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    pub(crate) fn get(&self, k: &Bytes, lsn: Lsn) -> Option<Bytes> {
        self.versions
            .range((k.clone(), Lsn::ZERO)..=(k.clone(), lsn))
            .next_back()
            .and_then(|(_, v)| v.clone())
    }

    pub(crate) fn scan(&self, start: &[u8], end: Option<&[u8]>, lsn: Lsn) -> Vec<(Bytes, Bytes)> {
        let mut out: BTreeMap<Bytes, Option<Bytes>> = BTreeMap::new();
        for ((k, l), v) in &self.versions {
            if k.as_ref() >= start && end.is_none_or(|e| k.as_ref() < e) && *l <= lsn {
                out.insert(k.clone(), v.clone());
            }
        }
        out.into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect()
    }
}

/// A deterministic workload: record `i` (LSN `first + i`) writes or deletes a few of 300 keys
/// with values of 50 to 350 bytes.
pub(crate) fn workload(first: u64, count: u64) -> Vec<WalRecord> {
    (0..count)
        .map(|i| {
            let lsn = first + i;
            let muts = (0..3)
                .map(|j| {
                    let k = key((lsn * 7919 + j * 104_729) % 300);
                    if (lsn + j).is_multiple_of(5) {
                        del(k)
                    } else {
                        let len = 50 + ((lsn * 31 + j) % 300) as usize;
                        put(k, format!("v{lsn}.{j}-{}", "x".repeat(len)))
                    }
                })
                .collect();
            record(lsn, muts)
        })
        .collect()
}

pub(crate) async fn ingest_all(t: &Timeline, records: &[WalRecord], model: &mut Model) {
    for chunk in records.chunks(3) {
        for r in chunk {
            model.apply(r);
        }
        let committed = chunk.last().expect("chunks are not empty").lsn;
        t.ingest(chunk, committed).await.expect("ingest");
    }
}

/// Freezes whatever is open and flushes every frozen layer in the foreground.
pub(crate) async fn flush_all(t: &Timeline) -> Result<(), PageserverError> {
    {
        let guard = t.ingest_lock.lock().await;
        t.freeze(&guard);
    }
    t.flush_frozen_layers(&CancellationToken::new()).await
}

/// Checks Get at many LSNs for every key, and several scans, against the model.
pub(crate) async fn assert_reads_match(t: &Timeline, model: &Model, max_lsn: u64) {
    let lsns = [
        0,
        1,
        max_lsn / 3,
        max_lsn / 2,
        max_lsn - 1,
        max_lsn,
        u64::MAX,
    ];
    assert_reads_at(t, model, &lsns).await;
    let limited = t.scan_all(b"", None, Lsn(max_lsn), Some(7)).await.unwrap();
    assert_eq!(limited, model.scan(b"", None, Lsn(max_lsn))[..7]);
}

/// Checks Get for every key, and several scans, at each of `lsns`.
pub(crate) async fn assert_reads_at(t: &Timeline, model: &Model, lsns: &[u64]) {
    let keys: Vec<Bytes> = (0..300)
        .map(key)
        .chain([Bytes::from_static(b"nope")])
        .collect();
    for &lsn in lsns {
        let lsn = Lsn(lsn);
        let got = t.get(&keys, lsn, Lsn::ZERO).await.expect("get");
        let want: Vec<_> = keys.iter().map(|k| model.get(k, lsn)).collect();
        assert_eq!(got, want, "get at {lsn}");
        for (start, end) in [
            (&b""[..], None),
            (&b"key-000050"[..], Some(&b"key-000123"[..])),
            (&b"key-000299"[..], None),
        ] {
            let got = t.scan_all(start, end, lsn, None).await.expect("scan");
            assert_eq!(got, model.scan(start, end, lsn), "scan at {lsn}");
        }
    }
}

pub(crate) struct Env {
    _bucket: TempDir,
    pub(crate) store: Arc<dyn ObjectStore>,
}

impl Env {
    pub(crate) fn new() -> Self {
        init_tracing();
        let bucket = tempfile::tempdir().unwrap();
        let store = local_store(bucket.path());
        Self {
            _bucket: bucket,
            store,
        }
    }

    pub(crate) async fn attach(&self, id: TimelineId, conf: PageserverConfig) -> Arc<Timeline> {
        self.attach_with(id, conf, self.store.clone()).await
    }

    pub(crate) async fn attach_with(
        &self,
        id: TimelineId,
        conf: PageserverConfig,
        store: Arc<dyn ObjectStore>,
    ) -> Arc<Timeline> {
        let remote = RemoteStorage::new(store, &conf);
        let cache = LayerCache::open(
            &conf.data_dir.join("block-cache"),
            conf.block_cache_bytes,
            conf.block_disk_cache_bytes,
            conf.layer_cache_bytes,
        )
        .await
        .expect("block cache");
        Timeline::attach(id, Arc::new(conf), remote, cache, None)
            .await
            .expect("attach")
    }

    /// Every manifest version in the bucket, oldest first.
    pub(crate) async fn manifests(&self, id: TimelineId) -> Vec<Manifest> {
        let prefix = Path::from(layout::timeline_manifest_dir(id));
        let mut paths: Vec<Path> = self
            .store
            .list(Some(&prefix))
            .map(|m| m.unwrap().location)
            .collect()
            .await;
        paths.sort();
        let mut out = Vec::new();
        for p in paths {
            let body = self.store.get(&p).await.unwrap().bytes().await.unwrap();
            out.push(serde_json::from_slice(&body).unwrap());
        }
        out
    }
}

#[tokio::test]
async fn ingest_freeze_flush_upload_publish() {
    let env = Env::new();
    let data = tempfile::tempdir().unwrap();
    let id = TimelineId::generate();
    let t = env.attach(id, test_config(data.path())).await;
    assert_eq!(t.status().generation, 1);

    let mut model = Model::default();
    let records = workload(1, 600);
    ingest_all(&t, &records, &mut model).await;
    // Reads see the open and frozen layers before anything is flushed by us.
    assert_reads_match(&t, &model, 600).await;
    flush_all(&t).await.unwrap();

    let status = t.status();
    assert_eq!(status.last_record_lsn, Lsn(600));
    assert_eq!(status.disk_consistent_lsn, Lsn(600));
    assert_eq!(status.remote_consistent_lsn, Lsn(600));
    assert!(status.layer_count >= 3, "{status:?}");
    assert_eq!(status.frozen_layers, 0);

    let manifests = env.manifests(id).await;
    let latest = manifests.last().unwrap();
    assert_eq!(manifests[0].version, 1);
    assert_eq!(manifests[0].generation, 1);
    assert!(manifests
        .iter()
        .enumerate()
        .all(|(i, m)| m.version == i as u64 + 1));
    assert_eq!(latest.disk_consistent_lsn, Lsn(600));
    assert_eq!(latest.layers.len() as u64, status.layer_count);
    // Layers tile the LSN range without gaps or overlaps.
    let mut next = Lsn(1);
    for l in &latest.layers {
        assert_eq!(l.lsn_start, next);
        next = l.lsn_end.next();
        let meta = env
            .store
            .head(&Path::from(layout::layer_object(id, &l.name)))
            .await
            .unwrap();
        assert_eq!(meta.size, l.size);
    }
    assert_eq!(next, Lsn(601));
    assert_reads_match(&t, &model, 600).await;
    t.shutdown().await;
}

#[tokio::test]
async fn reopen_with_an_empty_local_dir_reads_layers_from_the_bucket() {
    let env = Env::new();
    let id = TimelineId::generate();
    let mut model = Model::default();
    {
        let data = tempfile::tempdir().unwrap();
        let t = env.attach(id, test_config(data.path())).await;
        ingest_all(&t, &workload(1, 400), &mut model).await;
        // Shutdown flushes the open layer too: object storage ends up with everything.
        t.shutdown().await;
        assert_eq!(t.status().remote_consistent_lsn, Lsn(400));
    }
    let data = tempfile::tempdir().unwrap();
    let t = env.attach(id, test_config(data.path())).await;
    let status = t.status();
    assert_eq!(status.generation, 2);
    assert_eq!(status.last_record_lsn, Lsn(400));
    let layer_dir = data.path().join(format!("timelines/{id}/layers"));
    assert_eq!(std::fs::read_dir(&layer_dir).unwrap().count(), 0);
    assert_reads_match(&t, &model, 400).await;
    // Blocks come by range from the bucket: nothing is downloaded whole, each layer opened once.
    assert_eq!(std::fs::read_dir(&layer_dir).unwrap().count(), 0);
    assert_eq!(t.cache.stats().remote_opens, status.layer_count);

    // Ingest continues after the manifest's LSN.
    ingest_all(&t, &workload(401, 50), &mut model).await;
    assert_reads_match(&t, &model, 450).await;
    t.shutdown().await;

    // A damaged layer, in the bucket or on local disk, is an error, never a wrong answer.
    let (oldest, newest) = {
        let t = env.attach(id, test_config(data.path())).await;
        let files = t.layers_read().files.clone();
        let pair = (
            files[0].desc().clone(),
            files.last().unwrap().desc().clone(),
        );
        t.shutdown().await;
        pair
    };
    assert!(layer_dir.join(&newest.name).exists());
    let local = layer_dir.join(&newest.name);
    let mut bytes = std::fs::read(&local).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&local, bytes).unwrap();
    let object = Path::from(layout::layer_object(id, &oldest.name));
    let mut bytes = env
        .store
        .get(&object)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    bytes[10] ^= 0xff;
    env.store.put(&object, bytes.into()).await.unwrap();
    let t = env.attach(id, test_config(data.path())).await;
    let err = t.scan_all(b"", None, Lsn::MAX, None).await.unwrap_err();
    assert!(matches!(err, PageserverError::Corruption { .. }), "{err}");
    t.shutdown().await;
}

#[tokio::test]
async fn a_second_owner_fences_the_first() {
    let env = Env::new();
    let id = TimelineId::generate();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut model = Model::default();

    let a = env.attach(id, test_config(dir_a.path())).await;
    ingest_all(&a, &workload(1, 30), &mut model).await;
    flush_all(&a).await.unwrap();

    let b = env.attach(id, test_config(dir_b.path())).await;
    assert_eq!((a.status().generation, b.status().generation), (1, 2));
    assert_reads_match(&b, &model, 30).await;

    // `a` does not know yet: it ingests, uploads, and then fails to publish.
    let late = workload(31, 30);
    a.ingest(&late, Lsn(60)).await.unwrap();
    let err = flush_all(&a).await.unwrap_err();
    assert!(matches!(err, PageserverError::Fenced(_)), "{err}");
    assert!(a.status().fenced);
    assert_eq!(a.status().remote_consistent_lsn, Lsn(30));
    assert!(matches!(
        a.ingest(&workload(61, 1), Lsn(61)).await,
        Err(PageserverError::Fenced(_))
    ));
    // Reads that would wait for more WAL fail at once; reads of what it has still work.
    assert!(matches!(
        a.get(&[key(1)], Lsn(100), Lsn(100)).await,
        Err(PageserverError::Fenced(_))
    ));
    assert_eq!(
        a.get(&[key(1)], Lsn(30), Lsn(30)).await.unwrap(),
        vec![model.get(&key(1), Lsn(30))]
    );

    // No manifest ever names a layer with `a`'s late records.
    for m in env.manifests(id).await {
        assert!(m.layers.iter().all(|l| l.lsn_end <= Lsn(30)), "{m:?}");
    }

    // The new owner carries on from the same WAL.
    for r in &late {
        model.apply(r);
    }
    b.ingest(&late, Lsn(60)).await.unwrap();
    flush_all(&b).await.unwrap();
    let latest = env.manifests(id).await.pop().unwrap();
    assert_eq!(
        (latest.generation, latest.disk_consistent_lsn),
        (2, Lsn(60))
    );
    assert_reads_match(&b, &model, 60).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_failing_object_store_delays_publishing_but_loses_nothing() {
    let env = Env::new();
    let id = TimelineId::generate();
    let failing = Arc::new(FaultyObjectStore::new(env.store.clone()));
    // Attach itself survives a few failed writes.
    failing.fail_next(Op::Write, 3);
    let data = tempfile::tempdir().unwrap();
    let t = env
        .attach_with(id, test_config(data.path()), failing.clone())
        .await;
    assert_eq!(failing.failed(Op::Write), 3);

    // Now every write fails until we say otherwise.
    failing.fail_next(Op::Write, u64::MAX);
    let records = workload(1, 600);
    let mut model = Model::default();
    for r in &records {
        model.apply(r);
    }
    let ingest = {
        let t = t.clone();
        tokio::spawn(async move {
            for chunk in records.chunks(3) {
                t.ingest(chunk, chunk.last().unwrap().lsn).await.unwrap();
            }
        })
    };
    // With uploads failing, frozen layers pile up until ingest stalls.
    wait_for(|| t.status().ingest_stalls > 0 && failing.failed(Op::Write) > 3).await;
    let status = t.status();
    assert_eq!(status.remote_consistent_lsn, Lsn::ZERO);
    assert_eq!(status.frozen_layers, t.conf.max_frozen_layers);
    // Reads go on meanwhile, from memory.
    let lsn = status.last_record_lsn;
    let keys: Vec<Bytes> = (0..300).map(key).collect();
    let got = t.get(&keys, lsn, lsn).await.unwrap();
    let want: Vec<_> = keys.iter().map(|k| model.get(k, lsn)).collect();
    assert_eq!(got, want);
    assert!(env.manifests(id).await.iter().all(|m| m.layers.is_empty()));

    failing.fail_next(Op::Write, 0);
    ingest.await.unwrap();
    flush_all(&t).await.unwrap();
    assert_eq!(t.status().remote_consistent_lsn, Lsn(600));
    assert!(failing.failed(Op::Write) > 3);
    t.shutdown().await;

    let data = tempfile::tempdir().unwrap();
    let t = env.attach(id, test_config(data.path())).await;
    assert_reads_match(&t, &model, 600).await;
    t.shutdown().await;
}

#[tokio::test]
async fn a_checkpoint_timeout_flushes_a_small_layer() {
    let env = Env::new();
    let data = tempfile::tempdir().unwrap();
    let conf = PageserverConfig {
        checkpoint_timeout: Duration::from_millis(20),
        ..test_config(data.path())
    };
    let t = env.attach(TimelineId::generate(), conf).await;
    t.ingest(&[record(5, vec![put(key(1), "one")])], Lsn(7))
        .await
        .unwrap();
    let mut remote = t.remote_consistent_lsn.subscribe();
    tokio::time::timeout(Duration::from_secs(30), remote.wait_for(|l| *l >= Lsn(7)))
        .await
        .expect("the flush loop flushes an old layer")
        .unwrap();
    assert_eq!(t.status().layer_count, 1);
    t.shutdown().await;
}

#[tokio::test]
async fn group_commit_and_resent_wal() {
    let env = Env::new();
    let data = tempfile::tempdir().unwrap();
    let t = env
        .attach(TimelineId::generate(), test_config(data.path()))
        .await;
    // Two transactions committed in one batch share LSN 3; the later one wins.
    let batch = [
        record(3, vec![put(key(1), "first"), put(key(2), "two")]),
        record(3, vec![put(key(1), "second")]),
    ];
    t.ingest(&batch, Lsn(4)).await.unwrap();
    // The stream is resent after a reconnect: already-ingested records are skipped.
    t.ingest(&[record(3, vec![del(key(1))])], Lsn(4))
        .await
        .unwrap();
    // `committed_lsn` advances with no records.
    t.ingest(&[], Lsn(9)).await.unwrap();
    assert_eq!(t.last_record_lsn(), Lsn(9));
    let got = t.get(&[key(1), key(2)], Lsn(9), Lsn(9)).await.unwrap();
    assert_eq!(
        got,
        vec![Some(Bytes::from("second")), Some(Bytes::from("two"))]
    );
    assert_eq!(
        t.get(&[key(1)], Lsn(2), Lsn::ZERO).await.unwrap(),
        vec![None]
    );
    flush_all(&t).await.unwrap();
    assert_eq!(t.status().remote_consistent_lsn, Lsn(9));
    let got = t.get(&[key(1), key(2)], Lsn(9), Lsn(9)).await.unwrap();
    assert_eq!(
        got,
        vec![Some(Bytes::from("second")), Some(Bytes::from("two"))]
    );
    t.shutdown().await;
}

#[tokio::test]
async fn reads_wait_for_ingest_and_time_out() {
    let env = Env::new();
    let data = tempfile::tempdir().unwrap();
    let conf = PageserverConfig {
        wait_lsn_timeout: Duration::from_millis(50),
        ..test_config(data.path())
    };
    let t = env.attach(TimelineId::generate(), conf).await;
    let err = t.get(&[key(1)], Lsn(10), Lsn(5)).await.unwrap_err();
    assert!(
        matches!(err, PageserverError::WaitLsnTimeout { .. }),
        "{err}"
    );
    let err = t.get(&[key(1)], Lsn(4), Lsn(5)).await.unwrap_err();
    assert!(matches!(err, PageserverError::InvalidArgument(_)), "{err}");

    // A waiting read completes once ingest gets there.
    let waiting = {
        let t = t.clone();
        tokio::spawn(async move {
            let conf_wait = t.wait_lsn(Lsn(5));
            // Retry on timeout: the test must not depend on how fast ingest happens.
            let mut r = conf_wait.await;
            while matches!(r, Err(PageserverError::WaitLsnTimeout { .. })) {
                r = t.wait_lsn(Lsn(5)).await;
            }
            r
        })
    };
    t.ingest(&[record(5, vec![put(key(1), "v")])], Lsn(5))
        .await
        .unwrap();
    waiting.await.unwrap().unwrap();
    assert_eq!(
        t.get(&[key(1)], Lsn(10), Lsn(5)).await.unwrap(),
        vec![Some(Bytes::from("v"))]
    );
    t.shutdown().await;
}

/// Polls `cond` until it holds (a generous bound guards against hangs, not slowness).
async fn wait_for(cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition never held"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
