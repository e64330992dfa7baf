//! The sqllogictest engines: one PostgreSQL-protocol client used against both Strata and a real
//! PostgreSQL, so that the same `.slt` file checks that both give the same answers.

mod engine;
mod postgres;

pub use engine::{PgWireDb, SqlFailure};
pub use postgres::PostgresServer;

use std::path::{Path, PathBuf};

/// The `.slt` files, sorted.
pub fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}
