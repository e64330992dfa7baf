//! Names of objects in object storage, relative to the deployment's bucket and prefix.
//!
//! ```text
//! control/manifest/<version>              branches and endpoints
//! timelines/<id>/manifest/<version>       layer list, LSNs, ancestor, generation
//! timelines/<id>/layers/<layer name>      immutable layer files
//! safekeepers/wal/<first>-<last>          offloaded WAL: the Raft entries first..=last
//! safekeepers/state/<index>               the safekeepers' replicated state after entry index
//! ```
//!
//! Manifests are never overwritten: each new version is a new object created with
//! "create if absent" (`If-None-Match: *`), so two writers racing for the same version cannot both
//! win. The current manifest is the one with the highest version. Versions are zero-padded so that
//! a listing returns them in order.

use crate::TimelineId;

/// Folder holding the versions of the control-plane manifest.
pub const CONTROL_MANIFEST_DIR: &str = "control/manifest";

/// Folder holding everything of one timeline.
pub fn timeline_dir(timeline: TimelineId) -> String {
    format!("timelines/{timeline}")
}

/// Folder holding the versions of a timeline's manifest.
pub fn timeline_manifest_dir(timeline: TimelineId) -> String {
    format!("timelines/{timeline}/manifest")
}

/// The object holding one version of a manifest kept in `dir`.
pub fn manifest_version(dir: &str, version: u64) -> String {
    format!("{dir}/{version:020}")
}

/// Parses the version out of a manifest object's file name.
pub fn parse_manifest_version(file_name: &str) -> Option<u64> {
    if file_name.len() == 20 && file_name.bytes().all(|b| b.is_ascii_digit()) {
        file_name.parse().ok()
    } else {
        None
    }
}

/// The object holding one layer file of a timeline.
pub fn layer_object(timeline: TimelineId, layer_name: &str) -> String {
    format!("timelines/{timeline}/layers/{layer_name}")
}

/// Folder holding the safekeepers' offloaded WAL objects.
pub const SAFEKEEPER_WAL_DIR: &str = "safekeepers/wal";

/// Folder holding the safekeepers' state checkpoints.
pub const SAFEKEEPER_STATE_DIR: &str = "safekeepers/state";

/// The offloaded WAL object holding the Raft entries `first..=last`. Indexes are zero-padded
/// so that a listing returns objects in log order.
pub fn safekeeper_wal_object(first: u64, last: u64) -> String {
    format!("{SAFEKEEPER_WAL_DIR}/{first:020}-{last:020}")
}

/// Parses `(first, last)` out of an offloaded WAL object's file name.
pub fn parse_safekeeper_wal_object(file_name: &str) -> Option<(u64, u64)> {
    let (first, last) = file_name.split_once('-')?;
    let first = parse_manifest_version(first)?;
    let last = parse_manifest_version(last)?;
    (first <= last).then_some((first, last))
}

/// The safekeepers' state checkpoint taken after the entry at `index`.
pub fn safekeeper_state_object(index: u64) -> String {
    format!("{SAFEKEEPER_STATE_DIR}/{index:020}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_versions_sort_and_parse() {
        let a = manifest_version(CONTROL_MANIFEST_DIR, 9);
        let b = manifest_version(CONTROL_MANIFEST_DIR, 10);
        assert!(a < b);
        let name = b.rsplit('/').next().unwrap();
        assert_eq!(parse_manifest_version(name), Some(10));
        assert_eq!(parse_manifest_version("10"), None);
    }

    #[test]
    fn wal_objects_sort_and_parse() {
        let a = safekeeper_wal_object(9, 120);
        let b = safekeeper_wal_object(121, 130);
        assert!(a < b);
        let name = b.rsplit('/').next().unwrap();
        assert_eq!(parse_safekeeper_wal_object(name), Some((121, 130)));
        assert_eq!(parse_safekeeper_wal_object("5-4"), None);
    }
}
