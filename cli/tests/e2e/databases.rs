//! CREATE / DROP DATABASE: each database is a catalog of its own, chosen when connecting.

use tokio_postgres::error::SqlState;

use crate::support::{connect, Up};

async fn connect_to(
    port: u16,
    database: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let url = format!("postgres://postgres@127.0.0.1:{port}/{database}");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn texts(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_are_separate_catalogs_chosen_at_connect() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = Up::start(dir.path()).await;
    let admin = connect(up.port).await;

    // A database that does not exist is refused at connect, with 3D000.
    let err = connect_to(up.port, "shop")
        .await
        .expect_err("no such database");
    assert_eq!(err.code(), Some(&SqlState::INVALID_CATALOG_NAME));

    admin
        .batch_execute(
            "CREATE DATABASE shop WITH OWNER = postgres ENCODING 'UTF8' TEMPLATE template0",
        )
        .await
        .unwrap();
    admin
        .batch_execute(
            "CREATE TABLE items (id int PRIMARY KEY, name text);
             INSERT INTO items VALUES (1, 'in postgres');",
        )
        .await
        .unwrap();
    let err = admin
        .batch_execute("CREATE DATABASE shop")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::DUPLICATE_DATABASE));
    assert_eq!(
        texts(&admin, "SELECT datname::text FROM pg_database ORDER BY 1").await,
        ["postgres", "shop"]
    );

    // The same names in the new database are new relations; the old ones are not seen.
    let shop = connect_to(up.port, "shop").await.unwrap();
    assert_eq!(
        texts(&shop, "SELECT current_database()::text").await,
        ["shop"]
    );
    let err = shop.query("SELECT * FROM items", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
    shop.batch_execute(
        "CREATE TABLE items (id serial PRIMARY KEY, name text, price numeric(8,2));
         CREATE SCHEMA stock;
         CREATE TABLE stock.levels (item int PRIMARY KEY, qty int);
         INSERT INTO items (name, price) VALUES ('in shop', 9.99);
         INSERT INTO stock.levels VALUES (1, 5);",
    )
    .await
    .unwrap();
    assert_eq!(texts(&shop, "SELECT name FROM items").await, ["in shop"]);
    assert_eq!(
        texts(&admin, "SELECT name FROM items").await,
        ["in postgres"]
    );
    let err = admin
        .query("SELECT * FROM stock.levels", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
    assert_eq!(
        texts(
            &shop,
            "SELECT nspname::text FROM pg_namespace WHERE nspname IN ('public', 'stock') ORDER BY 1"
        )
        .await,
        ["public", "stock"]
    );

    // Neither statement runs inside a transaction block; neither drops an open database.
    let err = admin
        .batch_execute("BEGIN; CREATE DATABASE other")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::ACTIVE_SQL_TRANSACTION));
    admin.batch_execute("ROLLBACK").await.unwrap();
    let err = shop.batch_execute("DROP DATABASE shop").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::OBJECT_IN_USE));
    let err = admin.batch_execute("DROP DATABASE shop").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::OBJECT_IN_USE));
    assert!(
        err.as_db_error()
            .unwrap()
            .message()
            .contains("being accessed by other users"),
        "{err}"
    );

    // Databases and what is in them survive a restart.
    drop(shop);
    drop(admin);
    up.process.stop();
    let up = Up::start(dir.path()).await;
    let shop = connect_to(up.port, "shop").await.unwrap();
    assert_eq!(
        texts(
            &shop,
            "SELECT name || ' ' || price FROM items JOIN stock.levels ON item = id"
        )
        .await,
        ["in shop 9.99"]
    );
    drop(shop);

    // Once no session uses it, DROP DATABASE removes it and everything in it.
    let admin = connect(up.port).await;
    let mut dropped = false;
    for _ in 0..50 {
        // The dropped connection leaves the server a moment after the client lets go.
        match admin.batch_execute("DROP DATABASE shop").await {
            Ok(()) => {
                dropped = true;
                break;
            }
            Err(e) if e.code() == Some(&SqlState::OBJECT_IN_USE) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("DROP DATABASE failed: {e}"),
        }
    }
    assert!(dropped, "the shop session never ended");
    let err = connect_to(up.port, "shop").await.expect_err("dropped");
    assert_eq!(err.code(), Some(&SqlState::INVALID_CATALOG_NAME));
    assert_eq!(
        texts(&admin, "SELECT name FROM items").await,
        ["in postgres"]
    );
    admin
        .batch_execute("DROP DATABASE IF EXISTS shop")
        .await
        .unwrap();
    admin.batch_execute("CREATE DATABASE shop").await.unwrap();
    // Several statements in one query string are one transaction: no CREATE DATABASE in it.
    let err = admin
        .batch_execute("SELECT 1; CREATE DATABASE other")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::ACTIVE_SQL_TRANSACTION));
    let shop = connect_to(up.port, "shop").await.unwrap();
    let err = shop.query("SELECT * FROM items", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
}
