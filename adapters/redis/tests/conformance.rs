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
/// waits for `replicas` replicas (0: none).
async fn fresh_namespace(
    service: Option<&RedisService>,
    replicas: u32,
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
        || super::fresh_namespace(redis::standalone(), 0),
        super::profile(redis::standalone())
    );
}

mod cluster {
    use kv_test_services::redis;

    kv_conformance::conformance_tests!(
        || super::fresh_namespace(redis::cluster(), 0),
        super::profile(redis::cluster())
    );
}

/// Every primary of the test cluster has one replica.
mod cluster_waiting_for_a_replica {
    use kv_test_services::redis;

    kv_conformance::conformance_tests!(
        || super::fresh_namespace(redis::cluster(), 1),
        super::profile(redis::cluster())
    );
}
