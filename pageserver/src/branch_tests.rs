//! Branches: a chain of them read through to their ancestors at their branch points, writes
//! stay on the timeline that made them, images and GC of a branch keep its deletes deleted,
//! a point in time maps to the right LSN on every branch, and deleting follows the tree.

use std::sync::Arc;
use std::time::Duration;

use strata_core::{Lsn, TimelineId};
use tokio_util::sync::CancellationToken;

use crate::compaction_tests::{compaction_config, ingest_rounds};
use crate::config::PageserverConfig;
use crate::error::PageserverError;
use crate::gc::now_micros;
use crate::remote::RemoteStorage;
use crate::test_util::*;
use crate::timeline::Timeline;
use crate::timeline_manager::TimelineManager;
use crate::timeline_tests::*;

async fn manager(env: &Env, conf: PageserverConfig) -> TimelineManager {
    let remote = RemoteStorage::new(env.store.clone(), &conf);
    TimelineManager::open(Arc::new(conf), remote)
        .await
        .expect("manager")
}

#[tokio::test]
async fn a_chain_of_five_branches_reads_its_own_writes_over_its_ancestors() {
    let env = Env::new();
    let data = tempfile::tempdir().unwrap();
    let mgr = manager(&env, test_config(data.path())).await;
    let mut ids = vec![TimelineId::generate()];
    let mut models = vec![Model::default()];
    let mut starts = vec![0u64];
    let root = mgr.get(ids[0]).await.unwrap();
    ingest_all(&root, &workload(1, 150), &mut models[0]).await;
    flush_all(&root).await.unwrap();
    ingest_all(&root, &workload(151, 50), &mut models[0]).await;

    // LSNs come from one log for every timeline, so each write below gets fresh ones.
    let mut next = 201;
    for level in 1..=5 {
        let parent_id = ids[level - 1];
        let parent = mgr.get(parent_id).await.unwrap();
        let point = next - 1;
        let id = TimelineId::generate();
        let child = mgr.create_branch(id, parent_id, Lsn(point)).await.unwrap();
        let mut model = models[level - 1].branch_at(Lsn(point));
        // The parent writes on after the branch point: the branch must not see it.
        ingest_all(&parent, &workload(next, 60), &mut models[level - 1]).await;
        next += 60;
        // The branch writes its own: some flushed to files, some in memory.
        ingest_all(&child, &workload(next, 80), &mut model).await;
        flush_all(&child).await.unwrap();
        ingest_all(&child, &workload(next + 80, 20), &mut model).await;
        next += 100;
        ids.push(id);
        models.push(model);
        starts.push(point);
    }
    let end = next - 1;
    for level in 0..=5 {
        let t = mgr.get(ids[level]).await.unwrap();
        let s = starts[level];
        assert_reads_at(&t, &models[level], &[s, s + 30, s + 90, end, u64::MAX]).await;
    }
    // Before its branch point a branch has no state.
    let deepest = mgr.get(ids[5]).await.unwrap();
    let err = deepest.get(&[key(1)], Lsn(starts[5] - 1), Lsn::ZERO).await;
    assert!(
        matches!(err, Err(PageserverError::BeforeBranch { .. })),
        "{err:?}"
    );

    // A pageserver with an empty disk reads the whole tree from the bucket.
    mgr.shutdown().await;
    let data = tempfile::tempdir().unwrap();
    let mgr = manager(&env, test_config(data.path())).await;
    for level in 0..=5 {
        let t = mgr.get(ids[level]).await.unwrap();
        let s = starts[level];
        assert_reads_at(&t, &models[level], &[s, s + 90, end, u64::MAX]).await;
    }
    mgr.shutdown().await;
}

#[tokio::test]
async fn a_branch_image_holds_its_ancestors_keys_and_gc_keeps_its_deletes_deleted() {
    let env = Env::new();
    let data = tempfile::tempdir().unwrap();
    let conf = PageserverConfig {
        pitr_window: Duration::ZERO,
        ..compaction_config(data.path())
    };
    let mgr = manager(&env, conf).await;
    let cancel = CancellationToken::new();
    let (root_id, id) = (TimelineId::generate(), TimelineId::generate());
    let root = mgr.get(root_id).await.unwrap();
    let mut root_model = Model::default();
    let point = ingest_rounds(&root, &mut root_model, 1, 2, now_micros()).await;
    let child = mgr.create_branch(id, root_id, Lsn(point)).await.unwrap();
    let mut model = root_model.branch_at(Lsn(point));
    ingest_rounds(&root, &mut root_model, point + 1, 1, now_micros()).await;

    // Two rounds of L1 files on the branch, then images of its whole key space.
    let first = point + 101;
    let mid = ingest_rounds(&child, &mut model, first, 4, now_micros()).await;
    child.compact(&cancel).await.unwrap();
    let end = ingest_rounds(&child, &mut model, mid + 1, 4, now_micros()).await;
    child.compact(&cancel).await.unwrap();
    let image_lsns = crate::timeline::lock(&child.manifest).image_lsns.clone();
    assert_eq!(image_lsns, vec![Lsn(end)]);
    let image_lsn = Lsn(end);

    // GC drops the branch's history below the image, tombstones included: keys the branch
    // deleted must stay deleted rather than show the ancestor's value again.
    let gc = child.gc(&cancel).await.unwrap();
    assert_eq!(gc.cutoff, image_lsn);
    assert!(gc.layers_removed > 0, "{gc:?}");
    assert_reads_at(&child, &model, &[end, u64::MAX]).await;
    let err = child.get(&[key(1)], Lsn(end - 1), Lsn::ZERO).await;
    assert!(
        matches!(err, Err(PageserverError::BelowGcCutoff { .. })),
        "{err:?}"
    );

    // The parent's GC stops at the branch point, whatever its PITR window says.
    assert!(root.gc_horizon() <= Lsn(point), "{}", root.gc_horizon());
    root.gc(&cancel).await.unwrap();
    assert_reads_at(&root, &root_model, &[point]).await;
    mgr.shutdown().await;
}

/// `count` records from `first`, record `l` committed at `base + l` milliseconds.
fn timed(first: u64, count: u64, base: i64) -> Vec<strata_core::wal::WalRecord> {
    let mut records = workload(first, count);
    for r in &mut records {
        r.commit_time_micros = base + r.lsn.0 as i64 * 1000;
    }
    records
}

async fn lsn_at(t: &Timeline, micros: i64) -> Result<u64, PageserverError> {
    t.lsn_at_time(micros, Lsn::ZERO).await.map(|c| c.lsn.0)
}

#[tokio::test]
async fn a_point_in_time_maps_to_the_last_commit_before_it_on_every_branch() {
    let env = Env::new();
    let data = tempfile::tempdir().unwrap();
    let mgr = manager(&env, test_config(data.path())).await;
    let base = now_micros() - 3_600_000_000;
    let at = |lsn: u64| base + lsn as i64 * 1000;
    let (root_id, id) = (TimelineId::generate(), TimelineId::generate());
    let root = mgr.get(root_id).await.unwrap();
    let mut m = Model::default();
    ingest_all(&root, &timed(1, 200, base), &mut m).await;
    flush_all(&root).await.unwrap();
    ingest_all(&root, &timed(201, 100, base), &mut m).await;

    assert_eq!(lsn_at(&root, at(150)).await.unwrap(), 150);
    assert_eq!(lsn_at(&root, at(150) + 500).await.unwrap(), 150);
    assert_eq!(lsn_at(&root, at(250)).await.unwrap(), 250);
    assert_eq!(lsn_at(&root, at(1)).await.unwrap(), 1);
    assert_eq!(lsn_at(&root, at(10_000)).await.unwrap(), 300);
    let before = lsn_at(&root, at(1) - 1).await;
    assert!(
        matches!(before, Err(PageserverError::TimeBeforeStart(_))),
        "{before:?}"
    );

    let child = mgr.create_branch(id, root_id, Lsn(250)).await.unwrap();
    ingest_all(&child, &timed(401, 50, base), &mut m.branch_at(Lsn(250))).await;
    assert_eq!(lsn_at(&child, at(420)).await.unwrap(), 420);
    assert_eq!(lsn_at(&child, at(10_000)).await.unwrap(), 450);
    // Between the branch point and the branch's first commit: the branch point, not the
    // parent's later commits.
    assert_eq!(lsn_at(&child, at(280)).await.unwrap(), 250);
    assert_eq!(lsn_at(&child, at(250)).await.unwrap(), 250);
    let before = lsn_at(&child, at(100)).await;
    assert!(
        matches!(before, Err(PageserverError::TimeBeforeStart(_))),
        "{before:?}"
    );
    mgr.shutdown().await;
}

#[tokio::test]
async fn deleting_follows_the_tree_and_branching_checks_its_point() {
    let env = Env::new();
    let data = tempfile::tempdir().unwrap();
    let mgr = manager(&env, test_config(data.path())).await;
    let (root_id, id) = (TimelineId::generate(), TimelineId::generate());
    let root = mgr.get(root_id).await.unwrap();
    let mut m = Model::default();
    ingest_all(&root, &workload(1, 100), &mut m).await;
    let child = mgr.create_branch(id, root_id, Lsn(50)).await.unwrap();
    ingest_all(&child, &workload(101, 100), &mut m.branch_at(Lsn(50))).await;
    flush_all(&child).await.unwrap();

    let again = mgr.create_branch(id, root_id, Lsn(60)).await;
    assert!(
        matches!(again, Err(PageserverError::TimelineExists(_))),
        "{again:?}"
    );
    // A branch of the branch cannot start before the branch itself.
    let early = mgr.create_branch(TimelineId::generate(), id, Lsn(40)).await;
    assert!(
        matches!(early, Err(PageserverError::BeforeBranch { .. })),
        "{early:?}"
    );

    let refused = mgr.delete(root_id).await;
    assert!(
        matches!(refused, Err(PageserverError::HasBranches(_))),
        "{refused:?}"
    );
    mgr.delete(id).await.unwrap();
    let gone = mgr.get(id).await;
    assert!(
        matches!(gone, Err(PageserverError::NoSuchTimeline(_))),
        "{gone:?}"
    );
    assert!(root.status().gc_cutoff_lsn == Lsn::ZERO);
    let branch_points = crate::timeline::lock(&root.manifest).branch_points.clone();
    assert!(branch_points.is_empty(), "{branch_points:?}");
    let prefix = object_store::path::Path::from(strata_core::layout::layer_object(id, ""));
    let left: Vec<_> = futures::StreamExt::collect::<Vec<_>>(env.store.list(Some(&prefix))).await;
    assert!(left.is_empty(), "layer objects left: {}", left.len());
    // The root is whole.
    assert_reads_at(&root, &m, &[50, 100]).await;
    // Deleting again is a no-op; a delete that stopped after its tombstone is finished by
    // the next one (the parent's branch point goes).
    mgr.delete(id).await.unwrap();
    let interrupted = TimelineId::generate();
    let child = mgr
        .create_branch(interrupted, root_id, Lsn(70))
        .await
        .unwrap();
    child
        .publish_manifest(|m| m.deleted = true, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(crate::timeline::lock(&root.manifest).branch_points.len(), 1);
    mgr.delete(interrupted).await.unwrap();
    assert!(crate::timeline::lock(&root.manifest)
        .branch_points
        .is_empty());
    mgr.delete(root_id).await.unwrap();
    mgr.shutdown().await;
}

#[tokio::test]
async fn an_idle_branch_publishes_that_other_timelines_wal_went_by() {
    let env = Env::new();
    let data = tempfile::tempdir().unwrap();
    let conf = PageserverConfig {
        checkpoint_timeout: Duration::from_millis(20),
        ..test_config(data.path())
    };
    let mgr = manager(&env, conf).await;
    let (root_id, id) = (TimelineId::generate(), TimelineId::generate());
    let root = mgr.get(root_id).await.unwrap();
    ingest_all(&root, &workload(1, 10), &mut Model::default()).await;
    let child = mgr.create_branch(id, root_id, Lsn(10)).await.unwrap();
    // Nothing of the branch's own, but the log moved on to 500 (other timelines' WAL).
    child.ingest(&[], Lsn(500)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    child.freeze_if_old().await;
    child
        .flush_frozen_layers(&CancellationToken::new())
        .await
        .unwrap();
    let published = crate::timeline::lock(&child.manifest).disk_consistent_lsn;
    assert_eq!(published, Lsn(500));
    mgr.shutdown().await;
}
