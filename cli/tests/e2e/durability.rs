//! Nothing acknowledged is lost: crashes of the whole system, of one safekeeper, and the loss of
//! the pageserver's local directory.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{
    connect, psql, psql_error, safekeeper_status, test_s3_url, Cluster, Up, STRATA,
};

/// Inserts rows `(writer * 1_000_000 + n)` one per statement from several connections until
/// stopped; returns the ids whose INSERT was acknowledged.
struct Writers {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeSet<i64>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    async fn start(port: u16, table: &str, writers: i64) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(BTreeSet::new()));
        let mut tasks = Vec::new();
        for w in 0..writers {
            let client = connect(port).await;
            let (stop, acked, table) = (stop.clone(), acked.clone(), table.to_string());
            tasks.push(tokio::spawn(async move {
                let insert = client
                    .prepare(&format!("INSERT INTO {table} VALUES ($1, $2)"))
                    .await
                    .unwrap();
                let mut n = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    let id = w * 1_000_000 + n;
                    match client.execute(&insert, &[&id, &format!("row {id}")]).await {
                        Ok(1) => {
                            acked.lock().unwrap().insert(id);
                            n += 1;
                        }
                        Ok(other) => panic!("INSERT reported {other} rows"),
                        // The server went away (killed) or a commit failed: stop writing.
                        Err(_) => break,
                    }
                }
            }));
        }
        Writers { stop, acked, tasks }
    }

    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    async fn wait_for(&self, rows: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.count() < rows {
            assert!(
                Instant::now() < deadline,
                "only {} of {rows} rows acknowledged {what}",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn finish(self) -> BTreeSet<i64> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        Arc::try_unwrap(self.acked).unwrap().into_inner().unwrap()
    }
}

async fn ids(port: u16, table: &str) -> BTreeSet<i64> {
    let client = connect(port).await;
    client
        .query(&format!("SELECT id FROM {table}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, i64>(0))
        .collect()
}

fn assert_all_present(acked: &BTreeSet<i64>, present: &BTreeSet<i64>) {
    let missing: Vec<_> = acked.difference(present).take(10).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged rows are missing, e.g. {missing:?}",
        acked.difference(present).count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_whole_system_loses_no_acknowledged_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = Up::start(dir.path()).await;
    psql(
        up.port,
        "CREATE TABLE events (id bigint PRIMARY KEY, body text);",
    );
    let writers = Writers::start(up.port, "events", 4).await;
    writers.wait_for(300, "before the crash").await;
    // Kill while the writers are still committing.
    up.process.kill9();
    let acked = writers.finish().await;

    let up = Up::start(dir.path()).await;
    let present = ids(up.port, "events").await;
    assert_all_present(&acked, &present);
    // Rows committed but not acknowledged before the kill may also be there; nothing else is.
    assert!(
        present.len() - acked.len() <= 4,
        "{} rows appeared from nowhere",
        present.len() - acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_continue_when_a_safekeeper_is_killed_and_it_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path()).await;
    psql(
        cluster.pg_port,
        "CREATE TABLE events (id bigint PRIMARY KEY, body text);",
    );
    let writers = Writers::start(cluster.pg_port, "events", 2).await;
    writers.wait_for(200, "with three safekeepers").await;

    // Kill the leader: the other two elect a new one and commits carry on.
    let leader = safekeeper_status(cluster.sk_ports[0])
        .await
        .expect("safekeeper 1 answers")
        .leader_id as usize;
    assert!((1..=3).contains(&leader), "no leader known");
    cluster.safekeepers[leader - 1].kill9();
    let before = writers.count();
    writers
        .wait_for(before + 200, "after a safekeeper was killed")
        .await;

    // Restart it: it catches up with everything committed meanwhile.
    cluster.restart_safekeeper(leader);
    let survivor = cluster.sk_ports[leader % 3];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let target = safekeeper_status(survivor)
            .await
            .map(|s| s.committed_index)
            .unwrap_or(0);
        let caught_up = safekeeper_status(cluster.sk_ports[leader - 1])
            .await
            .map(|s| s.applied_index)
            .unwrap_or(0);
        if target > 0 && caught_up >= target {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted safekeeper stuck at {caught_up}, quorum at {target}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // It is a working member again: with another node down, it makes the quorum.
    let other = (leader % 3) + 1;
    cluster.safekeepers[other - 1].kill9();
    let before = writers.count();
    writers
        .wait_for(before + 100, "with the restarted safekeeper in the quorum")
        .await;

    let acked = writers.finish().await;
    assert_all_present(&acked, &ids(cluster.pg_port, "events").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pageserver_directory_is_rebuilt_from_storage() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = Up::start(dir.path()).await;
    psql(
        up.port,
        "CREATE TABLE items (id bigint PRIMARY KEY, body text);",
    );
    psql(
        up.port,
        "INSERT INTO items SELECT value, 'item ' || value FROM generate_series(1, 5000) AS g(value);",
    );
    up.process.stop();
    std::fs::remove_dir_all(dir.path().join("pageserver")).unwrap();

    let mut up = Up::start(dir.path()).await;
    assert_eq!(
        psql(up.port, "SELECT count(*), max(body) FROM items;").trim(),
        "5000|item 999"
    );
    // Again after a crash, with rows that only the safekeepers' WAL holds.
    psql(
        up.port,
        "INSERT INTO items SELECT value, 'item ' || value FROM generate_series(5001, 6000) AS g(value);",
    );
    up.process.kill9();
    std::fs::remove_dir_all(dir.path().join("pageserver")).unwrap();

    let up = Up::start(dir.path()).await;
    assert_eq!(
        psql(up.port, "SELECT count(*), sum(id) FROM items;").trim(),
        format!("6000|{}", (1..=6000i64).sum::<i64>())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_transactions_committed_together_are_all_readable() {
    // Many ~400 KB transactions committed at once: the leader has only a few batches in flight,
    // so the rest queue and are group-committed together into batches bigger than one WAL
    // stream chunk (1 MiB), which reach the pageserver split over chunks.
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    psql(
        up.port,
        "CREATE TABLE blobs (id bigint PRIMARY KEY, body text);",
    );
    let (writers, rounds, rows) = (16i64, 4i64, 400i64);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let client = connect(up.port).await;
        tasks.push(tokio::spawn(async move {
            for round in 0..rounds {
                let base = (w * rounds + round) * rows;
                client
                    .batch_execute(&format!(
                        "INSERT INTO blobs SELECT value + {base}, repeat('x', 1000) FROM generate_series(1, {rows}) AS g(value)"
                    ))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total = writers * rounds * rows;
    assert_eq!(
        psql(
            up.port,
            "SELECT count(*), sum(id), sum(length(body)) FROM blobs;"
        )
        .trim(),
        format!("{total}|{}|{}", (1..=total).sum::<i64>(), total * 1000)
    );
}

/// A sequence never hands out a value twice, across a crash: values are reserved in blocks that
/// commit before any row using them, so after kill -9 the sequence resumes past every value a
/// committed row holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_values_are_not_reused_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = Up::start(dir.path()).await;
    psql(
        up.port,
        "CREATE TABLE notes (id serial PRIMARY KEY, body text);",
    );
    let client = connect(up.port).await;
    for i in 0..40 {
        client
            .execute("INSERT INTO notes (body) VALUES ($1)", &[&format!("n{i}")])
            .await
            .unwrap();
    }
    up.process.kill9();

    let up = Up::start(dir.path()).await;
    psql(up.port, "INSERT INTO notes (body) VALUES ('after');");
    let out = psql(
        up.port,
        "SELECT count(*), count(DISTINCT id), max(id) FROM notes WHERE body <> 'after'; \
         SELECT id FROM notes WHERE body = 'after';",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "40|40|40");
    let after: i64 = lines[1].trim().parse().unwrap();
    assert!(
        after > 40,
        "the sequence restarted below its used values: {after}"
    );
}

/// Deletes every local directory of a stopped `strata up`: only `objects/` (the bucket) stays.
pub(crate) fn wipe_local_state(dir: &std::path::Path) {
    for name in ["safekeeper-1", "safekeeper-2", "safekeeper-3", "pageserver"] {
        std::fs::remove_dir_all(dir.join(name)).unwrap();
    }
}

/// Disaster recovery: after a clean stop, and after `strata checkpoint` on a running system
/// followed by kill -9, every local directory is deleted and the system starts from the bucket
/// alone with every committed row, index and sequence, and goes on committing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bucket_alone_brings_back_every_committed_row() {
    disaster_recovery(&[]).await;
}

/// The same against a real S3 server (SeaweedFS, started by `./scripts/test`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bucket_alone_brings_back_every_committed_row_on_s3() {
    disaster_recovery(&["--object-store".to_string(), test_s3_url()]).await;
}

async fn disaster_recovery(up_args: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let mut up = Up::start_with(dir.path(), up_args).await;
    psql(
        up.port,
        "CREATE TABLE items (id bigserial PRIMARY KEY, body text UNIQUE); \
         INSERT INTO items (body) SELECT 'item ' || value FROM generate_series(1, 5000) AS g(value); \
         DELETE FROM items WHERE id % 10 = 0; \
         UPDATE items SET body = body || '!' WHERE id % 7 = 0;",
    );
    let expected = psql(up.port, "SELECT count(*), sum(id), max(body) FROM items;");
    up.process.stop();
    wipe_local_state(dir.path());

    let mut up = Up::start_with(dir.path(), up_args).await;
    assert_eq!(
        psql(up.port, "SELECT count(*), sum(id), max(body) FROM items;"),
        expected
    );
    // The unique index came back with the rows, and the sequence continues past its values.
    assert!(
        psql_error(up.port, "INSERT INTO items (body) VALUES ('item 1');")
            .contains("duplicate key")
    );
    psql(
        up.port,
        "INSERT INTO items (body) SELECT 'more ' || value FROM generate_series(1, 1000) AS g(value);",
    );
    assert_eq!(
        psql(
            up.port,
            "SELECT count(*), min(id) > 5000 FROM items WHERE body LIKE 'more%';"
        ),
        "1000|t\n"
    );

    // A checkpoint on the running system, then a crash: the bucket holds every commit.
    let checkpoint = std::process::Command::new(STRATA)
        .args(["checkpoint", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(checkpoint.status.success(), "{checkpoint:?}");
    assert!(
        String::from_utf8_lossy(&checkpoint.stdout).contains("Checkpoint done"),
        "{checkpoint:?}"
    );
    let expected = psql(up.port, "SELECT count(*), sum(id), max(body) FROM items;");
    up.process.kill9();
    wipe_local_state(dir.path());

    let up = Up::start_with(dir.path(), up_args).await;
    assert_eq!(
        psql(up.port, "SELECT count(*), sum(id), max(body) FROM items;"),
        expected
    );
}
