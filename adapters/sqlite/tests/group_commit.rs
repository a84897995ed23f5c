//! Group commit: writes that arrive together share a transaction, and each stays all or
//! nothing: a failing write is rolled back alone, the rest of its batch commits.

mod common;

use kv_trait::{KvBackend, KvError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_write_in_a_shared_transaction_rolls_back_alone() {
    let fixture = common::file_store().await;
    let store = fixture.store.clone();
    store.set("text", b"not a number").await.expect("set");
    // 400 writes at once, so most share transactions with others: a quarter must fail.
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                match i % 4 {
                    0 => store.increment("text", 1).await.map(drop),
                    1 => store.increment("counter", 1).await.map(drop),
                    2 => store.set(&format!("key-{i:03}"), b"v").await,
                    _ => {
                        let swapped = store
                            .compare_and_swap("text", Some(b"something else"), b"x")
                            .await?;
                        assert!(!swapped, "a compare-and-swap matched a value never written");
                        Ok(())
                    }
                }
            })
        })
        .collect();
    let mut refused = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.expect("task") {
            Ok(()) => assert_ne!(i % 4, 0, "increment of a text value succeeded"),
            Err(KvError::NotAnInteger) => {
                assert_eq!(i % 4, 0, "write {i} failed with NotAnInteger");
                refused += 1;
            }
            Err(err) => panic!("write {i} failed: {err}"),
        }
    }
    assert_eq!(refused, 100);
    assert_eq!(
        store.get("text").await.expect("get"),
        Some(b"not a number".to_vec())
    );
    assert_eq!(
        store.get("counter").await.expect("get"),
        Some(b"100".to_vec())
    );
    assert_eq!(store.list_keys("key-").await.expect("list").len(), 100);
    // And what is on disk agrees, read by another connection.
    assert_eq!(
        common::query_i64(&fixture.path, "SELECT count(*) FROM kv_entries"),
        102
    );
}
