//! The README's list of differences between `KvStore`'s local map and a kvkit backend, each
//! shown on both: the same calls on a store without a backend and on one with kvkit's memory
//! backend (every kvkit store keeps the same contract; `kv_store.rs` drives them all).

use std::time::Duration;

use kv_zlayer::ZlayerBackend;
use zlayer_agent::kv::{KvError as ZlayerError, KvStore};

fn kvkit_store() -> KvStore {
    ZlayerBackend::new(kv_memory::MemoryBackend::new()).into_store()
}

fn storage_error<T: std::fmt::Debug>(result: Result<T, ZlayerError>, says: &str) {
    match result {
        Err(ZlayerError::Storage(message)) => assert!(message.contains(says), "{message}"),
        other => panic!("expected Storage(..{says}..), got {other:?}"),
    }
}

/// 1 and 2: only `*_async` reaches the backend, and watchers see none of its writes.
#[tokio::test]
async fn only_async_calls_reach_the_backend_and_watchers_see_none() {
    let host = kvkit_store();
    let mut events = host.subscribe();
    host.set_async("k", b"backend").await.unwrap();
    assert_eq!(
        host.get("k").unwrap(),
        None,
        "the local map has no such key"
    );
    host.set("k", b"local").unwrap();
    assert_eq!(
        host.get_async("k").await.unwrap(),
        Some(b"backend".to_vec())
    );
    // The one event is the local write's.
    let event = events.try_recv().unwrap();
    assert_eq!(event.value, Some(b"local".to_vec()));
    assert!(events.try_recv().is_err());
}

/// 3 and 4: which keys each accepts, and `exists` on an invalid key.
#[tokio::test]
async fn keys() {
    let (local, kvkit) = (KvStore::new(), kvkit_store());
    for key in ["a b", "user#1", "50%", "*", "tab\tkey", "nul\0"] {
        assert_eq!(
            local.set_async(key, b"v").await,
            Err(ZlayerError::InvalidKey),
            "{key:?}"
        );
        kvkit.set_async(key, b"v").await.unwrap();
        assert_eq!(
            kvkit.get_async(key).await.unwrap(),
            Some(b"v".to_vec()),
            "{key:?}"
        );
    }
    // Letters of any alphabet pass the local rule too.
    local.set_async("ключ/μ", b"v").await.unwrap();
    kvkit.set_async("ключ/μ", b"v").await.unwrap();
    assert!(!local.exists_async("").await.unwrap());
    assert_eq!(kvkit.exists_async("").await, Err(ZlayerError::InvalidKey));
}

/// 5: kvkit lists in byte order; the local map in `HashMap` order (not asserted: any order,
/// sorted by chance included, is what it promises).
#[tokio::test]
async fn listing_is_sorted() {
    let (local, kvkit) = (KvStore::new(), kvkit_store());
    let keys: Vec<String> = (0..200).rev().map(|n| format!("p/{n:03}")).collect();
    for key in &keys {
        local.set_async(key, b"").await.unwrap();
        kvkit.set_async(key, b"").await.unwrap();
    }
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(kvkit.list_keys_async("p/").await.unwrap(), sorted);
    let mut listed = local.list_keys_async("p/").await.unwrap();
    listed.sort();
    assert_eq!(listed, sorted);
}

/// 6 and 7: the store's own value limit and key quota do not apply to a backend.
#[tokio::test]
async fn value_limit_and_quota_are_the_backends() {
    let local = KvStore::new().with_max_value_size(4).with_max_keys(1);
    let kvkit = kvkit_store().with_max_value_size(4).with_max_keys(1);
    assert_eq!(
        local.set_async("a", b"12345").await,
        Err(ZlayerError::ValueTooLarge)
    );
    kvkit.set_async("a", b"12345").await.unwrap();
    local.set_async("a", b"1").await.unwrap();
    assert_eq!(
        local.set_async("b", b"1").await,
        Err(ZlayerError::QuotaExceeded)
    );
    kvkit.set_async("b", b"1").await.unwrap();
    // The backend's own limit: 1 MiB for kvkit's memory backend.
    assert_eq!(
        kvkit.set_async("c", &vec![0; 1024 * 1024 + 1]).await,
        Err(ZlayerError::ValueTooLarge)
    );
}

/// 8 and 9: a zero TTL, and the longest one.
#[tokio::test]
async fn zero_and_huge_ttls() {
    let (local, kvkit) = (KvStore::new(), kvkit_store());
    for host in [&local, &kvkit] {
        host.set_async("k", b"before").await.unwrap();
    }
    local.set_with_ttl_async("k", b"after", 0).await.unwrap();
    assert_eq!(
        local.get_async("k").await.unwrap(),
        None,
        "stored already expired"
    );
    storage_error(
        kvkit.set_with_ttl_async("k", b"after", 0).await,
        "invalid TTL",
    );
    assert_eq!(
        kvkit.get_async("k").await.unwrap(),
        Some(b"before".to_vec())
    );

    kvkit
        .set_with_ttl_async("k", b"forever", u64::MAX)
        .await
        .unwrap();
    assert_eq!(
        kvkit.get_async("k").await.unwrap(),
        Some(b"forever".to_vec())
    );
    // The local map adds u64::MAX ns (about 584 years) to an `Instant`: whether that panics
    // depends on the platform's `Instant`, so it is only reported here.
    let local_huge = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        local.set_with_ttl("huge", b"v", u64::MAX)
    }));
    println!(
        "the local map with a TTL of u64::MAX ns: {}",
        if local_huge.is_err() {
            "panicked"
        } else {
            "stored it"
        }
    );
}

/// 11, 12 and 13: counters.
#[tokio::test]
async fn counters() {
    let (local, kvkit) = (KvStore::new(), kvkit_store());
    for text in ["+5", "007", "-0"] {
        local.set_async("n", text.as_bytes()).await.unwrap();
        let parsed: i64 = text.parse().unwrap();
        assert_eq!(
            local.increment_async("n", 1).await.unwrap(),
            parsed + 1,
            "{text}"
        );
        kvkit.set_async("n", text.as_bytes()).await.unwrap();
        storage_error(kvkit.increment_async("n", 1).await, "canonical");
        assert_eq!(
            kvkit.get_async("n").await.unwrap(),
            Some(text.as_bytes().to_vec())
        );
    }

    let max = i64::MAX.to_string();
    local.set_async("max", max.as_bytes()).await.unwrap();
    assert_eq!(
        local.increment_async("max", 1).await.unwrap(),
        i64::MAX,
        "saturates"
    );
    kvkit.set_async("max", max.as_bytes()).await.unwrap();
    storage_error(kvkit.increment_async("max", 1).await, "overflow");
    assert_eq!(
        kvkit.get_async("max").await.unwrap(),
        Some(max.into_bytes())
    );

    // A counter with a TTL: the local map drops it on increment, kvkit keeps it.
    let ttl = Duration::from_millis(300);
    for host in [&local, &kvkit] {
        host.set_with_ttl_async("brief", b"1", ttl.as_nanos() as u64)
            .await
            .unwrap();
        assert_eq!(host.increment_async("brief", 1).await.unwrap(), 2);
    }
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert_eq!(local.get_async("brief").await.unwrap(), Some(b"2".to_vec()));
    assert_eq!(kvkit.get_async("brief").await.unwrap(), None);
}

/// 14: deleting a key whose TTL has passed.
#[tokio::test]
async fn delete_of_an_expired_key() {
    let (local, kvkit) = (KvStore::new(), kvkit_store());
    for host in [&local, &kvkit] {
        host.set_with_ttl_async("k", b"v", 1_000_000).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        local.delete_async("k").await.unwrap(),
        "removed an expired entry"
    );
    assert!(!kvkit.delete_async("k").await.unwrap());
}
