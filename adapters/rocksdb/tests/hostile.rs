//! Values another program put in the database that are not in kv-rocksdb's format (too short
//! for the header, another format tag): every operation that reads them answers with a clear
//! `Backend` error, never a panic; compaction keeps them; a kvkit write replaces them.

use kv_rocksdb::RocksDbBackend;
use kv_trait::{KvBackend, KvError};

fn is_backend<T: std::fmt::Debug>(result: &Result<T, KvError>) -> bool {
    matches!(result, Err(KvError::Backend(e)) if e.to_string().contains("not in kv-rocksdb format"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_not_in_the_format_give_backend_errors_and_change_nothing() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("rocks");
    // Made by the adapter (it refuses a database it did not create), then written to by hand.
    drop(RocksDbBackend::open(&path).await.expect("create"));
    {
        let raw = rocksdb::DB::open_default(&path).expect("a plain handle");
        // Keys of the empty namespace: `\0` then the key.
        raw.put(b"\0short", b"\x01\x00").unwrap();
        raw.put(b"\0other", b"\x02\x00\x00\x00\x00\x00\x00\x00\x00v")
            .unwrap();
    }
    let store = RocksDbBackend::open(&path).await.expect("reopen");
    for key in ["short", "other"] {
        let read = store.get(key).await;
        assert!(is_backend(&read), "get of {key}: {read:?}");
        let read = store.exists(key).await;
        assert!(is_backend(&read), "exists of {key}: {read:?}");
        let bumped = store.increment(key, 1).await;
        assert!(is_backend(&bumped), "increment of {key}: {bumped:?}");
        let swapped = store.compare_and_swap(key, None, b"new").await;
        assert!(
            is_backend(&swapped),
            "compare_and_swap of {key}: {swapped:?}"
        );
        let deleted = store.delete(key).await;
        assert!(is_backend(&deleted), "delete of {key}: {deleted:?}");
        let many = store.get_many(&[key]).await;
        assert!(is_backend(&many), "get_many of {key}: {many:?}");
    }
    let listed = store.list_keys("").await;
    assert!(is_backend(&listed), "list_keys: {listed:?}");
    // The compaction filter reads every value's deadline: it must leave these alone.
    store.compact().await.expect("compact");
    assert_eq!(store.stored_entries().await.unwrap(), 2);
    // A kvkit write replaces such a value.
    store.set("short", b"mine").await.unwrap();
    assert_eq!(store.get("short").await.unwrap(), Some(b"mine".to_vec()));
    store.set("other", b"1").await.unwrap();
    assert_eq!(store.increment("other", 1).await.unwrap(), 2);
    assert_eq!(store.list_keys("").await.unwrap(), ["other", "short"]);
}
