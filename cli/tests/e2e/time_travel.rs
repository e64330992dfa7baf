//! Reading the past through SQL: `FOR SYSTEM_TIME AS OF`, `SET strata.as_of`, and the LSN
//! functions, checked against states recorded during the test, for rows, updates, deletes and
//! schema changes.

use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::support::{connect, Up};

/// Now, as a timestamp literal; the next commit is made a little later, so that a state
/// recorded here is exactly the one read back at this time.
async fn moment() -> String {
    let t = chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S%.6f+00:00")
        .to_string();
    tokio::time::sleep(Duration::from_millis(20)).await;
    t
}

/// Every row of a query as text, columns joined by `|`.
async fn rows(client: &Client, sql: &str) -> Vec<String> {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    messages
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect()
}

async fn error_code(client: &Client, sql: &str) -> SqlState {
    let e = client
        .simple_query(sql)
        .await
        .expect_err(&format!("{sql} must fail"));
    e.code().cloned().unwrap_or_else(|| panic!("{sql}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_reads_rows_deletes_updates_and_ddl_exactly_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    let c = connect(up.port).await;
    let before_everything = moment().await;
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');",
    )
    .await
    .unwrap();
    let a = moment().await;
    c.batch_execute(
        "UPDATE t SET v = 'B' WHERE id = 2;
         DELETE FROM t WHERE id = 3;
         INSERT INTO t VALUES (4, 'd');",
    )
    .await
    .unwrap();
    let b = moment().await;
    c.batch_execute(
        "ALTER TABLE t ADD COLUMN w int;
         UPDATE t SET w = id * 10;
         CREATE TABLE gone (x int PRIMARY KEY);
         INSERT INTO gone VALUES (7);",
    )
    .await
    .unwrap();
    let with_gone = moment().await;
    c.batch_execute("DROP TABLE gone; DELETE FROM t WHERE id = 1;")
        .await
        .unwrap();

    let at = |t: &str| format!("SELECT * FROM t FOR SYSTEM_TIME AS OF '{t}' ORDER BY id");
    assert_eq!(rows(&c, &at(&a)).await, ["1|a", "2|b", "3|c"]);
    assert_eq!(rows(&c, &at(&b)).await, ["1|a", "2|B", "4|d"]);
    // The schema is read at the same point: no `w` before it was added.
    assert_eq!(
        rows(&c, &at(&with_gone)).await,
        ["1|a|10", "2|B|20", "4|d|40"]
    );
    assert_eq!(
        rows(&c, "SELECT * FROM t ORDER BY id").await,
        ["2|B|20", "4|d|40"]
    );
    // A dropped table is readable in the past; a table created later does not exist there.
    assert_eq!(
        rows(
            &c,
            &format!("SELECT x FROM gone FOR SYSTEM_TIME AS OF '{with_gone}'")
        )
        .await,
        ["7"]
    );
    assert_eq!(
        error_code(&c, "SELECT x FROM gone").await,
        SqlState::UNDEFINED_TABLE
    );
    assert_eq!(
        error_code(
            &c,
            &format!("SELECT x FROM gone FOR SYSTEM_TIME AS OF '{a}'")
        )
        .await,
        SqlState::UNDEFINED_TABLE
    );
    // Past and present in one query, with and without aliases.
    assert_eq!(
        rows(
            &c,
            &format!(
                "SELECT p.id, p.v, t.v FROM t FOR SYSTEM_TIME AS OF '{a}' AS p \
                 LEFT JOIN t ON p.id = t.id ORDER BY p.id"
            )
        )
        .await,
        ["1|a|NULL", "2|b|B", "3|c|NULL"]
    );
    assert_eq!(
        rows(
            &c,
            &format!("SELECT count(*) FROM t FOR SYSTEM_TIME AS OF '{b}' WHERE t.v <> 'a'")
        )
        .await,
        ["2"]
    );

    // Point reads by primary key (the fast path, at the catalog of that time), simple and
    // prepared, with and without an alias.
    let point =
        |t: &str, id: i32| format!("SELECT v FROM t FOR SYSTEM_TIME AS OF '{t}' WHERE id = {id}");
    assert_eq!(rows(&c, &point(&a, 2)).await, ["b"]);
    assert_eq!(rows(&c, &point(&b, 2)).await, ["B"]);
    assert!(rows(&c, &point(&b, 3)).await.is_empty());
    let by_id = c
        .prepare(&format!(
            "SELECT p.v FROM t FOR SYSTEM_TIME AS OF '{a}' AS p WHERE p.id = $1"
        ))
        .await
        .unwrap();
    let v: String = c.query_one(&by_id, &[&3i32]).await.unwrap().get(0);
    assert_eq!(v, "c");

    // LSNs: the time of `a` maps to an LSN that reads the same state.
    let lsn = rows(&c, &format!("SELECT strata_lsn_at('{a}')"))
        .await
        .remove(0);
    assert!(lsn.contains('/'), "{lsn}");
    assert_eq!(rows(&c, &at(&lsn)).await, ["1|a", "2|b", "3|c"]);
    let now_lsn = rows(&c, "SELECT strata_current_lsn()").await.remove(0);
    assert_ne!(now_lsn, lsn);

    // A session pinned in the past: every read there, writes refused, RESET comes back.
    c.batch_execute(&format!("SET strata.as_of = '{b}'"))
        .await
        .unwrap();
    assert_eq!(
        rows(&c, "SELECT * FROM t ORDER BY id").await,
        ["1|a", "2|B", "4|d"]
    );
    assert_eq!(
        rows(&c, "SELECT v FROM t WHERE id = 2").await,
        ["B"],
        "point reads too"
    );
    assert_eq!(
        error_code(&c, "INSERT INTO t VALUES (9, 'z')").await,
        SqlState::READ_ONLY_SQL_TRANSACTION
    );
    assert_eq!(
        error_code(&c, "CREATE TABLE nope (x int)").await,
        SqlState::READ_ONLY_SQL_TRANSACTION
    );
    // EXECUTE is judged by the statement it runs.
    c.batch_execute("PREPARE read_v(int) AS SELECT v FROM t WHERE id = $1")
        .await
        .unwrap();
    assert_eq!(rows(&c, "EXECUTE read_v(2)").await, ["B"]);
    c.batch_execute("PREPARE write_v AS INSERT INTO t VALUES (9, 'z')")
        .await
        .unwrap();
    assert_eq!(
        error_code(&c, "EXECUTE write_v").await,
        SqlState::READ_ONLY_SQL_TRANSACTION
    );
    c.batch_execute("DEALLOCATE ALL").await.unwrap();
    // A statement prepared while pinned reads the present once the session is back.
    let pinned_by_id = c.prepare("SELECT v FROM t WHERE id = $1").await.unwrap();
    assert_eq!(c.query(&pinned_by_id, &[&1i32]).await.unwrap().len(), 1);
    let shown = rows(&c, "SHOW strata.as_of").await.remove(0);
    assert!(shown.starts_with(&b) && shown.contains("(LSN "), "{shown}");
    let pinned = rows(&c, "SELECT strata_current_lsn()").await.remove(0);
    assert_ne!(pinned, now_lsn);
    c.batch_execute("RESET strata.as_of").await.unwrap();
    assert_eq!(rows(&c, "SHOW strata.as_of").await, [""]);
    assert!(c.query(&pinned_by_id, &[&1i32]).await.unwrap().is_empty());
    assert_eq!(
        rows(&c, "SELECT * FROM t ORDER BY id").await,
        ["2|B|20", "4|d|40"]
    );
    c.batch_execute("INSERT INTO t VALUES (9, 'z', 90)")
        .await
        .unwrap();

    // Before the first commit there is nothing to read: a clear error, not an empty table.
    assert_eq!(
        error_code(&c, &at(&before_everything)).await,
        SqlState::DATETIME_FIELD_OVERFLOW
    );
    assert_eq!(
        error_code(&c, &at("not a time")).await,
        SqlState::INVALID_DATETIME_FORMAT
    );
    assert_eq!(
        error_code(&c, &at("FFFF/0")).await,
        SqlState::INVALID_PARAMETER_VALUE
    );
}
