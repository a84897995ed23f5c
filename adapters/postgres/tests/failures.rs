//! Failures from the server's side: a row lock held past the request timeout, sessions the
//! server terminates (`pg_terminate_backend`), and a server that stops and starts again. Each call must end within its
//! timeout with `Unavailable` or succeed, and the same backend must work afterwards.

#![allow(
    clippy::disallowed_methods,
    reason = "the tests time the calls they make"
)]

mod common;

use std::time::{Duration, Instant};

use kv_postgres::PostgresBackend;
use kv_trait::{KvBackend, KvError};

use common::{builder, lock_row, raw_client, server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_row_lock_times_out_as_unavailable_and_the_connection_is_replaced() {
    let Some(builder) = builder("held-lock") else {
        return;
    };
    let store = builder
        .request_timeout(Duration::from_millis(300))
        .pool_size(1)
        .build()
        .await
        .unwrap();
    store.set("k", b"before").await.unwrap();

    let mut locker = raw_client(&server().unwrap().url).await;
    let transaction = lock_row(&mut locker, &store, "k").await;

    let started = Instant::now();
    let blocked = store.set("k", b"blocked").await;
    let waited = started.elapsed();
    assert!(
        matches!(blocked, Err(KvError::Unavailable(_))),
        "{blocked:?}"
    );
    assert!(waited < Duration::from_secs(2), "waited {waited:?}");
    // Reads do not take row locks: they answer while the lock is held, through a new
    // connection (the only one was closed with the timed-out statement on it).
    assert_eq!(store.get("k").await.unwrap(), Some(b"before".to_vec()));

    transaction.rollback().await.unwrap();
    store.set("k", b"after").await.unwrap();
    assert_eq!(store.get("k").await.unwrap(), Some(b"after".to_vec()));
    store.delete("k").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_the_server_terminates_are_replaced() {
    let Some(server) = server() else {
        return;
    };
    let application = format!("kvkit-terminated-{}", std::process::id());
    let store = PostgresBackend::from_url(&server.url_with(&format!(
        "namespace={application}&application_name={application}&pool_size=4"
    )))
    .await
    .unwrap();
    store.set("k", b"v").await.unwrap();
    let admin = raw_client(&server.url).await;
    // Each round, the first call after the termination meets a dead connection, which the
    // pool replaces before sending anything on it: reads and writes alike succeed, and none
    // is applied twice. (Without the pause, a write may meet the connection as it closes and
    // get `Unavailable`, which the contract allows; the next test covers a session ended
    // while its statement runs.)
    for round in 0..4 {
        let terminated = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                &[&application],
            )
            .await
            .unwrap();
        assert!(
            !terminated.is_empty(),
            "round {round}: a session to terminate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        match round {
            0 => assert_eq!(store.get("k").await.unwrap(), Some(b"v".to_vec())),
            1 => assert_eq!(store.increment("n", 1).await.unwrap(), 1),
            2 => assert!(store.compare_and_swap("c", None, b"x").await.unwrap()),
            _ => assert_eq!(store.increment("n", 1).await.unwrap(), 2),
        }
    }
    assert_eq!(store.get("n").await.unwrap(), Some(b"2".to_vec()));
    store.delete("c").await.unwrap();
    assert!(store.exists("k").await.unwrap());
    store.delete("k").await.unwrap();
    store.delete("n").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_while_its_increment_waits_counts_at_most_once() {
    let Some(server) = server() else {
        return;
    };
    let application = format!("kvkit-ended-{}", std::process::id());
    let store = PostgresBackend::from_url(&server.url_with(&format!(
        "namespace={application}&application_name={application}"
    )))
    .await
    .unwrap();
    store.set("n", b"41").await.unwrap();

    // Hold the row, so that the increment waits inside its statement.
    let mut locker = raw_client(&server.url).await;
    let transaction = lock_row(&mut locker, &store, "n").await;
    let increment = tokio::spawn({
        let store = store.clone();
        async move { store.increment("n", 1).await }
    });
    let admin = raw_client(&server.url).await;
    let waiting =
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'";
    let mut pids = Vec::new();
    for _ in 0..100 {
        pids = admin.query(waiting, &[&application]).await.unwrap();
        if !pids.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pids.len(), 1, "the increment waits for the row lock");
    let pid: i32 = pids[0].get(0);
    // The server ends that session: the statement's reply is a FATAL error, it did not run.
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    transaction.rollback().await.unwrap();

    // The FATAL reply usually reaches the client, which then sends the statement again on
    // another connection; when the connection closes before the reply is read, the client
    // cannot tell whether the statement ran and says `Unavailable`. Either way it is applied
    // at most once, and exactly when it says so.
    match increment.await.unwrap() {
        Ok(n) => {
            assert_eq!(n, 42);
            assert_eq!(store.get("n").await.unwrap(), Some(b"42".to_vec()));
        }
        Err(KvError::Unavailable(_)) => {
            assert_eq!(store.get("n").await.unwrap(), Some(b"41".to_vec()));
        }
        Err(other) => panic!("{other}"),
    }
    store.delete("n").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_is_unavailable_at_once_and_a_restarted_one_serves_again() {
    let Some(mut private) = kv_test_services::postgres::private_server() else {
        return;
    };
    let store = PostgresBackend::from_url(&format!(
        "{}?namespace=restart&connect_timeout_ms=1000&request_timeout_ms=2000",
        private.url
    ))
    .await
    .unwrap();
    store.set("k", b"durable").await.unwrap();

    private.stop().unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        let result = store.get("k").await;
        assert!(matches!(result, Err(KvError::Unavailable(_))), "{result:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        let write = store.set("k", b"lost").await;
        assert!(matches!(write, Err(KvError::Unavailable(_))), "{write:?}");
    }

    private.start().unwrap();
    assert_eq!(store.get("k").await.unwrap(), Some(b"durable".to_vec()));
    assert_eq!(store.increment("n", 1).await.unwrap(), 1);
}
