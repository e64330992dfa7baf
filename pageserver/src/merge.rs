//! The k-way merge behind `Scan`: many sources sorted by `(key, lsn)` in, one stream of live
//! `(key, value)` pairs out, where each key shows its newest version at or below the read LSN
//! and a tombstone hides every older version.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use bytes::Bytes;
use strata_core::Lsn;

use crate::error::Result;
use crate::in_memory_layer::Value;

/// One version of one key, as stored in a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key: Bytes,
    pub lsn: Lsn,
    pub value: Value,
}

/// A sorted source of entries (an in-memory layer or a layer file).
pub(crate) type Source = Box<dyn Iterator<Item = Result<Entry>> + Send>;

/// The head of one source in the heap. Ordered by `(key, lsn)` and then so that, on an exact
/// tie, the newer source (lower index) comes out last and therefore wins.
struct Head {
    entry: Entry,
    source: usize,
}

impl Head {
    fn sort_key(&self) -> (&Bytes, Lsn, Reverse<usize>) {
        (&self.entry.key, self.entry.lsn, Reverse(self.source))
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.sort_key() == other.sort_key()
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

/// Merges sources (given newest first) into live `(key, value)` pairs in key order, reading
/// each key's versions at or below `max_lsn`. Stops at the first source error.
pub(crate) struct MergeIterator {
    sources: Vec<Source>,
    heap: BinaryHeap<Reverse<Head>>,
    max_lsn: Lsn,
    failed: bool,
}

impl MergeIterator {
    pub fn new(sources: Vec<Source>, max_lsn: Lsn) -> Result<Self> {
        let mut merge = Self {
            sources,
            heap: BinaryHeap::new(),
            max_lsn,
            failed: false,
        };
        for i in 0..merge.sources.len() {
            merge.advance(i)?;
        }
        Ok(merge)
    }

    /// Pulls the next entry at or below `max_lsn` from source `i` into the heap.
    fn advance(&mut self, i: usize) -> Result<()> {
        for entry in self.sources[i].by_ref() {
            let entry = entry?;
            if entry.lsn <= self.max_lsn {
                self.heap.push(Reverse(Head { entry, source: i }));
                break;
            }
        }
        Ok(())
    }

    fn pop(&mut self) -> Result<Option<Entry>> {
        let Some(Reverse(head)) = self.heap.pop() else {
            return Ok(None);
        };
        self.advance(head.source)?;
        Ok(Some(head.entry))
    }

    /// The newest version of the next key, tombstones included.
    fn next_version(&mut self) -> Result<Option<Entry>> {
        let Some(mut newest) = self.pop()? else {
            return Ok(None);
        };
        while self
            .heap
            .peek()
            .is_some_and(|Reverse(h)| h.entry.key == newest.key)
        {
            newest = self.pop()?.expect("peeked an entry");
        }
        Ok(Some(newest))
    }
}

impl MergeIterator {
    /// Every version of every key, tombstones included, in `(key, lsn)` order: what
    /// compaction rewrites. Sources must not share a `(key, lsn)`.
    pub fn versions(self) -> Versions {
        Versions(self)
    }
}

/// See [`MergeIterator::versions`].
pub(crate) struct Versions(MergeIterator);

impl Iterator for Versions {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.failed {
            return None;
        }
        match self.0.pop() {
            Ok(entry) => entry.map(Ok),
            Err(e) => {
                self.0.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl Iterator for MergeIterator {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            match self.next_version() {
                Ok(Some(Entry {
                    key,
                    value: Some(value),
                    ..
                })) => return Some(Ok((key, value))),
                Ok(Some(_tombstone)) => continue,
                Ok(None) => return None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::PageserverError;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn source(entries: &[(&str, u64, Option<&str>)]) -> Source {
        let v: Vec<Result<Entry>> = entries
            .iter()
            .map(|(k, l, v)| {
                Ok(Entry {
                    key: b(k),
                    lsn: Lsn(*l),
                    value: v.map(b),
                })
            })
            .collect();
        Box::new(v.into_iter())
    }

    fn merged(sources: Vec<Source>, lsn: u64) -> Vec<(String, String)> {
        MergeIterator::new(sources, Lsn(lsn))
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                (
                    String::from_utf8(k.to_vec()).unwrap(),
                    String::from_utf8(v.to_vec()).unwrap(),
                )
            })
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn layers() -> Vec<Source> {
        vec![
            // newest
            source(&[
                ("a", 30, None),
                ("c", 31, Some("c31")),
                ("e", 32, Some("e32")),
            ]),
            source(&[
                ("a", 20, Some("a20")),
                ("b", 21, None),
                ("d", 22, Some("d22")),
            ]),
            // oldest
            source(&[
                ("a", 10, Some("a10")),
                ("b", 10, Some("b10")),
                ("c", 10, Some("c10")),
                ("d", 10, Some("d10")),
            ]),
        ]
    }

    #[test]
    fn newest_version_wins_and_tombstones_hide() {
        assert_eq!(
            merged(layers(), u64::MAX),
            pairs(&[("c", "c31"), ("d", "d22"), ("e", "e32")])
        );
    }

    #[test]
    fn lsn_cut_off_reads_the_past() {
        assert_eq!(
            merged(layers(), 25),
            pairs(&[("a", "a20"), ("c", "c10"), ("d", "d22")])
        );
        assert_eq!(
            merged(layers(), 10),
            pairs(&[("a", "a10"), ("b", "b10"), ("c", "c10"), ("d", "d10")])
        );
        assert_eq!(merged(layers(), 9), pairs(&[]));
        assert_eq!(merged(Vec::new(), 9), pairs(&[]));
    }

    #[test]
    fn an_exact_tie_prefers_the_newer_source() {
        let sources = vec![
            source(&[("k", 5, Some("new"))]),
            source(&[("k", 5, Some("old"))]),
        ];
        assert_eq!(merged(sources, 5), pairs(&[("k", "new")]));
    }

    #[test]
    fn a_source_error_ends_the_merge() {
        let failing: Source = Box::new(
            vec![
                Ok(Entry {
                    key: b("a"),
                    lsn: Lsn(1),
                    value: Some(b("x")),
                }),
                Err(PageserverError::corruption("test", "boom")),
            ]
            .into_iter(),
        );
        let mut it = MergeIterator::new(vec![failing], Lsn(9)).unwrap();
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }
}
