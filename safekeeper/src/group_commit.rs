//! Group commit: many concurrent appends become one Raft entry.
//!
//! `AppendWal` handlers queue their transaction and wait. One batcher task takes everything
//! queued (up to `max_batch_bytes`) into a single `Batch` entry, stamps it with a commit time
//! and proposes it; while that entry replicates and is fsync'd on a majority, the next batch
//! forms (up to `max_batches_in_flight` at once). One fsync per node thus covers every
//! transaction of a batch, which is what makes small commits cheap.
//!
//! Batches are handed to openraft one after the other from the single batcher task, so their
//! order in the log is the order in which they were stamped: commit times grow with LSNs.
//!
//! No entry holds more than `max_entry_bytes` of mutations: openraft gives each AppendEntries
//! RPC one heartbeat interval to finish, which a huge entry (a 1,000,000-row COPY is ~120 MB)
//! cannot meet, and the retries of the same entry would never end. A larger transaction is
//! written by the batcher itself, after the batch formed before it: its pieces as `Part`
//! entries (proposed together, awaited until committed, to learn their indexes), then a
//! `Joined` entry that names them, carries the last piece and is the transaction's LSN. The
//! `Joined` entry is stamped from the same clock just before it is proposed, so commit times
//! still grow with LSNs. Parts whose `Joined` never reaches the log are never referenced.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use openraft::error::ClientWriteError;
use openraft::raft::ClientWriteResult;
use strata_core::Lsn;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::state_machine::SharedState;
use crate::types::{Batch, Joined, Part, Raft, Request, Response, Txn, TypeConfig};

/// Limits of the batcher.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupCommitConfig {
    pub max_batch_bytes: usize,
    /// Transactions above this size are written as `Part` entries and a `Joined` entry.
    pub max_entry_bytes: usize,
    pub max_pending_bytes: usize,
    pub max_batches_in_flight: usize,
}

/// A transaction that is durable on a majority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Committed {
    pub lsn: Lsn,
    pub commit_time_micros: i64,
    /// The timeline's commit before this one's entry.
    pub previous_lsn: Lsn,
}

/// Why an append did not commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AppendError {
    /// The transaction's generation is not its timeline's: a newer primary registered.
    #[error("the primary was fenced by a newer registration")]
    Fenced,
    /// Not (or no longer) the leader; the batch is certainly not committed.
    #[error("not the leader")]
    NotLeader { leader: Option<u64> },
    /// The batch was proposed but its fate is unknown (Raft stopped under it).
    #[error("outcome unknown: {0}")]
    Unknown(String),
    #[error("the safekeeper is shutting down")]
    ShuttingDown,
}

struct Pending {
    txn: Txn,
    reply: oneshot::Sender<Result<Committed, AppendError>>,
    /// Holds `max_pending_bytes` budget until the batch is handed to Raft.
    permit: OwnedSemaphorePermit,
}

/// The handle through which handlers append.
pub(crate) struct GroupCommit {
    tx: mpsc::Sender<Pending>,
    pending_bytes: Arc<Semaphore>,
    max_pending_bytes: usize,
    stalls: AtomicU64,
    cancel: CancellationToken,
}

/// Queued appends, counted; their bytes are bounded by the semaphore.
const QUEUE_LEN: usize = 16 * 1024;

impl GroupCommit {
    /// Starts the batcher; it stops when `cancel` fires, failing whatever is still queued.
    pub(crate) fn start(
        raft: Raft,
        state: SharedState,
        config: GroupCommitConfig,
        cancel: CancellationToken,
    ) -> (Arc<GroupCommit>, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE_LEN);
        let handle = Arc::new(GroupCommit {
            tx,
            pending_bytes: Arc::new(Semaphore::new(config.max_pending_bytes)),
            max_pending_bytes: config.max_pending_bytes,
            stalls: AtomicU64::new(0),
            cancel: cancel.clone(),
        });
        let task = tokio::spawn(
            run_batcher(raft, state, rx, config, cancel).instrument(tracing::Span::current()),
        );
        (handle, task)
    }

    /// How often an append had to wait for pending bytes to drain.
    pub(crate) fn stalls(&self) -> u64 {
        self.stalls.load(Ordering::Relaxed)
    }

    /// Appends one transaction and waits until its batch is committed and applied.
    pub(crate) async fn append(&self, txn: Txn) -> Result<Committed, AppendError> {
        let cost = u32::try_from(txn.mutations.len().clamp(1, self.max_pending_bytes))
            .expect("max_pending_bytes fits in u32 (validated)");
        let permit = match self.pending_bytes.clone().try_acquire_many_owned(cost) {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return Err(AppendError::ShuttingDown),
            Err(TryAcquireError::NoPermits) => {
                let stalls = self.stalls.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::debug!(stalls, "group commit queue full, append waits");
                tokio::select! {
                    permit = self.pending_bytes.clone().acquire_many_owned(cost) => {
                        permit.map_err(|_| AppendError::ShuttingDown)?
                    }
                    _ = self.cancel.cancelled() => return Err(AppendError::ShuttingDown),
                }
            }
        };
        let (reply, answer) = oneshot::channel();
        let pending = Pending { txn, reply, permit };
        tokio::select! {
            sent = self.tx.send(pending) => sent.map_err(|_| AppendError::ShuttingDown)?,
            _ = self.cancel.cancelled() => return Err(AppendError::ShuttingDown),
        }
        tokio::select! {
            outcome = answer => outcome.unwrap_or_else(|_| {
                Err(AppendError::Unknown("the batch was abandoned".into()))
            }),
            _ = self.cancel.cancelled() => Err(AppendError::ShuttingDown),
        }
    }
}

/// Stamps batches with wall-clock commit times that strictly increase.
#[derive(Debug, Default)]
pub(crate) struct CommitClock {
    last: i64,
}

impl CommitClock {
    /// `now` is the wall clock; `floor` the highest commit time already applied (which a new
    /// leader must exceed even if its clock is behind the previous leader's).
    pub(crate) fn next(&mut self, now: i64, floor: i64) -> i64 {
        let t = now
            .max(self.last.saturating_add(1))
            .max(floor.saturating_add(1));
        self.last = t;
        t
    }
}

fn wall_clock_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

async fn run_batcher(
    raft: Raft,
    state: SharedState,
    mut rx: mpsc::Receiver<Pending>,
    config: GroupCommitConfig,
    cancel: CancellationToken,
) {
    let in_flight = Arc::new(Semaphore::new(config.max_batches_in_flight));
    // Owned here: when the batcher stops, waiters still running are aborted and their
    // handlers learn the outcome is unknown.
    let mut waiters = JoinSet::new();
    let mut clock = CommitClock::default();
    let mut carry: Option<Pending> = None;
    // Every entry is bounded by `max_entry_bytes`, batches included.
    let max_batch_bytes = config.max_batch_bytes.min(config.max_entry_bytes);
    let is_large = |p: &Pending| p.txn.mutations.len() > config.max_entry_bytes;
    loop {
        while waiters.try_join_next().is_some() {}
        let first = match carry.take() {
            Some(p) => p,
            None => tokio::select! {
                p = rx.recv() => match p {
                    Some(p) => p,
                    None => break,
                },
                _ = cancel.cancelled() => break,
            },
        };
        // Wait for a slot before draining: whatever arrives meanwhile joins this batch.
        let slot = tokio::select! {
            slot = in_flight.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = cancel.cancelled() => break,
        };
        if is_large(&first) {
            // Inline: nothing else is proposed until its `Joined` entry is.
            tokio::select! {
                () = propose_large(
                    &raft,
                    &state,
                    &mut clock,
                    &mut waiters,
                    config.max_entry_bytes,
                    first,
                    slot,
                ) => {}
                _ = cancel.cancelled() => break,
            }
            continue;
        }
        let mut bytes = first.txn.mutations.len();
        let mut batch = vec![first];
        while bytes < max_batch_bytes {
            match rx.try_recv() {
                // A large transaction follows the batch formed so far.
                Ok(p) if is_large(&p) || bytes + p.txn.mutations.len() > max_batch_bytes => {
                    carry = Some(p);
                    break;
                }
                Ok(p) => {
                    bytes += p.txn.mutations.len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let commit_time_micros = clock.next(wall_clock_micros(), state.last_commit_time_micros());
        let mut txns = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for p in batch {
            txns.push(p.txn);
            replies.push(p.reply);
            drop(p.permit);
        }
        let count = txns.len();
        let request = Request::Batch(Batch {
            commit_time_micros,
            txns,
        });
        match raft.client_write_ff(request).await {
            Ok(receiver) => {
                waiters.spawn(
                    async move {
                        let outcome = receiver.await;
                        drop(slot);
                        deliver(outcome, commit_time_micros, replies);
                    }
                    .instrument(tracing::Span::current()),
                );
                tracing::debug!(txns = count, bytes, "proposed batch");
            }
            Err(fatal) => {
                tracing::warn!(error = %fatal, "cannot propose batch");
                for reply in replies {
                    let _ = reply.send(Err(AppendError::NotLeader { leader: None }));
                }
            }
        }
    }
    // Whatever is still queued never reached Raft.
    rx.close();
    if let Some(p) = carry.take() {
        let _ = p.reply.send(Err(AppendError::ShuttingDown));
    }
    while let Ok(p) = rx.try_recv() {
        let _ = p.reply.send(Err(AppendError::ShuttingDown));
    }
}

type WriteOutcome = Result<ClientWriteResult<TypeConfig>, oneshot::error::RecvError>;

/// The first `n - 1` pieces of `mutations` cut at `max` bytes (the parts), and the last one.
fn split_mutations(mutations: &Bytes, max: usize) -> (Vec<Bytes>, Bytes) {
    let mut parts = Vec::with_capacity(mutations.len() / max);
    let mut start = 0;
    while mutations.len() - start > max {
        parts.push(mutations.slice(start..start + max));
        start += max;
    }
    (parts, mutations.slice(start..))
}

/// Writes one transaction larger than `max_entry_bytes`: its parts, then (once they are
/// committed and their indexes known) the `Joined` entry, whose outcome a waiter delivers.
/// `slot` is held until then, like a batch's.
async fn propose_large(
    raft: &Raft,
    state: &SharedState,
    clock: &mut CommitClock,
    waiters: &mut JoinSet<()>,
    max_entry_bytes: usize,
    pending: Pending,
    slot: OwnedSemaphorePermit,
) {
    let Pending { txn, reply, permit } = pending;
    let size = txn.mutations.len();
    let (pieces, last) = split_mutations(&txn.mutations, max_entry_bytes);
    let count = pieces.len();
    let mut receivers = Vec::with_capacity(count);
    for bytes in pieces {
        let part = Request::Part(Part {
            timeline: txn.timeline,
            generation: txn.generation,
            bytes,
        });
        match raft.client_write_ff(part).await {
            Ok(receiver) => receivers.push(receiver),
            Err(fatal) => {
                tracing::warn!(error = %fatal, "cannot propose part");
                let _ = reply.send(Err(AppendError::NotLeader { leader: None }));
                return;
            }
        }
    }
    // Every byte is with Raft now.
    drop(permit);
    tracing::debug!(
        bytes = size,
        parts = count,
        "proposed parts of a large transaction"
    );
    let mut parts = Vec::with_capacity(count);
    for receiver in receivers {
        let index = match receiver.await {
            Ok(Ok(response)) if response.data == Response::None => response.log_id.index,
            // The `Joined` entry will not be proposed: the parts stay unreferenced.
            failed => {
                let _ = reply.send(Err(write_error(failed)));
                return;
            }
        };
        if parts.last().is_some_and(|prev| *prev >= index) {
            let _ = reply.send(Err(AppendError::Unknown(format!(
                "parts committed out of order ({parts:?}, then {index})"
            ))));
            return;
        }
        parts.push(index);
    }
    let commit_time_micros = clock.next(wall_clock_micros(), state.last_commit_time_micros());
    let joined = Request::Joined(Joined {
        commit_time_micros,
        txn: Txn {
            mutations: last,
            ..txn
        },
        parts,
    });
    match raft.client_write_ff(joined).await {
        Ok(receiver) => {
            waiters.spawn(
                async move {
                    let outcome = receiver.await;
                    drop(slot);
                    deliver(outcome, commit_time_micros, vec![reply]);
                }
                .instrument(tracing::Span::current()),
            );
            tracing::debug!(bytes = size, parts = count, "proposed joined entry");
        }
        Err(fatal) => {
            tracing::warn!(error = %fatal, "cannot propose joined entry");
            let _ = reply.send(Err(AppendError::NotLeader { leader: None }));
        }
    }
}

/// Why a proposed entry did not commit, as the appenders waiting on it learn it.
fn write_error(outcome: WriteOutcome) -> AppendError {
    match outcome {
        Ok(Ok(response)) => {
            AppendError::Unknown(format!("unexpected apply result {:?}", response.data))
        }
        Ok(Err(ClientWriteError::ForwardToLeader(forward))) => AppendError::NotLeader {
            leader: forward.leader_id,
        },
        Ok(Err(other)) => AppendError::Unknown(other.to_string()),
        Err(_) => AppendError::Unknown("raft stopped before the batch was decided".into()),
    }
}

fn deliver(
    outcome: WriteOutcome,
    commit_time_micros: i64,
    replies: Vec<oneshot::Sender<Result<Committed, AppendError>>>,
) {
    let fail_all = |replies: Vec<oneshot::Sender<_>>, err: AppendError| {
        for reply in replies {
            let _ = reply.send(Err(err.clone()));
        }
    };
    match outcome {
        Ok(Ok(response)) => {
            let lsn = Lsn(response.log_id.index);
            match response.data {
                Response::Batch { accepted } if accepted.len() == replies.len() => {
                    tracing::debug!(%lsn, txns = replies.len(), "batch committed");
                    for (reply, verdict) in replies.into_iter().zip(accepted) {
                        let answer = match verdict {
                            Some(previous_lsn) => Ok(Committed {
                                lsn,
                                commit_time_micros,
                                previous_lsn,
                            }),
                            None => Err(AppendError::Fenced),
                        };
                        let _ = reply.send(answer);
                    }
                }
                other => fail_all(
                    replies,
                    AppendError::Unknown(format!("unexpected apply result {other:?}")),
                ),
            }
        }
        failed => fail_all(replies, write_error(failed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_times_strictly_increase() {
        let mut clock = CommitClock::default();
        assert_eq!(clock.next(100, 0), 100);
        assert_eq!(clock.next(100, 0), 101);
        assert_eq!(clock.next(50, 0), 102);
        assert_eq!(clock.next(500, 0), 500);
        // A new leader whose clock lags what is already applied.
        let mut clock = CommitClock::default();
        assert_eq!(clock.next(10, 700), 701);
    }

    #[test]
    fn large_mutations_split_into_bounded_pieces() {
        let data = Bytes::from((0..=255u8).cycle().take(1000).collect::<Vec<u8>>());
        let (parts, last) = split_mutations(&data, 300);
        assert_eq!(parts.iter().map(Bytes::len).collect::<Vec<_>>(), [300; 3]);
        assert_eq!(last.len(), 100);
        let mut joined = parts.concat();
        joined.extend_from_slice(&last);
        assert_eq!(joined, data);
        // An exact multiple ends with a full piece, never an empty one.
        let (parts, last) = split_mutations(&data.slice(..900), 300);
        assert_eq!((parts.len(), last.len()), (2, 300));
    }
}
