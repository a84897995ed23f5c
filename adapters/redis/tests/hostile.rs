//! Data another program put under the backend's keys, of a type that is not a Redis string (a
//! hash, a list, a set): every operation answers with a clear error or a defined outcome,
//! never a panic, and nothing the backend did not mean to change changes.
//!
//! Every test runs against the standalone server and against the cluster.

// The checks are plain async fns that the generated #[test]s call; like tests, they unwrap.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use kv_redis::namespace_prefix;
use kv_test_services::redis::RedisService;
use kv_trait::{KvBackend, KvError};

use common::{backend, namespace, Admin};

on_standalone_and_cluster!(keys_of_other_types_give_clear_errors_and_change_nothing);

async fn keys_of_other_types_give_clear_errors_and_change_nothing(service: &RedisService) {
    let ns = namespace("hostile");
    let store = backend(service, &ns).await;
    let admin = Admin::connect(service).await;
    let raw = |key: &str| format!("{}{key}", namespace_prefix(&ns));
    let _: () = admin
        .must(redis::cmd("HSET").arg(raw("hash")).arg("field").arg("v"))
        .await;
    let _: () = admin
        .must(redis::cmd("RPUSH").arg(raw("list")).arg("v"))
        .await;
    let _: () = admin
        .must(redis::cmd("SADD").arg(raw("set")).arg("v"))
        .await;

    for key in ["hash", "list", "set"] {
        let read = store.get(key).await;
        assert!(
            matches!(&read, Err(KvError::Backend(e)) if e.to_string().contains("WRONGTYPE")),
            "get of a {key}: {read:?}"
        );
        let bumped = store.increment(key, 1).await;
        assert!(
            matches!(&bumped, Err(KvError::Backend(e)) if e.to_string().contains("WRONGTYPE")),
            "increment of a {key}: {bumped:?}"
        );
        let swapped = store.compare_and_swap(key, Some(b"v"), b"new").await;
        assert!(
            matches!(&swapped, Err(KvError::Backend(_)) | Ok(false)),
            "compare_and_swap of a {key}: {swapped:?}"
        );
        // The key exists: `SET NX` does not take it over.
        assert!(!store.compare_and_swap(key, None, b"new").await.unwrap());
        assert!(store.exists(key).await.unwrap(), "{key}");
        let kind: String = admin.must(redis::cmd("TYPE").arg(raw(key))).await;
        assert_eq!(kind, key, "the {key} is untouched");
    }
    // MGET answers nil for a key that is not a string, so get_many reads such keys as absent
    // (where get says WRONGTYPE); the README says so.
    let many = store.get_many(&["hash", "list"]).await.unwrap();
    assert_eq!(many, [None, None]);
    assert_eq!(store.list_keys("").await.unwrap(), ["hash", "list", "set"]);
    // The writes the contract defines replace whatever is there, and delete removes it.
    store.set("hash", b"now a string").await.unwrap();
    assert_eq!(
        store.get("hash").await.unwrap(),
        Some(b"now a string".to_vec())
    );
    assert!(store.delete("list").await.unwrap());
    assert_eq!(store.delete_many(&["hash", "set"]).await.unwrap(), 2);
    assert!(store.list_keys("").await.unwrap().is_empty());
}
