//! The primary's cache of committed rows, so that hot point reads skip the pageserver.
//!
//! A point read costs a gRPC round trip to the pageserver, several times what the rest of a
//! primary-key SELECT costs. The primary does every write of its branch, so it knows exactly
//! when a key changes, and can keep the newest committed value of hot keys in memory (a foyer
//! cache, bounded in bytes, as the design names for the compute's row cache).
//!
//! An entry says: the key's newest committed value is `value`, written at or below `from`.
//! It answers a read at any LSN at or after `from`; older reads go to the pageserver. Entries
//! come from two places:
//!
//! - **Commits.** Every commit stores what it wrote, at its commit LSN, after recording the
//!   keys in [`LastWritten`] and before the commit becomes visible, so no snapshot that
//!   includes a commit can find an older entry of its keys.
//! - **Reads.** A value read from the pageserver at `lsn` is stored with `from` = the key's
//!   last write as [`LastWritten`] knew it before the read, when that is at or below `lsn`
//!   (the value read is then the newest). A commit can land between the read and the store;
//!   the store checks afterwards that the key's last write did not move, and drops the entry
//!   if it did, so a stale value never outlives the commit that replaced it.
//!
//! The cache is only for a primary: a read-only compute does not see the branch's commits.

use bytes::Bytes;
use foyer::{Cache, CacheBuilder};
use strata_core::Lsn;

use crate::last_written::LastWritten;

/// Bytes an entry costs beyond its key and value (foyer's record, the `Bytes` headers).
const ENTRY_OVERHEAD: usize = 96;

#[derive(Clone, Debug)]
struct CachedRow {
    /// `None`: the key has no row.
    value: Option<Bytes>,
    from: Lsn,
}

pub struct RowCache {
    rows: Cache<Bytes, CachedRow>,
}

impl std::fmt::Debug for RowCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowCache")
            .field("capacity", &self.rows.capacity())
            .field("usage", &self.rows.usage())
            .finish()
    }
}

impl RowCache {
    /// A cache holding at most about `capacity` bytes of keys and values.
    pub fn new(capacity: usize) -> Self {
        let rows = CacheBuilder::new(capacity)
            .with_weighter(|key: &Bytes, row: &CachedRow| {
                key.len() + row.value.as_ref().map_or(0, Bytes::len) + ENTRY_OVERHEAD
            })
            .build();
        Self { rows }
    }

    /// The committed value of `key` at `lsn`, if the cache knows it (`Some(None)`: no row).
    pub fn get(&self, key: &Bytes, lsn: Lsn) -> Option<Option<Bytes>> {
        let entry = self.rows.get(key)?;
        (entry.from <= lsn).then(|| entry.value.clone())
    }

    /// Forgets every entry (the primary learned of a commit whose keys it does not know).
    pub fn clear(&self) {
        self.rows.clear();
    }

    /// Stores what a commit at `lsn` wrote (`None`: deleted). Called in commit order for each
    /// key (a key's writers hold its lock until their commit is visible).
    pub fn committed<'a>(
        &self,
        writes: impl IntoIterator<Item = (&'a Bytes, &'a Option<Bytes>)>,
        lsn: Lsn,
    ) {
        for (key, value) in writes {
            self.rows.insert(
                key.clone(),
                CachedRow {
                    value: value.clone(),
                    from: lsn,
                },
            );
        }
    }

    /// Stores `value`, read from the pageserver at `lsn`, if it is the key's newest: `from` is
    /// the key's last write as `last_written` knew it before the read.
    pub fn fill(
        &self,
        last_written: &LastWritten,
        key: Bytes,
        value: Option<Bytes>,
        from: Lsn,
        lsn: Lsn,
    ) {
        if from > lsn {
            return;
        }
        self.rows.insert(key.clone(), CachedRow { value, from });
        // A commit of the key since the read records it before storing its own entry, which
        // may have come before ours: then ours is stale, and goes.
        if last_written.for_key(&key) != from {
            self.rows.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn answers_reads_at_or_after_the_value_was_written() {
        let cache = RowCache::new(1 << 20);
        let a = key("ta");
        cache.committed([(&a, &Some(key("v1")))], Lsn(20));
        assert_eq!(cache.get(&a, Lsn(19)), None);
        assert_eq!(cache.get(&a, Lsn(20)), Some(Some(key("v1"))));
        cache.committed([(&a, &None)], Lsn(30));
        assert_eq!(cache.get(&a, Lsn(25)), None);
        assert_eq!(cache.get(&a, Lsn(30)), Some(None));
    }

    #[test]
    fn a_fill_overtaken_by_a_commit_is_dropped() {
        let lw = LastWritten::new(Lsn(10));
        let cache = RowCache::new(1 << 20);
        let a = key("ta");
        // Read at 15, knowing the key was last written at or below 10.
        let from = lw.for_key(&a);
        // A commit at 20 lands before the value read is stored.
        lw.record([&a], Lsn(20));
        cache.committed([(&a, &Some(key("new")))], Lsn(20));
        cache.fill(&lw, a.clone(), Some(key("old")), from, Lsn(15));
        assert_eq!(cache.get(&a, Lsn(20)), None);
        // Without a commit in between, the value read is kept.
        let b = key("tb");
        cache.fill(&lw, b.clone(), Some(key("v")), lw.for_key(&b), Lsn(15));
        assert_eq!(cache.get(&b, Lsn(15)), Some(Some(key("v"))));
        assert_eq!(cache.get(&b, Lsn(9)), None);
    }

    #[test]
    fn a_value_read_before_its_last_write_is_not_stored() {
        let lw = LastWritten::new(Lsn(10));
        let cache = RowCache::new(1 << 20);
        let a = key("ta");
        lw.record([&a], Lsn(20));
        cache.fill(&lw, a.clone(), Some(key("old")), lw.for_key(&a), Lsn(15));
        assert_eq!(cache.get(&a, Lsn(30)), None);
    }
}
