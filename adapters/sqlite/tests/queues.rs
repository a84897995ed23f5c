//! What waits, and for how long: reads between write batches on a single connection, and the
//! bound on operations held at once.
#![allow(
    clippy::disallowed_methods,
    reason = "the tests time themselves; no store decision reads this clock"
)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv_sqlite::SqliteBackendBuilder;
use kv_trait::KvBackend;

use common::{file_store, hold_write_lock};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_on_one_connection_is_answered_between_write_batches() {
    // One connection: reads and write batches take turns on it. A file, so that each commit
    // takes a sync, long enough for the writers to queue the next batch meanwhile.
    let fixture = file_store().await;
    let store = fixture.another(|b| b.pool_size(1)).await;
    store.set("probe", b"here").await.unwrap();
    let writing = Arc::new(AtomicBool::new(true));
    let mut writers = Vec::new();
    // More writers than a batch holds, so the queue never empties between batches.
    for task in 0..300 {
        let (store, writing) = (store.clone(), Arc::clone(&writing));
        writers.push(tokio::spawn(async move {
            let key = format!("w{task}");
            let mut n = 0u64;
            while writing.load(Ordering::Relaxed) {
                store.set(&key, &n.to_be_bytes()).await.unwrap();
                n += 1;
            }
            n
        }));
    }
    // Let the writers saturate the queue, then read in the middle of their stream.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(store.get("probe").await.unwrap(), Some(b"here".to_vec()));
        slowest = slowest.max(started.elapsed());
    }
    // Keep writing a while after the reads: a read stuck behind the stream would only be
    // answered once the writers stop.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    writing.store(false, Ordering::Relaxed);
    let mut written = 0;
    for writer in writers {
        written += writer.await.unwrap();
    }
    println!("slowest read: {slowest:?}, during {written} writes");
    assert!(
        written > 100,
        "the writers kept the queue busy ({written} writes)"
    );
    assert!(
        slowest < Duration::from_millis(500),
        "a read waited {slowest:?} behind the write stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_queued_operations_are_held_and_the_rest_wait_their_turn() {
    let fixture = file_store().await;
    let store = fixture.another(|b| b.max_queued(4)).await;
    // Another connection holds the write lock, so nothing the backend accepts can finish.
    let lock = hold_write_lock(&fixture.path);
    let calls: Vec<_> = (0..20)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.increment("n", 1).await.map(|_| n) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store.queued_operations(), 4, "held exactly the bound");
    lock.execute_batch("COMMIT").unwrap();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(store.get("n").await.unwrap(), Some(b"20".to_vec()));
    assert_eq!(store.queued_operations(), 0);
}

#[tokio::test]
async fn max_queued_must_be_at_least_one() {
    let err = SqliteBackendBuilder::in_memory()
        .max_queued(0)
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("max_queued"), "{err}");
}
