//! Rows another program wrote into kvkit's table with plain SQL, that no kvkit call would
//! write: keys that are not UTF-8, empty or too long; deadlines of `infinity`, `-infinity` and
//! the ends of `timestamptz`'s range; values that look like counters but are not canonical;
//! and tables whose shape another program changed. Every operation answers with a clear
//! error (`Backend` naming the problem, or the contract's own error) or the contract's
//! answer, never a panic, and leaves the raw row as it was; `set` replaces a foreign row.
//!
//! Tables of the wrong shape at open: a `key` of type `text` and a table without a primary
//! key are in `store.rs` (`a_table_of_a_newer_version_or_another_shape_is_refused`); the
//! other shapes are here.

mod common;

use std::num::NonZeroUsize;

use kv_postgres::PostgresBackend;
use kv_trait::{KvBackend, KvError};
use tokio_postgres::Client;

use common::{builder, raw_client, scratch_table, server, table_url};

/// A row as `psql` shows it: the value, and the deadline as PostgreSQL's text (`infinity`,
/// `2024-05-01 12:00:00+00`, ...) or NULL.
type RawRow = (Vec<u8>, Option<String>);

/// A plain connection on a store's table and namespace, writing and reading rows as another
/// program would.
struct Raw {
    client: Client,
    table: String,
    namespace: String,
}

impl Raw {
    async fn connect(store: &PostgresBackend) -> Self {
        let client = raw_client(&server().expect("a server, since the store exists").url).await;
        // Deadlines read back as text the same way whatever the server's default zone.
        client
            .batch_execute("SET TimeZone = 'UTC'")
            .await
            .expect("set the session's time zone");
        Self {
            client,
            table: store.table_name(),
            namespace: store.namespace().to_owned(),
        }
    }

    /// Inserts a row with any key bytes, any value and a deadline given as PostgreSQL text,
    /// or none.
    async fn put(&self, key: &[u8], value: &[u8], deadline: Option<&str>) {
        let sql = format!(
            "INSERT INTO {} (namespace, key, value, expires_at) \
             VALUES ($1, $2, $3, $4::text::timestamptz)",
            self.table
        );
        self.client
            .execute(&sql, &[&self.namespace, &key, &value, &deadline])
            .await
            .expect("raw insert");
    }

    async fn row(&self, key: &[u8]) -> Option<RawRow> {
        let sql = format!(
            "SELECT value, expires_at::text FROM {} WHERE namespace = $1 AND key = $2",
            self.table
        );
        self.client
            .query_opt(&sql, &[&self.namespace, &key])
            .await
            .expect("raw select")
            .map(|row| (row.get(0), row.get(1)))
    }

    async fn remove(&self, key: &[u8]) {
        let sql = format!(
            "DELETE FROM {} WHERE namespace = $1 AND key = $2",
            self.table
        );
        self.client
            .execute(&sql, &[&self.namespace, &key])
            .await
            .expect("raw delete");
    }

    async fn clear(&self) {
        let sql = format!("DELETE FROM {} WHERE namespace = $1", self.table);
        self.client
            .execute(&sql, &[&self.namespace])
            .await
            .expect("raw delete of the namespace");
    }
}

/// A backend in a fresh namespace without a sweeper, so that expired foreign rows stay until
/// a test looks at them.
async fn fresh(label: &str) -> Option<PostgresBackend> {
    Some(
        builder(label)?
            .sweep_interval(None)
            .build()
            .await
            .expect("open the backend"),
    )
}

fn page(limit: usize) -> NonZeroUsize {
    NonZeroUsize::new(limit).expect("not zero")
}

fn backend_error_saying<T: std::fmt::Debug>(result: &Result<T, KvError>, says: &str) -> bool {
    matches!(result, Err(KvError::Backend(err)) if err.to_string().contains(says))
}

/// Runs every operation that reads `key` without writing it and checks the contract's answer
/// for a row that is live holding `live` (`Some`) or has expired (`None`); then that the raw
/// row is byte for byte as it was.
async fn reads_answer_and_change_nothing(
    store: &PostgresBackend,
    raw: &Raw,
    key: &str,
    live: Option<&[u8]>,
) {
    let before = raw.row(key.as_bytes()).await.expect("the foreign row");
    let live = live.map(<[u8]>::to_vec);
    assert_eq!(store.get(key).await.expect("get"), live, "get {key}");
    assert_eq!(
        store.exists(key).await.expect("exists"),
        live.is_some(),
        "exists {key}"
    );
    assert_eq!(
        store.get_many(&[key, key]).await.expect("get_many"),
        [live.clone(), live.clone()],
        "get_many {key}"
    );
    let listed = store.list_keys(key).await.expect("list_keys");
    assert_eq!(
        listed.contains(&key.to_owned()),
        live.is_some(),
        "list_keys {key}: {listed:?}"
    );
    let paged = store
        .list_keys_page(key, None, page(1))
        .await
        .expect("list_keys_page");
    assert_eq!(
        paged.keys.first() == Some(&key.to_owned()),
        live.is_some(),
        "list_keys_page {key}: {paged:?}"
    );
    // A comparison that fails writes nothing.
    let swapped = store
        .compare_and_swap(key, Some(b"\xfenot the value"), b"new")
        .await
        .expect("compare_and_swap of Some");
    assert!(!swapped, "compare_and_swap of a value {key} does not hold");
    if live.is_some() {
        // Present, so not taken over (on an expired row it would write, as it should).
        assert!(
            !store
                .compare_and_swap(key, None, b"new")
                .await
                .expect("compare_and_swap of None"),
            "{key}"
        );
    }
    assert_eq!(
        raw.row(key.as_bytes()).await.as_ref(),
        Some(&before),
        "the reads changed the row of {key}"
    );
}

#[tokio::test]
async fn keys_no_call_could_write_fail_the_listings_that_reach_them() {
    let Some(store) = fresh("hostile-keys").await else {
        return;
    };
    let raw = Raw::connect(&store).await;
    for key in ["a", "b", "z"] {
        store.set(key, b"mine").await.unwrap();
    }
    let too_long = format!("h{}", "x".repeat(1024));
    // (key bytes, what the error says, the valid keys that sort before it)
    let foreign: [(&[u8], &str, &[&str]); 4] = [
        (
            b"h\xc3(",
            "not UTF-8 (3 bytes, starting b\"h\\xc3(\")",
            &["a", "b"],
        ),
        (b"\xf5\x80", "not UTF-8", &["a", "b", "z"]),
        (b"", "the key is empty", &[]),
        (too_long.as_bytes(), "1025 bytes long", &["a", "b"]),
    ];
    for (key, says, before) in foreign {
        raw.put(key, b"theirs", None).await;
        let shown = String::from_utf8_lossy(&key[..key.len().min(8)]).into_owned();

        let listed = store.list_keys("").await;
        assert!(
            backend_error_saying(&listed, says),
            "list_keys over {shown:?}: {listed:?}"
        );
        assert!(
            backend_error_saying(&listed, "not written by kvkit"),
            "{listed:?}"
        );
        // Pages before the foreign key come back; the page that holds it fails the same way.
        let (mut seen, mut after) = (Vec::new(), None::<String>);
        let failed = loop {
            match store.list_keys_page("", after.as_deref(), page(1)).await {
                Ok(page) => {
                    seen.extend(page.keys);
                    match page.next {
                        Some(next) => after = Some(next),
                        None => break None,
                    }
                }
                Err(err) => break Some(err),
            }
        };
        assert_eq!(seen, before, "pages before {shown:?}");
        assert!(
            matches!(&failed, Some(KvError::Backend(err)) if err.to_string().contains(says)),
            "the page holding {shown:?}: {failed:?}"
        );
        // Listings whose range does not reach it, and every operation on the keys kvkit
        // wrote, go on working.
        assert_eq!(store.list_keys("a").await.unwrap(), ["a"]);
        let page_of_z = store.list_keys_page("z", None, page(10)).await.unwrap();
        assert_eq!(page_of_z.keys, ["z"]);
        assert_eq!(
            store.get_many(&["a", "b", "z"]).await.unwrap(),
            [
                Some(b"mine".to_vec()),
                Some(b"mine".to_vec()),
                Some(b"mine".to_vec())
            ]
        );
        assert!(store.exists("b").await.unwrap());
        // A key that is UTF-8 but breaks the key rules cannot even be asked about.
        if let Ok(text) = std::str::from_utf8(key) {
            let read = store.get(text).await;
            assert!(matches!(read, Err(KvError::InvalidKey(_))), "{read:?}");
            let set = store.set(text, b"x").await;
            assert!(matches!(set, Err(KvError::InvalidKey(_))), "{set:?}");
        }
        assert_eq!(
            raw.row(key).await,
            Some((b"theirs".to_vec(), None)),
            "{shown:?} is still there as it was"
        );
        raw.remove(key).await;
        assert_eq!(store.list_keys("").await.unwrap(), ["a", "b", "z"]);
    }

    // A key starting with byte 0xFF (which no UTF-8 string does) lies outside the range of
    // every prefix, the empty one too: never listed, never an error.
    raw.put(b"\xff\xfe", b"theirs", None).await;
    assert_eq!(store.list_keys("").await.unwrap(), ["a", "b", "z"]);
    let all = store.list_keys_page("", None, page(10)).await.unwrap();
    assert_eq!(all.keys, ["a", "b", "z"]);
    assert_eq!(all.next, None);
    // An expired foreign key is not listed either, and the sweeper deletes it.
    raw.put(b"h\xc3(", b"theirs", Some("-infinity")).await;
    assert_eq!(store.list_keys("").await.unwrap(), ["a", "b", "z"]);
    assert_eq!(store.sweep_expired().await.unwrap(), 1);
    assert_eq!(raw.row(b"h\xc3(").await, None);
    assert_eq!(
        raw.row(b"\xff\xfe").await,
        Some((b"theirs".to_vec(), None)),
        "a live row: not swept"
    );
    raw.clear().await;
}

#[tokio::test]
async fn foreign_deadlines_are_judged_on_the_servers_clock_like_any_other() {
    let Some(store) = fresh("hostile-deadlines").await else {
        return;
    };
    let raw = Raw::connect(&store).await;
    // (key, deadline, live) with the value `5`: a counter, and a value like any other.
    let rows = [
        ("none", None, true),
        ("infinity", Some("infinity"), true),
        ("far-future", Some("200000-01-01 00:00:00+00"), true),
        ("minus-infinity", Some("-infinity"), false),
        ("far-past", Some("4000-01-01 00:00:00+00 BC"), false),
        ("epoch", Some("1970-01-01 00:00:00+00"), false),
        ("swept", Some("-infinity"), false),
    ];
    for (key, deadline, _) in rows {
        raw.put(key.as_bytes(), b"5", deadline).await;
    }
    for (key, _, live) in rows {
        reads_answer_and_change_nothing(&store, &raw, key, live.then_some(b"5".as_slice())).await;
    }
    assert_eq!(
        store.list_keys("").await.unwrap(),
        ["far-future", "infinity", "none"]
    );

    // `increment` keeps a live counter's deadline, infinite or not, and starts an expired one
    // over without one.
    assert_eq!(store.increment("infinity", 1).await.unwrap(), 6);
    assert_eq!(
        raw.row(b"infinity").await,
        Some((b"6".to_vec(), Some("infinity".to_owned())))
    );
    let far = raw.row(b"far-future").await.expect("the row").1;
    assert_eq!(store.increment("far-future", -1).await.unwrap(), 4);
    assert_eq!(raw.row(b"far-future").await, Some((b"4".to_vec(), far)));
    assert_eq!(store.increment("minus-infinity", 3).await.unwrap(), 3);
    assert_eq!(
        raw.row(b"minus-infinity").await,
        Some((b"3".to_vec(), None))
    );
    // A compare-and-swap takes over an expired row and writes no deadline; `set` drops an
    // infinite one; `set_with_ttl` replaces it with a finite one; `delete` of an expired
    // row removes it and says it was not live.
    assert!(store
        .compare_and_swap("far-past", None, b"new")
        .await
        .unwrap());
    assert_eq!(raw.row(b"far-past").await, Some((b"new".to_vec(), None)));
    assert!(store
        .compare_and_swap("none", Some(b"5"), b"6")
        .await
        .unwrap());
    assert_eq!(raw.row(b"none").await, Some((b"6".to_vec(), None)));
    store.set("infinity", b"mine").await.unwrap();
    assert_eq!(raw.row(b"infinity").await, Some((b"mine".to_vec(), None)));
    store
        .set_with_ttl("far-future", b"mine", 60_000_000_000)
        .await
        .unwrap();
    let (value, deadline) = raw.row(b"far-future").await.expect("the row");
    assert_eq!(value, b"mine");
    assert!(
        deadline.as_deref().is_some_and(|d| d.starts_with("20")),
        "a deadline a minute ahead: {deadline:?}"
    );
    assert!(!store.delete("epoch").await.unwrap());
    assert_eq!(raw.row(b"epoch").await, None);
    // The sweeper deletes the one expired row left.
    assert_eq!(store.sweep_expired().await.unwrap(), 1);
    assert_eq!(raw.row(b"swept").await, None);
    assert_eq!(
        store.list_keys("").await.unwrap(),
        [
            "far-future",
            "far-past",
            "infinity",
            "minus-infinity",
            "none"
        ]
    );
    raw.clear().await;
}

#[tokio::test]
async fn foreign_values_that_are_not_canonical_counters_are_not_an_integer_and_stay() {
    let Some(store) = fresh("hostile-counters").await else {
        return;
    };
    let raw = Raw::connect(&store).await;
    let hostile: [&[u8]; 16] = [
        b" 1",
        b"1 ",
        b"+1",
        b"01",
        b"-0",
        b"1.5",
        b"12345678901234567890",
        b"-12345678901234567890",
        b"9223372036854775808",
        b"\xff",
        b"1\xff",
        b"1\n",
        b"\n1",
        b"",
        "\u{661}".as_bytes(), // an Arabic-Indic digit one
        b"\\061",
    ];
    for (n, value) in hostile.into_iter().enumerate() {
        let key = format!("c{n:02}");
        // Half of them live with a deadline, which must survive the refusal too.
        let deadline = (n % 2 == 1).then_some("infinity");
        raw.put(key.as_bytes(), value, deadline).await;
        let shown = String::from_utf8_lossy(value).into_owned();

        let bumped = store.increment(&key, 1).await;
        assert!(
            matches!(bumped, Err(KvError::NotAnInteger)),
            "increment of {shown:?}: {bumped:?}"
        );
        let by_zero = store.increment(&key, 0).await;
        assert!(
            matches!(by_zero, Err(KvError::NotAnInteger)),
            "increment by 0 of {shown:?}: {by_zero:?}"
        );
        assert_eq!(
            raw.row(key.as_bytes()).await,
            Some((value.to_vec(), deadline.map(str::to_owned))),
            "increment changed the row of {shown:?}"
        );
        // Not a counter, but a value like any other for everything else.
        reads_answer_and_change_nothing(&store, &raw, &key, Some(value)).await;
    }

    // The extremes of the canonical form, written by hand, are counters.
    raw.put(b"min", b"-9223372036854775808", None).await;
    assert_eq!(store.increment("min", 1).await.unwrap(), i64::MIN + 1);
    raw.put(b"max", b"9223372036854775807", Some("infinity"))
        .await;
    let overflow = store.increment("max", 1).await;
    assert!(
        matches!(overflow, Err(KvError::IntegerOverflow)),
        "{overflow:?}"
    );
    assert_eq!(
        raw.row(b"max").await,
        Some((b"9223372036854775807".to_vec(), Some("infinity".to_owned())))
    );

    // `set` replaces a foreign value (and its deadline) with one kvkit counts with.
    store.set("c01", b"41").await.unwrap();
    assert_eq!(store.increment("c01", 1).await.unwrap(), 42);
    assert_eq!(raw.row(b"c01").await, Some((b"42".to_vec(), None)));
    raw.clear().await;
}

/// A table name no other test uses, with a raw client on its database.
async fn open(table: &str, options: &str) -> Result<PostgresBackend, KvError> {
    PostgresBackend::from_url(&table_url(table, options)).await
}

#[tokio::test]
async fn tables_of_another_shape_are_refused_at_open_naming_the_problem() {
    let Some((table, client)) = scratch_table("hostile-shapes").await else {
        return;
    };
    let good = [
        "namespace text COLLATE \"C\" NOT NULL",
        "key bytea NOT NULL",
        "value bytea NOT NULL",
        "expires_at timestamptz",
    ];
    // (the column that differs from the good ones, its definition (none: missing), what the
    // error names)
    let shapes: [(usize, &str, &[&str]); 6] = [
        (
            3,
            "",
            &["no column `expires_at`", "timestamp with time zone"],
        ),
        (2, "", &["no column `value`", "bytea"]),
        (
            3,
            "expires_at timestamp",
            &[
                "`expires_at`",
                "timestamp without time zone",
                "not timestamp with time zone",
            ],
        ),
        (2, "value text NOT NULL", &["`value`", "is text, not bytea"]),
        (2, "value bytea", &["`value`", "allows NULL"]),
        (
            3,
            "expires_at timestamptz NOT NULL",
            &["`expires_at`", "is NOT NULL"],
        ),
    ];
    for (index, definition, says) in shapes {
        let mut columns = good.to_vec();
        columns[index] = definition;
        columns.retain(|column| !column.is_empty());
        let create = format!(
            "DROP TABLE IF EXISTS {table}; \
             CREATE TABLE {table} ({}, PRIMARY KEY (namespace, key))",
            columns.join(", ")
        );
        client.batch_execute(&create).await.unwrap();
        for options in ["create_table=false", "create_table=true"] {
            let opened = open(&table, options).await;
            assert!(
                matches!(&opened, Err(KvError::InvalidConfig(m))
                    if m.contains(&table) && says.iter().all(|s| m.contains(s))),
                "{create} ({options}): {:?}",
                opened.map(drop)
            );
        }
    }
    // An extra NOT NULL column kv-postgres would not fill.
    client
        .batch_execute(&format!(
            "DROP TABLE {table}; CREATE TABLE {table} ({}, owner text NOT NULL, \
             PRIMARY KEY (namespace, key))",
            good.join(", ")
        ))
        .await
        .unwrap();
    let opened = open(&table, "").await;
    assert!(
        matches!(&opened, Err(KvError::InvalidConfig(m)) if m.contains("NOT NULL column `owner`")),
        "{:?}",
        opened.map(drop)
    );
    // The same columns with the good constraints open.
    client
        .batch_execute(&format!(
            "DROP TABLE {table}; CREATE TABLE {table} ({}, PRIMARY KEY (namespace, key))",
            good.join(", ")
        ))
        .await
        .unwrap();
    let store = open(&table, "create_table=false").await.unwrap();
    store.set("k", b"v").await.unwrap();
    assert_eq!(store.get("k").await.unwrap(), Some(b"v".to_vec()));
    client
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_table_changed_under_an_open_backend_gives_errors_not_panics() {
    let Some((table, client)) = scratch_table("hostile-altered").await else {
        return;
    };
    let options = "pool_size=1&sweep_interval_ms=0&namespace=n";
    let store = open(&table, options).await.unwrap();
    store.set("k", b"1").await.unwrap();
    assert_eq!(store.get("k").await.unwrap(), Some(b"1".to_vec()));

    // Another program lets the value column hold NULL, and writes a NULL value.
    client
        .batch_execute(&format!(
            "ALTER TABLE {table} ALTER COLUMN value DROP NOT NULL; \
             INSERT INTO {table} (namespace, key, value) VALUES ('n', 'null', NULL)"
        ))
        .await
        .unwrap();
    let null_row = || {
        let sql = format!(
            "SELECT value IS NULL, expires_at IS NULL FROM {table} \
             WHERE namespace = 'n' AND key = 'null'"
        );
        let client = &client;
        async move {
            let row = client.query_one(&sql, &[]).await.unwrap();
            (row.get::<_, bool>(0), row.get::<_, bool>(1))
        }
    };
    let bumped = store.increment("null", 1).await;
    assert!(matches!(bumped, Err(KvError::NotAnInteger)), "{bumped:?}");
    assert!(store.exists("null").await.unwrap());
    assert_eq!(store.list_keys("").await.unwrap(), ["k", "null"]);
    assert!(!store
        .compare_and_swap("null", Some(b""), b"x")
        .await
        .unwrap());
    assert!(!store.compare_and_swap("null", None, b"x").await.unwrap());
    // `get` cannot tell a NULL value from an expired row (both read as NULL), so it answers
    // absent; what matters here is that it does not panic. Opening refuses such a table.
    let read = store.get("null").await;
    assert!(
        matches!(read, Ok(None) | Err(KvError::Backend(_))),
        "{read:?}"
    );
    let many = store.get_many(&["null", "k"]).await;
    assert!(
        matches!(&many, Ok(values) if values[1] == Some(b"1".to_vec()))
            || matches!(many, Err(KvError::Backend(_))),
        "{many:?}"
    );
    assert_eq!(
        null_row().await,
        (true, true),
        "the NULL value is untouched"
    );
    store.set("null", b"mine").await.unwrap();
    assert_eq!(null_row().await, (false, true), "set replaced it");
    assert_eq!(store.get("null").await.unwrap(), Some(b"mine".to_vec()));
    let reopened = open(&table, options).await;
    assert!(
        matches!(&reopened, Err(KvError::InvalidConfig(m)) if m.contains("`value`") && m.contains("allows NULL")),
        "{:?}",
        reopened.map(drop)
    );

    // Another program changes the value column to text. A backend whose connection has not
    // prepared its statements yet finds a text column where it expects bytea; one that has
    // finds its prepared statements invalid. Either way: `Backend`, not a panic, and not
    // `Unavailable` (retrying cannot help).
    client
        .batch_execute(&format!(
            "ALTER TABLE {table} ALTER COLUMN value SET NOT NULL"
        ))
        .await
        .unwrap();
    let unprepared = open(&table, options).await.unwrap();
    client
        .batch_execute(&format!(
            "ALTER TABLE {table} ALTER COLUMN value TYPE text USING convert_from(value, 'UTF8')"
        ))
        .await
        .unwrap();
    for (name, backend) in [("unprepared", &unprepared), ("prepared", &store)] {
        let read = backend.get("k").await;
        assert!(
            matches!(read, Err(KvError::Backend(_))),
            "{name} get: {read:?}"
        );
        let many = backend.get_many(&["k"]).await;
        assert!(
            matches!(many, Err(KvError::Backend(_))),
            "{name} get_many: {many:?}"
        );
        let bumped = backend.increment("k", 1).await;
        assert!(
            matches!(bumped, Err(KvError::Backend(_))),
            "{name} increment: {bumped:?}"
        );
        let swapped = backend.compare_and_swap("k", Some(b"1"), b"2").await;
        assert!(
            matches!(swapped, Err(KvError::Backend(_))),
            "{name} compare_and_swap: {swapped:?}"
        );
        // Reads of the key column and the deadline still work.
        assert!(backend.exists("k").await.unwrap());
        assert_eq!(backend.list_keys("").await.unwrap(), ["k", "null"]);
    }
    let value: String = client
        .query_one(
            &format!("SELECT value FROM {table} WHERE namespace = 'n' AND key = 'k'"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(value, "1", "nothing was written");
    let reopened = open(&table, options).await;
    assert!(
        matches!(&reopened, Err(KvError::InvalidConfig(m)) if m.contains("`value`") && m.contains("text")),
        "{:?}",
        reopened.map(drop)
    );
    client
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}
