//! Branches and endpoints through the `strata` command and the front port: isolation both
//! ways, DDL per branch, a chain of five, restore with its backup branch, read-only endpoints
//! in the past, and every kind of client reaching a branch by its connection string.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::durability::wipe_local_state;
use crate::support::{connect, Up, STRATA};

/// Runs `strata <args> --data-dir <dir> --json`, expecting success; returns its JSON.
fn strata_json(dir: &Path, args: &[&str]) -> Value {
    let out = strata(dir, args, true);
    assert!(
        out.status.success(),
        "strata {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "strata {args:?} printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn strata(dir: &Path, args: &[&str], json: bool) -> std::process::Output {
    let mut command = Command::new(STRATA);
    command.args(args).arg("--data-dir").arg(dir);
    if json {
        command.arg("--json");
    }
    command.output().expect("strata runs")
}

/// Creates a branch and returns its connection string.
fn create_branch(dir: &Path, name: &str, parent: &str) -> String {
    let b = strata_json(dir, &["branch", "create", name, "--parent", parent]);
    assert_eq!(b["name"], name);
    assert_eq!(b["parent"], parent);
    b["connection_string"].as_str().unwrap().to_string()
}

async fn connect_to(connection_string: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(connection_string, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A connection to `main`, where `t (id int PRIMARY KEY, v text)` was created holding `rows`
/// (a VALUES list).
async fn main_with_t(port: u16, rows: &str) -> Client {
    let main = connect(port).await;
    main.batch_execute(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES {rows}"
    ))
    .await
    .unwrap();
    main
}

async fn ids(client: &Client, table: &str) -> Vec<i32> {
    client
        .query(&format!("SELECT id FROM {table} ORDER BY id"), &[])
        .await
        .unwrap_or_else(|e| panic!("SELECT from {table}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branches_are_isolated_and_a_chain_of_five_reads_right_at_every_level() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    let main = main_with_t(up.port, "(1, 'main')").await;

    // A branch sees its parent at the branch point, and neither sees the other's writes.
    let b1 = connect_to(&create_branch(dir.path(), "b1", "main"))
        .await
        .unwrap();
    b1.batch_execute("INSERT INTO t VALUES (2, 'b1')")
        .await
        .unwrap();
    main.batch_execute("INSERT INTO t VALUES (3, 'main later')")
        .await
        .unwrap();
    assert_eq!(ids(&b1, "t").await, [1, 2]);
    assert_eq!(ids(&main, "t").await, [1, 3]);

    // DDL is per branch too.
    b1.batch_execute("ALTER TABLE t ADD COLUMN w int; CREATE TABLE only_b1 (id int PRIMARY KEY); INSERT INTO only_b1 VALUES (5)")
        .await
        .unwrap();
    assert_eq!(ids(&b1, "only_b1").await, [5]);
    let e = main.query("SELECT * FROM only_b1", &[]).await.unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::UNDEFINED_TABLE));
    let main_columns = main.query("SELECT * FROM t LIMIT 1", &[]).await.unwrap()[0].len();
    let b1_columns = b1.query("SELECT * FROM t LIMIT 1", &[]).await.unwrap()[0].len();
    assert_eq!((main_columns, b1_columns), (2, 3));

    // A chain: b2 from b1, …, b5 from b4. Each level writes its own row; after a child is
    // made, the parent writes another that the child must not see.
    let mut clients = vec![main, b1];
    let mut expected: Vec<Vec<i32>> = vec![vec![1, 3], vec![1, 2]];
    for level in 2..=5 {
        let name = format!("b{level}");
        let parent = format!("b{}", level - 1);
        let child = connect_to(&create_branch(dir.path(), &name, &parent))
            .await
            .unwrap();
        let mut seen = expected[level - 1].clone();
        clients[level - 1]
            .batch_execute(&format!(
                "INSERT INTO t (id, v) VALUES ({}, 'after b{level}')",
                100 + level
            ))
            .await
            .unwrap();
        expected[level - 1].push(100 + level as i32);
        child
            .batch_execute(&format!(
                "INSERT INTO t (id, v) VALUES ({}, '{name}')",
                10 + level
            ))
            .await
            .unwrap();
        seen.push(10 + level as i32);
        seen.sort();
        expected.push(seen);
        clients.push(child);
    }
    for (level, client) in clients.iter().enumerate() {
        assert_eq!(ids(client, "t").await, expected[level], "level {level}");
    }

    // The tree, for people and for scripts.
    let list = strata_json(dir.path(), &["branch", "list"]);
    let names: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap(),
                b["parent"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("main", ""),
            ("b1", "main"),
            ("b2", "b1"),
            ("b3", "b2"),
            ("b4", "b3"),
            ("b5", "b4")
        ]
    );
    assert!(list[5]["logical_size"].as_u64().unwrap() > 0, "{list}");
    let text = String::from_utf8(strata(dir.path(), &["branch", "list"], false).stdout).unwrap();
    assert!(
        text.contains("└─ b1") && text.contains("         └─ b5"),
        "{text}"
    );

    // Deleting follows the tree.
    let refused = strata(dir.path(), &["branch", "delete", "b3"], false);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("b4"), "the refusal names the child: {why}");
    strata_json(dir.path(), &["branch", "delete", "b5"]);
    let gone = connect_to(&format!(
        "postgres://postgres@127.0.0.1:{}/postgres?options=endpoint%3Db5",
        up.port
    ))
    .await;
    match gone {
        Err(e) => assert_eq!(e.code(), Some(&SqlState::INVALID_CATALOG_NAME), "{e}"),
        Ok(c) => panic!(
            "connected to a deleted branch: {:?}",
            c.query("SELECT 1", &[]).await
        ),
    }
    assert_eq!(ids(&clients[4], "t").await, expected[4], "b4 is whole");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_keeps_a_backup_and_read_only_endpoints_read_the_past() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    let main = main_with_t(up.port, "(1, 'one'), (2, 'two')").await;
    let before = chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S%.6f+00")
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    main.batch_execute("DELETE FROM t WHERE id = 1; INSERT INTO t VALUES (3, 'three'); DROP TABLE IF EXISTS nothing")
        .await
        .unwrap();

    // A read-only endpoint in the past, beside the primary.
    let ro = strata_json(
        dir.path(),
        &[
            "endpoint",
            "start",
            "yesterday",
            "--branch",
            "main",
            "--at",
            &before,
        ],
    );
    assert_eq!(ro["kind"], "read-only");
    assert_eq!(ro["running"], true);
    let past = connect_to(ro["connection_string"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(ids(&past, "t").await, [1, 2]);
    let e = past
        .batch_execute("INSERT INTO t VALUES (9, 'no')")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::READ_ONLY_SQL_TRANSACTION));
    let endpoints = strata_json(dir.path(), &["endpoint", "list"]);
    let names: Vec<&str> = endpoints
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["main", "yesterday"]);
    strata_json(dir.path(), &["endpoint", "stop", "yesterday"]);
    // A stopped endpoint starts again on the next connection.
    let again = connect_to(ro["connection_string"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(ids(&again, "t").await, [1, 2]);

    // Restore main to before the delete: the state it had lives on as a backup branch.
    let restored = strata_json(dir.path(), &["branch", "restore", "main", "--at", &before]);
    let backup = restored["backup"]["name"].as_str().unwrap().to_string();
    assert!(backup.starts_with("main_old_"), "{restored}");
    let main = connect(up.port).await;
    assert_eq!(ids(&main, "t").await, [1, 2]);
    let backup_client = connect_to(restored["backup"]["connection_string"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(ids(&backup_client, "t").await, [2, 3]);
    // Both go on independently.
    main.batch_execute("INSERT INTO t VALUES (4, 'four')")
        .await
        .unwrap();
    assert_eq!(ids(&main, "t").await, [1, 2, 4]);
    assert_eq!(ids(&backup_client, "t").await, [2, 3]);
    // The backup holds the restored branch up: deleting it is refused.
    assert!(!strata(dir.path(), &["branch", "delete", &backup], false)
        .status
        .success());
}

/// Every client reaches a branch by the connection string `strata branch create` prints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_reaches_a_branch_by_its_connection_string() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    let main = main_with_t(up.port, "(1, 'main')").await;
    let b = strata_json(dir.path(), &["branch", "create", "feature"]);
    let conn = b["connection_string"].as_str().unwrap().to_string();
    let jdbc = b["jdbc_url"].as_str().unwrap().to_string();
    let feature = connect_to(&conn).await.unwrap();
    feature
        .batch_execute("UPDATE t SET v = 'feature'")
        .await
        .unwrap();
    let query = "SELECT v FROM t WHERE id = 1";

    // libpq, through psql.
    let out = Command::new("psql")
        .args(["-X", "-A", "-t", "-c", query, &conn])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "feature",
        "{out:?}"
    );

    // node-postgres.
    let node_modules = std::env::var("STRATA_DRIVERS_NODE_MODULES").expect(
        "STRATA_DRIVERS_NODE_MODULES is set by ./scripts/test (node-postgres is installed there)",
    );
    let out = Command::new("node")
        .env("NODE_PATH", node_modules)
        .args([
            "-e",
            "const pg = require('pg'); const c = new pg.Client({ connectionString: process.argv[1] }); \
             c.connect().then(() => c.query(process.argv[2])).then(r => { console.log(r.rows[0].v); return c.end(); }) \
             .catch(e => { console.error(e); process.exit(1); });",
            &conn,
            query,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "feature",
        "{out:?}"
    );

    // asyncpg.
    let python = std::env::var("STRATA_DRIVERS_PYTHON")
        .expect("STRATA_DRIVERS_PYTHON is set by ./scripts/test (asyncpg is installed there)");
    let out = Command::new(python)
        .args([
            "-c",
            "import asyncio, sys, asyncpg\n\
             async def main():\n    c = await asyncpg.connect(sys.argv[1])\n    print(await c.fetchval(sys.argv[2]))\n    await c.close()\n\
             asyncio.run(main())",
            &conn,
            query,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "feature",
        "{out:?}"
    );

    // pgjdbc, with the JDBC form of the same string.
    let jar = std::env::var("STRATA_JDBC_JAR").expect("STRATA_JDBC_JAR is set by ./scripts/test");
    let src = dir.path().join("Branch.java");
    std::fs::write(
        &src,
        "public class Branch { public static void main(String[] a) throws Exception { \
         try (var c = java.sql.DriverManager.getConnection(a[0]); var s = c.createStatement(); \
         var r = s.executeQuery(a[1])) { r.next(); System.out.println(r.getString(1)); } } }",
    )
    .unwrap();
    let out = Command::new("java")
        .arg("-cp")
        .arg(jar)
        .arg(&src)
        .args([&jdbc, query])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "feature",
        "{out:?}"
    );

    // And main is untouched.
    assert_eq!(
        main.query_one(query, &[])
            .await
            .unwrap()
            .get::<_, String>(0),
        "main"
    );
}

/// A branch's writes survive kill -9 (replayed from the safekeepers when the branch is next
/// used), and after `strata checkpoint` the bucket alone brings back every branch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branches_survive_a_crash_and_the_loss_of_every_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = Up::start(dir.path()).await;
    let main = main_with_t(up.port, "(1, 'main')").await;
    let dev_url = create_branch(dir.path(), "dev", "main");
    let dev = connect_to(&dev_url).await.unwrap();
    dev.batch_execute("INSERT INTO t VALUES (2, 'dev'); CREATE TABLE only_dev (id int PRIMARY KEY); INSERT INTO only_dev VALUES (7)")
        .await
        .unwrap();
    main.batch_execute("INSERT INTO t VALUES (3, 'main')")
        .await
        .unwrap();
    // A restart picks a new front port; the branch's connection string follows it.
    let first_port = up.port;
    let dev_url_now = |port: u16| dev_url.replace(&format!(":{first_port}/"), &format!(":{port}/"));

    // kill -9: nothing flushed; the branch comes back from the safekeepers' WAL.
    up.process.kill9();
    let mut up = Up::start(dir.path()).await;
    let dev = connect_to(&dev_url_now(up.port)).await.unwrap();
    assert_eq!(ids(&dev, "t").await, [1, 2]);
    assert_eq!(ids(&dev, "only_dev").await, [7]);
    assert_eq!(ids(&connect(up.port).await, "t").await, [1, 3]);
    dev.batch_execute("INSERT INTO t VALUES (4, 'dev again')")
        .await
        .unwrap();

    // A checkpoint, kill -9, every local directory gone: the bucket alone.
    let checkpoint = Command::new(STRATA)
        .args(["checkpoint", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(checkpoint.status.success(), "{checkpoint:?}");
    up.process.kill9();
    wipe_local_state(dir.path());
    let up = Up::start(dir.path()).await;
    let dev = connect_to(&dev_url_now(up.port)).await.unwrap();
    assert_eq!(ids(&dev, "t").await, [1, 2, 4]);
    assert_eq!(ids(&dev, "only_dev").await, [7]);
    assert_eq!(ids(&connect(up.port).await, "t").await, [1, 3]);
}

fn endpoint_running(dir: &Path, name: &str) -> bool {
    let list = strata_json(dir, &["endpoint", "list"]);
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no endpoint {name} in {list}"))["running"]
        .as_bool()
        .unwrap()
}

/// Scale to zero: a compute without connections stops after `--suspend-after`, one with an
/// open connection does not, and the next connection starts it again with the data intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_computes_scale_to_zero_and_wake_on_the_next_connection() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start_with(
        dir.path(),
        &["--suspend-after".to_string(), "1".to_string()],
    )
    .await;
    let main = connect(up.port).await;
    main.batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        .await
        .unwrap();
    // An open connection keeps it running, idle or not.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(endpoint_running(dir.path(), "main"));
    assert_eq!(ids(&main, "t").await, [1, 2]);
    drop(main);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while endpoint_running(dir.path(), "main") {
        assert!(
            std::time::Instant::now() < deadline,
            "main's compute was not suspended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Woken by the next connection.
    let main = connect(up.port).await;
    assert_eq!(ids(&main, "t").await, [1, 2]);
    assert!(endpoint_running(dir.path(), "main"));
    main.batch_execute("INSERT INTO t VALUES (3)")
        .await
        .unwrap();
    assert_eq!(ids(&main, "t").await, [1, 2, 3]);
}
