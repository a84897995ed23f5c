//! What is specific to SQLite: keys that are wildcards elsewhere, byte order, what a row
//! looks like in the file, reclaiming expired rows, the schema version, durability, namespaces
//! sharing a file, and the ways of opening a database.

// The watch tests, in this binary rather than one of their own (one link less in CI).
mod watch;

mod common;

use kv_sqlite::{SqliteBackend, SqliteBackendBuilder, Synchronous, SCHEMA_VERSION};
use kv_trait::{KvBackend, KvError};

use common::{file_store, query_i64, raw, sleep_ms};

/// Keys that mean something to `LIKE`, `GLOB`, C strings or collations.
const AWKWARD_KEYS: [&str; 24] = [
    "%", "%%", "a%b", "_", "a_b", "ab", "a", "*", "a*", "?", "[ab]", "\\", "\\%", "\0", "a\0b",
    "a\0", "\u{1}", " ", "a b", "é", "ê", "日本", "🦀", "\u{FF61}",
];

async fn store_with(keys: &[&str]) -> common::FileStore {
    let fixture = file_store().await;
    for key in keys {
        fixture.store.set(key, key.as_bytes()).await.expect("set");
    }
    fixture
}

fn sorted(keys: impl IntoIterator<Item = impl Into<String>>) -> Vec<String> {
    let mut keys: Vec<String> = keys.into_iter().map(Into::into).collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn wildcard_nul_and_non_ascii_keys_round_trip_and_list_in_byte_order() {
    let fixture = store_with(&AWKWARD_KEYS).await;
    let store = &fixture.store;
    for key in AWKWARD_KEYS {
        assert_eq!(
            store.get(key).await.unwrap(),
            Some(key.as_bytes().to_vec()),
            "{key:?}"
        );
    }
    // Rust `String` order is byte order: "\u{FF61}" (EF BD A1) sorts before "🦀" (F0 9F A6 80)
    // although UTF-16 would put it after.
    let listed = store.list_keys("").await.unwrap();
    assert_eq!(listed, sorted(AWKWARD_KEYS));
    let position = |key: &str| listed.iter().position(|k| k == key).unwrap();
    assert!(position("\u{FF61}") < position("🦀"));
    assert!(position("\0") < position("\u{1}"));
    assert!(position("a") < position("a\0") && position("a\0") < position("a\0b"));
}

#[tokio::test]
async fn prefixes_are_matched_as_bytes_never_as_patterns() {
    let fixture = store_with(&AWKWARD_KEYS).await;
    let store = &fixture.store;
    let expect = |prefix: &str| {
        sorted(
            AWKWARD_KEYS
                .iter()
                .filter(|k| k.starts_with(prefix))
                .copied(),
        )
    };
    for prefix in [
        "%", "_", "a_", "a%", "*", "a*", "?", "[", "\\", "\0", "a\0", "a", "é", "日", " ",
    ] {
        assert_eq!(
            store.list_keys(prefix).await.unwrap(),
            expect(prefix),
            "{prefix:?}"
        );
    }
    assert_eq!(store.list_keys("%").await.unwrap(), ["%", "%%"]);
    assert_eq!(store.list_keys("_").await.unwrap(), ["_"]);
    assert_eq!(store.list_keys("a\0").await.unwrap(), ["a\0", "a\0b"]);
    // "é" is C3 A9 and "ê" is C3 AA: a byte-prefix scan must stop between them.
    assert_eq!(store.list_keys("é").await.unwrap(), ["é"]);
}

#[tokio::test]
async fn keys_are_case_sensitive() {
    let fixture = store_with(&["Key", "key", "KEY", "straße", "STRASSE"]).await;
    let store = &fixture.store;
    assert_eq!(store.get("key").await.unwrap(), Some(b"key".to_vec()));
    assert_eq!(store.get("kEy").await.unwrap(), None);
    assert_eq!(store.list_keys("K").await.unwrap(), ["KEY", "Key"]);
    assert_eq!(store.list_keys("k").await.unwrap(), ["key"]);
    assert_eq!(store.list_keys("STRA").await.unwrap(), ["STRASSE"]);
    assert!(store.delete("KEY").await.unwrap());
    assert_eq!(
        store.list_keys("").await.unwrap(),
        ["Key", "STRASSE", "key", "straße"]
    );
}

#[tokio::test]
async fn an_empty_value_is_an_empty_blob_in_the_file_not_null() {
    let fixture = file_store().await;
    fixture.store.set("empty", b"").await.unwrap();
    assert_eq!(fixture.store.get("empty").await.unwrap(), Some(vec![]));
    let (kind, length): (String, i64) = raw(&fixture.path)
        .query_row(
            "SELECT typeof(value), length(value) FROM kv_entries WHERE key = CAST('empty' AS BLOB)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((kind.as_str(), length), ("blob", 0));
}

#[tokio::test]
async fn rows_hold_blob_keys_and_unix_millisecond_deadlines() {
    let fixture = file_store().await;
    let before = kv_trait::unix_millis_now();
    fixture
        .store
        .set_with_ttl("session", b"token", 60_000_000_000)
        .await
        .unwrap();
    fixture.store.set("plain", b"v").await.unwrap();
    let conn = raw(&fixture.path);
    let (namespace, kind, deadline): (String, String, i64) = conn
        .query_row(
            "SELECT namespace, typeof(key), expires_at FROM kv_entries WHERE key = CAST('session' AS BLOB)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!((namespace.as_str(), kind.as_str()), ("", "blob"));
    let deadline = u64::try_from(deadline).unwrap();
    assert!(deadline >= before + 60_000 && deadline <= kv_trait::unix_millis_now() + 60_001);
    let plain_deadline: Option<i64> = conn
        .query_row(
            "SELECT expires_at FROM kv_entries WHERE key = CAST('plain' AS BLOB)",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(plain_deadline, None);
}

#[tokio::test]
async fn purge_expired_deletes_the_expired_rows_from_the_file() {
    let fixture = file_store().await;
    let store = &fixture.store;
    for i in 0..40 {
        store
            .set_with_ttl(&format!("short/{i}"), b"v", 1)
            .await
            .unwrap();
    }
    for i in 0..5 {
        store.set(&format!("kept/{i}"), b"v").await.unwrap();
    }
    store
        .set_with_ttl("later", b"v", 60_000_000_000)
        .await
        .unwrap();
    sleep_ms(5).await;
    let count = "SELECT count(*) FROM kv_entries";
    assert_eq!(
        query_i64(&fixture.path, count),
        46,
        "hidden, not yet reclaimed"
    );
    assert_eq!(store.list_keys("short/").await.unwrap().len(), 0);
    assert_eq!(store.purge_expired().await.unwrap(), 40);
    assert_eq!(query_i64(&fixture.path, count), 6);
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    assert!(store.exists("later").await.unwrap());
}

#[tokio::test]
async fn purge_expired_works_through_more_rows_than_one_batch() {
    let fixture = file_store().await;
    {
        // Many expired rows written directly: faster than a transaction per key.
        let mut conn = raw(&fixture.path);
        let tx = conn.transaction().unwrap();
        for i in 0..1000 {
            tx.execute(
                "INSERT INTO kv_entries (namespace, key, expires_at, value) VALUES ('', ?1, 1, x'')",
                [format!("old/{i}").into_bytes()],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    assert!(fixture.store.list_keys("").await.unwrap().is_empty());
    assert_eq!(fixture.store.purge_expired().await.unwrap(), 1000);
    assert_eq!(
        query_i64(&fixture.path, "SELECT count(*) FROM kv_entries"),
        0
    );
}

#[tokio::test]
async fn ordinary_writes_reclaim_expired_rows_without_purge_expired() {
    let fixture = file_store().await;
    let store = &fixture.store;
    for i in 0..100 {
        store
            .set_with_ttl(&format!("short/{i}"), b"v", 1)
            .await
            .unwrap();
    }
    // Background reclaim leaves rows alone for a second after their deadline.
    sleep_ms(1_100).await;
    let expired = "SELECT count(*) FROM kv_entries WHERE expires_at IS NOT NULL";
    assert_eq!(query_i64(&fixture.path, expired), 100);
    for i in 0..64 {
        store.set(&format!("live/{i}"), b"v").await.unwrap();
    }
    assert_eq!(query_i64(&fixture.path, expired), 0);
    assert_eq!(store.list_keys("").await.unwrap().len(), 64);
}

#[tokio::test]
async fn the_schema_version_is_recorded_and_a_newer_file_is_refused() {
    let fixture = file_store().await;
    assert_eq!(SCHEMA_VERSION, 1);
    assert_eq!(
        query_i64(&fixture.path, "PRAGMA user_version"),
        SCHEMA_VERSION
    );
    drop(fixture.store);
    raw(&fixture.path)
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    match SqliteBackend::open(&fixture.path).await {
        Err(KvError::InvalidConfig(message)) => {
            assert!(message.contains("schema version 2"), "{message}");
            assert!(message.contains("newer"), "{message}");
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

#[tokio::test]
async fn files_are_in_wal_mode() {
    let fixture = file_store().await;
    let mode: String = raw(&fixture.path)
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_a_backend_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "this is not a database, just some text".repeat(100)).unwrap();
    let err = SqliteBackend::open(&path).await.unwrap_err();
    assert!(matches!(err, KvError::Backend(_)), "{err:?}");
}

#[tokio::test]
async fn a_missing_directory_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteBackend::open(dir.path().join("no/such/dir/kv.db"))
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::Backend(_)), "{err:?}");
}

#[tokio::test]
async fn acknowledged_writes_survive_dropping_the_backend_and_reopening() {
    let fixture = file_store().await;
    let clone = fixture.store.clone();
    fixture.store.set("k", b"v").await.unwrap();
    fixture.store.set("gone", b"v").await.unwrap();
    clone
        .set_with_ttl("ttl", b"v", 3_600_000_000_000)
        .await
        .unwrap();
    clone.increment("n", 41).await.unwrap();
    clone.increment("n", 1).await.unwrap();
    assert!(clone.delete("gone").await.unwrap());
    assert!(clone.compare_and_swap("cas", None, b"won").await.unwrap());
    drop(clone);
    drop(fixture.store);

    let reopened = SqliteBackend::open(&fixture.path).await.unwrap();
    assert_eq!(reopened.get("k").await.unwrap(), Some(b"v".to_vec()));
    assert_eq!(reopened.get("ttl").await.unwrap(), Some(b"v".to_vec()));
    assert_eq!(reopened.get("n").await.unwrap(), Some(b"42".to_vec()));
    assert_eq!(reopened.get("cas").await.unwrap(), Some(b"won".to_vec()));
    assert_eq!(
        reopened.list_keys("").await.unwrap(),
        ["cas", "k", "n", "ttl"]
    );
}

#[tokio::test]
async fn two_namespaces_in_one_file_never_see_each_others_keys() {
    let fixture = file_store().await;
    let open = |namespace: &str| {
        SqliteBackendBuilder::file(&fixture.path)
            .namespace(namespace)
            .build()
    };
    let (a, a_b, default) = (
        open("a").await.unwrap(),
        open("a/b").await.unwrap(),
        &fixture.store,
    );
    a.set("b/c", b"in a").await.unwrap();
    a_b.set("c", b"in a/b").await.unwrap();
    default.set("a/b/c", b"in default").await.unwrap();
    a.increment("n", 1).await.unwrap();
    a_b.increment("n", 10).await.unwrap();

    assert_eq!(a.list_keys("").await.unwrap(), ["b/c", "n"]);
    assert_eq!(a_b.list_keys("").await.unwrap(), ["c", "n"]);
    assert_eq!(default.list_keys("").await.unwrap(), ["a/b/c"]);
    assert_eq!(a.get("n").await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(a_b.get("n").await.unwrap(), Some(b"10".to_vec()));
    assert_eq!(a.get("c").await.unwrap(), None);
    assert!(!a
        .compare_and_swap("c", Some(b"in a/b"), b"x")
        .await
        .unwrap());
    assert!(!a_b.delete("b/c").await.unwrap());
    assert!(a.delete("b/c").await.unwrap());
    assert_eq!(a_b.get("c").await.unwrap(), Some(b"in a/b".to_vec()));
    assert_eq!(
        query_i64(
            &fixture.path,
            "SELECT count(DISTINCT namespace) FROM kv_entries"
        ),
        3
    );
}

#[tokio::test]
async fn in_memory_stores_are_independent_and_use_one_connection() {
    let first = SqliteBackend::open_in_memory().await.unwrap();
    let second = SqliteBackend::open_in_memory().await.unwrap();
    first.set("k", b"first").await.unwrap();
    assert_eq!(second.get("k").await.unwrap(), None);
    let clone = first.clone();
    assert_eq!(clone.get("k").await.unwrap(), Some(b"first".to_vec()));
    assert_eq!((first.pool_size(), first.path()), (1, None));
    let err = SqliteBackendBuilder::in_memory()
        .pool_size(4)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::InvalidConfig(_)), "{err:?}");
}

#[tokio::test]
async fn urls_open_absolute_relative_and_memory_databases() {
    let dir = tempfile::tempdir().unwrap();
    let absolute = dir.path().join("abs.db");
    assert!(absolute.is_absolute());
    let store = SqliteBackend::from_url(&format!("sqlite://{}?namespace=n1", absolute.display()))
        .await
        .unwrap();
    store.set("k", b"v").await.unwrap();
    assert_eq!(
        (store.namespace(), store.path()),
        ("n1", Some(absolute.as_path()))
    );

    // The same file, reached by a path relative to the working directory.
    let cwd = std::env::current_dir().unwrap();
    let up = "../".repeat(cwd.components().count() - 1);
    let relative = format!(
        "{up}{}",
        absolute.display().to_string().trim_start_matches('/')
    );
    let again = SqliteBackend::from_url(&format!("sqlite://{relative}?namespace=n1&pool_size=2"))
        .await
        .unwrap();
    assert_eq!(again.get("k").await.unwrap(), Some(b"v".to_vec()));
    assert_eq!(again.pool_size(), 2);

    let memory = SqliteBackend::from_url("sqlite::memory:?max_value_bytes=65536")
        .await
        .unwrap();
    assert_eq!(memory.max_value_bytes(), 65536);
    let err = memory.set("k", &[0; 65537]).await.unwrap_err();
    assert!(
        matches!(err, KvError::ValueTooLarge { max: 65536, .. }),
        "{err:?}"
    );

    for bad in [
        "sqlite://kv.db?mode=rw",
        "redis://localhost",
        "sqlite://kv.db?pool_size=0",
    ] {
        let err = SqliteBackend::from_url(bad).await.unwrap_err();
        assert!(matches!(err, KvError::InvalidConfig(_)), "{bad}: {err:?}");
    }
}

#[tokio::test]
async fn builder_settings_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteBackend::builder(dir.path().join("kv.db"))
        .namespace("jobs")
        .pool_size(1)
        .synchronous(Synchronous::Normal)
        .busy_timeout(std::time::Duration::from_millis(100))
        .max_value_bytes(100_000)
        .build()
        .await
        .unwrap();
    assert_eq!(store.namespace(), "jobs");
    assert_eq!(store.pool_size(), 1);
    assert_eq!(store.max_value_bytes(), 100_000);
    store.set("k", &[0; 100_000]).await.unwrap();
    assert!(store.set("k", &[0; 100_001]).await.is_err());
}

#[tokio::test]
async fn debug_shows_where_the_data_lives_and_the_pool() {
    let fixture = file_store().await;
    let shown = format!("{:?}", fixture.store);
    assert!(shown.starts_with("SqliteBackend {"), "{shown}");
    assert!(
        shown.contains(&format!("path: {}", fixture.path.display())),
        "{shown}"
    );
    assert!(shown.contains("namespace: \"\""), "{shown}");
    assert!(shown.contains("pool_size: 4"), "{shown}");
    let memory = format!("{:?}", SqliteBackend::open_in_memory().await.unwrap());
    assert!(
        memory.contains("path: :memory:") && memory.contains("pool_size: 1"),
        "{memory}"
    );
}
