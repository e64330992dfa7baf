//! The vocabulary every Strata component shares: positions in the WAL ([`Lsn`]), timeline
//! identities ([`TimelineId`]), the ordered key space ([`key`]), committed WAL ([`wal`]) and the
//! names of objects in object storage ([`layout`]). Nothing here does I/O.

pub mod key;
pub mod layout;
mod lsn;
mod timeline_id;
pub mod wal;

pub use lsn::{Lsn, ParseLsnError};
pub use timeline_id::{ParseTimelineIdError, TimelineId};
