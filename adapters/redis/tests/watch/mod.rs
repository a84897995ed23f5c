//! `watch` on Redis (`watch=true`) beyond the kit's check: values of any bytes and size arrive
//! exactly, namespaces and databases stay apart, only announcing writers are seen (a pinned
//! limitation), expirations are reported where the server notifies them, a dropped
//! subscription says `Lagged` and subscribes again, a consumer that falls behind gets
//! `Lagged` instead of unbounded buffering, and without `watch=true` watch is unsupported.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use kv_redis::RedisBackend;
use kv_test_services::redis::RedisService;
use kv_trait::{KvBackend, KvError, WatchEvent, WatchScope, WatchStream};

use super::common::{backend, builder, namespace, Admin};

/// Held by each test here that subscribes: the dropped-subscription test finds its watcher's
/// connection as the one pub/sub client that appeared on the server, so no other watcher of
/// this test binary may come or go meanwhile. (Test binaries run one after another.)
static ONE_WATCHING_TEST: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

on_standalone_and_cluster!(
    values_of_any_bytes_and_size_arrive_exactly,
    only_announcing_writers_of_the_namespace_are_seen,
    a_dropped_subscription_says_lagged_and_subscribes_again,
    without_watch_true_watch_is_unsupported,
);

/// The standalone server only: a cluster sends expirations to each node's own subscribers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expirations_are_reported_where_the_server_notifies_them() {
    if let Some(service) = kv_test_services::redis::standalone() {
        expirations_on(service).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_falls_behind_gets_lagged() {
    if let Some(service) = kv_test_services::redis::standalone() {
        falling_behind_on(service).await;
    }
}

async fn watched(service: &RedisService, ns: &str) -> RedisBackend {
    builder(service, ns)
        .watch(true)
        .build()
        .await
        .expect("connect")
}

async fn next(events: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream goes on")
}

/// No event within `wait`.
async fn quiet(events: &mut WatchStream, wait: Duration) {
    if let Ok(event) = tokio::time::timeout(wait, events.next()).await {
        panic!("expected no event, got {event:?}");
    }
}

fn set(key: &str, value: &[u8]) -> WatchEvent {
    WatchEvent::Set {
        key: key.to_owned(),
        value: value.to_vec(),
    }
}

async fn values_of_any_bytes_and_size_arrive_exactly(service: &RedisService) {
    let _alone = ONE_WATCHING_TEST.lock().await;
    // A namespace with the characters the key prefix escapes, and keys with `:` and digits,
    // which the announcement's length prefix must not be fooled by.
    let ns = format!("{}a:b\\c", namespace("watch-bytes"));
    let store = watched(service, &ns).await;
    assert_eq!(store.capabilities().watch, WatchScope::Announcing);
    let mut events = store.watch("k").await.unwrap();
    let every_byte: Vec<u8> = (0..=255).collect();
    let large = vec![0x5a; 1024 * 1024];
    store.set("k:12:", &every_byte).await.unwrap();
    store.set("k1:2", b"").await.unwrap();
    store.set("k\u{e9}\u{1f600}", &large).await.unwrap();
    assert_eq!(next(&mut events).await, set("k:12:", &every_byte));
    assert_eq!(next(&mut events).await, set("k1:2", b""));
    assert_eq!(next(&mut events).await, set("k\u{e9}\u{1f600}", &large));
    // Counters announce the stored count, exact beyond 2^53.
    store.set("k/n", b"9007199254740993").await.unwrap();
    assert_eq!(
        store.increment("k/n", 2).await.unwrap(),
        9_007_199_254_740_995
    );
    assert_eq!(next(&mut events).await, set("k/n", b"9007199254740993"));
    assert_eq!(next(&mut events).await, set("k/n", b"9007199254740995"));
    // A refused increment changes nothing and announces nothing.
    store.set("k/text", b"x").await.unwrap();
    assert_eq!(next(&mut events).await, set("k/text", b"x"));
    assert!(matches!(
        store.increment("k/text", 1).await,
        Err(KvError::NotAnInteger)
    ));
    quiet(&mut events, Duration::from_millis(200)).await;
}

async fn only_announcing_writers_of_the_namespace_are_seen(service: &RedisService) {
    let _alone = ONE_WATCHING_TEST.lock().await;
    let ns = namespace("watch-who");
    let store = watched(service, &ns).await;
    let mut events = store.watch("").await.unwrap();

    // Seen: another backend of the namespace opened with watch=true.
    let other = watched(service, &ns).await;
    other.set("theirs", b"1").await.unwrap();
    assert_eq!(next(&mut events).await, set("theirs", b"1"));

    // Not seen, by design (the crate docs say so): a writer of the namespace without
    // watch=true, and a plain Redis client.
    backend(service, &ns)
        .await
        .set("quiet", b"unannounced")
        .await
        .unwrap();
    let admin = Admin::connect(service).await;
    let () = admin
        .must(redis::cmd("SET").arg(store.redis_key("raw")).arg("x"))
        .await;
    // Not seen either: the same keys in another namespace.
    watched(service, &format!("{ns}x"))
        .await
        .set("theirs", b"elsewhere")
        .await
        .unwrap();
    // Yet all of it is there to read.
    assert_eq!(
        store.get("quiet").await.unwrap(),
        Some(b"unannounced".to_vec())
    );
    assert_eq!(store.get("raw").await.unwrap(), Some(b"x".to_vec()));

    // The next announced write is the next event: nothing came in between.
    store.delete("theirs").await.unwrap();
    assert_eq!(
        next(&mut events).await,
        WatchEvent::Deleted {
            key: "theirs".into()
        }
    );
    if service.cluster {
        return;
    }
    // Another database with the same namespace (pub/sub itself ignores databases).
    let mut url = url::Url::parse(&service.url).unwrap();
    url.set_path("/1");
    let elsewhere = RedisBackend::builder(url.as_str())
        .unwrap()
        .namespace(&ns)
        .watch(true)
        .build()
        .await
        .unwrap();
    elsewhere.set("theirs", b"database 1").await.unwrap();
    elsewhere.delete("theirs").await.unwrap();
    quiet(&mut events, Duration::from_millis(200)).await;
}

/// The ids of the pub/sub clients on each node, by node.
async fn subscribers(admin: &Admin) -> Vec<BTreeSet<String>> {
    let lists: Vec<String> = admin
        .on_every_node(redis::cmd("CLIENT").arg("LIST").arg("TYPE").arg("pubsub"))
        .await;
    lists
        .iter()
        .map(|list| {
            list.lines()
                .filter_map(|line| line.split(' ').find_map(|field| field.strip_prefix("id=")))
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

async fn a_dropped_subscription_says_lagged_and_subscribes_again(service: &RedisService) {
    let _alone = ONE_WATCHING_TEST.lock().await;
    let ns = namespace("watch-drop");
    let store = watched(service, &ns).await;
    let admin = Admin::connect(service).await;
    let before = subscribers(&admin).await;
    let mut events = store.watch("").await.unwrap();
    let after = subscribers(&admin).await;
    // Kill the watcher's own connection: the client ids that appeared with it.
    let mut killed = 0;
    for (node, (before, after)) in service.nodes.iter().zip(before.iter().zip(&after)) {
        for id in after.difference(before) {
            let _: redis::Value = admin
                .on_node(node, redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id))
                .await;
            killed += 1;
        }
    }
    assert_eq!(killed, 1, "the watcher subscribed on one connection");
    assert_eq!(next(&mut events).await, WatchEvent::Lagged);
    // Subscribing again takes a moment; write until the watcher hears it.
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            store.set("after", b"again").await.unwrap();
            if let Ok(Some(event)) =
                tokio::time::timeout(Duration::from_millis(300), events.next()).await
            {
                return event;
            }
        }
    })
    .await
    .expect("the watcher subscribes again");
    assert_eq!(heard, set("after", b"again"));
    // Dropping the stream ends its subscription.
    drop(events);
    let gone = tokio::time::timeout(Duration::from_secs(5), async {
        while subscribers(&admin).await != before {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "a dropped watcher closes its connection");
}

async fn without_watch_true_watch_is_unsupported(service: &RedisService) {
    let store = backend(service, &namespace("watch-off")).await;
    assert_eq!(store.capabilities().watch, WatchScope::Unsupported);
    let err = store.watch("").await.err().expect("unsupported");
    assert!(
        matches!(&err, KvError::Unsupported(why) if why.contains("watch=true")),
        "{err}"
    );
}

async fn expirations_on(service: &RedisService) {
    let _alone = ONE_WATCHING_TEST.lock().await;
    let admin = Admin::connect(service).await;
    let setting = redis::cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .clone();
    let answer: std::collections::HashMap<String, String> = admin.must(&setting).await;
    let was = answer["notify-keyspace-events"].clone();
    // Keyevent notifications of expirations, added to whatever the server already sends.
    let with_expirations = format!("{was}Ex");
    let () = admin
        .must(
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("notify-keyspace-events")
                .arg(&with_expirations),
        )
        .await;
    let ns = namespace("watch-expiry");
    let store = watched(service, &ns).await;
    let mut events = store.watch("").await.unwrap();
    store
        .set_with_ttl("brief", b"soon gone", 20_000_000)
        .await
        .unwrap();
    assert_eq!(next(&mut events).await, set("brief", b"soon gone"));
    // Redis expires a key when it is next touched or in its background cycle.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(store.get("brief").await.unwrap(), None);
    assert_eq!(
        next(&mut events).await,
        WatchEvent::Expired {
            key: "brief".into()
        }
    );
    let () = admin
        .must(
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("notify-keyspace-events")
                .arg(&was),
        )
        .await;
}

async fn falling_behind_on(service: &RedisService) {
    let _alone = ONE_WATCHING_TEST.lock().await;
    let ns = namespace("watch-behind");
    let store = watched(service, &ns).await;
    let mut events = store.watch("").await.unwrap();
    // More changes than a watcher holds, written while nobody reads.
    const CHANGES: usize = 6_000;
    const HELD: usize = kv_trait::ChangeFeed::DEFAULT_CAPACITY;
    let keys: Vec<String> = (0..CHANGES).map(|n| format!("k{n:05}")).collect();
    for key in &keys {
        store.set(key, b"v").await.unwrap();
    }
    // Give the last messages time to reach the watcher, which drops what does not fit.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for key in &keys[..HELD] {
        assert_eq!(next(&mut events).await, set(key, b"v"));
    }
    assert_eq!(next(&mut events).await, WatchEvent::Lagged);
    // After it, only writes made since (none): the dropped ones are not delivered late.
    quiet(&mut events, Duration::from_millis(200)).await;
    // Thousands of keys would slow every later listing on the shared server.
    drop(events);
    let names: Vec<&str> = keys.iter().map(String::as_str).collect();
    for chunk in names.chunks(500) {
        store.delete_many(chunk).await.unwrap();
    }
}
