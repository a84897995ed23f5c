//! Helpers shared by the integration tests: real database files in temporary directories,
//! and a raw `rusqlite` view of a file to check what the backend actually stored.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

use kv_sqlite::{SqliteBackend, SqliteBackendBuilder};
use tempfile::TempDir;

/// A file-backed store and the directory that holds it (deleted on drop).
pub struct FileStore {
    pub dir: TempDir,
    pub path: PathBuf,
    pub store: SqliteBackend,
}

/// A store over a new file `kv.db` in a new temporary directory.
pub async fn file_store() -> FileStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("kv.db");
    let store = SqliteBackend::open(&path).await.expect("open");
    FileStore { dir, path, store }
}

impl FileStore {
    /// Another backend on the same file, with the settings `configure` makes.
    pub async fn another(
        &self,
        configure: impl FnOnce(SqliteBackendBuilder) -> SqliteBackendBuilder,
    ) -> SqliteBackend {
        configure(SqliteBackendBuilder::file(&self.path))
            .build()
            .await
            .expect("open another backend on the file")
    }
}

/// A separate plain connection to the file, as a person with the `sqlite3` shell would have.
pub fn raw(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("raw open");
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .expect("busy timeout");
    conn
}

/// A raw connection holding the file's write lock (`BEGIN IMMEDIATE`) until `COMMIT` (or
/// until it is dropped, which rolls back): what another process writing looks like.
pub fn hold_write_lock(path: &Path) -> rusqlite::Connection {
    let conn = raw(path);
    conn.execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    conn
}

/// The single integer `sql` returns, read through a raw connection.
pub fn query_i64(path: &Path, sql: &str) -> i64 {
    raw(path)
        .query_row(sql, [], |row| row.get(0))
        .expect("query")
}

/// Sleeps on the executor (not the thread) for `ms` milliseconds.
pub async fn sleep_ms(ms: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}
