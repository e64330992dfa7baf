//! Starting real Strata processes on loopback ports, and talking to them with real clients.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const STRATA: &str = env!("CARGO_BIN_EXE_strata");

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped, with its log in a file.
pub struct Process {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Process {
    pub fn spawn(name: &str, args: &[String], log_dir: &Path) -> Process {
        std::fs::create_dir_all(log_dir).unwrap();
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(STRATA)
            .args(args)
            .env("STRATA_LOG", "info,openraft=warn")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {STRATA}: {e}"));
        Process {
            name: name.to_string(),
            child: Some(child),
            log,
        }
    }

    /// `kill -9`: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status()
                .unwrap();
            assert!(status.success());
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(
                        status.success(),
                        "{} exited with {status}; log: {}",
                        self.name,
                        self.log.display()
                    );
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!(
                        "{} did not stop within 60 s; log: {}",
                        self.name,
                        self.log.display()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The exit status, once the process has ended on its own.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// What a failed start needs: the first lines of the log (where a startup error is told),
    /// every ERROR, WARN or panic line, and the last lines.
    pub fn log_summary(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let head = lines.len().min(20);
        let tail = lines.len().saturating_sub(40).max(head);
        let notable: Vec<&str> = lines[head..tail]
            .iter()
            .filter(|l| l.contains("ERROR") || l.contains("WARN") || l.contains("panicked"))
            .take(40)
            .copied()
            .collect();
        format!(
            "--- first lines ---\n{}\n--- errors and warnings in between ---\n{}\n--- last lines ---\n{}",
            lines[..head].join("\n"),
            notable.join("\n"),
            lines[tail..].join("\n")
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!(
                    "--- last lines of {} ({}) ---\n{}",
                    self.name,
                    self.log.display(),
                    self.log_summary()
                );
            }
        }
    }
}

/// `strata up` in a data directory.
pub struct Up {
    pub process: Process,
    pub port: u16,
}

impl Up {
    pub async fn start(data_dir: &Path) -> Up {
        Up::start_with(data_dir, &[]).await
    }

    /// `strata up` with extra arguments (such as `--object-store`).
    pub async fn start_with(data_dir: &Path, extra: &[String]) -> Up {
        let port = free_port();
        let mut args = vec![
            "up".to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--port".into(),
            port.to_string(),
        ];
        args.extend_from_slice(extra);
        let process = Process::spawn("strata-up", &args, &data_dir.join("logs"));
        let mut up = Up { process, port };
        wait_for_postgres(up.port, &mut up.process).await;
        up
    }
}

/// The PostgreSQL 15 server `./scripts/test` starts, for tests that compare Strata with it.
pub fn postgres_url() -> String {
    std::env::var("STRATA_TEST_POSTGRES_URL")
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|_| {
            panic!(
                "STRATA_TEST_POSTGRES_URL is not set: this test checks Strata against the \
                 PostgreSQL ./scripts/test starts; run the test through ./scripts/test"
            )
        })
}

pub fn url(port: u16) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

/// Waits until the server answers queries.
pub async fn wait_for_postgres(port: u16, process: &mut Process) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let last_error = match try_connect(port).await {
            Ok(client) => match client.simple_query("SELECT 1").await {
                Ok(_) => return,
                Err(e) => format!("SELECT 1: {e:?}"),
            },
            Err(e) => format!("connect: {e:?}"),
        };
        if let Some(status) = process.exit_status() {
            panic!(
                "{} exited with {status} before it accepted queries (last attempt: {last_error}):\n{}",
                process.name,
                process.log_summary()
            );
        }
        if Instant::now() > deadline {
            panic!(
                "{} did not accept queries within 90 s (last attempt: {last_error}):\n{}",
                process.name,
                process.log_summary()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn try_connect(port: u16) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(&url(port), tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

pub async fn connect(port: u16) -> tokio_postgres::Client {
    try_connect(port)
        .await
        .expect("connect with tokio-postgres")
}

/// Runs SQL through `psql` (unaligned, tuples only, stop on the first error) and returns stdout.
pub fn psql(port: u16, sql: &str) -> String {
    let out = psql_output(port, sql);
    assert!(
        out.status.success(),
        "psql failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a script (one command) through psql against `url`, unaligned and tuples only, stopping
/// at the first error; returns stdout.
pub fn psql_at(url: &str, script: &str) -> String {
    psql_script(url, &["-A", "-t"], script)
}

/// Runs a script through psql against `url` with `format` options (none: psql's default
/// aligned output); returns stdout and fails the test if psql fails.
pub fn psql_script(url: &str, format: &[&str], script: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .args(format)
        .args(["-d", url, "-c", script])
        .stdin(Stdio::null())
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {script:?} against {url} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs SQL through `psql`, expecting it to fail; returns stderr.
pub fn psql_error(port: u16, sql: &str) -> String {
    let out = psql_output(port, sql);
    assert!(
        !out.status.success(),
        "psql unexpectedly succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

fn psql_output(port: u16, sql: &str) -> std::process::Output {
    Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "VERBOSITY=verbose",
            "-d",
            &url(port),
            "-f",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(sql.as_bytes())?;
            child.wait_with_output()
        })
        .expect("psql runs")
}

/// The three safekeepers, pageserver and compute as separate processes.
pub struct Cluster {
    pub dir: PathBuf,
    pub safekeepers: Vec<Process>,
    pub sk_ports: Vec<u16>,
    /// Kept so that the process lives as long as the cluster.
    _pageserver: Process,
    _compute: Process,
    pub pg_port: u16,
}

impl Cluster {
    pub async fn start(dir: &Path) -> Cluster {
        let sk_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let ps_port = free_port();
        let pg_port = free_port();
        let logs = dir.join("logs");
        let safekeepers = (1..=3)
            .map(|id| spawn_safekeeper(dir, &sk_ports, id))
            .collect();
        let sk_addrs = sk_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let objects = dir.join("objects").display().to_string();
        let pageserver = Process::spawn(
            "pageserver",
            &[
                "pageserver".into(),
                "--data-dir".into(),
                dir.join("pageserver").display().to_string(),
                "--listen".into(),
                format!("127.0.0.1:{ps_port}"),
                "--safekeepers".into(),
                sk_addrs.clone(),
                "--object-store".into(),
                objects.clone(),
            ],
            &logs,
        );
        let mut compute = Process::spawn(
            "compute",
            &[
                "compute".into(),
                "--listen".into(),
                format!("127.0.0.1:{pg_port}"),
                "--safekeepers".into(),
                sk_addrs,
                "--pageserver".into(),
                format!("127.0.0.1:{ps_port}"),
                "--object-store".into(),
                objects,
            ],
            &logs,
        );
        wait_for_postgres(pg_port, &mut compute).await;
        Cluster {
            dir: dir.to_path_buf(),
            safekeepers,
            sk_ports,
            _pageserver: pageserver,
            _compute: compute,
            pg_port,
        }
    }

    /// Starts safekeeper `id` (1-based) again, on its port and directory.
    pub fn restart_safekeeper(&mut self, id: usize) {
        self.safekeepers[id - 1] = spawn_safekeeper(&self.dir, &self.sk_ports, id);
    }
}

fn spawn_safekeeper(dir: &Path, ports: &[u16], id: usize) -> Process {
    let peers = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    Process::spawn(
        &format!("safekeeper-{id}"),
        &[
            "safekeeper".into(),
            "--id".into(),
            id.to_string(),
            "--data-dir".into(),
            dir.join(format!("safekeeper-{id}")).display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{}", ports[id - 1]),
            "--peers".into(),
            peers,
        ],
        &dir.join("logs"),
    )
}

/// The Raft state one safekeeper reports.
pub async fn safekeeper_status(port: u16) -> Option<strata_proto::safekeeper::StatusResponse> {
    let mut client = strata_proto::safekeeper::safekeeper_client::SafekeeperClient::connect(
        format!("http://127.0.0.1:{port}"),
    )
    .await
    .ok()?;
    client
        .status(strata_proto::safekeeper::StatusRequest {})
        .await
        .ok()
        .map(|r| r.into_inner())
}

/// A fresh prefix in the S3-compatible server that `./scripts/test` starts (SeaweedFS), as an
/// `--object-store` URL; the AWS_* variables it exports reach the `strata` processes.
pub fn test_s3_url() -> String {
    let base = std::env::var("STRATA_TEST_S3_URL").expect(
        "STRATA_TEST_S3_URL is not set: run the tests with ./scripts/test, which starts SeaweedFS",
    );
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{base}/test-{}-{unique}", std::process::id())
}
