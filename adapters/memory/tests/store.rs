//! Behaviour of `MemoryBackend` beyond the shared suite: namespaces, sharing between clones,
//! reclaiming expired entries, configuration limits.

use std::time::Duration;

use kv_memory::MemoryBackend;
use kv_trait::{KvBackend, KvError};

#[tokio::test]
async fn clones_share_one_store() {
    let store = MemoryBackend::new();
    let clone = store.clone();
    clone.set("k", b"v").await.unwrap();
    assert_eq!(store.get("k").await.unwrap(), Some(b"v".to_vec()));
}

#[tokio::test]
async fn namespaces_are_isolated_and_shared_by_name() {
    let store = MemoryBackend::new();
    let a = store.namespace("a");
    a.set("k", b"1").await.unwrap();
    assert_eq!(store.get("k").await.unwrap(), None);
    assert_eq!(
        store.namespace("b").list_keys("").await.unwrap(),
        Vec::<String>::new()
    );
    // A handle made later, from another clone, sees the same namespace.
    assert_eq!(
        store.clone().namespace("a").get("k").await.unwrap(),
        Some(b"1".to_vec())
    );
    assert_eq!(a.namespace_name(), "a");
    assert_eq!(a.namespace("").namespace_name(), "");
}

#[tokio::test]
async fn expired_entries_are_reclaimed_not_only_hidden() {
    let store = MemoryBackend::builder().shards(4).build().unwrap();
    for i in 0..1000 {
        store
            .set_with_ttl(&format!("short-{i}"), b"v", 500_000_000)
            .await
            .unwrap();
    }
    store.set("keep", b"v").await.unwrap();
    assert_eq!(store.purge_expired(), 1001);
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert_eq!(store.purge_expired(), 1);
}

#[tokio::test]
async fn touching_a_shard_reclaims_its_expired_entries() {
    let store = MemoryBackend::builder().shards(1).build().unwrap();
    for i in 0..100 {
        store
            .set_with_ttl(&format!("short-{i}"), b"v", 1_000_000)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    // One read of an unrelated key drops all 100 (there is one shard).
    assert_eq!(store.get("other").await.unwrap(), None);
    store.set("probe", b"v").await.unwrap();
    assert_eq!(store.purge_expired(), 1);
}

#[test]
fn limits_below_the_contract_are_refused() {
    let err = MemoryBackend::builder()
        .max_value_bytes(1024)
        .build()
        .unwrap_err();
    assert!(matches!(err, KvError::InvalidConfig(_)), "{err}");
    assert!(matches!(
        MemoryBackend::builder().shards(0).build(),
        Err(KvError::InvalidConfig(_))
    ));
}

#[tokio::test]
async fn a_custom_maximum_is_enforced() {
    let store = MemoryBackend::builder()
        .max_value_bytes(65_536)
        .build()
        .unwrap();
    store.set("k", &[0; 65_536]).await.unwrap();
    let err = store.set("k", &[0; 65_537]).await.unwrap_err();
    assert!(
        matches!(
            err,
            KvError::ValueTooLarge {
                size: 65_537,
                max: 65_536
            }
        ),
        "{err}"
    );
}
