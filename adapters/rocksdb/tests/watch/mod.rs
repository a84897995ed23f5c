//! `watch` on RocksDB beyond the kit's check: every handle of this process on one database
//! shares its namespace's feed (a watcher on one handle sees the writes of another, and never
//! those of another namespace), deleting an expired leftover is `Expired`, the native batches
//! publish per key in the caller's order, and the stream ends when the database closes.

use std::time::Duration;

use futures::StreamExt;
use kv_rocksdb::{RocksDbBackend, RocksDbBackendBuilder};
use kv_trait::{KvBackend, WatchEvent, WatchScope, WatchStream};

/// The next event, within a few seconds.
async fn next(events: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream goes on")
}

fn set(key: &str, value: &[u8]) -> WatchEvent {
    WatchEvent::Set {
        key: key.into(),
        value: value.to_vec(),
    }
}

fn deleted(key: &str) -> WatchEvent {
    WatchEvent::Deleted { key: key.into() }
}

async fn open(path: &std::path::Path, namespace: &str) -> RocksDbBackend {
    RocksDbBackendBuilder::new(path)
        .namespace(namespace)
        .build()
        .await
        .expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_on_one_database_share_their_namespace_feed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    // Two separate opens of the same path and namespace (not clones), and one of another
    // namespace on the same database.
    let a = open(&path, "app").await;
    let b = RocksDbBackend::from_url(&format!("rocksdb://{}?namespace=app", path.display()))
        .await
        .unwrap();
    let other = open(&path, "other").await;
    assert_eq!(a.capabilities().watch, WatchScope::Process);

    let mut on_a = a.watch("jobs/").await.unwrap();
    let mut on_other = other.watch("jobs/").await.unwrap();
    b.set("jobs/1", b"queued").await.unwrap();
    assert_eq!(b.increment("jobs/n", 2).await.unwrap(), 2);
    assert!(b.delete("jobs/1").await.unwrap());
    other.set("jobs/1", b"elsewhere").await.unwrap();

    assert_eq!(next(&mut on_a).await, set("jobs/1", b"queued"));
    assert_eq!(next(&mut on_a).await, set("jobs/n", b"2"));
    assert_eq!(next(&mut on_a).await, deleted("jobs/1"));
    // The other namespace's watcher saw none of `app`'s writes: its first event is its own.
    assert_eq!(next(&mut on_other).await, set("jobs/1", b"elsewhere"));
    // Nor does `app`'s watcher see the other namespace's write.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), on_a.next())
            .await
            .is_err(),
        "a watcher saw a write of another namespace"
    );

    // A handle opened after the watch began shares the same feed.
    let c = open(&path, "app").await;
    c.set("jobs/2", b"late").await.unwrap();
    assert_eq!(next(&mut on_a).await, set("jobs/2", b"late"));

    // The streams end when the database closes: every handle on the path dropped.
    drop((a, b, c, other));
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), on_a.next())
            .await
            .expect("the stream ends"),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_publish_per_key_in_order_and_expired_leftovers_as_expired() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksDbBackend::open(dir.path().join("db")).await.unwrap();
    store.set("before", b"not seen").await.unwrap();
    let mut events = store.watch("").await.unwrap();

    store
        .set_many(&[("b", b"1"), ("a", b"2"), ("b", b"3")], None)
        .await
        .unwrap();
    assert_eq!(next(&mut events).await, set("b", b"1"));
    assert_eq!(next(&mut events).await, set("a", b"2"));
    assert_eq!(next(&mut events).await, set("b", b"3"));

    // Live keys only, each once, in the caller's order.
    assert_eq!(
        store.delete_many(&["b", "none", "a", "b"]).await.unwrap(),
        2
    );
    assert_eq!(next(&mut events).await, deleted("b"));
    assert_eq!(next(&mut events).await, deleted("a"));

    // A failed swap and a delete of nothing are no change.
    assert!(!store.compare_and_swap("a", Some(b"x"), b"y").await.unwrap());
    assert!(!store.delete("a").await.unwrap());
    assert!(store.compare_and_swap("a", None, b"y").await.unwrap());
    assert_eq!(next(&mut events).await, set("a", b"y"));

    // Expiry itself is silent; deleting the leftover it left says the key had expired.
    store.set_with_ttl("brief", b"v", 1_000_000).await.unwrap();
    store.set_with_ttl("brief2", b"v", 1_000_000).await.unwrap();
    assert_eq!(next(&mut events).await, set("brief", b"v"));
    assert_eq!(next(&mut events).await, set("brief2", b"v"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.get("brief").await.unwrap(), None);
    assert!(!store.delete("brief").await.unwrap());
    assert_eq!(
        next(&mut events).await,
        WatchEvent::Expired {
            key: "brief".into()
        }
    );
    assert_eq!(store.delete_many(&["brief2"]).await.unwrap(), 0);
    assert_eq!(
        next(&mut events).await,
        WatchEvent::Expired {
            key: "brief2".into()
        }
    );
    // Its entry is gone now: deleting again is nothing.
    assert!(!store.delete("brief").await.unwrap());
    store.set("last", b"v").await.unwrap();
    assert_eq!(next(&mut events).await, set("last", b"v"));
}
