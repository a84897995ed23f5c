//! 10,000 tasks at once on one handle with the default settings (see `kv_conformance::load`),
//! on the standalone server and on the cluster: every call succeeds (at most
//! `max_concurrent_requests` of them in flight, pipelined on the multiplexed connection),
//! connections stay bounded (one per node) and memory stays bounded. Run with `--nocapture`
//! for the latencies.

mod common;

use kv_conformance::load::{assert_load, LoadOptions};
use kv_test_services::redis::{self as services, RedisService};

/// `store_name` as the reliability report names it: `redis` or `redis-cluster`.
async fn burst(service: &RedisService, store_name: &str) {
    let store = common::backend(service, &common::namespace(store_name)).await;
    let options = LoadOptions::default().with_max_new_descriptors(32);
    assert_load(store_name, &store, &options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_on_one_standalone_handle() {
    if let Some(server) = services::standalone() {
        burst(server, "redis").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_on_one_cluster_handle() {
    if let Some(cluster) = services::cluster() {
        burst(cluster, "redis-cluster").await;
    }
}
