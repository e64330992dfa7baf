//! State shared by every session of a primary compute.

use std::fmt;
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::sequence::Sequences;
use crate::storage::PageserverClient;
use crate::txn::TxnManager;

pub struct Primary {
    pub catalog: Catalog,
    pub sequences: Sequences,
    pub txns: Arc<TxnManager>,
    pub pageserver: PageserverClient,
}

impl fmt::Debug for Primary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Primary")
            .field("timeline", &self.pageserver.timeline())
            .finish()
    }
}
