//! psql's describe commands print for Strata exactly what they print for PostgreSQL 15: the same
//! script runs against both, and the outputs are compared whole.

use crate::support::{postgres_url, url, Up};

/// Tables with every kind of column and constraint `\d` shows. Checks are chosen so that their
/// text needs no type annotation: PostgreSQL prints `amount > 0::numeric` for a check on a
/// numeric column, where Strata prints the expression as written.
const SCHEMA: &str = "
    CREATE TABLE accounts (
        id integer PRIMARY KEY,
        owner text NOT NULL DEFAULT 'nobody',
        balance bigint DEFAULT 0 CHECK (balance >= 0),
        opened date DEFAULT '2024-01-01',
        code varchar(8) UNIQUE DEFAULT 'new',
        rate numeric(6,3)
    );
    CREATE INDEX accounts_owner_opened_idx ON accounts (owner, opened);
    CREATE TABLE entries (
        id bigint PRIMARY KEY,
        account integer REFERENCES accounts (id),
        amount numeric(12,2) NOT NULL,
        note text
    );
    CREATE SCHEMA ledger;
    CREATE TABLE ledger.postings (
        id serial PRIMARY KEY,
        account integer REFERENCES accounts (id),
        at timestamptz NOT NULL
    );
    CREATE INDEX postings_at_idx ON ledger.postings (at);
";

const DESCRIBE: &[&str] = &[
    "\\d accounts",
    "\\d+ accounts",
    "\\d entries",
    "\\d accounts_pkey",
    "\\d accounts_owner_opened_idx",
    "\\d",
    "\\dt",
    "\\di",
    "\\dn",
    "\\d ledger.postings",
    "\\dt ledger.*",
    "\\di ledger.*",
    "\\ds ledger.*",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describes_tables_and_indexes_as_postgres_does() {
    let database = format!("strata_describe_{}", std::process::id());
    let admin = format!("{}/postgres", postgres_url());
    run_psql(&admin, &format!("DROP DATABASE IF EXISTS {database}"));
    run_psql(&admin, &format!("CREATE DATABASE {database}"));
    let postgres = format!("{}/{database}", postgres_url());

    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path()).await;
    let strata = url(up.port);

    run_psql(&postgres, SCHEMA);
    run_psql(&strata, SCHEMA);
    for command in DESCRIBE {
        let expected = run_psql(&postgres, command);
        let actual = run_psql(&strata, command);
        assert!(!expected.trim().is_empty(), "{command} printed nothing");
        assert_eq!(
            actual, expected,
            "{command} differs\n--- Strata\n{actual}\n--- PostgreSQL\n{expected}"
        );
    }
    run_psql(&admin, &format!("DROP DATABASE {database}"));
}

/// Runs a script through psql with its default (aligned) output; returns stdout.
fn run_psql(url: &str, script: &str) -> String {
    crate::support::psql_script(url, &[], script)
}
