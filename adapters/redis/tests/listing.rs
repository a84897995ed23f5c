//! `list_keys` is `SCAN MATCH` with the literal prefix's glob characters escaped, followed
//! through every page to cursor 0 (on every primary of a cluster), deduplicated, sorted, and
//! with the namespace stripped.

// The checks are plain async fns that the generated #[test]s call; like tests, they unwrap.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use kv_test_services::redis::RedisService;
use kv_trait::KvBackend;

use common::{backend, namespace, Admin};

on_standalone_and_cluster!(
    glob_characters_in_prefixes_match_only_themselves,
    listing_follows_scan_through_many_pages,
    keys_that_are_not_utf8_are_left_out,
);

/// Keys full of Redis glob syntax.
const GLOBBY_KEYS: [&str; 22] = [
    "*", "**", "a*", "a*b", "ab", "a", "?", "a?", "a?c", "abc", "[", "[ab]", "a[b", "ab]", "]",
    "\\", "\\*", "a\\b", "a\\\\b", "^", "a-z", "[a-z]",
];

async fn glob_characters_in_prefixes_match_only_themselves(service: &RedisService) {
    let ns = namespace("glob[*?]\\");
    let store = backend(service, &ns).await;
    for key in GLOBBY_KEYS {
        store.set(key, key.as_bytes()).await.unwrap();
    }
    for prefix in [
        "", "*", "a*", "?", "a?", "[", "[a", "a[", "]", "\\", "\\*", "a\\", "a\\\\", "^", "a-",
        "[a-", "a", "ab", "zzz",
    ] {
        let mut expected: Vec<&str> = GLOBBY_KEYS
            .iter()
            .copied()
            .filter(|key| key.starts_with(prefix))
            .collect();
        expected.sort_unstable();
        assert_eq!(
            store.list_keys(prefix).await.unwrap(),
            expected,
            "prefix {prefix:?}"
        );
    }
    for key in GLOBBY_KEYS {
        assert!(store.delete(key).await.unwrap());
    }
}

async fn listing_follows_scan_through_many_pages(service: &RedisService) {
    const KEYS: usize = 2500; // SCAN asks for 1000 per page: several pages on every node
    let ns = namespace("many");
    let store = backend(service, &ns).await;
    let keys: Vec<String> = (0..KEYS).map(|i| format!("key/{i:05}")).collect();
    for chunk in keys.chunks(250) {
        futures::future::try_join_all(chunk.iter().map(|key| store.set(key, b"v")))
            .await
            .unwrap();
    }
    let listed = store.list_keys("").await.unwrap();
    assert_eq!(listed.len(), KEYS);
    assert_eq!(listed, keys, "all of them, once each, sorted");
    let some = store.list_keys("key/012").await.unwrap();
    assert_eq!(some, keys[1200..1300].to_vec());

    if service.cluster {
        // The keys really are spread over the three primaries, so each had to be scanned.
        let admin = Admin::connect(service).await;
        let pattern = format!("{}*", kv_redis::namespace_prefix(&ns));
        let roles = admin
            .on_every_node::<String>(redis::cmd("INFO").arg("replication"))
            .await;
        let scans = admin
            .on_every_node::<(String, Vec<String>)>(
                redis::cmd("SCAN")
                    .arg(0)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(100_000),
            )
            .await;
        let primaries_with_keys = roles
            .iter()
            .zip(&scans)
            .filter(|(info, (_, found))| info.contains("role:master") && !found.is_empty())
            .count();
        assert_eq!(primaries_with_keys, 3);
    }
    futures::future::try_join_all(keys.iter().map(|key| store.delete(key)))
        .await
        .unwrap();
}

async fn keys_that_are_not_utf8_are_left_out(service: &RedisService) {
    let ns = namespace("foreign");
    let store = backend(service, &ns).await;
    store.set("mine", b"v").await.unwrap();
    let admin = Admin::connect(service).await;
    let mut foreign = kv_redis::namespace_prefix(&ns).into_bytes();
    foreign.extend_from_slice(b"\xff\xfe");
    admin
        .must::<()>(redis::cmd("SET").arg(&foreign).arg("x"))
        .await;
    // No kvkit key can name it, so listing it would only hand out something unusable.
    assert_eq!(store.list_keys("").await.unwrap(), ["mine"]);
    admin.must::<i64>(redis::cmd("DEL").arg(&foreign)).await;
    assert!(store.delete("mine").await.unwrap());
}
