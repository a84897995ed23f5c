//! Atomicity between connections and backends on one file, lock contention, dropped calls,
//! and running without a Tokio runtime.

mod common;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use kv_sqlite::SqliteBackend;
use kv_trait::{KvBackend, KvError};

use common::{file_store, hold_write_lock, raw};

/// Two backends on one file: the store is shared, so the kit's shared-store checks apply.
async fn two_backends_on_one_file() -> (common::FileStore, [Arc<dyn KvBackend>; 2]) {
    let fixture = file_store().await;
    let other = SqliteBackend::open(&fixture.path)
        .await
        .expect("a second backend on the file");
    let handles: [Arc<dyn KvBackend>; 2] = [Arc::new(fixture.store.clone()), Arc::new(other)];
    (fixture, handles)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_from_two_backends_on_one_file_are_exact_and_distinct() {
    let (_fixture, handles) = two_backends_on_one_file().await;
    let checked = kv_conformance::shared_store::increments_across(&handles, 8, 25).await;
    checked.unwrap_or_else(|failure| panic!("{failure}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_swap_contention_across_two_backends_has_one_winner_per_round() {
    let (_fixture, handles) = two_backends_on_one_file().await;
    let checked = kv_conformance::shared_store::cas_rounds_across(&handles, 15, 4).await;
    checked.unwrap_or_else(|failure| panic!("{failure}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_past_the_busy_timeout_is_unavailable_and_changes_nothing() {
    let fixture = file_store().await;
    fixture.store.set("k", b"before").await.unwrap();
    let impatient = fixture
        .another(|b| b.busy_timeout(Duration::from_millis(50)))
        .await;

    let lock = hold_write_lock(&fixture.path);
    for err in [
        impatient.set("k", b"during").await.unwrap_err(),
        impatient.increment("n", 1).await.unwrap_err(),
        impatient
            .compare_and_swap("k", Some(b"before"), b"x")
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, KvError::Unavailable(_)), "{err:?}");
        assert!(err.is_retryable());
    }
    // WAL: readers do not wait for the writer.
    assert_eq!(impatient.get("k").await.unwrap(), Some(b"before".to_vec()));
    assert_eq!(impatient.list_keys("").await.unwrap(), ["k"]);
    lock.execute_batch("ROLLBACK").unwrap();

    assert_eq!(impatient.get("n").await.unwrap(), None);
    impatient.set("k", b"after").await.unwrap();
    assert_eq!(
        fixture.store.get("k").await.unwrap(),
        Some(b"after".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_wait_for_a_briefly_held_lock_instead_of_failing() {
    let fixture = file_store().await;
    let path = fixture.path.clone();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let mut conn = raw(&path);
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        locked_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        tx.commit().unwrap();
    });
    locked_rx.recv().unwrap();
    assert_eq!(fixture.store.increment("n", 1).await.unwrap(), 1);
    holder.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_dropped_before_they_start_do_nothing_and_leak_no_connection() {
    let fixture = file_store().await;
    // One connection: a leaked connection would stop the backend, and jobs run in order.
    let store = fixture.another(|b| b.pool_size(1)).await;
    let lock = hold_write_lock(&fixture.path);
    for _ in 0..6 {
        // Each call is abandoned while it waits for the lock (or for a connection).
        let abandoned = tokio::time::timeout(Duration::from_millis(5), store.increment("n", 1));
        assert!(abandoned.await.is_err());
        let abandoned = tokio::time::timeout(Duration::from_millis(5), store.get("n"));
        assert!(abandoned.await.is_err());
    }
    lock.execute_batch("COMMIT").unwrap();
    // None of the abandoned increments had started, so none ran; the connection still works.
    assert_eq!(store.increment("n", 1).await.unwrap(), 1);
    assert_eq!(store.get("n").await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(store.queued_operations(), 0, "every place was given back");
}

/// The smallest executor: polls one future on the current thread, parking between wakes.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

#[test]
fn works_without_a_tokio_runtime() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let store = SqliteBackend::open(dir.path().join("kv.db")).await.unwrap();
        store.set("k", b"v").await.unwrap();
        assert_eq!(store.get("k").await.unwrap(), Some(b"v".to_vec()));
        assert_eq!(store.increment("n", 2).await.unwrap(), 2);
        let keys: BTreeSet<String> = store.list_keys("").await.unwrap().into_iter().collect();
        assert_eq!(keys.len(), 2);
    });
}

/// A write that judged a row live just before its deadline (an `increment` or a
/// compare-and-swap) may commit after the deadline. A read that finds the row expired
/// meanwhile waits for that write, instead of answering "gone" and letting its value appear
/// after (not linearizable). Here a raw connection plays that writer, as another process
/// would: it holds the write lock with the expired row rewritten, not committed yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_of_an_expired_row_waits_for_the_write_in_progress() {
    let fixture = file_store().await;
    for read in ["get", "exists", "get_many"] {
        let store = fixture.store.clone();
        store.set_with_ttl("k", b"old", 20_000_000).await.unwrap();
        common::sleep_ms(60).await;
        let writer = hold_write_lock(&fixture.path);
        let rewritten = writer
            .execute(
                "UPDATE kv_entries SET value = ?1, expires_at = NULL \
                 WHERE namespace = ?2 AND key = ?3",
                rusqlite::params![&b"new"[..], store.namespace(), &b"k"[..]],
            )
            .unwrap();
        assert_eq!(rewritten, 1, "{read}: the writer holds the expired row");
        let reading = tokio::spawn(async move {
            match read {
                "get" => store.get("k").await.map(|value| value.is_some()),
                "exists" => store.exists("k").await,
                _ => store
                    .get_many(&["k"])
                    .await
                    .map(|values| values[0].is_some()),
            }
        });
        common::sleep_ms(300).await;
        assert!(
            !reading.is_finished(),
            "{read} answered while another connection was writing the expired row"
        );
        writer.execute_batch("COMMIT").unwrap();
        assert!(
            reading.await.unwrap().unwrap(),
            "{read}: after the writer's commit, its value is live"
        );
        fixture.store.delete("k").await.unwrap();
    }
}
