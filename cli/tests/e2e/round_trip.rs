//! Creating tables, inserting and reading back through psql and tokio-postgres.

use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
use tokio_postgres::error::SqlState;

use crate::support::{connect, psql, psql_error, Up};

fn region(i: i64) -> &'static str {
    ["north", "south", "east", "west"][(i % 4) as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_inserts_10000_rows_and_reads_them_with_aggregates_and_joins() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    psql(
        up.port,
        "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, region varchar(10), balance numeric(12,2), since date);
         CREATE TABLE orders (customer_id integer, order_no bigint, amount double precision, paid boolean,
                              PRIMARY KEY (customer_id, order_no));",
    );
    // 1,000 customers in one multi-row INSERT.
    let rows: Vec<String> = (1..=1000i64)
        .map(|i| {
            format!(
                "({i}, 'customer {i}', '{}', {}.{:02}, '2024-{:02}-{:02}')",
                region(i),
                i * 10,
                i % 100,
                1 + i % 12,
                1 + i % 28
            )
        })
        .collect();
    psql(
        up.port,
        &format!("INSERT INTO customers VALUES {};", rows.join(",\n")),
    );
    // 9,000 orders from INSERT ... SELECT.
    psql(up.port, "INSERT INTO orders SELECT value % 1000 + 1, value, value * 0.5, value % 3 = 0 FROM generate_series(1, 9000) AS g(value);");

    let balance_cents: i64 = (1..=1000i64).map(|i| i * 1000 + i % 100).sum();
    let out = psql(up.port, "SELECT count(*), sum(balance) FROM customers;");
    assert_eq!(
        out.trim(),
        format!("1000|{}.{:02}", balance_cents / 100, balance_cents % 100)
    );
    let amount: f64 = (1..=9000).map(|v| v as f64 * 0.5).sum();
    assert_eq!(
        psql(up.port, "SELECT count(*), sum(amount) FROM orders;").trim(),
        format!("9000|{amount}")
    );

    // A join with grouping, checked against the same computation done here.
    let mut expected: std::collections::BTreeMap<&str, (i64, f64)> = Default::default();
    for v in 1..=9000i64 {
        let e = expected.entry(region(v % 1000 + 1)).or_default();
        e.0 += 1;
        e.1 += v as f64 * 0.5;
    }
    let want: Vec<String> = expected
        .iter()
        .map(|(r, (n, s))| format!("{r}|{n}|{s}"))
        .collect();
    let got = psql(
        up.port,
        "SELECT c.region, count(*), sum(o.amount) FROM customers c JOIN orders o ON o.customer_id = c.id
         GROUP BY c.region ORDER BY c.region;",
    );
    assert_eq!(got.trim().lines().collect::<Vec<_>>(), want);

    // Subqueries, LIMIT, ORDER BY.
    let paid_customers = (1..=9000i64)
        .filter(|v| v % 3 == 0)
        .map(|v| v % 1000 + 1)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert_eq!(
        psql(up.port, "SELECT count(*) FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE paid);").trim(),
        paid_customers.to_string()
    );
    assert_eq!(
        psql(
            up.port,
            "SELECT id, name FROM customers ORDER BY balance DESC LIMIT 2;"
        )
        .trim(),
        "1000|customer 1000\n999|customer 999"
    );
    assert_eq!(
        psql(up.port, "SELECT name, since FROM customers WHERE id = 42;").trim(),
        "customer 42|2024-07-15"
    );

    // Primary-key predicates become point reads and range scans.
    let plan = psql(up.port, "EXPLAIN SELECT * FROM customers WHERE id = 42;");
    assert!(plan.contains("access=primary key lookup (1 key)"), "{plan}");
    let plan = psql(
        up.port,
        "EXPLAIN SELECT * FROM orders WHERE customer_id = 7 AND order_no > 100;",
    );
    assert!(plan.contains("access=primary key range scan"), "{plan}");
    let plan = psql(up.port, "EXPLAIN SELECT * FROM orders WHERE amount > 3;");
    assert!(plan.contains("access=full scan"), "{plan}");

    // A secondary index serves equality and ranges on its leading columns, built over the rows
    // already there; EXPLAIN names it.
    psql(up.port, "CREATE INDEX orders_amount ON orders (amount);");
    psql(up.port, "CREATE INDEX ON customers (region, since);");
    let plan = psql(up.port, "EXPLAIN SELECT * FROM orders WHERE amount > 4400;");
    assert!(
        plan.contains("access=index scan using orders_amount (1 range)"),
        "{plan}"
    );
    assert_eq!(
        psql(
            up.port,
            "SELECT count(*), min(order_no) FROM orders WHERE amount > 4400;"
        )
        .trim(),
        format!("{}|8801", (8801..=9000).count())
    );
    // ORDER BY … LIMIT on the index's column reads it in order instead of sorting every row.
    let plan = psql(
        up.port,
        "EXPLAIN SELECT * FROM orders ORDER BY amount LIMIT 3;",
    );
    assert!(
        plan.contains("index scan using orders_amount") && !plan.contains("SortExec"),
        "{plan}"
    );
    assert_eq!(
        psql(
            up.port,
            "SELECT amount FROM orders ORDER BY amount LIMIT 3;"
        )
        .trim(),
        "0.5\n1\n1.5"
    );
    let plan = psql(
        up.port,
        "EXPLAIN SELECT id FROM customers WHERE region IN ('north', 'south') AND since >= '2024-06-01';",
    );
    assert!(
        plan.contains("access=index scan using customers_region_since_idx (2 ranges)"),
        "{plan}"
    );
    let wanted = (1..=1000i64)
        .filter(|&i| matches!(region(i), "north" | "south") && 1 + i % 12 >= 6)
        .count();
    assert_eq!(
        psql(
            up.port,
            "SELECT count(*) FROM customers WHERE region IN ('north', 'south') AND since >= '2024-06-01';"
        )
        .trim(),
        wanted.to_string()
    );

    // Constraint violations carry PostgreSQL's SQLSTATE.
    let err = psql_error(
        up.port,
        "INSERT INTO customers VALUES (42, 'again', 'x', 0, NULL);",
    );
    assert!(
        err.contains("23505") && err.contains("Key (id)=(42) already exists."),
        "{err}"
    );
    let err = psql_error(up.port, "INSERT INTO customers (id) VALUES (5000);");
    assert!(err.contains("23502"), "{err}");
    let err = psql_error(
        up.port,
        "INSERT INTO customers VALUES (5001, 'x', 'much too long', 0, NULL);",
    );
    assert!(err.contains("22001"), "{err}");
    assert_eq!(
        psql(up.port, "SELECT count(*) FROM customers;").trim(),
        "1000"
    );

    // DROP TABLE.
    psql(up.port, "DROP TABLE orders;");
    let err = psql_error(up.port, "SELECT * FROM orders;");
    assert!(err.contains("42P01"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_round_trips_every_type_through_prepared_statements() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    let client = connect(up.port).await;
    client
        .batch_execute(
            "CREATE TABLE t (
                k1 smallint, k2 text,
                i4 integer, i8 bigint, f4 real, f8 double precision, num numeric(10,3),
                vc varchar(8), b boolean, d date, ts timestamp, tstz timestamptz, raw bytea,
                PRIMARY KEY (k1, k2))",
        )
        .await
        .unwrap();

    // 2,000 rows through one prepared statement with binary parameters ...
    let insert = client
        .prepare("INSERT INTO t (k1, k2, i4, i8, f4, f8, vc, b, d, ts, tstz, raw) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
        .await
        .unwrap();
    let base = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    for i in 0..2000i32 {
        let ts: NaiveDateTime = base.and_hms_micro_opt(12, 30, 15, 250_000).unwrap()
            + chrono::Duration::seconds(i64::from(i));
        let tstz = Utc.from_utc_datetime(&ts);
        client
            .execute(
                &insert,
                &[
                    &((i % 7) as i16),
                    &format!("key-{i}"),
                    &i,
                    &(i64::from(i) * 1_000_000_007),
                    &(i as f32 * 0.5),
                    &(f64::from(i) / 3.0),
                    &format!("v{}", i % 1000),
                    &(i % 2 == 0),
                    &(base + chrono::Duration::days(i64::from(i % 100))),
                    &ts,
                    &tstz,
                    &vec![(i % 256) as u8, 0, 255],
                ],
            )
            .await
            .unwrap();
    }
    // ... and 8,000 through multi-row INSERTs sent as simple queries.
    for chunk in 0..8 {
        let rows: Vec<String> = (0..1000)
            .map(|j| {
                let i = 2000 + chunk * 1000 + j;
                format!("({}, 'key-{i}', {i}, {}, {}, {}, {}.5, 'w', true, '2024-01-01', '2024-01-01 00:00:00', '2024-01-01 00:00:00+00', '\\x00')",
                    i % 7, i64::from(i) * 2, i, i, i)
            })
            .collect();
        client
            .batch_execute(&format!(
                "INSERT INTO t (k1, k2, i4, i8, f4, f8, num, vc, b, d, ts, tstz, raw) VALUES {}",
                rows.join(",")
            ))
            .await
            .unwrap();
    }

    let row = client
        .query_one("SELECT count(*), sum(i4), count(num) FROM t", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 10_000);
    assert_eq!(row.get::<_, i64>(1), (0..10_000i64).sum::<i64>());
    assert_eq!(row.get::<_, i64>(2), 8_000);

    // Every type comes back intact in binary format.
    let row = client
        .query_one(
            "SELECT * FROM t WHERE k1 = $1 AND k2 = $2",
            &[&(1234i16 % 7), &"key-1234"],
        )
        .await
        .unwrap();
    let ts = base.and_hms_micro_opt(12, 30, 15, 250_000).unwrap() + chrono::Duration::seconds(1234);
    assert_eq!(row.get::<_, i32>("i4"), 1234);
    assert_eq!(row.get::<_, i64>("i8"), 1234 * 1_000_000_007);
    assert_eq!(row.get::<_, f32>("f4"), 617.0);
    assert_eq!(row.get::<_, f64>("f8"), 1234.0 / 3.0);
    assert_eq!(row.get::<_, String>("vc"), "v234");
    assert!(row.get::<_, bool>("b"));
    assert_eq!(
        row.get::<_, NaiveDate>("d"),
        base + chrono::Duration::days(34)
    );
    assert_eq!(row.get::<_, NaiveDateTime>("ts"), ts);
    assert_eq!(
        row.get::<_, chrono::DateTime<Utc>>("tstz"),
        Utc.from_utc_datetime(&ts)
    );
    assert_eq!(row.get::<_, Vec<u8>>("raw"), vec![1234u32 as u8, 0, 255]);

    let row = client
        .query_one(
            "SELECT num IS NULL FROM t WHERE k1 = 2 AND k2 = 'key-1234'",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));

    // Numeric and text output as PostgreSQL prints them.
    let rows = client
        .simple_query("SELECT num, f4, tstz, raw FROM t WHERE k1 = 3 AND k2 = 'key-2005'")
        .await
        .unwrap();
    let row = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
        _ => None,
    });
    let row = row.expect("one row");
    assert_eq!(row.get(0), Some("2005.500"));
    assert_eq!(row.get(1), Some("2005"));
    assert_eq!(row.get(2), Some("2024-01-01 00:00:00+00"));
    assert_eq!(row.get(3), Some("\\x00"));

    // Aggregates and a self-join with parameters.
    let row = client
        .query_one(
            "SELECT count(*) FROM t a JOIN t b ON a.k2 = b.k2 AND a.k1 = b.k1 WHERE a.i4 < $1",
            &[&500i32],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 500);
    let row = client
        .query_one("SELECT max(i8), min(d) FROM t WHERE k1 = $1", &[&3i16])
        .await
        .unwrap();
    assert!(row.get::<_, i64>(0) > 0);

    // Errors carry SQLSTATEs, and the connection survives each one.
    let cases: &[(&str, &SqlState)] = &[
        ("SELEC 1", &SqlState::SYNTAX_ERROR),
        ("SELECT * FROM missing", &SqlState::UNDEFINED_TABLE),
        ("SELECT nope FROM t", &SqlState::UNDEFINED_COLUMN),
        (
            "CREATE MATERIALIZED VIEW v AS SELECT 1",
            &SqlState::FEATURE_NOT_SUPPORTED,
        ),
        (
            "CREATE INDEX t_i4 ON t USING gin (i4)",
            &SqlState::FEATURE_NOT_SUPPORTED,
        ),
        (
            "INSERT INTO t (k1, k2) VALUES (1, 'key-8')",
            &SqlState::UNIQUE_VIOLATION,
        ),
        ("SELECT 1/0", &SqlState::DIVISION_BY_ZERO),
        ("CREATE TABLE t (a int)", &SqlState::DUPLICATE_TABLE),
        (
            "SET TimeZone = 'Europe/Paris'",
            &SqlState::FEATURE_NOT_SUPPORTED,
        ),
        ("SHOW no_such_setting", &SqlState::UNDEFINED_OBJECT),
    ];
    for (sql, code) in cases {
        let err = client.batch_execute(sql).await.expect_err(sql);
        assert_eq!(err.code(), Some(*code), "{sql}: {err:?}");
        let err = client.query(*sql, &[]).await.expect_err(sql);
        assert_eq!(
            err.code(),
            Some(*code),
            "{sql} (extended protocol): {err:?}"
        );
    }
    let row = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 10_000);

    // SQL PREPARE / EXECUTE through the extended protocol: Describe of an EXECUTE gives the
    // prepared statement's columns.
    client
        .batch_execute("PREPARE by_key AS SELECT k1, k2 FROM t WHERE k1 = $1 AND k2 = $2")
        .await
        .unwrap();
    let rows = client
        .query("EXECUTE by_key(1, 'key-8')", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i16>(0), 1);
    assert_eq!(rows[0].get::<_, &str>(1), "key-8");

    // The infinities travel in binary as PostgreSQL sends them (the type's largest and
    // smallest values, not shifted to its epoch), as parameters and as results.
    use tokio_postgres::types::{Date, Timestamp};
    client
        .execute(
            "INSERT INTO t (k1, k2, d, ts, tstz) VALUES (9, 'inf', $1, $2, $3)",
            &[
                &Date::<NaiveDate>::PosInfinity,
                &Timestamp::<NaiveDateTime>::NegInfinity,
                &Timestamp::<chrono::DateTime<Utc>>::PosInfinity,
            ],
        )
        .await
        .unwrap();
    let row = client
        .query_one(
            "SELECT d, ts, tstz, d::text, ts::text FROM t WHERE k1 = 9 AND ts < $1",
            &[&ts],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Date<NaiveDate>>(0), Date::PosInfinity);
    assert_eq!(
        row.get::<_, Timestamp<NaiveDateTime>>(1),
        Timestamp::NegInfinity
    );
    assert_eq!(
        row.get::<_, Timestamp<chrono::DateTime<Utc>>>(2),
        Timestamp::PosInfinity
    );
    assert_eq!(row.get::<_, &str>(3), "infinity");
    assert_eq!(row.get::<_, &str>(4), "-infinity");
}

/// psql's describe commands run their catalog queries unmodified and list what PostgreSQL
/// would list for the same schema (`\d t` itself is not there yet: see docs/compute.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describe_commands_list_tables_indexes_schemas_and_databases() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    psql(
        up.port,
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL);
         CREATE TABLE events (at timestamptz, what text);",
    );
    let user = psql(up.port, "SELECT current_user").trim().to_string();
    assert_eq!(
        psql(up.port, "\\dt"),
        format!("public|accounts|table|{user}\npublic|events|table|{user}\n")
    );
    assert_eq!(
        psql(up.port, "\\di"),
        format!("public|accounts_pkey|index|{user}|accounts\n")
    );
    // PostgreSQL 15's `public` belongs to pg_database_owner; a new schema to its creator.
    assert_eq!(psql(up.port, "\\dn"), "public|pg_database_owner\n");
    psql(
        up.port,
        "CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int PRIMARY KEY);",
    );
    assert_eq!(
        psql(up.port, "\\dn"),
        format!("billing|{user}\npublic|pg_database_owner\n")
    );
    assert_eq!(
        psql(up.port, "\\dt billing.*"),
        format!("billing|invoices|table|{user}\n")
    );
    assert!(psql(up.port, "\\l").starts_with(&format!("postgres|{user}|UTF8|C|C|")));
    assert_eq!(psql(up.port, "\\df"), "");
}
