//! kv-sqlite and sqlx in one binary: cargo could build it only by picking a rusqlite whose
//! libsqlite3-sys is sqlx's own (one package may link the native `sqlite3`), so this file
//! compiling is half the proof. The tests are the other half: both libraries work in one
//! process, on one SQLite library, each on its own file and on the same one.

use std::path::Path;

use kv_trait::KvBackend;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

async fn sqlx_pool(path: &Path) -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true),
        )
        .await
        .expect("sqlx opens the file")
}

/// An application's own tables through sqlx, its key-value data through kv-sqlite, side by
/// side in one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_tables_and_kv_sqlite_in_one_process() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let app = sqlx_pool(&dir.path().join("app.db")).await;
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&app)
        .await
        .expect("create a table");
    sqlx::query("INSERT INTO users (name) VALUES ('ada'), ('grace')")
        .execute(&app)
        .await
        .expect("insert");

    let store = kv_sqlite::SqliteBackend::open(dir.path().join("kv.db"))
        .await
        .expect("kv-sqlite opens its file");
    store
        .set_with_ttl("session:1", b"token", 60_000_000_000)
        .await
        .expect("set");
    assert_eq!(store.increment("hits", 2).await.expect("increment"), 2);
    assert!(store
        .compare_and_swap("leader", None, b"node-a")
        .await
        .expect("cas"));
    assert_eq!(
        store.get("session:1").await.expect("get").as_deref(),
        Some(&b"token"[..])
    );

    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app)
        .await
        .expect("count");
    assert_eq!(users, 2);
}

/// sqlx reads what kv-sqlite wrote, in the same file and at the same moment: one SQLite
/// library, one file format, one locking protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_reads_the_rows_kv_sqlite_writes() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("kv.db");
    let store = kv_sqlite::SqliteBackendBuilder::file(&path)
        .namespace("app")
        .build()
        .await
        .expect("kv-sqlite opens the file");
    for n in 0..10 {
        store
            .set(&format!("k{n}"), n.to_string().as_bytes())
            .await
            .expect("set");
    }
    let reader = sqlx_pool(&path).await;
    let rows: Vec<(Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT key, value FROM kv_entries WHERE namespace = 'app' ORDER BY key")
            .fetch_all(&reader)
            .await
            .expect("sqlx reads kv-sqlite's table");
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[0], (b"k0".to_vec(), b"0".to_vec()));
    assert_eq!(rows[9], (b"k9".to_vec(), b"9".to_vec()));

    // kv-sqlite goes on writing while sqlx holds connections to the file.
    assert!(store.delete("k0").await.expect("delete"));
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM kv_entries WHERE namespace = 'app'")
        .fetch_one(&reader)
        .await
        .expect("count");
    assert_eq!(left, 9);
}
