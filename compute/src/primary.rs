//! State shared by every session of a primary compute.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use strata_core::Lsn;

use crate::catalog::{catalog_range, Catalog};
use crate::error::SqlResult;
use crate::sequence::Sequences;
use crate::storage::PageserverClient;
use crate::txn::TxnManager;

pub struct Primary {
    pub catalog: Catalog,
    pub sequences: Sequences,
    pub txns: Arc<TxnManager>,
    pub pageserver: PageserverClient,
    /// Catalogs as they were at past LSNs, for reads in the past (see [`Primary::catalog_at`]).
    pub past_catalogs: Mutex<HashMap<Lsn, Arc<Catalog>>>,
    /// A read-only compute's LSN: where every session reads unless it picks another past.
    pub pinned: Option<Lsn>,
    /// Points in the past already resolved or leased.
    pub points: crate::session::PointCache,
    /// Sessions per database.
    pub connections: Arc<crate::ddl::database::Connections>,
}

/// Past catalogs kept; the cache starts over when full.
const MAX_PAST_CATALOGS: usize = 64;

impl Primary {
    /// The committed values of `keys` at `lsn`, in order (`None`: no row): from the row cache
    /// where it has them, the rest from the pageserver (and into the cache). A transaction's
    /// own writes are the caller's to overlay.
    pub async fn read(&self, keys: Vec<Bytes>, lsn: Lsn) -> SqlResult<Vec<Option<Bytes>>> {
        let last_written = self.txns.last_written();
        let Some(cache) = self.txns.row_cache() else {
            let not_modified_since = last_written.for_keys(&keys);
            return Ok(self.pageserver.get(keys, lsn, not_modified_since).await?);
        };
        let mut values: Vec<Option<Option<Bytes>>> =
            keys.iter().map(|k| cache.get(k, lsn)).collect();
        // The keys the cache lacks, each with its last write as known before reading it.
        let (at, missing): (Vec<usize>, Vec<(Bytes, Lsn)>) = keys
            .into_iter()
            .enumerate()
            .filter(|(i, _)| values[*i].is_none())
            .map(|(i, k)| {
                let from = last_written.for_key(&k);
                (i, (k, from))
            })
            .unzip();
        if let Some(not_modified_since) = missing.iter().map(|(_, from)| *from).max() {
            let keys = missing.iter().map(|(k, _)| k.clone()).collect();
            let read = self.pageserver.get(keys, lsn, not_modified_since).await?;
            for ((i, (key, from)), value) in at.into_iter().zip(missing).zip(read) {
                cache.fill(last_written, key, value.clone(), from, lsn);
                values[i] = Some(value);
            }
        }
        Ok(values.into_iter().map(Option::flatten).collect())
    }

    /// The catalog as it was at `lsn`: tables dropped since are there, tables created since
    /// are not. Read from the pageserver once per LSN.
    pub async fn catalog_at(&self, lsn: Lsn) -> SqlResult<Arc<Catalog>> {
        if let Some(c) = self.past_catalogs.lock().expect("past catalogs").get(&lsn) {
            return Ok(c.clone());
        }
        let catalog = Arc::new(load_catalog(&self.pageserver, lsn).await?);
        let mut cache = self.past_catalogs.lock().expect("past catalogs");
        if cache.len() >= MAX_PAST_CATALOGS {
            cache.clear();
        }
        cache.insert(lsn, catalog.clone());
        Ok(catalog)
    }
}

/// The catalog as committed at `lsn`, read from the pageserver.
pub async fn load_catalog(pageserver: &PageserverClient, lsn: Lsn) -> SqlResult<Catalog> {
    let (start, end) = catalog_range();
    let mut scan = pageserver.scan(start, Some(end), lsn, lsn, None).await?;
    let mut entries = Vec::new();
    while let Some(chunk) = scan.next().await {
        let chunk = chunk?;
        entries.extend(
            chunk
                .keys
                .into_iter()
                .zip(chunk.values.into_iter().map(Some)),
        );
    }
    let catalog = Catalog::load(&entries)?;
    tracing::info!(%lsn, entries = entries.len(), "catalog loaded");
    Ok(catalog)
}

impl fmt::Debug for Primary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Primary")
            .field("timeline", &self.pageserver.timeline())
            .finish()
    }
}
