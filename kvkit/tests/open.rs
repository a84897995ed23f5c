//! `kvkit::open`: every URL form opens the store it names, and bad URLs fail clearly.

use kvkit::{open, KvError, Target};

#[tokio::test]
async fn anonymous_memory_stores_are_private() {
    let a = open("memory://").await.unwrap();
    let b = open("memory://").await.unwrap();
    a.set("k", b"v").await.unwrap();
    assert_eq!(b.get("k").await.unwrap(), None);
}

#[tokio::test]
async fn named_memory_stores_are_shared_in_process_and_namespaced() {
    let a = open("memory://open-test-shared").await.unwrap();
    let b = open("memory://open-test-shared").await.unwrap();
    a.set("k", b"v").await.unwrap();
    assert_eq!(b.get("k").await.unwrap(), Some(b"v".to_vec()));
    let other = open("memory://open-test-shared?namespace=other")
        .await
        .unwrap();
    assert_eq!(other.get("k").await.unwrap(), None);
}

#[tokio::test]
async fn two_opens_of_one_sqlite_file_share_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?namespace=app",
        dir.path().join("kv.db").display()
    );
    let a = open(&url).await.unwrap();
    let b = open(&url).await.unwrap();
    assert_eq!(a.increment("n", 1).await.unwrap(), 1);
    assert_eq!(b.increment("n", 1).await.unwrap(), 2);
    let elsewhere = Target::parse(&url)
        .unwrap()
        .with_namespace("elsewhere")
        .open()
        .await
        .unwrap();
    assert_eq!(elsewhere.get("n").await.unwrap(), None);
}

#[tokio::test]
async fn sqlite_memory_is_private_per_open() {
    let a = open("sqlite::memory:").await.unwrap();
    let b = open("sqlite::memory:?namespace=x").await.unwrap();
    a.set("k", b"v").await.unwrap();
    assert_eq!(a.get("k").await.unwrap(), Some(b"v".to_vec()));
    assert_eq!(b.get("k").await.unwrap(), None);
}

#[tokio::test]
async fn bad_urls_are_invalid_config_naming_the_problem() {
    let cases = [
        ("ftp://host/file", "unknown scheme `ftp`"),
        ("not a url", "not a store URL"),
        ("memory://x?colour=blue", "unknown URL option `colour`"),
        ("sqlite:///tmp/kv.db?colour=blue", "colour"),
        (
            "sqlite:///tmp/kv.db?namespace=a&namespace=b",
            "more than once",
        ),
    ];
    for (url, needle) in cases {
        match open(url).await {
            Err(KvError::InvalidConfig(message)) => {
                assert!(message.contains(needle), "{url}: {message}")
            }
            Err(other) => panic!("{url}: expected InvalidConfig, got {other}"),
            Ok(_) => panic!("{url}: opened"),
        }
    }
}

#[test]
fn debug_and_display_hide_passwords() {
    // A URL with a password fails to parse as a known store here, but must never echo it.
    let err = Target::parse("nosql://admin:s3cret@db.internal")
        .unwrap_err()
        .to_string();
    assert!(!err.contains("s3cret"), "{err}");
    let target = Target::parse("memory://cache?namespace=a").unwrap();
    assert_eq!(target.to_string(), "memory://cache?namespace=a");
    assert!(format!("{target:?}").contains("namespace"));
}

#[tokio::test]
async fn layer_options_put_their_layers_around_any_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.db");
    let plain = open(&format!("sqlite://{}?namespace=app", path.display()))
        .await
        .unwrap();
    plain.set("k", b"v").await.unwrap();

    // Every call fails before it reaches the file: the layer, not SQLite, answered.
    let failing = format!(
        "sqlite://{}?chaos_unavailable=1&namespace=app",
        path.display()
    );
    let target = Target::parse(&failing).unwrap();
    assert!(target.has_layers() && target.namespace() == "app");
    let store = target.open().await.unwrap();
    assert!(store.get("k").await.unwrap_err().is_not_sent());
    assert!(store.set("k", b"other").await.unwrap_err().is_not_sent());
    assert_eq!(plain.get("k").await.unwrap(), Some(b"v".to_vec()));

    // With retries on top, a failure the store never saw is retried until its budget is out.
    let started = std::time::Instant::now();
    let retried = open("memory://?chaos_unavailable=1&retries=2&retry_budget=1s")
        .await
        .unwrap();
    assert!(retried.get("k").await.unwrap_err().is_not_sent());
    assert!(started.elapsed() < std::time::Duration::from_secs(2));

    // A slow store under a short timeout.
    let slow = open("memory://?chaos_latency=300ms&timeout=30ms")
        .await
        .unwrap();
    let err = slow.get("k").await.unwrap_err().to_string();
    assert!(err.contains("did not finish within 30ms"), "{err}");

    // Layer options are checked like the adapter's own, and never quote a password.
    let err = open("redis://u:SECRET@127.0.0.1:1?timeout=soon")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`timeout=soon`") && !err.contains("SECRET"),
        "{err}"
    );
    assert!(!Target::parse("memory://").unwrap().has_layers());
}
