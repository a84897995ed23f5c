//! `watch` on SQLite beyond the kit's check: every backend of this process on one file feeds
//! the same watchers, in commit order, whichever backend (and group-commit writer) made the
//! change.

use std::time::Duration;

use futures::StreamExt;
use kv_sqlite::SqliteBackend;
use kv_trait::{KvBackend, WatchEvent, WatchScope};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_of_one_file_share_watchers_and_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.db");
    let open = |namespace: &'static str| {
        let path = path.clone();
        async move {
            SqliteBackend::builder(path)
                .namespace(namespace)
                .build()
                .await
                .unwrap()
        }
    };
    let (a, b, other) = (open("app").await, open("app").await, open("other").await);
    assert_eq!(a.capabilities().watch, WatchScope::Process);
    let mut events = a.watch("n").await.unwrap();
    let mut elsewhere = other.watch("").await.unwrap();

    // Two backends (two writers, two queues) increment one counter at once: the watcher
    // must see 1, 2, 3, ... in order, each once.
    const EACH: i64 = 100;
    let tasks: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|store| {
            tokio::spawn(async move {
                for _ in 0..EACH {
                    store.increment("n", 1).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    for n in 1..=2 * EACH {
        let event = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("an event within 5 s")
            .expect("the stream goes on");
        assert_eq!(
            event,
            WatchEvent::Set {
                key: "n".into(),
                value: n.to_string().into_bytes()
            }
        );
    }
    // Another namespace of the same file saw none of it.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), elsewhere.next())
            .await
            .is_err()
    );
}
