//! zlayer-agent's `KvStore` in cluster mode on every kvkit store, driven through its
//! `*_async` methods as zlayer's WASM host drives them: set, get, TTL expiry, increment and
//! compare-and-swap races from many tasks, listing, errors that change nothing, and two stores
//! over one database seeing each other's writes.
//!
//! The servers come from `kv-test-services` (the environment's, else private ones started from
//! local binaries); under `KVKIT_REQUIRE_SERVICES` (as `ci/test` sets it) a missing one fails
//! the test instead of skipping it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv_test_services as services;
use kv_zlayer::ZlayerBackend;
use zlayer_agent::kv::{KvError as ZlayerError, KvStore};

/// Tasks racing in the increment and compare-and-swap checks.
const RACERS: usize = 16;

/// One store to drive, as `kvkit::open` takes it.
struct Target {
    name: &'static str,
    url: String,
    /// Keeps the SQLite or RocksDB files until the test ends.
    _dir: Option<tempfile::TempDir>,
}

/// A name no other test process uses, for namespaces and tables on shared servers.
fn unique(what: &str) -> String {
    format!("zlayer_{what}_{}", std::process::id())
}

async fn store(target: &Target) -> KvStore {
    let backend = kvkit::open(&target.url)
        .await
        .unwrap_or_else(|err| panic!("{}: open {}: {err}", target.name, target.name));
    ZlayerBackend::new(backend).into_store()
}

/// Every check, on one store; each check uses keys of its own.
async fn drive(target: Target) {
    let host = store(&target).await;
    assert!(host.is_clustered());
    basics(&target, &host).await;
    expiry(&target, &host).await;
    increments_race(&target, &host).await;
    swaps_race(&target, &host).await;
    listing(&target, &host).await;
    refusals(&target, &host).await;
    two_stores(&target, &host).await;
    // Leave nothing behind on the shared servers.
    for key in host.list_keys_async("").await.unwrap() {
        host.delete_async(&key).await.unwrap();
    }
    assert_eq!(
        host.list_keys_async("").await.unwrap(),
        Vec::<String>::new()
    );
}

async fn basics(target: &Target, host: &KvStore) {
    let name = target.name;
    assert_eq!(host.get_async("basics/k").await.unwrap(), None, "{name}");
    host.set_async("basics/k", b"v1").await.unwrap();
    assert_eq!(
        host.get_async("basics/k").await.unwrap(),
        Some(b"v1".to_vec()),
        "{name}"
    );
    assert!(host.exists_async("basics/k").await.unwrap(), "{name}");
    // Any bytes, the empty value included.
    host.set_async("basics/k", &[0, 255, 10]).await.unwrap();
    assert_eq!(
        host.get_async("basics/k").await.unwrap(),
        Some(vec![0, 255, 10]),
        "{name}"
    );
    host.set_async("basics/empty", b"").await.unwrap();
    assert_eq!(
        host.get_async("basics/empty").await.unwrap(),
        Some(vec![]),
        "{name}"
    );
    assert!(host.delete_async("basics/k").await.unwrap(), "{name}");
    assert!(!host.delete_async("basics/k").await.unwrap(), "{name}");
    assert!(!host.exists_async("basics/k").await.unwrap(), "{name}");
    assert_eq!(host.get_async("basics/k").await.unwrap(), None, "{name}");
}

/// A key written with a TTL is live at first and gone once it has passed (within the
/// backend's granularity: etcd counts leases in whole seconds).
async fn expiry(target: &Target, host: &KvStore) {
    let name = target.name;
    let ttl = Duration::from_millis(1500);
    let written = Instant::now();
    host.set_with_ttl_async("ttl/k", b"brief", ttl.as_nanos() as u64)
        .await
        .unwrap();
    host.set_async("ttl/kept", b"kept").await.unwrap();
    let seen = host.get_async("ttl/k").await.unwrap();
    if written.elapsed() < ttl {
        assert_eq!(seen, Some(b"brief".to_vec()), "{name}: live before its TTL");
    }
    let give_up = written + ttl + Duration::from_secs(10);
    while host.exists_async("ttl/k").await.unwrap() {
        assert!(
            Instant::now() < give_up,
            "{name}: still live 10 s after its TTL"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(written.elapsed() >= ttl, "{name}: gone before its TTL");
    assert_eq!(host.get_async("ttl/k").await.unwrap(), None, "{name}");
    assert_eq!(
        host.get_async("ttl/kept").await.unwrap(),
        Some(b"kept".to_vec()),
        "{name}"
    );
}

/// `RACERS` tasks increment one counter: every increment is applied once, so the values
/// returned are exactly 1 to the total.
async fn increments_race(target: &Target, host: &KvStore) {
    let each = 10;
    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let host = host.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..each {
                    seen.push(host.increment_async("race/counter", 1).await.unwrap());
                }
                seen
            })
        })
        .collect();
    let mut returned = BTreeSet::new();
    for task in tasks {
        for value in task.await.unwrap() {
            assert!(
                returned.insert(value),
                "{}: {value} returned twice",
                target.name
            );
        }
    }
    let total = (RACERS * each) as i64;
    assert_eq!(returned, (1..=total).collect(), "{}", target.name);
    assert_eq!(
        host.get_async("race/counter").await.unwrap(),
        Some(total.to_string().into_bytes()),
        "{}",
        target.name
    );
    assert_eq!(
        host.increment_async("race/counter", -total).await.unwrap(),
        0,
        "{}",
        target.name
    );
}

/// Creating a key only if absent has one winner among `RACERS` tasks; a counter kept by
/// read-then-swap loses no update.
async fn swaps_race(target: &Target, host: &KvStore) {
    let name = target.name;
    let claims: Vec<_> = (0..RACERS)
        .map(|task| {
            let host = host.clone();
            tokio::spawn(async move {
                let me = format!("task{task}");
                let won = host
                    .compare_and_swap_async("race/owner", None, me.as_bytes())
                    .await
                    .unwrap();
                (me, won)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for claim in claims {
        let (me, won) = claim.await.unwrap();
        if won {
            winners.push(me);
        }
    }
    assert_eq!(winners.len(), 1, "{name}: winners {winners:?}");
    assert_eq!(
        host.get_async("race/owner").await.unwrap(),
        Some(winners[0].clone().into_bytes()),
        "{name}"
    );

    let rounds = 5;
    host.set_async("race/swapped", b"0").await.unwrap();
    let tasks: Vec<_> = (0..RACERS / 2)
        .map(|_| {
            let host = host.clone();
            tokio::spawn(async move {
                for _ in 0..rounds {
                    loop {
                        let current = host.get_async("race/swapped").await.unwrap().unwrap();
                        let next: u64 =
                            String::from_utf8(current.clone()).unwrap().parse().unwrap();
                        let next = (next + 1).to_string();
                        if host
                            .compare_and_swap_async("race/swapped", Some(&current), next.as_bytes())
                            .await
                            .unwrap()
                        {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        host.get_async("race/swapped").await.unwrap(),
        Some((RACERS / 2 * rounds).to_string().into_bytes()),
        "{name}"
    );
}

/// Listing gives every live key under the prefix, once, sorted, and nothing else.
async fn listing(target: &Target, host: &KvStore) {
    for key in ["list/b", "list/a", "list/c/d", "listless", "other/list/x"] {
        host.set_async(key, b"x").await.unwrap();
    }
    host.set_with_ttl_async("list/gone", b"x", 1).await.unwrap();
    // Past the TTL, rounded up to the backend's granularity (1 ms at most).
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        host.list_keys_async("list/").await.unwrap(),
        ["list/a", "list/b", "list/c/d"],
        "{}",
        target.name
    );
}

/// What the contract refuses comes back as zlayer's error kinds, and the store is unchanged.
async fn refusals(target: &Target, host: &KvStore) {
    let name = target.name;
    host.set_async("refused/k", b"before").await.unwrap();
    host.set_async("refused/text", b"seven").await.unwrap();

    assert_eq!(
        host.get_async("").await,
        Err(ZlayerError::InvalidKey),
        "{name}"
    );
    assert_eq!(
        host.set_async("", b"v").await,
        Err(ZlayerError::InvalidKey),
        "{name}"
    );
    // kv-trait's largest key is 1,024 bytes; the default backends' values are at most 1 MiB.
    let too_long_key = "k".repeat(1025);
    assert_eq!(
        host.set_async(&too_long_key, b"v").await,
        Err(ZlayerError::InvalidKey),
        "{name}"
    );
    let too_large = vec![7_u8; 2 * 1024 * 1024];
    assert_eq!(
        host.set_async("refused/k", &too_large).await,
        Err(ZlayerError::ValueTooLarge),
        "{name}"
    );
    assert_eq!(
        host.compare_and_swap_async("refused/k", Some(b"before"), &too_large)
            .await,
        Err(ZlayerError::ValueTooLarge),
        "{name}"
    );
    match host.set_with_ttl_async("refused/k", b"after", 0).await {
        Err(ZlayerError::Storage(message)) => assert!(message.contains("TTL"), "{name}: {message}"),
        other => panic!("{name}: a zero TTL gave {other:?}"),
    }
    match host.increment_async("refused/text", 1).await {
        Err(ZlayerError::Storage(message)) => {
            assert!(message.contains("counter"), "{name}: {message}");
        }
        other => panic!("{name}: incrementing text gave {other:?}"),
    }
    host.set_async("refused/max", i64::MAX.to_string().as_bytes())
        .await
        .unwrap();
    match host.increment_async("refused/max", 1).await {
        Err(ZlayerError::Storage(message)) => {
            assert!(message.contains("overflow"), "{name}: {message}");
        }
        other => panic!("{name}: overflowing a counter gave {other:?}"),
    }
    assert_eq!(
        host.get_async("refused/k").await.unwrap(),
        Some(b"before".to_vec()),
        "{name}: a refused write changed the store"
    );
    assert_eq!(
        host.get_async("refused/text").await.unwrap(),
        Some(b"seven".to_vec()),
        "{name}"
    );
    assert_eq!(
        host.get_async("refused/max").await.unwrap(),
        Some(i64::MAX.to_string().into_bytes()),
        "{name}"
    );
}

/// A second `KvStore` on a second handle to the same store (another part of the host, or
/// another host on the same server) sees the first one's writes, and their swaps conflict.
async fn two_stores(target: &Target, host: &KvStore) {
    let name = target.name;
    let other = store(target).await;
    host.set_async("shared/k", b"from the first").await.unwrap();
    assert_eq!(
        other.get_async("shared/k").await.unwrap(),
        Some(b"from the first".to_vec()),
        "{name}"
    );
    assert!(other
        .compare_and_swap_async("shared/k", Some(b"from the first"), b"from the second")
        .await
        .unwrap());
    assert!(!host
        .compare_and_swap_async("shared/k", Some(b"from the first"), b"lost")
        .await
        .unwrap());
    assert_eq!(
        host.get_async("shared/k").await.unwrap(),
        Some(b"from the second".to_vec()),
        "{name}"
    );
    assert_eq!(other.increment_async("shared/n", 2).await.unwrap(), 2);
    assert_eq!(host.increment_async("shared/n", 3).await.unwrap(), 5);
}

/// A store on a shared server: `url` is `None` when the server could not be had, which the
/// services crate has announced already (or failed the test, under `KVKIT_REQUIRE_SERVICES`).
async fn drive_server(name: &'static str, url: Option<String>) {
    if let Some(url) = url {
        drive(Target {
            name,
            url,
            _dir: None,
        })
        .await;
    }
}

/// A store in files of its own: `url` names a path inside a new temporary directory.
async fn drive_files(name: &'static str, url: impl FnOnce(&std::path::Path) -> String) {
    let dir = tempfile::tempdir().unwrap();
    drive(Target {
        name,
        url: url(dir.path()),
        _dir: Some(dir),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    drive_server("memory", Some(format!("memory://{}", unique("memory")))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file() {
    drive_files("sqlite", |dir| {
        format!("sqlite://{}", dir.join("kv.db").display())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_directory() {
    drive_files("rocksdb", |dir| {
        format!("rocksdb://{}", dir.join("db").display())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_server() {
    let url = services::redis::standalone()
        .map(|service| service.url_with(&format!("namespace={}", unique("redis"))));
    drive_server("redis", url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster() {
    let url = services::redis::cluster()
        .map(|service| service.url_with(&format!("namespace={}", unique("redis_cluster"))));
    drive_server("redis cluster", url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_emulator() {
    let url = services::dynamodb::endpoint()
        .map(|service| service.url(&unique("table"), "zlayer") + "&create_table=true");
    drive_server("dynamodb", url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_server() {
    let url = services::postgres::server()
        .map(|service| service.url_with(&format!("table={}&namespace=zlayer", unique("table"))));
    drive_server("postgres", url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cluster() {
    let url = services::etcd::cluster()
        .map(|service| service.url_with(&format!("namespace={}", unique("etcd"))));
    drive_server("etcd cluster", url).await;
}

/// `Arc<dyn KvBackend>` from `kvkit::open` and a concrete backend both fit.
#[tokio::test]
async fn any_backend_fits() {
    let concrete = ZlayerBackend::new(kv_memory::MemoryBackend::new());
    let as_zlayer: Arc<dyn zlayer_agent::kv::KvBackend> = Arc::new(concrete);
    let host = KvStore::new().with_backend(as_zlayer);
    host.set_async("k", b"v").await.unwrap();
    assert_eq!(host.get_async("k").await.unwrap(), Some(b"v".to_vec()));
    // The synchronous methods stay on KvStore's own map, as zlayer documents.
    assert_eq!(host.get("k").unwrap(), None);
    let opened = ZlayerBackend::new(kvkit::open("memory://").await.unwrap());
    assert!(format!("{opened:?}").starts_with("ZlayerBackend"));
}
