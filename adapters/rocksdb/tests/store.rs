//! RocksDB-specific behaviour: durability across reopen, one process per path, sharing within
//! a process, compaction dropping expired entries, the stored layout and its version.

// The watch tests, in this binary rather than one of their own (one link less in CI).
mod watch;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use kv_rocksdb::{RocksDbBackend, RocksDbBackendBuilder, FORMAT_VERSION};
use kv_trait::{KvBackend, KvError};

/// Set in the child process of `a_second_process_is_refused_with_a_clear_error`.
const CHILD_ENV: &str = "KV_ROCKSDB_CHILD_DB";

#[tokio::test]
async fn acknowledged_writes_survive_closing_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = RocksDbBackend::open(&path).await.unwrap();
        store.set("k", b"v").await.unwrap();
        assert_eq!(store.increment("n", 41).await.unwrap(), 41);
        store
            .set_with_ttl("t", b"x", 3_600_000_000_000)
            .await
            .unwrap();
    } // the last handle closes the database
    let store = RocksDbBackend::open(&path).await.unwrap();
    assert_eq!(store.get("k").await.unwrap(), Some(b"v".to_vec()));
    assert_eq!(store.increment("n", 1).await.unwrap(), 42);
    assert!(store.exists("t").await.unwrap());
}

#[tokio::test]
async fn opens_of_one_path_in_a_process_share_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "rocksdb://{}?namespace=app",
        dir.path().join("db").display()
    );
    let a = RocksDbBackend::from_url(&url).await.unwrap();
    let b = RocksDbBackend::from_url(&url).await.unwrap();
    a.set("k", b"v").await.unwrap();
    assert_eq!(b.get("k").await.unwrap(), Some(b"v".to_vec()));
    let other = RocksDbBackend::builder(dir.path().join("db"))
        .namespace("other")
        .build()
        .await
        .unwrap();
    assert_eq!(other.get("k").await.unwrap(), None);
    assert_eq!(other.list_keys("").await.unwrap(), Vec::<String>::new());
    assert_eq!(a.path(), other.path());
}

#[tokio::test]
async fn namespaces_whose_names_nest_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    let a = RocksDbBackend::builder(dir.path())
        .namespace("a")
        .build()
        .await
        .unwrap();
    let ab = RocksDbBackend::builder(dir.path())
        .namespace("a:b")
        .build()
        .await
        .unwrap();
    a.set("b:x", b"1").await.unwrap();
    ab.set("x", b"2").await.unwrap();
    assert_eq!(a.list_keys("").await.unwrap(), ["b:x"]);
    assert_eq!(ab.list_keys("").await.unwrap(), ["x"]);
    let err = RocksDbBackend::builder(dir.path())
        .namespace("a\0b")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::InvalidConfig(_)), "{err}");
}

#[tokio::test]
async fn compaction_drops_expired_entries_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksDbBackend::open(dir.path()).await.unwrap();
    for i in 0..500 {
        store
            .set_with_ttl(&format!("short-{i}"), b"v", 1_000_000)
            .await
            .unwrap();
    }
    store.set("keep", b"v").await.unwrap();
    assert_eq!(store.stored_entries().await.unwrap(), 501);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        store.list_keys("").await.unwrap(),
        ["keep"],
        "expired keys are hidden at once"
    );
    store.compact().await.unwrap();
    assert_eq!(
        store.stored_entries().await.unwrap(),
        1,
        "compaction removed the expired entries"
    );
    assert_eq!(store.get("keep").await.unwrap(), Some(b"v".to_vec()));
}

#[tokio::test]
async fn expired_entries_are_hidden_before_compaction_and_deleted_as_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksDbBackend::open(dir.path()).await.unwrap();
    store.set_with_ttl("k", b"v", 1_000_000).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(store.stored_entries().await.unwrap(), 1);
    assert!(
        !store.delete("k").await.unwrap(),
        "an expired key is not live"
    );
    assert_eq!(
        store.stored_entries().await.unwrap(),
        0,
        "but its leftover is removed"
    );
}

#[tokio::test]
async fn the_stored_layout_is_the_documented_one() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RocksDbBackend::builder(dir.path())
            .namespace("app")
            .build()
            .await
            .unwrap();
        store.set("user:1", b"alice").await.unwrap();
        assert_eq!(store.increment("n", 7).await.unwrap(), 7);
    }
    let raw = rocksdb::DB::open_default(dir.path()).unwrap();
    assert_eq!(
        raw.get(b"kvkit-rocksdb-format").unwrap(),
        Some(vec![FORMAT_VERSION])
    );
    let stored = raw.get(b"app\0user:1").unwrap().unwrap();
    assert_eq!(stored[0], FORMAT_VERSION);
    assert_eq!(&stored[1..9], &[0; 8], "no deadline");
    assert_eq!(&stored[9..], b"alice");
    assert_eq!(&raw.get(b"app\0n").unwrap().unwrap()[9..], b"7");
}

#[tokio::test]
async fn a_newer_format_or_a_foreign_database_is_refused() {
    let newer = tempfile::tempdir().unwrap();
    {
        let raw = rocksdb::DB::open_default(newer.path()).unwrap();
        raw.put(b"kvkit-rocksdb-format", [FORMAT_VERSION + 1])
            .unwrap();
    }
    let err = RocksDbBackend::open(newer.path()).await.unwrap_err();
    assert!(
        matches!(err, KvError::InvalidConfig(_)) && err.to_string().contains("format"),
        "{err}"
    );

    let foreign = tempfile::tempdir().unwrap();
    {
        let raw = rocksdb::DB::open_default(foreign.path()).unwrap();
        raw.put(b"someone else's", b"data").unwrap();
    }
    let err = RocksDbBackend::open(foreign.path()).await.unwrap_err();
    assert!(err.to_string().contains("did not create"), "{err}");
}

#[tokio::test]
async fn a_missing_database_is_an_error_when_creation_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let err = RocksDbBackendBuilder::new(dir.path().join("absent"))
        .create_if_missing(false)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::Backend(_)), "{err}");
}

/// Child side of the lock test: holds the database open until its stdin closes.
#[test]
fn child_holds_the_database_open() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return; // Only a child entry point; see the test below.
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = runtime.block_on(RocksDbBackend::open(&path)).unwrap();
    println!("ready");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(store);
}

#[tokio::test]
async fn a_second_process_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holds_the_database_open",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_ready(child.stdout.take().unwrap());
    let err = RocksDbBackend::open(dir.path()).await.unwrap_err();
    drop(child.stdin.take()); // lets the child close and exit
    assert!(child.wait().unwrap().success());
    assert!(matches!(err, KvError::Backend(_)), "{err}");
    assert!(
        err.to_string().contains("locked by another process"),
        "{err}"
    );
    // Once the other process is gone, the path opens.
    RocksDbBackend::open(dir.path()).await.unwrap();
}

/// Reads the child's output until it says it holds the database, then keeps draining it on a
/// thread (a closed pipe would make the child's test harness fail when it reports).
fn wait_for_ready(stdout: impl std::io::Read + Send + 'static) {
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let ready = lines
        .by_ref()
        .any(|line| line.is_ok_and(|line| line.contains("ready")));
    assert!(ready, "the child exited before opening the database");
    std::thread::spawn(move || lines.for_each(drop));
}

#[tokio::test]
async fn debug_names_path_and_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksDbBackend::builder(dir.path())
        .namespace("jobs")
        .build()
        .await
        .unwrap();
    let shown = format!("{store:?}");
    assert!(
        shown.contains("jobs") && shown.contains("RocksDbBackend"),
        "{shown}"
    );
    let _: &Path = store.path();
}
