//! Rows another program put in the file, with the wrong column types or keys no kvkit call
//! could write: every operation answers with a clear `Backend` error or a defined outcome,
//! never a panic, and the rows stay as they were until a kvkit write replaces them.

use kv_sqlite::SqliteBackend;
use kv_trait::{KvBackend, KvError};
use rusqlite::{params, Connection};

fn is_backend<T: std::fmt::Debug>(result: &Result<T, KvError>) -> bool {
    matches!(result, Err(KvError::Backend(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_the_wrong_types_give_backend_errors_and_change_nothing() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("kv.db");
    let store = SqliteBackend::open(&path).await.expect("open");
    let raw = Connection::open(&path).expect("a plain connection");
    let insert =
        "INSERT INTO kv_entries (namespace, key, expires_at, value) VALUES ('', ?1, ?2, ?3)";
    // A value stored as an INTEGER, a deadline stored as text.
    raw.execute(insert, params![b"int".as_slice(), None::<i64>, 42_i64])
        .unwrap();
    raw.execute(insert, params![b"when".as_slice(), "soon", b"v".as_slice()])
        .unwrap();

    for key in ["int", "when"] {
        let read = store.get(key).await;
        assert!(is_backend(&read), "get of {key}: {read:?}");
        let bumped = store.increment(key, 1).await;
        assert!(is_backend(&bumped), "increment of {key}: {bumped:?}");
        let swapped = store.compare_and_swap(key, Some(b"v"), b"new").await;
        assert!(
            is_backend(&swapped),
            "compare_and_swap of {key}: {swapped:?}"
        );
        let many = store.get_many(&[key]).await;
        assert!(is_backend(&many), "get_many of {key}: {many:?}");
    }
    let listed = store.list_keys("").await;
    assert!(
        is_backend(&listed),
        "list_keys over a text deadline: {listed:?}"
    );
    // Nothing changed them.
    let kinds: Vec<(String, String)> = raw
        .prepare("SELECT typeof(value), typeof(expires_at) FROM kv_entries ORDER BY key")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        kinds,
        [
            ("integer".to_owned(), "null".to_owned()),
            ("blob".to_owned(), "text".to_owned())
        ]
    );
    // `delete` must read the deadline to answer whether the key was live: Backend, and the
    // row stays. A kvkit write replaces such a row, after which delete works.
    let deleted = store.delete("when").await;
    assert!(
        is_backend(&deleted),
        "delete of a text deadline: {deleted:?}"
    );
    store.set("int", b"7").await.unwrap();
    assert_eq!(store.increment("int", 1).await.unwrap(), 8);
    store.set("when", b"mine now").await.unwrap();
    assert!(store.delete("when").await.unwrap());
    assert_eq!(store.list_keys("").await.unwrap(), ["int"]);

    // A key that is not UTF-8 cannot be listed as a `String`: a Backend error that says so.
    raw.execute(
        insert,
        params![b"\xff\xfe".as_slice(), None::<i64>, b"v".as_slice()],
    )
    .unwrap();
    let listed = store.list_keys("").await;
    assert!(
        matches!(&listed, Err(KvError::Backend(e)) if e.to_string().contains("not UTF-8")),
        "{listed:?}"
    );
    assert_eq!(store.get("int").await.unwrap(), Some(b"8".to_vec()));
}
