//! openraft driving our storage end to end on one node: snapshots and purging (which nothing
//! triggers in production yet) must work, and survive a restart; the batcher bounds entries.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::{BasicNode, EntryPayload, ServerState};
use strata_core::{Lsn, TimelineId};
use tokio_util::sync::CancellationToken;

use crate::config::SafekeeperConfig;
use crate::group_commit::{AppendError, GroupCommit, GroupCommitConfig};
use crate::log_store::{LogReader, LogStore, MetaFlusher};
use crate::network::NetworkFactory;
use crate::state_machine::{SharedState, StateMachineStore};
use crate::types::{Batch, Raft, Request, Response, Txn};

const WAIT: Option<Duration> = Some(Duration::from_secs(20));
const ADDR: &str = "127.0.0.1:1";

struct Node {
    raft: Raft,
    log: LogReader,
    state: SharedState,
    flusher: MetaFlusher,
}

async fn start(dir: &Path) -> Node {
    let config = SafekeeperConfig::default();
    let (store, flusher) = LogStore::open(&dir.join("wal"), config.log_store()).unwrap();
    let pristine = store.is_pristine();
    let log = store.reader();
    let sm = StateMachineStore::open(dir).unwrap();
    let state = sm.shared();
    let peers = Arc::new(BTreeMap::from([(1, ADDR.to_string())]));
    let network = NetworkFactory::new(peers, config.connect_timeout);
    let raft = Raft::new(1, Arc::new(config.raft().unwrap()), network, store, sm)
        .await
        .unwrap();
    if pristine {
        raft.initialize(BTreeMap::from([(1, BasicNode::new(ADDR))]))
            .await
            .unwrap();
    }
    raft.wait(WAIT)
        .state(ServerState::Leader, "leader")
        .await
        .unwrap();
    Node {
        raft,
        log,
        state,
        flusher,
    }
}

async fn stop(node: Node) {
    node.raft.shutdown().await.unwrap();
    drop(node.raft);
    node.flusher.finish().await;
}

async fn append(raft: &Raft, timeline: TimelineId, generation: u32) -> (u64, Vec<Option<Lsn>>) {
    let response = raft
        .client_write(Request::Batch(Batch {
            commit_time_micros: 1,
            txns: vec![Txn {
                timeline,
                generation,
                mutations: Bytes::from_static(b"m"),
            }],
        }))
        .await
        .unwrap();
    match response.data {
        Response::Batch { accepted } => (response.log_id.index, accepted),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_purge_work_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tl = TimelineId::generate();
    let node = start(dir.path()).await;
    let registered = node
        .raft
        .client_write(Request::Register { timeline: tl })
        .await
        .unwrap();
    assert_eq!(registered.data, Response::Registered { generation: 1 });
    let mut last = 0;
    for _ in 0..5 {
        let (index, accepted) = append(&node.raft, tl, 1).await;
        assert!(matches!(accepted[..], [Some(_)]));
        last = index;
    }

    node.raft.trigger().snapshot().await.unwrap();
    node.raft
        .wait(WAIT)
        .metrics(|m| m.snapshot.is_some_and(|s| s.index >= last), "snapshot")
        .await
        .unwrap();
    node.raft.trigger().purge_log(last).await.unwrap();
    node.raft
        .wait(WAIT)
        .metrics(|m| m.purged.is_some_and(|p| p.index == last), "purged")
        .await
        .unwrap();
    assert_eq!(node.log.first_index(), last + 1);
    let (after, accepted) = append(&node.raft, tl, 1).await;
    assert!(matches!(accepted[..], [Some(_)]));
    assert!(after > last);
    stop(node).await;

    // The snapshot restores the generation history before openraft re-applies the rest.
    let node = start(dir.path()).await;
    assert_eq!(node.log.first_index(), last + 1);
    node.raft
        .wait(WAIT)
        .applied_index_at_least(Some(after), "re-applied")
        .await
        .unwrap();
    let (generation, last_commit) = node.state.with_timeline(&tl, |t| {
        let t = t.expect("timeline known after restart");
        (t.current_generation(), t.last_commit_lsn.0)
    });
    assert_eq!(generation, 1);
    assert_eq!(last_commit, after);
    let (_, accepted) = append(&node.raft, tl, 1).await;
    assert!(matches!(accepted[..], [Some(_)]));
    let registered = node
        .raft
        .client_write(Request::Register { timeline: tl })
        .await
        .unwrap();
    assert_eq!(registered.data, Response::Registered { generation: 2 });
    let (_, accepted) = append(&node.raft, tl, 1).await;
    assert_eq!(accepted, vec![None]);
    stop(node).await;
}

/// Through the batcher on one node: a transaction over `max_entry_bytes` becomes parts and a
/// joined entry, small ones keep being batched, and no entry exceeds the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batcher_bounds_entries_and_joins_large_transactions() {
    const MAX_ENTRY: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let tl = TimelineId::generate();
    let node = start(dir.path()).await;
    node.raft
        .client_write(Request::Register { timeline: tl })
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let (group_commit, batcher) = GroupCommit::start(
        node.raft.clone(),
        node.state.clone(),
        GroupCommitConfig {
            max_batch_bytes: 4096,
            max_entry_bytes: MAX_ENTRY,
            max_pending_bytes: 1 << 20,
            max_batches_in_flight: 2,
        },
        cancel.clone(),
    );
    let payload = |seed: u8, len: usize| {
        Bytes::from(
            (0..len)
                .map(|i| seed.wrapping_add((i % 251) as u8))
                .collect::<Vec<u8>>(),
        )
    };
    // Large (one with a partial last piece, one an exact multiple), small, and a large one
    // that is refused on apply, all at once.
    let txns: Vec<(u32, Bytes)> = (0..40u8)
        .map(|i| match i {
            5 => (1, payload(i, 5 * MAX_ENTRY + 123)),
            17 => (1, payload(i, 2 * MAX_ENTRY)),
            30 => (7, payload(i, 3 * MAX_ENTRY)),
            _ => (1, payload(i, 300)),
        })
        .collect();
    let mut tasks = Vec::new();
    for (generation, mutations) in txns.clone() {
        let group_commit = group_commit.clone();
        tasks.push(tokio::spawn(async move {
            group_commit
                .append(Txn {
                    timeline: tl,
                    generation,
                    mutations,
                })
                .await
        }));
    }
    let mut committed = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(c) => committed.push((c, txns[i].1.clone())),
            Err(AppendError::Fenced) => assert_eq!(i, 30),
            Err(e) => panic!("append {i} failed: {e}"),
        }
    }
    assert_eq!(committed.len(), 39);
    committed.sort_by_key(|(c, _)| c.lsn);
    for w in committed.windows(2) {
        let (a, b) = (&w[0].0, &w[1].0);
        assert!(a.lsn < b.lsn || a.commit_time_micros == b.commit_time_micros);
        assert!(a.lsn == b.lsn || a.commit_time_micros < b.commit_time_micros);
    }

    let entries = node.log.read_range(0, u64::MAX, usize::MAX).unwrap();
    let payload_at = |index: u64| match &entries[index as usize].payload {
        EntryPayload::Normal(request) => request.clone(),
        other => panic!("entry {index} is {other:?}"),
    };
    let mut joined = 0;
    for entry in &entries {
        let size = match &entry.payload {
            EntryPayload::Normal(Request::Batch(b)) => {
                b.txns.iter().map(|t| t.mutations.len()).sum()
            }
            EntryPayload::Normal(Request::Part(p)) => p.bytes.len(),
            EntryPayload::Normal(Request::Joined(j)) => {
                joined += 1;
                j.txn.mutations.len()
            }
            _ => 0,
        };
        assert!(
            size <= MAX_ENTRY,
            "entry {} holds {size} bytes",
            entry.log_id.index
        );
    }
    assert_eq!(joined, 3);
    for (c, mutations) in &committed {
        match payload_at(c.lsn.0) {
            Request::Batch(b) => {
                assert_eq!(b.commit_time_micros, c.commit_time_micros);
                assert!(b.txns.iter().any(|t| t.mutations == *mutations));
            }
            Request::Joined(j) => {
                assert_eq!(j.commit_time_micros, c.commit_time_micros);
                assert_eq!(j.parts.len(), (mutations.len() - 1) / MAX_ENTRY);
                assert!(j.parts.iter().all(|p| *p < c.lsn.0));
                let mut whole = Vec::new();
                for index in &j.parts {
                    let Request::Part(part) = payload_at(*index) else {
                        panic!("entry {index} is not a part");
                    };
                    assert_eq!((part.timeline, part.generation), (tl, 1));
                    whole.extend_from_slice(&part.bytes);
                }
                whole.extend_from_slice(&j.txn.mutations);
                assert_eq!(whole, *mutations);
            }
            other => panic!("{} is {other:?}", c.lsn),
        }
    }
    let last = committed.last().unwrap().0.lsn;
    assert_eq!(
        node.state
            .with_timeline(&tl, |t| t.unwrap().last_commit_lsn),
        last
    );

    cancel.cancel();
    batcher.await.unwrap();
    drop(group_commit);
    stop(node).await;
}
