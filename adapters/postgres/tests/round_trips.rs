//! Round trips per operation, measured through a counting TCP proxy in front of the server
//! (one round trip = the client sends, then waits for the server): one per operation once a
//! connection has prepared its statements, and one per page of 1000 keys for `list_keys`.
//!
//! Run with `--nocapture` to see the table.

mod common;

use kv_postgres::PostgresBackend;
use kv_test_services::proxy::CountingProxy;
use kv_trait::KvBackend;

use common::{namespace, server};

/// Round trips made by `op`.
async fn count<T>(proxy: &CountingProxy, op: impl std::future::Future<Output = T>) -> (u64, T) {
    let before = proxy.round_trips();
    let result = op.await;
    (proxy.round_trips() - before, result)
}

#[tokio::test]
async fn every_operation_is_one_round_trip() {
    let Some(server) = server() else {
        return;
    };
    let proxy = CountingProxy::start((server.host.as_str(), server.port)).expect("start the proxy");
    let through_proxy = server.url.replacen(
        &format!("@{}:{}/", server.host, server.port),
        &format!("@127.0.0.1:{}/", proxy.port()),
        1,
    );
    assert_ne!(through_proxy, server.url, "the URL goes through the proxy");
    // One connection, so every statement below finds its statement prepared after the warm-up.
    let store = PostgresBackend::builder(&through_proxy)
        .unwrap()
        .namespace(namespace("round-trips"))
        .pool_size(1)
        .sweep_interval(None)
        .build()
        .await
        .unwrap();

    // Warm-up: each statement is prepared once per connection (one more round trip each).
    store.set("k", b"v").await.unwrap();
    store.set_with_ttl("t", b"v", 60_000_000_000).await.unwrap();
    store.get("k").await.unwrap();
    store.exists("k").await.unwrap();
    store.increment("n", 1).await.unwrap();
    store.compare_and_swap("c", None, b"1").await.unwrap();
    store.compare_and_swap("c", Some(b"1"), b"2").await.unwrap();
    store.list_keys("").await.unwrap();
    store.delete("t").await.unwrap();

    let mut table = Vec::new();
    macro_rules! measure {
        ($name:expr, $op:expr) => {{
            let (trips, result) = count(&proxy, $op).await;
            result.unwrap();
            table.push(($name, trips));
        }};
    }
    measure!("get", store.get("k"));
    measure!("get (absent)", store.get("absent"));
    measure!("exists", store.exists("k"));
    measure!("set", store.set("k", b"w"));
    measure!(
        "set_with_ttl",
        store.set_with_ttl("t", b"v", 60_000_000_000)
    );
    measure!("delete", store.delete("t"));
    measure!("increment", store.increment("n", 5));
    measure!("increment (new)", store.increment("m", 5));
    measure!(
        "compare_and_swap (absent)",
        store.compare_and_swap("d", None, b"1")
    );
    measure!(
        "compare_and_swap (value)",
        store.compare_and_swap("d", Some(b"1"), b"2")
    );
    measure!(
        "compare_and_swap (mismatch)",
        store.compare_and_swap("d", Some(b"x"), b"3")
    );
    measure!("list_keys (6 keys)", store.list_keys(""));
    let (failed, result) = count(&proxy, store.increment("k", 1)).await;
    assert!(result.is_err(), "not a counter");
    table.push(("increment (not a counter)", failed));

    println!("| operation | round trips |\n| --- | ---: |");
    for (name, trips) in &table {
        println!("| {name} | {trips} |");
    }
    for (name, trips) in &table {
        assert_eq!(*trips, 1, "{name}");
    }

    for i in 0..2500 {
        store.set(&format!("many/{i:04}"), b"").await.unwrap();
    }
    let (trips, keys) = count(&proxy, store.list_keys("many/")).await;
    assert_eq!(keys.unwrap().len(), 2500);
    println!("| list_keys (2500 keys) | {trips} |");
    assert_eq!(trips, 3, "one per page of 1000");

    for key in store.list_keys("").await.unwrap() {
        store.delete(&key).await.unwrap();
    }
}
