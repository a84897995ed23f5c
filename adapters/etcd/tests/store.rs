//! What kv-etcd writes into etcd, read back with a plain etcd client: the key layout, the
//! value envelope, the leases that reclaim expired keys, and what happens with data kvkit did
//! not write, bad URLs and a cluster that is not there.

// The watch tests, in this binary rather than one of their own (one link less in CI).
mod watch;

mod common;

use std::time::Duration;

use etcd_client::{Client, GetOptions, KeyValue, LeaseTimeToLiveOptions};
use kv_etcd::EtcdBackend;
use kv_trait::{KvBackend, KvError};

use common::{builder, fresh, raw_client, single};

fn unix_ms() -> u64 {
    kv_trait::unix_millis_now()
}

async fn raw_get(raw: &mut Client, key: &[u8]) -> Option<KeyValue> {
    raw.get(key, None)
        .await
        .expect("a plain get")
        .kvs()
        .first()
        .cloned()
}

#[tokio::test]
async fn keys_live_under_the_escaped_namespace_and_values_in_an_envelope() {
    let Some(service) = single() else { return };
    let namespace = format!("{}/x%", common::namespace("layout"));
    let store = builder(service, "unused")
        .namespace(namespace.clone())
        .build()
        .await
        .unwrap();
    let escaped = namespace.replace('%', "%25").replace('/', "%2F");
    let prefix = format!("kvkit/{escaped}/");
    assert_eq!(store.key_prefix(), prefix.as_bytes());
    let mut raw = raw_client(service).await;

    store.set("a/b\0c", b"v\xff").await.unwrap();
    let kv = raw_get(&mut raw, format!("{prefix}a/b\0c").as_bytes())
        .await
        .expect("the key, byte for byte, under the namespace's prefix");
    assert_eq!(kv.value(), b"\x00v\xff", "tag 0 (no TTL), then the value");
    assert_eq!(kv.lease(), 0, "no lease without TTL");

    assert_eq!(store.increment("n", 42).await.unwrap(), 42);
    let kv = raw_get(&mut raw, format!("{prefix}n").as_bytes())
        .await
        .unwrap();
    assert_eq!(kv.value(), b"\x0042", "a counter is decimal text");

    // Everything of the namespace is under the prefix, and nothing else of it is.
    let all = raw
        .get(prefix.as_bytes(), Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let keys: Vec<&[u8]> = all.kvs().iter().map(KeyValue::key).collect();
    assert_eq!(
        keys,
        [
            format!("{prefix}a/b\0c").as_bytes(),
            format!("{prefix}n").as_bytes()
        ]
    );
}

#[tokio::test]
async fn a_ttl_is_a_deadline_in_the_value_and_a_lease_that_outlives_it() {
    let Some(service) = single() else { return };
    let store = fresh("ttl-layout").await.unwrap();
    let mut raw = raw_client(service).await;
    let key = [store.key_prefix(), b"t"].concat();

    let ttl = Duration::from_millis(60_500);
    let before = unix_ms();
    store
        .set_with_ttl("t", b"5", ttl.as_nanos() as u64)
        .await
        .unwrap();
    let after = unix_ms();
    let kv = raw_get(&mut raw, &key).await.unwrap();
    let (tag, rest) = kv.value().split_first().unwrap();
    assert_eq!(*tag, 1, "tag 1: a deadline follows");
    let deadline = u64::from_be_bytes(rest[..8].try_into().unwrap());
    assert_eq!(&rest[8..], b"5");
    let ttl_ms = ttl.as_millis() as u64;
    assert!(
        (before + ttl_ms..=after + ttl_ms + 1).contains(&deadline),
        "deadline {deadline} not within [{}, {}]",
        before + ttl_ms,
        after + ttl_ms + 1
    );
    let lease = kv.lease();
    assert_ne!(lease, 0, "a key with a TTL is on a lease");
    let left = raw
        .lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .unwrap();
    let lease_ends = unix_ms() + left.ttl() as u64 * 1000;
    assert!(
        lease_ends > deadline,
        "the lease ends ({lease_ends}) before the deadline ({deadline})"
    );
    assert!(
        lease_ends < deadline + 15_000,
        "the lease reclaims within 15 s"
    );
    assert_eq!(left.keys(), std::slice::from_ref(&key));

    // increment keeps both the deadline and the lease.
    assert_eq!(store.increment("t", 1).await.unwrap(), 6);
    let kv = raw_get(&mut raw, &key).await.unwrap();
    assert_eq!(kv.value()[1..9], deadline.to_be_bytes());
    assert_eq!(&kv.value()[9..], b"6");
    assert_eq!(kv.lease(), lease);

    // A second key with a deadline in the same ten seconds shares the lease: no grant.
    store
        .set_with_ttl("t2", b"x", ttl.as_nanos() as u64)
        .await
        .unwrap();
    let other = raw_get(&mut raw, &[store.key_prefix(), b"t2"].concat())
        .await
        .unwrap();
    let shared = other.lease() == lease;
    // (Unless the two deadlines straddle a ten-second boundary.)
    let straddles = deadline / 10_000 != (unix_ms() + ttl_ms) / 10_000;
    assert!(shared || straddles, "a new lease for the same bucket");

    // set and a successful compare_and_swap drop the TTL and the lease.
    store.set("t", b"plain").await.unwrap();
    let kv = raw_get(&mut raw, &key).await.unwrap();
    assert_eq!((kv.value(), kv.lease()), (&b"\x00plain"[..], 0));
    store.set_with_ttl("t", b"a", 60_000_000_000).await.unwrap();
    assert!(store.compare_and_swap("t", Some(b"a"), b"b").await.unwrap());
    let kv = raw_get(&mut raw, &key).await.unwrap();
    assert_eq!((kv.value(), kv.lease()), (&b"\x00b"[..], 0));
}

#[tokio::test]
async fn an_expired_key_is_absent_at_once_and_reclaimed_by_its_lease_later() {
    let Some(service) = single() else { return };
    let store = fresh("reclaim").await.unwrap();
    let mut raw = raw_client(service).await;
    let key = [store.key_prefix(), b"short"].concat();
    store.set_with_ttl("short", b"v", 1_000_000).await.unwrap(); // 1 ms
    tokio::time::sleep(Duration::from_millis(5)).await;
    // `list_keys`, not `get`: a `get` would delete the expired key itself (see
    // `a_read_of_an_expired_key_stops_writes_conditional_on_its_revision`).
    assert!(store.list_keys("").await.unwrap().is_empty());
    assert!(
        raw_get(&mut raw, &key).await.is_some(),
        "still stored: the lease has not run out yet"
    );
    // The lease ends at most 12 s after the deadline; etcd checks leases twice a second.
    let give_up = unix_ms() + 20_000;
    while raw_get(&mut raw, &key).await.is_some() {
        assert!(unix_ms() < give_up, "the key was not reclaimed within 20 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn data_without_the_envelope_is_a_backend_error_not_a_panic() {
    let Some(service) = single() else { return };
    let store = fresh("foreign").await.unwrap();
    let mut raw = raw_client(service).await;
    for (key, value) in [
        ("empty", &b""[..]),
        ("text", b"hello"),
        ("short", b"\x01abc"),
    ] {
        raw.put([store.key_prefix(), key.as_bytes()].concat(), value, None)
            .await
            .unwrap();
        assert!(
            matches!(store.get(key).await, Err(KvError::Backend(_))),
            "{key}"
        );
        assert!(matches!(
            store.increment(key, 1).await,
            Err(KvError::Backend(_))
        ));
        assert!(matches!(
            store.compare_and_swap(key, Some(b"x"), b"y").await,
            Err(KvError::Backend(_))
        ));
    }
    // A key that is not UTF-8 cannot be listed as a String.
    raw.put([store.key_prefix(), b"\xff"].concat(), "\0v", None)
        .await
        .unwrap();
    assert!(matches!(
        store.list_keys("").await,
        Err(KvError::Backend(_))
    ));
}

#[tokio::test]
async fn namespaces_that_look_alike_stay_apart() {
    let Some(service) = single() else { return };
    let base = common::namespace("alike");
    let names = [
        base.clone(),
        format!("{base}/"),
        format!("{base}/x"),
        format!("{base}%2F"),
        format!("{base}%"),
    ];
    let mut stores = Vec::new();
    for name in &names {
        let store = builder(service, "unused")
            .namespace(name.clone())
            .build()
            .await
            .unwrap();
        store.set(&format!("x/{name}"), b"v").await.unwrap();
        stores.push(store);
    }
    for (store, name) in stores.iter().zip(&names) {
        assert_eq!(store.list_keys("").await.unwrap(), [format!("x/{name}")]);
    }
}

#[tokio::test]
async fn list_keys_pages_through_more_than_a_thousand_keys_and_judges_ttls() {
    let Some(_) = single() else { return };
    let store = fresh("pages").await.unwrap();
    let mut expected = Vec::new();
    let writes: Vec<_> = (0..1203)
        .map(|i| {
            let store = store.clone();
            async move {
                let key = format!("k{i:05}");
                match i % 7 {
                    // Live with a TTL (its value is read to judge it).
                    0 => store.set_with_ttl(&key, b"v", 600_000_000_000).await,
                    // Expired already when listed.
                    1 => store.set_with_ttl(&key, b"v", 1).await,
                    _ => store.set(&key, b"v").await,
                }
                .map(|()| (i % 7 != 1).then_some(key))
            }
        })
        .collect();
    for key in futures::future::try_join_all(writes).await.unwrap() {
        expected.extend(key);
    }
    expected.sort();
    assert_eq!(store.list_keys("").await.unwrap(), expected);
    assert_eq!(
        store.list_keys("k0100").await.unwrap(),
        expected
            .iter()
            .filter(|key| key.starts_with("k0100"))
            .cloned()
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn bad_urls_fail_before_connecting_and_a_missing_cluster_is_unavailable_in_time() {
    for url in [
        "etcd://",
        "etcd://db:0",
        "etcd://db?colour=blue",
        "postgres://db",
    ] {
        assert!(
            matches!(
                EtcdBackend::from_url(url).await,
                Err(KvError::InvalidConfig(_))
            ),
            "{url}"
        );
    }
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = kv_trait::monotonic_now();
    let outcome = EtcdBackend::from_url(&format!(
        "etcd://u:hunter2@127.0.0.1:{port}?connect_timeout_ms=300&request_timeout_ms=300"
    ))
    .await;
    let elapsed = started.elapsed();
    match outcome {
        Err(err @ KvError::Unavailable(_)) => {
            let message = err.to_string();
            assert!(!message.contains("hunter2"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
}

#[tokio::test]
async fn a_user_and_password_authenticate_and_never_show() {
    let Some(cluster) = kv_test_services::etcd::private_cluster(1) else {
        return;
    };
    let password = "s3cret-p@ss/word";
    let mut raw = raw_client(&cluster).await;
    raw.role_add("root").await.unwrap();
    raw.user_add("root", password, None).await.unwrap();
    raw.user_grant_role("root", "root").await.unwrap();
    raw.auth_enable().await.unwrap();

    let encoded = "s3cret-p%40ss%2Fword";
    let url = format!("etcd://root:{encoded}@{}", cluster.members[0]);
    let store = EtcdBackend::from_url(&url)
        .await
        .expect("open with the password");
    store.set("k", b"v").await.unwrap();
    assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(store.increment("n", 2).await.unwrap(), 2);
    let shown = format!("{store:?} {}", store.endpoint());
    assert!(
        !shown.contains(password) && !shown.contains(encoded),
        "{shown}"
    );
    assert!(shown.contains("root:***@"), "{shown}");

    // A wrong password fails at open, without quoting either password.
    let wrong = format!("etcd://root:wrong-{encoded}@{}", cluster.members[0]);
    let err = EtcdBackend::from_url(&wrong).await.unwrap_err();
    assert!(matches!(err, KvError::InvalidConfig(_)), "{err:?}");
    assert!(!err.to_string().contains("wrong-"), "{err}");
    // Without credentials, etcd refuses the first read.
    let anonymous = format!("etcd://{}", cluster.members[0]);
    let err = EtcdBackend::from_url(&anonymous).await.unwrap_err();
    assert!(matches!(err, KvError::InvalidConfig(_)), "{err:?}");
}

#[tokio::test]
async fn ttls_from_a_millisecond_to_centuries_each_get_a_lease_or_none() {
    let Some(service) = single() else { return };
    let store = fresh("long-ttls").await.unwrap();
    let mut raw = raw_client(service).await;
    const YEAR_NS: u64 = 365 * 86_400 * 1_000_000_000;
    // (TTL, whether a lease covers it): etcd's longest lease is 9e9 s, about 285 years;
    // beyond it the key has no TTL at all ("effectively never").
    for (name, ttl_ns, leased) in [
        ("ms", 1_000_000, true),
        ("day", 86_400 * 1_000_000_000, true),
        ("200y", 200 * YEAR_NS, true),
        ("300y", 300 * YEAR_NS, false),
        ("max", u64::MAX, false),
    ] {
        store.set_with_ttl(name, b"v", ttl_ns).await.unwrap();
        let kv = raw_get(&mut raw, &[store.key_prefix(), name.as_bytes()].concat())
            .await
            .unwrap();
        assert_eq!(kv.lease() != 0, leased, "{name}");
        assert_eq!(
            kv.value()[0],
            u8::from(leased),
            "{name}: the envelope's tag"
        );
        if leased && name != "ms" {
            assert!(store.exists(name).await.unwrap(), "{name}");
        }
    }
}

/// A read that finds a key expired deletes it on the revision it read, so that a write
/// elsewhere that judged the key live just before its deadline (an `increment` or a
/// compare-and-swap, conditional on that revision) can no longer apply after the read
/// answered "gone". The raw transaction below is such a late write.
#[tokio::test]
async fn a_read_of_an_expired_key_stops_writes_conditional_on_its_revision() {
    use etcd_client::{Compare, CompareOp, Txn, TxnOp};
    let Some(service) = single() else {
        return;
    };
    let store = builder(service, "expired-read").build().await.unwrap();
    let mut raw = raw_client(service).await;
    let etcd_key = [store.key_prefix(), b"k"].concat();
    for read in ["get", "exists", "get_many"] {
        store.set_with_ttl("k", b"old", 20_000_000).await.unwrap();
        let stored = raw.get(etcd_key.clone(), None).await.unwrap();
        let revision = stored.kvs()[0].mod_revision();
        tokio::time::sleep(Duration::from_millis(60)).await;
        match read {
            "get" => assert_eq!(store.get("k").await.unwrap(), None),
            "exists" => assert!(!store.exists("k").await.unwrap()),
            _ => assert_eq!(
                store.get_many(&["k", "absent"]).await.unwrap(),
                [None, None]
            ),
        }
        let late = Txn::new()
            .when([Compare::mod_revision(
                etcd_key.clone(),
                CompareOp::Equal,
                revision,
            )])
            .and_then([TxnOp::put(etcd_key.clone(), b"late".to_vec(), None)]);
        assert!(
            !raw.txn(late).await.unwrap().succeeded(),
            "{read}: a write conditional on the expired revision applied after the read"
        );
        assert!(
            raw.get(etcd_key.clone(), None)
                .await
                .unwrap()
                .kvs()
                .is_empty(),
            "{read}: the read deleted the expired key"
        );
    }
}
