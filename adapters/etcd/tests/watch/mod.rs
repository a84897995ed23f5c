//! `watch` on etcd beyond the kit's check: a watcher whose connection is reset picks up where
//! it stopped (etcd's history, from the next revision), with nothing lost or repeated and no
//! `Lagged`; expiry is reported as `Expired`.

use super::common;

use std::time::Duration;

use futures::StreamExt;
use kv_conformance::faults::FaultProxy;
use kv_etcd::EtcdBackend;
use kv_trait::{KvBackend, WatchEvent, WatchScope, WatchStream};

/// The next event, within a few seconds.
async fn next(events: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream goes on")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_resumes_after_its_connection_is_reset_without_a_gap() {
    let Some(service) = common::single() else {
        return;
    };
    let proxy = FaultProxy::start(service.members[0].as_str()).expect("start the proxy");
    let namespace = common::namespace("watch-reset");
    let watcher = EtcdBackend::from_url(&format!(
        "etcd://127.0.0.1:{}?namespace={namespace}&request_timeout_ms=2000",
        proxy.port()
    ))
    .await
    .expect("open through the proxy");
    assert_eq!(watcher.capabilities().watch, WatchScope::Store);
    // The writer goes straight to the member: only the watcher's connection is reset.
    let writer = common::twin(service, &watcher).await;
    let mut events = watcher.watch("r/").await.expect("watch");

    for i in 0..10 {
        writer.set(&format!("r/{i:02}"), b"before").await.unwrap();
    }
    for i in 0..5 {
        assert_eq!(
            next(&mut events).await,
            WatchEvent::Set {
                key: format!("r/{i:02}"),
                value: b"before".to_vec()
            }
        );
    }
    let accepted = proxy.connections_accepted();
    proxy.reset_all();
    // Written while the watcher is cut off.
    for i in 0..10 {
        writer.set(&format!("r/{i:02}"), b"after").await.unwrap();
    }
    let mut rest = Vec::new();
    while rest.len() < 15 {
        rest.push(next(&mut events).await);
    }
    let mut want: Vec<WatchEvent> = (5..10)
        .map(|i| WatchEvent::Set {
            key: format!("r/{i:02}"),
            value: b"before".to_vec(),
        })
        .collect();
    want.extend((0..10).map(|i| WatchEvent::Set {
        key: format!("r/{i:02}"),
        value: b"after".to_vec(),
    }));
    assert_eq!(
        rest, want,
        "every change once, in revision order, no Lagged"
    );
    assert!(
        proxy.connections_accepted() > accepted,
        "the watcher really reconnected"
    );
    // Nothing repeated after the gap.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), events.next())
            .await
            .is_err()
    );
    writer
        .delete_many(&rest.iter().filter_map(WatchEvent::key).collect::<Vec<_>>())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_reported_as_expired_and_a_delete_as_deleted() {
    let Some(store) = common::fresh("watch-expiry").await else {
        return;
    };
    let mut events = store.watch("").await.expect("watch");
    store
        .set_with_ttl("brief", b"v", 200_000_000)
        .await
        .unwrap();
    store.set("kept", b"v").await.unwrap();
    store.delete("kept").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The read finds the entry expired and removes it (or its lease already has).
    assert_eq!(store.get("brief").await.unwrap(), None);
    let mut seen = Vec::new();
    while seen.len() < 4 {
        seen.push(next(&mut events).await);
    }
    let brief: Vec<&WatchEvent> = seen.iter().filter(|e| e.key() == Some("brief")).collect();
    assert_eq!(
        brief,
        [
            &WatchEvent::Set {
                key: "brief".into(),
                value: b"v".to_vec()
            },
            &WatchEvent::Expired {
                key: "brief".into()
            }
        ]
    );
    assert!(seen.contains(&WatchEvent::Deleted { key: "kept".into() }));
}
