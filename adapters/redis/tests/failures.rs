//! When Redis is slow, gone, or refuses: bounded timeouts that give `Unavailable`, connections
//! replaced without rebuilding the backend, and configuration errors for bad credentials.

#![allow(
    clippy::disallowed_methods,
    reason = "the tests time themselves; no store decision reads this clock"
)]
// The checks are plain async fns that the generated #[test]s call; like tests, they unwrap.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use kv_redis::RedisBackend;
use kv_test_services::redis::{self as services, RedisService};
use kv_test_services::Provider;
use kv_trait::{KvBackend, KvError};

use common::{backend, builder, namespace, Admin};

on_standalone_and_cluster!(
    killed_connections_are_replaced_without_rebuilding_the_backend,
    wrong_credentials_are_configuration_errors_and_never_shown,
);

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, KvError>, what: &str) {
    match result {
        Err(err @ KvError::Unavailable(_)) => assert!(err.is_retryable()),
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

/// Every operation of the contract once, all expected to succeed.
async fn every_operation_works(store: &RedisBackend) {
    store.set("a", b"1").await.unwrap();
    assert_eq!(store.get("a").await.unwrap(), Some(b"1".to_vec()));
    store.set_with_ttl("b", b"2", 60_000_000_000).await.unwrap();
    assert!(store.exists("b").await.unwrap());
    assert_eq!(store.increment("n", 2).await.unwrap() % 2, 0);
    assert!(store.compare_and_swap("a", Some(b"1"), b"3").await.unwrap());
    assert!(store.compare_and_swap("a", Some(b"3"), b"1").await.unwrap());
    assert!(store.list_keys("").await.unwrap().contains(&"b".to_owned()));
    assert!(store.delete("b").await.unwrap());
}

/// The server's `timeout`-like disconnects, a failover or an operator's `CLIENT KILL` close
/// the backend's connections. The backend reconnects by itself: reads right after the kill are
/// resent on the new connection, and every operation works again shortly after.
async fn killed_connections_are_replaced_without_rebuilding_the_backend(service: &RedisService) {
    let admin = Admin::connect(service).await;
    // An ACL user of its own, so the kill hits this backend's connections and nobody else's.
    let user = format!("kvkit-kill-{}", std::process::id());
    let password = "kill-test-password";
    admin
        .on_every_node::<()>(
            redis::cmd("ACL")
                .arg("SETUSER")
                .arg(&user)
                .arg("reset")
                .arg("on")
                .arg(format!(">{password}"))
                .arg("~*")
                .arg("&*")
                .arg("+@all"),
        )
        .await;
    let store = builder(service, &namespace("kill"))
        .username(Some(user.clone()))
        .password(Some(password.to_owned()))
        .build()
        .await
        .unwrap();
    every_operation_works(&store).await;

    for round in 0..3 {
        let killed: Vec<i64> = admin
            .on_every_node(redis::cmd("CLIENT").arg("KILL").arg("USER").arg(&user))
            .await;
        assert!(
            killed.iter().sum::<i64>() > 0,
            "round {round}: nothing was killed"
        );
        // A read right away: resent once on the new connection.
        assert_eq!(
            store.get("a").await.unwrap(),
            Some(b"1".to_vec()),
            "round {round}"
        );
        common::sleep_ms(100).await;
        every_operation_works(&store).await;
    }
    // Kill while idle, then a write first: the dropped connection was noticed and replaced.
    admin
        .on_every_node::<i64>(redis::cmd("CLIENT").arg("KILL").arg("USER").arg(&user))
        .await;
    common::sleep_ms(200).await;
    store.set("after-idle-kill", b"v").await.unwrap();
    assert!(store.delete("after-idle-kill").await.unwrap());
    for key in ["a", "n"] {
        assert!(store.delete(key).await.unwrap());
    }
    admin
        .on_every_node::<i64>(redis::cmd("ACL").arg("DELUSER").arg(&user))
        .await;
}

async fn wrong_credentials_are_configuration_errors_and_never_shown(service: &RedisService) {
    let secret = "definitely-not-the-password";
    let wrong = builder(service, "x")
        .password(Some(secret.to_owned()))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(wrong, KvError::InvalidConfig(_)), "{wrong:?}");
    assert!(!format!("{wrong:?} {wrong}").contains(secret));

    let store = backend(service, "x").await;
    let shown = format!("{store:?}");
    if let Some(password) = &service.password {
        assert!(!shown.contains(password.as_str()), "{shown}");
        assert!(shown.contains(":***@"), "{shown}");
    }
    assert!(shown.contains("namespace: \"x\""), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_password_and_a_bad_database_are_configuration_errors() {
    let Some(service) = services::standalone() else {
        return;
    };
    if service.password.is_some() {
        let anonymous = builder(service, "")
            .password(None)
            .username(None)
            .build()
            .await;
        assert!(
            matches!(anonymous, Err(KvError::InvalidConfig(_))),
            "{anonymous:?}"
        );
    }
    let far = builder(service, "").database(100_000).build().await;
    assert!(matches!(far, Err(KvError::InvalidConfig(_))), "{far:?}");
    // Another database of the same server is another keyspace.
    let (zero, one) = (
        backend(service, &namespace("db")).await,
        builder(service, &namespace("db"))
            .database(1)
            .build()
            .await
            .unwrap(),
    );
    zero.set("k", b"in 0").await.unwrap();
    assert_eq!(one.get("k").await.unwrap(), None);
    assert!(zero.delete("k").await.unwrap());
}

/// A server that stops answering (here: `CLIENT PAUSE`): every request fails with
/// `Unavailable` after the request timeout instead of hanging, and the same backend works
/// again once the server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_gives_unavailable_within_the_request_timeout() {
    let Some(server) = services::private_standalone() else {
        return;
    };
    let timeout = Duration::from_millis(250);
    let store = builder(&server, "stall")
        .request_timeout(timeout)
        .build()
        .await
        .unwrap();
    every_operation_works(&store).await;
    let admin = Admin::connect(&server).await;
    admin
        .must::<()>(redis::cmd("CLIENT").arg("PAUSE").arg(2500).arg("ALL"))
        .await;
    let paused_at = Instant::now();
    let started = Instant::now();
    assert_unavailable(store.get("a").await, "get");
    assert_unavailable(store.set("a", b"2").await, "set");
    assert_unavailable(store.increment("n", 1).await, "increment");
    assert_unavailable(store.compare_and_swap("a", Some(b"1"), b"2").await, "cas");
    assert_unavailable(store.list_keys("").await, "list_keys");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= timeout * 5 && elapsed < timeout * 5 + Duration::from_millis(700),
        "five timed-out calls took {elapsed:?}"
    );
    tokio::time::sleep(Duration::from_millis(2600).saturating_sub(paused_at.elapsed())).await;
    // The writes may or may not have happened (their replies were lost), so reset first.
    store.set("a", b"1").await.unwrap();
    store.delete("n").await.unwrap();
    every_operation_works(&store).await;
}

/// Something accepts the TCP connection but never speaks Redis: connecting fails with
/// `Unavailable` after the connect timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_listener_times_out_the_connect() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || {
        // Accept and hold connections open without ever answering.
        let mut held = Vec::new();
        for _ in 0..4 {
            match listener.accept() {
                Ok((socket, _)) => held.push(socket),
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_secs(3));
    });
    for url in [
        format!("redis://127.0.0.1:{port}?connect_timeout_ms=300"),
        format!("redis+cluster://127.0.0.1:{port}?connect_timeout_ms=300"),
    ] {
        let started = Instant::now();
        assert_unavailable(RedisBackend::from_url(&url).await, &url);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{url}: {:?}",
            started.elapsed()
        );
    }
    drop(holder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_unavailable_at_once() {
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    }; // closed again: nothing listens there now
    for url in [
        format!("redis://127.0.0.1:{port}"),
        format!("redis+cluster://127.0.0.1:{port}"),
    ] {
        let started = Instant::now();
        assert_unavailable(RedisBackend::from_url(&url).await, &url);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{url}: {:?}",
            started.elapsed()
        );
    }
}

/// A server that goes away after the backend connected: operations fail with `Unavailable`
/// within the timeout, none hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_goes_away_gives_unavailable() {
    let Some(server) = services::private_standalone() else {
        return;
    };
    let store = builder(&server, "gone")
        .request_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    every_operation_works(&store).await;
    drop(server); // stops the process
    common::sleep_ms(100).await;
    let started = Instant::now();
    assert_unavailable(store.get("a").await, "get");
    assert_unavailable(store.set("a", b"x").await, "set");
    assert_unavailable(store.compare_and_swap("a", Some(b"1"), b"2").await, "cas");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// `maxmemory` reached with eviction off: every write is refused with `QuotaExceeded`
/// (whether a plain command, a script or a transaction), while reads and deletes still work
/// and nothing was half written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_refuses_writes_with_quota_exceeded() {
    let Some(server) = services::private_standalone() else {
        return;
    };
    let store = backend(&server, "full").await;
    store.set("kept", b"old").await.unwrap();
    store.set("gone", b"v").await.unwrap();
    let admin = Admin::connect(&server).await;
    let set_config = |name: &'static str, value: &'static str| {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .to_owned()
    };
    admin
        .must::<()>(&set_config("maxmemory-policy", "noeviction"))
        .await;
    admin.must::<()>(&set_config("maxmemory", "1")).await; // far below what is used
    let refused = [
        ("set", store.set("k", b"v").await.err()),
        (
            "set_with_ttl",
            store.set_with_ttl("k", b"v", 1_000_000_000).await.err(),
        ),
        ("increment", store.increment("n", 1).await.err()),
        (
            "cas absent",
            store.compare_and_swap("k", None, b"v").await.err(),
        ),
        (
            "cas present",
            store
                .compare_and_swap("kept", Some(b"old"), b"new")
                .await
                .err(),
        ),
    ];
    for (what, err) in refused {
        assert!(
            matches!(err, Some(KvError::QuotaExceeded(_))),
            "{what}: {err:?}"
        );
    }
    assert_eq!(store.get("kept").await.unwrap(), Some(b"old".to_vec()));
    assert_eq!(store.list_keys("").await.unwrap(), ["gone", "kept"]);
    assert!(store.delete("gone").await.unwrap());
    admin.must::<()>(&set_config("maxmemory", "0")).await;
    assert!(store
        .compare_and_swap("kept", Some(b"old"), b"new")
        .await
        .unwrap());
}

/// One line of `CLUSTER NODES`: a node's id, address and role, and the slots it serves.
struct ClusterNode {
    id: String,
    address: String,
    primary: bool,
    slots: Vec<(u16, u16)>,
}

fn cluster_nodes(text: &str) -> Vec<ClusterNode> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let address = fields.get(1)?.split('@').next()?.to_owned();
            let slots = fields
                .iter()
                .skip(8)
                .filter(|range| !range.starts_with('['))
                .filter_map(|range| match range.split_once('-') {
                    Some((from, to)) => Some((from.parse().ok()?, to.parse().ok()?)),
                    None => range.parse().ok().map(|slot| (slot, slot)),
                })
                .collect();
            Some(ClusterNode {
                id: fields[0].to_owned(),
                address,
                primary: fields.get(2)?.contains("master"),
                slots,
            })
        })
        .collect()
}

/// Resharding while the backend works: a slot migrates from one primary to another. Keys
/// already moved are answered with `ASK` (followed with `ASKING` to the target), keys not yet
/// moved are still served by the source, and once the slot belongs to the target the source
/// answers `MOVED` (followed after the client refreshes its slot map). No operation fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_follow_a_slot_migrating_between_primaries() {
    let Some(service) = services::cluster() else {
        return;
    };
    if !matches!(service.provider, Provider::LocalBinary(_)) {
        eprintln!("not resharding a cluster this test did not start");
        return;
    }
    let store = backend(service, &namespace("reshard")).await;
    let admin = Admin::connect(service).await;
    // One hash tag: one slot for all of them.
    store.set("{s}moved", b"before").await.unwrap();
    store.set("{s}stays", b"here").await.unwrap();
    assert_eq!(store.increment("{s}n", 1).await.unwrap(), 1);

    let slot: u16 = admin
        .must(
            redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(store.redis_key("{s}moved")),
        )
        .await;
    let listing: String = admin
        .on_node(&service.nodes[0], redis::cmd("CLUSTER").arg("NODES"))
        .await;
    let nodes = cluster_nodes(&listing);
    let owns = |node: &ClusterNode| node.slots.iter().any(|&(a, b)| (a..=b).contains(&slot));
    let source = nodes
        .iter()
        .find(|n| n.primary && owns(n))
        .expect("the slot's primary");
    let target = nodes
        .iter()
        .find(|n| n.primary && !n.slots.is_empty() && !owns(n))
        .expect("another primary");
    let (target_host, target_port) = target.address.rsplit_once(':').unwrap();
    let migrate = |keys: Vec<Vec<u8>>| {
        let mut cmd = redis::cmd("MIGRATE");
        cmd.arg(target_host)
            .arg(target_port)
            .arg("")
            .arg(0)
            .arg(5000);
        if let Some(password) = &service.password {
            cmd.arg("AUTH").arg(password);
        }
        cmd.arg("KEYS").arg(keys);
        cmd
    };
    let setslot = |state: &str, node: &str| {
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(state)
            .arg(node)
            .to_owned()
    };

    admin
        .on_node::<()>(&target.address, &setslot("IMPORTING", &source.id))
        .await;
    admin
        .on_node::<()>(&source.address, &setslot("MIGRATING", &target.id))
        .await;
    admin
        .on_node::<()>(&source.address, &migrate(vec![store.redis_key("{s}moved")]))
        .await;

    // Mid-migration.
    assert_eq!(
        store.get("{s}moved").await.unwrap(),
        Some(b"before".to_vec())
    );
    store.set("{s}moved", b"during").await.unwrap();
    assert!(store
        .compare_and_swap("{s}moved", Some(b"during"), b"swapped")
        .await
        .unwrap());
    assert_eq!(store.get("{s}stays").await.unwrap(), Some(b"here".to_vec()));
    assert_eq!(store.increment("{s}n", 1).await.unwrap(), 2);
    store.set("{s}new", b"created").await.unwrap(); // absent from the source: created on the target
    assert!(store.exists("{s}new").await.unwrap());
    assert!(store.compare_and_swap("{s}new2", None, b"x").await.unwrap());

    // Finish: move the rest, then hand the slot to the target everywhere.
    let rest: Vec<Vec<u8>> = admin
        .on_node(
            &source.address,
            redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(1000),
        )
        .await;
    if !rest.is_empty() {
        admin.on_node::<()>(&source.address, &migrate(rest)).await;
    }
    for node in [target, source].into_iter().chain(
        nodes
            .iter()
            .filter(|n| n.primary && n.id != source.id && n.id != target.id),
    ) {
        admin
            .on_node::<()>(&node.address, &setslot("NODE", &target.id))
            .await;
    }

    // After: the source answers MOVED.
    assert_eq!(
        store.get("{s}moved").await.unwrap(),
        Some(b"swapped".to_vec())
    );
    assert_eq!(store.increment("{s}n", 1).await.unwrap(), 3);
    assert_eq!(
        store.list_keys("{s}").await.unwrap(),
        ["{s}moved", "{s}n", "{s}new", "{s}new2", "{s}stays"]
    );
    for key in ["{s}moved", "{s}n", "{s}new", "{s}new2", "{s}stays"] {
        assert!(store.delete(key).await.unwrap(), "{key}");
    }
}
