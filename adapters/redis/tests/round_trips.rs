//! Round trips per operation, measured: on a standalone server through a counting TCP proxy
//! (one round trip = the client sends, then waits for the server), and on the cluster with
//! `INFO commandstats` on every node (in cluster mode every request is one command).
//!
//! Run with `--nocapture` to see the tables.

mod common;

use std::collections::BTreeMap;
use std::future::Future;

use kv_redis::RedisBackend;
use kv_test_services::proxy::CountingProxy;
use kv_test_services::redis as services;
use kv_trait::KvBackend;

use common::{backend, namespace, Admin};

/// Round trips made by `op` through `proxy`.
async fn count<T>(proxy: &CountingProxy, op: impl Future<Output = T>) -> (u64, T) {
    let before = proxy.round_trips();
    let result = op.await;
    (proxy.round_trips() - before, result)
}

/// A counting proxy in front of `server`, and a backend (URL options `options`) that talks
/// to the server through it.
async fn through_proxy(
    server: &kv_test_services::redis::RedisService,
    options: &str,
) -> (CountingProxy, RedisBackend) {
    let proxy = CountingProxy::start(server.nodes[0].as_str()).expect("start the proxy");
    let url = format!(
        "redis://:{}@127.0.0.1:{}?{options}",
        server.password.as_deref().unwrap_or_default(),
        proxy.port()
    );
    let store = RedisBackend::from_url(&url)
        .await
        .expect("connect through the proxy");
    (proxy, store)
}

fn print_table(title: &str, rows: &[(&str, u64)]) {
    eprintln!("\n{title}");
    for (op, n) in rows {
        eprintln!("  {op:<55} {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_round_trips_per_operation() {
    let Some(server) = services::private_standalone() else {
        return;
    };
    let (proxy, store) = through_proxy(&server, "namespace=rt").await;
    let value = vec![1u8; 1024 * 1024];
    let mut rows = Vec::new();
    let mut measure = |name: &'static str, n: u64| rows.push((name, n));

    measure("get (absent)", count(&proxy, store.get("k")).await.0);
    measure(
        "set (1 MiB value)",
        count(&proxy, store.set("k", &value)).await.0,
    );
    measure("get (1 MiB value)", count(&proxy, store.get("k")).await.0);
    measure(
        "set_with_ttl",
        count(&proxy, store.set_with_ttl("t", b"v", 60_000_000_000))
            .await
            .0,
    );
    measure("exists", count(&proxy, store.exists("k")).await.0);
    measure("delete", count(&proxy, store.delete("t")).await.0);
    assert!(
        store.native_increments(),
        "Redis and Valkey 6+ take a bare INCRBY: {store:?}"
    );
    measure(
        "increment, first (INCRBY)",
        count(&proxy, store.increment("n", 1)).await.0,
    );
    measure("increment", count(&proxy, store.increment("n", 1)).await.0);
    measure(
        "compare_and_swap(None) (SET NX)",
        count(&proxy, store.compare_and_swap("c", None, b"1"))
            .await
            .0,
    );
    measure(
        "compare_and_swap(Some), first (EVALSHA answered NOSCRIPT, then EVAL)",
        count(&proxy, store.compare_and_swap("c", Some(b"1"), b"2"))
            .await
            .0,
    );
    measure(
        "compare_and_swap(Some), match (EVALSHA)",
        count(&proxy, store.compare_and_swap("c", Some(b"2"), b"3"))
            .await
            .0,
    );
    measure(
        "compare_and_swap(Some), mismatch (EVALSHA)",
        count(&proxy, store.compare_and_swap("c", Some(b"x"), b"4"))
            .await
            .0,
    );
    measure(
        "compare_and_swap(Some), absent key (EVALSHA)",
        count(&proxy, store.compare_and_swap("none", Some(b"x"), b"4"))
            .await
            .0,
    );
    let listing = count(&proxy, store.list_keys("")).await;
    assert_eq!(listing.1.unwrap(), ["c", "k", "n"]);
    measure("list_keys, 3 keys in the database", listing.0);

    let many = backend(&server, "bulk").await;
    let keys: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
    for chunk in keys.chunks(500) {
        futures::future::try_join_all(chunk.iter().map(|key| many.set(key, b"v")))
            .await
            .unwrap();
    }
    let listing = count(&proxy, store.list_keys("")).await;
    assert_eq!(listing.1.unwrap().len(), 3);
    measure(
        "list_keys, 5003 keys in the database (SCAN COUNT 1000)",
        listing.0,
    );
    let names: Vec<String> = (0..1200).map(|i| format!("b{i}")).collect();
    let hundred: Vec<&str> = names[..100].iter().map(String::as_str).collect();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let entries: Vec<(&str, &[u8])> = hundred.iter().map(|key| (*key, &b"v"[..])).collect();
    let wrote = count(&proxy, store.set_many(&entries, None)).await;
    wrote.1.unwrap();
    measure("set_many, 100 keys (MSET)", wrote.0);
    let read = count(&proxy, store.get_many(&hundred)).await;
    assert!(read
        .1
        .unwrap()
        .iter()
        .all(|value| value.as_deref() == Some(b"v")));
    measure("get_many, 100 keys (MGET)", read.0);
    let read = count(&proxy, store.get_many(&all)).await;
    assert_eq!(read.1.unwrap().len(), 1200);
    measure("get_many, 1200 keys (MGET per 500)", read.0);
    let with_ttl = count(&proxy, store.set_many(&entries, Some(60_000_000_000))).await;
    with_ttl.1.unwrap();
    measure(
        "set_many with a TTL, 100 keys (SET PX, 64 in flight)",
        with_ttl.0,
    );
    let removed = count(&proxy, store.delete_many(&hundred)).await;
    assert_eq!(removed.1.unwrap(), 100);
    measure("delete_many, 100 keys (DEL)", removed.0);
    print_table("standalone: round trips per operation", &rows);

    let expected: BTreeMap<&str, u64> = rows.iter().copied().collect();
    for (op, n) in [
        ("get (absent)", 1),
        ("set (1 MiB value)", 1),
        ("get (1 MiB value)", 1),
        ("set_with_ttl", 1),
        ("exists", 1),
        ("delete", 1),
        ("increment, first (INCRBY)", 1),
        ("increment", 1),
        ("compare_and_swap(None) (SET NX)", 1),
        (
            "compare_and_swap(Some), first (EVALSHA answered NOSCRIPT, then EVAL)",
            2,
        ),
        ("compare_and_swap(Some), match (EVALSHA)", 1),
        ("compare_and_swap(Some), mismatch (EVALSHA)", 1),
        ("compare_and_swap(Some), absent key (EVALSHA)", 1),
        ("list_keys, 3 keys in the database", 1),
        ("set_many, 100 keys (MSET)", 1),
        ("get_many, 100 keys (MGET)", 1),
        ("get_many, 1200 keys (MGET per 500)", 3),
        ("delete_many, 100 keys (DEL)", 1),
    ] {
        assert_eq!(expected[op], n, "{op}");
    }
    // Pipelined over the one connection: far fewer round trips than keys.
    let with_ttl = expected["set_many with a TTL, 100 keys (SET PX, 64 in flight)"];
    assert!(with_ttl < 100, "{with_ttl} round trips for 100 SETs");
    let pages = expected["list_keys, 5003 keys in the database (SCAN COUNT 1000)"];
    assert!((5..=8).contains(&pages), "{pages} SCAN pages");
}

/// With `watch=true` every write is a script that also announces it: still one round trip
/// each, once the server has the scripts (the first call of each is `NOSCRIPT` + `EVAL`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_round_trips_with_watch() {
    let Some(server) = services::private_standalone() else {
        return;
    };
    let (proxy, store) = through_proxy(&server, "namespace=rt-watch&watch=true").await;
    // Every script once, so the counts below are of EVALSHA alone.
    store.set("w", b"0").await.unwrap();
    store.delete("w").await.unwrap();
    store.increment("w", 1).await.unwrap();
    store.compare_and_swap("w", Some(b"1"), b"2").await.unwrap();
    store.compare_and_swap("w2", None, b"1").await.unwrap();

    let mut rows = Vec::new();
    let mut measure = |name: &'static str, n: u64| rows.push((name, n));
    measure("set", count(&proxy, store.set("k", b"v")).await.0);
    measure(
        "set_with_ttl",
        count(&proxy, store.set_with_ttl("t", b"v", 60_000_000_000))
            .await
            .0,
    );
    measure("delete", count(&proxy, store.delete("t")).await.0);
    measure("increment", count(&proxy, store.increment("n", 1)).await.0);
    measure(
        "compare_and_swap(None)",
        count(&proxy, store.compare_and_swap("c", None, b"1"))
            .await
            .0,
    );
    measure(
        "compare_and_swap(Some)",
        count(&proxy, store.compare_and_swap("c", Some(b"1"), b"2"))
            .await
            .0,
    );
    measure("get", count(&proxy, store.get("k")).await.0);
    let names: Vec<String> = (0..100).map(|i| format!("b{i}")).collect();
    let keys: Vec<&str> = names.iter().map(String::as_str).collect();
    let entries: Vec<(&str, &[u8])> = keys.iter().map(|key| (*key, &b"v"[..])).collect();
    measure(
        "set_many, 100 keys (a script each, 64 in flight)",
        count(&proxy, store.set_many(&entries, None)).await.0,
    );
    let removed = count(&proxy, store.delete_many(&keys)).await;
    assert_eq!(removed.1.unwrap(), 100);
    measure(
        "delete_many, 100 keys (a script each, 64 in flight)",
        removed.0,
    );
    print_table(
        "standalone with watch=true: round trips per operation",
        &rows,
    );
    for (op, n) in &rows {
        match op.contains("100 keys") {
            true => assert!(*n < 100, "{op}: {n} round trips for 100 keys"),
            false => assert_eq!(*n, 1, "{op}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_commands_per_operation() {
    let Some(service) = services::cluster() else {
        return;
    };
    let store = backend(service, &namespace("rt")).await;
    let admin = Admin::connect(service).await;
    // The cluster may be shared with earlier tests that loaded the scripts already: forget
    // them, so that the first script call pays its NOSCRIPT round trip here as on a fresh
    // cluster. (Other clients just reload them.)
    let _: Vec<String> = admin
        .on_every_node(&redis::cmd("SCRIPT").arg("FLUSH").clone())
        .await;
    let mut rows: Vec<(String, u64)> = Vec::new();
    // Counts the commands the client sent: commandstats also counts the commands a script
    // runs inside the server (GET, INCRBY, SET), which are no round trips.
    macro_rules! measure {
        ($name:expr, $op:expr) => {{
            let before = admin.command_calls().await;
            let result = $op.await;
            let after = admin.command_calls().await;
            let delta = |command: &str| {
                after.get(command).unwrap_or(&0) - before.get(command).unwrap_or(&0)
            };
            let scripted = delta("evalsha") > 0;
            let mut sent: Vec<String> = Vec::new();
            let mut total = 0;
            // INFO calls are the measurement's own, and a replica sends its primary
            // `REPLCONF ACK` every second (replication, not the client): neither counts.
            for command in after.keys().filter(|command| {
                !matches!(command.as_str(), "info" | "replconf" | "psync" | "sync")
            }) {
                let n = delta(command);
                let from_client = !scripted || command.starts_with("eval");
                if n > 0 && from_client {
                    sent.push(format!("{command}×{n}"));
                    total += n;
                }
            }
            rows.push((format!("{} ({})", $name, sent.join(", ")), total));
            result
        }};
    }
    measure!("get", store.get("k")).unwrap();
    measure!("set", store.set("k", b"v")).unwrap();
    measure!(
        "set_with_ttl",
        store.set_with_ttl("t", b"v", 60_000_000_000)
    )
    .unwrap();
    measure!("exists", store.exists("k")).unwrap();
    measure!("delete", store.delete("t")).unwrap();
    measure!("increment, first", store.increment("n", 1)).unwrap();
    measure!("increment", store.increment("n", 1)).unwrap();
    measure!(
        "compare_and_swap(None)",
        store.compare_and_swap("c", None, b"1")
    )
    .unwrap();
    measure!(
        "compare_and_swap(Some), first",
        store.compare_and_swap("c", Some(b"1"), b"2")
    )
    .unwrap();
    measure!(
        "compare_and_swap(Some)",
        store.compare_and_swap("c", Some(b"2"), b"3")
    )
    .unwrap();
    let listed = measure!(
        "list_keys (one SCAN page per primary, concurrently)",
        store.list_keys("")
    )
    .unwrap();
    assert_eq!(listed, ["c", "k", "n"]);
    let shown: Vec<(&str, u64)> = rows.iter().map(|(name, n)| (name.as_str(), *n)).collect();
    print_table("cluster: commands sent per operation", &shown);
    for (name, n) in &rows {
        let expected = if name.starts_with("list_keys") {
            3
        } else if name.contains(", first") && name.contains("eval") {
            // EVALSHA answered NOSCRIPT, then EVAL (which caches the script on that node).
            2
        } else {
            1
        };
        assert_eq!(*n, expected, "{name}");
    }
    for key in ["k", "n", "c"] {
        assert!(store.delete(key).await.unwrap());
    }
}
