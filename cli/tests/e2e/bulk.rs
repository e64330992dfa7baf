//! Bulk paths driven by real PostgreSQL tools: psql's \copy and pgbench.

use std::process::Command;

use crate::support::{psql, psql_at, psql_error, url, Up};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_copy_in_and_out_in_text_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    psql(up.port, "CREATE TABLE people (id int PRIMARY KEY, name text, born date, score numeric(6,2), active boolean, raw bytea);");

    let csv = dir.path().join("people.csv");
    let mut data = String::from("id,name,born,score,active,raw\n");
    for i in 1..=5000 {
        data.push_str(&format!(
            "{i},\"Person, {i}\",2000-01-{:02},{}.5,{},\\x{:02x}\n",
            1 + i % 28,
            i % 1000,
            i % 2 == 0,
            i % 256
        ));
    }
    data.push_str("5001,,,,,\n");
    std::fs::write(&csv, data).unwrap();
    psql(
        up.port,
        &format!(
            "\\copy people FROM '{}' WITH (FORMAT csv, HEADER true)",
            csv.display()
        ),
    );
    // score is i % 1000 + 0.5: five cycles of 0..999, plus a half each.
    assert_eq!(
        psql(
            up.port,
            "SELECT count(*), count(name), sum(score), count(*) FILTER (WHERE active) FROM people;"
        )
        .trim(),
        "5001|5000|2500000.00|2500"
    );
    assert_eq!(
        psql(up.port, "SELECT name, born, raw FROM people WHERE id = 7;").trim(),
        "Person, 7|2000-01-08|\\x07"
    );

    // Text format: escapes and NULLs, and COPY TO gives back the same bytes.
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "1\ttab\\there\t\\N\n2\tnew\\nline\tback\\\\slash\n").unwrap();
    psql(
        up.port,
        "CREATE TABLE notes (id int PRIMARY KEY, a text, b text);",
    );
    psql(up.port, &format!("\\copy notes FROM '{}'", text.display()));
    assert_eq!(
        psql(up.port, "SELECT a FROM notes WHERE b IS NULL;").trim(),
        "tab\there"
    );
    let out = dir.path().join("notes.out");
    psql(up.port, &format!("\\copy notes TO '{}'", out.display()));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read_to_string(&text).unwrap()
    );
    let out = dir.path().join("notes.csv");
    psql(
        up.port,
        &format!(
            "\\copy (SELECT id, a FROM notes ORDER BY id) TO '{}' WITH (FORMAT csv)",
            out.display()
        ),
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "1,tab\there\n2,\"new\nline\"\n"
    );

    // Generated columns are left out of COPY both ways and computed for each copied row.
    psql(
        up.port,
        "CREATE TABLE sized (id int PRIMARY KEY, w int, area int GENERATED ALWAYS AS (w * w) STORED);",
    );
    let sizes = dir.path().join("sizes.txt");
    std::fs::write(&sizes, "1\t3\n2\t4\n").unwrap();
    psql(up.port, &format!("\\copy sized FROM '{}'", sizes.display()));
    assert_eq!(psql(up.port, "SELECT sum(area) FROM sized;").trim(), "25");
    let out = dir.path().join("sizes.out");
    psql(up.port, &format!("\\copy sized TO '{}'", out.display()));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "1\t3\n2\t4\n");
    let err = psql_error(
        up.port,
        &format!("\\copy sized (id, area) TO '{}'", out.display()),
    );
    assert!(err.contains("is a generated column"), "{err}");

    // A bad row fails the whole COPY, which leaves nothing behind.
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "10\tok\t\\N\nnot-a-number\tx\ty\n").unwrap();
    let err = psql_error(up.port, &format!("\\copy notes FROM '{}'", bad.display()));
    assert!(err.contains("22P02"), "{err}");
    assert_eq!(psql(up.port, "SELECT count(*) FROM notes;").trim(), "2");

    // COPY inside a transaction is rolled back with it.
    let more = dir.path().join("more.txt");
    std::fs::write(&more, "3\tthree\t\\N\n4\tfour\t\\N\n").unwrap();
    psql(
        up.port,
        &format!(
            "BEGIN;\n\\copy notes FROM '{}'\nSELECT count(*) FROM notes;\nROLLBACK;",
            more.display()
        ),
    );
    assert_eq!(psql(up.port, "SELECT count(*) FROM notes;").trim(), "2");
}

/// Binary COPY files move between PostgreSQL and Strata both ways: a file PostgreSQL writes
/// loads into Strata with the same values, and the file Strata writes of them is byte for byte
/// PostgreSQL's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_copy_files_are_exchanged_with_postgres() {
    const TABLE: &str = "CREATE TABLE typed (id int PRIMARY KEY, i2 int2, i8 int8, f4 float4, \
        f8 float8, n numeric(12,3), t text, v varchar(10), b boolean, raw bytea, d date, \
        tm time, ts timestamp, tz timestamptz, iv interval, u uuid, j json, jb jsonb, \
        ints int[], texts text[]);";
    const ROWS: &str = "INSERT INTO typed VALUES \
        (1, -32768, 9223372036854775807, 1.5, -2.5e-300, 123456789.125, 'héllo\ttab', 'short', \
         true, '\\x00ff10', '2024-02-29', '23:59:59.25', '1999-12-31 23:59:59.5', \
         '2000-01-01 01:00:00+02', '1 year 2 mons -3 days 04:05:06.7', \
         'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": [1, 2]}', '{\"b\": 1, \"a\": null}', \
         '{1,NULL,-3}', '{x,\"y z\",NULL}'), \
        (2, 0, 0, 0, 0, -0.001, '', '', false, '', '0001-01-01', '00:00', '2262-01-01 00:00', \
         '1970-01-01 00:00+00', '0', '00000000-0000-0000-0000-000000000000', '[]', '{}', '{}', '{}'), \
        (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
         NULL, NULL, NULL, NULL, NULL);";
    let database = format!("strata_binary_copy_{}", std::process::id());
    let admin = format!("{}/postgres", crate::support::postgres_url());
    psql_at(&admin, &format!("DROP DATABASE IF EXISTS {database}"));
    psql_at(&admin, &format!("CREATE DATABASE {database}"));
    let postgres = format!("{}/{database}", crate::support::postgres_url());

    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    let strata = url(up.port);
    psql_at(&postgres, TABLE);
    psql_at(&strata, TABLE);
    psql_at(&postgres, ROWS);

    let from_postgres = dir.path().join("postgres.bin");
    let from_strata = dir.path().join("strata.bin");
    let copy = |url: &str, direction: &str, file: &std::path::Path| {
        psql_at(
            url,
            &format!(
                "\\copy typed {direction} '{}' (FORMAT binary)",
                file.display()
            ),
        )
    };
    copy(&postgres, "TO", &from_postgres);
    copy(&strata, "FROM", &from_postgres);
    let all = "SELECT * FROM typed ORDER BY id";
    assert_eq!(psql_at(&strata, all), psql_at(&postgres, all));
    copy(&strata, "TO", &from_strata);
    assert_eq!(
        std::fs::read(&from_strata).unwrap(),
        std::fs::read(&from_postgres).unwrap(),
        "Strata's binary COPY differs from PostgreSQL's"
    );

    // A file that is not binary COPY data fails the COPY, which leaves nothing behind.
    let text = dir.path().join("text.txt");
    std::fs::write(&text, "4\t1\n").unwrap();
    psql_at(&strata, "DELETE FROM typed");
    let err = psql_error(
        up.port,
        &format!(
            "\\copy typed (id, i2) FROM '{}' (FORMAT binary)",
            text.display()
        ),
    );
    assert!(err.contains("22P04"), "{err}");
    assert_eq!(psql_at(&strata, "SELECT count(*) FROM typed").trim(), "0");
    psql_at(&admin, &format!("DROP DATABASE {database}"));
}

fn pgbench(port: u16, args: &[&str]) -> String {
    let out = Command::new("pgbench")
        .args(args)
        .arg(url(port))
        .output()
        .expect("pgbench runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pgbench {args:?} failed:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_initializes_and_runs_tpcb_and_select_only_unmodified() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    pgbench(up.port, &["-i", "-s", "1"]);
    assert_eq!(
        psql(up.port, "SELECT (SELECT count(*) FROM pgbench_accounts), (SELECT count(*) FROM pgbench_tellers), (SELECT count(*) FROM pgbench_branches);").trim(),
        "100000|10|1"
    );
    let out = pgbench(up.port, &["-c", "4", "-t", "50"]);
    assert!(
        out.contains("number of transactions actually processed: 200/200"),
        "{out}"
    );
    assert!(out.contains("number of failed transactions: 0"), "{out}");
    // TPC-B's invariant: every delta is in the history and in all three balances.
    let sums = psql(
        up.port,
        "SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(tbalance) FROM pgbench_tellers),
                (SELECT sum(bbalance) FROM pgbench_branches), (SELECT sum(delta) FROM pgbench_history),
                (SELECT count(*) FROM pgbench_history);",
    );
    let sums: Vec<&str> = sums.trim().split('|').collect();
    assert_eq!(sums[4], "200");
    assert!(
        sums[..4].iter().all(|s| *s == sums[0]),
        "balances disagree: {sums:?}"
    );
    let out = pgbench(up.port, &["-S", "-c", "2", "-t", "200"]);
    assert!(
        out.contains("number of transactions actually processed: 400/400"),
        "{out}"
    );
}
