//! openraft driving our storage end to end on one node: snapshots and purging (which nothing
//! triggers in production yet) must work, and survive a restart.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::{BasicNode, ServerState};
use strata_core::TimelineId;

use crate::config::SafekeeperConfig;
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

async fn append(raft: &Raft, timeline: TimelineId, generation: u32) -> (u64, Vec<bool>) {
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
        assert_eq!(accepted, vec![true]);
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
    assert_eq!(accepted, vec![true]);
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
    assert_eq!(accepted, vec![true]);
    let registered = node
        .raft
        .client_write(Request::Register { timeline: tl })
        .await
        .unwrap();
    assert_eq!(registered.data, Response::Registered { generation: 2 });
    let (_, accepted) = append(&node.raft, tl, 1).await;
    assert_eq!(accepted, vec![false]);
    stop(node).await;
}
