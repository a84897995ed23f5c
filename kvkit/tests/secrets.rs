//! No error, `Display` or `Debug` shows a password from a URL, whatever the URL looks like:
//! generated URLs of every scheme carry a marker password (with the characters that confuse
//! parsers: `/`, `:`, `@`, `%`), in the URL itself or in a nested endpoint URL, around hosts,
//! ports, paths and options that may be wrong, and every parser that sees them is asked.

use proptest::prelude::*;

/// What no output may contain.
const MARKER: &str = "Zq7SECRETx";

fn password() -> impl Strategy<Value = String> {
    // Everything a password may hold unencoded in these URLs but the characters that end a
    // URL or an option (`?`, `#`, `&`, whitespace).
    let noise = "[a-zA-Z0-9/:@%!$*+,;=~._-]{0,4}";
    (noise, noise).prop_map(|(before, after)| format!("{before}{MARKER}{after}"))
}

fn userinfo() -> impl Strategy<Value = String> {
    ("[a-z]{0,4}", password()).prop_map(|(user, password)| format!("{user}:{password}@"))
}

fn scheme() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "redis",
        "rediss",
        "redis+cluster",
        "rediss+cluster",
        "dynamodb",
        "postgres",
        "postgresql",
        "etcd",
        "sqlite",
        "memory",
        "rocksdb",
        "nosuch",
    ])
}

fn place() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "h",
        "h:6379",
        "h:notaport",
        "h:0",
        "[::1",
        "[::1]:1",
        "h:1,h:2",
        "",
        ":",
        "h/0",
        "h/db",
        "kv-table",
        "bad%20table",
        "t:1",
        "t/x",
        "%zz",
        "h:5432/db",
        "%2Frun%2Fpg/db",
        "h,[::1]:5432/d%zz",
    ])
}

fn option() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("namespace=app".to_owned()),
        Just("region=us-east-1".to_owned()),
        Just("pool_size=+3".to_owned()),
        Just("table=kv".to_owned()),
        Just("sslmode=require".to_owned()),
        Just("max_attempts=x".to_owned()),
        Just("colour=blue".to_owned()),
        Just("endpoint=nonsense".to_owned()),
        password().prop_map(|p| format!("endpoint=http://u:{p}@127.0.0.1:1")),
        password().prop_map(|p| format!("endpoint=ftp://u:{p}@h")),
        password().prop_map(|p| {
            let nested = format!("http://u:{p}@h:1");
            let encoded: String = url::form_urlencoded::byte_serialize(nested.as_bytes()).collect();
            format!("endpoint={encoded}")
        }),
    ]
}

fn url() -> impl Strategy<Value = String> {
    (
        scheme(),
        prop::option::of(userinfo()),
        place(),
        prop::collection::vec(option(), 0..3),
    )
        .prop_map(|(scheme, userinfo, place, options)| {
            let query = match options.is_empty() {
                true => String::new(),
                false => format!("?{}", options.join("&")),
            };
            format!("{scheme}://{}{place}{query}", userinfo.unwrap_or_default())
        })
}

fn assert_hidden(what: &str, url: &str, shown: &str) {
    assert!(
        !shown.contains(MARKER),
        "{what} of {url:?} shows the password: {shown}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn no_message_shows_a_password(url in url()) {
        match kvkit::Target::parse(&url) {
            Err(err) => assert_hidden("kvkit's error", &url, &err.to_string()),
            Ok(target) => {
                assert_hidden("Target's Display", &url, &target.to_string());
                assert_hidden("Target's Debug", &url, &format!("{target:?}"));
            }
        }
        // The adapters' own parsers, without kvkit's safety net.
        match kv_redis::RedisBackendBuilder::from_url(&url) {
            Err(err) => assert_hidden("kv-redis's error", &url, &err.to_string()),
            Ok(builder) => assert_hidden("kv-redis's builder", &url, &format!("{builder:?}")),
        }
        match kv_dynamodb::DynamoDbBackendBuilder::from_url(&url) {
            Err(err) => assert_hidden("kv-dynamodb's error", &url, &err.to_string()),
            Ok(builder) => assert_hidden("kv-dynamodb's builder", &url, &format!("{builder:?}")),
        }
        match kv_postgres::PostgresBackendBuilder::from_url(&url) {
            Err(err) => assert_hidden("kv-postgres's error", &url, &err.to_string()),
            Ok(builder) => {
                assert_hidden("kv-postgres's builder", &url, &format!("{builder:?}"));
                assert_hidden("kv-postgres's endpoint", &url, &builder.endpoint());
            }
        }
        #[cfg(feature = "etcd")]
        match kv_etcd::EtcdBackendBuilder::from_url(&url) {
            Err(err) => assert_hidden("kv-etcd's error", &url, &err.to_string()),
            Ok(builder) => {
                assert_hidden("kv-etcd's builder", &url, &format!("{builder:?}"));
                assert_hidden("kv-etcd's endpoint", &url, &builder.endpoint());
            }
        }
        if let Err(err) = kv_sqlite::SqliteBackendBuilder::from_url(&url) {
            assert_hidden("kv-sqlite's error", &url, &err.to_string());
        }
    }
}
