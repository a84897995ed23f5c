//! Round trips per operation, measured through a proxy in front of the single member that
//! counts gRPC requests (each awaited before the next, so one round trip each): the numbers
//! the README gives.
//!
//! Run with `--nocapture` to see the table.

mod common;

use kv_etcd::EtcdBackend;
use kv_trait::KvBackend;

use common::{namespace, single, GrpcRequestCounter};

/// Round trips made by `op`.
async fn count<T>(
    proxy: &GrpcRequestCounter,
    op: impl std::future::Future<Output = T>,
) -> (u64, T) {
    let before = proxy.requests();
    let result = op.await;
    (proxy.requests() - before, result)
}

#[tokio::test]
async fn round_trips_per_operation() {
    let Some(service) = single() else { return };
    let member = service.members.first().expect("a member");
    let proxy = GrpcRequestCounter::start(member);
    let store = EtcdBackend::builder(&format!("etcd://127.0.0.1:{}", proxy.port()))
        .unwrap()
        .namespace(namespace("round-trips"))
        .build()
        .await
        .unwrap();
    // Warm-up: the connection is made and the first TTL's lease granted.
    store
        .set_with_ttl("warm", b"v", 60_000_000_000)
        .await
        .unwrap();

    let mut table = Vec::new();
    let mut wrong = Vec::new();
    let mut check = |what: &str, (trips, ok): (u64, bool), expected: u64| {
        assert!(ok, "{what}: wrong result");
        table.push(format!("{what:<52} {trips}"));
        if trips != expected {
            wrong.push(format!("{what}: {trips} round trips, not {expected}"));
        }
    };
    check(
        "set",
        count(&proxy, async { store.set("k", b"v").await.is_ok() }).await,
        1,
    );
    check(
        "set_with_ttl (a lease of the same 10 s exists)",
        {
            // Twice, the lower count: the first may straddle a ten-second boundary (a new
            // bucket, so a grant); the second is then in the bucket the first made.
            let first = count(&proxy, store.set_with_ttl("t", b"v", 60_000_000_000)).await;
            let second = count(&proxy, store.set_with_ttl("t", b"v", 60_000_000_000)).await;
            (first.0.min(second.0), first.1.is_ok() && second.1.is_ok())
        },
        1,
    );
    check(
        "set_with_ttl (a new lease: grant, put)",
        count(&proxy, async {
            store
                .set_with_ttl("t2", b"v", 600_000_000_000)
                .await
                .is_ok()
        })
        .await,
        2,
    );
    check(
        "get",
        count(&proxy, async {
            store.get("k").await.unwrap() == Some(b"v".to_vec())
        })
        .await,
        1,
    );
    check(
        "exists",
        count(&proxy, async { store.exists("t").await.unwrap() }).await,
        1,
    );
    check(
        "increment (absent)",
        count(&proxy, async {
            store.increment("n", 5).await.unwrap() == 5
        })
        .await,
        1,
    );
    check(
        "increment (existing)",
        count(&proxy, async {
            store.increment("n", 1).await.unwrap() == 6
        })
        .await,
        2,
    );
    check(
        "compare_and_swap None (absent: wins)",
        count(&proxy, async {
            store.compare_and_swap("c", None, b"1").await.unwrap()
        })
        .await,
        1,
    );
    check(
        "compare_and_swap None (live: loses)",
        count(&proxy, async {
            !store.compare_and_swap("c", None, b"2").await.unwrap()
        })
        .await,
        1,
    );
    check(
        "compare_and_swap Some (matches, no TTL: wins)",
        count(&proxy, async {
            store.compare_and_swap("c", Some(b"1"), b"2").await.unwrap()
        })
        .await,
        1,
    );
    check(
        "compare_and_swap Some (differs: loses)",
        count(&proxy, async {
            !store.compare_and_swap("c", Some(b"1"), b"3").await.unwrap()
        })
        .await,
        1,
    );
    check(
        "compare_and_swap Some (matches, with TTL: wins)",
        count(&proxy, async {
            store.compare_and_swap("t", Some(b"v"), b"w").await.unwrap()
        })
        .await,
        2,
    );
    check(
        "delete",
        count(&proxy, async { store.delete("k").await.unwrap() }).await,
        1,
    );
    // Keys: warm and t2 (TTL), t, n, c (none): one page, one transaction for the TTLs.
    check(
        "list_keys (5 keys, 2 with a TTL)",
        count(&proxy, async {
            store.list_keys("").await.unwrap().len() == 5
        })
        .await,
        2,
    );
    check(
        "list_keys (no key with a TTL)",
        count(&proxy, async {
            store.list_keys("c").await.unwrap().len() == 1
        })
        .await,
        1,
    );
    println!("{}", table.join("\n"));
    assert!(wrong.is_empty(), "{wrong:#?}");
    for key in ["warm", "t", "t2", "n", "c"] {
        store.delete(key).await.unwrap();
    }
}
