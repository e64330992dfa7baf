//! Runs every `.slt` file against Strata and against PostgreSQL; both must pass.
//!
//! Each file is two tests, `strata::<file>` and `postgres::<file>`, so `cargo nextest` runs and
//! reports them separately. A file that must differ between the two uses sqllogictest's
//! `onlyif strata` / `skipif strata` and says why in a comment.

use std::path::PathBuf;
use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};
use sqllogictest::Runner;
use strata::up::{start, UpArgs};
use strata_sql_tests::{slt_files, PgWireDb, PostgresServer};

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    for file in slt_files() {
        let name = file.file_stem().unwrap().to_string_lossy().to_string();
        let f = file.clone();
        trials.push(Trial::test(format!("strata::{name}"), move || {
            run(async_strata(f))
        }));
        let f = file.clone();
        trials.push(Trial::test(format!("postgres::{name}"), move || {
            run(async_postgres(f))
        }));
    }
    libtest_mimic::run(&args, trials).exit();
}

fn run(test: impl std::future::Future<Output = anyhow::Result<()>>) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(test)
        .map_err(|e| Failed::from(format!("{e:#}")))
}

async fn run_file(url: String, engine: &'static str, file: &PathBuf) -> anyhow::Result<()> {
    let url = Arc::new(url);
    let mut runner = Runner::new(move || {
        let url = url.clone();
        async move { PgWireDb::connect(&url, engine).await }
    });
    runner.add_label(engine);
    runner
        .run_file_async(file)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.display(true)))
}

async fn async_strata(file: PathBuf) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let running = start(UpArgs::new(dir.path())).await?;
    let url = format!("postgres://postgres@{}/postgres", running.postgres);
    let result = run_file(url, "strata", &file).await;
    running.stop().await;
    result
}

async fn async_postgres(file: PathBuf) -> anyhow::Result<()> {
    let server = tokio::task::spawn_blocking(PostgresServer::shared_or_start).await??;
    let db = format!(
        "slt_{}_{}",
        file.file_stem().unwrap().to_string_lossy(),
        std::process::id()
    );
    let url = server.fresh_database(&db).await?;
    let result = run_file(url, "postgres", &file).await;
    server.drop_database(&db).await?;
    result
}
