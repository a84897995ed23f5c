//! `watch` on PostgreSQL (`watch=true`) beyond the kit's check: any writer's change is seen
//! (plain SQL too), a value too large for a notification is read back, a dropped listening
//! session is reported as `Lagged` and listening resumes, and without `watch=true` the backend
//! says `Unsupported`.

use super::common;

use std::time::Duration;

use futures::StreamExt;
use kv_postgres::PostgresBackend;
use kv_trait::{KvBackend, KvError, WatchEvent, WatchScope, WatchStream};

async fn next(events: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream goes on")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_writer_is_heard_large_values_too_and_a_lost_session_says_lagged() {
    let Some((table, raw)) = common::scratch_table("watch").await else {
        return;
    };
    let url = common::table_url(&table, "namespace=app&watch=true");
    let store = PostgresBackend::from_url(&url).await.unwrap();
    assert_eq!(store.capabilities().watch, WatchScope::Store);
    let mut events = store.watch("k/").await.unwrap();

    // A plain SQL write by another program, in the layout the crate docs give.
    raw.execute(
        &format!("INSERT INTO \"{table}\" (namespace, key, value) VALUES ('app', 'k/raw', 'x')"),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        next(&mut events).await,
        WatchEvent::Set {
            key: "k/raw".into(),
            value: b"x".to_vec()
        }
    );

    // Too large for the notification's payload: read when the event arrives.
    let large = vec![7u8; 100_000];
    store.set("k/large", &large).await.unwrap();
    assert_eq!(
        next(&mut events).await,
        WatchEvent::Set {
            key: "k/large".into(),
            value: large
        }
    );

    // End the listening session from the server side: the watcher says so, then listens again.
    // Only this table's listener: its channel is named after the table's oid.
    let ended = raw
        .execute(
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE query = 'LISTEN \"kvkit_watch_' || '\"{table}\"'::regclass::oid || '\"'"
            ),
            &[],
        )
        .await
        .unwrap();
    assert!(ended >= 1, "the listening session was found");
    assert_eq!(next(&mut events).await, WatchEvent::Lagged);
    // Listening again takes a moment; write until the watcher hears it.
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            store.set("k/after", b"again").await.unwrap();
            if let Ok(Some(event)) =
                tokio::time::timeout(Duration::from_millis(300), events.next()).await
            {
                return event;
            }
        }
    })
    .await
    .expect("the watcher listens again");
    assert_eq!(
        heard,
        WatchEvent::Set {
            key: "k/after".into(),
            value: b"again".to_vec()
        }
    );
    raw.batch_execute(&format!("DROP TABLE \"{table}\""))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_watch_true_watch_is_unsupported() {
    let Some(store) = common::fresh("no-watch").await else {
        return;
    };
    assert_eq!(store.capabilities().watch, WatchScope::Unsupported);
    let err = store.watch("").await.err().expect("unsupported");
    assert!(
        matches!(&err, KvError::Unsupported(why) if why.contains("watch=true")),
        "{err}"
    );
}
