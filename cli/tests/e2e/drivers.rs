//! Driver smoke suites: the client libraries applications use (psycopg 3, asyncpg, pg8000,
//! SQLAlchemy, pgjdbc, node-postgres), each running its suite under `drivers/` as a subprocess,
//! once against a fresh database in a real PostgreSQL (proving the suite right) and once against
//! a fresh `strata up`. The suites mark the steps Strata cannot do yet as known gaps that must
//! fail.
//!
//! `./scripts/test` installs the drivers and names them in the environment (see
//! docs/testing.md); without that environment these tests fail and say so.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{url, Up};

/// How long one suite may take before it is killed (they take seconds).
const SUITE_TIMEOUT: Duration = Duration::from_secs(180);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn drivers_dir() -> PathBuf {
    repo_root().join("drivers")
}

/// A path the test command exports; a clear failure when it is missing.
fn installed(var: &str) -> String {
    match std::env::var(var) {
        Ok(value) if Path::new(&value).exists() => value,
        Ok(value) => panic!(
            "{var}={value} does not exist: the driver suites run with what ./scripts/test \
             installs; run ./scripts/test -E 'test(drivers)'"
        ),
        Err(_) => panic!(
            "{var} is not set: the driver suites run with what ./scripts/test installs \
             (Python packages, node-postgres, pgjdbc) and the PostgreSQL it starts; \
             run ./scripts/test -E 'test(drivers)'"
        ),
    }
}

/// The database a suite runs against, kept alive as long as the value.
struct Database {
    url: String,
    target: &'static str,
    _strata: Option<(Up, tempfile::TempDir)>,
}

impl Database {
    /// A fresh database `drivers_<name>` in the PostgreSQL the test command started.
    async fn postgres(name: &str) -> Database {
        let base = crate::support::postgres_url();
        let (client, connection) =
            tokio_postgres::connect(&format!("{base}/postgres"), tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("connect to PostgreSQL at {base}: {e}"));
        let conn = tokio::spawn(connection);
        let db = format!("drivers_{name}");
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
            .await
            .unwrap();
        client
            .batch_execute(&format!(
                "CREATE DATABASE {db} TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
            ))
            .await
            .unwrap();
        drop(client);
        let _ = conn.await;
        Database {
            url: format!("{base}/{db}"),
            target: "postgres",
            _strata: None,
        }
    }

    /// A fresh `strata up` on a free port.
    async fn strata() -> Database {
        let dir = tempfile::tempdir().unwrap();
        let up = Up::start(dir.path()).await;
        Database {
            url: url(up.port),
            target: "strata",
            _strata: Some((up, dir)),
        }
    }
}

/// Runs a driver program against `db`; returns its stdout, or fails with all it printed.
fn run(what: &str, mut command: Command, db: &Database) -> String {
    let out_dir = tempfile::tempdir().unwrap();
    let stdout_path = out_dir.path().join("stdout");
    let stderr_path = out_dir.path().join("stderr");
    command
        .env("STRATA_DRIVERS_DATABASE_URL", &db.url)
        .env("STRATA_DRIVERS_TARGET", db.target)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} ({command:?}): {e}"));
    let deadline = Instant::now() + SUITE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let printed = format!("--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    match status {
        Some(status) if status.success() => {
            eprintln!("{what} against {} ({}):\n{printed}", db.target, db.url);
            stdout
        }
        Some(status) => panic!(
            "{what} against {} ({}) failed ({status}):\n{printed}",
            db.target, db.url
        ),
        None => panic!(
            "{what} against {} ({}) did not finish within {SUITE_TIMEOUT:?}:\n{printed}",
            db.target, db.url
        ),
    }
}

fn pytest(file: &str) -> Command {
    let mut command = Command::new(installed("STRATA_DRIVERS_PYTHON"));
    command
        .args(["-m", "pytest", "-q", file])
        .current_dir(drivers_dir().join("python"));
    command
}

fn node_postgres() -> Command {
    let mut command = Command::new("node");
    command
        .arg(drivers_dir().join("node").join("smoke.js"))
        .env("NODE_PATH", installed("STRATA_DRIVERS_NODE_MODULES"));
    command
}

fn pgjdbc() -> Command {
    let mut command = Command::new("java");
    command
        .arg("-cp")
        .arg(installed("STRATA_JDBC_JAR"))
        .arg(drivers_dir().join("java").join("Smoke.java"));
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_against_postgres() {
    let suite = pytest("test_psycopg.py");
    let db = Database::postgres("psycopg").await;
    run("psycopg", suite, &db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_against_strata() {
    let suite = pytest("test_psycopg.py");
    let db = Database::strata().await;
    run("psycopg", suite, &db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncpg_against_postgres() {
    let suite = pytest("test_asyncpg.py");
    let db = Database::postgres("asyncpg").await;
    run("asyncpg", suite, &db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncpg_against_strata() {
    let suite = pytest("test_asyncpg.py");
    let db = Database::strata().await;
    run("asyncpg", suite, &db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg8000_against_postgres() {
    let suite = pytest("test_pg8000.py");
    let db = Database::postgres("pg8000").await;
    run("pg8000", suite, &db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg8000_against_strata() {
    let suite = pytest("test_pg8000.py");
    let db = Database::strata().await;
    run("pg8000", suite, &db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlalchemy_against_postgres() {
    let suite = pytest("test_sqlalchemy.py");
    let db = Database::postgres("sqlalchemy").await;
    run("sqlalchemy", suite, &db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlalchemy_against_strata() {
    let suite = pytest("test_sqlalchemy.py");
    let db = Database::strata().await;
    run("sqlalchemy", suite, &db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_against_postgres() {
    let suite = pytest("test_django.py");
    let db = Database::postgres("django").await;
    run("django", suite, &db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_against_strata() {
    let suite = pytest("test_django.py");
    let db = Database::strata().await;
    run("django", suite, &db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgjdbc_against_postgres() {
    let suite = pgjdbc();
    let db = Database::postgres("pgjdbc").await;
    run("pgjdbc", suite, &db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgjdbc_against_strata() {
    let suite = pgjdbc();
    let db = Database::strata().await;
    run("pgjdbc", suite, &db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_postgres_against_postgres() {
    let suite = node_postgres();
    let db = Database::postgres("node_postgres").await;
    run("node-postgres", suite, &db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_postgres_against_strata() {
    let suite = node_postgres();
    let db = Database::strata().await;
    run("node-postgres", suite, &db);
}
