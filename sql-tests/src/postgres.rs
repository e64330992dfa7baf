//! A real PostgreSQL to check `.slt` files against.
//!
//! The test command starts one for the whole run and names it in `STRATA_TEST_POSTGRES_URL`;
//! without it, the runner starts its own from the PostgreSQL binaries on this machine. Either way
//! each `.slt` file gets a fresh database. The cluster uses the C collation, which orders text by
//! bytes as Strata does.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// A PostgreSQL server: shared (from the environment) or owned by this process.
pub struct PostgresServer {
    /// `postgres://user@host:port` without a database.
    base_url: String,
    owned: Option<(PathBuf, tempfile::TempDir)>,
}

const ENV_URL: &str = "STRATA_TEST_POSTGRES_URL";

impl PostgresServer {
    pub fn shared_or_start() -> anyhow::Result<Self> {
        if let Ok(url) = std::env::var(ENV_URL) {
            return Ok(Self {
                base_url: url.trim_end_matches('/').to_string(),
                owned: None,
            });
        }
        Self::start()
    }

    /// Starts a throwaway PostgreSQL on a free port.
    pub fn start() -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data)?;
        let as_root = running_as_root();
        if as_root {
            // PostgreSQL refuses to run as root; the Debian package provides its own user.
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()))?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let initdb = vec![
            bin.join("initdb").display().to_string(),
            "-D".into(),
            data.display().to_string(),
            "-U".into(),
            "postgres".into(),
            "--auth=trust".into(),
            "--no-sync".into(),
            "--encoding=UTF8".into(),
            "--locale=C".into(),
        ];
        run(&mut as_postgres(&initdb, as_root))?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            dir.path().display()
        );
        let start = vec![
            bin.join("pg_ctl").display().to_string(),
            "-D".into(),
            data.display().to_string(),
            "-o".into(),
            options,
            "-l".into(),
            dir.path().join("postgres.log").display().to_string(),
            "-w".into(),
            "start".into(),
        ];
        run(&mut as_postgres(&start, as_root))?;
        Ok(Self {
            base_url: format!("postgres://postgres@127.0.0.1:{port}"),
            owned: Some((data, dir)),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Creates an empty database and returns its URL.
    pub async fn fresh_database(&self, name: &str) -> anyhow::Result<String> {
        self.admin(&[
            format!("DROP DATABASE IF EXISTS \"{name}\""),
            format!("CREATE DATABASE \"{name}\" TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"),
        ])
        .await?;
        Ok(format!("{}/{name}", self.base_url))
    }

    /// Drops a database `fresh_database` made, so that runs against a long-lived server do
    /// not pile them up.
    pub async fn drop_database(&self, name: &str) -> anyhow::Result<()> {
        self.admin(&[format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")])
            .await
    }

    /// Runs statements in the server's `postgres` database.
    async fn admin(&self, statements: &[String]) -> anyhow::Result<()> {
        let (client, connection) = tokio_postgres::connect(
            &format!("{}/postgres", self.base_url),
            tokio_postgres::NoTls,
        )
        .await?;
        let conn = tokio::spawn(connection);
        for statement in statements {
            client.batch_execute(statement).await?;
        }
        drop(client);
        let _ = conn.await;
        Ok(())
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Some((data, _dir)) = &self.owned {
            if let Ok(bin) = bin_dir() {
                let stop = vec![
                    bin.join("pg_ctl").display().to_string(),
                    "-D".into(),
                    data.display().to_string(),
                    "-m".into(),
                    "immediate".into(),
                    "stop".into(),
                ];
                let _ = as_postgres(&stop, running_as_root()).output();
            }
        }
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

fn as_postgres(args: &[String], as_root: bool) -> Command {
    if as_root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).args(args);
        cmd
    } else {
        let mut cmd = Command::new(&args[0]);
        cmd.args(&args[1..]);
        cmd
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// PostgreSQL's server binaries: `PG_BIN`, else the newest under /usr/lib/postgresql.
fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| {
            "PostgreSQL server binaries not found under /usr/lib/postgresql (set PG_BIN)"
        })?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .context("no PostgreSQL version under /usr/lib/postgresql has initdb")
}
