//! Compaction, image layers, GC and L0 backpressure, checked against the model of every
//! version: reads give the same answers before and after each step, on this pageserver and on
//! a new one that starts from the bucket alone.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use strata_core::{layout, Lsn, TimelineId};
use tokio_util::sync::CancellationToken;

use crate::config::PageserverConfig;
use crate::error::PageserverError;
use crate::gc::now_micros;
use crate::layer_desc::LayerKind;
use crate::manifest::Manifest;
use crate::test_util::*;
use crate::timeline::Timeline;
use crate::timeline_tests::*;

pub(crate) fn compaction_config(data: &std::path::Path) -> PageserverConfig {
    PageserverConfig {
        // One L0 file per flush_all, so the tests know when each threshold is reached.
        checkpoint_distance: 16 * 1024 * 1024,
        compaction_threshold: 4,
        compaction_target_size: 2 * 1024,
        image_creation_threshold: 2,
        compaction_period: Duration::from_secs(3600),
        ..test_config(data)
    }
}

/// Ingests `rounds` batches of 100 records from `first`, flushing after each (one L0 file
/// per round), with every record committed at `commit_micros`.
pub(crate) async fn ingest_rounds(
    t: &Timeline,
    model: &mut Model,
    first: u64,
    rounds: u64,
    commit_micros: i64,
) -> u64 {
    let mut lsn = first;
    for _ in 0..rounds {
        let mut records = workload(lsn, 100);
        for r in &mut records {
            r.commit_time_micros = commit_micros;
        }
        ingest_all(t, &records, model).await;
        flush_all(t).await.unwrap();
        lsn += 100;
    }
    lsn - 1
}

async fn latest(env: &Env, id: TimelineId) -> Manifest {
    env.manifests(id).await.pop().expect("a manifest")
}

/// Layer objects in the bucket must be exactly the ones the newest manifest names.
async fn assert_bucket_holds_only_the_manifest(env: &Env, id: TimelineId) {
    let prefix = Path::from(layout::layer_object(id, ""));
    let objects: BTreeSet<String> = env
        .store
        .list(Some(&prefix))
        .map(|m| m.unwrap().location.filename().unwrap().to_string())
        .collect()
        .await;
    let named: BTreeSet<String> = latest(env, id)
        .await
        .layers
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(objects, named);
}

/// A timeline of `records` workload records, written by a pageserver that then stopped: the
/// bucket holds all of it.
async fn written_and_stopped(env: &Env, id: TimelineId, records: u64) -> Model {
    let mut model = Model::default();
    let data = tempfile::tempdir().unwrap();
    let t = env.attach(id, test_config(data.path())).await;
    ingest_all(&t, &workload(1, records), &mut model).await;
    t.shutdown().await;
    model
}

#[tokio::test]
async fn l0_files_become_non_overlapping_l1_files_then_images_and_reads_stay_exact() {
    let env = Env::new();
    let data = tempfile::tempdir().unwrap();
    let id = TimelineId::generate();
    let t = env.attach(id, compaction_config(data.path())).await;
    let cancel = CancellationToken::new();
    let mut model = Model::default();

    let end = ingest_rounds(&t, &mut model, 1, 4, 0).await;
    assert_eq!(end, 400);
    // The flushes prompted the background loop too; either way, after this no L0 is left.
    t.compact(&cancel).await.unwrap();
    assert_eq!(t.status().l0_layers, 0, "{:?}", t.status());
    let m = latest(&env, id).await;
    let l1: Vec<_> = m
        .layers
        .iter()
        .filter(|l| l.kind == LayerKind::L1)
        .collect();
    assert_eq!(l1.len(), m.layers.len());
    assert!(l1.len() > 3, "{} L1 files", l1.len());
    for pair in l1.windows(2) {
        assert!(pair[0].key_end < pair[1].key_start, "L1 files overlap");
        assert_eq!((pair[0].lsn_start, pair[0].lsn_end), (Lsn(1), Lsn(400)));
    }
    assert_reads_match(&t, &model, 400).await;
    assert_bucket_holds_only_the_manifest(&env, id).await;

    // A second round of L1 files reaches the image threshold.
    let end = ingest_rounds(&t, &mut model, 401, 4, 0).await;
    t.compact(&cancel).await.unwrap();
    let m = latest(&env, id).await;
    assert_eq!(m.image_lsns, vec![Lsn(end)]);
    let images = m
        .layers
        .iter()
        .filter(|l| l.kind == LayerKind::Image)
        .count();
    assert!(images > 1, "{images} image files");
    assert_reads_match(&t, &model, end).await;
    assert_bucket_holds_only_the_manifest(&env, id).await;
    t.shutdown().await;

    // A new pageserver with an empty disk reads the same from the bucket.
    let data = tempfile::tempdir().unwrap();
    let t = env.attach(id, compaction_config(data.path())).await;
    assert_reads_match(&t, &model, end).await;
    t.shutdown().await;
}

#[tokio::test]
async fn gc_drops_history_below_the_newest_image_older_than_the_pitr_window() {
    let env = Env::new();
    let data = tempfile::tempdir().unwrap();
    let id = TimelineId::generate();
    let conf = PageserverConfig {
        pitr_window: Duration::from_secs(24 * 3600),
        ..compaction_config(data.path())
    };
    let t = env.attach(id, conf.clone()).await;
    let cancel = CancellationToken::new();
    let mut model = Model::default();
    let two_days_ago = now_micros() - 2 * 24 * 3600 * 1_000_000;

    // Two days ago: two rounds of L1 files, then images at 800.
    ingest_rounds(&t, &mut model, 1, 4, two_days_ago).await;
    t.compact(&cancel).await.unwrap();
    let image_lsn = ingest_rounds(&t, &mut model, 401, 4, two_days_ago).await;
    t.compact(&cancel).await.unwrap();
    assert_eq!(latest(&env, id).await.image_lsns, vec![Lsn(image_lsn)]);
    // Now: more history, inside the window.
    let end = ingest_rounds(&t, &mut model, 801, 4, now_micros()).await;
    t.compact(&cancel).await.unwrap();

    assert_eq!(t.gc_horizon(), Lsn(image_lsn));
    let before = latest(&env, id).await.layers.len();
    let outcome = t.gc(&cancel).await.unwrap();
    assert_eq!(outcome.cutoff, Lsn(image_lsn));
    assert!(outcome.layers_removed > 0, "{outcome:?}");
    let m = latest(&env, id).await;
    assert_eq!(m.layers.len(), before - outcome.layers_removed);
    assert_eq!(m.gc_cutoff_lsn, Lsn(image_lsn));
    assert!(m.layers.iter().all(|l| l.lsn_end >= Lsn(image_lsn)));
    assert_eq!(t.status().gc_cutoff_lsn, Lsn(image_lsn));
    assert_bucket_holds_only_the_manifest(&env, id).await;

    // Everything at or above the cutoff reads as before; below it is refused.
    assert_reads_at(&t, &model, &[image_lsn, image_lsn + 1, 1000, end, u64::MAX]).await;
    let err = t
        .get(&[key(1)], Lsn(image_lsn - 1), Lsn::ZERO)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PageserverError::BelowGcCutoff { .. }),
        "{err}"
    );
    let err = t.scan_all(b"", None, Lsn(10), None).await.unwrap_err();
    assert!(
        matches!(err, PageserverError::BelowGcCutoff { .. }),
        "{err}"
    );
    // A second run finds nothing more to drop.
    assert_eq!(t.gc(&cancel).await.unwrap().layers_removed, 0);
    t.shutdown().await;

    let data = tempfile::tempdir().unwrap();
    let conf = PageserverConfig {
        data_dir: data.path().to_path_buf(),
        ..conf
    };
    let t = env.attach(id, conf).await;
    assert_reads_at(&t, &model, &[image_lsn, end]).await;
    t.shutdown().await;
}

#[tokio::test]
async fn ingest_stalls_while_l0_files_wait_and_compaction_unstalls_it() {
    let env = Env::new();
    let data = tempfile::tempdir().unwrap();
    let id = TimelineId::generate();
    let conf = PageserverConfig {
        // Any L0 byte stalls ingest; only compaction (prompted by the stall) lets it go on.
        l0_stall_bytes: 1,
        compaction_target_size: 8 * 1024,
        ..test_config(data.path())
    };
    let t = env.attach(id, conf).await;
    let mut model = Model::default();
    let records = workload(1, 1200);
    ingest_all(&t, &records, &mut model).await;
    flush_all(&t).await.unwrap();
    let status = t.status();
    assert!(status.l0_stalls > 0, "{status:?}");
    assert!(status.layer_count > status.l0_layers as u64, "{status:?}");
    assert_reads_match(&t, &model, 1200).await;
    t.shutdown().await;
}

/// Bytes of the layer files in a timeline's local directory.
fn local_layer_bytes(data: &std::path::Path, id: TimelineId) -> u64 {
    std::fs::read_dir(data.join(format!("timelines/{id}/layers")))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_layers_over_the_disk_budget_are_evicted_and_read_from_the_bucket() {
    let env = Env::new();
    let data = tempfile::tempdir().unwrap();
    let id = TimelineId::generate();
    let counting = std::sync::Arc::new(strata_faults::FaultyObjectStore::new(env.store.clone()));
    let budget = 24 * 1024;
    let conf = PageserverConfig {
        layer_cache_bytes: budget,
        block_cache_bytes: 256 * 1024,
        ..test_config(data.path())
    };
    let t = env.attach_with(id, conf, counting.clone()).await;
    let mut model = Model::default();
    ingest_all(&t, &workload(1, 1500), &mut model).await;
    flush_all(&t).await.unwrap();
    let total: u64 = latest(&env, id).await.layers.iter().map(|l| l.size).sum();
    assert!(total > 4 * budget, "{total} bytes of layers");
    assert!(local_layer_bytes(data.path(), id) <= budget);

    let gets = counting.calls(strata_faults::Op::Read);
    assert_reads_match(&t, &model, 1500).await;
    let stats = t.cache.stats();
    assert!(stats.remote_opens > 0 && stats.evictions > 0, "{stats:?}");
    assert!(stats.block_hits > 0 && stats.block_misses > 0, "{stats:?}");
    assert!(counting.calls(strata_faults::Op::Read) > gets);
    assert!(local_layer_bytes(data.path(), id) <= budget);
    assert!(t.cache.resident_bytes() <= budget);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_reads_retry_a_failing_store_and_fail_rather_than_answer_wrong() {
    let env = Env::new();
    let id = TimelineId::generate();
    let model = written_and_stopped(&env, id, 300).await;
    // A new pageserver: every layer is read from the bucket, through a store that fails.
    let faulty = std::sync::Arc::new(strata_faults::FaultyObjectStore::new(env.store.clone()));
    let data = tempfile::tempdir().unwrap();
    let t = env
        .attach_with(id, test_config(data.path()), faulty.clone())
        .await;
    // A few failures are retried away (read_attempts is 5).
    faulty.fail_next(strata_faults::Op::Read, 3);
    assert_reads_at(&t, &model, &[300]).await;
    assert!(faulty.failed(strata_faults::Op::Read) >= 3);
    // A store that keeps failing makes reads fail, not answer from what little they have.
    t.cache.clear_blocks().await;
    faulty.fail_next(strata_faults::Op::Read, 1_000);
    let keys: Vec<_> = (0..300).map(key).collect();
    let err = t.get(&keys, Lsn(300), Lsn::ZERO).await.unwrap_err();
    assert!(matches!(err, PageserverError::Remote(_)), "{err}");
    // Once it is back, everything reads as before.
    faulty.fail_next(strata_faults::Op::Read, 0);
    assert_reads_at(&t, &model, &[150, 300]).await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_layer_stays_readable_until_its_last_reader_lets_go() {
    let env = Env::new();
    let data = tempfile::tempdir().unwrap();
    let id = TimelineId::generate();
    let t = env.attach(id, compaction_config(data.path())).await;
    let cancel = CancellationToken::new();
    let mut model = Model::default();
    ingest_rounds(&t, &mut model, 1, 3, 0).await;
    // A scan in progress holds an L0 layer open (from the bucket, as after a restart).
    let held = t.layers_read().files[0].clone();
    held.evict().await;
    let reader = held.reader(id, &t.remote, &cancel).await.unwrap();
    let object = Path::from(layout::layer_object(id, &held.desc().name));
    drop(held);
    ingest_rounds(&t, &mut model, 301, 1, 0).await;
    t.compact(&cancel).await.unwrap();
    assert_eq!(t.status().l0_layers, 0);
    // Replaced, but still read: the object stays, and the reader still answers.
    assert!(env.store.head(&object).await.is_ok());
    let entries = tokio::task::spawn_blocking({
        let reader = reader.clone();
        move || reader.iter(bytes::Bytes::new(), None, Lsn::MAX).count()
    })
    .await
    .unwrap();
    assert!(entries > 0);
    drop(reader);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while env.store.head(&object).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "never deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_bucket_holds_only_the_manifest(&env, id).await;
    assert_reads_match(&t, &model, 400).await;
    t.shutdown().await;
}

#[tokio::test]
async fn attach_retries_a_failing_store_and_gives_up_with_an_error() {
    let env = Env::new();
    let id = TimelineId::generate();
    let model = written_and_stopped(&env, id, 200).await;
    let faulty = std::sync::Arc::new(strata_faults::FaultyObjectStore::new(env.store.clone()));
    let data = tempfile::tempdir().unwrap();
    let conf = test_config(data.path());
    // Listing and reading the manifest fail a few times: attach retries (read_attempts is 5).
    faulty.fail_next(strata_faults::Op::List, 2);
    faulty.fail_next(strata_faults::Op::Read, 2);
    let t = env.attach_with(id, conf.clone(), faulty.clone()).await;
    assert_eq!(faulty.failed(strata_faults::Op::List), 2);
    assert_eq!(faulty.failed(strata_faults::Op::Read), 2);
    assert_eq!(t.status().last_record_lsn, Lsn(200));
    assert_reads_at(&t, &model, &[200]).await;
    t.shutdown().await;
    // A store that stays down makes attach fail with an error, not start empty.
    faulty.fail_next(strata_faults::Op::List, 1_000);
    let remote = crate::remote::RemoteStorage::new(faulty.clone(), &conf);
    let cache =
        crate::layer_cache::LayerCache::open(&data.path().join("c"), 1 << 20, 1 << 20, 1 << 20)
            .await
            .unwrap();
    let err = Timeline::attach(id, std::sync::Arc::new(conf), remote, cache, None)
        .await
        .unwrap_err();
    assert!(matches!(err, PageserverError::Remote(_)), "{err}");
}
