//! What the conformance kit cannot see from outside: the rows in the table, the server-side
//! checks of `increment`, expiry on the server's clock and the sweeper, paged listing, the
//! table's version and shape at open, and opening with item-level rights only.

// The watch tests, in this binary rather than one of their own (one link less in CI).
mod watch;

mod common;

use std::time::Duration;

use kv_postgres::{PostgresBackend, PostgresBackendBuilder};
use kv_trait::{KvBackend, KvError};

use common::{fresh, lock_row, namespace, raw_client, scratch_table, server, table_url};

/// `(value, expires_at is set)` of `key` in `store`'s namespace, read past the adapter.
async fn raw_row(store: &PostgresBackend, key: &str) -> Option<(Vec<u8>, bool)> {
    let client = raw_client(&server()?.url).await;
    let sql = format!(
        "SELECT value, expires_at IS NOT NULL FROM {} WHERE namespace = $1 AND key = $2",
        store.table_name()
    );
    client
        .query_opt(&sql, &[&store.namespace(), &key.as_bytes()])
        .await
        .expect("raw select")
        .map(|row| (row.get(0), row.get(1)))
}

/// Writes a row directly, as another program (or an older release) might have.
async fn raw_put(store: &PostgresBackend, key: &str, value: &[u8], expired: bool) {
    let client = raw_client(&server().expect("a server").url).await;
    let sql = format!(
        "INSERT INTO {} (namespace, key, value, expires_at) \
         VALUES ($1, $2, $3, CASE WHEN $4 THEN now() - interval '1 second' END) \
         ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, \
         expires_at = EXCLUDED.expires_at",
        store.table_name()
    );
    client
        .execute(
            &sql,
            &[&store.namespace(), &key.as_bytes(), &value, &expired],
        )
        .await
        .expect("raw insert");
}

#[tokio::test]
async fn rows_hold_the_exact_key_and_value_bytes() {
    let Some(store) = fresh("layout").await else {
        return;
    };
    let key = "a\0b/é*?%_";
    store.set(key, b"\x00\xff bytes").await.unwrap();
    assert_eq!(
        raw_row(&store, key).await,
        Some((b"\x00\xff bytes".to_vec(), false))
    );
    store.increment("n", 41).await.unwrap();
    store.increment("n", 1).await.unwrap();
    assert_eq!(raw_row(&store, "n").await, Some((b"42".to_vec(), false)));
    store.set_with_ttl(key, b"v", 60_000_000_000).await.unwrap();
    assert_eq!(raw_row(&store, key).await, Some((b"v".to_vec(), true)));
    store.delete(key).await.unwrap();
    store.delete("n").await.unwrap();
    assert_eq!(raw_row(&store, key).await, None);
}

#[tokio::test]
async fn increment_refuses_every_non_canonical_counter_and_changes_nothing() {
    let Some(store) = fresh("hostile-counters").await else {
        return;
    };
    let hostile: Vec<Vec<u8>> = [
        &b"+1"[..],
        b"01",
        b"-0",
        b"00",
        b" 1",
        b"1 ",
        b"1.0",
        b"1e3",
        b"0x10",
        b"",
        b"-",
        b"--1",
        b"1\0",
        b"\x001",
        b"\xff1",
        b"9223372036854775808",
        b"-9223372036854775809",
        b"99999999999999999999",
        b"123456789012345678901",
        "١".as_bytes(),
        b"\\x31",
        b"kv-postgres: not a counter",
    ]
    .iter()
    .map(|value| value.to_vec())
    .collect();
    for value in &hostile {
        store.set("c", value).await.unwrap();
        let result = store.increment("c", 1).await;
        assert!(
            matches!(result, Err(KvError::NotAnInteger)),
            "{:?}: {result:?}",
            String::from_utf8_lossy(value)
        );
        assert_eq!(store.get("c").await.unwrap().as_ref(), Some(value));
    }
    for (start, delta) in [(i64::MAX, 1), (i64::MIN, -1), (-1, i64::MIN), (1, i64::MAX)] {
        store.set("c", start.to_string().as_bytes()).await.unwrap();
        let result = store.increment("c", delta).await;
        assert!(
            matches!(result, Err(KvError::IntegerOverflow)),
            "{start} {delta}: {result:?}"
        );
        assert_eq!(
            store.get("c").await.unwrap(),
            Some(start.to_string().into_bytes())
        );
    }
    store.set("c", b"9223372036854775806").await.unwrap();
    assert_eq!(store.increment("c", 1).await.unwrap(), i64::MAX);
    store.set("c", b"1").await.unwrap();
    assert_eq!(store.increment("c", i64::MIN).await.unwrap(), i64::MIN + 1);
    assert_eq!(store.increment("c", -1).await.unwrap(), i64::MIN);
    store.delete("c").await.unwrap();
}

#[tokio::test]
async fn increment_keeps_a_live_ttl_and_drops_an_expired_one() {
    let Some(store) = fresh("increment-ttl").await else {
        return;
    };
    store
        .set_with_ttl("live", b"5", 60_000_000_000)
        .await
        .unwrap();
    assert_eq!(store.increment("live", 1).await.unwrap(), 6);
    assert_eq!(raw_row(&store, "live").await, Some((b"6".to_vec(), true)));

    raw_put(&store, "old", b"not even a counter", true).await;
    assert_eq!(store.increment("old", 3).await.unwrap(), 3);
    assert_eq!(raw_row(&store, "old").await, Some((b"3".to_vec(), false)));
    for key in ["live", "old"] {
        store.delete(key).await.unwrap();
    }
}

#[tokio::test]
async fn expired_rows_are_absent_for_every_operation_and_deleted_with_delete() {
    let Some(store) = fresh("expired").await else {
        return;
    };
    raw_put(&store, "gone", b"v", true).await;
    assert_eq!(store.get("gone").await.unwrap(), None);
    assert!(!store.exists("gone").await.unwrap());
    assert!(store.list_keys("").await.unwrap().is_empty());
    assert!(!store
        .compare_and_swap("gone", Some(b"v"), b"w")
        .await
        .unwrap());
    assert!(
        !store.delete("gone").await.unwrap(),
        "expired: not a live key"
    );
    assert_eq!(raw_row(&store, "gone").await, None, "the leftover went too");

    raw_put(&store, "gone", b"v", true).await;
    assert!(store.compare_and_swap("gone", None, b"new").await.unwrap());
    assert_eq!(
        raw_row(&store, "gone").await,
        Some((b"new".to_vec(), false))
    );
    store.delete("gone").await.unwrap();
}

#[tokio::test]
async fn the_sweeper_deletes_expired_rows_of_its_namespace_only() {
    let Some(server) = server() else {
        return;
    };
    let swept = PostgresBackend::builder(&server.url)
        .unwrap()
        .namespace(namespace("swept"))
        .sweep_interval(Some(Duration::from_millis(50)))
        .build()
        .await
        .unwrap();
    let other = PostgresBackend::builder(&server.url)
        .unwrap()
        .namespace(namespace("not-swept"))
        .sweep_interval(None)
        .build()
        .await
        .unwrap();
    let client = raw_client(&server.url).await;
    for store in [&swept, &other] {
        client
            .execute(
                &format!(
                    "INSERT INTO {} (namespace, key, value, expires_at) \
                     SELECT $1, convert_to('old/' || n, 'UTF8'), 'v', now() - interval '1 second' \
                     FROM generate_series(1, 1200) AS n",
                    store.table_name()
                ),
                &[&store.namespace()],
            )
            .await
            .unwrap();
        store.set("kept", b"v").await.unwrap();
        store
            .set_with_ttl("later", b"v", 60_000_000_000)
            .await
            .unwrap();
    }
    let count = |store: &PostgresBackend| {
        let (table, namespace) = (store.table_name(), store.namespace().to_owned());
        let client = &client;
        async move {
            let row = client
                .query_one(
                    &format!("SELECT count(*) FROM {table} WHERE namespace = $1"),
                    &[&namespace],
                )
                .await
                .unwrap();
            row.get::<_, i64>(0)
        }
    };
    let mut rows = count(&swept).await;
    for _ in 0..100 {
        if rows == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        rows = count(&swept).await;
    }
    assert_eq!(rows, 2, "only the live rows stay");
    assert_eq!(
        count(&other).await,
        1202,
        "another namespace's rows are its own"
    );
    assert_eq!(other.sweep_expired().await.unwrap(), 1200);
    assert_eq!(count(&other).await, 2);
    for store in [&swept, &other] {
        for key in ["kept", "later"] {
            assert!(store.delete(key).await.unwrap());
        }
    }
}

#[tokio::test]
async fn listing_pages_through_many_keys_in_byte_order() {
    let Some(store) = fresh("pages").await else {
        return;
    };
    // More than two pages, with keys whose byte order differs from any collation's.
    let mut keys: Vec<String> = (0..2100).map(|i| format!("p/{i:05}")).collect();
    keys.extend(["p/\0", "p/B", "p/a", "p/é", "p/\u{10FFFF}", "p/Z"].map(String::from));
    for key in &keys {
        store.set(key, b"").await.unwrap();
    }
    store.set("q/not-listed", b"").await.unwrap();
    keys.sort();
    assert_eq!(store.list_keys("p/").await.unwrap(), keys);
    assert_eq!(store.list_keys("p/é").await.unwrap(), ["p/é"]);
    assert_eq!(store.list_keys("p/001").await.unwrap().len(), 100);
    for key in keys.iter().chain([&"q/not-listed".to_owned()]) {
        store.delete(key).await.unwrap();
    }
}

#[tokio::test]
async fn a_table_made_by_hand_from_the_docs_opens_and_works() {
    let Some((table, client)) = scratch_table("by-hand").await else {
        return;
    };
    let statements = kv_postgres::create_table_statements(&table).unwrap();
    // Without the version comment, as a DBA might leave it.
    let without_comment: String = statements
        .lines()
        .filter(|line| !line.starts_with("COMMENT"))
        .collect::<Vec<_>>()
        .join("\n");
    client.batch_execute(&without_comment).await.unwrap();
    let store = PostgresBackend::from_url(&table_url(&table, "create_table=false"))
        .await
        .unwrap();
    store.set("k", b"v").await.unwrap();
    assert_eq!(store.get("k").await.unwrap(), Some(b"v".to_vec()));
    client
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_table_of_a_newer_version_or_another_shape_is_refused() {
    let Some((table, client)) = scratch_table("shapes").await else {
        return;
    };
    let open = |options: &'static str| {
        let url = table_url(&table, options);
        async move { PostgresBackend::from_url(&url).await.map(drop) }
    };

    let missing = open("create_table=false").await.unwrap_err();
    assert!(
        matches!(&missing, KvError::InvalidConfig(m) if m.contains("does not exist") && m.contains(&table)),
        "{missing}"
    );

    open("").await.expect("created when missing");
    open("create_table=false").await.expect("then it exists");
    client
        .batch_execute(&format!(
            "COMMENT ON TABLE {table} IS 'kv-postgres schema 99'"
        ))
        .await
        .unwrap();
    let newer = open("").await.unwrap_err();
    assert!(
        matches!(&newer, KvError::InvalidConfig(m) if m.contains("schema 99") && m.contains("upgrade")),
        "{newer}"
    );

    client
        .batch_execute(&format!(
            "DROP TABLE {table}; CREATE TABLE {table} (namespace text, key text, value bytea, \
             expires_at timestamptz, PRIMARY KEY (namespace, key))"
        ))
        .await
        .unwrap();
    let text_keys = open("").await.unwrap_err();
    assert!(
        matches!(&text_keys, KvError::InvalidConfig(m) if m.contains("`key`") && m.contains("bytea")),
        "{text_keys}"
    );

    client
        .batch_execute(&format!(
            "DROP TABLE {table}; CREATE TABLE {table} (namespace text, key bytea, value bytea, \
             expires_at timestamptz)"
        ))
        .await
        .unwrap();
    let no_key = open("").await.unwrap_err();
    assert!(
        matches!(&no_key, KvError::InvalidConfig(m) if m.contains("primary key")),
        "{no_key}"
    );
    client
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_backends_opening_at_once_create_the_table_once() {
    let Some((table, client)) = scratch_table("racing-opens").await else {
        return;
    };
    let url = table_url(&table, "");
    let opens: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresBackend::from_url(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.unwrap().expect("every open succeeds"));
    }
    stores[0].set("k", b"v").await.unwrap();
    assert_eq!(stores[7].get("k").await.unwrap(), Some(b"v".to_vec()));
    client
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_table_in_another_schema() {
    let Some((table, client)) = scratch_table("schema").await else {
        return;
    };
    let schema = format!("s_{table}");
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let qualified = format!("{schema}.kv");
    let store = PostgresBackend::from_url(&table_url(&qualified, ""))
        .await
        .unwrap();
    assert_eq!(store.table_name(), qualified);
    store.set("k", b"v").await.unwrap();
    let row = client
        .query_one(&format!("SELECT count(*) FROM {qualified}"), &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn item_level_rights_are_enough_once_the_table_exists() {
    let Some((table, client)) = scratch_table("rights").await else {
        return;
    };
    let role = format!("r_{table}");
    client
        .batch_execute(&kv_postgres::create_table_statements(&table).unwrap())
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'; \
             REVOKE CREATE ON SCHEMA public FROM PUBLIC; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role}"
        ))
        .await
        .unwrap();
    // The role's credentials on the same host and database.
    let host_and_db = server().unwrap().url.rsplit_once('@').unwrap().1;
    let url = format!("postgres://{role}:pw-{role}@{host_and_db}");
    for create in ["true", "false"] {
        let store = PostgresBackend::from_url(&format!(
            "{url}?table={table}&create_table={create}&namespace=n"
        ))
        .await
        .unwrap_or_else(|err| panic!("create_table={create}: {err}"));
        assert_eq!(
            store.increment("c", 1).await.unwrap(),
            if create == "true" { 1 } else { 2 }
        );
        assert!(store.compare_and_swap("l", None, b"x").await.unwrap() || create == "false");
        store.list_keys("").await.unwrap();
        store.sweep_expired().await.unwrap();
    }
    let denied = PostgresBackend::from_url(&format!("{url}?table={table}_new")).await;
    assert!(
        matches!(&denied, Err(KvError::Backend(_))),
        "creating a table without CREATE rights: {denied:?}"
    );
    client
        .batch_execute(&format!("DROP TABLE {table}; DROP ROLE {role}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn wrong_credentials_and_databases_are_configuration_errors() {
    let Some(server) = server() else {
        return;
    };
    let host_and_db = server.url.rsplit_once('@').unwrap().1;
    let (host, _) = host_and_db.split_once('/').unwrap();
    let wrong_password = format!("postgres://kvkit:not-the-password@{host}/postgres");
    let err = PostgresBackend::from_url(&wrong_password)
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::InvalidConfig(_)), "{err}");
    assert!(!err.to_string().contains("not-the-password"), "{err}");
    if let Some(password) = &server.password {
        let no_db = format!("postgres://kvkit:{password}@{host}/no_such_database");
        let err = PostgresBackend::from_url(&no_db).await.unwrap_err();
        assert!(
            matches!(&err, KvError::InvalidConfig(m) if m.contains("no_such_database")),
            "{err}"
        );
        assert!(!err.to_string().contains(password.as_str()), "{err}");
    }
}

#[tokio::test]
async fn nothing_listens_is_unavailable_within_the_connect_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let builder = PostgresBackendBuilder::from_url(&format!(
        "postgres://kvkit:secret@127.0.0.1:{port}/postgres?connect_timeout_ms=500"
    ))
    .unwrap();
    let err = builder.build().await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(!err.to_string().contains("secret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_is_judged_after_waiting_for_the_row_lock() {
    let Some(store) = fresh("clock-after-lock").await else {
        return;
    };
    store.set_with_ttl("k", b"5", 300_000_000).await.unwrap(); // 300 ms
    let mut locker = raw_client(&server().unwrap().url).await;
    let transaction = lock_row(&mut locker, &store, "k").await;
    // The increment starts while the key is live and waits for the lock past the deadline:
    // judged when it takes the lock, the key has expired, so it starts from 0 without a TTL.
    let increment = tokio::spawn({
        let store = store.clone();
        async move { store.increment("k", 1).await }
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    transaction.rollback().await.unwrap();
    assert_eq!(increment.await.unwrap().unwrap(), 1);
    assert_eq!(raw_row(&store, "k").await, Some((b"1".to_vec(), false)));
    store.delete("k").await.unwrap();
}
