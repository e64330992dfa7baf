//! Sequences: the values `nextval` hands out, and how they stay unique across crashes.
//!
//! A value taken from a sequence is never handed out again, even when the transaction that
//! took it rolls back (as in PostgreSQL). Committing the sequence's state for every value would
//! cost a quorum round trip per row, so the primary *reserves* values in blocks: it commits
//! "values up to X may have been used" in a small transaction of its own, then hands out values
//! up to X from memory. A transaction that uses a value commits after the reservation that
//! covers it, so after a crash the sequence resumes past every value a committed row holds; the
//! reserved values never handed out are skipped (PostgreSQL skips up to 32 the same way).
//!
//! A sequence created by a transaction that has not committed yet exists only in that
//! transaction: its state is kept in the transaction's writes and goes away on rollback.

pub mod functions;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::catalog::{sequence_state_key, SequenceDef};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::primary::Primary;
use crate::txn::{Isolation, LockOutcome, Transaction};

/// Values reserved beyond the ones a `nextval` call needs (unless the sequence's CACHE is
/// larger).
const RESERVE_AHEAD: i64 = 32;

/// A sequence's position: the last value, and whether it was handed out (`is_called`); a
/// sequence that has not handed out anything yet is at `(start, false)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceState {
    pub last: i64,
    pub called: bool,
}

impl SequenceState {
    pub fn initial(def: &SequenceDef) -> Self {
        Self {
            last: def.start,
            called: false,
        }
    }

    pub fn encode(self) -> Bytes {
        let mut v = self.last.to_be_bytes().to_vec();
        v.push(u8::from(self.called));
        Bytes::from(v)
    }

    pub fn decode(value: &[u8]) -> SqlResult<Self> {
        match value {
            [last @ .., called] if last.len() == 8 => Ok(Self {
                last: i64::from_be_bytes(last.try_into().expect("8 bytes")),
                called: *called != 0,
            }),
            _ => Err(SqlError::new(
                sqlstate::DATA_CORRUPTED,
                "corrupt sequence state",
            )),
        }
    }
}

/// The next `n` values of a sequence at `state`, which is moved past them.
pub fn advance(def: &SequenceDef, state: &mut SequenceState, n: usize) -> SqlResult<Vec<i64>> {
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        let next = if state.called {
            state
                .last
                .checked_add(def.increment)
                .filter(|v| (def.min..=def.max).contains(v))
        } else {
            Some(state.last)
        };
        let next = match next {
            Some(v) => v,
            None if def.cycle => {
                if def.increment > 0 {
                    def.min
                } else {
                    def.max
                }
            }
            None => return Err(limit_reached(def)),
        };
        *state = SequenceState {
            last: next,
            called: true,
        };
        values.push(next);
    }
    Ok(values)
}

fn limit_reached(def: &SequenceDef) -> SqlError {
    let (which, bound) = if def.increment > 0 {
        ("maximum", def.max)
    } else {
        ("minimum", def.min)
    };
    SqlError::new(
        sqlstate::SEQUENCE_GENERATOR_LIMIT_EXCEEDED,
        format!(
            "nextval: reached {which} value of sequence \"{}\" ({bound})",
            def.name
        ),
    )
}

/// `setval`'s check that a value lies within the sequence's bounds.
pub fn check_bounds(def: &SequenceDef, value: i64) -> SqlResult<()> {
    if (def.min..=def.max).contains(&value) {
        return Ok(());
    }
    Err(SqlError::new(
        sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
        format!(
            "setval: value {value} is out of bounds for sequence \"{}\" ({}..{})",
            def.name, def.min, def.max
        ),
    ))
}

/// A committed sequence's position in memory, and how far it is reserved in storage.
#[derive(Debug, Clone, Copy)]
struct Cached {
    state: SequenceState,
    /// Values up to this one (in the direction of the increment) are covered by a committed
    /// reservation.
    reserved: Option<i64>,
}

impl Cached {
    fn covers(&self, def: &SequenceDef, value: i64) -> bool {
        !def.cycle
            && self.reserved.is_some_and(|r| {
                if def.increment > 0 {
                    value <= r
                } else {
                    value >= r
                }
            })
    }
}

/// The primary's sequence positions (for committed sequences), shared by every session.
#[derive(Debug, Default)]
pub struct Sequences {
    entries: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<Option<Cached>>>>>,
}

impl Sequences {
    fn entry(&self, id: u64) -> Arc<tokio::sync::Mutex<Option<Cached>>> {
        self.entries
            .lock()
            .expect("sequences lock")
            .entry(id)
            .or_default()
            .clone()
    }

    /// Drops what memory holds of a sequence whose definition or state a transaction changed.
    pub fn forget(&self, id: u64) {
        self.entries.lock().expect("sequences lock").remove(&id);
    }

    /// The next `n` values of a committed sequence.
    pub async fn next_values(
        &self,
        primary: &Primary,
        def: &SequenceDef,
        n: usize,
    ) -> SqlResult<Vec<i64>> {
        let entry = self.entry(def.id);
        let mut cached = entry.lock().await;
        loop {
            let current = match *cached {
                Some(c) => c,
                None => {
                    let state = load_state(primary, def).await?;
                    Cached {
                        state,
                        reserved: state.called.then_some(state.last),
                    }
                }
            };
            let mut state = current.state;
            let values = advance(def, &mut state, n)?;
            let Some(&last) = values.last() else {
                return Ok(values);
            };
            if current.covers(def, last) {
                *cached = Some(Cached { state, ..current });
                return Ok(values);
            }
            let reserve_to = if def.cycle {
                state
            } else {
                let mut ahead = state;
                let extra = RESERVE_AHEAD.max(def.cache) as usize;
                // Reserve as far ahead as the bounds allow.
                match advance(def, &mut ahead, extra) {
                    Ok(_) => ahead,
                    Err(_) => SequenceState {
                        last: if def.increment > 0 { def.max } else { def.min },
                        called: true,
                    },
                }
            };
            if persist(primary, def.id, reserve_to).await? {
                *cached = Some(Cached {
                    state,
                    reserved: Some(reserve_to.last),
                });
                return Ok(values);
            }
            // Someone changed the sequence meanwhile (ALTER, setval): read it again.
            *cached = None;
        }
    }

    /// `setval` on a committed sequence: takes effect at once, whatever the transaction does.
    pub async fn set(
        &self,
        primary: &Primary,
        def: &SequenceDef,
        state: SequenceState,
    ) -> SqlResult<()> {
        let entry = self.entry(def.id);
        let mut cached = entry.lock().await;
        while !persist(primary, def.id, state).await? {}
        *cached = Some(Cached {
            state,
            reserved: state.called.then_some(state.last),
        });
        Ok(())
    }
}

/// The next `n` values of a sequence that `txn` created: its state lives in `txn`.
pub fn next_values_in(txn: &mut Transaction, def: &SequenceDef, n: usize) -> SqlResult<Vec<i64>> {
    let key = sequence_state_key(def.id);
    let mut state = match txn.write(&key) {
        Some(Some(v)) => SequenceState::decode(v)?,
        _ => SequenceState::initial(def),
    };
    let values = advance(def, &mut state, n)?;
    txn.put(key, state.encode());
    Ok(values)
}

/// `setval` on a sequence that `txn` created.
pub fn set_in(txn: &mut Transaction, def: &SequenceDef, state: SequenceState) {
    txn.put(sequence_state_key(def.id), state.encode());
}

/// The committed state of a sequence, as of the latest commit.
async fn load_state(primary: &Primary, def: &SequenceDef) -> SqlResult<SequenceState> {
    let keys = vec![sequence_state_key(def.id)];
    let lsn = primary.txns.last_commit_lsn();
    let values = primary.read(keys, lsn).await?;
    match values.into_iter().next().flatten() {
        Some(v) => SequenceState::decode(&v),
        None => Ok(SequenceState::initial(def)),
    }
}

/// Commits `state` as the sequence's state in a transaction of its own. `false` when a
/// transaction changed the state after this one began (the caller reads it again).
async fn persist(primary: &Primary, id: u64, state: SequenceState) -> SqlResult<bool> {
    let mut txn = primary.txns.begin(Isolation::ReadCommitted, false);
    let key = sequence_state_key(id);
    if txn.lock(&key).await? == LockOutcome::ChangedSinceSnapshot {
        return Ok(false);
    }
    txn.put(key, state.encode());
    primary.txns.commit(txn, || {}).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::SqlType;

    fn seq(increment: i64, min: i64, max: i64, cycle: bool) -> SequenceDef {
        SequenceDef {
            id: 1,
            database: "postgres".into(),
            schema: "public".into(),
            name: "s".into(),
            ty: SqlType::Int8,
            start: if increment > 0 { min } else { max },
            increment,
            min,
            max,
            cache: 1,
            cycle,
            owned_by: None,
        }
    }

    #[test]
    fn advances_from_start_and_stops_or_cycles_at_the_bounds() {
        let def = seq(2, 1, 6, false);
        let mut s = SequenceState::initial(&def);
        assert_eq!(advance(&def, &mut s, 3).unwrap(), vec![1, 3, 5]);
        let e = advance(&def, &mut s, 1).unwrap_err();
        assert_eq!(e.code, sqlstate::SEQUENCE_GENERATOR_LIMIT_EXCEEDED);
        assert_eq!(s.last, 5, "a failed nextval moves nothing");

        let def = seq(-1, 1, 2, true);
        let mut s = SequenceState::initial(&def);
        assert_eq!(advance(&def, &mut s, 4).unwrap(), vec![2, 1, 2, 1]);

        let def = seq(1, 1, i64::MAX, false);
        let mut s = SequenceState {
            last: i64::MAX,
            called: true,
        };
        assert!(advance(&def, &mut s, 1).is_err(), "overflow is the limit");
    }

    #[test]
    fn state_round_trips() {
        let s = SequenceState {
            last: -7,
            called: true,
        };
        assert_eq!(SequenceState::decode(&s.encode()).unwrap(), s);
        assert!(SequenceState::decode(b"short").is_err());
    }
}
