//! Concurrent transactions: row locks, deadlocks, and no lost updates.

use std::time::Duration;

use tokio_postgres::error::SqlState;

use crate::support::{connect, psql, Up};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_inserter_of_a_key_waits_and_then_gets_a_duplicate_key_error() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    psql(up.port, "CREATE TABLE k (id int PRIMARY KEY, who text);");
    let first = connect(up.port).await;
    let second = connect(up.port).await;
    first
        .batch_execute("BEGIN; INSERT INTO k VALUES (1, 'first')")
        .await
        .unwrap();
    let waiting = tokio::spawn(async move {
        second
            .batch_execute("INSERT INTO k VALUES (1, 'second')")
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "the second insert must wait for the first transaction"
    );
    first.batch_execute("COMMIT").await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION), "{err:?}");

    // If the first one rolls back instead, the second one's insert goes through.
    let first = connect(up.port).await;
    let second = connect(up.port).await;
    first
        .batch_execute("BEGIN; INSERT INTO k VALUES (2, 'first')")
        .await
        .unwrap();
    let waiting = tokio::spawn(async move {
        second
            .batch_execute("INSERT INTO k VALUES (2, 'second')")
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.batch_execute("ROLLBACK").await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        psql(up.port, "SELECT who FROM k WHERE id = 2;").trim(),
        "second"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_is_broken_with_40p01() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    psql(
        up.port,
        "CREATE TABLE d (id int PRIMARY KEY, v int); INSERT INTO d VALUES (1, 0), (2, 0);",
    );
    let a = connect(up.port).await;
    let b = connect(up.port).await;
    a.batch_execute("BEGIN; UPDATE d SET v = 1 WHERE id = 1")
        .await
        .unwrap();
    b.batch_execute("BEGIN; UPDATE d SET v = 2 WHERE id = 2")
        .await
        .unwrap();
    let a_waits = tokio::spawn(async move {
        let r = a.batch_execute("UPDATE d SET v = 1 WHERE id = 2").await;
        (a, r)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b_result = b.batch_execute("UPDATE d SET v = 2 WHERE id = 1").await;
    let err = b_result.expect_err("closing the cycle is a deadlock");
    assert_eq!(
        err.code(),
        Some(&SqlState::T_R_DEADLOCK_DETECTED),
        "{err:?}"
    );
    b.batch_execute("ROLLBACK").await.unwrap();
    let (a, a_result) = tokio::time::timeout(Duration::from_secs(30), a_waits)
        .await
        .unwrap()
        .unwrap();
    a_result.unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(psql(up.port, "SELECT v FROM d ORDER BY id;").trim(), "1\n1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_read_committed_increments_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    psql(
        up.port,
        "CREATE TABLE c (id int PRIMARY KEY, n bigint); INSERT INTO c VALUES (1, 0);",
    );
    let (clients, each) = (4, 40);
    let mut tasks = Vec::new();
    for i in 0..clients {
        let client = connect(up.port).await;
        tasks.push(tokio::spawn(async move {
            for j in 0..each {
                if (i + j) % 2 == 0 {
                    client.batch_execute("UPDATE c SET n = n + 1 WHERE id = 1").await.unwrap();
                } else {
                    // The same in an explicit transaction, reading the value in between.
                    client
                        .batch_execute("BEGIN; SELECT n FROM c WHERE id = 1; UPDATE c SET n = n + 1 WHERE id = 1; COMMIT")
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        psql(up.port, "SELECT n FROM c;").trim(),
        (clients * each).to_string()
    );
}

/// A unique value written by an open transaction makes a second writer of it wait, then fail
/// with 23505; an index build waits for a transaction writing the table and indexes its rows; a
/// statement prepared before DDL runs against the table as it is now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_values_and_index_builds_wait_for_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    psql(
        up.port,
        "CREATE TABLE u (id int PRIMARY KEY, email text UNIQUE, n int);",
    );
    let first = connect(up.port).await;
    let second = connect(up.port).await;
    first
        .batch_execute("BEGIN; INSERT INTO u VALUES (1, 'a@x', 1)")
        .await
        .unwrap();
    let waiting = tokio::spawn(async move {
        let result = second
            .batch_execute("INSERT INTO u VALUES (2, 'a@x', 2)")
            .await;
        (second, result)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "the second writer of a value must wait for the first transaction"
    );
    first.batch_execute("COMMIT").await.unwrap();
    let (second, result) = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .unwrap()
        .unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION), "{err:?}");
    assert_eq!(
        err.as_db_error().and_then(|e| e.constraint()),
        Some("u_email_key")
    );

    // An index build waits for a transaction that is writing the table.
    let count = second.prepare("SELECT count(*) FROM u").await.unwrap();
    first
        .batch_execute("BEGIN; INSERT INTO u VALUES (3, 'c@x', 7)")
        .await
        .unwrap();
    let builder = connect(up.port).await;
    let build =
        tokio::spawn(async move { builder.batch_execute("CREATE INDEX u_n ON u (n)").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !build.is_finished(),
        "CREATE INDEX must wait for the writing transaction"
    );
    first.batch_execute("COMMIT").await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), build)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let plan = psql(up.port, "EXPLAIN SELECT id FROM u WHERE n = 7;");
    assert!(plan.contains("index scan using u_n"), "{plan}");
    assert_eq!(psql(up.port, "SELECT id FROM u WHERE n = 7;").trim(), "3");

    // Prepared before TRUNCATE (which gives the table a new id), run after it.
    assert_eq!(
        second
            .query_one(&count, &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        2
    );
    psql(up.port, "TRUNCATE u;");
    assert_eq!(
        second
            .query_one(&count, &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        0
    );
}

/// SELECT … FOR UPDATE locks the rows it returns: a writer of one waits for the locking
/// transaction, and a locker of a row another transaction is updating waits, then reads the
/// row's newest version (READ COMMITTED).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_for_update_locks_the_rows_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    psql(
        up.port,
        "CREATE TABLE q (id int PRIMARY KEY, v int); INSERT INTO q VALUES (1, 0), (2, 0);",
    );
    let first = connect(up.port).await;
    let second = connect(up.port).await;
    first.batch_execute("BEGIN").await.unwrap();
    let row = first
        .query_one("SELECT v FROM q WHERE id = 1 FOR UPDATE", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 0);
    let writer = tokio::spawn(async move {
        let result = second
            .execute("UPDATE q SET v = v + 1 WHERE id = 1", &[])
            .await;
        (second, result)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!writer.is_finished(), "the writer must wait for FOR UPDATE");
    first
        .execute("UPDATE q SET v = 10 WHERE id = 1", &[])
        .await
        .unwrap();
    first.batch_execute("COMMIT").await.unwrap();
    let (second, result) = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.unwrap(), 1);
    assert_eq!(psql(up.port, "SELECT v FROM q WHERE id = 1;").trim(), "11");

    // The other way round: the locker waits for the writer and sees its update.
    first
        .batch_execute("BEGIN; UPDATE q SET v = 5 WHERE id = 2")
        .await
        .unwrap();
    let locker = tokio::spawn(async move {
        second.batch_execute("BEGIN").await.unwrap();
        let v = second
            .query_one("SELECT v FROM q WHERE id = 2 FOR UPDATE", &[])
            .await
            .map(|r| r.get::<_, i32>(0));
        second.batch_execute("COMMIT").await.unwrap();
        v
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!locker.is_finished(), "FOR UPDATE must wait for the writer");
    first.batch_execute("COMMIT").await.unwrap();
    let v = tokio::time::timeout(Duration::from_secs(30), locker)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(v, 5);
}

/// A job queue: `FOR UPDATE SKIP LOCKED` hands each worker a row no other worker holds, and
/// `NOWAIT` fails at once (55P03) instead of waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_locked_and_nowait_do_not_wait() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    psql(
        up.port,
        "CREATE TABLE jobs (id int PRIMARY KEY, state text); INSERT INTO jobs VALUES (1, 'new'), (2, 'new'), (3, 'new');",
    );
    let take = "SELECT id FROM jobs WHERE state = 'new' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED";
    let first = connect(up.port).await;
    let second = connect(up.port).await;
    first.batch_execute("BEGIN").await.unwrap();
    second.batch_execute("BEGIN").await.unwrap();
    let a: i32 = first.query_one(take, &[]).await.unwrap().get(0);
    let b: i32 = second.query_one(take, &[]).await.unwrap().get(0);
    assert_eq!((a, b), (1, 2));
    let err = second
        .query("SELECT id FROM jobs WHERE id = 1 FOR UPDATE NOWAIT", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::LOCK_NOT_AVAILABLE), "{err:?}");
    first.batch_execute("COMMIT").await.unwrap();
}

/// Point reads answered from the primary's row cache see every acknowledged commit, and a
/// snapshot older than the cached value still reads the value of its time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_reads_see_each_acknowledged_commit_and_no_later_one() {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    psql(
        up.port,
        "CREATE TABLE c (id int PRIMARY KEY, n bigint); INSERT INTO c VALUES (1, 0), (2, 0);",
    );
    let acked: Arc<[AtomicI64; 2]> = Arc::new([AtomicI64::new(0), AtomicI64::new(0)]);
    let each = 150;
    let mut writers = Vec::new();
    for id in 1..=2i32 {
        let client = connect(up.port).await;
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            let update = client
                .prepare("UPDATE c SET n = n + 1 WHERE id = $1")
                .await
                .unwrap();
            for i in 1..=each {
                client.execute(&update, &[&id]).await.unwrap();
                acked[id as usize - 1].store(i, Ordering::SeqCst);
            }
        }));
    }
    let reader = connect(up.port).await;
    let select = reader
        .prepare("SELECT n FROM c WHERE id = $1")
        .await
        .unwrap();
    let mut reads = 0;
    while writers.iter().any(|w| !w.is_finished()) || reads == 0 {
        for id in 1..=2i32 {
            let floor = acked[id as usize - 1].load(Ordering::SeqCst);
            let n: i64 = reader.query_one(&select, &[&id]).await.unwrap().get(0);
            assert!(
                (floor..=each).contains(&n),
                "row {id} read {n} after commit {floor} was acknowledged"
            );
            reads += 1;
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(
        psql(up.port, "SELECT n FROM c ORDER BY id;").trim(),
        format!("{each}\n{each}")
    );

    // A REPEATABLE READ snapshot taken before a commit keeps reading the value of its time,
    // though the newer one is cached.
    reader
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
    let before: i64 = reader.query_one(&select, &[&1i32]).await.unwrap().get(0);
    psql(up.port, "UPDATE c SET n = n + 1000 WHERE id = 1;");
    assert_eq!(
        psql(up.port, "SELECT n FROM c WHERE id = 1;").trim(),
        (each + 1000).to_string()
    );
    let again: i64 = reader.query_one(&select, &[&1i32]).await.unwrap().get(0);
    assert_eq!((before, again), (each, each));
    reader.batch_execute("COMMIT").await.unwrap();
    let after: i64 = reader.query_one(&select, &[&1i32]).await.unwrap().get(0);
    assert_eq!(after, each + 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advisory_locks_and_sleeps_end_with_their_holder_or_a_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    let a = connect(up.port).await;
    let b = connect(up.port).await;

    // A session lock is held across transactions until unlocked; a second session waits.
    a.batch_execute("SELECT pg_advisory_lock(1)").await.unwrap();
    let b_waits = tokio::spawn(async move {
        let r = b.query_one("SELECT pg_advisory_lock(1)::text", &[]).await;
        (b, r)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!b_waits.is_finished(), "the second session must wait");
    let a_try: bool = a
        .query_one("SELECT pg_try_advisory_lock(1)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(a_try, "the holder takes its own lock again");
    a.batch_execute("SELECT pg_advisory_unlock(1), pg_advisory_unlock(1)")
        .await
        .unwrap();
    let (b, r) = tokio::time::timeout(Duration::from_secs(30), b_waits)
        .await
        .unwrap()
        .unwrap();
    r.unwrap();

    // The holder's disconnect releases its locks.
    drop(b);
    let c = connect(up.port).await;
    let mut taken = false;
    for _ in 0..100 {
        taken = c
            .query_one("SELECT pg_try_advisory_lock(1)", &[])
            .await
            .unwrap()
            .get(0);
        if taken {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(taken, "a closed session's lock is free");

    // A transaction lock ends with the transaction.
    a.batch_execute("BEGIN; SELECT pg_advisory_xact_lock(2)")
        .await
        .unwrap();
    let other: bool = c
        .query_one("SELECT pg_try_advisory_xact_lock(2)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!other);
    a.batch_execute("COMMIT").await.unwrap();
    let other: bool = c
        .query_one("SELECT pg_try_advisory_lock(2)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(other);

    // A cancel request ends a wait with 57014.
    let cancel = a.cancel_token();
    let a_waits = tokio::spawn(async move {
        let r = a.batch_execute("SELECT pg_advisory_lock(2)").await;
        (a, r)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    cancel.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let (mut a, r) = tokio::time::timeout(Duration::from_secs(30), a_waits)
        .await
        .unwrap()
        .unwrap();
    let err = r.expect_err("the wait was cancelled");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");

    // So does it end pg_sleep, through either protocol, and the session goes on.
    for extended in [false, true] {
        let sleeps = tokio::spawn(async move {
            let r = if extended {
                a.query("SELECT pg_sleep($1::float8)", &[&600.0f64])
                    .await
                    .map(drop)
            } else {
                a.batch_execute("SELECT pg_sleep_for('10 minutes')").await
            };
            (a, r)
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        cancel.cancel_query(tokio_postgres::NoTls).await.unwrap();
        let (back, r) = tokio::time::timeout(Duration::from_secs(30), sleeps)
            .await
            .expect("the sleep ends well before its 10 minutes")
            .unwrap();
        a = back;
        let err = r.expect_err("the sleep was cancelled");
        assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    }
    let slept = a
        .query_one("SELECT pg_sleep(0.01)::text", &[])
        .await
        .unwrap();
    assert_eq!(slept.get::<_, &str>(0), "");

    // statement_timeout ends a statement with 57014 in either protocol, and lock_timeout a
    // wait for a row lock with 55P03; the session goes on after both.
    a.batch_execute("SET statement_timeout = '300ms'")
        .await
        .unwrap();
    let err = a.batch_execute("SELECT pg_sleep(60)").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    let message = err.as_db_error().map(|e| e.message().to_string());
    assert_eq!(
        message.as_deref(),
        Some("canceling statement due to statement timeout")
    );
    let err = a.query("SELECT pg_sleep(60)", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    a.batch_execute("RESET statement_timeout; CREATE TABLE waits (id int PRIMARY KEY, v int); INSERT INTO waits VALUES (1, 0)")
        .await
        .unwrap();
    c.batch_execute("BEGIN; UPDATE waits SET v = 1 WHERE id = 1")
        .await
        .unwrap();
    a.batch_execute("SET lock_timeout = 200").await.unwrap();
    let err = a
        .execute("UPDATE waits SET v = 2 WHERE id = $1", &[&1i32])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::LOCK_NOT_AVAILABLE), "{err:?}");
    c.batch_execute("COMMIT").await.unwrap();
    a.batch_execute("UPDATE waits SET v = 2 WHERE id = 1")
        .await
        .unwrap();
    let v: i32 = a
        .query_one("SELECT v FROM waits", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 2);
    a.batch_execute("RESET lock_timeout").await.unwrap();

    // Two sessions waiting for each other's lock: the one closing the cycle gets 40P01.
    a.batch_execute("SELECT pg_advisory_lock(3)").await.unwrap();
    let a_waits = tokio::spawn(async move {
        let r = a.batch_execute("SELECT pg_advisory_lock(2)").await;
        (a, r)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let err = c
        .batch_execute("SELECT pg_advisory_lock(3)")
        .await
        .expect_err("closing the cycle is a deadlock");
    assert_eq!(
        err.code(),
        Some(&SqlState::T_R_DEADLOCK_DETECTED),
        "{err:?}"
    );
    c.batch_execute("SELECT pg_advisory_unlock_all()")
        .await
        .unwrap();
    let (_a, r) = tokio::time::timeout(Duration::from_secs(30), a_waits)
        .await
        .unwrap()
        .unwrap();
    r.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_table_holds_writers_back_until_the_transaction_ends() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    psql(up.port, "CREATE TABLE ledger (id int PRIMARY KEY, v int);");
    let holder = connect(up.port).await;
    let writer = connect(up.port).await;
    holder
        .batch_execute("BEGIN; LOCK TABLE ledger IN EXCLUSIVE MODE")
        .await
        .unwrap();
    // NOWAIT fails at once while the lock is held.
    let err = writer
        .batch_execute("BEGIN; LOCK ledger IN SHARE MODE NOWAIT")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::LOCK_NOT_AVAILABLE), "{err:?}");
    writer.batch_execute("ROLLBACK").await.unwrap();
    // A reader reads its snapshot without waiting; a writer waits.
    let count = writer
        .query_one("SELECT count(*) FROM ledger", &[])
        .await
        .unwrap();
    assert_eq!(count.get::<_, i64>(0), 0);
    let waiting = tokio::spawn(async move {
        writer
            .batch_execute("INSERT INTO ledger VALUES (1, 1)")
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "the insert must wait for the LOCK TABLE transaction"
    );
    holder
        .batch_execute("INSERT INTO ledger VALUES (2, 2); COMMIT")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(psql(up.port, "SELECT count(*) FROM ledger;").trim(), "2");
    // Outside a transaction block LOCK is refused, as in PostgreSQL.
    let err = holder.batch_execute("LOCK TABLE ledger").await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::NO_ACTIVE_SQL_TRANSACTION),
        "{err:?}"
    );
}
