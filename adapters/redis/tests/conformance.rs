//! The whole conformance suite against `RedisBackend`, one test per check: against a
//! standalone server, against a Redis Cluster of three primaries and three replicas, and
//! against that cluster with every write waiting for its replica (`wait_for_replicas`). Each
//! check gets a fresh namespace on the shared server, the way applications share one.
//!
//! The servers come from `KV_REDIS_URL` / `KV_REDIS_CLUSTER_URL`, else private `redis-server`
//! processes started for this test binary (see `kv_test_services::redis`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kv_conformance::Profile;
use kv_redis::RedisBackend;
use kv_test_services::redis::RedisService;
use kv_trait::KvError;

/// A backend on `service` in a namespace no other check of this process uses; each write
/// waits for `replicas` replicas (0: none), and with `watch` announces its change.
async fn fresh_namespace(
    service: Option<&RedisService>,
    replicas: u32,
    watch: bool,
) -> Result<RedisBackend, KvError> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let service = service.ok_or_else(|| {
        KvError::InvalidConfig(format!(
            "no Redis server for this test. {}",
            kv_test_services::redis::HOW_TO_GET_ONE
        ))
    })?;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    RedisBackend::builder(&service.url)?
        .namespace(format!("conformance-{}-{n}", std::process::id()))
        .wait_for_replicas(replicas, Duration::from_secs(1))
        .watch(watch)
        .build()
        .await
}

/// The profile: 1 MiB values, 1 ms TTL granularity (the defaults), and the server's password
/// as a secret that `Debug` must not show.
fn profile(service: Option<&RedisService>) -> Profile {
    let password = service.and_then(|service| service.password.clone());
    password
        .into_iter()
        .fold(Profile::default(), Profile::with_secret)
}

mod standalone {
    use kv_test_services::redis;

    kv_conformance::conformance_tests!(
        || super::fresh_namespace(redis::standalone(), 0, false),
        super::profile(redis::standalone())
    );
}

mod cluster {
    use kv_test_services::redis;

    kv_conformance::conformance_tests!(
        || super::fresh_namespace(redis::cluster(), 0, false),
        super::profile(redis::cluster())
    );
}

/// Every primary of the test cluster has one replica.
mod cluster_waiting_for_a_replica {
    use kv_test_services::redis;

    kv_conformance::conformance_tests!(
        || super::fresh_namespace(redis::cluster(), 1, false),
        super::profile(redis::cluster())
    );
}

/// With `watch=true` every write is a script that also announces its change, so the whole
/// suite runs again on the standalone server, the watch check now against the announcements.
mod standalone_watched {
    use kv_test_services::redis;

    kv_conformance::conformance_tests!(
        || super::fresh_namespace(redis::standalone(), 0, true),
        super::profile(redis::standalone())
    );
}

/// In a cluster the same scripts are routed like every keyed command, so of the suite only the
/// checks that watch or contend run again: announcements from every primary reach the one
/// node a watcher subscribes at, in each key's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_cluster_passes_the_watch_and_history_checks() {
    let Some(service) = kv_test_services::redis::cluster() else {
        return;
    };
    let report = kv_conformance::Suite::new(|| fresh_namespace(Some(service), 0, true))
        .with_profile(profile(Some(service)))
        .only([
            "watch_delivers_every_change",
            "capabilities_are_true",
            "concurrent_history_linearizable",
            "concurrent_cas_absent_single_winner",
            "set_many_writes_in_order",
            "delete_many_counts",
        ])
        .run()
        .await;
    assert!(report.passed(), "{report}");
}
