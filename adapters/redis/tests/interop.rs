//! The data is plain Redis: other clients (`redis-cli`, any Redis library) read what the
//! backend wrote, their `INCRBY` works on its counters and the other way round, TTLs are the
//! keys' own expiry, and namespaces are readable, escaped key prefixes.
//!
//! Every test runs against the standalone server and against the cluster. The `watch` module
//! checks the change announcements other watchers of the same server receive.

#![allow(
    clippy::disallowed_methods,
    reason = "the tests time themselves; no store decision reads this clock"
)]
// The checks are plain async fns that the generated #[test]s call; like tests, they unwrap.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;
mod watch;

use std::time::Instant;

use kv_redis::IncrementMode;
use kv_test_services::redis::RedisService;
use kv_trait::{parse_counter, KvBackend, KvError};

use common::{backend, builder, namespace, redis_cli, Admin};

on_standalone_and_cluster!(
    redis_cli_reads_what_the_backend_wrote,
    counters_interoperate_with_incrby_both_ways,
    redis_integers_are_exactly_the_canonical_counters,
    ttls_are_native_expiry_rounded_up_to_milliseconds,
    set_clears_and_increment_keeps_the_native_ttl,
    namespaces_are_escaped_readable_prefixes,
    keys_and_values_are_stored_byte_for_byte,
);

async fn redis_cli_reads_what_the_backend_wrote(service: &RedisService) {
    let ns = namespace("cli");
    let store = backend(service, &ns).await;
    store.set("greeting", b"hello world").await.unwrap();
    store.set("empty", b"").await.unwrap();
    let key = format!("{ns}:greeting");
    if let Some(shown) = redis_cli(service, &["GET", &key]) {
        assert_eq!(shown, "\"hello world\"");
        assert_eq!(redis_cli(service, &["TYPE", &key]).unwrap(), "string");
        assert_eq!(
            redis_cli(service, &["STRLEN", &format!("{ns}:empty")]).unwrap(),
            "(integer) 0"
        );
        // And the other way: what redis-cli writes, the backend reads.
        redis_cli(
            service,
            &["SET", &format!("{ns}:from-cli"), "written by redis-cli"],
        )
        .unwrap();
        assert_eq!(
            store.get("from-cli").await.unwrap(),
            Some(b"written by redis-cli".to_vec())
        );
    }
    let admin = Admin::connect(service).await;
    let raw: Vec<u8> = admin.must(redis::cmd("GET").arg(&key)).await;
    assert_eq!(raw, b"hello world");
}

async fn counters_interoperate_with_incrby_both_ways(service: &RedisService) {
    let ns = namespace("incr");
    let store = backend(service, &ns).await;
    let admin = Admin::connect(service).await;
    assert_eq!(store.increment("n", 40).await.unwrap(), 40);
    let key = format!("{ns}:n");
    match redis_cli(service, &["INCRBY", &key, "2"]) {
        Some(shown) => assert_eq!(shown, "(integer) 42"),
        None => assert_eq!(
            admin
                .must::<i64>(redis::cmd("INCRBY").arg(&key).arg(2))
                .await,
            42
        ),
    }
    assert_eq!(store.increment("n", 1).await.unwrap(), 43);
    assert_eq!(store.get("n").await.unwrap(), Some(b"43".to_vec()));
    assert_eq!(
        admin
            .must::<i64>(redis::cmd("INCRBY").arg(&key).arg(-50))
            .await,
        -7
    );
    assert_eq!(store.increment("n", 7).await.unwrap(), 0);

    // A counter set by another client, as a plain string.
    admin
        .must::<()>(
            redis::cmd("SET")
                .arg(format!("{ns}:m"))
                .arg("9223372036854775800"),
        )
        .await;
    assert_eq!(store.increment("m", 7).await.unwrap(), i64::MAX);
    assert!(matches!(
        store.increment("m", 1).await,
        Err(KvError::IntegerOverflow)
    ));
    assert_eq!(
        admin
            .must::<String>(redis::cmd("GET").arg(format!("{ns}:m")))
            .await,
        i64::MAX.to_string()
    );
    // The extremes survive the round trip exactly (Lua numbers are doubles; none is used).
    assert_eq!(store.increment("min", i64::MIN).await.unwrap(), i64::MIN);
    assert_eq!(store.increment("min", 1).await.unwrap(), i64::MIN + 1);
    assert_eq!(
        store.increment("big", (1 << 53) + 1).await.unwrap(),
        (1 << 53) + 1
    );
}

/// Pins what the server's `INCRBY` accepts against the contract's canonical form (which is
/// what lets the backend send a bare `INCRBY` to Redis and Valkey), and checks that the backend
/// follows the contract both ways: with `INCRBY` as chosen for this server, and with the
/// form-checking script it keeps for other servers.
async fn redis_integers_are_exactly_the_canonical_counters(service: &RedisService) {
    let ns = namespace("forms");
    let native = backend(service, &ns).await;
    assert!(
        native.native_increments(),
        "Redis and Valkey 6+ take a bare INCRBY: {native:?}"
    );
    let scripted = builder(service, &ns)
        .increments(IncrementMode::Script)
        .build()
        .await
        .unwrap();
    assert!(!scripted.native_increments());
    let admin = Admin::connect(service).await;
    let forms: [&[u8]; 24] = [
        b"0",
        b"7",
        b"-17",
        b"9223372036854775807",
        b"-9223372036854775808",
        b"+1",
        b"01",
        b"-0",
        b"00",
        b" 1",
        b"1 ",
        b"1.0",
        b"",
        b"-",
        b"1\0",
        b"\x001",
        b"0x10",
        b"1e3",
        b"9223372036854775808",
        b"-9223372036854775809",
        "\u{663}".as_bytes(),
        b"1\n",
        b"--1",
        b"\t1",
    ];
    for (i, form) in forms.into_iter().enumerate() {
        let canonical = parse_counter(form);
        let raw_key = format!("{ns}:raw{i}");
        admin
            .must::<()>(redis::cmd("SET").arg(&raw_key).arg(form))
            .await;
        let redis_accepts = admin
            .run::<i64>(redis::cmd("INCRBY").arg(&raw_key).arg(0))
            .await
            .is_ok();
        assert_eq!(
            redis_accepts,
            canonical.is_some(),
            "Redis's INCRBY and the contract disagree about {form:?}"
        );

        for (how, store) in [("INCRBY", &native), ("script", &scripted)] {
            let key = format!("k{i}");
            admin
                .must::<()>(redis::cmd("SET").arg(store.redis_key(&key)).arg(form))
                .await;
            match (canonical, store.increment(&key, 1).await) {
                (Some(n), result) if n < i64::MAX => assert_eq!(result.unwrap(), n + 1, "{how}"),
                (Some(_), result) => assert!(
                    matches!(result, Err(KvError::IntegerOverflow)),
                    "{how}: {result:?}"
                ),
                (None, result) => {
                    assert!(
                        matches!(result, Err(KvError::NotAnInteger)),
                        "{how}, {form:?}: {result:?}"
                    );
                    assert_eq!(
                        store.get(&key).await.unwrap().as_deref(),
                        Some(form),
                        "{how}: unchanged"
                    );
                }
            }
        }
    }
}

async fn ttls_are_native_expiry_rounded_up_to_milliseconds(service: &RedisService) {
    let ns = namespace("ttl");
    let store = backend(service, &ns).await;
    let admin = Admin::connect(service).await;
    let pttl = |key: &str| redis::cmd("PTTL").arg(format!("{ns}:{key}")).to_owned();

    // 60 s + 1 ns is 60 001 ms: rounded up, never down.
    let start = Instant::now();
    store.set_with_ttl("t", b"v", 60_000_000_001).await.unwrap();
    let left: i64 = admin.must(&pttl("t")).await;
    let elapsed = i64::try_from(start.elapsed().as_millis()).unwrap();
    assert!(
        left <= 60_001 && left >= 60_001 - elapsed - 1,
        "PTTL {left}"
    );
    if let Some(shown) = redis_cli(service, &["PTTL", &format!("{ns}:t")]) {
        let ms: i64 = shown.trim_start_matches("(integer) ").parse().unwrap();
        assert!(ms > 59_000 && ms <= 60_001, "{shown}");
    }

    // 1 ns is 1 ms, not 0 (which Redis would refuse) and not "no expiry".
    store.set_with_ttl("short", b"v", 1).await.unwrap();
    common::sleep_ms(5).await;
    assert_eq!(store.get("short").await.unwrap(), None);
    assert_eq!(
        admin.must::<i64>(&pttl("short")).await,
        -2,
        "gone from Redis too"
    );

    // The largest TTL saturates to about 584 years, accepted by Redis without error.
    store.set_with_ttl("forever", b"v", u64::MAX).await.unwrap();
    let left: i64 = admin.must(&pttl("forever")).await;
    assert!(
        left > 18_446_744_000_000 && left <= 18_446_744_073_710,
        "PTTL {left}"
    );
    assert!(store.exists("forever").await.unwrap());
}

async fn set_clears_and_increment_keeps_the_native_ttl(service: &RedisService) {
    let ns = namespace("ttl-ops");
    let store = backend(service, &ns).await;
    let admin = Admin::connect(service).await;
    let pttl = |key: &str| redis::cmd("PTTL").arg(format!("{ns}:{key}")).to_owned();

    store.set_with_ttl("k", b"v", 60_000_000_000).await.unwrap();
    store.set("k", b"w").await.unwrap();
    assert_eq!(
        admin.must::<i64>(&pttl("k")).await,
        -1,
        "set removed the TTL"
    );

    store.set_with_ttl("n", b"5", 60_000_000_000).await.unwrap();
    assert_eq!(store.increment("n", 1).await.unwrap(), 6);
    let left: i64 = admin.must(&pttl("n")).await;
    assert!(
        left > 55_000 && left <= 60_000,
        "increment kept the TTL: {left}"
    );
    assert_eq!(store.increment("fresh", 1).await.unwrap(), 1);
    assert_eq!(
        admin.must::<i64>(&pttl("fresh")).await,
        -1,
        "created without TTL"
    );

    store
        .set_with_ttl("c", b"old", 60_000_000_000)
        .await
        .unwrap();
    assert!(store
        .compare_and_swap("c", Some(b"old"), b"new")
        .await
        .unwrap());
    assert_eq!(
        admin.must::<i64>(&pttl("c")).await,
        -1,
        "CAS wrote without TTL"
    );
    assert!(store.compare_and_swap("d", None, b"x").await.unwrap());
    assert_eq!(admin.must::<i64>(&pttl("d")).await, -1);
}

async fn namespaces_are_escaped_readable_prefixes(service: &RedisService) {
    let base = namespace("ns");
    let app = backend(service, &base).await;
    let user = backend(service, &format!("{base}:user42")).await;
    let odd = backend(service, &format!("{base}\\x:")).await;
    app.set("k", b"app").await.unwrap();
    user.set("k", b"user").await.unwrap();
    odd.set("k", b"odd").await.unwrap();

    let admin = Admin::connect(service).await;
    let get = |key: String| async {
        admin
            .must::<Option<String>>(redis::cmd("GET").arg(key))
            .await
    };
    assert_eq!(get(format!("{base}:k")).await.as_deref(), Some("app"));
    assert_eq!(
        get(format!("{base}\\:user42:k")).await.as_deref(),
        Some("user")
    );
    assert_eq!(
        get(format!("{base}\\\\x\\::k")).await.as_deref(),
        Some("odd")
    );
    assert_eq!(
        user.redis_key("k"),
        format!("{base}\\:user42:k").into_bytes()
    );

    // `base:user42` is not inside `base`: its prefix `base\:user42:` does not start `base:`.
    assert_eq!(app.list_keys("").await.unwrap(), ["k"]);
    assert_eq!(user.list_keys("").await.unwrap(), ["k"]);
    assert_eq!(odd.list_keys("").await.unwrap(), ["k"]);
    assert!(app.delete("k").await.unwrap());
    assert_eq!(user.get("k").await.unwrap(), Some(b"user".to_vec()));

    // The empty namespace is the raw keyspace: it sees every namespace's keys, prefixed.
    let raw = backend(service, "").await;
    assert_eq!(
        raw.list_keys(&base).await.unwrap(),
        [format!("{base}\\:user42:k"), format!("{base}\\\\x\\::k")]
    );
    assert_eq!(
        raw.get(&format!("{base}\\:user42:k")).await.unwrap(),
        Some(b"user".to_vec())
    );
    for store in [&user, &odd] {
        assert!(store.delete("k").await.unwrap());
    }
}

async fn keys_and_values_are_stored_byte_for_byte(service: &RedisService) {
    let ns = namespace("bytes");
    let store = backend(service, &ns).await;
    let admin = Admin::connect(service).await;
    let keys = [
        "a\0b",
        "*",
        "?",
        "[x]",
        "\\",
        "' OR 1=1 --",
        "\"quoted\"",
        "]]--",
        "{tag}k",
        "日本",
        "\n\r\t",
        "KEYS[1]",
        "%s%d",
    ];
    let value: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();
    for key in keys {
        store.set(key, &value).await.unwrap();
        let mut stored = format!("{ns}:").into_bytes();
        stored.extend_from_slice(key.as_bytes());
        let raw: Vec<u8> = admin.must(redis::cmd("GET").arg(&stored)).await;
        assert_eq!(raw, value, "{key:?}");
        assert!(store
            .compare_and_swap(key, Some(&value), b"swapped")
            .await
            .unwrap());
        assert_eq!(store.increment(&format!("{key}#n"), 1).await.unwrap(), 1);
    }
    let mut expected: Vec<String> = keys
        .iter()
        .flat_map(|k| [k.to_string(), format!("{k}#n")])
        .collect();
    expected.sort();
    assert_eq!(store.list_keys("").await.unwrap(), expected);
    for key in &expected {
        assert!(store.delete(key).await.unwrap());
    }
}
